//! The documents a verdict is pushed as, in the two layouts consumers read: an OCI 1.1 referrer (an
//! artifact manifest whose `subject` is the image, listed in the referrers fallback tag `sha256-<hex>` for
//! registries without the referrers API) and cosign's attestation image (tag `sha256-<hex>.att`, one DSSE
//! envelope per layer). Every manifest is a pure function of its inputs, so a retried push writes the same
//! bytes and lists nothing twice. An envelope goes in as a blob exactly as signed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The referrer's `artifactType`: what the envelope carries (DSSE's `payloadType` of in-toto statements).
pub const ARTIFACT_TYPE: &str = "application/vnd.in-toto+json";
/// A DSSE envelope, as a layer.
pub const ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The empty JSON object OCI 1.1 artifacts use as their config.
pub const EMPTY_JSON: &[u8] = b"{}";
/// The annotation consumers filter referrers by (in-toto's attestation-in-OCI convention).
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Content to push: its media type, digest and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Blob {
            media_type: media_type.to_string(),
            digest: crate::oci::sha256_bytes(&bytes),
            bytes,
        }
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'static str>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

fn to_vec(v: &impl Serialize) -> Vec<u8> {
    // Serializing these types cannot fail: strings, numbers and maps with string keys.
    serde_json::to_vec(v).unwrap_or_default()
}

/// The image a referrer is about: its manifest's media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// One signed statement to publish about a subject.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    /// `vsa-passed`, `vsa-failed` or `provenance`.
    pub kind: &'a str,
    pub predicate_type: &'a str,
    /// The DSSE envelope exactly as signed.
    pub envelope: &'a [u8],
    /// The job whose verdict it is.
    pub job: &'a str,
    /// When the verdict was recorded (RFC 3339): the manifest's creation time, the same on every retry.
    pub recorded_at: &'a str,
}

/// An OCI 1.1 referrer of `subject` for one statement: the blobs to push (the empty config and the
/// envelope) and the manifest.
pub fn referrer(subject: &Subject, s: &Statement<'_>) -> (Vec<Blob>, Blob) {
    let config = Blob::new(OCI_EMPTY, EMPTY_JSON.to_vec());
    let layer = Blob::new(ENVELOPE, s.envelope.to_vec());
    let manifest = Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: Some(ARTIFACT_TYPE),
        config: config.descriptor(),
        layers: vec![layer.descriptor()],
        subject: Some(Descriptor {
            media_type: subject.media_type.clone(),
            digest: subject.digest.clone(),
            size: subject.size,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }),
        annotations: referrer_annotations(s),
    };
    (
        vec![config, layer],
        Blob::new(OCI_MANIFEST, to_vec(&manifest)),
    )
}

fn referrer_annotations(s: &Statement<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            PREDICATE_TYPE_ANNOTATION.to_string(),
            s.predicate_type.to_string(),
        ),
        (
            "org.opencontainers.image.created".to_string(),
            s.recorded_at.to_string(),
        ),
        ("dev.reprod.kind".to_string(), s.kind.to_string()),
        ("dev.reprod.job".to_string(), s.job.to_string()),
    ])
}

/// The referrers fallback tag of a subject digest (`sha256:<hex>` → `sha256-<hex>`).
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// cosign's attestation tag of a subject digest.
pub fn cosign_tag(digest: &str) -> String {
    format!("{}.att", referrers_tag(digest))
}

