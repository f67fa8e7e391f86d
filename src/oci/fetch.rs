//! Fetching an image from a registry into a local OCI layout, through skopeo (a maintained client that
//! speaks every registry's auth and media types), then proving the bytes are the ones asked for.
//!
//! Blocking: run it off the async runtime.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::read_image;

/// How a fetch may reach a registry and how much it may take.
#[derive(Debug, Clone)]
pub struct FetchLimits {
    /// Plain HTTP or unverified TLS: only for registries the configuration names (`images.insecure`).
    pub insecure: bool,
    /// The fetch is killed after this long.
    pub timeout: Duration,
    /// The fetch is killed once the layout it writes is larger than this.
    pub max_bytes: u64,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            insecure: false,
            timeout: Duration::from_secs(600),
            max_bytes: 16 << 30,
        }
    }
}

/// A repository name as the OCI distribution spec has it: `team/app`, `a.b/c-d_e`.
pub fn is_repository_name(name: &str) -> bool {
    name.split('/').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    })
}

/// This host's platform as images name it (`linux/amd64` on x86_64): what a build here makes, and the image
/// of an index a tag is resolved to.
pub fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => other,
    }
}

/// The registry part of an image name (`host[:port]`), `docker.io` when the name has none.
pub fn registry_of(name: &str) -> &str {
    let plain = name.strip_prefix("docker://").unwrap_or(name);
    match plain.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Whether a fetch the provenance chose may go to `ip`, a resolved address of the registry named `entry`
/// in the allow-list: public addresses always; loopback, link-local (169.254.169.254, the cloud metadata
/// service), private, unique-local, unspecified and multicast ones only when the entry names exactly that
/// address (or `localhost` for loopback) — a name that resolves there is refused (DNS rebinding).
pub fn address_allowed(entry: &str, ip: IpAddr) -> bool {
    let host = host_of(entry);
    let named =
        host.parse::<IpAddr>().ok() == Some(ip) || (host == "localhost" && ip.is_loopback());
    named || is_public(ip)
}

fn host_of(entry: &str) -> &str {
    let entry = entry.trim();
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match entry.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => entry,
    }
}

/// Globally routable unicast: what a fetch the provenance chose may reach without being named.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, carrier-grade NAT
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15, benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
        }
    }
}

/// Decides whether an image the provenance named may be fetched from the registry of `name`: it must be
/// in `allowed` (`images.originals_from`, and registries the operator named otherwise), and every address
/// it resolves to must pass [`address_allowed`]. Blocking (a DNS lookup). The error says what to
/// configure.
pub fn check_registry(name: &str, allowed: &[String]) -> Result<(), String> {
    check_registry_in(name, allowed, "images.originals_from", "fetched from")
}

/// [`check_registry`] for another allow-list: `setting` names it, `verb` what is done with the registry
/// (`pushed to`), for the error.
pub fn check_registry_in(
    name: &str,
    allowed: &[String],
    setting: &str,
    verb: &str,
) -> Result<(), String> {
    let registry = registry_of(name);
    let Some(entry) = allowed.iter().find(|e| e.as_str() == registry) else {
        return Err(format!(
            "registry {registry} is not in {setting}, so it is not {verb} (add it to allow it)"
        ));
    };
    let host = host_of(registry);
    let port = registry
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(443);
    // What the resolver said and what the name resolved to stay in this host's log: the message is
    // published in verdicts.
    let addrs: Vec<IpAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| {
            tracing::warn!(registry, error = %e, "an originals registry does not resolve");
            format!("registry {registry} does not resolve from this rebuilder")
        })?
        .map(|a| a.ip())
        .collect();
    check_addresses(registry, entry, &addrs, setting)
}

/// The address half of [`check_registry`]: every address must pass [`address_allowed`]. The refusal does
/// not say which address (the log does).
fn check_addresses(
    registry: &str,
    entry: &str,
    addrs: &[IpAddr],
    setting: &str,
) -> Result<(), String> {
    if let Some(ip) = addrs.iter().find(|ip| !address_allowed(entry, **ip)) {
        tracing::warn!(registry, %ip, "an originals registry resolves to a non-public address");
        return Err(format!(
            "registry {registry} resolves to a non-public address; list the address itself in {setting} to allow it"
        ));
    }
    Ok(())
}

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

