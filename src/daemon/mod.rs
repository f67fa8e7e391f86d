//! `reprod serve`: intake (HTTP and an inbox directory), a durable queue, in-process workers, a lease
//! reaper, and graceful shutdown. What it acknowledges survives `kill -9`; what it stops, it gives back.

pub mod exposition;
pub mod http;
pub mod intake;
pub mod live;
pub mod metrics;
mod publisher;
pub mod shared;
pub mod work;

/// The log target of job state changes (queued, leased, verdict recorded, given back, to retry or given
/// up): one line each, shown at `serve`'s default level (`warn,reprod::jobs=info`).
pub const JOBS: &str = "reprod::jobs";

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reprod_jobs::{JobId, LeaseToken, Queue, QueueConfig, SledQueue};
use tokio::sync::watch;

use http::listen;
use intake::{inbox, registry};
pub use shared::{blocking, Blocking, Shared, WorkerSeen};
use work::local as worker;

use crate::attest::SigningKey;
use crate::config::Config;
use crate::store::Store;
use crate::trust::TrustMaterial;

/// `reprod serve`: listens on `server.listen` and runs until SIGTERM or SIGINT.
pub async fn serve(config: Config, material: TrustMaterial) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    run(config, material, listener, crate::shutdown::signal()).await
}

/// Opens the stores and serves on `listener` until `shutdown` completes; then stops leasing, gives
/// running rebuilds `server.shutdown_grace_secs` and gives back what they have not finished. Tests run
/// the daemon in-process with their own listener and shutdown.
pub async fn run(
    mut config: Config,
    material: TrustMaterial,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // The daemon believes nothing it cannot verify unless told to.
    config.trust.require_signature =
        config.trust.require_signature || !config.server.accept_unsigned;
    let data = config.data_dir.clone();
    std::fs::create_dir_all(&data)
        .with_context(|| format!("creating the data directory {}", data.display()))?;
    let qcfg = QueueConfig {
        max_attempts: config.server.max_attempts,
        backoff_base: Duration::from_secs(config.server.retry_base_secs),
        ..QueueConfig::default()
    };
    // The key first: a missing or unreadable key stops the start, not the first verdict.
    let signer = load_signer(&config)?;
    let queue = SledQueue::open(&data.join("queue"), qcfg).context("opening the queue")?;
    let store = Store::open(&data.join("store")).context("opening the store")?;
    // One engine connection for the process: every worker's steps run through it.
    let sandbox: Arc<dyn reprod_sandbox::Executor> = Arc::new(
        crate::execute::connect(&config)
            .await
            .context("connecting to the Docker engine")?,
    );
    crate::execute::sweep_job_dirs(&config.data_dir).await;
    // Ready before "listening" is announced: a writer that starts then finds the inbox there.
    inbox::prepare(&config.server.inbox_dir).with_context(|| {
        format!(
            "preparing the inbox {} (server.inbox_dir)",
            config.server.inbox_dir.display()
        )
    })?;
    let fd_limit = match listen::raise_fd_limit() {
        Ok(l) => {
            // Tests and operators read this line.
            eprintln!(
                "reprod serve: file descriptors: soft limit {} (was {})",
                l.now, l.before
            );
            tracing::info!(
                soft_limit = l.now,
                was = l.before,
                "file descriptor limit raised to the hard limit"
            );
            l.now
        }
        Err(e) => {
            let now = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX);
            eprintln!("reprod serve: file descriptors: soft limit {now} (could not raise it: {e})");
            tracing::warn!(soft_limit = now, error = %e, "cannot raise the file descriptor limit");
            now
        }
    };
    let limits = listen::Limits::new(&config.server, fd_limit);
    if limits.max_connections < config.server.max_connections {
        tracing::warn!(
            configured = config.server.max_connections,
            used = limits.max_connections,
            fd_limit,
            "server.max_connections lowered to fit the file descriptor limit"
        );
    }
    if config.server.submit_tokens.is_empty() {
        // Not an error (the inbox and the watcher still feed the queue), but `reprod submit` and
        // `POST /v1/provenance` will all be refused: said once, where an operator looks first.
        tracing::warn!(
            "server.submit_tokens is empty: POST /v1/provenance (reprod submit) refuses every submission; \
             documents come only from the inbox and the watched registries"
        );
    }
    let publisher = if config.publish.enabled {
        let p = publisher::Publisher::new(&config.publish, signer.public_key().clone())
            .context("setting up verdict publishing ([publish])")?;
        tracing::info!(registries = ?config.publish.allowed_registries(), "verdicts are published to registries");
        Some(p)
    } else {
        None
    };
    if config.server.public_url.is_empty() && http::base::listens_everywhere(&config.server.listen)
    {
        // Answers then use the Host a client sent; signed statements, made once for everyone, cannot.
        tracing::warn!(
            listen = %config.server.listen,
            "server.public_url is empty and the server listens on every address: the links in signed \
             verdicts will name {}; set server.public_url to the address clients use",
            config.server.base_url()
        );
    }
    let addr = listener.local_addr().context("reading the bound address")?;
    let workers = config.server.workers;
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let lease = Duration::from_secs(config.server.lease_secs);
    let shared = Arc::new(Shared::new(config, material, queue, store, signer));
    let (stop_tx, stop_rx) = watch::channel(false);

    let app = http::router(shared.clone());
    let http = tokio::spawn(listen::serve(listener, app, limits, stop_rx.clone()));
    let inbox = tokio::spawn(inbox::run(shared.clone(), stop_rx.clone()));
    let watchers: Vec<_> = shared
        .config
        .server
        .watch
        .iter()
        .map(|t| tokio::spawn(registry::run(shared.clone(), t.clone(), stop_rx.clone())))
        .collect();
    let publishing =
        publisher.map(|p| tokio::spawn(publisher::run(shared.clone(), p, stop_rx.clone())));
    let reaper = {
        let shared = shared.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let every = (lease / 4).max(Duration::from_secs(1));
            loop {
                match blocking(&shared, |s| s.queue.reap_expired()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(returned = n, "expired leases returned to the queue");
                        shared.wake.notify_waiters();
                    }
                    Err(e) => tracing::error!(error = %e, "reaper: the queue store fails"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    };
    let mut pool: Vec<_> = (0..workers)
        .map(|i| {
            tokio::spawn(worker::run(
                shared.clone(),
                sandbox.clone(),
                format!("local-{i}"),
                stop_rx.clone(),
            ))
        })
        .collect();
    // Tests and operators wait for this line.
    eprintln!("reprod serve: listening on http://{addr} with {workers} worker(s)");
    tracing::info!(%addr, workers, "serving");

    shutdown.await;
    eprintln!(
        "reprod serve: stopping: no new leases; running rebuilds have {}s to finish",
        grace.as_secs()
    );
    let _ = stop_tx.send(true);
    let finished = tokio::time::timeout(grace, async {
        for h in &mut pool {
            let _ = h.await;
        }
    })
    .await;
    if finished.is_err() {
        for h in &pool {
            h.abort();
        }
        let held: Vec<(JobId, LeaseToken)> = shared
            .active
            .lock()
            .map(|a| a.iter().map(|(j, t)| (j.clone(), t.clone())).collect())
            .unwrap_or_default();
        for (job, token) in held {
            let j = job.clone();
            match blocking(&shared, move |s| s.queue.release(&j, &token)).await {
                Ok(()) => eprintln!(
                    "reprod serve: gave back {job} (not finished within the grace period)"
                ),
                Err(e) => eprintln!("reprod serve: could not give back {job}: {e}"),
            }
        }
        match sandbox.remove_own_containers().await {
            Ok(n) if n > 0 => eprintln!("reprod serve: removed {n} build container(s)"),
            Ok(_) => {}
            Err(e) => eprintln!("reprod serve: could not remove build containers: {e}"),
        }
    }
    let _ = inbox.await;
    for w in watchers {
        let _ = w.await;
    }
    let _ = reaper.await;
    if let Some(p) = publishing {
        let _ = p.await;
    }
    if let Err(e) = http.await {
        tracing::error!(error = %e, "HTTP task");
    }
    eprintln!("reprod serve: stopped");
    Ok(())
}

/// `server.signing_key`, which must exist; without it, `<data_dir>/signing.key`, made on first start.
fn load_signer(config: &Config) -> anyhow::Result<SigningKey> {
    let (path, create) = if config.server.signing_key.as_os_str().is_empty() {
        (config.data_dir.join("signing.key"), true)
    } else {
        (config.server.signing_key.clone(), false)
    };
    let (key, created) = SigningKey::load_or_create(&path, create)
        .context("loading the verdict signing key (server.signing_key)")?;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0);
    if mode & 0o077 != 0 {
        eprintln!(
            "reprod serve: warning: the signing key {} is readable by others (mode {:o}); `chmod 600` it",
            path.display(),
            mode & 0o777
        );
    }
    if created {
        eprintln!(
            "reprod serve: created the verdict signing key {} (public key: {}; key id {})",
            path.display(),
            path.with_extension("pub").display(),
            key.key_id()
        );
    }
    tracing::info!(key = %path.display(), key_id = key.key_id(), "verdicts are signed with this key");
    Ok(key)
}
