//! Source checkout: a bare mirror per repository (reused across jobs), then a checkout of the exact commit.
//!
//! git2 is blocking: call these functions from `spawn_blocking`.

use std::path::{Path, PathBuf};

use git2::{FetchOptions, Oid, Repository};
use serde::Deserialize;

/// How repositories may be reached.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Directory holding the bare mirrors (empty: `<data_dir>/git`).
    pub cache_dir: PathBuf,
    /// Allow `file://` URLs and local paths (tests and air-gapped mirrors); off by default.
    pub allow_file: bool,
    /// Prefix rewrites applied to repository URLs before anything else, longest prefix first
    /// (e.g. `"https://github.com/" = "https://git.internal/mirror/github/"`).
    pub mirrors: crate::mirror::MirrorMap,
    /// A fetch from the remote stops after this long (the server's provenance chooses the URL).
    pub fetch_timeout_secs: u64,
    /// A fetch from the remote stops after receiving this many bytes.
    pub max_fetch_bytes: u64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            cache_dir: PathBuf::new(),
            allow_file: false,
            mirrors: Default::default(),
            fetch_timeout_secs: 900,
            max_fetch_bytes: 8 << 30,
        }
    }
}

/// libgit2's connect and read timeouts, set once per process: a remote that accepts and then says nothing
/// cannot hold a job until its deadline.
fn set_network_timeouts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: called once, before any fetch of this process, as libgit2 requires of global options.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(30_000);
            let _ = git2::opts::set_server_timeout_in_milliseconds(60_000);
        }
    });
}

/// Schemes reprod fetches from; `file` additionally needs [`SourceConfig::allow_file`].
pub const ALLOWED_SCHEMES: &[&str] = &["https", "git", "ssh"];

/// Why a source could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("repository URL {url:?} uses scheme {scheme:?}, which is not allowed (allowed: https, git, ssh{file}); {hint}",
        file = if *.allow_file { ", file" } else { "" },
        hint = if scheme == "file" { "set `source.allow_file = true` to use local repositories" } else { "map it to an allowed URL with `source.mirrors`" })]
    DisallowedScheme {
        url: String,
        scheme: String,
        allow_file: bool,
    },
    #[error("recorded commit {0:?} is not a full hex object id (40 or 64 hex digits)")]
    BadCommit(String),
    #[error("fetching {url}: {detail}")]
    Fetch {
        url: String,
        detail: String,
        /// The network failed (no answer, reset, a TLS or server error) rather than the repository being
        /// refused or absent: worth retrying, never a verdict.
        transient: bool,
    },
    #[error("repository {url} does not contain commit {commit}")]
    CommitNotFound { url: String, commit: String },
    #[error("checked out HEAD is {head}, not the recorded commit {commit}")]
    HeadMismatch { head: String, commit: String },
    #[error("git error in {path}: {error}")]
    Git { path: String, error: git2::Error },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// A successful checkout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkout {
    /// The URL actually fetched (after mirror rewrites).
    pub fetched_url: String,
    pub commit: String,
}

/// Normalizes a provenance URI to a fetchable URL: strips SPDX-style `git+` and a trailing `@ref`.
pub fn normalize_uri(uri: &str) -> String {
    let uri = uri.trim().strip_prefix("git+").unwrap_or(uri.trim());
    if let Some(scheme_end) = uri.find("://") {
        let path_start = uri[scheme_end + 3..].find('/').map(|i| i + scheme_end + 3);
        if let Some(ps) = path_start {
            if let Some(at) = uri[ps..].rfind('@') {
                return uri[..ps + at].to_string();
            }
        }
    }
    uri.to_string()
}

/// Applies the longest matching mirror prefix.
pub fn rewrite(config: &SourceConfig, url: &str) -> String {
    config
        .mirrors
        .rewrite(url)
        .unwrap_or_else(|| url.to_string())
}

/// The scheme of a URL: `ssh` for scp-like `user@host:path`, `file` for local paths.
pub fn scheme(url: &str) -> String {
    if let Some(i) = url.find("://") {
        return url[..i].to_ascii_lowercase();
    }
    let scp_like = url
        .split_once(':')
        .is_some_and(|(host, _)| !host.contains('/') && host.len() > 1);
    if scp_like {
        "ssh".into()
    } else {
        "file".into()
    }
}

/// Checks the scheme of the (rewritten) URL against the allow-list.
pub fn check_scheme(config: &SourceConfig, url: &str) -> Result<(), SourceError> {
    let scheme = scheme(url);
    let ok = ALLOWED_SCHEMES.contains(&scheme.as_str()) || (scheme == "file" && config.allow_file);
    if ok {
        Ok(())
    } else {
        Err(SourceError::DisallowedScheme {
            url: url.to_string(),
            scheme,
            allow_file: config.allow_file,
        })
    }
}

fn git_err(path: &Path) -> impl FnOnce(git2::Error) -> SourceError + '_ {
    move |error| SourceError::Git {
        path: path.display().to_string(),
        error,
    }
}

