//! The first provenance formats, normalized from the real corpus.

mod common;

use common::corpus;
use reprod::provenance::{self, container, Container, UnrebuildableReason};

/// The first statement of a corpus document (signatures are not this file's concern).
fn load(rel: &str) -> (Container, provenance::Statement) {
    let bytes = std::fs::read(corpus(rel)).unwrap();
    let max = reprod::json::DEFAULT_MAX_BYTES;
    let items = container::decode(&bytes, max, &container::NoBlobs).unwrap();
    (items[0].container.clone(), items[0].statement(max).unwrap())
}

#[test]
fn distroless_seed_chains_provenance() {
    let (c, st) = load("seed/distroless-provenance.json");
    assert_eq!(c, Container::BareStatement);
    assert_eq!(st.statement_type, "distroless-provenance");
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(r.subjects.len(), 30);
    assert_eq!(r.distinct_sha256().len(), 14);
    let src = r.source.as_ref().unwrap();
    assert_eq!(
        src.uri,
        "https://github.com/GoogleContainerTools/distroless"
    );
    assert_eq!(src.commit, "976c1c9bc178ac0371d8888d69893145c3df09f0");
    assert_eq!(r.builder_id.as_deref(), Some("tekton-chains"));
    assert_eq!(r.parameters["MANIFEST_SUBSECTION"], "0");
    assert_eq!(r.steps.len(), 1);
    let step = &r.steps[0];
    assert_eq!(step.name, "provenance");
    assert_eq!(
        step.image,
        "docker.io/library/golang@sha256:cb1a7482cb5cfc52527c5cdea5159419292360087d5249e3fe5472f3477be642"
    );
    let script = step.script.as_deref().unwrap();
    assert!(
        script.contains("go run provenance/provenance.go images 0 > /tekton/results/IMAGES"),
        "Tekton variables resolved: {script}"
    );
    assert!(
        r.check().is_ok(),
        "it has all a rebuild needs: {:?}",
        r.check()
    );
}

#[test]
fn slsa_v02_tekton_build_config_steps() {
    let (c, st) = load("danbev-learning-crypto/tekton-chains-taskrun-slsa-v0.2.dsse.json");
    assert_eq!(c, Container::DsseEnvelope);
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(r.steps.len(), 1);
    assert_eq!(r.steps[0].name, "create-image");
    assert_eq!(
        r.steps[0].image,
        "docker.io/library/busybox@sha256:b5d6fe0712636ceb7430189de28819e195e8966372edfc2d9409d79402a0dc16"
    );
    assert!(r.steps[0]
        .script
        .as_deref()
        .unwrap()
        .starts_with("#!/usr/bin/env sh\n"));
    assert_eq!(
        r.builder_id.as_deref(),
        Some("https://tekton.dev/chains/v2")
    );
    // `subject` is null: there is nothing to compare a rebuild with.
    let err = r.check().unwrap_err();
    assert_eq!(err.reason, UnrebuildableReason::NoSha256Subject);
}

#[test]
fn chains_spec_example_with_pipeline_resources_and_commands() {
    let (_, st) = load("tektoncd-chains/PROVENANCE_SPEC.example.tekton-chains-provenance.json");
    assert_eq!(st.statement_type, "", "empty _type");
    assert_eq!(st.subjects.len(), 1, "a subject object, not an array");
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(r.steps.len(), 3);
    assert_eq!(
        (r.steps[0].script.as_deref(), r.steps[0].command.as_deref()),
        (None, None)
    );
    assert!(r.steps[1]
        .script
        .as_deref()
        .unwrap()
        .contains("cd /workspace/repo\n"));
    assert!(r.steps[1]
        .script
        .as_deref()
        .unwrap()
        .contains("> /tekton/results/IMAGE_URL"));
    assert_eq!(r.steps[2].command.as_deref(), Some("sh"));
    assert!(r.steps[2].args[1].contains("> /tekton/results/IMAGE_DIGEST"));
    assert_eq!(
        r.source.as_ref().unwrap().commit,
        "50c56a48cfb3a5a80fa36ed91c739bdac8381cbe"
    );
    assert!(r.check().is_ok());
}

