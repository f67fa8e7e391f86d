//! Tekton provenance: Chains' original format (`recipe.steps`) and SLSA v0.2 (`buildConfig.steps`).
//!
//! Both record each step as `{entryPoint, arguments, environment: {container, image}}`. Chains records
//! scripts and commands *before* Tekton's variable substitution (the distroless seed still says
//! `$(results.IMAGES.path)`), so the variables are resolved here, with Tekton's documented paths and the
//! recorded parameters. A Tekton variable the provenance does not define makes the recipe unrebuildable
//! rather than a guess.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{BuildType, Recipe, SourceRef, Statement, Step, Unrebuildable, UnrebuildableReason};

/// Where Tekton mounts a workspace named `name`.
pub const WORKSPACE_ROOT: &str = "/workspace";
/// Where Tekton steps write results.
pub const RESULTS_DIR: &str = "/tekton/results";
/// `$HOME` of Tekton steps.
pub const HOME_DIR: &str = "/tekton/home";
/// Where Tekton puts step scripts.
pub const SCRIPTS_DIR: &str = "/tekton/scripts";
/// The workspace the source is checked out into.
pub const SOURCE_WORKSPACE: &str = "source";

/// True for SLSA `buildType`s that Tekton Chains writes (`tekton.dev/v1beta1/TaskRun`, `https://tekton.dev/...`).
pub fn is_tekton_build_type(build_type: &str) -> bool {
    build_type.starts_with("tekton.dev/") || build_type.starts_with("https://tekton.dev/")
}

/// Chains' original format (`https://tekton.dev/chains/provenance`).
pub fn from_chains_provenance(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    let p = &statement.predicate;
    let invocation = p.get("invocation").unwrap_or(&Value::Null);
    let parameters = parameters(invocation.get("parameters"));
    let source = git_material(p.get("materials")).or_else(|| {
        // Chains also records the commit as parameters when the pipeline passes them.
        Some(SourceRef {
            uri: parameters.get("CHAINS-GIT_URL")?.clone(),
            commit: parameters.get("CHAINS-GIT_COMMIT")?.clone(),
        })
    });
    let uri = invocation
        .get("recipe_uri")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(super::TEKTON_CHAINS_PREDICATE);
    recipe(
        statement,
        uri,
        str_at(invocation, "builder.id"),
        source,
        p.pointer("/recipe/steps"),
        parameters,
    )
}

/// SLSA v0.2 with a Tekton `buildType`.
pub fn from_slsa_v02(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    let p = &statement.predicate;
    let parameters = parameters(p.pointer("/invocation/parameters"));
    let source = v02_source(p);
    let build_type = str_at(p, "buildType").unwrap_or_default();
    recipe(
        statement,
        &build_type,
        p.pointer("/builder/id")
            .and_then(Value::as_str)
            .map(str::to_string),
        source,
        p.pointer("/buildConfig/steps"),
        parameters,
    )
}

/// The source of a SLSA v0.2 Tekton predicate: a git material, else a git `configSource`.
pub(super) fn v02_source(p: &Value) -> Option<SourceRef> {
    git_material(p.get("materials")).or_else(|| {
        let cs = p.pointer("/invocation/configSource")?;
        git_ref(cs.get("uri")?.as_str()?, cs.get("digest")?)
    })
}

fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn recipe(
    statement: &Statement,
    build_type_uri: &str,
    builder_id: Option<String>,
    source: Option<SourceRef>,
    steps: Option<&Value>,
    parameters: BTreeMap<String, String>,
) -> Result<Recipe, Unrebuildable> {
    let steps = match steps {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, s)| step(i, s, &parameters))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    Ok(Recipe::of(
        statement,
        BuildType::Tekton {
            uri: build_type_uri.to_string(),
        },
        builder_id,
        source,
        steps,
        parameters,
    ))
}

pub(super) fn step(
    index: usize,
    value: &Value,
    params: &BTreeMap<String, String>,
) -> Result<Step, Unrebuildable> {
    step_in(index, value, params, None)
}

