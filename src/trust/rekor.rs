//! Transparency-log entries: the signed entry timestamp, the inclusion proof and checkpoint, and the check
//! that the logged body is about this very signature (CVE-2022-36056 is what skipping that costs).

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::certificate::LeafCertificate;
use super::checkpoint;
use super::merkle;
use super::root::{Log, TrustedRoot};
use crate::json::decode_base64;

/// A log entry as a Sigstore bundle carries it (numbers already parsed).
#[derive(Debug, Clone)]
pub struct TlogEntry {
    pub log_index: u64,
    pub log_id: Vec<u8>,
    pub kind: String,
    pub version: String,
    pub integrated_time: Option<i64>,
    pub signed_entry_timestamp: Option<Vec<u8>>,
    pub inclusion_proof: Option<InclusionProof>,
    /// The base64 text exactly as received: the SET signs it in this form.
    pub canonicalized_body_b64: String,
}

#[derive(Debug, Clone)]
pub struct InclusionProof {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: Option<String>,
}

/// What the signature being logged is: the entry's body must describe exactly this.
pub struct Logged<'a> {
    pub signature: &'a [u8],
    pub certificate: &'a LeafCertificate,
    pub content: LoggedContent<'a>,
}

pub enum LoggedContent<'a> {
    /// A DSSE envelope: its exact payload bytes, and its PAE (what Rekor v2 logs the digest of).
    Dsse { payload: &'a [u8], pae: &'a [u8] },
    /// A signature over an artifact known by its sha256.
    Digest { sha256: &'a [u8] },
}

/// What a verified entry proves.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedEntry {
    pub log: String,
    pub log_index: u64,
    /// The integrated time, only when a verified SET vouches for it.
    pub integrated_time: Option<i64>,
    pub signed_entry_timestamp: bool,
    pub inclusion_proof: bool,
}

/// Verifies one entry against the trust root and the signature it should log.
pub fn verify_entry(
    entry: &TlogEntry,
    root: &TrustedRoot,
    logged: &Logged<'_>,
) -> Result<VerifiedEntry, String> {
    use base64::Engine;
    let log = root.tlog(&entry.log_id).ok_or_else(|| {
        let id = base64::engine::general_purpose::STANDARD.encode(&entry.log_id);
        match root.refused_tlog(&entry.log_id) {
            Some(refused) => format!(
                "the entry is in transparency log {id}, which is not trusted: {}",
                refused.reason
            ),
            None => format!(
                "the entry is in transparency log {id}, which {} does not list (an unknown or newer log)",
                root.label
            ),
        }
    })?;
    let body = decode_base64(&entry.canonicalized_body_b64)
        .map_err(|e| format!("canonicalizedBody is not base64: {e}"))?;
    if entry.signed_entry_timestamp.is_none() && entry.inclusion_proof.is_none() {
        return Err("the entry has neither a signed entry timestamp nor an inclusion proof".into());
    }
    // First: is this entry about this signature at all? Then: is the entry authentic?
    check_body(&body, entry, logged)?;
    let mut integrated_time = None;
    if let Some(set) = &entry.signed_entry_timestamp {
        let time = entry
            .integrated_time
            .ok_or("the entry has a signed entry timestamp but no integratedTime")?;
        verify_set(entry, log, set, time)?;
        if !log.valid.contains(time) {
            return Err(format!(
                "{} was not valid at the integrated time",
                log.base_url
            ));
        }
        integrated_time = Some(time);
    }
    if let Some(proof) = &entry.inclusion_proof {
        verify_proof(&body, proof, log)?;
    }
    Ok(VerifiedEntry {
        log: log.base_url.clone(),
        log_index: entry.log_index,
        integrated_time,
        signed_entry_timestamp: entry.signed_entry_timestamp.is_some(),
        inclusion_proof: entry.inclusion_proof.is_some(),
    })
}

