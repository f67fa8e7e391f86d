//! Configuration: one TOML file plus `REPROD_*` environment overrides; every option has a default that
//! serves a single machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::mirror::MirrorMap;
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
    /// Builders reprod runs itself (BuildKit).
    pub builders: crate::builders::BuildersConfig,
    /// Verdicts pushed to registries (`reprod serve`).
    pub publish: crate::publish::PublishConfig,
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
    /// Bearer tokens of operators (`/v1/admin/...`: list, cancel, retry jobs); none: no admin routes.
    pub admin_tokens: Vec<String>,
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
            admin_tokens: Vec::new(),
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
    /// Size of each tmpfs a step can write outside its workspace (`/tmp`, `/var/tmp`, `/run`; the root
    /// filesystem is read-only).
    pub tmpfs_bytes: i64,
    /// Largest file a step may write (`ulimit -f`).
    pub file_size_bytes: i64,
    /// Open files per process (`ulimit -n`).
    pub open_files: i64,
    /// Processes per user in a step (`ulimit -u`).
    pub processes: i64,
    /// The job directory (workspace, results, home, logs) of each job is a filesystem of this size of its
    /// own (a loop-mounted ext4 image): a build that fills it fills only it. 0 leaves it on the data
    /// directory's filesystem, unbounded.
    pub workspace_bytes: u64,
    /// Refuse to run steps unless the engine runs containers in a user namespace (`userns-remap`).
    pub require_userns: bool,
    /// What steps may reach: nothing (the default) or the build proxy.
    pub network: crate::network::NetworkConfig,
}

/// Images: registry rewrites for step images and originals (the digest never changes), longest prefix
/// first; and whether an unreproducible subject's original image is fetched to explain the difference.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    pub mirrors: MirrorMap,
    pub fetch_originals: bool,
    /// Largest step image (uncompressed, as the engine reports it); a larger one is removed after the pull
    /// and the job is `unrebuildable` (`image-too-large`).
    pub max_image_bytes: i64,
    /// Step images reprod pulled are kept up to this many bytes in all; beyond it the least recently used
    /// are removed after a job (0: never removed).
    pub cache_bytes: u64,
    /// Registries (`host[:port]`, as in image names) an unreproducible subject's original may be fetched
    /// from to explain it. Empty: none (the subject names choose the registry, so it is opt-in). Names
    /// that resolve to loopback, link-local or private addresses are refused unless the entry is that
    /// address itself. A registry reached through `mirrors` is the operator's choice and always allowed.
    pub originals_from: Vec<String>,
    /// Registries reached with plain HTTP or unverified TLS (never inferred from a name).
    pub insecure: Vec<String>,
    /// A fetch of an original stops after this long, or past `max_fetch_bytes`.
    pub fetch_timeout_secs: u64,
    pub max_fetch_bytes: u64,
}

impl ImagesConfig {
    /// The limits a fetch from `registry` runs under.
    pub fn fetch_limits(&self, registry: &str) -> crate::oci::FetchLimits {
        crate::oci::FetchLimits {
            insecure: self.insecure.iter().any(|r| r == registry),
            timeout: std::time::Duration::from_secs(self.fetch_timeout_secs),
            max_bytes: self.max_fetch_bytes,
        }
    }
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            mirrors: MirrorMap::default(),
            fetch_originals: true,
            max_image_bytes: reprod_sandbox::Policy::default().max_image_bytes,
            cache_bytes: 64 << 30,
            originals_from: Vec::new(),
            insecure: Vec::new(),
            fetch_timeout_secs: 600,
            max_fetch_bytes: 16 << 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("reprod-data"),
            max_document_bytes: crate::json::DEFAULT_MAX_BYTES,
            source: SourceConfig::default(),
            sandbox: SandboxConfig::default(),
            images: ImagesConfig::default(),
            trust: crate::trust::policy::TrustConfig::default(),
            server: ServerConfig::default(),
            builders: crate::builders::BuildersConfig::default(),
            publish: crate::publish::PublishConfig::default(),
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
            tmpfs_bytes: p.tmpfs_bytes,
            file_size_bytes: p.file_size_bytes,
            open_files: p.open_files,
            processes: p.processes,
            workspace_bytes: 20 << 30,
            require_userns: p.require_userns,
            network: crate::network::NetworkConfig::default(),
        }
    }
}

