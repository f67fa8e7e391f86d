//! `reprod serve` end to end: the real binary, real Docker, real git, HTTP on 127.0.0.1, signals.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::daemon::*;
use common::registry::*;
use common::*;
use serde_json::{json, Value};

/// A daemon with no submit token says at start that every submission will be refused, and refuses one;
/// with a token it says nothing of the kind.
#[test]
fn serve_warns_at_start_when_no_submission_can_be_accepted() {
    let data = tempfile::tempdir().unwrap();
    let warning = "server.submit_tokens is empty";
    let d = Daemon::start(data.path(), &[("REPROD_SERVER_SUBMIT_TOKENS", "[]")]);
    assert!(
        d.startup
            .iter()
            .any(|l| l.contains(warning) && l.contains("WARN")),
        "{:#?}",
        d.startup
    );
    let (status, _) = d.submit(&json!({"_type": "https://in-toto.io/Statement/v1"}));
    assert_eq!(
        status, 403,
        "the token the test sends is no submit token here"
    );
    drop(d);
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &[]);
    assert!(
        !d.startup.iter().any(|l| l.contains(warning)),
        "{:#?}",
        d.startup
    );
}

/// Runs the `reprod` command with `args` (and `env`, and no configuration file): its exit code, stdout and
/// stderr.
fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reprod"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("REPROD_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `reprod jobs`: an operator lists the queue, cancels a waiting job (it is never leased), retries the
/// dead one; a job in a state the action does not apply to is exit 1, an unknown job or a refused token
/// exit 2; and what was acknowledged is still so after the daemon is killed with SIGKILL.
#[test]
fn operators_list_cancel_and_retry_jobs_with_an_admin_token() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let admin = "operator-token-0123456789";
    // No in-process workers: submitted jobs wait in the queue.
    let env = [
        ("REPROD_SERVER_WORKERS", "0"),
        (
            "REPROD_SERVER_ADMIN_TOKENS",
            "[\"operator-token-0123456789\"]",
        ),
    ];
    let mut d = Daemon::start(data.path(), &env);
    let (code, v) = d.submit(&hello_doc(&repo, &digests, "ops", ""));
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let jobs = |d: &Daemon, args: &[&str], token: &str| {
        let mut all = vec!["jobs"];
        all.extend(args);
        all.extend(["--server", &d.url, "--token", token]);
        cli(&all, &[])
    };
    let (code, out, err) = jobs(&d, &["list", "--state", "ready"], admin);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("1 job(s)"), "{out}");
    // `submit --wait` says the job and its page at once, then its state, and gives up at its timeout
    // (no worker takes it here) with exit 2: no verdict is no answer.
    let doc = data.path().join("ops.json");
    std::fs::write(
        &doc,
        serde_json::to_vec(&hello_doc(&repo, &digests, "ops", "")).unwrap(),
    )
    .unwrap();
    let (code, out, err) = cli(
        &[
            "submit",
            doc.to_str().unwrap(),
            "--server",
            &d.url,
            "--token",
            TOKEN,
            "--wait",
            "--timeout",
            "2",
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "queued: job {id} (duplicate): {}/jobs/{id}\n  job {id}: ready (attempt 0)\n",
            d.url
        )
    );
    assert!(err.contains("no verdict within 2s (state ready)"), "{err}");

    let (code, out, err) = jobs(&d, &["cancel", &id, "--reason", "not ours"], admin);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("dead") && out.contains("not ours"), "{out}");
    let (code, _, err) = jobs(&d, &["cancel", &id], admin);
    assert_eq!(code, 1, "already dead: {err}");
    assert!(err.contains("only a ready or delayed job"), "{err}");

    // Killed, restarted: the cancellation was acknowledged, so it is still there.
    d.signal("-KILL");
    let _ = d.wait_exit(Duration::from_secs(10));
    drop(d);
    let d = Daemon::start(data.path(), &env);
    let (code, out, _) = jobs(&d, &["list", "--state", "dead", "--json"], admin);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed:#}");
    assert!(listed[0]["dead_reason"]
        .as_str()
        .unwrap()
        .contains("not ours"));
    assert!(listed[0]["url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));

    let (code, out, err) = jobs(&d, &["retry", &id], admin);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ready"), "{out}");
    let (code, _, err) = jobs(&d, &["retry", &id], admin);
    assert_eq!(code, 1, "{err}");
    let unknown = format!("sha256:{}", "0".repeat(64));
    let (code, _, err) = jobs(&d, &["retry", &unknown], admin);
    assert_eq!(code, 2);
    assert!(err.contains("unknown-job"), "{err}");
    let (code, _, err) = jobs(&d, &["list"], "not-an-admin-token-at-all");
    assert_eq!(code, 2);
    assert!(
        err.contains("403") && err.contains("server.admin_tokens"),
        "{err}"
    );
    let (code, _, err) = jobs(&d, &["list"], TOKEN);
    assert_eq!(code, 2, "a submit token is no admin token: {err}");
}

#[test]
fn submissions_need_a_token_are_queued_once_and_get_a_verdict() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &[("REPROD_MAX_DOCUMENT_BYTES", "65536")]);
    let doc = hello_doc(&repo, &digests, "a", "");
    let body = serde_json::to_vec(&doc).unwrap();

    let (code, v) = d.request("POST", "/v1/provenance", None, Some(&body));
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (401, Some("unauthenticated")),
        "{v}"
    );
    let (code, v) = d.request("POST", "/v1/provenance", Some("wrong"), Some(&body));
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (code, v) = d.request(
        "POST",
        "/v1/provenance",
        Some(TOKEN),
        Some(&vec![b' '; 70_000]),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (413, Some("too-large")),
        "{v}"
    );
    let (code, v) = d.request(
        "POST",
        "/v1/provenance",
        Some(TOKEN),
        Some(b"{\"not\": \"provenance\"}"),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (400, Some("unparsable")),
        "{v}"
    );

    let (code, v) = d.submit(&doc);
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["jobs"][0]["status"], "new");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    // The same document again is the same job.
    let (_, again) = d.submit(&doc);
    assert_eq!(
        again["jobs"][0],
        json!({"id": id, "status": "duplicate", "url": format!("{}/v1/jobs/{id}", d.url),
               "page": format!("{}/jobs/{id}", d.url)})
    );

    let done = d.wait_job(&id, "done", Duration::from_secs(120));
    assert_eq!(done["verdict"]["status"], "reproducible", "{done:#}");
    assert_eq!(done["attempt"], 1);
    assert!(done["verdict"]["reused_rebuild"].is_null());
    // The full step log is kept with the verdict, and the job directory is gone.
    assert_eq!(done["artifacts"], json!(["logs/00-build.log"]), "{done:#}");
    let (code, _) = d.request(
        "GET",
        &format!("/v1/jobs/{id}/artifacts/logs/00-build.log"),
        None,
        None,
    );
    assert_eq!(code, 200);
    let (code, v) = d.request(
        "GET",
        &format!("/v1/jobs/{id}/artifacts/logs/nope.log"),
        None,
        None,
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (404, Some("unknown-artifact"))
    );

    // Other documents for the same commit and steps are the same work, rebuilt once, but each is judged on
    // its own subjects and gets its own verdict: one that names a made-up digest does not pass on the
    // first one's rebuild.
    let mut same_work = doc.clone();
    same_work["subject"].as_array_mut().unwrap().reverse();
    let (_, other) = d.submit(&same_work);
    assert_eq!(other["jobs"][0]["status"], "new", "{other}");
    let other = other["jobs"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(other, id);
    let made_up = format!("sha256:{}", "1".repeat(64));
    let mut forged = doc.clone();
    forged["subject"] =
        json!([{"name": "example.invalid/hello", "digest": {"sha256": "1".repeat(64)}}]);
    let (_, v) = d.submit(&forged);
    let forged_id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let reused = d.wait_job(&other, "done", Duration::from_secs(120));
    assert_eq!(reused["verdict"]["status"], "reproducible", "{reused:#}");
    assert_eq!(
        reused["verdict"]["reused_rebuild"],
        id.as_str(),
        "{reused:#}"
    );
    assert_eq!(reused["artifacts"], json!([]), "nothing ran for it");
    let judged = d.wait_job(&forged_id, "done", Duration::from_secs(120));
    let v = &judged["verdict"];
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("unreproducible"), Some("digest-mismatch")),
        "{judged:#}"
    );
    assert_eq!(v["subjects"][0]["state"], "differs", "{v:#}");
    assert_eq!(
        v["subjects"][0]["rebuilt_digest"],
        digests[0].as_str(),
        "{v:#}"
    );
    assert_eq!(v["reused_rebuild"], id.as_str());
    assert_eq!(
        judged["record"]["attestations"],
        json!(["vsa-failed", "provenance"])
    );
    // Its subject is indexed: the made-up digest's answer is this document's verdict.
    let (code, answer) = d.request("GET", &format!("/v1/verdicts/{made_up}"), None, None);
    assert_eq!(
        (
            code,
            answer["status"].as_str(),
            answer["decided_by"]["job"].as_str()
        ),
        (200, Some("unreproducible"), Some(forged_id.as_str())),
        "{answer:#}"
    );
    let jobs_dir = data.path().join("jobs");
    let left: Vec<_> = std::fs::read_dir(&jobs_dir)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "job directories left: {left:?}");
    let (code, v) = d.request("GET", "/v1/jobs/sha256:nope", None, None);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (404, Some("unknown-job"))
    );
    let (code, v) = d.request("GET", "/healthz", None, None);
    assert_eq!((code, v["queue"]["done"].as_u64()), (200, Some(3)), "{v}");
}

