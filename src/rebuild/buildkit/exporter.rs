//! The exporter options a BuildKit build was run with, read from the image it published: the provenance
//! does not record them, and they decide the manifest's bytes (media types, layer compression, layer
//! timestamps rewritten to `SOURCE_DATE_EPOCH`).

use serde_json::Value;

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    Uncompressed,
    Gzip,
    Zstd,
}

/// The image exporter's options that show in a platform manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Exporter {
    pub oci_mediatypes: bool,
    pub compression: Compression,
    /// BuildKit's `rewrite-timestamp` (each rewritten layer carries `buildkit/rewritten-timestamp`).
    pub rewrite_timestamp: bool,
}

/// The annotation BuildKit puts on each layer whose timestamps it rewrote.
const REWRITTEN: &str = "buildkit/rewritten-timestamp";

impl Exporter {
    /// Reads the options from a published platform manifest. `Err` says why they cannot be told (not an
    /// image manifest, no layers).
    pub fn from_manifest(bytes: &[u8]) -> Result<Exporter, String> {
        let m: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("the published manifest is not JSON: {e}"))?;
        let media_type = m.get("mediaType").and_then(Value::as_str).unwrap_or("");
        let oci_mediatypes = match media_type {
            "application/vnd.oci.image.manifest.v1+json" | "" => true,
            "application/vnd.docker.distribution.manifest.v2+json" => false,
            other => {
                return Err(format!(
                    "the published digest is a {other:?}, not a platform image manifest"
                ))
            }
        };
        let layers = m
            .get("layers")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or("the published manifest has no layers to read the compression from")?;
        let rewritten: Vec<&Value> = layers
            .iter()
            .filter(|l| {
                l.pointer(&format!("/annotations/{}", REWRITTEN.replace('/', "~1")))
                    .is_some()
            })
            .collect();
        // The layers the build made: the rewritten ones when there are any, else the last.
        let made = rewritten.last().copied().or(layers.last());
        let layer_type = made
            .and_then(|l| l.get("mediaType"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let compression = if layer_type.ends_with("+zstd") || layer_type.ends_with(".zstd") {
            Compression::Zstd
        } else if layer_type.ends_with("+gzip") || layer_type.ends_with(".gzip") {
            Compression::Gzip
        } else if layer_type.ends_with(".tar") {
            Compression::Uncompressed
        } else {
            return Err(format!(
                "the published layer type {layer_type:?} is not one BuildKit writes"
            ));
        };
        Ok(Exporter {
            oci_mediatypes,
            compression,
            rewrite_timestamp: !rewritten.is_empty(),
        })
    }

    /// The `--output` options (after `type=oci,dest=…`).
    pub fn output_options(&self) -> String {
        let compression = match self.compression {
            Compression::Uncompressed => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        };
        format!(
            "oci-mediatypes={},compression={compression},rewrite-timestamp={}",
            self.oci_mediatypes, self.rewrite_timestamp
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_published_manifest_tells_media_types_compression_and_rewritten_timestamps() {
        // As the spike's BuildKit wrote it: an uncompressed base layer, then the build's gzip layers,
        // rewritten.
        let m = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar"},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "annotations": {"buildkit/rewritten-timestamp": "0"}}]});
        let e = Exporter::from_manifest(m.to_string().as_bytes()).unwrap();
        assert_eq!(
            e.output_options(),
            "oci-mediatypes=true,compression=gzip,rewrite-timestamp=true"
        );
        let m = json!({"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd"}]});
        let e = Exporter::from_manifest(m.to_string().as_bytes()).unwrap();
        assert_eq!(
            e.output_options(),
            "oci-mediatypes=false,compression=zstd,rewrite-timestamp=false"
        );
    }

    #[test]
    fn an_index_or_a_manifest_without_layers_tells_nothing() {
        for (m, says) in [
            (
                json!({"mediaType": "application/vnd.oci.image.index.v1+json"}),
                "not a platform",
            ),
            (
                json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}),
                "no layers",
            ),
            (
                json!({"layers": [{"mediaType": "text/plain"}]}),
                "not one BuildKit writes",
            ),
        ] {
            let err = Exporter::from_manifest(m.to_string().as_bytes()).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
        assert!(Exporter::from_manifest(b"{").is_err());
    }
}
