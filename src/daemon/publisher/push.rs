//! One attempt to publish one verdict: its statements verified with the server's key, grouped by the
//! image they are about, and pushed to each image's destination ([`crate::publish`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::publish::layout::{self, Statement, Subject};
use crate::publish::{Destination, PublishConfig, Registries, RegistryError};
use crate::trust::PublicKey;
use crate::wire::{Pushed, Skipped};

/// Largest manifest read back from a registry (a `.att` image or a referrers index grows by one entry per
/// statement).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Pushes verdicts with one client and the configuration read at start.
pub struct Publisher {
    config: PublishConfig,
    registries: Registries,
    /// The server's own key: what the statements must verify with before they are read.
    key: PublicKey,
}

/// One signed statement of a verdict, as stored.
pub struct Signed {
    pub kind: String,
    pub envelope: Vec<u8>,
}

/// What one attempt did: what was pushed, which images have no destination, and the first error (the
/// attempt stopped there; pushing again is harmless, as every push is of the same bytes).
#[derive(Debug, Default)]
pub struct Attempt {
    pub pushed: Vec<Pushed>,
    pub skipped: Vec<Skipped>,
    pub error: Option<String>,
}

impl Publisher {
    pub fn new(config: &PublishConfig, key: PublicKey) -> Result<Self, RegistryError> {
        Ok(Publisher {
            registries: Registries::new(&config.insecure, &config.docker_config)?,
            config: config.clone(),
            key,
        })
    }

    pub fn config(&self) -> &PublishConfig {
        &self.config
    }

