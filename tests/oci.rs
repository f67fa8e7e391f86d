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

/// Writes blobs into the layout at `root` (its `blobs/sha256/` made here), returning each one's digest and
/// size, as a descriptor names them.
fn blob_writer(root: &std::path::Path) -> impl Fn(&[u8]) -> (String, usize) {
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    move |bytes: &[u8]| {
        let d = oci::sha256_bytes(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        (d, bytes.len())
    }
}

/// A small layout whose descriptors fan out (10 → 1,000 → 1,001 names of the same blobs) is read once per
/// descriptor: bounded memory and time, where a walk of every path drove `reprod rebuild` to 1.5 GiB.
#[test]
fn a_fan_out_layout_is_walked_once_per_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fan");
    let put = blob_writer(&root);
    let (layer, layer_size) = put(b"layer bytes");
    let (config, config_size) = put(br#"{"architecture":"amd64","os":"linux"}"#);
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}]});
    let (m, m_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = |child: &str, size: usize, media: &str, n: usize| {
        let d = serde_json::json!({"mediaType": media, "digest": child, "size": size});
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": vec![d; n]}))
            .unwrap()
    };
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let (i2, i2_size) = put(&index(
        &m,
        m_size,
        "application/vnd.oci.image.manifest.v1+json",
        1001,
    ));
    let (i1, i1_size) = put(&index(&i2, i2_size, INDEX, 1000));
    std::fs::write(root.join("index.json"), index(&i1, i1_size, INDEX, 10)).unwrap();
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    // 20,000 plain files beside it: the outputs list the first 10,000 and count the rest.
    let many = dir.path().join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..20_000 {
        std::fs::write(many.join(format!("f{i:05}")), i.to_string()).unwrap();
    }
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kib=%M"])
        .arg(env!("CARGO_BIN_EXE_reprod"))
        .args(["scan", "--json"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let scanned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = &scanned["images"][0];
    for d in [&m, &i2, &i1] {
        assert!(
            image["digests"]
                .as_array()
                .unwrap()
                .contains(&d.as_str().into()),
            "{d} verified"
        );
    }
    assert_eq!(scanned["files"].as_array().unwrap().len(), 10_000);
    assert_eq!(scanned["files_omitted"], 10_000);
    let rss: u64 = stderr
        .split("maxrss_kib=")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .unwrap();
    eprintln!("reprod scan of a 10x1000x1001 fan-out and 20,000 files: peak RSS {rss} KiB");
    assert!(rss < 200 << 10, "peak RSS {rss} KiB");
}

/// One JSON document cannot be read as a manifest by one name and an index by another: a blob named as a
/// manifest that carries `manifests` too (or whose own mediaType says index) is refused, and so is every
/// digest above it.
#[test]
fn a_blob_is_read_only_as_what_it_says_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let put = blob_writer(&root);
    let (config, config_size) = put(br#"{"architecture":"amd64","os":"linux"}"#);
    // An index (by its own mediaType and `manifests`) that also carries harmless manifest fields.
    let two_faced = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{}", "e".repeat(64)), "size": 1}],
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": []});
    let (d, size) = put(&serde_json::to_vec(&two_faced).unwrap());
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        root.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size}]}))
        .unwrap(),
    )
    .unwrap();
    let found = oci::collect(dir.path());
    let image = &found.images[0];
    assert!(!image.digests.contains(&d), "{image:#?}");
    assert!(
        image.digests.is_empty(),
        "nothing above it counts either: {image:#?}"
    );
    assert!(
        image
            .problems
            .iter()
            .any(|p| p.contains("its own content says otherwise")),
        "{image:#?}"
    );
}

/// Every limit of a scan stops it and says which, so a verdict never rests on a scan that read less than
/// it claims: the job deadline, bytes hashed, blobs read, problems kept, files listed.
#[test]
fn each_scan_limit_stops_the_scan_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // One small image (index, manifest, config, layer) and 25 plain files.
    let layout = root.join("image");
    let put = blob_writer(&layout);
    let (layer, layer_size) = put(&vec![7u8; 4096]);
    let (config, config_size) = put(br#"{"architecture":"amd64","os":"linux"}"#);
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}]});
    let (m, m_size) = put(&serde_json::to_vec(&manifest).unwrap());
    // Beside it, five manifests the layout names but does not hold: five problems of that image.
    let mut manifests = vec![
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": m_size}),
    ];
    for c in ['1', '2', '3', '4', '5'] {
        manifests.push(
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", c.to_string().repeat(64)), "size": 10}),
        );
    }
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    for i in 0..25 {
        std::fs::write(root.join(format!("file{i:02}.txt")), format!("file {i}")).unwrap();
    }
    let scan = |change: &dyn Fn(&mut oci::ScanLimits)| {
        let mut limits = oci::ScanLimits::default();
        change(&mut limits);
        oci::collect_within(root, limits, &Default::default())
    };
    let whole = scan(&|_| {});
    assert!(whole.stopped.is_none(), "{:?}", whole.stopped);
    assert!(
        whole.images.iter().any(|i| i.digests.contains(&m)),
        "{:#?}",
        whole.images
    );
    let image = |o: &oci::Outputs| o.images.iter().find(|i| i.path == "image").unwrap().clone();
    assert_eq!(
        image(&whole).problems.len(),
        5,
        "{:?}",
        image(&whole).problems
    );

    let late =
        scan(&|l| l.deadline = Some(std::time::Instant::now() - std::time::Duration::from_secs(1)));
    assert!(
        late.stopped
            .as_deref()
            .is_some_and(|s| s.contains("job deadline")),
        "{:?}",
        late.stopped
    );
    assert!(late.images.iter().all(|i| !i.digests.contains(&m)));

    let hashed = scan(&|l| l.max_bytes_hashed = 1024);
    assert!(
        hashed
            .stopped
            .as_deref()
            .is_some_and(|s| s.contains("bytes")),
        "{:?}",
        hashed.stopped
    );
    assert!(
        hashed.images.iter().all(|i| !i.digests.contains(&m)),
        "the 4 KiB layer was not read whole, so the image is not verified"
    );

    let blobs = scan(&|l| l.max_blobs = 2);
    assert!(
        blobs
            .stopped
            .as_deref()
            .is_some_and(|s| s.contains("blobs")),
        "{:?}",
        blobs.stopped
    );

    let problems = image(&scan(&|l| l.max_problems = 2));
    assert_eq!(problems.problems.len(), 2, "{:?}", problems.problems);
    assert_eq!(problems.problems_omitted, 3);

    let listed = scan(&|l| l.max_files_listed = 10);
    assert_eq!(listed.files.len(), 10);
    assert_eq!(listed.files_omitted, 15);
}
