//! The normalized build description every provenance family is turned into.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// What was built: a name and its digests by algorithm (lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub name: String,
    pub digests: BTreeMap<String, String>,
}

impl Subject {
    /// The sha256 digest as `sha256:<hex>`, if the subject has a well-formed one.
    pub fn sha256(&self) -> Option<String> {
        let hex = self.digests.get("sha256")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| format!("sha256:{hex}"))
    }
}

/// Where the source comes from: repository URI and the exact commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SourceRef {
    pub uri: String,
    pub commit: String,
}

/// One recorded build step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The step's name (Tekton's container name), or `step-N`.
    pub name: String,
    /// The image reference exactly as recorded (validated by [`Recipe::check`]).
    pub image: String,
    /// A script to run as the container's entrypoint file (starts with `#!`).
    pub script: Option<String>,
    /// The entrypoint command, when the step is not a script.
    pub command: Option<String>,
    pub args: Vec<String>,
    /// Environment exactly as recorded, in order.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// The PipelineRun task the step belongs to (none for a TaskRun or a single-config build).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// The build family, which fixes the workspace conventions of the rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildType {
    /// Tekton (Chains provenance or SLSA v0.2 `buildConfig.steps`): `/workspace/source`, `/tekton/results`,
    /// `/tekton/home`.
    Tekton { uri: String },
    /// Google Cloud Build (SLSA v0.1 `recipe.arguments.steps`): `/workspace` as the working directory.
    CloudBuild { uri: String },
    /// The SLSA container-based builder: one command in a pinned builder image, run in the source tree.
    ContainerBased { uri: String },
    /// BuildKit (`docker buildx build`): a frontend run over a context, not steps; see [`BuildKitPlan`].
    #[serde(rename = "buildkit")]
    BuildKit { uri: String },
}

/// How a family lays out the world its steps see. Every family mounts the job workspace at
/// [`tekton::WORKSPACE_ROOT`](super::tekton::WORKSPACE_ROOT) (`/workspace`); they differ in where the
/// source is checked out, where a step starts and what `$HOME` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conventions {
    /// The checkout, relative to the workspace root (`""`: the workspace root itself).
    pub source_subdir: &'static str,
    /// Where a step starts when it names no directory (`None`: the image's own).
    pub working_dir: Option<&'static str>,
    /// `$HOME` of every step (a writable directory of the job), when the family sets one.
    pub home: Option<&'static str>,
}

impl BuildType {
    /// The family's step conventions.
    pub fn conventions(&self) -> Conventions {
        match self {
            // Tekton: workspaces under /workspace/<name>, the source in `source`, results in
            // /tekton/results, $HOME /tekton/home; a step starts in its image's directory.
            BuildType::Tekton { .. } | BuildType::BuildKit { .. } => Conventions {
                source_subdir: super::tekton::SOURCE_WORKSPACE,
                working_dir: None,
                home: Some(super::tekton::HOME_DIR),
            },
            // Cloud Build: the source is /workspace, every step starts there (or in its `dir` below it),
            // $HOME is /builder/home.
            BuildType::CloudBuild { .. } => Conventions {
                source_subdir: "",
                working_dir: Some(super::tekton::WORKSPACE_ROOT),
                home: Some("/builder/home"),
            },
            // The container-based builder: `docker run -v <checkout>:/workspace -w /workspace IMAGE CMD`.
            BuildType::ContainerBased { .. } => Conventions {
                source_subdir: "",
                working_dir: Some(super::tekton::WORKSPACE_ROOT),
                home: None,
            },
        }
    }
}

impl BuildType {
    pub fn uri(&self) -> &str {
        match self {
            BuildType::Tekton { uri }
            | BuildType::CloudBuild { uri }
            | BuildType::ContainerBased { uri }
            | BuildType::BuildKit { uri } => uri,
        }
    }
}

