//! `reprod status`.

use std::path::PathBuf;

use reprod::verdict::Status;

use reprod::config::Config;

use super::common::{load_public_keys, ServerArgs};
use super::Exit;

/// Ask a reprod server whether an image digest was rebuilt bit for bit.
///
/// A tag (IMAGE:TAG) is resolved first, here, through its registry (`images.insecure` and
/// `images.mirrors` apply), to the digest it names now, or for an image index to its image for this
/// host's platform; what it resolved to is said on stderr. The deciding verdict is a reproducible one if
/// any verdict names the digest (under IMAGE first, when given), else the latest. With
/// --key, the answer counts only if the verdict's signed summary (VSA) verifies with that key and says
/// the same. Exit status: 0 reproducible; 1 any other verdict; 2 no verdict names the digest, the server
/// cannot be asked, or (with --key) the signed summary is missing, does not verify or disagrees.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// IMAGE@sha256:<hex>, sha256:<hex>, or IMAGE[:TAG] (resolved to a digest through the registry).
    reference: String,
    #[command(flatten)]
    server: ServerArgs,
    /// The rebuilder's PEM public key: check the verdict's signature instead of trusting the connection.
    #[arg(long = "key", value_name = "PUB")]
    keys: Vec<PathBuf>,
    /// Print the server's answer as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatusArgs, config: &Config) -> anyhow::Result<Exit> {
    let StatusArgs {
        reference,
        server,
        keys,
        json,
    } = args;
    let keys = load_public_keys(&keys)?;
    let reference = match resolved(&reference, config)? {
        Some(pinned) => pinned,
        None => reference,
    };
    status(&server.client(config, None)?, &reference, &keys, json)
}

/// `IMAGE@sha256:…` for a reference by tag (said on stderr); `None` for one already by digest.
fn resolved(reference: &str, config: &Config) -> anyhow::Result<Option<String>> {
    if reference.contains('@') || reference.starts_with("sha256:") {
        return Ok(None);
    }
    let (name, tagged) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, reference.to_string()),
        _ => (reference, format!("{reference}:latest")),
    };
    let name = name.strip_prefix("docker://").unwrap_or(name);
    let path = name
        .strip_prefix(&format!("{}/", reprod::oci::registry_of(name)))
        .unwrap_or(name);
    if !reprod::oci::is_repository_name(path) {
        anyhow::bail!(
            "{reference:?} is neither IMAGE@sha256:<hex>, sha256:<hex> nor IMAGE[:TAG]",
            reference = reprod::text::inert_line(reference)
        );
    }
    let fetch_from = config
        .images
        .mirrors
        .rewrite(&tagged)
        .unwrap_or_else(|| tagged.clone());
    let mut limits = config
        .images
        .fetch_limits(reprod::oci::registry_of(&fetch_from));
    limits.timeout = std::time::Duration::from_secs(60);
    let platform = reprod::oci::host_platform();
    let tag = reprod::oci::resolve_tag(&fetch_from, platform, &limits).map_err(|e| {
        anyhow::anyhow!(
            "{e}; resolving a tag asks its registry, or give the digest (`skopeo inspect --format \
             '{{{{.Digest}}}}' docker://{tagged}`)",
            tagged = reprod::text::inert_line(&tagged)
        )
    })?;
    let digest = match (&tag.platform_image, tag.index) {
        (Some(image), true) => {
            eprintln!(
                "{tagged} is the index {}; its {platform} image is {image}",
                tag.digest
            );
            image.clone()
        }
        (None, true) => anyhow::bail!(
            "{tagged} is the index {} with no {platform} image; give the digest of the image to ask \
             about",
            tag.digest
        ),
        (_, false) => {
            eprintln!("{tagged} is {}", tag.digest);
            tag.digest
        }
    };
    Ok(Some(format!("{name}@{digest}")))
}

