//! Executing jobs in the daemon: in-process workers ([`local`]) and the one path every verdict, local or
//! from a remote worker, is recorded by ([`record`]).

pub mod local;
pub mod recheck;
pub mod record;
