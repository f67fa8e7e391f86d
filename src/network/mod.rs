//! The build network: what a step may reach, and the proxy that is its only way out.
//!
//! A step runs with no network interface but loopback. In `proxy` mode its HTTP and HTTPS traffic goes to
//! reprod's own forward proxy ([`proxy`]), which resolves names itself, refuses by default, lets through
//! only what the allow-list names ([`allow`]) at addresses the address policy accepts ([`address`]), caps a
//! job's requests and bytes, and records every exchange (URL, status, bytes, sha256 of the body) for the
//! verdict and the signed rebuild provenance.
//!
//! [`attach`] opens that one way out inside a job's network namespace; [`tls`] and `intercept` see inside
//! HTTPS with a CA made for the job; [`cache`] keeps fetched bodies by digest and [`replay`] serves only a
//! recorded rebuild's; `registry` verifies pulls by digest and [`sink`] keeps what a build pushes, which
//! never leaves. `config` is `[sandbox.network]`; the rebuild wires it to a job (`rebuild/network.rs`).

pub mod address;
pub mod allow;
pub mod attach;
pub mod cache;
pub mod config;
mod intercept;
mod job;
mod manifest;
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