/// The referrers fallback index with `referrers` (manifests pushed by [`referrer`], each with its statement)
/// listed: `existing` (the index the tag holds, if any) keeps every entry it had, in order. `None`: all are
/// listed already.
pub fn with_referrers(
    existing: Option<&Value>,
    referrers: &[(Blob, &Statement<'_>)],
) -> Result<Option<Vec<u8>>, String> {
    let mut index = match existing {
        Some(v) => v.clone(),
        None => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
    };
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or(
            "the referrers tag holds no image index (no `manifests` list); it is left as it is",
        )?;
    let mut added = false;
    for (referrer, s) in referrers {
        if manifests
            .iter()
            .any(|m| m["digest"].as_str() == Some(referrer.digest.as_str()))
        {
            continue;
        }
        let mut entry = referrer.descriptor();
        entry.artifact_type = Some(ARTIFACT_TYPE.to_string());
        entry.annotations = referrer_annotations(s);
        manifests.push(serde_json::to_value(entry).map_err(|e| e.to_string())?);
        added = true;
    }
    Ok(added.then(|| to_vec(&index)))
}

/// cosign's attestation image with `statements` among its layers: `existing` (the manifest the `.att` tag
/// holds, if any) keeps every layer it had, in order, and an envelope already there is not added twice.
/// Returns the blobs to push (the new config and the envelopes) and the manifest; `None`: nothing to add.
pub fn with_cosign_layers(
    existing: Option<&Value>,
    statements: &[Statement<'_>],
) -> Result<Option<(Vec<Blob>, Blob)>, String> {
    let mut layers: Vec<Value> = match existing {
        Some(m) => m["layers"].as_array().cloned().ok_or(
            "the .att tag holds no image manifest (no `layers` list); it is left as it is",
        )?,
        None => Vec::new(),
    };
    let mut blobs = Vec::new();
    for s in statements {
        let layer = Blob::new(ENVELOPE, s.envelope.to_vec());
        if layers
            .iter()
            .any(|l| l["digest"].as_str() == Some(layer.digest.as_str()))
        {
            continue;
        }
        let mut d = layer.descriptor();
        d.annotations = BTreeMap::from([
            (COSIGN_SIGNATURE_ANNOTATION.to_string(), String::new()),
            ("predicateType".to_string(), s.predicate_type.to_string()),
        ]);
        layers.push(serde_json::to_value(d).map_err(|e| e.to_string())?);
        blobs.push(layer);
    }
    if blobs.is_empty() {
        return Ok(None);
    }
    // cosign's own config for its signature images: no platform, zero times, one diff id per layer.
    let diff_ids: Vec<&str> = layers.iter().filter_map(|l| l["digest"].as_str()).collect();
    let config = Blob::new(
        OCI_CONFIG,
        to_vec(&json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        })),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": serde_json::to_value(config.descriptor()).map_err(|e| e.to_string())?,
        "layers": layers,
    });
    blobs.push(config);
    Ok(Some((blobs, Blob::new(OCI_MANIFEST, to_vec(&manifest)))))
}