/// `REPROD_*` environment variables that are not configuration options but are read elsewhere. Any other
/// `REPROD_*` variable that names no option is an error, as an unknown key in the file is: a misspelt
/// override would otherwise be ignored without a word. (`tests` in this file checks that the repository
/// reads no other.)
pub const OTHER_VARIABLES: &[&str] = &[
    // The command line: --config, `submit --token`, `status`/`submit --server`, `worker --token`.
    "REPROD_CONFIG",
    "REPROD_TOKEN",
    "REPROD_SERVER",
    "REPROD_WORKER_TOKEN",
    "REPROD_ADMIN_TOKEN",
    // Tests, benchmarks and scripts.
    "REPROD_PYTHON",
    "REPROD_REGISTRY",
    "REPROD_STATE_DIR",
    "REPROD_TEST_THREADS",
    "REPROD_BENCH_VERDICTS",
    "REPROD_BENCH_SECS",
    "REPROD_BENCH_DOCS",
    "REPROD_BENCH_MIB",
    "REPROD_CORPUS",
    "REPROD_JOBS_CRASH_DIR",
    "REPROD_JOBS_CRASH_START",
    // tests/site.rs: where the screenshots go.
    "REPROD_ARTIFACTS_DIR",
    // scripts/debian-builder-image.sh: its mirrors, and a forced rebuild.
    "REPROD_DEBIAN_MIRROR",
    "REPROD_DEBIAN_SECURITY",
    "REPROD_REBUILD",
];

/// Bearer tokens shorter than this are refused at load: an empty or short one can be guessed (an empty
/// `submit_tokens` entry admitted `Authorization: Bearer `).
pub const MIN_TOKEN_CHARS: usize = 16;

