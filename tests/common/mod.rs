//! Shared fixtures for the integration tests: the real builder image in the local registry, real git
//! repositories, provenance documents, and the real `reprod` binary.
#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod registry;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{json, Value};

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn corpus(rel: &str) -> PathBuf {
    project_root().join("../shared/corpus/provenance").join(rel)
}

/// Runs a command and returns stdout, failing the test with stderr if it fails.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The busybox builder image, built from Debian's busybox-static and pushed to the local registry once per
/// test process; pinned by digest.
pub fn builder_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        sh(&mut Command::new(
            project_root().join("scripts/builder-image.sh"),
        ))
        .trim()
        .to_string()
    })
}

/// The Debian builder image (curl, ca-certificates, skopeo, wget), made from Debian packages by
/// scripts/debian-builder-image.sh and pushed to the local registry once; pinned by digest.
pub fn debian_builder_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        sh(&mut Command::new(
            project_root().join("scripts/debian-builder-image.sh"),
        ))
        .trim()
        .to_string()
    })
}

/// The Debian buildah image (buildah, vfs storage on /var/lib/containers), made by
/// `scripts/debian-builder-image.sh buildah` and pushed to the local registry once; pinned by digest.
pub fn debian_buildah_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        sh(Command::new(project_root().join("scripts/debian-builder-image.sh")).arg("buildah"))
            .trim()
            .to_string()
    })
}

/// The BuildKit builder image (Debian 13's dockerd with its BuildKit, `reprod-buildkitd` to start it), pinned
/// by digest in the local registry (scripts/debian-builder-image.sh buildkit).
pub fn debian_buildkit_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        sh(Command::new(project_root().join("scripts/debian-builder-image.sh")).arg("buildkit"))
            .trim()
            .to_string()
    })
}

/// `docker run --rm` with what the nested profile gives a step (a read-only root with its tmpfs mounts,
/// only the nested capabilities, `no-new-privileges`, reprod's seccomp profile, written to `seccomp`), for
/// builds run directly as an original build would be; the caller adds its own options, the image and the
/// command.
pub fn nested_docker_run(seccomp: &Path) -> Command {
    std::fs::write(seccomp, reprod_sandbox::NESTED_SECCOMP).unwrap();
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--read-only"]);
    for t in ["/tmp", "/var/tmp", "/run"] {
        cmd.args(["--tmpfs", &format!("{t}:rw,size=1g")]);
    }
    cmd.args([
        "--tmpfs",
        "/var/lib/containers:rw,exec,size=1g",
        "--cap-drop",
        "ALL",
    ]);
    for c in reprod_sandbox::StepProfile::Nested.capabilities() {
        cmd.args(["--cap-add", c]);
    }
    cmd.args([
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        &format!("seccomp={}", seccomp.display()),
    ]);
    cmd
}

/// Copies the image `from` to `to` (`docker://` references, plain HTTP or unverified TLS on both sides:
/// the test registries), digests kept.
pub fn copy_image(from: &str, to: &str) {
    let out = sh(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--preserve-digests",
        from,
        to,
    ]));
    assert!(out.trim().is_empty(), "{out}");
}

/// Whether the job's proxy recorded a 200 answer for `url` (a verdict's `network.exchanges`).
pub fn fetched_through_proxy(verdict: &Value, url: &str) -> bool {
    verdict["network"]["exchanges"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["url"] == url && e["status"] == 200)
}

/// Whether the first subject's explanation names a difference in the file `name` (a location ending in
/// ` name`).
pub fn explanation_names(verdict: &Value, name: &str) -> bool {
    verdict["subjects"][0]["explanation"]["first_differences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| {
            d["location"]
                .as_str()
                .is_some_and(|l| l.ends_with(&format!(" {name}")))
        })
}

/// promtool, which scripts/setup.sh extracts into its state directory.
pub fn promtool() -> PathBuf {
    let state = std::env::var("REPROD_STATE_DIR").unwrap_or_else(|_| "/var/lib/reprod-dev".into());
    PathBuf::from(state).join("bin/promtool")
}

/// Runs `f` and says on stderr how long it took (`[wall] what: N.NN s`): the scenario tests' wall times,
/// a rebuild beside the same build run directly (read with `--nocapture`; never asserted).
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = f();
    eprintln!("[wall] {what}: {:.2} s", started.elapsed().as_secs_f64());
    out
}

