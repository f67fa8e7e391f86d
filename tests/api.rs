//! Signed verdicts and the read side, end to end: the real daemon rebuilds a reproducible and a really
//! nondeterministic build; `reprod status`, `reprod verify`, securesystemslib, the Prometheus parser,
//! the OpenAPI document and headless Chromium then check what it publishes.

mod common;

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;
use serde_json::Value;

fn reprod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reprod"))
        .args(args)
        .env_remove("REPROD_SERVER")
        .env_remove("REPROD_TOKEN")
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts the exit code and a line of stdout, showing both streams when either is wrong.
fn expect_output(o: &Output, exit: i32, needle: &str) {
    let shown = format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr));
    assert_eq!(code(o), exit, "{shown}");
    assert!(stdout(o).contains(needle), "{needle:?} not in: {shown}");
}

/// GET with curl: (status, headers lower-cased, body bytes).
fn fetch(url: &str, headers: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-D", h.to_str().unwrap(), "-o", b.to_str().unwrap()]);
    cmd.args(["-w", "%{http_code}", url]);
    for header in headers {
        cmd.args(["-H", header]);
    }
    let out = cmd.output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (
        status,
        std::fs::read_to_string(&h)
            .unwrap_or_default()
            .to_lowercase(),
        std::fs::read(&b).unwrap_or_default(),
    )
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

/// The test daemon's operator token.
const ADMIN_TOKEN: &str = "admin-token-of-the-api-test";

/// What Prometheus 2.x sends: OpenMetrics first.
const PROMETHEUS_ACCEPT: &str = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn metrics(d: &Daemon) -> Value {
    let (status, headers, body) = fetch(&format!("{}/metrics", d.url), &[PROMETHEUS_ACCEPT]);
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{headers}"
    );
    let out = piped(
        Command::new(python()).arg(project_root().join("tests/support/parse_metrics.py")),
        &body,
        "scripts/setup.sh installs prometheus_client",
    );
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `cmd` with `input` on its standard input; its output. `hint` says where the program comes from.
fn piped(cmd: &mut Command, input: &[u8], hint: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{:?}: {e} ({hint})", cmd.get_program()));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn sample(m: &Value, key: &str) -> f64 {
    m[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no sample {key} in {m:#}"))
}

/// Loads `url` in headless Chromium (with only the daemon to talk to) and returns the DOM as rendered.
fn render(url: &str, port: u16) -> String {
    let profile = tempfile::tempdir().unwrap();
    let script = format!(
        r#"timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir={} \
  --virtual-time-budget=2000 --dump-dom "$1""#,
        profile.path().display()
    );
    let out = common::browser::with_only_the_daemon(port, &script, &[url]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("</html>"),
        "chromium rendered nothing for {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The text of an element with this id, from a DOM dump (the first `>` after the id to the next `<`).
fn text_after(dom: &str, marker: &str) -> String {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in\n{dom}"));
    dom[at..]
        .split('>')
        .nth(1)
        .unwrap_or("")
        .split('<')
        .next()
        .unwrap_or("")
        .to_string()
}

/// Rebuilds a reproducible and a nondeterministic build once, then checks everything the daemon publishes
/// about them, section by section: a section that fails is reported, and the sections after it still run.
/// The order is the original one and matters: `submit_reuses_the_rebuild` adds a job, and the sections
/// before it count two.
#[test]
fn verdicts_are_signed_queryable_and_shown_in_a_browser() {
    let ctx = setup();
    let mut s = Sections::default();
    s.run("status", || status(&ctx));
    // Everything that reads an envelope or needs the rebuilder's key depends on this section.
    let signed = s.run("signed_attestations", || signed_attestations(&ctx));
    let signed = signed.as_ref();
    s.after("verify", signed, &["signed_attestations"], |a| {
        verify(&ctx, a)
    });
    s.after("securesystemslib", signed, &["signed_attestations"], |a| {
        securesystemslib(&ctx, a)
    });
    s.after("verify_gate", signed, &["signed_attestations"], |a| {
        verify_gate(&ctx, a)
    });
    s.after("sigstore_bundles", signed, &["signed_attestations"], |a| {
        sigstore_bundles(&ctx, a)
    });
    // `status --key` checks that another key's word is not taken: it needs the key `another_key` made.
    let other_pub = s.after("another_key", signed, &["signed_attestations"], |a| {
        another_key(&ctx, a)
    });
    s.after(
        "status_with_key",
        signed.zip(other_pub.as_deref()),
        &["signed_attestations", "another_key"],
        |(a, other_pub)| status_with_key(&ctx, a, other_pub),
    );
    s.run("metrics_moved", || metrics_moved(&ctx));
    s.run("verdict_lists", || verdict_lists(&ctx));
    s.run("conditional_requests", || conditional_requests(&ctx));
    s.run("bad_input", || bad_input(&ctx));
    s.run("provenance_document", || provenance_document(&ctx));
    s.run("openapi", || openapi(&ctx));
    s.run("feeds", || feeds(&ctx));
    // The dashboard's DOM is checked, and it gives the link to the image page.
    let dashboard = s.run("render_dashboard", || render_dashboard(&ctx));
    let dashboard = dashboard.as_deref();
    s.after("dashboard_page", dashboard, &["render_dashboard"], |dom| {
        dashboard_page(dom)
    });
    s.run("job_pages", || job_pages(&ctx));
    s.after("image_page", dashboard, &["render_dashboard"], |dom| {
        image_page(&ctx, dom)
    });
    s.run("submit_token", || submit_token(&ctx));
    // The second document's job: its attestations are checked, and then validated with the others.
    let mixed_job = s.run("submit_reuses_the_rebuild", || {
        submit_reuses_the_rebuild(&ctx)
    });
    let mixed = s.after(
        "reused_rebuild_attestations",
        signed.zip(mixed_job.as_deref()),
        &["signed_attestations", "submit_reuses_the_rebuild"],
        |(a, job)| reused_rebuild_attestations(&ctx, a, job),
    );
    s.after(
        "statements_are_valid",
        signed.zip(mixed.as_ref()),
        &["signed_attestations", "reused_rebuild_attestations"],
        |(a, mixed)| statements_are_valid(&ctx, a, mixed),
    );
    s.finish();
}

/// The sections of one test: each runs to its end or to its panic, which is caught and noted, and
/// [`Sections::finish`] then fails the test naming each section that failed or was skipped.
#[derive(Default)]
struct Sections {
    passed: usize,
    /// Name and first line of the panic message, in the order they ran.
    failed: Vec<(String, String)>,
    /// Name and what it needed.
    skipped: Vec<(String, String)>,
}

impl Sections {
    /// Runs one section: what it returns, or `None` when it panicked (the panic hook has printed the
    /// message and where; this adds the section's name).
    fn run<T>(&mut self, name: &str, section: impl FnOnce() -> T) -> Option<T> {
        match panic::catch_unwind(AssertUnwindSafe(section)) {
            Ok(out) => {
                println!("section {name} ... ok");
                self.passed += 1;
                Some(out)
            }
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(a panic without a message)");
                let first: String = message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect();
                println!("section {name} ... FAILED: {first}");
                self.failed.push((name.to_string(), first));
                None
            }
        }
    }

    /// Runs a section that needs what the sections named in `needs` returned (`input` is `None` when one
    /// of them did not pass), or skips it with a note naming those that did not.
    fn after<D, T>(
        &mut self,
        name: &str,
        input: Option<D>,
        needs: &[&str],
        section: impl FnOnce(D) -> T,
    ) -> Option<T> {
        let Some(input) = input else {
            let did_not_pass = self.failed.iter().chain(&self.skipped).map(|(n, _)| n);
            let missing: Vec<&str> = needs
                .iter()
                .copied()
                .filter(|need| did_not_pass.clone().any(|n| n == need))
                .collect();
            let missing = if missing.is_empty() { needs } else { &missing }.join(", ");
            println!("section {name} ... skipped: it needs {missing}, which did not pass");
            self.skipped.push((name.to_string(), missing));
            return None;
        };
        self.run(name, || section(input))
    }

    /// Fails the test if any section failed or was skipped, naming them all.
    fn finish(self) {
        let total = self.passed + self.failed.len() + self.skipped.len();
        println!(
            "sections: {} passed, {} failed, {} skipped, of {total}",
            self.passed,
            self.failed.len(),
            self.skipped.len()
        );
        if self.failed.is_empty() && self.skipped.is_empty() {
            return;
        }
        let mut report = String::new();
        for (name, message) in &self.failed {
            report.push_str(&format!("\n  failed:  {name}: {message}"));
        }
        for (name, needs) in &self.skipped {
            report.push_str(&format!("\n  skipped: {name} (needs {needs})"));
        }
        panic!(
            "{} of {total} sections did not pass (each failure's full message and place are above):{report}",
            self.failed.len() + self.skipped.len()
        );
    }
}

/// What every section reads: the daemon, the two rebuilds it did and their verdicts, set up once.
struct Ctx {
    /// Where sections write what they fetch or make (dropped first, as a local declared last was).
    work: tempfile::TempDir,
    d: Daemon,
    data: tempfile::TempDir,
    repo: Repo,
    digests: [String; 3],
    port: u16,
    /// `/metrics` before the two submissions.
    before: Value,
    /// The reproducible build's document.
    good: Value,
    /// A subject of `good` with only a sha512 digest.
    sha512_only: String,
    /// The image name only the nondeterministic build used.
    evil_name: &'static str,
    good_job: String,
    bad_job: String,
    good_view: Value,
    bad_view: Value,
    /// The image under its name and the reproducible build's digest.
    image_ref: String,
    /// The same digest under `evil_name`.
    evil_ref: String,
    /// A digest no build made.
    unknown: String,
    /// When both verdicts were in (nothing is recorded after it before the submit sections).
    verdicts_in: Instant,
}

/// Starts the daemon, submits the two builds and waits for both verdicts.
fn setup() -> Ctx {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        data.path(),
        &[("REPROD_SERVER_ADMIN_TOKENS", &format!("[{ADMIN_TOKEN:?}]"))],
    );
    let port: u16 = d.url.rsplit(':').next().unwrap().parse().unwrap();
    let before = metrics(&d);

    // A reproducible build, and a build that writes a random line into its output.
    let mut good = hello_doc(&repo, &digests, "good", "");
    // A subject with only a sha512 digest is never compared: nothing may be said about it.
    let sha512_only = format!("sha512:{}", "ab".repeat(64));
    good["subject"].as_array_mut().unwrap().push(
        serde_json::json!({"name": "evil.example/other", "digest": {"sha512": "ab".repeat(64)}}),
    );
    let evil_name =
        "example.invalid/<script>document.body.setAttribute('data-pwned','yes')</script>";
    let bad = repo.provenance(
        vec![
            subject(evil_name, &digests[0]),
            subject("hello.txt", &digests[2]),
        ],
        "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n./build.sh \"$(cat /proc/sys/kernel/random/uuid)\"\n",
    );
    let (c1, j1) = d.submit(&good);
    let (c2, j2) = d.submit(&bad);
    assert_eq!((c1, c2), (202, 202), "{j1} {j2}");
    let good_job = j1["jobs"][0]["id"].as_str().unwrap().to_string();
    let bad_job = j2["jobs"][0]["id"].as_str().unwrap().to_string();
    let good_view = d.wait_job(&good_job, "done", Duration::from_secs(300));
    let bad_view = d.wait_job(&bad_job, "done", Duration::from_secs(300));
    assert_eq!(
        good_view["verdict"]["status"], "reproducible",
        "{good_view:#}"
    );
    assert_eq!(
        bad_view["verdict"]["status"], "unreproducible",
        "{bad_view:#}"
    );
    Ctx {
        verdicts_in: Instant::now(),
        image_ref: format!("example.invalid/hello@{}", digests[0]),
        evil_ref: format!("{evil_name}@{}", digests[0]),
        unknown: unbuilt_digest('7'),
        work: tempfile::tempdir().unwrap(),
        d,
        data,
        repo,
        digests,
        port,
        before,
        good,
        sha512_only,
        evil_name,
        good_job,
        bad_job,
        good_view,
        bad_view,
    }
}

impl Ctx {
    /// GET /v1/jobs/{job}/attestations/{kind}, twice, saved under `work`: the path of the saved envelope.
    fn save(&self, job: &str, kind: &str) -> PathBuf {
        let Ctx { d, work, .. } = self;
        let (status, headers, body) =
            fetch(&format!("{}/v1/jobs/{job}/attestations/{kind}", d.url), &[]);
        assert_eq!(status, 200, "{job} {kind}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/vnd.dsse.envelope.v1+json")
        );
        let again = fetch(&format!("{}/v1/jobs/{job}/attestations/{kind}", d.url), &[]).2;
        assert_eq!(
            body, again,
            "the signed bytes are served as stored, every time"
        );
        let path = work.path().join(format!("{}-{kind}.json", &job[7..19]));
        std::fs::write(&path, &body).unwrap();
        path
    }
}

/// What `signed_attestations` fetched: the rebuilder's public key and three of its envelopes.
struct Signed {
    pem: PathBuf,
    keyid: String,
    good_vsa: PathBuf,
    bad_vsa: PathBuf,
    good_prov: PathBuf,
}

impl Signed {
    /// `reprod verify --json`: exit 0 and what the envelope vouches for.
    fn verified(&self, envelope: &Path, extra: &[&str]) -> Value {
        let pem = &self.pem;
        let mut args = vec![
            "verify",
            envelope.to_str().unwrap(),
            "--key",
            pem.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = reprod(&args);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

/// `reprod status` against the server: 0 reproducible, 1 not, 2 unknown.
fn status(ctx: &Ctx) {
    let Ctx {
        d,
        digests,
        good_job,
        bad_view,
        image_ref,
        evil_ref,
        unknown,
        ..
    } = ctx;
    let o = reprod(&["status", image_ref, "--server", &d.url]);
    assert_eq!(
        code(&o),
        0,
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).starts_with("reproducible: "), "{}", stdout(&o));
    // The file subject of the nondeterministic build differs; its digest is named by that verdict only.
    let bad_file = bad_view["verdict"]["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "hello.txt")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(bad_file, digests[2]);
    let o = reprod(&["status", unknown, "--server", &d.url]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(stdout(&o).starts_with("unknown: "), "{}", stdout(&o));
    // Not a reference at all (a tag would be resolved through its registry: tests/daemon.rs does that
    // against the local one only).
    let o = reprod(&["status", "Example/Hello World", "--server", &d.url]);
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("IMAGE@sha256:<hex>"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = reprod(&["status", unknown, "--server", "http://127.0.0.1:1"]);
    assert_eq!(
        code(&o),
        2,
        "an unreachable server is an error, not a verdict"
    );

    // Both builds name the same digests. A reproducible verdict decides (a bit-for-bit rebuild is proof),
    // whichever finished last; the history holds both, newest first.
    let o = reprod(&["status", &digests[2], "--server", &d.url, "--json"]);
    let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(code(&o), 0, "{answer:#}");
    assert_eq!(answer["status"], "reproducible");
    assert_eq!(answer["decided_by"]["job"], good_job.as_str());
    assert_eq!(answer["history"].as_array().unwrap().len(), 2, "{answer:#}");
    assert!(
        answer["history"][0]["seq"].as_u64() > answer["history"][1]["seq"].as_u64(),
        "history is newest first"
    );
    // Under the name only the nondeterministic build used, its verdict decides: exit 1.
    let o = reprod(&["status", evil_ref, "--server", &d.url]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).starts_with("unreproducible: "), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("reason:   digest-mismatch"),
        "{}",
        stdout(&o)
    );
}

/// GET /v1/keys and GET /v1/jobs/{id}/attestations/{kind}: the served key and the signed attestations.
fn signed_attestations(ctx: &Ctx) -> Signed {
    let Ctx {
        d,
        data,
        work,
        good_job,
        bad_job,
        ..
    } = ctx;
    let (status, _, keys) = fetch(&format!("{}/v1/keys", d.url), &[]);
    assert_eq!(status, 200);
    let keys: Value = serde_json::from_slice(&keys).unwrap();
    let pem = work.path().join("rebuilder.pub");
    std::fs::write(&pem, keys["keys"][0]["pem"].as_str().unwrap()).unwrap();
    let keyid = keys["keys"][0]["keyid"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read(data.path().join("signing.pub")).unwrap(),
        std::fs::read(&pem).unwrap(),
        "the served key is the one made at first start"
    );
    let good_vsa = ctx.save(good_job, "vsa");
    let bad_vsa = ctx.save(bad_job, "vsa-failed");
    let good_prov = ctx.save(good_job, "provenance");
    Signed {
        pem,
        keyid,
        good_vsa,
        bad_vsa,
        good_prov,
    }
}

/// `GET /v1/jobs/{id}/bundles/{kind}`: each signed verdict as a Sigstore bundle v0.3, which sigstore-js
/// (`@sigstore/verify`, an independent implementation) verifies with the key `GET /v1/keys` serves, by
/// the bundle's key hint; the envelope inside is the one signed, byte for byte in its fields; a bundle
/// whose payload was changed, or checked with another key, does not verify.
fn sigstore_bundles(ctx: &Ctx, signed: &Signed) {
    let Ctx {
        d,
        work,
        good_job,
        bad_job,
        ..
    } = ctx;
    let state = std::env::var("REPROD_STATE_DIR").unwrap_or_else(|_| "/var/lib/reprod-dev".into());
    let sigstore_js = |bundle: &Path, pem: &Path| {
        Command::new("node")
            .arg(project_root().join("tests/support/verify_bundle.js"))
            .args([
                bundle.to_str().unwrap(),
                pem.to_str().unwrap(),
                &signed.keyid,
            ])
            .env("NODE_PATH", format!("{state}/sigstore-js/node_modules"))
            .output()
            .unwrap()
    };
    for (job, kind, envelope) in [
        (good_job, "vsa", &signed.good_vsa),
        (bad_job, "vsa-failed", &signed.bad_vsa),
        (good_job, "provenance", &signed.good_prov),
    ] {
        let (status, headers, body) =
            fetch(&format!("{}/v1/jobs/{job}/bundles/{kind}", d.url), &[]);
        assert_eq!(status, 200, "{kind}");
        assert!(
            header(&headers, "content-type")
                == Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
            "{headers}"
        );
        let bundle: Value = serde_json::from_slice(&body).unwrap();
        let signed_envelope: Value =
            serde_json::from_slice(&std::fs::read(envelope).unwrap()).unwrap();
        for field in ["payload", "payloadType", "signatures"] {
            assert_eq!(
                bundle["dsseEnvelope"][field], signed_envelope[field],
                "{kind} {field}"
            );
        }
        assert_eq!(
            bundle["verificationMaterial"]["publicKey"]["hint"],
            signed.keyid.as_str()
        );
        let path = work.path().join(format!("{kind}.sigstore.json"));
        std::fs::write(&path, &body).unwrap();
        let o = sigstore_js(&path, &signed.pem);
        assert!(
            o.status.success(),
            "sigstore-js refused the {kind} bundle: {}{} (scripts/setup.sh installs sigstore-js)",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("\"verified\":true"));
    }
    // Changed after signing: refused.
    let mut bundle: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("vsa.sigstore.json")).unwrap())
            .unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut payload = b64
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let at = payload.windows(6).position(|w| w == b"PASSED").unwrap();
    payload[at] = b'F';
    bundle["dsseEnvelope"]["payload"] = b64.encode(&payload).into();
    let tampered = work.path().join("tampered.sigstore.json");
    std::fs::write(&tampered, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let o = sigstore_js(&tampered, &signed.pem);
    assert!(!o.status.success(), "a changed payload verified");
    // Another key under the same hint: refused.
    let other = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let other_pem = work.path().join("other-bundle-key.pub");
    std::fs::write(&other_pem, other.public_key_to_pem().unwrap()).unwrap();
    let o = sigstore_js(&work.path().join("vsa.sigstore.json"), &other_pem);
    assert!(!o.status.success(), "verified with another key");
}

/// `reprod verify`, as text and as `--json`, on the two summaries and the provenance.
fn verify(ctx: &Ctx, signed: &Signed) {
    let Ctx {
        repo,
        digests,
        bad_job,
        ..
    } = ctx;
    let o = reprod(&[
        "verify",
        signed.good_vsa.to_str().unwrap(),
        "--key",
        signed.pem.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("result:   PASSED"), "{}", stdout(&o));
    assert!(stdout(&o).contains(&digests[0]), "{}", stdout(&o));
    let v = signed.verified(&signed.bad_vsa, &["--any-result"]);
    assert_eq!(v["result"], "FAILED", "{v:#}");
    assert_eq!(
        v["statement"]["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
    assert_eq!(
        v["input_provenance"]
            .as_str()
            .map(|s| format!("sha256:{s}")),
        Some(bad_job.clone())
    );
    let v = signed.verified(&signed.good_prov, &[]);
    assert_eq!(v["result"], "reproducible");
    assert_eq!(
        v["statement"]["predicate"]["buildDefinition"]["buildType"],
        "https://reprod.dev/rebuild/v1"
    );
    let deps = v["statement"]["predicate"]["buildDefinition"]["resolvedDependencies"].to_string();
    assert!(deps.contains(&repo.commit), "{deps}");
}

/// securesystemslib and `reprod verify` on each envelope, and on one with a changed payload byte.
fn securesystemslib(ctx: &Ctx, signed: &Signed) {
    let Signed { pem, keyid, .. } = signed;
    let tampered = ctx.work.path().join("tampered.json");
    let mut envelope: Value =
        serde_json::from_slice(&std::fs::read(&signed.good_vsa).unwrap()).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut payload = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let at = payload.windows(6).position(|w| w == b"PASSED").unwrap();
    payload[at] = b'F';
    envelope["payload"] = b64.encode(&payload).into();
    std::fs::write(&tampered, serde_json::to_vec(&envelope).unwrap()).unwrap();
    let sslib = |envelope: &Path| {
        Command::new(python())
            .arg(project_root().join("tests/support/verify_envelope.py"))
            .args([envelope.to_str().unwrap(), pem.to_str().unwrap(), keyid])
            .output()
            .unwrap()
    };
    // reprod verify accepts a summary only when it says PASSED (a FAILED one verifies, but is refused).
    for (file, ok, accepted) in [
        (&signed.good_vsa, true, true),
        (&signed.bad_vsa, true, false),
        (&signed.good_prov, true, true),
        (&tampered, false, false),
    ] {
        let o = sslib(file);
        assert_eq!(
            o.status.success(),
            ok,
            "securesystemslib on {}: {}",
            file.display(),
            stdout(&o)
        );
        let o = reprod(&[
            "verify",
            file.to_str().unwrap(),
            "--key",
            pem.to_str().unwrap(),
        ]);
        assert_eq!(
            code(&o),
            if accepted { 0 } else { 1 },
            "reprod verify on {}: {}",
            file.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// `reprod verify` as a deploy gate: `--digest`, `--require-passed`, `--any-result`, `--verifier-id`.
fn verify_gate(ctx: &Ctx, signed: &Signed) {
    let Ctx {
        digests,
        bad_view,
        sha512_only,
        unknown,
        ..
    } = ctx;
    let Signed {
        pem,
        good_vsa,
        bad_vsa,
        good_prov,
        ..
    } = signed;
    let gate = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "verify",
            file.to_str().unwrap(),
            "--key",
            pem.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        reprod(&args)
    };
    let bad_image = bad_view["verdict"]["subjects"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    for (file, extra, want, needle) in [
        (
            &good_vsa,
            vec!["--digest", digests[0].as_str()],
            0,
            "accepted: PASSED",
        ),
        (
            &good_vsa,
            vec!["--digest", digests[0].as_str(), "--require-passed"],
            0,
            "PASSED",
        ),
        (
            &bad_vsa,
            vec!["--digest", bad_image.as_str()],
            1,
            "it says FAILED for",
        ),
        (
            &bad_vsa,
            vec!["--digest", bad_image.as_str(), "--require-passed"],
            1,
            "it says FAILED for",
        ),
        (&bad_vsa, vec!["--require-passed"], 1, "FAILED"),
        (
            &bad_vsa,
            vec!["--digest", bad_image.as_str(), "--any-result"],
            0,
            "accepted: FAILED",
        ),
        (
            &good_vsa,
            vec!["--digest", sha512_only.as_str()],
            2,
            "expected sha256:",
        ),
        (
            &good_vsa,
            vec!["--digest", unknown.as_str()],
            1,
            "does not name",
        ),
        (
            &good_prov,
            vec!["--digest", digests[0].as_str()],
            1,
            "not a verification summary",
        ),
        (
            &good_prov,
            vec!["--require-passed"],
            1,
            "not a verification summary",
        ),
        (
            &good_vsa,
            vec!["--verifier-id", "https://elsewhere.example/"],
            1,
            "its verifier is",
        ),
        (
            &good_vsa,
            vec!["--verifier-id", "https://reprod.dev/rebuilder/v1"],
            0,
            "PASSED",
        ),
    ] {
        let o = gate(file, &extra);
        let both = format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
        assert_eq!(code(&o), want, "verify {extra:?}: {both}");
        assert!(both.contains(needle), "verify {extra:?}: {both}");
    }
}

/// `reprod keygen` makes another key, and `reprod verify` with it does not verify: its public key.
fn another_key(ctx: &Ctx, signed: &Signed) -> PathBuf {
    let good_vsa = &signed.good_vsa;
    let other = ctx.work.path().join("other");
    assert_eq!(code(&reprod(&["keygen", other.to_str().unwrap()])), 0);
    let o = reprod(&[
        "verify",
        good_vsa.to_str().unwrap(),
        "--key",
        other.with_extension("pub").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "another key does not verify it");
    assert!(String::from_utf8_lossy(&o.stderr).contains("NOT verified"));
    other.with_extension("pub")
}

/// `reprod status --key` counts only what the signed summary says.
fn status_with_key(ctx: &Ctx, signed: &Signed, other_pub: &Path) {
    let Ctx {
        d,
        image_ref,
        evil_ref,
        ..
    } = ctx;
    let pem = &signed.pem;
    let status_with = |reference: &str, key: &Path| {
        reprod(&[
            "status",
            reference,
            "--server",
            &d.url,
            "--key",
            key.to_str().unwrap(),
        ])
    };
    expect_output(
        &status_with(image_ref, pem),
        0,
        "verified: the signed summary says PASSED",
    );
    expect_output(&status_with(evil_ref, pem), 1, "signed summary says FAILED");
    let o = status_with(image_ref, other_pub);
    assert_eq!(
        code(&o),
        2,
        "another key's word is not taken: {}",
        stdout(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no signature verifies"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// GET /metrics: the two verdicts moved the counters, the queue, the workers and the intake.
fn metrics_moved(ctx: &Ctx) {
    let d = &ctx.d;
    let before = ctx.before.clone();
    let after = metrics(d);
    for status in ["reproducible", "unreproducible"] {
        let key = format!("reprod_verdicts_total{{status=\"{status}\"}}");
        assert_eq!(sample(&after, &key) - sample(&before, &key), 1.0, "{key}");
        let key = format!("reprod_rebuild_duration_seconds_count{{status=\"{status}\"}}");
        assert_eq!(sample(&after, &key) - sample(&before, &key), 1.0, "{key}");
    }
    assert_eq!(sample(&after, "reprod_queue_jobs{state=\"done\"}"), 2.0);
    assert_eq!(sample(&after, "reprod_workers{kind=\"local\"}"), 2.0);
    assert_eq!(
        sample(&after, "reprod_intake_total{outcome=\"queued\"}"),
        2.0
    );
    // A scraper that does not ask for OpenMetrics gets the text format, which promtool accepts, with the
    // same samples.
    let (status, headers, body) = fetch(&format!("{}/metrics", d.url), &[]);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{headers}"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("# TYPE reprod_verdicts_total counter\n") && !text.contains("# EOF"),
        "{text}"
    );
    let line = format!(
        "reprod_verdicts_total{{status=\"reproducible\"}} {}\n",
        sample(&after, "reprod_verdicts_total{status=\"reproducible\"}")
    );
    assert!(text.contains(&line), "{line:?} in\n{text}");
    let out = piped(
        Command::new(promtool()).args(["check", "metrics"]),
        text.as_bytes(),
        "scripts/setup.sh extracts promtool",
    );
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GET /v1/verdicts: filters and cursors.
fn verdict_lists(ctx: &Ctx) {
    let Ctx {
        d,
        good_job,
        bad_job,
        ..
    } = ctx;
    let list = |q: &str| -> (u16, Value) {
        let (s, _, b) = fetch(&format!("{}/v1/verdicts{q}", d.url), &[]);
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    };
    let (s, all) = list("");
    assert_eq!(s, 200);
    let jobs: Vec<&str> = all["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs.len(), 2);
    let (_, first) = list("?limit=1");
    assert_eq!(first["verdicts"][0]["job"], jobs[0]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = list(&format!("?limit=1&cursor={cursor}"));
    assert_eq!(second["verdicts"][0]["job"], jobs[1]);
    assert!(second["next_cursor"].is_null(), "{second}");
    let (_, only) = list("?status=unreproducible");
    assert_eq!(only["verdicts"].as_array().unwrap().len(), 1);
    assert_eq!(only["verdicts"][0]["job"], bad_job.as_str());
    let (_, by_image) = list("?image=example.invalid%2Fhello");
    assert_eq!(by_image["verdicts"].as_array().unwrap().len(), 1);
    assert_eq!(by_image["verdicts"][0]["job"], good_job.as_str());
    let (_, future) = list("?since=2999-01-01T00:00:00Z");
    assert!(future["verdicts"].as_array().unwrap().is_empty());
}

/// GET /v1/verdicts with If-None-Match and If-Modified-Since.
fn conditional_requests(ctx: &Ctx) {
    let d = &ctx.d;
    // Last-Modified is sent once the second of the last change is over. In a full run the sections
    // before this one take longer than that; when they fail early or are skipped, it is waited for here.
    let settled = ctx.verdicts_in + Duration::from_secs(1);
    if let Some(left) = settled.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    let (_, headers, _) = fetch(&format!("{}/v1/verdicts", d.url), &[]);
    let etag = header(&headers, "etag").unwrap().to_string();
    let modified = header(&headers, "last-modified").unwrap().to_string();
    for (query, condition, expect) in [
        ("", format!("If-None-Match: {etag}"), 304),
        ("", format!("If-Modified-Since: {modified}"), 304),
        ("?limit=1", format!("If-None-Match: {etag}"), 200),
        (
            "",
            "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT".into(),
            200,
        ),
    ] {
        let url = format!("{}/v1/verdicts{query}", d.url);
        assert_eq!(fetch(&url, &[&condition]).0, expect, "{query} {condition}");
    }
}

/// Bad input to GET /v1/verdicts, /v1/jobs and /v1/provenance: the status and a JSON error.
fn bad_input(ctx: &Ctx) {
    let Ctx {
        d,
        digests,
        sha512_only,
        good_job,
        unknown,
        ..
    } = ctx;
    let sha512_path = format!("/v1/verdicts/{sha512_only}");
    let name_param = format!("/v1/verdicts/{}?name=x", digests[0]);
    for (q, code_, needle) in [
        (
            sha512_path.as_str(),
            400,
            "expected sha256:<64 lowercase hex digits>",
        ),
        (
            "/v1/verdicts?image=a%01b",
            400,
            "without control characters",
        ),
        (name_param.as_str(), 400, "the only parameter is `image`"),
        (
            "/v1/verdicts/sha256:abc",
            400,
            "expected sha256:<64 lowercase hex digits>",
        ),
        (
            "/v1/verdicts/latest",
            400,
            "expected sha256:<64 lowercase hex digits>",
        ),
        (&format!("/v1/verdicts/{unknown}"), 404, "no verdict names"),
        ("/v1/verdicts?limit=1000000", 400, "from 1 to 500"),
        ("/v1/verdicts?limit=-1", 400, "from 1 to 500"),
        ("/v1/verdicts?cursor=xyz", 400, "cursor"),
        ("/v1/verdicts?status=great", 400, "status must be one of"),
        ("/v1/verdicts?since=yesterday", 400, "RFC 3339"),
        ("/v1/verdicts?stauts=reproducible", 400, "unknown parameter"),
        (
            "/v1/jobs/sha256:nope/attestations/vsa",
            404,
            "no vsa attestation",
        ),
        (
            &format!("/v1/jobs/{good_job}/attestations/key"),
            404,
            "not \"key\"",
        ),
        ("/v1/provenance/sha256:00", 400, "expected sha256:"),
        ("/v2/anything", 404, "no such resource"),
    ] {
        let (s, _, body) = fetch(&format!("{}{q}", d.url), &[]);
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(s, code_, "{q}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{q}: {v}");
        assert!(
            v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{q}: {v}"
        );
    }
}

/// GET /v1/provenance/{id}: the document as it was received.
fn provenance_document(ctx: &Ctx) {
    let Ctx {
        d, good, good_job, ..
    } = ctx;
    let (s, _, doc) = fetch(&format!("{}/v1/provenance/{good_job}", d.url), &[]);
    assert_eq!(s, 200);
    assert_eq!(
        doc,
        serde_json::to_vec(&good).unwrap(),
        "the document is served as received"
    );
}

/// GET /v1/openapi.json lists exactly the routes, and each route answers as documented.
fn openapi(ctx: &Ctx) {
    let Ctx {
        d,
        digests,
        good_job,
        good_view,
        ..
    } = ctx;
    let (_, _, body) = fetch(&format!("{}/v1/openapi.json", d.url), &[]);
    let openapi: Value = serde_json::from_slice(&body).unwrap();
    let documented: BTreeSet<(String, String)> = openapi["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = reprod::daemon::http::api_routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.replace("{*", "{")))
        .collect();
    assert_eq!(documented, routed, "OpenAPI paths and the router differ");
    let artifact = good_view["artifacts"][0].as_str().unwrap().to_string();
    for (method, path) in &documented {
        let digest = if path.starts_with("/v1/provenance/") {
            good_job
        } else {
            &digests[0]
        };
        let concrete = path
            .replace("{digest}", digest)
            .replace("{id}", good_job)
            .replace("{kind}", "vsa")
            .replace("{name}", &artifact);
        let url = format!("{}{concrete}", d.url);
        // The operator's routes answer an operator.
        let admin = format!("Authorization: Bearer {ADMIN_TOKEN}");
        let headers: &[&str] = if path.starts_with("/v1/admin/") {
            &[&admin]
        } else {
            &[]
        };
        let mut curl = Command::new("curl");
        curl.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            &method.to_uppercase(),
            &url,
        ]);
        for h in headers {
            curl.args(["-H", h]);
        }
        let out = curl.output().unwrap();
        let got = String::from_utf8_lossy(&out.stdout).to_string();
        let responses = &openapi["paths"][path][method]["responses"];
        assert!(
            responses.get(&got).is_some(),
            "{method} {concrete} answered {got}, which {path} does not document"
        );
        if method == "get" {
            assert_eq!(got, "200", "{method} {concrete}");
        }
        // A documented JSON body has exactly the documented top-level fields (read back with a GET: the
        // POST routes change state, and are checked by their own sections).
        let schema = responses["200"]["content"]["application/json"]["schema"]["$ref"].as_str();
        if let Some(schema) = schema.filter(|_| method == "get") {
            let name = schema.rsplit('/').next().unwrap();
            let documented: BTreeSet<&str> = openapi["components"]["schemas"][name]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let (_, _, body) = fetch(&url, headers);
            let body: Value = serde_json::from_slice(&body).unwrap();
            let served: BTreeSet<&str> = body
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(served, documented, "{path}: fields served vs schema {name}");
        }
    }
}

/// GET /feed.atom: all verdicts, or one image's, or one status's.
fn feeds(ctx: &Ctx) {
    let Ctx {
        d,
        work,
        digests,
        sha512_only,
        evil_name,
        ..
    } = ctx;
    let feed_titles = |query: &str| -> Vec<String> {
        let (s, headers, feed) = fetch(&format!("{}/feed.atom{query}", d.url), &[]);
        assert_eq!(s, 200, "{query}");
        assert!(header(&headers, "content-type")
            .unwrap()
            .starts_with("application/atom+xml"));
        let path = work.path().join("feed.xml");
        std::fs::write(&path, &feed).unwrap();
        let o = Command::new(python())
            .args([
                "-c",
                "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); \
                 ns = '{http://www.w3.org/2005/Atom}'; \
                 print('\\n'.join(e.find(ns + 'title').text for e in r.findall(ns + 'entry')))",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "the feed {query} is not well-formed XML: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout(&o).lines().map(str::to_string).collect()
    };
    let all = feed_titles("");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.contains(&format!("unreproducible: {evil_name}")),
        "{all:?}"
    );
    assert_eq!(
        feed_titles("?image=example.invalid%2Fhello"),
        ["reproducible: example.invalid/hello"]
    );
    assert_eq!(
        feed_titles("?status=unreproducible"),
        [format!("unreproducible: {evil_name}")]
    );
    assert_eq!(fetch(&format!("{}/feed.atom?limit=9", d.url), &[]).0, 400);
    // Each entry says what became of each subject, in the state words.
    let feed = String::from_utf8_lossy(&fetch(&format!("{}/feed.atom", d.url), &[]).2).into_owned();
    assert!(
        feed.contains(&format!("example.invalid/hello {}: matched", digests[0]))
            // The nondeterministic build made its own hello.txt: a counterpart with other bytes.
            && feed.contains(&format!("hello.txt {}: differs", digests[2]))
            && feed.contains(&format!("evil.example/other {sha512_only}: not-compared")),
        "{feed}"
    );
}

/// GET / in headless Chromium: the dashboard's DOM.
fn render_dashboard(ctx: &Ctx) -> String {
    let port = ctx.port;
    render(&format!("http://127.0.0.1:{port}/"), port)
}

/// The dashboard (GET /) as rendered: the rate, the workers, and the hostile image name as text.
fn dashboard_page(dom: &str) {
    assert!(dom.contains("<h1>Dashboard</h1>"), "{dom}");
    let rate = text_after(dom, "id=\"rate\"");
    assert!(rate.contains("Reproducibility rate"), "{rate}");
    assert!(dom.contains("50.0% (1 of 2 rebuilds)"), "{dom}");
    assert!(
        dom.contains("local-0") && dom.contains("local-1"),
        "workers are listed: {dom}"
    );
    assert!(!dom.contains("<script"), "no script element: {dom}");
    assert!(
        dom.contains("example.invalid/&lt;script&gt;document.body.setAttribute('data-pwned','yes')&lt;/script&gt;"),
        "the image name shows as text: {dom}"
    );
    assert!(
        !dom.contains("data-pwned=\"yes\""),
        "the name's script ran: {dom}"
    );
}

/// GET /jobs/{id} in headless Chromium, for the reproducible and the nondeterministic job.
fn job_pages(ctx: &Ctx) {
    let Ctx {
        digests,
        good_job,
        bad_job,
        ..
    } = ctx;
    let port = ctx.port;
    let dom = render(&format!("http://127.0.0.1:{port}/jobs/{good_job}"), port);
    assert_eq!(text_after(&dom, "id=\"verdict\""), "reproducible");
    assert!(
        dom.contains("built hello: sha256:"),
        "the step log shows: {dom}"
    );
    assert!(
        dom.contains(&format!("/v1/jobs/{good_job}/attestations/vsa-passed")),
        "{dom}"
    );
    assert!(dom.contains(&digests[0]), "{dom}");
    assert!(
        dom.contains("<span class=\"state matched\">matched</span>")
            && dom.contains("<span class=\"state not-compared\">not-compared</span>"),
        "the sha512-only subject is not compared: {dom}"
    );

    let dom = render(&format!("http://127.0.0.1:{port}/jobs/{bad_job}"), port);
    assert!(
        text_after(&dom, "id=\"verdict\"").starts_with("unreproducible"),
        "{dom}"
    );
    // Subject states, in words: nothing the nondeterministic build wrote corresponds to these names.
    assert!(
        dom.contains("<span class=\"state not-found\">not-found</span>"),
        "{dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");
    assert!(
        dom.contains("<td>example.invalid/&lt;script&gt;document.body"),
        "the subject name shows as text: {dom}"
    );
}

/// GET /images/{name} in headless Chromium, through the link the dashboard gives.
fn image_page(ctx: &Ctx, dashboard: &str) {
    let port = ctx.port;
    // The image page, through the link the dashboard gives (the name is one encoded path segment).
    let link = dashboard
        .split("href=\"")
        .find(|h| h.starts_with("/images/example.invalid%2F%3Cscript"))
        .and_then(|h| h.split('"').next())
        .unwrap_or_else(|| panic!("no link to the image page: {dashboard}"))
        .replace("&amp;", "&");
    let href = format!("http://127.0.0.1:{port}{link}");
    let dom = render(&href, port);
    assert!(
        dom.contains("class=\"image-name\">example.invalid/&lt;script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");
    assert!(!dom.contains("data-pwned=\"yes\""), "{dom}");
}

/// `reprod submit`: refused without a token or with a wrong one; `--wait` answers with the verdict.
fn submit_token(ctx: &Ctx) {
    let Ctx {
        d,
        work,
        good,
        good_job,
        ..
    } = ctx;
    let doc = work.path().join("good.json");
    std::fs::write(&doc, serde_json::to_vec(&good).unwrap()).unwrap();
    let submit = |extra: &[&str]| {
        let mut args = vec!["submit", doc.to_str().unwrap(), "--server", &d.url];
        args.extend_from_slice(extra);
        reprod(&args)
    };
    let o = submit(&[]);
    assert_eq!(code(&o), 2, "no token");
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs a token"));
    let o = submit(&["--token", TOKEN, "--wait"]);
    expect_output(&o, 0, &format!("reproducible: job {good_job}"));
    // The job and its page first, before the wait.
    assert!(
        stdout(&o).starts_with(&format!(
            "queued: job {good_job} (duplicate): {}/jobs/{good_job}\n",
            d.url
        )),
        "{}",
        stdout(&o)
    );
    let o = submit(&["--token", "wrong"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("forbidden"));
}

/// `reprod submit --wait` of a second document for the good build's work: the job it made.
fn submit_reuses_the_rebuild(ctx: &Ctx) -> String {
    let Ctx {
        d,
        work,
        digests,
        good,
        good_job,
        ..
    } = ctx;
    // A second document for the good build's work, with the file right and the image digest made up: it is
    // judged on its own subjects against the rebuild already done (nothing runs again), and `submit --wait`
    // answers for it, not for the first document.
    let mut mixed = good.clone();
    mixed["subject"] = serde_json::json!([
        {"name": "example.invalid/hello", "digest": {"sha256": "1".repeat(64)}},
        {"name": "hello.txt", "digest": {"sha256": &digests[2]["sha256:".len()..]}},
    ]);
    let mixed_doc = work.path().join("mixed.json");
    std::fs::write(&mixed_doc, serde_json::to_vec(&mixed).unwrap()).unwrap();
    let o = reprod(&[
        "submit",
        mixed_doc.to_str().unwrap(),
        "--server",
        &d.url,
        "--token",
        TOKEN,
        "--wait",
    ]);
    let mixed_job = reprod::oci::sha256_bytes(&std::fs::read(&mixed_doc).unwrap());
    expect_output(&o, 1, &format!("unreproducible: job {mixed_job}"));
    let mixed_view = d.wait_job(&mixed_job, "done", Duration::from_secs(60));
    assert_eq!(mixed_view["verdict"]["reused_rebuild"], good_job.as_str());
    let states: Vec<&str> = mixed_view["verdict"]["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["differs", "matched"], "{mixed_view:#}");
    assert_eq!(
        mixed_view["record"]["attestations"],
        serde_json::json!(["vsa-passed", "vsa-failed", "provenance"])
    );
    let (s, _, b) = fetch(
        &format!("{}/v1/jobs/{mixed_job}/attestations/vsa", d.url),
        &[],
    );
    assert_eq!(
        s,
        409,
        "two summaries: `vsa` is ambiguous: {}",
        String::from_utf8_lossy(&b)
    );
    mixed_job
}

/// The signed attestations of the second document's job: what each summary names.
struct Mixed {
    mixed_passed: PathBuf,
    mixed_failed: PathBuf,
    mixed_prov: PathBuf,
}

/// GET /v1/jobs/{id}/attestations/{kind} and the step logs of the job that reused the rebuild.
fn reused_rebuild_attestations(ctx: &Ctx, signed: &Signed, mixed_job: &str) -> Mixed {
    let Ctx {
        d,
        digests,
        good_job,
        ..
    } = ctx;
    let mixed_passed = ctx.save(mixed_job, "vsa-passed");
    let mixed_failed = ctx.save(mixed_job, "vsa-failed");
    let mixed_prov = ctx.save(mixed_job, "provenance");
    let names = |file: &Path| -> Vec<String> {
        signed.verified(file, &["--any-result"])["digests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&mixed_passed),
        [digests[2].clone()],
        "only the matched file passes"
    );
    assert_eq!(
        names(&mixed_failed),
        [format!("sha256:{}", "1".repeat(64))],
        "a matched digest never sits in a FAILED summary"
    );
    let p = signed.verified(&mixed_prov, &[]);
    assert_eq!(
        p["statement"]["predicate"]["buildDefinition"]["internalParameters"]["reusedRebuild"]
            ["job"],
        good_job.as_str()
    );
    // Its step logs are where the rebuild that ran them keeps them, and are served there.
    let log_uri = p["statement"]["predicate"]["runDetails"]["byproducts"][1]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        log_uri.contains(&format!("/v1/jobs/{good_job}/artifacts/logs/")),
        "{log_uri}"
    );
    let path = log_uri
        .split_once("/v1/")
        .map(|(_, p)| format!("/v1/{p}"))
        .unwrap();
    assert_eq!(fetch(&format!("{}{path}", d.url), &[]).0, 200, "{log_uri}");
    Mixed {
        mixed_passed,
        mixed_failed,
        mixed_prov,
    }
}

/// tests/support/validate_statement.py on every statement signed here.
fn statements_are_valid(ctx: &Ctx, signed: &Signed, mixed: &Mixed) {
    let Signed {
        good_vsa,
        bad_vsa,
        good_prov,
        ..
    } = signed;
    let Mixed {
        mixed_passed,
        mixed_failed,
        mixed_prov,
    } = mixed;
    // Every statement reprod signed here is valid in-toto Statement v1 and SLSA VSA v1 / Provenance v1,
    // by the in-toto-attestation package's schemas and the specifications' rules.
    let bad_prov = ctx.save(&ctx.bad_job, "provenance");
    let all = [
        good_vsa,
        bad_vsa,
        good_prov,
        &bad_prov,
        mixed_passed,
        mixed_failed,
        mixed_prov,
    ];
    assert_valid_statements(&all.map(PathBuf::as_path));
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A dotted prefix is extended, not cut: rebuilder.ci.key.
    let prefix = dir.path().join("rebuilder.ci");
    let o = reprod(&["keygen", prefix.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let private = dir.path().join("rebuilder.ci.key");
    let public = dir.path().join("rebuilder.ci.pub");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&public), 0o644);
    let pem = std::fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let key = openssl::pkey::PKey::private_key_from_pem(pem.as_bytes()).unwrap();
    assert_eq!(
        key.ec_key().unwrap().group().curve_name(),
        Some(openssl::nid::Nid::X9_62_PRIME256V1)
    );
    assert!(
        stdout(&o).contains("key id:      sha256:"),
        "{}",
        stdout(&o)
    );

    let o = reprod(&["keygen", prefix.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not overwriting"));
    assert_eq!(
        std::fs::read_to_string(&private).unwrap(),
        pem,
        "the key is untouched"
    );
}

#[test]
fn serve_stops_at_start_when_its_signing_key_is_missing_or_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = dir.path().join("rsa.key");
    let r = openssl::rsa::Rsa::generate(2048).unwrap();
    std::fs::write(
        &rsa,
        openssl::pkey::PKey::from_rsa(r)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap(),
    )
    .unwrap();
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key").unwrap();
    let missing = dir.path().join("missing.key");
    for (key, needle) in [
        (&missing, "cannot read the signing key"),
        (&garbage, "not a PEM private key"),
        (&rsa, "not an ECDSA P-256 key"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_reprod"))
            .arg("serve")
            .env("REPROD_DATA_DIR", data.path())
            .env("REPROD_SERVER_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("REPROD_SERVER_SIGNING_KEY", key)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains(needle) && err.contains(&key.display().to_string()),
            "{err}"
        );
        assert!(!err.contains("listening"), "{err}");
    }
}

/// The independent validator the signed statements are checked with can fail: each deviation an outside
/// check found in earlier statements is refused.
#[test]
fn the_statement_validator_refuses_what_the_specifications_forbid() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let hex = "a".repeat(64);
    let vsa = |result: &str, levels: Value, resource: &str| {
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "reg/app", "digest": {"sha256": hex}}],
            "predicateType": "https://slsa.dev/verification_summary/v1",
            "predicate": {
                "verifier": {"id": "https://reprod.dev/rebuilder/v1", "version": {"reprod": "0.1.0"}},
                "timeVerified": "2026-12-01T00:00:00Z",
                "resourceUri": resource,
                "policy": {"uri": "https://reprod.dev/policy/bit-for-bit/v1", "digest": {"sha256": hex}},
                "inputAttestations": [{"uri": "https://r.example/v1/provenance/sha256:aa", "digest": {"sha256": hex}}],
                "verificationResult": result,
                "verifiedLevels": levels,
            }
        })
    };
    let purl = format!("pkg:docker/reg/app@sha256%3A{hex}");
    let provenance = |byproduct: Value| {
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "reg/app", "digest": {"sha256": hex}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {"buildType": "https://reprod.dev/rebuild/v1", "externalParameters": {"x": 1}},
                "runDetails": {"builder": {"id": "https://reprod.dev/rebuilder/v1"}, "byproducts": [byproduct]},
            }
        })
    };
    let cases = [
        (
            "passed",
            vsa(
                "PASSED",
                serde_json::json!(["REPROD_BIT_FOR_BIT_REPRODUCIBLE"]),
                &purl,
            ),
            true,
        ),
        (
            "failed",
            vsa("FAILED", serde_json::json!(["FAILED"]), &purl),
            true,
        ),
        (
            "failed-no-levels",
            vsa("FAILED", serde_json::json!([]), &purl),
            false,
        ),
        (
            "not-a-uri",
            vsa(
                "PASSED",
                serde_json::json!(["X"]),
                &format!("reg/app@sha256:{hex}"),
            ),
            false,
        ),
        (
            "slsa-prefix",
            vsa("PASSED", serde_json::json!(["SLSA_BIT_FOR_BIT"]), &purl),
            false,
        ),
        (
            "byproduct-ok",
            provenance(serde_json::json!({"name": "log", "uri": "https://r.example/log"})),
            true,
        ),
        (
            "byproduct-name-only",
            provenance(serde_json::json!({"name": "verdict", "annotations": {"a": 1}})),
            false,
        ),
        (
            "upper-hex",
            provenance(serde_json::json!({"digest": {"sha256": "A".repeat(64)}})),
            false,
        ),
    ];
    let b64 = base64::engine::general_purpose::STANDARD;
    for (name, statement, valid) in cases {
        let path = dir.path().join(format!("{name}.json"));
        let envelope = serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": b64.encode(serde_json::to_vec(&statement).unwrap()),
            "signatures": [],
        });
        std::fs::write(&path, serde_json::to_vec(&envelope).unwrap()).unwrap();
        let o = Command::new(python())
            .arg(project_root().join("tests/support/validate_statement.py"))
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            o.status.success(),
            valid,
            "{name}: {}{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
