//! `reprod rebuild` end to end: real Docker engine, real local registry, real git repositories.

mod common;

use common::*;
use serde_json::Value;

fn subjects_of(v: &Value) -> &Vec<Value> {
    v["subjects"].as_array().expect("subjects array")
}

#[test]
fn deterministic_build_with_repeated_subjects_is_reproducible() {
    let repo = Repo::hello();
    let [hello, debug, file] = repo
        .reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"));
    let subjects = vec![
        subject("example.invalid/hello", &hello),
        subject("example.invalid/hello:v1", &hello),
        subject("mirror.example.invalid/hello", &hello),
        subject("example.invalid/hello-debug", &debug),
        subject("example.invalid/hello-debug:v1", &debug),
        subject("example.invalid/hello", &hello),
        subject("hello.txt", &file),
    ];
    let prov = repo.provenance(subjects, HELLO_SCRIPT);
    let (code, v, stderr) = Reprod::new().rebuild(&prov);
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    assert!(v["reason"].is_null());
    let subs = subjects_of(&v);
    assert_eq!(subs.len(), 7);
    for s in subs {
        assert_eq!(s["matched"], true, "{s}");
        assert_eq!(s["state"], "matched", "{s}");
        assert_eq!(s["rebuilt_digest"], s["digest"]);
    }
    let mut distinct: Vec<_> = subs.iter().map(|s| s["digest"].as_str().unwrap()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    assert_eq!(v["source"]["commit"], repo.commit.as_str());
    assert_eq!(last_step(&v)["exit_code"], 0);
    assert!(
        orphan_containers().is_empty(),
        "left behind: {:?}",
        orphan_containers()
    );
}

#[test]
fn build_that_embeds_time_and_randomness_is_unreproducible() {
    let repo = Repo::hello();
    let script = "#!/bin/sh\nset -e\ncd /workspace/source\n./build.sh \"built $(date +%s%N) $$ $(head -c 8 /dev/urandom | od -An -tx1)\"\n";
    let [hello, debug, file] = repo.reference_build(script);
    let prov = repo.provenance(
        vec![
            subject("example.invalid/hello", &hello),
            subject("example.invalid/hello-debug:v1", &debug),
            subject("hello.txt", &file),
        ],
        script,
    );
    let (code, v, stderr) = Reprod::new().rebuild(&prov);
    assert_eq!(v["status"], "unreproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 1);
    assert_eq!(v["reason"], "digest-mismatch");
    let image = &subjects_of(&v)[0];
    assert_eq!(image["name"], "example.invalid/hello");
    assert_eq!(image["digest"], hello.as_str());
    assert_eq!(image["matched"], false);
    assert_eq!(image["state"], "differs");
    let rebuilt = image["rebuilt_digest"]
        .as_str()
        .expect("the rebuilt digest is named");
    assert!(
        rebuilt.starts_with("sha256:") && rebuilt.len() == 71 && rebuilt != hello,
        "{rebuilt}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains(&hello),
        "{}",
        v["detail"]
    );
}

#[test]
fn failing_step_is_build_failed_with_exit_code_and_log_tail() {
    let repo = Repo::hello();
    let script = "#!/bin/sh\necho compiling hello\necho 'hello.c:3: error: expected ; before }' >&2\nexit 3\n";
    let prov = repo.provenance(
        vec![subject("example.invalid/hello", &unbuilt_digest('a'))],
        script,
    );
    let (code, v, _) = Reprod::new().rebuild(&prov);
    assert_eq!(v["status"], "build-failed", "{v:#}");
    assert_eq!(code, 1);
    assert_eq!(v["reason"], "step-failed");
    assert_eq!(
        subjects_of(&v)[0]["state"],
        "not-compared",
        "a failed build compared nothing"
    );
    let step = last_step(&v);
    assert_eq!(step["exit_code"], 3);
    assert_eq!(step["termination"], "exited");
    let tail = step["log_tail"].as_str().unwrap();
    assert!(
        tail.contains("compiling hello") && tail.contains("expected ; before }"),
        "{tail}"
    );
}

#[test]
fn human_output_names_the_verdict_and_differing_subject() {
    let repo = Repo::hello();
    let bogus = unbuilt_digest('b');
    let prov = repo.provenance(vec![subject("example.invalid/hello", &bogus)], HELLO_SCRIPT);
    let r = Reprod::new();
    let path = r.data.path().join("p.json");
    std::fs::write(&path, serde_json::to_vec(&prov).unwrap()).unwrap();
    let out = r.run(&["rebuild", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with("verdict: unreproducible\n"), "{text}");
    assert!(
        text.contains(&format!("differs      example.invalid/hello {bogus}")),
        "{text}"
    );
    assert!(text.contains("rebuilt: sha256:"), "{text}");
}

#[test]
fn tag_only_step_image_is_unrebuildable_unpinned_image() {
    let repo = Repo::hello();
    let prov = chains_provenance(
        vec![subject("x", &unbuilt_digest('c'))],
        HELLO_SCRIPT,
        "127.0.0.1:5000/reprod/busybox:latest",
        &repo.url,
        &repo.commit,
    );
    let (code, v, _) = Reprod::new().rebuild(&prov);
    assert_eq!(v["status"], "unrebuildable", "{v:#}");
    assert_eq!(v["reason"], "unpinned-image");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("not pinned by digest"),
        "{}",
        v["detail"]
    );
    assert_eq!(code, 1);
}

#[test]
fn commit_missing_from_repository_is_unrebuildable() {
    let repo = Repo::hello();
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let prov = chains_provenance(
        vec![subject("x", &unbuilt_digest('d'))],
        HELLO_SCRIPT,
        builder_image(),
        &repo.url,
        missing,
    );
    let (code, v, _) = Reprod::new().rebuild(&prov);
    assert_eq!(v["status"], "unrebuildable", "{v:#}");
    assert_eq!(v["reason"], "commit-not-found");
    assert!(v["detail"].as_str().unwrap().contains(missing));
    assert_eq!(code, 1);
}

#[test]
fn an_unreachable_registry_is_infrastructure_and_a_missing_image_is_unavailable() {
    let repo = Repo::hello();
    let digest = builder_image().rsplit_once('@').unwrap().1;
    let prov = |image: &str| {
        chains_provenance(
            vec![subject("x", &unbuilt_digest('e'))],
            HELLO_SCRIPT,
            image,
            &repo.url,
            &repo.commit,
        )
    };
    // Nothing listens on this loopback port: the registry gave no answer, which says nothing about the
    // provenance. No verdict (exit 2); the daemon would retry it.
    let (code, v, stderr) =
        Reprod::new().rebuild(&prov(&format!("127.0.0.1:5999/reprod/busybox@{digest}")));
    assert_eq!(code, 2, "{v:#}\n{stderr}");
    assert!(
        stderr.contains("infrastructure failure") && stderr.contains("127.0.0.1:5999"),
        "{stderr}"
    );
    // The registry answers that it has no such image: that is a finding, unrebuildable.
    let missing = format!(
        "127.0.0.1:5000/reprod/never-pushed-{}@{digest}",
        std::process::id()
    );
    let (code, v, stderr) = Reprod::new().rebuild(&prov(&missing));
    assert_eq!(v["status"], "unrebuildable", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "image-unavailable");
    assert!(
        v["detail"].as_str().unwrap().contains("never-pushed"),
        "{}",
        v["detail"]
    );
    assert_eq!(code, 1);
}

#[test]
fn image_mirror_map_rewrites_the_registry_but_keeps_the_digest() {
    let repo = Repo::hello();
    let [hello, _, _] = repo
        .reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"));
    let digest = builder_image().rsplit_once('@').unwrap().1;
    let recorded = format!("docker.io/reprod/busybox@{digest}");
    let prov = chains_provenance(
        vec![subject("hello", &hello)],
        HELLO_SCRIPT,
        &recorded,
        &repo.url,
        &repo.commit,
    );
    let r = Reprod::new();
    let config = r.data.path().join("reprod.toml");
    std::fs::write(
        &config,
        "[images.mirrors]\n\"docker.io/\" = \"127.0.0.1:5000/\"\n",
    )
    .unwrap();
    let r = r.with("REPROD_CONFIG", config.to_str().unwrap());
    let (code, v, stderr) = r.rebuild(&prov);
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    let step = last_step(&v);
    assert_eq!(step["image"], recorded.as_str());
    assert_eq!(step["pulled_image"], builder_image());
}

#[test]
fn distroless_seed_parses_and_is_unrebuildable_with_a_precise_reason() {
    // Keep the rebuild on this machine: github.com is mapped to a local path that does not exist.
    let r = Reprod::new();
    let config = r.data.path().join("reprod.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nallow_file = true\n[source.mirrors]\n\"https://github.com/\" = \"file://{}/no-such-mirror/\"\n",
            r.data.path().display()
        ),
    )
    .unwrap();
    let r = r.with("REPROD_CONFIG", config.to_str().unwrap());
    let (code, v, stderr) = r.rebuild_file(&corpus("seed/distroless-provenance.json"));
    assert_eq!(v["status"], "unrebuildable", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "source-unavailable");
    assert!(
        v["detail"].as_str().unwrap().contains("no-such-mirror"),
        "{}",
        v["detail"]
    );
    let subs = subjects_of(&v);
    assert_eq!(subs.len(), 30);
    let mut distinct: Vec<_> = subs.iter().map(|s| s["digest"].as_str().unwrap()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 14);
    assert_eq!(
        v["source"]["commit"],
        "976c1c9bc178ac0371d8888d69893145c3df09f0"
    );
    assert_eq!(v["provenance"]["container"]["kind"], "bare-statement");
    assert_eq!(code, 1);
}

#[test]
fn an_unreproducible_image_is_explained_by_diffing_the_original_from_the_registry() {
    let repo = Repo::hello();
    let script = NOISY_SCRIPT;
    let [hello, _, _] = repo.reference_build(script);
    // Publish the original build, as the build system would have.
    // The rebuilt layout is annotated `hello`: the repository's last component pairs them.
    let path = format!("reprod-test-{}/hello", std::process::id());
    common::daemon::push_hello(&repo, &path, "v1");
    let name = format!("127.0.0.1:5000/{path}");
    let prov = repo.provenance(vec![subject(&format!("{name}:v1"), &hello)], script);
    let (code, v, stderr) = Reprod::new()
        .with("REPROD_IMAGES_FETCH_ORIGINALS", "true")
        .with("REPROD_IMAGES_ORIGINALS_FROM", "[\"127.0.0.1:5000\"]")
        .rebuild(&prov);
    assert_eq!(code, 1, "{v:#}\n{stderr}");
    assert_eq!(v["status"], "unreproducible");
    let x = &subjects_of(&v)[0]["explanation"];
    assert!(x["error"].is_null(), "{x:#}");
    assert_eq!(x["original"], format!("{name}@{hello}"));
    assert_eq!(x["summary"], serde_json::json!({"content": 1}), "{x:#}");
    let first = &x["first_differences"][0];
    assert!(
        first["location"]
            .as_str()
            .unwrap()
            .ends_with("layer 0 hello.txt"),
        "{first:#}"
    );
    assert!(
        first["text_diff"]
            .as_str()
            .unwrap()
            .contains("+built with "),
        "{first:#}"
    );
}

#[test]
fn an_original_that_cannot_be_fetched_is_said_plainly() {
    let repo = Repo::hello();
    let bogus = unbuilt_digest('7');
    let prov = repo.provenance(
        vec![subject(
            "127.0.0.1:5000/reprod-test/never-pushed/hello",
            &bogus,
        )],
        HELLO_SCRIPT,
    );
    let (code, v, _) = Reprod::new()
        .with("REPROD_IMAGES_FETCH_ORIGINALS", "true")
        .with("REPROD_IMAGES_ORIGINALS_FROM", "[\"127.0.0.1:5000\"]")
        .rebuild(&prov);
    assert_eq!(code, 1);
    let x = &subjects_of(&v)[0]["explanation"];
    // Said plainly, in reprod's words: the registry's own error text stays in the log.
    assert_eq!(
        x["error"], "the original could not be fetched: the registry does not have it",
        "{x:#}"
    );
}

/// The subject names (the provenance's) choose the registry an original would come from: nothing is
/// fetched from a registry the configuration does not list.
#[test]
fn originals_come_only_from_listed_registries() {
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject(
            "169.254.169.254/latest/hello",
            &unbuilt_digest('8'),
        )],
        HELLO_SCRIPT,
    );
    let (code, v, stderr) = Reprod::new()
        .with("REPROD_IMAGES_FETCH_ORIGINALS", "true")
        .rebuild(&prov);
    assert_eq!(code, 1, "{stderr}");
    let x = &subjects_of(&v)[0]["explanation"];
    let error = x["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("169.254.169.254 is not in images.originals_from"),
        "{x:#}"
    );
}