/// A build that fails compared nothing: the daemon signs a rebuild provenance that says what ran and how
/// it ended (valid in-toto and SLSA), issues no summary about a digest it never compared, and the job
/// page, the verdict and the feed say `not-compared`, never "differs".
#[test]
fn a_failed_build_is_signed_as_what_ran_and_shown_as_not_compared() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &[]);
    let doc = hello_doc(&repo, &digests, "fails", "echo broken >&2\nexit 3\n");
    let (code, v) = d.submit(&doc);
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let j = d.wait_job(&id, "done", Duration::from_secs(120));
    assert_eq!(
        (
            j["verdict"]["status"].as_str(),
            j["verdict"]["reason"].as_str()
        ),
        (Some("build-failed"), Some("step-failed")),
        "{j:#}"
    );
    let states: Vec<&str> = j["verdict"]["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["not-compared", "not-compared"], "{j:#}");
    // Only the provenance of the rebuild: no summary speaks for a digest that was never compared.
    assert_eq!(j["record"]["attestations"], json!(["provenance"]), "{j:#}");
    // Judged: the step images it was going to run in are no longer held for it.
    assert!(!data
        .path()
        .join("step-images.wanted")
        .join(id.trim_start_matches("sha256:"))
        .exists());
    for kind in ["vsa", "vsa-passed", "vsa-failed"] {
        let (code, _) = d.request(
            "GET",
            &format!("/v1/jobs/{id}/attestations/{kind}"),
            None,
            None,
        );
        assert_eq!(code, 404, "{kind}");
    }
    let (code, prov) = d.request(
        "GET",
        &format!("/v1/jobs/{id}/attestations/provenance"),
        None,
        None,
    );
    assert_eq!(code, 200, "{prov}");
    let signed = data.path().join("failed-provenance.json");
    std::fs::write(&signed, serde_json::to_vec(&prov).unwrap()).unwrap();
    assert_valid_statements(&[&signed]);
    // The step's exit and termination are byproducts of the run, named in the signed statement.
    let statement = envelope_statement(&std::fs::read(&signed).unwrap());
    let byproducts = statement["predicate"]["runDetails"]["byproducts"].to_string();
    assert!(
        byproducts.contains("\"exitCode\":3") && byproducts.contains("exited"),
        "{byproducts}"
    );
    let page = |path: &str| {
        let o = Command::new("curl")
            .args(["-sS", &format!("{}{path}", d.url)])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    let html = page(&format!("/jobs/{id}"));
    assert_eq!(
        html.matches(r#"<span class="state not-compared">not-compared</span>"#)
            .count(),
        2,
        "{html}"
    );
    assert!(!html.contains("differs"), "{html}");
    let feed = page("/feed.atom");
    assert!(
        feed.contains(&format!(
            "example.invalid/hello {}: not-compared",
            digests[0]
        )),
        "{feed}"
    );
    assert!(!feed.contains("differs"), "{feed}");
}

/// Intake notes the step images of a queued document, so that the image collection after another job
/// does not remove what it will run in (the note goes when its rebuild ends: rebuild::images' tests).
#[test]
fn a_queued_jobs_step_images_are_noted_at_intake() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    // No worker: the job stays queued.
    let d = Daemon::start(data.path(), &[("REPROD_SERVER_WORKERS", "0")]);
    let (code, v) = d.submit(&hello_doc(&repo, &digests, "queued", ""));
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap();
    let note = data
        .path()
        .join("step-images.wanted")
        .join(id.trim_start_matches("sha256:"));
    let wanted = std::fs::read_to_string(&note).unwrap();
    assert_eq!(wanted, builder_image(), "{}", note.display());
}

#[test]
fn unsigned_provenance_is_rejected_at_intake_unless_accepted() {
    let repo = Repo::hello();
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &[("REPROD_SERVER_ACCEPT_UNSIGNED", "false")]);
    let doc = repo.provenance(
        vec![subject("example.invalid/x", &unbuilt_digest('e'))],
        HELLO_SCRIPT,
    );
    let (code, v) = d.submit(&doc);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (422, Some("unsigned")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no signature"),
        "{v}"
    );
}

#[test]
fn inbox_files_are_queued_or_rejected_beside_a_reason() {
    let repo = Repo::hello();
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &[]);
    let inbox = data.path().join("inbox");
    let doc = repo.provenance(
        vec![subject("example.invalid/x", &unbuilt_digest('f'))],
        HELLO_SCRIPT,
    );
    // A partial write under a temporary name is left alone; the rename makes it visible.
    std::fs::write(
        inbox.join("good.json.tmp"),
        serde_json::to_vec(&doc).unwrap(),
    )
    .unwrap();
    std::fs::write(inbox.join("bad.json"), b"{\"truncated\": ").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        inbox.join("good.json.tmp").exists(),
        "a .tmp file must not be read"
    );
    std::fs::rename(inbox.join("good.json.tmp"), inbox.join("good.json")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(inbox.join("processed/good.json").exists() && inbox.join("rejected/bad.json").exists())
    {
        assert!(
            Instant::now() < deadline,
            "inbox not processed: {:?}",
            std::fs::read_dir(&inbox).unwrap().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reason = std::fs::read_to_string(inbox.join("rejected/bad.json.reason")).unwrap();
    assert!(
        reason.contains("cannot be parsed") && reason.contains("line 1"),
        "{reason}"
    );
    drop(d);
}

/// What a writer of the inbox could do to the root daemon: a FIFO renamed into place (a reader that opens
/// it blocks forever), a symbolic link to a file outside (following it reads what nobody submitted), a link
/// where the rejection's reason will be written (writing through it overwrites its target). Each is refused
/// without being followed, and the inbox goes on with the next file.
#[test]
fn inbox_refuses_fifos_and_links_without_following_them_and_keeps_working() {
    use std::os::unix::fs::{symlink, FileTypeExt};
    let repo = Repo::hello();
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &[("REPROD_SERVER_WORKERS", "0")]);
    let inbox = data.path().join("inbox");
    let outside = data.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let doc = |c: char| {
        serde_json::to_vec(&repo.provenance(
            vec![subject("example.invalid/x", &unbuilt_digest(c))],
            HELLO_SCRIPT,
        ))
        .unwrap()
    };
    rustix::fs::mknodat(
        rustix::fs::CWD,
        outside.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::rename(outside.join("pipe"), inbox.join("a-pipe.json")).unwrap();
    // A valid document outside: had the link been followed, it would be queued.
    let secret = doc('1');
    std::fs::write(outside.join("secret.json"), &secret).unwrap();
    symlink(outside.join("secret.json"), inbox.join("b-link.json")).unwrap();
    // An unparsable file whose reason file is already a link to a victim outside.
    std::fs::write(outside.join("victim"), b"untouched\n").unwrap();
    symlink(
        outside.join("victim"),
        inbox.join("rejected/c-bad.json.reason"),
    )
    .unwrap();
    std::fs::write(inbox.join("c-bad.json"), b"{\"truncated\": ").unwrap();
    std::fs::write(inbox.join("d-good.json.tmp"), doc('2')).unwrap();
    std::fs::rename(inbox.join("d-good.json.tmp"), inbox.join("d-good.json")).unwrap();
    let taken = ["a-pipe.json", "b-link.json", "c-bad.json", "d-good.json"];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(taken
        .iter()
        .all(|f| std::fs::symlink_metadata(inbox.join(f)).is_err())
        && inbox.join("processed/d-good.json").exists())
    {
        assert!(
            Instant::now() < deadline,
            "inbox not processed: {:?} {:?}",
            std::fs::read_dir(&inbox).unwrap().collect::<Vec<_>>(),
            std::fs::read_dir(inbox.join("rejected"))
                .unwrap()
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kind = |f: &str| {
        std::fs::symlink_metadata(inbox.join(f))
            .unwrap()
            .file_type()
    };
    assert!(kind("rejected/a-pipe.json").is_fifo(), "moved as it is");
    assert!(kind("rejected/b-link.json").is_symlink(), "moved as it is");
    let reason = |f: &str| std::fs::read_to_string(inbox.join(f)).unwrap();
    let r = reason("rejected/a-pipe.json.reason");
    assert!(r.contains("not a regular file"), "{r}");
    let r = reason("rejected/b-link.json.reason");
    assert!(r.contains("symbolic link"), "{r}");
    // The link in rejected/ was not written through: the file and its reason went under a fresh name.
    assert_eq!(
        std::fs::read_to_string(outside.join("victim")).unwrap(),
        "untouched\n"
    );
    let fresh: Vec<String> = std::fs::read_dir(inbox.join("rejected"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("c-bad.json") && n.ends_with(".reason") && n != "c-bad.json.reason"
        })
        .collect();
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    let r = reason(&format!("rejected/{}", fresh[0]));
    assert!(r.contains("cannot be parsed"), "{r}");
    assert!(
        std::fs::read_to_string(
            inbox.join(format!("rejected/{}", fresh[0].trim_end_matches(".reason")))
        )
        .unwrap()
        .contains("truncated"),
        "the moved file is beside its reason"
    );
    // The link's target was never read, and the good document after them all was queued.
    use sha2::Digest;
    let secret_job = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&secret)));
    let (code, _) = d.request("GET", &format!("/v1/jobs/{secret_job}"), None, None);
    assert_eq!(code, 404, "the link's target was queued");
    let (_, h) = d.request("GET", "/healthz", None, None);
    assert_eq!(h["queue"]["ready"], 1, "{h}");
}

#[test]
fn sigterm_lets_a_running_rebuild_finish_and_runs_nothing_twice() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(data.path(), &[("REPROD_SERVER_SHUTDOWN_GRACE_SECS", "60")]);
    let (_, v) = d.submit(&hello_doc(&repo, &digests, "slow", "sleep 3\n"));
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    d.wait_job(&id, "leased", Duration::from_secs(30));
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(90)), Some(0));
    let d = Daemon::start(data.path(), &[]);
    let j = d.job(&id);
    assert_eq!(j["state"], "done", "finished before exiting: {j:#}");
    assert_eq!(j["attempt"], 1, "run once: {j:#}");
    assert_eq!(j["verdict"]["status"], "reproducible");
}

