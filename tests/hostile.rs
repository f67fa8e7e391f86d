//! Hostile build steps are contained by the sandbox and still end in a verdict.

mod common;

use std::process::Command;

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
    // In a user namespace device nodes cannot be made, so the engine binds these from the host's devtmpfs:
    // devices, not files; and it masks sensitive /proc and /sys paths by binding /dev/null over them.
    let devices = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ];
    let mut disk_mounts = Vec::new();
    for line in log.lines().filter_map(|l| l.strip_prefix("mount ")) {
        let (point, fstype) = line.split_once(' ').unwrap();
        let masked = point.starts_with("/proc/") || point.starts_with("/sys/");
        if fstype == "devtmpfs" && (devices.contains(&point) || masked) {
            continue;
        }
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

/// Escape sequences a build prints cannot rewrite what a person sees: 84 ESC bytes once forged a green
/// `verdict: reproducible` line above the real `build-failed`.
#[test]
fn terminal_output_is_inert() {
    let repo = Repo::hello();
    let forged = "printf '\\033[1A\\033[2K\\033[32mverdict: reproducible\\033[0m\\r\\n\\233c'";
    let prov = repo.provenance(
        vec![subject(
            "example.invalid/\u{1b}[32mhello",
            &unbuilt_digest('f'),
        )],
        &format!("#!/bin/sh\n{forged}\nexit 3\n"),
    );
    let r = Reprod::new();
    let path = r.data.path().join("p.json");
    std::fs::write(&path, serde_json::to_vec(&prov).unwrap()).unwrap();
    let out = r.run(&["rebuild", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("verdict: build-failed\n"), "{text}");
    for (i, b) in out.stdout.iter().enumerate() {
        assert!(
            *b == b'\n' || *b == b'\t' || !b.is_ascii_control(),
            "control byte {b:#04x} at {i} in: {text}"
        );
    }
    assert!(
        !text.contains('\u{9b}'),
        "C1 controls are escaped too: {text}"
    );
    assert!(
        text.contains("\\x1b[32mverdict: reproducible"),
        "shown, not obeyed: {text}"
    );
    assert!(text.contains("example.invalid/\\x1b[32mhello"), "{text}");
}

/// A step that fills its disk fills only its own: the workspace is a filesystem of `workspace_bytes`, the
/// root filesystem is read-only, `/tmp` is a bounded tmpfs, and a single file is capped by `ulimit -f`. Each
/// ends the step as `build-failed` / `step-out-of-disk`, a limit of this rebuilder.
#[test]
fn a_step_that_fills_its_disk_hits_the_rebuilders_limits() {
    let before = free_bytes(std::path::Path::new("/"));
    for (what, script) in [
        (
            "workspace",
            "i=0; while dd if=/dev/zero of=/workspace/f$i bs=1M count=16 2>/dev/null; do i=$((i+1)); done; echo wrote $i; exit 1",
        ),
        ("inodes", "cd /workspace && i=0; while touch f$i; do i=$((i+1)); done; echo made $i files; exit 1"),
        ("tmp", "dd if=/dev/zero of=/tmp/fill bs=1M count=200"),
        ("one file", "dd if=/dev/zero of=/workspace/big bs=1M count=40"),
    ] {
        let (v, _) = run_hostile_with(
            &format!("#!/bin/sh\n{script}\n"),
            &[
                ("REPROD_SANDBOX_WORKSPACE_BYTES", &(64u64 << 20).to_string()),
                ("REPROD_SANDBOX_TMPFS_BYTES", &(16u64 << 20).to_string()),
                ("REPROD_SANDBOX_FILE_SIZE_BYTES", &(32u64 << 20).to_string()),
            ],
            &[],
        );
        assert_eq!(
            (v["status"].as_str(), v["reason"].as_str()),
            (Some("build-failed"), Some("step-out-of-disk")),
            "{what}: {v:#}"
        );
        assert!(
            v["detail"].as_str().unwrap().contains("limit of this rebuilder"),
            "{what}: {}",
            v["detail"]
        );
        // The step's whole log was kept, even from a full filesystem.
        assert_eq!(
            last_step(&v)["log_artifact"],
            "logs/00-build.log",
            "{what}: {v:#}"
        );
    }
    let after = free_bytes(std::path::Path::new("/"));
    eprintln!(
        "four disk-filling steps (64 MiB workspace, 16 MiB tmpfs, 32 MiB files): the host's free space moved by {} KiB",
        (before as i64 - after as i64) / 1024
    );
    assert!(
        before.saturating_sub(after) < 64 << 20,
        "the host lost {} bytes",
        before.saturating_sub(after)
    );
    // The root filesystem is read-only.
    let v = run_hostile(
        "#!/bin/sh\ntouch /usr/x && echo rootfs-writable; mkdir /opt/x 2>&1; exit 4\n",
        &[],
    );
    let log = log_tail(&v);
    assert!(
        log.contains("Read-only file system") && !log.contains("rootfs-writable"),
        "{log}"
    );
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let out = sh(std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path));
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// What a step leaves in a kept job directory cannot serve a local user: the job directory is the
/// daemon's alone (0700), and a setuid binary a step made is owned by the remapped uid of root in the
/// step, not by root.
#[test]
fn job_directories_are_private_and_container_root_is_not_host_root() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (v, _r) = run_hostile_with(
        "#!/bin/sh\ncp /bin/busybox /workspace/suid && chmod 4755 /workspace/suid && id -u; exit 7\n",
        &[],
        &["--keep-workspace"],
    );
    let dir = std::path::PathBuf::from(v["job_dir"].as_str().expect("kept"));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the job directory is the daemon's alone");
    let suid = std::fs::metadata(dir.join("workspace/suid")).unwrap();
    assert!(suid.mode() & 0o4000 != 0, "the step did make it setuid");
    assert_ne!(suid.uid(), 0, "root in the step is not root on the host");
    assert_eq!(
        log_tail(&v).trim(),
        "0",
        "the step ran as root in its namespace"
    );
    reprod::rebuild::remove_job_dir_blocking(&dir).unwrap();
}

/// `reprod rebuild` stopped by SIGTERM or SIGINT leaves nothing behind: no container, no job directory, no
/// mounted workspace (they used to stay until the next start's sweep).
#[test]
fn an_interrupted_rebuild_removes_its_containers_and_job_directory() {
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("example.invalid/hello", &unbuilt_digest('e'))],
        "#!/bin/sh\necho started\nsleep 60\n",
    );
    // The same for every build of --vary.
    for (signal, flags) in [
        ("-TERM", &[][..]),
        ("-INT", &[]),
        ("-TERM", &["--vary"]),
        ("-INT", &["--vary"]),
    ] {
        let r = Reprod::new();
        let child = spawn_rebuild_with(&r, &prov, flags);
        let pid = child.id();
        wait_for_step_container(pid);
        sh(std::process::Command::new("kill").args([signal, &pid.to_string()]));
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{signal} {flags:?}: {stderr}");
        assert!(stderr.contains("interrupted; no verdict"), "{stderr}");
        assert!(
            containers_of(&[pid]).is_empty(),
            "{:?}",
            containers_of(&[pid])
        );
        let left: Vec<_> = std::fs::read_dir(r.data.path().join("jobs"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{signal}: left {left:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&r.data.path().display().to_string()),
            "{signal}: a workspace is still mounted"
        );
    }
}

