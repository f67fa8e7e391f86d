//! BuildKit provenance (SLSA v0.2 `https://mobyproject.org/buildkit@v1` and SLSA v1 with BuildKit's
//! build type) → a [`BuildKitPlan`]: the context and commit, the frontend and its recorded options, the
//! images the build resolved, and whether the provenance is mode=max (the request recorded) or mode=min
//! (scrubbed). A BuildKit build is a frontend run over a context, not a list of steps, so the recipe has
//! no steps; the plan is what a BuildKit builder would be given.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::{str_at as s, string_map};

use super::tekton::git_ref;
use super::{
    BuildKitContext, BuildKitMode, BuildKitPlan, BuildType, Material, Recipe, Statement,
    Unrebuildable,
};

/// SLSA v0.2 `buildType` of BuildKit.
pub const V02_BUILD_TYPE: &str = "https://mobyproject.org/buildkit@v1";
/// SLSA v1 `buildType` of BuildKit.
pub const V1_BUILD_TYPE: &str =
    "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md";
/// The key of BuildKit's own metadata in a v0.2 predicate's `metadata`.
const V02_METADATA: &str = "https://mobyproject.org/buildkit@v1#metadata";
/// The image BuildKit runs to make SBOMs: a material of the attestation, not of the build.
const SBOM_SCANNER: &str = "pkg:docker/docker/buildkit-syft-scanner";

/// True for the build types BuildKit writes.
pub fn is_buildkit_build_type(build_type: &str) -> bool {
    build_type.starts_with(V02_BUILD_TYPE)
        || build_type == V1_BUILD_TYPE
        || build_type.starts_with("https://mobyproject.org/buildkit")
}

/// SLSA v0.2: `invocation.configSource`, `invocation.parameters` (frontend, args, locals, secrets, ssh),
/// `invocation.environment.platform`, `materials`, `buildConfig` (mode=max only) and BuildKit's
/// metadata (`vcs`).
pub fn from_v02(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    let p = &statement.predicate;
    let params = p.pointer("/invocation/parameters").unwrap_or(&Value::Null);
    let mode = if p.get("buildConfig").is_some() {
        BuildKitMode::Max
    } else {
        BuildKitMode::Min
    };
    let mut missing = Vec::new();
    if mode == BuildKitMode::Min {
        if params.get("args").is_none() {
            missing.push(
                "invocation.parameters.args (the frontend's options and build arguments)".into(),
            );
        }
        missing.push("buildConfig (the LLB definition of the build)".into());
        missing.push(format!(
            "metadata.\"{V02_METADATA}\".source (where each step is in the Dockerfile)"
        ));
    }
    let plan = BuildKitPlan {
        mode,
        frontend: s(params, "/frontend").map(str::to_string),
        dockerfile: s(p, "/invocation/configSource/entryPoint").map(str::to_string),
        context: context(
            p.pointer("/invocation/configSource"),
            p.pointer(&format!(
                "/metadata/{}/vcs",
                V02_METADATA.replace('/', "~1")
            )),
        ),
        args: string_map(params.get("args")),
        platform: s(p, "/invocation/environment/platform").map(str::to_string),
        materials: materials(p.get("materials")),
        source_date_epoch: None,
        missing,
    };
    Ok(recipe(
        statement,
        V02_BUILD_TYPE,
        s(p, "/builder/id").map(str::to_string),
        plan,
        secrets(params),
    ))
}

/// SLSA v1: `buildDefinition.externalParameters` (configSource, request), `internalParameters`
/// (builderPlatform, buildConfig in mode=max), `resolvedDependencies`, and `runDetails.metadata`
/// (`buildkit_completeness`, `buildkit_metadata.vcs`).
pub fn from_v1(statement: &Statement, build_type: &str) -> Result<Recipe, Unrebuildable> {
    let p = &statement.predicate;
    let def = p.get("buildDefinition").unwrap_or(&Value::Null);
    let ext = def.get("externalParameters").unwrap_or(&Value::Null);
    let request = ext.get("request").unwrap_or(&Value::Null);
    let metadata = p.pointer("/runDetails/metadata").unwrap_or(&Value::Null);
    let request_complete = metadata
        .pointer("/buildkit_completeness/request")
        .and_then(Value::as_bool);
    let has_build_config = def.pointer("/internalParameters/buildConfig").is_some();
    let mode = if has_build_config && request_complete != Some(false) {
        BuildKitMode::Max
    } else {
        BuildKitMode::Min
    };
    let mut missing = Vec::new();
    if mode == BuildKitMode::Min {
        missing.push(
            "buildDefinition.externalParameters.request.args (the frontend's options and build arguments; \
             runDetails.metadata.buildkit_completeness.request is false)"
                .to_string(),
        );
        if !has_build_config {
            missing.push(
                "buildDefinition.internalParameters.buildConfig (the LLB definition of the build)"
                    .into(),
            );
        }
    }
    let args = string_map(request.get("args"));
    let plan = BuildKitPlan {
        mode,
        frontend: s(request, "/frontend").map(str::to_string),
        dockerfile: s(ext, "/configSource/path").map(str::to_string),
        context: context(
            ext.get("configSource"),
            metadata.pointer("/buildkit_metadata/vcs"),
        ),
        source_date_epoch: None,
        args,
        platform: s(def, "/internalParameters/builderPlatform").map(str::to_string),
        materials: materials(def.get("resolvedDependencies")),
        missing,
    };
    Ok(recipe(
        statement,
        build_type,
        s(p, "/runDetails/builder/id").map(str::to_string),
        plan,
        secrets(request),
    ))
}

