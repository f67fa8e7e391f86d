//! Builders reprod runs itself for families whose provenance records a build request, not steps
//! (`[builders.buildkit]`): the operator's pinned builder image, and which documents it may rebuild.

use serde::{Deserialize, Serialize};

/// `[builders]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BuildersConfig {
    pub buildkit: BuildKitBuilder,
}

/// `[builders.buildkit]`: a BuildKit (dockerd with its BuildKit and `docker buildx`, started in the step by
/// `reprod-buildkitd`; `scripts/debian-builder-image.sh buildkit`) run as one step in the nested profile.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BuildKitBuilder {
    /// The builder image, pinned by digest. Empty: no BuildKit builder (BuildKit provenance is
    /// `unrebuildable: no-builder: buildkit`).
    pub image: String,
    /// Which documents it rebuilds. The builder needs the nested profile; `vouched` (the default) gives it
    /// only to documents the trust policy vouches for, as `nested_steps` does; `any` to every document
    /// (BuildKit writes its provenance unsigned).
    pub documents: BuilderDocuments,
}

/// Which documents a builder of `[builders]` rebuilds.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BuilderDocuments {
    /// Documents whose signature verifies and whose signer the trust policy accepts for their images.
    #[default]
    Vouched,
    /// Every admitted document, signed or not.
    Any,
}

impl BuildKitBuilder {
    /// Whether a BuildKit builder is configured.
    pub fn configured(&self) -> bool {
        !self.image.is_empty()
    }

    /// Checks the options at load.
    pub fn validate(&self) -> Result<(), String> {
        if self.configured() {
            reprod_sandbox::PinnedImage::parse(&self.image).map_err(|e| {
                format!("builders.buildkit.image must be pinned by digest (REPO@sha256:<hex>): {e}")
            })?;
        }
        Ok(())
    }
}
