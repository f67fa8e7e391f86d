//! Which engine reprod talks to is what `DOCKER_HOST` says, the way the docker CLI reads it: a worker host
//! with a remote engine is how reprod scales out.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The engine socket the tests use (`DOCKER_HOST=unix://…`, else the default).
fn engine_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".into())
}

/// `DOCKER_HOST=tcp://127.0.0.1:PORT` (here socat forwarding to the engine's socket) is the engine used:
/// it used to be ignored silently for the local socket while messages named the tcp endpoint.
#[test]
fn a_tcp_docker_host_is_the_engine_used() {
    let engine =
        Forwarder::socat(|port| format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"));
    let endpoint = format!("tcp://127.0.0.1:{}", engine.port);
    let (_repo, prov) = hello_provenance();
    let (code, v, stderr) = Reprod::new().with("DOCKER_HOST", &endpoint).rebuild(&prov);
    assert_eq!(code, 0, "{v:#}\n{stderr}");
    assert!(engine.accepted() >= 1, "nothing went through DOCKER_HOST");
    // `DOCKER_TLS_VERIFY` set but empty is off, as the docker CLI reads it.
    let (code, v, stderr) = Reprod::new()
        .with("DOCKER_HOST", &endpoint)
        .with("DOCKER_TLS_VERIFY", "")
        .rebuild(&prov);
    assert_eq!(code, 0, "{v:#}\n{stderr}");
    drop(engine);
    // An endpoint that does not answer is an error naming it, never a silent fallback to the local socket.
    let (code, _, stderr) = Reprod::new().with("DOCKER_HOST", &endpoint).rebuild(&prov);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&endpoint) && stderr.contains("does not answer"),
        "{stderr}"
    );
}

/// A listener on 127.0.0.1 forwarding to the engine's socket; killed when dropped.
struct Forwarder {
    child: std::process::Child,
    port: u16,
    log: tempfile::NamedTempFile,
    /// What its log says of each connection it accepts.
    accepting: &'static str,
}

impl Forwarder {
    /// `socat … LISTEN UNIX-CONNECT:<socket>`; `listen` gets the port.
    fn socat(listen: impl FnOnce(u16) -> String) -> Forwarder {
        let port = common::daemon::free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("socat")
            .args(["-d", "-d", "-lf"])
            .arg(log.path())
            .arg(listen(port))
            .arg(format!("UNIX-CONNECT:{}", engine_socket()))
            .stdout(Stdio::null())
            .spawn()
            .expect("socat (scripts/setup.sh installs it)");
        wait_listening(port);
        Forwarder {
            child,
            port,
            log,
            accepting: "accepting connection",
        }
    }

    /// A TLS front that requires a client certificate `client_ca` issued (tests/support/tls_forward.py).
    fn tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: &std::path::Path,
    ) -> Forwarder {
        let port = common::daemon::free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(python())
            .arg(project_root().join("tests/support/tls_forward.py"))
            .arg(port.to_string())
            .args([cert, key, client_ca])
            .arg(engine_socket())
            .stdout(log.reopen().unwrap())
            .spawn()
            .unwrap();
        wait_listening(port);
        Forwarder {
            child,
            port,
            log,
            accepting: "accepted",
        }
    }

    /// How many connections it accepted.
    fn accepted(&self) -> usize {
        std::fs::read_to_string(self.log.path())
            .unwrap()
            .lines()
            .filter(|l| l.contains(self.accepting))
            .count()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A hello-build document whose subject is the real digest.
fn hello_provenance() -> (Repo, serde_json::Value) {
    let repo = Repo::hello();
    let [hello, _, _] = repo
        .reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"));
    let prov = repo.provenance(vec![subject("example.invalid/hello", &hello)], HELLO_SCRIPT);
    (repo, prov)
}

/// Runs `openssl ARGS…` (words split at spaces) in `dir`.
fn openssl(dir: &std::path::Path, args: &str) {
    sh(Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace()));
}

/// A new P-256 key, `NAME.key`, and either a self-signed authority `NAME.pem` (`ca` is `None`) or a
/// certificate `NAME.pem` that authority `ca` issued with `extensions` (an openssl extension file's lines).
fn certificate(dir: &std::path::Path, name: &str, ca: Option<&str>, extensions: &str) {
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    match ca {
        None => openssl(
            dir,
            &format!("req -x509 {key} -keyout {name}.key -out {name}.pem -days 2 -subj /CN={name}"),
        ),
        Some(ca) => {
            openssl(
                dir,
                &format!("req {key} -keyout {name}.key -out {name}.csr -subj /CN={name}"),
            );
            std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
            openssl(
                dir,
                &format!(
                    "x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -days 2 \
                     -out {name}.pem -extfile {name}.ext"
                ),
            );
        }
    }
}

