//! Hostile build steps are contained by the sandbox and still end in a verdict.

mod common;

use common::*;
use serde_json::Value;

/// Runs one hostile script as the only step, with tight limits, and returns the verdict.
fn run_hostile(script: &str, extra_env: &[(&str, &str)]) -> Value {
    run_hostile_with(script, extra_env, &[]).0
}

/// Like [`run_hostile`], with extra `rebuild` flags; also returns the data directory (kept alive).
fn run_hostile_with(script: &str, extra_env: &[(&str, &str)], flags: &[&str]) -> (Value, Reprod) {
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("example.invalid/hello", &unbuilt_digest('f'))],
        script,
    );
    let mut r = Reprod::new()
        .with("REPROD_SANDBOX_PIDS_LIMIT", "64")
        .with("REPROD_SANDBOX_MEMORY_BYTES", &(128u64 << 20).to_string())
        .with("REPROD_SANDBOX_STEP_TIMEOUT_SECS", "20")
        .with("REPROD_SANDBOX_LOG_LIMIT_BYTES", "65536");
    for (k, v) in extra_env {
        r = r.with(k, v);
    }
    let (code, v, stderr) = r.rebuild_with(&prov, flags);
    assert_eq!(
        code, 1,
        "a hostile step is never reproducible: {v:#}\n{stderr}"
    );
    assert!(v["status"].is_string(), "no verdict: {stderr}");
    let orphans = orphan_containers();
    assert!(orphans.is_empty(), "containers left behind: {orphans:?}");
    (v, r)
}