#[test]
fn sigterm_past_the_grace_period_gives_the_job_back() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(data.path(), &[("REPROD_SERVER_SHUTDOWN_GRACE_SECS", "1")]);
    let (_, v) = d.submit(&hello_doc(&repo, &digests, "very-slow", "sleep 30\n"));
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    d.wait_job(&id, "leased", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2)); // the step container is running
    let pid = d.child.id();
    d.signal("-TERM");
    d.wait_line("gave back", Duration::from_secs(20));
    assert_eq!(d.wait_exit(Duration::from_secs(30)), Some(0));
    // The stopped step's container went with it.
    assert!(
        containers_of(&[pid]).is_empty(),
        "left behind: {:?}",
        containers_of(&[pid])
    );
    let d = Daemon::start(data.path(), &[]);
    let j = d.job(&id);
    assert!(
        j["state"] == "ready" || j["state"] == "leased",
        "given back, not lost: {j:#}"
    );
    assert_eq!(j["verdict"], Value::Null);
}

/// Kills the daemon with SIGKILL at 20 moments while provenance is submitted and rebuilt. After the last
/// restart every acknowledged submission ends with exactly one verdict and nothing of reprod's runs.
#[test]
fn kill_9_twenty_times_loses_nothing_and_duplicates_nothing() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let mut acked: Vec<String> = Vec::new();
    let mut pids = Vec::new();
    for round in 0..20u64 {
        let mut d = Daemon::start(data.path(), &[("REPROD_SERVER_LEASE_SECS", "6")]);
        pids.push(d.child.id());
        for k in 0..2 {
            let (code, v) = d.submit(&hello_doc(&repo, &digests, &format!("r{round}k{k}"), ""));
            if code == 202 {
                acked.push(v["jobs"][0]["id"].as_str().unwrap().to_string());
            }
        }
        // Kill at a different moment each round: 0.2 to 3 s in.
        std::thread::sleep(Duration::from_millis(200 + (round * 613) % 2800));
        d.signal("-KILL");
        d.wait_exit(Duration::from_secs(10));
    }
    acked.sort();
    acked.dedup();
    assert_eq!(acked.len(), 40, "every submission was acknowledged");
    let mut d = Daemon::start(data.path(), &[("REPROD_SERVER_LEASE_SECS", "6")]);
    pids.push(d.child.id());
    let mut attempts = std::collections::BTreeMap::new();
    for id in &acked {
        let j = d.wait_job(id, "done", Duration::from_secs(400));
        assert_eq!(j["verdict"]["status"], "reproducible", "{id}: {j:#}");
        *attempts
            .entry(j["attempt"].as_u64().unwrap_or(0))
            .or_insert(0) += 1;
    }
    // How often a kill hit a job mid-rebuild (attempt > 1); printed for the record.
    eprintln!(
        "kill -9 x20: {} jobs, by attempts {attempts:?}",
        acked.len()
    );
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    // Nothing any of the 21 daemons started is left (the killed ones' were swept at the next start):
    // no job directory, no container.
    let left: Vec<_> = std::fs::read_dir(data.path().join("jobs"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "job directories left: {left:?}");
    assert!(
        containers_of(&pids).is_empty(),
        "left behind: {:?}",
        containers_of(&pids)
    );
    // Exactly one verdict per acknowledged job, none for anything else.
    let store = reprod::store::Store::open(&data.path().join("store")).unwrap();
    assert_eq!(store.verdict_count(), acked.len());
    for id in &acked {
        let v: serde_json::Value =
            serde_json::from_str(store.verdict_json(id).unwrap().unwrap().get()).unwrap();
        assert_eq!(v["status"], "reproducible");
        // Signed in the same transaction: a verdict never exists without its envelopes.
        let record = store.record(id).unwrap().unwrap();
        assert_eq!(record.attestations, ["vsa-passed", "provenance"], "{id}");
        assert!(
            store.attestation(id, "vsa-passed").unwrap().is_some(),
            "{id}"
        );
    }
    // The subject index names every job once, and so do the records and the per-status count.
    let mut indexed = store.jobs_for_subject(&digests[0]).unwrap();
    indexed.sort();
    assert_eq!(indexed, acked);
    let mut history: Vec<String> = store
        .history(&digests[0])
        .unwrap()
        .into_iter()
        .map(|r| r.job)
        .collect();
    history.sort();
    assert_eq!(history, acked);
    assert_eq!(
        store.counts().unwrap(),
        vec![("reproducible".to_string(), acked.len() as u64)]
    );
}

