//! Signatures under attack: tampered variants of valid corpus documents are all refused, the RFC 3161
//! and inclusion-proof paths are exercised on real Sigstore material, and DSSE verification agrees with an
//! independent implementation (securesystemslib, installed by scripts/setup.sh) on every DSSE row.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::corpus;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use reprod::examine::{examine, Finding};
use reprod::provenance::container::NoBlobs;
use reprod::trust::{dsse, PublicKey, TrustMaterial, TrustedRoot, Verification};
use serde_json::Value;

const MAX: usize = 16 << 20;

fn key(rel: &str) -> PublicKey {
    PublicKey::from_pem(&std::fs::read(corpus(rel)).unwrap(), rel).unwrap()
}

fn root(rel: &str) -> TrustedRoot {
    TrustedRoot::from_json(&std::fs::read(corpus(rel)).unwrap(), rel).unwrap()
}

fn with_keys(keys: &[&str]) -> TrustMaterial {
    TrustMaterial {
        keys: keys.iter().map(|k| key(k)).collect(),
        ..Default::default()
    }
}

fn with_root(rel: &str) -> TrustMaterial {
    TrustMaterial {
        roots: vec![root(rel)],
        ..Default::default()
    }
}

fn json(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(corpus(rel)).unwrap()).unwrap()
}

fn check(doc: &Value, material: &TrustMaterial) -> Vec<Finding> {
    examine(&serde_json::to_vec(doc).unwrap(), MAX, &NoBlobs, material).unwrap()
}

/// A valid document, the JSON pointer of an envelope in it, and the material it verifies with.
struct Case {
    file: &'static str,
    envelope: &'static str,
    material: fn() -> TrustMaterial,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            file: "danbev-learning-crypto/tekton-chains-taskrun-slsa-v0.2.dsse.json",
            envelope: "",
            material: || {
                with_keys(&["danbev-learning-crypto/tekton-chains-cosign-signing-key.pub"])
            },
        },
        Case {
            file: "rekor/intoto_dsse.json",
            envelope: "",
            material: || with_keys(&["rekor/intoto_dsse.pem"]),
        },
        Case {
            file: "slsa-verifier/gcb-v0.2-gcloud-container-github.json",
            envelope: "/provenance_summary/provenance/0/envelope",
            material: || with_keys(&["slsa-verifier/gcb-keys/global.key"]),
        },
        Case {
            file: "slsa-verifier/gcb-global-pae-signing-key-successful.json",
            envelope: "/provenance_summary/provenance/0/envelope",
            material: || with_keys(&["slsa-verifier/gcb-keys/global-pae-provenanceSigner_1.key"]),
        },
        Case {
            file: "slsa-verifier/bundle-valid.intoto.sigstore",
            envelope: "/dsseEnvelope",
            material: || with_root("sigstore-python/trustedroot.v1.json"),
        },
        Case {
            file:
                "slsa-verifier/gha_generic-v2.1.0-binary-linux-amd64-workflow_dispatch.intoto.jsonl",
            envelope: "/dsseEnvelope",
            material: || with_root("sigstore-python/trustedroot.v1.json"),
        },
        Case {
            file: "sigstore-java/bundle.dsse.sigstore",
            envelope: "/dsseEnvelope",
            material: || with_root("sigstore-python/trustedroot.v1.json"),
        },
    ]
}

fn assert_refused(findings: &[Finding], what: &str) {
    for f in findings {
        assert!(
            !f.verification.is_verified(),
            "{what}: tampered document was verified: {:?}",
            f.verification
        );
    }
}

fn assert_failed(findings: &[Finding], what: &str) {
    assert_refused(findings, what);
    assert!(
        matches!(findings[0].verification, Verification::Failed { .. }),
        "{what}: {:?}",
        findings[0].verification
    );
}

fn edit_payload(env: &mut Value, edit: impl Fn(&mut Vec<u8>)) {
    let mut payload = STANDARD.decode(env["payload"].as_str().unwrap()).unwrap();
    edit(&mut payload);
    env["payload"] = Value::String(STANDARD.encode(payload));
}

#[test]
fn untampered_cases_verify() {
    // Without this, every refusal below could be a broken verifier.
    for c in cases() {
        let findings = check(&json(c.file), &(c.material)());
        assert!(
            findings[0].verification.is_verified(),
            "{}: {:?}",
            c.file,
            findings[0].verification
        );
    }
}