fn log_tail(v: &Value) -> String {
    last_step(v)["log_tail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn network_is_absent() {
    let v = run_hostile(
        "#!/bin/sh\n\
         echo \"interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')\"\n\
         echo \"routes: $(ip route 2>/dev/null | wc -l)\"\n\
         if wget -q -T 3 -O /dev/null http://127.0.0.1:5000/v2/; then echo REACHED-REGISTRY; else echo wget-failed; fi\n\
         exit 6\n",
        &[],
    );
    let log = log_tail(&v);
    assert!(log.contains("interfaces: lo \n"), "{log}");
    assert!(log.contains("routes: 0"), "{log}");
    assert!(
        log.contains("wget-failed") && !log.contains("REACHED-REGISTRY"),
        "{log}"
    );
    assert_eq!(v["status"], "build-failed");
    assert_eq!(last_step(&v)["exit_code"], 6);
}

#[test]
fn fork_bomb_hits_the_pids_limit() {
    let v = run_hostile(
        "#!/bin/sh\nbomb() { bomb | bomb & }\nbomb\nsleep 3\necho \"bomb still running\"\nexit 1\n",
        &[("REPROD_SANDBOX_STEP_TIMEOUT_SECS", "8")],
    );
    let log = log_tail(&v);
    assert!(
        log.contains("can't fork"),
        "the pids limit was never hit: {log}"
    );
    assert_eq!(v["status"], "build-failed");
    let step = last_step(&v);
    assert!(
        step["duration_ms"].as_u64().unwrap() < 8_000 + 5_000,
        "{step}"
    );
}

#[test]
fn memory_hog_is_killed() {
    let v = run_hostile(
        "#!/bin/sh\necho allocating\nexec dd if=/dev/zero of=/dev/null bs=512M count=1\n",
        &[],
    );
    assert_eq!(v["status"], "build-failed", "{v:#}");
    assert_eq!(v["reason"], "step-out-of-memory");
    let step = last_step(&v);
    assert_eq!(step["termination"], "out-of-memory");
    assert_eq!(step["exit_code"], 137);
}

#[test]
fn endless_loop_is_killed_at_the_step_limit() {
    let v = run_hostile(
        "#!/bin/sh\necho spinning\nwhile :; do :; done\n",
        &[("REPROD_SANDBOX_STEP_TIMEOUT_SECS", "3")],
    );
    assert_eq!(v["status"], "build-failed", "{v:#}");
    assert_eq!(v["reason"], "step-timed-out");
    let step = last_step(&v);
    assert_eq!(step["termination"], "timed-out");
    assert_eq!(step["exit_code"], 137, "SIGKILL");
    let ms = step["duration_ms"].as_u64().unwrap();
    assert!((3_000..10_000).contains(&ms), "killed after {ms} ms");
}

#[test]
fn log_flood_is_truncated_with_a_marker() {
    let (v, _data) = run_hostile_with(
        "#!/bin/sh\necho FIRST-LINE-OF-LOG\nyes 'flood flood flood flood flood' | head -c 30000000\necho\necho LAST-LINE-OF-LOG\nexit 4\n",
        &[],
        &["--keep-workspace"],
    );
    let step = last_step(&v);
    assert_eq!(step["log_truncated"], true);
    assert!(step["log_bytes"].as_u64().unwrap() > 30_000_000, "{step}");
    let tail = log_tail(&v);
    assert!(
        tail.ends_with("LAST-LINE-OF-LOG"),
        "the tail is kept: {tail}"
    );
    assert_eq!(v["reason"], "step-failed");
    assert_eq!(step["exit_code"], 4);

    let job_dir = std::path::PathBuf::from(
        v["job_dir"]
            .as_str()
            .expect("job_dir with --keep-workspace"),
    );
    let log = std::fs::read_to_string(job_dir.join("logs/00-build.log")).unwrap();
    assert!(
        log.len() <= 65536 + 200,
        "capture is bounded: {} bytes",
        log.len()
    );
    assert!(log.starts_with("FIRST-LINE-OF-LOG\n"), "the head is kept");
    let marker = log
        .find("\n[reprod: log truncated: ")
        .expect("a visible truncation marker");
    assert!(
        marker > 30_000 && marker < 33_000,
        "marker between head and tail, at {marker}"
    );
}

#[test]
fn no_host_path_but_the_workspace_is_visible() {
    let host = tempfile::tempdir().unwrap();
    let marker = format!("reprod-host-marker-{}", std::process::id());
    std::fs::write(host.path().join(&marker), "secret").unwrap();
    let v = run_hostile(
        &format!(
            "#!/bin/sh\n\
             echo \"found: $(find / -name '{marker}' 2>/dev/null | wc -l)\"\n\
             awk '{{for (i = 1; i <= NF; i++) if ($i == \"-\") print \"mount\", $5, $(i + 1)}}' /proc/self/mountinfo\n\
             exit 5\n"
        ),
        &[],
    );
    let log = log_tail(&v);
    assert!(log.contains("found: 0"), "{log}");
    let allowed = [
        "/workspace",
        "/tekton/results",
        "/tekton/home",
        "/tekton/scripts",
        // Generated per container by the engine, not host content:
        "/etc/resolv.conf",
        "/etc/hostname",
        "/etc/hosts",
    ];
    let virtual_fs = [
        "overlay", "proc", "tmpfs", "devpts", "sysfs", "cgroup", "cgroup2", "mqueue",
    ];
    let mut disk_mounts = Vec::new();
    for line in log.lines().filter_map(|l| l.strip_prefix("mount ")) {
        let (point, fstype) = line.split_once(' ').unwrap();
        if !virtual_fs.contains(&fstype) {
            disk_mounts.push(point.to_string());
            assert!(
                allowed.contains(&point),
                "host filesystem mounted at {point} ({fstype}):\n{log}"
            );
        }
    }
    assert!(disk_mounts.contains(&"/workspace".to_string()), "{log}");
    assert_eq!(last_step(&v)["exit_code"], 5);
}

#[test]
fn job_deadline_stops_a_step_within_its_own_limit() {
    let v = run_hostile(
        "#!/bin/sh\necho long build\nsleep 60\n",
        &[("REPROD_SANDBOX_JOB_TIMEOUT_SECS", "3")],
    );
    assert_eq!(v["status"], "build-failed", "{v:#}");
    assert_eq!(v["reason"], "job-timed-out");
    assert!(
        v["detail"].as_str().unwrap().contains("3s"),
        "{}",
        v["detail"]
    );
    assert!(
        v["duration_ms"].as_u64().unwrap() < 20_000,
        "{}",
        v["duration_ms"]
    );
}