/// Fetches `commit` of `uri` into the mirror cache and checks it out into `dest` (created; must not exist).
pub fn checkout(
    config: &SourceConfig,
    uri: &str,
    commit: &str,
    dest: &Path,
) -> Result<Checkout, SourceError> {
    let url = rewrite(config, &normalize_uri(uri));
    check_scheme(config, &url)?;
    let valid_len = commit.len() == 40 || commit.len() == 64;
    if !valid_len || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SourceError::BadCommit(commit.to_string()));
    }
    let oid = Oid::from_str(commit).map_err(|_| SourceError::BadCommit(commit.to_string()))?;

    // Held until the job's copy is fetched: concurrent jobs (threads or processes) take turns per mirror.
    let (mirror, _lock) = mirror_for(config, &url)?;
    let want_ref = format!("refs/reprod/want/{commit}");
    ensure_commit(config, &mirror, &url, oid, commit, &want_ref)?;

    // The job's repository fetches that one ref from the local mirror: no network, only what is needed.
    std::fs::create_dir_all(dest).map_err(|error| SourceError::Io {
        path: dest.display().to_string(),
        error,
    })?;
    let repo = Repository::init(dest).map_err(git_err(dest))?;
    let mirror_path = mirror.path().display().to_string();
    let mut remote = repo.remote_anonymous(&mirror_path).map_err(git_err(dest))?;
    remote
        .fetch(&[format!("+{want_ref}:refs/reprod/checkout")], None, None)
        .map_err(git_err(dest))?;
    let object = repo.find_object(oid, None).map_err(git_err(dest))?;
    repo.checkout_tree(&object, Some(git2::build::CheckoutBuilder::new().force()))
        .map_err(git_err(dest))?;
    repo.set_head_detached(oid).map_err(git_err(dest))?;

    let head = repo
        .head()
        .map_err(git_err(dest))?
        .peel_to_commit()
        .map_err(git_err(dest))?
        .id();
    if head != oid {
        return Err(SourceError::HeadMismatch {
            head: head.to_string(),
            commit: commit.to_string(),
        });
    }
    Ok(Checkout {
        fetched_url: url,
        commit: head.to_string(),
    })
}

/// Opens (or creates) the bare mirror for a URL, holding its lock.
fn mirror_for(config: &SourceConfig, url: &str) -> Result<(Repository, MirrorLock), SourceError> {
    // An unset directory would put mirrors wherever the process happens to run.
    if config.cache_dir.as_os_str().is_empty() {
        return Err(SourceError::Io {
            path: config.cache_dir.display().to_string(),
            error: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "source.cache_dir is not set (Config::load sets it to <data_dir>/git)",
            ),
        });
    }
    let key = crate::oci::sha256_bytes(url.as_bytes());
    let path = config
        .cache_dir
        .join(format!("{}.git", &key["sha256:".len()..][..24]));
    std::fs::create_dir_all(&config.cache_dir).map_err(|error| SourceError::Io {
        path: config.cache_dir.display().to_string(),
        error,
    })?;
    let lock = MirrorLock::acquire(&path)?;
    if path.exists() {
        match Repository::open_bare(&path) {
            Ok(repo) => return Ok((repo, lock)),
            // Left half-created by a process that died; nobody else holds it, so start it again.
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "re-creating an unusable git mirror");
                std::fs::remove_dir_all(&path).map_err(|error| SourceError::Io {
                    path: path.display().to_string(),
                    error,
                })?;
            }
        }
    }
    Ok((Repository::init_bare(&path).map_err(git_err(&path))?, lock))
}

/// Exclusive use of one mirror across threads and processes: an OS file lock on `<mirror>.lock`, released
/// when dropped (also when the process dies). While it is held, git's own `*.lock` files in the mirror can
/// only be leftovers of a process killed mid-fetch, and are removed.
struct MirrorLock {
    _file: std::fs::File,
}

