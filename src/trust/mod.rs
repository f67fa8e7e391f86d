//! Signatures and trust: which provenance reprod believes, and why.
//!
//! Every item a document yields is verified over its exact received bytes, with the material the caller
//! trusts (keys, Sigstore trust roots), before its statement is parsed for anything that matters. The
//! outcome names the signer or says precisely why there is none.

pub mod bundle;
pub mod certificate;
pub mod checkpoint;
pub mod dsse;
pub mod keys;
pub mod merkle;
pub mod policy;
pub mod rekor;
pub mod root;
pub mod sct;
pub mod timestamp;

use serde::Serialize;

use bundle::{Content, KeylessSigner, Material};
pub use keys::PublicKey;
pub use root::TrustedRoot;

/// What the caller trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustMaterial {
    pub keys: Vec<PublicKey>,
    pub roots: Vec<TrustedRoot>,
    /// Required certificate identity (subject alternative name) for keyless signatures, if any. Only with
    /// `issuer` too does it make a keyless signer acceptable on its own ([`IdentityCheck::Required`]).
    pub identity: Option<String>,
    /// Required OIDC issuer for keyless signatures, if any.
    pub issuer: Option<String>,
    /// Accept a keyless signer whatever identity it names (`--any-identity`), when none is required.
    pub any_identity: bool,
}

impl TrustMaterial {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.roots.is_empty()
    }
}

/// How a keyless signer's identity was judged when its signature was verified. A valid Fulcio certificate
/// only says that *someone* with an OIDC account signed, so the identity is what makes it trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityCheck {
    /// It is the identity and issuer the caller required (`--identity` and `--issuer`).
    Required,
    /// The caller accepted any identity (`--any-identity`), as cosign's `--certificate-identity-regexp '.*'`.
    Any,
    /// Nothing was required: the trust policy decides (a trust rule naming the identity and issuer), and
    /// without one the signer is not accepted.
    Policy,
}

/// Who signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Signer {
    Key {
        key_id: String,
        label: String,
        /// `dsse-pae`, or `legacy-payload` for Cloud Build's pre-DSSE signatures over the payload itself.
        form: std::borrow::Cow<'static, str>,
    },
    Certificate {
        identity: Option<String>,
        issuer: Option<String>,
        identity_check: IdentityCheck,
        authority: String,
        /// Transparency-log entries, as `log#index`.
        log_entries: Vec<String>,
        /// The certificate-transparency logs whose SCTs in the certificate verified, as `log@time`.
        #[serde(default)]
        sct_logs: Vec<String>,
        /// Earliest verified time, RFC 3339.
        signed_at: String,
    },
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key {
                key_id,
                label,
                form,
            } => {
                write!(f, "key {label} ({key_id})")?;
                if *form != "dsse-pae" {
                    write!(f, ", {form} signature")?;
                }
                Ok(())
            }
            Signer::Certificate {
                identity,
                issuer,
                identity_check,
                log_entries,
                sct_logs,
                signed_at,
                ..
            } => write!(
                f,
                "certificate for {} issued by {}{}, logged at {} ({signed_at}), SCT from {}",
                identity.as_deref().unwrap_or("(no identity)"),
                issuer.as_deref().unwrap_or("(no issuer)"),
                match identity_check {
                    IdentityCheck::Required => " (the required identity)",
                    IdentityCheck::Any => " (ANY identity accepted: --any-identity)",
                    IdentityCheck::Policy => "",
                },
                log_entries.join(", "),
                sct_logs.join(", ")
            ),
        }
    }
}

/// The signature outcome of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Verification {
    /// At least one signature verified with trusted material.
    Verified { signers: Vec<Signer> },
    /// Nothing signs the statement.
    Unsigned { reason: String },
    /// Signed, but not checkable with the material given, offline.
    Unverifiable { reason: String },
    /// A check failed: the statement must not be believed.
    Failed { reason: String },
}

impl Verification {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verification::Verified { .. })
    }

    /// One line for humans.
    pub fn summary(&self) -> String {
        match self {
            Verification::Verified { signers } => format!(
                "verified: {}",
                signers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Verification::Unsigned { reason } => format!("unsigned: {reason}"),
            Verification::Unverifiable { reason } => format!("NOT verified: {reason}"),
            Verification::Failed { reason } => format!("signature FAILED: {reason}"),
        }
    }
}

