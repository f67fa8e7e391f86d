//! Tekton PipelineRuns: Chains' SLSA v0.2 `buildConfig.tasks[]` and the SLSA v1 forms with an inline
//! `pipelineSpec`. Each task gets a [`TaskRole`]: its steps are run, reprod's own checkout stands in for
//! it (a git clone of the recorded commit), or it is skipped because it only publishes, scans or signs.
//! Tasks are ordered by `after` / `runAfter` and by the results they read from each other
//! (`$(tasks.X.results.Y)`), which the rebuild resolves from what the earlier task wrote.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::array_at;

use super::tekton;
use super::{
    BuildType, Recipe, SourceRef, Statement, Step, Task, TaskRole, Unrebuildable,
    UnrebuildableReason,
};

/// The non-empty string at `pointer`, owned.
fn str_at(v: &Value, pointer: &str) -> Option<String> {
    super::fields::str_at(v, pointer).map(str::to_string)
}

/// Most tasks a pipeline may have.
const MAX_TASKS: usize = 200;

/// Words in a task's name (or its Task's name) that mark it as not building anything, with why.
const NOT_BUILDING: &[(&str, &str)] = &[
    ("cosign", "signs what was built"),
    ("sign", "signs what was built"),
    ("sast", "scans the source"),
    ("scan", "scans what was built"),
    ("clair", "scans what was built"),
    ("clamav", "scans what was built"),
    ("snyk", "scans the source"),
    ("check", "checks what was built"),
    ("preflight", "checks what was built"),
    ("sbom", "publishes or checks an SBOM"),
    ("summary", "reports on the run"),
    ("apply-tags", "publishes tags for what was built"),
    ("push-dockerfile", "publishes the Dockerfile"),
    ("upload", "publishes what was built"),
    ("kubectl", "deploys what was built"),
    ("deploy", "deploys what was built"),
    (
        "trusted-artifact",
        "moves build state between tasks (a Konflux trusted artifact)",
    ),
];

/// One task as recorded, before roles and order are decided.
struct Recorded<'a> {
    name: String,
    task_ref: Option<String>,
    run_after: Vec<String>,
    params: BTreeMap<String, String>,
    results: BTreeMap<String, String>,
    steps: &'a [Value],
    /// SLSA v1 steps are Kubernetes containers (`image`, `command`, `args`, `script`), v0.2 steps are
    /// Chains' `{entryPoint, arguments, environment}`.
    v1: bool,
}

/// True when a statement records a PipelineRun: SLSA v0.2 `buildConfig.tasks`, or a v1 `runSpec` with a
/// pipeline (inline or referenced).
pub fn is_pipeline(statement: &Statement) -> bool {
    let p = &statement.predicate;
    matches!(p.pointer("/buildConfig/tasks"), Some(Value::Array(_)))
        || p.pointer("/buildDefinition/externalParameters/runSpec")
            .is_some_and(|r| r.get("pipelineRef").is_some() || r.get("pipelineSpec").is_some())
}

/// SLSA v0.2: `buildConfig.tasks[] = {name, after, ref, invocation.parameters, results, steps}`.
pub fn from_v02(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    let p = &statement.predicate;
    let build_type = str_at(p, "/buildType").unwrap_or_default();
    let builder_id = str_at(p, "/builder/id");
    let source = tekton::v02_source(p);
    let parameters = tekton::parameters(p.pointer("/invocation/parameters"));
    let tasks = array_at(p, "/buildConfig/tasks");
    let recorded = tasks
        .iter()
        .take(MAX_TASKS + 1)
        .enumerate()
        .map(|(i, t)| Recorded {
            name: str_at(t, "/name").unwrap_or_else(|| format!("task-{i}")),
            task_ref: str_at(t, "/ref/name"),
            run_after: strings(t.get("after").or_else(|| t.get("runAfter"))),
            params: tekton::parameters(t.pointer("/invocation/parameters")),
            results: named_values(t.get("results")),
            steps: array_at(t, "/steps"),
            v1: false,
        })
        .collect();
    plan(
        statement,
        &build_type,
        builder_id,
        source,
        recorded,
        parameters,
    )
}