/// The SET is the log's signature over canonical JSON of the body, time, log id and index.
fn verify_set(entry: &TlogEntry, log: &Log, set: &[u8], time: i64) -> Result<(), String> {
    // Fields in RFC 8785 (sorted-key, compact) order; the values are a string, integers and hex.
    #[derive(Serialize)]
    struct Payload<'a> {
        body: &'a str,
        #[serde(rename = "integratedTime")]
        integrated_time: i64,
        #[serde(rename = "logID")]
        log_id: String,
        #[serde(rename = "logIndex")]
        log_index: u64,
    }
    let payload = serde_json::to_vec(&Payload {
        body: &entry.canonicalized_body_b64,
        integrated_time: time,
        log_id: hex::encode(&entry.log_id),
        log_index: entry.log_index,
    })
    .map_err(|e| e.to_string())?;
    if log.key.verify(set, &payload) {
        Ok(())
    } else {
        Err(format!(
            "the signed entry timestamp is not {}'s signature over this entry",
            log.base_url
        ))
    }
}

fn verify_proof(body: &[u8], proof: &InclusionProof, log: &Log) -> Result<(), String> {
    let to32 = |v: &[u8], what: &str| -> Result<[u8; 32], String> {
        v.try_into()
            .map_err(|_| format!("inclusion proof: {what} is {} bytes, not 32", v.len()))
    };
    let root = to32(&proof.root_hash, "rootHash")?;
    let hashes = proof
        .hashes
        .iter()
        .map(|h| to32(h, "a hash"))
        .collect::<Result<Vec<_>, _>>()?;
    merkle::verify_inclusion(
        proof.log_index,
        proof.tree_size,
        &merkle::leaf_hash(body),
        &hashes,
        &root,
    )
    .map_err(|e| format!("inclusion proof: {e}"))?;
    let note = proof
        .checkpoint
        .as_deref()
        .ok_or("the inclusion proof has no checkpoint, so nothing signed vouches for its root")?;
    let cp =
        checkpoint::verify(note, &log.log_id, &log.key).map_err(|e| format!("checkpoint: {e}"))?;
    if cp.tree_size != proof.tree_size || cp.root_hash != proof.root_hash {
        return Err(format!(
            "the checkpoint (size {}) does not vouch for the proof's root (size {})",
            cp.tree_size, proof.tree_size
        ));
    }
    Ok(())
}

