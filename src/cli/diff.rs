//! `reprod diff`.

use std::path::PathBuf;

use anyhow::Context;

use reprod::config::Config;

use super::common::print_result;
use super::Exit;

/// Compare two images and explain every difference, classified.
///
/// A and B are OCI layout directories, OCI archives (tarballs of a layout), `docker save` archives, or
/// registry references `[docker://]NAME@sha256:<hex>` (fetched with skopeo, digests verified).
/// Exit status: 0 identical; 1 different; 2 error.
#[derive(clap::Args)]
pub struct DiffArgs {
    a: String,
    b: String,
    /// Print the report as JSON (schema `https://reprod.dev/diff/v1`).
    #[arg(long)]
    json: bool,
    /// Differences printed in text mode (the JSON has all).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Decompressed bytes allowed per layer; a decompression bomb stops here.
    #[arg(long, default_value_t = 64 << 30)]
    max_layer_bytes: u64,
    /// Also hash every layer blob read and refuse one that does not match its digest (indexes,
    /// manifests and configs are always checked). Costs a second hash of the compressed bytes.
    #[arg(long)]
    verify_layers: bool,
    /// Compare only this platform's image of each side (e.g. linux/amd64), not the indexes around them
    /// (a BuildKit index's attestation manifests among them).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Also write the report as one self-contained HTML page (no script, nothing fetched) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

pub fn run(args: DiffArgs, config: &Config) -> anyhow::Result<Exit> {
    let DiffArgs {
        a,
        b,
        json,
        limit,
        max_layer_bytes,
        verify_layers,
        platform,
        html,
    } = args;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let local = |arg: &str, side: &str| -> anyhow::Result<PathBuf> {
        // A registry reference, with or without `docker://` (a path that exists is a path).
        let registry = arg.starts_with("docker://")
            || (!std::path::Path::new(arg).exists() && arg.contains("@sha256:"));
        if !registry {
            return Ok(PathBuf::from(arg));
        }
        let dest = scratch.path().join(side);
        let limits = config.images.fetch_limits(reprod::oci::registry_of(arg));
        reprod::oci::fetch(arg, &dest, &limits)?;
        Ok(dest)
    };
    let (pa, pb) = (local(&a, "a")?, local(&b, "b")?);
    let mut report = reprod::diff::diff(
        &pa,
        &pb,
        &reprod::diff::DiffOptions {
            max_layer_bytes,
            verify_layers,
            deadline: None,
            platform,
        },
    )
    .context("comparing the images")?;
    report.a = a;
    report.b = b;
    if let Some(path) = html {
        use std::io::Write;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let mut tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(std::path::Path::new(".")))
            .with_context(|| format!("writing {}", path.display()))?;
        tmp.write_all(report.html().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        tmp.persist(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print_result(json, &report, "report", |r| r.human(limit))?;
    Ok(Exit::from_code(report.exit_code()))
}
