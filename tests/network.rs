//! The build network's proxy against real sockets: every upstream is a server this test starts on
//! loopback, and every client speaks raw HTTP/1.1 to the proxy, as a build's curl or wget would.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::upstream::Upstream;
use reprod::network::{AllowList, Exchange, Limits, Proxy};
use sha2::{Digest, Sha256};

/// Sends `request` to the proxy and returns the whole answer.
async fn ask(proxy: std::net::SocketAddr, request: String) -> (u16, Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(proxy).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(answer.len(), |i| i + 4);
        let status = String::from_utf8_lossy(&answer[..end])
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, answer[end..].to_vec())
    })
    .await
    .unwrap()
}

fn get(url: &str) -> String {
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    format!("GET {url} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

async fn proxy(entries: &[String], limits: Limits) -> Proxy {
    Proxy::start(AllowList::parse(entries).unwrap(), limits)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_download_passes_and_is_recorded_by_digest() {
    let tarball = b"pinned dependency bytes".repeat(4096);
    let up = Upstream::start("127.0.0.1", tarball.clone());
    let p = proxy(&[format!("127.0.0.1:{}", up.port)], Limits::default()).await;
    let url = format!("http://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let (status, body) = ask(p.addr().unwrap(), get(&url)).await;
    assert_eq!(status, 200);
    assert_eq!(body, tarball);
    assert_eq!(
        up.requests(),
        ["GET /deps/lib-1.0.tar HTTP/1.1"],
        "origin-form upstream"
    );
    let record = p.stop();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].url, url);
    assert_eq!(record[0].status, Some(200));
    assert_eq!(record[0].bytes, tarball.len() as u64);
    assert_eq!(record[0].sha256.as_deref(), Some(sha256(&tarball).as_str()));
    assert_eq!(record[0].refused, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_allow_list_does_not_name_never_reaches_its_upstream() {
    let listed = Upstream::start("127.0.0.1", b"ok".to_vec());
    let other = Upstream::start("127.0.0.2", b"secret".to_vec());
    let p = proxy(&[format!("127.0.0.1:{}", listed.port)], Limits::default()).await;
    // Another loopback service, another port of the listed host, and the listed service by a name.
    for url in [
        format!("http://127.0.0.2:{}/", other.port),
        format!("http://127.0.0.1:{}/", other.port),
        format!("http://localhost:{}/", listed.port),
    ] {
        let (status, body) = ask(p.addr().unwrap(), get(&url)).await;
        assert_eq!(status, 403, "{url}");
        assert!(
            String::from_utf8_lossy(&body).contains("network-denied"),
            "{url}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert!(other.requests().is_empty() && listed.requests().is_empty());
    let record = p.stop();
    assert_eq!(record.len(), 3);
    assert!(record
        .iter()
        .all(|e| e.refused.is_some() && e.status == Some(403)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_never_reaches_a_loopback_address_only_an_address_entry_does() {
    let up = Upstream::start("127.0.0.1", b"metadata".to_vec());
    // `localhost` is on the list by name, but it resolves to loopback.
    let p = proxy(&[format!("localhost:{}", up.port)], Limits::default()).await;
    let (status, body) = ask(
        p.addr().unwrap(),
        get(&format!("http://localhost:{}/", up.port)),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        String::from_utf8_lossy(&body).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(up.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_goes_through_a_recorded_tunnel_to_an_allowed_host_only() {
    // A TCP echo service stands for a TLS server: the tunnel carries bytes it does not read.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in echo.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 5];
            if s.read_exact(&mut buf).is_ok() {
                let _ = s.write_all(&buf);
            }
        }
    });
    let p = proxy(&[format!("127.0.0.1:{port}")], Limits::default()).await;
    let addr = p.addr().unwrap();
    let echoed = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
            head.push(b[0]);
        }
        assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
        s.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        s.read_exact(&mut back).unwrap();
        back
    })
    .await
    .unwrap();
    assert_eq!(&echoed, b"hello");
    let (status, _) = ask(
        addr,
        "CONNECT 127.0.0.1:1 HTTP/1.1\r\nhost: 127.0.0.1:1\r\n\r\n".to_string(),
    )
    .await;
    assert_eq!(status, 403);
    // The tunnel's bytes are counted once it closes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let record = p.stop();
    assert_eq!(record[0].method, "CONNECT");
    assert_eq!(record[0].url, format!("127.0.0.1:{port}"));
    assert_eq!(record[0].bytes, 10);
    assert!(record[1].refused.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_its_bytes_or_requests_is_cut_and_the_record_says_so() {
    let big = vec![7u8; 1 << 20];
    let up = Upstream::start("127.0.0.1", big.clone());
    let limits = Limits {
        max_bytes: 64 << 10,
        max_requests: 2,
        ..Limits::default()
    };
    let p = proxy(&[format!("127.0.0.1:{}", up.port)], limits).await;
    let url = format!("http://127.0.0.1:{}/big", up.port);
    let (_, body) = ask(p.addr().unwrap(), get(&url)).await;
    assert!(body.len() < big.len(), "the body was cut");
    ask(p.addr().unwrap(), get(&url)).await;
    let (status, body) = ask(p.addr().unwrap(), get(&url)).await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("requests are spent"));
    let record = p.stop();
    assert!(record[0]
        .refused
        .as_deref()
        .unwrap()
        .contains("bytes are spent"));
    assert_eq!(record[0].sha256, None, "a cut body has no digest");
    assert_eq!(record.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_over_the_jobs_bytes_is_cut() {
    // An upstream that sends a megabyte to whoever connects.
    let source = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = source.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in source.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.write_all(&vec![1u8; 1 << 20]);
        }
    });
    let limits = Limits {
        max_bytes: 64 << 10,
        ..Limits::default()
    };
    let p = proxy(&[format!("127.0.0.1:{port}")], limits).await;
    let addr = p.addr().unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n"
        )
        .unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all.len()
    })
    .await
    .unwrap();
    assert!(got < 1 << 20, "the tunnel was cut ({got} bytes)");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let record = p.stop();
    assert!(
        record[0]
            .refused
            .as_deref()
            .unwrap_or("")
            .contains("bytes are spent"),
        "{record:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_speaks_only_absolute_http_urls_and_connect() {
    let p = proxy(&["127.0.0.1:9".to_string()], Limits::default()).await;
    let (status, body) = ask(
        p.addr().unwrap(),
        "GET /etc/passwd HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_string(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("absolute http:// URL"));
}

/// A process alone in a network namespace this test makes (loopback only, brought up), killed on drop.
struct Namespace {
    child: std::process::Child,
}

impl Namespace {
    fn new() -> Namespace {
        let child = std::process::Command::new("unshare")
            .args(["--net", "sleep", "300"])
            .spawn()
            .unwrap();
        let ns = Namespace { child };
        // `unshare` execs `sleep`: once the namespace differs from ours, it is the new one.
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        for _ in 0..100 {
            match std::fs::read_link(format!("/proc/{}/ns/net", ns.pid())) {
                Ok(theirs) if theirs != ours => break,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let up = ns.run(&["ip", "link", "set", "lo", "up"]);
        assert!(up.status.success(), "{up:?}");
        ns
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs a command inside the namespace.
    fn run(&self, cmd: &[&str]) -> std::process::Output {
        std::process::Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n", "--"])
            .args(cmd)
            .output()
            .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_namespace_with_only_loopback_the_proxy_is_the_only_way_out() {
    let tarball = b"a tarball a build fetches".repeat(100);
    let up = Upstream::start("127.0.0.1", tarball.clone());
    // Served in the namespace only: nothing on the host's loopback.
    let p = Proxy::new(
        AllowList::parse(&[format!("127.0.0.1:{}", up.port)]).unwrap(),
        Limits::default(),
    );
    let ns = Namespace::new();
    assert_eq!(p.open_in(ns.pid(), 3128).await.unwrap(), 3128);
    let url = format!("http://127.0.0.1:{}/deps/lib.tar", up.port);
    let (ns_arc, fetch) = (Arc::new(ns), url.clone());
    let n = ns_arc.clone();
    let through = tokio::task::spawn_blocking(move || {
        n.run(&[
            "curl",
            "-sS",
            "--max-time",
            "20",
            "-x",
            "http://127.0.0.1:3128",
            &fetch,
        ])
    })
    .await
    .unwrap();
    assert!(through.status.success(), "{through:?}");
    assert_eq!(through.stdout, tarball);
    // The same upstream straight from the namespace: nothing is there, it is another network.
    let n = ns_arc.clone();
    let direct =
        tokio::task::spawn_blocking(move || n.run(&["curl", "-sS", "--max-time", "5", &url]))
            .await
            .unwrap();
    assert!(!direct.status.success(), "{direct:?}");
    assert_eq!(up.requests().len(), 1, "only the proxied request arrived");
    let record = p.stop();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].sha256.as_deref(), Some(sha256(&tarball).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_without_a_network_reaches_the_proxy_and_nothing_else() {
    let body = b"fetched from inside a container".to_vec();
    let up = Upstream::start("127.0.0.1", body.clone());
    // Served in the namespace only: nothing on the host's loopback.
    let p = Proxy::new(
        AllowList::parse(&[format!("127.0.0.1:{}", up.port)]).unwrap(),
        Limits::default(),
    );
    let image = common::builder_image();
    let name = format!("reprod-network-test-{}", std::process::id());
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            out,
        )
    };
    // As a step runs: no network but loopback, root remapped by the engine's user namespace.
    let (ok, _, out) = docker(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &name,
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--read-only",
        image,
        "sleep",
        "120",
    ]);
    assert!(ok, "{out:?}");
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", &self.0])
                .output();
        }
    }
    let _remove = Remove(name.clone());
    let (_, pid, _) = docker(&["inspect", "-f", "{{.State.Pid}}", &name]);
    p.open_in(pid.parse().unwrap(), 3128).await.unwrap();
    let url = format!("http://127.0.0.1:{}/x", up.port);
    let (fetched, got, out) = docker(&[
        "exec",
        "-e",
        "http_proxy=http://127.0.0.1:3128",
        &name,
        "wget",
        "-q",
        "-O",
        "-",
        &url,
    ]);
    assert!(fetched, "{out:?}");
    assert_eq!(got.as_bytes(), body.as_slice());
    // (Busybox's wget has no -T: it crashes on it, which would pass for "unreachable".)
    let (direct, _, out) = docker(&["exec", &name, "wget", "-q", "-O", "-", &url]);
    assert!(!direct, "without the proxy the container reaches nothing");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Connection refused"),
        "{out:?}"
    );
    assert_eq!(up.requests().len(), 1);
    assert_eq!(p.stop()[0].sha256.as_deref(), Some(sha256(&body).as_str()));
}

/// A proxy on the host's loopback that intercepts TLS with a job CA and trusts `roots` upstream.
fn intercepting(
    entries: &[String],
    roots: &[std::path::PathBuf],
    tunnel_only: &[&str],
) -> (Proxy, Vec<u8>) {
    use reprod::network::tls::{upstream_connector, Interception, JobCa};
    let ca = JobCa::new("test-job").unwrap();
    let pem = ca.pem().unwrap();
    let setup = reprod::network::Setup {
        allow: AllowList::parse(entries).unwrap(),
        limits: Limits::default(),
        cache: None,
        replay: None,
        intercept: Some(Interception {
            ca,
            upstream: upstream_connector(roots).unwrap(),
            tunnel_only: tunnel_only.iter().map(|s| s.to_string()).collect(),
        }),
        sink: None,
        allow_tag_pulls: false,
    };
    (Proxy::with(setup), pem)
}

/// curl through the proxy at `proxy`, trusting `ca` (PEM); returns (exit status, stdout, stderr).
fn curl_via(
    proxy: std::net::SocketAddr,
    ca: &std::path::Path,
    url: &str,
) -> (bool, Vec<u8>, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--noproxy", "", "--proxy"])
        .arg(format!("http://{proxy}"))
        .arg("--cacert")
        .arg(ca)
        .arg("--fail")
        .arg(url)
        .output()
        .unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_intercepted_with_the_job_ca_checked_by_url_and_recorded_by_digest() {
    use common::upstream::TlsUpstream;
    let body = b"a dependency fetched over https\n".repeat(300);
    let up = TlsUpstream::start("127.0.0.1", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &up.ca_pem).unwrap();
    let base = format!("https://127.0.0.1:{}", up.port);
    // Only a path prefix of the origin is allowed: visible only because TLS is intercepted.
    let (p, job_ca) = intercepting(
        &[format!("{base}/deps/")],
        std::slice::from_ref(&upstream_ca),
        &[],
    );
    let host = Proxy::start_with(p).await.unwrap();
    let addr = host.addr().unwrap();
    let ca_file = dir.path().join("job-ca.pem");
    std::fs::write(&ca_file, &job_ca).unwrap();

    let url = format!("{base}/deps/lib-1.0.tar");
    let (ca, u) = (ca_file.clone(), url.clone());
    let (ok, got, err) = tokio::task::spawn_blocking(move || curl_via(addr, &ca, &u))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert_eq!(got, body);
    // The build must trust the job's CA: without it, nothing passes.
    let system = std::path::PathBuf::from("/etc/ssl/certs/ca-certificates.crt");
    let u = url.clone();
    let (ok, _, err) = tokio::task::spawn_blocking(move || curl_via(addr, &system, &u))
        .await
        .unwrap();
    assert!(!ok, "a build that does not trust the job CA got through");
    assert!(err.contains("certificate"), "{err}");
    // Another path of the same origin is refused inside the TLS.
    let (ca, u) = (ca_file.clone(), format!("{base}/private/key"));
    let (ok, _, err) = tokio::task::spawn_blocking(move || curl_via(addr, &ca, &u))
        .await
        .unwrap();
    assert!(!ok && err.contains("403"), "{err}");
    assert_eq!(
        up.requests(),
        vec!["GET /deps/lib-1.0.tar HTTP/1.1".to_string()]
    );

    let record = host.stop();
    let fetched: Vec<&Exchange> = record.iter().filter(|e| e.refused.is_none()).collect();
    assert_eq!(fetched.len(), 1, "{record:#?}");
    assert_eq!(fetched[0].url, url);
    assert_eq!(fetched[0].status, Some(200));
    assert_eq!(fetched[0].sha256.as_deref(), Some(sha256(&body).as_str()));
    assert!(record
        .iter()
        .any(|e| e.url.ends_with("/private/key") && e.refused.is_some()));
    assert!(record
        .iter()
        .any(|e| e.method == "CONNECT"
            && e.refused.as_deref().is_some_and(|r| r.contains("job's CA"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_upstream_is_refused_and_a_tunnel_only_host_passes_as_bytes() {
    use common::upstream::TlsUpstream;
    let body = b"served by an upstream the proxy does not trust".to_vec();
    let up = TlsUpstream::start("127.0.0.1", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let origin = format!("https://127.0.0.1:{}", up.port);
    // No upstream roots but this host's: the test CA is unknown to the proxy.
    let (p, job_ca) = intercepting(std::slice::from_ref(&origin), &[], &[]);
    let host = Proxy::start_with(p).await.unwrap();
    let addr = host.addr().unwrap();
    let ca_file = dir.path().join("job-ca.pem");
    std::fs::write(&ca_file, &job_ca).unwrap();
    let (ca, u) = (ca_file.clone(), format!("{origin}/x"));
    let (ok, _, err) = tokio::task::spawn_blocking(move || curl_via(addr, &ca, &u))
        .await
        .unwrap();
    assert!(!ok && err.contains("403"), "{err}");
    let record = host.stop();
    assert!(
        record[0]
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("is not trusted")),
        "{record:#?}"
    );
    assert!(
        up.requests().is_empty(),
        "no request was sent to an untrusted upstream"
    );

    // Tunnel-only: the build's TLS goes to the upstream itself (so it must trust the upstream's CA), and
    // the record names host, port and bytes only.
    let (p, _) = intercepting(std::slice::from_ref(&origin), &[], &["127.0.0.1"]);
    let host = Proxy::start_with(p).await.unwrap();
    let addr = host.addr().unwrap();
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &up.ca_pem).unwrap();
    let u = format!("{origin}/x");
    let (ok, got, err) = tokio::task::spawn_blocking(move || curl_via(addr, &upstream_ca, &u))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert_eq!(got, body);
    // A tunnel's bytes are recorded when it closes, which may be just after curl has its answer.
    for _ in 0..100 {
        if host.exchanges().first().is_some_and(|e| e.bytes > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let record = host.stop();
    assert_eq!(record.len(), 1, "{record:#?}");
    assert_eq!(record[0].method, "CONNECT");
    assert_eq!(record[0].url, format!("127.0.0.1:{}", up.port));
    assert!(record[0].sha256.is_none() && record[0].bytes > body.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_by_digest_are_verified_and_served_from_the_shared_cache_and_tags_are_refused() {
    let layer = b"a base image layer, pinned by digest\n".repeat(5000);
    let digest = sha256(&layer);
    let up = Upstream::start("127.0.0.1", layer.clone());
    let cache_dir = tempfile::tempdir().unwrap();
    let start = |allow_tag_pulls: bool| {
        let setup = reprod::network::Setup {
            allow: AllowList::parse(&[format!("127.0.0.1:{}", up.port)]).unwrap(),
            limits: Limits::default(),
            cache: Some(reprod::network::Cache::open(cache_dir.path(), 1 << 30).unwrap()),
            replay: None,
            intercept: None,
            sink: None,
            allow_tag_pulls,
        };
        Proxy::start_with(Proxy::with(setup))
    };
    let p = start(false).await.unwrap();
    let blob = |d: &str| format!("http://127.0.0.1:{}/v2/team/base/blobs/{d}", up.port);
    let (status, body) = ask(p.addr().unwrap(), get(&blob(&digest))).await;
    assert_eq!((status, body.len()), (200, layer.len()));
    assert_eq!(body, layer);
    assert_eq!(up.requests().len(), 1);
    // The same digest again, from another job's proxy: from the shared cache, the upstream not asked.
    let other_job = start(false).await.unwrap();
    let (status, body) = ask(other_job.addr().unwrap(), get(&blob(&digest))).await;
    assert_eq!((status, body == layer), (200, true));
    assert_eq!(up.requests().len(), 1, "a cached digest went upstream");
    assert!(other_job.stop()[0].cached);
    // An upstream that answers a digest with other bytes: nothing of them reaches the build.
    let tampered = sha256(b"the bytes this digest really names");
    let (status, body) = ask(p.addr().unwrap(), get(&blob(&tampered))).await;
    assert_eq!(status, 403);
    assert!(
        String::from_utf8_lossy(&body).contains("hash to"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        !body.windows(20).any(|w| w == &layer[..20]),
        "tampered bytes were passed on"
    );
    // A pull by tag is not pinned: refused by default ...
    let tag = format!("http://127.0.0.1:{}/v2/team/base/manifests/latest", up.port);
    let (status, body) = ask(p.addr().unwrap(), get(&tag)).await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("allow_tag_pulls"));
    let record = p.stop();
    assert!(
        record[1].refused.as_deref().unwrap().contains("hash to"),
        "{record:#?}"
    );
    // ... and recorded as an unpinned input where the policy lets it through.
    let lenient = start(true).await.unwrap();
    let (status, _) = ask(lenient.addr().unwrap(), get(&tag)).await;
    assert_eq!(status, 200);
    let record = lenient.stop();
    assert!(
        record[0].unpinned && record[0].refused.is_none(),
        "{record:#?}"
    );
}
