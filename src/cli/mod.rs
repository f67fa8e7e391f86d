//! The subcommands of `reprod`: each module owns one command's arguments and body; `main` only dispatches.

/// `println!` for human output: what builds, documents and servers chose is made inert for a terminal.
macro_rules! say {
    ($($t:tt)*) => {
        println!("{}", reprod::text::inert(&format!($($t)*)))
    };
}

mod common;
mod exit;

pub mod config;
pub mod diff;
pub mod docs;
pub mod jobs;
pub mod keygen;
pub mod rebuild;
pub mod recheck;
pub mod scan;
pub mod serve;
pub mod status;
pub mod submit;
pub mod verify;
pub mod verify_provenance;
mod watch;
pub mod worker;

pub use exit::Exit;

/// A command's help text is the doc comment of its arguments struct, beside the body it describes.
#[derive(clap::Subcommand)]
pub enum Command {
    Rebuild(rebuild::RebuildArgs),
    Serve(serve::ServeArgs),
    Worker(worker::WorkerArgs),
    VerifyProvenance(verify_provenance::VerifyProvenanceArgs),
    Diff(diff::DiffArgs),
    Scan(scan::ScanArgs),
    Config(config::ConfigArgs),
    Keygen(keygen::KeygenArgs),
    Verify(verify::VerifyArgs),
    Status(status::StatusArgs),
    Submit(submit::SubmitArgs),
    Jobs(jobs::JobsArgs),
    Recheck(recheck::RecheckArgs),
    Completions(docs::CompletionsArgs),
    Manpages(docs::ManpagesArgs),
}
