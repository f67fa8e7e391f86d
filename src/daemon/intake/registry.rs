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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

pub use super::registry_client::{is_tag, WatchError, MAX_BYTES_PER_POLL, MAX_REDIRECTS};
use super::registry_client::{repo_path, segment, Registry};
use super::{ingest, Intake};
use crate::config::WatchConfig;
use crate::daemon::shared::Shared;
use crate::provenance::container::{WithBlobs, WITH_BLOBS_MEDIA_TYPE};
use crate::text::inert_line;

const ATTESTATION_LAYERS: &[&str] = &[
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
];

/// Attestation manifests (the cosign `.att` one and referrers) read per image; more are logged and left.
pub const MAX_ATTESTATIONS_PER_IMAGE: usize = 16;
/// Attestation layers fetched per attestation manifest; more are logged and left.
pub const MAX_LAYERS_PER_ATTESTATION: usize = 8;
/// The longest an image that keeps failing waits between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

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

/// The attestation documents of `repo@digest` on `registry`, exactly as the watcher would queue them
/// (each a self-contained document: the manifest as fetched, with its layers), for `reprod rebuild
/// docker://…`. Blocking.
pub fn documents_of(
    registry: &str,
    insecure: bool,
    repo: &str,
    digest: &str,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, WatchError> {
    let target = WatchConfig {
        registry: registry.to_string(),
        repositories: vec![repo.to_string()],
        insecure,
        interval_secs: 0,
    };
    let reg = Registry::new(&target, max_bytes)?;
    let (tagged, _) = reg.manifest(repo, digest)?.ok_or_else(|| {
        WatchError::Invalid(format!("{registry}/{repo}@{digest}: no such manifest"))
    })?;
    attestations(&reg, repo, digest, &tagged)
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
