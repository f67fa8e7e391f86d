//! Provenance documents → [`Recipe`]: the one place that touches untrusted JSON.
//!
//! Decoding happens in layers, each with its own module: [`json`] (bytes → JSON value, hostile-input caps),
//! [`container`] (JSON → in-toto statements, from a bare statement or a DSSE envelope), then a predicate
//! module per family ([`tekton`]) that normalizes a statement into a [`Recipe`]. New containers and families
//! slot in beside the existing ones without touching the rebuild.

pub mod container;
pub mod json;
mod recipe;
pub mod tekton;

pub use container::{Container, ParseError, Statement};
pub use recipe::{BuildType, Recipe, SourceRef, Step, Subject, Unrebuildable, UnrebuildableReason};

/// Predicate type of Tekton Chains' original provenance format (the distroless seed).
pub const TEKTON_CHAINS_PREDICATE: &str = "https://tekton.dev/chains/provenance";
/// Predicate type of SLSA provenance v0.2.
pub const SLSA_V02_PREDICATE: &str = "https://slsa.dev/provenance/v0.2";

/// Normalizes one statement into a recipe, or says why its predicate is not one reprod can rebuild.
///
/// A recipe is returned whenever the family is understood, even if it lacks something a rebuild needs:
/// [`Recipe::check`] names what is missing, so the verdict can still list the subjects.
pub fn normalize(statement: &Statement) -> Result<Recipe, Unrebuildable> {
    match statement.predicate_type.as_str() {
        TEKTON_CHAINS_PREDICATE => tekton::from_chains_provenance(statement),
        SLSA_V02_PREDICATE => {
            let build_type = statement
                .predicate
                .get("buildType")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            if tekton::is_tekton_build_type(build_type) {
                tekton::from_slsa_v02(statement)
            } else {
                Err(Unrebuildable::new(
                    UnrebuildableReason::UnsupportedBuildType(build_type.to_string()),
                    "SLSA v0.2 provenance is rebuilt only for Tekton build types (`buildConfig.steps`) so far",
                ))
            }
        }
        other => Err(Unrebuildable::new(
            UnrebuildableReason::UnsupportedBuildType(other.to_string()),
            "this predicate type is not one reprod can turn into build steps yet",
        )),
    }
}
