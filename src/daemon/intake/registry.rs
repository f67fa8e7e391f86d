//! The registry watcher: for configured repositories, find image digests (by tag) and their attestations —
//! cosign's `sha256-<hex>.att` tag, OCI 1.1 referrers (the API, or the `sha256-<hex>` fallback tag), and
//! the BuildKit attestation manifests an image index carries beside its platform manifests — and
//! ingest each as a self-contained document (the manifest exactly as fetched, with its layers), so the
//! signature and policy decide as for any other intake. Every manifest and blob fetched by digest is
//! checked against it.
//!
//! A registry is not trusted to be well-formed. One image whose attestations cannot be fetched is logged
//! and looked at again after a backoff of its own (twice the poll interval, doubling up to an hour) while
//! the poll goes on with the others. What one image and one poll may cost is bounded:
//! [`MAX_ATTESTATIONS_PER_IMAGE`] attestation manifests per image, [`MAX_LAYERS_PER_ATTESTATION`] layers
//! each, [`MAX_BYTES_PER_POLL`] bytes fetched per poll (what is left waits for the next one), and every
//! response at most `max_document_bytes`. A redirect is followed only to the same scheme, host and port;
//! tags and digests from the registry are checked and percent-escaped before they go into a URL path.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{ingest, Intake};
use crate::config::WatchConfig;
use crate::daemon::shared::Shared;
use crate::provenance::container::{WithBlobs, WITH_BLOBS_MEDIA_TYPE};
use crate::text::inert_line;
use crate::verdict::is_sha256;

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const ATTESTATION_LAYERS: &[&str] = &[
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
];

/// Attestation manifests (the cosign `.att` one and referrers) read per image; more are logged and left.
pub const MAX_ATTESTATIONS_PER_IMAGE: usize = 16;
/// Attestation layers fetched per attestation manifest; more are logged and left.
pub const MAX_LAYERS_PER_ATTESTATION: usize = 8;
/// Bytes fetched from one registry in one poll (tag lists, manifests, blobs).
pub const MAX_BYTES_PER_POLL: u64 = 256 << 20;
/// Same-origin redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;
/// The longest an image that keeps failing waits between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What is escaped in one URL path segment: everything but letters, digits and `-._~:` (digests keep
/// their colon). Tags and digests are also checked against their grammar first.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Why a fetch or a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{url}: redirected to {location:?}, another host; not followed")]
    OffHost { url: String, location: String },
    #[error("{0}")]
    Invalid(String),
    #[error("this poll's budget of {MAX_BYTES_PER_POLL} bytes is spent; the rest waits for the next poll")]
    Budget,
    #[error("the store: {0}")]
    Store(String),
}

impl WatchError {
    /// Whether the whole poll stops (rather than only the image it happened for).
    fn stops_poll(&self) -> bool {
        matches!(self, WatchError::Budget | WatchError::Store(_))
    }
}