fn status(
    client: &reprod::client::Client,
    reference: &str,
    keys: &[reprod::trust::keys::PublicKey],
    json: bool,
) -> anyhow::Result<Exit> {
    let (name, digest) = reprod::client::parse_reference(reference)?;
    let Some(answer) = client.verdicts_for(digest, name)? else {
        if json {
            println!(
                "{}",
                serde_json::json!({"digest": digest, "status": "unknown"})
            );
        } else {
            say!("unknown: no verdict names {digest} (never submitted, or its rebuild has not finished)");
        }
        return Ok(Exit::Error);
    };
    let decided = &answer.decided_by;
    let history_total = answer.history_total;
    let verdict = decided.status.as_str();
    let signed = if keys.is_empty() {
        None
    } else {
        Some(check_signed_summary(client, decided, digest, keys)?)
    };
    if json {
        /// The server's answer, with what was verified of the signed summary.
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            answer: &'a reprod::wire::DigestAnswer,
            #[serde(skip_serializing_if = "Option::is_none")]
            signed_summary: Option<&'a reprod::attest::Vouched>,
        }
        let shown = Shown {
            answer: &answer,
            signed_summary: signed.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        say!("{verdict}: {reference}");
        if let Some(reason) = &decided.reason {
            say!("  reason:   {reason}");
        }
        say!(
            "  job:      {} (recorded {})",
            decided.job,
            decided.recorded_at
        );
        if history_total > 1 {
            say!(
                "  history:  {} other verdict(s) name this digest; a reproducible one decides, else the latest",
                history_total - 1
            );
        }
        for kind in &decided.attestations {
            say!(
                "  signed:   {kind} /v1/jobs/{}/attestations/{kind}",
                decided.job
            );
        }
        if let Some(v) = &signed {
            say!(
                "  verified: the signed summary says {} for this digest (key {})",
                v.result,
                v.key_id
            );
        }
        if let Some(name) = name {
            let names: Vec<&str> = decided
                .subjects
                .iter()
                .filter(|s| s.digest == digest)
                .map(|s| s.name.as_str())
                .collect();
            if !names.is_empty() && !names.contains(&name) {
                say!(
                    "  note:     the verdict names this digest {}, not {name}; the digest is what was rebuilt",
                    names.join(", ")
                );
            }
        }
    }
    Ok(Exit::answer(decided.status == Status::Reproducible))
}

/// Fetches the deciding verdict's VSA, verifies it offline with `keys`, and checks it names `digest` and
/// says what the server's answer says. Any doubt is an error (exit 2): with --key, only signed words count.
fn check_signed_summary(
    client: &reprod::client::Client,
    decided: &reprod::wire::RecordView,
    digest: &str,
    keys: &[reprod::trust::keys::PublicKey],
) -> anyhow::Result<reprod::attest::Vouched> {
    let state = decided
        .subjects
        .iter()
        .find(|s| s.digest == digest)
        .map(|s| s.state);
    // The summary that can speak for this digest: the PASSED one when it was rebuilt bit for bit, the
    // FAILED one when it was compared and not; a digest never compared has none.
    let kind = match state {
        _ if decided.attestations.iter().any(|k| k == "vsa") => "vsa",
        Some(reprod::verdict::SubjectState::Matched) => "vsa-passed",
        Some(reprod::verdict::SubjectState::Differs | reprod::verdict::SubjectState::NotFound) => {
            "vsa-failed"
        }
        _ => anyhow::bail!(
            "job {}: the verdict ({}) never compared {digest}, so no signed summary speaks for it",
            decided.job,
            decided.status
        ),
    };
    anyhow::ensure!(
        decided.attestations.iter().any(|k| k == kind),
        "job {}: the verdict has no `{kind}` summary to check (recorded before verdicts were signed?)",
        decided.job
    );
    let bytes = client.attestation(&decided.job, kind)?;
    let vouched = reprod::attest::verify_attestation(&bytes, keys)
        .map_err(|e| anyhow::anyhow!("job {}: the signed summary: {e}", decided.job))?;
    anyhow::ensure!(
        vouched.predicate_type == reprod::attest::uri::VSA_V1,
        "job {}: the attestation served as the summary is a {}",
        decided.job,
        vouched.predicate_type
    );
    let names_digest = vouched
        .subjects
        .iter()
        .any(|s| s == digest || s.ends_with(&format!("@{digest}")));
    anyhow::ensure!(
        names_digest,
        "job {}: the signed summary does not name {digest} (it names {})",
        decided.job,
        vouched.subjects.join(", ")
    );
    let passed = vouched.result == "PASSED";
    let matched = state == Some(reprod::verdict::SubjectState::Matched);
    anyhow::ensure!(
        passed == matched && (passed || decided.status != Status::Reproducible),
        "job {}: the server says {} ({}), but the signed summary says {}",
        decided.job,
        decided.status,
        state.map_or("unknown", |s| s.as_str()),
        vouched.result
    );
    Ok(vouched)
}
