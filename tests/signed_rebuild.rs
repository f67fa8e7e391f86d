//! `reprod rebuild` with signatures: verified provenance is rebuilt and says who signed it; a bad
//! signature, a missing one under `trust.require_signature`, or a signer the trust policy does not accept
//! yields `rejected` before anything runs.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_json::{json, Value};

struct Key {
    private: PKey<Private>,
    pem_path: std::path::PathBuf,
    id: String,
}

fn new_key(dir: &std::path::Path, name: &str) -> Key {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let private = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let pem_path = dir.join(format!("{name}.pub.pem"));
    std::fs::write(&pem_path, private.public_key_to_pem().unwrap()).unwrap();
    let id = reprod::trust::keys::key_id(&private.public_key_to_der().unwrap());
    Key {
        private,
        pem_path,
        id,
    }
}

/// A DSSE envelope over the statement, signed with `key`.
fn sign(statement: &Value, key: &Key) -> Value {
    let payload = serde_json::to_vec(statement).unwrap();
    let pae = reprod::trust::dsse::pae("application/vnd.in-toto+json", &payload);
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key.private).unwrap();
    let sig = signer.sign_oneshot_to_vec(&pae).unwrap();
    json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": STANDARD.encode(payload),
        "signatures": [{"keyid": "", "sig": STANDARD.encode(sig)}]
    })
}

fn unbuilt_provenance(repo: &Repo) -> Value {
    repo.provenance(
        vec![subject("example.invalid/hello", &unbuilt_digest('d'))],
        HELLO_SCRIPT,
    )
}

#[test]
fn signed_provenance_is_verified_then_rebuilt_and_the_signer_is_named() {
    let repo = Repo::hello();
    let [hello, _, _] = repo
        .reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"));
    let prov = repo.provenance(vec![subject("example.invalid/hello", &hello)], HELLO_SCRIPT);
    let r = Reprod::new();
    let key = new_key(r.data.path(), "builder");
    let envelope = sign(&prov, &key);
    let (code, v, stderr) = r.rebuild_with(&envelope, &["--key", key.pem_path.to_str().unwrap()]);
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    let verification = &v["provenance"]["verification"];
    assert_eq!(verification["status"], "verified", "{verification}");
    assert_eq!(verification["signers"][0]["key_id"], key.id.as_str());
    assert!(!stderr.contains("NOT verified"), "{stderr}");
}

