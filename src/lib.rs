//! reprod: an independent rebuilder for container images.
//!
//! Takes a provenance document ("image X with digest D was built from commit C by steps S in builder images
//! B"), reruns S on C inside hardened containers, and says whether D comes out bit for bit. See DESIGN.md
//! for the flow; each module here owns one stage of it.

pub mod attest;
pub mod client;
pub mod config;
pub mod daemon;
pub mod diff;
pub mod examine;
pub mod execute;
pub mod json;
pub mod mirror;
pub mod oci;
pub mod provenance;
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
