//! Image references pinned by digest: the only kind the sandbox runs.

use std::fmt;

/// An image reference that names its content by sha256 digest (`repo[:tag]@sha256:<64 hex>`).
///
/// The tag, if any, is dropped: with a digest present it only invites confusion about what runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PinnedImage {
    repository: String,
    digest: String,
}

/// Why a reference is not acceptable as a pinned image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image {0:?} is not pinned by digest: a step image must be `name@sha256:<64 hex digits>`, never a tag")]
    NotPinned(String),
    #[error("image {0:?} has a malformed digest: expected `sha256:` followed by 64 lowercase hex digits")]
    BadDigest(String),
    #[error("image {0:?} has an empty or malformed repository name")]
    BadRepository(String),
}

impl PinnedImage {
    /// Parses `repo[:tag]@sha256:<hex>`.
    pub fn parse(reference: &str) -> Result<Self, ImageRefError> {
        let reference = reference.trim();
        let Some((name, digest)) = reference.rsplit_once('@') else {
            return Err(ImageRefError::NotPinned(reference.to_string()));
        };
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| ImageRefError::BadDigest(reference.to_string()))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ImageRefError::BadDigest(reference.to_string()));
        }
        // Drop a tag: the last ':' after the last '/' separates it (a ':' before that is a registry port).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let repository = match name[last_slash..].find(':') {
            Some(i) => &name[..last_slash + i],
            None => name,
        };
        let valid = !repository.is_empty()
            && !repository.starts_with('/')
            && !repository.ends_with('/')
            && repository
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b));
        if !valid {
            return Err(ImageRefError::BadRepository(reference.to_string()));
        }
        Ok(PinnedImage {
            repository: repository.to_string(),
            digest: digest.to_string(),
        })
    }

    /// The repository part, e.g. `127.0.0.1:5000/reprod/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The digest, `sha256:<hex>`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The same digest under another repository (for registry mirrors).
    pub fn with_repository(&self, repository: &str) -> Result<Self, ImageRefError> {
        PinnedImage::parse(&format!("{repository}@{}", self.digest))
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.repository, self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:b5d6fe0712636ceb7430189de28819e195e8966372edfc2d9409d79402a0dc16";

    #[test]
    fn accepts_pinned_and_drops_tag() {
        let p = PinnedImage::parse(&format!("docker.io/library/busybox:1.36@{D}")).unwrap();
        assert_eq!(p.repository(), "docker.io/library/busybox");
        assert_eq!(p.to_string(), format!("docker.io/library/busybox@{D}"));
        let p = PinnedImage::parse(&format!("127.0.0.1:5000/x/y@{D}")).unwrap();
        assert_eq!(p.repository(), "127.0.0.1:5000/x/y");
    }

    #[test]
    fn refuses_tags_and_bad_digests() {
        assert!(matches!(
            PinnedImage::parse("busybox:latest"),
            Err(ImageRefError::NotPinned(_))
        ));
        assert!(matches!(
            PinnedImage::parse("busybox@sha256:abc"),
            Err(ImageRefError::BadDigest(_))
        ));
        assert!(matches!(
            PinnedImage::parse(&format!(
                "busybox@{}",
                D.to_uppercase().replace("SHA256", "sha256")
            )),
            Err(ImageRefError::BadDigest(_))
        ));
        assert!(matches!(
            PinnedImage::parse(&format!("@{D}")),
            Err(ImageRefError::BadRepository(_))
        ));
        assert!(matches!(
            PinnedImage::parse(&format!("a b@{D}")),
            Err(ImageRefError::BadRepository(_))
        ));
    }
}
