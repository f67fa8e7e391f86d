//! Source checkout through the mirror cache, with real git repositories.

mod common;

use std::process::Command;

use common::*;
use reprod::source::{self, SourceConfig, SourceError};

fn config(cache: &std::path::Path) -> SourceConfig {
    SourceConfig {
        cache_dir: cache.to_path_buf(),
        allow_file: true,
        ..SourceConfig::default()
    }
}

fn head_of(dir: &std::path::Path) -> String {
    sh(Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir))
    .trim()
    .to_string()
}

#[test]
fn checkout_is_exact_and_the_mirror_is_reused() {
    let repo = Repo::hello();
    let scratch = tempfile::tempdir().unwrap();
    let cfg = config(&scratch.path().join("cache"));
    let first = source::checkout(&cfg, &repo.url, &repo.commit, &scratch.path().join("a")).unwrap();
    assert_eq!(first.commit, repo.commit);
    assert_eq!(head_of(&scratch.path().join("a")), repo.commit);
    let build = std::fs::read(scratch.path().join("a/build.sh")).unwrap();
    assert_eq!(
        build,
        std::fs::read(project_root().join("examples/hello/build.sh")).unwrap()
    );

    // With the origin gone, a second job is served from the mirror alone.
    std::fs::remove_dir_all(repo.dir.path().join("hello.git")).unwrap();
    let second =
        source::checkout(&cfg, &repo.url, &repo.commit, &scratch.path().join("b")).unwrap();
    assert_eq!(second.commit, repo.commit);
    assert_eq!(head_of(&scratch.path().join("b")), repo.commit);
    // One mirror (beside it, its lock file).
    let mut entries: Vec<String> = std::fs::read_dir(scratch.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries[0].ends_with(".git") && entries[1] == format!("{}.lock", entries[0]),
        "{entries:?}"
    );
}

#[test]
fn spdx_style_uri_and_mirror_map_reach_the_same_repository() {
    let repo = Repo::hello();
    let scratch = tempfile::tempdir().unwrap();
    let mut cfg = config(&scratch.path().join("cache"));
    let bare = repo.dir.path().join("hello.git");
    cfg.mirrors.insert(
        "https://git.example.invalid/".into(),
        format!("file://{}/", repo.dir.path().display()),
    );
    // What SLSA v1 writes: git+https://host/path@refs/heads/main
    let got = source::checkout(
        &cfg,
        "git+https://git.example.invalid/hello.git@refs/heads/main",
        &repo.commit,
        &scratch.path().join("w"),
    )
    .unwrap();
    assert_eq!(got.fetched_url, format!("file://{}", bare.display()));
    assert_eq!(head_of(&scratch.path().join("w")), repo.commit);
}

#[test]
fn unknown_commit_unreachable_repository_and_malformed_commit() {
    let repo = Repo::hello();
    let scratch = tempfile::tempdir().unwrap();
    let cfg = config(&scratch.path().join("cache"));
    let missing = "89abcdef0123456789abcdef0123456789abcdef";
    let err = source::checkout(&cfg, &repo.url, missing, &scratch.path().join("x")).unwrap_err();
    assert!(matches!(err, SourceError::CommitNotFound { .. }), "{err}");
    assert!(err.to_string().contains(missing));

    let err = source::checkout(
        &cfg,
        "file:///nonexistent/repo.git",
        &repo.commit,
        &scratch.path().join("y"),
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::Fetch { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/repo.git"), "{err}");

    let err = source::checkout(&cfg, &repo.url, "main", &scratch.path().join("z")).unwrap_err();
    assert!(matches!(err, SourceError::BadCommit(_)), "{err}");
}

/// A process killed mid-fetch leaves git's `*.lock` files in the mirror; concurrent jobs share it. Both
/// must still check out (the daemon's kill -9 test found the first).
#[test]
fn stale_git_locks_and_concurrent_jobs_do_not_break_the_mirror() {
    let repo = Repo::hello();
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("cache");
    let cfg = config(&cache);
    source::checkout(&cfg, &repo.url, &repo.commit, &scratch.path().join("first")).unwrap();
    let mirror = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "git"))
        .unwrap();
    // A new commit upstream forces a fetch into the mirror, which would need the locked ref.
    let src = repo.dir.path().join("src");
    std::fs::write(src.join("new.txt"), "new\n").unwrap();
    sh(Command::new("git").args(["add", "-A"]).current_dir(&src));
    sh(Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "-m",
            "new",
        ])
        .current_dir(&src));
    let bare = repo.dir.path().join("hello.git");
    sh(Command::new("git")
        .args(["push", "-q", bare.to_str().unwrap(), "main"])
        .current_dir(&src));
    let new_commit = head_of(&src);
    std::fs::write(mirror.join("refs/heads/main.lock"), "stale").unwrap();
    std::fs::write(mirror.join("packed-refs.lock"), "stale").unwrap();

    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (cfg, url, commit) = (cfg.clone(), repo.url.clone(), new_commit.clone());
            let dest = scratch.path().join(format!("job-{i}"));
            std::thread::spawn(move || {
                source::checkout(&cfg, &url, &commit, &dest).map(|c| c.commit)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), new_commit);
    }
    assert!(!mirror.join("refs/heads/main.lock").exists());
}

/// The repository is the provenance's choice: a fetch stops at a byte cap (and a time limit) instead of
/// filling the mirror cache.
#[test]
fn a_fetch_stops_at_its_byte_cap() {
    let repo = Repo::hello();
    let cache = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let capped = SourceConfig {
        max_fetch_bytes: 16,
        ..config(cache.path())
    };
    match source::checkout(&capped, &repo.url, &repo.commit, &dest.path().join("c")) {
        Err(SourceError::Fetch { detail, .. }) => {
            assert!(detail.contains("source.max_fetch_bytes"), "{detail}")
        }
        other => panic!("expected a stopped fetch, got {other:?}"),
    }
    // Within the cap, the same fetch works.
    let fine = source::checkout(
        &config(cache.path()),
        &repo.url,
        &repo.commit,
        &dest.path().join("d"),
    );
    assert!(fine.is_ok(), "{fine:?}");
}
