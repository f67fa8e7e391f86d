//! The in-toto statements a verdict is published as.
//!
//! Both are built from the verdict's JSON, as stored (a remote worker's verdict arrives as JSON), reading
//! only the fields they name and tolerating absent ones.

use serde_json::{json, Map, Value};

use super::{uri, AttestError, SigningKey};

/// One signed document of a verdict.
#[derive(Debug, Clone)]
pub struct Attestation {
    /// `vsa` or `provenance`: the name it is stored and served under.
    pub kind: &'static str,
    /// The DSSE envelope, exactly as signed.
    pub envelope: Vec<u8>,
}

/// Signs the verdict's VSA and, when a rebuild produced outputs, the provenance of that rebuild. The VSA
/// names the provenance's sha256 subjects (a PASSED one only those reproduced); a verdict without any gets
/// none: there is nothing to make a statement about.
pub fn attest(
    verdict: &Value,
    job: &str,
    recorded_at: &str,
    key: &SigningKey,
) -> Result<Vec<Attestation>, AttestError> {
    let mut out = Vec::new();
    let passed = verdict["status"].as_str() == Some("reproducible");
    let subjects = recorded_subjects(verdict, passed);
    if subjects.is_empty() {
        return Ok(out);
    }
    let vsa = vsa(verdict, &subjects, recorded_at);
    out.push(Attestation {
        kind: "vsa",
        envelope: key.sign_envelope(&to_bytes(&vsa)?)?,
    });
    if let Some(p) = rebuild_provenance(verdict, job, recorded_at) {
        out.push(Attestation {
            kind: "provenance",
            envelope: key.sign_envelope(&to_bytes(&p)?)?,
        });
    }
    Ok(out)
}

fn to_bytes(v: &Value) -> Result<Vec<u8>, AttestError> {
    serde_json::to_vec(v).map_err(|e| AttestError::Sign(e.to_string()))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// `alg:hex` → `{"alg": "hex"}`; anything else is not a digest.
fn digest_set(digest: &str) -> Option<Value> {
    let (alg, hex) = digest.split_once(':')?;
    (!alg.is_empty() && !hex.is_empty()).then(|| json!({ alg: hex }))
}

fn descriptor(name: &str, digest: &str) -> Option<Value> {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), name.into());
    }
    d.insert("digest".into(), digest_set(digest)?);
    Some(Value::Object(d))
}

/// `sha256:<64 lowercase hex>`: the only digests a rebuild compares.
pub fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The provenance's sha256 subjects (name, recorded digest), each once; with `matched_only`, only those the
/// rebuild reproduced. Subjects with other digests were never compared, so nothing is said about them.
fn recorded_subjects(verdict: &Value, matched_only: bool) -> Vec<(String, String)> {
    let mut seen = Vec::<(String, String)>::new();
    for s in verdict["subjects"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default().to_string();
        let Some(digest) = s["digest"].as_str() else {
            continue;
        };
        if matched_only && s["matched"].as_bool() != Some(true) {
            continue;
        }
        if is_sha256(digest) && !seen.iter().any(|(n, d)| *n == name && d == digest) {
            seen.push((name, digest.to_string()));
        }
    }
    seen
}

/// SLSA Verification Summary v1: PASSED only for `reproducible`.
fn vsa(verdict: &Value, subjects: &[(String, String)], recorded_at: &str) -> Value {
    let passed = verdict["status"].as_str() == Some("reproducible");
    let resource = subjects
        .iter()
        .find(|(n, _)| !n.is_empty())
        .map(|(n, d)| format!("{n}@{d}"))
        .unwrap_or_else(|| subjects[0].1.clone());
    let mut input = Vec::new();
    if let Some(sha) = str_at(verdict, "/provenance/sha256") {
        input.push(
            json!({"uri": format!("reprod:provenance/sha256:{sha}"), "digest": {"sha256": sha}}),
        );
    }
    json!({
        "_type": uri::STATEMENT_V1,
        "subject": subjects.iter().filter_map(|(n, d)| descriptor(n, d)).collect::<Vec<_>>(),
        "predicateType": uri::VSA_V1,
        "predicate": {
            "verifier": {
                "id": uri::VERIFIER_ID,
                "version": {"reprod": verdict["reprod_version"].as_str().unwrap_or(env!("CARGO_PKG_VERSION"))},
            },
            "timeVerified": recorded_at,
            "resourceUri": resource,
            "policy": {"uri": uri::POLICY},
            "inputAttestations": input,
            "verificationResult": if passed { "PASSED" } else { "FAILED" },
            "verifiedLevels": if passed { vec![uri::LEVEL_REPRODUCIBLE] } else { vec![] },
            "slsaVersion": "1.0",
        }
    })
}

