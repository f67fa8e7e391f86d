//! Reads a created container back from the engine and proves the isolation policy took effect.

use std::path::Path;

use bollard::models::ContainerInspectResponse;

use crate::{Policy, SandboxError, StepNetwork, StepProfile};

/// Fails unless every isolation setting the engine reports equals what the policy demands.
pub(crate) fn policy_applied(
    inspected: &ContainerInspectResponse,
    policy: &Policy,
    network: &StepNetwork,
    profile: StepProfile,
    workspace: &Path,
    volumes: &[String],
) -> Result<(), SandboxError> {
    let fail = |what: String| Err(SandboxError::PolicyNotApplied(what));
    let Some(hc) = inspected.host_config.as_ref() else {
        return fail("the engine reported no HostConfig".into());
    };
    // Loopback only: a namespace of its own, or its job's, whose holder was itself verified as "none".
    let mode = network.mode();
    if hc.network_mode.as_deref() != Some(mode.as_str()) {
        return fail(format!(
            "network mode is {:?}, not {mode:?}",
            hc.network_mode
        ));
    }
    let disabled = inspected.config.as_ref().and_then(|c| c.network_disabled);
    if *network == StepNetwork::None && disabled != Some(true) {
        return fail(format!(
            "the network is not disabled (NetworkDisabled={disabled:?})"
        ));
    }

    if hc.privileged != Some(false) {
        return fail("the container is privileged".into());
    }
    let dropped_all = hc
        .cap_drop
        .as_ref()
        .is_some_and(|d| d.iter().any(|c| c.eq_ignore_ascii_case("ALL")));
    if !dropped_all {
        return fail(format!(
            "capabilities not all dropped: CapDrop={:?}",
            hc.cap_drop
        ));
    }
    let allowed = profile.capabilities();
    for cap in hc.cap_add.iter().flatten() {
        let name = cap.trim_start_matches("CAP_");
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return fail(format!(
                "capability {cap} is added but not in the allowed set of the {} profile",
                profile.as_str()
            ));
        }
    }
    // Exactly what the profile asks: `no-new-privileges`, and for a nested step reprod's own seccomp
    // profile, byte for byte. `no-new-privileges:false`, `seccomp=unconfined`, another profile,
    // `apparmor=unconfined` or `label=disable` would all weaken the step.
    let security: Vec<&str> = hc
        .security_opt
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let no_new_privileges = |o: &str| {
        matches!(
            o,
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
        )
    };
    let wanted = profile.security_opt();
    let seccomp_wanted: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|o| o.starts_with("seccomp="))
        .collect();
    let seccomp_got: Vec<&str> = security
        .iter()
        .copied()
        .filter(|o| o.starts_with("seccomp="))
        .collect();
    if !security.iter().any(|o| no_new_privileges(o))
        || !security
            .iter()
            .all(|o| no_new_privileges(o) || o.starts_with("seccomp="))
        || seccomp_got != seccomp_wanted
    {
        let shown: Vec<String> = security
            .iter()
            .map(|o| match o.strip_prefix("seccomp=") {
                Some(p) if p.len() > 40 => format!("seccomp=<a profile of {} bytes>", p.len()),
                _ => o.to_string(),
            })
            .collect();
        return fail(format!(
            "SecurityOpt is {shown:?}, not exactly no-new-privileges{}",
            if seccomp_wanted.is_empty() {
                ""
            } else {
                " and reprod's nested seccomp profile"
            }
        ));
    }
    if hc.readonly_rootfs != Some(true) {
        return fail("the root filesystem is not read-only".into());
    }
    let namespaces = [
        ("IPC", hc.ipc_mode.as_deref(), &["private"][..]),
        ("PID", hc.pid_mode.as_deref(), &["", "private"][..]),
        ("user", hc.userns_mode.as_deref(), &[""][..]),
        ("UTS", hc.uts_mode.as_deref(), &[""][..]),
    ];
    for (what, got, allowed) in namespaces {
        if !allowed.contains(&got.unwrap_or("")) {
            return fail(format!(
                "the {what} namespace mode is {got:?}, not a private one"
            ));
        }
    }
    if hc.cgroupns_mode != Some(bollard::models::HostConfigCgroupnsModeEnum::PRIVATE) {
        return fail(format!(
            "the cgroup namespace mode is {:?}, not private",
            hc.cgroupns_mode
        ));
    }
    if hc.devices.iter().flatten().next().is_some()
        || hc.device_cgroup_rules.iter().flatten().next().is_some()
        || hc.device_requests.iter().flatten().next().is_some()
    {
        return fail("devices are passed into the container".into());
    }
    if hc.sysctls.iter().flatten().next().is_some() {
        return fail(format!("sysctls are set: {:?}", hc.sysctls));
    }
    let mut ulimits: Vec<(String, Option<i64>, Option<i64>)> = hc
        .ulimits
        .iter()
        .flatten()
        .map(|u| (u.name.clone().unwrap_or_default(), u.soft, u.hard))
        .collect();
    ulimits.sort();
    let mut wanted: Vec<(String, Option<i64>, Option<i64>)> = policy
        .ulimits()
        .iter()
        .map(|(n, v)| (n.to_string(), Some(*v), Some(*v)))
        .collect();
    wanted.sort();
    if ulimits != wanted {
        return fail(format!("ulimits are {ulimits:?}, expected {wanted:?}"));
    }
    let mut tmpfs: Vec<(String, String)> = hc
        .tmpfs
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tmpfs.sort();
    let mut wanted_tmpfs: Vec<(String, String)> = Policy::tmpfs_paths(profile, volumes)
        .into_iter()
        .map(|p| {
            let options = policy.tmpfs_options(&p);
            (p, options)
        })
        .collect();
    wanted_tmpfs.sort();
    if tmpfs != wanted_tmpfs {
        return fail(format!(
            "tmpfs mounts are {tmpfs:?}, expected {wanted_tmpfs:?}"
        ));
    }
    let checks = [
        ("memory limit", hc.memory, policy.memory_bytes),
        ("memory+swap limit", hc.memory_swap, policy.memory_bytes),
        ("CPU limit", hc.nano_cpus, policy.nano_cpus),
        ("pids limit", hc.pids_limit, policy.pids_limit),
    ];
    for (what, got, want) in checks {
        if got != Some(want) {
            return fail(format!("{what} is {got:?}, expected {want}"));
        }
    }
    for m in inspected.mounts.iter().flatten() {
        match m.typ.as_deref() {
            Some("bind") => {
                let source = m.source.as_deref().unwrap_or("");
                if !Path::new(source).starts_with(workspace) {
                    return fail(format!(
                        "host path {source} is mounted but lies outside the workspace"
                    ));
                }
            }
            // An image's VOLUMEs are tmpfs mounts of the policy's size: an anonymous volume on the engine's
            // disk would be unbounded.
            Some("tmpfs")
                if m.destination.as_deref().is_some_and(|d| {
                    Policy::tmpfs_paths(profile, volumes).iter().any(|p| p == d)
                }) => {}
            other => {
                return fail(format!(
                    "unexpected mount of type {other:?} at {:?}",
                    m.destination.as_deref().unwrap_or("?")
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{HostConfig, HostConfigCgroupnsModeEnum, ResourcesUlimits};

    const PLAIN: StepProfile = StepProfile::Plain;

    fn good(policy: &Policy) -> ContainerInspectResponse {
        ContainerInspectResponse {
            config: Some(bollard::models::ContainerConfig {
                network_disabled: Some(true),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                privileged: Some(false),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(vec!["CHOWN".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                memory: Some(policy.memory_bytes),
                memory_swap: Some(policy.memory_bytes),
                nano_cpus: Some(policy.nano_cpus),
                pids_limit: Some(policy.pids_limit),
                ipc_mode: Some("private".into()),
                pid_mode: Some(String::new()),
                cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
                readonly_rootfs: Some(true),
                ulimits: Some(
                    policy
                        .ulimits()
                        .iter()
                        .map(|(n, v)| ResourcesUlimits {
                            name: Some(n.to_string()),
                            soft: Some(*v),
                            hard: Some(*v),
                        })
                        .collect(),
                ),
                tmpfs: Some(
                    crate::TMPFS_PATHS
                        .iter()
                        .map(|p| (p.to_string(), policy.tmpfs_options(p)))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_weakened_setting_is_refused() {
        let policy = Policy::default();
        let ws = Path::new("/ws");
        assert!(
            policy_applied(&good(&policy), &policy, &StepNetwork::None, PLAIN, ws, &[]).is_ok()
        );
        type Weaken = Box<dyn Fn(&mut HostConfig)>;
        let weakened: Vec<(&str, Weaken)> = vec![
            (
                "nnp false",
                Box::new(|h| h.security_opt = Some(vec!["no-new-privileges:false".into()])),
            ),
            (
                "seccomp off",
                Box::new(|h| {
                    h.security_opt = Some(vec![
                        "no-new-privileges".into(),
                        "seccomp=unconfined".into(),
                    ])
                }),
            ),
            (
                "writable root",
                Box::new(|h| h.readonly_rootfs = Some(false)),
            ),
            (
                "host cgroupns",
                Box::new(|h| h.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::HOST)),
            ),
            ("host pid", Box::new(|h| h.pid_mode = Some("host".into()))),
            ("host ipc", Box::new(|h| h.ipc_mode = Some("host".into()))),
            (
                "host userns",
                Box::new(|h| h.userns_mode = Some("host".into())),
            ),
            ("host uts", Box::new(|h| h.uts_mode = Some("host".into()))),
            (
                "a device",
                Box::new(|h| {
                    h.devices = Some(vec![bollard::models::DeviceMapping {
                        path_on_host: Some("/dev/kvm".into()),
                        ..Default::default()
                    }])
                }),
            ),
            (
                "a sysctl",
                Box::new(|h| {
                    h.sysctls = Some([("net.ipv4.ip_forward".to_string(), "1".to_string())].into())
                }),
            ),
            ("no ulimits", Box::new(|h| h.ulimits = None)),
            (
                "another container's network",
                Box::new(|h| h.network_mode = Some("container:abc".into())),
            ),
            (
                "the host's network",
                Box::new(|h| h.network_mode = Some("host".into())),
            ),
            (
                "bigger tmpfs",
                Box::new(|h| h.tmpfs = Some([("/tmp".to_string(), "rw".to_string())].into())),
            ),
        ];
        let mut enabled = good(&policy);
        enabled.config = None;
        assert!(
            policy_applied(&enabled, &policy, &StepNetwork::None, PLAIN, ws, &[]).is_err(),
            "a network that is not disabled was accepted"
        );
        for (what, weaken) in weakened {
            let mut c = good(&policy);
            weaken(c.host_config.as_mut().unwrap());
            assert!(
                policy_applied(&c, &policy, &StepNetwork::None, PLAIN, ws, &[]).is_err(),
                "{what} was accepted"
            );
        }
    }

    #[test]
    fn a_step_joins_exactly_its_own_jobs_network() {
        let policy = Policy::default();
        let ws = Path::new("/ws");
        let job = StepNetwork::Job(crate::JobNetwork {
            holder: "holder-id".into(),
            pid: 1,
        });
        let mut joined = good(&policy);
        joined.config = None;
        joined.host_config.as_mut().unwrap().network_mode = Some("container:holder-id".into());
        assert!(policy_applied(&joined, &policy, &job, PLAIN, ws, &[]).is_ok());
        for mode in ["none", "host", "bridge", "container:another-id"] {
            joined.host_config.as_mut().unwrap().network_mode = Some(mode.into());
            assert!(
                policy_applied(&joined, &policy, &job, PLAIN, ws, &[]).is_err(),
                "{mode} was accepted for a step of the job's network"
            );
        }
    }

    /// A nested step reads back with exactly its capabilities and its exec tmpfs; the same container is
    /// refused under the plain profile, and a nested one with anything more is refused too.
    #[test]
    fn the_nested_profile_grants_exactly_its_capabilities_and_storage() {
        let policy = Policy::default();
        let ws = Path::new("/ws");
        let nested = StepProfile::Nested;
        let mut c = good(&policy);
        let hc = c.host_config.as_mut().unwrap();
        hc.cap_add = Some(
            nested
                .capabilities()
                .iter()
                .map(|c| c.to_string())
                .collect(),
        );
        hc.tmpfs = Some(
            Policy::tmpfs_paths(nested, &[])
                .into_iter()
                .map(|p| {
                    let o = policy.tmpfs_options(&p);
                    (p, o)
                })
                .collect(),
        );
        // Without reprod's own seccomp profile (the engine's default), a nested step is refused.
        assert!(policy_applied(&c, &policy, &StepNetwork::None, nested, ws, &[]).is_err());
        c.host_config.as_mut().unwrap().security_opt = Some(nested.security_opt());
        assert!(policy_applied(&c, &policy, &StepNetwork::None, nested, ws, &[]).is_ok());
        assert!(
            policy_applied(&c, &policy, &StepNetwork::None, PLAIN, ws, &[]).is_err(),
            "SYS_ADMIN and a seccomp profile accepted for a plain step"
        );
        assert!(policy
            .tmpfs_options(crate::NESTED_STORAGE)
            .starts_with("rw,exec,nosuid,nodev,"));
        for extra in [
            "SYS_PTRACE",
            "SYS_MODULE",
            "NET_ADMIN",
            "MKNOD",
            "SYS_RAWIO",
        ] {
            let mut more = c.clone();
            more.host_config
                .as_mut()
                .unwrap()
                .cap_add
                .as_mut()
                .unwrap()
                .push(extra.into());
            assert!(
                policy_applied(&more, &policy, &StepNetwork::None, nested, ws, &[]).is_err(),
                "{extra} accepted for a nested step"
            );
        }
        let mut privileged = c.clone();
        privileged.host_config.as_mut().unwrap().privileged = Some(true);
        assert!(policy_applied(&privileged, &policy, &StepNetwork::None, nested, ws, &[]).is_err());
        // Another profile in its place (the profile, one call more) is refused.
        let mut other = c.clone();
        other.host_config.as_mut().unwrap().security_opt = Some(vec![
            "no-new-privileges".into(),
            format!(
                "seccomp={}",
                crate::NESTED_SECCOMP
                    .trim()
                    .replace("\"accept\"", "\"accept\",\"bpf\"")
            ),
        ]);
        assert!(policy_applied(&other, &policy, &StepNetwork::None, nested, ws, &[]).is_err());
        let mut unconfined = c;
        unconfined.host_config.as_mut().unwrap().security_opt = Some(vec![
            "no-new-privileges".into(),
            "seccomp=unconfined".into(),
        ]);
        assert!(policy_applied(&unconfined, &policy, &StepNetwork::None, nested, ws, &[]).is_err());
    }
}
