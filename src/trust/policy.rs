//! The trust policy: the keys and roots reprod trusts, and per image-name pattern which signers and
//! builders are accepted. A key the operator configured is trust enough on its own; a keyless signature is
//! only as good as the identity it names, so it must match a rule (or the identity the caller required).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Signer, TrustMaterial};
use crate::provenance::Subject;

/// The `[trust]` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TrustConfig {
    /// Refuse (`rejected`) provenance whose signature was not verified. `reprod rebuild` says plainly when
    /// it did not verify; the daemon requires a signature unless this is turned off.
    pub require_signature: bool,
    /// PEM public keys (paths).
    pub keys: Vec<PathBuf>,
    /// Sigstore `trusted_root.json` files (paths), for keyless signatures.
    pub trusted_roots: Vec<PathBuf>,
    /// First matching rule wins.
    pub rules: Vec<Rule>,
}

/// Which signers and builders are accepted for images whose name matches `images`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    /// Glob patterns over subject names (`registry.example/team/*`).
    pub images: Vec<String>,
    /// Accepted signers; empty accepts any verified signer.
    pub signers: Vec<SignerRule>,
    /// Accepted builder ids (glob patterns); empty accepts any.
    pub builders: Vec<String>,
}

/// A key id (`sha256:<hex>` of the SubjectPublicKeyInfo), or a certificate identity plus issuer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SignerRule {
    pub key: Option<String>,
    /// Glob pattern over the certificate's subject alternative name.
    pub identity: Option<String>,
    pub issuer: Option<String>,
}

impl TrustConfig {
    /// Reads the configured keys and roots; a missing or unreadable file is an error now, not at the first
    /// document.
    pub fn load_material(&self) -> Result<TrustMaterial, String> {
        let mut material = TrustMaterial::default();
        for path in &self.keys {
            let pem =
                std::fs::read(path).map_err(|e| format!("trust.keys: {}: {e}", path.display()))?;
            material.keys.push(
                super::PublicKey::from_pem(&pem, path.display().to_string())
                    .map_err(|e| format!("trust.keys: {e}"))?,
            );
        }
        for path in &self.trusted_roots {
            let json = std::fs::read(path)
                .map_err(|e| format!("trust.trusted_roots: {}: {e}", path.display()))?;
            material.roots.push(
                super::TrustedRoot::from_json(&json, path.display().to_string())
                    .map_err(|e| format!("trust.trusted_roots: {e}"))?,
            );
        }
        for (i, rule) in self.rules.iter().enumerate() {
            for pattern in rule.images.iter().chain(&rule.builders) {
                glob::Pattern::new(pattern)
                    .map_err(|e| format!("trust.rules[{i}]: pattern {pattern:?}: {e}"))?;
            }
            for s in &rule.signers {
                if s.key.is_none() && (s.identity.is_none() || s.issuer.is_none()) {
                    return Err(format!(
                        "trust.rules[{i}].signers: each signer needs `key`, or both `identity` and `issuer`"
                    ));
                }
            }
        }
        Ok(material)
    }

    /// Judges verified signers for a statement's subjects and builder. `Err` says why it is refused.
    pub fn admit(
        &self,
        signers: &[Signer],
        subjects: &[Subject],
        builder_id: Option<&str>,
        material: &TrustMaterial,
    ) -> Result<(), String> {
        let matches =
            |pattern: &str, text: &str| glob::Pattern::new(pattern).is_ok_and(|p| p.matches(text));
        let rule = self.rules.iter().find(|r| {
            r.images
                .iter()
                .any(|pat| subjects.iter().any(|s| matches(pat, &s.name)))
        });
        let Some(rule) = rule else {
            // No rule: a configured key is trusted as such; a certificate only with a required identity.
            let ok = signers.iter().any(|s| match s {
                Signer::Key { .. } => true,
                Signer::Certificate { .. } => {
                    material.identity.is_some() && material.issuer.is_some()
                }
            });
            return if ok {
                Ok(())
            } else {
                Err("a keyless signature is accepted only for images a trust rule names (with the accepted identity and \
                     issuer), or with --identity and --issuer"
                    .into())
            };
        };
        let accepted = rule.signers.is_empty()
            || signers.iter().any(|signer| {
                rule.signers.iter().any(|want| match signer {
                    Signer::Key { key_id, .. } => want.key.as_deref() == Some(key_id.as_str()),
                    Signer::Certificate {
                        identity, issuer, ..
                    } => {
                        want.key.is_none()
                            && want.identity.as_deref().is_some_and(|pat| {
                                identity.as_deref().is_some_and(|id| matches(pat, id))
                            })
                            && want.issuer.as_deref() == issuer.as_deref()
                    }
                })
            });
        if !accepted {
            return Err(format!(
                "no signer the trust rule for {:?} accepts (signed by: {})",
                rule.images,
                signers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if !rule.builders.is_empty() {
            let builder = builder_id.unwrap_or_default();
            if !rule.builders.iter().any(|pat| matches(pat, builder)) {
                return Err(format!(
                    "builder {builder:?} is not one the trust rule for {:?} accepts",
                    rule.images
                ));
            }
        }
        Ok(())
    }
}
