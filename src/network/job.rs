//! What a job's proxy keeps: its budget, its record of exchanges, and the decisions every request and
//! tunnel shares (refusing, resolving and connecting).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use super::address;
use super::allow::AllowList;

/// A job's budget on the network.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests and tunnels, together.
    pub max_requests: u64,
    /// Bytes received from upstream, bodies and tunnels together.
    pub max_bytes: u64,
    /// Connecting to an upstream gives up after this long.
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests: 10_000,
            max_bytes: 8 << 30,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// One request or tunnel of a build, as the proxy saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    /// The URL requested (`host:port` for a tunnel).
    pub url: String,
    /// The upstream's status (403 for a refusal).
    pub status: Option<u16>,
    /// Bytes received from upstream (for a tunnel: both directions).
    pub bytes: u64,
    /// sha256 of the whole body received (`sha256:<hex>`); absent for tunnels and bodies not read to the end.
    pub sha256: Option<String>,
    /// Why the proxy refused it: this rebuilder's policy, not the build's doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Answered by the job's registry sink (a push, or a read of what was pushed): nothing left this
    /// rebuilder.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sink: bool,
    /// A pull by digest served from the cache all jobs share: the upstream was not asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// A pull by tag: an input not pinned by digest (allowed only by `sandbox.network.allow_tag_pulls`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpinned: bool,
}

impl Exchange {
    /// The digest of a body received whole with a 2xx answer and not refused: something the build was
    /// given (a dependency of the rebuild, and what a replay may serve again).
    pub fn body_received(&self) -> Option<&str> {
        let ok = self.refused.is_none() && self.status.is_some_and(|s| (200..300).contains(&s));
        self.sha256.as_deref().filter(|_| ok)
    }
}

pub(super) struct State {
    pub(super) allow: AllowList,
    pub(super) limits: Limits,
    /// Where whole 2xx GET bodies are kept by digest.
    pub(super) cache: Option<super::cache::Cache>,
    /// In `replay` mode, what may be served (and nothing is fetched).
    pub(super) replay: Option<Mutex<super::replay_set::ReplaySet>>,
    /// TLS interception with the job's CA.
    pub(super) intercept: Option<super::tls::Interception>,
    /// Pulls by tag are let through (and recorded as unpinned).
    pub(super) allow_tag_pulls: bool,
    /// Where the build's registry pushes land.
    pub(super) sink: Option<std::sync::Arc<super::sink_store::Sink>>,
    pub(super) requests: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) log: Mutex<Vec<Exchange>>,
}

impl State {
    pub(super) fn record(&self, e: Exchange) -> usize {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.push(e);
        log.len() - 1
    }

    pub(super) fn update(&self, at: usize, f: impl FnOnce(&mut Exchange)) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = log.get_mut(at) {
            f(e);
        }
    }

    /// Counts `n` more bytes of exchange `at` (now `total` bytes in all) against the job's budget; once
    /// it is spent, the exchange is marked refused and the reason returned (the body is then cut).
    pub(super) fn charge(&self, at: usize, n: u64, total: u64) -> Result<(), String> {
        self.update(at, |e| e.bytes = total);
        if self.spend(n) {
            return Ok(());
        }
        let why = format!("the job's {} bytes are spent", self.limits.max_bytes);
        let said = why.clone();
        self.update(at, |e| e.refused = Some(said));
        Err(why)
    }

    /// Counts `n` bytes against the budget; `false` once it is spent.
    pub(super) fn spend(&self, n: u64) -> bool {
        self.bytes.fetch_add(n, Ordering::Relaxed) + n <= self.limits.max_bytes
    }
}

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(super) type ProxyBody = BoxBody<Bytes, BoxError>;

pub(super) fn text(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut r = Response::new(boxed_full(message));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // A refused client is not kept waiting on a kept-alive connection.
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

pub(super) fn boxed_full(message: String) -> ProxyBody {
    Full::new(Bytes::from(message))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Refuses a request: recorded, and answered 403 with the reason.
pub(super) fn refuse(
    state: &State,
    method: &Method,
    url: &str,
    why: String,
) -> Response<ProxyBody> {
    state.record(Exchange {
        method: method.to_string(),
        url: url.to_string(),
        status: Some(403),
        bytes: 0,
        sha256: None,
        refused: Some(why.clone()),
        ..Default::default()
    });
    text(
        StatusCode::FORBIDDEN,
        format!("reprod build network: network-denied: {why}\n"),
    )
}

/// Resolves `host:port` and connects to the first address the policy accepts.
pub(super) async fn connect(
    state: &State,
    host: &str,
    port: u16,
    grant: super::allow::Grant,
) -> Result<TcpStream, String> {
    let names_address = grant.names_address;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let resolved: Vec<SocketAddr> = match grant.at {
        // The operator said where this host is (`host:port=ADDRESS`): no DNS.
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::time::timeout(
            state.limits.connect_timeout,
            tokio::net::lookup_host((bare, port)),
        )
        .await
        .map_err(|_| format!("resolving {host} took too long"))?
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect(),
    };
    let mut refusals = Vec::new();
    for addr in resolved {
        match address::special(addr.ip()) {
            // A name may resolve anywhere; only an entry naming the address itself reaches a special one.
            Some(why) if !names_address => {
                refusals.push(format!("{host} resolves to {} ({why})", addr.ip()))
            }
            _ => {
                return match tokio::time::timeout(
                    state.limits.connect_timeout,
                    TcpStream::connect(addr),
                )
                .await
                {
                    Ok(Ok(s)) => Ok(s),
                    Ok(Err(e)) => Err(format!("connecting to {addr}: {e}")),
                    Err(_) => Err(format!("connecting to {addr} took too long")),
                };
            }
        }
    }
    Err(if refusals.is_empty() {
        format!("{host} has no address")
    } else {
        refusals.join("; ")
    })
}
