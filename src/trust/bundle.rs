//! Sigstore bundles (v0.1, v0.2, v0.3) and their offline keyless verification: Fulcio chain at the signing
//! time, signature, transparency-log entry (signed entry timestamp and/or inclusion proof with a signed
//! checkpoint, and a body that logs this very signature), RFC 3161 timestamps, and the certificate's
//! embedded certificate-transparency SCTs.

use serde::Deserialize;
use serde_json::Value;

use super::certificate::{format_unix, LeafCertificate, EKU_CODE_SIGNING};
use super::dsse::Envelope;
use super::rekor::{self, InclusionProof, Logged, LoggedContent, TlogEntry, VerifiedEntry};
use super::root::{RawCert, RawChain, TrustedRoot};
use super::sct::{self, VerifiedSct};
use super::timestamp::{self, VerifiedTimestamp};
use crate::json::decode_base64;

/// Which bundle format, decided by `mediaType` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BundleVersion {
    #[serde(rename = "0.1")]
    V01,
    #[serde(rename = "0.2")]
    V02,
    #[serde(rename = "0.3")]
    V03,
    /// Not a bundle on the wire: cosign's `.att` layer annotations, which carry the same evidence as v0.1.
    #[serde(rename = "cosign-annotations")]
    CosignAnnotations,
}

impl BundleVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V01 => "0.1",
            Self::V02 => "0.2",
            Self::V03 => "0.3",
            Self::CosignAnnotations => "cosign-annotations",
        }
    }

    pub fn from_media_type(media_type: &str) -> Option<Self> {
        Some(match media_type {
            "application/vnd.dev.sigstore.bundle+json;version=0.1" => Self::V01,
            "application/vnd.dev.sigstore.bundle+json;version=0.2" => Self::V02,
            "application/vnd.dev.sigstore.bundle+json;version=0.3"
            | "application/vnd.dev.sigstore.bundle.v0.3+json" => Self::V03,
            _ => return None,
        })
    }
}

/// Who signs the bundle.
#[derive(Debug, Clone)]
pub enum Material {
    /// A (Fulcio) certificate: keyless.
    Certificate(LeafCertificate),
    /// A key known out of band, by its hint (npm's registry key, for example).
    PublicKey { hint: Option<String> },
}

/// What the bundle signs.
#[derive(Debug, Clone)]
pub enum Content {
    Dsse(Envelope),
    /// A signature over an artifact reprod does not have: only its sha256 is known.
    MessageSignature {
        sha256: Vec<u8>,
        signature: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub struct Bundle {
    pub version: BundleVersion,
    pub material: Material,
    /// The certificates an `x509CertificateChain` carries after the leaf. Never used to build a chain (the
    /// trust root's are); only checked for a root that must not be there.
    pub document_chain: Vec<openssl::x509::X509>,
    pub tlog_entries: Vec<TlogEntry>,
    /// DER RFC 3161 timestamps.
    pub timestamps: Vec<Vec<u8>>,
    pub content: Content,
}

/// A verified keyless signer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeylessSigner {
    pub identity: Option<String>,
    pub issuer: Option<String>,
    pub authority: String,
    /// The certificate-transparency promises that verified (at least one).
    pub scts: Vec<VerifiedSct>,
    pub entries: Vec<VerifiedEntry>,
    pub timestamps: Vec<VerifiedTimestamp>,
    /// Timestamps that no trusted authority signed, and why (they contributed nothing).
    pub ignored_timestamps: Vec<String>,
    /// The earliest verified time the signature is known to have existed.
    pub signed_at: i64,
}

// ---- wire model (protobuf JSON: int64 as strings, camelCase) ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: Option<String>,
    verification_material: Option<RawMaterial>,
    dsse_envelope: Option<Value>,
    message_signature: Option<RawMessageSignature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    x509_certificate_chain: Option<RawChain>,
    certificate: Option<RawCert>,
    public_key: Option<RawHint>,
    #[serde(default)]
    tlog_entries: Vec<RawTlogEntry>,
    timestamp_verification_data: Option<RawTimestampData>,
}

