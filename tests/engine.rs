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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut socat = Command::new("socat")
        .args(["-d", "-d", "-lf"])
        .arg(log.path())
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!("UNIX-CONNECT:{}", engine_socket()))
        .stdout(Stdio::null())
        .spawn()
        .expect("socat (scripts/setup.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let repo = Repo::hello();
    let [hello, _, _] = repo
        .reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"));
    let prov = repo.provenance(vec![subject("example.invalid/hello", &hello)], HELLO_SCRIPT);
    let (code, v, stderr) = Reprod::new()
        .with("DOCKER_HOST", &format!("tcp://127.0.0.1:{port}"))
        .rebuild(&prov);
    let _ = socat.kill();
    let _ = socat.wait();
    assert_eq!(code, 0, "{v:#}\n{stderr}");
    let forwarded = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        forwarded.matches("accepting connection").count() >= 1,
        "nothing went through DOCKER_HOST: {forwarded}"
    );

    // An endpoint this build cannot speak to is an error naming it, never a silent fallback.
    let (code, _, stderr) = Reprod::new()
        .with("DOCKER_HOST", "ssh://builder@127.0.0.1")
        .rebuild(&prov);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("ssh://builder@127.0.0.1")
            && stderr.contains("forward the remote engine's socket"),
        "{stderr}"
    );
}