/// The Python that scripts/setup.sh filled with securesystemslib and in-toto-attestation.
pub fn python() -> String {
    std::env::var("REPROD_PYTHON").unwrap_or_else(|_| "/var/lib/reprod-dev/pyenv/bin/python".into())
}

/// Runs tests/support/validate_statement.py (the in-toto-attestation package's schemas and the
/// specifications' rules) on signed envelopes; panics with its report unless every one is valid.
pub fn assert_valid_statements(envelopes: &[&Path]) {
    let o = Command::new(python())
        .arg(project_root().join("tests/support/validate_statement.py"))
        .args(envelopes)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh installs it)", python()));
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "in-toto-attestation: {report}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        report.matches("valid\t").count(),
        envelopes.len(),
        "{report}"
    );
}

/// The statement inside a DSSE envelope's bytes.
pub fn envelope_statement(envelope: &[u8]) -> Value {
    use base64::Engine;
    let envelope: Value = serde_json::from_slice(envelope).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// A DSSE envelope over `statement`, signed with `key` (ECDSA P-256, SHA-256).
pub fn sign_envelope(
    statement: &Value,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> Vec<u8> {
    use base64::Engine;
    let payload = serde_json::to_vec(statement).unwrap();
    let pae = reprod::trust::dsse::pae("application/vnd.in-toto+json", &payload);
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key).unwrap();
    let sig = signer.sign_oneshot_to_vec(&pae).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::to_vec(&json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": b64.encode(payload),
        "signatures": [{"keyid": "", "sig": b64.encode(sig)}],
    }))
    .unwrap()
}

/// A P-256 key to sign attestations with, and its public key written where the daemon's `[trust]` reads it.
pub fn builder_key(
    data: &Path,
) -> (
    openssl::pkey::PKey<openssl::pkey::Private>,
    std::path::PathBuf,
) {
    use openssl::ec::{EcGroup, EcKey};
    let key = openssl::pkey::PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let pem = data.join("builder.pub.pem");
    std::fs::write(&pem, key.public_key_to_pem().unwrap()).unwrap();
    (key, pem)
}

/// A git repository (bare, reached through `file://`) holding the example project plus extra files.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub commit: String,
}

impl Repo {
    /// The `examples/hello` project, committed with a fixed author and date.
    pub fn hello() -> Repo {
        Repo::hello_with(|_| {})
    }

    /// The `examples/hello` project plus whatever `extra` writes into the work tree before the commit.
    pub fn hello_with(extra: impl FnOnce(&Path)) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        for f in ["build.sh", "hello.txt", "README.md"] {
            std::fs::copy(project_root().join("examples/hello").join(f), src.join(f)).unwrap();
        }
        extra(&src);
        let git = |args: &[&str], cwd: &Path| {
            sh(Command::new("git")
                .args(args)
                .current_dir(cwd)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_AUTHOR_DATE", "2000-01-01T00:00:00Z")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_DATE", "2000-01-01T00:00:00Z"))
        };
        git(&["init", "-q", "-b", "main"], &src);
        git(&["add", "-A"], &src);
        git(&["commit", "-q", "-m", "hello"], &src);
        let bare = dir.path().join("hello.git");
        git(
            &[
                "clone",
                "-q",
                "--bare",
                src.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
            dir.path(),
        );
        let commit = git(&["rev-parse", "main"], &bare).trim().to_string();
        Repo {
            url: format!("file://{}", bare.display()),
            commit,
            dir,
        }
    }

    /// Tekton Chains provenance for one script step of this repository in the builder image.
    pub fn provenance(&self, subjects: Vec<Value>, script: &str) -> Value {
        chains_provenance(subjects, script, builder_image(), &self.url, &self.commit)
    }

    /// Where [`Repo::reference_build`] checks out and builds.
    pub fn reference_checkout(&self) -> PathBuf {
        self.dir.path().join("reference")
    }

    /// Runs `script` once with plain `docker run` on a checkout (the "original build"), and returns the
    /// digests of `out/hello`, `out/hello-debug` and `out/hello.txt` as skopeo and sha256sum see them.
    pub fn reference_build(&self, script: &str) -> [String; 3] {
        let checkout = self.reference_checkout();
        let _ = std::fs::remove_dir_all(&checkout);
        sh(Command::new("git").args(["clone", "-q", &self.url, checkout.to_str().unwrap()]));
        sh(Command::new("git")
            .args(["checkout", "-q", &self.commit])
            .current_dir(&checkout));
        let scripts = self.dir.path().join("scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        std::fs::write(scripts.join("run"), script).unwrap();
        sh(Command::new("docker").args([
            "run",
            "--rm",
            // The reference build writes into a host checkout owned by root: not in a remapped namespace.
            "--userns=host",
            "--network",
            "none",
            "-v",
            &format!("{}:/workspace/source", checkout.display()),
            "-v",
            &format!("{}:/tekton/scripts:ro", scripts.display()),
            builder_image(),
            "/bin/sh",
            "/tekton/scripts/run",
        ]));
        let skopeo = |dir: &str| {
            sh(Command::new("skopeo").args([
                "inspect",
                "--format",
                "{{.Digest}}",
                &format!("oci:{}", checkout.join("out").join(dir).display()),
            ]))
            .trim()
            .to_string()
        };
        let file = sh(Command::new("sha256sum").arg(checkout.join("out/hello.txt")));
        [
            skopeo("hello"),
            skopeo("hello-debug"),
            format!("sha256:{}", file.split_whitespace().next().unwrap()),
        ]
    }
}

