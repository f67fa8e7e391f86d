//! Provenance documents → [`Recipe`]: the one place that touches untrusted JSON.
//!
//! Decoding happens in layers, each with its own module: [`json`] (bytes → JSON value, hostile-input caps),
//! [`container`] (a document → items, each the exact statement bytes plus what signs them), [`statement`]
//! (bytes → in-toto statement, after the signature decision), then a predicate module per family
//! ([`tekton`], [`slsa`]) that normalizes a statement into a [`Recipe`]. New containers and families slot
//! in beside the existing ones without touching the rebuild.

pub mod attached;
pub mod buildkit;
pub mod cloud_build;
pub mod container;
mod cosign;
mod error;
mod fields;
mod item;
mod pipeline;
pub mod purl;
mod recipe;
mod recognize;
pub mod slsa;
pub mod statement;
pub mod tekton;

pub use cloud_build::ConfigSource;
pub use container::Container;
pub use error::ParseError;
pub use recipe::{
    BuildKitContext, BuildKitMode, BuildKitPlan, BuildType, Conventions, Material, Recipe,
    SourceRef, Step, Subject, Task, TaskRole, Unrebuildable, UnrebuildableReason,
};
pub use statement::Statement;

/// Predicate type of Tekton Chains' original provenance format (the distroless seed).
pub const TEKTON_CHAINS_PREDICATE: &str = "https://tekton.dev/chains/provenance";
/// Predicate type of SLSA provenance v0.2.
pub const SLSA_V02_PREDICATE: &str = "https://slsa.dev/provenance/v0.2";
/// Predicate types of SLSA provenance v0.1 and in-toto's Provenance v0.1, which it grew from.
pub const SLSA_V01_PREDICATES: &[&str] = &[
    "https://slsa.dev/provenance/v0.1",
    "https://in-toto.io/Provenance/v0.1",
];
/// SLSA provenance v1 and the drafts that were published before it.
pub const SLSA_V1_PREDICATES: &[&str] = &[
    "https://slsa.dev/provenance/v1",
    "https://slsa.dev/provenance/v1?draft",
    "https://slsa.dev/provenance/v1.0?draft",
];

/// Normalizes one statement into a recipe, or says why its predicate is not one reprod can rebuild.
///
/// A recipe is returned whenever the family is understood, even if it lacks something a rebuild needs:
/// [`Recipe::check`] names what is missing, so the verdict can still list the subjects.
pub fn normalize(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    let predicate_type = statement.predicate_type.as_str();
    if let Some(what) = slsa::not_provenance(predicate_type) {
        return Err(Unrebuildable::new(
            UnrebuildableReason::NotProvenance(predicate_type.to_string()),
            format!("this is {what}, not build provenance: there is nothing to rebuild"),
        ));
    }
    match predicate_type {
        TEKTON_CHAINS_PREDICATE => tekton::from_chains_provenance(statement),
        SLSA_V02_PREDICATE => {
            let build_type = statement
                .predicate
                .get("buildType")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            if tekton::is_tekton_build_type(build_type) && pipeline::is_pipeline(statement) {
                pipeline::from_v02(statement)
            } else if tekton::is_tekton_build_type(build_type) {
                tekton::from_slsa_v02(statement)
            } else if buildkit::is_buildkit_build_type(build_type) {
                buildkit::from_v02(statement)
            } else {
                slsa::from_v02_other(statement, build_type)
            }
        }
        t if SLSA_V01_PREDICATES.contains(&t) => slsa::from_v01(statement),
        t if SLSA_V1_PREDICATES.contains(&t) && pipeline::is_pipeline(statement) => {
            pipeline::from_v1(statement)
        }
        t if SLSA_V1_PREDICATES.contains(&t) => slsa::from_v1(statement),
        // An empty predicate type with a build-definition predicate: the container-based builder's draft.
        "" if statement.predicate.get("buildType").is_some()
            || statement.predicate.get("buildDefinition").is_some() =>
        {
            slsa::from_v1(statement)
        }
        "" => Err(Unrebuildable::new(
            UnrebuildableReason::NotProvenance(String::new()),
            "the statement has an empty predicateType and its predicate is not a build definition",
        )),
        other => Err(Unrebuildable::new(
            UnrebuildableReason::UnsupportedBuildType(other.to_string()),
            "this predicate type is not one reprod can turn into build steps yet",
        )),
    }
}
