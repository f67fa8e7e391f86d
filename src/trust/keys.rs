//! Public keys from PEM, identified by the sha256 of their DER SubjectPublicKeyInfo.
//!
//! Signature checks go through the `sigstore` crate's [`CosignVerificationKey`]; this module adds what
//! real provenance needs beside it: the raw `r||s` ECDSA form (GCP's KMS-signed VSAs), RSA-PSS beside
//! PKCS#1 v1.5 (an RSA key's SubjectPublicKeyInfo does not say which; securesystemslib and in-toto sign
//! PSS by default), and verification of a pre-computed sha256 digest (Sigstore message-signature bundles,
//! which carry only the digest).

use std::fmt;

use openssl::pkey::{Id, PKey, Public};
use sha2::{Digest, Sha256};
use sigstore::crypto::{CosignVerificationKey, Signature};

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// The algorithm family of a key, for messages and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa(u32),
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyKind::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyKind::EcdsaP521 => f.write_str("ECDSA P-521"),
            KeyKind::Rsa(bits) => write!(f, "RSA-{bits}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// A verification key with a stable identity.
#[derive(Clone)]
pub struct PublicKey {
    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: what trust policies name.
    pub id: String,
    /// Where the key came from (a file name, "certificate", a log's URL), for messages.
    pub label: String,
    pub kind: KeyKind,
    spki: Vec<u8>,
    key: CosignVerificationKey,
    pkey: PKey<Public>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {} {})", self.kind, self.id, self.label)
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) block.
    pub fn from_pem(pem: &[u8], label: impl Into<String>) -> Result<Self, KeyError> {
        let label = label.into();
        let pkey = PKey::public_key_from_pem(pem).map_err(|e| {
            KeyError(format!(
                "{label}: not a PEM public key (expected a `-----BEGIN PUBLIC KEY-----` block): {}",
                first_openssl_reason(&e)
            ))
        })?;
        let der = pkey
            .public_key_to_der()
            .map_err(|e| KeyError(format!("{label}: cannot re-encode the key: {e}")))?;
        Self::from_spki_der(&der, label)
    }

    /// Reads a DER SubjectPublicKeyInfo (as Sigstore trust roots and certificates carry them).
    pub fn from_spki_der(der: &[u8], label: impl Into<String>) -> Result<Self, KeyError> {
        let label = label.into();
        let pkey = PKey::public_key_from_der(der).map_err(|e| {
            KeyError(format!(
                "{label}: not a DER public key: {}",
                first_openssl_reason(&e)
            ))
        })?;
        let kind = match pkey.id() {
            Id::EC => {
                let curve = pkey
                    .ec_key()
                    .ok()
                    .and_then(|k| k.group().curve_name())
                    .map(|n| n.short_name().unwrap_or("?").to_string());
                match curve.as_deref() {
                    Some("prime256v1") => KeyKind::EcdsaP256,
                    Some("secp384r1") => KeyKind::EcdsaP384,
                    Some("secp521r1") => KeyKind::EcdsaP521,
                    other => {
                        return Err(KeyError(format!(
                            "{label}: unsupported elliptic curve {}",
                            other.unwrap_or("(unnamed)")
                        )))
                    }
                }
            }
            // The bounds the sigstore crate's verifier enforces: below 2048 bits is breakable, above 8192 a
            // denial of service.
            Id::RSA if (2048..=8192).contains(&pkey.bits()) => KeyKind::Rsa(pkey.bits()),
            Id::RSA => {
                return Err(KeyError(format!(
                    "{label}: a {}-bit RSA key; 2048 to 8192 bits are accepted",
                    pkey.bits()
                )))
            }
            Id::ED25519 => KeyKind::Ed25519,
            other => return Err(KeyError(format!("{label}: unsupported key type {other:?}"))),
        };
        let key = CosignVerificationKey::try_from_der(der)
            .map_err(|e| KeyError(format!("{label}: {e}")))?;
        Ok(PublicKey {
            id: key_id(der),
            label,
            kind,
            spki: der.to_vec(),
            key,
            pkey,
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Verifies `signature` over `message` with the key's own hash (SHA-256 for P-256 and RSA, SHA-384 for
    /// P-384, SHA-512 for P-521, none for Ed25519): the schemes of the `sigstore` crate's
    /// [`CosignVerificationKey`], which classified the key. The check runs on the key OpenSSL decoded once at
    /// load: `CosignVerificationKey::verify_signature` decodes the DER again on every call, and OpenSSL 3's
    /// decoder cost more than the signature check itself (see `benches/verify.rs`). ECDSA signatures may be
    /// DER or the raw fixed-width `r||s` form.
    pub fn verify(&self, signature: &[u8], message: &[u8]) -> bool {
        if self.verify_as_given(signature, message) {
            return true;
        }
        match self.raw_ecdsa_to_der(signature) {
            Some(der) => self.verify_as_given(&der, message),
            None => false,
        }
    }

    fn verify_as_given(&self, signature: &[u8], message: &[u8]) -> bool {
        use openssl::hash::MessageDigest;
        use openssl::sign::Verifier;
        let verifier = match self.key {
            CosignVerificationKey::ED25519(_) => Verifier::new_without_digest(&self.pkey),
            CosignVerificationKey::ECDSA_P384_SHA384_ASN1(_) => {
                Verifier::new(MessageDigest::sha384(), &self.pkey)
            }
            CosignVerificationKey::ECDSA_P521_SHA512_ASN1(_) => {
                Verifier::new(MessageDigest::sha512(), &self.pkey)
            }
            CosignVerificationKey::RSA_PSS_SHA256(_) => {
                return self
                    .key
                    .verify_signature(Signature::Raw(signature), message)
                    .is_ok()
            }
            _ if matches!(self.kind, KeyKind::Rsa(_)) => {
                return RsaScheme::ALL.iter().any(|scheme| {
                    Verifier::new(MessageDigest::sha256(), &self.pkey).is_ok_and(|mut v| {
                        scheme.configure_verifier(&mut v).is_ok()
                            && v.verify_oneshot(signature, message).unwrap_or(false)
                    })
                })
            }
            _ => Verifier::new(MessageDigest::sha256(), &self.pkey),
        };
        let Ok(mut verifier) = verifier else {
            return false;
        };
        verifier.verify_oneshot(signature, message).unwrap_or(false)
    }

    /// Verifies `signature` over a message known only by its sha256 `digest` (ECDSA and RSA, PKCS#1 v1.5 or
    /// PSS, only: Ed25519 signs messages, not digests).
    pub fn verify_sha256_digest(&self, signature: &[u8], digest: &[u8]) -> bool {
        if digest.len() != 32 || self.kind == KeyKind::Ed25519 {
            return false;
        }
        let with = |sig: &[u8], scheme: Option<RsaScheme>| -> bool {
            let Ok(mut ctx) = openssl::pkey_ctx::PkeyCtx::new(&self.pkey) else {
                return false;
            };
            if ctx.verify_init().is_err() {
                return false;
            }
            if let Some(scheme) = scheme {
                if scheme.configure_ctx(&mut ctx).is_err() {
                    return false;
                }
            }
            ctx.verify(digest, sig).unwrap_or(false)
        };
        let check = |sig: &[u8]| -> bool {
            match self.kind {
                KeyKind::Rsa(_) => RsaScheme::ALL.iter().any(|s| with(sig, Some(*s))),
                _ => with(sig, None),
            }
        };
        check(signature)
            || self
                .raw_ecdsa_to_der(signature)
                .is_some_and(|der| check(&der))
    }

    /// `r||s` → DER, when the signature has exactly the curve's raw width.
    fn raw_ecdsa_to_der(&self, signature: &[u8]) -> Option<Vec<u8>> {
        let half = match self.kind {
            KeyKind::EcdsaP256 => 32,
            KeyKind::EcdsaP384 => 48,
            KeyKind::EcdsaP521 => 66,
            _ => return None,
        };
        if signature.len() != 2 * half {
            return None;
        }
        let r = openssl::bn::BigNum::from_slice(&signature[..half]).ok()?;
        let s = openssl::bn::BigNum::from_slice(&signature[half..]).ok()?;
        openssl::ecdsa::EcdsaSig::from_private_components(r, s)
            .ok()?
            .to_der()
            .ok()
    }
}

/// The RSA signature schemes an RSA key is checked with, both over SHA-256: PKCS#1 v1.5 (cosign, Sigstore,
/// GCP KMS) and PSS with MGF1-SHA-256 (securesystemslib's default `rsassa-pss-sha256`). Trying both is
/// sound: each is secure for the same key, and a signature valid under one is not valid under the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RsaScheme {
    Pkcs1v15,
    Pss,
}

impl RsaScheme {
    const ALL: [RsaScheme; 2] = [RsaScheme::Pkcs1v15, RsaScheme::Pss];

    /// OpenSSL's RSA_PSS_SALTLEN_AUTO: on verification, the salt length is read from the signature, so
    /// a signer's choice (securesystemslib uses the digest length, others the maximum) does not matter.
    fn pss_salt_auto() -> openssl::sign::RsaPssSaltlen {
        openssl::sign::RsaPssSaltlen::custom(-2)
    }

    fn configure_verifier(
        self,
        v: &mut openssl::sign::Verifier<'_>,
    ) -> Result<(), openssl::error::ErrorStack> {
        use openssl::rsa::Padding;
        match self {
            RsaScheme::Pkcs1v15 => v.set_rsa_padding(Padding::PKCS1),
            RsaScheme::Pss => {
                v.set_rsa_padding(Padding::PKCS1_PSS)?;
                v.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256())?;
                v.set_rsa_pss_saltlen(Self::pss_salt_auto())
            }
        }
    }

    fn configure_ctx(
        self,
        ctx: &mut openssl::pkey_ctx::PkeyCtx<Public>,
    ) -> Result<(), openssl::error::ErrorStack> {
        use openssl::rsa::Padding;
        ctx.set_signature_md(openssl::md::Md::sha256())?;
        match self {
            RsaScheme::Pkcs1v15 => ctx.set_rsa_padding(Padding::PKCS1),
            RsaScheme::Pss => {
                ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                ctx.set_rsa_mgf1_md(openssl::md::Md::sha256())?;
                ctx.set_rsa_pss_saltlen(Self::pss_salt_auto())
            }
        }
    }
}

