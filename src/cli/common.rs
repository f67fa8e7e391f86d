//! Argument groups and set-up shared by several commands.

use std::path::PathBuf;

use anyhow::Context;

use reprod::config::Config;

/// Signature material given on the command line, added to the configuration's `[trust]`.
#[derive(clap::Args)]
pub struct TrustArgs {
    /// A PEM public key to verify signatures with (repeatable).
    #[arg(long = "key", value_name = "PEM")]
    keys: Vec<PathBuf>,
    /// A Sigstore trusted_root.json for keyless signatures (repeatable).
    #[arg(long = "trusted-root", value_name = "JSON")]
    trusted_roots: Vec<PathBuf>,
    /// Require this certificate identity (subject alternative name, exactly) on keyless signatures; needs
    /// --issuer. A keyless signature is accepted only with both, with --any-identity, or under a trust
    /// rule naming its identity and issuer: a valid certificate alone proves only that someone signed.
    #[arg(long, value_name = "SAN", requires = "issuer")]
    identity: Option<String>,
    /// Require this OIDC issuer on keyless signatures; needs --identity.
    #[arg(long, value_name = "URL", requires = "identity")]
    issuer: Option<String>,
    /// Accept a keyless signature whatever identity its certificate names (as cosign's
    /// --certificate-identity-regexp '.*'). It must still chain to the trust root, be logged and carry a
    /// verified SCT, but anyone with an OIDC account can make one; the output says ANY identity was accepted.
    #[arg(long, conflicts_with_all = ["identity", "issuer"])]
    any_identity: bool,
}

impl TrustArgs {
    pub fn material(&self, config: &Config) -> anyhow::Result<reprod::trust::TrustMaterial> {
        let mut trust = config.trust.clone();
        trust.keys.extend(self.keys.iter().cloned());
        trust
            .trusted_roots
            .extend(self.trusted_roots.iter().cloned());
        let mut material = trust.load_material().map_err(anyhow::Error::msg)?;
        material.identity = self.identity.clone();
        material.issuer = self.issuer.clone();
        material.any_identity = self.any_identity;
        Ok(material)
    }
}

/// Where the reprod server is.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// The server's base URL (default: server.public_url, else http://<server.listen>).
    #[arg(long = "server", env = "REPROD_SERVER")]
    url: Option<String>,
}

impl ServerArgs {
    pub fn client(
        &self,
        config: &Config,
        token: Option<String>,
    ) -> anyhow::Result<reprod::client::Client> {
        let url = self.url.clone().unwrap_or_else(|| config.server.base_url());
        Ok(reprod::client::Client::new(&url, token)?)
    }
}

/// The trust material (loaded now, so a bad key fails at start) and a runtime for `serve` and `worker`.
pub fn long_running(
    config: &Config,
) -> anyhow::Result<(tokio::runtime::Runtime, reprod::trust::TrustMaterial)> {
    let material = config
        .trust
        .load_material()
        .map_err(anyhow::Error::msg)
        .context("loading the trust material")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok((runtime, material))
}

pub fn load_public_keys(keys: &[PathBuf]) -> anyhow::Result<Vec<reprod::trust::keys::PublicKey>> {
    keys.iter()
        .map(|k| {
            let pem =
                std::fs::read(k).with_context(|| format!("reading the key {}", k.display()))?;
            Ok(reprod::trust::keys::PublicKey::from_pem(
                &pem,
                k.display().to_string(),
            )?)
        })
        .collect()
}

/// A command's one result: pretty JSON with --json, else its human text made inert for a terminal.
pub fn print_result<T: serde::Serialize>(
    json: bool,
    result: &T,
    what: &str,
    human: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(result)
                .with_context(|| format!("rendering the {what}"))?
        );
    } else {
        print!("{}", reprod::text::inert(&human(result)));
    }
    Ok(())
}