/// A provenance statement normalized into what a rebuild needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipe {
    pub predicate_type: String,
    pub build_type: BuildType,
    pub builder_id: Option<String>,
    pub source: Option<SourceRef>,
    pub steps: Vec<Step>,
    pub subjects: Vec<Subject>,
    /// Parameters as recorded (used for `$(params.*)` substitution).
    pub parameters: BTreeMap<String, String>,
    /// A PipelineRun's tasks in run order: which ran (their steps are in `steps`), which reprod's own
    /// checkout stands for, and which were skipped and why. Empty for every other family.
    pub tasks: Vec<Task>,
    /// What a BuildKit build needs, for the BuildKit family.
    pub buildkit: Option<BuildKitPlan>,
    /// Secrets the recorded build used (names only: provenance never carries their values).
    pub secrets: Vec<String>,
    /// For a family whose provenance names its build config but not its steps (Cloud Build v1): where the
    /// steps are read from in the recorded commit, once it is checked out. `steps` is empty until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_source: Option<super::ConfigSource>,
}

/// One task of a Tekton PipelineRun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub name: String,
    /// The Task it ran (`ref.name`), when recorded.
    pub task_ref: Option<String>,
    /// Tasks it ran after (`runAfter` / `after`).
    pub run_after: Vec<String>,
    pub params: BTreeMap<String, String>,
    /// Results as the original run recorded them: claims, never evidence.
    pub claimed_results: BTreeMap<String, String>,
    pub role: TaskRole,
    /// How many of its steps the provenance records.
    pub recorded_steps: usize,
}

/// What a rebuild does with a PipelineRun task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "role")]
pub enum TaskRole {
    /// Its steps are run.
    Run,
    /// It only fetched the source at the recorded commit: reprod's own checkout stands in for it.
    SourceFetch { commit: String },
    /// It only publishes, scans or signs: not run, for the reason given.
    Skipped { reason: String },
}

/// A BuildKit build as its provenance records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildKitPlan {
    /// `max` records the build request; `min` scrubs it ([`BuildKitPlan::missing`] names what is gone).
    pub mode: BuildKitMode,
    /// The frontend (`dockerfile.v0`, or a gateway image).
    pub frontend: Option<String>,
    /// The Dockerfile's path in the context.
    pub dockerfile: Option<String>,
    /// Where the context came from.
    pub context: BuildKitContext,
    /// The frontend's options exactly as recorded (`build-arg:*`, `label:*`, `platform`, ...).
    pub args: BTreeMap<String, String>,
    pub platform: Option<String>,
    /// Every image the build resolved, with its digest.
    pub materials: Vec<Material>,
    /// `SOURCE_DATE_EPOCH` as passed to the build, when it was.
    pub source_date_epoch: Option<String>,
    /// Fields a rebuild needs that the provenance does not carry (mode=min).
    pub missing: Vec<String>,
    /// Where in the source the context and the Dockerfile's directory were (`""`: its root): a git
    /// context's `#ref:subdir`, or a local context's `vcs` `localdir:context` / `localdir:dockerfile`.
    pub context_dir: String,
    pub dockerfile_dir: String,
}

/// `mode=max` or `mode=min` provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildKitMode {
    Max,
    Min,
}

/// Where a BuildKit build's context came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BuildKitContext {
    /// A git context BuildKit fetched itself (`configSource`): the commit is the source.
    Git { uri: String, commit: String },
    /// A local directory whose git state BuildKit noted (`vcs` metadata): a hint, not a fetched commit;
    /// `dirty` when the directory had changes no commit holds.
    LocalWithVcs {
        uri: String,
        revision: String,
        dirty: bool,
    },
    /// A local directory with nothing saying which source it held.
    Local,
}

/// A resolved input of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Material {
    pub uri: String,
    /// `sha256:<hex>`, when recorded.
    pub digest: Option<String>,
    /// Why the build did not need it (an attestation generator), when it did not.
    pub not_an_input: Option<String>,
}