impl MirrorLock {
    fn acquire(mirror: &Path) -> Result<Self, SourceError> {
        let lock_path = PathBuf::from(format!("{}.lock", mirror.display()));
        let io = |error| SourceError::Io {
            path: lock_path.display().to_string(),
            error,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        remove_stale_git_locks(mirror, 0);
        Ok(MirrorLock { _file: file })
    }
}

fn remove_stale_git_locks(dir: &Path, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && depth < 8 && (depth > 0 || name == "refs") {
            remove_stale_git_locks(&path, depth + 1);
        } else if !is_dir && name.to_string_lossy().ends_with(".lock") {
            tracing::warn!(path = %path.display(), "removing a git lock left by a process that died");
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Makes sure the mirror has the commit (fetching branches and tags, then the object itself if the server
/// allows it) and pins it under `want_ref`.
fn ensure_commit(
    config: &SourceConfig,
    mirror: &Repository,
    url: &str,
    oid: Oid,
    commit: &str,
    want_ref: &str,
) -> Result<(), SourceError> {
    let has = |repo: &Repository| repo.find_commit(oid).is_ok();
    if !has(mirror) {
        set_network_timeouts();
        let mut remote = mirror
            .remote_anonymous(url)
            .map_err(git_err(mirror.path()))?;
        let started = std::time::Instant::now();
        let limit = std::time::Duration::from_secs(config.fetch_timeout_secs);
        let max_bytes = config.max_fetch_bytes;
        let stopped = std::cell::Cell::new(None::<String>);
        let bounded = || {
            let mut callbacks = git2::RemoteCallbacks::new();
            callbacks.transfer_progress(|p| {
                let why = if p.received_bytes() as u64 > max_bytes {
                    Some(format!(
                        "stopped after receiving over {max_bytes} bytes (source.max_fetch_bytes)"
                    ))
                } else if started.elapsed() > limit {
                    Some(format!(
                        "stopped after {}s (source.fetch_timeout_secs)",
                        limit.as_secs()
                    ))
                } else {
                    None
                };
                let go_on = why.is_none();
                if why.is_some() {
                    stopped.set(why);
                }
                go_on
            });
            let mut options = FetchOptions::new();
            options.remote_callbacks(callbacks);
            options
        };
        let mut options = bounded();
        options.download_tags(git2::AutotagOption::All);
        remote
            .fetch(
                &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                Some(&mut options),
                None,
            )
            .map_err(|e| {
                let limit = stopped.take();
                SourceError::Fetch {
                    url: url.to_string(),
                    transient: limit.is_none() && transient(&e),
                    detail: limit.unwrap_or_else(|| e.message().to_string()),
                }
            })?;
        if !has(mirror) {
            // Servers with uploadpack.allowReachableSHA1InWant serve unadvertised commits; others refuse.
            let _ = remote.fetch(&[commit], Some(&mut bounded()), None);
        }
        if !has(mirror) {
            return Err(SourceError::CommitNotFound {
                url: url.to_string(),
                commit: commit.to_string(),
            });
        }
    }
    mirror
        .reference(want_ref, oid, true, "reprod: pin recorded commit")
        .map_err(git_err(mirror.path()))?;
    Ok(())
}

/// Whether a fetch failed on the way (network, TLS, a server error) rather than by an answer about the
/// repository (absent, refused, unauthorized).
fn transient(e: &git2::Error) -> bool {
    use git2::{ErrorClass, ErrorCode};
    if matches!(
        e.code(),
        ErrorCode::NotFound | ErrorCode::Auth | ErrorCode::Certificate
    ) {
        return false;
    }
    let m = e.message().to_ascii_lowercase();
    let definitive = [
        "not found",
        "404",
        "401",
        "403",
        "could not find repository",
        "does not appear to be a git repository",
        "authentication",
        "failed to resolve path",
        "no such file or directory",
    ];
    if definitive.iter().any(|d| m.contains(d)) {
        return false;
    }
    matches!(
        e.class(),
        ErrorClass::Net | ErrorClass::Os | ErrorClass::Ssl | ErrorClass::Http
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_spdx_and_ref_suffix() {
        assert_eq!(
            normalize_uri("git+https://github.com/a/b@refs/heads/main"),
            "https://github.com/a/b"
        );
        assert_eq!(
            normalize_uri("git+https://github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            normalize_uri("https://user@host/a/b"),
            "https://user@host/a/b"
        );
        assert_eq!(
            normalize_uri("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
    }

    #[test]
    fn schemes_and_allow_list() {
        let mut cfg = SourceConfig::default();
        assert_eq!(scheme("git@github.com:a/b"), "ssh");
        assert_eq!(scheme("/srv/repo"), "file");
        assert_eq!(scheme("FILE:///srv/repo"), "file");
        assert!(check_scheme(&cfg, "https://x/y").is_ok());
        assert!(matches!(
            check_scheme(&cfg, "http://x/y"),
            Err(SourceError::DisallowedScheme { .. })
        ));
        let err = check_scheme(&cfg, "file:///srv/r").unwrap_err();
        assert!(err.to_string().contains("allow_file"), "{err}");
        cfg.allow_file = true;
        assert!(check_scheme(&cfg, "file:///srv/r").is_ok());
    }

    #[test]
    fn an_unset_mirror_directory_is_refused_rather_than_the_working_directory_used() {
        let cfg = SourceConfig {
            allow_file: true,
            ..SourceConfig::default()
        };
        let dest = tempfile::tempdir().unwrap();
        let err = checkout(
            &cfg,
            "file:///nonexistent/repo",
            &"a".repeat(40),
            dest.path(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("source.cache_dir is not set"),
            "{err}"
        );
    }

    #[test]
    fn longest_mirror_prefix_wins() {
        let mut cfg = SourceConfig::default();
        cfg.mirrors
            .insert("https://github.com/".into(), "file:///m/gh/".into());
        cfg.mirrors
            .insert("https://github.com/org/".into(), "file:///m/org/".into());
        assert_eq!(rewrite(&cfg, "https://github.com/org/x"), "file:///m/org/x");
        assert_eq!(rewrite(&cfg, "https://github.com/y/x"), "file:///m/gh/y/x");
        assert_eq!(
            rewrite(&cfg, "https://gitlab.com/y"),
            "https://gitlab.com/y"
        );
    }
}
