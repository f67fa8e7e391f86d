//! Error answers: `{"error": {"code", "message"}}`, the code from a closed list a client can match on.

use serde::{Deserialize, Serialize};

/// Every error code the API answers with. Intake refusals (`422`) carry the refusal's own reason code
/// (`signature-failed`, `policy`, `no-recipe`, …), which is open-ended and kept as [`ErrorCode::Refused`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    AmbiguousAttestation,
    BadBody,
    BadParameter,
    BadVerdict,
    Forbidden,
    Internal,
    MalformedDigest,
    MethodNotAllowed,
    NotFound,
    NotYourLease,
    Overloaded,
    StaleLease,
    Storage,
    TooLarge,
    Unauthenticated,
    UnknownArtifact,
    UnknownAttestation,
    UnknownDigest,
    UnknownJob,
    UnknownProvenance,
    Unparsable,
    /// An operator action on a job in a state it does not apply to.
    WrongState,
    /// The document was refused at intake, for this reason code.
    Refused(String),
}

/// The fixed codes and their wire names, in one table both directions read.
const NAMES: [(ErrorCode, &str); 22] = [
    (ErrorCode::AmbiguousAttestation, "ambiguous-attestation"),
    (ErrorCode::BadBody, "bad-body"),
    (ErrorCode::BadParameter, "bad-parameter"),
    (ErrorCode::BadVerdict, "bad-verdict"),
    (ErrorCode::Forbidden, "forbidden"),
    (ErrorCode::Internal, "internal"),
    (ErrorCode::MalformedDigest, "malformed-digest"),
    (ErrorCode::MethodNotAllowed, "method-not-allowed"),
    (ErrorCode::NotFound, "not-found"),
    (ErrorCode::NotYourLease, "not-your-lease"),
    (ErrorCode::Overloaded, "overloaded"),
    (ErrorCode::StaleLease, "stale-lease"),
    (ErrorCode::Storage, "storage"),
    (ErrorCode::TooLarge, "too-large"),
    (ErrorCode::Unauthenticated, "unauthenticated"),
    (ErrorCode::UnknownArtifact, "unknown-artifact"),
    (ErrorCode::UnknownAttestation, "unknown-attestation"),
    (ErrorCode::UnknownDigest, "unknown-digest"),
    (ErrorCode::UnknownJob, "unknown-job"),
    (ErrorCode::UnknownProvenance, "unknown-provenance"),
    (ErrorCode::Unparsable, "unparsable"),
    (ErrorCode::WrongState, "wrong-state"),
];

impl ErrorCode {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Refused(reason) => reason,
            fixed => NAMES
                .iter()
                .find(|(c, _)| c == fixed)
                .map_or("internal", |(_, n)| n),
        }
    }

    /// The code a wire name stands for; names not in the fixed list are intake refusal reasons.
    pub fn from_name(name: &str) -> Self {
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map_or_else(|| ErrorCode::Refused(name.to_string()), |(c, _)| c.clone())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(ErrorCode::from_name(&name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_code_reads_back_as_itself_and_others_are_refusals() {
        for (code, name) in &NAMES {
            assert_eq!(code.as_str(), *name);
            assert_eq!(&ErrorCode::from_name(name), code);
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *code);
        }
        assert_eq!(
            ErrorCode::from_name("signature-failed"),
            ErrorCode::Refused("signature-failed".into())
        );
        assert_eq!(ErrorCode::Refused("policy".into()).as_str(), "policy");
    }
}