#[derive(Deserialize)]
struct RawHint {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTlogEntry {
    log_index: Int,
    log_id: RawLogId,
    kind_version: RawKindVersion,
    integrated_time: Option<Int>,
    inclusion_promise: Option<RawPromise>,
    inclusion_proof: Option<RawProof>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
struct RawKindVersion {
    kind: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    log_index: Int,
    root_hash: String,
    tree_size: Int,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<RawCheckpoint>,
}

#[derive(Deserialize)]
struct RawCheckpoint {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestampData {
    #[serde(default)]
    rfc3161_timestamps: Vec<RawTimestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestamp {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    message_digest: Option<RawDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct RawDigest {
    algorithm: String,
    digest: String,
}

/// Protobuf JSON writes 64-bit integers as strings; some producers write numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int {
    Text(String),
    Number(i64),
}

impl Int {
    fn get(&self, at: &str) -> Result<i64, String> {
        match self {
            Int::Number(n) => Ok(*n),
            Int::Text(t) => t
                .parse()
                .map_err(|_| format!("{at}: {t:?} is not an integer")),
        }
    }
}

fn b64(text: &str, at: &str) -> Result<Vec<u8>, String> {
    decode_base64(text).map_err(|e| format!("{at}: not valid base64: {e}"))
}

impl Bundle {
    /// Decodes a bundle object; `at` names where it sits, for messages.
    pub fn from_value(value: &Value, at: &str) -> Result<Self, String> {
        let raw: RawBundle = serde_json::from_value(value.clone())
            .map_err(|e| format!("{at}: not a Sigstore bundle: {e}"))?;
        let media_type = raw.media_type.ok_or_else(|| {
            format!("{at}: a Sigstore bundle without `mediaType`; its version (and so how to verify it) is unknown")
        })?;
        let version = BundleVersion::from_media_type(&media_type).ok_or_else(|| {
            format!("{at}: unknown Sigstore bundle mediaType {media_type:?} (known: versions 0.1, 0.2 and 0.3)")
        })?;
        let vm = raw
            .verification_material
            .ok_or_else(|| format!("{at}: no verificationMaterial"))?;
        let mut document_chain = Vec::new();
        let material = if let Some(cert) = &vm.certificate {
            Material::Certificate(leaf(
                &cert.raw_bytes,
                &format!("{at}.verificationMaterial.certificate"),
            )?)
        } else if let Some(chain) = &vm.x509_certificate_chain {
            let cat = format!("{at}.verificationMaterial.x509CertificateChain");
            let (first, rest) = chain
                .certificates
                .split_first()
                .ok_or_else(|| format!("{cat}: empty"))?;
            for (i, c) in rest.iter().enumerate() {
                let at = format!("{cat}.certificates[{}]", i + 1);
                let der = b64(&c.raw_bytes, &at)?;
                document_chain.push(openssl::x509::X509::from_der(&der).map_err(|e| {
                    format!(
                        "{at}: not a DER X.509 certificate: {}",
                        super::keys::first_openssl_reason(&e)
                    )
                })?);
            }
            // Only the leaf is used: intermediates come from the trust root, never from the document.
            Material::Certificate(leaf(&first.raw_bytes, &cat)?)
        } else if let Some(key) = vm.public_key {
            Material::PublicKey { hint: key.hint }
        } else {
            return Err(format!(
                "{at}.verificationMaterial: no certificate, chain or public key"
            ));
        };
        let tlog_entries = vm
            .tlog_entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| tlog_entry(e, &format!("{at}.verificationMaterial.tlogEntries[{i}]")))
            .collect::<Result<_, _>>()?;
        let timestamps = vm
            .timestamp_verification_data
            .map(|t| t.rfc3161_timestamps)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                b64(
                    &t.signed_timestamp,
                    &format!("{at}.timestampVerificationData.rfc3161Timestamps[{i}]"),
                )
            })
            .collect::<Result<_, _>>()?;
        let content = match (raw.dsse_envelope, raw.message_signature) {
            (Some(env), None) => {
                Content::Dsse(Envelope::from_value(&env, &format!("{at}.dsseEnvelope"))?)
            }
            (None, Some(m)) => {
                let digest = m
                    .message_digest
                    .ok_or_else(|| format!("{at}.messageSignature: no messageDigest"))?;
                if digest.algorithm != "SHA2_256" {
                    return Err(format!(
                        "{at}.messageSignature.messageDigest: algorithm {} is not supported (SHA2_256 is)",
                        digest.algorithm
                    ));
                }
                Content::MessageSignature {
                    sha256: b64(
                        &digest.digest,
                        &format!("{at}.messageSignature.messageDigest.digest"),
                    )?,
                    signature: b64(&m.signature, &format!("{at}.messageSignature.signature"))?,
                }
            }
            (Some(_), Some(_)) => {
                return Err(format!("{at}: both dsseEnvelope and messageSignature"))
            }
            (None, None) => return Err(format!("{at}: neither dsseEnvelope nor messageSignature")),
        };
        Ok(Bundle {
            version,
            material,
            document_chain,
            tlog_entries,
            timestamps,
            content,
        })
    }

