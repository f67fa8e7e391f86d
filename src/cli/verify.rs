//! `reprod verify`.

use std::path::PathBuf;

use anyhow::Context;

use super::common::load_public_keys;
use super::Exit;

/// Largest attestation `reprod verify` reads.
const MAX_ATTESTATION_BYTES: u64 = 16 << 20;

/// Check a signed verdict offline; with --digest, use it as a deploy gate.
///
/// The verdict is a DSSE envelope from `/v1/jobs/{id}/attestations/...`; what it vouches for is printed.
///
/// The signature is checked over the exact bytes before anything in them is read. A verification
/// summary is accepted only when it says PASSED (unless --any-result); a rebuild provenance verifies as
/// such but vouches for no digest. As a deploy gate: `reprod verify vsa.json --key rebuilder.pub
/// --digest sha256:<hex> --require-passed` exits 0 only for a summary that names that digest and says
/// PASSED (with --digest, PASSED is required even without --require-passed, unless --any-result).
///
/// Exit status: 0 verified and every requirement holds; 1 the signature does not verify, the statement
/// is not a reprod summary or rebuild provenance, or a requirement does not hold (FAILED, another
/// digest, another verifier, not a summary); 2 the file or a key cannot be read, or an argument is
/// malformed.
#[derive(clap::Args)]
pub struct VerifyArgs {
    attestation: PathBuf,
    /// The rebuilder's PEM public key (repeatable: any one may have signed).
    #[arg(long = "key", value_name = "PUB", required = true)]
    keys: Vec<PathBuf>,
    /// Require a verification summary that names this digest (`sha256:<64 hex>`).
    #[arg(long, value_name = "DIGEST")]
    digest: Option<String>,
    /// Require a verification summary that says PASSED (a rebuild provenance does not qualify).
    #[arg(long)]
    require_passed: bool,
    /// Accept a summary whatever result it states (it must still verify and name --digest).
    #[arg(long, conflicts_with = "require_passed")]
    any_result: bool,
    /// Require this verifier: the summary's `verifier.id` or the rebuild provenance's `builder.id`.
    #[arg(long, value_name = "URI")]
    verifier_id: Option<String>,
    /// Print the verified statement as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let VerifyArgs {
        attestation,
        keys,
        digest,
        require_passed,
        any_result,
        verifier_id,
        json,
    } = args;
    let gate = reprod::attest::Gate {
        digest,
        require_passed,
        any_result,
        verifier_id,
    };
    verify(&attestation, &keys, &gate, json)
}

fn verify(
    attestation: &std::path::Path,
    keys: &[PathBuf],
    gate: &reprod::attest::Gate,
    json: bool,
) -> anyhow::Result<Exit> {
    let loaded = load_public_keys(keys)?;
    if let Some(d) = &gate.digest {
        anyhow::ensure!(
            reprod::verdict::is_sha256(d),
            "--digest {d:?}: expected sha256:<64 lowercase hex digits>"
        );
    }
    let size = std::fs::metadata(attestation)
        .with_context(|| format!("reading {}", attestation.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_ATTESTATION_BYTES,
        "{}: {size} bytes is over the {MAX_ATTESTATION_BYTES}-byte limit for an attestation",
        attestation.display()
    );
    let bytes =
        std::fs::read(attestation).with_context(|| format!("reading {}", attestation.display()))?;
    let refuse = |verified: bool, why: String| {
        if json {
            println!(
                "{}",
                serde_json::json!({"verified": verified, "accepted": false, "error": why})
            );
        }
        eprintln!(
            "reprod verify: {}: {}: {}",
            attestation.display(),
            if verified {
                "the signature verifies, but it is NOT accepted"
            } else {
                "NOT verified"
            },
            reprod::text::inert_line(&why)
        );
        Ok(Exit::Negative)
    };
    let v = match reprod::attest::verify_attestation(&bytes, &loaded) {
        Ok(v) => v,
        Err(e) => return refuse(false, e.to_string()),
    };
    if let Err(why) = gate.check(&v) {
        return refuse(true, why);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", reprod::text::inert(&v.human()));
        if let Some(d) = &gate.digest {
            println!("accepted: {} for {d}", v.result);
        }
    }
    Ok(Exit::Success)
}
