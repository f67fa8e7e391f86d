//! Rebuilds of the families beside Tekton TaskRuns, against the real engine and the local registry:
//! Cloud Build v0.1 (steps sharing /workspace, substitutions, `dir`), the SLSA container-based builder
//! (a command in the checkout, a file as output) and a Tekton PipelineRun (a clone task stood in for by
//! reprod's checkout, a build task, a task reading another's result, tasks that only sign or report).

mod common;

use common::*;
use serde_json::{json, Value};

fn subjects_of(v: &Value) -> &Vec<Value> {
    v["subjects"].as_array().expect("subjects")
}

/// Asserts a reproducible verdict whose subjects all matched and whose steps ran under `steps`' names.
fn assert_reproducible(code: i32, v: &Value, stderr: &str, steps: &[&str]) {
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    assert!(
        subjects_of(v).iter().all(|s| s["state"] == "matched"),
        "{v:#}"
    );
    let names: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, steps);
}

fn sha256_hex(bytes: &[u8]) -> String {
    reprod::oci::sha256_bytes(bytes)[7..].to_string()
}

/// Cloud Build SLSA v0.1 provenance (as `gcloud builds` records it) with the given steps.
fn cloud_build(repo: &Repo, subjects: Vec<Value>, steps: Value, substitutions: Value) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.1",
        "subject": subjects,
        "predicate": {
            "builder": {"id": "https://cloudbuild.googleapis.com/GoogleHostedWorker@v0.3"},
            "recipe": {
                "type": "https://cloudbuild.googleapis.com/CloudBuildYaml@v0.1",
                "entryPoint": "cloudbuild.yaml",
                "arguments": {
                    "@type": "type.googleapis.com/google.devtools.cloudbuild.v1.Build",
                    "steps": steps,
                    "substitutions": substitutions
                }
            },
            "materials": [{"uri": repo.url, "digest": {"sha1": repo.commit}}]
        }
    })
}

#[test]
fn cloud_build_steps_share_the_workspace_with_substitutions_and_dir() {
    let repo = Repo::hello();
    let [hello, _, file] = timed("cloud build v0.1, run directly", || {
        repo.reference_build("cd /workspace/source && ./build.sh from-substitution\n")
    });
    let image = builder_image();
    let steps = json!([
        {
            "id": "prepare",
            "name": image,
            "entrypoint": "sh",
            // `${_EXTRA}` is Cloud Build's to substitute; `$$HOME` is Cloud Build's escape for the shell's
            // `$HOME`.
            "args": ["-c", "set -e; mkdir gen; echo ${_EXTRA} > gen/extra; pwd > gen/pwd; echo $$HOME > gen/home"]
        },
        {
            "id": "build",
            "name": image,
            "dir": "gen",
            "entrypoint": "sh",
            "args": ["-c", "set -e; test \"$(cat pwd)\" = /workspace; test \"$(pwd)\" = /workspace/gen; \
                     test \"$(cat home)\" = /builder/home; ../build.sh \"$(cat extra)\""]
        }
    ]);
    let prov = cloud_build(
        &repo,
        vec![
            subject("us-docker.pkg.dev/p/r/hello:v1", &hello),
            subject("hello.txt", &file),
        ],
        steps,
        json!({"_EXTRA": "from-substitution", "SHORT_SHA": &repo.commit[..7]}),
    );
    let (code, v, stderr) = timed("cloud build v0.1, rebuilt", || Reprod::new().rebuild(&prov));
    assert_reproducible(code, &v, &stderr, &["prepare", "build"]);
    assert!(orphan_containers().is_empty());
}

/// Cloud Build SLSA v1 provenance (`google-worker/v1`): no steps, only where the build config is, the
/// substitutions and what the build resolved.
fn cloud_build_v1(repo: &Repo, subjects: Vec<Value>, config_path: &str) -> Value {
    let builder = builder_image();
    let hex = builder.split_once("@sha256:").unwrap().1;
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": "https://slsa.dev/provenance/v1",
        "subject": subjects,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://cloud.google.com/build/gcb-buildtypes/google-worker/v1",
                "externalParameters": {
                    "buildConfigSource": {"path": config_path, "ref": "refs/heads/main", "repository": format!("git+{}", repo.url)},
                    "substitutions": {"_EXTRA": "from-provenance"}
                },
                "internalParameters": {"systemSubstitutions": {"COMMIT_SHA": repo.commit, "SHORT_SHA": &repo.commit[..7]}},
                "resolvedDependencies": [
                    {"uri": format!("git+{}@refs/heads/main", repo.url), "digest": {"gitCommit": repo.commit}},
                    {"uri": builder, "digest": {"sha256": hex}}
                ]
            },
            "runDetails": {"builder": {"id": "https://cloudbuild.googleapis.com/GoogleHostedWorker"}}
        }
    })
}

