//! Running one step: pull by digest, create with the policy, verify, attach, start, wait (or kill), remove.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::log::{CapturedLog, LogBuffer};
use crate::{
    verify, PinnedImage, Policy, SandboxError, StepProfile, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER,
};

/// A directory of the job workspace made visible to the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMount {
    /// Path relative to the workspace root (no `..`, no absolute paths).
    pub workspace_subdir: PathBuf,
    /// Absolute path inside the container.
    pub container_path: String,
    pub read_only: bool,
}

/// One step to run.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Job identifier, recorded as a container label.
    pub job_id: String,
    /// Human name of the step (for logs and the container name).
    pub name: String,
    pub image: PinnedImage,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Arguments (the image's `CMD` when `None`).
    pub args: Option<Vec<String>>,
    /// Environment, in the order given.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// The job workspace: the only place whose subdirectories may be mounted (a host directory for
    /// Docker).
    pub workspace: crate::Workspace,
    pub mounts: Vec<StepMount>,
    /// Loopback only, either the step's own or its job's ([`StepNetwork`](crate::StepNetwork)).
    pub network: crate::StepNetwork,
    /// Overrides the policy's fixed hostname (environment-variation builds). A step in its job's network
    /// has the holder's hostname ([`Sandbox::open_job_network`]): the engine sets no other there.
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// `uid[:gid]` to run as instead of the image's user.
    pub user: Option<String>,
    /// CPUs the step may run on (`0`, `0-1`), which is what `nproc` reports.
    pub cpuset_cpus: Option<String>,
    /// What the step is trusted with ([`StepProfile::Plain`] unless a trust rule grants more).
    pub profile: StepProfile,
}

/// How a step's container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The main process exited by itself (any exit code).
    Exited,
    /// The wall-clock limit was reached and the container was killed with SIGKILL.
    TimedOut,
    /// The kernel's OOM killer ended a process because the memory limit was reached.
    OutOfMemory,
    /// Ended by SIGKILL that neither the step's own limits nor the build explain (`docker kill`, an engine
    /// restart, the host's OOM killer outside the container's limit): not the build's doing, so never a
    /// verdict on it. A build that itself exits with status 137 looks the same and is treated the same:
    /// when in doubt, reprod does not judge.
    Killed,
}

/// What happened when a step ran.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub exit_code: i64,
    pub termination: Termination,
    pub log: CapturedLog,
    pub duration: Duration,
    /// The engine's image id (`sha256:` of the config) the container ran.
    pub image_id: String,
}

impl StepOutcome {
    /// True when the step exited 0 on its own.
    pub fn succeeded(&self) -> bool {
        self.termination == Termination::Exited && self.exit_code == 0
    }
}

/// A connection to the Docker engine plus the policy every step gets.
#[derive(Clone)]
pub struct Sandbox {
    docker: Docker,
    policy: Policy,
    endpoint: String,
    /// The host uid and gid root in a container maps to, when the engine remaps users (`userns-remap`).
    userns_root: Option<(u32, u32)>,
}

