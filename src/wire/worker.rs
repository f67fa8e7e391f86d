//! The remote-worker protocol: lease, heartbeat, complete, each authorized by a worker token and (after
//! the lease) the lease token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::verdict::Verdict;

/// `POST /v1/worker/lease` → 200: a job for this worker (204 when there is none).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    pub job: String,
    pub token: String,
    pub attempt: u32,
    pub lease_secs: u64,
    /// The provenance document, base64.
    pub payload: String,
}

/// `POST /v1/worker/heartbeat`: keeps a lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub job: String,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub lease_secs: u64,
}

/// `POST /v1/worker/complete`: exactly one of a verdict and a reason to retry. The server reads `V` as
/// raw JSON and parses it only once the lease is found to be this worker's, so nobody else's verdict is
/// ever parsed; the worker sends a [`Verdict`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion<V = Verdict> {
    pub job: String,
    pub token: String,
    #[serde(default = "Option::default")]
    pub verdict: Option<V>,
    #[serde(default)]
    pub retry: Option<String>,
    /// Full step logs and diff reports (`logs/…`, `diffs/…` → base64), kept with the verdict.
    #[serde(default)]
    pub artifacts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionAnswer {
    /// The job's queue state after completing (`done`, `queued` for a retry, `failed`).
    pub state: String,
}
