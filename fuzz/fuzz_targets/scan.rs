//! The output scanner on a workspace a build shaped: the input is a tar archive, written as a file (an OCI
//! or `docker save` tarball read in place) and unpacked beside it (directories, files and symlinks: an OCI
//! layout tree, or anything else). The scan must neither panic nor escape the directory, and stays within
//! its limits.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use reprod::oci::{collect_within, ScanLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path().join("workspace");
    if std::fs::create_dir_all(root.join("unpacked")).is_err() {
        return;
    }
    let _ = std::fs::write(root.join("image.tar"), data);
    let mut archive = tar::Archive::new(data);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    if let Ok(entries) = archive.entries() {
        for entry in entries.take(256).flatten() {
            // `unpack_in` refuses paths that leave the directory.
            let mut entry = entry;
            let _ = entry.unpack_in(root.join("unpacked"));
        }
    }
    let limits = ScanLimits {
        max_bytes_hashed: 64 << 20,
        max_blobs: 4096,
        max_entries: 4096,
        max_files_listed: 256,
        max_problems: 16,
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(5)),
    };
    let outputs = collect_within(&root, limits, &HashSet::new());
    assert!(outputs.problems.len() <= 16);
    assert!(outputs.files.len() <= 256);
    for image in &outputs.images {
        assert!(image.problems.len() <= 16);
        // Nothing outside the scanned root is ever reported as read.
        assert!(!image.path.starts_with('/'), "{}", image.path);
    }
});
