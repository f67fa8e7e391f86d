//! Sigstore `trusted_root.json`: the certificate authorities, transparency logs and timestamp authorities
//! that keyless signatures are checked against, each with the period it may be used for.

use serde::Deserialize;

use super::keys::{KeyError, PublicKey};
use crate::json::{self, decode_base64};

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

/// A log the trust root lists but whose key reprod refuses to trust, and why. Kept so that an entry or SCT
/// naming it is refused with that reason rather than as from an unknown log.
#[derive(Debug, Clone)]
pub struct RefusedLog {
    pub base_url: String,
    pub log_id: Vec<u8>,
    pub reason: String,
}

/// A parsed trust root.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub label: String,
    pub certificate_authorities: Vec<Authority>,
    pub tlogs: Vec<Log>,
    /// Certificate-transparency logs, whose SCTs Fulcio embeds in the certificates it issues.
    pub ctlogs: Vec<Log>,
    /// Transparency and CT logs listed without a usable key validity (see [`RefusedLog`]).
    pub refused_tlogs: Vec<RefusedLog>,
    pub refused_ctlogs: Vec<RefusedLog>,
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
    ctlogs: Vec<RawLog>,
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
    /// `PKIX_*` (a SubjectPublicKeyInfo) or `PKCS1_*` (a bare PKCS#1 RSAPublicKey, as the old staging
    /// CT log's key is written).
    #[serde(default)]
    key_details: String,
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
        let (tlogs, refused_tlogs) = logs(raw.tlogs, &format!("{label}: tlogs"), KeyErrors::Fail)?;
        // CT logs were not read before SCTs were checked: one whose key cannot be used is refused, so a
        // root that loaded before still loads (its certificates then need an SCT from another log).
        let (ctlogs, refused_ctlogs) =
            logs(raw.ctlogs, &format!("{label}: ctlogs"), KeyErrors::Refuse)?;
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
            ctlogs,
            refused_tlogs,
            refused_ctlogs,
            label,
        })
    }

    /// The log an entry names by its id.
    pub fn tlog(&self, log_id: &[u8]) -> Option<&Log> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }

    /// The refused transparency log with this id, if the trust root lists one.
    pub fn refused_tlog(&self, log_id: &[u8]) -> Option<&RefusedLog> {
        self.refused_tlogs.iter().find(|l| l.log_id == log_id)
    }
}

/// What an unusable log key does to the trust root.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyErrors {
    Fail,
    Refuse,
}

/// Parses a list of logs (`at` names it). A key whose `validFor` has no `start` is refused, not loaded: a
/// trust root must say from when a log key may be trusted, and reading a missing start as "always" would
/// let a key vouch for times before it existed (sigstore-conformance
/// `trust-root-tlog-missing-validity-start_fail`; sigstore-python refuses such a root too).
fn logs(
    raw: Vec<RawLog>,
    at: &str,
    key_errors: KeyErrors,
) -> Result<(Vec<Log>, Vec<RefusedLog>), String> {
    let mut loaded = Vec::new();
    let mut refused = Vec::new();
    for (i, l) in raw.into_iter().enumerate() {
        let at = format!("{at}[{i}]");
        let log_id =
            decode_base64(&l.log_id.key_id).map_err(|e| format!("{at}.logId.keyId: {e}"))?;
        let valid = validity(l.public_key.valid_for.as_ref(), &at)?;
        let refuse = |reason: String| RefusedLog {
            reason,
            base_url: l.base_url.clone(),
            log_id: log_id.clone(),
        };
        if valid.start.is_none() {
            refused.push(refuse(format!(
                "{at} ({}) has no publicKey.validFor.start, so its key is not trusted",
                l.base_url
            )));
            continue;
        }
        let key = decode_base64(&l.public_key.raw_bytes)
            .map_err(|e| format!("{at}.publicKey.rawBytes: {e}"))
            .and_then(|der| {
                log_key(&der, &l.public_key.key_details, &l.base_url)
                    .map_err(|e| format!("{at}: {e}"))
            });
        let key = match (key, key_errors) {
            (Ok(key), _) => key,
            (Err(e), KeyErrors::Fail) => return Err(e),
            (Err(e), KeyErrors::Refuse) => {
                refused.push(refuse(format!("its key cannot be used: {e}")));
                continue;
            }
        };
        loaded.push(Log {
            key,
            log_id,
            valid,
            base_url: l.base_url,
        });
    }
    Ok((loaded, refused))
}

/// A log key as the trust root writes it: a SubjectPublicKeyInfo, or for `PKCS1_*` key details a bare
/// RSAPublicKey, re-wrapped as one.
fn log_key(der: &[u8], details: &str, base_url: &str) -> Result<PublicKey, KeyError> {
    let label = format!("log {base_url}");
    if !details.starts_with("PKCS1_") {
        return PublicKey::from_spki_der(der, label);
    }
    let spki = openssl::rsa::Rsa::public_key_from_der_pkcs1(der)
        .and_then(openssl::pkey::PKey::from_rsa)
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| {
            KeyError(format!(
                "{label}: not a DER PKCS#1 RSA public key: {}",
                super::keys::first_openssl_reason(&e)
            ))
        })?;
    PublicKey::from_spki_der(&spki, label)
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
