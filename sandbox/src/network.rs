//! A job's own network namespace, for steps that may reach reprod's build proxy.
//!
//! A step container never gets an interface but loopback. When a job's steps may use the network, they
//! share one namespace that a small *holder* container keeps alive (as a Kubernetes pod's pause container
//! does): the holder is created under the same hardened policy with `--network none`, so its namespace has
//! loopback only, and each step joins it (`--network container:<holder>`). The caller then opens its proxy
//! on `127.0.0.1` inside that namespace (by entering it through the holder's process), which is the only
//! thing a step there can reach. The holder carries the job's label, so it goes with the job's containers
//! ([`Sandbox::remove_job_containers`]) and with a dead process's orphans.

use bollard::query_parameters::CreateContainerOptionsBuilder;

use crate::{
    verify, JobNetwork, NetworkHolder, Sandbox, SandboxError, StepNetwork, StepSpec, Workspace,
};

impl Sandbox {
    /// Starts the holder of a job's network namespace. `hostname` is the steps' hostname: steps that join
    /// another container's network take that container's.
    pub async fn open_job_network(
        &self,
        job_id: &str,
        holder: &NetworkHolder,
        hostname: &str,
        workspace: &Workspace,
    ) -> Result<JobNetwork, SandboxError> {
        self.ensure_image(&holder.image).await?;
        let spec = StepSpec {
            entrypoint: Some(holder.command.clone()),
            args: Some(Vec::new()),
            hostname: Some(hostname.to_string()),
            ..StepSpec::new(job_id, "network", holder.image.clone(), workspace.clone())
        };
        let workspace = crate::spec::canonical(workspace.local_dir())?;
        let volumes = self.image_volumes(&holder.image.to_string()).await?;
        let body = self.container_body(&spec, Vec::new(), &volumes);
        let docker = self.docker();
        let created = docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name(&crate::run::container_name(&spec))
                        .build(),
                ),
                body,
            )
            .await
            .map_err(|error| SandboxError::Docker {
                action: "creating the job's network holder",
                error,
            })?;
        let id = created.id;
        let started = async {
            let inspected = docker.inspect_container(&id, None).await.map_err(|error| {
                SandboxError::Docker {
                    action: "inspecting the job's network holder",
                    error,
                }
            })?;
            verify::policy_applied(
                &inspected,
                self.policy(),
                &StepNetwork::None,
                crate::StepProfile::Plain,
                &workspace,
                &volumes,
            )?;
            docker
                .start_container(&id, None)
                .await
                .map_err(|error| SandboxError::Docker {
                    action: "starting the job's network holder",
                    error,
                })?;
            let state = docker
                .inspect_container(&id, None)
                .await
                .map_err(|error| SandboxError::Docker {
                    action: "inspecting the job's network holder",
                    error,
                })?
                .state
                .unwrap_or_default();
            match (state.running, state.pid) {
                (Some(true), Some(pid)) if pid > 0 => Ok(JobNetwork {
                    holder: id.clone(),
                    pid: pid as u32,
                }),
                _ => Err(SandboxError::PolicyNotApplied(format!(
                    "the network holder {} is not running after its start (status {:?}, exit {:?}); \
                     its command {:?} must wait forever",
                    holder.image,
                    state.status.map(|s| s.to_string()),
                    state.exit_code,
                    holder.command
                ))),
            }
        };
        match started.await {
            Ok(network) => Ok(network),
            Err(e) => {
                let _ = self.remove(&id).await;
                Err(e)
            }
        }
    }
}