pub async fn run(shared: Arc<Shared>, target: WatchConfig, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(target.interval_secs);
    let mut backoff = Backoff::default();
    loop {
        let (s, t) = (shared.clone(), target.clone());
        let mut b = std::mem::take(&mut backoff);
        match tokio::task::spawn_blocking(move || (poll(&s, &t, &mut b), b)).await {
            Ok((outcome, b)) => {
                backoff = b;
                match outcome {
                    Ok(n) if n > 0 => {
                        tracing::info!(registry = %target.registry, ingested = n, "watch: attestations ingested")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(registry = %target.registry, error = %inert_line(&e.to_string()), "watch: poll stopped")
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "watch task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Tags and images that failed, and when each may be tried again.
#[derive(Debug, Default)]
struct Backoff {
    entries: HashMap<String, (u32, Instant)>,
}

impl Backoff {
    fn waiting(&self, key: &str) -> bool {
        self.entries
            .get(key)
            .is_some_and(|(_, next)| Instant::now() < *next)
    }

    fn failed(&mut self, key: &str, interval: Duration, error: &WatchError) {
        let entry = self
            .entries
            .entry(key.to_string())
            .or_insert((0, Instant::now()));
        entry.0 = entry.0.saturating_add(1);
        let delay = interval
            .saturating_mul(1 << entry.0.min(16))
            .min(MAX_BACKOFF);
        entry.1 = Instant::now() + delay;
        tracing::warn!(
            image = %inert_line(key),
            failures = entry.0,
            retry_in_secs = delay.as_secs(),
            error = %inert_line(&error.to_string()),
            "watch: cannot fetch this image's attestations; the others go on, it is retried later"
        );
    }

    fn succeeded(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets what has not failed for a while (an image deleted from the registry is never cleared).
    fn prune(&mut self) {
        self.entries
            .retain(|_, (_, next)| next.elapsed() < MAX_BACKOFF);
    }
}

/// A tag as the OCI distribution spec allows it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// One URL path segment, percent-escaped.
fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// A repository name (`team/app`) as URL path segments.
fn repo_path(repo: &str) -> String {
    repo.split('/').map(segment).collect::<Vec<_>>().join("/")
}

/// A response body and the digest the registry claims for it (`Docker-Content-Digest`).
type Fetched = (Vec<u8>, Option<String>);

struct Registry {
    agent: ureq::Agent,
    base: String,
    max_bytes: usize,
    /// Bytes this poll may still fetch.
    budget: Cell<u64>,
}

impl Registry {
    fn new(target: &WatchConfig, max_bytes: usize) -> Result<Registry, WatchError> {
        let scheme = if target.insecure { "http" } else { "https" };
        // Redirects are followed by hand, to the same origin only.
        let mut builder = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .redirects(0);
        if !target.insecure {
            let tls = native_tls::TlsConnector::new()
                .map_err(|e| WatchError::Invalid(format!("TLS: {e}")))?;
            builder = builder.tls_connector(Arc::new(tls));
        }
        Ok(Registry {
            agent: builder.build(),
            base: format!("{scheme}://{}", target.registry),
            max_bytes,
            budget: Cell::new(MAX_BYTES_PER_POLL),
        })
    }

    /// GET `path` (already escaped); `None` for 404.
    fn get(&self, path: &str, accept: &str) -> Result<Option<Fetched>, WatchError> {
        use std::io::Read;
        let mut url = format!("{}{path}", self.base);
        let fetch = |url: &str, message: String| WatchError::Fetch {
            url: url.to_string(),
            message,
        };
        for _ in 0..=MAX_REDIRECTS {
            let response = match self.agent.get(&url).set("Accept", accept).call() {
                Ok(r) => r,
                Err(ureq::Error::Status(404, _)) => return Ok(None),
                Err(e) => return Err(fetch(&url, e.to_string())),
            };
            if (300..400).contains(&response.status()) {
                let location = response.header("Location").unwrap_or_default();
                url = same_origin(&url, location).ok_or_else(|| WatchError::OffHost {
                    url: url.clone(),
                    location: location.to_string(),
                })?;
                continue;
            }
            let digest = response.header("Docker-Content-Digest").map(str::to_string);
            let left = self.budget.get();
            let cap = (self.max_bytes as u64).min(left);
            let mut bytes = Vec::new();
            response
                .into_reader()
                .take(cap + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| fetch(&url, e.to_string()))?;
            let got = bytes.len() as u64;
            if got > self.max_bytes as u64 {
                return Err(fetch(&url, format!("over {} bytes", self.max_bytes)));
            }
            if got > left {
                self.budget.set(0);
                return Err(WatchError::Budget);
            }
            self.budget.set(left - got);
            return Ok(Some((bytes, digest)));
        }
        Err(fetch(&url, format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// A manifest by tag or digest (checked against its grammar); by digest, the bytes must hash to it.
    fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, String)>, WatchError> {
        if !(is_tag(reference) || is_sha256(reference)) {
            return Err(WatchError::Invalid(format!(
                "{repo}: {:?} is neither a tag nor a sha256 digest",
                inert_line(reference)
            )));
        }
        let path = format!("/v2/{}/manifests/{}", repo_path(repo), segment(reference));
        let Some((bytes, header)) = self.get(&path, MANIFEST_TYPES)? else {
            return Ok(None);
        };
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if reference.starts_with("sha256:") && actual != reference {
            return Err(WatchError::Invalid(format!(
                "{repo}@{reference}: the registry served bytes with digest {actual}"
            )));
        }
        if let Some(h) = header.filter(|h| *h != actual) {
            return Err(WatchError::Invalid(format!(
                "{repo}:{reference}: Docker-Content-Digest {:?} but the bytes are {actual}",
                inert_line(&h)
            )));
        }
        Ok(Some((bytes, actual)))
    }

    fn blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>, WatchError> {
        if !is_sha256(digest) {
            return Err(WatchError::Invalid(format!(
                "{repo}: a layer digest {:?} that is not sha256:<hex>",
                inert_line(digest)
            )));
        }
        let path = format!("/v2/{}/blobs/{}", repo_path(repo), segment(digest));
        let (bytes, _) = self
            .get(&path, "*/*")?
            .ok_or_else(|| WatchError::Invalid(format!("{repo}: blob {digest} is missing")))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(WatchError::Invalid(format!(
                "{repo}: blob {digest} has digest {actual}"
            )));
        }
        Ok(bytes)
    }

    fn tags(&self, repo: &str) -> Result<Vec<String>, WatchError> {
        let path = format!("/v2/{}/tags/list", repo_path(repo));
        let Some((list, _)) = self.get(&path, "application/json")? else {
            return Ok(Vec::new());
        };
        Ok(serde_json::from_slice::<Value>(&list)
            .ok()
            .and_then(|v| serde_json::from_value(v["tags"].clone()).ok())
            .unwrap_or_default())
    }
}

/// `location` (absolute or relative) resolved against `url`, if it stays on the same scheme, host and
/// port: a registry must not send the watcher to another host.
fn same_origin(url: &str, location: &str) -> Option<String> {
    let from = url::Url::parse(url).ok()?;
    let to = from.join(location).ok()?;
    (to.origin() == from.origin()).then(|| to.to_string())
}

/// One pass over every repository; returns how many documents were ingested. An image that fails is
/// put in `backoff` and the poll goes on; only a spent budget or a failing store stop it.
fn poll(shared: &Shared, target: &WatchConfig, backoff: &mut Backoff) -> Result<usize, WatchError> {
    let reg = Registry::new(target, shared.config.max_document_bytes)?;
    let interval = Duration::from_secs(target.interval_secs);
    let store = |e: crate::store::StoreError| WatchError::Store(e.to_string());
    backoff.prune();
    let mut ingested = 0;
    for repo in &target.repositories {
        let tags = match reg.tags(repo) {
            Ok(t) => t,
            Err(e) if e.stops_poll() => return Err(e),
            Err(e) => {
                tracing::warn!(repository = %repo, error = %inert_line(&e.to_string()), "watch: cannot list the tags");
                continue;
            }
        };
        for tag in tags.iter().filter(|t| !t.starts_with("sha256-")) {
            if !is_tag(tag) {
                tracing::warn!(repository = %repo, tag = %inert_line(tag), "watch: not a valid tag; skipped");
                continue;
            }
            let by_tag = format!("{}/{repo}:{tag}", target.registry);
            if backoff.waiting(&by_tag) {
                continue;
            }
            let (tagged, digest) = match reg.manifest(repo, tag) {
                Ok(Some(found)) => {
                    backoff.succeeded(&by_tag);
                    found
                }
                Ok(None) => continue,
                Err(e) if e.stops_poll() => return Err(e),
                Err(e) => {
                    backoff.failed(&by_tag, interval, &e);
                    continue;
                }
            };
            let image = format!("{}/{repo}@{digest}", target.registry);
            if backoff.waiting(&image) || shared.store.watched(&image).map_err(store)? {
                continue;
            }
            let docs = match attestations(&reg, repo, &digest, &tagged) {
                Ok(docs) => {
                    backoff.succeeded(&image);
                    docs
                }
                Err(e) if e.stops_poll() => return Err(e),
                Err(e) => {
                    backoff.failed(&image, interval, &e);
                    continue;
                }
            };
            if docs.is_empty() {
                continue; // looked at again next time: attestations are often pushed after the image
            }
            for doc in docs {
                match ingest(shared, &doc) {
                    Ok(Intake::Queued { job, .. }) => {
                        tracing::info!(%image, %job, "watch: queued");
                        ingested += 1;
                    }
                    Ok(Intake::Rejected { reason, detail }) => {
                        tracing::warn!(%image, reason = %inert_line(&reason), detail = %inert_line(&detail), "watch: rejected")
                    }
                    Err(e) => {
                        tracing::warn!(%image, error = %inert_line(&e.to_string()), "watch: unreadable attestation")
                    }
                }
            }
            shared.store.mark_watched(&image).map_err(store)?;
        }
    }
    Ok(ingested)
}

/// The attestation documents of one image: its cosign `.att` manifest, its in-toto referrers, and when
/// the image is an index (`tagged`, the bytes its tag names), the BuildKit attestation manifests in it.
fn attestations(
    reg: &Registry,
    repo: &str,
    digest: &str,
    tagged: &[u8],
) -> Result<Vec<Vec<u8>>, WatchError> {
    let invalid =
        |what: &str, e: serde_json::Error| WatchError::Invalid(format!("{repo}: {what}: {e}"));
    let hex = digest.trim_start_matches("sha256:");
    let mut manifests = Vec::new();
    if let Some((bytes, _)) = reg.manifest(repo, &format!("sha256-{hex}.att"))? {
        manifests.push(bytes);
    }
    // OCI 1.1 referrers: the API where the registry has it, else the fallback tag of the referrers scheme.
    let path = format!("/v2/{}/referrers/{}", repo_path(repo), segment(digest));
    let index = match reg.get(&path, "application/vnd.oci.image.index.v1+json")? {
        Some((bytes, _)) => Some(bytes),
        None => reg
            .manifest(repo, &format!("sha256-{hex}"))?
            .map(|(b, _)| b),
    };
    if let Some(index) = index {
        let index: Value =
            serde_json::from_slice(&index).map_err(|e| invalid("referrers index", e))?;
        for m in index["manifests"].as_array().into_iter().flatten() {
            let kind = m["artifactType"].as_str().unwrap_or_default();
            let Some(d) = m["digest"].as_str() else {
                continue;
            };
            if !(kind.contains("in-toto") || kind.contains("dsse")) {
                continue;
            }
            if manifests.len() >= MAX_ATTESTATIONS_PER_IMAGE {
                tracing::warn!(repository = %repo, %digest, limit = MAX_ATTESTATIONS_PER_IMAGE, "watch: more attestations than are read per image; the rest are left");
                break;
            }
            if let Some((bytes, _)) = reg.manifest(repo, d)? {
                manifests.push(bytes);
            }
        }
    }
    // BuildKit: an attestation manifest per platform manifest, inside the index itself.
    if let Ok(index) = serde_json::from_slice::<Value>(tagged) {
        for found in crate::provenance::attached::attestation_manifests(&index) {
            if manifests.len() >= MAX_ATTESTATIONS_PER_IMAGE {
                tracing::warn!(repository = %repo, %digest, limit = MAX_ATTESTATIONS_PER_IMAGE, "watch: more attestations than are read per image; the rest are left");
                break;
            }
            if let Some((bytes, _)) = reg.manifest(repo, &found.manifest)? {
                manifests.push(bytes);
            }
        }
    }
    let mut docs = Vec::new();
    for manifest in manifests {
        let value: Value = serde_json::from_slice(&manifest).map_err(|e| invalid("manifest", e))?;
        let mut blobs = std::collections::BTreeMap::new();
        let layers = value["layers"].as_array().into_iter().flatten();
        for layer in layers {
            let (Some(mt), Some(d)) = (layer["mediaType"].as_str(), layer["digest"].as_str())
            else {
                continue;
            };
            if !ATTESTATION_LAYERS.contains(&mt) {
                continue;
            }
            // An SBOM beside BuildKit's provenance is not fetched: it is not read either.
            let predicate_type = layer["annotations"]["in-toto.io/predicate-type"].as_str();
            if predicate_type.is_some_and(|t| crate::provenance::slsa::not_provenance(t).is_some())
            {
                continue;
            }
            if blobs.len() >= MAX_LAYERS_PER_ATTESTATION {
                tracing::warn!(repository = %repo, %digest, limit = MAX_LAYERS_PER_ATTESTATION, "watch: more attestation layers than are read per manifest; the rest are left");
                break;
            }
            use base64::Engine;
            let bytes = reg.blob(repo, d)?;
            blobs.insert(
                d.to_string(),
                base64::engine::general_purpose::STANDARD.encode(bytes),
            );
        }
        let doc = WithBlobs {
            media_type: WITH_BLOBS_MEDIA_TYPE.into(),
            document: String::from_utf8(manifest).map_err(|_| {
                WatchError::Invalid(format!("{repo}: a manifest that is not UTF-8"))
            })?,
            blobs,
        };
        docs.push(serde_json::to_vec(&doc).map_err(|e| invalid("encoding", e))?);
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn tags_and_digests_are_checked_and_escaped() {
        for ok in ["v1", "latest", "1.2.3-rc_1", "_x", &"a".repeat(128)] {
            assert!(is_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "..",
            "a/b",
            "a?b",
            "a b",
            &"a".repeat(129),
            "ä",
        ] {
            assert!(!is_tag(bad), "{bad}");
        }
        assert_eq!(segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(segment("sha256:ab"), "sha256:ab");
        assert_eq!(repo_path("team/a b"), "team/a%20b");
    }

    #[test]
    fn redirects_stay_on_the_same_origin() {
        let base = "http://127.0.0.1:5000/v2/a/blobs/sha256:x";
        assert_eq!(
            same_origin(base, "/other/place").as_deref(),
            Some("http://127.0.0.1:5000/other/place")
        );
        assert_eq!(
            same_origin(base, "http://127.0.0.1:5000/x").as_deref(),
            Some("http://127.0.0.1:5000/x")
        );
        for elsewhere in [
            "http://127.0.0.1:5001/x",
            "https://127.0.0.1:5000/x",
            "http://localhost:5000/x",
            "//storage.example/x",
            "http://storage.example/x",
        ] {
            assert_eq!(same_origin(base, elsewhere), None, "{elsewhere}");
        }
    }

    /// A real HTTP exchange on 127.0.0.1: a same-origin redirect is followed, one to another port (another
    /// origin) is not, and nothing connects to it.
    #[test]
    fn a_redirect_to_another_host_is_not_followed() {
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let other_port = other.local_addr().unwrap().port();
        other.set_nonblocking(true).unwrap();
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let serving = std::thread::spawn(move || {
            for stream in server.incoming().take(3) {
                let mut stream = stream.unwrap();
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                reader.read_line(&mut line).unwrap();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let answer = if line.contains("/same") {
                    "HTTP/1.1 302 Found\r\nConnection: close\r\nLocation: /landed\r\nContent-Length: 0\r\n\r\n"
                        .to_string()
                } else if line.contains("/landed") {
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
                        .to_string()
                } else {
                    format!("HTTP/1.1 307 Temporary Redirect\r\nConnection: close\r\nLocation: http://127.0.0.1:{other_port}/stolen\r\nContent-Length: 0\r\n\r\n")
                };
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        let target = WatchConfig {
            registry: format!("127.0.0.1:{port}"),
            repositories: vec!["a".into()],
            insecure: true,
            interval_secs: 1,
        };
        let reg = Registry::new(&target, 1 << 20).unwrap();
        let (body, _) = reg.get("/same", "*/*").unwrap().unwrap();
        assert_eq!(body, b"ok");
        let err = reg.get("/elsewhere", "*/*").unwrap_err();
        assert!(matches!(err, WatchError::OffHost { .. }), "{err}");
        serving.join().unwrap();
        assert!(
            other.accept().is_err(),
            "the watcher connected to the other host"
        );
    }
}
