//! SLSA provenance v0.1, v1 (and its drafts), in-toto Provenance v0.1, and the predicates that are
//! attestations but not provenance. Each build family either yields a [`Recipe`] or says, in one
//! sentence, what a rebuild would need that the provenance does not carry.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::str_at as s;

use super::tekton::{self, git_material, git_ref};
use super::{BuildType, Recipe, Statement, Step, Subject, Unrebuildable, UnrebuildableReason};

/// Predicate types of attestations that are not build provenance, with what they are.
const NOT_PROVENANCE: &[(&str, &str)] = &[
    (
        "https://slsa.dev/verification_summary/",
        "a SLSA verification summary (VSA)",
    ),
    (
        "https://sigstore.dev/cosign/sign/",
        "a cosign signature claim",
    ),
    (
        "https://github.com/npm/attestation/tree/main/specs/publish/",
        "an npm publish attestation",
    ),
    (
        "https://cosign.sigstore.dev/attestation/vuln/",
        "a cosign vulnerability scan",
    ),
    (
        "https://cosign.sigstore.dev/attestation/",
        "a cosign custom attestation",
    ),
    (
        "cosign.sigstore.dev/attestation/",
        "a cosign custom attestation (predicateType without a scheme)",
    ),
    ("https://spdx.dev/Document", "an SPDX SBOM"),
    ("https://cyclonedx.org/bom", "a CycloneDX SBOM"),
    (
        "https://in-toto.io/attestation/",
        "an in-toto attestation of another kind",
    ),
];

/// `Some(description)` when the predicate type is a known non-provenance attestation.
pub fn not_provenance(predicate_type: &str) -> Option<&'static str> {
    NOT_PROVENANCE
        .iter()
        .find(|(prefix, _)| predicate_type.starts_with(prefix))
        .map(|(_, what)| *what)
}

fn unsupported(uri: &str, why: impl Into<String>) -> Unrebuildable {
    Unrebuildable::new(
        UnrebuildableReason::UnsupportedBuildType(uri.to_string()),
        why,
    )
}

/// SLSA v0.1 and in-toto Provenance v0.1: `recipe.type`, `materials`, and for Cloud Build the steps in
/// `recipe.arguments.steps`.
pub fn from_v01(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    let p = &statement.predicate;
    let recipe_type = s(p, "/recipe/type").unwrap_or_default();
    let builder_id = s(p, "/builder/id").map(str::to_string);
    if recipe_type.starts_with("https://cloudbuild.googleapis.com/") {
        return Ok(super::cloud_build::from_v01(
            statement,
            recipe_type,
            builder_id,
        ));
    }
    if tekton::is_tekton_build_type(recipe_type) {
        return Ok(Recipe::of(
            statement,
            BuildType::Tekton {
                uri: recipe_type.to_string(),
            },
            builder_id,
            git_material(p.get("materials")),
            Vec::new(),
            BTreeMap::new(),
        ));
    }
    Err(unsupported(
        if recipe_type.is_empty() {
            &statement.predicate_type
        } else {
            recipe_type
        },
        "this v0.1 recipe type records no steps reprod can run",
    ))
}

/// SLSA v0.2 build types other than Tekton's.
pub fn from_v02_other(statement: &Statement, build_type: &str) -> Result<Recipe, Unrebuildable> {
    let why = if build_type.starts_with("https://github.com/slsa-framework/slsa-github-generator/")
    {
        format!(
            "the SLSA GitHub generator's v0.2 provenance records the workflow ({}), not its steps: the steps \
             are in the workflow file at the recorded commit, and rebuilding needs a GitHub Actions runner{}",
            s(&statement.predicate, "/invocation/configSource/entryPoint").unwrap_or("its path not recorded"),
            buildkit_pointer(statement)
        )
    } else {
        "of SLSA v0.2 provenance, reprod reads only Tekton build types (which it rebuilds) and BuildKit's (which it plans)".to_string()
    };
    Err(unsupported(
        if build_type.is_empty() {
            &statement.predicate_type
        } else {
            build_type
        },
        why,
    ))
}

