//! Fetching an image from a registry into a local OCI layout, through skopeo (a maintained client that
//! speaks every registry's auth and media types), then proving the bytes are the ones asked for.
//!
//! Blocking: run it off the async runtime.

use std::path::Path;
use std::process::Command;

use super::read_image;

/// Why an image could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not a registry reference: expected `docker://NAME@sha256:<hex>` or `NAME@sha256:<hex>`")]
    BadReference(String),
    #[error("skopeo is needed to fetch {reference} but could not be run ({error}); install it (scripts/setup.sh does)")]
    NoSkopeo { reference: String, error: String },
    #[error("fetching {reference}: {detail}")]
    Copy { reference: String, detail: String },
    #[error("fetched {reference}, but its bytes hash to {found:?}, not the requested digest")]
    DigestMismatch {
        reference: String,
        found: Vec<String>,
    },
}

/// A registry reference: `[docker://]name[:tag][@sha256:<hex>]`. Returns (name with tag or digest, digest).
pub fn parse_reference(reference: &str) -> Result<(String, Option<String>), FetchError> {
    let bad = || FetchError::BadReference(reference.to_string());
    let plain = reference.strip_prefix("docker://").unwrap_or(reference);
    if plain.is_empty() || plain.contains(char::is_whitespace) || plain.starts_with('-') {
        return Err(bad());
    }
    let digest = match plain.rsplit_once('@') {
        Some((_, d)) => {
            let hex = d.strip_prefix("sha256:").ok_or_else(bad)?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            Some(d.to_string())
        }
        None => None,
    };
    Ok((plain.to_string(), digest))
}

/// True when the registry part of `name` is on the loopback (where, like Docker, plain HTTP is allowed).
fn loopback_registry(name: &str) -> bool {
    let host = name.split('/').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    name.contains('/') && (host == "localhost" || host.starts_with("127."))
}

/// Copies `reference` (all platforms, digests preserved) into a new OCI layout at `dest`, and checks that
/// the requested digest is among the digests of the bytes fetched.
pub fn fetch(reference: &str, dest: &Path) -> Result<(), FetchError> {
    let (name, digest) = parse_reference(reference)?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| FetchError::Copy {
            reference: reference.to_string(),
            detail: format!("creating {}: {e}", parent.display()),
        })?;
    }
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        "--retry-times",
        "2",
    ]);
    if loopback_registry(&name) {
        cmd.arg("--src-tls-verify=false");
    }
    cmd.arg(format!("docker://{name}"))
        .arg(format!("oci:{}", dest.display()));
    let out = cmd.output().map_err(|e| FetchError::NoSkopeo {
        reference: reference.to_string(),
        error: e.to_string(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.trim().lines().last().unwrap_or("skopeo failed");
        // skopeo logs `time=… level=fatal msg="…"`: keep the message.
        let detail = last
            .split_once("msg=\"")
            .map_or(last, |(_, m)| m.strip_suffix('"').unwrap_or(m));
        return Err(FetchError::Copy {
            reference: reference.to_string(),
            detail: detail.replace("\\\"", "\""),
        });
    }
    if let Some(digest) = digest {
        let image = read_image(dest, &dest.display().to_string())
            .map_err(|detail| FetchError::Copy {
                reference: reference.to_string(),
                detail,
            })?
            .ok_or_else(|| FetchError::Copy {
                reference: reference.to_string(),
                detail: "skopeo wrote no OCI layout".into(),
            })?;
        if !image.digests.contains(&digest) || !image.problems.is_empty() {
            return Err(FetchError::DigestMismatch {
                reference: reference.to_string(),
                found: image.digests.into_iter().collect(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_reference(&format!("docker://127.0.0.1:5000/x/y@{d}")).unwrap(),
            (format!("127.0.0.1:5000/x/y@{d}"), Some(d.clone()))
        );
        assert_eq!(parse_reference("reg.example/x:1").unwrap().1, None);
        assert!(parse_reference("x@sha256:abc").is_err());
        assert!(parse_reference("--help").is_err());
        assert!(parse_reference("").is_err());
        assert!(loopback_registry("127.0.0.1:5000/x"));
        assert!(loopback_registry("localhost/x"));
        assert!(!loopback_registry("gcr.io/x"));
        assert!(!loopback_registry("localhost"));
    }
}
