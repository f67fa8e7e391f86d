//! Bad input gets one clear message and a non-zero exit, never a panic or a backtrace.

mod common;

use common::*;
use std::process::Command;

fn assert_clean_error(out: &std::process::Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit 2 for errors; stderr: {stderr}"
    );
    // Exactly one error line (warnings, e.g. about an unsigned statement, may precede it).
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?} in: {stderr}");
    }
    assert!(out.stdout.is_empty(), "nothing on stdout when no verdict");
    stderr
}

#[test]
fn no_break_space_indentation_is_named_with_line_and_column() {
    let out = Reprod::new().run(&[
        "rebuild",
        corpus("seed/distroless-provenance.as-published.txt")
            .to_str()
            .unwrap(),
    ]);
    assert_clean_error(
        &out,
        &[
            "NO-BREAK SPACE",
            "U+00A0",
            "line 3, column 1",
            "replace it with plain spaces",
        ],
    );
}

#[test]
fn missing_file() {
    let out = Reprod::new().run(&["rebuild", "/nonexistent/provenance.json"]);
    assert_clean_error(
        &out,
        &[
            "cannot read provenance /nonexistent/provenance.json",
            "No such file",
        ],
    );
}

#[test]
fn unreadable_and_truncated_json() {
    let r = Reprod::new();
    let p = r.data.path().join("t.json");
    std::fs::write(&p, "{\"predicateType\": \"x\", \"predicate\": {").unwrap();
    let out = r.run(&["rebuild", p.to_str().unwrap()]);
    assert_clean_error(&out, &["cannot be parsed", "line 1, column", "EOF"]);

    std::fs::write(&p, b"\xff\xfe{}").unwrap();
    let out = r.run(&["rebuild", p.to_str().unwrap()]);
    assert_clean_error(&out, &["not UTF-8", "line 1, column 1"]);

    let out = r.run(&[
        "rebuild",
        corpus("tektoncd-chains/e2e-golden-slsa-v1fmt-task-output-image.json.tmpl")
            .to_str()
            .unwrap(),
    ]);
    assert_clean_error(&out, &["cannot be parsed", "line "]);

    let out = r.run(&[
        "rebuild",
        corpus("sigstore-python/slsa_predicate_v1_0.json")
            .to_str()
            .unwrap(),
    ]);
    assert_clean_error(
        &out,
        &[
            "a bare provenance predicate",
            "with no in-toto statement around it",
        ],
    );
}

#[test]
fn huge_file_hits_the_size_cap() {
    let r = Reprod::new().with("REPROD_MAX_DOCUMENT_BYTES", "1000");
    let p = r.data.path().join("big.json");
    std::fs::write(&p, format!("{{\"pad\": \"{}\"}}", "x".repeat(5000))).unwrap();
    let out = r.run(&["rebuild", p.to_str().unwrap()]);
    assert_clean_error(
        &out,
        &[
            "5011 bytes",
            "over the 1000-byte limit",
            "max_document_bytes",
        ],
    );
}

