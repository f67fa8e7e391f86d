//! `reprod verify`: checks a verdict envelope offline against the rebuilder's public key, and only then reads
//! what it says.

use serde::Serialize;
use serde_json::Value;

use super::uri;
use crate::trust::dsse::Envelope;
use crate::trust::keys::PublicKey;

/// Why an attestation is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not a DSSE envelope: {0}")]
    NotEnvelope(String),
    #[error(
        "payloadType is {0:?}; reprod signs in-toto statements (application/vnd.in-toto+json)"
    )]
    PayloadType(String),
    #[error("no signature verifies with the given key(s) {keys:?} (the envelope names {named:?}); the bytes were changed, or another key signed them")]
    BadSignature {
        keys: Vec<String>,
        named: Vec<String>,
    },
    #[error("the signed payload is not an in-toto Statement v1: {0}")]
    NotStatement(String),
}

/// What a verified attestation vouches for.
#[derive(Debug, Serialize)]
pub struct Vouched {
    /// The key that verified, `sha256:<hex>`.
    pub key_id: String,
    pub predicate_type: String,
    /// `name@digest` (or the digest alone) of each subject.
    pub subjects: Vec<String>,
    /// Every `alg:hex` digest the subjects carry.
    pub digests: Vec<String>,
    /// VSA: `PASSED`/`FAILED`; rebuild provenance: the verdict status.
    pub result: String,
    /// When the verdict was reached.
    pub time: Option<String>,
    /// The sha256 of the provenance document the verdict is about.
    pub input_provenance: Option<String>,
    pub verifier: Option<String>,
    /// The whole statement, for `--json`.
    pub statement: Value,
}

impl Vouched {
    pub fn human(&self) -> String {
        let kind = match self.predicate_type.as_str() {
            uri::VSA_V1 => "verification summary",
            uri::PROVENANCE_V1 => "rebuild provenance",
            other => other,
        };
        let mut s = format!(
            "verified: {kind} signed by {}\nresult:   {}\n",
            self.key_id, self.result
        );
        for subject in &self.subjects {
            s.push_str(&format!("subject:  {subject}\n"));
        }
        if let Some(t) = &self.time {
            s.push_str(&format!("time:     {t}\n"));
        }
        if let Some(p) = &self.input_provenance {
            s.push_str(&format!("input:    provenance sha256:{p}\n"));
        }
        if let Some(v) = &self.verifier {
            s.push_str(&format!("verifier: {v}\n"));
        }
        s
    }
}

/// What a deploy gate requires of a verified attestation, beyond its signature (`reprod verify --digest`,
/// `--require-passed`, `--any-result`, `--verifier-id`), after slsa-verifier's `verify-vsa`: a summary is
/// accepted only when it says PASSED, unless the caller asks for any result.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    /// The statement must be a verification summary naming this digest.
    pub digest: Option<String>,
    /// The statement must be a summary that says PASSED (a rebuild provenance does not qualify).
    pub require_passed: bool,
    /// Accept a summary whatever it says (it still has to verify, and to name `digest`).
    pub any_result: bool,
    /// The verifier (VSA) or builder (rebuild provenance) must be this.
    pub verifier_id: Option<String>,
}

impl Gate {
    /// `Err` says which requirement the verified statement does not meet.
    pub fn check(&self, v: &Vouched) -> Result<(), String> {
        let summary = v.predicate_type == uri::VSA_V1;
        if (self.digest.is_some() || self.require_passed) && !summary {
            return Err(format!(
                "it is a {}, not a verification summary; only a summary vouches for a digest",
                v.predicate_type
            ));
        }
        if let Some(d) = &self.digest {
            if !v.digests.iter().any(|x| x == d) {
                return Err(format!(
                    "the summary does not name {d} (it names {})",
                    v.digests.join(", ")
                ));
            }
        }
        if let Some(id) = &self.verifier_id {
            if v.verifier.as_deref() != Some(id.as_str()) {
                return Err(format!(
                    "its verifier is {}, not {id}",
                    v.verifier.as_deref().unwrap_or("(none)")
                ));
            }
        }
        if summary && !self.any_result && v.result != "PASSED" {
            return Err(format!(
                "it says {}{} (pass --any-result to accept a summary whatever it says)",
                v.result,
                self.digest
                    .as_ref()
                    .map_or(String::new(), |d| format!(" for {d}"))
            ));
        }
        Ok(())
    }
}