/// SLSA v1 provenance of the rebuild: its subjects are what reprod itself built (the rebuilt digests), so
/// there is one only when the steps produced outputs.
fn rebuild_provenance(verdict: &Value, job: &str, recorded_at: &str) -> Option<Value> {
    let results: Vec<&Value> = verdict["subjects"].as_array()?.iter().collect();
    let mut built = Vec::<Value>::new();
    for s in &results {
        let name = s["name"].as_str().unwrap_or_default();
        let rebuilt = if s["matched"].as_bool() == Some(true) {
            s["digest"].as_str()
        } else {
            s["rebuilt_digest"].as_str()
        };
        if let Some(d) = rebuilt
            .filter(|d| is_sha256(d))
            .and_then(|d| descriptor(name, d))
        {
            if !built.contains(&d) {
                built.push(d);
            }
        }
    }
    if built.is_empty() {
        return None;
    }
    let steps: Vec<Value> = verdict["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            json!({
                "name": s["name"], "image": s["image"],
                "exitCode": s["exit_code"], "termination": s["termination"],
            })
        })
        .collect();
    let mut deps = Vec::new();
    if let (Some(src), Some(commit)) = (
        str_at(verdict, "/source/uri"),
        str_at(verdict, "/source/commit"),
    ) {
        deps.push(json!({"uri": format!("git+{src}@{commit}"), "digest": {"gitCommit": commit}}));
    }
    for s in verdict["steps"].as_array().into_iter().flatten() {
        let pulled = s["pulled_image"].as_str().or(s["image"].as_str());
        if let Some((name, digest)) = pulled.and_then(|p| p.rsplit_once('@')) {
            if let Some(d) = digest_set(digest) {
                let dep = json!({"uri": format!("oci://{name}"), "digest": d});
                if !deps.contains(&dep) {
                    deps.push(dep);
                }
            }
        }
    }
    let per_subject: Vec<Value> = results
        .iter()
        .filter_map(|s| {
            let mut d = descriptor(
                s["name"].as_str().unwrap_or_default(),
                s["digest"].as_str()?,
            )?;
            d["annotations"] = json!({
                "matched": s["matched"].as_bool().unwrap_or(false),
                "rebuiltDigest": s["rebuilt_digest"],
            });
            Some(d)
        })
        .collect();
    let provenance_sha = str_at(verdict, "/provenance/sha256").unwrap_or_default();
    Some(json!({
        "_type": uri::STATEMENT_V1,
        "subject": built,
        "predicateType": uri::PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": uri::BUILD_TYPE,
                "externalParameters": {
                    "provenance": {"uri": format!("reprod:provenance/sha256:{provenance_sha}"), "digest": {"sha256": provenance_sha}},
                    "source": verdict["source"],
                    "steps": steps,
                },
                "internalParameters": {"sandbox": {"network": "none", "privileged": false}},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": uri::VERIFIER_ID, "version": {"reprod": verdict["reprod_version"]}},
                "metadata": {"invocationId": job, "finishedOn": recorded_at},
                "byproducts": [{
                    "name": "verdict",
                    "annotations": {
                        "status": verdict["status"],
                        "reason": verdict["reason"],
                        "subjects": per_subject,
                    },
                }],
            },
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(status: &str, matched: bool) -> Value {
        json!({
            "status": status,
            "reason": if matched { Value::Null } else { "digest-mismatch".into() },
            "provenance": {"sha256": "ab".repeat(32)},
            "source": {"uri": "file:///src", "commit": "c0ffee"},
            "subjects": [
                {"name": "reg/app", "digest": format!("sha256:{}", "11".repeat(32)), "matched": matched,
                 "rebuilt_digest": format!("sha256:{}", if matched { "11" } else { "22" }.repeat(32))},
                {"name": "reg/app", "digest": format!("sha256:{}", "11".repeat(32)), "matched": matched},
            ],
            "steps": [{"name": "build", "image": format!("reg/builder@sha256:{}", "33".repeat(32)),
                       "pulled_image": format!("reg/builder@sha256:{}", "33".repeat(32)), "exit_code": 0}],
            "reprod_version": "0.1.0",
        })
    }

    #[test]
    fn the_vsa_passes_only_reproducible_verdicts() {
        for (status, matched, expect) in [
            ("reproducible", true, "PASSED"),
            ("unreproducible", false, "FAILED"),
            ("build-failed", false, "FAILED"),
            ("rejected", false, "FAILED"),
        ] {
            let v = verdict(status, matched);
            let s = vsa(&v, &recorded_subjects(&v, false), "2026-11-28T00:00:00Z");
            assert_eq!(s["predicate"]["verificationResult"], expect, "{status}");
            assert_eq!(
                s["subject"].as_array().map(Vec::len),
                Some(1),
                "duplicate subjects are listed once"
            );
            assert_eq!(
                s["predicate"]["resourceUri"],
                format!("reg/app@sha256:{}", "11".repeat(32))
            );
        }
    }

    #[test]
    fn subjects_never_compared_are_not_attested() {
        let mut v = verdict("reproducible", true);
        v["subjects"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "evil/x", "digest": format!("sha512:{}", "44".repeat(64)), "matched": false}));
        let subjects = recorded_subjects(&v, true);
        assert_eq!(subjects.len(), 1, "{subjects:?}");
        assert!(subjects.iter().all(|(_, d)| d.starts_with("sha256:")));
        let mut partly = verdict("unreproducible", true);
        partly["subjects"][1]["matched"] = false.into();
        partly["subjects"][1]["digest"] = format!("sha256:{}", "55".repeat(32)).into();
        assert_eq!(
            recorded_subjects(&partly, true).len(),
            1,
            "a PASSED summary names only what matched"
        );
        assert_eq!(recorded_subjects(&partly, false).len(), 2);
    }

    #[test]
    fn the_rebuild_provenance_names_what_was_rebuilt() {
        let p = rebuild_provenance(&verdict("unreproducible", false), "job1", "t").unwrap();
        assert_eq!(p["subject"][0]["digest"]["sha256"], "22".repeat(32));
        let deps = p["predicate"]["buildDefinition"]["resolvedDependencies"].to_string();
        assert!(deps.contains("git+file:///src@c0ffee"), "{deps}");
        assert!(deps.contains(&"33".repeat(32)), "{deps}");
        let mut nothing_built = verdict("build-failed", false);
        nothing_built["subjects"][0]["rebuilt_digest"] = Value::Null;
        assert!(rebuild_provenance(&nothing_built, "job1", "t").is_none());
    }
}