/// SLSA v1 and its drafts, and statements whose predicate type is empty but whose predicate is a
/// v1-draft build definition.
pub fn from_v1(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    let p = &statement.predicate;
    let build_type = s(p, "/buildDefinition/buildType")
        .or_else(|| s(p, "/buildType"))
        .unwrap_or_default();
    let ext = p
        .pointer("/buildDefinition/externalParameters")
        .or_else(|| p.get("externalParameters"))
        .unwrap_or(&Value::Null);
    let deps = p
        .pointer("/buildDefinition/resolvedDependencies")
        .unwrap_or(&Value::Null);
    let builder_id = s(p, "/runDetails/builder/id").map(str::to_string);
    match build_type {
        t if t.starts_with("https://tekton.dev/") => tekton_v1(statement, t, ext, deps, builder_id),
        t if super::buildkit::is_buildkit_build_type(t) => super::buildkit::from_v1(statement, t),
        t if t.starts_with("https://slsa.dev/container-based-build/") => container_based(statement, t, ext, builder_id),
        t if t.starts_with("https://cloud.google.com/build/gcb-buildtypes/")
            || t.starts_with("https://slsa.dev/gcb-triggered-build/") =>
        {
            let internal = p
                .pointer("/buildDefinition/internalParameters")
                .unwrap_or(&Value::Null);
            super::cloud_build::from_v1(statement, t, ext, internal, deps, builder_id)
        }
        t if t.starts_with("https://slsa-framework.github.io/github-actions-buildtypes/workflow/")
            || t.starts_with("https://actions.github.io/buildtypes/workflow/")
            || t.starts_with("https://slsa.dev/github-actions-workflow/")
            || t.starts_with("https://github.com/slsa-framework/slsa-github-generator/") =>
        {
            Err(unsupported(
                t,
                format!(
                    "a GitHub workflow's steps live in the workflow file ({}), not in the provenance; rebuilding \
                     needs that file at the recorded commit and a GitHub Actions runner{}",
                    s(ext, "/workflow/path")
                        .or_else(|| s(ext, "/workflowPath/value"))
                        .unwrap_or("the workflow"),
                    buildkit_pointer(statement)
                ),
            ))
        }
        "" => Err(unsupported(&statement.predicate_type, "the provenance names no build type")),
        t => Err(unsupported(t, "this SLSA v1 build type is not one reprod can turn into steps yet")),
    }
}

/// For a workflow that built container images: where the rebuildable record of the same image is.
fn buildkit_pointer(statement: &Statement) -> String {
    let images: Vec<String> = statement
        .subjects
        .iter()
        .filter(|s| s.name.starts_with("pkg:docker/"))
        .filter_map(Subject::sha256)
        .fold(Vec::new(), |mut seen, d| {
            if !seen.contains(&d) {
                seen.push(d);
            }
            seen
        });
    if images.is_empty() {
        return String::new();
    }
    format!(
        ". If the workflow built the image ({}) with BuildKit (as Docker Official Images' does), BuildKit \
         attached provenance of its own, which records the Dockerfile build, to the same image index: the \
         attestation manifest whose vnd.docker.reference.digest names this manifest. That record is the \
         rebuildable one",
        images.join(", ")
    )
}

/// Tekton Chains' SLSA v1 (`slsa/v2alpha*`): a TaskRun's inline `taskSpec.steps`; a PipelineRun names a
/// remote pipeline whose tasks are not in the provenance.
fn tekton_v1(
    statement: &Statement,
    build_type: &str,
    ext: &Value,
    deps: &Value,
    builder_id: Option<String>,
) -> Result<Recipe, Unrebuildable> {
    let run_spec = ext.get("runSpec").unwrap_or(&Value::Null);
    let parameters = tekton::parameters(run_spec.get("params").map(params_list).as_ref());
    let source = match deps {
        Value::Array(items) => items
            .iter()
            .find_map(|d| git_ref(d.get("uri")?.as_str()?, d.get("digest")?)),
        _ => None,
    };
    let steps = match run_spec.pointer("/taskSpec/steps") {
        Some(Value::Array(steps)) => steps
            .iter()
            .enumerate()
            .map(|(i, st)| tekton_v1_step(i, st, deps, &parameters))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    Ok(Recipe::of(
        statement,
        BuildType::Tekton {
            uri: build_type.to_string(),
        },
        builder_id,
        source,
        steps,
        parameters,
    ))
}

/// `[{name, value}]` → `{name: value}` for [`tekton::parameters`].
pub(super) fn params_list(v: &Value) -> Value {
    let mut map = serde_json::Map::new();
    if let Value::Array(items) = v {
        for item in items {
            if let (Some(k), Some(val)) =
                (item.get("name").and_then(Value::as_str), item.get("value"))
            {
                map.insert(k.to_string(), val.clone());
            }
        }
    }
    Value::Object(map)
}

fn tekton_v1_step(
    index: usize,
    v: &Value,
    deps: &Value,
    params: &BTreeMap<String, String>,
) -> Result<Step, Unrebuildable> {
    tekton_v1_step_in(index, v, deps, params, None)
}

/// A Kubernetes-container step of Chains' v1 forms; in a pipeline task (`task`), `$(tasks.X.results.Y)`
/// is left for the rebuild.
pub(super) fn tekton_v1_step_in(
    index: usize,
    v: &Value,
    deps: &Value,
    params: &BTreeMap<String, String>,
    task: Option<&str>,
) -> Result<Step, Unrebuildable> {
    let name = s(v, "/name").map_or_else(|| format!("step-{index}"), str::to_string);
    let resolve = |text: &str| {
        tekton::substitute_keeping(text, params, task.is_some()).map_err(|var| {
            Unrebuildable::new(
                UnrebuildableReason::UnresolvedVariable,
                format!("step {name:?} uses $({var}), which the provenance does not define"),
            )
        })
    };
    let image = s(v, "/image").unwrap_or_default();
    let strings = |key: &str| -> Result<Vec<String>, Unrebuildable> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(&resolve).collect())
            .unwrap_or(Ok(Vec::new()))
    };
    let command = strings("command")?;
    let mut args = strings("args")?;
    let command = match command.split_first() {
        Some((first, rest)) => {
            let mut all = rest.to_vec();
            all.append(&mut args);
            args = all;
            Some(first.clone())
        }
        None => None,
    };
    Ok(Step {
        name: name.clone(),
        image: pin_from_dependencies(image, deps),
        script: s(v, "/script").map(resolve).transpose()?,
        command,
        args,
        env: v
            .get("env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        Some((
                            e.get("name")?.as_str()?.to_string(),
                            e.get("value")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        working_dir: s(v, "/workingDir").map(str::to_string),
        task: task.map(str::to_string),
    })
}