/// Options whose values are secrets: never printed, in errors or by `reprod config`.
const SECRET_OPTIONS: &[&str] = &[
    "server.submit_tokens",
    "server.admin_tokens",
    "server.worker_tokens",
];

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("config file {path}: {}", crate::text::one_line(.message))]
    Parse { path: String, message: String },
    #[error("environment variable {name}: {}", crate::text::one_line(.message))]
    Env { name: String, message: String },
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
        let source = path.map_or("(defaults)".to_string(), |p| p.display().to_string());
        // The file alone first, so that what is wrong in it names the file ...
        let mut config = from_table(&table).map_err(|message| ConfigError::Parse {
            path: source,
            message,
        })?;
        // ... and each override after it, so that a bad value names its variable.
        let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with("REPROD_"))
            .collect();
        env.sort();
        let mut from_env = BTreeMap::new();
        for (name, value) in env {
            let rest = name.trim_start_matches("REPROD_").to_ascii_lowercase();
            let Some(path) = leaf_path(&defaults, &rest) else {
                if OTHER_VARIABLES.contains(&name.as_str()) {
                    continue;
                }
                return Err(ConfigError::Env {
                    name,
                    message: "names no configuration option (an option's variable is its path in capitals, e.g. REPROD_SERVER_LISTEN for server.listen; `reprod config` shows them all)".into(),
                });
            };
            let key = path.join(".");
            let secret = SECRET_OPTIONS.contains(&key.as_str());
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.clone()));
            let env_error = |message: String| ConfigError::Env {
                name: name.clone(),
                message: if secret {
                    format!("not a valid value for {key} (not shown: it is a secret)")
                } else {
                    format!("{value:?} for {key}: {message}")
                },
            };
            set_path(&mut table, &path, parsed).map_err(env_error)?;
            config = from_table(&table).map_err(env_error)?;
            from_env.insert(key, name.clone());
        }
        if config.server.inbox_dir.as_os_str().is_empty() {
            config.server.inbox_dir = config.data_dir.join("inbox");
        }
        if config.source.cache_dir.as_os_str().is_empty() {
            config.source.cache_dir = config.data_dir.join("git");
        }
        config.validate()?;
        config.check_tokens(&from_env)?;
        Ok(config)
    }

    /// Every token at least [`MIN_TOKEN_CHARS`] printable ASCII characters, and no two workers with the
    /// same one (a worker would be taken for the other). Errors name the key and where it was set, never the
    /// token.
    fn check_tokens(&self, from_env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let set_by = |option: &str| {
            from_env
                .get(option)
                .map(|var| format!(" (set by {var})"))
                .unwrap_or_default()
        };
        let check = |key: String, option: &str, token: &str| {
            let n = token.chars().count();
            let rule = if n < MIN_TOKEN_CHARS {
                format!("a token must be at least {MIN_TOKEN_CHARS} characters; this one has {n}")
            } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
                "a token must be printable ASCII without spaces (it is sent in an HTTP header)"
                    .to_string()
            } else {
                return Ok(());
            };
            Err(ConfigError::Invalid(format!(
                "{key}{}: {rule}",
                set_by(option)
            )))
        };
        let v = &self.server;
        for (option, tokens) in [
            ("server.submit_tokens", &v.submit_tokens),
            ("server.admin_tokens", &v.admin_tokens),
        ] {
            for (i, token) in tokens.iter().enumerate() {
                check(format!("{option}[{i}]"), option, token)?;
            }
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, token) in &v.worker_tokens {
            let key = format!("server.worker_tokens.{}", crate::text::inert_line(name));
            check(key.clone(), "server.worker_tokens", token)?;
            if let Some(first) = seen.insert(token, name) {
                return Err(ConfigError::Invalid(format!(
                    "server.worker_tokens.{} and {key}{}: two workers have the same token, so one would be taken for the other",
                    crate::text::inert_line(first),
                    set_by("server.worker_tokens")
                )));
            }
        }
        Ok(())
    }

    /// This configuration as `reprod config` shows it: every secret replaced by a note of its length
    /// (tokens, and the password of a URL in a mirror map or `server.public_url`).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        let hide = |secret: &str| format!("<redacted: {} characters>", secret.chars().count());
        for t in c
            .server
            .submit_tokens
            .iter_mut()
            .chain(&mut c.server.admin_tokens)
        {
            *t = hide(t);
        }
        for t in c.server.worker_tokens.values_mut() {
            *t = hide(t);
        }
        let urls = |map: &MirrorMap| -> MirrorMap {
            map.iter()
                .map(|(k, v)| {
                    (
                        crate::text::redact_url_password(k),
                        crate::text::redact_url_password(v),
                    )
                })
                .collect()
        };
        c.source.mirrors = urls(&c.source.mirrors);
        c.images.mirrors = urls(&c.images.mirrors);
        c.server.public_url = crate::text::redact_url_password(&c.server.public_url);
        c
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
        s.network.validate().map_err(ConfigError::Invalid)?;
        self.builders
            .buildkit
            .validate()
            .map_err(ConfigError::Invalid)?;
        self.publish.validate().map_err(ConfigError::Invalid)?;
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
            if let Some(r) = w
                .repositories
                .iter()
                .find(|r| !crate::oci::is_repository_name(r))
            {
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
            tmpfs_bytes: s.tmpfs_bytes,
            file_size_bytes: s.file_size_bytes,
            open_files: s.open_files,
            processes: s.processes,
            require_userns: s.require_userns,
            max_image_bytes: self.images.max_image_bytes,
        }
    }
}

