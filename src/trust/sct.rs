//! Certificate transparency: the signed certificate timestamps (RFC 6962 §3.3) Fulcio embeds in the
//! certificates it issues, each a CT log's signed promise that it published the precertificate.
//!
//! Without a verified SCT nothing shows the certificate was ever public, so a certificate authority could
//! have issued it quietly; sigstore clients (sigstore-python, cosign, sigstore-go for the public instance)
//! require at least one SCT from a log the trust root lists. The `sigstore` crate keeps its SCT code
//! private, so it is written here on `x509-cert`'s SCT parser and `der`.

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::{AnyRef, ObjectIdentifier};
use x509_cert::der::{Decode, Encode, Header, Length, Reader, SliceReader, Tag, TagNumber, Tagged};
use x509_cert::ext::pkix::sct::{
    HashAlgorithm, SignatureAlgorithm, SignedCertificateTimestamp, SignedCertificateTimestampList,
};
use x509_cert::Certificate;

use super::certificate::format_unix;
use super::keys::KeyKind;
use super::root::TrustedRoot;

/// The precertificate SCT list extension (RFC 6962 §3.3).
pub const SCT_LIST_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// Why a certificate's SCTs do not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctError {
    #[error(
        "the certificate carries no signed certificate timestamp (SCT): nothing shows that a \
         certificate-transparency log published it"
    )]
    Missing,
    #[error("the certificate's SCT list cannot be read: {0}")]
    Malformed(String),
    #[error(
        "{0} lists no certificate-transparency log, so the certificate's SCTs cannot be checked"
    )]
    NoLogs(String),
    #[error(
        "none of the certificate's {count} SCT(s) verifies with a certificate-transparency log of {root} ({reasons})"
    )]
    NoneVerified {
        count: usize,
        root: String,
        reasons: String,
    },
}

/// An SCT that verified: which log promised to publish the certificate, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedSct {
    pub log: String,
    /// RFC 3339.
    pub timestamp: String,
}

/// Verifies the SCTs embedded in `leaf_der`, issued by the certificate whose SubjectPublicKeyInfo is
/// `issuer_spki` (from the trust root), against `root`'s CT logs. `Ok` holds the SCTs that verified, at
/// least one; SCTs that do not verify are tolerated beside one that does, as in RFC 6962 clients.
pub fn verify_embedded(
    leaf_der: &[u8],
    issuer_spki: &[u8],
    root: &TrustedRoot,
) -> Result<Vec<VerifiedSct>, SctError> {
    let malformed = |e: String| SctError::Malformed(e);
    let cert = Certificate::from_der(leaf_der).map_err(|e| malformed(e.to_string()))?;
    let list = match cert
        .tbs_certificate()
        .get_extension::<SignedCertificateTimestampList>()
    {
        Ok(Some((_, list))) => list,
        Ok(None) => return Err(SctError::Missing),
        Err(e) => return Err(malformed(e.to_string())),
    };
    let serialized = list
        .parse_timestamps()
        .map_err(|e| malformed(format!("{e:?}")))?;
    if serialized.is_empty() {
        return Err(SctError::Missing);
    }
    // With only refused logs, each SCT says which log refused and why.
    if root.ctlogs.is_empty() && root.refused_ctlogs.is_empty() {
        return Err(SctError::NoLogs(root.label.clone()));
    }
    let tbs = precert_tbs(leaf_der).map_err(malformed)?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(issuer_spki).into();
    let mut verified = Vec::new();
    let mut reasons = Vec::new();
    for (i, s) in serialized.iter().enumerate() {
        let outcome = s
            .parse_timestamp()
            .map_err(|e| format!("cannot be parsed ({e:?})"))
            .and_then(|sct| verify_one(&sct, &issuer_key_hash, &tbs, root));
        match outcome {
            Ok(v) => verified.push(v),
            Err(e) => reasons.push(format!("SCT {i}: {e}")),
        }
    }
    if verified.is_empty() {
        return Err(SctError::NoneVerified {
            count: serialized.len(),
            root: root.label.clone(),
            reasons: reasons.join("; "),
        });
    }
    Ok(verified)
}

