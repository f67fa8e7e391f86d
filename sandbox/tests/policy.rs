//! The isolation policy, observed from inside a real container and from the engine.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use reprod_sandbox::{
    Executor, PinnedImage, Policy, Sandbox, SandboxError, StepSpec, Termination, LABEL_MANAGED,
};

mod common;

fn builder() -> PinnedImage {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("scripts/builder-image.sh"))
        .output()
        .expect("builder-image.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PinnedImage::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

fn policy() -> Policy {
    Policy {
        memory_bytes: 96 << 20,
        nano_cpus: 500_000_000,
        pids_limit: 40,
        step_timeout: Duration::from_secs(30),
        log_limit_bytes: 1 << 16,
        hostname: "reprod-test".into(),
        tmpfs_bytes: 16 << 20,
        ..Policy::default()
    }
}

fn spec(workspace: &std::path::Path, script: &str) -> StepSpec {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(workspace.join("ws")).unwrap();
    // Root in the step is a remapped uid on the host: the workspace must be writable for it.
    std::fs::set_permissions(workspace.join("ws"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let job_id = format!("policy-test-{}", std::process::id());
    StepSpec {
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        args: Some(vec![script.into()]),
        env: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
        working_dir: Some("/workspace".into()),
        ..common::step(job_id, "probe", builder(), workspace, "ws")
    }
}

#[tokio::test]
async fn limits_and_privileges_take_effect_inside_the_container() {
    let sandbox = Sandbox::connect(policy()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; \
                  echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max); \
                  echo memsw=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null || echo n/a); \
                  echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); \
                  echo cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null)/$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null); \
                  echo host=$(hostname) pwd=$(pwd) env=$(env | grep -E '^(A|B)=' | tr '\\n' ,); \
                  echo uidmap=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'); \
                  echo cgroup=$(grep -c ':/$' /proc/self/cgroup)/$(wc -l < /proc/self/cgroup); \
                  echo ulimits=$(ulimit -f)/$(ulimit -n)/$(ulimit -u); \
                  touch /usr/x 2>/dev/null && echo rootfs=writable || echo rootfs=read-only; \
                  echo tmp=$(df -k /tmp | tail -1 | tr -s ' ' | cut -d' ' -f2); \
                  touch /tmp/x /var/tmp/x /run/x && echo tmpfs=writable; \
                  echo written > /workspace/out.txt";
    let outcome = sandbox.run_step(&spec(dir.path(), script)).await.unwrap();
    let log = &outcome.log.text;
    assert!(outcome.succeeded(), "{log}");
    // CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID = bits 0, 1, 3, 4, 6, 7.
    assert!(log.contains("CapEff:\t00000000000000db"), "{log}");
    assert!(log.contains("CapBnd:\t00000000000000db"), "{log}");
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    assert!(log.contains(&format!("mem={}", 96 << 20)), "{log}");
    assert!(log.contains(&format!("pids={}", 40)), "{log}");
    assert!(log.contains("cpu=50000/100000"), "{log}");
    assert!(
        log.contains("host=reprod-test pwd=/workspace env=A=1,B=2,"),
        "{log}"
    );
    // Root in the step is not root on the host: uid 0 maps to the engine's remapped range.
    let root = sandbox.userns_root().expect("the engine remaps users");
    assert!(log.contains(&format!("uidmap=0 {} 65536", root.0)), "{log}");
    assert_ne!(root.0, 0);
    // A cgroup namespace of its own: every hierarchy's path is its root.
    let cgroup = log.split("cgroup=").nth(1).unwrap().lines().next().unwrap();
    let (at_root, all) = cgroup.split_once('/').unwrap();
    assert_eq!(at_root, all, "{log}");
    let p = policy();
    assert!(
        log.contains(&format!(
            "ulimits={}/{}/{}",
            p.file_size_bytes / 512,
            p.open_files,
            p.processes
        )),
        "{log}"
    );
    assert!(log.contains("rootfs=read-only"), "{log}");
    assert!(
        log.contains(&format!("tmp={}", p.tmpfs_bytes / 1024)),
        "{log}"
    );
    assert!(log.contains("tmpfs=writable"), "{log}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ws/out.txt")).unwrap(),
        "written\n"
    );
    assert!(
        outcome.image_id.starts_with("sha256:"),
        "{}",
        outcome.image_id
    );
}

