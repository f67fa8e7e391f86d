//! The corpus conformance test: every row of `EXPECTED.tsv` is checked through the real CLI
//! (`reprod verify-provenance --json`), and every statement that yields a recipe is compared with a
//! snapshot under `tests/snapshots/` that a reader can check by eye (`UPDATE_SNAPSHOTS=1` rewrites them).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{corpus, project_root, Reprod};
use serde_json::Value;

/// Rows whose expectation the corpus itself contradicts, with the reason (see the closing note of issue 3).
const CORRECTED: &[(&str, &str, &str)] = &[(
    "sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json",
    "fail",
    // Its entry is in log2025-alpha3.rekor.sigstage.dev; the staging trust root beside it lists only
    // log2025-alpha1, whose key does not verify the alpha3 checkpoint. The rule that must fail
    // sigstore-java/bundle.dsse.rekor-v2 ("unknown log") fails this one too.
    "does not list",
)];

/// What each `fail` row must fail for (a substring of the reason).
const FAIL_REASONS: &[(&str, &str)] = &[
    (
        "slsa-verifier/gcb-invalid-signature.json",
        "none of the envelope's 1 signature(s) verifies",
    ),
    (
        "slsa-verifier/gcb-v0.2-mismatch-payload-digest.json",
        "none of the envelope's 1 signature(s) verifies",
    ),
    (
        "slsa-verifier/bundle-invalid-set.intoto.sigstore",
        "signed entry timestamp is not",
    ),
    (
        "slsa-verifier/bundle-mismatch-tlog.intoto.sigstore",
        "does not match the bundle's",
    ),
    // The body was rewritten (pretty-printed, the signature re-encoded with other padding bits): it still
    // names this signature, but the log never signed that body.
    (
        "slsa-verifier/bundle-invalid-dsse-sig.intoto.sigstore",
        "signed entry timestamp is not",
    ),
    (
        "slsa-verifier/npm/provenance-npm-test-cli-v1-prega-invalidsigpub.tgz.json",
        "does not verify with the given key",
    ),
    (
        "sigstore-java/bundle.dsse.bad-signature.sigstore",
        "signature does not verify with the bundle's certificate",
    ),
    (
        "sigstore-java/bundle-with-mismatched-set.sigstore",
        "signed entry timestamp is not",
    ),
    (
        "sigstore-java/bundle.dsse.rekor-v2.sigstore",
        "does not list",
    ),
    (
        "sigstore-python/bundle_cve_2022_36056.txt.sigstore",
        "signature does not match the bundle's",
    ),
    (
        "sigstore-python/bundle_no_log_entry.txt.sigstore",
        "no transparency-log entry",
    ),
    (
        "slsa-verifier/gcb-v1.0-gcloud-container-github-v1.0-valid.json",
        "none of the envelope's 2 signature(s) verifies",
    ),
];

/// What each `parse-error` row's message must say.
const PARSE_ERRORS: &[(&str, &str)] = &[
    (
        "seed/distroless-provenance.as-published.txt",
        "line 3, column 1: NO-BREAK SPACE (U+00A0)",
    ),
    (
        "tektoncd-chains/e2e-golden-slsa-v1fmt-task-output-image.json.tmpl",
        "line 45, column 7",
    ),
    (
        "sigstore-python/bundle_invalid_version.txt.sigstore",
        "unknown Sigstore bundle mediaType",
    ),
    (
        "sigstore-python/slsa_predicate_v0_2.json",
        "a SLSA v0.2 predicate (build type https://github.com/slsa-framework/slsa-github-generator/generic@v1) with no in-toto statement around it",
    ),
    (
        "sigstore-python/slsa_predicate_v1_0.json",
        "with no in-toto statement around it, so it names no subject",
    ),
];

struct Row {
    file: String,
    material: String,
    expect: String,
    what: String,
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus("EXPECTED.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 5, "EXPECTED.tsv row: {l}");
            Row {
                file: cols[0].into(),
                material: cols[2].into(),
                expect: cols[3].into(),
                what: cols[4].into(),
            }
        })
        .collect()
}

/// `--key` / `--trusted-root` arguments from the verify_with column.
fn material_args(material: &str) -> Vec<String> {
    let mut args = Vec::new();
    for word in material.split([' ', ';', '(', ')']) {
        if !(word.ends_with(".pem")
            || word.ends_with(".pub")
            || word.ends_with(".key")
            || word.ends_with(".json"))
        {
            continue;
        }
        let path = corpus(word).display().to_string();
        let flag = if word.contains("trusted_root") || word.contains("trustedroot") {
            "--trusted-root"
        } else {
            "--key"
        };
        args.push(flag.to_string());
        args.push(path);
    }
    // EXPECTED.tsv names no identities: its rows are about signatures, so a keyless one may be anyone's.
    if args.iter().any(|a| a == "--trusted-root") {
        args.push("--any-identity".into());
    }
    args
}

fn status(f: &Value) -> &str {
    f["verification"]["status"].as_str().unwrap_or_default()
}

