//! The Sigstore conformance suite, through the real CLI: every `bundle-verify` case whose bundle carries a
//! DSSE envelope, and reprod's DSSE variants of four of its message-signature cases (`derived/`), run
//! exactly as `run.sh` beside them does. A case named `*_fail` must fail (exit 1), any other must pass
//! (exit 0); the cases reprod once got wrong must also fail for the right reason.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{project_root, Reprod};
use serde_json::Value;

/// The identity and issuer every case was signed with (the suite's defaults; no case overrides them).
const ID: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISS: &str = "https://token.actions.githubusercontent.com";

fn suite(rel: &str) -> PathBuf {
    project_root()
        .join("../shared/corpus/sigstore-conformance")
        .join(rel)
}

struct Case {
    name: String,
    bundle: PathBuf,
    root: PathBuf,
    pass: bool,
}

/// `run.sh`'s cases, in its order.
fn cases() -> Vec<Case> {
    let production = suite("roots/production_trusted_root.json");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(suite("bundle-verify"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut cases = Vec::new();
    for dir in dirs {
        let bundle = dir.join("bundle.sigstore.json");
        let Ok(text) = std::fs::read_to_string(&bundle) else {
            continue;
        };
        if !text.contains("\"dsseEnvelope\"") {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let own = dir.join("trusted_root.json");
        cases.push(Case {
            pass: !name.ends_with("_fail"),
            name,
            bundle,
            root: if own.is_file() {
                own
            } else {
                production.clone()
            },
        });
    }
    let derived = |name: &str, bundle: PathBuf, root: PathBuf| Case {
        name: format!("derived/{name}"),
        bundle,
        root,
        pass: false,
    };
    cases.extend([
        derived(
            "dsse-checkpoint-bad-keyhint_fail",
            suite("derived/dsse-checkpoint-bad-keyhint_fail.bundle.json"),
            production.clone(),
        ),
        derived(
            "rekor2-dsse-trust-root-tlog-missing-validity-start_fail",
            suite("bundle-verify/rekor2-dsse-happy-path/bundle.sigstore.json"),
            suite(
                "derived/rekor2-dsse-trust-root-tlog-missing-validity-start_fail.trusted_root.json",
            ),
        ),
        derived(
            "prod-tlog-missing-validity-start_fail",
            suite("bundle-verify/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"),
            suite("derived/prod-tlog-missing-validity-start.trusted_root.json"),
        ),
        derived(
            "intoto-with-root-cert_fail",
            suite("derived/intoto-with-root-cert_fail.bundle.json"),
            suite("bundle-verify/intoto-with-custom-trust-root/trusted_root.json"),
        ),
    ]);
    cases
}

/// What each case reprod once accepted must fail for: a substring of a failed finding's reason.
const REASONS: &[(&str, &str)] = &[
    (
        "derived/dsse-checkpoint-bad-keyhint_fail",
        "a line counts only with the log's key hint c0d23d6a",
    ),
    (
        "derived/rekor2-dsse-trust-root-tlog-missing-validity-start_fail",
        "has no publicKey.validFor.start, so its key is not trusted",
    ),
    (
        "derived/prod-tlog-missing-validity-start_fail",
        "has no publicKey.validFor.start, so its key is not trusted",
    ),
    (
        "derived/intoto-with-root-cert_fail",
        "certificate chain includes a root certificate",
    ),
];

struct Outcome {
    code: Option<i32>,
    findings: Vec<Value>,
    stderr: String,
}

/// `reprod verify-provenance --json --trusted-root ROOT [ARGS] BUNDLE`, without any configuration file.
fn verify(r: &Reprod, bundle: &std::path::Path, root: &std::path::Path, args: &[&str]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprod"));
    cmd.env_remove("REPROD_CONFIG");
    for (k, v) in &r.env {
        cmd.env(k, v);
    }
    cmd.arg("verify-provenance")
        .arg("--json")
        .arg("--trusted-root")
        .arg(root)
        .args(args)
        .arg(bundle);
    let out = cmd.output().expect("running reprod");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "{}: {stderr}",
        bundle.display()
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Outcome {
        code: out.status.code(),
        findings: doc["findings"].as_array().cloned().unwrap_or_default(),
        stderr,
    }
}

fn status(f: &Value) -> &str {
    f["verification"]["status"].as_str().unwrap_or_default()
}

fn reasons(o: &Outcome) -> String {
    let r: Vec<&str> = o
        .findings
        .iter()
        .filter_map(|f| f["verification"]["reason"].as_str())
        .collect();
    if r.is_empty() {
        o.stderr.trim().to_string()
    } else {
        r.join("; ")
    }
}

/// Why an outcome is not the suite's answer for the case, if it is not.
fn disagreement(case: &Case, o: &Outcome) -> Option<String> {
    let got = match o.code {
        Some(0) => "pass".to_string(),
        Some(1) => "fail".to_string(),
        other => format!("error({other:?})"),
    };
    let want = if case.pass { "pass" } else { "fail" };
    if got != want {
        return Some(got);
    }
    if case.pass {
        // Verified, and by the certificate the suite names.
        let ok = !o.findings.is_empty()
            && o.findings.iter().all(|f| {
                status(f) == "verified"
                    && f["verification"]["signers"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| s["identity"] == ID))
            });
        return (!ok).then(|| "pass, but not verified as the suite's identity".into());
    }
    // A failure is a check that failed, not a signature left unchecked.
    if !o.findings.iter().any(|f| status(f) == "failed") {
        return Some("fail, but nothing is `failed`".into());
    }
    let want = REASONS.iter().find(|(n, _)| *n == case.name)?.1;
    let said = o.findings.iter().any(|f| {
        status(f) == "failed"
            && f["verification"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains(want))
    });
    (!said).then(|| format!("fail, but not for {want:?}"))
}

#[test]
fn every_dsse_case_of_the_suite_comes_out_as_the_suite_says() {
    let r = Reprod::new();
    let cases = cases();
    let suite_cases = cases
        .iter()
        .filter(|c| !c.name.starts_with("derived/"))
        .count();
    assert!(
        suite_cases >= 14,
        "DSSE cases found in the suite: {suite_cases}"
    );
    let mut table = Vec::new();
    for case in &cases {
        let o = verify(
            &r,
            &case.bundle,
            &case.root,
            &["--identity", ID, "--issuer", ISS],
        );
        if let Some(got) = disagreement(case, &o) {
            table.push(format!(
                "{}\t{}\t{got}\t{}",
                case.name,
                if case.pass { "pass" } else { "fail" },
                reasons(&o)
            ));
        }
    }
    assert!(
        table.is_empty(),
        "{} of {} cases disagree with the suite:\ncase\texpected\treprod\treason\n{}",
        table.len(),
        cases.len(),
        table.join("\n")
    );
    for (name, _) in REASONS {
        assert!(
            cases.iter().any(|c| c.name == *name),
            "{name} is not a case"
        );
    }
}

/// Message-signature cases (outside `run.sh`: reprod cannot check the artifact) that exercise the same
/// checks, with the reason each `_fail` must fail for.
#[test]
fn the_message_signature_cases_of_the_same_checks_agree_too() {
    let cases: &[(&str, &str)] = &[
        ("checkpoint-bad-keyhint_fail", "key hint c0d23d6a"),
        (
            "trust-root-tlog-missing-validity-start_fail",
            "has no publicKey.validFor.start",
        ),
        (
            "bundle-with-root-cert_fail",
            "certificate chain includes a root certificate",
        ),
        (
            "invalid-ct-key_fail",
            "SCT 0: from log 3T0wasbHETJjGR4cmWc3AqJKXrjePK3/h4pygC8p7o4=, which",
        ),
        ("bundle-with-sct-with-extensions", ""),
        ("happy-path-v0.1", ""),
        ("happy-path-v0.2", ""),
        ("happy-path-v0.3", ""),
        ("rekor2-happy-path", ""),
        ("trust-root-tlog-validity-end-inclusive", ""),
    ];
    let r = Reprod::new();
    let production = suite("roots/production_trusted_root.json");
    let mut table = Vec::new();
    for (name, reason) in cases {
        let dir = suite(&format!("bundle-verify/{name}"));
        let own = dir.join("trusted_root.json");
        let root = if own.is_file() {
            own
        } else {
            production.clone()
        };
        let o = verify(
            &r,
            &dir.join("bundle.sigstore.json"),
            &root,
            &["--identity", ID, "--issuer", ISS],
        );
        let case = Case {
            name: name.to_string(),
            bundle: dir,
            root,
            pass: !name.ends_with("_fail"),
        };
        let wrong = disagreement(&case, &o).or_else(|| {
            let said = o.findings.iter().any(|f| {
                f["verification"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(reason))
            });
            (!case.pass && !said).then(|| format!("fail, but not for {reason:?}"))
        });
        if let Some(got) = wrong {
            table.push(format!("{name}\t{got}\t{}", reasons(&o)));
        }
    }
    assert!(
        table.is_empty(),
        "case\treprod\treason\n{}",
        table.join("\n")
    );
}

const HAPPY: &str = "bundle-verify/happy-path-intoto-in-dsse-v3/bundle.sigstore.json";

/// A valid keyless bundle is not accepted on its certificate alone: the identity must be required (both
/// --identity and --issuer), waived in so many words (--any-identity), or named by a trust rule.
#[test]
fn a_keyless_signature_is_accepted_only_for_a_required_or_expressly_waived_identity() {
    let r = Reprod::new();
    let (bundle, root) = (suite(HAPPY), suite("roots/production_trusted_root.json"));
    // Neither: the signature checks out, the identity was not checked, so it is not verified.
    let o = verify(&r, &bundle, &root, &[]);
    assert_eq!(o.code, Some(1), "{}", reasons(&o));
    assert_eq!(status(&o.findings[0]), "unverifiable", "{}", reasons(&o));
    assert!(
        reasons(&o).contains("no identity was required"),
        "{}",
        reasons(&o)
    );
    // Half of the pair is a usage error, not a weaker check.
    for half in [["--identity", ID], ["--issuer", ISS]] {
        let o = verify(&r, &bundle, &root, &half);
        assert_eq!(o.code, Some(2), "{half:?}: {}", o.stderr);
        assert!(o.stderr.contains("required arguments"), "{}", o.stderr);
    }
    let o = verify(&r, &bundle, &root, &["--any-identity", "--identity", ID]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    // The pair, exactly.
    let o = verify(&r, &bundle, &root, &["--identity", ID, "--issuer", ISS]);
    assert_eq!(o.code, Some(0), "{}", reasons(&o));
    assert_eq!(
        o.findings[0]["verification"]["signers"][0]["identity_check"],
        "required"
    );
    let o = verify(
        &r,
        &bundle,
        &root,
        &["--identity", ID, "--issuer", "https://accounts.google.com"],
    );
    assert_eq!((o.code, status(&o.findings[0])), (Some(1), "failed"));
    assert!(reasons(&o).contains("not the required"), "{}", reasons(&o));
    // Any identity, said so in the JSON and in the text.
    let o = verify(&r, &bundle, &root, &["--any-identity"]);
    assert_eq!(o.code, Some(0), "{}", reasons(&o));
    let signer = &o.findings[0]["verification"]["signers"][0];
    assert_eq!(signer["identity_check"], "any", "{signer}");
    assert_eq!(signer["identity"], ID);
    let text = r.run(&[
        "verify-provenance",
        "--trusted-root",
        root.to_str().unwrap(),
        "--any-identity",
        bundle.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ANY identity accepted"), "{text}");
}

/// The configuration's path (what the daemon uses): a trust rule naming identity and issuer admits the
/// keyless signer with nothing on the command line, in `verify-provenance` and `rebuild` alike; a rule
/// naming no signers does not.
#[test]
fn a_trust_rule_naming_identity_and_issuer_admits_a_keyless_signer() {
    let r = Reprod::new();
    let root = suite("roots/production_trusted_root.json");
    let config = r.data.path().join("reprod.toml");
    let run = |rule: &str, command: &str| -> (Option<i32>, Value) {
        std::fs::write(
            &config,
            format!(
                "[trust]\ntrusted_roots = [{:?}]\n\n[[trust.rules]]\nimages = [\"a.txt\"]\n{rule}\n",
                root.display().to_string()
            ),
        )
        .unwrap();
        let out = r.run(&[
            "--config",
            config.to_str().unwrap(),
            command,
            "--json",
            suite(HAPPY).to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        )
    };
    let named = format!("signers = [{{ identity = \"https://github.com/sigstore-conformance/*\", issuer = {ISS:?} }}]");
    let (code, doc) = run(&named, "verify-provenance");
    assert_eq!(code, Some(0), "{doc:#}");
    let (_, verdict) = run(&named, "rebuild");
    // Admitted: what stops it is the build type, not the signer.
    assert_eq!(verdict["status"], "unrebuildable", "{verdict:#}");
    assert_eq!(verdict["provenance"]["verification"]["status"], "verified");

    let other = r#"signers = [{ identity = "*", issuer = "https://accounts.google.com" }]"#;
    let (code, doc) = run(other, "verify-provenance");
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(doc["findings"][0]["verification"]["status"], "failed");
    let (_, verdict) = run(other, "rebuild");
    assert_eq!(
        (verdict["status"].as_str(), verdict["reason"].as_str()),
        (Some("rejected"), Some("policy")),
        "{verdict:#}"
    );

    let (code, doc) = run("", "verify-provenance");
    assert_eq!(code, Some(1), "{doc:#}");
    let reason = doc["findings"][0]["verification"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("names no signers"), "{reason}");
    let (_, verdict) = run("", "rebuild");
    assert_eq!(verdict["reason"], "policy", "{verdict:#}");
}
