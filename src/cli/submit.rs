//! `reprod submit`.

use std::path::PathBuf;

use reprod::config::Config;
use reprod::verdict::Status;
use reprod::wire::Submission;

use super::common::ServerArgs;
use super::Exit;

/// Send a provenance document to a reprod server's queue.
///
/// Exit status: 0 queued (or already known); 1 refused (signature, policy) or, with --wait, a verdict
/// other than reproducible; 2 error.
#[derive(clap::Args)]
pub struct SubmitArgs {
    file: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// A submit token (one of the server's server.submit_tokens).
    #[arg(long, env = "REPROD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Wait for the verdict and exit as `status` does.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds (exit 2).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SubmitArgs, config: &Config) -> anyhow::Result<Exit> {
    let SubmitArgs {
        file,
        server,
        token,
        wait,
        timeout,
        json,
    } = args;
    let client = server.client(config, token)?;
    let bytes = reprod::rebuild::read_provenance(&file, config.max_document_bytes)?;
    submit(
        &client,
        &bytes,
        wait,
        std::time::Duration::from_secs(timeout),
        json,
    )
}

fn submit(
    client: &reprod::client::Client,
    bytes: &[u8],
    wait: bool,
    timeout: std::time::Duration,
    json: bool,
) -> anyhow::Result<Exit> {
    let answer = match client.submit(bytes) {
        Ok(a) => a,
        Err(reprod::client::ClientError::Api {
            status: 422,
            code,
            message,
            ..
        }) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"refused": {"code": code, "message": message}})
                );
            } else {
                say!("refused ({code}): {message}");
            }
            return Ok(Exit::Negative);
        }
        Err(e) => return Err(e.into()),
    };
    if json && !wait {
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(Exit::Success);
    }
    // Said at once, with where to watch it: the wait may be long.
    if !json {
        for j in &answer.jobs {
            let how = match j.status {
                Submission::New => "new",
                Submission::Duplicate => "duplicate",
            };
            say!("queued: job {} ({how}): {}", j.id, client.job_page(&j.id));
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    if !wait {
        return Ok(Exit::Success);
    }
    let jobs: Vec<String> = answer.jobs.into_iter().map(|j| j.id).collect();
    let deadline = std::time::Instant::now() + timeout;
    let mut worst = Exit::Success;
    for id in jobs {
        let mut shown = String::new();
        let job = loop {
            let job = client.job(&id)?;
            if job.verdict.is_some() || job.state == "dead" {
                break job;
            }
            // One line per change of state (a leased job names its attempt).
            let state = format!("{} (attempt {})", job.state, job.attempt);
            if !json && state != shown {
                say!("  job {id}: {state}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
                shown = state;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "job {id}: no verdict within {}s (state {})",
                timeout.as_secs(),
                job.state
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        };
        // No verdict: the job was given up after its retries.
        let status = job.verdict.as_ref().map(|v| v.status);
        if json {
            println!("{}", serde_json::to_string(&job)?);
        } else {
            say!("{}: job {id}", status.map_or("error", Status::as_str));
            if let Some(v) = &job.verdict {
                say!("  {}", v.detail);
            }
            if let Some(e) = job.last_error.as_deref().filter(|_| status.is_none()) {
                say!("  given up after retries: {e}");
            }
        }
        let code = match status {
            Some(Status::Reproducible) => Exit::Success,
            Some(_) => Exit::Negative,
            None => Exit::Error,
        };
        worst = worst.max(code);
    }
    Ok(worst)
}
