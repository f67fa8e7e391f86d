//! Configuration: one TOML file plus `REPROD_*` environment overrides; every option has a default that
//! serves a single machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::source::SourceConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where reprod keeps its state (git mirrors, job workspaces).
    pub data_dir: PathBuf,
    /// Largest provenance document accepted, in bytes.
    pub max_document_bytes: usize,
    pub source: SourceConfig,
    pub sandbox: SandboxConfig,
    pub images: ImagesConfig,
    /// Which provenance signatures are believed.
    pub trust: crate::trust::policy::TrustConfig,
    /// `reprod serve`.
    pub server: ServerConfig,
}

/// The daemon: where it listens, how many rebuilds run at once, how leases and shutdown behave.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTP address (loopback by default; put a TLS proxy in front to expose it).
    pub listen: String,
    /// Rebuilds run at once by this process (0: only remote workers rebuild).
    pub workers: usize,
    /// A lease's lifetime; workers heartbeat every third of it.
    pub lease_secs: u64,
    /// On SIGTERM/SIGINT, how long running rebuilds may finish before they are stopped and given back.
    pub shutdown_grace_secs: u64,
    /// Files dropped here are ingested (empty: `<data_dir>/inbox`).
    pub inbox_dir: PathBuf,
    pub poll_ms: u64,
    /// Bearer tokens accepted by `POST /v1/provenance`; none configured means no HTTP submissions.
    pub submit_tokens: Vec<String>,
    /// Queue provenance whose signature was not verified (off: it is rejected at intake).
    pub accept_unsigned: bool,
    /// Remote workers allowed to lease (`name = "token"`). Registration is closed: only these exist.
    pub worker_tokens: BTreeMap<String, String>,
    /// Leases a job gets before it is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay after an infrastructure failure; doubles per attempt up to an hour.
    pub retry_base_secs: u64,
    /// Registries whose repositories are watched for new images and their attestations.
    pub watch: Vec<WatchConfig>,
    /// The PEM ECDSA P-256 key verdicts are signed with (`reprod keygen`). It must exist when set; when empty,
    /// `<data_dir>/signing.key` is used, and created on first start.
    pub signing_key: PathBuf,
    /// The base URL links in the Atom feed use (empty: `http://<listen>`).
    pub public_url: String,
    /// Largest `POST /v1/worker/complete` body: the verdict plus every step log and diff report, base64.
    pub max_completion_bytes: usize,
    /// A connection that has not sent a whole request head within this is closed; hyper starts it again
    /// while a kept-alive connection waits for its next request.
    pub header_read_timeout_secs: u64,
    /// A connection on which nothing was read or written for this long is closed.
    pub idle_timeout_secs: u64,
    /// Connections open at once (lowered to fit the file-descriptor limit); more wait in the backlog.
    pub max_connections: usize,
    /// Requests handled at once; one more is answered `503 overloaded` rather than queued.
    pub max_requests: usize,
}

impl ServerConfig {
    /// [`ServerConfig::public_url`], without a trailing slash.
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// One watched registry.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// `host:port`.
    pub registry: String,
    pub repositories: Vec<String>,
    /// Plain HTTP instead of HTTPS (only for registries on loopback).
    pub insecure: bool,
    pub interval_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8780".into(),
            workers: 1,
            lease_secs: 900,
            shutdown_grace_secs: 60,
            inbox_dir: PathBuf::new(),
            poll_ms: 1000,
            submit_tokens: Vec::new(),
            accept_unsigned: false,
            worker_tokens: BTreeMap::new(),
            max_attempts: 5,
            retry_base_secs: 30,
            watch: Vec::new(),
            signing_key: PathBuf::new(),
            public_url: String::new(),
            max_completion_bytes: 64 << 20,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 4096,
            max_requests: 256,
        }
    }
}

/// Limits for the build containers (see `reprod_sandbox::Policy` for what is always enforced).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    pub memory_bytes: i64,
    pub cpus: f64,
    pub pids_limit: i64,
    pub step_timeout_secs: u64,
    pub job_timeout_secs: u64,
    pub log_limit_bytes: usize,
    pub hostname: String,
}

