//! The in-toto statements a verdict is published as, built from the typed verdict.
//!
//! Each says exactly what was learned, about exactly the digests it names:
//! - `vsa-passed`: a SLSA Verification Summary naming the digests rebuilt bit for bit;
//! - `vsa-failed`: one naming the digests compared and not rebuilt (a counterpart differs, or nothing
//!   corresponding came out);
//! - `provenance`: a SLSA v1 provenance of the rebuild itself, whenever steps ran (also a failed build).
//!
//! Digests that were never compared (not sha256; a build that failed, was refused or never ran) are in no
//! summary: the rebuild provenance and the verdict record carry those outcomes.

use serde_json::{json, Map, Value};

use super::{uri, AttestError, SigningKey};
use crate::verdict::{ArtifactKind, SubjectResult, SubjectState, Verdict};

/// One signed document of a verdict.
#[derive(Debug, Clone)]
pub struct Attestation {
    /// `vsa-passed`, `vsa-failed` or `provenance`: the name it is stored and served under.
    pub kind: &'static str,
    /// The DSSE envelope, exactly as signed.
    pub envelope: Vec<u8>,
}

/// The attestation kinds, in the order they are made.
pub const KINDS: [&str; 3] = ["vsa-passed", "vsa-failed", "provenance"];

/// Where and when a verdict is published, for the links and times its statements carry.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    pub job: &'a str,
    /// RFC 3339.
    pub recorded_at: &'a str,
    /// Base URL of the server that serves the documents (`server.public_url`), without a trailing slash.
    pub base_url: &'a str,
}

impl Publication<'_> {
    fn provenance_uri(&self, sha256: &str) -> String {
        format!("{}/v1/provenance/sha256:{sha256}", self.base_url)
    }
}

/// Signs every statement the verdict supports.
pub fn attest(
    verdict: &Verdict,
    at: &Publication<'_>,
    key: &SigningKey,
) -> Result<Vec<Attestation>, AttestError> {
    statements(verdict, at)
        .into_iter()
        .map(|(kind, statement)| {
            Ok(Attestation {
                kind,
                envelope: key.sign_envelope(&to_bytes(&statement)?)?,
            })
        })
        .collect()
}

/// The statements of a verdict, unsigned (what [`attest`] signs).
pub fn statements(verdict: &Verdict, at: &Publication<'_>) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let passed = distinct(verdict, |s| s.state == SubjectState::Matched);
    if !passed.is_empty() {
        out.push(("vsa-passed", vsa(verdict, &passed, true, at)));
    }
    let failed = distinct(verdict, |s| {
        matches!(s.state, SubjectState::Differs | SubjectState::NotFound)
    });
    if !failed.is_empty() {
        out.push(("vsa-failed", vsa(verdict, &failed, false, at)));
    }
    if let Some(p) = rebuild_provenance(verdict, at) {
        out.push(("provenance", p));
    }
    out
}

fn to_bytes(v: &Value) -> Result<Vec<u8>, AttestError> {
    serde_json::to_vec(v).map_err(|e| AttestError::Sign(e.to_string()))
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

/// The sha256 subjects matching `pick`, each (name, digest) once, in order.
fn distinct(verdict: &Verdict, pick: impl Fn(&SubjectResult) -> bool) -> Vec<&SubjectResult> {
    let mut seen: Vec<&SubjectResult> = Vec::new();
    for s in verdict.subjects.iter().filter(|s| s.is_sha256() && pick(s)) {
        if !seen
            .iter()
            .any(|o| o.name == s.name && o.digest == s.digest)
        {
            seen.push(s);
        }
    }
    seen
}

/// Percent-encodes a purl component (RFC 3986 unreserved characters stay).
fn pct(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, KEEP).to_string()
}

