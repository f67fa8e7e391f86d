//! Hostile clients against the real daemon on 127.0.0.1: large bodies sent without a token, request heads
//! that never end, uploads that stall while holding a request slot. The figures the issue asks for (the
//! daemon's memory, how long `/healthz` takes) are printed on stderr.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;
use serde_json::{json, Value};

const WORKER_A: &str = "worker-a-token-0123456789";
const WORKER_B: &str = "worker-b-token-0123456789";

fn addr(d: &Daemon) -> String {
    d.url.trim_start_matches("http://").to_string()
}

/// A `/proc/PID/status` figure in KiB (`VmHWM`: peak resident memory; `VmRSS`: resident now).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Reads one response: the head, then as much body as its Content-Length says. `(0, what came)` when the
/// connection ends or times out first.
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                let code = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return (code, text);
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (0, text),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `POST path` written by hand as a hostile client sends it: the head, then `len` bytes of body as fast as
/// the socket takes them, with no `Expect: 100-continue` (nothing waits for the server's consent), while
/// the answer is read.
fn post_streaming(addr: &str, path: &str, extra_headers: &str, len: usize) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 20];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            // The server may close the connection once it has answered: that ends the upload.
            if writer.write_all(&chunk[..n]).is_err() {
                break;
            }
            sent += n;
        }
        sent
    });
    let answer = read_response(&mut stream);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let sent = sender.join().unwrap();
    eprintln!("  {path}: the client got to send {} MiB", sent >> 20);
    answer
}

/// A small request written by hand on a fresh connection; `(0, …)` when no answer comes within `wait`.
fn get(addr: &str, path: &str, wait: Duration) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    read_response(&mut stream)
}

fn error_code(text: &str) -> Option<String> {
    let body = text.split_once("\r\n\r\n")?.1;
    let v: Value = serde_json::from_str(body).ok()?;
    v["error"]["code"].as_str().map(str::to_string)
}

/// A daemon with no local workers and two remote ones, so nothing but the test's requests runs in it.
fn quiet_daemon(data: &std::path::Path, extra: &[(&str, &str)]) -> Daemon {
    let tokens = format!("{{a = \"{WORKER_A}\", b = \"{WORKER_B}\"}}");
    let mut env = vec![
        ("REPROD_SERVER_WORKERS", "0"),
        ("REPROD_SERVER_WORKER_TOKENS", tokens.as_str()),
    ];
    env.extend_from_slice(extra);
    Daemon::start(data, &env)
}

/// A 60 MiB body without a token is answered 401 from its headers: the daemon's memory does not grow by it.
#[test]
fn tokenless_bodies_are_refused_before_a_byte_is_read() {
    for path in ["/v1/worker/complete", "/v1/provenance"] {
        // A daemon per route, so one route's peak does not hide the other's.
        let data = tempfile::tempdir().unwrap();
        let d = quiet_daemon(data.path(), &[]);
        let pid = d.child.id();
        assert_eq!(get(&addr(&d), "/healthz", Duration::from_secs(10)).0, 200);
        std::thread::sleep(Duration::from_millis(300));
        let (hwm, rss) = (proc_kib(pid, "VmHWM"), proc_kib(pid, "VmRSS"));
        let started = Instant::now();
        let (code, text) = post_streaming(&addr(&d), path, "", 60 << 20);
        let took = started.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        let (hwm_after, rss_after) = (proc_kib(pid, "VmHWM"), proc_kib(pid, "VmRSS"));
        eprintln!(
            "tokenless 60 MiB POST {path}: {code} after {took:.2?}; daemon VmHWM {:.1} -> {:.1} MiB (+{:.1}), VmRSS {:.1} -> {:.1} MiB",
            mib(hwm),
            mib(hwm_after),
            mib(hwm_after.saturating_sub(hwm)),
            mib(rss),
            mib(rss_after),
        );
        assert_eq!(code, 401, "{text}");
        assert_eq!(
            error_code(&text).as_deref(),
            Some("unauthenticated"),
            "{text}"
        );
        assert!(
            hwm_after.saturating_sub(hwm) < 8 << 10,
            "{path}: the daemon's peak memory grew by {:.1} MiB for a body it refused",
            mib(hwm_after - hwm)
        );
        // A wrong token is refused from the headers too.
        let (code, text) = post_streaming(
            &addr(&d),
            path,
            "Authorization: Bearer not-a-token-this-server-has\r\n",
            8 << 20,
        );
        assert_eq!(code, 403, "{text}");
    }
}

