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
}

impl BuildType {
    pub fn uri(&self) -> &str {
        match self {
            BuildType::Tekton { uri }
            | BuildType::CloudBuild { uri }
            | BuildType::ContainerBased { uri } => uri,
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
}

impl Recipe {
    /// What makes two documents the same work: the same source commit, steps and build conventions,
    /// whatever subjects they name. A rebuild of it may answer for any of them (each is judged on its own
    /// subjects). `recipe:sha256:<hex>`.
    pub fn work_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let key =
            serde_json::to_vec(&(&self.source, &self.steps, &self.build_type)).unwrap_or_default();
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
        if self.source.is_none() {
            return Err(Unrebuildable::new(
                UnrebuildableReason::NoSource,
                "no git repository and commit in the materials / configSource",
            ));
        }
        if self.steps.is_empty() {
            return Err(Unrebuildable::new(
                UnrebuildableReason::NoSteps,
                "the provenance records no build steps",
            ));
        }
        if !matches!(self.build_type, BuildType::Tekton { .. }) {
            return Err(Unrebuildable::new(
                UnrebuildableReason::UnsupportedBuildType(self.build_type.uri().to_string()),
                "the recipe was read, but reprod runs only Tekton's step conventions so far; \
                 this family's workspace and entrypoint conventions are not implemented",
            ));
        }
        for step in &self.steps {
            if let Err(e) = reprod_sandbox::PinnedImage::parse(&step.image) {
                return Err(Unrebuildable::new(
                    UnrebuildableReason::UnpinnedImage,
                    format!("step {:?}: {e}", step.name),
                ));
            }
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
