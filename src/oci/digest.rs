//! Digests over bytes on disk, streamed, for the algorithms the OCI image spec registers.

use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256, Sha512};

/// Read size for hashing: large enough to keep the hash core busy, small enough to stay in cache.
const CHUNK: usize = 1 << 20;

/// A registered digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The algorithm of `alg:hex`, when registered.
    pub fn of(digest: &str) -> Option<Self> {
        match digest.split_once(':')?.0 {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn new(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self, alg: Algorithm) -> String {
        let hex = match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        };
        format!("{}:{hex}", alg.prefix())
    }
}

/// `<alg>:<hex>` of everything `reader` yields, plus the byte count. `each_chunk` is told every chunk's
/// size before it is hashed and may stop the read (a byte budget, a deadline).
pub fn digest_reader(
    alg: Algorithm,
    mut reader: impl Read,
    mut each_chunk: impl FnMut(usize) -> std::io::Result<()>,
) -> std::io::Result<(String, u64)> {
    let mut hasher = Hasher::new(alg);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        each_chunk(n)?;
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finish(alg), total))
}

/// `<alg>:<hex>` of a byte slice.
pub fn digest_bytes(alg: Algorithm, bytes: &[u8]) -> String {
    let mut h = Hasher::new(alg);
    h.update(bytes);
    h.finish(alg)
}

/// `sha256:<hex>` of everything `reader` yields, plus the byte count.
pub fn sha256_reader(reader: impl Read) -> std::io::Result<(String, u64)> {
    digest_reader(Algorithm::Sha256, reader, |_| Ok(()))
}

/// `sha256:<hex>` of a file's bytes.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(sha256_reader(std::fs::File::open(path)?)?.0)
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (d, n) = sha256_reader(&b"abc"[..]).unwrap();
        assert_eq!((d.as_str(), n), (sha256_bytes(b"abc").as_str(), 3));
        assert_eq!(
            digest_bytes(Algorithm::Sha512, b"abc"),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!(Algorithm::of("sha384:00"), None);
        let stopped = digest_reader(Algorithm::Sha256, &[0u8; 10][..], |_| {
            Err(std::io::Error::other("over budget"))
        });
        assert!(stopped.is_err());
    }
}

/// `sha256:<64 lowercase hex>`: the only digests a rebuild compares.
pub fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// `sha256:<64 lowercase hex>` (the only digests a rebuild compares), or a sentence saying what was expected.
pub fn parse_compared(text: &str) -> Result<&str, String> {
    let shown: String = text.chars().take(80).collect();
    if is_sha256(text) {
        Ok(text)
    } else {
        Err(format!(
            "{shown:?} is not a digest reprod compares: expected sha256:<64 lowercase hex digits>"
        ))
    }
}

#[cfg(test)]
mod compared_tests {
    use super::parse_compared;

    #[test]
    fn digests_are_sha256_in_lowercase_hex() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(parse_compared(&ok).is_ok());
        for bad in [
            "sha256:".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{}", "a".repeat(128)),
            format!("md5:{}", "a".repeat(32)),
            "latest".to_string(),
        ] {
            let e = parse_compared(&bad).unwrap_err();
            assert!(
                e.contains("expected sha256:<64 lowercase hex digits>"),
                "{e}"
            );
        }
    }
}