/// Authenticated completions are read a few at a time: sixteen workers each sending a 15 MiB completion at
/// once hold at most four of them in the daemon's memory, not sixteen.
#[test]
fn concurrent_completions_are_read_a_few_at_a_time() {
    let data = tempfile::tempdir().unwrap();
    let d = quiet_daemon(
        data.path(),
        &[("REPROD_SERVER_MAX_COMPLETION_BYTES", "16777216")],
    );
    let pid = d.child.id();
    assert_eq!(get(&addr(&d), "/healthz", Duration::from_secs(10)).0, 200);
    std::thread::sleep(Duration::from_millis(300));
    let hwm = proc_kib(pid, "VmHWM");
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let a = addr(&d);
            std::thread::spawn(move || {
                post_streaming(
                    &a,
                    "/v1/worker/complete",
                    &format!("Authorization: Bearer {WORKER_A}\r\n"),
                    15 << 20,
                )
            })
        })
        .collect();
    for s in senders {
        let (code, text) = s.join().unwrap();
        // Fifteen MiB of spaces is not a completion: each is read whole, then refused.
        assert_eq!(
            (code, error_code(&text).as_deref()),
            (400, Some("bad-body")),
            "{text}"
        );
    }
    let grew = proc_kib(pid, "VmHWM").saturating_sub(hwm);
    eprintln!(
        "16 concurrent 15 MiB completions: daemon VmHWM +{:.1} MiB",
        mib(grew)
    );
    // Four bodies of 15 MiB with their reading buffers (measured: +79 MiB; with no bound, +163 MiB).
    assert!(
        grew < 120 << 10,
        "the daemon's peak memory grew by {:.1} MiB",
        mib(grew)
    );
}

/// Each write route has its own body limit, and the worker protocol keeps its status and error codes.
#[test]
fn each_route_has_its_own_body_limit_and_the_worker_protocol_its_codes() {
    let repo = Repo::hello();
    let data = tempfile::tempdir().unwrap();
    let d = quiet_daemon(
        data.path(),
        &[
            ("REPROD_MAX_DOCUMENT_BYTES", "65536"),
            ("REPROD_SERVER_MAX_COMPLETION_BYTES", "1048576"),
        ],
    );
    let code_of = |r: &(u16, Value)| (r.0, r.1["error"]["code"].as_str().map(str::to_string));
    let expect = |r: (u16, Value), status: u16, code: &str| {
        assert_eq!(code_of(&r), (status, Some(code.to_string())), "{}", r.1);
    };
    // A declared length over the document limit is refused before the body is read.
    let (code, text) = post_streaming(
        &addr(&d),
        "/v1/provenance",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
        1 << 20,
    );
    assert_eq!(
        (code, error_code(&text).as_deref()),
        (413, Some("too-large")),
        "{text}"
    );
    let doc = repo.provenance(
        vec![subject("example.invalid/x", &unbuilt_digest('a'))],
        HELLO_SCRIPT,
    );
    let (code, v) = d.submit(&doc);
    assert_eq!(code, 202, "{v}");
    let (code, lease) = d.request("POST", "/v1/worker/lease", Some(WORKER_A), Some(b"{}"));
    assert_eq!(code, 200, "{lease}");
    let (job, token) = (lease["job"].clone(), lease["token"].clone());
    let post = |path: &str, who: &str, body: &Value| {
        d.request(
            "POST",
            path,
            Some(who),
            Some(&serde_json::to_vec(body).unwrap()),
        )
    };
    // A completion over server.max_completion_bytes, a heartbeat over its small limit.
    let big = json!({"job": job, "token": token, "retry": "x".repeat(2 << 20)});
    expect(
        post("/v1/worker/complete", WORKER_A, &big),
        413,
        "too-large",
    );
    let padded = json!({"job": job, "token": token, "pad": "x".repeat(100_000)});
    expect(
        post("/v1/worker/heartbeat", WORKER_A, &padded),
        413,
        "too-large",
    );
    let hb = json!({"job": job, "token": token});
    assert_eq!(post("/v1/worker/heartbeat", WORKER_A, &hb).0, 200);
    // The codes the protocol had.
    let (code, v) = d.request("POST", "/v1/worker/complete", None, Some(b"{}"));
    expect((code, v), 401, "unauthenticated");
    let (code, v) = d.request(
        "POST",
        "/v1/worker/complete",
        Some("not-a-worker-token-at-all"),
        Some(b"{}"),
    );
    expect((code, v), 403, "forbidden");
    let (code, v) = d.request(
        "POST",
        "/v1/worker/complete",
        Some(WORKER_A),
        Some(b"{not json"),
    );
    expect((code, v), 400, "bad-body");
    let (code, v) = d.request("POST", "/v1/worker/heartbeat", Some(WORKER_A), Some(b"[]"));
    expect((code, v), 400, "bad-body");
    let retry = json!({"job": job, "token": token, "retry": "because"});
    expect(
        post("/v1/worker/complete", WORKER_B, &retry),
        403,
        "not-your-lease",
    );
    let stale = json!({"job": job, "token": "an-old-lease-token", "retry": "because"});
    expect(
        post("/v1/worker/complete", WORKER_A, &stale),
        409,
        "stale-lease",
    );
    let not_a_verdict = json!({"job": job, "token": token, "verdict": 5});
    expect(
        post("/v1/worker/complete", WORKER_A, &not_a_verdict),
        422,
        "bad-verdict",
    );
    let neither = json!({"job": job, "token": token});
    expect(
        post("/v1/worker/complete", WORKER_A, &neither),
        400,
        "bad-body",
    );
    let (code, v) = post("/v1/worker/complete", WORKER_A, &retry);
    assert_eq!(code, 200, "{v}");
}

