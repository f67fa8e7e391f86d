//! `reprod serve` as the daemon tests run it: the real binary on a free loopback port, driven with curl.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

pub const TOKEN: &str = "test-submit-token";

pub struct Daemon {
    pub child: Child,
    /// Its data directory.
    pub data: std::path::PathBuf,
    pub url: String,
    pub lines: mpsc::Receiver<String>,
    /// What it said on stderr up to the `listening on` line.
    pub startup: Vec<String>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    pub fn start(data: &Path, extra: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(data, extra, |_| {})
    }

    /// [`Daemon::start`], with `customize` applied to the command before it is spawned.
    pub fn start_with(
        data: &Path,
        extra: &[(&str, &str)],
        customize: impl FnOnce(&mut Command),
    ) -> Daemon {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprod"));
        cmd.arg("serve")
            .env("REPROD_DATA_DIR", data)
            .env("REPROD_SOURCE_ALLOW_FILE", "true")
            .env("REPROD_IMAGES_FETCH_ORIGINALS", "false")
            .env("REPROD_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("REPROD_SERVER_SUBMIT_TOKENS", format!("[\"{TOKEN}\"]"))
            .env("REPROD_SERVER_ACCEPT_UNSIGNED", "true")
            .env("REPROD_SERVER_POLL_MS", "200")
            .env("REPROD_SERVER_WORKERS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        customize(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut d = Daemon {
            child,
            data: data.to_path_buf(),
            url: format!("http://127.0.0.1:{port}"),
            lines,
            startup: Vec::new(),
        };
        d.startup = d.lines_until("listening on", Duration::from_secs(60));
        d
    }

    /// Every line up to and including the first that contains `needle`.
    pub fn lines_until(&self, needle: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no {needle:?} from reprod serve within {timeout:?}; it said:\n{}",
            seen.join("\n")
        );
    }

    pub fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        self.lines_until(needle, timeout).pop().unwrap_or_default()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            &format!("{}{path}", self.url),
        ]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let tmp;
        if let Some(b) = body {
            tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), b).unwrap();
            cmd.args(["--data-binary", &format!("@{}", tmp.path().display())]);
            cmd.args(["-H", "Content-Type: application/json"]);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// GET `path` as text (a page, a feed): its status and body.
    pub fn text(&self, path: &str) -> (u16, String) {
        let o = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", &format!("{}{path}", self.url)])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn submit(&self, doc: &Value) -> (u16, Value) {
        self.request(
            "POST",
            "/v1/provenance",
            Some(TOKEN),
            Some(&serde_json::to_vec(doc).unwrap()),
        )
    }

    pub fn job(&self, id: &str) -> Value {
        self.request("GET", &format!("/v1/jobs/{id}"), None, None).1
    }

    pub fn wait_job(&self, id: &str, state: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let j = self.job(id);
            if j["state"] == state {
                return j;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never reached {state}: {j:#}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn signal(&mut self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "reprod serve did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    /// Kills it (if it still runs) and unmounts what a job it was running left under its data directory,
    /// so the test's temporary directory can go.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unmount_beneath(&self.data);
    }
}

/// Provenance for the hello example whose subjects are the real digests, made distinct by `tag` (a
/// comment in the script: a different recipe, so not deduplicated).
pub fn hello_doc(repo: &Repo, digests: &[String; 3], tag: &str, extra_script: &str) -> Value {
    let script = format!(
        "#!/bin/sh\nset -e\n{extra_script}cd $(workspaces.source.path)\n./build.sh\n# {tag}\n"
    );
    repo.provenance(
        vec![
            subject("example.invalid/hello", &digests[0]),
            subject("hello.txt", &digests[2]),
        ],
        &script,
    )
}

pub fn reference(repo: &Repo) -> [String; 3] {
    repo.reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"))
}

/// Pushes the reference build's `out/hello` layout to the local registry as `name:tag`.
pub fn push_hello(repo: &Repo, name: &str, tag: &str) {
    let layout = repo.reference_checkout().join("out/hello");
    sh(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}", layout.display()),
        &format!("docker://127.0.0.1:5000/{name}:{tag}"),
    ]));
}