/// A recorded step; in a pipeline (`task` is the task's name) `$(tasks.X.results.Y)` is left for the
/// rebuild to resolve from what task X wrote.
pub(super) fn step_in(
    index: usize,
    value: &Value,
    params: &BTreeMap<String, String>,
    task: Option<&str>,
) -> Result<Step, Unrebuildable> {
    let name = value
        .pointer("/environment/container")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("step-{index}"), str::to_string);
    // Chains writes step images as `oci://NAME@sha256:…` URIs; the reference is what follows the scheme.
    let image = value
        .pointer("/environment/image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let image = image.strip_prefix("oci://").unwrap_or(image).to_string();
    let resolve = |text: &str| {
        substitute_keeping(text, params, task.is_some()).map_err(|var| {
            Unrebuildable::new(
                UnrebuildableReason::UnresolvedVariable,
                format!("step {name:?} uses $({var}), which the provenance does not define"),
            )
        })
    };
    let entry = value
        .get("entryPoint")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (script, command) = if entry.starts_with("#!") {
        (Some(resolve(entry)?), None)
    } else if entry.is_empty() {
        (None, None)
    } else {
        (None, Some(resolve(entry)?))
    };
    let args = match value.get("arguments") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => resolve(s),
                other => Ok(other.to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok(Step {
        name,
        image,
        script,
        command,
        args,
        env: Vec::new(),
        working_dir: None,
        task: task.map(str::to_string),
    })
}

/// Recorded parameters: Chains writes a list of `NAME={string VALUE []}` (Go's print of an ArrayOrString),
/// SLSA v0.2 a map.
pub(super) fn parameters(value: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match value {
        Some(Value::Array(items)) => {
            for item in items.iter().filter_map(Value::as_str) {
                if let Some((name, rest)) = item.split_once('=') {
                    let value = rest
                        .strip_prefix("{string ")
                        .and_then(|r| r.strip_suffix(" []}").or_else(|| r.strip_suffix("}")))
                        .unwrap_or(rest);
                    out.insert(name.to_string(), value.to_string());
                }
            }
        }
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if let Value::String(s) = v {
                    out.insert(k.clone(), s.clone());
                }
            }
        }
        _ => {}
    }
    out
}

/// The first material that names a git commit.
pub(super) fn git_material(materials: Option<&Value>) -> Option<SourceRef> {
    let Value::Array(items) = materials? else {
        return None;
    };
    items
        .iter()
        .find_map(|m| git_ref(m.get("uri")?.as_str()?, m.get("digest")?))
}

pub(super) fn git_ref(uri: &str, digest: &Value) -> Option<SourceRef> {
    if uri.starts_with("oci://") || uri.starts_with("pkg:") {
        return None;
    }
    let commit = ["sha1", "revision", "gitCommit", "git_commit"]
        .iter()
        .find_map(|k| digest.get(*k)?.as_str())?;
    Some(SourceRef {
        uri: uri.to_string(),
        commit: commit.to_ascii_lowercase(),
    })
}

/// Replaces Tekton variables (`$(params.x)`, `$(results.x.path)`, `$(workspaces.x.path)`, ...).
/// Shell command substitutions such as `$(date)` are left alone. Returns the unresolved variable on failure.
pub fn substitute(text: &str, params: &BTreeMap<String, String>) -> Result<String, String> {
    substitute_keeping(text, params, false)
}

/// [`substitute`], leaving `$(tasks.X.results.Y)` in place when `keep_task_results` (a pipeline's
/// steps: those are what an earlier task wrote, known only when it has run).
pub fn substitute_keeping(
    text: &str,
    params: &BTreeMap<String, String>,
    keep_task_results: bool,
) -> Result<String, String> {
    const TEKTON_PREFIXES: &[&str] = &[
        "params",
        "inputs.",
        "outputs.",
        "results.",
        "workspaces.",
        "context.",
        "steps.",
        "tasks.",
    ];
    scan_variables(text, |var| {
        if !TEKTON_PREFIXES.iter().any(|p| var.starts_with(p)) || var.contains(char::is_whitespace)
        {
            return Ok(Found::NotVariable);
        }
        if keep_task_results && task_result(var).is_some() {
            return Ok(Found::Keep);
        }
        resolve_variable(var, params)
            .map(Found::Replace)
            .ok_or_else(|| var.to_string())
    })
}

/// What becomes of one `$(…)` a scan finds.
enum Found {
    /// Its value.
    Replace(String),
    /// Left as it is, whole.
    Keep,
    /// Not a variable (a shell command substitution, say): `$(` is kept and the scan goes on inside.
    NotVariable,
}