/// The media type of a manifest read from a registry: its `mediaType`, else what its shape says (OCI
/// manifests may leave it out).
pub fn media_type_of(manifest: &Value, content_type: Option<&str>) -> Option<String> {
    if let Some(m) = manifest["mediaType"].as_str() {
        return Some(m.to_string());
    }
    if let Some(c) = content_type.filter(|c| !c.is_empty() && *c != "application/json") {
        return Some(c.to_string());
    }
    if manifest["manifests"].is_array() {
        Some(OCI_INDEX.to_string())
    } else if manifest["layers"].is_array() {
        Some(OCI_MANIFEST.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VSA: &str = "https://slsa.dev/verification_summary/v1";

    fn statement<'a>(envelope: &'a [u8]) -> Statement<'a> {
        Statement {
            kind: "vsa-passed",
            predicate_type: VSA,
            envelope,
            job: "sha256:ab",
            recorded_at: "2026-12-08T05:00:00Z",
        }
    }

    fn subject() -> Subject {
        Subject {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "1".repeat(64)),
            size: 401,
        }
    }

    #[test]
    fn a_referrer_carries_the_envelope_as_signed_and_names_its_subject() {
        let envelope =
            br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#;
        let (blobs, manifest) = referrer(&subject(), &statement(envelope));
        assert_eq!(blobs[0].bytes, b"{}");
        assert_eq!(
            blobs[0].digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(blobs[1].bytes, envelope);
        let m: Value = serde_json::from_slice(&manifest.bytes).unwrap();
        assert_eq!(m["artifactType"], ARTIFACT_TYPE);
        assert_eq!(m["config"]["mediaType"], OCI_EMPTY);
        assert_eq!(m["layers"][0]["digest"], blobs[1].digest.as_str());
        assert_eq!(m["layers"][0]["mediaType"], ENVELOPE);
        assert_eq!(m["subject"]["digest"], subject().digest.as_str());
        assert_eq!(m["subject"]["size"], 401);
        assert_eq!(m["annotations"][PREDICATE_TYPE_ANNOTATION], VSA);
        // The same inputs give the same bytes: a retry lists nothing twice.
        assert_eq!(referrer(&subject(), &statement(envelope)).1, manifest);
    }

    #[test]
    fn the_referrers_index_keeps_what_it_had_and_lists_each_referrer_once() {
        let (one, two) = (statement(b"one"), statement(b"two"));
        let (_, first) = referrer(&subject(), &one);
        let (_, second) = referrer(&subject(), &two);
        let foreign = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": "sha256:00", "size": 1, "annotations": {"x": "y"}}]});
        let index = with_referrers(Some(&foreign), &[(first.clone(), &one)])
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&index).unwrap();
        assert_eq!(v["manifests"][0], foreign["manifests"][0]);
        assert_eq!(v["manifests"][1]["digest"], first.digest.as_str());
        assert_eq!(v["manifests"][1]["artifactType"], ARTIFACT_TYPE);
        assert_eq!(
            with_referrers(Some(&v), &[(first.clone(), &one)]).unwrap(),
            None
        );
        // One listed already, one new: only the new one is added, once.
        let both = with_referrers(Some(&v), &[(first.clone(), &one), (second.clone(), &two)])
            .unwrap()
            .unwrap();
        let both: Value = serde_json::from_slice(&both).unwrap();
        let digests: Vec<&str> = both["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, ["sha256:00", &first.digest, &second.digest]);
        assert!(with_referrers(Some(&json!({"layers": []})), &[(first, &one)]).is_err());
    }

    #[test]
    fn the_cosign_image_appends_envelopes_with_cosign_annotations_once() {
        let (blobs, manifest) = with_cosign_layers(None, &[statement(b"one")])
            .unwrap()
            .unwrap();
        let m: Value = serde_json::from_slice(&manifest.bytes).unwrap();
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        assert_eq!(m["layers"][0]["annotations"]["predicateType"], VSA);
        assert_eq!(
            m["layers"][0]["annotations"][COSIGN_SIGNATURE_ANNOTATION],
            ""
        );
        let config: Value = serde_json::from_slice(&blobs.last().unwrap().bytes).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], m["layers"][0]["digest"]);
        // A second statement is appended after the first; the first is not added again.
        let (_, second) = with_cosign_layers(Some(&m), &[statement(b"one"), statement(b"two")])
            .unwrap()
            .unwrap();
        let m2: Value = serde_json::from_slice(&second.bytes).unwrap();
        assert_eq!(m2["layers"].as_array().unwrap().len(), 2);
        assert_eq!(m2["layers"][0], m["layers"][0]);
        assert!(with_cosign_layers(Some(&m2), &[statement(b"two")])
            .unwrap()
            .is_none());
    }

    #[test]
    fn tags_and_media_types() {
        assert_eq!(referrers_tag("sha256:abc"), "sha256-abc");
        assert_eq!(cosign_tag("sha256:abc"), "sha256-abc.att");
        assert_eq!(
            media_type_of(&json!({"layers": []}), None).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(
            media_type_of(&json!({"mediaType": DOCKER_LIST}), None).as_deref(),
            Some(DOCKER_LIST)
        );
        assert_eq!(media_type_of(&json!({}), None), None);
    }
}