#[test]
fn a_flipped_payload_byte_is_refused() {
    for c in cases() {
        let mut doc = json(c.file);
        edit_payload(doc.pointer_mut(c.envelope).unwrap(), |p| {
            let mid = p.len() / 2;
            p[mid] ^= 0x01;
        });
        assert_failed(&check(&doc, &(c.material)()), c.file);
    }
}

#[test]
fn a_swapped_subject_digest_is_refused() {
    for c in cases() {
        let mut doc = json(c.file);
        edit_payload(doc.pointer_mut(c.envelope).unwrap(), |p| {
            let mut st: Value = serde_json::from_slice(p).unwrap();
            st["subject"] =
                serde_json::json!([{"name": "evil", "digest": {"sha256": "a".repeat(64)}}]);
            *p = serde_json::to_vec(&st).unwrap();
        });
        let findings = check(&doc, &(c.material)());
        assert_refused(&findings, c.file);
        assert_eq!(
            findings[0].predicate_type, None,
            "{}: a refused statement is not read",
            c.file
        );
    }
}

#[test]
fn a_dropped_signature_leaves_nothing_verified() {
    for c in cases() {
        let mut doc = json(c.file);
        doc.pointer_mut(c.envelope).unwrap()["signatures"] = Value::Array(Vec::new());
        assert_refused(&check(&doc, &(c.material)()), c.file);
    }
    // Of two signatures, dropping one leaves only the other's signer.
    let mut doc = json("rekor/intoto_multi_dsse.json");
    doc["signatures"].as_array_mut().unwrap().remove(1);
    let material = with_keys(&["rekor/intoto_dsse.pem", "rekor/intoto_multi_pub2.pem"]);
    match &check(&doc, &material)[0].verification {
        Verification::Verified { signers } => assert_eq!(signers.len(), 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_signature_by_an_unknown_key_is_refused() {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let stranger = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    for c in cases() {
        let mut doc = json(c.file);
        let env = doc.pointer_mut(c.envelope).unwrap();
        let payload = STANDARD.decode(env["payload"].as_str().unwrap()).unwrap();
        let pae = dsse::pae(env["payloadType"].as_str().unwrap(), &payload);
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &stranger).unwrap();
        let sig = signer.sign_oneshot_to_vec(&pae).unwrap();
        env["signatures"][0]["sig"] = Value::String(STANDARD.encode(sig));
        assert_failed(&check(&doc, &(c.material)()), c.file);
    }
}

#[test]
fn a_valid_envelope_in_someone_elses_bundle_is_refused() {
    let material = with_root("sigstore-python/trustedroot.v1.json");
    let theirs = json("slsa-verifier/bundle-attestation.intoto.sigstore");
    // Someone else's certificate and log entry around this envelope.
    let mut doc = json("slsa-verifier/bundle-valid.intoto.sigstore");
    doc["verificationMaterial"] = theirs["verificationMaterial"].clone();
    assert_refused(
        &check(&doc, &material),
        "envelope with another bundle's material",
    );
    // Only the certificate swapped: the log entry still names the real signer.
    let mut doc = json("slsa-verifier/bundle-valid.intoto.sigstore");
    doc["verificationMaterial"]["x509CertificateChain"] =
        theirs["verificationMaterial"]["x509CertificateChain"].clone();
    assert_refused(
        &check(&doc, &material),
        "envelope with another bundle's certificate",
    );
}

#[test]
fn a_tampered_inclusion_proof_or_checkpoint_is_refused() {
    let material = with_root("sigstore-python/trustedroot.v1.json");
    let file = "slsa-verifier/bundle-valid-v0.3.intoto.sigstore";
    let mut doc = json(file);
    let proof = doc
        .pointer_mut("/verificationMaterial/tlogEntries/0/inclusionProof")
        .unwrap();
    let mut h = STANDARD
        .decode(proof["hashes"][0].as_str().unwrap())
        .unwrap();
    h[0] ^= 1;
    proof["hashes"][0] = Value::String(STANDARD.encode(h));
    let f = check(&doc, &material);
    assert!(
        matches!(&f[0].verification, Verification::Failed { reason } if reason.contains("inclusion proof")),
        "{:?}",
        f[0].verification
    );
    let mut doc = json(file);
    let cp = doc
        .pointer_mut("/verificationMaterial/tlogEntries/0/inclusionProof/checkpoint/envelope")
        .unwrap();
    *cp = Value::String(cp.as_str().unwrap().replacen('\n', "\n9", 1));
    assert_refused(&check(&doc, &material), "checkpoint with another tree size");
}

#[test]
fn rfc3161_timestamps_verify_against_the_trust_roots_authority_only() {
    let bundle = json("sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json");
    let token = STANDARD
        .decode(
            bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
                ["signedTimestamp"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let sig = STANDARD
        .decode(
            bundle["messageSignature"]["signature"]
                .as_str()
                .or_else(|| bundle["dsseEnvelope"]["signatures"][0]["sig"].as_str())
                .unwrap(),
        )
        .unwrap();
    let staging = root("sigstore-python/staging-trusted_root.json");
    let t = reprod::trust::timestamp::verify(&token, &sig, &staging).unwrap();
    assert!(
        t.authority.contains("timestamp.sigstage.dev"),
        "{}",
        t.authority
    );
    assert!(t.time > 1_770_000_000, "stamped in 2026: {}", t.time);
    let mut other = sig.clone();
    other[10] ^= 1;
    let err = reprod::trust::timestamp::verify(&token, &other, &staging).unwrap_err();
    assert!(
        err.contains("over something other than this signature"),
        "{err}"
    );
    let production = root("sigstore-python/trustedroot.v1.json");
    assert!(reprod::trust::timestamp::verify(&token, &sig, &production).is_err());
    let mut broken = token.clone();
    let n = broken.len() - 20;
    broken[n] ^= 1;
    assert!(reprod::trust::timestamp::verify(&broken, &sig, &staging).is_err());
}

/// Every signature of every key-signed DSSE row, against every key of the corpus, plus each with a
/// flipped payload byte: reprod and securesystemslib must agree on every one.
#[test]
fn dsse_verification_agrees_with_securesystemslib() {
    let keys = [
        "danbev-learning-crypto/tekton-chains-cosign-signing-key.pub",
        "rekor/intoto_dsse.pem",
        "rekor/intoto_multi_pub2.pem",
        "slsa-verifier/gcb-keys/global.key",
        "slsa-verifier/gcb-keys/us-west2.key",
        "slsa-verifier/gcb-keys/global-pae-provenanceSigner_1.key",
        "slsa-verifier/gcb-keys/global-pae-google-hosted-worker_1.key",
        "slsa-verifier/vsa_signing_public_key.pem",
        "slsa-verifier/npm/npm-registry-attestation-key-SHA256_jl3bwswu80.pem",
    ];
    let envelopes: Vec<Value> = [
        (
            "danbev-learning-crypto/tekton-chains-taskrun-slsa-v0.2.dsse.json",
            "",
        ),
        ("rekor/intoto_dsse.json", ""),
        ("rekor/intoto_multi_dsse.json", ""),
        (
            "slsa-verifier/gcb-v0.2-gcloud-container-github.json",
            "/provenance_summary/provenance/0/envelope",
        ),
        (
            "slsa-verifier/gcb-v0.3-gcloud-container-github.json",
            "/provenance_summary/provenance/0/envelope",
        ),
        (
            "slsa-verifier/gcb-global-pae-signing-key-successful.json",
            "/provenance_summary/provenance/0/envelope",
        ),
        (
            "slsa-verifier/gcb-v1.0-gcloud-container-github-v1.0-valid.json",
            "/provenance_summary/provenance/0/envelope",
        ),
        (
            "slsa-verifier/gcb-v1.0-gcloud-container-github-v1.0-valid.json",
            "/provenance_summary/provenance/1/envelope",
        ),
        (
            "slsa-verifier/gcb-invalid-signature.json",
            "/provenance_summary/provenance/0/envelope",
        ),
        ("slsa-verifier/gke-gce-pre.bcid-vsa.jsonl", ""),
        (
            "slsa-verifier/npm/provenance-npm-test-cli-v1-prega.tgz.json",
            "/attestations/0/bundle/dsseEnvelope",
        ),
        (
            "slsa-verifier/npm/provenance-npm-test-cli-v1-prega-invalidsigpub.tgz.json",
            "/attestations/0/bundle/dsseEnvelope",
        ),
    ]
    .iter()
    .map(|(file, ptr)| json(file).pointer(ptr).unwrap().clone())
    .collect();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for env in &envelopes {
        let mut flipped = env.clone();
        edit_payload(&mut flipped, |p| p[0] ^= 0x20);
        for variant in [env, &flipped] {
            let parsed = dsse::Envelope::from_value(variant, "case").unwrap();
            for (i, sig) in parsed.signatures.iter().enumerate() {
                for k in &keys {
                    let mut one = variant.clone();
                    one["signatures"] = Value::Array(vec![variant["signatures"][i].clone()]);
                    cases.push(serde_json::json!({
                        "envelope": one,
                        "key": std::fs::read_to_string(corpus(k)).unwrap(),
                    }));
                    ours.push(key(k).verify(&sig.sig, &parsed.pae()));
                }
            }
        }
    }
    let python = common::python();
    let mut child = std::process::Command::new(&python)
        .arg(common::project_root().join("tests/support/dsse_crosscheck.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python}: {e} (scripts/setup.sh installs securesystemslib there)")
        });
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&cases).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "securesystemslib check failed");
    let theirs: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    let disagreements: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!("case {i}: reprod {a}, securesystemslib {b}"))
        .collect();
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    let accepted = ours.iter().filter(|v| **v).count();
    // The valid rows' own signatures verify (danbev, 2x rekor, global-pae, gcb v1.0[0], VSA, npm = 7 at
    // least); flipped payloads and wrong keys do not.
    assert!(
        accepted >= 7 && accepted < ours.len() / 4,
        "accepted {accepted} of {}",
        ours.len()
    );
}

