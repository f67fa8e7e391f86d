//! Every row of `corpus/families/EXPECTED.tsv`: the real BuildKit, PipelineRun and generator documents,
//! each concluded exactly as the table says. A row without a check here fails the suite.

mod common;

use std::path::PathBuf;

use reprod::provenance::{
    self, attached, container, BuildKitContext, BuildKitMode, Container, ParseError, Recipe,
    Statement, TaskRole, UnrebuildableReason,
};

fn families(rel: &str) -> PathBuf {
    common::project_root()
        .join("../shared/corpus/families")
        .join(rel)
}

const MAX: usize = reprod::json::DEFAULT_MAX_BYTES;

fn decode(bytes: &[u8]) -> Result<Vec<container::Item>, ParseError> {
    container::decode(bytes, MAX, &container::NoBlobs)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(families(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn statements(bytes: &[u8]) -> Vec<Statement> {
    decode(bytes)
        .unwrap()
        .iter()
        .map(|i| i.statement(MAX).unwrap())
        .collect()
}

fn recipe(rel: &str) -> Recipe {
    let st = statements(&read(rel)).remove(0);
    provenance::normalize(&st).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn parse_error(rel: &str) -> String {
    match decode(&read(rel)) {
        Ok(items) => panic!("{rel}: parsed into {} item(s)", items.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_expected_row_is_checked() {
    let table = std::fs::read_to_string(families("EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    for line in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let file = line.split('\t').next().unwrap();
        let check: fn() = match file {
            "buildkit/cupdate-ghcr-slsa-v0.2-mode-max.json" => buildkit_v02_mode_max,
            "buildkit/zlabjp-ghcr-predicate-only-slsa-v0.2-mode-max-buildkit-0.11.json" => {
                buildkit_predicate_only
            }
            "buildkit/buildkit-docs-example-slsa-v1-mode-max.json" => buildkit_v1_mode_max,
            "buildkit/buildkit-docs-example-slsa-v1-mode-min.json" => buildkit_v1_mode_min,
            "buildkit/buildx-docs-imagetools-inspect-Provenance-slsa-v0.2-mode-min.json" => {
                buildkit_inspect_mode_min
            }
            "buildkit/attestation-storage-doc-example-image-index.json" => {
                buildkit_index_discovery
            }
            "buildkit/attestation-storage-doc-example-attestation-manifest.json" => {
                buildkit_attestation_manifest
            }
            "buildkit/docker-official-images-builds.test.json" => official_images_builds,
            "tekton-pipelinerun/tarilabs-chains-pipelinerun-slsa-v0.2.json" => {
                pipelinerun_v02_real
            }
            "tekton-pipelinerun/chains-e2e-golden-pipeline-output-image.slsa-v0.2.json.tmpl" => {
                pipelinerun_v02_template
            }
            "tekton-pipelinerun/chains-e2e-golden-pipeline-output-image.slsa-v1.0-v2alpha4.json.tmpl" => {
                pipelinerun_v1_template
            }
            "github-attestations/docker-library-meta-scripts-provenance-test-out.json" => {
                official_images_workflow
            }
            "slsa-github-generator-container/zlabjp-generator_container_slsa3-v1.5-dsse.json" => {
                generator_container_dsse
            }
            "slsa-github-generator-container/zlabjp-generator_container_slsa3-v1.5-statement.json" => {
                generator_container_statement
            }
            other => panic!("EXPECTED.tsv row {other:?} has no check in tests/families.rs"),
        };
        check();
        checked += 1;
    }
    assert_eq!(checked, 14, "every row of the table");
}

fn buildkit_v02_mode_max() {
    let r = recipe("buildkit/cupdate-ghcr-slsa-v0.2-mode-max.json");
    assert!(matches!(
        r.build_type,
        provenance::BuildType::BuildKit { .. }
    ));
    let plan = r.buildkit.as_ref().unwrap();
    assert_eq!(plan.mode, BuildKitMode::Max);
    assert_eq!(plan.frontend.as_deref(), Some("dockerfile.v0"));
    assert_eq!(plan.dockerfile.as_deref(), Some("Dockerfile"));
    assert_eq!(plan.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(plan.args["build-arg:CUPDATE_VERSION"], "v0.19.0-6-g2fbefbc");
    // No configSource URI: the source is the vcs metadata of a local context, marked as a hint.
    assert_eq!(
        plan.context,
        BuildKitContext::LocalWithVcs {
            uri: "https://github.com/AlexGustafsson/cupdate".into(),
            revision: "2fbefbc45dd73e49c981e7a59c9b3d65314ed315".into(),
            dirty: false,
        }
    );
    let src = r.source.as_ref().unwrap();
    assert_eq!(src.commit, "2fbefbc45dd73e49c981e7a59c9b3d65314ed315");
    // Every docker-image material pinned by digest; the SBOM scanner is not a build input.
    assert_eq!(plan.materials.len(), 3);
    assert!(plan.materials.iter().all(|m| m
        .digest
        .as_deref()
        .is_some_and(|d| d.starts_with("sha256:") && d.len() == 71)));
    let inputs: Vec<_> = plan
        .materials
        .iter()
        .filter(|m| m.not_an_input.is_none())
        .map(|m| m.uri.as_str())
        .collect();
    assert_eq!(inputs.len(), 2);
    assert!(inputs[0].starts_with("pkg:docker/golang@1.24.1?digest=sha256:c5adecdb"));
    // Complete: rebuildable where a BuildKit builder is configured, and said as such (never as a verdict
    // on the image) where none is.
    assert_eq!(r.check(), Ok(()));
    let bytes = read("buildkit/cupdate-ghcr-slsa-v0.2-mode-max.json");
    let admit = |config: &reprod::config::Config| {
        let admitted = reprod::examine::admit(
            config,
            &bytes,
            &reprod::provenance::container::NoBlobs,
            &Default::default(),
        )
        .unwrap();
        admitted.finding().unrebuildable.clone()
    };
    let without = admit(&reprod::config::Config::default()).unwrap();
    assert_eq!(
        without.reason,
        UnrebuildableReason::NoBuilder("buildkit".into()).to_string()
    );
    assert_eq!(without.reason, "no-builder: buildkit");
    assert!(
        without.detail.contains("[builders.buildkit]"),
        "{without:?}"
    );
    let mut config = reprod::config::Config::default();
    config.builders.buildkit.image = format!("registry.example/buildkit@sha256:{}", "a".repeat(64));
    assert_eq!(admit(&config), None);
}

/// A BuildKit build that mounted a secret cannot be rebuilt without it: said, before anything runs.
#[test]
fn a_buildkit_build_with_secrets_needs_them() {
    let mut st = statements(&read("buildkit/cupdate-ghcr-slsa-v0.2-mode-max.json")).remove(0);
    st.predicate["invocation"]["parameters"]["secrets"] =
        serde_json::json!([{"id": "GIT_AUTH_TOKEN", "optional": false}]);
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(r.secrets, ["secret GIT_AUTH_TOKEN"]);
    let err = r.check().unwrap_err();
    assert_eq!(err.reason, UnrebuildableReason::NeedsSecrets);
    assert!(
        err.detail.contains("secret GIT_AUTH_TOKEN"),
        "{}",
        err.detail
    );
    // The optional git credentials buildx offers every build of a git context authenticate BuildKit's
    // fetch of the context, which a rebuild does itself: not secrets of the build. An optional secret by
    // any other name still is one.
    st.predicate["invocation"]["parameters"]["secrets"] = serde_json::json!([
        {"id": "GIT_AUTH_HEADER", "optional": true},
        {"id": "GIT_AUTH_TOKEN.github.com", "optional": true},
        {"id": "NPM_TOKEN", "optional": true}
    ]);
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(r.secrets, ["secret NPM_TOKEN"]);
}

fn buildkit_predicate_only() {
    let rel = "buildkit/zlabjp-ghcr-predicate-only-slsa-v0.2-mode-max-buildkit-0.11.json";
    let msg = parse_error(rel);
    assert!(msg.contains("no in-toto statement around it"), "{msg}");
    assert!(msg.contains("names no subject"), "{msg}");
    assert!(msg.contains("https://mobyproject.org/buildkit@v1"), "{msg}");
    // The predicate itself is BuildKit's: wrapped in a statement without subjects, it parses, and the
    // recipe says there is nothing to compare.
    let predicate: serde_json::Value = serde_json::from_slice(&read(rel)).unwrap();
    let st = Statement {
        statement_type: "https://in-toto.io/Statement/v0.1".into(),
        predicate_type: provenance::SLSA_V02_PREDICATE.into(),
        subjects: Vec::new(),
        predicate,
    };
    let r = provenance::normalize(&st).unwrap();
    let plan = r.buildkit.as_ref().unwrap();
    assert_eq!(plan.mode, BuildKitMode::Max);
    // BuildKit 0.11 noted the local checkout as `<sha>-dirty`: no commit holds what was built.
    assert!(matches!(
        &plan.context,
        BuildKitContext::LocalWithVcs { dirty: true, revision, .. } if revision.ends_with("-dirty")
    ));
    assert_eq!(plan.materials.len(), 2);
    assert_eq!(
        r.check().unwrap_err().reason,
        UnrebuildableReason::NoSha256Subject
    );
    assert_eq!(
        plan.check().unwrap_err().reason,
        UnrebuildableReason::DirtySource
    );
}

fn buildkit_v1_mode_max() {
    let r = recipe("buildkit/buildkit-docs-example-slsa-v1-mode-max.json");
    let plan = r.buildkit.as_ref().unwrap();
    assert_eq!(plan.mode, BuildKitMode::Max);
    assert_eq!(plan.frontend.as_deref(), Some("dockerfile.v0"));
    assert_eq!(plan.dockerfile.as_deref(), Some("Dockerfile"));
    assert_eq!(plan.platform.as_deref(), Some("linux/amd64"));
    assert!(plan.args.is_empty());
    assert_eq!(plan.materials.len(), 1);
    assert_eq!(
        plan.materials[0].digest.as_deref(),
        Some("sha256:8914eb54f968791faf6a8638949e480fef81e697984fba772b3976835194c6d4")
    );
    // The docs' example built a local directory and recorded no git source for it.
    assert_eq!(plan.context, BuildKitContext::Local);
    let err = r.check().unwrap_err();
    assert_eq!(err.reason, UnrebuildableReason::LocalContext);
    assert_eq!(err.reason.to_string(), "local-context");
}

fn buildkit_v1_mode_min() {
    let r = recipe("buildkit/buildkit-docs-example-slsa-v1-mode-min.json");
    let plan = r.buildkit.as_ref().unwrap();
    assert_eq!(plan.mode, BuildKitMode::Min);
    let err = r.check().unwrap_err();
    assert_eq!(err.reason, UnrebuildableReason::BuildKitModeMin);
    for missing in [
        "externalParameters.request.args",
        "internalParameters.buildConfig",
        "buildkit_completeness.request is false",
    ] {
        assert!(err.detail.contains(missing), "{missing}: {}", err.detail);
    }
    // The v0.2 mode=min statement of the main corpus is refused for the same reason.
    let bytes = std::fs::read(common::corpus(
        "slsa-verifier/cosign-oci-layout-gha_generic_container-v1.10.0/buildkit-provenance-c1944d47.json",
    ))
    .unwrap();
    let st = statements(&bytes).remove(0);
    let err = provenance::normalize(&st).unwrap().check().unwrap_err();
    assert_eq!(err.reason, UnrebuildableReason::BuildKitModeMin);
    assert!(
        err.detail.contains("buildConfig (the LLB definition"),
        "{}",
        err.detail
    );
}

fn buildkit_inspect_mode_min() {
    let msg =
        parse_error("buildkit/buildx-docs-imagetools-inspect-Provenance-slsa-v0.2-mode-min.json");
    assert!(msg.contains("docker buildx imagetools inspect"), "{msg}");
    assert!(msg.contains("names no subject"), "{msg}");
}

fn buildkit_index_discovery() {
    let bytes = read("buildkit/attestation-storage-doc-example-image-index.json");
    let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(attached::is_index(&index));
    let refs = attached::attestation_manifests(&index);
    assert_eq!(refs.len(), 1);
    assert_eq!(
        refs[0].manifest,
        "sha256:02cb9aa7600e73fcf41ee9f0f19cc03122b2d8be43d41ce4b21335118f5dd943"
    );
    assert_eq!(
        refs[0].subject,
        "sha256:23678f31b3b3586c4fb318aecfe64a96a1f0916ba8faf9b2be2abee63fa9e827"
    );
    assert_eq!(refs[0].platform.as_deref(), Some("linux/amd64"));
    // Given as a provenance document, the index is named for what it is, with its attestation manifest.
    let msg = decode(&bytes).unwrap_err().to_string();
    assert!(msg.contains("an OCI image index"), "{msg}");
    assert!(msg.contains("sha256:02cb9aa7600e"), "{msg}");
}

fn buildkit_attestation_manifest() {
    let bytes = read("buildkit/attestation-storage-doc-example-attestation-manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(attached::is_attestation_manifest(&manifest));
    assert_eq!(
        attached::attested(&manifest).as_deref(),
        Some("sha256:23678f31b3b3586c4fb318aecfe64a96a1f0916ba8faf9b2be2abee63fa9e827")
    );
    let layers = attached::attestation_layers(&manifest);
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0].predicate_type.as_deref(),
        Some("https://spdx.dev/Document")
    );
    assert_eq!(layers[0].not_provenance, Some("an SPDX SBOM"));
    // Its only layer is an SBOM: not provenance, and no blob is asked for.
    match decode(&bytes) {
        Err(ParseError::NotProvenance { what, detail }) => {
            assert!(
                what.contains("BuildKit attestation manifest for sha256:23678f31"),
                "{what}"
            );
            assert!(detail.contains("an SPDX SBOM"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

/// An attestation manifest with a provenance layer and an SBOM layer, the blobs beside it: the
/// provenance layer is read (a bare statement: nothing signs BuildKit's layers), the SBOM is not.
#[test]
fn attestation_manifest_layers_are_the_provenance_and_the_sbom_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let statement = read("buildkit/cupdate-ghcr-slsa-v0.2-mode-max.json");
    let sbom = br#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[],"predicate":{}}"#;
    let digest = |b: &[u8]| reprod::oci::sha256_bytes(b);
    for blob in [&statement[..], &sbom[..]] {
        let path = dir.path().join("blobs/sha256").join(&digest(blob)[7..]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, blob).unwrap();
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": attached::ATTESTATION_ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(b"{}"), "size": 2},
        "layers": [
            {"mediaType": "application/vnd.in-toto+json", "digest": digest(sbom), "size": sbom.len(),
             "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}},
            {"mediaType": "application/vnd.in-toto+json", "digest": digest(&statement), "size": statement.len(),
             "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}},
        ],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:29528c15c494f84b8a2f33e0faa6eaa8cb6966824cf2ff95791c234fc07c247a", "size": 1}
    });
    let blobs = container::DirBlobs {
        dir: dir.path().to_path_buf(),
        max_bytes: MAX,
    };
    let items = container::decode(&serde_json::to_vec(&manifest).unwrap(), MAX, &blobs).unwrap();
    assert_eq!(
        items.len(),
        1,
        "the SBOM layer is not a statement to rebuild"
    );
    assert_eq!(items[0].container, Container::BareStatement);
    assert_eq!(items[0].payload, statement, "the layer's exact bytes");
    let r = provenance::normalize(&items[0].statement(MAX).unwrap()).unwrap();
    assert_eq!(r.buildkit.unwrap().mode, BuildKitMode::Max);
}

fn official_images_builds() {
    match decode(&read("buildkit/docker-official-images-builds.test.json")) {
        Err(e @ ParseError::NotProvenance { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with("not provenance: "), "{msg}");
            assert!(
                msg.contains("Docker Official Images build metadata"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
}

fn pipelinerun_v02_real() {
    let r = recipe("tekton-pipelinerun/tarilabs-chains-pipelinerun-slsa-v0.2.json");
    assert_eq!(r.build_type.uri(), "tekton.dev/v1beta1/PipelineRun");
    assert_eq!(r.tasks.len(), 1);
    let t = &r.tasks[0];
    assert_eq!(t.name, "train-and-push");
    assert_eq!(t.task_ref.as_deref(), Some("oml-chains"));
    assert_eq!(t.role, TaskRole::Run);
    assert_eq!(t.params["IMAGE"], "quay.io/mmortari/ml-iris:v1");
    assert_eq!(
        t.claimed_results["IMAGE_DIGEST"],
        "sha256:bf64e877c24670cf517f52df470beafc611840707cf8ee45535cd1d8313784de"
    );
    assert_eq!(r.steps.len(), 1);
    let step = &r.steps[0];
    assert_eq!(step.name, "train-and-push/oml-train-and-push");
    assert_eq!(step.task.as_deref(), Some("train-and-push"));
    // Chains' `oci://` scheme is not part of the reference; the image is pinned.
    assert_eq!(
        step.image,
        "quay.io/mmortari/demo20240704-mltrain-as-oci@sha256:eb8792686df4a9dd6c2c261d226dbffb2e7289780ee91fd4fdeea8ace6706693"
    );
    assert!(reprod_sandbox::PinnedImage::parse(&step.image).is_ok());
    // Its only material is the step image: no git source, so nothing to check out.
    assert_eq!(r.check().unwrap_err().reason, UnrebuildableReason::NoSource);
}

/// Go template placeholders filled the way the Chains e2e test fills them.
fn fill_template(text: &str) -> String {
    let mut out = text.to_string();
    while let Some(start) = out.find("{{range") {
        let end = out[start..].find("{{end}}").unwrap() + start + "{{end}}".len();
        out.replace_range(start..end, "");
    }
    while let Some(start) = out.find("{{") {
        let end = out[start..].find("}}").unwrap() + start + 2;
        out.replace_range(start..end, "2024-01-01T00:00:00Z");
    }
    out
}

fn pipelinerun_v02_template() {
    let rel = "tekton-pipelinerun/chains-e2e-golden-pipeline-output-image.slsa-v0.2.json.tmpl";
    match decode(&read(rel)) {
        Err(ParseError::Template {
            line,
            column,
            placeholder,
            ..
        }) => {
            assert_eq!((line, column), (29, 35));
            assert_eq!(placeholder, "{{index .BuildStartTimes 0}}");
        }
        other => panic!("{other:?}"),
    }
    let msg = parse_error(rel);
    assert!(
        msg.starts_with("line 29, column 35: `{{index .BuildStartTimes 0}}`"),
        "{msg}"
    );
    let filled = fill_template(&String::from_utf8(read(rel)).unwrap());
    let st = statements(filled.as_bytes()).remove(0);
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(r.build_type.uri(), "tekton.dev/v1/PipelineRun");
    assert_eq!(r.tasks.len(), 1);
    assert_eq!(r.tasks[0].name, "buildimage");
    assert_eq!(r.tasks[0].role, TaskRole::Run);
    assert_eq!(r.steps.len(), 1);
    assert_eq!(r.steps[0].name, "buildimage/create-dockerfile");
    assert_eq!(
        r.steps[0].image,
        "distroless.dev/busybox@sha256:186312fcf3f381b5fc1dd80b1afc0d316f3ed39fb4add8ff900d1f0c7c49a92c"
    );
    assert!(r.steps[0]
        .script
        .as_deref()
        .unwrap()
        .contains("tee /tekton/results/IMAGE_DIGEST"));
    let src = r.source.as_ref().unwrap();
    assert_eq!(src.uri, "git+https://my-git-url.git");
}

fn pipelinerun_v1_template() {
    let rel =
        "tekton-pipelinerun/chains-e2e-golden-pipeline-output-image.slsa-v1.0-v2alpha4.json.tmpl";
    let msg = parse_error(rel);
    assert!(msg.contains("is a template placeholder"), "{msg}");
    assert!(
        msg.starts_with("line 88, column 10: `{{range .URIDigest}}`"),
        "{msg}"
    );
    let filled = fill_template(&String::from_utf8(read(rel)).unwrap());
    // As filled, the golden pipeline's one task is inline (taskSpec): a PipelineRun recipe.
    let st = statements(filled.as_bytes()).remove(0);
    let r = provenance::normalize(&st).unwrap();
    assert_eq!(r.tasks.len(), 1);
    assert_eq!(r.steps.len(), 1);
    assert!(r.steps[0]
        .script
        .as_deref()
        .unwrap()
        .contains("tee /tekton/results/IMAGE_URL"));
    // With its task only referenced (the form Chains writes for a pipeline of catalog Tasks), nothing is
    // left to run: unrebuildable, naming the task and its reference.
    let mut v: serde_json::Value = serde_json::from_str(&filled).unwrap();
    let task = v
        .pointer_mut("/predicate/buildDefinition/externalParameters/runSpec/pipelineSpec/tasks/0")
        .unwrap();
    task.as_object_mut().unwrap().remove("taskSpec");
    task["taskRef"] = serde_json::json!({"name": "kaniko-build"});
    let st = Statement::from_json(&v).unwrap();
    let err = provenance::normalize(&st).unwrap_err();
    assert!(matches!(
        err.reason,
        UnrebuildableReason::UnsupportedBuildType(_)
    ));
    assert!(
        err.detail
            .contains("buildimage (taskRef \"kaniko-build\") are only referenced"),
        "{}",
        err.detail
    );
    // A pipeline that is itself only referenced names its reference.
    let spec = v
        .pointer_mut("/predicate/buildDefinition/externalParameters/runSpec")
        .unwrap();
    spec.as_object_mut().unwrap().remove("pipelineSpec");
    spec["pipelineRef"] = serde_json::json!({"name": "build-and-push"});
    let err = provenance::normalize(&Statement::from_json(&v).unwrap()).unwrap_err();
    assert!(
        err.detail
            .contains("only referenced (pipelineRef \"build-and-push\")"),
        "{}",
        err.detail
    );
}

fn official_images_workflow() {
    let bytes = read("github-attestations/docker-library-meta-scripts-provenance-test-out.json");
    let items = decode(&bytes).unwrap();
    assert_eq!(
        items.len(),
        2,
        "one statement per platform, in a JSON array"
    );
    assert!(items
        .iter()
        .all(|i| i.container == Container::StatementList));
    for item in &items {
        // Each item keeps its exact bytes (a slice of the document), never re-serialized.
        let text = std::str::from_utf8(&item.payload).unwrap();
        assert!(std::str::from_utf8(&bytes).unwrap().contains(text));
        let err = provenance::normalize(&item.statement(MAX).unwrap()).unwrap_err();
        assert_eq!(
            err.reason,
            UnrebuildableReason::UnsupportedBuildType(
                "https://actions.github.io/buildtypes/workflow/v1".into()
            )
        );
        assert!(
            err.detail
                .contains("workflow file (.github/workflows/build.yml)"),
            "{}",
            err.detail
        );
        assert!(
            err.detail
                .contains("BuildKit attached provenance of its own")
                && err
                    .detail
                    .contains("attestation manifest whose vnd.docker.reference.digest"),
            "points to the BuildKit record: {}",
            err.detail
        );
    }
}

fn generator_container(rel: &str, container: Container) {
    let items = decode(&read(rel)).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].container, container);
    let err = provenance::normalize(&items[0].statement(MAX).unwrap()).unwrap_err();
    assert_eq!(
        err.reason,
        UnrebuildableReason::UnsupportedBuildType(
            "https://github.com/slsa-framework/slsa-github-generator/container@v1".into()
        )
    );
    assert!(
        err.detail.contains(
            "records the workflow (.github/workflows/slsa-provenance.yml), not its steps: the steps are in \
             the workflow file"
        ),
        "{}",
        err.detail
    );
}

fn generator_container_dsse() {
    generator_container(
        "slsa-github-generator-container/zlabjp-generator_container_slsa3-v1.5-dsse.json",
        Container::DsseEnvelope,
    );
}

fn generator_container_statement() {
    generator_container(
        "slsa-github-generator-container/zlabjp-generator_container_slsa3-v1.5-statement.json",
        Container::BareStatement,
    );
}