/// On a terminal, `rebuild` shows the running step's newest output line with its elapsed time on one
/// status line, redrawn in place and cleared before each plain line, with the build's escape sequences
/// made visible; off a terminal it writes plain lines only, without a single escape code.
#[test]
fn a_terminal_sees_the_running_steps_output_and_a_pipe_only_plain_lines() {
    let repo = Repo::hello();
    let script = "#!/bin/sh\necho 'working on part 1'\nsleep 1\nprintf 'part 2 \\033[31mred\\n'\nsleep 1\nexit 0\n";
    let prov = repo.provenance(
        vec![subject("example.invalid/hello", &unbuilt_digest('c'))],
        script,
    );
    let r = Reprod::new().with("COLUMNS", "120");
    let path = r.data.path().join("p.json");
    std::fs::write(&path, serde_json::to_vec(&prov).unwrap()).unwrap();
    let command = format!(
        "{} rebuild --json {}",
        env!("CARGO_BIN_EXE_reprod"),
        path.display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qefc", &command, "/dev/null"]);
    for (k, v) in &r.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(
        tty.contains("\r\u{1b}[Kstep 1/1 build ") && tty.contains("s │ working on part 1"),
        "{tty:?}"
    );
    // The build's own escape sequence is shown, not obeyed.
    assert!(tty.contains("s │ part 2 \\x1b[31mred"), "{tty:?}");
    assert!(
        tty.contains("\r\u{1b}[Kreprod: step 1/1 build: exited"),
        "{tty:?}"
    );

    let piped = r.run(&["rebuild", "--json", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(!err.contains("│"), "{err:?}");
}
