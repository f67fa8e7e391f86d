//! `[publish]`: which registries get verdicts pushed next to the images they are about, and how.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[publish]`. Off by default: pushing writes to registries other people read.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// Push each verdict's signed statements to the registry (OCI 1.1 referrers and cosign attestations).
    pub enabled: bool,
    /// Registries (`host[:port]`) whose images get their verdicts pushed into the image's own repository.
    pub registries: Vec<String>,
    /// Repository prefixes whose verdicts go elsewhere: an image `FROM/rest` has them pushed to `TO/rest`.
    /// The first matching entry wins, before `registries` is looked at.
    pub map: Vec<PublishMap>,
    /// Registries spoken to over plain HTTP (only loopback ones, for tests and local mirrors).
    pub insecure: Vec<String>,
    /// A Docker config file whose `auths` hold the credentials (`auth`: base64 `user:password`). Empty:
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, if there is one. Credential helpers
    /// (`credsStore`, `credHelpers`) are not run.
    pub docker_config: PathBuf,
    /// Attempts per verdict before it is recorded as not published.
    pub max_attempts: u32,
    /// The first retry's delay; each one after doubles it, up to an hour.
    pub retry_base_secs: u64,
    /// Longest one push of one verdict may take.
    pub timeout_secs: u64,
}

/// One `[[publish.map]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublishMap {
    /// An image-name prefix ending at a `/` (`ghcr.io/acme/`), or a whole repository.
    pub from: String,
    /// The repository prefix its verdicts go to (`127.0.0.1:5000/verdicts/acme/`).
    pub to: String,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            enabled: false,
            registries: Vec::new(),
            map: Vec::new(),
            insecure: Vec::new(),
            docker_config: PathBuf::new(),
            max_attempts: 8,
            retry_base_secs: 30,
            timeout_secs: 120,
        }
    }
}

/// Where one image's verdicts are pushed, or why they are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The repository (`registry/path`) the referrers and the `.att` tag go to.
    Repository(String),
    /// Not published, and why (no retry will change that).
    NotPublished(String),
}

impl PublishConfig {
    /// Checks the options at load.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 || self.retry_base_secs == 0 || self.timeout_secs == 0 {
            return Err(
                "publish.max_attempts, publish.retry_base_secs and publish.timeout_secs must be positive".into(),
            );
        }
        for m in &self.map {
            let to = m.to.trim_end_matches('/');
            if m.from.is_empty() || !crate::oci::is_repository_name(repository_path(to)) {
                return Err(format!(
                    "publish.map: from {:?} to {:?}: `from` must not be empty and `to` must be REGISTRY/REPOSITORY (lowercase letters, digits and . _ - between them, in parts joined by /)",
                    m.from, m.to
                ));
            }
        }
        if let Some(r) = self.insecure.iter().find(|r| !is_loopback(r)) {
            return Err(format!(
                "publish.insecure: {r:?}: plain HTTP is only allowed for registries on loopback"
            ));
        }
        Ok(())
    }

    /// Where the verdicts about `image` (a subject name) go.
    pub fn destination(&self, image: &str) -> Destination {
        let image = image.strip_prefix("docker://").unwrap_or(image);
        for m in &self.map {
            let rest = if m.from.ends_with('/') {
                image.strip_prefix(m.from.as_str())
            } else if image == m.from {
                Some("")
            } else {
                image
                    .strip_prefix(m.from.as_str())
                    .and_then(|r| r.strip_prefix('/'))
            };
            if let Some(rest) = rest {
                let to = m.to.trim_end_matches('/');
                let target = if rest.is_empty() {
                    to.to_string()
                } else {
                    format!("{to}/{rest}")
                };
                return self.checked(target);
            }
        }
        let registry = crate::oci::registry_of(image);
        if self.registries.iter().any(|r| r == registry) {
            return self.checked(image.to_string());
        }
        Destination::NotPublished(format!(
            "registry {registry} is not in publish.registries and no publish.map entry matches {image}"
        ))
    }

    fn checked(&self, repository: String) -> Destination {
        if is_registry_repository(&repository) {
            Destination::Repository(repository)
        } else {
            Destination::NotPublished(format!(
                "{repository:?} is not a repository name with a registry (REGISTRY/REPOSITORY)"
            ))
        }
    }

    /// The registries pushes may go to: those named in `registries` and as `map` targets.
    pub fn allowed_registries(&self) -> Vec<String> {
        let mut out = self.registries.clone();
        for m in &self.map {
            let r = crate::oci::registry_of(&m.to).to_string();
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }
}

