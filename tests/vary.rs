//! `reprod rebuild --vary` names the environment property a nondeterministic build depends on.

mod common;

use common::*;
use serde_json::Value;

fn vary(script: &str) -> (i32, Value) {
    vary_with(script, &[])
}

fn vary_with(script: &str, flags: &[&str]) -> (i32, Value) {
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("example.invalid/hello", &unbuilt_digest('9'))],
        script,
    );
    let mut all = vec!["--vary"];
    all.extend(flags);
    let (code, v, stderr) = Reprod::new().rebuild_with(&prov, &all);
    assert!(v.is_object(), "no report: {stderr}");
    assert!(
        orphan_containers().is_empty(),
        "left behind: {:?}",
        orphan_containers()
    );
    (code, v)
}

fn culprits(v: &Value) -> Vec<String> {
    v["culprits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect()
}

#[test]
fn a_build_that_embeds_the_clock_is_blamed_on_the_clock() {
    let (code, v) = vary(
        "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n./build.sh \"built at $(date +%s)\"\n",
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(culprits(&v), vec!["clock"], "{v:#}");
    assert_eq!(v["stable"], false);
    let diff = &v["diff"];
    assert!(
        diff["differences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["location"].as_str().unwrap().ends_with("hello.txt")),
        "the diff shows the file that changed: {diff:#}"
    );
}

#[test]
fn a_build_that_embeds_its_path_is_blamed_on_the_build_path() {
    let (code, v) =
        vary("#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n./build.sh \"built in $(pwd)\"\n");
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(culprits(&v), vec!["build-path"], "{v:#}");
    let text = v["diff"]["differences"][0]["text_diff"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("+built in /build/varied-path/workspace/source"),
        "{v:#}"
    );
}

/// `--only` tries just the variations named, `--skip` all but them: the path-embedding build is blamed
/// on the build path when it is tried, and is stable when it is skipped; no other variation is built.
#[test]
fn only_and_skip_choose_the_variations_tried() {
    let script =
        "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n./build.sh \"built in $(pwd)\"\n";
    let tried = |v: &Value| -> Vec<String> {
        let mut names: Vec<String> = v["builds"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| b["variations"].as_array().unwrap().clone())
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let (code, v) = vary_with(script, &["--only", "build-path,hostname"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(culprits(&v), vec!["build-path"], "{v:#}");
    assert_eq!(tried(&v), ["build-path", "hostname"], "{v:#}");
    let (code, v) = vary_with(script, &["--skip", "build-path,user-id"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["stable"], true, "{v:#}");
    assert!(!tried(&v).contains(&"build-path".to_string()), "{v:#}");
}

#[test]
fn a_deterministic_build_is_stable_under_every_variation() {
    let (code, v) = vary(HELLO_SCRIPT);
    assert_eq!(v["stable"], true, "{v:#}");
    assert_eq!(code, 0);
    assert!(culprits(&v).is_empty());
    // The example chowns its files to root, so it cannot build as another user: reported, not blamed.
    assert_eq!(v["breaks"], serde_json::json!(["user-id"]), "{v:#}");
}

#[test]
fn nothing_to_vary_when_the_control_build_fails() {
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("x", &unbuilt_digest('8'))],
        "#!/bin/sh\nexit 3\n",
    );
    let r = Reprod::new();
    let path = r.data.path().join("p.json");
    std::fs::write(&path, serde_json::to_vec(&prov).unwrap()).unwrap();
    let out = r.run(&["rebuild", "--vary", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("control build: build-failed") && text.contains("nothing to vary"),
        "{text}"
    );
}

/// Each build of `--vary` is announced as build k of the most the search can take, with what it varies.
#[test]
fn each_build_is_announced_with_its_number_and_variation() {
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("example.invalid/hello", &unbuilt_digest('8'))],
        HELLO_SCRIPT,
    );
    let (_, v, stderr) = Reprod::new()
        .with("RUST_LOG", "info")
        .rebuild_with(&prov, &["--vary", "--only", "hostname,umask"]);
    assert_eq!(v["stable"], true, "{v:#}");
    // Two variations: control, control again, everything, each alone, all but the breaking, one pair.
    for line in [
        "vary: build 1 of at most 7: control",
        "vary: build 2 of at most 7: control again, a second later",
        "vary: build 3 of at most 7: every variation (hostname, umask)",
    ] {
        assert!(stderr.contains(line), "{line:?} not in {stderr}");
    }
    // A stable build stops there.
    assert!(!stderr.contains("vary: build 4 "), "{stderr}");
}