    /// The one signature a bundle carries, as bytes.
    pub fn signature(&self) -> Result<&[u8], String> {
        match &self.content {
            Content::MessageSignature { signature, .. } => Ok(signature),
            Content::Dsse(env) => match env.signatures.as_slice() {
                [one] => Ok(&one.sig),
                other => Err(format!(
                    "a Sigstore bundle's envelope must have exactly one signature, this one has {}",
                    other.len()
                )),
            },
        }
    }

    /// Verifies the bundle offline against `root`. `Ok` means every check passed; identity and issuer are
    /// returned for the policy to judge.
    pub fn verify_keyless(&self, root: &TrustedRoot) -> Result<KeylessSigner, String> {
        let Material::Certificate(cert) = &self.material else {
            return Err(
                "the bundle is signed with a key, not a certificate: verify it with --key".into(),
            );
        };
        self.check_document_chain(cert)?;
        let signature = self.signature()?;
        // 1. The signature, over the exact received bytes.
        let signed = match &self.content {
            Content::Dsse(env) => cert.key.verify(signature, &env.pae()),
            Content::MessageSignature { sha256, .. } => {
                cert.key.verify_sha256_digest(signature, sha256)
            }
        };
        if !signed {
            return Err("the signature does not verify with the bundle's certificate".into());
        }
        // 2. Transparency-log evidence: every entry must verify and log this signature.
        if self.tlog_entries.is_empty() {
            return Err("the bundle has no transparency-log entry, so nothing proves the signature was logged".into());
        }
        let pae = match &self.content {
            Content::Dsse(env) => env.pae(),
            Content::MessageSignature { .. } => Vec::new(),
        };
        let logged = Logged {
            signature,
            certificate: cert,
            content: match &self.content {
                Content::Dsse(env) => LoggedContent::Dsse {
                    payload: &env.payload,
                    pae: &pae,
                },
                Content::MessageSignature { sha256, .. } => LoggedContent::Digest { sha256 },
            },
        };
        let mut entries = Vec::new();
        for (i, entry) in self.tlog_entries.iter().enumerate() {
            if self.version == BundleVersion::V01 && entry.signed_entry_timestamp.is_none() {
                return Err(format!(
                    "tlog entry {i}: a v0.1 bundle must carry a signed entry timestamp"
                ));
            }
            if matches!(self.version, BundleVersion::V02 | BundleVersion::V03)
                && entry.inclusion_proof.is_none()
            {
                return Err(format!(
                    "tlog entry {i}: a v0.2+ bundle must carry an inclusion proof"
                ));
            }
            entries.push(
                rekor::verify_entry(entry, root, &logged)
                    .map_err(|e| format!("tlog entry {i}: {e}"))?,
            );
        }
        // 3. Signed times: a SET-vouched integrated time, or an RFC 3161 timestamp. A timestamp no trusted
        //    authority signed contributes no time (and is reported), as in sigstore-go; it never counts.
        let mut timestamps = Vec::new();
        let mut ignored = Vec::new();
        for (i, der) in self.timestamps.iter().enumerate() {
            match timestamp::verify(der, signature, root) {
                Ok(t) => timestamps.push(t),
                Err(e) => ignored.push(format!("timestamp {i}: {e}")),
            }
        }
        let times: Vec<i64> = entries
            .iter()
            .filter_map(|e| e.integrated_time)
            .chain(timestamps.iter().map(|t| t.time))
            .collect();
        if times.is_empty() {
            return Err(format!(
                "no verified time: the bundle has neither a valid signed entry timestamp nor a trusted RFC 3161 timestamp{}",
                if ignored.is_empty() { String::new() } else { format!(" ({})", ignored.join("; ")) }
            ));
        }
        // 4. The certificate, chained to a trusted authority at every verified time.
        let mut authority = None;
        let mut reasons = Vec::new();
        for ca in &root.certificate_authorities {
            if !times.iter().all(|t| ca.valid.contains(*t)) {
                continue;
            }
            match times
                .iter()
                .try_for_each(|t| cert.verify_chain(ca, *t, EKU_CODE_SIGNING))
            {
                Ok(()) => {
                    authority = Some(ca);
                    break;
                }
                Err(e) => reasons.push(e),
            }
        }
        let authority = authority.ok_or_else(|| {
            format!(
                "the certificate does not chain to any certificate authority of {} valid at {}{}",
                root.label,
                times
                    .iter()
                    .map(|t| format_unix(*t))
                    .collect::<Vec<_>>()
                    .join(", "),
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join("; "))
                }
            )
        })?;
        // 5. Certificate transparency: a CT log of the trust root promised to publish the certificate.
        let issuer = authority
            .chain
            .iter()
            .find(|c| c.issued(cert.x509()) == openssl::x509::X509VerifyResult::OK)
            .ok_or_else(|| {
                format!(
                    "no certificate of {} issued the signing certificate, so its SCTs cannot be checked",
                    authority.uri
                )
            })?;
        let issuer_spki = issuer
            .public_key()
            .and_then(|k| k.public_key_to_der())
            .map_err(|e| {
                format!(
                    "the issuing certificate's key: {}",
                    super::keys::first_openssl_reason(&e)
                )
            })?;
        let scts =
            sct::verify_embedded(&cert.der, &issuer_spki, root).map_err(|e| e.to_string())?;
        Ok(KeylessSigner {
            identity: cert.identity.clone(),
            issuer: cert.issuer.clone(),
            authority: authority.uri.clone(),
            scts,
            entries,
            timestamps,
            ignored_timestamps: ignored,
            signed_at: times.iter().copied().min().unwrap_or_default(),
        })
    }
}