fn docker_err(action: &'static str) -> impl FnOnce(bollard::errors::Error) -> SandboxError {
    move |error| SandboxError::Docker { action, error }
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
        // `DOCKER_HOST` as the docker CLI reads it: `unix://`, `tcp://` (with `DOCKER_TLS_VERIFY` and
        // `DOCKER_CERT_PATH` for TLS), `https://`.
        if endpoint.starts_with("ssh://") {
            return Err(unavailable(
                "ssh:// engines are not supported; forward the remote engine's socket \
                 (ssh -nNT -L /run/reprod-docker.sock:/var/run/docker.sock HOST) and set \
                 DOCKER_HOST=unix:///run/reprod-docker.sock"
                    .into(),
            ));
        }
        let docker = Docker::connect_with_defaults().map_err(|e| unavailable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let info = docker
            .info()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let userns_root = userns_root(&info);
        if policy.require_userns && userns_root.is_none() {
            return Err(SandboxError::NoUserNamespace { endpoint });
        }
        Ok(Sandbox {
            docker,
            policy,
            endpoint,
            userns_root,
        })
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

    /// Removes every container of one job, running or not (a job cut short by its deadline leaves its
    /// current step's container behind). Returns how many were removed.
    pub async fn remove_job_containers(&self, job_id: &str) -> Result<usize, SandboxError> {
        self.remove_until_gone(
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_JOB}={job_id}"),
            ],
            &format!("job {job_id}"),
        )
        .await
    }

    /// Removes the containers carrying all of `labels`, polling until the engine lists none: a cancelled
    /// step's own clean-up may be removing one at the same moment (the engine then answers 409), and a
    /// create request cut off mid-flight may still land.
    async fn remove_until_gone(
        &self,
        labels: Vec<String>,
        what: &str,
    ) -> Result<usize, SandboxError> {
        let mut removed = 0;
        for _ in 0..40 {
            let found = self.list_managed(labels.clone()).await?;
            if found.is_empty() {
                return Ok(removed);
            }
            for c in found {
                if let Some(id) = c.id {
                    match self.remove(&id).await {
                        Ok(()) => removed += 1,
                        Err(SandboxError::Docker {
                            error:
                                bollard::errors::Error::DockerResponseServerError {
                                    status_code: 409,
                                    ..
                                },
                            ..
                        }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(SandboxError::LeftBehind {
            what: what.to_string(),
            label: labels.last().cloned().unwrap_or_default(),
        })
    }

    async fn list_managed(
        &self,
        labels: Vec<String>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, SandboxError> {
        let filters = HashMap::from([("label".to_string(), labels)]);
        self.docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(docker_err("listing reprod's containers"))
    }

    /// Removes containers whose owning reprod process no longer runs (a crash or `kill -9` left them);
    /// containers of live reprod processes are left alone. Returns how many were removed.
    pub async fn sweep_orphans(&self) -> Result<usize, SandboxError> {
        let found = self
            .list_managed(vec![format!("{LABEL_MANAGED}=true")])
            .await?;
        let mut removed = 0;
        for c in found {
            let owner = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_OWNER))
                .map(String::as_str);
            if owner.is_some_and(owner_alive) {
                continue;
            }
            if let Some(id) = c.id {
                match self.remove(&id).await {
                    Ok(()) => removed += 1,
                    // A removal the dead process asked for is still under way in the engine.
                    Err(SandboxError::Docker {
                        error:
                            bollard::errors::Error::DockerResponseServerError {
                                status_code: 409, ..
                            },
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    /// Removes every container this process owns (a daemon shutting down after its grace period).
    pub async fn remove_own_containers(&self) -> Result<usize, SandboxError> {
        let owner = owner_token();
        self.remove_until_gone(
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_OWNER}={owner}"),
            ],
            &format!("owner {owner}"),
        )
        .await
    }

    /// Makes sure the pinned image is present, pulling it by digest if not. Returns the engine's image id.
    pub async fn ensure_image(&self, image: &PinnedImage) -> Result<String, SandboxError> {
        let reference = image.to_string();
        if let Ok(found) = self.docker.inspect_image(&reference).await {
            self.within_size(&reference, &found).await?;
            return Ok(found.id.unwrap_or_default());
        }
        tracing::info!(image = %reference, "pulling image by digest");
        let options = CreateImageOptionsBuilder::default()
            .from_image(&reference)
            .build();
        let mut pull = self.docker.create_image(Some(options), None, None);
        // The layers' sizes as the engine announces them while downloading: once they pass the limit the
        // pull is stopped (dropping the request makes the engine cancel it), so an oversized image never
        // lands whole on this host's disk. They are compressed sizes, which the image's own size is not
        // below, so this never refuses an image within the limit.
        let mut announced: HashMap<String, i64> = HashMap::new();
        while let Some(progress) = pull.next().await {
            if let Ok(info) = &progress {
                if let (Some(id), Some(Some(total)), Some("Downloading")) = (
                    &info.id,
                    info.progress_detail.as_ref().map(|d| d.total),
                    info.status.as_deref(),
                ) {
                    announced.insert(id.clone(), total.max(0));
                }
                let size: i64 = announced.values().sum();
                if size > self.policy.max_image_bytes {
                    drop(pull);
                    return Err(SandboxError::ImageTooLarge {
                        image: reference,
                        size,
                        limit: self.policy.max_image_bytes,
                        when: "its layers announced while pulling; the pull was stopped",
                    });
                }
            }
            if let Err(e) = progress {
                let message = match &e {
                    bollard::errors::Error::DockerStreamError { error } => Some(error.clone()),
                    bollard::errors::Error::DockerResponseServerError { message, .. } => {
                        Some(message.clone())
                    }
                    _ => None,
                };
                // Only the registry's own answer that the image is not to be had is a verdict on the
                // provenance; a registry that does not answer, a rate limit or a full engine disk is
                // infrastructure, retried.
                return Err(match message {
                    Some(m) if image_refused(&m) => SandboxError::ImageUnavailable {
                        image: reference,
                        detail: m,
                    },
                    _ => SandboxError::Docker {
                        action: "pulling an image",
                        error: e,
                    },
                });
            }
        }
        let found = self.docker.inspect_image(&reference).await.map_err(|e| {
            SandboxError::ImageUnavailable {
                image: reference.clone(),
                detail: format!("pulled, but the engine cannot find it by digest afterwards: {e}"),
            }
        })?;
        self.within_size(&reference, &found).await?;
        Ok(found.id.unwrap_or_default())
    }

    /// Refuses (and removes) an image larger than the policy allows. The engine pulls it whole first: the
    /// pull itself is bounded only by the engine's own disk.
    async fn within_size(
        &self,
        reference: &str,
        image: &bollard::models::ImageInspect,
    ) -> Result<(), SandboxError> {
        let size = image.size.unwrap_or(0);
        if size <= self.policy.max_image_bytes {
            return Ok(());
        }
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::default()
            .force(false)
            .build();
        if let Err(e) = self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            tracing::warn!(image = reference, error = %e, "could not remove an oversized image");
        }
        Err(SandboxError::ImageTooLarge {
            image: reference.to_string(),
            size,
            limit: self.policy.max_image_bytes,
            when: "as the engine reports it; it was removed again",
        })
    }

    /// Removes the image reference `reference` (`name@sha256:…`): `Ok(false)` when the engine keeps it
    /// because a container uses it, or it is already gone.
    pub async fn remove_image(&self, reference: &str) -> Result<bool, SandboxError> {
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::default()
            .force(false)
            .build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(false),
            Err(error) => Err(SandboxError::Docker {
                action: "removing a step image",
                error,
            }),
        }
    }

    /// The size the engine reports for a present image, if it is present.
    pub async fn image_size(&self, reference: &str) -> Option<i64> {
        self.docker
            .inspect_image(reference)
            .await
            .ok()
            .and_then(|i| i.size)
    }

    /// Runs one step to completion under the policy. The container is removed whatever happens.
    pub async fn run_step(&self, spec: &StepSpec) -> Result<StepOutcome, SandboxError> {
        if spec.profile == StepProfile::Nested && self.userns_root.is_none() {
            // SYS_ADMIN outside a user namespace is the host's: never.
            return Err(SandboxError::Unsupported(
                "the nested step profile needs an engine that runs containers in a user namespace \
                 (Docker's userns-remap); this one does not"
                    .into(),
            ));
        }
        let image_id = self.ensure_image(&spec.image).await?;
        let workspace = canonical(spec.workspace.local_dir())?;
        let mounts = spec
            .mounts
            .iter()
            .map(|m| resolve_mount(&workspace, m))
            .collect::<Result<Vec<_>, _>>()?;
        // An image's VOLUMEs would be anonymous volumes on the engine's disk, unbounded: each is covered
        // with a bounded tmpfs instead.
        let volumes = self.image_volumes(&spec.image.to_string()).await?;
        let body = self.container_body(spec, mounts, &volumes);
        let created = self
            .docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name(&container_name(spec))
                        .build(),
                ),
                body,
            )
            .await
            .map_err(docker_err("creating the step container"))?;
        let id = created.id;
        let mut guard = RemoveOnDrop {
            docker: self.docker.clone(),
            id: Some(id.clone()),
        };
        let result = self.run_created(&id, spec, &workspace, &volumes).await;
        guard.id = None;
        let removed = self.remove(&id).await;
        let mut outcome = result?;
        removed?;
        outcome.image_id = image_id;
        Ok(outcome)
    }

    /// The `VOLUME` paths of an image, each a tmpfs in its steps.
    pub(crate) async fn image_volumes(&self, reference: &str) -> Result<Vec<String>, SandboxError> {
        let image = self
            .docker
            .inspect_image(reference)
            .await
            .map_err(docker_err("reading the step image's volumes"))?;
        let mut paths: Vec<String> = image
            .config
            .and_then(|c| c.volumes)
            .into_iter()
            .flatten()
            .filter(|p| p.starts_with('/') && !crate::TMPFS_PATHS.contains(&p.as_str()))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    pub(crate) fn container_body(
        &self,
        spec: &StepSpec,
        mounts: Vec<Mount>,
        volumes: &[String],
    ) -> ContainerCreateBody {
        let p = &self.policy;
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_JOB.to_string(), spec.job_id.clone()),
            (LABEL_OWNER.to_string(), owner_token()),
        ]);
        let host_config = HostConfig {
            network_mode: Some(spec.network.mode()),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(
                spec.profile
                    .capabilities()
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
            ),
            security_opt: Some(vec!["no-new-privileges".into()]),
            memory: Some(p.memory_bytes),
            memory_swap: Some(p.memory_bytes),
            nano_cpus: Some(p.nano_cpus),
            pids_limit: Some(p.pids_limit),
            ipc_mode: Some("private".into()),
            pid_mode: Some(String::new()),
            cgroupns_mode: Some(bollard::models::HostConfigCgroupnsModeEnum::PRIVATE),
            devices: Some(Vec::new()),
            sysctls: Some(HashMap::new()),
            ulimits: Some(
                p.ulimits()
                    .iter()
                    .map(|(name, n)| bollard::models::ResourcesUlimits {
                        name: Some(name.to_string()),
                        soft: Some(*n),
                        hard: Some(*n),
                    })
                    .collect(),
            ),
            tmpfs: Some(
                Policy::tmpfs_paths(spec.profile, volumes)
                    .into_iter()
                    .map(|path| {
                        let options = p.tmpfs_options(&path);
                        (path, options)
                    })
                    .collect(),
            ),
            cpuset_cpus: spec.cpuset_cpus.clone(),
            mounts: Some(mounts),
            readonly_rootfs: Some(true),
            publish_all_ports: Some(false),
            // Output is read through attach; nothing is written to the engine's disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(spec.image.to_string()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.args.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: spec.working_dir.clone(),
            hostname: match spec.network {
                crate::StepNetwork::None => {
                    Some(spec.hostname.clone().unwrap_or_else(|| p.hostname.clone()))
                }
                crate::StepNetwork::Job(_) => None,
            },
            domainname: spec.domainname.clone(),
            user: spec.user.clone(),
            labels: Some(labels),
            // A disabled network would give the step a fresh namespace instead of joining its job's;
            // either way it has loopback only, which `verify` reads back.
            network_disabled: Some(spec.network == crate::StepNetwork::None),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            open_stdin: Some(false),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    async fn run_created(
        &self,
        id: &str,
        spec: &StepSpec,
        workspace: &Path,
        volumes: &[String],
    ) -> Result<StepOutcome, SandboxError> {
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(docker_err("inspecting the step container"))?;
        verify::policy_applied(
            &inspected,
            &self.policy,
            &spec.network,
            spec.profile,
            workspace,
            volumes,
        )?;

        let attach = self
            .docker
            .attach_container(
                id,
                Some(
                    AttachContainerOptionsBuilder::default()
                        .stdout(true)
                        .stderr(true)
                        .stream(true)
                        .logs(false)
                        .build(),
                ),
            )
            .await
            .map_err(docker_err("attaching to the step container"))?;
        let limit = self.policy.log_limit_bytes;
        let reader = tokio::spawn(async move {
            let mut buf = LogBuffer::new(limit);
            let mut output = attach.output;
            while let Some(Ok(chunk)) = output.next().await {
                buf.push(&chunk.into_bytes());
            }
            buf
        });

        let started = Instant::now();
        self.docker
            .start_container(id, None)
            .await
            .map_err(docker_err("starting the step container"))?;
        tracing::debug!(step = %spec.name, container = %id, "step started");

        let wait = self.wait(id);
        let mut timed_out = false;
        if tokio::time::timeout(self.policy.step_timeout, wait)
            .await
            .is_err()
        {
            timed_out = true;
            tracing::warn!(step = %spec.name, limit = ?self.policy.step_timeout, "step hit its wall-clock limit; sending SIGKILL");
            let kill = KillContainerOptionsBuilder::default()
                .signal("SIGKILL")
                .build();
            if let Err(e) = self.docker.kill_container(id, Some(kill)).await {
                tracing::warn!(error = %e, "SIGKILL failed (the container may have just exited)");
            }
            self.wait(id).await;
        }
        let duration = started.elapsed();

        // The attach stream ends when the container exits; bound the wait in case the engine keeps it open.
        let log = match tokio::time::timeout(Duration::from_secs(10), reader).await {
            Ok(Ok(buf)) => buf.finish(),
            _ => CapturedLog {
                text: "[reprod: the log stream did not close after the container exited]\n".into(),
                ..Default::default()
            },
        };

        let state = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(docker_err("reading the step's exit state"))?
            .state
            .unwrap_or_default();
        let exit_code = state.exit_code.unwrap_or(-1);
        if !timed_out {
            // A container the engine does not report as exited (dead, removed, restarting) or reports an
            // error for did not end by the build's doing.
            let status = state.status.map(|s| s.to_string()).unwrap_or_default();
            let error = state.error.unwrap_or_default();
            if status != "exited" || !error.is_empty() || state.exit_code.is_none() {
                return Err(SandboxError::Lost(format!(
                    "the step container is {status:?} after the step{}",
                    if error.is_empty() {
                        String::new()
                    } else {
                        format!(" (engine error: {error})")
                    }
                )));
            }
        }
        let termination = if timed_out {
            Termination::TimedOut
        } else if state.oom_killed == Some(true) {
            Termination::OutOfMemory
        } else if exit_code == 128 + 9 {
            Termination::Killed
        } else {
            Termination::Exited
        };
        Ok(StepOutcome {
            exit_code,
            termination,
            log,
            duration,
            image_id: String::new(),
        })
    }

    /// Waits until the container is no longer running; the exit code is read from inspect afterwards.
    async fn wait(&self, id: &str) {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = self.docker.wait_container(id, Some(options));
        // Non-zero exits arrive as errors from bollard; either way the container has stopped.
        let _ = stream.next().await;
    }

    /// The engine connection (for the job network's holder).
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Removes one container, gone or not.
    pub(crate) async fn remove_container(&self, id: &str) -> Result<(), SandboxError> {
        self.remove(id).await
    }

    async fn remove(&self, id: &str) -> Result<(), SandboxError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(SandboxError::Docker {
                action: "removing the step container",
                error: e,
            }),
        }
    }
}

/// Removes the container if the step future is dropped half-way (cancellation, panic).
struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let (Some(id), Ok(handle)) = (self.id.take(), tokio::runtime::Handle::try_current()) {
            let docker = self.docker.clone();
            handle.spawn(async move {
                let options = RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .v(true)
                    .build();
                let _ = docker.remove_container(&id, Some(options)).await;
            });
        }
    }
}

