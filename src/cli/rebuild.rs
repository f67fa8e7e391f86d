//! `reprod rebuild`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;

use reprod::config::Config;
use reprod::rebuild::{self, RebuildOptions};

use super::common::{print_result, TrustArgs};
use super::Exit;

/// Rebuild from one provenance document and print the verdict.
///
/// Exit status: 0 reproducible; 1 any other verdict (unreproducible, build-failed, unrebuildable,
/// rejected); 2 no verdict could be reached (unreadable input, Docker down, ...).
#[derive(clap::Args)]
pub struct RebuildArgs {
    /// The provenance document (any container `verify-provenance` reads).
    provenance: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Print the verdict as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Keep the job directory (workspace, results, scripts) and print its path; with --vary, keep
    /// every build's.
    #[arg(long)]
    keep_workspace: bool,
    /// Rebuild again under environment variations (clock, SOURCE_DATE_EPOCH, build path, hostname,
    /// timezone, locale, umask, user id, CPU count, environment order) and name the variation that
    /// changes the output. Exit status: 0 no variation changes it, 1 one does, 2 error (including a
    /// control build that produced nothing to compare).
    #[arg(long)]
    vary: bool,
    /// The steps' network: `none` (no network at all) or `proxy` (reprod's recording proxy, letting
    /// through only what --allow names). Overrides sandbox.network.mode and its rules; the proxy mode needs
    /// sandbox.network.holder_image.
    #[arg(long, value_name = "MODE")]
    network: Option<reprod::network::NetworkMode>,
    /// What the proxy lets through (repeatable): `host`, `*.domain`, `host:port`, `ip:port`, or a URL
    /// prefix `http(s)://host[:port]/path`. Replaces sandbox.network.allow.
    #[arg(long, value_name = "ENTRY")]
    allow: Vec<String>,
}

/// The configuration with the command line's network grant in place of the configured one (mode and
/// allow-list for every document; no rules).
fn with_network(
    config: &Config,
    mode: Option<reprod::network::NetworkMode>,
    allow: Vec<String>,
) -> anyhow::Result<Config> {
    let mut config = config.clone();
    let net = &mut config.sandbox.network;
    if let Some(mode) = mode {
        net.mode = mode;
        net.rules.clear();
    }
    if !allow.is_empty() {
        if net.mode == reprod::network::NetworkMode::None {
            anyhow::bail!(
                "--allow names what the proxy lets through, but the network mode is none: add --network proxy"
            );
        }
        net.allow = allow;
        net.rules.clear();
    }
    net.validate()
        .map_err(|e| anyhow::anyhow!("the build network: {e}"))?;
    Ok(config)
}

pub fn run(args: RebuildArgs, config: &Config) -> anyhow::Result<Exit> {
    let RebuildArgs {
        provenance,
        trust,
        json,
        keep_workspace,
        vary,
        network,
        allow,
    } = args;
    let config = &with_network(config, network, allow)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let material = trust.material(config)?;
    let blobs = reprod::provenance::container::DirBlobs {
        dir: provenance.parent().map(PathBuf::from).unwrap_or_default(),
        max_bytes: config.max_document_bytes,
    };
    let bytes = rebuild::read_provenance(&provenance, config.max_document_bytes)?;
    let on_terminal = std::io::stderr().is_terminal();
    let progress = move |line: &str| {
        if on_terminal {
            eprintln!("reprod: {}", reprod::text::inert(line));
        } else if let Some(warning) = line.strip_prefix("warning: ") {
            // Warnings reach logs at the default level; progress stays at info.
            tracing::warn!("{warning}");
        } else {
            tracing::info!("{line}");
        }
    };
    let admitted = reprod::examine::admit(config, &bytes, &blobs, &material).map_err(|error| {
        rebuild::RebuildError::Parse {
            path: provenance.display().to_string(),
            error,
        }
    })?;
    let opts = RebuildOptions {
        origin: provenance.display().to_string(),
        keep_workspace,
        progress: &progress,
        environment: &rebuild::Faithful,
        explain: true,
        collected: false,
    };
    // A document nothing can be run for gets its verdict without an engine.
    if let Some(outcome) = rebuild::settled(&admitted, &provenance.display().to_string()) {
        rebuild::announce(&admitted, &opts);
        let verdict = reprod::verdict::decide(&admitted, outcome);
        if vary {
            let report = reprod::vary::VaryReport::nothing_to_vary(verdict);
            print_result(json, &report, "report", |r| r.human())?;
            return Ok(Exit::from_code(report.exit_code()));
        }
        print_result(json, &verdict, "verdict", |v| v.human())?;
        return Ok(Exit::from_code(verdict.exit_code()));
    }
    // One engine connection for the whole command: the rebuild (or every build of --vary), and the
    // cleanup when interrupted.
    let executor = runtime
        .block_on(reprod::execute::connect(config))
        .map_err(|e| rebuild::RebuildError::Infrastructure(e.to_string()))?;
    if vary {
        let report = runtime.block_on(reprod::vary::vary(
            config,
            &admitted,
            &executor,
            &opts,
            keep_workspace,
        ))?;
        print_result(json, &report, "report", |r| r.human())?;
        return Ok(Exit::from_code(report.exit_code()));
    }
    // SIGINT/SIGTERM: the rebuild is dropped (its job directory removes itself), then this
    // process's build containers are removed before it exits.
    let outcome = runtime.block_on(async {
        tokio::select! {
            v = rebuild::rebuild(config, &admitted, &executor, &opts, None) => Some(v),
            () = reprod::shutdown::signal() => None,
        }
    });
    let Some(outcome) = outcome else {
        match runtime.block_on(executor.remove_own_containers()) {
            Ok(n) => eprintln!(
                "reprod rebuild: interrupted; no verdict. Removed {n} build container(s) and the job directory."
            ),
            Err(e) => eprintln!(
                "reprod rebuild: interrupted; no verdict. Could not remove the build containers: {e}"
            ),
        }
        return Ok(Exit::Error);
    };
    let verdict = reprod::verdict::decide(&admitted, outcome?);
    print_result(json, &verdict, "verdict", |v| v.human())?;
    Ok(Exit::from_code(verdict.exit_code()))
}