impl Recipe {
    /// A recipe of `statement`'s subjects with no pipeline tasks, BuildKit plan or secrets (the fields
    /// only some families fill).
    pub fn of(
        statement: &super::Statement,
        build_type: BuildType,
        builder_id: Option<String>,
        source: Option<SourceRef>,
        steps: Vec<Step>,
        parameters: BTreeMap<String, String>,
    ) -> Recipe {
        Recipe {
            predicate_type: statement.predicate_type.clone(),
            build_type,
            builder_id,
            source,
            steps,
            subjects: statement.subjects.clone(),
            parameters,
            tasks: Vec::new(),
            buildkit: None,
            secrets: Vec::new(),
            config_source: None,
        }
    }

    /// What makes two documents the same work: the same source commit, steps and build conventions,
    /// whatever subjects they name. A rebuild of it may answer for any of them (each is judged on its own
    /// subjects). `recipe:sha256:<hex>`.
    pub fn work_key(&self) -> String {
        use sha2::{Digest, Sha256};
        // A TaskRun's key is what it always was; a pipeline's task layout and a BuildKit plan are part
        // of the work (but not the results a task claimed, which differ between runs of the same work).
        let key = if let Some(config) = &self.config_source {
            // Steps still in the source: the same config at the same commit is the same work.
            serde_json::to_vec(&(&self.source, config, &self.build_type))
        } else if self.tasks.is_empty() && self.buildkit.is_none() {
            serde_json::to_vec(&(&self.source, &self.steps, &self.build_type))
        } else {
            let tasks: Vec<_> = self
                .tasks
                .iter()
                .map(|t| (&t.name, &t.role, &t.run_after, &t.params))
                .collect();
            serde_json::to_vec(&(
                &self.source,
                &self.steps,
                &self.build_type,
                &tasks,
                &self.buildkit,
            ))
        }
        .unwrap_or_default();
        format!("recipe:sha256:{}", hex::encode(Sha256::digest(key)))
    }

