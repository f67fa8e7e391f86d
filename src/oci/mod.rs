//! Finding and digesting build outputs: OCI image layouts, OCI / `docker save` tarballs, plain files.
//!
//! Every digest reported is computed here from the bytes on disk; the digests a layout's `index.json` or a
//! manifest *claims* are only used to find blobs, and a blob whose bytes disagree with its name is reported.

mod collect;
pub mod digest;
mod fetch;
mod layout;
mod limits;
mod store;

pub use collect::{collect, collect_within, Outputs, RebuiltFile};
pub use digest::{
    digest_bytes, digest_reader, sha256_bytes, sha256_file, sha256_reader, Algorithm,
};
pub use fetch::{
    address_allowed, check_registry, check_registry_in, fetch, fetch_manifest, host_platform,
    is_public, is_repository_name, parse_reference, registry_of, resolve_tag, FetchError,
    FetchLimits, ResolvedTag,
};
pub use layout::{read_image, read_image_within, ImageKind, RebuiltImage, TopEntry};
pub use limits::{Budget, ScanLimits};
pub use store::{blob_name, BlobStore, REGISTERED_ALGORITHMS};

/// Media types whose blobs are indexes (descend into them).
pub(crate) fn is_index_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json"
    )
}

/// Media types whose blobs are image manifests.
pub(crate) fn is_manifest_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v2+json"
    )
}