/// The holder of each job's network namespace: the busybox builder image, sleeping.
pub fn network_holder_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "REPROD_SANDBOX_NETWORK_HOLDER_IMAGE",
            builder_image().to_string(),
        ),
        (
            "REPROD_SANDBOX_NETWORK_HOLDER_COMMAND",
            r#"["sleep", "2147483647"]"#.to_string(),
        ),
    ]
}

/// A well-formed sha256 digest that no build produces: `sha256:` and 64 copies of `c`.
pub fn unbuilt_digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

pub fn subject(name: &str, digest: &str) -> Value {
    json!({"name": name, "digest": {"sha256": digest.trim_start_matches("sha256:")}})
}

/// Tekton Chains provenance (the distroless seed's format) with one script step.
pub fn chains_provenance(
    subjects: Vec<Value>,
    script: &str,
    image: &str,
    repo_url: &str,
    commit: &str,
) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://tekton.dev/chains/provenance",
        "subject": subjects,
        "predicate": {
            "invocation": {"parameters": [], "recipe_uri": "task://test", "builder.id": "test"},
            "recipe": {"steps": [{
                "entryPoint": script,
                "arguments": null,
                "environment": {"container": "build", "image": image},
                "annotations": null
            }]},
            "materials": [{"uri": repo_url, "digest": {"revision": commit}}]
        }
    })
}

/// A hello build that writes random bytes into its output: a rebuild never gives the same image.
pub const NOISY_SCRIPT: &str = "#!/bin/sh\nset -e\ncd /workspace/source\n./build.sh \"built with $(head -c 8 /dev/urandom | od -An -tx1)\"\n";

/// The standard build script of the hello example.
pub const HELLO_SCRIPT: &str = "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n./build.sh\n";

/// A scratch data directory plus environment for running the real binary.
pub struct Reprod {
    pub data: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Drop for Reprod {
    /// A job directory kept with `--keep-workspace` is a mounted filesystem: unmount what is left under this
    /// data directory before the temporary directory is removed.
    fn drop(&mut self) {
        unmount_beneath(self.data.path());
    }
}

/// Unmounts every mount point beneath `dir` (job directories kept, or left by a killed process).
pub fn unmount_beneath(dir: &Path) {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return;
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in info.lines().filter_map(|l| l.split(' ').nth(4)) {
        if Path::new(point).starts_with(&dir) {
            let _ = Command::new("umount").arg("-l").arg(point).status();
        }
    }
}

impl Default for Reprod {
    fn default() -> Self {
        Self::new()
    }
}

impl Reprod {
    pub fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let env = vec![
            ("REPROD_DATA_DIR".into(), data.path().display().to_string()),
            ("REPROD_SOURCE_ALLOW_FILE".into(), "true".into()),
            // Test subjects are named after hosts that do not exist; only the explanation test, whose
            // originals are in the local registry, turns fetching on.
            ("REPROD_IMAGES_FETCH_ORIGINALS".into(), "false".into()),
            // The test registry speaks plain HTTP on the loopback: said, never inferred from its name.
            (
                "REPROD_IMAGES_INSECURE".into(),
                "[\"127.0.0.1:5000\"]".into(),
            ),
            ("RUST_BACKTRACE".into(), "0".into()),
        ];
        Reprod { data, env }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprod"));
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("running reprod")
    }

