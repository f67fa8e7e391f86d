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
    Unrebuildable, UnrebuildableReason,
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

impl BuildKitPlan {
    /// What keeps this plan from being a complete build request, first problem first.
    pub fn check(&self) -> Result<(), Unrebuildable> {
        if self.mode == BuildKitMode::Min {
            return Err(Unrebuildable::new(
                UnrebuildableReason::BuildKitModeMin,
                format!(
                    "BuildKit's mode=min provenance scrubs the build request, so the recipe is incomplete: \
                     missing {}; rebuild from the mode=max provenance (`--provenance=mode=max`)",
                    self.missing.join(", ")
                ),
            ));
        }
        match &self.context {
            BuildKitContext::Local => Err(Unrebuildable::new(
                UnrebuildableReason::LocalContext,
                "the build's context was a local directory and the provenance records no git source or \
                 revision for it (no configSource, no vcs metadata): nothing says which source was built",
            )),
            BuildKitContext::LocalWithVcs {
                uri,
                revision,
                dirty: true,
            } => Err(Unrebuildable::new(
                UnrebuildableReason::DirtySource,
                format!(
                    "the build's context was a local checkout of {uri} at {revision}: it had uncommitted \
                     changes, so no commit holds the source that was built"
                ),
            )),
            _ => Ok(()),
        }
    }
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
            p.get("materials"),
        ),
        args: string_map(params.get("args")),
        platform: s(p, "/invocation/environment/platform").map(str::to_string),
        materials: materials(p.get("materials")),
        source_date_epoch: None,
        missing,
        context_dir: String::new(),
        dockerfile_dir: String::new(),
    };
    let (context_dir, dockerfile_dir) = directories(
        p.pointer("/invocation/configSource"),
        p.pointer(&format!(
            "/metadata/{}/vcs",
            V02_METADATA.replace('/', "~1")
        )),
    );
    let plan = BuildKitPlan {
        context_dir,
        dockerfile_dir,
        ..plan
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
            def.get("resolvedDependencies"),
        ),
        source_date_epoch: None,
        args,
        platform: s(def, "/internalParameters/builderPlatform").map(str::to_string),
        materials: materials(def.get("resolvedDependencies")),
        missing,
        context_dir: String::new(),
        dockerfile_dir: String::new(),
    };
    let (context_dir, dockerfile_dir) = directories(
        ext.get("configSource"),
        metadata.pointer("/buildkit_metadata/vcs"),
    );
    let plan = BuildKitPlan {
        context_dir,
        dockerfile_dir,
        ..plan
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

/// A git `configSource` (`{uri, digest: {sha1}}`) is the context BuildKit fetched (built from a
/// subdirectory, its `uri` has no digest: the commit is the git material of the same repository);
/// otherwise the `vcs` metadata of a local context (`{source, revision}`) is a hint; otherwise the
/// context is local.
fn context(
    config_source: Option<&Value>,
    vcs: Option<&Value>,
    materials: Option<&Value>,
) -> BuildKitContext {
    // The repository without BuildKit's `#ref:subdir` or `?ref=…&subdir=…` (see `directories`).
    let repository = |uri: &str| uri.split(['#', '?']).next().unwrap_or(uri).to_string();
    if let Some(git) = config_source.and_then(|cs| {
        let uri = repository(cs.get("uri")?.as_str()?);
        if let Some(digest) = cs.get("digest") {
            return git_ref(&uri, digest);
        }
        materials?.as_array()?.iter().find_map(|m| {
            let found = repository(m.get("uri")?.as_str()?);
            (found == uri).then(|| git_ref(&found, m.get("digest")?))?
        })
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

/// Where the context and the Dockerfile's directory were in the source (`""`: its root): a git context's
/// subdirectory (`#ref:subdir`, or `subdir=` in the query newer BuildKit writes) holds both; a local
/// context's `vcs` metadata names each (`localdir:context`, `localdir:dockerfile`).
fn directories(config_source: Option<&Value>, vcs: Option<&Value>) -> (String, String) {
    let clean = |dir: &str| {
        let dir = dir.trim_matches('/');
        let dir = dir.strip_prefix("./").unwrap_or(dir);
        if dir == "." {
            String::new()
        } else {
            dir.to_string()
        }
    };
    if let Some(uri) = config_source
        .and_then(|c| c.get("uri"))
        .and_then(Value::as_str)
    {
        let fragment = uri
            .split_once('#')
            .and_then(|(_, f)| f.split_once(':'))
            .map(|(_, d)| d);
        let query = uri.split_once('?').and_then(|(_, q)| {
            q.split(['&', '#'])
                .find_map(|pair| pair.strip_prefix("subdir="))
        });
        let dir = clean(fragment.or(query).unwrap_or(""));
        return (dir.clone(), dir);
    }
    let local = |key: &str| {
        vcs.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map_or_else(String::new, clean)
    };
    (local("localdir:context"), local("localdir:dockerfile"))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_git_context_subdirectory_or_a_local_context_directory_is_read() {
        let git = |uri: &str| json!({"uri": uri, "digest": {"sha1": "a".repeat(40)}});
        for (uri, dir) in [
            (
                "https://github.com/docker-library/python.git#abc:3.12/bookworm",
                "3.12/bookworm",
            ),
            ("https://example.invalid/r.git?ref=main&subdir=app/", "app"),
            ("git://127.0.0.1/repo.git#main", ""),
            ("https://example.invalid/r.git#main:.", ""),
        ] {
            let found = super::directories(Some(&git(uri)), None);
            assert_eq!(found, (dir.to_string(), dir.to_string()), "{uri}");
            let super::BuildKitContext::Git {
                uri: repository, ..
            } = super::context(Some(&git(uri)), None, None)
            else {
                panic!("{uri} is a git context");
            };
            assert!(!repository.contains(['#', '?']), "{repository}");
        }
        let vcs =
            json!({"localdir:context": "./app", "localdir:dockerfile": "docker/", "revision": "x"});
        assert_eq!(
            super::directories(None, Some(&vcs)),
            ("app".to_string(), "docker".to_string())
        );
        assert_eq!(
            super::directories(None, None),
            (String::new(), String::new())
        );
    }

    /// As BuildKit 0.13 writes a build of `#main:sub`: the configSource has no digest; the git material
    /// of the same repository has the commit.
    #[test]
    fn a_subdirectory_context_takes_its_commit_from_the_git_material() {
        let commit = "e821a516e5349726a438ae1912320fc910e22aac";
        let config_source =
            json!({"uri": "git://127.0.0.1:19418/repo.git#main:sub", "entryPoint": "Dockerfile"});
        let materials = json!([
            {"uri": "pkg:docker/alpine@3?platform=linux%2Famd64", "digest": {"sha256": "b".repeat(64)}},
            {"uri": "git://127.0.0.1:19418/other.git#main", "digest": {"sha1": "c".repeat(40)}},
            {"uri": "git://127.0.0.1:19418/repo.git#main", "digest": {"sha1": commit}}
        ]);
        assert_eq!(
            super::context(Some(&config_source), None, Some(&materials)),
            super::BuildKitContext::Git {
                uri: "git://127.0.0.1:19418/repo.git".into(),
                commit: commit.into()
            }
        );
        assert_eq!(
            super::context(Some(&config_source), None, None),
            super::BuildKitContext::Local
        );
    }
}