#[test]
fn families_without_steps_are_unsupported_with_their_uri_and_what_is_missing() {
    for (rel, uri, says) in [
        (
            "slsa-spec/github-actions-workflow-v1-example.json",
            "https://slsa.dev/github-actions-workflow/v1?draft",
            "steps live in the workflow file (.github/workflow/release.yml)",
        ),
        (
            // Its steps would be read from its config, but it built a directory of the source.
            "slsa-spec/gcb-triggered-build-v1-example.json",
            "https://slsa.dev/gcb-triggered-build/v1?draft",
            "ran on the directory \"basic-config\" of the source (sourceToBuild.dir)",
        ),
        (
            "tektoncd-chains/slsa-v2.md.example-pipelinerun-remote-buildconfig.slsa-v1.json",
            "https://tekton.dev/predicate/chains/slsa/v2",
            "pipeline is only referenced (pipelineRef through the \"git\" resolver: pathInRepo \
             cdf/pipelines/ci-pipeline.yaml, revision main, url https://github.com/chuangw6/demos)",
        ),
    ] {
        let (_, st) = load(rel);
        let err = provenance::normalize(&st).unwrap_err();
        match &err.reason {
            UnrebuildableReason::UnsupportedBuildType(got) => assert_eq!(got, uri, "{rel}"),
            other => panic!("{rel}: {other}"),
        }
        assert!(err.detail.contains(says), "{rel}: {}", err.detail);
    }
}

/// Cloud Build v1 records no steps: the recipe names the build config to read them from in the recorded
/// commit, the images the build resolved (which the config's tagged step images are pinned to) and the
/// substitutions, the system's included.
#[test]
fn cloud_build_v1_names_its_config_the_images_it_resolved_and_its_substitutions() {
    let (_, st) = load("slsa-verifier/gcb-v1.0-gcloud-container-github-v1.0-valid.json");
    let r = provenance::normalize(&st).unwrap();
    assert!(r.steps.is_empty());
    let config = r.config_source.as_ref().expect("a config source");
    assert_eq!(config.path, "cloudbuild.yaml");
    assert_eq!(
        config.pinned_images,
        ["gcr.io/cloud-builders/docker@sha256:d048af25a6f8945fa77e3aa679e49a8f8a8011f0050aab0364034e58f445a434"]
    );
    assert_eq!(
        config.substitutions.get("COMMIT_SHA").map(String::as_str),
        Some("2ce3f90facdb51aeb950d5bc641e981be61fdf48")
    );
    let src = r.source.as_ref().unwrap();
    assert_eq!(src.commit, "2ce3f90facdb51aeb950d5bc641e981be61fdf48");
    assert!(
        src.uri.contains("github.com/khalkie/gcb-prod-prov"),
        "{}",
        src.uri
    );
    // Rebuildable as far as the provenance goes: the rest is up to the config in the commit.
    assert!(r.check().is_ok());
    // A config kept in another repository than the source is not what the checkout holds.
    let mut elsewhere = st.clone();
    elsewhere.predicate["buildDefinition"]["externalParameters"]["buildConfigSource"]
        ["repository"] = "git+https://github.com/someone/else".into();
    let err = provenance::normalize(&elsewhere).unwrap_err();
    assert!(
        err.detail.contains("someone/else") && err.detail.contains("not from the source"),
        "{}",
        err.detail
    );
    // The same repository written another way is the same.
    let mut same = st.clone();
    same.predicate["buildDefinition"]["externalParameters"]["buildConfigSource"]["repository"] =
        "https://github.com/khalkie/gcb-prod-prov.git".into();
    assert!(provenance::normalize(&same).is_ok());
    // Its steps, from a config as Cloud Build reads it: tagged images pinned to what was resolved, the
    // substitutions taken, secrets named.
    let yaml = b"steps:\n- name: gcr.io/cloud-builders/docker\n  args: ['build', '-t', 'us-docker.pkg.dev/p/r/app:$SHORT_SHA', '.']\n\
                 - name: gcr.io/cloud-builders/docker:20.10\n  id: tagged\n  args: ['push', '${_REPO}']\n\
                 substitutions:\n  _REPO: default-repo\n";
    let (steps, secrets) =
        reprod::provenance::cloud_build::steps_from_config(yaml, config).unwrap();
    assert!(secrets.is_empty());
    assert_eq!(steps.len(), 2);
    for step in &steps {
        assert_eq!(step.image, config.pinned_images[0], "{step:?}");
    }
    assert_eq!(steps[0].args[2], "us-docker.pkg.dev/p/r/app:2ce3f90");
    assert_eq!(steps[1].name, "tagged");
    assert_eq!(steps[1].args[1], "default-repo");
    // Two resolved images of one repository: which tag was which is not recorded, so neither is pinned.
    let two = reprod::provenance::ConfigSource {
        pinned_images: vec![
            config.pinned_images[0].clone(),
            format!("gcr.io/cloud-builders/docker@sha256:{}", "9".repeat(64)),
        ],
        ..config.clone()
    };
    let (steps, _) = reprod::provenance::cloud_build::steps_from_config(
        b"steps:\n- name: gcr.io/cloud-builders/docker:20.10\n",
        &two,
    )
    .unwrap();
    assert_eq!(steps[0].image, "gcr.io/cloud-builders/docker:20.10");
    let secret = b"steps:\n- name: gcr.io/cloud-builders/docker\n  secretEnv: ['TOKEN']\n";
    let (_, secrets) = reprod::provenance::cloud_build::steps_from_config(secret, config).unwrap();
    assert_eq!(secrets, ["TOKEN (secretEnv of step-0)"]);
    // A billion laughs: aliases nine deep, nine wide.
    let mut bomb = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, c) in "abcdefghi".chars().zip("bcdefghij".chars()) {
        bomb.push_str(&format!(
            "{c}: &{c} [{}]\n",
            vec![format!("*{prev}"); 9].join(", ")
        ));
    }
    // And wide: 60,000 items anchored once, replayed by 40,000 aliases (2.4 billion nodes) in 240 KB.
    let wide = format!(
        "a: &a [{}]\nb: [{}]\n",
        vec!["x"; 60_000].join(","),
        vec!["*a"; 40_000].join(",")
    );
    let started = std::time::Instant::now();
    for (bad, says) in [
        (&b"steps: 3"[..], "no `steps` list"),
        (b"{{{", "not a Cloud Build config"),
        (b"a: &a [*a, *a]", "not a Cloud Build config"),
        (bomb.as_bytes(), "not a Cloud Build config"),
        (wide.as_bytes(), "expands to more than 100000 nodes"),
    ] {
        let e = reprod::provenance::cloud_build::steps_from_config(bad, config).unwrap_err();
        assert!(e.contains(says) && e.contains("cloudbuild.yaml"), "{e}");
    }
    eprintln!("hostile configs refused in {:?}", started.elapsed());
}