    /// A scratch reprod whose job networks are held by the busybox builder image, sleeping (the default
    /// holder, `/pause`, is not in the local registry).
    pub fn with_network_holder() -> Self {
        network_holder_env()
            .into_iter()
            .fold(Reprod::new(), |r, (k, v)| r.with(k, &v))
    }

    /// Writes the provenance and runs `reprod rebuild --json`; returns (exit code, verdict JSON, stderr).
    pub fn rebuild(&self, provenance: &Value) -> (i32, Value, String) {
        self.rebuild_with(provenance, &[])
    }

    /// Like [`Reprod::rebuild`], with extra `rebuild` flags.
    pub fn rebuild_with(&self, provenance: &Value, flags: &[&str]) -> (i32, Value, String) {
        let path = self.data.path().join("provenance.json");
        std::fs::write(&path, serde_json::to_vec_pretty(provenance).unwrap()).unwrap();
        self.rebuild_file_with(&path, flags)
    }

    pub fn rebuild_file(&self, path: &Path) -> (i32, Value, String) {
        self.rebuild_file_with(path, &[])
    }

    pub fn rebuild_file_with(&self, path: &Path, flags: &[&str]) -> (i32, Value, String) {
        let mut args = vec!["rebuild", "--json"];
        args.extend_from_slice(flags);
        args.push(path.to_str().unwrap());
        let out = self.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "reprod panicked: {stderr}");
        let verdict = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), verdict, stderr)
    }
}

/// Containers carrying reprod's label whose owning reprod process has exited: what a run left behind.
/// (Containers of reprod processes still running belong to concurrent tests.)
pub fn orphan_containers() -> Vec<String> {
    reprod_containers()
        .into_iter()
        .filter(|(_, pid)| *pid == 0 || !Path::new(&format!("/proc/{pid}")).exists())
        .map(|(line, _)| line)
        .collect()
}

/// Every container carrying reprod's label, as (`<id> <owner label>`, owner pid or 0).
fn reprod_containers() -> Vec<(String, u32)> {
    let out = sh(Command::new("docker").args([
        "ps",
        "-a",
        "--filter",
        "label=dev.reprod.managed=true",
        "--format",
        "{{.ID}} {{.Label \"dev.reprod.owner\"}}",
    ]));
    out.lines()
        .map(|line| {
            let owner = line.split_whitespace().nth(1).unwrap_or("");
            let pid = owner
                .split(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            (line.to_string(), pid)
        })
        .collect()
}

/// The step report of the verdict's last step.
pub fn last_step(verdict: &Value) -> &Value {
    verdict["steps"]
        .as_array()
        .and_then(|s| s.last())
        .expect("a step report")
}

/// Containers of reprod's owned by any of these processes (live or dead): what a test's own daemons and
/// workers left, unaffected by other tests running beside it.
pub fn containers_of(pids: &[u32]) -> Vec<String> {
    reprod_containers()
        .into_iter()
        .filter(|(_, pid)| pids.contains(pid))
        .map(|(line, _)| line)
        .collect()
}

/// Waits until the reprod process `pid` runs a step container, and returns the container's id.
pub fn wait_for_step_container(pid: u32) -> String {
    let owner = format!("{pid}:");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let listed = sh(Command::new("docker").args([
            "ps",
            "--filter",
            "label=dev.reprod.managed=true",
            "--format",
            "{{.ID}} {{.Label \"dev.reprod.owner\"}}",
        ]));
        if let Some(id) = listed
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|o| o.starts_with(&owner))
            })
            .and_then(|l| l.split_whitespace().next())
        {
            return id.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the step container never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Starts `reprod rebuild --json` on `provenance` in the background.
pub fn spawn_rebuild(r: &Reprod, provenance: &Value) -> std::process::Child {
    spawn_rebuild_with(r, provenance, &[])
}

/// [`spawn_rebuild`] with more flags (`--vary`, …).
pub fn spawn_rebuild_with(r: &Reprod, provenance: &Value, flags: &[&str]) -> std::process::Child {
    let path = r.data.path().join("p.json");
    std::fs::write(&path, serde_json::to_vec(provenance).unwrap()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprod"));
    cmd.args(["rebuild", "--json"])
        .args(flags)
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in &r.env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}