/// Cloud Build v1 records no steps: reprod reads them from the build config in the recorded commit, pins
/// each step image to what the provenance says was resolved, takes the recorded substitutions over the
/// config's defaults, runs them with Cloud Build's conventions, and says in the verdict that the steps
/// came from the source. A config that needs secrets, names an image nothing resolved, is missing, or is
/// a link out of the checkout is not rebuilt, each with its reason.
#[test]
fn cloud_build_v1_steps_are_read_from_the_config_in_the_recorded_commit() {
    let image = builder_image().split('@').next().unwrap().to_string();
    let config = |steps: &str| format!("steps:\n{steps}substitutions:\n  _EXTRA: from-config\n");
    let good = format!(
        "- id: prepare\n  name: {image}\n  entrypoint: sh\n  args: ['-c', 'mkdir gen && echo ${{_EXTRA}} > gen/extra']\n\
         - id: build\n  name: {image}\n  entrypoint: sh\n  args: ['-c', './build.sh \"$(cat gen/extra)\"']\n"
    );
    let repo = Repo::hello_with(|dir| {
        std::fs::write(dir.join("cloudbuild.yaml"), config(&good)).unwrap();
        std::fs::write(
            dir.join("secret.yaml"),
            config(&format!("- name: {image}\n  entrypoint: sh\n  args: ['-c', 'echo $$TOKEN']\n  secretEnv: ['TOKEN']\n")),
        )
        .unwrap();
        std::fs::write(
            dir.join("elsewhere.yaml"),
            config("- name: 127.0.0.1:5000/reprod/never-resolved:1\n  args: ['true']\n"),
        )
        .unwrap();
        // Pinned by digest, but not to anything the provenance resolved.
        std::fs::write(
            dir.join("unresolved.yaml"),
            config(&format!(
                "- name: {image}@sha256:{}\n  args: ['true']\n",
                "7".repeat(64)
            )),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link.yaml")).unwrap();
    });
    let [hello, _, file] = timed("cloud build v1, run directly", || {
        repo.reference_build("cd /workspace/source && ./build.sh from-provenance\n")
    });
    let subjects = || {
        vec![
            subject("us-docker.pkg.dev/p/r/hello:v1", &hello),
            subject("hello.txt", &file),
        ]
    };
    let (code, v, stderr) = timed("cloud build v1, rebuilt", || {
        Reprod::new().rebuild(&cloud_build_v1(&repo, subjects(), "cloudbuild.yaml"))
    });
    assert_reproducible(code, &v, &stderr, &["prepare", "build"]);
    let from = v["steps_from"].as_str().unwrap();
    assert!(
        from.contains("cloudbuild.yaml") && from.contains(&repo.commit),
        "{from}"
    );
    // Each step ran the image the provenance resolved, not the tag the config names.
    assert!(v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["image"] == builder_image()));

    for (path, reason, says) in [
        ("secret.yaml", "needs-secrets", "TOKEN"),
        ("elsewhere.yaml", "unpinned-image", "never-resolved"),
        (
            "unresolved.yaml",
            "unpinned-image",
            "does not say the build resolved",
        ),
        ("missing.yaml", "no-build-config", "missing.yaml"),
        ("link.yaml", "no-build-config", "link.yaml"),
    ] {
        let (code, v, stderr) = Reprod::new().rebuild(&cloud_build_v1(&repo, subjects(), path));
        assert_eq!(
            (v["status"].as_str(), v["reason"].as_str()),
            (Some("unrebuildable"), Some(reason)),
            "{path}: {v:#}\n{stderr}"
        );
        assert_eq!(code, 1, "{path}");
        assert!(
            v["detail"].as_str().unwrap().contains(says),
            "{path}: {}",
            v["detail"]
        );
        assert!(
            v["steps"].as_array().unwrap().is_empty(),
            "{path}: nothing ran"
        );
    }
    assert!(orphan_containers().is_empty());
}

#[test]
fn cloud_build_images_pushed_by_a_step_land_in_the_sink_and_are_compared() {
    let repo = Repo::hello();
    let [hello, _, _] = repo.reference_build("cd /workspace/source && ./build.sh\n");
    let name = "us-docker.pkg.dev/p/r/hello";
    // Cloud Build pushes `images` from its worker's Docker daemon; reprod's steps have none, so this
    // build's second step pushes the image itself, through the build network, into the sink.
    let steps = json!([
        {"id": "build", "name": builder_image(), "entrypoint": "./build.sh"},
        {"id": "push", "name": debian_builder_image(), "entrypoint": "sh",
         "args": ["-c", format!("set -e; mv out /tmp/out; skopeo copy --preserve-digests oci:/tmp/out/hello docker://{name}:$TAG_NAME")]}
    ]);
    let mut prov = cloud_build(
        &repo,
        vec![subject(&format!("{name}:v1"), &hello)],
        steps,
        json!({"TAG_NAME": "v1"}),
    );
    prov["predicate"]["recipe"]["arguments"]["images"] = json!([format!("{name}:v1")]);
    let (code, v, stderr) =
        Reprod::with_network_holder().rebuild_with(&prov, &["--network", "proxy"]);
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    assert_eq!(v["subjects"][0]["state"], "matched");
    let pushed = &v["network"]["pushed"][0];
    assert_eq!(
        pushed["reference"],
        format!("{name}:v1"),
        "{:#}",
        v["network"]
    );
    assert_eq!(pushed["digest"], hello.as_str());
    assert!(orphan_containers().is_empty());
}

