//! Public keys from PEM, identified by the sha256 of their DER SubjectPublicKeyInfo.
//!
//! Signature checks go through the `sigstore` crate's [`CosignVerificationKey`]; this module adds what
//! real provenance needs beside it: the raw `r||s` ECDSA form (GCP's KMS-signed VSAs) and verification of
//! a pre-computed sha256 digest (Sigstore message-signature bundles, which carry only the digest).

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

    /// Verifies `signature` over `message` with the key's own hash (SHA-256 for P-256 and RSA PKCS#1 v1.5,
    /// SHA-384 for P-384, SHA-512 for P-521, none for Ed25519): the schemes of the `sigstore` crate's
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
            _ => Verifier::new(MessageDigest::sha256(), &self.pkey),
        };
        let Ok(mut verifier) = verifier else {
            return false;
        };
        if let KeyKind::Rsa(_) = self.kind {
            if verifier
                .set_rsa_padding(openssl::rsa::Padding::PKCS1)
                .is_err()
            {
                return false;
            }
        }
        verifier.verify_oneshot(signature, message).unwrap_or(false)
    }

    /// Verifies `signature` over a message known only by its sha256 `digest` (ECDSA and RSA PKCS#1 only:
    /// Ed25519 signs messages, not digests).
    pub fn verify_sha256_digest(&self, signature: &[u8], digest: &[u8]) -> bool {
        if digest.len() != 32 || self.kind == KeyKind::Ed25519 {
            return false;
        }
        let check = |sig: &[u8]| -> bool {
            let Ok(mut ctx) = openssl::pkey_ctx::PkeyCtx::new(&self.pkey) else {
                return false;
            };
            if ctx.verify_init().is_err() {
                return false;
            }
            if let KeyKind::Rsa(_) = self.kind {
                if ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1).is_err()
                    || ctx.set_signature_md(openssl::md::Md::sha256()).is_err()
                {
                    return false;
                }
            }
            ctx.verify(digest, sig).unwrap_or(false)
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
