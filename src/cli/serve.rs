//! `reprod serve`.

use reprod::config::Config;

use super::common::long_running;
use super::Exit;

/// Run the rebuilder daemon: intake, a durable queue, workers, signed verdicts.
///
/// Intake: `POST /v1/provenance` with a token, the inbox directory, watched registries. In-process and
/// remote workers rebuild; verdicts are signed with `server.signing_key` and published (JSON API,
/// /metrics, pages, Atom feed). Runs until SIGTERM or SIGINT (running rebuilds get
/// `server.shutdown_grace_secs` to finish, then are given back to the queue).
#[derive(clap::Args)]
pub struct ServeArgs {}

pub fn run(config: Config) -> anyhow::Result<Exit> {
    let (runtime, material) = long_running(&config)?;
    runtime.block_on(reprod::daemon::serve(config, material))?;
    Ok(Exit::Success)
}