#[test]
fn cloud_build_with_secret_env_is_unrebuildable_needs_secrets() {
    let repo = Repo::hello();
    let prov = cloud_build(
        &repo,
        vec![subject("hello.txt", &unbuilt_digest('a'))],
        json!([{"id": "deploy", "name": builder_image(), "entrypoint": "sh",
                "args": ["-c", "echo $$TOKEN"], "secretEnv": ["TOKEN"]}]),
        json!({}),
    );
    let (code, v, stderr) = Reprod::new().rebuild(&prov);
    assert_eq!(v["status"], "unrebuildable", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "needs-secrets");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("TOKEN (secretEnv of deploy)"),
        "{v:#}"
    );
    assert!(subjects_of(&v).iter().all(|s| s["state"] == "not-compared"));
    assert_ne!(code, 0);
    assert!(
        v["steps"].as_array().is_none_or(Vec::is_empty),
        "nothing ran"
    );
}

#[test]
fn container_based_build_runs_the_command_in_the_checkout_and_compares_files() {
    let repo = Repo::hello();
    let [_, _, file] = timed("container-based, run directly", || {
        repo.reference_build("cd /workspace/source && ./build.sh\n")
    });
    let (name, digest) = builder_image().split_once('@').unwrap();
    let prov = |subjects: Vec<Value>, command: Value| {
        json!({
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://slsa.dev/provenance/v1",
            "subject": subjects,
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://slsa.dev/container-based-build/v0.1?draft",
                    "externalParameters": {
                        "source": {"uri": repo.url, "digest": {"sha1": repo.commit}},
                        "builderImage": {"uri": name, "digest": {"sha256": &digest[7..]}},
                        "configPath": ".slsa/config.toml",
                        "buildConfig": {"ArtifactPath": "out/hello.txt", "Command": command}
                    },
                    "resolvedDependencies": [{"uri": repo.url, "digest": {"sha1": repo.commit}}]
                },
                "runDetails": {"builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/builder_container-based_slsa3.yml@refs/tags/v2.1.0"}}
            }
        })
    };
    // The builder's convention: the checkout is /workspace and the command starts there.
    let (code, v, stderr) = timed("container-based, rebuilt", || {
        Reprod::new().rebuild(&prov(
            vec![subject("hello.txt", &file)],
            json!(["sh", "-c", "test \"$(pwd)\" = /workspace && ./build.sh"]),
        ))
    });
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    let s = &subjects_of(&v)[0];
    assert_eq!(s["state"], "matched");
    assert_eq!(s["rebuilt_digest"], file.as_str());

    // The same command made nondeterministic by its arguments: the file differs.
    let (code, v, stderr) = Reprod::new().rebuild(&prov(
        vec![subject("hello.txt", &file)],
        json!(["./build.sh", "changed"]),
    ));
    assert_eq!(v["status"], "unreproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 1);
    assert!(orphan_containers().is_empty());
}