/// `sha256:<hex>` of a DER SubjectPublicKeyInfo.
pub fn key_id(spki_der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(spki_der)))
}

/// OpenSSL error stacks are long; the first reason is the useful part.
pub(crate) fn first_openssl_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|err| err.reason().map(str::to_string))
        .unwrap_or_else(|| e.to_string())
}

#[cfg(test)]
mod tests {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::{Padding, Rsa};
    use openssl::sign::{RsaPssSaltlen, Signer};
    use sha2::{Digest, Sha256};

    use super::PublicKey;

    /// RSA-PSS as securesystemslib signs it (`rsassa-pss-sha256`: MGF1-SHA-256, salt of the digest
    /// length) and with the maximum salt verifies, over the message and over its digest; PKCS#1 v1.5 still
    /// does; a changed message or a signature by another key does not.
    #[test]
    fn rsa_pss_and_pkcs1_signatures_verify() {
        let private = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let public =
            PublicKey::from_pem(&private.public_key_to_pem().unwrap(), "test rsa").unwrap();
        let message = b"DSSEv1 28 application/vnd.in-toto+json 2 {}";
        let sign = |pss: Option<RsaPssSaltlen>| {
            let mut signer = Signer::new(MessageDigest::sha256(), &private).unwrap();
            if let Some(salt) = pss {
                signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                signer.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
                signer.set_rsa_pss_saltlen(salt).unwrap();
            } else {
                signer.set_rsa_padding(Padding::PKCS1).unwrap();
            }
            signer.sign_oneshot_to_vec(message).unwrap()
        };
        let digest = Sha256::digest(message);
        for (what, sig) in [
            (
                "pss, digest-length salt",
                sign(Some(RsaPssSaltlen::DIGEST_LENGTH)),
            ),
            (
                "pss, maximum salt",
                sign(Some(RsaPssSaltlen::MAXIMUM_LENGTH)),
            ),
            ("pkcs1 v1.5", sign(None)),
        ] {
            assert!(public.verify(&sig, message), "{what}");
            assert!(
                public.verify_sha256_digest(&sig, &digest),
                "{what} (digest)"
            );
            assert!(!public.verify(&sig, b"another message"), "{what}");
            let mut flipped = sig.clone();
            flipped[10] ^= 1;
            assert!(!public.verify(&flipped, message), "{what}");
        }
        let stranger = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let stranger =
            PublicKey::from_pem(&stranger.public_key_to_pem().unwrap(), "other rsa").unwrap();
        assert!(!stranger.verify(&sign(Some(RsaPssSaltlen::DIGEST_LENGTH)), message));
    }
}