#[tokio::test]
async fn exit_codes_and_timeouts_are_reported_and_containers_removed() {
    let sandbox = Sandbox::connect(Policy {
        step_timeout: Duration::from_secs(2),
        ..policy()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "echo out; echo err >&2; exit 42");
    s.job_id = format!("exit-test-{}", std::process::id());
    let outcome = sandbox.run_step(&s).await.unwrap();
    assert_eq!(
        (outcome.exit_code, outcome.termination),
        (42, Termination::Exited)
    );
    assert!(outcome.log.text.contains("out\n") && outcome.log.text.contains("err\n"));

    let mut s = spec(dir.path(), "trap '' TERM; sleep 60");
    s.job_id = format!("timeout-test-{}", std::process::id());
    let outcome = sandbox.run_step(&s).await.unwrap();
    assert_eq!(outcome.termination, Termination::TimedOut);
    assert!(
        outcome.duration < Duration::from_secs(15),
        "{:?}",
        outcome.duration
    );
    let left = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.reprod.job={}", s.job_id),
        ])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "container not removed");
}

#[tokio::test]
async fn mounts_outside_the_workspace_and_tags_are_refused() {
    let sandbox = Sandbox::connect(policy()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "true");
    s.mounts[0].workspace_subdir = "../../etc".into();
    assert!(matches!(
        sandbox.run_step(&s).await,
        Err(SandboxError::MountOutsideWorkspace { .. })
    ));

    // A symlink inside the workspace that points out of it is caught too.
    std::os::unix::fs::symlink("/etc", dir.path().join("escape")).unwrap();
    let mut s = spec(dir.path(), "true");
    s.mounts[0].workspace_subdir = "escape".into();
    assert!(matches!(
        sandbox.run_step(&s).await,
        Err(SandboxError::MountOutsideWorkspace { .. })
    ));

    let err = PinnedImage::parse("127.0.0.1:5000/reprod/busybox:latest").unwrap_err();
    assert!(err.to_string().contains("not pinned by digest"), "{err}");
}

