//! RFC 3161 signed timestamps: the time source for Rekor v2 entries, which carry no signed time of their own.
//!
//! The CMS signature is checked by OpenSSL against the timestamp authority's certificate from the trust
//! root (never one embedded in the token), and that certificate is then chained at the stamped time.

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::stack::Stack;
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::{AnyRef, ObjectIdentifier};
use x509_cert::der::{Decode, Reader, SliceReader, Tag, Tagged};

use super::certificate::{self, LeafCertificate, EKU_TIME_STAMPING};
use super::root::{Authority, TrustedRoot};

const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";

/// A verified timestamp.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifiedTimestamp {
    pub authority: String,
    pub time: i64,
}

/// Verifies that `der` (a TimeStampResp or a bare TimeStampToken) is a trusted authority's timestamp over
/// `signature` (the sha256 of the signature bytes, as Sigstore stamps them).
pub fn verify(
    der: &[u8],
    signature: &[u8],
    root: &TrustedRoot,
) -> Result<VerifiedTimestamp, String> {
    let token = token_of(der)?;
    if root.timestamp_authorities.is_empty() {
        return Err(format!("{} lists no timestamp authority", root.label));
    }
    let mut reasons = Vec::new();
    for authority in &root.timestamp_authorities {
        match verify_with(&token, signature, authority) {
            Ok(time) => {
                return Ok(VerifiedTimestamp {
                    authority: authority.uri.clone(),
                    time,
                })
            }
            Err(e) => reasons.push(format!("{}: {e}", authority.uri)),
        }
    }
    Err(format!(
        "no trusted timestamp authority signed it ({})",
        reasons.join("; ")
    ))
}

fn verify_with(token: &[u8], signature: &[u8], authority: &Authority) -> Result<i64, String> {
    let fail = |e: openssl::error::ErrorStack| super::keys::first_openssl_reason(&e);
    let leaf_x509 = authority.chain.first().ok_or("empty chain")?;
    let mut cms = CmsContentInfo::from_der(token)
        .map_err(|e| format!("not a CMS SignedData token: {}", fail(e)))?;
    let mut signer = Stack::new().map_err(fail)?;
    signer.push(leaf_x509.clone()).map_err(fail)?;
    let mut tst_info = Vec::new();
    // NOINTERN: the signer must be the authority's own certificate, not one the token brings along.
    cms.verify(
        Some(&signer),
        None,
        None,
        Some(&mut tst_info),
        CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .map_err(|e| format!("the token's signature does not verify: {}", fail(e)))?;
    let (imprint_alg, imprint, time) = parse_tst_info(&tst_info)?;
    if imprint_alg != SHA256_OID {
        return Err(format!(
            "message imprint algorithm {imprint_alg} is not SHA-256"
        ));
    }
    if imprint != Sha256::digest(signature).as_slice() {
        return Err("the timestamp is over something other than this signature".into());
    }
    if !authority.valid.contains(time) {
        return Err(format!(
            "the authority was not valid at {}",
            certificate::format_unix(time)
        ));
    }
    let leaf = LeafCertificate::from_der(&leaf_x509.to_der().map_err(fail)?)?;
    if !leaf.has_ext_key_usage(EKU_TIME_STAMPING) {
        return Err("the authority's certificate is not for time stamping".into());
    }
    if authority.chain.len() > 1 {
        certificate::verify_chain(leaf_x509, &authority.chain[1..], &authority.uri, time)?;
    }
    Ok(time)
}

/// A TimeStampResp is `SEQUENCE { status PKIStatusInfo, token ContentInfo OPTIONAL }`; a token is a
/// ContentInfo, `SEQUENCE { OID, [0] content }`.
fn token_of(der: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |e: x509_cert::der::Error| format!("not a DER timestamp: {e}");
    let outer = AnyRef::from_der(der).map_err(bad)?;
    let mut r = SliceReader::new(outer.value()).map_err(bad)?;
    let first: AnyRef<'_> = r.decode().map_err(bad)?;
    if first.tag() == Tag::ObjectIdentifier {
        return Ok(der.to_vec());
    }
    let mut status = SliceReader::new(first.value()).map_err(bad)?;
    let code: u8 = status.decode().map_err(bad)?;
    if code > 1 {
        return Err(format!(
            "the timestamp authority refused the request (PKIStatus {code})"
        ));
    }
    if r.is_finished() {
        return Err("the timestamp response carries no token".into());
    }
    let token: AnyRef<'_> = r.decode().map_err(bad)?;
    x509_cert::der::Encode::to_der(&token).map_err(bad)
}

/// TSTInfo ::= SEQUENCE { version, policy, messageImprint SEQUENCE { AlgorithmIdentifier, OCTET STRING },
/// serialNumber, genTime GeneralizedTime, ... }. genTime may carry fractional seconds, which is why it is
/// read as text.
fn parse_tst_info(der: &[u8]) -> Result<(String, Vec<u8>, i64), String> {
    let bad = |e: x509_cert::der::Error| format!("malformed TSTInfo: {e}");
    let outer = AnyRef::from_der(der).map_err(bad)?;
    let mut r = SliceReader::new(outer.value()).map_err(bad)?;
    let _version: AnyRef<'_> = r.decode().map_err(bad)?;
    let _policy: ObjectIdentifier = r.decode().map_err(bad)?;
    let imprint: AnyRef<'_> = r.decode().map_err(bad)?;
    let _serial: AnyRef<'_> = r.decode().map_err(bad)?;
    let gen_time: AnyRef<'_> = r.decode().map_err(bad)?;
    let mut ir = SliceReader::new(imprint.value()).map_err(bad)?;
    let alg: AnyRef<'_> = ir.decode().map_err(bad)?;
    let hashed: AnyRef<'_> = ir.decode().map_err(bad)?;
    let mut ar = SliceReader::new(alg.value()).map_err(bad)?;
    let alg_oid: ObjectIdentifier = ar.decode().map_err(bad)?;
    if gen_time.tag() != Tag::GeneralizedTime || hashed.tag() != Tag::OctetString {
        return Err("malformed TSTInfo: unexpected field types".into());
    }
    let text = std::str::from_utf8(gen_time.value())
        .map_err(|_| "malformed TSTInfo: genTime is not text")?;
    let time = parse_generalized_time(text)
        .ok_or_else(|| format!("malformed TSTInfo: genTime {text:?}"))?;
    Ok((alg_oid.to_string(), hashed.value().to_vec(), time))
}

/// `YYYYMMDDHHMMSS[.fff]Z` → unix seconds.
fn parse_generalized_time(text: &str) -> Option<i64> {
    let body = text.strip_suffix('Z')?;
    let whole = body.split('.').next()?;
    let t = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").ok()?;
    Some(t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    #[test]
    fn generalized_time_with_fractions() {
        assert_eq!(
            super::parse_generalized_time("19700101000001.123Z"),
            Some(1)
        );
        assert_eq!(super::parse_generalized_time("19700101000001"), None);
    }
}