/// SLSA v1 (`externalParameters.runSpec.pipelineSpec.tasks[]`, each with an inline `taskSpec`). A task
/// that only references its Task (`taskRef`), or a pipeline that is only referenced (`pipelineRef`),
/// leaves nothing to run: unrebuildable, naming what is missing.
pub fn from_v1(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    let p = &statement.predicate;
    let build_type = &str_at(p, "/buildDefinition/buildType").unwrap_or_default();
    let builder_id = str_at(p, "/runDetails/builder/id");
    let run_spec = p
        .pointer("/buildDefinition/externalParameters/runSpec")
        .unwrap_or(&Value::Null);
    let source = match p.pointer("/buildDefinition/resolvedDependencies") {
        Some(Value::Array(items)) => items
            .iter()
            .find_map(|d| tekton::git_ref(d.get("uri")?.as_str()?, d.get("digest")?)),
        _ => None,
    };
    let parameters = tekton::parameters(
        run_spec
            .get("params")
            .map(super::slsa::params_list)
            .as_ref(),
    );
    if let Some(r) = run_spec.get("pipelineRef") {
        return Err(Unrebuildable::new(
            UnrebuildableReason::UnsupportedBuildType(build_type.to_string()),
            format!(
                "the PipelineRun's pipeline is only referenced (pipelineRef {}), so its tasks and their steps \
                 are not in this provenance; rebuilding needs the pipeline's definition or each TaskRun's own \
                 provenance",
                describe_ref(r)
            ),
        ));
    }
    let tasks = array_at(run_spec, "/pipelineSpec/tasks");
    let referenced: Vec<String> = tasks
        .iter()
        .filter(|t| t.get("taskSpec").is_none())
        .map(|t| {
            format!(
                "{} (taskRef {})",
                str_at(t, "/name").unwrap_or_else(|| "?".into()),
                t.get("taskRef").map_or_else(|| "none".into(), describe_ref)
            )
        })
        .collect();
    if !referenced.is_empty() {
        return Err(Unrebuildable::new(
            UnrebuildableReason::UnsupportedBuildType(build_type.to_string()),
            format!(
                "the PipelineRun's tasks {} are only referenced, so their steps are not in this provenance; \
                 rebuilding needs each Task's definition or each TaskRun's own provenance",
                referenced.join(", ")
            ),
        ));
    }
    let recorded = tasks
        .iter()
        .take(MAX_TASKS + 1)
        .enumerate()
        .map(|(i, t)| Recorded {
            name: str_at(t, "/name").unwrap_or_else(|| format!("task-{i}")),
            task_ref: None,
            run_after: strings(t.get("runAfter")),
            params: named_values(t.get("params")),
            results: BTreeMap::new(),
            steps: array_at(t, "/taskSpec/steps"),
            v1: true,
        })
        .collect();
    plan(
        statement, build_type, builder_id, source, recorded, parameters,
    )
}

fn describe_ref(r: &Value) -> String {
    if let Some(name) = str_at(r, "/name") {
        return format!("{name:?}");
    }
    let Some(resolver) = str_at(r, "/resolver") else {
        return "with no name".into();
    };
    let params: Vec<String> = named_values(r.get("params"))
        .into_iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "url" | "revision" | "pathInRepo" | "bundle" | "name" | "kind"
            )
        })
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if params.is_empty() {
        format!("through the {resolver:?} resolver")
    } else {
        format!("through the {resolver:?} resolver: {}", params.join(", "))
    }
}