/// Each supported key type signs a DSSE envelope that then verifies, in DER and (for ECDSA) raw `r||s`
/// form, with base64url too; and fails with a flipped byte.
#[test]
fn every_key_type_verifies_dsse_in_every_encoding() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use openssl::rsa::Rsa;
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}"#;
    let pae = dsse::pae("application/vnd.in-toto+json", payload);
    let ec = |nid| {
        PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap())
            .unwrap()
    };
    let keys: Vec<(&str, PKey<openssl::pkey::Private>, Option<MessageDigest>)> = vec![
        (
            "P-256",
            ec(Nid::X9_62_PRIME256V1),
            Some(MessageDigest::sha256()),
        ),
        ("P-384", ec(Nid::SECP384R1), Some(MessageDigest::sha384())),
        (
            "RSA-2048",
            PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
            Some(MessageDigest::sha256()),
        ),
        ("Ed25519", PKey::generate_ed25519().unwrap(), None),
    ];
    for (name, private, md) in keys {
        let mut signer = match md {
            Some(md) => openssl::sign::Signer::new(md, &private).unwrap(),
            None => openssl::sign::Signer::new_without_digest(&private).unwrap(),
        };
        let der_sig = signer.sign_oneshot_to_vec(&pae).unwrap();
        let public = PublicKey::from_pem(&private.public_key_to_pem().unwrap(), name).unwrap();
        let mut encodings = vec![STANDARD.encode(&der_sig), URL_SAFE_NO_PAD.encode(&der_sig)];
        if name.starts_with('P') {
            let ecdsa = openssl::ecdsa::EcdsaSig::from_der(&der_sig).unwrap();
            let width = if name == "P-256" { 32 } else { 48 };
            let mut raw = ecdsa.r().to_vec_padded(width).unwrap();
            raw.extend(ecdsa.s().to_vec_padded(width).unwrap());
            encodings.push(STANDARD.encode(raw));
        }
        for sig in encodings {
            let env = serde_json::json!({
                "payloadType": "application/vnd.in-toto+json",
                "payload": STANDARD.encode(payload),
                "signatures": [{"sig": sig}],
            });
            let material = TrustMaterial {
                keys: vec![public.clone()],
                ..Default::default()
            };
            let f = check(&env, &material);
            assert!(
                f[0].verification.is_verified(),
                "{name} {sig}: {:?}",
                f[0].verification
            );
            let mut tampered = env.clone();
            edit_payload(&mut tampered, |p| p[2] ^= 1);
            assert_failed(&check(&tampered, &material), name);
        }
    }
}

