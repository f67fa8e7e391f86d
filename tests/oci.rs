//! Digests reprod computes from bytes on disk agree with skopeo and with the registry, for layouts,
//! OCI archives, nested indexes and `docker save` archives; corrupt layouts are reported.

mod common;

use std::process::Command;

use common::*;
use reprod::oci::{self, ImageKind};

fn hello_layout() -> (Repo, std::path::PathBuf, String) {
    let repo = Repo::hello();
    let [hello, _, _] = repo
        .reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"));
    let out = repo.reference_checkout().join("out");
    (repo, out, hello)
}

#[test]
fn layout_digests_equal_skopeo_and_the_registry() {
    let (_repo, out, skopeo_digest) = hello_layout();
    let found = oci::collect(&out);
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    let hello = found
        .images
        .iter()
        .find(|i| i.path == "hello")
        .expect("layout found");
    assert_eq!(hello.kind, ImageKind::OciLayout);
    assert_eq!(hello.entries.len(), 1);
    assert_eq!(
        hello.entries[0].digest, skopeo_digest,
        "reprod vs skopeo inspect oci:"
    );
    assert_eq!(hello.entries[0].ref_name.as_deref(), Some("hello"));
    assert!(hello.problems.is_empty(), "{:?}", hello.problems);

    // Push it and ask the registry what it stored.
    let dest = format!(
        "docker://127.0.0.1:5000/reprod-test/hello:{}",
        std::process::id()
    );
    sh(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--preserve-digests",
        &format!("oci:{}", out.join("hello").display()),
        &dest,
    ]));
    let registry_digest = sh(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &dest,
    ]));
    assert_eq!(
        hello.entries[0].digest,
        registry_digest.trim(),
        "reprod vs the registry"
    );
}

#[test]
fn oci_archive_gives_the_same_digests_as_the_layout() {
    let (_repo, out, skopeo_digest) = hello_layout();
    let scratch = tempfile::tempdir().unwrap();
    let tarball = scratch.path().join("hello.tar");
    sh(Command::new("tar").args([
        "-C",
        out.join("hello").to_str().unwrap(),
        "-cf",
        tarball.to_str().unwrap(),
        ".",
    ]));
    let found = oci::collect(scratch.path());
    let image = found
        .images
        .iter()
        .find(|i| i.path == "hello.tar")
        .expect("archive recognised");
    assert_eq!(image.kind, ImageKind::OciArchive);
    assert_eq!(image.entries[0].digest, skopeo_digest);
    assert!(image.problems.is_empty(), "{:?}", image.problems);
    // The tarball is also an output file in its own right.
    assert!(found.files.iter().any(|f| f.path == "hello.tar"));
}

#[test]
fn nested_index_digests_are_all_reported() {
    let (_repo, out, manifest_digest) = hello_layout();
    let layout = out.join("hello");
    let manifest_size = std::fs::metadata(layout.join("blobs/sha256").join(&manifest_digest[7..]))
        .unwrap()
        .len();
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
             "platform": {"architecture": "amd64", "os": "linux"}}
        ]
    });
    let bytes = serde_json::to_vec(&nested).unwrap();
    let index_digest = oci::sha256_bytes(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(&index_digest[7..]), &bytes).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": bytes.len()}
    ]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let found = oci::collect(&out);
    let image = found.images.iter().find(|i| i.path == "hello").unwrap();
    assert!(image.problems.is_empty(), "{:?}", image.problems);
    assert_eq!(image.entries[0].digest, index_digest);
    assert!(image.digests.contains(&index_digest));
    assert!(
        image.digests.contains(&manifest_digest),
        "platform manifests match too"
    );
    let skopeo_index =
        sh(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{}", layout.display())]));
    assert_eq!(oci::sha256_bytes(skopeo_index.as_bytes()), index_digest);
}

#[test]
fn corrupt_and_incomplete_layouts_are_reported() {
    let (_repo, out, manifest_digest) = hello_layout();
    let layout = out.join("hello-debug");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout.join("blobs/sha256").join(
                &oci::collect(&out)
                    .images
                    .iter()
                    .find(|i| i.path == "hello-debug")
                    .unwrap()
                    .entries[0]
                    .digest[7..],
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layer_path = layout.join("blobs/sha256").join(&layer[7..]);
    let mut bytes = std::fs::read(&layer_path).unwrap();
    bytes[600] ^= 1;
    std::fs::write(&layer_path, &bytes).unwrap();
    std::fs::remove_file(out.join("hello/blobs/sha256").join(&manifest_digest[7..])).unwrap();

    let found = oci::collect(&out);
    let debug = found
        .images
        .iter()
        .find(|i| i.path == "hello-debug")
        .unwrap();
    assert!(
        debug
            .problems
            .iter()
            .any(|p| p.contains(&layer) && p.contains("does not match its digest")),
        "{:?}",
        debug.problems
    );
    let hello = found.images.iter().find(|i| i.path == "hello").unwrap();
    assert!(
        hello
            .problems
            .iter()
            .any(|p| p.contains(&manifest_digest) && p.contains("No such file")),
        "{:?}",
        hello.problems
    );
    assert!(
        !hello.digests.contains(&manifest_digest),
        "a missing manifest is never matched"
    );
}

#[test]
fn legacy_docker_save_archive_reports_the_image_id_and_why_it_cannot_match() {
    let image = builder_image();
    sh(Command::new("docker").args(["pull", "-q", image]));
    let id = sh(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]));
    let scratch = tempfile::tempdir().unwrap();
    let tarball = scratch.path().join("saved.tar");
    sh(Command::new("docker").args(["save", "-o", tarball.to_str().unwrap(), image]));
    let found = oci::collect(scratch.path());
    let saved = found
        .images
        .iter()
        .find(|i| i.path == "saved.tar")
        .expect("docker save archive recognised");
    // Docker 20.10 writes the legacy format; Docker 25+ writes an OCI layout inside, which reprod reads as such.
    match saved.kind {
        ImageKind::DockerArchive => {
            assert_eq!(saved.entries[0].digest, id.trim());
            assert!(
                saved.digests.is_empty(),
                "config digests are never matched against subjects"
            );
            assert!(saved.problems[0].contains("no manifest digest"));
        }
        ImageKind::OciArchive => assert!(saved
            .digests
            .contains(&format!("sha256:{}", image.rsplit_once(":").unwrap().1))),
        ImageKind::OciLayout => panic!("a tarball is not a layout directory"),
    }
}
