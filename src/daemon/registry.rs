//! The registry watcher: for configured repositories, find image digests (by tag) and their attestations —
//! cosign's `sha256-<hex>.att` tag and OCI 1.1 referrers (the API, or the `sha256-<hex>` fallback tag) — and
//! ingest each as a self-contained document (the manifest exactly as fetched, with its layers), so the
//! signature and policy decide as for any other intake. Every manifest and blob fetched by digest is
//! checked against it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::ingest::{ingest, Intake};
use super::Shared;
use crate::config::WatchConfig;
use crate::provenance::container::{WithBlobs, WITH_BLOBS_MEDIA_TYPE};

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const ATTESTATION_LAYERS: &[&str] = &[
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
];

pub async fn run(shared: Arc<Shared>, target: WatchConfig, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(target.interval_secs);
    loop {
        let (s, t) = (shared.clone(), target.clone());
        match tokio::task::spawn_blocking(move || poll(&s, &t)).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(registry = %target.registry, ingested = n, "watch: attestations ingested")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(registry = %target.registry, error = %e, "watch: poll failed")
            }
            Err(e) => tracing::error!(error = %e, "watch task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// A response body and the digest the registry claims for it (`Docker-Content-Digest`).
type Fetched = (Vec<u8>, Option<String>);

struct Registry {
    agent: ureq::Agent,
    base: String,
    max_bytes: usize,
}

impl Registry {
    fn get(&self, path: &str, accept: &str) -> Result<Option<Fetched>, String> {
        use std::io::Read;
        let url = format!("{}{path}", self.base);
        match self.agent.get(&url).set("Accept", accept).call() {
            Ok(r) => {
                let digest = r.header("Docker-Content-Digest").map(str::to_string);
                let mut bytes = Vec::new();
                r.into_reader()
                    .take(self.max_bytes as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("{url}: {e}"))?;
                if bytes.len() > self.max_bytes {
                    return Err(format!("{url}: over {} bytes", self.max_bytes));
                }
                Ok(Some((bytes, digest)))
            }
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    /// A manifest by tag or digest; by digest, the bytes must hash to it.
    fn manifest(&self, repo: &str, reference: &str) -> Result<Option<(Vec<u8>, String)>, String> {
        let Some((bytes, header)) =
            self.get(&format!("/v2/{repo}/manifests/{reference}"), MANIFEST_TYPES)?
        else {
            return Ok(None);
        };
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if reference.starts_with("sha256:") && actual != reference {
            return Err(format!(
                "{repo}@{reference}: the registry served bytes with digest {actual}"
            ));
        }
        if let Some(h) = header.filter(|h| *h != actual) {
            return Err(format!(
                "{repo}:{reference}: Docker-Content-Digest {h} but the bytes are {actual}"
            ));
        }
        Ok(Some((bytes, actual)))
    }

    fn blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>, String> {
        let (bytes, _) = self
            .get(&format!("/v2/{repo}/blobs/{digest}"), "*/*")?
            .ok_or_else(|| format!("{repo}: blob {digest} is missing"))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(format!("{repo}: blob {digest} has digest {actual}"));
        }
        Ok(bytes)
    }
}

/// One pass over every repository; returns how many documents were ingested.
fn poll(shared: &Shared, target: &WatchConfig) -> Result<usize, String> {
    let scheme = if target.insecure { "http" } else { "https" };
    let mut builder = ureq::AgentBuilder::new().timeout(Duration::from_secs(60));
    if !target.insecure {
        let tls = native_tls::TlsConnector::new().map_err(|e| format!("TLS: {e}"))?;
        builder = builder.tls_connector(Arc::new(tls));
    }
    let reg = Registry {
        agent: builder.build(),
        base: format!("{scheme}://{}", target.registry),
        max_bytes: shared.config.max_document_bytes,
    };
    let mut ingested = 0;
    for repo in &target.repositories {
        let Some((list, _)) = reg.get(&format!("/v2/{repo}/tags/list"), "application/json")? else {
            continue;
        };
        let tags: Vec<String> = serde_json::from_slice::<Value>(&list)
            .ok()
            .and_then(|v| serde_json::from_value(v["tags"].clone()).ok())
            .unwrap_or_default();
        for tag in tags.iter().filter(|t| !t.starts_with("sha256-")) {
            let Some((_, digest)) = reg.manifest(repo, tag)? else {
                continue;
            };
            let image = format!("{}/{repo}@{digest}", target.registry);
            if shared.store.watched(&image).map_err(|e| e.to_string())? {
                continue;
            }
            let docs = attestations(&reg, repo, &digest)?;
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
                        tracing::warn!(%image, %reason, %detail, "watch: rejected")
                    }
                    Err(e) => tracing::warn!(%image, error = %e, "watch: unreadable attestation"),
                }
            }
            shared
                .store
                .mark_watched(&image)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(ingested)
}

/// The attestation documents of one image: its cosign `.att` manifest and its in-toto referrers.
fn attestations(reg: &Registry, repo: &str, digest: &str) -> Result<Vec<Vec<u8>>, String> {
    let hex = digest.trim_start_matches("sha256:");
    let mut manifests = Vec::new();
    if let Some((bytes, _)) = reg.manifest(repo, &format!("sha256-{hex}.att"))? {
        manifests.push(bytes);
    }
    // OCI 1.1 referrers: the API where the registry has it, else the fallback tag of the referrers scheme.
    let index = match reg.get(
        &format!("/v2/{repo}/referrers/{digest}"),
        "application/vnd.oci.image.index.v1+json",
    )? {
        Some((bytes, _)) => Some(bytes),
        None => reg
            .manifest(repo, &format!("sha256-{hex}"))?
            .map(|(b, _)| b),
    };
    if let Some(index) = index {
        let index: Value =
            serde_json::from_slice(&index).map_err(|e| format!("{repo}: referrers index: {e}"))?;
        for m in index["manifests"].as_array().into_iter().flatten() {
            let kind = m["artifactType"].as_str().unwrap_or_default();
            let Some(d) = m["digest"].as_str() else {
                continue;
            };
            if kind.contains("in-toto") || kind.contains("dsse") {
                if let Some((bytes, _)) = reg.manifest(repo, d)? {
                    manifests.push(bytes);
                }
            }
        }
    }
    let mut docs = Vec::new();
    for manifest in manifests {
        let value: Value =
            serde_json::from_slice(&manifest).map_err(|e| format!("{repo}: manifest: {e}"))?;
        let mut blobs = std::collections::BTreeMap::new();
        for layer in value["layers"].as_array().into_iter().flatten() {
            let (Some(mt), Some(d)) = (layer["mediaType"].as_str(), layer["digest"].as_str())
            else {
                continue;
            };
            if ATTESTATION_LAYERS.contains(&mt) {
                use base64::Engine;
                let bytes = reg.blob(repo, d)?;
                blobs.insert(
                    d.to_string(),
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                );
            }
        }
        let doc = WithBlobs {
            media_type: WITH_BLOBS_MEDIA_TYPE.into(),
            document: String::from_utf8(manifest)
                .map_err(|_| format!("{repo}: a manifest that is not UTF-8"))?,
            blobs,
        };
        docs.push(serde_json::to_vec(&doc).map_err(|e| e.to_string())?);
    }
    Ok(docs)
}
