//! What a registry answers a manifest with: its media type, read from the manifest itself. The cache
//! keeps bodies by digest alone, so a manifest served from it says its type this way.

/// Largest manifest whose media type is read from its bytes.
pub(super) const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// A manifest's media type from its own bytes: its `mediaType`, else what its shape says (an index has
/// `manifests`, an image manifest `config` and `layers`), as registries and clients decide it.
pub(super) fn manifest_media_type(bytes: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return "application/octet-stream".into();
    };
    if let Some(m) = v.get("mediaType").and_then(serde_json::Value::as_str) {
        return m.to_string();
    }
    if v.get("schemaVersion").and_then(serde_json::Value::as_u64) == Some(1) {
        return "application/vnd.docker.distribution.manifest.v1+prettyjws".into();
    }
    if v.get("manifests").is_some() {
        "application/vnd.oci.image.index.v1+json".into()
    } else {
        "application/vnd.oci.image.manifest.v1+json".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_says_its_own_media_type_or_its_shape_does() {
        let t = |j: &str| manifest_media_type(j.as_bytes());
        assert_eq!(
            t(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(
            t(r#"{"schemaVersion":2,"config":{},"layers":[]}"#),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            t(r#"{"schemaVersion":2,"manifests":[]}"#),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(t("not json"), "application/octet-stream");
    }
}