/// Goes through every `$(…)` of `text` in order, asking `each` what becomes of it (given what is between
/// the parentheses); `Err` stops at the first variable `each` cannot resolve.
fn scan_variables<'a>(
    text: &'a str,
    mut each: impl FnMut(&'a str) -> Result<Found, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let var = after.find(')').map(|e| &after[..e]);
        match var.map(&mut each).transpose()? {
            Some(Found::Replace(value)) => out.push_str(&value),
            Some(Found::Keep) => {
                out.push_str(&rest[start..start + 2 + var.map_or(0, str::len) + 1])
            }
            Some(Found::NotVariable) | None => {
                out.push_str("$(");
                rest = after;
                continue;
            }
        }
        rest = &after[var.map_or(0, str::len) + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `tasks.X.results.Y` → `(X, Y)`.
pub fn task_result(var: &str) -> Option<(&str, &str)> {
    let (task, result) = var.strip_prefix("tasks.")?.split_once(".results.")?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(task) && ok(result)).then_some((task, result))
}

/// Every `$(tasks.X.results.Y)` in `text`, as `(variable, X, Y)`, in order.
pub fn task_references(text: &str) -> Vec<(&str, &str, &str)> {
    let mut out = Vec::new();
    let _ = scan_variables(text, |var| {
        Ok(match task_result(var) {
            Some((task, result)) => {
                out.push((var, task, result));
                Found::Keep
            }
            None => Found::NotVariable,
        })
    });
    out
}

/// Replaces every `$(tasks.X.results.Y)` in `text` with what `lookup(X, Y)` gives; `Err` names the first
/// it cannot.
pub fn resolve_task_results(
    text: &str,
    lookup: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<String, String> {
    scan_variables(text, |var| match task_result(var) {
        Some((task, result)) => lookup(task, result)
            .map(Found::Replace)
            .ok_or_else(|| var.to_string()),
        None => Ok(Found::NotVariable),
    })
}

fn resolve_variable(var: &str, params: &BTreeMap<String, String>) -> Option<String> {
    let param_name = |s: &str| -> Option<String> {
        let s = s.strip_prefix('.').map(str::to_string).or_else(|| {
            let inner = s.strip_prefix('[')?.strip_suffix(']')?;
            Some(inner.trim_matches(|c| c == '\'' || c == '"').to_string())
        })?;
        Some(s)
    };
    if let Some(rest) = var
        .strip_prefix("params")
        .or_else(|| var.strip_prefix("inputs.params"))
    {
        return params.get(&param_name(rest)?).cloned();
    }
    if let Some(name) = var
        .strip_prefix("results.")
        .and_then(|r| r.strip_suffix(".path"))
    {
        return Some(format!("{RESULTS_DIR}/{name}"));
    }
    if let Some(name) = var
        .strip_prefix("workspaces.")
        .or_else(|| var.strip_prefix("inputs.resources."))
        .or_else(|| var.strip_prefix("outputs.resources."))
        .and_then(|r| r.strip_suffix(".path"))
    {
        return Some(format!("{WORKSPACE_ROOT}/{name}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_tekton_variables_and_leaves_shell_alone() {
        let params = BTreeMap::from([("MODE".to_string(), "0".to_string())]);
        let got = substitute(
            "go run x $(params.MODE) $(params['MODE']) > $(results.IMAGES.path); cd $(workspaces.source.path); echo $(date +%s) $(pwd)",
            &params,
        )
        .unwrap();
        assert_eq!(
            got,
            "go run x 0 0 > /tekton/results/IMAGES; cd /workspace/source; echo $(date +%s) $(pwd)"
        );
        assert_eq!(
            substitute("$(params.NOPE)", &params),
            Err("params.NOPE".to_string())
        );
        assert_eq!(substitute("a $(", &params).unwrap(), "a $(");
    }

    #[test]
    fn chains_parameters_are_unwrapped() {
        let v = serde_json::json!(["A={string 0 []}", "B={string https://x/y []}", "C=plain"]);
        let p = parameters(Some(&v));
        assert_eq!(p["A"], "0");
        assert_eq!(p["B"], "https://x/y");
        assert_eq!(p["C"], "plain");
    }
}
