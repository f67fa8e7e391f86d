//! Reaching the engine: `DOCKER_HOST` as the docker CLI reads it, and what the engine must be (one that
//! runs containers in a user namespace, unless the policy waives it).

use bollard::Docker;

use crate::{Policy, SandboxError};

/// Why Podman's Docker-compatible API cannot carry the policy (tried with Podman 4.3, rootful, on cgroup
/// v1): what reprod demands it either does not do or does not report truthfully, so the read-back could
/// not prove the sandbox.
const PODMAN_GAPS: &str = "its Docker-compatible API ignores the private cgroup namespace asked for \
     (containers share the host's on cgroup v1), reports no user namespace and reads back settings that \
     are not what runs (the IPC mode as `shareable` even when it is the host's, the user namespace mode \
     always empty, the dropped capabilities as its default set instead of ALL, sysctls never), and \
     reports an OOM kill as a plain kill; reprod cannot prove its sandbox there";

pub(crate) fn docker_err(
    action: &'static str,
) -> impl FnOnce(bollard::errors::Error) -> SandboxError {
    move |error| SandboxError::Docker { action, error }
}

/// A connection to the Docker engine plus the policy every step gets.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) docker: Docker,
    pub(crate) policy: Policy,
    endpoint: String,
    /// The host uid and gid root in a container maps to, when the engine remaps users (`userns-remap`).
    pub(crate) userns_root: Option<(u32, u32)>,
    /// The engine's architecture, as it reports it.
    architecture: String,
}

impl Sandbox {
    /// Connects to the engine (`DOCKER_HOST` or the local socket) and negotiates the API version.
    pub async fn connect(policy: Policy) -> Result<Self, SandboxError> {
        let endpoint =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let unavailable = |detail: String| SandboxError::DockerUnavailable {
            endpoint: endpoint.clone(),
            detail,
        };
        // `DOCKER_HOST` as the docker CLI reads it: `unix://`, `tcp://` (TLS when `DOCKER_TLS_VERIFY` is
        // set and not empty, with `DOCKER_CERT_PATH`), `https://`, and `ssh://[USER@]HOST[:PORT]` (the
        // system's ssh, its agent and configuration, running `docker system dial-stdio` there).
        if let Some(port) = ssh_port(&endpoint) {
            return Err(unavailable(format!(
                "the Docker client library reprod uses (bollard) hands ssh the port as part of the host \
                 name, so ssh cannot reach it; name the host and port in your ssh configuration \
                 (Host NAME / HostName … / Port {port}) and set DOCKER_HOST=ssh://USER@NAME"
            )));
        }
        let tls_off = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| v.is_empty());
        let docker =
            if tls_off && (endpoint.starts_with("tcp://") || endpoint.starts_with("http://")) {
                // Set but empty is off for the docker CLI; bollard would take any value for on.
                Docker::connect_with_http(&endpoint, 120, bollard::API_DEFAULT_VERSION)
            } else {
                Docker::connect_with_host(&endpoint)
            }
            .map_err(|e| unavailable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let version = docker
            .version()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if let Some(podman) = version
            .components
            .iter()
            .flatten()
            .find(|c| c.name.to_ascii_lowercase().contains("podman"))
        {
            return Err(SandboxError::UnsupportedEngine {
                endpoint,
                engine: format!("{} {}", podman.name, podman.version),
                why: PODMAN_GAPS.into(),
            });
        }
        let info = docker
            .info()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let userns_root = userns_root(&info);
        if policy.require_userns && userns_root.is_none() {
            return Err(SandboxError::NoUserNamespace { endpoint });
        }
        // A plain step runs under the engine's default seccomp profile, which the container's read-back
        // cannot show: the engine must say it has one, and that it is not `unconfined`.
        if let Some(why) = seccomp_missing(&info) {
            return Err(SandboxError::UnsupportedEngine {
                endpoint,
                engine: format!(
                    "Docker Engine {}",
                    info.server_version
                        .as_deref()
                        .unwrap_or("(version unknown)")
                ),
                why,
            });
        }
        Ok(Sandbox {
            docker,
            policy,
            endpoint,
            userns_root,
            architecture: info.architecture.unwrap_or_default(),
        })
    }

    /// The engine's architecture (`x86_64`, `aarch64`), as it reports it.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The host uid and gid that root in a step is, when the engine runs containers in a user namespace:
    /// job directories a step writes are handed to this owner.
    pub fn userns_root(&self) -> Option<(u32, u32)> {
        self.userns_root
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The engine endpoint this sandbox talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// Why the engine's security options do not show a seccomp profile in force (`name=seccomp`, with a
/// profile other than `unconfined`), if they do not.
fn seccomp_missing(info: &bollard::models::SystemInfo) -> Option<String> {
    let Some(seccomp) = info
        .security_options
        .iter()
        .flatten()
        .find(|o| o.split(',').any(|kv| kv == "name=seccomp"))
    else {
        return Some(
            "it runs containers without seccomp (no name=seccomp among its security options), so a \
             plain step would have every system call open"
                .into(),
        );
    };
    if seccomp.split(',').any(|kv| kv == "profile=unconfined") {
        return Some(
            "its default seccomp profile is `unconfined` (dockerd --seccomp-profile=unconfined), so a \
             plain step would run with every system call open; start dockerd with its own default"
                .into(),
        );
    }
    None
}

/// `<uid>.<gid>` at the end of the engine's root directory is how dockerd names a remapped root, and
/// `name=userns` among its security options says it remaps at all.
fn userns_root(info: &bollard::models::SystemInfo) -> Option<(u32, u32)> {
    let remaps = info
        .security_options
        .iter()
        .flatten()
        .any(|o| o.split(',').any(|kv| kv == "name=userns"));
    if !remaps {
        return None;
    }
    let dir = info.docker_root_dir.as_deref()?;
    let (uid, gid) = dir.rsplit('/').next()?.split_once('.')?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// The port of an `ssh://[USER@]HOST:PORT` endpoint, when it names one.
fn ssh_port(endpoint: &str) -> Option<&str> {
    let authority = endpoint.strip_prefix("ssh://")?.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (_, port) = host.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']'))
        .then_some(port)
}

#[cfg(test)]
mod tests {
    use super::ssh_port;

    #[test]
    fn an_engine_without_seccomp_or_with_it_unconfined_is_told_apart() {
        let info = |opts: &[&str]| bollard::models::SystemInfo {
            security_options: Some(opts.iter().map(|o| o.to_string()).collect()),
            ..Default::default()
        };
        assert!(
            super::seccomp_missing(&info(&["name=seccomp,profile=default", "name=userns"]))
                .is_none()
        );
        assert!(
            super::seccomp_missing(&info(&["name=seccomp,profile=unconfined"]))
                .is_some_and(|w| w.contains("unconfined"))
        );
        assert!(super::seccomp_missing(&info(&["name=userns"]))
            .is_some_and(|w| w.contains("without seccomp")));
    }

    #[test]
    fn an_ssh_endpoint_with_a_port_is_told_apart() {
        assert_eq!(ssh_port("ssh://root@127.0.0.1:2222"), Some("2222"));
        assert_eq!(ssh_port("ssh://builder:22"), Some("22"));
        assert_eq!(ssh_port("ssh://root@engine"), None);
        assert_eq!(ssh_port("ssh://[::1]"), None);
        assert_eq!(ssh_port("tcp://127.0.0.1:2375"), None);
        assert_eq!(ssh_port("ssh://root@engine/"), None);
    }
}
