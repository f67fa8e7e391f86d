//! A job's build network: the grant its document gets, the job's own namespace with the proxy inside it,
//! what the steps are told, and the record that goes into the outcome.

use reprod_sandbox::{JobNetwork, StepMount, StepSpec};

use super::{Job, RebuildError};
use crate::network::sink::Sink;
use crate::network::tls::{upstream_connector, Interception, JobCa};
use crate::network::{AllowList, Cache, JobGrant, NetworkMode, Proxy, Setup};
use crate::verdict::{NetworkRecord, TlsRecord};

/// Where the proxy listens in the job's namespace: fixed, so that a build that records its environment
/// records the same `HTTP_PROXY` every time.
pub(super) const PROXY_PORT: u16 = 3128;

/// The job's own network, opened before its first step and kept until the job ends.
pub(super) struct BuildNetwork {
    grant: JobGrant,
    proxy: Proxy,
    namespace: JobNetwork,
    /// With TLS interception: the job's CA as the steps find it.
    tls: Option<TlsRecord>,
    /// Where the build's pushes land.
    sink: std::sync::Arc<Sink>,
}

/// The job directory's folder holding the registry sink (an OCI layout once something is pushed; read
/// by the output scan, never mounted into a step).
pub(super) const SINK_DIR: &str = "registry-sink";

/// The job directory's folder for the CA files mounted into the steps (read-only).
const CA_DIR: &str = "network";
/// The job's CA alone, and the bundle of this host's roots plus the job's CA.
const CA_FILE: &str = "job-ca.crt";
const BUNDLE_FILE: &str = "ca-bundle.crt";
/// Where the steps find them: the bundle beside the CA under /etc/reprod (named by SSL_CERT_FILE and
/// friends), the CA alone for tools that add to their own roots (Node's NODE_EXTRA_CA_CERTS) and, with
/// `sandbox.network.overlay_system_roots`, the bundle over the system paths Debian, Ubuntu, Alpine and
/// Go read.
const BUNDLE_PATH: &str = "/etc/reprod/ca-bundle.crt";
const CA_PATH: &str = "/etc/reprod/job-ca.crt";
const SYSTEM_BUNDLE_PATHS: [&str; 2] = ["/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/cert.pem"];

/// The container paths the bundle is mounted at.
fn bundle_paths(overlay: bool) -> Vec<&'static str> {
    let mut paths = vec![BUNDLE_PATH];
    if overlay {
        paths.extend(SYSTEM_BUNDLE_PATHS);
    }
    paths
}
/// This host's roots, the first of these that exists (Debian's, then Fedora's).
const HOST_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Makes the job's CA and writes what the steps are given of it. Blocking.
fn job_ca(root: &std::path::Path, job: &str, overlay: bool) -> Result<(JobCa, TlsRecord), String> {
    use std::io::Write;
    let ca = JobCa::new(job).map_err(|e| e.to_string())?;
    let pem = ca.pem().map_err(|e| e.to_string())?;
    let dir = root.join(CA_DIR);
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut bundle = HOST_BUNDLES
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    if !bundle.is_empty() && !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(&pem);
    for (name, bytes) in [(CA_FILE, &pem), (BUNDLE_FILE, &bundle)] {
        let path = dir.join(name);
        let mut f = crate::safe_fs::create_new(&path, 0o644)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut ca_paths: Vec<String> = bundle_paths(overlay)
        .iter()
        .map(|p| p.to_string())
        .collect();
    ca_paths.push(CA_PATH.to_string());
    let record = TlsRecord {
        ca_sha256: ca.fingerprint().map_err(|e| e.to_string())?,
        ca_paths,
        tunnel_only: Vec::new(),
    };
    Ok((ca, record))
}

/// The grant of a document: the first `[[sandbox.network.rules]]` entry naming one of its subjects (for
/// a document the trust policy vouches for), or `[sandbox.network]` itself.
pub(super) fn grant(job: &Job<'_>) -> JobGrant {
    let subjects = crate::verdict::subjects_of(job.admitted);
    let names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
    let network = &job.config.sandbox.network;
    // Vouched for the names the rule grants to, by the trust rule for those names: a document that also
    // names images of a signer's own cannot borrow another team's grant with that signer's signature.
    let vouched = network
        .rule_for(&names)
        .is_some_and(|(_, named)| job.admitted.vouched_for(job.config, &named));
    network.grant_for(&names, vouched)
}

/// What a failing step's verdict adds when a rule naming the document's images was not applied.
pub(super) fn withheld_note(grant: &JobGrant) -> String {
    grant.withheld.as_ref().map_or_else(String::new, |rule| {
        format!(
            "; the build network rule for {rule:?} was not applied: it grants network only to \
             documents whose signature verifies under the trust policy, and this one's does not"
        )
    })
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
        let sink_dir = job.dirs.path(SINK_DIR);
        let sink = tokio::task::spawn_blocking(move || Sink::open(&sink_dir))
            .await
            .map_err(|e| infra("opening the registry sink", &e))?
            .map_err(|e| infra("opening the registry sink", &e))?;
        let sink = std::sync::Arc::new(sink);
        let (intercept, tls) = if network.intercept_tls {
            let (root, id, overlay) = (
                job.dirs.root.clone(),
                job.id.clone(),
                network.overlay_system_roots,
            );
            let (ca, mut record) = tokio::task::spawn_blocking(move || job_ca(&root, &id, overlay))
                .await
                .map_err(|e| infra("making the job's CA", &e))?
                .map_err(|e| infra("making the job's CA", &e))?;
            let upstream = upstream_connector(&network.upstream_roots)
                .map_err(|e| infra("the proxy's upstream roots", &e))?;
            record.tunnel_only = network.tunnel_only.clone();
            let interception = Interception {
                ca,
                upstream,
                tunnel_only: network.tunnel_only.clone(),
            };
            (Some(interception), Some(record))
        } else {
            (None, None)
        };
        let proxy = Proxy::with(Setup {
            allow,
            limits: network.limits(),
            cache: Some(cache),
            replay,
            intercept,
            sink: Some(sink.clone()),
            allow_tag_pulls: network.allow_tag_pulls,
        });
        proxy
            .open_in(namespace.pid, PROXY_PORT)
            .await
            .map_err(|e| infra("opening the proxy in the job's network", &e))?;
        Ok(BuildNetwork {
            grant,
            proxy,
            namespace,
            tls,
            sink,
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
        if let Some(tls) = &self.tls {
            let file = |name: &str| std::path::PathBuf::from(CA_DIR).join(name);
            let overlay = tls.ca_paths.iter().any(|p| p == SYSTEM_BUNDLE_PATHS[0]);
            for at in bundle_paths(overlay) {
                spec.mounts.push(StepMount {
                    workspace_subdir: file(BUNDLE_FILE),
                    container_path: at.to_string(),
                    read_only: true,
                });
            }
            spec.mounts.push(StepMount {
                workspace_subdir: file(CA_FILE),
                container_path: CA_PATH.to_string(),
                read_only: true,
            });
            for name in [
                "SSL_CERT_FILE",
                "CURL_CA_BUNDLE",
                "REQUESTS_CA_BUNDLE",
                "GIT_SSL_CAINFO",
            ] {
                set_env(spec, name, BUNDLE_PATH);
            }
            set_env(spec, "NODE_EXTRA_CA_CERTS", CA_PATH);
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
            tls: self.tls.clone(),
            pushed: self.sink.pushed(),
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
