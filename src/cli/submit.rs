//! `reprod submit`.

use std::path::PathBuf;

use reprod::config::Config;

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
    let jobs: Vec<String> = answer["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["id"].as_str().map(str::to_string))
        .collect();
    if !wait {
        if json {
            println!("{answer}");
        } else {
            for j in answer["jobs"].as_array().into_iter().flatten() {
                say!(
                    "queued: job {} ({})",
                    j["id"].as_str().unwrap_or("?"),
                    j["status"].as_str().unwrap_or("?")
                );
            }
        }
        return Ok(Exit::Success);
    }
    let deadline = std::time::Instant::now() + timeout;
    let mut worst = Exit::Success;
    for id in jobs {
        let job = loop {
            let job = client.job(&id)?;
            let state = job["state"].as_str().unwrap_or_default();
            if !job["verdict"].is_null() || state == "dead" {
                break job;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "job {id}: no verdict within {}s (state {state})",
                timeout.as_secs()
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        };
        let status = job["verdict"]["status"].as_str().unwrap_or("error");
        if json {
            println!("{job}");
        } else {
            say!("{status}: job {id}");
            if let Some(detail) = job["verdict"]["detail"].as_str() {
                say!("  {detail}");
            }
            if let Some(e) = job["last_error"].as_str().filter(|_| status == "error") {
                say!("  given up after retries: {e}");
            }
        }
        let code = match status {
            "reproducible" => Exit::Success,
            "error" => Exit::Error,
            _ => Exit::Negative,
        };
        worst = worst.max(code);
    }
    Ok(worst)
}
