//! DSSE envelopes: the signed-bytes form most provenance travels in.

use serde::Deserialize;

use crate::json;

/// A decoded DSSE envelope. `payload` holds the exact signed bytes; nothing here parses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One `signatures[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    pub keyid: Option<String>,
    pub sig: Vec<u8>,
    /// A PEM certificate some producers put beside the signature (SLSA GitHub generators, v1.2).
    pub cert_pem: Option<String>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    #[serde(default)]
    signatures: Option<Vec<RawSignature>>,
}

#[derive(Deserialize)]
struct RawSignature {
    #[serde(default)]
    keyid: Option<String>,
    #[serde(default)]
    sig: Option<String>,
    #[serde(default)]
    cert: Option<String>,
}

impl Envelope {
    /// Decodes an envelope object. `at` names where it sits in the document, for messages.
    pub fn from_value(value: &serde_json::Value, at: &str) -> Result<Self, String> {
        let raw: RawEnvelope = serde_json::from_value(value.clone()).map_err(|e| {
            format!("{at}: not a DSSE envelope ({{payload, payloadType, signatures}}): {e}")
        })?;
        let payload = json::decode_base64(&raw.payload)
            .map_err(|e| format!("{at}.payload: not valid base64: {e}"))?;
        let signatures = raw
            .signatures
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let sig = s.sig.unwrap_or_default();
                Ok(EnvelopeSignature {
                    keyid: s.keyid.filter(|k| !k.is_empty()),
                    sig: json::decode_base64(&sig)
                        .map_err(|e| format!("{at}.signatures[{i}].sig: not valid base64: {e}"))?,
                    cert_pem: s.cert.filter(|c| !c.is_empty()),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Envelope {
            payload_type: raw.payload_type,
            payload,
            signatures,
        })
    }

    /// The bytes a DSSE signature covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }
}

/// DSSE v1 pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The DSSE protocol document's worked example.
        assert_eq!(
            super::pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