#[test]
fn absent_docker_daemon_is_an_infrastructure_error() {
    let repo = Repo::hello();
    let prov = repo.provenance(vec![subject("x", &unbuilt_digest('1'))], HELLO_SCRIPT);
    let r = Reprod::new().with("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let p = r.data.path().join("p.json");
    std::fs::write(&p, serde_json::to_vec(&prov).unwrap()).unwrap();
    let out = r.run(&["rebuild", p.to_str().unwrap()]);
    assert_clean_error(
        &out,
        &[
            "infrastructure failure",
            "unix:///nonexistent/docker.sock",
            "does not answer",
            "start dockerd",
        ],
    );
}

#[test]
fn disallowed_repository_schemes() {
    let repo = Repo::hello();
    let digest = unbuilt_digest('2');
    let cases = [
        (
            "http://127.0.0.1:1/repo.git",
            Reprod::new(),
            "scheme \"http\"",
        ),
        (
            repo.url.as_str(),
            Reprod::new().with("REPROD_SOURCE_ALLOW_FILE", "false"),
            "source.allow_file",
        ),
    ];
    for (url, r, needle) in cases {
        let prov = chains_provenance(
            vec![subject("x", &digest)],
            HELLO_SCRIPT,
            builder_image(),
            url,
            &repo.commit,
        );
        let (code, v, _) = r.rebuild(&prov);
        assert_eq!(code, 1);
        assert_eq!(v["status"], "unrebuildable", "{v:#}");
        assert_eq!(v["reason"], "disallowed-source-scheme");
        assert!(
            v["detail"].as_str().unwrap().contains(needle),
            "{}",
            v["detail"]
        );
    }
}

#[test]
fn bad_config_is_named() {
    let r = Reprod::new().with("REPROD_SANDBOX_CPUS", "0");
    let out = r.run(&["rebuild", "/nonexistent"]);
    assert_clean_error(&out, &["loading the configuration", "sandbox.cpus"]);
    let r = Reprod::new().with("REPROD_CONFIG", "/nonexistent/reprod.toml");
    let out = r.run(&["config"]);
    assert_clean_error(&out, &["config file /nonexistent/reprod.toml"]);
    // A value of the wrong type, a TOML syntax error, a bad variable: each said on one line, with where.
    let dir = tempfile::tempdir().unwrap();
    for (text, says) in [
        ("[server]\nlisten = 5\n", "`server.listen`"),
        ("[server\nlisten = 5\n", "line 1"),
    ] {
        let file = dir.path().join("reprod.toml");
        std::fs::write(&file, text).unwrap();
        let out = Reprod::new()
            .with("REPROD_CONFIG", file.to_str().unwrap())
            .run(&["config"]);
        let stderr = assert_clean_error(&out, &[says]);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    let out = Reprod::new()
        .with("REPROD_SERVER_WORKERS", "many")
        .run(&["config"]);
    let stderr = assert_clean_error(&out, &["REPROD_SERVER_WORKERS"]);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

/// An empty or short token stops every command at load, naming the key and never the token; `reprod
/// config` shows secrets only as their length; an unknown `REPROD_*` variable is an error, as an unknown
/// key is; a bad value from the environment names its variable.
#[test]
fn tokens_unknown_variables_and_what_reprod_config_shows() {
    let r = Reprod::new().with("REPROD_SERVER_SUBMIT_TOKENS", "[\"\"]");
    assert_clean_error(
        &r.run(&["config"]),
        &[
            "server.submit_tokens[0] (set by REPROD_SERVER_SUBMIT_TOKENS)",
            "at least 16 characters",
        ],
    );
    let r = Reprod::new().with("REPROD_SERVER_WORKER_TOKENS", "{w1 = \"short-s3cret\"}");
    let stderr = assert_clean_error(&r.run(&["serve"]), &["server.worker_tokens.w1", "has 12"]);
    assert!(!stderr.contains("short-s3cret"), "{stderr}");

    let (submit, worker) = ("a-long-enough-submit-token-0123", "worker-token-0123456789");
    let r = Reprod::new()
        .with("REPROD_SERVER_SUBMIT_TOKENS", &format!("[\"{submit}\"]"))
        .with(
            "REPROD_SERVER_WORKER_TOKENS",
            &format!("{{w1 = \"{worker}\"}}"),
        )
        .with(
            "REPROD_SOURCE_MIRRORS",
            "{\"https://github.com/\" = \"https://bot:hunter2-password@git.internal/\"}",
        );
    let out = r.run(&["config"]);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for secret in [submit, worker, "hunter2-password"] {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
    }
    assert!(shown.contains("\"<redacted: 31 characters>\""), "{shown}");
    assert!(
        shown.contains("w1 = \"<redacted: 23 characters>\""),
        "{shown}"
    );
    assert!(
        shown.contains("https://bot:<redacted: 16 characters>@git.internal/"),
        "{shown}"
    );

    // Built at run time: the scan in config.rs's tests checks the names the repository uses.
    let typo = format!("REPROD_{}", "SERVR_LISTEN");
    let r = Reprod::new().with(&typo, "127.0.0.1:1");
    assert_clean_error(
        &r.run(&["config"]),
        &[&typo, "names no configuration option"],
    );

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "[sandbox]\ncpus = 1.0\n").unwrap();
    let r = Reprod::new()
        .with("REPROD_CONFIG", file.path().to_str().unwrap())
        .with("REPROD_SANDBOX_PIDS_LIMIT", "lots");
    let stderr = assert_clean_error(
        &r.run(&["config"]),
        &[
            "environment variable REPROD_SANDBOX_PIDS_LIMIT",
            "sandbox.pids_limit",
        ],
    );
    assert!(
        !stderr.contains(&file.path().display().to_string()),
        "{stderr}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let r = Reprod::new().with("RUST_LOG", "info");
    let path = corpus("danbev-learning-crypto/tekton-chains-taskrun-slsa-v0.2.dsse.json");
    let out = r.run(&[
        "--log-format",
        "json",
        "rebuild",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "unrebuildable: no subject");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = stderr.lines().collect();
    assert!(
        !lines.is_empty(),
        "progress is logged when stderr is not a terminal"
    );
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    assert!(stderr.contains("NOT verified"), "{stderr}");
}

/// Hostile containers: each gets one `error:` line naming what is wrong and where, exit 2, no panic.
#[test]
fn malformed_containers_are_named_precisely() {
    let r = Reprod::new();
    let dir = r.data.path();
    let check = |name: &str, body: &str, needles: &[&str]| {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let out = r.run(&["verify-provenance", path.to_str().unwrap()]);
        assert_clean_error(&out, needles);
    };
    check(
        "bad-sig.json",
        r#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"***"}]}"#,
        &["document.signatures[0].sig: not valid base64"],
    );
    check(
        "no-media-type.json",
        r#"{"verificationMaterial":{},"dsseEnvelope":{}}"#,
        &["Sigstore bundle without `mediaType`"],
    );
    check(
        "bad-cert.json",
        r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"AAAA"},"tlogEntries":[]},"dsseEnvelope":{"payload":"e30=","payloadType":"x","signatures":[]}}"#,
        &[
            "document.verificationMaterial.certificate",
            "not a DER X.509 certificate",
        ],
    );
    check(
        "bad-line.jsonl",
        "{\"payloadType\":\"x\",\"payload\":\"e30=\",\"signatures\":[]}\n{\"payloadType\": \n",
        &["JSON Lines, line 2"],
    );
    check(
        "att.json",
        r#"{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}"#,
        &["layers[0]", "is not available", "beside the manifest"],
    );
    check(
        "deep.json",
        &format!("{}{}", "[".repeat(100), "]".repeat(100)),
        &["nested more than 64 levels deep"],
    );
    check(
        "control.json",
        "{\"payloadType\": \"\u{0}\"}",
        &["line 1, column 18: control character"],
    );
}

#[test]
fn a_signed_payload_that_is_not_json_is_named_after_verification() {
    // The payload is only parsed once its signature has been decided; an unsigned one still gets a
    // precise message about where the bad JSON is.
    let r = Reprod::new();
    let path = r.data.path().join("env.json");
    std::fs::write(
        &path,
        r#"{"payloadType":"application/vnd.in-toto+json","payload":"eyJhIjo=","signatures":[]}"#,
    )
    .unwrap();
    let out = r.run(&["verify-provenance", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["verification"]["status"], "unsigned");
    assert_eq!(f["unrebuildable"]["reason"], "invalid-statement");
    assert!(
        f["unrebuildable"]["detail"]
            .as_str()
            .unwrap()
            .contains("the payload is not JSON"),
        "{f}"
    );
}

/// `reprod --help` lists each command with a one-line summary (the details are in `reprod CMD --help`),
/// and each command's own help starts with that line.
#[test]
fn every_command_has_a_one_line_summary() {
    let r = Reprod::new();
    let out = r.run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<(&str, &str)> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().split_once(char::is_whitespace))
        .map(|(name, summary)| (name, summary.trim()))
        .collect();
    assert!(commands.len() >= 11, "{help}");
    for (name, summary) in commands {
        assert!(
            summary.len() <= 80 && summary.ends_with(|c: char| c.is_alphanumeric() || c == ')'),
            "{name}: {summary:?} ({} characters)",
            summary.len()
        );
        if name == "help" {
            continue;
        }
        let own = String::from_utf8(r.run(&[name, "--help"]).stdout).unwrap();
        assert!(own.starts_with(summary), "{name} --help: {own}");
    }
}

/// `reprod completions bash` is a script bash loads whose completion of `reprod reb` is `rebuild` (and of
/// `reprod re`, `rebuild recheck`);
/// `reprod manpages DIR` writes one page per command that groff renders without a warning, each naming
/// the command as it is typed; neither needs (or reads) a configuration; a missing directory is exit 2.
#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let r = Reprod::new().with("REPROD_CONFIG", "/nonexistent/reprod.toml");
    let out = r.run(&["completions", "bash"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("reprod.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let completed = sh(Command::new("bash").arg("-c").arg(format!(
        "source {}; COMP_WORDS=(reprod reb); COMP_CWORD=1; _reprod reprod reb reprod; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    )));
    assert_eq!(completed.trim(), "rebuild");
    let completed = sh(Command::new("bash").arg("-c").arg(format!(
        "source {}; COMP_WORDS=(reprod re); COMP_CWORD=1; _reprod reprod re reprod; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    )));
    assert_eq!(completed.trim(), "rebuild recheck");
    for shell in ["zsh", "fish"] {
        assert!(r.run(&["completions", shell]).status.success(), "{shell}");
    }

    let pages = dir.path().join("man1");
    std::fs::create_dir(&pages).unwrap();
    let out = r.run(&["manpages", pages.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for command in ["rebuild", "serve", "status", "verify", "completions"] {
        assert!(names.contains(&format!("reprod-{command}.1")), "{names:?}");
    }
    assert!(names.contains(&"reprod.1".to_string()));
    for name in &names {
        let page = pages.join(name);
        let rendered = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            rendered.status.success() && rendered.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
    }
    let status = String::from_utf8(
        Command::new("groff")
            .args(["-man", "-Tutf8", "-P-cbu"])
            .arg(pages.join("reprod-status.1"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(status.contains("reprod status [--server]"), "{status}");

    let out = r.run(&["manpages", "/nonexistent/man1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}
