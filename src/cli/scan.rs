//! `reprod scan`.

use std::path::PathBuf;

use anyhow::Context;

use super::Exit;

/// Scan a directory as a rebuild scans its workspace: the outputs and their digests.
///
/// Shows what reprod would compare subjects with: OCI layouts and tarballs with every index and manifest
/// digest, plain files with their sha256, and any blob that is missing or does not match its digest.
/// Exit status 1 when a problem was found.
#[derive(clap::Args)]
pub struct ScanArgs {
    dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ScanArgs) -> anyhow::Result<Exit> {
    let ScanArgs { dir, json } = args;
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let outputs = reprod::oci::collect(&dir);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outputs).context("rendering the outputs")?
        );
    } else {
        for image in &outputs.images {
            for e in &image.entries {
                let name = e.ref_name.as_deref().unwrap_or("-");
                say!(
                    "{}\t{}\t{}\t{name}",
                    image.kind.as_str(),
                    image.path,
                    e.digest
                );
            }
            for p in &image.problems {
                say!("problem\t{}\t{p}", image.path);
            }
        }
        for f in &outputs.files {
            say!("file\t{}\t{}", f.path, f.digest);
        }
        for p in &outputs.problems {
            say!("problem\t-\t{p}");
        }
    }
    let clean = outputs.problems.is_empty() && outputs.images.iter().all(|i| i.problems.is_empty());
    Ok(Exit::answer(clean))
}
