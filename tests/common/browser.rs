//! Browsers in a box: a command run in a network namespace of its own that has only loopback, where a
//! socat bridge (over a Unix socket) makes the daemon's port reachable at the same address. Whatever a page
//! makes the browser try, it can talk to nothing else.

use std::process::{Command, Output};
use std::time::Duration;

/// Runs the bash text `script` (its arguments `args`, as `"$@"`) in a namespace where only 127.0.0.1:`port`
/// answers, and it is the daemon.
pub fn with_only_the_daemon(port: u16, script: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("bridge.sock");
    let mut bridge = Command::new("socat")
        .arg(format!("UNIX-LISTEN:{},fork", sock.display()))
        .arg(format!("TCP:127.0.0.1:{port}"))
        .spawn()
        .expect("socat (scripts/setup.sh installs it)");
    for _ in 0..50 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let wrapped = format!(
        r#"set -e
ip link set lo up
socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:{sock} &
for i in $(seq 50); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done
export HOME={home}
{script}
kill %1"#,
        sock = sock.display(),
        home = dir.path().display(),
    );
    let out = Command::new("unshare")
        .args(["--net", "bash", "-c", &wrapped, "browser"])
        .args(args)
        .output()
        .unwrap();
    let _ = bridge.kill();
    let _ = bridge.wait();
    out
}