fn verify_one(
    sct: &SignedCertificateTimestamp,
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
    root: &TrustedRoot,
) -> Result<VerifiedSct, String> {
    use base64::Engine;
    let id = &sct.log_id.key_id;
    // The log id is the sha256 of the log key's DER SubjectPublicKeyInfo (RFC 6962 §3.2), computed here
    // rather than taken from the trust root's `logId`.
    let Some(log) = root
        .ctlogs
        .iter()
        .find(|l| Sha256::digest(l.key.spki()).as_slice() == id)
    else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(id);
        return Err(match root.refused_ctlogs.iter().find(|l| l.log_id == id) {
            Some(refused) => format!("from log {b64}, which is not trusted: {}", refused.reason),
            None => format!("from log {b64}, which {} does not list", root.label),
        });
    };
    let alg = &sct.signature.algorithm;
    let supported = alg.hash == HashAlgorithm::Sha256
        && matches!(
            (&alg.signature, log.key.kind),
            (SignatureAlgorithm::Ecdsa, KeyKind::EcdsaP256)
                | (SignatureAlgorithm::Rsa, KeyKind::Rsa(_))
        );
    if !supported {
        return Err(format!(
            "signed with {:?}/{:?}, which {}'s {} key cannot have made",
            alg.signature, alg.hash, log.base_url, log.key.kind
        ));
    }
    let seconds = i64::try_from(sct.timestamp / 1000).map_err(|_| "timestamp out of range")?;
    if !log.valid.contains(seconds) {
        return Err(format!(
            "{}'s key was not valid at the SCT's time {}",
            log.base_url,
            format_unix(seconds)
        ));
    }
    let signed = signed_data(sct, issuer_key_hash, tbs)?;
    if !log.key.verify(sct.signature.signature.as_slice(), &signed) {
        return Err(format!(
            "its signature does not verify with {}'s key",
            log.base_url
        ));
    }
    Ok(VerifiedSct {
        log: log.base_url.clone(),
        timestamp: format_unix(seconds),
    })
}

/// The RFC 6962 §3.2 `digitally-signed` struct for a precertificate entry: version, signature type
/// (certificate_timestamp), timestamp, entry type (precert_entry), the issuer key hash, the
/// TBSCertificate (24-bit length), and the SCT's extensions (16-bit length).
fn signed_data(
    sct: &SignedCertificateTimestamp,
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
) -> Result<Vec<u8>, String> {
    let tbs_len = u32::try_from(tbs.len())
        .ok()
        .filter(|n| *n < 1 << 24)
        .ok_or("the TBSCertificate is too long for a precertificate entry")?;
    let extensions = sct.extensions.as_slice();
    let ext_len =
        u16::try_from(extensions.len()).map_err(|_| "the SCT's extensions are too long")?;
    let mut out = Vec::with_capacity(tbs.len() + extensions.len() + 64);
    out.push(0); // sct_version v1
    out.push(0); // signature_type certificate_timestamp
    out.extend_from_slice(&sct.timestamp.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    out.extend_from_slice(issuer_key_hash);
    out.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
    out.extend_from_slice(tbs);
    out.extend_from_slice(&ext_len.to_be_bytes());
    out.extend_from_slice(extensions);
    Ok(out)
}

/// The leaf's TBSCertificate with the SCT list extension removed: what the log signed. Every other field and
/// extension is copied byte for byte from the received DER; only the lengths of the enclosing extensions
/// list, its `[3]` wrapper and the TBSCertificate are written anew.
fn precert_tbs(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |e: x509_cert::der::Error| format!("malformed certificate: {e}");
    let extensions_tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(3),
    };
    let cert = AnyRef::from_der(cert_der).map_err(bad)?;
    let mut top = SliceReader::new(cert.value()).map_err(bad)?;
    let tbs = AnyRef::from_der(top.tlv_bytes().map_err(bad)?).map_err(bad)?;
    let mut fields = SliceReader::new(tbs.value()).map_err(bad)?;
    let mut out = Vec::with_capacity(tbs.value().len());
    let mut removed = 0;
    while !fields.is_finished() {
        let raw = fields.tlv_bytes().map_err(bad)?;
        let field = AnyRef::from_der(raw).map_err(bad)?;
        if field.tag() != extensions_tag {
            out.extend_from_slice(raw);
            continue;
        }
        let list = AnyRef::from_der(field.value()).map_err(bad)?;
        let mut exts = SliceReader::new(list.value()).map_err(bad)?;
        let mut kept = Vec::with_capacity(list.value().len());
        while !exts.is_finished() {
            let ext_raw = exts.tlv_bytes().map_err(bad)?;
            let ext = AnyRef::from_der(ext_raw).map_err(bad)?;
            let mut parts = SliceReader::new(ext.value()).map_err(bad)?;
            let oid: ObjectIdentifier = parts.decode().map_err(bad)?;
            if oid == SCT_LIST_OID {
                removed += 1;
            } else {
                kept.extend_from_slice(ext_raw);
            }
        }
        // A precertificate with no other extension has none at all, not an empty list.
        if !kept.is_empty() {
            let list = tlv(list.tag(), &kept).map_err(bad)?;
            out.extend(tlv(field.tag(), &list).map_err(bad)?);
        }
    }
    if removed != 1 {
        return Err(format!(
            "the certificate has {removed} SCT list extensions, not one"
        ));
    }
    tlv(tbs.tag(), &out).map_err(bad)
}