/// Images: registry rewrites for step images and originals (the digest never changes), longest prefix
/// first; and whether an unreproducible subject's original image is fetched to explain the difference.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    pub mirrors: BTreeMap<String, String>,
    pub fetch_originals: bool,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            mirrors: BTreeMap::new(),
            fetch_originals: true,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("reprod-data"),
            max_document_bytes: crate::provenance::json::DEFAULT_MAX_BYTES,
            source: SourceConfig::default(),
            sandbox: SandboxConfig::default(),
            images: ImagesConfig::default(),
            trust: crate::trust::policy::TrustConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let p = reprod_sandbox::Policy::default();
        SandboxConfig {
            memory_bytes: p.memory_bytes,
            cpus: p.nano_cpus as f64 / 1e9,
            pids_limit: p.pids_limit,
            step_timeout_secs: p.step_timeout.as_secs(),
            job_timeout_secs: 3 * 3600,
            log_limit_bytes: p.log_limit_bytes,
            hostname: p.hostname,
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}={value:?}: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads `path` (if given), applies `REPROD_*` overrides from `env`, validates, and resolves defaults
    /// that depend on other options.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.display().to_string(),
                    error,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: p.display().to_string(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("REPROD_") else {
                continue;
            };
            if let Some(path) = leaf_path(&defaults, &rest.to_ascii_lowercase()) {
                let parsed = format!("v = {value}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(value.clone()));
                set_path(&mut table, &path, parsed).map_err(|message| ConfigError::Env {
                    name: name.clone(),
                    value: value.clone(),
                    message,
                })?;
            }
        }
        let source = path.map_or("(defaults and environment)".to_string(), |p| {
            p.display().to_string()
        });
        let mut config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: source,
                    message: e.to_string(),
                })?;
        if config.server.inbox_dir.as_os_str().is_empty() {
            config.server.inbox_dir = config.data_dir.join("inbox");
        }
        if config.source.cache_dir.as_os_str().is_empty() {
            config.source.cache_dir = config.data_dir.join("git");
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.sandbox;
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if s.memory_bytes < 6 << 20 {
            return bad("sandbox.memory_bytes must be at least 6 MiB (Docker's minimum)");
        }
        if !(s.cpus > 0.0 && s.cpus <= 1024.0) {
            return bad("sandbox.cpus must be above 0 and at most 1024");
        }
        if s.pids_limit < 8 {
            return bad("sandbox.pids_limit must be at least 8");
        }
        if s.step_timeout_secs == 0 || s.job_timeout_secs == 0 {
            return bad("sandbox.step_timeout_secs and sandbox.job_timeout_secs must be positive");
        }
        if s.log_limit_bytes < 1024 {
            return bad("sandbox.log_limit_bytes must be at least 1024");
        }
        if self.max_document_bytes == 0 || self.server.max_completion_bytes == 0 {
            return bad("max_document_bytes and server.max_completion_bytes must be positive");
        }
        let v = &self.server;
        if v.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("server.listen must be an address and port, e.g. 127.0.0.1:8780");
        }
        if v.header_read_timeout_secs == 0
            || v.idle_timeout_secs == 0
            || v.max_connections == 0
            || v.max_requests == 0
        {
            return bad("server.header_read_timeout_secs, server.idle_timeout_secs, server.max_connections and server.max_requests must be positive");
        }
        if v.workers > 64 {
            return bad("server.workers must be 0 (remote workers only) to 64");
        }
        for w in &v.watch {
            if w.registry.is_empty() || w.repositories.is_empty() || w.interval_secs == 0 {
                return bad("each [[server.watch]] needs a registry, repositories and a positive interval_secs");
            }
            if let Some(r) = w.repositories.iter().find(|r| !is_repository_name(r)) {
                return Err(ConfigError::Invalid(format!(
                    "server.watch: {r:?} is not a repository name (lowercase letters, digits and . _ - between them, in parts joined by /)"
                )));
            }
            let loopback = w.registry.starts_with("127.")
                || w.registry.starts_with("localhost:")
                || w.registry.starts_with("[::1]");
            if w.insecure && !loopback {
                return bad("server.watch: insecure (plain HTTP) is only allowed for registries on loopback");
            }
        }
        if v.lease_secs < 3 || v.poll_ms == 0 || v.max_attempts == 0 {
            return bad("server.lease_secs must be at least 3, server.poll_ms and server.max_attempts positive");
        }
        Ok(())
    }

    /// The sandbox policy these settings describe.
    pub fn policy(&self) -> reprod_sandbox::Policy {
        let s = &self.sandbox;
        reprod_sandbox::Policy {
            memory_bytes: s.memory_bytes,
            nano_cpus: (s.cpus * 1e9) as i64,
            pids_limit: s.pids_limit,
            step_timeout: Duration::from_secs(s.step_timeout_secs),
            log_limit_bytes: s.log_limit_bytes,
            hostname: s.hostname.clone(),
        }
    }
}

