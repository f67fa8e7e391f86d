//! A verdict never says more than was checked (issue 11): each test here reproduces a way an earlier
//! reprod said more than it had checked, against the real engine, real layouts and the real CLI.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A layout whose manifest and config are right but whose layer is gone is not a rebuilt image: its
/// manifest digest equals the subject, and still it is not `matched`.
#[test]
fn an_image_with_a_missing_layer_is_not_rebuilt() {
    let repo = Repo::hello();
    let [hello, _, _] = reference(&repo);
    // Everything but the JSON blobs (index, manifest, config) of out/hello is removed after the build.
    let script = "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n./build.sh\n\
                  for b in out/hello/blobs/sha256/*; do head -c1 \"$b\" | grep -q '{' || rm \"$b\"; done\n";
    let made_up = unbuilt_digest('5');
    let prov = repo.provenance(
        vec![
            subject("example.invalid/hello", &hello),
            subject("example.invalid/hello:other", &made_up),
        ],
        script,
    );
    let (code, v, stderr) = Reprod::new().rebuild(&prov);
    assert_eq!(code, 1, "{v:#}\n{stderr}");
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("unreproducible"), Some("incomplete-image")),
        "{v:#}"
    );
    // Its counterpart by name is that incomplete image: not a rebuilt image, so no rebuilt digest is
    // named for it (nor signed in the rebuild provenance).
    let other = &v["subjects"][1];
    assert_eq!(other["state"], "not-found", "{other:#}");
    assert!(other["rebuilt_digest"].is_null(), "{other:#}");
    assert!(
        other["problem"]
            .as_str()
            .unwrap()
            .contains("not a whole image"),
        "{other:#}"
    );
    let s = &v["subjects"][0];
    assert_eq!(s["state"], "not-found", "{s:#}");
    assert_eq!(s["matched"], false);
    let problem = s["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("not whole") && problem.contains("No such file"),
        "the missing blob is named: {problem}"
    );
    let image = &v["outputs"]["images"][0];
    assert!(
        !image["digests"]
            .as_array()
            .unwrap()
            .contains(&Value::from(hello.clone())),
        "{image:#}"
    );
}

fn reference(repo: &Repo) -> [String; 3] {
    repo.reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"))
}

/// Writes an OCI layout at `dir` whose index names `descriptors` (media type, digest).
fn layout(dir: &Path, descriptors: &[(&str, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let manifests: Vec<Value> = descriptors
        .iter()
        .map(|(mt, d)| serde_json::json!({"mediaType": mt, "digest": d, "size": 6}))
        .collect();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap(),
    )
    .unwrap();
}

/// A build cannot make host files look like outputs: a `blobs/sha256` symlink out of the workspace, or a
/// digest with an algorithm the OCI spec does not register (`hostdir:secret` → `blobs/hostdir/secret`), is
/// refused, and the host file's digest is reported nowhere.
#[test]
fn host_files_never_become_outputs() {
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let host = tempfile::tempdir().unwrap();
    let secret = b"secret";
    let secret_digest = reprod::oci::sha256_bytes(secret);
    let hex = &secret_digest["sha256:".len()..];
    std::fs::create_dir_all(host.path().join("sha256")).unwrap();
    std::fs::write(host.path().join("sha256").join(hex), secret).unwrap();
    std::fs::write(host.path().join("secret"), secret).unwrap();

    let workspace = tempfile::tempdir().unwrap();
    let linked = workspace.path().join("linked");
    layout(&linked, &[(MANIFEST, secret_digest.clone())]);
    std::os::unix::fs::symlink(host.path(), linked.join("blobs")).unwrap();
    let unregistered = workspace.path().join("unregistered");
    layout(&unregistered, &[(MANIFEST, "hostdir:secret".into())]);
    std::fs::create_dir_all(unregistered.join("blobs")).unwrap();
    std::os::unix::fs::symlink(host.path(), unregistered.join("blobs/hostdir")).unwrap();
    let per_component = workspace.path().join("per-component");
    layout(&per_component, &[(MANIFEST, secret_digest.clone())]);
    std::fs::create_dir_all(per_component.join("blobs")).unwrap();
    std::os::unix::fs::symlink(
        host.path().join("sha256"),
        per_component.join("blobs/sha256"),
    )
    .unwrap();

    let out = Reprod::new().run(&["scan", "--json", workspace.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let scanned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "problems are reported: {text}");
    // The index claims the digest, so it is named as claimed; it is never found, matched or incomplete.
    for image in scanned["images"].as_array().unwrap() {
        assert!(
            image["digests"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d != secret_digest.as_str()),
            "{image:#}"
        );
        assert!(
            image["incomplete"]
                .as_object()
                .is_none_or(|m| !m.contains_key(&secret_digest)),
            "{image:#}"
        );
    }
    let problems = scanned["images"].to_string();
    assert!(problems.contains("links are not followed"), "{problems}");
    assert!(
        problems.contains("\\\"hostdir\\\" is not one the OCI image spec registers"),
        "{problems}"
    );
    for image in scanned["images"].as_array().unwrap() {
        assert_eq!(image["entries"][0]["complete"], false, "{image:#}");
    }
}

/// A step container killed from outside (here `docker kill`; an engine restart or the host's OOM killer
/// look the same) is not the build's doing: no verdict, exit 2, an infrastructure error to retry.
#[test]
fn a_step_killed_from_outside_is_infrastructure_not_a_verdict() {
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("example.invalid/hello", &unbuilt_digest('d'))],
        "#!/bin/sh\necho started\nsleep 60\n",
    );
    let r = Reprod::new();
    let child = spawn_rebuild(&r, &prov);
    let container = wait_for_step_container(child.id());
    std::thread::sleep(Duration::from_millis(500));
    sh(Command::new("docker").args(["kill", &container]));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "no verdict is printed");
    assert!(
        stderr.contains("infrastructure failure")
            && stderr.contains("not a verdict on the artifact"),
        "{stderr}"
    );
    assert!(orphan_containers().is_empty(), "{:?}", orphan_containers());
}