/// A URI for the artifact a subject names: a package URL. An image (or an unknown artifact named like
/// one) is `pkg:docker/<path>@<digest>?repository_url=<registry>`; a file is
/// `pkg:generic/<name>?checksum=<digest>`.
pub fn resource_uri(subject: &SubjectResult) -> String {
    let name = subject.name.as_str();
    let digest = pct(&subject.digest);
    if name.is_empty() || subject.artifact == Some(ArtifactKind::File) {
        let base = name
            .rsplit('/')
            .next()
            .filter(|b| !b.is_empty())
            .unwrap_or("artifact");
        return format!("pkg:generic/{}?checksum={digest}", pct(base));
    }
    let without_digest = name.split('@').next().unwrap_or(name);
    let (registry, path) = match without_digest.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, without_digest),
    };
    // A tag is after the last ':' of the last path component.
    let path = match path.rsplit_once(':') {
        Some((p, tag)) if !tag.contains('/') => p,
        _ => path,
    };
    let path: Vec<String> = path.split('/').map(pct).collect();
    let mut uri = format!("pkg:docker/{}@{digest}", path.join("/"));
    if let Some(r) = registry.filter(|r| *r != "docker.io") {
        uri.push_str(&format!("?repository_url={}", pct(r)));
    }
    uri
}

/// SLSA Verification Summary v1 over `subjects`, PASSED or FAILED.
fn vsa(
    verdict: &Verdict,
    subjects: &[&SubjectResult],
    passed: bool,
    at: &Publication<'_>,
) -> Value {
    let resource = subjects
        .iter()
        .find(|s| !s.name.is_empty())
        .or(subjects.first())
        .map(|s| resource_uri(s))
        .unwrap_or_default();
    let sha = &verdict.provenance.sha256;
    json!({
        "_type": uri::STATEMENT_V1,
        "subject": subjects.iter().filter_map(|s| descriptor(&s.name, &s.digest)).collect::<Vec<_>>(),
        "predicateType": uri::VSA_V1,
        "predicate": {
            "verifier": {
                "id": uri::VERIFIER_ID,
                "version": {"reprod": verdict.reprod_version},
            },
            "timeVerified": at.recorded_at,
            "resourceUri": resource,
            "policy": {"uri": uri::POLICY, "digest": {"sha256": uri::policy_sha256()}},
            "inputAttestations": [{"uri": at.provenance_uri(sha), "digest": {"sha256": sha}}],
            "verificationResult": if passed { "PASSED" } else { "FAILED" },
            "verifiedLevels": [if passed { uri::LEVEL_REPRODUCIBLE } else { "FAILED" }],
            "slsaVersion": "1.0",
        }
    })
}