/// `table` read as the configuration (every option has a default); the error as a sentence.
fn from_table(table: &toml::Table) -> Result<Config, String> {
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())
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

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_bad_environment_value_names_the_variable_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[sandbox]\ncpus = 1.0\n").unwrap();
        let err = Config::load(Some(&p), env(&[("REPROD_SANDBOX_PIDS_LIMIT", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("environment variable REPROD_SANDBOX_PIDS_LIMIT:"),
            "{err}"
        );
        assert!(
            err.contains("sandbox.pids_limit") && err.contains("lots"),
            "{err}"
        );
        assert!(!err.contains("c.toml"), "{err}");
        // A secret's value is not repeated.
        let err = Config::load(
            None,
            env(&[(
                "REPROD_SERVER_SUBMIT_TOKENS",
                "{not = \"a list of hidden-value\"}",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("REPROD_SERVER_SUBMIT_TOKENS"), "{err}");
        assert!(!err.contains("hidden-value"), "{err}");
    }

    #[test]
    fn unknown_reprod_variables_are_errors_and_the_others_are_not() {
        // Built at run time, so the repository scan below does not take it for a variable read.
        let typo = format!("REPROD_{}", "SERVR_LISTEN");
        let err = Config::load(None, env(&[(&typo, "127.0.0.1:1")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&typo) && err.contains("names no configuration option"),
            "{err}"
        );
        let others: Vec<(String, String)> = OTHER_VARIABLES
            .iter()
            .map(|v| (v.to_string(), "x".to_string()))
            .collect();
        Config::load(None, others).unwrap();
    }

    /// Every `REPROD_*` name the repository's code and scripts use is an option or in [`OTHER_VARIABLES`].
    #[test]
    fn the_list_of_other_variables_is_complete() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        // Strings that look like variables but are not read from the environment.
        let not_variables = ["REPROD_BIT_FOR_BIT_REPRODUCIBLE"];
        let mut files = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().unwrap().is_dir() {
                    if !matches!(name.as_str(), "target" | ".git" | "snapshots") {
                        dirs.push(path);
                    }
                } else if name.ends_with(".rs") || name.ends_with(".sh") || name == "run" {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 20, "{files:?}");
        let mut unknown = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (at, _) in text.match_indices("REPROD_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                let name = name.trim_end_matches('_');
                if name.len() <= "REPROD".len() || not_variables.contains(&name) {
                    continue;
                }
                let rest = name["REPROD_".len()..].to_ascii_lowercase();
                if leaf_path(&defaults, &rest).is_none() && !OTHER_VARIABLES.contains(&name) {
                    unknown.push(format!("{name} in {}", file.display()));
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "add these to OTHER_VARIABLES: {unknown:?}"
        );
    }

    #[test]
    fn empty_short_or_shared_tokens_are_refused_naming_the_key_never_the_token() {
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).map(|_| ());
        let err = load(&[("REPROD_SERVER_SUBMIT_TOKENS", "[\"\"]")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.submit_tokens[0] (set by REPROD_SERVER_SUBMIT_TOKENS)")
                && err.contains("at least 16 characters; this one has 0"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[server]\nsubmit_tokens = [\"a-long-enough-token-0\", \"short-s3cret\"]\n",
        )
        .unwrap();
        let err = Config::load(Some(&p), Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("server.submit_tokens[1]:") && err.contains("this one has 12"),
            "{err}"
        );
        assert!(!err.contains("short-s3cret"), "{err}");
        let err = load(&[("REPROD_SERVER_WORKER_TOKENS", "{w1 = \"tok\"}")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.worker_tokens.w1"), "{err}");
        let err = load(&[(
            "REPROD_SERVER_SUBMIT_TOKENS",
            "[\"has spaces in it, 0123\"]",
        )])
        .unwrap_err()
        .to_string();
        assert!(err.contains("printable ASCII without spaces"), "{err}");
        assert!(!err.contains("has spaces"), "{err}");
        let same = "{a = \"the-same-token-01234\", b = \"the-same-token-01234\"}";
        let err = load(&[("REPROD_SERVER_WORKER_TOKENS", same)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("the same token"), "{err}");
        assert!(!err.contains("the-same-token"), "{err}");
        load(&[
            ("REPROD_SERVER_SUBMIT_TOKENS", "[\"a-long-enough-token-0\"]"),
            (
                "REPROD_SERVER_WORKER_TOKENS",
                "{a = \"another-long-token-1\"}",
            ),
        ])
        .unwrap();
    }

    #[test]
    fn secrets_are_redacted_for_display() {
        let c = Config::load(
            None,
            env(&[
                ("REPROD_SERVER_SUBMIT_TOKENS", "[\"a-long-enough-token-0\"]"),
                (
                    "REPROD_SERVER_WORKER_TOKENS",
                    "{a = \"another-long-token-1\"}",
                ),
                (
                    "REPROD_SOURCE_MIRRORS",
                    "{\"https://github.com/\" = \"https://bot:hunter22@git.internal/gh/\"}",
                ),
                ("REPROD_SERVER_PUBLIC_URL", "https://me:pw@reprod.example/"),
            ]),
        )
        .unwrap();
        let shown = toml::to_string(&c.redacted()).unwrap();
        for secret in [
            "a-long-enough-token-0",
            "another-long-token-1",
            "hunter22",
            ":pw@",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("<redacted: 21 characters>"), "{shown}");
        assert!(
            shown.contains("https://bot:<redacted: 8 characters>@git.internal/gh/"),
            "{shown}"
        );
        assert_eq!(
            crate::text::redact_url_password("https://git.internal/x"),
            "https://git.internal/x"
        );
        assert_eq!(
            crate::text::redact_url_password("https://user@git.internal/a:b@c"),
            "https://user@git.internal/a:b@c"
        );
    }
}