/// A file of the sigstore-conformance suite in the shared corpus.
fn suite(rel: &str) -> std::path::PathBuf {
    common::project_root()
        .join("../shared/corpus/sigstore-conformance")
        .join(rel)
}

fn suite_json(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(suite(rel)).unwrap()).unwrap()
}

fn suite_root(rel: &str) -> TrustedRoot {
    TrustedRoot::from_json(&std::fs::read(suite(rel)).unwrap(), rel).unwrap()
}

/// A trust root from JSON edited in the test.
fn root_from(value: &Value) -> TrustedRoot {
    TrustedRoot::from_json(&serde_json::to_vec(value).unwrap(), "edited root").unwrap()
}

const PRODUCTION_ROOT: &str = "roots/production_trusted_root.json";
const HAPPY_DSSE: &str = "bundle-verify/happy-path-intoto-in-dsse-v3/bundle.sigstore.json";

fn happy_dsse_bundle() -> reprod::trust::bundle::Bundle {
    reprod::trust::bundle::Bundle::from_value(&suite_json(HAPPY_DSSE), "bundle").unwrap()
}

/// The leaf's DER and its issuer's SubjectPublicKeyInfo (the production intermediate).
fn happy_leaf_and_issuer() -> (Vec<u8>, Vec<u8>) {
    let bundle = happy_dsse_bundle();
    let reprod::trust::bundle::Material::Certificate(leaf) = &bundle.material else {
        panic!("a keyless bundle")
    };
    let root = suite_root(PRODUCTION_ROOT);
    let issuer = root
        .certificate_authorities
        .iter()
        .flat_map(|ca| &ca.chain)
        .find(|c| c.issued(leaf.x509()) == openssl::x509::X509VerifyResult::OK)
        .unwrap();
    (
        leaf.der.clone(),
        issuer.public_key().unwrap().public_key_to_der().unwrap(),
    )
}

