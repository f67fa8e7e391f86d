//! Where a verdict's publication to registries stands (`GET /v1/jobs/{id}`'s `publication`), as the
//! store keeps it.

use serde::{Deserialize, Serialize};

/// Where one verdict's publication stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub state: PublicationState,
    pub attempts: u32,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// Unix seconds of the next attempt, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<u64>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was pushed, per image.
    #[serde(default)]
    pub pushed: Vec<Pushed>,
    /// Images not published, and why (a configuration matter: not retried).
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublicationState {
    /// Waiting for its (next) attempt.
    #[default]
    Pending,
    /// Pushed for every image that has a destination.
    Published,
    /// No image of the verdict has a destination, or the verdict has no signed statement.
    NotPublished,
    /// Given up after `publish.max_attempts`.
    Failed,
}

impl PublicationState {
    pub fn as_str(self) -> &'static str {
        match self {
            PublicationState::Pending => "pending",
            PublicationState::Published => "published",
            PublicationState::NotPublished => "not-published",
            PublicationState::Failed => "failed",
        }
    }
}

/// The statements about one image, pushed to one repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pushed {
    /// `name@sha256:<hex>` as the verdict names it.
    pub image: String,
    pub repository: String,
    /// The referrer manifests' digests, one per statement.
    pub referrers: Vec<String>,
    /// cosign's attestation tag (`sha256-<hex>.att`).
    pub cosign_tag: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub image: String,
    pub reason: String,
}
