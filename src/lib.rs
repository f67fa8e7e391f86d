//! reprod: an independent rebuilder for container images.
//!
//! Takes a provenance document ("image X with digest D was built from commit C by steps S in builder images
//! B"), reruns S on C inside hardened containers, and says whether D comes out bit for bit.
//!
//! # Layout
//!
//! The flow is one direction, as types: [`examine::admit`] turns bytes into an [`examine::Admitted`]
//! document, [`rebuild::rebuild`] runs its recipe through a [`reprod_sandbox::Executor`] and reports a
//! [`verdict::RebuildOutcome`], and [`verdict::decide`] turns that into a [`verdict::Verdict`], which
//! [`attest`] signs and [`store`] keeps. [`daemon`] serves it over HTTP ([`wire`] is the API as types,
//! [`client`] its one client); [`execute`] runs a leased job for in-process and remote workers alike.
//! `docs/architecture.md` has the whole table of modules and what each may import.

pub mod attest;
pub mod builders;
pub mod client;
pub mod config;
pub mod daemon;
pub mod diff;
pub mod examine;
pub mod execute;
pub mod json;
pub mod mirror;
pub mod network;
pub mod oci;
pub mod provenance;
pub mod publish;
pub mod rebuild;
pub mod remote_worker;
pub mod safe_fs;
pub mod shutdown;
pub mod source;
pub mod store;
pub mod text;
pub mod trust;
pub mod vary;
pub mod verdict;
pub mod wire;
