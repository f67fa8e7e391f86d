//! `reprod worker`: rebuilds on another machine for a `reprod serve`, over HTTP. It leases, heartbeats a
//! third of the lease, rebuilds in its own sandbox, and completes with its lease token; the server refuses
//! a completion whose lease expired (another worker has the job by then).

use std::time::Duration;

use anyhow::Context;
use base64::Engine;

use super::http::{RemoteCompletion, RemoteLease};
use crate::config::Config;
use crate::rebuild::{self, RebuildError, RebuildOptions};
use crate::trust::TrustMaterial;

/// A remote worker's connection to its server.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    server: String,
    token: String,
}

enum Reply {
    Json(serde_json::Value),
    Empty,
    Refused(u16, String),
}

impl Client {
    /// `server` is `http://` or `https://` (verified against the system's CA store).
    pub fn new(server: &str, token: &str) -> anyhow::Result<Self> {
        let mut builder = ureq::AgentBuilder::new().timeout(Duration::from_secs(60));
        if server.starts_with("https://") {
            let tls = native_tls::TlsConnector::new().context("setting up TLS")?;
            builder = builder.tls_connector(std::sync::Arc::new(tls));
        } else if !server.starts_with("http://") {
            anyhow::bail!("--server {server:?}: expected an http:// or https:// URL");
        }
        Ok(Client {
            agent: builder.build(),
            server: server.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<Reply> {
        let this = self.clone();
        let url = format!("{}{path}", self.server);
        tokio::task::spawn_blocking(move || {
            let req = this
                .agent
                .post(&url)
                .set("Authorization", &format!("Bearer {}", this.token));
            match req.send_json(body) {
                Ok(r) if r.status() == 204 => Ok(Reply::Empty),
                Ok(r) => Ok(Reply::Json(
                    r.into_json().with_context(|| format!("{url}: not JSON"))?,
                )),
                Err(ureq::Error::Status(code, r)) => {
                    Ok(Reply::Refused(code, r.into_string().unwrap_or_default()))
                }
                Err(e) => Err(anyhow::anyhow!("{url}: {e}")),
            }
        })
        .await
        .context("HTTP task")?
    }
}

/// Runs until SIGTERM/SIGINT; a job in progress is finished first.
pub async fn run(config: Config, material: TrustMaterial, client: Client) -> anyhow::Result<()> {
    let poll = Duration::from_millis(config.server.poll_ms);
    let stop = tokio::sync::watch::channel(false);
    let (stop_tx, mut stop_rx) = stop;
    tokio::spawn(async move {
        super::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    super::sweep_job_dirs(&config.data_dir).await;
    eprintln!("reprod worker: leasing from {}", client.server);
    while !*stop_rx.borrow() {
        let lease = match client.post("/v1/worker/lease", serde_json::json!({})).await {
            Ok(Reply::Json(v)) => {
                serde_json::from_value::<RemoteLease>(v).context("the server's lease")?
            }
            Ok(Reply::Empty) => {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop_rx.changed() => {}
                }
                continue;
            }
            Ok(Reply::Refused(code, body)) if code == 401 || code == 403 => {
                anyhow::bail!(
                    "the server refuses this worker ({code}): {}",
                    crate::text::inert_line(&body)
                )
            }
            Ok(Reply::Refused(code, body)) => {
                tracing::warn!(code, body = %crate::text::inert_line(&body), "lease refused");
                tokio::time::sleep(poll * 5).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the server");
                tokio::time::sleep(poll * 5).await;
                continue;
            }
        };
        // The server chose the job id; shown inert like everything else it sends.
        let job = crate::text::inert_line(&lease.job).into_owned();
        eprintln!("reprod worker: leased {job} (attempt {})", lease.attempt);
        let completion = match run_job(&config, &material, &client, &lease).await {
            Some(c) => c,
            None => {
                eprintln!("reprod worker: lost the lease of {job}; dropping the result");
                continue;
            }
        };
        let body = serde_json::to_value(&completion).context("encoding the result")?;
        match client.post("/v1/worker/complete", body).await {
            Ok(Reply::Json(_)) => eprintln!("reprod worker: completed {job}"),
            Ok(Reply::Refused(code, body)) => eprintln!(
                "reprod worker: completion of {job} refused ({code}): {}",
                crate::text::inert_line(&body)
            ),
            Ok(Reply::Empty) => {}
            Err(e) => eprintln!(
                "reprod worker: cannot report {job}: {}",
                crate::text::inert_line(&e.to_string())
            ),
        }
    }
    eprintln!("reprod worker: stopped");
    Ok(())
}

/// `None` when the server said the lease is gone.
async fn run_job(
    config: &Config,
    material: &TrustMaterial,
    client: &Client,
    lease: &RemoteLease,
) -> Option<RemoteCompletion> {
    let done = |verdict: Option<serde_json::Value>, retry: Option<String>| RemoteCompletion {
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
    let every = Duration::from_secs(lease.lease_secs.max(3) / 3);
    let heartbeat = async {
        loop {
            tokio::time::sleep(every).await;
            let body = serde_json::json!({"job": lease.job, "token": lease.token});
            if let Ok(Reply::Refused(code, body)) = client.post("/v1/worker/heartbeat", body).await
            {
                tracing::warn!(code, body = %crate::text::inert_line(&body), "heartbeat refused");
                return;
            }
        }
    };
    let job = lease.job.clone();
    let progress = move |line: &str| tracing::info!(%job, "{}", crate::text::inert(line));
    let opts = RebuildOptions {
        origin: format!("job {}", lease.job),
        // Kept until its logs and diffs are read for upload, then removed.
        keep_workspace: true,
        progress: &progress,
        variations: Default::default(),
        material: material.clone(),
        blobs: &crate::provenance::container::NoBlobs,
        collected: true,
    };
    let result = tokio::select! {
        r = rebuild::rebuild(config, &payload, &opts) => r,
        () = heartbeat => return None,
    };
    Some(match result {
        Ok(mut verdict) => {
            let dir = verdict.job_dir.take().map(std::path::PathBuf::from);
            let mut completion = match serde_json::to_value(&verdict) {
                Ok(v) => done(Some(v), None),
                Err(e) => done(None, Some(e.to_string())),
            };
            if let Some(dir) = dir {
                let d = dir.clone();
                let files = tokio::task::spawn_blocking(move || rebuild::job_artifacts(&d))
                    .await
                    .unwrap_or_default();
                completion.artifacts = files
                    .into_iter()
                    .map(|(name, bytes)| {
                        (
                            name,
                            base64::engine::general_purpose::STANDARD.encode(bytes),
                        )
                    })
                    .collect();
                if let Err(e) = rebuild::remove_job_dir(&dir).await {
                    tracing::warn!(path = %dir.display(), error = %e, "could not remove the job directory");
                }
            }
            completion
        }
        Err(RebuildError::Infrastructure(e)) => done(None, Some(e)),
        Err(other) => done(None, Some(other.to_string())),
    })
}