/// Sets the spawned process's soft file-descriptor limit (the hard one stays).
fn with_soft_nofile(cmd: &mut Command, soft: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    // SAFETY: setrlimit is a single system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(soft),
                    maximum: hard,
                },
            )
            .map_err(std::io::Error::from)
        });
    }
}

/// Raises this test process's soft file-descriptor limit to its hard limit.
fn raise_own_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(1 << 20);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    hard
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// 1,100 connections that never finish their request head: `/healthz` still answers while they are open,
/// and the server closes them after its header-read timeout. The daemon is started with the soft
/// file-descriptor limit many service managers and shells give (1024), below the 1,100 connections.
#[test]
fn stalled_request_heads_neither_starve_healthz_nor_stay_open() {
    const STALLED: usize = 1100;
    const HEADER_TIMEOUT: u64 = 8;
    let data = tempfile::tempdir().unwrap();
    let timeout = HEADER_TIMEOUT.to_string();
    let d = Daemon::start_with(
        data.path(),
        &[
            ("REPROD_SERVER_WORKERS", "0"),
            ("REPROD_SERVER_HEADER_READ_TIMEOUT_SECS", &timeout),
        ],
        |cmd| with_soft_nofile(cmd, 1024),
    );
    let hard = raise_own_nofile();
    assert!(
        hard as usize > STALLED + 100,
        "the hard limit {hard} is too low for this test"
    );
    let pid = d.child.id();
    let addr = addr(&d);
    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Ends: ")
                .unwrap();
            s
        })
        .collect();
    // Wait until the daemon has accepted what it will.
    let mut fds = open_fds(pid);
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(250));
        let now = open_fds(pid);
        if now == fds && now > STALLED {
            break;
        }
        fds = now;
    }
    let asked = Instant::now();
    let (code, text) = get(&addr, "/healthz", Duration::from_secs(15));
    let took = asked.elapsed();
    eprintln!(
        "GET /healthz with {STALLED} stalled connections open ({fds} descriptors in the daemon): {} after {took:.3?}",
        if code == 0 { "no answer".to_string() } else { code.to_string() }
    );
    assert_eq!(code, 200, "{text}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // After the header timeout every stalled connection is closed by the server.
    for s in &stalled {
        s.set_nonblocking(true).unwrap();
    }
    let mut open: Vec<usize> = (0..stalled.len()).collect();
    let deadline = opened + Duration::from_secs(HEADER_TIMEOUT + 15);
    let mut buf = [0u8; 4096];
    while !open.is_empty() && Instant::now() < deadline {
        open.retain(|&i| loop {
            match stalled[i].read(&mut buf) {
                Ok(0) => break false,
                Ok(_) => continue, // an error response before the close
                Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                Err(_) => break false,
            }
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "{} of {STALLED} stalled connections closed by the server {:.1?} after they were opened (header timeout {HEADER_TIMEOUT}s)",
        STALLED - open.len(),
        opened.elapsed()
    );
    assert!(
        open.is_empty(),
        "{} stalled connections are still open",
        open.len()
    );
    assert!(
        d.startup.iter().any(|l| l.contains("file descriptors")),
        "the daemon logs its file-descriptor limit: {:?}",
        d.startup
    );
}

/// An authorized upload that stalls holds a request slot; with every slot taken the daemon answers 503
/// at once instead of queueing, and the stalled connection is closed after the idle timeout.
#[test]
fn requests_over_the_in_flight_cap_are_shed_and_stalled_uploads_time_out() {
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        data.path(),
        &[
            ("REPROD_SERVER_WORKERS", "0"),
            ("REPROD_SERVER_MAX_REQUESTS", "1"),
            ("REPROD_SERVER_IDLE_TIMEOUT_SECS", "3"),
        ],
    );
    let addr = addr(&d);
    let mut upload = TcpStream::connect(&addr).unwrap();
    upload
        .write_all(
            format!(
                "POST /v1/provenance HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n{{\"half"
            )
            .as_bytes(),
        )
        .unwrap();
    let stalled_at = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let (code, text) = get(&addr, "/healthz", Duration::from_secs(10));
    assert_eq!(
        (code, error_code(&text).as_deref()),
        (503, Some("overloaded")),
        "{text}"
    );
    upload
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (code, text) = read_response(&mut upload);
    let closed = stalled_at.elapsed();
    eprintln!("a stalled upload was closed {closed:.1?} after it stalled (idle timeout 3 s): {code} {text:?}");
    assert!(
        closed >= Duration::from_secs(2) && closed < Duration::from_secs(10),
        "{closed:?}"
    );
    assert_eq!(get(&addr, "/healthz", Duration::from_secs(10)).0, 200);
}

/// Text a client chose comes back in error messages, and goes into the daemon's log, with its escape
/// sequences shown rather than obeyed by whoever reads it on a terminal.
#[test]
fn client_text_is_echoed_with_escape_sequences_made_visible() {
    let data = tempfile::tempdir().unwrap();
    let d = quiet_daemon(data.path(), &[]);
    let (code, v) = d.request(
        "GET",
        "/v1/jobs/%1B%5B2J%1B%5B32mverdict%3A%20reproducible",
        None,
        None,
    );
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(code, 404, "{v}");
    assert!(
        !message.contains('\u{1b}') && message.contains("\\x1b[2J\\x1b[32m"),
        "{message:?}"
    );
    let heartbeat =
        serde_json::to_vec(&json!({"job": "\u{1b}]0;owned\u{7}", "token": "t"})).unwrap();
    let (code, v) = d.request(
        "POST",
        "/v1/worker/heartbeat",
        Some(WORKER_A),
        Some(&heartbeat),
    );
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(code, 404, "{v}");
    assert!(
        !message.contains('\u{1b}') && message.contains("\\x1b]0;owned\\x07"),
        "{message:?}"
    );
    let inbox = data.path().join("inbox");
    std::fs::write(inbox.join("evil\u{1b}[31m.json"), b"{\"cut").unwrap();
    let line = d.wait_line("inbox: rejected", Duration::from_secs(20));
    assert!(
        !line.contains('\u{1b}') && line.contains("\\x1b[31m"),
        "{line:?}"
    );
}