/// Verifies the envelope's signature over the exact payload bytes with one of `keys`, then reads the
/// statement. Nothing in the payload is looked at before the signature verifies.
pub fn verify_attestation(bytes: &[u8], keys: &[PublicKey]) -> Result<Vouched, VerifyError> {
    let outer: Value =
        serde_json::from_slice(bytes).map_err(|e| VerifyError::NotEnvelope(e.to_string()))?;
    let envelope = Envelope::from_value(&outer, "envelope").map_err(VerifyError::NotEnvelope)?;
    if envelope.payload_type != uri::PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType(envelope.payload_type));
    }
    let pae = envelope.pae();
    let signer = keys.iter().find(|k| {
        envelope
            .signatures
            .iter()
            .any(|sig| k.verify(&sig.sig, &pae))
    });
    let Some(signer) = signer else {
        return Err(VerifyError::BadSignature {
            keys: keys.iter().map(|k| k.id.clone()).collect(),
            named: envelope
                .signatures
                .iter()
                .filter_map(|s| s.keyid.clone())
                .collect(),
        });
    };
    let statement: Value = serde_json::from_slice(&envelope.payload)
        .map_err(|e| VerifyError::NotStatement(e.to_string()))?;
    if statement["_type"] != uri::STATEMENT_V1 {
        return Err(VerifyError::NotStatement(format!(
            "_type is {}",
            statement["_type"]
        )));
    }
    let predicate_type = statement["predicateType"]
        .as_str()
        .ok_or_else(|| VerifyError::NotStatement("no predicateType".into()))?
        .to_string();
    let digests = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["digest"].as_object())
        .flat_map(|d| {
            d.iter()
                .map(|(alg, hex)| format!("{alg}:{}", hex.as_str().unwrap_or_default()))
        })
        .collect();
    let subjects = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let digest = s["digest"]
                .as_object()
                .and_then(|d| d.iter().next())
                .map(|(alg, hex)| format!("{alg}:{}", hex.as_str().unwrap_or_default()))
                .unwrap_or_default();
            match s["name"].as_str() {
                Some(n) if !n.is_empty() => format!("{n}@{digest}"),
                _ => digest,
            }
        })
        .collect();
    let p = &statement["predicate"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let (result, time, input, verifier) = match predicate_type.as_str() {
        uri::VSA_V1 => (
            text(&p["verificationResult"]),
            text(&p["timeVerified"]),
            text(&p["inputAttestations"][0]["digest"]["sha256"]),
            text(&p["verifier"]["id"]),
        ),
        uri::PROVENANCE_V1 => (
            text(&p["runDetails"]["byproducts"][0]["annotations"]["status"]),
            text(&p["runDetails"]["metadata"]["finishedOn"]),
            text(&p["buildDefinition"]["externalParameters"]["provenance"]["digest"]["sha256"]),
            text(&p["runDetails"]["builder"]["id"]),
        ),
        other => {
            return Err(VerifyError::NotStatement(format!(
                "predicateType {other} is neither a verification summary nor a rebuild provenance"
            )))
        }
    };
    Ok(Vouched {
        key_id: signer.id.clone(),
        predicate_type,
        subjects,
        digests,
        result: result.unwrap_or_else(|| "(none stated)".into()),
        time,
        input_provenance: input,
        verifier,
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::SigningKey;

    fn key() -> SigningKey {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        SigningKey::load_or_create(&path, true).unwrap().0
    }

    #[test]
    fn a_signed_statement_verifies_and_a_changed_byte_does_not() {
        let k = key();
        let statement = serde_json::json!({
            "_type": uri::STATEMENT_V1, "predicateType": uri::VSA_V1,
            "subject": [{"name": "a", "digest": {"sha256": "00"}}],
            "predicate": {"verificationResult": "PASSED"},
        });
        let envelope = k
            .sign_envelope(&serde_json::to_vec(&statement).unwrap())
            .unwrap();
        let v = verify_attestation(&envelope, std::slice::from_ref(k.public_key())).unwrap();
        assert_eq!(v.result, "PASSED");
        assert_eq!(v.key_id, k.key_id());
        assert_eq!(v.subjects, vec!["a@sha256:00".to_string()]);
        assert_eq!(v.digests, vec!["sha256:00".to_string()]);
        let gate = |digest: &str, any_result| Gate {
            digest: Some(digest.into()),
            any_result,
            ..Gate::default()
        };
        assert!(gate("sha256:00", false).check(&v).is_ok());
        assert!(gate("sha256:11", true).check(&v).is_err(), "another digest");
        let mut failed = v;
        failed.result = "FAILED".into();
        assert!(gate("sha256:00", false).check(&failed).is_err(), "FAILED");
        assert!(
            Gate::default().check(&failed).is_err(),
            "a FAILED summary is refused by default"
        );
        assert!(
            gate("sha256:00", true).check(&failed).is_ok(),
            "--any-result"
        );
        let other_verifier = Gate {
            verifier_id: Some("https://elsewhere/".into()),
            any_result: true,
            ..Gate::default()
        };
        assert!(other_verifier.check(&failed).is_err());
        let mut provenance = failed;
        provenance.predicate_type = uri::PROVENANCE_V1.into();
        assert!(
            Gate::default().check(&provenance).is_ok(),
            "a rebuild provenance verifies as such"
        );
        assert!(
            gate("sha256:00", true).check(&provenance).is_err(),
            "but vouches for no digest"
        );

        let other = key();
        assert!(matches!(
            verify_attestation(&envelope, std::slice::from_ref(other.public_key())),
            Err(VerifyError::BadSignature { .. })
        ));
    }
}
