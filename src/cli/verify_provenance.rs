//! `reprod verify-provenance`.

use std::path::PathBuf;

use anyhow::Context;

use reprod::config::Config;

use super::common::TrustArgs;
use super::Exit;

/// Verify a provenance document's signatures offline and show its recipes.
///
/// Reads bare in-toto statements, DSSE envelopes, JSON Lines of either, Sigstore bundles v0.1-v0.3,
/// Cloud Build `--show-provenance` output, npm attestation responses, cosign `.att` and BuildKit
/// attestation manifests (their layers beside the file), JSON arrays of statements and `rekor-cli get`
/// output. Keys and roots from the configuration's `[trust]`
/// section are used too, and so is its trust policy: a signer `rebuild` would refuse is not verified
/// here either (a keyless signature needs --identity and --issuer, --any-identity, or a trust rule
/// naming its identity and issuer). Exit status: 0 every statement verified and its signer accepted;
/// 1 a signature is missing, fails, cannot be checked offline or is not accepted; 2 the input cannot
/// be read or parsed.
#[derive(clap::Args)]
pub struct VerifyProvenanceArgs {
    file: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyProvenanceArgs, config: &Config) -> anyhow::Result<Exit> {
    let VerifyProvenanceArgs { file, trust, json } = args;
    let material = trust.material(config)?;
    let bytes = reprod::rebuild::read_provenance(&file, config.max_document_bytes)?;
    let blobs = reprod::provenance::container::DirBlobs {
        dir: file.parent().map(PathBuf::from).unwrap_or_default(),
        max_bytes: config.max_document_bytes,
    };
    let mut findings =
        reprod::examine::examine(&bytes, config.max_document_bytes, &blobs, &material)
            .with_context(|| format!("{} cannot be parsed", file.display()))?;
    reprod::examine::settle(&config.trust, &mut findings);
    if json {
        let doc = serde_json::json!({
            "file": file.display().to_string(),
            "sha256": reprod::oci::sha256_bytes(&bytes),
            "findings": findings,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("rendering the findings")?
        );
    } else {
        print!(
            "{}",
            reprod::text::inert(&reprod::examine::human(
                &file.display().to_string(),
                &findings
            ))
        );
    }
    Ok(Exit::answer(
        findings.iter().all(|f| f.verification.is_verified()),
    ))
}