#[test]
fn a_fulcio_certificates_sct_verifies_with_the_trust_roots_ct_log() {
    let signer = happy_dsse_bundle()
        .verify_keyless(&suite_root(PRODUCTION_ROOT))
        .unwrap();
    assert_eq!(signer.scts.len(), 1, "{:?}", signer.scts);
    assert_eq!(signer.scts[0].log, "https://ctfe.sigstore.dev/2022");
    // The signed data binds the issuer: the same SCT with another issuer key does not verify.
    let (leaf, issuer) = happy_leaf_and_issuer();
    let production = suite_root(PRODUCTION_ROOT);
    assert!(reprod::trust::sct::verify_embedded(&leaf, &issuer, &production).is_ok());
    let other = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap()
    .public_key_to_der()
    .unwrap();
    let err = reprod::trust::sct::verify_embedded(&leaf, &other, &production)
        .unwrap_err()
        .to_string();
    assert!(err.contains("signature does not verify"), "{err}");
}

#[test]
fn an_sct_needs_a_ct_log_of_the_trust_root_valid_at_its_time() {
    let (leaf, issuer) = happy_leaf_and_issuer();
    let check = |edit: &dyn Fn(&mut Value)| -> String {
        let mut value = suite_json(PRODUCTION_ROOT);
        edit(&mut value);
        reprod::trust::sct::verify_embedded(&leaf, &issuer, &root_from(&value))
            .unwrap_err()
            .to_string()
    };
    // The 2022 CT log's key made valid only from 2030: not at the SCT's time (December 2024).
    let err = check(&|v| {
        for log in v["ctlogs"].as_array_mut().unwrap() {
            log["publicKey"]["validFor"]["start"] = Value::String("2030-01-01T00:00:00Z".into());
        }
    });
    assert!(err.contains("was not valid at the SCT's time"), "{err}");
    // Without a start, the key is refused, and said so.
    let err = check(&|v| {
        for log in v["ctlogs"].as_array_mut().unwrap() {
            log["publicKey"]["validFor"]
                .as_object_mut()
                .unwrap()
                .remove("start");
        }
    });
    assert!(
        err.contains("not trusted") && err.contains("validFor.start"),
        "{err}"
    );
    // No CT log at all.
    let err = check(&|v| v["ctlogs"] = Value::Array(Vec::new()));
    assert!(
        err.contains("lists no certificate-transparency log"),
        "{err}"
    );
    // Only another log (the suite's invalid-ct-key_fail: the staging logs for a production SCT).
    let staging = suite_json("roots/staging_trusted_root.json");
    let err = check(&|v| v["ctlogs"] = staging["ctlogs"].clone());
    assert!(err.contains("does not list"), "{err}");
}

#[test]
fn a_certificate_without_an_sct_is_refused() {
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "no sct").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let der = b.build().to_der().unwrap();
    let err = reprod::trust::sct::verify_embedded(
        &der,
        &key.public_key_to_der().unwrap(),
        &suite_root(PRODUCTION_ROOT),
    )
    .unwrap_err();
    assert_eq!(err, reprod::trust::sct::SctError::Missing);
}