#[test]
fn a_signature_by_another_key_is_rejected_before_anything_runs() {
    let repo = Repo::hello();
    let r = Reprod::new();
    let (signer, other) = (
        new_key(r.data.path(), "signer"),
        new_key(r.data.path(), "other"),
    );
    let envelope = sign(&unbuilt_provenance(&repo), &signer);
    let (code, v, stderr) = r.rebuild_with(&envelope, &["--key", other.pem_path.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(v["status"], "rejected", "{v:#}");
    assert_eq!(v["reason"], "signature-failed");
    assert!(
        v["steps"].as_array().unwrap().is_empty(),
        "nothing ran: {v:#}"
    );
    assert!(v["source"].is_null(), "the source was not even fetched");
}

#[test]
fn a_payload_changed_after_signing_is_rejected() {
    let repo = Repo::hello();
    let r = Reprod::new();
    let key = new_key(r.data.path(), "signer");
    let mut envelope = sign(&unbuilt_provenance(&repo), &key);
    let mut statement: Value = serde_json::from_slice(
        &STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    statement["predicate"]["recipe"]["steps"][0]["entryPoint"] = json!("#!/bin/sh\necho owned\n");
    envelope["payload"] = json!(STANDARD.encode(serde_json::to_vec(&statement).unwrap()));
    let (code, v, _) = r.rebuild_with(&envelope, &["--key", key.pem_path.to_str().unwrap()]);
    assert_eq!((code, v["status"].as_str()), (1, Some("rejected")), "{v:#}");
    assert_eq!(v["reason"], "signature-failed");
}

#[test]
fn unsigned_provenance_is_rejected_when_signatures_are_required() {
    let repo = Repo::hello();
    let r = Reprod::new().with("REPROD_TRUST_REQUIRE_SIGNATURE", "true");
    let (code, v, _) = r.rebuild(&unbuilt_provenance(&repo));
    assert_eq!((code, v["status"].as_str()), (1, Some("rejected")), "{v:#}");
    assert_eq!(v["reason"], "unsigned");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("trust.require_signature"),
        "{v:#}"
    );
}

#[test]
fn unsigned_provenance_is_rebuilt_only_with_a_plain_warning_by_default() {
    let repo = Repo::hello();
    let (_, v, stderr) = Reprod::new().rebuild(&unbuilt_provenance(&repo));
    assert_eq!(
        v["provenance"]["verification"]["status"], "unsigned",
        "{v:#}"
    );
    assert!(
        stderr.contains("unsigned: a bare statement carries no signature"),
        "{stderr}"
    );
    assert_eq!(v["status"], "unreproducible", "it did run: {v:#}");
}

#[test]
fn the_trust_policy_decides_which_signers_and_builders_an_image_accepts() {
    let repo = Repo::hello();
    let r = Reprod::new();
    let (signer, other) = (
        new_key(r.data.path(), "signer"),
        new_key(r.data.path(), "other"),
    );
    let envelope = sign(&unbuilt_provenance(&repo), &signer);
    let config = r.data.path().join("reprod.toml");
    let run = |rule: &str| {
        std::fs::write(
            &config,
            format!(
                "[trust]\nkeys = [{:?}, {:?}]\n\n[[trust.rules]]\n{rule}\n",
                signer.pem_path.display().to_string(),
                other.pem_path.display().to_string()
            ),
        )
        .unwrap();
        let r = Reprod {
            data: tempfile::tempdir().unwrap(),
            env: r.env.clone(),
        }
        .with("REPROD_CONFIG", config.to_str().unwrap());
        let (code, v, stderr) = r.rebuild_with(&envelope, &[]);
        (code, v, stderr)
    };
    // Another signer is required for these images: refused.
    let (code, v, _) = run(&format!(
        "images = [\"example.invalid/*\"]\nsigners = [{{ key = {:?} }}]",
        other.id
    ));
    assert_eq!(
        (code, v["status"].as_str(), v["reason"].as_str()),
        (1, Some("rejected"), Some("policy")),
        "{v:#}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("no signer the trust rule"),
        "{v:#}"
    );
    // The right signer but another builder: refused.
    let (_, v, _) = run(&format!(
        "images = [\"example.invalid/*\"]\nsigners = [{{ key = {:?} }}]\nbuilders = [\"https://builder.example.invalid/*\"]",
        signer.id
    ));
    assert_eq!(v["reason"], "policy", "{v:#}");
    assert!(
        v["detail"].as_str().unwrap().contains("builder \"test\""),
        "{v:#}"
    );
    // The right signer and builder: admitted (and rebuilt; the digest is not the real one).
    let (_, v, stderr) = run(&format!(
        "images = [\"example.invalid/*\"]\nsigners = [{{ key = {:?} }}]\nbuilders = [\"test\"]",
        signer.id
    ));
    assert_eq!(v["status"], "unreproducible", "{v:#}\n{stderr}");
}

#[test]
fn a_missing_or_bad_key_file_is_an_error_at_start() {
    let repo = Repo::hello();
    let r = Reprod::new();
    let path = r.data.path().join("provenance.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&unbuilt_provenance(&repo)).unwrap(),
    )
    .unwrap();
    let out = r.run(&[
        "rebuild",
        "--key",
        "/nonexistent/key.pem",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/key.pem") && stderr.contains("No such file"),
        "{stderr}"
    );
    let bad = r.data.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let out = r.run(&[
        "verify-provenance",
        "--key",
        bad.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.pem: not a PEM public key"), "{stderr}");
}
