//! `reprod diff`: image pairs built to differ in exactly one known way each report exactly that difference,
//! correctly classified, and nothing else.

mod common;

use std::io::Write;
use std::path::Path;

use reprod::diff::{self, Class, DiffOptions, DiffReport};
use serde_json::json;

#[derive(Clone)]
enum Kind {
    File(&'static [u8]),
    Symlink(&'static str),
}

#[derive(Clone)]
struct FileSpec {
    path: &'static str,
    kind: Kind,
    mode: u32,
    uid: u64,
    mtime: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Comp {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone)]
struct ImageSpec {
    files: Vec<FileSpec>,
    compression: Comp,
    label: &'static str,
    history: &'static str,
    created: &'static str,
}

fn base() -> ImageSpec {
    let file = |path, content, mode| FileSpec {
        path,
        kind: Kind::File(content),
        mode,
        uid: 0,
        mtime: 946_684_800,
    };
    ImageSpec {
        files: vec![
            file("app/hello.txt", b"hello\nworld\nthird line\n", 0o644),
            file("app/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
            file("app/b.txt", b"bee\n", 0o644),
            FileSpec {
                path: "app/link",
                kind: Kind::Symlink("hello.txt"),
                mode: 0o777,
                uid: 0,
                mtime: 946_684_800,
            },
        ],
        compression: Comp::None,
        label: "1.0",
        history: "COPY app /app",
        created: "2000-01-01T00:00:00Z",
    }
}

fn sha(bytes: &[u8]) -> String {
    reprod::oci::sha256_bytes(bytes)
}

fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let d = sha(bytes);
    std::fs::write(dir.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
    (d, bytes.len())
}

/// Writes an OCI layout for `spec` and returns its manifest digest.
fn write_layout(dir: &Path, spec: &ImageSpec) -> String {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    for f in &spec.files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(f.mode);
        h.set_uid(f.uid);
        h.set_gid(0);
        h.set_mtime(f.mtime);
        match f.kind {
            Kind::File(content) if f.path.contains("..") => {
                // The tar crate refuses to write `..`; hostile archives have it, so write the name by hand.
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(content.len() as u64);
                h.as_old_mut().name[..f.path.len()].copy_from_slice(f.path.as_bytes());
                h.set_cksum();
                tar.append(&h, content).unwrap();
            }
            Kind::File(content) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(content.len() as u64);
                h.set_cksum();
                tar.append_data(&mut h, f.path, content).unwrap();
            }
            Kind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, f.path, target).unwrap();
            }
        }
    }
    let layer_tar = tar.into_inner().unwrap();
    let diff_id = sha(&layer_tar);
    let (layer_bytes, media_type) = match spec.compression {
        Comp::None => (layer_tar, "application/vnd.oci.image.layer.v1.tar"),
        Comp::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&layer_tar).unwrap();
            (
                gz.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::Zstd => (
            zstd::encode_all(&layer_tar[..], 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    };
    let (layer, layer_size) = put_blob(dir, &layer_bytes);
    let config = json!({
        "architecture": "amd64", "os": "linux", "created": spec.created,
        "config": {"Cmd": ["/app/run.sh"], "Labels": {"version": spec.label}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": spec.created, "created_by": spec.history}]
    });
    let (config, config_size) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": media_type, "digest": layer, "size": layer_size}]
    });
    let (manifest, manifest_size) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": manifest_size}
    ]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    manifest
}

/// Diffs `base()` against `variant(base())`.
fn pair(variant: impl FnOnce(&mut ImageSpec)) -> DiffReport {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    write_layout(&a, &base());
    let mut spec = base();
    variant(&mut spec);
    write_layout(&b, &spec);
    diff::diff(&a, &b, &DiffOptions::default()).unwrap()
}

/// Asserts the report holds exactly one difference of `class` on `field` at a location ending in `at`.
fn only(report: &DiffReport, class: Class, field: &str, at: &str) {
    assert_eq!(report.differences.len(), 1, "{:#?}", report.differences);
    let d = &report.differences[0];
    assert_eq!((d.class, d.field.as_str()), (class, field), "{d:#?}");
    assert!(d.location.ends_with(at), "{d:#?}");
    assert!(!report.identical);
    assert_eq!(report.summary.len(), 1);
}