    /// Publishes the statements of the verdict of `job`, recorded at `recorded_at`, about the images the
    /// document recorded (`recorded`: name, digest), each image within `publish.timeout_secs`. A statement
    /// about another digest (the rebuild provenance of a rebuild that differs names what reprod built) has no
    /// published image to be attached to, and is skipped saying so. Every image is tried; the errors are
    /// joined.
    pub async fn publish(
        &self,
        job: &str,
        recorded_at: &str,
        signed: &[Signed],
        recorded: &[(String, String)],
    ) -> Attempt {
        let mut attempt = Attempt::default();
        let mut errors = Vec::new();
        let by_image = match self.by_image(signed) {
            Ok(m) => m,
            Err(e) => {
                attempt.error = Some(e);
                return attempt;
            }
        };
        let timeout = Duration::from_secs(self.config.timeout_secs);
        for ((name, digest), statements) in &by_image {
            let image = format!("{name}@{digest}");
            if !recorded.iter().any(|(n, d)| n == name && d == digest) {
                attempt.skipped.push(Skipped {
                    image,
                    reason: "a digest reprod built that the document did not record: no published image to attach it to".into(),
                });
                continue;
            }
            let repository = match self.config.destination(name) {
                Destination::Repository(r) => r,
                Destination::NotPublished(reason) => {
                    attempt.skipped.push(Skipped { image, reason });
                    continue;
                }
            };
            let statements: Vec<Statement<'_>> = statements
                .iter()
                .map(|(kind, predicate_type, envelope)| Statement {
                    kind,
                    predicate_type,
                    envelope,
                    job,
                    recorded_at,
                })
                .collect();
            let pushed = tokio::time::timeout(
                timeout,
                self.push_image(name, digest, &repository, &statements),
            )
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within publish.timeout_secs ({}s) from {repository}",
                    timeout.as_secs()
                ))
            });
            match pushed {
                Ok(referrers) => attempt.pushed.push(Pushed {
                    image,
                    cosign_tag: layout::cosign_tag(digest),
                    repository,
                    referrers,
                }),
                Err(e) => errors.push(format!("{image}: {e}")),
            }
        }
        if !errors.is_empty() {
            attempt.error = Some(errors.join("; "));
        }
        attempt
    }

    /// The statements per (image name, sha256 digest) they are about, each verified with the server's key
    /// first. Subjects without a name or a sha256 digest are not images anyone can look up.
    #[allow(clippy::type_complexity)]
    fn by_image<'s>(
        &self,
        signed: &'s [Signed],
    ) -> Result<BTreeMap<(String, String), Vec<(&'s str, String, &'s [u8])>>, String> {
        let mut out: BTreeMap<(String, String), Vec<(&str, String, &[u8])>> = BTreeMap::new();
        for s in signed {
            let vouched =
                crate::attest::verify_attestation(&s.envelope, std::slice::from_ref(&self.key))
                    .map_err(|e| {
                        format!(
                            "the stored {} statement does not verify with the server's key: {e}",
                            s.kind
                        )
                    })?;
            for subject in &vouched.subjects {
                let Some((name, digest)) = subject.rsplit_once('@') else {
                    continue;
                };
                if !digest.starts_with("sha256:") || name.is_empty() {
                    continue;
                }
                out.entry((name.to_string(), digest.to_string()))
                    .or_default()
                    .push((&s.kind, vouched.predicate_type.clone(), &s.envelope));
            }
        }
        Ok(out)
    }

    /// Pushes the statements about `name@digest` to `repository`: one referrer each (listed in the
    /// referrers tag) and the cosign attestation image. Returns the referrers' digests.
    async fn push_image(
        &self,
        name: &str,
        digest: &str,
        repository: &str,
        statements: &[Statement<'_>],
    ) -> Result<Vec<String>, String> {
        let allowed = self.config.allowed_registries();
        check_address(repository, &allowed).await?;
        self.registries.login(repository).await?;
        let subject = self.subject(name, digest, repository, &allowed).await?;
        let mut pushed = Vec::new();
        for s in statements {
            let (blobs, manifest) = layout::referrer(&subject, s);
            self.push_blobs(repository, &blobs).await?;
            self.registries
                .push_manifest(repository, &manifest, None)
                .await?;
            pushed.push((manifest, s));
        }
        // The fallback index is read and written once for all of them.
        let tag = layout::referrers_tag(digest);
        let existing = self.read_json(repository, &tag).await?;
        if let Some(index) = layout::with_referrers(existing.as_ref(), &pushed)? {
            let index = layout::Blob::new(layout::OCI_INDEX, index);
            self.registries
                .push_manifest(repository, &index, Some(&tag))
                .await?;
        }
        let referrers = pushed.into_iter().map(|(m, _)| m.digest).collect();
        let tag = layout::cosign_tag(digest);
        let existing = self.read_json(repository, &tag).await?;
        if let Some((blobs, manifest)) = layout::with_cosign_layers(existing.as_ref(), statements)?
        {
            self.push_blobs(repository, &blobs).await?;
            self.registries
                .push_manifest(repository, &manifest, Some(&tag))
                .await?;
        }
        Ok(referrers)
    }

    async fn push_blobs(&self, repository: &str, blobs: &[layout::Blob]) -> Result<(), String> {
        for b in blobs {
            self.registries.push_blob(repository, b).await?;
        }
        Ok(())
    }

    /// The image's manifest descriptor, which a referrer names as its subject: from the repository the
    /// statements go to, else from the image's own repository when its registry may be read.
    async fn subject(
        &self,
        name: &str,
        digest: &str,
        repository: &str,
        allowed: &[String],
    ) -> Result<Subject, String> {
        let own = name.strip_prefix("docker://").unwrap_or(name);
        let mut places = vec![repository.to_string()];
        // The name is the document's: only a well-formed repository is read, and only where pushes may go.
        let well_formed = crate::publish::config::is_registry_repository(own);
        if own != repository && well_formed && check_address(own, allowed).await.is_ok() {
            places.push(own.to_string());
        }
        for place in &places {
            let Some(m) = self.registries.manifest(place, digest).await? else {
                continue;
            };
            if crate::oci::sha256_bytes(&m.bytes) != digest || m.bytes.len() > MAX_MANIFEST_BYTES {
                return Err(format!(
                    "{place} served other bytes for {digest} (digest {})",
                    m.digest
                ));
            }
            let v = crate::json::parse(&m.bytes, MAX_MANIFEST_BYTES)
                .map_err(|e| format!("the manifest of {place}@{digest} is not JSON: {e}"))?;
            let media_type = layout::media_type_of(&v, None).ok_or_else(|| {
                format!("the manifest of {place}@{digest} has no media type and no manifest shape")
            })?;
            return Ok(Subject {
                media_type,
                digest: digest.to_string(),
                size: m.bytes.len() as u64,
            });
        }
        Err(format!(
            "{digest} is not in {} (a referrer names its image's size and media type; it is tried again)",
            places.join(" or ")
        ))
    }

    /// A manifest under `tag` as JSON, or `None` when there is none.
    async fn read_json(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<serde_json::Value>, String> {
        let Some(m) = self.registries.manifest(repository, tag).await? else {
            return Ok(None);
        };
        crate::json::parse(&m.bytes, MAX_MANIFEST_BYTES)
            .map(Some)
            .map_err(|e| format!("{repository}:{tag} is not a JSON manifest: {e}"))
    }
}

/// Whether `repository`'s registry may be spoken to: named in `allowed`, and every address it resolves to
/// public or named exactly (a DNS lookup, off the async threads).
async fn check_address(repository: &str, allowed: &[String]) -> Result<(), String> {
    let (repo, allow) = (repository.to_string(), allowed.to_vec());
    tokio::task::spawn_blocking(move || {
        crate::oci::check_registry_in(&repo, &allow, "publish.registries", "pushed to")
    })
    .await
    .map_err(|e| e.to_string())?
}
