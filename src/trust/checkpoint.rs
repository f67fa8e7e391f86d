//! Transparency-log checkpoints: C2SP signed notes carrying a tree size and root hash.

use super::keys::PublicKey;
use crate::json::decode_base64;

/// A checkpoint whose signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
}

/// Parses `note` and verifies that one of its signature lines is the log's signature over the note text:
/// the line's 4-byte key hint must be the first 4 bytes of `log_id` (the log's key id, as the trust root
/// lists it) and its signature must verify with `key`. A line whose hint names no key of the log is not
/// counted, whatever its signature (sigstore-conformance `checkpoint-bad-keyhint_fail`); the signer name
/// is not trusted for anything.
pub fn verify(note: &str, log_id: &[u8], key: &PublicKey) -> Result<Checkpoint, String> {
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
    let hint = log_id
        .get(..4)
        .ok_or("the log's id is shorter than a 4-byte key hint")?;
    // Rekor v1 signs as `rekor.sigstore.dev` under the origin `rekor.sigstore.dev - <tree id>`, and
    // witnesses cosign under their own names: every line is tried, the hint and the log's key decide.
    let mut seen = 0;
    let mut other_hints = Vec::new();
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
        if sig.len() <= 4 {
            continue;
        }
        if &sig[..4] != hint {
            other_hints.push(hex::encode(&sig[..4]));
            continue;
        }
        if key.verify(&sig[4..], text.as_bytes()) {
            return Ok(Checkpoint {
                origin,
                tree_size,
                root_hash,
            });
        }
    }
    Err(format!(
        "none of the checkpoint's {seen} signature line(s) is {}'s: a line counts only with the log's key hint {} \
         and a signature that verifies with its key (origin {origin:?}{})",
        key.label,
        hex::encode(hint),
        if other_hints.is_empty() {
            String::new()
        } else {
            format!("; other key hints, of no key of the log: {}", other_hints.join(", "))
        }
    ))
}