/// A repository name as the OCI distribution spec has it: `team/app`, `a.b/c-d_e`.
fn is_repository_name(name: &str) -> bool {
    name.split('/').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    })
}

/// Rewrites `text` with the longest matching prefix of `map` (used by the git and the image mirror maps).
pub fn rewrite_prefix(map: &BTreeMap<String, String>, text: &str) -> Option<String> {
    map.iter()
        .filter(|(prefix, _)| text.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(prefix, to)| format!("{to}{}", &text[prefix.len()..]))
}

/// Finds the dotted path of a leaf option whose `_`-joined name is `flat` (e.g. `source_allow_file`).
fn leaf_path(table: &toml::Table, flat: &str) -> Option<Vec<String>> {
    for (key, value) in table {
        // A leaf is a value, or a map option whose default is empty (`images.mirrors`,
        // `server.worker_tokens`), set as an inline table: `REPROD_SERVER_WORKER_TOKENS='{a = "t"}'`.
        if flat == key && value.as_table().is_none_or(|t| t.is_empty()) {
            return Some(vec![key.clone()]);
        }
        if let (Some(rest), toml::Value::Table(inner)) =
            (flat.strip_prefix(&format!("{key}_")), value)
        {
            if let Some(mut tail) = leaf_path(inner, rest) {
                tail.insert(0, key.clone());
                return Some(tail);
            }
        }
    }
    None
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty option path".into()),
        [leaf] => {
            table.insert(leaf.clone(), value);
            Ok(())
        }
        [head, rest @ ..] => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => set_path(inner, rest, value),
                _ => Err(format!("`{head}` is not a table in the config file")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_one_machine() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.source.cache_dir, PathBuf::from("reprod-data/git"));
        assert!(!c.source.allow_file);
        assert_eq!(c.policy().nano_cpus, 2_000_000_000);
    }

    #[test]
    fn env_overrides_nested_options() {
        let env = vec![
            ("REPROD_SOURCE_ALLOW_FILE".to_string(), "true".to_string()),
            (
                "REPROD_SANDBOX_STEP_TIMEOUT_SECS".to_string(),
                "7".to_string(),
            ),
            ("REPROD_DATA_DIR".to_string(), "/tmp/x".to_string()),
            ("UNRELATED".to_string(), "1".to_string()),
        ];
        let c = Config::load(None, env).unwrap();
        assert!(c.source.allow_file);
        assert_eq!(c.sandbox.step_timeout_secs, 7);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.source.cache_dir, PathBuf::from("/tmp/x/git"));
    }

    #[test]
    fn bad_values_are_named() {
        let env = vec![("REPROD_SANDBOX_PIDS_LIMIT".to_string(), "lots".to_string())];
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(err.contains("pids_limit"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[sandbox]\nmemroy_bytes = 1\n").unwrap();
        let err = Config::load(Some(&p), Vec::new()).unwrap_err().to_string();
        assert!(err.contains("memroy_bytes"), "{err}");
    }
}