fn reason(f: &Value) -> String {
    f["verification"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn every_expected_row_comes_out_as_expected() {
    let r = Reprod::new();
    let mut checked = 0;
    let mut snapshots = BTreeMap::new();
    for row in rows() {
        let mut args = vec![
            "verify-provenance".to_string(),
            "--json".into(),
            corpus(&row.file).display().to_string(),
        ];
        args.extend(material_args(&row.material));
        let out = r.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", row.file);
        let code = out.status.code();
        let corrected = CORRECTED.iter().find(|(f, _, _)| *f == row.file);
        let expect = corrected.map_or(row.expect.as_str(), |(_, e, _)| e);
        let ctx = format!(
            "{} (expected {expect}): exit {code:?}, stderr {stderr}",
            row.file
        );
        if expect == "parse-error" {
            assert_eq!(code, Some(2), "{ctx}");
            let want = PARSE_ERRORS
                .iter()
                .find(|(f, _)| *f == row.file)
                .map(|(_, m)| *m);
            let want =
                want.unwrap_or_else(|| panic!("no expected message listed for {}", row.file));
            assert!(
                stderr.contains(want),
                "{ctx}\nexpected the message to say {want:?}"
            );
            assert_eq!(
                stderr.lines().filter(|l| l.starts_with("error:")).count(),
                1,
                "{ctx}"
            );
            checked += 1;
            continue;
        }
        let doc: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let findings = doc["findings"].as_array().cloned().unwrap_or_default();
        assert!(!findings.is_empty(), "{ctx}");
        match expect {
            "ok" => {
                for f in &findings {
                    assert_eq!(status(f), "verified", "{ctx}: {f}");
                }
                assert_eq!(code, Some(0), "{ctx}");
            }
            "ok (first envelope); fail (second)" => {
                assert_eq!(findings.len(), 2, "{ctx}");
                assert_eq!(status(&findings[0]), "verified", "{ctx}");
                assert_eq!(status(&findings[1]), "failed", "{ctx}");
                assert_eq!(code, Some(1), "{ctx}");
            }
            "fail" => {
                assert_eq!(code, Some(1), "{ctx}");
                let failed: Vec<&Value> =
                    findings.iter().filter(|f| status(f) == "failed").collect();
                assert!(!failed.is_empty(), "{ctx}: {findings:?}");
                assert!(
                    findings
                        .iter()
                        .all(|f| status(f) != "verified" || findings.len() > 1),
                    "{ctx}"
                );
                let want = corrected
                    .map(|(_, _, why)| *why)
                    .or_else(|| {
                        FAIL_REASONS
                            .iter()
                            .find(|(f, _)| *f == row.file)
                            .map(|(_, m)| *m)
                    })
                    .unwrap_or_else(|| panic!("no expected reason listed for {}", row.file));
                assert!(
                    failed.iter().any(|f| reason(f).contains(want)),
                    "{ctx}: expected a failure saying {want:?}, got {:?}",
                    failed.iter().map(|f| reason(f)).collect::<Vec<_>>()
                );
            }
            "unsigned" => {
                assert_eq!(code, Some(1), "{ctx}");
                for f in &findings {
                    assert_eq!(status(f), "unsigned", "{ctx}");
                    assert!(
                        f["predicate_type"].is_string(),
                        "the statement is read: {ctx}"
                    );
                }
            }
            "unverifiable offline" => {
                assert_eq!(code, Some(1), "{ctx}");
                for f in &findings {
                    assert_eq!(status(f), "unverifiable", "{ctx}: {f}");
                }
            }
            other => panic!("unknown expectation {other:?} for {}", row.file),
        }
        // "not provenance" rows are recognised and refused as such.
        if row.what.contains("not provenance")
            || row.what.contains("a VSA")
            || row.what.contains("not an attestation")
        {
            let refused = findings.iter().any(|f| {
                f["unrebuildable"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("not-provenance"))
            });
            assert!(
                refused || expect == "fail",
                "{ctx}: not refused as not provenance: {findings:?}"
            );
        }
        for (i, f) in findings.iter().enumerate() {
            if !f["recipe"].is_null() {
                snapshots.insert(format!("{}#{i}", row.file), snapshot(f));
            }
        }
        checked += 1;
    }
    assert!(checked >= 50, "rows checked: {checked}");
    compare_snapshots(&snapshots);
}

/// The parts of a finding a reader checks: where the recipe comes from, what it runs, what it claims.
fn snapshot(f: &Value) -> Value {
    let r = &f["recipe"];
    let mut shown = serde_json::json!({
        "predicate_type": r["predicate_type"],
        "build_type": r["build_type"],
        "builder_id": r["builder_id"],
        "source": r["source"],
        "steps": r["steps"],
        "subjects": r["subjects"],
        "rebuildable": if f["unrebuildable"].is_null() { Value::String("yes".into()) } else { f["unrebuildable"].clone() },
    });
    // Where the steps will come from, when the provenance does not hold them (Cloud Build v1).
    if !r["config_source"].is_null() {
        shown["config_source"] = r["config_source"].clone();
    }
    shown
}

fn compare_snapshots(snapshots: &BTreeMap<String, Value>) {
    let dir = project_root().join("tests/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut mismatches = Vec::new();
    for (key, value) in snapshots {
        let name = format!("{}.json", key.replace(['/', '#'], "__"));
        stale.retain(|s| *s != name);
        let path = dir.join(&name);
        let text = serde_json::to_string_pretty(value).unwrap() + "\n";
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(old) if old == text => {}
            Ok(_) => mismatches.push(format!(
                "{name} differs (run with UPDATE_SNAPSHOTS=1 and review the diff)"
            )),
            Err(_) => mismatches.push(format!("{name} is missing (run with UPDATE_SNAPSHOTS=1)")),
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(
        stale.is_empty() || update,
        "snapshots without a corpus row: {stale:?}"
    );
    assert!(
        snapshots.len() >= 12,
        "recipes snapshotted: {}",
        snapshots.len()
    );
    let _ = Path::new(".");
}