fn start_worker(data: &Path, url: &str, token: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reprod"))
        .args(["worker", "--server", url, "--token", token])
        .env("REPROD_DATA_DIR", data)
        .env("REPROD_SOURCE_ALLOW_FILE", "true")
        .env("REPROD_IMAGES_FETCH_ORIGINALS", "false")
        .env("REPROD_SERVER_POLL_MS", "200")
        .env("REPROD_TRUST_REQUIRE_SIGNATURE", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    panic!(
        "the worker never said {needle:?}; it said:\n{}",
        seen.join("\n")
    );
}

#[test]
fn remote_workers_lease_over_http_and_a_dead_workers_job_goes_to_another() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        data.path(),
        &[
            ("REPROD_SERVER_WORKERS", "0"),
            ("REPROD_SERVER_LEASE_SECS", "4"),
            (
                "REPROD_SERVER_WORKER_TOKENS",
                "{a = \"tok-a-0123456789abcdef\", b = \"tok-b-0123456789abcdef\"}",
            ),
        ],
    );
    // Registration is closed: unknown workers are refused.
    let (code, v) = d.request(
        "POST",
        "/v1/worker/lease",
        Some("tok-x-0123456789abcdef"),
        Some(b"{}"),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (code, _) = d.request("POST", "/v1/worker/lease", None, Some(b"{}"));
    assert_eq!(code, 401);

    // Worker A (a real process) leases a slow job and is killed mid-rebuild.
    let dir_a = tempfile::tempdir().unwrap();
    let (mut a, a_lines) = start_worker(dir_a.path(), &d.url, "tok-a-0123456789abcdef");
    let a_pid = a.id();
    let (_, v) = d.submit(&hello_doc(&repo, &digests, "slow", "sleep 20\n"));
    let slow = v["jobs"][0]["id"].as_str().unwrap().to_string();
    wait_for(&a_lines, "leased");
    std::thread::sleep(Duration::from_secs(2)); // its step container is running
    a.kill().unwrap();
    a.wait().unwrap();

    // A lease taken by hand as worker a: b cannot complete it; after expiry a's completion is stale.
    let (_, v) = d.submit(&hello_doc(&repo, &digests, "quick", ""));
    let quick = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let (code, lease) = d.request(
        "POST",
        "/v1/worker/lease",
        Some("tok-a-0123456789abcdef"),
        Some(b"{}"),
    );
    assert_eq!(
        (code, lease["job"].as_str()),
        (200, Some(quick.as_str())),
        "{lease}"
    );
    let late = serde_json::to_vec(&json!({"job": quick, "token": lease["token"], "verdict": {"status": "reproducible", "subjects": []}})).unwrap();
    let (code, v) = d.request(
        "POST",
        "/v1/worker/complete",
        Some("tok-b-0123456789abcdef"),
        Some(&late),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("not-your-lease")),
        "{v}"
    );
    // The server signs what it records, so a worker cannot choose it: subjects that are not the
    // document's are refused.
    let forged = serde_json::to_vec(&json!({"job": quick, "token": lease["token"], "verdict": {
        "status": "reproducible",
        "subjects": [{"name": "evil.example/app", "digest": unbuilt_digest('e'), "matched": true}]}}))
    .unwrap();
    let (code, v) = d.request(
        "POST",
        "/v1/worker/complete",
        Some("tok-a-0123456789abcdef"),
        Some(&forged),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (422, Some("bad-verdict")),
        "{v}"
    );

    // Worker B finishes both once the leases expire.
    let dir_b = tempfile::tempdir().unwrap();
    let (mut b, _b_lines) = start_worker(dir_b.path(), &d.url, "tok-b-0123456789abcdef");
    let j = d.wait_job(&quick, "done", Duration::from_secs(120));
    assert_eq!(
        j["artifacts"],
        json!(["logs/00-build.log"]),
        "uploaded by the remote worker: {j:#}"
    );
    assert_eq!(
        (j["attempt"].as_u64(), j["verdict"]["status"].as_str()),
        (Some(2), Some("reproducible")),
        "{j:#}"
    );
    // The server signed the remote worker's verdict: the worker never holds the key.
    assert_eq!(
        j["record"]["attestations"],
        json!(["vsa-passed", "provenance"]),
        "{j:#}"
    );
    // Named as the worker's claim: the verdict and the signed provenance say who rebuilt it.
    assert_eq!(j["verdict"]["rebuilt_by"], "remote:b", "{j:#}");
    let (code, vsa) = d.request(
        "GET",
        &format!("/v1/jobs/{quick}/attestations/vsa"),
        None,
        None,
    );
    assert_eq!(
        (code, vsa["payloadType"].as_str()),
        (200, Some("application/vnd.in-toto+json"))
    );
    // The signed rebuild provenance names the worker as the builder of what it reported, and says those
    // facts are its claim; both statements are valid in-toto and SLSA.
    let (code, prov) = d.request(
        "GET",
        &format!("/v1/jobs/{quick}/attestations/provenance"),
        None,
        None,
    );
    assert_eq!(code, 200, "{prov}");
    let signed = dir_b.path().join("remote-provenance.json");
    std::fs::write(&signed, serde_json::to_vec(&prov).unwrap()).unwrap();
    let summary = dir_b.path().join("remote-vsa.json");
    std::fs::write(&summary, serde_json::to_vec(&vsa).unwrap()).unwrap();
    let statement = envelope_statement(&std::fs::read(&signed).unwrap());
    let predicate = &statement["predicate"];
    assert!(
        predicate["runDetails"]["builder"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/workers/remote%3Ab"),
        "{predicate:#}"
    );
    assert_eq!(
        predicate["buildDefinition"]["internalParameters"]["claimedBy"]["worker"], "remote:b",
        "{predicate:#}"
    );
    assert_valid_statements(&[&signed, &summary]);
    let (code, v) = d.request(
        "POST",
        "/v1/worker/complete",
        Some("tok-a-0123456789abcdef"),
        Some(&late),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("stale-lease")),
        "the dead worker's late completion: {v}"
    );
    let j = d.wait_job(&slow, "done", Duration::from_secs(180));
    assert_eq!(
        (j["attempt"].as_u64(), j["verdict"]["status"].as_str()),
        (Some(2), Some("reproducible")),
        "{j:#}"
    );
    assert_eq!(
        j["verdict"]["subjects"].as_array().map(Vec::len),
        Some(2),
        "the real verdict, not the late one"
    );
    b.kill().unwrap();
    b.wait().unwrap();
    // The container the killed worker left running was swept by the next rebuild on this engine.
    assert!(
        containers_of(&[a_pid]).is_empty(),
        "left behind: {:?}",
        containers_of(&[a_pid])
    );
    // Its job directory, a mounted filesystem, is swept by the next worker on its data directory.
    let mounted = |dir: &Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&dir.display().to_string())
    };
    assert!(
        mounted(dir_a.path()),
        "the killed worker left its job mounted"
    );
    let (mut again, again_lines) = start_worker(dir_a.path(), &d.url, "tok-a-0123456789abcdef");
    wait_for(&again_lines, "leasing");
    assert!(!mounted(dir_a.path()), "swept at the next start");
    again.kill().unwrap();
    again.wait().unwrap();
    unmount_beneath(dir_b.path());
}