/// The body must log this signature, by this certificate, over this content.
fn check_body(body: &[u8], entry: &TlogEntry, logged: &Logged<'_>) -> Result<(), String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("canonicalizedBody is not JSON: {e}"))?;
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != entry.kind || version != entry.version {
        return Err(format!(
            "the body is a {kind} {version} entry, but the bundle says {} {}",
            entry.kind, entry.version
        ));
    }
    let spec = value.get("spec").ok_or("the body has no spec")?;
    let s = |v: &Value, path: &[&str]| -> Option<String> {
        path.iter()
            .try_fold(v, |v, k| v.get(*k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mismatch = |what: &str| {
        Err(format!(
            "the log entry's {what} does not match the bundle's (the entry logs something else)"
        ))
    };
    let b64 = |t: &str| decode_base64(t).ok();
    // A verifier is a certificate (PEM, base64 of PEM, or DER) that must be the signing certificate.
    let same_cert = |text: Option<Vec<u8>>| -> bool {
        let Some(bytes) = text else { return false };
        if bytes == logged.certificate.der {
            return true;
        }
        LeafCertificate::from_pem(&bytes).is_ok_and(|c| c.der == logged.certificate.der)
    };
    match (kind, version, &logged.content) {
        ("intoto", "0.0.2", LoggedContent::Dsse { payload, .. }) => {
            let content = spec.get("content").ok_or("intoto entry without content")?;
            if s(content, &["payloadHash", "value"]) != Some(hex::encode(Sha256::digest(payload))) {
                return mismatch("payload hash");
            }
            let sigs = content
                .pointer("/envelope/signatures")
                .and_then(Value::as_array)
                .ok_or("intoto entry without signatures")?;
            // intoto v0.0.2 stores each signature base64-encoded twice.
            let found = sigs.iter().any(|sig| {
                s(sig, &["sig"])
                    .and_then(|t| b64(&t))
                    .and_then(|t| b64(&String::from_utf8_lossy(&t)))
                    == Some(logged.signature.to_vec())
                    && same_cert(s(sig, &["publicKey"]).and_then(|t| b64(&t)))
            });
            if !found {
                return mismatch("signature or certificate");
            }
        }
        ("dsse", "0.0.1", LoggedContent::Dsse { payload, .. }) => {
            if s(spec, &["payloadHash", "value"]) != Some(hex::encode(Sha256::digest(payload))) {
                return mismatch("payload hash");
            }
            let sigs = spec
                .get("signatures")
                .and_then(Value::as_array)
                .ok_or("dsse entry without signatures")?;
            let found = sigs.iter().any(|sig| {
                s(sig, &["signature"]).and_then(|t| b64(&t)) == Some(logged.signature.to_vec())
                    && same_cert(s(sig, &["verifier"]).and_then(|t| b64(&t)))
            });
            if !found {
                return mismatch("signature or certificate");
            }
        }
        ("dsse", "0.0.2", LoggedContent::Dsse { payload, .. }) => {
            let v2 = spec
                .get("dsseV002")
                .ok_or("dsse 0.0.2 entry without dsseV002")?;
            if s(v2, &["payloadHash", "digest"]).and_then(|t| b64(&t))
                != Some(Sha256::digest(payload).to_vec())
            {
                return mismatch("payload hash");
            }
            let sigs = v2
                .get("signatures")
                .and_then(Value::as_array)
                .ok_or("dsse entry without signatures")?;
            let found = sigs.iter().any(|sig| {
                s(sig, &["content"]).and_then(|t| b64(&t)) == Some(logged.signature.to_vec())
                    && same_cert(
                        s(sig, &["verifier", "x509Certificate", "rawBytes"]).and_then(|t| b64(&t)),
                    )
            });
            if !found {
                return mismatch("signature or certificate");
            }
        }
        ("hashedrekord", "0.0.1", LoggedContent::Digest { sha256 }) => {
            if s(spec, &["data", "hash", "algorithm"]).as_deref() != Some("sha256")
                || s(spec, &["data", "hash", "value"]) != Some(hex::encode(sha256))
            {
                return mismatch("artifact digest");
            }
            if s(spec, &["signature", "content"]).and_then(|t| b64(&t))
                != Some(logged.signature.to_vec())
            {
                return mismatch("signature");
            }
            if !same_cert(s(spec, &["signature", "publicKey", "content"]).and_then(|t| b64(&t))) {
                return mismatch("certificate");
            }
        }
        ("hashedrekord", "0.0.2", LoggedContent::Digest { sha256 }) => {
            check_hashedrekord_v2(spec, sha256, logged, &same_cert)?;
        }
        // Rekor v2 logs a DSSE envelope as a hashedrekord over its PAE.
        ("hashedrekord", "0.0.2", LoggedContent::Dsse { pae, .. }) => {
            check_hashedrekord_v2(spec, &Sha256::digest(pae), logged, &same_cert)?;
        }
        (kind, version, content) => {
            return Err(format!(
                "a {kind} {version} log entry cannot log a {}",
                match content {
                    LoggedContent::Dsse { .. } => "DSSE envelope",
                    LoggedContent::Digest { .. } => "message signature",
                }
            ))
        }
    }
    Ok(())
}

/// hashedrekord 0.0.2 (Rekor v2): the logged digest, signature and certificate.
fn check_hashedrekord_v2(
    spec: &Value,
    sha256: &[u8],
    logged: &Logged<'_>,
    same_cert: &dyn Fn(Option<Vec<u8>>) -> bool,
) -> Result<(), String> {
    let v2 = spec
        .get("hashedRekordV002")
        .ok_or("hashedrekord 0.0.2 entry without hashedRekordV002")?;
    let text = |path: &str| v2.pointer(path).and_then(Value::as_str);
    let bytes = |path: &str| text(path).and_then(|t| decode_base64(t).ok());
    let mismatch = |what: &str| {
        Err(format!(
            "the log entry's {what} does not match the bundle's (the entry logs something else)"
        ))
    };
    if text("/data/algorithm") != Some("SHA2_256")
        || bytes("/data/digest").as_deref() != Some(sha256)
    {
        return mismatch("digest");
    }
    if bytes("/signature/content").as_deref() != Some(logged.signature) {
        return mismatch("signature");
    }
    if !same_cert(bytes("/signature/verifier/x509Certificate/rawBytes")) {
        return mismatch("certificate");
    }
    Ok(())
}