/// A Chains SLSA v0.2 PipelineRun of the hello project: `fetch-source` (a git clone whose `commit`
/// result is the material's), `build` (reads a param), `stamp` (reads `build`'s result), `sign` and
/// `show-summary` (sign and report only).
fn pipelinerun(repo: &Repo, subjects: Vec<Value>, extra: &str) -> Value {
    let image = builder_image();
    let script = |body: &str| format!("#!/bin/sh\nset -e\n{body}");
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": subjects,
        "predicate": {
            "builder": {"id": "https://tekton.dev/chains/v2"},
            "buildType": "tekton.dev/v1beta1/PipelineRun",
            "invocation": {"configSource": {}, "parameters": {"EXTRA": extra}},
            "buildConfig": {"tasks": [
                {
                    "name": "sign",
                    "after": ["stamp"],
                    "ref": {"kind": "Task", "name": "cosign-sign"},
                    "invocation": {"parameters": {}},
                    "steps": [{"entryPoint": script("exit 1"), "arguments": null,
                               "environment": {"container": "sign", "image": image}}]
                },
                {
                    "name": "stamp",
                    "after": ["build"],
                    "ref": {"kind": "Task", "name": "stamp"},
                    "invocation": {"parameters": {}},
                    "steps": [{"entryPoint": script(
                        "cd $(workspaces.source.path)\nprintf '%s\\n' '$(tasks.build.results.LAYER)' > out/stamp.txt"
                    ), "arguments": null, "environment": {"container": "stamp", "image": image}}]
                },
                {
                    "name": "fetch-source",
                    "ref": {"kind": "Task", "name": "git-clone"},
                    "invocation": {"parameters": {"url": repo.url, "revision": "main"}},
                    "results": [
                        {"name": "commit", "type": "string", "value": repo.commit},
                        {"name": "url", "type": "string", "value": repo.url}
                    ],
                    "steps": [{"entryPoint": script("git clone \"$PARAM_URL\" /workspace/output && exit 3"),
                               "arguments": null, "environment": {"container": "clone", "image": image}}]
                },
                {
                    "name": "build",
                    "after": ["fetch-source"],
                    "ref": {"kind": "Task", "name": "hello-build"},
                    "invocation": {"parameters": {"EXTRA": extra, "COMMIT": "$(tasks.fetch-source.results.commit)"}},
                    "results": [{"name": "LAYER", "type": "string", "value": "claimed"}],
                    "steps": [{"entryPoint": script(
                        &format!("cd $(workspaces.source.path)\n./build.sh $(params.EXTRA)\n\
                         test '$(tasks.fetch-source.results.commit)' = '{0}'\n\
                         test '$(params.COMMIT)' = '{0}'\n\
                         ls out/hello/blobs/sha256 | head -1 | tr -d '\\n' > $(results.LAYER.path)", repo.commit)
                    ), "arguments": null, "environment": {"container": "build", "image": image}}]
                },
                {
                    "name": "show-summary",
                    "after": ["build"],
                    "ref": {"kind": "Task", "name": "summary"},
                    "invocation": {"parameters": {}},
                    "steps": [{"entryPoint": script("exit 2"), "arguments": null,
                               "environment": {"container": "summary", "image": image}}]
                }
            ]},
            "materials": [{"uri": repo.url, "digest": {"sha1": repo.commit}}]
        }
    })
}

#[test]
fn pipelinerun_tasks_run_in_order_reading_each_others_results() {
    let repo = Repo::hello();
    let [hello, _, file] = repo.reference_build("cd /workspace/source && ./build.sh p1\n");
    // `stamp` writes the first blob name of out/hello (as `build` reported it) into out/stamp.txt.
    let checkout = repo.reference_checkout();
    let mut blobs: Vec<_> = std::fs::read_dir(checkout.join("out/hello/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    blobs.sort();
    let stamp = format!(
        "sha256:{}",
        sha256_hex(format!("{}\n", blobs[0]).as_bytes())
    );
    let subjects = vec![
        subject("registry.example.test/hello", &hello),
        subject("hello.txt", &file),
        subject("stamp.txt", &stamp),
    ];
    let (code, v, stderr) = Reprod::new().rebuild(&pipelinerun(&repo, subjects.clone(), "p1"));
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    // Only the build and stamp tasks ran, in that order; the clone was reprod's checkout, and the sign
    // and summary tasks (which would have failed) were skipped.
    let names: Vec<_> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["build/build", "stamp/stamp"]);
    let tasks = v["tasks"].as_array().expect("the verdict lists the tasks");
    let role = |name: &str| {
        tasks
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {tasks:?}"))
            .clone()
    };
    assert_eq!(role("fetch-source")["role"], "source-fetch");
    assert_eq!(role("fetch-source")["commit"], repo.commit.as_str());
    assert_eq!(role("build")["role"], "run");
    assert_eq!(role("sign")["role"], "skipped");
    assert!(role("sign")["reason"].as_str().unwrap().contains("signs"));
    assert_eq!(role("show-summary")["role"], "skipped");
    // Results are read back per task, as claims.
    assert_eq!(v["claimed_results"]["build.LAYER"], blobs[0].as_str());

    // A subject only a skipped task could have made is not found, and the verdict says why.
    let mut more = subjects.clone();
    more.push(subject("hello.sig", &unbuilt_digest('5')));
    let (_, v, stderr) = Reprod::new().rebuild(&pipelinerun(&repo, more, "p1"));
    assert_eq!(v["status"], "unreproducible", "{v:#}\n{stderr}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("the pipeline's tasks sign, show-summary were skipped, not run"),
        "{detail}"
    );

    // The same pipeline with another parameter: the image and file differ, the stamp follows them.
    let (code, v, stderr) = Reprod::new().rebuild(&pipelinerun(&repo, subjects, "p2"));
    assert_eq!(v["status"], "unreproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 1);
    assert!(orphan_containers().is_empty());
}
