//! Running one step: pull by digest, create with the policy, verify, attach, start, wait (or kill), remove.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::connect::docker_err;
use crate::containers::{owner_token, RemoveOnDrop};
use crate::log::{CapturedLog, LogBuffer};
use crate::spec::{canonical, mount_source};
use crate::{
    verify, Policy, Sandbox, SandboxError, StepMount, StepOutcome, StepProfile, StepSpec,
    Termination, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER,
};

impl Sandbox {
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
        if spec.profile == StepProfile::Nested && self.architecture() != "x86_64" {
            return Err(SandboxError::Unsupported(format!(
                "the nested step profile's seccomp profile names x86_64 system calls only, and this \
                 engine runs {}",
                self.architecture()
            )));
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
            security_opt: Some(spec.profile.security_opt()),
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
        let live = spec.live.clone();
        let reader = tokio::spawn(async move {
            let mut buf = LogBuffer::new(limit);
            let mut output = attach.output;
            while let Some(Ok(chunk)) = output.next().await {
                let bytes = chunk.into_bytes();
                if let Some(live) = &live {
                    // A watcher that lags loses chunks; the captured log does not.
                    let _ = live.try_send(bytes.to_vec());
                }
                buf.push(&bytes);
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
