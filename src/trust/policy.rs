//! The trust policy: the keys and roots reprod trusts, and per image-name pattern which signers and
//! builders are accepted. A key the operator configured is trust enough on its own; a keyless signature is
//! only as good as the identity it names, so it must match a rule, or the identity and issuer the caller
//! required, or the caller must have said that any identity will do (`--any-identity`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{IdentityCheck, Signer, TrustMaterial, Verification};

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

/// Why the policy does not accept a verified statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A keyless signer, and nothing says which identity to accept: its signature proves only that someone
    /// with an OIDC account signed.
    #[error(
        "the keyless signature verifies ({signer}), but no identity was required of it{rule}: pass \
         --identity and --issuer (or --any-identity), or name the identity and issuer in a trust rule"
    )]
    NoIdentityRequired {
        signer: String,
        /// Empty, or which rule matched without naming signers.
        rule: String,
    },
    /// A trust rule matched and refuses the signer or the builder.
    #[error("{0}")]
    Rule(String),
}

/// Which signers and builders are accepted for images whose name matches `images`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    /// Glob patterns over subject names (`registry.example/team/*`).
    pub images: Vec<String>,
    /// Accepted signers; empty accepts any configured key, and a keyless signer only with `--identity`
    /// and `--issuer` (or `--any-identity`). To accept any identity of one issuer, say so:
    /// `identity = "*"`.
    pub signers: Vec<SignerRule>,
    /// Accepted builder ids (glob patterns); empty accepts any.
    pub builders: Vec<String>,
    /// Step images (glob patterns over the repository, `registry.example/builders/buildah`) that may run
    /// with the nested step profile (their own mount and user namespaces, for buildah, BuildKit or kaniko)
    /// in documents this rule admits with a verified signature. Empty: no step is nested.
    pub nested_steps: Vec<String>,
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
            for pattern in rule
                .images
                .iter()
                .chain(&rule.builders)
                .chain(&rule.nested_steps)
            {
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

    /// What a verification comes to under the policy, for a statement about `images` from `builder_id`.
    /// A keyless signer nothing vouches for becomes `unverifiable` (its identity was not checked); a
    /// signer or builder a rule refuses, `failed`.
    pub fn settle(
        &self,
        verification: &Verification,
        images: &[&str],
        builder_id: Option<&str>,
    ) -> Verification {
        let Verification::Verified { signers } = verification else {
            return verification.clone();
        };
        match self.admit(signers, images, builder_id) {
            Ok(()) => verification.clone(),
            Err(e @ Refusal::NoIdentityRequired { .. }) => Verification::Unverifiable {
                reason: e.to_string(),
            },
            Err(Refusal::Rule(e)) => Verification::Failed {
                reason: format!("the trust policy refuses it: {e}"),
            },
        }
    }

    /// The step images that may run nested for a statement about `images`: those of the first rule for
    /// them, and only when its signature verified and the policy admits it. A document nothing vouches
    /// for never gets more than the plain profile.
    pub fn nested_steps(
        &self,
        verification: &Verification,
        images: &[&str],
        builder_id: Option<&str>,
    ) -> Vec<String> {
        if !self.vouches(verification, images, builder_id) {
            return Vec::new();
        }
        self.rule_for(images)
            .map(|r| r.nested_steps.clone())
            .unwrap_or_default()
    }

    /// Whether the policy vouches for a statement about `images`: its signature verified and the signer
    /// and builder are ones the policy accepts. Only such a statement may be granted more than the plain
    /// sandbox (nested steps, a build network a rule grants): the names it carries are otherwise only
    /// its own word.
    pub fn vouches(
        &self,
        verification: &Verification,
        images: &[&str],
        builder_id: Option<&str>,
    ) -> bool {
        match verification {
            Verification::Verified { signers } => self.admit(signers, images, builder_id).is_ok(),
            _ => false,
        }
    }

    /// The first rule whose image patterns match one of `images`.
    fn rule_for(&self, images: &[&str]) -> Option<&Rule> {
        let matches =
            |pattern: &str, text: &str| glob::Pattern::new(pattern).is_ok_and(|p| p.matches(text));
        self.rules.iter().find(|r| {
            r.images
                .iter()
                .any(|pat| images.iter().any(|name| matches(pat, name)))
        })
    }

    /// Judges verified signers for a statement's subjects and builder, for every consumer (`rebuild`,
    /// `verify-provenance`, the daemon's intake).
    pub fn admit(
        &self,
        signers: &[Signer],
        images: &[&str],
        builder_id: Option<&str>,
    ) -> Result<(), Refusal> {
        let matches =
            |pattern: &str, text: &str| glob::Pattern::new(pattern).is_ok_and(|p| p.matches(text));
        // A certificate whose identity the caller required, or whose identity the caller said not to mind.
        let vouched = |check: &IdentityCheck| *check != IdentityCheck::Policy;
        let unvouched = |rule: String| Refusal::NoIdentityRequired {
            signer: signers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            rule,
        };
        let Some(rule) = self.rule_for(images) else {
            // No rule: a configured key is trusted as such; a certificate only as the caller vouched.
            let ok = signers.iter().any(|s| match s {
                Signer::Key { .. } => true,
                Signer::Certificate { identity_check, .. } => vouched(identity_check),
            });
            return if ok {
                Ok(())
            } else {
                Err(unvouched(String::new()))
            };
        };
        let accepted = signers.iter().any(|signer| match signer {
            Signer::Key { key_id, .. } => {
                rule.signers.is_empty()
                    || rule
                        .signers
                        .iter()
                        .any(|want| want.key.as_deref() == Some(key_id.as_str()))
            }
            Signer::Certificate {
                identity,
                issuer,
                identity_check,
                ..
            } => {
                (rule.signers.is_empty() && vouched(identity_check))
                    || rule.signers.iter().any(|want| {
                        want.key.is_none()
                            && want.identity.as_deref().is_some_and(|pat| {
                                identity.as_deref().is_some_and(|id| matches(pat, id))
                            })
                            && want.issuer.as_deref() == issuer.as_deref()
                    })
            }
        });
        if !accepted {
            if rule.signers.is_empty() {
                return Err(unvouched(format!(
                    ", and the trust rule for {:?} names no signers",
                    rule.images
                )));
            }
            return Err(Refusal::Rule(format!(
                "no signer the trust rule for {:?} accepts (signed by: {})",
                rule.images,
                signers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        if !rule.builders.is_empty() {
            let builder = builder_id.unwrap_or_default();
            if !rule.builders.iter().any(|pat| matches(pat, builder)) {
                return Err(Refusal::Rule(format!(
                    "builder {builder:?} is not one the trust rule for {:?} accepts",
                    rule.images
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{IdentityCheck, Refusal, Rule, Signer, SignerRule, TrustConfig};
    use crate::provenance::Subject;

    const ID: &str = "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main";
    const ISS: &str = "https://token.actions.githubusercontent.com";

    fn keyless(check: IdentityCheck) -> Signer {
        Signer::Certificate {
            identity: Some(ID.into()),
            issuer: Some(ISS.into()),
            identity_check: check,
            authority: "https://fulcio.sigstore.dev".into(),
            log_entries: vec!["https://rekor.sigstore.dev#1".into()],
            sct_logs: vec!["https://ctfe.sigstore.dev/2022@2024-01-01T00:00:00Z".into()],
            signed_at: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn key() -> Signer {
        Signer::Key {
            key_id: "sha256:00".into(),
            label: "k.pem".into(),
            form: "dsse-pae".into(),
        }
    }

    /// Whom a rule vouches for depends on which names it is asked about: a document naming a signer's
    /// own images beside another team's is vouched for by the first team's rule when asked about all of
    /// them, and must be asked about the team's names alone to be held to the team's rule.
    #[test]
    fn vouching_is_for_the_names_asked_about() {
        let team_key = |id: &str| SignerRule {
            key: Some(id.into()),
            ..SignerRule::default()
        };
        let config = TrustConfig {
            rules: vec![
                Rule {
                    images: vec!["attacker.example/*".into()],
                    signers: vec![team_key("sha256:00")],
                    ..Rule::default()
                },
                Rule {
                    images: vec!["registry.example/team/*".into()],
                    signers: vec![team_key("sha256:11")],
                    ..Rule::default()
                },
            ],
            ..TrustConfig::default()
        };
        let verified = crate::trust::Verification::Verified {
            signers: vec![key()],
        };
        let both = ["attacker.example/x", "registry.example/team/app"];
        assert!(config.vouches(&verified, &both, None));
        assert!(!config.vouches(&verified, &both[1..], None));
    }

    fn subjects() -> Vec<Subject> {
        vec![Subject {
            name: "registry.example/team/app".into(),
            digests: [("sha256".to_string(), "a".repeat(64))].into(),
        }]
    }

    fn with_rule(signers: Vec<SignerRule>) -> TrustConfig {
        TrustConfig {
            rules: vec![Rule {
                images: vec!["registry.example/team/*".into()],
                signers,
                builders: Vec::new(),
                nested_steps: Vec::new(),
            }],
            ..Default::default()
        }
    }

    fn admit(config: &TrustConfig, signer: Signer) -> Result<(), Refusal> {
        config.admit(&[signer], &["registry.example/team/app"], None)
    }

    #[test]
    fn without_a_rule_a_keyless_signer_needs_a_required_or_waived_identity() {
        let none = TrustConfig::default();
        assert_eq!(admit(&none, keyless(IdentityCheck::Required)), Ok(()));
        assert_eq!(admit(&none, keyless(IdentityCheck::Any)), Ok(()));
        assert_eq!(admit(&none, key()), Ok(()));
        let err = admit(&none, keyless(IdentityCheck::Policy)).unwrap_err();
        assert!(matches!(err, Refusal::NoIdentityRequired { .. }), "{err}");
        assert!(
            err.to_string().contains("no identity was required"),
            "{err}"
        );
    }

    #[test]
    fn a_rule_naming_identity_and_issuer_admits_that_signer_only() {
        // The daemon's path: nothing on a command line, the rule decides.
        let glob = with_rule(vec![SignerRule {
            key: None,
            identity: Some("https://github.com/org/repo/*".into()),
            issuer: Some(ISS.into()),
        }]);
        assert_eq!(admit(&glob, keyless(IdentityCheck::Policy)), Ok(()));
        let other_issuer = with_rule(vec![SignerRule {
            key: None,
            identity: Some("*".into()),
            issuer: Some("https://accounts.google.com".into()),
        }]);
        let err = admit(&other_issuer, keyless(IdentityCheck::Policy)).unwrap_err();
        assert!(matches!(err, Refusal::Rule(_)), "{err}");
        // The rule still decides when the caller vouched on the command line.
        assert!(admit(&other_issuer, keyless(IdentityCheck::Any)).is_err());
    }

    #[test]
    fn a_rule_without_signers_admits_keys_but_not_an_unchecked_identity() {
        let open = with_rule(Vec::new());
        assert_eq!(admit(&open, key()), Ok(()));
        assert_eq!(admit(&open, keyless(IdentityCheck::Required)), Ok(()));
        let err = admit(&open, keyless(IdentityCheck::Policy)).unwrap_err();
        assert!(err.to_string().contains("names no signers"), "{err}");
    }

    #[test]
    fn settle_downgrades_what_the_policy_refuses() {
        use crate::trust::Verification;
        let finding = |signer: Signer| crate::examine::Finding {
            at: "document".into(),
            container: crate::provenance::Container::BareStatement,
            verification: Verification::Verified {
                signers: vec![signer],
            },
            predicate_type: None,
            subjects: subjects(),
            recipe: None,
            unrebuildable: None,
        };
        let mut findings = vec![
            finding(keyless(IdentityCheck::Policy)),
            finding(keyless(IdentityCheck::Required)),
        ];
        crate::examine::settle(&TrustConfig::default(), &mut findings);
        assert!(
            matches!(&findings[0].verification, Verification::Unverifiable { reason } if reason.contains("no identity was required")),
            "{:?}",
            findings[0].verification
        );
        assert!(findings[1].verification.is_verified());
        let mut refused = vec![finding(keyless(IdentityCheck::Required))];
        let policy = with_rule(vec![SignerRule {
            key: Some("sha256:ff".into()),
            ..Default::default()
        }]);
        crate::examine::settle(&policy, &mut refused);
        assert!(
            matches!(&refused[0].verification, Verification::Failed { reason } if reason.contains("trust policy refuses")),
            "{:?}",
            refused[0].verification
        );
    }
}