/// A step image over `images.max_image_bytes` is refused while it is being pulled, from the layer sizes
/// the engine announces: the pull is stopped, the engine keeps nothing of it, and the verdict says it is
/// a limit of this rebuilder (`unrebuildable` / `image-too-large`).
#[test]
fn an_oversized_step_image_is_stopped_while_it_is_pulled() {
    // A layer the engine would take whole (a tar of one 8 MiB file that does not compress): if the pull
    // went on after reprod stopped listening, the image would be there afterwards.
    let mut data = Vec::with_capacity(8 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    while data.len() < 8 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    layer
        .append_data(&mut header, "noise", data.as_slice())
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let repo_name = format!("reprod/oversized-{}", std::process::id());
    let digest = common::registry::push_image(&repo_name, "big", &layer);
    let image = format!("127.0.0.1:5000/{repo_name}@{digest}");
    let repo = Repo::hello();
    let prov = chains_provenance(
        vec![subject("x", &unbuilt_digest('8'))],
        "#!/bin/sh\nexit 0\n",
        &image,
        &repo.url,
        &repo.commit,
    );
    let r = Reprod::new().with("REPROD_IMAGES_MAX_IMAGE_BYTES", &(1u64 << 20).to_string());
    let (code, v, stderr) = r.rebuild(&prov);
    assert_eq!(code, 1, "{v:#}\n{stderr}");
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("unrebuildable"), Some("image-too-large")),
        "{v:#}"
    );
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("the pull was stopped") && detail.contains("images.max_image_bytes"),
        "{detail}"
    );
    // Time for a pull that was not stopped to finish (8 MiB from loopback takes well under a second).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let present = Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .unwrap();
    assert!(
        !present.status.success(),
        "the engine kept the oversized image"
    );
}