    /// Says what a rebuild would lack, first problem first.
    pub fn check(&self) -> Result<(), Unrebuildable> {
        if self.subjects.iter().all(|s| s.sha256().is_none()) {
            let algs: Vec<_> = self
                .subjects
                .iter()
                .flat_map(|s| s.digests.keys().cloned())
                .collect();
            return Err(Unrebuildable::new(
                UnrebuildableReason::NoSha256Subject,
                if algs.is_empty() {
                    "the provenance names no subject, so there is nothing to compare a rebuild with"
                        .to_string()
                } else {
                    format!(
                        "no subject has a sha256 digest (found: {}); only sha256 can be compared",
                        algs.join(", ")
                    )
                },
            ));
        }
        if let Some(plan) = &self.buildkit {
            plan.check()?;
        }
        if self.source.is_none() {
            return Err(Unrebuildable::new(
                UnrebuildableReason::NoSource,
                "no git repository and commit in the materials / configSource",
            ));
        }
        if !self.secrets.is_empty() {
            return Err(Unrebuildable::new(
                UnrebuildableReason::NeedsSecrets,
                format!(
                    "the build used secrets ({}) whose values no provenance carries; a rebuild without them \
                     would not be the recorded build",
                    self.secrets.join(", ")
                ),
            ));
        }
        if self.buildkit.is_some() {
            // A BuildKit recipe has no steps: reprod's builder runs the plan (see `admit`, which says
            // `no-builder` when none is configured).
            return Ok(());
        }
        if self.steps.is_empty() && self.config_source.is_some() {
            // The steps are read from the source once it is checked out, and checked then.
            return Ok(());
        }
        if self.steps.is_empty() {
            let why = if self.tasks.is_empty() {
                "the provenance records no build steps".to_string()
            } else {
                format!(
                    "no task of the pipeline is left to run: {}",
                    self.tasks
                        .iter()
                        .map(|t| format!("{} ({})", t.name, t.role.describe()))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            return Err(Unrebuildable::new(UnrebuildableReason::NoSteps, why));
        }
        for step in &self.steps {
            if let Err(e) = reprod_sandbox::PinnedImage::parse(&step.image) {
                return Err(Unrebuildable::new(
                    UnrebuildableReason::UnpinnedImage,
                    format!("step {:?}: {e}", step.name),
                ));
            }
        }
        // The document's own defects first (above), then what this rebuilder cannot give.
        if let BuildType::CloudBuild { .. } = self.build_type {
            super::cloud_build::needs_docker_daemon(&self.steps)?;
        }
        Ok(())
    }

    /// Distinct sha256 subject digests, in first-seen order.
    pub fn distinct_sha256(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for d in self.subjects.iter().filter_map(Subject::sha256) {
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
        seen
    }
}

/// Machine-readable reason codes for `unrebuildable` verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnrebuildableReason {
    NoSource,
    NoSteps,
    UnpinnedImage,
    NoSha256Subject,
    UnsupportedBuildType(String),
    /// A `$(params.*)`-style variable the provenance does not define.
    UnresolvedVariable,
    /// The repository URL's scheme is not allowed by the configuration.
    DisallowedSourceScheme,
    /// The repository could not be fetched.
    SourceUnavailable,
    /// The repository does not contain the recorded commit.
    CommitNotFound,
    /// A step image could not be pulled by its digest.
    ImageUnavailable,
    /// The statement is an attestation, but not of a build (a VSA, a signature claim, an SBOM…).
    NotProvenance(String),
    /// The build used secrets.
    NeedsSecrets,
    /// A pipeline whose tasks cannot be put in an order (unknown or cyclic `runAfter`, duplicate names).
    BadPipeline,
    /// BuildKit mode=min provenance: the build request was scrubbed.
    BuildKitModeMin,
    /// A BuildKit build of a local directory nothing ties to a commit.
    LocalContext,
    /// The recorded commit is only a hint, and the directory built had changes no commit holds.
    DirtySource,
    /// The family is understood, but no builder for it is configured here.
    NoBuilder(String),
    /// A code decided elsewhere (signature or statement checks), passed through as is.
    Other(String),
}

impl fmt::Display for UnrebuildableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSource => "no-source",
            Self::NoSteps => "no-steps",
            Self::UnpinnedImage => "unpinned-image",
            Self::NoSha256Subject => "no-sha256-subject",
            Self::UnsupportedBuildType(uri) => return write!(f, "unsupported-build-type: {uri}"),
            Self::UnresolvedVariable => "unresolved-variable",
            Self::DisallowedSourceScheme => "disallowed-source-scheme",
            Self::SourceUnavailable => "source-unavailable",
            Self::CommitNotFound => "commit-not-found",
            Self::ImageUnavailable => "image-unavailable",
            Self::NotProvenance(what) => return write!(f, "not-provenance: {what}"),
            Self::NeedsSecrets => "needs-secrets",
            Self::BadPipeline => "bad-pipeline",
            Self::BuildKitModeMin => "buildkit-mode-min",
            Self::LocalContext => "local-context",
            Self::DirtySource => "dirty-source",
            Self::NoBuilder(family) => return write!(f, "no-builder: {family}"),
            Self::Other(code) => code,
        })
    }
}

/// A reason code plus a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Unrebuildable {
    pub reason: UnrebuildableReason,
    pub detail: String,
}

impl Unrebuildable {
    pub fn new(reason: UnrebuildableReason, detail: impl Into<String>) -> Self {
        Unrebuildable {
            reason,
            detail: detail.into(),
        }
    }
}

impl TaskRole {
    /// A few words for people.
    pub fn describe(&self) -> String {
        match self {
            TaskRole::Run => "run".into(),
            TaskRole::SourceFetch { commit } => {
                format!("fetches the source at {commit}: reprod's checkout stands in for it")
            }
            TaskRole::Skipped { reason } => format!("skipped: {reason}"),
        }
    }
}
