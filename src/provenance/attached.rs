//! Where BuildKit puts provenance: an attestation manifest inside the image index, one per platform
//! manifest (`vnd.docker.reference.type=attestation-manifest`, `vnd.docker.reference.digest` naming the
//! platform manifest), whose layers are in-toto statements annotated with their predicate type. These
//! functions read an index and an attestation manifest as JSON values; fetching them is the caller's.

use serde_json::Value;

/// The media type BuildKit gives an attestation manifest's `artifactType`.
pub const ATTESTATION_ARTIFACT_TYPE: &str = "application/vnd.docker.attestation.manifest.v1+json";
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
const IN_TOTO_LAYER: &str = "application/vnd.in-toto+json";

/// An attestation manifest an index attaches to one of its platform manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRef {
    /// The attestation manifest's digest.
    pub manifest: String,
    /// The platform manifest it attests (what a BuildKit subject's digest is).
    pub subject: String,
    /// The attested manifest's platform (`os/arch[/variant]`), when the index says.
    pub platform: Option<String>,
}

/// One in-toto layer of an attestation manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationLayer {
    pub digest: String,
    /// The `in-toto.io/predicate-type` annotation.
    pub predicate_type: Option<String>,
    /// What the layer is when it is not provenance (an SBOM), from its predicate type.
    pub not_provenance: Option<&'static str>,
}

/// True when `v` looks like an OCI image index (or a Docker manifest list).
pub fn is_index(v: &Value) -> bool {
    let media = v
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    media == "application/vnd.oci.image.index.v1+json"
        || media == "application/vnd.docker.distribution.manifest.list.v2+json"
        || (v.get("manifests").is_some_and(Value::is_array) && v.get("layers").is_none())
}

/// True when `v` is a BuildKit attestation manifest: its artifact type says so, or its layers carry
/// predicate-type annotations and it names the manifest it attests.
pub fn is_attestation_manifest(v: &Value) -> bool {
    v.get("artifactType").and_then(Value::as_str) == Some(ATTESTATION_ARTIFACT_TYPE)
        || v.get("layers")
            .and_then(Value::as_array)
            .is_some_and(|layers| {
                !layers.is_empty()
                    && layers
                        .iter()
                        .all(|l| l.pointer(&annotation(PREDICATE_TYPE)).is_some())
            })
}

/// Every attestation manifest of an index, with the platform manifest each attests.
pub fn attestation_manifests(index: &Value) -> Vec<AttestationRef> {
    let Some(manifests) = index.get("manifests").and_then(Value::as_array) else {
        return Vec::new();
    };
    let platform_of = |digest: &str| {
        manifests
            .iter()
            .find(|m| m.get("digest").and_then(Value::as_str) == Some(digest))
            .and_then(|m| m.get("platform"))
            .and_then(platform)
    };
    manifests
        .iter()
        .filter(|m| {
            m.pointer(&annotation(REFERENCE_TYPE))
                .and_then(Value::as_str)
                == Some("attestation-manifest")
        })
        .filter_map(|m| {
            let manifest = m.get("digest")?.as_str()?.to_ascii_lowercase();
            let subject = m
                .pointer(&annotation(REFERENCE_DIGEST))?
                .as_str()?
                .to_ascii_lowercase();
            Some(AttestationRef {
                platform: platform_of(&subject),
                manifest,
                subject,
            })
        })
        .collect()
}

/// The in-toto layers of an attestation manifest, each classified by its predicate type.
pub fn attestation_layers(manifest: &Value) -> Vec<AttestationLayer> {
    let Some(layers) = manifest.get("layers").and_then(Value::as_array) else {
        return Vec::new();
    };
    layers
        .iter()
        .filter(|l| l.get("mediaType").and_then(Value::as_str) == Some(IN_TOTO_LAYER))
        .filter_map(|l| {
            let digest = l.get("digest")?.as_str()?.to_ascii_lowercase();
            let predicate_type = l
                .pointer(&annotation(PREDICATE_TYPE))
                .and_then(Value::as_str)
                .map(str::to_string);
            let not_provenance = predicate_type
                .as_deref()
                .and_then(super::slsa::not_provenance);
            Some(AttestationLayer {
                digest,
                predicate_type,
                not_provenance,
            })
        })
        .collect()
}

/// The manifest an attestation manifest attests (`subject.digest`, OCI 1.1).
pub fn attested(manifest: &Value) -> Option<String> {
    manifest
        .pointer("/subject/digest")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

fn platform(p: &Value) -> Option<String> {
    let os = p.get("os")?.as_str()?;
    let arch = p.get("architecture")?.as_str()?;
    Some(match p.get("variant").and_then(Value::as_str) {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    })
}

/// A JSON pointer to `annotations[key]` (keys contain `/` and `.`).
fn annotation(key: &str) -> String {
    format!("/annotations/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// A sentence naming an index's attestation manifests, for errors that point people to them.
pub fn describe_index(index: &Value) -> String {
    let refs = attestation_manifests(index);
    if refs.is_empty() {
        return "an OCI image index with no BuildKit attestation manifest (no manifest annotated \
                vnd.docker.reference.type=attestation-manifest): it carries no BuildKit provenance"
            .into();
    }
    let list: Vec<String> = refs
        .iter()
        .map(|r| {
            format!(
                "{} attests {}{}",
                r.manifest,
                r.subject,
                r.platform
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "an OCI image index, not a statement; its BuildKit attestation manifest(s): {}. Rebuild from the \
         registry with `reprod rebuild docker://HOST/REPO@sha256:<this index>`, or give reprod an attestation \
         manifest with its in-toto layers beside it (files named by digest, or an OCI layout's blobs/sha256/)",
        list.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_pointers_escape_slashes() {
        let v = serde_json::json!({"annotations": {"in-toto.io/predicate-type": "x"}});
        assert_eq!(
            v.pointer(&annotation(PREDICATE_TYPE))
                .and_then(Value::as_str),
            Some("x")
        );
    }
}
