//! Signed verdicts: the rebuilder's own key, and the DSSE envelopes it publishes for every verdict (a SLSA
//! Verification Summary for consumers, a SLSA v1 provenance of the rebuild for auditors).
//!
//! Only this module touches the signing key. Envelopes are serialized once, here; the store keeps and the API
//! serves those bytes as they are.

pub mod key;
pub mod statements;
pub mod verify;

pub use key::{generate_key_pair, KeyPair, SigningKey};
pub use statements::{attest, Attestation, Publication};
pub use verify::{verify_attestation, Gate, Vouched};

/// The identifiers reprod publishes under, defined once.
pub mod uri {
    /// `verifier.id` of the VSA and `builder.id` of the rebuild provenance.
    pub const VERIFIER_ID: &str = "https://reprod.dev/rebuilder/v1";
    /// `buildType` of the rebuild provenance.
    pub const BUILD_TYPE: &str = "https://reprod.dev/rebuild/v1";
    /// The policy a VSA was decided under: every subject digest rebuilt bit for bit.
    pub const POLICY: &str = "https://reprod.dev/policy/bit-for-bit/v1";
    /// What [`POLICY`] means, word for word; VSAs name it by this text's sha256.
    pub const POLICY_TEXT: &str = "reprod bit-for-bit policy v1: a subject digest PASSES when the rebuilder \
reran the steps recorded in the input provenance, from the recorded source commit, in the recorded step \
images pulled by digest, inside its sandbox, and an output of that rebuild whose every blob was read and \
verified has exactly that sha256 digest (an OCI index or manifest digest, or a file's sha256). It FAILS when \
that rebuild ran to completion and produced a counterpart with another digest, or nothing corresponding. \
Digests that were not compared are not in any summary.\n";

    /// sha256 (hex) of [`POLICY_TEXT`].
    pub fn policy_sha256() -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(POLICY_TEXT.as_bytes()))
    }

    /// The custom level a PASSED VSA asserts.
    pub const LEVEL_REPRODUCIBLE: &str = "REPROD_BIT_FOR_BIT_REPRODUCIBLE";
    pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
    pub const VSA_V1: &str = "https://slsa.dev/verification_summary/v1";
    pub const PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
    /// DSSE `payloadType` of in-toto statements.
    pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
    /// Media type the API serves envelopes with.
    pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
}

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("{path}: {why}")]
    Key { path: String, why: String },
    #[error("signing failed: {0}")]
    Sign(String),
}