fn plan(
    statement: &Statement,
    build_type: &str,
    builder_id: Option<String>,
    mut source: Option<SourceRef>,
    recorded: Vec<Recorded<'_>>,
    parameters: BTreeMap<String, String>,
) -> Result<Recipe, Unrebuildable> {
    let bad = |detail: String| Unrebuildable::new(UnrebuildableReason::BadPipeline, detail);
    if recorded.len() > MAX_TASKS {
        return Err(bad(format!(
            "the pipeline records more than {MAX_TASKS} tasks"
        )));
    }
    if source.is_none() {
        // Chains takes the source of a PipelineRun from its clone task's results; so does reprod.
        source = recorded
            .iter()
            .filter(|t| looks_like_clone(t))
            .find_map(|t| {
                Some(SourceRef {
                    uri: t.results.get("url")?.trim().to_string(),
                    commit: t.results.get("commit")?.trim().to_ascii_lowercase(),
                })
            });
    }
    let order = order(&recorded).map_err(bad)?;
    let mut tasks = Vec::with_capacity(recorded.len());
    let mut steps = Vec::new();
    for i in order {
        let t = &recorded[i];
        let role = role(t, source.as_ref());
        if role == TaskRole::Run {
            let mut params = parameters.clone();
            params.extend(t.params.iter().map(|(k, v)| (k.clone(), v.clone())));
            for (n, st) in t.steps.iter().enumerate() {
                let mut step = if t.v1 {
                    super::slsa::tekton_v1_step_in(n, st, &Value::Null, &params, Some(&t.name))?
                } else {
                    tekton::step_in(n, st, &params, Some(&t.name))?
                };
                check_task_reads(&step, &t.name, &tasks)?;
                step.name = format!("{}/{}", t.name, step.name);
                steps.push(step);
            }
        }
        tasks.push(Task {
            name: t.name.clone(),
            task_ref: t.task_ref.clone(),
            run_after: t.run_after.clone(),
            params: t.params.clone(),
            claimed_results: t.results.clone(),
            role,
            recorded_steps: t.steps.len(),
        });
    }
    Ok(Recipe {
        tasks,
        ..Recipe::of(
            statement,
            BuildType::Tekton {
                uri: build_type.to_string(),
            },
            builder_id,
            source,
            steps,
            parameters,
        )
    })
}