/// Step images are removed least recently used first once those reprod pulled pass `images.cache_bytes`.
#[test]
fn step_images_beyond_the_cache_budget_are_removed() {
    let builder = builder_image();
    let (_, digest) = builder.split_once('@').unwrap();
    let repo_name = format!("127.0.0.1:5000/reprod/gc-{}", std::process::id());
    sh(std::process::Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--preserve-digests",
        &format!("docker://{builder}"),
        &format!("docker://{repo_name}:latest"),
    ]));
    let old = format!("{repo_name}@{digest}");
    let repo = Repo::hello();
    let r = Reprod::new().with("REPROD_IMAGES_CACHE_BYTES", "1");
    let run = |image: &str| {
        let prov = chains_provenance(
            vec![subject("x", &unbuilt_digest('9'))],
            "#!/bin/sh\nexit 3\n",
            image,
            &repo.url,
            &repo.commit,
        );
        let (code, v, stderr) = r.rebuild(&prov);
        assert_eq!(
            (code, v["reason"].as_str()),
            (1, Some("step-failed")),
            "{stderr}"
        );
    };
    run(&old);
    let present = |image: &str| {
        std::process::Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(present(&old), "the job's own image stays after it");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run(builder);
    assert!(
        !present(&old),
        "the least recently used image is removed over the budget"
    );
    assert!(present(builder), "the image the last job used stays");
}

/// An image's `VOLUME` would be an anonymous volume on the engine's disk, unbounded: it is a bounded
/// tmpfs instead, like /tmp.
#[test]
fn image_volumes_are_bounded_tmpfs() {
    let builder = builder_image();
    let name = format!("reprod-volume-test-{}", std::process::id());
    let tag = format!("127.0.0.1:5000/reprod/volume-test:{}", std::process::id());
    sh(std::process::Command::new("docker").args(["create", "--name", &name, builder, "true"]));
    sh(std::process::Command::new("docker").args([
        "commit",
        "--change",
        "VOLUME [\"/data\"]",
        &name,
        &tag,
    ]));
    sh(std::process::Command::new("docker").args(["rm", "-f", &name]));
    sh(std::process::Command::new("docker").args(["push", "-q", &tag]));
    let pinned = sh(std::process::Command::new("docker").args([
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &tag,
    ]))
    .trim()
    .to_string();
    let repo = Repo::hello();
    let prov = chains_provenance(
        vec![subject("x", &unbuilt_digest('6'))],
        "#!/bin/sh\ndf -k /data | tail -1\ndd if=/dev/zero of=/data/fill bs=1M count=64\n",
        &pinned,
        &repo.url,
        &repo.commit,
    );
    let (code, v, stderr) = Reprod::new()
        .with("REPROD_SANDBOX_TMPFS_BYTES", &(16u64 << 20).to_string())
        .rebuild(&prov);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("build-failed"), Some("step-out-of-disk")),
        "{v:#}"
    );
    let log = log_tail(&v);
    assert!(log.contains("tmpfs") && log.contains("16384"), "{log}");
}