#[test]
fn identical_images() {
    let r = pair(|_| {});
    assert!(r.identical, "{:#?}", r.differences);
    assert!(r.differences.is_empty());
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn file_content_with_a_unified_diff() {
    let r = pair(|s| s.files[0].kind = Kind::File(b"hello\nWORLD\nthird line\n"));
    only(&r, Class::Content, "content", "layer 0 app/hello.txt");
    let text = r.differences[0].text_diff.as_deref().expect("a text diff");
    assert!(text.contains("-world\n+WORLD"), "{text}");
    assert!(!r.equivalent_after_normalization);
}

#[test]
fn a_timestamp() {
    let r = pair(|s| s.files[1].mtime += 3600);
    only(&r, Class::Timestamp, "mtime", "app/run.sh");
    assert!(r.equivalent_after_normalization);
    assert_eq!(r.normalizations, vec![Class::Timestamp]);
    assert!(
        r.human(10).contains("only timestamps differ: 1"),
        "{}",
        r.human(10)
    );
}

#[test]
fn file_order() {
    let r = pair(|s| s.files.swap(1, 2));
    only(&r, Class::Order, "file order", "layer 0");
    assert!(r.equivalent_after_normalization);
}

#[test]
fn a_mode() {
    let r = pair(|s| s.files[2].mode = 0o600);
    only(&r, Class::Metadata, "mode", "app/b.txt");
    assert_eq!(r.differences[0].a.as_deref(), Some("644"));
    assert_eq!(r.differences[0].b.as_deref(), Some("600"));
}

#[test]
fn a_uid() {
    let r = pair(|s| s.files[0].uid = 1000);
    only(&r, Class::Metadata, "uid", "app/hello.txt");
}

#[test]
fn a_symlink_target() {
    let r = pair(|s| s.files[3].kind = Kind::Symlink("run.sh"));
    only(&r, Class::Content, "link target", "app/link");
    assert_eq!(r.differences[0].b.as_deref(), Some("run.sh"));
}

#[test]
fn an_added_and_a_removed_file() {
    let r = pair(|s| s.files[2].path = "app/c.txt");
    assert_eq!(r.differences.len(), 2, "{:#?}", r.differences);
    let removed = r
        .differences
        .iter()
        .find(|d| d.location.ends_with("app/b.txt"))
        .unwrap();
    let added = r
        .differences
        .iter()
        .find(|d| d.location.ends_with("app/c.txt"))
        .unwrap();
    assert_eq!(
        (removed.class, removed.field.as_str(), removed.b.as_deref()),
        (Class::Content, "presence", None)
    );
    assert_eq!(
        (added.class, added.a.as_deref(), added.b.as_deref()),
        (Class::Content, None, Some("file"))
    );
}

#[test]
fn layer_compression() {
    for comp in [Comp::Gzip, Comp::Zstd] {
        let r = pair(|s| s.compression = comp);
        only(&r, Class::Compression, "compression", "layer 0");
        assert!(r.equivalent_after_normalization);
    }
}

#[test]
fn a_config_label() {
    let r = pair(|s| s.label = "1.1");
    only(&r, Class::Config, "config.Labels.version", "config");
}

#[test]
fn history_only() {
    let r = pair(|s| s.history = "COPY ./app /app # rebuilt");
    only(&r, Class::History, "history[0].created_by", "config");
}

#[test]
fn cli_exit_codes_json_schema_and_archives() {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    write_layout(&a, &base());
    let mut spec = base();
    spec.files[1].mtime += 1;
    spec.created = "2001-01-01T00:00:00Z";
    write_layout(&b, &spec);
    let r = common::Reprod::new();
    let out = r.run(&["diff", "--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], diff::SCHEMA);
    assert_eq!(v["summary"]["timestamp"], 3, "{v:#}");
    assert_eq!(v["equivalent_after_normalization"], true);

    // A tarball of a layout is the same image as the layout.
    let tarball = scratch.path().join("a.tar");
    common::sh(std::process::Command::new("tar").args([
        "-C",
        a.to_str().unwrap(),
        "-cf",
        tarball.to_str().unwrap(),
        ".",
    ]));
    let out = r.run(&["diff", a.to_str().unwrap(), tarball.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("identical: "));

    let out = r.run(&["diff", a.to_str().unwrap(), "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent: No such file"));
}

/// `--html FILE` writes the same report as one self-contained page: every difference in it, a hostile
/// value (a label holding markup) shown as text, nothing that runs or fetches.
#[test]
fn an_html_report_is_self_contained_and_inert() {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    write_layout(&a, &base());
    let mut spec = base();
    spec.label = "<script>alert(1)</script>";
    spec.files[0].kind = Kind::File(b"hello, </pre><img src=x onerror=alert(2)>\n");
    write_layout(&b, &spec);
    let page = scratch.path().join("report.html");
    let out = common::Reprod::new().run(&[
        "diff",
        "--json",
        "--html",
        page.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    for d in json["differences"].as_array().unwrap() {
        let field = d["field"].as_str().unwrap();
        assert!(html.contains(field), "{field} not in the page");
    }
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "the label is shown as text: {html}"
    );
    // Every tag in the page is one of the template's own: nothing from the images became markup.
    let known = [
        "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "b", "br",
        "code", "table", "tr", "th", "td", "span", "pre", "small", "ul", "li",
    ];
    for tag in html.split('<').skip(1) {
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '>')
            .next()
            .unwrap();
        assert!(known.contains(&name), "<{name} in the page:\n{html}");
    }
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains("@import") && !lower.contains("url("),
        "{html}"
    );
    assert!(lower.contains("content-security-policy"), "{html}");
}

#[test]
fn hostile_layers_are_reported_not_extracted() {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    write_layout(&a, &base());
    let mut spec = base();
    spec.files[2].path = "app/../../escape.txt";
    write_layout(&b, &spec);
    let r = diff::diff(&a, &b, &DiffOptions::default()).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("escape.txt") && p.contains("never extracted")),
        "{:?}",
        r.problems
    );
    assert!(!scratch.path().join("escape.txt").exists() && !Path::new("/escape.txt").exists());

    // A layer cut short: a precise error naming the layer.
    let manifest_digest = write_layout(&b, &base());
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(b.join("blobs/sha256").join(&manifest_digest[7..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = b.join("blobs/sha256").join(&layer[7..]);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..700]).unwrap();
    let mut spec = base();
    spec.files[0].mtime = 1;
    let c = scratch.path().join("c");
    write_layout(&c, &spec);
    let err = diff::diff(&c, &b, &DiffOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&layer[7..]), "{err}");
}

/// The layer blob of a single-layer layout written by [`write_layout`].
fn layer_blob(dir: &Path, manifest_digest: &str) -> std::path::PathBuf {
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("blobs/sha256").join(&manifest_digest[7..])).unwrap(),
    )
    .unwrap();
    dir.join("blobs/sha256")
        .join(&m["layers"][0]["digest"].as_str().unwrap()[7..])
}