/// Every `$(tasks.X.results.Y)` a step reads must be of a task ordered before it that runs, or of the
/// source-fetch task (whose `commit` and `url` reprod's checkout gives).
fn check_task_reads(step: &Step, task: &str, earlier: &[Task]) -> Result<(), Unrebuildable> {
    let mut texts: Vec<&str> = step.args.iter().map(String::as_str).collect();
    texts.extend(step.script.as_deref());
    texts.extend(step.command.as_deref());
    texts.extend(step.env.iter().map(|(_, v)| v.as_str()));
    for text in texts {
        for (var, from, result) in tekton::task_references(text) {
            let ok = earlier.iter().any(|t| {
                t.name == from
                    && match &t.role {
                        TaskRole::Run => true,
                        TaskRole::SourceFetch { .. } => matches!(result, "commit" | "url"),
                        TaskRole::Skipped { .. } => false,
                    }
            });
            if !ok {
                return Err(Unrebuildable::new(
                    UnrebuildableReason::UnresolvedVariable,
                    format!(
                        "task {task:?} step {:?} reads $({var}), which no task run before it gives",
                        step.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn looks_like_clone(t: &Recorded<'_>) -> bool {
    let named = |s: &str| s.contains("clone") || s.contains("git");
    named(&t.name.to_ascii_lowercase())
        || t.task_ref
            .as_deref()
            .is_some_and(|r| named(&r.to_ascii_lowercase()))
}

fn role(t: &Recorded<'_>, source: Option<&SourceRef>) -> TaskRole {
    if looks_like_clone(t) {
        if let (Some(commit), Some(src)) = (t.results.get("commit"), source) {
            if commit.trim().eq_ignore_ascii_case(&src.commit) {
                return TaskRole::SourceFetch {
                    commit: src.commit.clone(),
                };
            }
        }
    }
    let names = [Some(t.name.as_str()), t.task_ref.as_deref()];
    for name in names.into_iter().flatten() {
        if let Some((word, why)) = NOT_BUILDING.iter().find(|(w, _)| names_word(name, w)) {
            return TaskRole::Skipped {
                reason: format!("{why} (its name {name:?} has the word {word:?})"),
            };
        }
    }
    if t.steps.is_empty() {
        return TaskRole::Skipped {
            reason: "the provenance records no steps for it".into(),
        };
    }
    TaskRole::Run
}

/// Whether `name` (`sast-snyk-check`, `show_sbom`) has `word` (`check`, `apply-tags`) as whole words,
/// a plural `s` allowed: `design-build` does not sign anything.
fn names_word(name: &str, word: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let tokens: Vec<&str> = lower.split(['-', '_', '.', '/']).collect();
    let wanted: Vec<&str> = word.split('-').collect();
    tokens.windows(wanted.len()).any(|w| {
        w.iter()
            .zip(&wanted)
            .all(|(t, want)| t == want || t.strip_suffix('s') == Some(want))
    })
}

/// Kahn's order over `after` / `runAfter` and result reads, ties broken by the recorded order.
fn order(tasks: &[Recorded<'_>]) -> Result<Vec<usize>, String> {
    let index: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    if index.len() != tasks.len() {
        return Err("two tasks of the pipeline have the same name".into());
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, t) in tasks.iter().enumerate() {
        for a in &t.run_after {
            let j = *index.get(a.as_str()).ok_or_else(|| {
                format!(
                    "task {:?} runs after {a:?}, which the pipeline does not record",
                    t.name
                )
            })?;
            deps[i].push(j);
        }
        for from in reads(t) {
            if let Some(&j) = index.get(from.as_str()) {
                if j != i && !deps[i].contains(&j) {
                    deps[i].push(j);
                }
            }
        }
    }
    let mut done = vec![false; tasks.len()];
    let mut out = Vec::with_capacity(tasks.len());
    while out.len() < tasks.len() {
        let next = (0..tasks.len()).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j]));
        match next {
            Some(i) => {
                done[i] = true;
                out.push(i);
            }
            None => {
                let stuck: Vec<_> = (0..tasks.len())
                    .filter(|&i| !done[i])
                    .map(|i| tasks[i].name.clone())
                    .collect();
                return Err(format!(
                    "the tasks {} wait on each other (a cycle in after/runAfter or in the results they read)",
                    stuck.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// The tasks whose results a recorded task's params and steps read.
fn reads(t: &Recorded<'_>) -> Vec<String> {
    let steps: Vec<String> = t.steps.iter().map(Value::to_string).collect();
    t.params
        .values()
        .chain(&steps)
        .flat_map(|text| tekton::task_references(text))
        .map(|(_, task, _)| task.to_string())
        .collect()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// `[{name, value}]` (Chains' results, v1 params) → `{name: value}`, string values only.
fn named_values(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Array(items)) = v {
        for item in items {
            if let (Some(name), Some(value)) = (
                item.get("name").and_then(Value::as_str),
                item.get("value").and_then(Value::as_str),
            ) {
                out.insert(name.to_string(), value.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::names_word;

    #[test]
    fn task_names_are_read_by_whole_words() {
        for (name, word) in [
            ("sast-snyk-check", "check"),
            ("ecosystem-cert-preflight-checks", "check"),
            ("show-sbom", "sbom"),
            ("apply-tags", "apply-tags"),
            ("cosign_sign", "cosign"),
            ("rpms-signature-scan", "scan"),
        ] {
            assert!(names_word(name, word), "{name} {word}");
        }
        for (name, word) in [
            ("design-build", "sign"),
            ("rpms-signature-scan", "sign"),
            ("build-image-index", "check"),
            ("checkout", "check"),
        ] {
            assert!(!names_word(name, word), "{name} {word}");
        }
    }
}
