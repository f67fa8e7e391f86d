//! Reads a created container back from the engine and proves the isolation policy took effect.

use std::path::Path;

use bollard::models::ContainerInspectResponse;

use crate::{Policy, SandboxError, ALLOWED_CAPABILITIES};

/// Fails unless every isolation setting the engine reports equals what the policy demands.
pub(crate) fn policy_applied(
    inspected: &ContainerInspectResponse,
    policy: &Policy,
    workspace: &Path,
) -> Result<(), SandboxError> {
    let fail = |what: String| Err(SandboxError::PolicyNotApplied(what));
    let Some(hc) = inspected.host_config.as_ref() else {
        return fail("the engine reported no HostConfig".into());
    };
    if hc.network_mode.as_deref() != Some("none") {
        return fail(format!(
            "network mode is {:?}, not \"none\"",
            hc.network_mode
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
    for cap in hc.cap_add.iter().flatten() {
        let name = cap.trim_start_matches("CAP_");
        if !ALLOWED_CAPABILITIES
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name))
        {
            return fail(format!(
                "capability {cap} is added but not in the allowed set"
            ));
        }
    }
    if !hc
        .security_opt
        .iter()
        .flatten()
        .any(|o| o.starts_with("no-new-privileges"))
    {
        return fail(format!(
            "no-new-privileges is not set: SecurityOpt={:?}",
            hc.security_opt
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
            // An image's VOLUME gets a fresh anonymous volume, removed with the container: no host content.
            Some("volume") if m.name.as_deref().is_some_and(|n| n.len() == 64) => {}
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
