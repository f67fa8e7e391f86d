//! Sigstore `trusted_root.json`: the certificate authorities, transparency logs and timestamp authorities
//! that keyless signatures are checked against, each with the period it may be used for.

use serde::Deserialize;

use super::keys::PublicKey;
use crate::provenance::json::{self, decode_base64};

/// A time window from the trust root; `end` open means still valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Validity {
    pub fn contains(&self, unix: i64) -> bool {
        self.start.is_none_or(|s| unix >= s) && self.end.is_none_or(|e| unix <= e)
    }
}

/// A certificate authority (Fulcio) or timestamp authority: its chain, leaf-most first.
#[derive(Debug, Clone)]
pub struct Authority {
    pub uri: String,
    /// The certificates as listed (the issuing certificate first, the root last), decoded once at load:
    /// OpenSSL's decoder is the costliest part of a keyless verification.
    pub chain: Vec<openssl::x509::X509>,
    pub valid: Validity,
}

/// A transparency log (Rekor) or certificate-transparency log.
#[derive(Debug, Clone)]
pub struct Log {
    pub base_url: String,
    /// The log id entries name: base64 as in the JSON, decoded here.
    pub log_id: Vec<u8>,
    pub key: PublicKey,
    pub valid: Validity,
}

/// A parsed trust root.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub label: String,
    pub certificate_authorities: Vec<Authority>,
    pub tlogs: Vec<Log>,
    pub timestamp_authorities: Vec<Authority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawAuthority>,
    #[serde(default)]
    timestamp_authorities: Vec<RawAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawPublicKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    raw_bytes: String,
    #[serde(default)]
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthority {
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    #[serde(default)]
    valid_for: Option<RawValidity>,
}

/// Sigstore's protobuf-JSON certificate list, shared with bundles.
#[derive(Deserialize)]
pub(super) struct RawChain {
    #[serde(default)]
    pub(super) certificates: Vec<RawCert>,
}

/// One DER certificate, base64 in `rawBytes`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawCert {
    pub(super) raw_bytes: String,
}

#[derive(Deserialize)]
struct RawValidity {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

const MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.trustedroot";

impl TrustedRoot {
    /// Parses a trust root. `label` (usually the file name) appears in every message about it.
    pub fn from_json(bytes: &[u8], label: impl Into<String>) -> Result<Self, String> {
        let label = label.into();
        let value =
            json::parse(bytes, json::DEFAULT_MAX_BYTES).map_err(|e| format!("{label}: {e}"))?;
        let raw: RawRoot = serde_json::from_value(value)
            .map_err(|e| format!("{label}: not a Sigstore trusted root: {e}"))?;
        if !raw.media_type.starts_with(MEDIA_TYPE_PREFIX) {
            return Err(format!(
                "{label}: mediaType {:?} is not a Sigstore trusted root ({MEDIA_TYPE_PREFIX}+json;version=0.1)",
                raw.media_type
            ));
        }
        let tlogs = raw
            .tlogs
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let at = format!("{label}: tlogs[{i}]");
                let der = decode_base64(&l.public_key.raw_bytes)
                    .map_err(|e| format!("{at}.publicKey.rawBytes: {e}"))?;
                Ok(Log {
                    key: PublicKey::from_spki_der(&der, format!("log {}", l.base_url))
                        .map_err(|e| format!("{at}: {e}"))?,
                    log_id: decode_base64(&l.log_id.key_id)
                        .map_err(|e| format!("{at}.logId.keyId: {e}"))?,
                    valid: validity(l.public_key.valid_for.as_ref(), &at)?,
                    base_url: l.base_url,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let authorities = |list: Vec<RawAuthority>, what: &str| {
            list.into_iter()
                .enumerate()
                .map(|(i, a)| {
                    let at = format!("{label}: {what}[{i}]");
                    let chain = a
                        .cert_chain
                        .certificates
                        .iter()
                        .enumerate()
                        .map(|(j, c)| {
                            let der = decode_base64(&c.raw_bytes)
                                .map_err(|e| format!("{at}.certChain.certificates[{j}]: {e}"))?;
                            openssl::x509::X509::from_der(&der).map_err(|e| {
                                format!(
                                    "{at}.certChain.certificates[{j}]: not a DER certificate: {}",
                                    super::keys::first_openssl_reason(&e)
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    if chain.is_empty() {
                        return Err(format!("{at}: empty certificate chain"));
                    }
                    Ok(Authority {
                        valid: validity(a.valid_for.as_ref(), &at)?,
                        uri: a.uri,
                        chain,
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(TrustedRoot {
            certificate_authorities: authorities(
                raw.certificate_authorities,
                "certificateAuthorities",
            )?,
            timestamp_authorities: authorities(raw.timestamp_authorities, "timestampAuthorities")?,
            tlogs,
            label,
        })
    }

    /// The log an entry names by its id.
    pub fn tlog(&self, log_id: &[u8]) -> Option<&Log> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }
}

fn validity(raw: Option<&RawValidity>, at: &str) -> Result<Validity, String> {
    let parse = |s: &Option<String>, which: &str| -> Result<Option<i64>, String> {
        s.as_deref()
            .map(|t| {
                parse_rfc3339(t)
                    .ok_or_else(|| format!("{at}: validFor.{which} {t:?} is not an RFC 3339 time"))
            })
            .transpose()
    };
    Ok(match raw {
        None => Validity {
            start: None,
            end: None,
        },
        Some(v) => Validity {
            start: parse(&v.start, "start")?,
            end: parse(&v.end, "end")?,
        },
    })
}

/// Seconds since the epoch of an RFC 3339 time (`2021-01-12T11:53:27.000Z`).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_times_convert() {
        assert_eq!(super::parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::parse_rfc3339("2021-01-12T11:53:27.000Z"),
            Some(1_610_452_407)
        );
        assert_eq!(super::parse_rfc3339("2021-01-12 11:53:27"), None);
    }
}
