//! The `reprod` command.

mod cli;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, ValueEnum};

use cli::{Command, Exit};
use reprod::config::Config;

#[derive(Parser)]
#[command(
    name = "reprod",
    version,
    about = "Independent rebuilder for container images: reruns recorded provenance and compares digests"
)]
struct Cli {
    /// TOML configuration file (REPROD_* environment variables override it).
    #[arg(long, global = true, env = "REPROD_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr (the level comes from RUST_LOG, default `warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A daemon says each job's state changes at its default level; a command, only what went wrong.
    let default = match cli.command {
        Command::Serve(_) | Command::Worker(_) => "warn,reprod::jobs=info",
        _ => "warn",
    };
    init_logging(cli.log_format, default);
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {}", reprod::text::inert(&format!("{e:#}")));
            Exit::Error.into()
        }
    }
}

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: in a file or a journal they are escape sequences in the way, and a line
    // without them shows any that reached it from a client or a build (those are made inert).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Every command gets the configuration, loaded first, so a bad one fails whatever the command.
fn run(parsed: Cli) -> anyhow::Result<Exit> {
    // Generated from the command definitions alone: no configuration is needed, or read.
    match parsed.command {
        Command::Completions(args) => return cli::docs::completions(args, Cli::command()),
        Command::Manpages(args) => return cli::docs::manpages(args, Cli::command()),
        _ => {}
    }
    let config = Config::load(parsed.config.as_deref(), std::env::vars())
        .context("loading the configuration")?;
    match parsed.command {
        Command::Rebuild(args) => cli::rebuild::run(args, &config),
        Command::Serve(_) => cli::serve::run(config),
        Command::Worker(args) => cli::worker::run(args, config),
        Command::VerifyProvenance(args) => cli::verify_provenance::run(args, &config),
        Command::Diff(args) => cli::diff::run(args, &config),
        Command::Scan(args) => cli::scan::run(args),
        Command::Config(_) => cli::config::run(&config),
        Command::Keygen(args) => cli::keygen::run(args),
        Command::Verify(args) => cli::verify::run(args),
        Command::Status(args) => cli::status::run(args, &config),
        Command::Submit(args) => cli::submit::run(args, &config),
        Command::Jobs(args) => cli::jobs::run(args, &config),
        Command::Recheck(args) => cli::recheck::run(args, &config),
        Command::Completions(_) | Command::Manpages(_) => unreachable!("handled above"),
    }
}
