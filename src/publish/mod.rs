//! Publishing verdicts where consumers look (`[publish]`): each signed statement about an image is pushed
//! to the image's repository (or the one `publish.map` names) as an OCI 1.1 referrer of the image and as a
//! layer of cosign's attestation image, so that `cosign verify-attestation`, Kyverno and the sigstore
//! policy-controller can gate on it. This module owns where they go (`config`), the documents they go as
//! (`layout`) and the registry client (`registry`); the daemon's publisher decides when, and reads which
//! image each statement is about only after its signature verifies with the server's own key.

pub mod config;
pub mod layout;
pub mod registry;

pub use config::{Destination, PublishConfig, PublishMap};
pub use registry::{Registries, RegistryError};

/// The delay before attempt `attempts + 1`: `base` doubled per attempt made, at most an hour.
pub fn backoff(base_secs: u64, attempts: u32) -> u64 {
    base_secs
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(20))
        .min(3600)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(super::backoff(30, 1), 30);
        assert_eq!(super::backoff(30, 2), 60);
        assert_eq!(super::backoff(30, 4), 240);
        assert_eq!(super::backoff(30, 40), 3600);
    }
}