/// `DOCKER_HOST=tcp://…` with `DOCKER_TLS_VERIFY=1`: reprod speaks TLS with the client certificate in
/// `DOCKER_CERT_PATH` and verifies the engine's against its `ca.pem`, as the docker CLI does; an engine
/// whose certificate another authority issued is refused, naming the endpoint.
#[test]
fn a_tls_docker_host_is_spoken_to_with_the_client_certificate_and_verified() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    certificate(dir, "ca", None, "");
    certificate(dir, "other-ca", None, "");
    certificate(
        dir,
        "engine",
        Some("ca"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    certificate(dir, "client", Some("ca"), "extendedKeyUsage=clientAuth\n");
    // The docker CLI's layout: DOCKER_CERT_PATH/{ca,cert,key}.pem.
    let certs = dir.join("docker");
    std::fs::create_dir(&certs).unwrap();
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("client.pem", "cert.pem"),
        ("client.key", "key.pem"),
    ] {
        std::fs::copy(dir.join(from), certs.join(to)).unwrap();
    }
    let engine = Forwarder::tls(
        &dir.join("engine.pem"),
        &dir.join("engine.key"),
        &dir.join("ca.pem"),
    );
    let (_repo, prov) = hello_provenance();
    let tls = |cert_path: &std::path::Path| {
        Reprod::new()
            .with("DOCKER_HOST", &format!("tcp://127.0.0.1:{}", engine.port))
            .with("DOCKER_TLS_VERIFY", "1")
            .with("DOCKER_CERT_PATH", cert_path.to_str().unwrap())
            .rebuild(&prov)
    };
    let (code, v, stderr) = tls(&certs);
    assert_eq!(code, 0, "{v:#}\n{stderr}");
    assert!(engine.accepted() >= 1);
    // The same endpoint, verified against an authority that did not issue the engine's certificate.
    let wrong = dir.join("wrong");
    std::fs::create_dir(&wrong).unwrap();
    std::fs::copy(dir.join("other-ca.pem"), wrong.join("ca.pem")).unwrap();
    std::fs::copy(dir.join("client.pem"), wrong.join("cert.pem")).unwrap();
    std::fs::copy(dir.join("client.key"), wrong.join("key.pem")).unwrap();
    let (code, _, stderr) = tls(&wrong);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("tcp://127.0.0.1:{}", engine.port)),
        "{stderr}"
    );
}

/// `DOCKER_HOST=ssh://root@HOST`: reprod reaches the engine through the system's ssh (here an sshd the
/// test starts on loopback, its key in an ssh-agent, its port in an ssh configuration entry for HOST),
/// running `docker system dial-stdio` on the far side, as the docker CLI does. A port in the URL itself is
/// refused with the way around it (bollard would hand ssh `HOST:PORT` as the host name).
#[test]
fn an_ssh_docker_host_is_reached_through_ssh() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    for key in ["host", "user"] {
        sh(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key)));
    }
    std::fs::copy(dir.join("user.pub"), dir.join("authorized_keys")).unwrap();
    let port = common::daemon::free_port();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nPidFile {}\n",
            dir.join("host").display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let log = dir.join("sshd.log");
    let mut sshd = Command::new("/usr/sbin/sshd")
        .args(["-D", "-E"])
        .arg(&log)
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .spawn()
        .expect("sshd (scripts/setup.sh installs openssh-server)");
    wait_listening(port);
    let agent_sock = dir.join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&agent_sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent_sock.exists() {
        assert!(Instant::now() < deadline, "ssh-agent did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    sh(Command::new("ssh-add")
        .env("SSH_AUTH_SOCK", &agent_sock)
        .arg("-q")
        .arg(dir.join("user")));
    // The engine host's port, as a user names it for ssh: a Host entry (a drop-in of the system's ssh
    // configuration, for this test's made-up name only, removed afterwards).
    let alias = format!("reprod-engine-test-{}", std::process::id());
    let drop_in = std::path::PathBuf::from(format!("/etc/ssh/ssh_config.d/{alias}.conf"));
    // Removed however the test ends: it is the system's configuration.
    struct Removed(std::path::PathBuf);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _removed = Removed(drop_in.clone());
    std::fs::write(
        &drop_in,
        format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  UserKnownHostsFile {}\n",
            dir.join("known_hosts").display()
        ),
    )
    .unwrap();
    let (_repo, prov) = hello_provenance();
    let ssh_reprod = |host: &str| {
        Reprod::new()
            .with("DOCKER_HOST", host)
            .with("SSH_AUTH_SOCK", agent_sock.to_str().unwrap())
            .rebuild(&prov)
    };
    let (code, v, stderr) = ssh_reprod(&format!("ssh://root@{alias}"));
    let (port_code, _, port_stderr) = ssh_reprod(&format!("ssh://root@127.0.0.1:{port}"));
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = sshd.kill();
    let _ = sshd.wait();
    let sshd_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "{v:#}\n{stderr}\nsshd: {sshd_log}");
    assert!(
        sshd_log.contains("Accepted publickey for root"),
        "nothing came through ssh: {sshd_log}"
    );
    assert_eq!(port_code, 2, "{port_stderr}");
    assert!(
        port_stderr.contains(&format!("Port {port}")) && port_stderr.contains("ssh://USER@NAME"),
        "{port_stderr}"
    );
}

/// Podman's Docker-compatible API (`podman system service`, Debian's 4.3) answers, but cannot carry the
/// sandbox: reprod names the engine and why, and runs nothing there, even with the user-namespace
/// requirement waived.
#[test]
fn podman_is_refused_naming_what_it_does_not_do() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("podman.sock");
    let mut service = Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podman (scripts/setup.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "podman system service did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_repo, prov) = hello_provenance();
    let endpoint = format!("unix://{}", socket.display());
    for require_userns in ["true", "false"] {
        let (code, v, stderr) = Reprod::new()
            .with("DOCKER_HOST", &endpoint)
            .with("REPROD_SANDBOX_REQUIRE_USERNS", require_userns)
            .rebuild(&prov);
        assert_eq!(code, 2, "{v:#}\n{stderr}");
        assert!(
            stderr.contains("Podman") && stderr.contains("cgroup namespace"),
            "{stderr}"
        );
        assert!(
            v.is_null(),
            "no verdict on an engine that cannot carry the sandbox"
        );
    }
    let _ = service.kill();
    let _ = service.wait();
}