#[test]
fn a_newer_or_corrupt_store_or_unwritable_data_directory_stops_serve_at_start() {
    let run = |data: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_reprod"))
            .arg("serve")
            .env("REPROD_DATA_DIR", data)
            .env("REPROD_SERVER_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A store written by a newer reprod.
    let data = tempfile::tempdir().unwrap();
    {
        let db = sled::open(data.path().join("queue")).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let (code, stderr) = run(data.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("schema version 99") && stderr.contains("upgrade reprod"),
        "{stderr}"
    );
    // Garbage where the store should be.
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("queue")).unwrap();
    std::fs::write(data.path().join("queue/db"), vec![0x5Au8; 8192]).unwrap();
    std::fs::write(data.path().join("queue/conf"), b"garbage").unwrap();
    let (code, stderr) = run(data.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("opening the queue"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A data directory that cannot be created.
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let (code, stderr) = run(&file.join("data"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("creating the data directory"), "{stderr}");
}

/// Pushes a blob to the local registry with the distribution API; returns its digest.
/// A manifest whose one layer is `envelope` (a DSSE envelope), as cosign and OCI 1.1 referrers push them.
fn attestation_manifest(repo: &str, envelope: &[u8], subject: Option<&str>) -> Value {
    let config = push_blob(repo, b"{}");
    let layer = push_blob(repo, envelope);
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": layer, "size": envelope.len(),
                    "annotations": {"predicateType": "https://tekton.dev/chains/provenance"}}],
    });
    if let Some(s) = subject {
        m["artifactType"] = json!("application/vnd.in-toto+json");
        m["subject"] = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": s, "size": 1});
    }
    m
}

/// A daemon watching `repositories` on the local registry every second, trusting the key at `pem` and
/// nothing unsigned.
fn watching_daemon(
    data: &Path,
    pem: &Path,
    repositories: &[&str],
    extra: &[(&str, &str)],
) -> Daemon {
    let config = data.join("reprod.toml");
    std::fs::write(
        &config,
        format!(
            "[trust]\nkeys = [{:?}]\n\n[[server.watch]]\nregistry = \"127.0.0.1:5000\"\nrepositories = {repositories:?}\ninsecure = true\ninterval_secs = 1\n",
            pem.display().to_string()
        ),
    )
    .unwrap();
    let mut env = vec![
        ("REPROD_CONFIG", config.to_str().unwrap()),
        ("REPROD_SERVER_ACCEPT_UNSIGNED", "false"),
    ];
    env.extend_from_slice(extra);
    Daemon::start(data, &env)
}

/// Waits until `n` jobs are in queue state `state`.
fn wait_queue(d: &Daemon, state: &str, n: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, h) = d.request("GET", "/healthz", None, None);
        if h["queue"][state].as_u64() == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not {n} jobs {state} within {timeout:?}: {h}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `reprod status IMAGE:TAG` resolves the tag through the registry first (an index to its image for this
/// platform), says what it resolved to, and answers for that digest; a tag the registry does not have is
/// exit 2 saying how to give the digest instead.
#[test]
fn status_resolves_a_tag_through_the_registry() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let name = format!("reprod-test/status-tag-{}", std::process::id());
    push_hello(&repo, &name, "v1");
    let raw = sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://127.0.0.1:5000/{name}:v1"),
    ]));
    // Another image in the same repository stands for the index's arm64 entry (the registry checks that
    // every entry is there).
    copy_image(
        &format!("docker://{}", builder_image()),
        &format!("docker://127.0.0.1:5000/{name}:other"),
    );
    let other = sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://127.0.0.1:5000/{name}:other"),
    ]));
    let other_digest = builder_image().split_once('@').unwrap().1;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other_digest,
             "size": other.len(), "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digests[0],
             "size": raw.len(), "platform": {"os": "linux", "architecture": "amd64"}}
        ]
    });
    let index_digest = push_manifest(
        &name,
        "multi",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &[]);
    let (code, v) = d.submit(&hello_doc(&repo, &digests, "tag", ""));
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let done = d.wait_job(&id, "done", Duration::from_secs(120));
    assert_eq!(done["verdict"]["status"], "reproducible", "{done:#}");
    let status = |reference: &str| {
        cli(
            &["status", reference, "--server", &d.url],
            &[("REPROD_IMAGES_INSECURE", "[\"127.0.0.1:5000\"]")],
        )
    };
    let (code, out, err) = status(&format!("127.0.0.1:5000/{name}:v1"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(&format!(":v1 is {}", digests[0])), "{err}");
    let (code, out, err) = status(&format!("127.0.0.1:5000/{name}:multi"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!(
            "is the index {index_digest}; its linux/amd64 image is {}",
            digests[0]
        )),
        "{err}"
    );
    let (code, _, err) = status(&format!("127.0.0.1:5000/{name}:nope"));
    assert_eq!(code, 2);
    assert!(err.contains("skopeo inspect --format"), "{err}");
}

