//! The isolation policy: what every step container gets, whatever the step asks for.

use std::time::Duration;

/// Label carried by every container reprod creates, so a crashed run's leftovers can be swept.
pub const LABEL_MANAGED: &str = "dev.reprod.managed";
/// Label naming the reprod process that created a container (`pid:start-time`), so only orphans are swept.
pub const LABEL_OWNER: &str = "dev.reprod.owner";
/// Label naming the job a container belongs to.
pub const LABEL_JOB: &str = "dev.reprod.job";

/// Capabilities a step keeps; all others are dropped.
///
/// These are the file-ownership capabilities a root build needs to unpack archives and set file owners and
/// modes inside its own container (package managers, `tar`, `chown`): no networking, no mounts, no tracing,
/// no device access, no raw I/O, no `SYS_ADMIN`.
pub const ALLOWED_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETGID",
    "SETUID",
];

/// What a nested builder (buildah, BuildKit, kaniko) needs beyond [`ALLOWED_CAPABILITIES`]: mount and
/// user namespaces of its own (`SYS_ADMIN`, `SYS_CHROOT`) and the rest of the set buildah gives its `RUN`
/// containers (`KILL`, `NET_BIND_SERVICE`, `SETFCAP`, `SETPCAP`), which must exist in the bounding set for
/// buildah to hand them out. Granted only to steps of the [`StepProfile::Nested`] profile, and only in a
/// user namespace: every one of them is the container's, not the host's.
pub const NESTED_CAPABILITIES: &[&str] = &[
    "SYS_ADMIN",
    "SYS_CHROOT",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETPCAP",
];

/// Where a nested builder keeps its images and layers: a tmpfs of [`Policy::tmpfs_bytes`] that, unlike the
/// others, allows executing what is on it (a `RUN` step executes the files of its image from there).
/// buildah's default `graphroot` is below it.
pub const NESTED_STORAGE: &str = "/var/lib/containers";

/// How much a step is trusted with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StepProfile {
    /// Every step: [`ALLOWED_CAPABILITIES`] only.
    #[default]
    Plain,
    /// A builder that runs containers itself: [`NESTED_CAPABILITIES`] too, [`NESTED_STORAGE`], and
    /// reprod's own seccomp profile ([`NESTED_SECCOMP`]); every other limit unchanged (no network but the
    /// job's, not privileged, `no-new-privileges`, read-only root, no devices, no host path but the
    /// workspace). Refused unless the engine remaps users.
    Nested,
}

/// reprod's own seccomp profile for nested steps (`scripts/seccomp-profile.py` writes it): every x86_64
/// system call but those a builder does not need, which Docker's default would allow once SYS_ADMIN is
/// granted (bpf, perf_event_open, the kernel log, quotas, file handles), those it refuses anyway, and
/// io_uring (refused with ENOSYS); a call it does not name is EPERM. The engine keeps it verbatim, so it
/// is read back exactly.
pub const NESTED_SECCOMP: &str = include_str!("../seccomp/nested.json");

impl StepProfile {
    /// The `SecurityOpt` a step of this profile runs with, exactly: `no-new-privileges` always, and for
    /// a nested step reprod's own seccomp profile ([`NESTED_SECCOMP`]) instead of the engine's default.
    pub fn security_opt(self) -> Vec<String> {
        match self {
            StepProfile::Plain => vec!["no-new-privileges".into()],
            StepProfile::Nested => vec![
                "no-new-privileges".into(),
                format!("seccomp={}", NESTED_SECCOMP.trim()),
            ],
        }
    }

    /// The capabilities a step of this profile keeps.
    pub fn capabilities(self) -> Vec<&'static str> {
        match self {
            StepProfile::Plain => ALLOWED_CAPABILITIES.to_vec(),
            StepProfile::Nested => ALLOWED_CAPABILITIES
                .iter()
                .chain(NESTED_CAPABILITIES)
                .copied()
                .collect(),
        }
    }

    /// A word for verdicts and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StepProfile::Plain => "plain",
            StepProfile::Nested => "nested",
        }
    }
}

/// Resource bounds and hardening applied to every step container.
///
/// Always on, not configurable: no network but loopback (`--network none`, or the job's own namespace,
/// itself `--network none`, held by its holder: [`StepNetwork`](crate::StepNetwork)), not privileged, every capability dropped but
/// [`ALLOWED_CAPABILITIES`], exactly `no-new-privileges`, the engine's default seccomp profile, private IPC,
/// PID and cgroup namespaces, no devices and no sysctls, no swap beyond the memory limit, a read-only root
/// filesystem with bounded tmpfs mounts where programs expect to write ([`TMPFS_PATHS`]), no host path but
/// the job workspace, a fixed hostname, and `ulimit`s on file size, open files and processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Memory limit in bytes (swap is limited to the same figure, i.e. none).
    pub memory_bytes: i64,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: i64,
    /// Maximum number of processes and threads.
    pub pids_limit: i64,
    /// Wall-clock limit for one step; then SIGKILL.
    pub step_timeout: Duration,
    /// Log bytes kept per step (head and tail halves).
    pub log_limit_bytes: usize,
    /// Hostname inside the container: fixed, so builds that embed it stay reproducible.
    pub hostname: String,
    /// Size of each tmpfs mount (its pages also count against the memory limit).
    pub tmpfs_bytes: i64,
    /// Largest file a process may write (`ulimit -f`; beyond it the write fails with SIGXFSZ).
    pub file_size_bytes: i64,
    /// Open files per process (`ulimit -n`).
    pub open_files: i64,
    /// Processes per user (`ulimit -u`), beside the container's pids limit.
    pub processes: i64,
    /// Refuse to run unless the engine runs containers in a user namespace (Docker's `userns-remap`), so
    /// that root in a step is not root on the host.
    pub require_userns: bool,
    /// Largest step image (uncompressed, as the engine reports it) a step may run in; a larger one is
    /// removed again after the pull.
    pub max_image_bytes: i64,
}