/// Copies `reference` (all platforms, digests preserved) into a new OCI layout at `dest` within `limits`,
/// and checks that the requested digest is among the digests of the bytes fetched.
pub fn fetch(reference: &str, dest: &Path, limits: &FetchLimits) -> Result<(), FetchError> {
    let (name, digest) = parse_reference(reference)?;
    if let Some(parent) = dest.parent().filter(|p| !p.exists()) {
        return Err(FetchError::Copy {
            reference: reference.to_string(),
            detail: format!("{} does not exist", parent.display()),
        });
    }
    let mut cmd = Command::new("skopeo");
    cmd.arg("--command-timeout")
        .arg(format!("{}s", limits.timeout.as_secs().max(1)))
        .args([
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--retry-times",
            "2",
        ]);
    if limits.insecure {
        cmd.arg("--src-tls-verify=false");
    }
    cmd.arg(format!("docker://{name}"))
        .arg(format!("oci:{}", dest.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let copy = |detail: String| FetchError::Copy {
        reference: reference.to_string(),
        detail,
    };
    let mut child = cmd.spawn().map_err(|e| FetchError::NoSkopeo {
        reference: reference.to_string(),
        error: e.to_string(),
    })?;
    // skopeo has a timeout of its own, but no byte cap: watch what it writes, and kill it at either limit.
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(copy(e.to_string())),
        }
        let over_time = started.elapsed() > limits.timeout + Duration::from_secs(5);
        let over_size = dir_bytes(dest) > limits.max_bytes;
        if over_time || over_size {
            let _ = child.kill();
            let _ = child.wait();
            return Err(copy(if over_size {
                format!(
                    "stopped: the image is over the {}-byte limit",
                    limits.max_bytes
                )
            } else {
                format!("stopped: no answer within {}s", limits.timeout.as_secs())
            }));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr_bytes = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.by_ref().take(64 << 10).read_to_end(&mut stderr_bytes);
    }
    if !status.success() {
        return Err(FetchError::Copy {
            reference: reference.to_string(),
            detail: skopeo_failure(&stderr_bytes),
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

/// The largest manifest [`fetch_manifest`] reads.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Reads the manifest `NAME@sha256:…` names (its raw bytes, at most [`MAX_MANIFEST_BYTES`]) through
/// skopeo, and checks that they hash to the digest asked for.
pub fn fetch_manifest(reference: &str, limits: &FetchLimits) -> Result<Vec<u8>, FetchError> {
    let (name, digest) = parse_reference(reference)?;
    let Some(digest) = digest else {
        return Err(FetchError::BadReference(reference.to_string()));
    };
    let bytes = inspect_raw(reference, &name, limits)?;
    let found = super::sha256_bytes(&bytes);
    if found != digest {
        return Err(FetchError::DigestMismatch {
            reference: reference.to_string(),
            found: vec![found],
        });
    }
    Ok(bytes)
}

/// What a tag names now: the digest of its manifest, and for an index the digest of its image for
/// `platform` (`os/arch`), when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTag {
    pub digest: String,
    pub index: bool,
    pub platform_image: Option<String>,
}

/// Resolves `NAME[:TAG]` (`latest` when none) to the digest its registry answers with now.
pub fn resolve_tag(
    reference: &str,
    platform: &str,
    limits: &FetchLimits,
) -> Result<ResolvedTag, FetchError> {
    let (name, digest) = parse_reference(reference)?;
    if digest.is_some() {
        return Err(FetchError::BadReference(reference.to_string()));
    }
    let bytes = inspect_raw(reference, &name, limits)?;
    let digest = super::sha256_bytes(&bytes);
    let manifest: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| FetchError::Copy {
            reference: reference.to_string(),
            detail: format!("the registry's answer is not JSON: {e}"),
        })?;
    let index = manifest
        .get("manifests")
        .and_then(serde_json::Value::as_array);
    let (os, arch) = platform.split_once('/').unwrap_or((platform, ""));
    let platform_image = index.and_then(|entries| {
        entries.iter().find_map(|m| {
            let p = m.get("platform")?;
            let attestation = m
                .pointer("/annotations/vnd.docker.reference.type")
                .is_some();
            (!attestation && p.get("os")? == os && p.get("architecture")? == arch)
                .then(|| m.get("digest")?.as_str().map(str::to_string))?
        })
    });
    Ok(ResolvedTag {
        digest,
        index: index.is_some(),
        platform_image,
    })
}

/// The raw manifest `docker://NAME` answers with (at most [`MAX_MANIFEST_BYTES`]), through skopeo.
fn inspect_raw(reference: &str, name: &str, limits: &FetchLimits) -> Result<Vec<u8>, FetchError> {
    use std::io::Read;
    let copy = |detail: String| FetchError::Copy {
        reference: reference.to_string(),
        detail,
    };
    let mut cmd = Command::new("skopeo");
    cmd.arg("--command-timeout")
        .arg(format!("{}s", limits.timeout.as_secs().max(1)))
        .args(["inspect", "--raw", "--retry-times", "2"]);
    if limits.insecure {
        cmd.arg("--tls-verify=false");
    }
    let mut child = cmd
        .arg(format!("docker://{name}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FetchError::NoSkopeo {
            reference: reference.to_string(),
            error: e.to_string(),
        })?;
    let mut bytes = Vec::new();
    if let Some(out) = child.stdout.take() {
        out.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| copy(e.to_string()))?;
    }
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        let _ = child.kill();
        let _ = child.wait();
        return Err(copy(format!(
            "the manifest is over {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let mut stderr = Vec::new();
    if let Some(e) = child.stderr.take() {
        let _ = e.take(64 << 10).read_to_end(&mut stderr);
    }
    let status = child.wait().map_err(|e| copy(e.to_string()))?;
    if !status.success() {
        return Err(copy(skopeo_failure(&stderr)));
    }
    Ok(bytes)
}

/// The message of skopeo's last log line (`time=… level=fatal msg="…"`).
fn skopeo_failure(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let last = stderr.trim().lines().last().unwrap_or("skopeo failed");
    let detail = last
        .split_once("msg=\"")
        .map_or(last, |(_, m)| m.strip_suffix('"').unwrap_or(m));
    detail.replace("\\\"", "\"")
}

/// Bytes of the regular files under `dir` (what a fetch has written so far).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
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
        assert_eq!(registry_of("127.0.0.1:5000/x"), "127.0.0.1:5000");
        assert_eq!(registry_of("gcr.io/p/x"), "gcr.io");
        assert_eq!(registry_of("library/alpine"), "docker.io");
        assert_eq!(registry_of("alpine"), "docker.io");
    }

    #[test]
    fn a_refusal_by_address_does_not_publish_the_address() {
        let internal: IpAddr = "10.1.2.3".parse().unwrap();
        let e = check_addresses(
            "registry.example",
            "registry.example",
            &[internal],
            "images.originals_from",
        )
        .unwrap_err();
        assert!(
            e.contains("non-public address") && !e.contains("10.1.2.3"),
            "{e}"
        );
        let public: IpAddr = "8.8.8.8".parse().unwrap();
        assert!(check_addresses(
            "registry.example",
            "registry.example",
            &[public],
            "images.originals_from"
        )
        .is_ok());
    }

    #[test]
    fn only_named_registries_and_public_or_named_addresses_are_fetched_from() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for refused in [
            "127.0.0.1",
            "169.254.169.254",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(
                !address_allowed("registry.example:443", ip(refused)),
                "{refused}"
            );
            assert!(!is_public(ip(refused)), "{refused}");
        }
        assert!(
            address_allowed("registry.example", ip("203.0.114.7")) || !is_public(ip("203.0.114.7"))
        );
        assert!(address_allowed("registry.example", ip("8.8.8.8")));
        assert!(address_allowed("registry.example", ip("2606:4700::1111")));
        // Named exactly, a non-public address is allowed: the operator chose it.
        assert!(address_allowed("127.0.0.1:5000", ip("127.0.0.1")));
        assert!(address_allowed("localhost:5000", ip("127.0.0.1")));
        assert!(address_allowed("[::1]:5000", ip("::1")));
        assert!(!address_allowed("127.0.0.1:5000", ip("127.0.0.2")));
        // Not listed at all: not fetched, whatever the address.
        let e = check_registry("gcr.io/p/x", &[]).unwrap_err();
        assert!(e.contains("images.originals_from"), "{e}");
        assert!(check_registry("127.0.0.1:5000/x", &["127.0.0.1:5000".into()]).is_ok());
        let e = check_registry("localhost:5000/x", &["localhost:5001".into()]).unwrap_err();
        assert!(e.contains("not in images.originals_from"), "{e}");
    }
}