/// Paths diffoscope reports as differing in two tarballs: members with their own diff, and members whose
/// line in the file listing changed.
fn diffoscope_paths(a: &Path, b: &Path, scratch: &Path) -> std::collections::BTreeSet<String> {
    let out = scratch.join("diffoscope.json");
    let status = std::process::Command::new("diffoscope")
        .args([
            "--json",
            out.to_str().unwrap(),
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ])
        .output()
        .expect("diffoscope (installed by scripts/setup.sh)");
    assert!(
        status.status.code() == Some(1),
        "diffoscope finds a difference: {status:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    let mut paths = std::collections::BTreeSet::new();
    fn walk(n: &serde_json::Value, paths: &mut std::collections::BTreeSet<String>) {
        let name = n["source1"].as_str().unwrap_or_default();
        let udiff = n["unified_diff"].as_str().unwrap_or_default();
        if name == "file list" {
            for line in udiff.lines().filter(|l| {
                l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++")
            }) {
                // `-rw-r--r--   0   0   0   12 1970-01-01 00:16:40.000000 app/hello.txt[ -> target]`
                let tokens: Vec<&str> = line.split_whitespace().collect();
                if let Some(i) = tokens
                    .iter()
                    .position(|t| t.len() >= 8 && t.as_bytes()[2] == b':')
                {
                    let rest = tokens[i + 1..].join(" ");
                    paths.insert(rest.split(" -> ").next().unwrap().to_string());
                }
            }
        } else if !name.is_empty() && !name.starts_with('/') && name != "metadata" {
            paths.insert(name.to_string());
        }
        for c in n["details"].as_array().into_iter().flatten() {
            walk(c, paths);
        }
    }
    walk(&v, &mut paths);
    paths
}

#[test]
fn every_file_diffoscope_reports_reprod_reports_too() {
    type Variant = Box<dyn Fn(&mut ImageSpec)>;
    let variants: Vec<(&str, Variant)> = vec![
        (
            "content",
            Box::new(|s| s.files[0].kind = Kind::File(b"other\n")),
        ),
        ("timestamp", Box::new(|s| s.files[1].mtime += 7)),
        ("order", Box::new(|s| s.files.swap(0, 2))),
        ("mode", Box::new(|s| s.files[2].mode = 0o600)),
        ("uid", Box::new(|s| s.files[0].uid = 1000)),
        (
            "symlink",
            Box::new(|s| s.files[3].kind = Kind::Symlink("run.sh")),
        ),
        ("added+removed", Box::new(|s| s.files[2].path = "app/c.txt")),
    ];
    for (what, variant) in variants {
        let scratch = tempfile::tempdir().unwrap();
        let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
        let ma = write_layout(&a, &base());
        let mut spec = base();
        variant(&mut spec);
        let mb = write_layout(&b, &spec);
        let report = diff::diff(&a, &b, &DiffOptions::default()).unwrap();
        let theirs = diffoscope_paths(&layer_blob(&a, &ma), &layer_blob(&b, &mb), scratch.path());
        assert!(!theirs.is_empty(), "{what}: diffoscope reported nothing");
        let order_reported = report.differences.iter().any(|d| d.class == Class::Order);
        for path in &theirs {
            let ours = report
                .differences
                .iter()
                .any(|d| d.location.ends_with(&format!(" {path}")));
            assert!(
                ours || order_reported,
                "{what}: diffoscope reports {path}, reprod does not: {:#?}",
                report.differences
            );
        }
    }
}

#[test]
fn a_manifest_naming_paths_outside_the_image_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(
        a.join("manifest.json"),
        r#"[{"Config":"c.json","Layers":[]}]"#,
    )
    .unwrap();
    std::fs::write(a.join("c.json"), r#"{"os":"linux"}"#).unwrap();
    std::fs::write(
        b.join("manifest.json"),
        r#"[{"Config":"../../../../etc/passwd","Layers":[]}]"#,
    )
    .unwrap();
    let err = diff::diff(&a, &b, &DiffOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("names a path outside the directory"), "{err}");
}

#[test]
fn registry_references_are_fetched_verified_and_compared() {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    let da = write_layout(&a, &base());
    let mut spec = base();
    spec.label = "2.0";
    let db = write_layout(&b, &spec);
    let repo = format!("127.0.0.1:5000/reprod-diff-{}", std::process::id());
    for (dir, tag) in [(&a, "a"), (&b, "b")] {
        common::sh(std::process::Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
            &format!("oci:{}", dir.display()),
            &format!("docker://{repo}:{tag}"),
        ]));
    }
    let r = common::Reprod::new();
    let (ra, rb) = (
        format!("docker://{repo}@{da}"),
        format!("docker://{repo}@{db}"),
    );
    let out = r.run(&["diff", "--json", &ra, &rb]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["a"], ra.as_str());
    assert_eq!(v["summary"], json!({"config": 1}), "{v:#}");
    assert_eq!(v["differences"][0]["field"], "config.Labels.version");
    // The registry image and the local layout it came from are the same image; a bare reference (no
    // `docker://`) is a registry reference too.
    let bare = ra.trim_start_matches("docker://");
    let out = r.run(&["diff", bare, a.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = r.run(&["diff", &ra, a.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = r.run(&[
        "diff",
        &format!("docker://{repo}@sha256:{}", "0".repeat(64)),
        &ra,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("manifest unknown"), "{stderr}");
    let out = r.run(&["diff", "docker://x@sha256:abc", &ra]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a registry reference"));
}

#[test]
fn a_manifest_or_config_that_does_not_match_its_digest_is_an_error() {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    write_layout(&a, &base());
    let mut spec = base();
    spec.label = "tampered";
    let manifest = write_layout(&b, &spec);
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(b.join("blobs/sha256").join(&manifest[7..])).unwrap(),
    )
    .unwrap();
    let config = m["config"]["digest"].as_str().unwrap().to_string();
    let path = b.join("blobs/sha256").join(&config[7..]);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("tampered", "tampereD");
    std::fs::write(&path, text).unwrap();
    let err = diff::diff(&a, &b, &DiffOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("does not match its digest {config}")),
        "{err}"
    );
}

#[test]
fn multi_platform_indexes_are_compared_platform_by_platform() {
    let scratch = tempfile::tempdir().unwrap();
    let write_multi = |dir: &Path, arm_label: &'static str| {
        // Two single-platform layouts merged into one layout whose index names both platforms.
        let amd = write_layout(dir, &base());
        let mut arm_spec = base();
        arm_spec.label = arm_label;
        arm_spec.files[0].kind = Kind::File(b"arm build\n");
        let arm = write_layout(dir, &arm_spec);
        let size = |d: &str| {
            std::fs::metadata(dir.join("blobs/sha256").join(&d[7..]))
                .unwrap()
                .len()
        };
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": size(&amd),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": size(&arm),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
        ]});
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    };
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    write_multi(&a, "1.0");
    write_multi(&b, "1.0-arm");
    let r = diff::diff(&a, &b, &DiffOptions::default()).unwrap();
    assert_eq!(
        r.differences.len(),
        1,
        "only the arm64 image differs: {:#?}",
        r.differences
    );
    assert_eq!(r.differences[0].location, "linux/arm64/v8 config");
    assert_eq!(r.differences[0].field, "config.Labels.version");
    // One platform only: the amd64 images are the same; arm64's difference is not looked at; a platform a
    // side does not have is an error naming those it has.
    let only = |platform: &str| DiffOptions {
        platform: Some(platform.into()),
        ..DiffOptions::default()
    };
    assert!(diff::diff(&a, &b, &only("linux/amd64")).unwrap().identical);
    let arm = diff::diff(&a, &b, &only("linux/arm64/v8")).unwrap();
    assert_eq!(arm.differences.len(), 1, "{:#?}", arm.differences);
    let err = diff::diff(&a, &b, &only("linux/s390x"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no linux/s390x image (it has: linux/amd64, linux/arm64/v8)"),
        "{err}"
    );
    // The same through the command line.
    let r = common::Reprod::new();
    let out = r.run(&[
        "diff",
        "--platform",
        "linux/amd64",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = r.run(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_layer_that_does_not_match_its_digest_is_refused_with_verify_layers() {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    write_layout(&a, &base());
    let mut spec = base();
    spec.files[0].mtime += 1;
    let manifest = write_layout(&b, &spec);
    let layer = layer_blob(&b, &manifest);
    let mut bytes = std::fs::read(&layer).unwrap();
    // Inside a file's content: still a well-formed tar, only the bytes differ from the digest.
    let at = bytes.windows(5).position(|w| w == b"world").unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&layer, &bytes).unwrap();
    let hex = layer.file_name().unwrap().to_str().unwrap().to_string();

    let lenient = diff::diff(&a, &b, &DiffOptions::default()).unwrap();
    assert!(!lenient.identical, "the bytes are compared as they are");
    let strict = DiffOptions {
        verify_layers: true,
        ..DiffOptions::default()
    };
    let err = diff::diff(&a, &b, &strict).unwrap_err().to_string();
    assert!(
        err.contains(&hex) && err.contains("does not match its digest"),
        "{err}"
    );
    // An intact pair passes the strict check.
    let c = scratch.path().join("c");
    write_layout(&c, &spec);
    assert!(!diff::diff(&a, &c, &strict).unwrap().identical);
}
