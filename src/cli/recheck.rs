//! `reprod recheck DIGEST|NAME`: ask a server for a fresh rebuild of what it already judged (an admin token).

use reprod::config::Config;

use super::Exit;

/// Rebuild again what a server judged, beside its first verdict (admin token)
///
/// The server queues a fresh rebuild of the document whose verdict decides DIGEST (for an image NAME, its
/// newest digest), as a job of its own, without reusing an earlier rebuild; its verdict joins the
/// digest's history. Periodic rechecks catch a toolchain that drifted.
///
/// Exit status: 0 queued (or already queued this second); 2 nothing the server judged matches, the
/// token is refused, or the server cannot be asked.
#[derive(clap::Args)]
pub struct RecheckArgs {
    /// A digest (`sha256:<64 hex>`) or an image name.
    target: String,
    /// The server's base URL (default: server.public_url, else http://<server.listen>).
    #[arg(long, env = "REPROD_SERVER")]
    server: Option<String>,
    /// An admin token (one of the server's server.admin_tokens).
    #[arg(long, env = "REPROD_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the queued job as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: RecheckArgs, config: &Config) -> anyhow::Result<Exit> {
    let url = args.server.unwrap_or_else(|| config.server.base_url());
    let client = reprod::client::Client::new(&url, args.token)?;
    let job = client.admin_recheck(&args.target)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&job)?);
    } else {
        println!("{}", job.id);
        eprintln!("queued a recheck: {}", job.url);
    }
    Ok(Exit::Success)
}
