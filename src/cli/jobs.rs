//! `reprod jobs list|cancel|retry`: the operator's view of a server's queue (an admin token).

use reprod::config::Config;
use reprod::wire::QueuedJob;

use super::Exit;

/// List, cancel or retry a server's jobs (an operator's admin token).
///
/// Exit status: 0 done; 1 the job is in a state the action does not apply to (a running, done or
/// already dead job cannot be cancelled; only a dead job is retried); 2 no such job, the token is
/// refused, or the server cannot be asked.
#[derive(clap::Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    action: Action,
    /// The server's base URL (default: server.public_url, else http://<server.listen>).
    #[arg(long, global = true, env = "REPROD_SERVER")]
    server: Option<String>,
    /// An admin token (one of the server's server.admin_tokens).
    #[arg(
        long,
        global = true,
        env = "REPROD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Action {
    /// The queue's jobs, oldest id first (every page).
    List {
        /// Only jobs in this state.
        #[arg(long, value_parser = ["ready", "delayed", "leased", "done", "dead"])]
        state: Option<String>,
    },
    /// Send a job that waits (ready, or delayed for a retry) to the dead letters.
    Cancel {
        id: String,
        /// Why, kept with the job (at most 200 characters).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Queue a dead job again, its attempts given back (e.g. after fixing what made them fail).
    Retry { id: String },
}

pub fn run(args: JobsArgs, config: &Config) -> anyhow::Result<Exit> {
    let url = args.server.unwrap_or_else(|| config.server.base_url());
    let client = reprod::client::Client::new(&url, args.token)?;
    let answer = match &args.action {
        Action::List { state } => {
            let mut jobs = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = client.admin_jobs(state.as_deref(), after.as_deref(), 1000)?;
                jobs.extend(page.jobs);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                for job in &jobs {
                    line(job);
                }
                say!("{} job(s)", jobs.len());
            }
            return Ok(Exit::Success);
        }
        Action::Cancel { id, reason } => client.admin_job(id, "cancel", reason.as_deref()),
        Action::Retry { id } => client.admin_job(id, "retry", None),
    };
    match answer {
        Ok(job) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                line(&job);
            }
            Ok(Exit::Success)
        }
        Err(reprod::client::ClientError::Api {
            status: 409,
            message,
            ..
        }) => {
            eprintln!("refused: {}", reprod::text::inert(&message));
            Ok(Exit::Negative)
        }
        Err(e) => Err(e.into()),
    }
}

/// One job on one line: state, id, attempts, and why it is dead or what failed last.
fn line(job: &QueuedJob) {
    let why = job
        .dead_reason
        .as_deref()
        .or(job.last_error.as_deref())
        .map(|w| format!("  {w}"))
        .unwrap_or_default();
    say!(
        "{:<8} {}  attempt {}  {}{why}",
        job.state,
        job.id,
        job.attempt,
        job.updated
    );
}
