//! `GET /v1/jobs/{id}/bundles/{kind}`: a signed verdict as a Sigstore bundle v0.3, for verifiers that
//! take bundles (cosign, sigstore-js, sigstore-python). The DSSE envelope inside is the one signed, its
//! payload and signatures carried as they are; the key is named by its hint (`GET /v1/keys`), and there
//! is no transparency-log entry: the bundle is verified with reprod's public key, offline.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::ApiError;
use crate::daemon::shared::Shared;

/// The bundle's media type (Sigstore bundle v0.3).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

pub async fn bundle(
    State(shared): State<Arc<Shared>>,
    Path((job, kind)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let bytes = super::read::envelope(&shared, &job, &kind).await?;
    let bundle = around(&bytes, shared.signer.key_id()).map_err(|e| {
        ApiError::storage(format!("the stored envelope of job {job} is not one: {e}"))
    })?;
    Ok(([("content-type", BUNDLE_MEDIA_TYPE)], bundle).into_response())
}

/// The bundle around the envelope `bytes` signed with the key `key_id`.
fn around(bytes: &[u8], key_id: &str) -> Result<Vec<u8>, serde_json::Error> {
    let envelope: Value = serde_json::from_slice(bytes)?;
    let bundle = json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key_id},
            "tlogEntries": [],
            "timestampVerificationData": {"rfc3161Timestamps": []}
        },
        "dsseEnvelope": {
            "payload": envelope.get("payload"),
            "payloadType": envelope.get("payloadType"),
            "signatures": envelope.get("signatures")
        }
    });
    serde_json::to_vec(&bundle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_envelope_is_carried_as_signed() {
        let envelope = br#"{"payloadType":"application/vnd.in-toto+json","payload":"eyJhIjoxfQ==","signatures":[{"keyid":"k1","sig":"c2ln"}]}"#;
        let bundle: serde_json::Value =
            serde_json::from_slice(&super::around(envelope, "k1").unwrap()).unwrap();
        assert_eq!(bundle["mediaType"], super::BUNDLE_MEDIA_TYPE);
        assert_eq!(bundle["verificationMaterial"]["publicKey"]["hint"], "k1");
        assert_eq!(bundle["dsseEnvelope"]["payload"], "eyJhIjoxfQ==");
        assert_eq!(bundle["dsseEnvelope"]["signatures"][0]["sig"], "c2ln");
        assert!(super::around(b"not json", "k1").is_err());
    }
}