/// A DER TLV of `tag` around `value`.
fn tlv(tag: Tag, value: &[u8]) -> Result<Vec<u8>, x509_cert::der::Error> {
    let mut out = Vec::with_capacity(value.len() + 8);
    Header::new(tag, Length::try_from(value.len())?).encode_to_vec(&mut out)?;
    out.extend_from_slice(value);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use x509_cert::der::{Decode, Encode};
    use x509_cert::{Certificate, TbsCertificate};

    /// A Fulcio certificate from the shared corpus (sigstore-conformance `happy-path-intoto-in-dsse-v3`).
    fn fulcio_leaf() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpus/sigstore-conformance/bundle-verify/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"
        );
        let bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let b64 = bundle["verificationMaterial"]["certificate"]["rawBytes"]
            .as_str()
            .unwrap();
        crate::json::decode_base64(b64).unwrap()
    }

    #[test]
    fn the_precertificate_tbs_is_the_original_without_the_sct_extension() {
        let der = fulcio_leaf();
        let cert = Certificate::from_der(&der).unwrap();
        let original = cert.tbs_certificate();
        let pre = super::precert_tbs(&der).unwrap();
        let parsed = TbsCertificate::from_der(&pre).unwrap();
        let ext_ids = |t: &TbsCertificate| -> Vec<_> {
            t.extensions()
                .into_iter()
                .flatten()
                .map(|e| e.to_der().unwrap())
                .collect()
        };
        let mut expected = ext_ids(original);
        let sct = original
            .extensions()
            .into_iter()
            .flatten()
            .position(|e| e.extn_id == super::SCT_LIST_OID)
            .unwrap();
        expected.remove(sct);
        assert_eq!(ext_ids(&parsed), expected);
        assert!(expected.len() >= 5, "a Fulcio certificate has extensions");
        // Every other field is unchanged (strict DER: equal values are equal bytes).
        let fields = |t: &TbsCertificate| {
            vec![
                t.serial_number().to_der().unwrap(),
                t.signature().to_der().unwrap(),
                t.issuer().to_der().unwrap(),
                t.validity().to_der().unwrap(),
                t.subject().to_der().unwrap(),
                t.subject_public_key_info().to_der().unwrap(),
            ]
        };
        assert_eq!(fields(&parsed), fields(original));
        assert_eq!(
            pre.len(),
            original.to_der().unwrap().len()
                - original.extensions().unwrap()[sct].to_der().unwrap().len(),
            "only the extension's bytes are gone (the lengths keep their width here)"
        );
        assert!(
            super::precert_tbs(&pre).is_err(),
            "a TBSCertificate is not a certificate"
        );
    }
}