/// SLSA v1 provenance of the rebuild, whenever steps ran. Its subjects are what reprod itself built that
/// corresponds to a subject (the rebuilt digests); a build that produced none of those (it failed, or
/// nothing corresponded) has its captured step logs as subjects, which is what that run produced.
fn rebuild_provenance(verdict: &Verdict, at: &Publication<'_>) -> Option<Value> {
    if verdict.steps.is_empty() {
        return None;
    }
    let job_url = format!("{}/v1/jobs/{}", at.base_url, at.job);
    // The steps' logs are kept with the job that ran them (the reused rebuild's, when this one reused it).
    let ran_url = format!(
        "{}/v1/jobs/{}",
        at.base_url,
        verdict.reused_rebuild.as_deref().unwrap_or(at.job)
    );
    let mut built = Vec::<Value>::new();
    for s in verdict.subjects.iter().filter(|s| s.state.compared()) {
        if let Some(d) = s
            .rebuilt_digest
            .as_deref()
            .filter(|d| crate::verdict::is_sha256(d))
            .and_then(|d| descriptor(&s.name, d))
        {
            if !built.contains(&d) {
                built.push(d);
            }
        }
    }
    let logs: Vec<(&crate::verdict::StepReport, &str, &str)> = verdict
        .steps
        .iter()
        .filter_map(|st| Some((st, st.log_artifact.as_deref()?, st.log_sha256.as_deref()?)))
        .collect();
    if built.is_empty() {
        built = logs
            .iter()
            .filter_map(|(_, name, digest)| descriptor(name, digest))
            .collect();
    }
    if built.is_empty() {
        return None;
    }
    let sha = &verdict.provenance.sha256;
    let mut deps = vec![json!({
        "name": "provenance",
        "uri": at.provenance_uri(sha),
        "digest": {"sha256": sha},
    })];
    if let Some(src) = &verdict.source {
        deps.push(json!({
            "uri": format!("git+{}@{}", src.uri, src.commit),
            "digest": {"gitCommit": src.commit},
        }));
    }
    for st in &verdict.steps {
        if let Some((name, digest)) = st.pulled_image.rsplit_once('@') {
            if let Some(d) = digest_set(digest) {
                let dep = json!({"uri": format!("oci://{name}"), "digest": d});
                if !deps.contains(&dep) {
                    deps.push(dep);
                }
            }
        }
    }
    // Every body the build fetched whole with a success, by URL and digest: what it was built from,
    // beside its source.
    for e in verdict.network.iter().flat_map(|n| &n.exchanges) {
        if let Some(digest) = e.body_received().and_then(digest_set) {
            let mut dep = json!({
                "uri": e.url,
                "digest": digest,
                "annotations": {"method": e.method, "status": e.status, "bytes": e.bytes},
            });
            // A registry pull by tag the policy let through: what the tag named then, not a pinned input.
            if e.unpinned {
                dep["annotations"]["unpinned"] = true.into();
            }
            if !deps.contains(&dep) {
                deps.push(dep);
            }
        }
    }
    let per_subject: Vec<Value> = verdict
        .subjects
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "digest": s.digest,
                "state": s.state.as_str(),
                "rebuiltDigest": s.rebuilt_digest,
                "problem": s.problem,
            })
        })
        .collect();
    let mut byproducts = vec![json!({
        "name": "verdict",
        "uri": job_url,
        "mediaType": "application/json",
        "annotations": {
            "status": verdict.status.as_str(),
            "reason": verdict.reason,
            "subjects": per_subject,
        },
    })];
    for st in &verdict.steps {
        let mut b = json!({
            "name": format!("step {}", st.name),
            "annotations": {
                "image": st.image,
                "exitCode": st.exit_code,
                "termination": st.termination.as_str(),
                "durationMs": st.duration_ms,
                "logBytes": st.log_bytes,
                "logTruncated": st.log_truncated,
            },
        });
        match (&st.log_artifact, &st.log_sha256) {
            (Some(file), Some(digest)) => {
                b["uri"] = format!("{ran_url}/artifacts/{file}").into();
                if let Some(d) = digest_set(digest) {
                    b["digest"] = d;
                }
            }
            // Without a kept log the entry still needs a locator: the job that ran the step.
            _ => b["uri"] = ran_url.clone().into(),
        }
        byproducts.push(b);
    }
    if let Some(net) = &verdict.network {
        for e in &net.exchanges {
            let b = match &e.refused {
                // What the policy refused, and what went through without a whole body (tunnels, bodies
                // cut short): by URL, status and bytes, never as a dependency.
                Some(why) => json!({
                    "name": "network-denied",
                    "uri": e.url,
                    "annotations": {"method": e.method, "reason": why},
                }),
                None if e.body_received().is_none() => json!({
                    "name": "network-exchange",
                    "uri": e.url,
                    "annotations": {"method": e.method, "status": e.status, "bytes": e.bytes},
                }),
                None => continue,
            };
            byproducts.push(b);
        }
    }
    let builder_id = match &verdict.rebuilt_by {
        Some(who) => format!("{}/workers/{}", uri::VERIFIER_ID, pct(who)),
        None => uri::VERIFIER_ID.to_string(),
    };
    let mut internal = json!({"sandbox": {"network": "none", "privileged": false}});
    if let Some(net) = &verdict.network {
        internal["sandbox"]["network"] = json!({
            "mode": net.mode.as_str(),
            "allow": net.allow,
            "rule": net.rule,
            "replayedFrom": net.replayed_from,
            "tls": net.tls.as_ref().map(|t| json!({
                "intercepted": true,
                "caSha256": t.ca_sha256,
                "caPaths": t.ca_paths,
                "tunnelOnly": t.tunnel_only,
            })),
            "proxy": net.proxy,
            "noProxy": net.no_proxy,
        });
    }
    if let Some(job) = &verdict.reused_rebuild {
        internal["reusedRebuild"] = json!({
            "job": job,
            "uri": format!("{}/v1/jobs/{job}", at.base_url),
            "note": "the same source commit and steps were rebuilt for another document; its outputs were compared with this document's subjects and nothing was run again",
        });
    }
    if let Some(from) = &verdict.steps_from {
        internal["stepsFrom"] = json!({
            "source": from,
            "note": "the provenance records no steps; these were read from the build config in the recorded commit",
        });
    }
    if let Some(who) = &verdict.rebuilt_by {
        internal["claimedBy"] = json!({
            "worker": who,
            "note": "the steps ran on this remote worker; exit codes, logs, outputs and per-subject results are its report",
        });
    }
    Some(json!({
        "_type": uri::STATEMENT_V1,
        "subject": built,
        "predicateType": uri::PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": uri::BUILD_TYPE,
                "externalParameters": {
                    "provenance": {"uri": at.provenance_uri(sha), "digest": {"sha256": sha}},
                    "source": verdict.source,
                    "steps": verdict.steps.iter().map(|s| json!({"name": s.name, "image": s.image})).collect::<Vec<_>>(),
                },
                "internalParameters": internal,
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": builder_id, "version": {"reprod": verdict.reprod_version}},
                "metadata": {"invocationId": verdict.reused_rebuild.as_deref().unwrap_or(at.job), "finishedOn": at.recorded_at},
                "byproducts": byproducts,
            },
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::testing::verdict;
    use crate::verdict::{Status, StepReport, StepTermination};

    const AT: Publication<'static> = Publication {
        job: "sha256:abab",
        recorded_at: "2026-12-01T00:00:00.000Z",
        base_url: "https://rebuilder.example",
    };

    fn sha(c: &str) -> String {
        format!("sha256:{}", c.repeat(64))
    }

    fn step() -> StepReport {
        StepReport {
            name: "build".into(),
            image: format!("reg/builder@{}", sha("3")),
            pulled_image: format!("127.0.0.1:5000/builder@{}", sha("3")),
            exit_code: 0,
            termination: StepTermination::Exited,
            duration_ms: 5,
            log_bytes: 3,
            log_truncated: false,
            log_artifact: Some("logs/00-build.log".into()),
            log_sha256: Some(sha("4")),
            log_tail: "ok\n".into(),
            profile: None,
        }
    }

    fn kinds(v: &Verdict) -> Vec<&'static str> {
        statements(v, &AT).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn each_summary_names_exactly_the_digests_it_speaks_for() {
        let (a, b) = (sha("a"), sha("b"));
        let mut v = verdict(
            Status::Unreproducible,
            &[
                ("hello.txt", &a, SubjectState::Matched),
                ("reg/app", &b, SubjectState::Differs),
                ("reg/app", "sha512:00", SubjectState::NotCompared),
            ],
        );
        v.subjects[0].artifact = Some(ArtifactKind::File);
        v.subjects[1].rebuilt_digest = Some(sha("c"));
        v.steps.push(step());
        let all = statements(&v, &AT);
        assert_eq!(kinds(&v), ["vsa-passed", "vsa-failed", "provenance"]);
        let digests = |s: &Value| -> Vec<String> {
            s["subject"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["digest"]["sha256"].as_str().unwrap().to_string())
                .collect()
        };
        let (passed, failed) = (&all[0].1, &all[1].1);
        assert_eq!(digests(passed), ["a".repeat(64)]);
        assert_eq!(passed["predicate"]["verificationResult"], "PASSED");
        assert_eq!(
            passed["predicate"]["verifiedLevels"],
            json!([uri::LEVEL_REPRODUCIBLE])
        );
        assert_eq!(
            passed["predicate"]["resourceUri"],
            format!("pkg:generic/hello.txt?checksum=sha256%3A{}", "a".repeat(64))
        );
        assert_eq!(
            digests(failed),
            ["b".repeat(64)],
            "a matched digest is never in a FAILED summary"
        );
        assert_eq!(failed["predicate"]["verificationResult"], "FAILED");
        assert_eq!(failed["predicate"]["verifiedLevels"], json!(["FAILED"]));
        assert_eq!(
            failed["predicate"]["resourceUri"],
            format!("pkg:docker/reg/app@sha256%3A{}", "b".repeat(64))
        );
        for s in [passed, failed] {
            assert_eq!(
                s["predicate"]["policy"]["digest"]["sha256"],
                uri::policy_sha256()
            );
            assert_eq!(
                s["predicate"]["inputAttestations"][0]["uri"],
                format!(
                    "https://rebuilder.example/v1/provenance/sha256:{}",
                    "ab".repeat(32)
                )
            );
            assert!(
                !s.to_string().contains("sha512"),
                "never-compared digests stay out"
            );
        }
        let p = &all[2].1;
        let deps = &p["predicate"]["buildDefinition"]["resolvedDependencies"];
        assert_eq!(
            deps[0]["digest"]["sha256"],
            "ab".repeat(32),
            "the input document"
        );
        assert!(deps.to_string().contains("git+file:///src@c0ffee"));
        let byproducts = p["predicate"]["runDetails"]["byproducts"]
            .as_array()
            .unwrap();
        assert!(
            byproducts.iter().all(|b| b["uri"].is_string()),
            "every byproduct has a locator"
        );
        assert_eq!(byproducts[1]["annotations"]["exitCode"], 0);
        assert_eq!(
            byproducts[1]["uri"],
            "https://rebuilder.example/v1/jobs/sha256:abab/artifacts/logs/00-build.log"
        );
        assert!(
            p["predicate"]["buildDefinition"]["externalParameters"]["steps"][0]
                .get("exitCode")
                .is_none()
        );
    }

    #[test]
    fn fetched_bodies_are_dependencies_and_a_tag_pull_says_it_was_unpinned() {
        use crate::network::{Exchange, NetworkMode};
        let exchange = |url: &str, digest: &str, unpinned: bool| Exchange {
            method: "GET".into(),
            url: url.into(),
            status: Some(200),
            bytes: 10,
            sha256: Some(digest.into()),
            unpinned,
            ..Default::default()
        };
        let mut v = verdict(
            Status::Reproducible,
            &[("reg/app", &sha("a"), SubjectState::Matched)],
        );
        v.steps = vec![step()];
        v.network = Some(crate::verdict::NetworkRecord {
            mode: NetworkMode::Proxy,
            allow: vec!["reg.example".into()],
            rule: None,
            replayed_from: None,
            proxy: "http://127.0.0.1:3128".into(),
            no_proxy: "localhost".into(),
            tls: None,
            pushed: Vec::new(),
            exchanges: vec![
                exchange(
                    "https://reg.example/v2/base/blobs/sha256:55",
                    &sha("5"),
                    false,
                ),
                exchange(
                    "https://reg.example/v2/base/manifests/latest",
                    &sha("6"),
                    true,
                ),
            ],
        });
        let provenance = statements(&v, &AT)
            .into_iter()
            .find(|(k, _)| *k == "provenance")
            .unwrap()
            .1;
        let deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap()
            .clone();
        let dep = |url: &str| deps.iter().find(|d| d["uri"] == url).unwrap().clone();
        let pinned = dep("https://reg.example/v2/base/blobs/sha256:55");
        assert_eq!(pinned["digest"]["sha256"], "5".repeat(64));
        assert!(pinned["annotations"].get("unpinned").is_none());
        assert_eq!(
            dep("https://reg.example/v2/base/manifests/latest")["annotations"]["unpinned"],
            true
        );
    }

    #[test]
    fn nothing_compared_means_no_summary() {
        let mut failed = verdict(
            Status::BuildFailed,
            &[("reg/app", &sha("a"), SubjectState::NotCompared)],
        );
        failed.steps.push(step());
        assert_eq!(
            kinds(&failed),
            ["provenance"],
            "a failed build has only its provenance"
        );
        let p = &statements(&failed, &AT)[0].1;
        assert_eq!(p["subject"][0]["name"], "logs/00-build.log");
        let refused = verdict(
            Status::Rejected,
            &[("reg/app", &sha("a"), SubjectState::NotCompared)],
        );
        assert!(
            kinds(&refused).is_empty(),
            "nothing ran, nothing was compared"
        );
    }

    #[test]
    fn resource_uris_are_package_urls() {
        let s = |name: &str| {
            let mut r = SubjectResult::not_compared(name, sha("a"));
            r.set_state(SubjectState::Matched);
            resource_uri(&r)
        };
        let hex = "a".repeat(64);
        assert_eq!(
            s("127.0.0.1:5000/hello/app:v1"),
            format!("pkg:docker/hello/app@sha256%3A{hex}?repository_url=127.0.0.1%3A5000")
        );
        assert_eq!(
            s("docker.io/library/alpine"),
            format!("pkg:docker/library/alpine@sha256%3A{hex}")
        );
        assert_eq!(
            s("example.invalid/<script>"),
            format!("pkg:docker/%3Cscript%3E@sha256%3A{hex}?repository_url=example.invalid")
        );
        assert_eq!(
            s(""),
            format!("pkg:generic/artifact?checksum=sha256%3A{hex}")
        );
    }
}
