//! Removing containers: one job's, this process's, and those a dead reprod process left behind.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;

use crate::connect::docker_err;
use crate::{Sandbox, SandboxError, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER};

impl Sandbox {
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
                    removed += usize::from(self.remove_unless_under_way(&id).await?);
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
                // A removal the dead process asked for may still be under way in the engine.
                removed += usize::from(self.remove_unless_under_way(&id).await?);
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

    /// Removes one container: `Ok(true)` removed, `Ok(false)` when the engine says a removal is already
    /// under way (409).
    async fn remove_unless_under_way(&self, id: &str) -> Result<bool, SandboxError> {
        match self.remove(id).await {
            Ok(()) => Ok(true),
            Err(SandboxError::Docker {
                error:
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 409, ..
                    },
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes one container, gone or not.
    pub(crate) async fn remove(&self, id: &str) -> Result<(), SandboxError> {
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
pub(crate) struct RemoveOnDrop {
    pub(crate) docker: Docker,
    pub(crate) id: Option<String>,
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
pub(crate) fn owner_token() -> String {
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
