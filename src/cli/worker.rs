//! `reprod worker`.

use reprod::config::Config;

use super::common::long_running;
use super::Exit;

/// Rebuild jobs leased from a `reprod serve` elsewhere.
///
/// Leases jobs over HTTP, rebuilds here, reports the verdict with the lease token. Stops after the
/// current job on SIGTERM/SIGINT.
#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The server's base URL, e.g. http://10.0.0.5:8780.
    #[arg(long)]
    server: String,
    /// This worker's token (one of the server's `server.worker_tokens`).
    #[arg(long, env = "REPROD_WORKER_TOKEN", hide_env_values = true)]
    token: String,
}

pub fn run(args: WorkerArgs, config: Config) -> anyhow::Result<Exit> {
    let WorkerArgs { server, token } = args;
    let (runtime, material) = long_running(&config)?;
    let client = reprod::client::Client::new(&server, Some(token))?;
    runtime.block_on(reprod::remote_worker::run(config, material, client))?;
    Ok(Exit::Success)
}
