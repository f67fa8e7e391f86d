//! Step images on the engine: pulled by digest within the size limit, measured, removed.

use std::collections::HashMap;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use crate::connect::docker_err;
use crate::{PinnedImage, Sandbox, SandboxError};

impl Sandbox {
    /// Makes sure the pinned image is present, pulling it by digest if not. Returns the engine's image id.
    pub async fn ensure_image(&self, image: &PinnedImage) -> Result<String, SandboxError> {
        let reference = image.to_string();
        if let Ok(found) = self.docker.inspect_image(&reference).await {
            self.within_size(&reference, &found).await?;
            return Ok(found.id.unwrap_or_default());
        }
        tracing::info!(image = %reference, "pulling image by digest");
        let options = CreateImageOptionsBuilder::default()
            .from_image(&reference)
            .build();
        let mut pull = self.docker.create_image(Some(options), None, None);
        // The layers' sizes as the engine announces them while downloading: once they pass the limit the
        // pull is stopped (dropping the request makes the engine cancel it), so an oversized image never
        // lands whole on this host's disk. They are compressed sizes, which the image's own size is not
        // below, so this never refuses an image within the limit.
        let mut announced: HashMap<String, i64> = HashMap::new();
        while let Some(progress) = pull.next().await {
            if let Ok(info) = &progress {
                if let (Some(id), Some(Some(total)), Some("Downloading")) = (
                    &info.id,
                    info.progress_detail.as_ref().map(|d| d.total),
                    info.status.as_deref(),
                ) {
                    announced.insert(id.clone(), total.max(0));
                }
                let size: i64 = announced.values().sum();
                if size > self.policy.max_image_bytes {
                    drop(pull);
                    return Err(SandboxError::ImageTooLarge {
                        image: reference,
                        size,
                        limit: self.policy.max_image_bytes,
                        when: "its layers announced while pulling; the pull was stopped",
                    });
                }
            }
            if let Err(e) = progress {
                let message = match &e {
                    bollard::errors::Error::DockerStreamError { error } => Some(error.clone()),
                    bollard::errors::Error::DockerResponseServerError { message, .. } => {
                        Some(message.clone())
                    }
                    _ => None,
                };
                // Only the registry's own answer that the image is not to be had is a verdict on the
                // provenance; a registry that does not answer, a rate limit or a full engine disk is
                // infrastructure, retried.
                return Err(match message {
                    Some(m) if image_refused(&m) => SandboxError::ImageUnavailable {
                        image: reference,
                        detail: m,
                    },
                    _ => SandboxError::Docker {
                        action: "pulling an image",
                        error: e,
                    },
                });
            }
        }
        let found = self.docker.inspect_image(&reference).await.map_err(|e| {
            SandboxError::ImageUnavailable {
                image: reference.clone(),
                detail: format!("pulled, but the engine cannot find it by digest afterwards: {e}"),
            }
        })?;
        self.within_size(&reference, &found).await?;
        Ok(found.id.unwrap_or_default())
    }

    /// Refuses (and removes) an image larger than the policy allows. The engine pulls it whole first: the
    /// pull itself is bounded only by the engine's own disk.
    async fn within_size(
        &self,
        reference: &str,
        image: &bollard::models::ImageInspect,
    ) -> Result<(), SandboxError> {
        let size = image.size.unwrap_or(0);
        if size <= self.policy.max_image_bytes {
            return Ok(());
        }
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::default()
            .force(false)
            .build();
        if let Err(e) = self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            tracing::warn!(image = reference, error = %e, "could not remove an oversized image");
        }
        Err(SandboxError::ImageTooLarge {
            image: reference.to_string(),
            size,
            limit: self.policy.max_image_bytes,
            when: "as the engine reports it; it was removed again",
        })
    }

    /// Removes the image reference `reference` (`name@sha256:…`): `Ok(false)` when the engine keeps it
    /// because a container uses it, or it is already gone.
    pub async fn remove_image(&self, reference: &str) -> Result<bool, SandboxError> {
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::default()
            .force(false)
            .build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(false),
            Err(error) => Err(SandboxError::Docker {
                action: "removing a step image",
                error,
            }),
        }
    }

    /// The size the engine reports for a present image, if it is present.
    pub async fn image_size(&self, reference: &str) -> Option<i64> {
        self.docker
            .inspect_image(reference)
            .await
            .ok()
            .and_then(|i| i.size)
    }

    /// The `VOLUME` paths of an image, each a tmpfs in its steps.
    pub(crate) async fn image_volumes(&self, reference: &str) -> Result<Vec<String>, SandboxError> {
        let image = self
            .docker
            .inspect_image(reference)
            .await
            .map_err(docker_err("reading the step image's volumes"))?;
        let mut paths: Vec<String> = image
            .config
            .and_then(|c| c.volumes)
            .into_iter()
            .flatten()
            .filter(|p| p.starts_with('/') && !crate::TMPFS_PATHS.contains(&p.as_str()))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }
}

/// Whether a pull error is the registry's answer that the image cannot be had (absent, refused, an invalid
/// reference), as opposed to a failure on the way.
fn image_refused(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "manifest unknown",
        "not found",
        "unauthorized",
        "denied",
        "invalid reference",
        "does not exist",
        "no such image",
        "name unknown",
    ]
    .iter()
    .any(|p| m.contains(p))
}
