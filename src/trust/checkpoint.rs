//! Transparency-log checkpoints: C2SP signed notes carrying a tree size and root hash.

use super::keys::PublicKey;
use crate::provenance::json::decode_base64;

/// A checkpoint whose signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
}

/// Parses `note` and verifies that one of its signature lines is `key`'s signature over the note text.
/// Neither the signer name nor the key hint is trusted for anything: only a verifying signature counts.
pub fn verify(note: &str, key: &PublicKey) -> Result<Checkpoint, String> {
    let split = note
        .find("\n\n")
        .ok_or("the checkpoint has no blank line between its text and its signatures")?;
    let text = &note[..=split];
    let mut lines = text.lines();
    let origin = lines.next().unwrap_or_default().to_string();
    let tree_size = lines
        .next()
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or("the checkpoint's second line is not a tree size")?;
    let root_hash = lines
        .next()
        .and_then(|l| decode_base64(l).ok())
        .filter(|h| h.len() == 32)
        .ok_or("the checkpoint's third line is not a base64 SHA-256 root hash")?;
    if origin.is_empty() {
        return Err("the checkpoint has no origin line".into());
    }
    // Rekor v1 signs as `rekor.sigstore.dev` under the origin `rekor.sigstore.dev - <tree id>`, and
    // witnesses cosign under their own names: every line is tried, the log's key decides.
    let mut seen = 0;
    for line in note[split + 2..].lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((_signer, sig)) = rest.rsplit_once(' ') else {
            continue;
        };
        seen += 1;
        let Ok(sig) = decode_base64(sig) else {
            continue;
        };
        if sig.len() > 4 && key.verify(&sig[4..], text.as_bytes()) {
            return Ok(Checkpoint {
                origin,
                tree_size,
                root_hash,
            });
        }
    }
    Err(format!(
        "none of the checkpoint's {seen} signature line(s) is a valid signature by {} (origin {origin:?})",
        key.label
    ))
}