/// Images pushed to a real registry with a cosign `.att` attestation and an OCI 1.1 referrer (through the
/// referrers fallback tag, as this registry has no referrers API) are found, verified and rebuilt.
#[test]
fn the_registry_watcher_finds_cosign_and_referrer_attestations() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let name = format!("reprod-test/watch-{}", std::process::id());
    push_hello(&repo, &name, "v1");
    let image = &digests[0];
    let (key, pem) = builder_key(data.path());
    // The cosign way: a manifest under the tag sha256-<hex>.att.
    let hex = image.trim_start_matches("sha256:");
    let att = attestation_manifest(
        &name,
        &sign_envelope(&hello_doc(&repo, &digests, "cosign", ""), &key),
        None,
    );
    push_manifest(
        &name,
        &format!("sha256-{hex}.att"),
        "application/vnd.oci.image.manifest.v1+json",
        &att,
    );
    // The OCI 1.1 way: a manifest with `subject`, listed by the fallback tag sha256-<hex>.
    let referrer = attestation_manifest(
        &name,
        &sign_envelope(&hello_doc(&repo, &digests, "referrer", ""), &key),
        Some(image),
    );
    let referrer_digest = push_manifest(
        &name,
        "referrer",
        "application/vnd.oci.image.manifest.v1+json",
        &referrer,
    );
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": referrer_digest,
                       "size": serde_json::to_vec(&referrer).unwrap().len(), "artifactType": "application/vnd.in-toto+json"}],
    });
    push_manifest(
        &name,
        &format!("sha256-{hex}"),
        "application/vnd.oci.image.index.v1+json",
        &index,
    );

    let mut d = watching_daemon(data.path(), &pem, &[&name], &[]);
    wait_queue(&d, "done", 2, Duration::from_secs(180));
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    let store = reprod::store::Store::open(&data.path().join("store")).unwrap();
    let jobs = store.jobs_for_subject(image).unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for job in jobs {
        let v: serde_json::Value =
            serde_json::from_str(store.verdict_json(&job).unwrap().unwrap().get()).unwrap();
        assert_eq!(v["status"], "reproducible", "{v:#}");
        assert_eq!(
            v["provenance"]["verification"]["status"], "verified",
            "{v:#}"
        );
    }
}

/// An image index as `docker buildx build --push` writes it: the platform manifest, and beside it an
/// attestation manifest (annotated with the platform manifest's digest) whose in-toto layers are BuildKit's
/// provenance and an SBOM. The watcher reads the provenance layer (and never fetches the SBOM, whose blob
/// is deleted from the registry); the rebuild says what it can: the plan is complete, and no BuildKit
/// builder runs here.
/// Pushes `name:v1`, an index as `docker buildx build --push` writes it: `image` (the hello layout) and its
/// attestation manifest, whose layers are BuildKit provenance (the cupdate statement, about `image`) and
/// an SBOM, whose blob is then deleted. Returns the index's digest.
fn push_buildkit_index(repo: &Repo, name: &str, image: &str) -> String {
    push_hello(repo, name, "platform");
    let corpus = project_root()
        .join("../shared/corpus/families/buildkit/cupdate-ghcr-slsa-v0.2-mode-max.json");
    let mut statement: Value = serde_json::from_slice(&std::fs::read(corpus).unwrap()).unwrap();
    statement["subject"] = json!([subject(
        "pkg:docker/127.0.0.1:5000/reprod-test/buildkit@v1?platform=linux%2Famd64",
        image
    )]);
    let statement = serde_json::to_vec(&statement).unwrap();
    let provenance = push_blob(name, &statement);
    let config = push_blob(name, b"{}");
    let sbom = br#"{"predicateType":"https://spdx.dev/Document"}"#;
    let sbom_digest = push_blob(name, sbom);
    let attestation = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.docker.attestation.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [
            {"mediaType": "application/vnd.in-toto+json", "digest": sbom_digest, "size": sbom.len(),
             "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}},
            {"mediaType": "application/vnd.in-toto+json", "digest": provenance, "size": statement.len(),
             "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}
        ],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image, "size": 1}
    });
    let attestation_digest = push_manifest(
        name,
        "attestation",
        "application/vnd.oci.image.manifest.v1+json",
        &attestation,
    );
    let platform_size = sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://127.0.0.1:5000/{name}:platform"),
    ]))
    .len();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image, "size": platform_size,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": attestation_digest,
             "size": serde_json::to_vec(&attestation).unwrap().len(),
             "annotations": {"vnd.docker.reference.digest": image, "vnd.docker.reference.type": "attestation-manifest"},
             "platform": {"architecture": "unknown", "os": "unknown"}}
        ]
    });
    let index_digest = push_manifest(
        name,
        "v1",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    // Gone once the manifests are in: a watcher that fetched it would fail on this image.
    sh(Command::new("curl").args([
        "-sf",
        "-X",
        "DELETE",
        &format!("http://127.0.0.1:5000/v2/{name}/blobs/{sbom_digest}"),
    ]));
    index_digest
}

#[test]
fn the_registry_watcher_finds_buildkit_provenance_inside_the_image_index() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let image = &digests[0];
    let data = tempfile::tempdir().unwrap();
    let name = format!("reprod-test/buildkit-{}", std::process::id());
    push_buildkit_index(&repo, &name, image);

    // BuildKit's layers are unsigned: this daemon accepts unsigned documents.
    let (_, pem) = builder_key(data.path());
    let mut d = watching_daemon(
        data.path(),
        &pem,
        &[&name],
        &[("REPROD_SERVER_ACCEPT_UNSIGNED", "true")],
    );
    wait_queue(&d, "done", 1, Duration::from_secs(120));
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    let store = reprod::store::Store::open(&data.path().join("store")).unwrap();
    let jobs = store.jobs_for_subject(image).unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let v: Value =
        serde_json::from_str(store.verdict_json(&jobs[0]).unwrap().unwrap().get()).unwrap();
    assert_eq!(v["status"], "unrebuildable", "{v:#}");
    assert_eq!(v["reason"], "no-builder: buildkit", "{v:#}");
    assert_eq!(v["subjects"][0]["state"], "not-compared", "{v:#}");
}

