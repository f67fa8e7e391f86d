//! `reprod config`.

use anyhow::Context;

use reprod::config::Config;

use super::Exit;

/// Print the effective configuration as TOML, secrets redacted.
///
/// The file, the `REPROD_*` environment variables over it, and the defaults for everything else.
#[derive(clap::Args)]
pub struct ConfigArgs {}

pub fn run(config: &Config) -> anyhow::Result<Exit> {
    print!(
        "{}",
        toml::to_string_pretty(&config.redacted()).context("rendering the configuration")?
    );
    Ok(Exit::Success)
}
