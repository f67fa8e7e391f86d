//! `reprod config`.

use anyhow::Context;

use reprod::config::Config;

use super::Exit;

/// Print the effective configuration (file + environment + defaults) as TOML, secrets redacted.
#[derive(clap::Args)]
pub struct ConfigArgs {}

pub fn run(config: &Config) -> anyhow::Result<Exit> {
    print!(
        "{}",
        toml::to_string_pretty(&config.redacted()).context("rendering the configuration")?
    );
    Ok(Exit::Success)
}
