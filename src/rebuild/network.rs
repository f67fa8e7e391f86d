//! A job's build network: the grant its document gets, the job's own namespace with the proxy inside it,
//! what the steps are told, and the record that goes into the outcome.

use reprod_sandbox::{JobNetwork, StepSpec};

use super::{Job, RebuildError};
use crate::network::{AllowList, Cache, JobGrant, NetworkMode, Proxy, Setup};
use crate::verdict::NetworkRecord;

/// Where the proxy listens in the job's namespace: fixed, so that a build that records its environment
/// records the same `HTTP_PROXY` every time.
pub(super) const PROXY_PORT: u16 = 3128;

/// The job's own network, opened before its first step and kept until the job ends.
pub(super) struct BuildNetwork {
    grant: JobGrant,
    proxy: Proxy,
    namespace: JobNetwork,
}

/// The grant of a document: the first `[[sandbox.network.rules]]` entry naming one of its subjects, or
/// `[sandbox.network]` itself.
pub(super) fn grant(job: &Job<'_>) -> JobGrant {
    let subjects = crate::verdict::subjects_of(job.admitted);
    let names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
    job.config.sandbox.network.grant_for(&names)
}

fn proxy_url() -> String {
    format!("http://127.0.0.1:{PROXY_PORT}")
}

/// Only the step's own loopback bypasses the proxy (a build may talk to what it runs itself).
const NO_PROXY: &str = "localhost,127.0.0.1,::1";

impl BuildNetwork {
    /// Opens the job's namespace (loopback only) and serves the proxy inside it. `hostname` is the
    /// steps' (they take the namespace holder's).
    pub(super) async fn open(
        job: &Job<'_>,
        grant: JobGrant,
        hostname: &str,
    ) -> Result<Self, RebuildError> {
        let infra = |what: &str, e: &dyn std::fmt::Display| {
            RebuildError::Infrastructure(format!("{what}: {e}"))
        };
        let network = &job.config.sandbox.network;
        let holder = network
            .holder()
            .map_err(|e| infra("the build network", &e))?;
        let allow = AllowList::parse(&grant.allow)
            .map_err(|e| infra("the build network's allow-list", &e))?;
        let namespace = job
            .executor
            .open_job_network(&job.id, &holder, hostname, &job.dirs.root.clone().into())
            .await
            .map_err(|e| infra("opening the job's network", &e))?;
        let (dir, budget) = (
            job.config.data_dir.join("network-cache"),
            network.cache_bytes,
        );
        let cache = tokio::task::spawn_blocking(move || Cache::open(&dir, budget))
            .await
            .map_err(|e| infra("opening the network cache", &e))?
            .map_err(|e| infra("opening the network cache", &e))?;
        let replay = match grant.mode {
            NetworkMode::Replay => Some(grant.replay.clone().ok_or_else(|| {
                RebuildError::Infrastructure("the replay mode has no record to replay".into())
            })?),
            _ => None,
        };
        let proxy = Proxy::with(Setup {
            allow,
            limits: network.limits(),
            cache: Some(cache),
            replay,
            intercept: None,
        });
        proxy
            .open_in(namespace.pid, PROXY_PORT)
            .await
            .map_err(|e| infra("opening the proxy in the job's network", &e))?;
        Ok(BuildNetwork {
            grant,
            proxy,
            namespace,
        })
    }

    /// Puts a step in the job's network and tells it where the proxy is.
    pub(super) fn admit(&self, spec: &mut StepSpec) {
        spec.network = reprod_sandbox::StepNetwork::Job(self.namespace.clone());
        let url = proxy_url();
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            set_env(spec, name, &url);
        }
        for name in ["NO_PROXY", "no_proxy"] {
            set_env(spec, name, NO_PROXY);
        }
    }

    /// How many exchanges are recorded so far (to tell one step's from another's).
    pub(super) fn recorded(&self) -> usize {
        self.proxy.exchanges().len()
    }

    /// The record so far.
    pub(super) fn record(&self) -> NetworkRecord {
        NetworkRecord {
            mode: self.grant.mode,
            allow: self.grant.allow.clone(),
            rule: self.grant.rule.clone(),
            replayed_from: self.grant.replay.as_ref().map(|r| r.from.clone()),
            proxy: proxy_url(),
            no_proxy: NO_PROXY.to_string(),
            exchanges: self.proxy.exchanges(),
        }
    }

    /// Stops the proxy and returns its record (the namespace goes with the job's containers).
    pub(super) fn close(self) -> NetworkRecord {
        let record = self.record();
        drop(self.proxy);
        record
    }
}

/// Whether a grant gives the steps a network at all.
pub(super) fn wanted(grant: &JobGrant) -> bool {
    grant.mode != NetworkMode::None
}

/// Sets (or replaces) one variable of the step's environment.
fn set_env(spec: &mut StepSpec, name: &str, value: &str) {
    spec.env.retain(|(k, _)| k != name);
    spec.env.push((name.to_string(), value.to_string()));
}