/// `<pid>:<start time in clock ticks>` of this process: unique on this host even across pid reuse.
fn owner_token() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", process_start_time(pid).unwrap_or_default())
}

fn process_start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the command name (field 2) may hold spaces, so count from its closing parenthesis.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)
        .map(str::to_string)
}

fn owner_alive(token: &str) -> bool {
    let Some((pid, start)) = token.split_once(':') else {
        return false;
    };
    pid.parse::<u32>()
        .ok()
        .and_then(process_start_time)
        .is_some_and(|s| s == start)
}

pub(crate) fn container_name(spec: &StepSpec) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect()
    };
    format!("reprod-{}-{}", clean(&spec.job_id), clean(&spec.name))
}

pub(crate) fn canonical(path: &Path) -> Result<PathBuf, SandboxError> {
    std::fs::canonicalize(path).map_err(|error| SandboxError::Io {
        action: "resolving the job workspace",
        path: path.display().to_string(),
        error,
    })
}

/// Resolves a workspace mount to an absolute host path and proves it stays inside the workspace
/// (symlinks included), and that its target is an absolute container path. `workspace` is canonical.
/// Shared with the fake executor, so a test cannot pass a mount Docker would refuse.
pub(crate) fn mount_source(workspace: &Path, m: &StepMount) -> Result<PathBuf, SandboxError> {
    let outside = || SandboxError::MountOutsideWorkspace {
        host: m.workspace_subdir.display().to_string(),
        workspace: workspace.display().to_string(),
    };
    if m.workspace_subdir.is_absolute()
        || m.workspace_subdir
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(outside());
    }
    let host = canonical(&workspace.join(&m.workspace_subdir))?;
    if !host.starts_with(workspace) {
        return Err(outside());
    }
    if !m.container_path.starts_with('/') {
        return Err(SandboxError::PolicyNotApplied(format!(
            "mount target {:?} is not an absolute container path",
            m.container_path
        )));
    }
    Ok(host)
}

fn resolve_mount(workspace: &Path, m: &StepMount) -> Result<Mount, SandboxError> {
    let host = mount_source(workspace, m)?;
    Ok(Mount {
        typ: Some(MountType::BIND),
        source: Some(host.display().to_string()),
        target: Some(m.container_path.clone()),
        read_only: Some(m.read_only),
        ..Default::default()
    })
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

/// Whether a pull error is the registry's answer that the image cannot be had (absent, refused, an invalid
/// reference), as opposed to a failure on the way.
fn image_refused(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "manifest unknown",
        "not found",
        "unauthorized",
        "denied",
        "invalid reference",
        "does not exist",
        "no such image",
        "name unknown",
    ]
    .iter()
    .any(|p| m.contains(p))
}