#[test]
fn cloud_build_v01_steps_come_from_recipe_arguments() {
    let (_, st) = load("slsa-verifier/gcb-v0.1-unsigned-statement-gcloud-container-github.json");
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(r.steps.len(), 1);
    assert_eq!(r.steps[0].image, "gcr.io/cloud-builders/docker");
    assert_eq!(r.steps[0].args[0], "build");
    let src = r.source.as_ref().unwrap();
    assert_eq!(src.uri, "https://github.com/laurentsimon/gcb-tests");
    assert_eq!(src.commit, "fbbb98765e85ad464302dc5977968104d36e455e");
    // The step image is recorded by tag: a rebuild cannot know what ran.
    assert!(r.check().is_err());
}

#[test]
fn tekton_v1_step_images_are_pinned_from_resolved_dependencies() {
    let (_, st) = load("tektoncd-chains/slsa-v2.md.example-taskrun-inline.slsa-v1.json");
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(
        r.steps[0].image,
        "docker.io/library/busybox@sha256:b5d6fe0712636ceb7430189de28819e195e8966372edfc2d9409d79402a0dc16"
    );
    assert!(r.steps[0]
        .script
        .as_deref()
        .unwrap()
        .contains("tee /tekton/results/IMAGE_URL"));
}

#[test]
fn attestations_that_are_not_provenance_are_named() {
    for (rel, says) in [
        (
            "slsa-verifier/gke-gce-pre.bcid-vsa.jsonl",
            "a SLSA verification summary",
        ),
        (
            "cosign/policy-valid-custom.dsse.json",
            "a cosign custom attestation",
        ),
        (
            "cosign/policy-malformed-custom.dsse.json",
            "without a scheme",
        ),
        ("sigstore-rs/bundle_v03.json", "a cosign signature claim"),
    ] {
        let (_, st) = load(rel);
        let err = provenance::normalize(&st).unwrap_err();
        assert!(
            matches!(err.reason, UnrebuildableReason::NotProvenance(_)),
            "{rel}: {err}"
        );
        assert!(err.detail.contains(says), "{rel}: {}", err.detail);
    }
}

#[test]
fn every_corpus_document_decodes_or_fails_with_a_message() {
    // No document may panic the decoder; each either yields a statement or a precise error.
    let root = corpus("");
    let mut stack = vec![root.clone()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            seen += 1;
            let bytes = std::fs::read(&p).unwrap();
            if let Err(err) =
                container::decode(&bytes, reprod::json::DEFAULT_MAX_BYTES, &container::NoBlobs)
            {
                assert!(!err.to_string().is_empty(), "{}", p.display());
            }
        }
    }
    assert!(seen > 50, "corpus read: {seen} files");
}
