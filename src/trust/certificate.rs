//! Fulcio-style signing certificates: chain to a trusted authority at a given time, and the identity
//! (subject alternative name) and OIDC issuer they were issued for.

use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509StoreContext, X509};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::Certificate;

use super::keys::{first_openssl_reason, PublicKey};
use super::root::Authority;

/// Fulcio's OIDC issuer extension, v1 (raw string) and v2 (DER UTF8String).
const FULCIO_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
const FULCIO_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// id-kp-codeSigning and id-kp-timeStamping.
pub const EKU_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
pub const EKU_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";

/// A parsed leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafCertificate {
    pub der: Vec<u8>,
    x509: X509,
    /// The subject alternative name: a URI (workflow identity) or an e-mail address.
    pub identity: Option<String>,
    /// The OIDC issuer Fulcio recorded.
    pub issuer: Option<String>,
    pub key: PublicKey,
    ext_key_usage: Vec<String>,
}

impl LeafCertificate {
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let cert =
            Certificate::from_der(der).map_err(|e| format!("not a DER X.509 certificate: {e}"))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| format!("certificate public key: {e}"))?;
        let key = PublicKey::from_spki_der(&spki, "certificate").map_err(|e| e.to_string())?;
        let identity = match tbs.get_extension::<SubjectAltName>() {
            Ok(Some((_, san))) => san.0.iter().find_map(|name| match name {
                GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
                GeneralName::Rfc822Name(mail) => Some(mail.to_string()),
                _ => None,
            }),
            _ => None,
        };
        let ext_key_usage = match tbs.get_extension::<ExtendedKeyUsage>() {
            Ok(Some((_, eku))) => eku.0.iter().map(|oid| oid.to_string()).collect(),
            _ => Vec::new(),
        };
        let mut issuer = None;
        for ext in tbs.extensions().into_iter().flatten() {
            let oid = ext.extn_id.to_string();
            let value = ext.extn_value.as_bytes();
            if oid == FULCIO_ISSUER_V2 {
                if let Ok(s) = x509_cert::der::asn1::Utf8StringRef::from_der(value) {
                    issuer = Some(s.as_str().to_string());
                }
            } else if oid == FULCIO_ISSUER_V1 && issuer.is_none() {
                issuer = std::str::from_utf8(value).ok().map(str::to_string);
            }
        }
        let x509 = X509::from_der(der)
            .map_err(|e| format!("not a DER X.509 certificate: {}", first_openssl_reason(&e)))?;
        Ok(LeafCertificate {
            der: der.to_vec(),
            x509,
            identity,
            issuer,
            key,
            ext_key_usage,
        })
    }

    /// Parses the first certificate of a PEM block.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let x509 = X509::from_pem(pem)
            .map_err(|e| format!("not a PEM certificate: {}", first_openssl_reason(&e)))?;
        let der = x509.to_der().map_err(|e| e.to_string())?;
        Self::from_der(&der)
    }

    /// The OpenSSL form, decoded once at parse.
    pub fn x509(&self) -> &X509 {
        &self.x509
    }

    pub fn has_ext_key_usage(&self, oid: &str) -> bool {
        self.ext_key_usage.iter().any(|o| o == oid)
    }

    /// Verifies that this certificate chains to `authority` at `unix_time`, with `required_eku` in its
    /// extended key usage. The chain comes from the trust root, never from the signed document.
    pub fn verify_chain(
        &self,
        authority: &Authority,
        unix_time: i64,
        required_eku: &str,
    ) -> Result<(), String> {
        if !self.has_ext_key_usage(required_eku) {
            return Err(format!(
                "the certificate's extended key usage does not include {required_eku}"
            ));
        }
        verify_chain(&self.x509, &authority.chain, &authority.uri, unix_time)
    }
}

/// Verifies `leaf` against `issuers` (intermediates, then the trust anchor last) at `unix_time`.
pub fn verify_chain(
    leaf: &X509,
    issuers: &[X509],
    authority: &str,
    unix_time: i64,
) -> Result<(), String> {
    let fail =
        |what: &str, e: openssl::error::ErrorStack| format!("{what}: {}", first_openssl_reason(&e));
    let (anchor, intermediates) = issuers
        .split_last()
        .ok_or("the authority has no certificates")?;
    let mut store = X509StoreBuilder::new().map_err(|e| fail("certificate store", e))?;
    store
        .add_cert(anchor.clone())
        .map_err(|e| fail("trust anchor", e))?;
    let mut param =
        openssl::x509::verify::X509VerifyParam::new().map_err(|e| fail("verify parameters", e))?;
    param.set_time(unix_time);
    store
        .set_param(&param)
        .map_err(|e| fail("verify parameters", e))?;
    let store = store.build();
    let mut chain = Stack::new().map_err(|e| fail("certificate chain", e))?;
    for cert in intermediates {
        chain
            .push(cert.clone())
            .map_err(|e| fail("certificate chain", e))?;
    }
    let mut ctx = X509StoreContext::new().map_err(|e| fail("verify context", e))?;
    let outcome = ctx
        .init(&store, leaf, &chain, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error()))
        })
        .map_err(|e| fail("chain verification", e))?;
    match outcome {
        (true, _) => Ok(()),
        (false, error) => Err(format!(
            "does not chain to {} at {}: {}",
            if authority.is_empty() {
                "the trusted authority"
            } else {
                authority
            },
            format_unix(unix_time),
            error.error_string()
        )),
    }
}

/// Whether `cert` is a root: issued by itself (names and key identifiers, as OpenSSL judges) and signed
/// with its own key.
pub fn is_self_signed(cert: &openssl::x509::X509Ref) -> bool {
    cert.issued(cert) == openssl::x509::X509VerifyResult::OK
        && cert
            .public_key()
            .is_ok_and(|key| cert.verify(&key).unwrap_or(false))
}

/// A certificate's subject as `CN=..., O=...`, for messages.
pub fn subject_of(cert: &openssl::x509::X509Ref) -> String {
    let parts: Vec<String> = cert
        .subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                String::from_utf8_lossy(e.data().as_slice())
            )
        })
        .collect();
    if parts.is_empty() {
        "(empty subject)".into()
    } else {
        parts.join(", ")
    }
}

/// A unix time as RFC 3339, for messages.
pub fn format_unix(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}