#[tokio::test]
async fn orphans_of_dead_processes_are_swept_and_live_ones_kept() {
    let image = builder().to_string();
    let sandbox = Sandbox::connect(policy()).await.unwrap();
    // Make sure the image is present for `docker create`.
    sandbox.ensure_image(&builder()).await.unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let live_owner = format!("{}:{start}", std::process::id());
    let create = |owner: &str| {
        let out = Command::new("docker")
            .args([
                "create",
                "--network",
                "none",
                "--label",
                &format!("{LABEL_MANAGED}=true"),
                "--label",
                &format!("dev.reprod.owner={owner}"),
                &image,
                "sleep",
                "60",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let orphan = create("4194300:1");
    let live = create(&live_owner);
    let removed = sandbox.sweep_orphans().await.unwrap();
    assert!(removed >= 1);
    let exists = |id: &str| {
        Command::new("docker")
            .args(["inspect", id])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!exists(&orphan), "orphan swept");
    assert!(exists(&live), "a live process's container is kept");
    Command::new("docker")
        .args(["rm", "-f", &live])
        .output()
        .unwrap();
}

#[tokio::test]
async fn the_docker_sandbox_runs_steps_through_the_executor_trait() {
    let sandbox = Sandbox::connect(policy()).await.unwrap();
    let (endpoint, root) = (sandbox.endpoint().to_string(), sandbox.userns_root());
    let executor: Arc<dyn Executor> = Arc::new(sandbox);
    assert_eq!(executor.endpoint(), endpoint);
    assert_eq!(executor.userns_root(), root);
    assert_eq!(executor.policy(), &policy());
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "echo via-trait > /workspace/out.txt; exit 3");
    s.job_id = format!("executor-test-{}", std::process::id());
    let image_id = executor.ensure_image(&s.image).await.unwrap();
    assert!(image_id.starts_with("sha256:"), "{image_id}");
    assert!(executor.image_size(&s.image.to_string()).await.unwrap() > 0);
    let outcome = executor.run_step(&s).await.unwrap();
    assert_eq!(
        (outcome.exit_code, outcome.termination),
        (3, Termination::Exited)
    );
    assert_eq!(outcome.image_id, image_id);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ws/out.txt")).unwrap(),
        "via-trait\n"
    );
    // The step's container was removed by run_step itself.
    assert_eq!(executor.remove_job_containers(&s.job_id).await.unwrap(), 0);
}

#[tokio::test]
async fn a_job_network_has_loopback_only_and_its_steps_share_it() {
    use reprod_sandbox::{NetworkHolder, StepNetwork};
    let sandbox = Sandbox::connect(policy()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let job_id = format!("network-test-{}", std::process::id());
    let holder = NetworkHolder {
        image: builder(),
        command: vec!["sleep".into(), "2147483647".into()],
    };
    let network = sandbox
        .open_job_network(&job_id, &holder, "reprod-net-test", &dir.path().into())
        .await
        .unwrap();
    let holder_ns = std::fs::read_link(format!("/proc/{}/ns/net", network.pid)).unwrap();
    // The holder is hardened as a step is: the engine reports what the policy demands.
    let inspect = |id: &str, format: &str| {
        let out = Command::new("docker")
            .args(["inspect", "-f", format, id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        inspect(
            &network.holder,
            "{{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}"
        ),
        "none true [ALL] [no-new-privileges]"
    );
    let probe = "echo ns=$(readlink /proc/self/ns/net) host=$(hostname); \
                 echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,); \
                 echo routes=$(tail -n +2 /proc/net/route | wc -l)";
    let mut seen = Vec::new();
    for name in ["first", "second"] {
        let mut step = spec(dir.path(), probe);
        step.job_id = job_id.clone();
        step.name = name.into();
        step.network = StepNetwork::Job(network.clone());
        // A step in its job's network has the holder's hostname, whatever it asks.
        step.hostname = Some("ignored".into());
        let out = sandbox.run_step(&step).await.unwrap();
        assert!(out.succeeded(), "{}", out.log.text);
        seen.push(out.log.text);
    }
    let expected = format!(
        "ns={} host=reprod-net-test\nifaces=lo,\nroutes=0\n",
        holder_ns.display()
    );
    assert_eq!(seen, vec![expected.clone(), expected]);
    // A step without the job network is in a namespace of its own.
    let own = sandbox
        .run_step(&StepSpec {
            job_id: job_id.clone(),
            ..spec(dir.path(), probe)
        })
        .await
        .unwrap();
    assert!(!own.log.text.contains(&holder_ns.display().to_string()));
    assert!(own.log.text.contains("ifaces=lo,"), "{}", own.log.text);
    // The holder goes with the job's containers.
    assert_eq!(sandbox.remove_job_containers(&job_id).await.unwrap(), 1);
    assert!(inspect(&network.holder, "{{.Id}}").is_empty());
}

#[tokio::test]
async fn a_holder_that_does_not_wait_is_refused_and_removed() {
    use reprod_sandbox::NetworkHolder;
    let sandbox = Sandbox::connect(policy()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let job_id = format!("network-exit-test-{}", std::process::id());
    let holder = NetworkHolder {
        image: builder(),
        command: vec!["true".into()],
    };
    // `true` may still be running at the first look; a holder that has exited by the second is refused.
    let mut refused = None;
    for _ in 0..5 {
        match sandbox
            .open_job_network(&job_id, &holder, "h", &dir.path().into())
            .await
        {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => {
                sandbox.remove_job_containers(&job_id).await.unwrap();
            }
        }
    }
    let e = refused.expect("a holder that exits at once was accepted five times");
    assert!(e.to_string().contains("must wait forever"), "{e}");
    assert_eq!(sandbox.remove_job_containers(&job_id).await.unwrap(), 0);
}
