//! Talking to the registries verdicts are pushed to, through `oci-client`: credentials from a Docker
//! config file, manifests read and written as exact bytes, blobs pushed only when missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::layout::{Blob, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

/// Why a push or read failed. The text is shown on job pages: registry answers are made inert.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Registry(String),
    #[error("docker config {path}: {detail}")]
    Credentials { path: String, detail: String },
}

impl From<RegistryError> for String {
    fn from(e: RegistryError) -> String {
        e.to_string()
    }
}

/// One client for every push, with the credentials read at start.
pub struct Registries {
    client: Client,
    credentials: BTreeMap<String, (String, String)>,
}

/// A manifest read back: its exact bytes and the media type the registry served it as.
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Registries {
    /// `insecure`: registries spoken to over plain HTTP. `docker_config`: where the credentials are; the
    /// default path may be missing (anonymous pushes), a named one must be there.
    pub fn new(insecure: &[String], docker_config: &Path) -> Result<Self, RegistryError> {
        let credentials = if docker_config.as_os_str().is_empty() {
            match default_docker_config() {
                Some(path) if path.exists() => read_credentials(&path)?,
                _ => BTreeMap::new(),
            }
        } else {
            read_credentials(docker_config)?
        };
        // `try_from`, not `new`: `new` falls back to a default client (HTTPS everywhere, no timeouts) when
        // the configuration does not build, without a word.
        let client = Client::try_from(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
            // Whole blobs in one request: envelopes are small, and it is one round trip fewer.
            use_monolithic_push: true,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..ClientConfig::default()
        })
        .map_err(|e| {
            RegistryError::Registry(format!("the registry client cannot be set up: {e}"))
        })?;
        Ok(Registries {
            client,
            credentials,
        })
    }

    fn auth(&self, registry: &str) -> RegistryAuth {
        match self.credentials.get(registry) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Authenticates for pushing to `repository` (`registry/path`).
    pub async fn login(&self, repository: &str) -> Result<(), RegistryError> {
        let r = reference(repository, Ref::Tag("latest"))?;
        self.client
            .auth(&r, &self.auth(r.registry()), RegistryOperation::Push)
            .await
            .map(|_| ())
            .map_err(|e| failed(repository, "authenticating", e))
    }

    /// The manifest `reference` (a tag or digest) of `repository`, or `None` when the registry does not
    /// have it.
    pub async fn manifest(
        &self,
        repository: &str,
        tag_or_digest: &str,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let r = if tag_or_digest.starts_with("sha256:") {
            reference(repository, Ref::Digest(tag_or_digest))?
        } else {
            reference(repository, Ref::Tag(tag_or_digest))?
        };
        let accepted = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
        match self
            .client
            .pull_manifest_raw(&r, &self.auth(r.registry()), &accepted)
            .await
        {
            Ok((bytes, digest)) => Ok(Some(RawManifest {
                bytes: bytes.to_vec(),
                digest,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(failed(repository, "reading a manifest", e)),
        }
    }

    /// Pushes `blob` into `repository` unless it is there already.
    pub async fn push_blob(&self, repository: &str, blob: &Blob) -> Result<(), RegistryError> {
        let r = reference(repository, Ref::Digest(&blob.digest))?;
        let there = self
            .client
            .blob_exists(&r, &blob.digest)
            .await
            .map_err(|e| failed(repository, "looking for a blob", e))?;
        if !there {
            self.client
                .push_blob(&r, blob.bytes.clone(), &blob.digest)
                .await
                .map_err(|e| failed(repository, "pushing a blob", e))?;
        }
        Ok(())
    }

    /// Pushes a manifest's exact bytes, by digest, or under `tag`.
    pub async fn push_manifest(
        &self,
        repository: &str,
        manifest: &Blob,
        tag: Option<&str>,
    ) -> Result<(), RegistryError> {
        let r = match tag {
            Some(t) => reference(repository, Ref::Tag(t))?,
            None => reference(repository, Ref::Digest(&manifest.digest))?,
        };
        let content_type = manifest
            .media_type
            .parse()
            .map_err(|_| RegistryError::Registry("a media type is not a header value".into()))?;
        self.client
            .push_manifest_raw(&r, manifest.bytes.clone(), content_type)
            .await
            .map(|_| ())
            .map_err(|e| failed(repository, "pushing a manifest", e))
    }
}

enum Ref<'a> {
    Tag(&'a str),
    Digest(&'a str),
}

fn reference(repository: &str, at: Ref<'_>) -> Result<Reference, RegistryError> {
    let registry = crate::oci::registry_of(repository);
    let path = repository
        .strip_prefix(registry)
        .and_then(|p| p.strip_prefix('/'))
        .ok_or_else(|| RegistryError::Registry(format!("{repository:?} has no registry part")))?;
    Ok(match at {
        Ref::Tag(t) => Reference::with_tag(registry.into(), path.into(), t.into()),
        Ref::Digest(d) => Reference::with_digest(registry.into(), path.into(), d.into()),
    })
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        _ => false,
    }
}

/// What went wrong, in a fixed phrase: the record is public, and a registry's own error text (its bodies,
/// realms, URLs) goes to this host's log only.
fn failed(repository: &str, doing: &str, e: OciDistributionError) -> RegistryError {
    tracing::warn!(repository, doing, error = %crate::text::inert_line(&e.to_string()), "registry");
    let what = match &e {
        OciDistributionError::UnauthorizedError { .. } => {
            "Not authorized (check publish.docker_config)".to_string()
        }
        OciDistributionError::AuthenticationFailure(_) => {
            "authentication failed (check publish.docker_config)".to_string()
        }
        OciDistributionError::ServerError { code, .. } => {
            format!("the registry answered HTTP {code}")
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .take(3)
                .map(|x| format!("{:?}", x.code))
                .collect();
            format!("the registry refused it ({})", codes.join(", "))
        }
        OciDistributionError::RequestError(r) if r.is_timeout() => "no answer in time".to_string(),
        OciDistributionError::RequestError(_) => "the registry could not be reached".to_string(),
        _ => "the registry's answer did not follow the distribution protocol".to_string(),
    };
    RegistryError::Registry(format!("{doing} in {repository}: {what}"))
}

fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The `auths` of a Docker config file: registry → (user, password). Entries without an `auth` (a
/// credential helper's) are skipped; a malformed one is an error naming the registry, never the secret.
fn read_credentials(path: &Path) -> Result<BTreeMap<String, (String, String)>, RegistryError> {
    let err = |detail: String| RegistryError::Credentials {
        path: path.display().to_string(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot be read ({e})")))?;
    let v = crate::json::parse(&bytes, 1 << 20).map_err(|e| err(format!("is not JSON ({e})")))?;
    let mut out = BTreeMap::new();
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(out);
    };
    for (registry, entry) in auths {
        let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) else {
            continue;
        };
        let decoded = crate::json::decode_base64(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                err(format!(
                    "the auth of {registry:?} is not base64 of user:password"
                ))
            })?;
        let Some((user, password)) = decoded.split_once(':') else {
            return Err(err(format!(
                "the auth of {registry:?} is not base64 of user:password"
            )));
        };
        // `https://index.docker.io/v1/` is how docker login writes Docker Hub.
        let host = registry
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or(registry);
        let host = if host == "index.docker.io" {
            "docker.io"
        } else {
            host
        };
        out.insert(host.to_string(), (user.to_string(), password.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn credentials_come_from_auths_by_host_and_a_bad_one_is_named_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cret:with:colons");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{auth}"}}, "https://index.docker.io/v1/": {{"auth": "{auth}"}}, "ghcr.io": {{}}}}, "credsStore": "desktop"}}"#
            ),
        )
        .unwrap();
        let c = read_credentials(&path).unwrap();
        assert_eq!(
            c["127.0.0.1:5000"],
            ("bob".to_string(), "s3cret:with:colons".to_string())
        );
        assert!(c.contains_key("docker.io"));
        assert!(!c.contains_key("ghcr.io"));
        std::fs::write(
            &path,
            r#"{"auths": {"r.example": {"auth": "not base64 secret!"}}}"#,
        )
        .unwrap();
        let e = read_credentials(&path).unwrap_err().to_string();
        assert!(e.contains("r.example") && !e.contains("secret!"), "{e}");
    }
}