/// Whether `name` is `REGISTRY/REPOSITORY` with a repository name as the distribution spec allows.
pub fn is_registry_repository(name: &str) -> bool {
    crate::oci::is_repository_name(repository_path(name))
        && crate::oci::registry_of(name) != "docker.io"
        && name.contains('/')
}

/// The path part of `registry/path`.
fn repository_path(name: &str) -> &str {
    let registry = crate::oci::registry_of(name);
    name.strip_prefix(registry)
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or(name)
}

fn is_loopback(registry: &str) -> bool {
    registry.starts_with("127.")
        || registry.starts_with("localhost:")
        || registry == "localhost"
        || registry.starts_with("[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(registries: &[&str], map: &[(&str, &str)]) -> PublishConfig {
        PublishConfig {
            enabled: true,
            registries: registries.iter().map(|s| s.to_string()).collect(),
            map: map
                .iter()
                .map(|(f, t)| PublishMap {
                    from: f.to_string(),
                    to: t.to_string(),
                })
                .collect(),
            ..PublishConfig::default()
        }
    }

    #[test]
    fn an_image_goes_to_its_own_repository_only_when_its_registry_is_named() {
        let c = config(&["127.0.0.1:5000"], &[]);
        assert_eq!(
            c.destination("127.0.0.1:5000/acme/app"),
            Destination::Repository("127.0.0.1:5000/acme/app".into())
        );
        assert_eq!(
            c.destination("docker://127.0.0.1:5000/acme/app"),
            Destination::Repository("127.0.0.1:5000/acme/app".into())
        );
        let Destination::NotPublished(why) = c.destination("ghcr.io/acme/app") else {
            panic!("published to a registry not named");
        };
        assert!(
            why.contains("ghcr.io is not in publish.registries"),
            "{why}"
        );
        // A short Docker Hub name is docker.io's, which is not named either.
        assert!(matches!(
            c.destination("alpine"),
            Destination::NotPublished(_)
        ));
    }

    #[test]
    fn a_map_entry_moves_a_prefix_at_a_path_boundary_only() {
        let c = config(
            &[],
            &[
                ("ghcr.io/acme/", "127.0.0.1:5000/verdicts/acme/"),
                ("quay.io/x/app", "127.0.0.1:5000/verdicts/app"),
            ],
        );
        assert_eq!(
            c.destination("ghcr.io/acme/tools/app"),
            Destination::Repository("127.0.0.1:5000/verdicts/acme/tools/app".into())
        );
        assert_eq!(
            c.destination("quay.io/x/app"),
            Destination::Repository("127.0.0.1:5000/verdicts/app".into())
        );
        // `quay.io/x/app` is not a prefix of `quay.io/x/application`'s path.
        assert!(matches!(
            c.destination("quay.io/x/application"),
            Destination::NotPublished(_)
        ));
        assert_eq!(c.allowed_registries(), ["127.0.0.1:5000"]);
        // An upper-case rest is no repository name: refused, not pushed somewhere unexpected.
        assert!(matches!(
            c.destination("ghcr.io/acme/App"),
            Destination::NotPublished(_)
        ));
    }

    #[test]
    fn validation_names_the_option() {
        let mut c = config(&[], &[("ghcr.io/acme/", "not a repo")]);
        assert!(c.validate().unwrap_err().contains("publish.map"));
        c.map.clear();
        c.insecure = vec!["registry.example:5000".into()];
        assert!(c.validate().unwrap_err().contains("publish.insecure"));
        c.insecure = vec!["127.0.0.1:5000".into()];
        assert!(c.validate().is_ok());
        c.max_attempts = 0;
        assert!(c.validate().unwrap_err().contains("publish.max_attempts"));
    }
}