fn recipe(
    statement: &Statement,
    uri: &str,
    builder_id: Option<String>,
    mut plan: BuildKitPlan,
    secrets: Vec<String>,
) -> Recipe {
    plan.source_date_epoch = plan.args.get("build-arg:SOURCE_DATE_EPOCH").cloned();
    let source = match &plan.context {
        BuildKitContext::Git { uri, commit } => Some(super::SourceRef {
            uri: uri.clone(),
            commit: commit.clone(),
        }),
        BuildKitContext::LocalWithVcs {
            uri,
            revision,
            dirty: false,
        } => Some(super::SourceRef {
            uri: uri.clone(),
            commit: revision.clone(),
        }),
        _ => None,
    };
    Recipe {
        buildkit: Some(plan),
        secrets,
        ..Recipe::of(
            statement,
            BuildType::BuildKit {
                uri: uri.to_string(),
            },
            builder_id,
            source,
            Vec::new(),
            BTreeMap::new(),
        )
    }
}

/// A git `configSource` (`{uri, digest: {sha1}}`) is the context BuildKit fetched; otherwise the `vcs`
/// metadata of a local context (`{source, revision}`) is a hint; otherwise the context is local.
fn context(config_source: Option<&Value>, vcs: Option<&Value>) -> BuildKitContext {
    if let Some(git) = config_source.and_then(|cs| {
        let uri = cs.get("uri")?.as_str()?;
        git_ref(uri.split('#').next().unwrap_or(uri), cs.get("digest")?)
    }) {
        return BuildKitContext::Git {
            uri: git.uri,
            commit: git.commit,
        };
    }
    let hint = vcs.and_then(|v| {
        let uri = v.get("source")?.as_str()?.to_string();
        let revision = v.get("revision")?.as_str()?.to_ascii_lowercase();
        Some((uri, revision))
    });
    match hint {
        Some((uri, revision)) => {
            let dirty = revision.ends_with("-dirty");
            BuildKitContext::LocalWithVcs {
                uri,
                revision,
                dirty,
            }
        }
        None => BuildKitContext::Local,
    }
}

/// `materials` / `resolvedDependencies`: each image with its digest; the SBOM scanner is marked as not
/// an input of the build.
fn materials(list: Option<&Value>) -> Vec<Material> {
    let Some(Value::Array(items)) = list else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|m| {
            let uri = m.get("uri")?.as_str()?.to_string();
            let digest = m
                .pointer("/digest/sha256")
                .and_then(Value::as_str)
                .map(|h| format!("sha256:{}", h.to_ascii_lowercase()));
            let not_an_input = uri.starts_with(SBOM_SCANNER).then(|| {
                "BuildKit's SBOM scanner: it ran for the attestation, not for the build".into()
            });
            Some(Material {
                uri,
                digest,
                not_an_input,
            })
        })
        .collect()
}

/// Secret and SSH ids the request mounted (values are never recorded). The optional `GIT_AUTH_TOKEN` and
/// `GIT_AUTH_HEADER` (per host: `GIT_AUTH_TOKEN.<host>`) that buildx offers every build of a git context are
/// left out: they authenticate BuildKit's fetch of the context, which a rebuild does itself.
fn secrets(request: &Value) -> Vec<String> {
    let ids = |key: &str, what: &str| -> Vec<String> {
        request
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|s| !(key == "secrets" && is_git_context_auth(s)))
                    .filter_map(|s| s.get("id").and_then(Value::as_str))
                    .map(|id| format!("{what} {id}"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = ids("secrets", "secret");
    out.extend(ids("ssh", "ssh"));
    out
}

/// buildx's own optional secret for fetching a git context.
fn is_git_context_auth(secret: &Value) -> bool {
    let optional = secret.get("optional").and_then(Value::as_bool) == Some(true);
    let id = secret.get("id").and_then(Value::as_str).unwrap_or("");
    let base = id.split_once('.').map_or(id, |(base, _)| base);
    optional && matches!(base, "GIT_AUTH_TOKEN" | "GIT_AUTH_HEADER")
}