/// `reprod rebuild docker://REGISTRY/REPO@sha256:INDEX` finds the BuildKit provenance in the index, as the
/// watcher does, and rebuilds from it; a tag, or an image with no attestation, is refused plainly.
#[test]
fn rebuild_of_an_image_index_reads_its_buildkit_provenance() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let image = &digests[0];
    let name = format!("reprod-test/buildkit-rebuild-{}", std::process::id());
    let index = push_buildkit_index(&repo, &name, image);
    let r = Reprod::new();
    let reference = format!("docker://127.0.0.1:5000/{name}@{index}");
    let out = r.run(&["rebuild", "--json", &reference]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(v["status"], "unrebuildable", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "no-builder: buildkit");
    assert_eq!(v["provenance"]["origin"], reference.as_str());
    assert_eq!(v["subjects"][0]["digest"], image.as_str());
    assert_eq!(v["subjects"][0]["state"], "not-compared");
    assert_eq!(out.status.code(), Some(1));

    for (bad, says) in [
        (
            format!("docker://127.0.0.1:5000/{name}:v1"),
            "pinned by digest",
        ),
        (
            format!("docker://127.0.0.1:5000/{name}@{image}"),
            "has no attestation reprod can find",
        ),
    ] {
        let out = r.run(&["rebuild", &bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
}

/// One watched image whose attestation cannot be fetched (its layer blob is gone from the registry) does
/// not stop the watcher: the good images beside it, in its own repository and in the next one, are still
/// ingested, and the broken one is logged and retried with a backoff of its own.
#[test]
fn one_poisoned_image_does_not_stop_the_registry_watcher() {
    let repo = Repo::hello();
    let data = tempfile::tempdir().unwrap();
    let poisoned_repo = format!("reprod-test/poisoned-{}", std::process::id());
    let good_repo = format!("reprod-test/good-{}", std::process::id());
    let (key, pem) = builder_key(data.path());
    let attest = |name: &str, image: &str, c: char| {
        let doc = repo.provenance(
            vec![subject("example.invalid/watched", &unbuilt_digest(c))],
            HELLO_SCRIPT,
        );
        let att = attestation_manifest(name, &sign_envelope(&doc, &key), None);
        let hex = image.trim_start_matches("sha256:");
        push_manifest(
            name,
            &format!("sha256-{hex}.att"),
            "application/vnd.oci.image.manifest.v1+json",
            &att,
        );
        att
    };
    // The poisoned image is in the first repository: a poll that stops at it never reaches the second.
    let poisoned = push_small_image(&poisoned_repo, "a-poisoned");
    let att = attest(&poisoned_repo, &poisoned, 'a');
    let layer = att["layers"][0]["digest"].as_str().unwrap();
    sh(Command::new("curl").args([
        "-sf",
        "-X",
        "DELETE",
        &format!("http://127.0.0.1:5000/v2/{poisoned_repo}/blobs/{layer}"),
    ]));
    let beside = push_small_image(&poisoned_repo, "b-good");
    attest(&poisoned_repo, &beside, 'b');
    let next = push_small_image(&good_repo, "v1");
    attest(&good_repo, &next, 'c');

    let d = watching_daemon(
        data.path(),
        &pem,
        &[&poisoned_repo, &good_repo],
        &[("REPROD_SERVER_WORKERS", "0")],
    );
    // Both good images are ingested beside the poisoned one.
    wait_queue(&d, "ready", 2, Duration::from_secs(60));
    let line = d.wait_line(&poisoned, Duration::from_secs(10));
    assert!(line.contains("retry"), "{line}");
    let store_dir = data.path().join("store");
    drop(d);
    let store = reprod::store::Store::open(&store_dir).unwrap();
    for (name, image) in [(&poisoned_repo, &beside), (&good_repo, &next)] {
        assert!(store
            .watched(&format!("127.0.0.1:5000/{name}@{image}"))
            .unwrap());
    }
    assert!(
        !store
            .watched(&format!("127.0.0.1:5000/{poisoned_repo}@{poisoned}"))
            .unwrap(),
        "looked at again later, not given up"
    );
}

/// A full disk stops intake with a clear error and loses nothing acknowledged. The data directory is a
/// small tmpfs mounted by the test (root is needed, as for Docker).
#[test]
fn a_full_disk_stops_intake_cleanly_and_keeps_what_was_acknowledged() {
    let repo = Repo::hello();
    let mnt = tempfile::tempdir().unwrap();
    sh(Command::new("mount").args([
        "-t",
        "tmpfs",
        "-o",
        "size=24m",
        "tmpfs",
        mnt.path().to_str().unwrap(),
    ]));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path().to_path_buf());
    let data = mnt.path().join("data");
    let d = Daemon::start(&data, &[("REPROD_SERVER_WORKERS", "0")]);
    let doc = |n: usize| {
        let mut doc = repo.provenance(
            vec![subject("example.invalid/x", &unbuilt_digest('a'))],
            HELLO_SCRIPT,
        );
        doc["predicate"]["recipe"]["steps"][0]["entryPoint"] =
            json!(format!("#!/bin/sh\n# {n} {}\n", "x".repeat(20_000)));
        doc
    };
    let mut acked = Vec::new();
    for n in 0..5 {
        let (code, v) = d.submit(&doc(n));
        assert_eq!(code, 202, "{v}");
        acked.push(v["jobs"][0]["id"].as_str().unwrap().to_string());
    }
    // Fill the disk.
    let filler = mnt.path().join("filler");
    let _ = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=1M",
            "count=64",
        ])
        .stderr(Stdio::null())
        .status();
    let mut refused = None;
    for n in 5..400 {
        let (code, v) = d.submit(&doc(n));
        match code {
            202 => acked.push(v["jobs"][0]["id"].as_str().unwrap().to_string()),
            503 => {
                refused = Some(v);
                break;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    let refused =
        refused.unwrap_or_else(|| panic!("the disk never filled ({} accepted)", acked.len()));
    assert_eq!(refused["error"]["code"], "storage", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was recorded"),
        "{refused}"
    );
    // Space comes back: everything acknowledged is there, and intake works again.
    std::fs::remove_file(&filler).unwrap();
    drop(d);
    let d = Daemon::start(&data, &[("REPROD_SERVER_WORKERS", "0")]);
    for id in &acked {
        assert_eq!(d.job(id)["state"], "ready", "{id} was acknowledged");
    }
    let doc = repo.provenance(
        vec![subject("example.invalid/y", &unbuilt_digest('b'))],
        HELLO_SCRIPT,
    );
    assert_eq!(d.submit(&doc).0, 202);
    eprintln!(
        "full disk: {} accepted before intake stopped with 503",
        acked.len()
    );
}

/// Every link in an answer is absolute: under `server.public_url`, else, when the server listens on every
/// address, under the `Host` the client sent (only a plain `host[:port]`), else under the listen address.
#[test]
fn answers_carry_absolute_links_clients_can_follow() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = Daemon::start(
        data.path(),
        &[
            ("REPROD_SERVER_LISTEN", &format!("0.0.0.0:{port}")),
            ("REPROD_SERVER_WORKERS", "0"),
        ],
    );
    let submit = |host: &str| -> Value {
        let o = Command::new("curl")
            .args(["-s", "-H", &format!("Host: {host}"), "-H"])
            .arg(format!("Authorization: Bearer {TOKEN}"))
            .args([
                "--data-binary",
                &hello_doc(&repo, &digests, "links", "").to_string(),
            ])
            .arg(format!("http://127.0.0.1:{port}/v1/provenance"))
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = submit("rebuilder.example:8443");
    let id = v["jobs"][0]["id"].as_str().unwrap();
    assert_eq!(
        v["jobs"][0]["url"],
        format!("http://rebuilder.example:8443/v1/jobs/{id}").as_str()
    );
    assert_eq!(
        v["jobs"][0]["page"],
        format!("http://rebuilder.example:8443/jobs/{id}").as_str()
    );
    // A Host that would change the URL's path is not used.
    let v = submit("evil.example/phish?");
    assert_eq!(
        v["jobs"][0]["url"],
        format!("http://0.0.0.0:{port}/v1/jobs/{id}").as_str()
    );
    assert!(
        d.startup
            .iter()
            .any(|l| l.contains("server.public_url is empty")),
        "{:#?}",
        d.startup
    );
    drop(d);
    // With public_url set, it is used whatever the Host.
    let d = Daemon::start(
        data.path(),
        &[("REPROD_SERVER_PUBLIC_URL", "https://rebuilder.example/")],
    );
    let (code, v) = d.submit(&hello_doc(&repo, &digests, "links", ""));
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        v["jobs"][0]["page"],
        format!("https://rebuilder.example/jobs/{id}").as_str()
    );
    let done = d.wait_job(id, "done", Duration::from_secs(120));
    let base = "https://rebuilder.example";
    assert_eq!(
        done["record"]["links"]["job"],
        format!("{base}/v1/jobs/{id}").as_str()
    );
    let (_, list) = d.request("GET", "/v1/verdicts", None, None);
    let links = &list["verdicts"][0]["links"];
    assert_eq!(links["page"], format!("{base}/jobs/{id}").as_str());
    assert!(links["attestations"]["vsa-passed"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{base}/v1/jobs/{id}/attestations/")));
}

/// At its default log level, `serve` says each state change of a job in one line: queued, leased, verdict
/// recorded; and nothing else per job.
#[test]
fn serve_logs_one_line_per_job_state_change_by_default() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(data.path(), &[], |c| {
        c.env_remove("RUST_LOG");
    });
    let (code, v) = d.submit(&hello_doc(&repo, &digests, "logged", ""));
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let lines = d.lines_until("verdict recorded", Duration::from_secs(120));
    let about: Vec<&String> = lines.iter().filter(|l| l.contains(&id)).collect();
    assert_eq!(about.len(), 3, "{lines:#?}");
    assert!(
        about[0].contains("reprod::jobs") && about[0].contains("queued"),
        "{about:#?}"
    );
    assert!(about[1].contains("leased"), "{about:#?}");
    assert!(
        about[2].contains("verdict recorded") && about[2].contains("reproducible"),
        "{about:#?}"
    );
}

/// The page of a job an in-process worker is running shows the step, how long it has run and its newest
/// output lines, and reloads itself; once judged, it stops reloading.
#[test]
fn a_running_jobs_page_shows_its_live_output_until_it_is_judged() {
    let repo = Repo::hello();
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &[]);
    let doc = repo.provenance(
        vec![subject("example.invalid/slow", &unbuilt_digest('5'))],
        "#!/bin/sh\necho 'halfway there'\nsleep 8\necho done\n",
    );
    let (code, v) = d.submit(&doc);
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let page = || d.text(&format!("/jobs/{id}")).1;
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = loop {
        let p = page();
        if p.contains("halfway there") {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "never showed the live output:\n{p}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        live.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "{live}"
    );
    assert!(
        live.contains("<td id=\"running\">step 1/1 build for "),
        "{live}"
    );
    assert!(
        live.contains("<pre class=\"log\" id=\"live-log\">halfway there"),
        "{live}"
    );
    d.wait_job(&id, "done", Duration::from_secs(60));
    let judged = page();
    assert!(
        !judged.contains("http-equiv=\"refresh\"") && !judged.contains("id=\"live-log\""),
        "{judged}"
    );
}

/// `reprod recheck`: an operator has a judged digest (or an image's newest digest) rebuilt again, without
/// reusing the first rebuild, as a job of its own whose verdict joins the history beside the first; a
/// target nothing decides, a missing or refused token are exit 2.
#[test]
fn recheck_rebuilds_what_was_judged_again_and_keeps_both_verdicts() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let admin = "operator-token-0123456789";
    let d = Daemon::start(
        data.path(),
        &[("REPROD_SERVER_ADMIN_TOKENS", &format!("[{admin:?}]"))],
    );
    let (code, v) = d.submit(&hello_doc(&repo, &digests, "recheck", ""));
    assert_eq!(code, 202, "{v}");
    let first = v["jobs"][0]["id"].as_str().unwrap().to_string();
    d.wait_job(&first, "done", Duration::from_secs(120));
    let env = [("REPROD_ADMIN_TOKEN", admin)];
    let (code, out, err) = cli(&["recheck", &digests[0], "--server", &d.url], &env);
    assert_eq!(code, 0, "{out}{err}");
    let again = out.trim().to_string();
    assert!(again.starts_with(&format!("{first}.recheck-")), "{again}");
    assert!(
        err.contains(&format!("queued a recheck: {}/jobs/{again}", d.url)),
        "{err}"
    );
    let done = d.wait_job(&again, "done", Duration::from_secs(120));
    assert_eq!(done["verdict"]["status"], "reproducible", "{done:#}");
    assert!(
        done["verdict"]["reused_rebuild"].is_null(),
        "a recheck reused the first rebuild: {done:#}"
    );
    assert!(!done["verdict"]["steps"].as_array().unwrap().is_empty());
    let (_, lookup) = d.request("GET", &format!("/v1/verdicts/{}", digests[0]), None, None);
    let jobs: Vec<&str> = lookup["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, [again.as_str(), first.as_str()], "{lookup:#}");
    // By image name: its newest digest's deciding document.
    let (code, out, err) = cli(
        &[
            "recheck",
            "example.invalid/hello",
            "--server",
            &d.url,
            "--json",
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let job: Value = serde_json::from_str(&out).unwrap();
    assert!(job["id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{first}.recheck-")));
    // Nothing decides it, no token, another token: exit 2, saying why.
    let (code, _, err) = cli(&["recheck", &unbuilt_digest('e'), "--server", &d.url], &env);
    assert_eq!(code, 2);
    assert!(
        err.contains("no verdict with a kept document decides"),
        "{err}"
    );
    let (code, _, err) = cli(&["recheck", &digests[0], "--server", &d.url], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("REPROD_ADMIN_TOKEN"), "{err}");
    let (code, _, _) = cli(
        &["recheck", &digests[0], "--server", &d.url],
        &[("REPROD_ADMIN_TOKEN", "not-the-operator-token")],
    );
    assert_eq!(code, 2);
}

/// A recheck that no longer gives the bytes the first rebuild gave is drift: flagged on the image list,
/// the image page and in the feed, while the bit-for-bit rebuild still decides the digest's status.
#[test]
fn a_recheck_that_differs_is_drift_and_the_proof_stands() {
    let repo = Repo::hello();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The toolchain "drifts" at `flip`: builds after it write other bytes.
    let flip = now + 20;
    let script = format!(
        "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\nif [ \"$(date +%s)\" -gt {flip} ]; then ./build.sh drifted; else ./build.sh; fi\n"
    );
    let [digest, _, _] =
        repo.reference_build(&script.replace("$(workspaces.source.path)", "/workspace/source"));
    let data = tempfile::tempdir().unwrap();
    let admin = "operator-token-0123456789";
    let d = Daemon::start(
        data.path(),
        &[("REPROD_SERVER_ADMIN_TOKENS", &format!("[{admin:?}]"))],
    );
    let name = "example.invalid/drifty";
    let (code, v) = d.submit(&repo.provenance(vec![subject(name, &digest)], &script));
    assert_eq!(code, 202, "{v}");
    let first = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let done = d.wait_job(&first, "done", Duration::from_secs(120));
    assert_eq!(done["verdict"]["status"], "reproducible", "{done:#}");
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        <= flip
    {
        std::thread::sleep(Duration::from_millis(250));
    }
    let (code, out, err) = cli(
        &["recheck", &digest, "--server", &d.url],
        &[("REPROD_ADMIN_TOKEN", admin)],
    );
    assert_eq!(code, 0, "{out}{err}");
    let again = out.trim().to_string();
    let done = d.wait_job(&again, "done", Duration::from_secs(120));
    assert_eq!(done["verdict"]["status"], "unreproducible", "{done:#}");
    let (_, lookup) = d.request("GET", &format!("/v1/verdicts/{digest}"), None, None);
    assert_eq!(lookup["status"], "reproducible", "{lookup:#}");
    assert_eq!(lookup["decided_by"]["job"], first.as_str());
    let get = |path: &str| d.text(path).1;
    let images = get("/images");
    assert!(
        images.contains(&format!(
            ">{name}</a> <a class=\"regression\" href=\"/jobs/{again}\">drift</a>"
        )),
        "{images}"
    );
    let page = get("/images/example.invalid%2Fdrifty");
    assert!(
        page.contains("id=\"drift\"") && !page.contains("id=\"regression\""),
        "{page}"
    );
    let feed = get(&format!("/feed.atom?image={name}"));
    assert!(
        feed.contains(&format!("<title>drift: unreproducible: {name}</title>")),
        "{feed}"
    );
}