/// Where a step can write besides its workspace: tmpfs mounts of [`Policy::tmpfs_bytes`] each, over a
/// read-only root filesystem (`nosuid,nodev`; `/tmp` and `/var/tmp` sticky and world-writable, as usual).
pub const TMPFS_PATHS: &[&str] = &["/tmp", "/var/tmp", "/run"];

impl Policy {
    /// The mount options of each tmpfs mount.
    pub fn tmpfs_options(&self, path: &str) -> String {
        if path == NESTED_STORAGE {
            return format!("rw,exec,nosuid,nodev,size={},mode=0700", self.tmpfs_bytes);
        }
        let mode = if path == "/run" { "0755" } else { "1777" };
        format!("rw,nosuid,nodev,size={},mode={mode}", self.tmpfs_bytes)
    }

    /// Every tmpfs mount of a step of `profile` with image `volumes`.
    pub fn tmpfs_paths(profile: StepProfile, volumes: &[String]) -> Vec<String> {
        let mut paths: Vec<String> = TMPFS_PATHS.iter().map(|p| p.to_string()).collect();
        if profile == StepProfile::Nested {
            paths.push(NESTED_STORAGE.to_string());
        }
        paths.extend(
            volumes
                .iter()
                .filter(|v| !paths.contains(v))
                .cloned()
                .collect::<Vec<_>>(),
        );
        paths
    }

    /// The `ulimit`s every step gets, as (name, soft = hard).
    pub fn ulimits(&self) -> [(&'static str, i64); 3] {
        [
            ("fsize", self.file_size_bytes),
            ("nofile", self.open_files),
            ("nproc", self.processes),
        ]
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            memory_bytes: 4 << 30,
            nano_cpus: 2_000_000_000,
            pids_limit: 2048,
            step_timeout: Duration::from_secs(3600),
            log_limit_bytes: 1 << 20,
            hostname: "reprod-build".to_string(),
            tmpfs_bytes: 1 << 30,
            file_size_bytes: 8 << 30,
            open_files: 16_384,
            processes: 4096,
            require_userns: true,
            max_image_bytes: 16 << 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NESTED_SECCOMP;

    /// The nested profile lets a builder unshare, mount and chroot, and refuses by name, with ENOSYS, what
    /// no builder needs.
    #[test]
    fn the_nested_seccomp_profile_allows_a_builder_and_refuses_the_rest() {
        let profile: serde_json::Value = serde_json::from_str(NESTED_SECCOMP).unwrap();
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        let named: Vec<&str> = profile["syscalls"][1]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(
            (
                &profile["syscalls"][1]["action"],
                &profile["syscalls"][1]["errnoRet"]
            ),
            (&"SCMP_ACT_ERRNO".into(), &38.into())
        );
        let allowed: Vec<&str> = profile["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(profile["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        for needed in [
            "unshare",
            "mount",
            "umount2",
            "setns",
            "chroot",
            "pivot_root",
            "clone",
            "clone3",
            "execve",
            "openat",
            "read",
            "write",
            "mknodat",
            "setxattr",
            "sethostname",
        ] {
            assert!(allowed.contains(&needed), "{needed} refused");
        }
        for refused in [
            "bpf",
            "perf_event_open",
            "syslog",
            "keyctl",
            "add_key",
            "init_module",
            "finit_module",
            "kexec_load",
            "reboot",
            "swapon",
            "open_by_handle_at",
            "name_to_handle_at",
            "ptrace",
            "process_vm_readv",
            "io_uring_setup",
            "userfaultfd",
            "quotactl",
            "fsconfig",
            "fsopen",
            "open_tree",
            "move_mount",
        ] {
            assert!(!allowed.contains(&refused), "{refused} allowed");
            assert!(named.contains(&refused), "{refused} is not refused by name");
        }
        assert!(allowed.len() > 280, "{} calls", allowed.len());
        // Sockets of every family but vsock (40), which the kernel does not namespace.
        let socket = &profile["syscalls"][2];
        assert_eq!(socket["names"], serde_json::json!(["socket"]));
        assert_eq!(
            socket["args"],
            serde_json::json!([{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}])
        );
    }
}