/// Chains records a step's unpinned image (`busybox`) and, in `resolvedDependencies`, what it resolved to
/// (`docker.io/library/busybox` + sha256). Joins the two; leaves the image as is when nothing matches.
fn pin_from_dependencies(image: &str, deps: &Value) -> String {
    if image.contains("@sha256:") {
        return image.to_string();
    }
    let canonical = canonical_image_name(image);
    if let Value::Array(items) = deps {
        for d in items {
            let (Some(uri), Some(hex)) = (
                d.get("uri").and_then(Value::as_str),
                d.pointer("/digest/sha256").and_then(Value::as_str),
            ) else {
                continue;
            };
            let uri = uri.strip_prefix("oci://").unwrap_or(uri);
            if canonical_image_name(uri) == canonical {
                return format!("{}@sha256:{hex}", uri.split('@').next().unwrap_or(uri));
            }
        }
    }
    image.to_string()
}

/// `busybox` → `docker.io/library/busybox`, tags dropped, for comparing names.
fn canonical_image_name(name: &str) -> String {
    let name = name.split('@').next().unwrap_or(name);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_registry, name.contains('/')) {
        (true, _) => name.to_string(),
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    }
}

/// The SLSA container-based builder: `builderImage`, `source` and `buildConfig.Command` (v1), or the
/// draft's `artifacts.builderImage`, `artifacts.source` and a JSON-encoded `values.command`.
fn container_based(
    statement: &Statement,
    build_type: &str,
    ext: &Value,
    builder_id: Option<String>,
) -> Result<Recipe, Unrebuildable> {
    let artifact = |name: &str| {
        ext.get(name)
            .or_else(|| ext.pointer(&format!("/artifacts/{name}")))
    };
    let image = artifact("builderImage").and_then(|img| {
        let uri = img.get("uri")?.as_str()?;
        Some(
            match img.pointer("/digest/sha256").and_then(Value::as_str) {
                Some(hex) if !uri.contains("@sha256:") => format!("{uri}@sha256:{hex}"),
                _ => uri.to_string(),
            },
        )
    });
    let source =
        artifact("source").and_then(|src| git_ref(src.get("uri")?.as_str()?, src.get("digest")?));
    let command: Vec<String> = match ext.pointer("/buildConfig/Command") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => s(ext, "/values/command")
            .and_then(|text| serde_json::from_str::<Vec<String>>(text).ok())
            .unwrap_or_default(),
    };
    let steps = match (image, command.split_first()) {
        (Some(image), Some((first, rest))) => vec![Step {
            name: "build".into(),
            image,
            script: None,
            command: Some(first.clone()),
            args: rest.to_vec(),
            env: Vec::new(),
            working_dir: None,
            task: None,
        }],
        _ => Vec::new(),
    };
    Ok(Recipe::of(
        statement,
        BuildType::ContainerBased {
            uri: build_type.to_string(),
        },
        builder_id,
        source,
        steps,
        BTreeMap::new(),
    ))
}

#[cfg(test)]
mod tests {
    use super::canonical_image_name as c;

    #[test]
    fn image_names_canonicalize_like_docker() {
        assert_eq!(c("busybox"), "docker.io/library/busybox");
        assert_eq!(c("busybox:1.36"), "docker.io/library/busybox");
        assert_eq!(c("org/app"), "docker.io/org/app");
        assert_eq!(c("gcr.io/x/y:v1"), "gcr.io/x/y");
        assert_eq!(c("127.0.0.1:5000/x@sha256:ab"), "127.0.0.1:5000/x");
    }
}