impl Bundle {
    /// Refuses a root certificate in the bundle's chain (sigstore-conformance `bundle-with-root-cert_fail`;
    /// protobuf-specs' client policy: the chain carries the leaf and at most intermediates, since a trust
    /// anchor must come from the trust root). reprod never builds a chain from these certificates, so this
    /// is conformance, not safety: a v0.1 bundle carrying the complete chain in issuing order ending in the
    /// root, as cosign and slsa-github-generator wrote them, is tolerated (sigstore-python only warns).
    fn check_document_chain(&self, leaf: &LeafCertificate) -> Result<(), String> {
        let Some(pos) = self
            .document_chain
            .iter()
            .position(|c| super::certificate::is_self_signed(c))
        else {
            return Ok(());
        };
        let in_order = std::iter::once(leaf.x509())
            .chain(&self.document_chain)
            .zip(&self.document_chain)
            .all(|(child, parent)| parent.issued(child) == openssl::x509::X509VerifyResult::OK);
        let legacy_full_chain =
            self.version == BundleVersion::V01 && in_order && pos + 1 == self.document_chain.len();
        if legacy_full_chain {
            return Ok(());
        }
        Err(format!(
            "the bundle's certificate chain includes a root certificate ({}, at position {}){}: a bundle may carry \
             the signing certificate and intermediates, never a trust anchor, which comes from the trust root only",
            super::certificate::subject_of(&self.document_chain[pos]),
            pos + 1,
            if self.version == BundleVersion::V01 && !in_order {
                ", out of issuing order"
            } else {
                ""
            }
        ))
    }
}

fn leaf(raw_bytes: &str, at: &str) -> Result<LeafCertificate, String> {
    LeafCertificate::from_der(&b64(raw_bytes, at)?).map_err(|e| format!("{at}: {e}"))
}

fn tlog_entry(e: RawTlogEntry, at: &str) -> Result<TlogEntry, String> {
    Ok(TlogEntry {
        log_index: u64::try_from(e.log_index.get(&format!("{at}.logIndex"))?)
            .map_err(|_| format!("{at}.logIndex: negative"))?,
        log_id: b64(&e.log_id.key_id, &format!("{at}.logId.keyId"))?,
        kind: e.kind_version.kind,
        version: e.kind_version.version,
        integrated_time: e
            .integrated_time
            .map(|t| t.get(&format!("{at}.integratedTime")))
            .transpose()?
            .filter(|t| *t != 0),
        signed_entry_timestamp: e
            .inclusion_promise
            .map(|p| {
                b64(
                    &p.signed_entry_timestamp,
                    &format!("{at}.inclusionPromise.signedEntryTimestamp"),
                )
            })
            .transpose()?,
        inclusion_proof: e
            .inclusion_proof
            .map(|p| -> Result<InclusionProof, String> {
                let pat = format!("{at}.inclusionProof");
                Ok(InclusionProof {
                    log_index: u64::try_from(p.log_index.get(&format!("{pat}.logIndex"))?)
                        .map_err(|_| format!("{pat}.logIndex: negative"))?,
                    tree_size: u64::try_from(p.tree_size.get(&format!("{pat}.treeSize"))?)
                        .map_err(|_| format!("{pat}.treeSize: negative"))?,
                    root_hash: b64(&p.root_hash, &format!("{pat}.rootHash"))?,
                    hashes: p
                        .hashes
                        .iter()
                        .enumerate()
                        .map(|(i, h)| b64(h, &format!("{pat}.hashes[{i}]")))
                        .collect::<Result<_, _>>()?,
                    checkpoint: p.checkpoint.map(|c| c.envelope),
                })
            })
            .transpose()?,
        canonicalized_body_b64: e.canonicalized_body,
    })
}