/// Verifies a DSSE envelope's signatures (over PAE; over the bare payload too for `legacy` containers
/// that sign it so) with `material`'s keys.
pub fn verify_envelope(
    envelope: &dsse::Envelope,
    legacy: bool,
    material: &TrustMaterial,
) -> Verification {
    if envelope.signatures.is_empty() {
        return Verification::Unsigned {
            reason: "the DSSE envelope has no signatures".into(),
        };
    }
    let pae = envelope.pae();
    let mut signers = Vec::new();
    for sig in &envelope.signatures {
        for key in &material.keys {
            let form = if key.verify(&sig.sig, &pae) {
                "dsse-pae"
            } else if legacy && key.verify(&sig.sig, &envelope.payload) {
                "legacy-payload"
            } else {
                continue;
            };
            let signer = Signer::Key {
                key_id: key.id.clone(),
                label: key.label.clone(),
                form: form.into(),
            };
            if !signers.contains(&signer) {
                signers.push(signer);
            }
        }
    }
    if !signers.is_empty() {
        return Verification::Verified { signers };
    }
    let n = envelope.signatures.len();
    let keyless = envelope.signatures.iter().any(|s| s.cert_pem.is_some());
    if keyless && material.keys.is_empty() {
        return Verification::Unverifiable {
            reason: "keyless signature (a Fulcio certificate beside it) with no transparency-log evidence in the document: its signing time cannot be proven offline, so it cannot be verified".into(),
        };
    }
    if material.keys.is_empty() {
        let ids: Vec<_> = envelope
            .signatures
            .iter()
            .filter_map(|s| s.keyid.clone())
            .collect();
        return Verification::Unverifiable {
            reason: format!(
                "{n} signature(s){} and no key to check them with: pass --key PEM (or configure trust.keys)",
                if ids.is_empty() { String::new() } else { format!(" by key id {}", ids.join(", ")) }
            ),
        };
    }
    Verification::Failed {
        reason: format!(
            "none of the envelope's {n} signature(s) verifies with the given key(s) {}",
            material
                .keys
                .iter()
                .map(|k| k.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Verifies a Sigstore bundle with `material` (keys, or keyless against its trust roots).
pub fn verify_bundle(b: &bundle::Bundle, material: &TrustMaterial) -> Verification {
    match &b.material {
        Material::PublicKey { hint } => {
            let Ok(signature) = b.signature() else {
                return Verification::Failed {
                    reason: b.signature().err().unwrap_or_default(),
                };
            };
            let hint = hint.as_deref().unwrap_or("(none)");
            if material.keys.is_empty() {
                return Verification::Unverifiable {
                    reason: format!(
                        "the bundle is signed with a key (hint {hint}): pass --key PEM"
                    ),
                };
            }
            for key in &material.keys {
                let ok = match &b.content {
                    Content::Dsse(env) => key.verify(signature, &env.pae()),
                    Content::MessageSignature { sha256, .. } => {
                        key.verify_sha256_digest(signature, sha256)
                    }
                };
                if ok {
                    return Verification::Verified {
                        signers: vec![Signer::Key {
                            key_id: key.id.clone(),
                            label: key.label.clone(),
                            form: "dsse-pae".into(),
                        }],
                    };
                }
            }
            Verification::Failed {
                reason: format!("the bundle's signature (key hint {hint}) does not verify with the given key(s)"),
            }
        }
        Material::Certificate(_) => {
            if material.roots.is_empty() {
                return Verification::Unverifiable {
                    reason: "keyless Sigstore signature: pass --trusted-root trusted_root.json to verify it offline".into(),
                };
            }
            let mut reasons = Vec::new();
            for root in &material.roots {
                match b.verify_keyless(root) {
                    Ok(signer) => return identity_check(signer, material),
                    Err(e) => reasons.push(if material.roots.len() > 1 {
                        format!("{}: {e}", root.label)
                    } else {
                        e
                    }),
                }
            }
            Verification::Failed {
                reason: reasons.join("; "),
            }
        }
    }
}

/// Checks the identity and issuer the caller required, each if given, and records how the identity was
/// judged: only both together (or `any_identity`) make the signer acceptable without a trust rule, which
/// [`policy::TrustConfig::admit`] enforces for every consumer.
fn identity_check(signer: KeylessSigner, material: &TrustMaterial) -> Verification {
    if let Some(want) = &material.identity {
        if signer.identity.as_deref() != Some(want.as_str()) {
            return Verification::Failed {
                reason: format!(
                    "the certificate identity is {}, not the required {want}",
                    signer.identity.as_deref().unwrap_or("(none)")
                ),
            };
        }
    }
    if let Some(want) = &material.issuer {
        if signer.issuer.as_deref() != Some(want.as_str()) {
            return Verification::Failed {
                reason: format!(
                    "the certificate issuer is {}, not the required {want}",
                    signer.issuer.as_deref().unwrap_or("(none)")
                ),
            };
        }
    }
    let identity_check = match (&material.identity, &material.issuer) {
        (Some(_), Some(_)) => IdentityCheck::Required,
        _ if material.any_identity => IdentityCheck::Any,
        _ => IdentityCheck::Policy,
    };
    Verification::Verified {
        signers: vec![Signer::Certificate {
            identity: signer.identity,
            issuer: signer.issuer,
            identity_check,
            authority: signer.authority,
            log_entries: signer
                .entries
                .iter()
                .map(|e| format!("{}#{}", e.log, e.log_index))
                .collect(),
            sct_logs: signer
                .scts
                .iter()
                .map(|s| format!("{}@{}", s.log, s.timestamp))
                .collect(),
            signed_at: certificate::format_unix(signer.signed_at),
        }],
    }
}
