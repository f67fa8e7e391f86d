//! `reprod worker`: rebuilds on another machine for a `reprod serve`, over HTTP. It leases, heartbeats a
//! third of the lease, rebuilds in its own sandbox, and completes with its lease token; the server refuses
//! a completion whose lease expired (another worker has the job by then). The job itself runs exactly as
//! an in-process worker runs it ([`crate::execute`]).

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use reprod_sandbox::Executor;

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::execute::{self, Executed, Heartbeat};
use crate::trust::TrustMaterial;
use crate::wire::{Completion, Lease};

/// Runs a blocking client call off the async threads.
async fn call<T: Send + 'static>(
    client: &Client,
    f: impl FnOnce(&Client) -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    let client = client.clone();
    let url = client.base().to_string();
    tokio::task::spawn_blocking(move || f(&client))
        .await
        .unwrap_or_else(|e| {
            Err(ClientError::Transport {
                url,
                why: format!("HTTP task: {e}"),
            })
        })
}

/// Runs until SIGTERM/SIGINT; a job in progress is finished first.
pub async fn run(config: Config, material: TrustMaterial, client: Client) -> anyhow::Result<()> {
    let poll = Duration::from_millis(config.server.poll_ms);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown::signal().await;
        let _ = stop_tx.send(true);
    });
    execute::sweep_job_dirs(&config.data_dir).await;
    // One engine connection for the process, its orphans swept once.
    let executor = execute::connect(&config)
        .await
        .context("connecting to the Docker engine")?;
    eprintln!("reprod worker: leasing from {}", client.base());
    while !*stop_rx.borrow() {
        let lease = match call(&client, Client::lease).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop_rx.changed() => {}
                }
                continue;
            }
            Err(e) if e.is_refusal() => {
                anyhow::bail!(
                    "the server refuses this worker: {}",
                    crate::text::inert_line(&e.to_string())
                )
            }
            Err(e) => {
                tracing::warn!(error = %crate::text::inert_line(&e.to_string()), "cannot lease");
                tokio::time::sleep(poll * 5).await;
                continue;
            }
        };
        // The server chose the job id; shown inert like everything else it sends.
        let job = crate::text::inert_line(&lease.job).into_owned();
        eprintln!("reprod worker: leased {job} (attempt {})", lease.attempt);
        let Some(completion) = run_job(&config, &material, &executor, &client, &lease).await else {
            eprintln!("reprod worker: lost the lease of {job}; dropping the result");
            continue;
        };
        match call(&client, move |c| c.complete(&completion)).await {
            Ok(_) => eprintln!("reprod worker: completed {job}"),
            Err(e) => eprintln!(
                "reprod worker: cannot report {job}: {}",
                crate::text::inert_line(&e.to_string())
            ),
        }
    }
    eprintln!("reprod worker: stopped");
    Ok(())
}

/// Renews a lease with the server. Only a refusal loses it: a server that cannot be reached for a moment
/// may still take the completion.
struct ServerHeartbeat<'a> {
    client: &'a Client,
    lease: &'a Lease,
}

impl Heartbeat for ServerHeartbeat<'_> {
    fn every(&self) -> Duration {
        Duration::from_secs(self.lease.lease_secs.max(3) / 3)
    }

    async fn beat(&self) -> bool {
        let beat = crate::wire::Heartbeat {
            job: self.lease.job.clone(),
            token: self.lease.token.clone(),
        };
        match call(self.client, move |c| c.heartbeat(&beat)).await {
            Err(e @ ClientError::Api { .. }) => {
                tracing::warn!(error = %crate::text::inert_line(&e.to_string()), "heartbeat refused");
                false
            }
            _ => true,
        }
    }
}

/// `None` when the server said the lease is gone.
async fn run_job(
    config: &Config,
    material: &TrustMaterial,
    executor: &dyn Executor,
    client: &Client,
    lease: &Lease,
) -> Option<Completion> {
    let done = |verdict, retry| Completion {
        job: lease.job.clone(),
        token: lease.token.clone(),
        verdict,
        retry,
        artifacts: Default::default(),
    };
    let payload = match base64::engine::general_purpose::STANDARD.decode(&lease.payload) {
        Ok(p) => p,
        Err(e) => {
            return Some(done(
                None,
                Some(format!("the leased payload is not base64: {e}")),
            ))
        }
    };
    let admitted = match execute::admit(config, material, payload).await {
        Ok(a) => a,
        Err(e) => return Some(done(None, Some(e))),
    };
    let heartbeat = ServerHeartbeat { client, lease };
    match execute::run(
        config, executor, &lease.job, &admitted, None, &heartbeat, None,
    )
    .await
    {
        Executed::Verdict { verdict, artifacts } => {
            let mut completion = done(Some(*verdict), None);
            completion.artifacts = artifacts
                .into_iter()
                .map(|(name, bytes)| {
                    (
                        name,
                        base64::engine::general_purpose::STANDARD.encode(bytes),
                    )
                })
                .collect();
            Some(completion)
        }
        Executed::Retry(reason) => Some(done(None, Some(reason))),
        Executed::LeaseLost => None,
    }
}
