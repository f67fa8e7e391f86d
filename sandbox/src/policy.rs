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

/// Resource bounds and hardening applied to every step container.
///
/// Always on, not configurable: no network (`--network none`), not privileged, every capability dropped but
/// [`ALLOWED_CAPABILITIES`], `no-new-privileges`, the engine's default seccomp profile, private IPC and cgroup
/// namespaces, no swap beyond the memory limit, no host path but the job workspace, a fixed hostname.
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
        }
    }
}