/// A build that only claims digests in its results and writes nothing is `no-output`, not a list of
/// differences; the source it was given does not count as output.
#[test]
fn a_recipe_that_builds_none_of_its_subjects_says_so() {
    let repo = Repo::hello();
    let [hello, _, _] = reference(&repo);
    let claim = format!("echo example.invalid/hello@{hello} > $(results.IMAGES.path)\n");
    let judged = |script: &str| {
        let prov = repo.provenance(vec![subject("example.invalid/hello", &hello)], script);
        let (code, v, stderr) = Reprod::new().rebuild(&prov);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(
            (v["status"].as_str(), v["reason"].as_str()),
            (Some("unreproducible"), Some("no-output")),
            "{v:#}"
        );
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("only claimed them in its results"),
            "{}",
            v["detail"]
        );
        assert_eq!(v["subjects"][0]["state"], "not-found");
        assert!(v["claimed_results"]["IMAGES"]
            .as_str()
            .unwrap()
            .contains(&hello));
        v
    };
    let v = judged(&format!("#!/bin/sh\n{claim}"));
    let outputs = &v["outputs"];
    assert_eq!(outputs["files"], serde_json::json!([]), "{outputs:#}");
    assert!(
        outputs["inputs_unchanged"].as_u64().unwrap() >= 3,
        "{outputs:#}"
    );
    // A recipe that makes something, but nothing that corresponds to its subject (the distroless shape:
    // the image was built elsewhere and only named here), is `no-output` too, not a difference.
    let v = judged(&format!(
        "#!/bin/sh\necho unrelated > /workspace/source/notes.txt\n{claim}"
    ));
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("none of them any subject or its counterpart"),
        "{}",
        v["detail"]
    );
    assert!(
        v["outputs"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"].as_str().unwrap().ends_with("notes.txt")),
        "{:#}",
        v["outputs"]
    );
}

/// Equal digests name equal bytes only if the bytes on disk are the ones named: a copy whose config blob
/// was edited in place is not `identical`.
#[test]
fn a_copy_with_an_edited_config_is_not_identical() {
    let repo = Repo::hello();
    reference(&repo);
    let out = repo.reference_checkout().join("out");
    let copy = tempfile::tempdir().unwrap();
    sh(Command::new("cp").args([
        "-a",
        out.join("hello").to_str().unwrap(),
        copy.path().to_str().unwrap(),
    ]));
    let edited = copy.path().join("hello");
    let blobs = edited.join("blobs/sha256");
    let config = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"rootfs\"")))
        .expect("the config blob");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("/bin/cat", "/bin/sh")).unwrap();
    let o = Reprod::new().run(&[
        "diff",
        out.join("hello").to_str().unwrap(),
        edited.to_str().unwrap(),
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_ne!(o.status.code(), Some(0), "{all}");
    assert!(!all.contains("identical"), "{all}");
    assert!(all.contains("does not match its digest"), "{all}");
}

/// A copy of an image's manifest bytes is not the image: a file whose sha256 equals the subject's digest
/// but whose bytes are an index or manifest never matches.
#[test]
fn a_copy_of_the_manifest_is_not_the_image() {
    let repo = Repo::hello();
    let [hello, _, _] = reference(&repo);
    let hex = &hello["sha256:".len()..];
    let script = format!(
        "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n./build.sh\n\
         cp out/hello/blobs/sha256/{hex} manifest.copy\nrm -rf out\n"
    );
    let prov = repo.provenance(vec![subject("example.invalid/hello", &hello)], &script);
    let (code, v, stderr) = Reprod::new().rebuild(&prov);
    assert_eq!(code, 1, "{v:#}\n{stderr}");
    assert_eq!(v["subjects"][0]["state"], "not-found", "{v:#}");
    let copy = v["outputs"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("manifest.copy"))
        .expect("the copy is listed");
    assert_eq!(copy["digest"], hello.as_str());
    assert_eq!(copy["image_document"], true);
}

/// A subject digest that cannot be a sha256 (63 characters, upper case) is an error in the document,
/// named by its subject: `reprod rebuild` stops before anything runs (exit 2), never
/// `unreproducible/digest-mismatch`.
#[test]
fn a_malformed_subject_digest_is_a_parse_error_not_a_verdict() {
    let repo = Repo::hello();
    for (digest, why) in [
        ("a".repeat(63), "has the wrong length (63 characters)"),
        ("A".repeat(64), "has upper-case letters"),
    ] {
        let prov = repo.provenance(
            vec![
                serde_json::json!({"name": "example.invalid/hello", "digest": {"sha256": digest}}),
            ],
            HELLO_SCRIPT,
        );
        let (code, v, stderr) = Reprod::new().rebuild(&prov);
        assert_eq!(code, 2, "{v:#}\n{stderr}");
        assert!(v.is_null(), "no verdict is printed: {v:#}");
        assert!(
            stderr.contains("subject \"example.invalid/hello\"") && stderr.contains(why),
            "{stderr}"
        );
        assert!(!stderr.contains("digest-mismatch"), "{stderr}");
    }
}
