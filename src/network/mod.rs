//! The build network: what a step may reach, and the proxy that is its only way out.
//!
//! A step runs with no network interface but loopback. In `proxy` mode its HTTP and HTTPS traffic goes to
//! reprod's own forward proxy ([`proxy`]), which resolves names itself, refuses by default, lets through
//! only what the allow-list names ([`allow`]) at addresses the address policy accepts ([`address`]), caps a
//! job's requests and bytes, and records every exchange (URL, status, bytes, sha256 of the body) for the
//! verdict and the signed rebuild provenance.
//!
//! [`attach`] opens the one way out inside a job's network namespace. Not yet here (issue: "Builds as they
//! really run"): running a step's container in such a namespace, TLS interception with a per-job CA, the content-addressed cache and replay, the registry pull-through
//! cache and push sink.

pub mod address;
pub mod allow;
pub mod attach;
pub mod cache;
pub mod config;
mod intercept;
mod job;
pub mod proxy;
mod registry;
pub mod replay;
mod replay_set;
pub mod sink;
mod sink_store;
pub mod tls;
mod tunnel;
mod upstream;

pub use allow::{AllowList, AllowListError};
pub use cache::Cache;
pub use config::{JobGrant, NetworkConfig, NetworkMode, NetworkRule};
pub use job::{Exchange, Limits};
pub use proxy::{Proxy, Setup};
pub use replay::ReplaySet;
