//! Steps that are in the source, not the provenance: a Cloud Build v1 build's config, read from the
//! checkout of the recorded commit (bounded, beneath the checkout, never through a link).

use std::io::Read;

use super::{unrebuildable, RebuildError};
use crate::provenance::cloud_build::{steps_from_config, MAX_CONFIG_BYTES};
use crate::provenance::{Recipe, UnrebuildableReason};
use crate::verdict::{Ending, RebuildOutcome};

/// For a recipe whose steps are in its build config (`config_source`): the recipe with the steps the config
/// in `checkout` holds, checked as a recorded one would be, noted in `outcome` as read from the source; or
/// why it cannot be rebuilt (the config is missing, not a build config, uses secrets, names an image
/// nothing resolved). `None` for every other recipe.
pub(super) async fn steps_in_source(
    recipe: &Recipe,
    checkout: std::path::PathBuf,
    outcome: &mut RebuildOutcome,
) -> Result<Result<Option<Recipe>, Ending>, RebuildError> {
    let Some(config) = &recipe.config_source else {
        return Ok(Ok(None));
    };
    let (path, parse_with) = (config.path.clone(), config.clone());
    // Reading and parsing (bounded: at most MAX_CONFIG_BYTES, expanding to at most MAX_CONFIG_NODES) off
    // the async threads.
    let read = tokio::task::spawn_blocking(move || {
        let bytes = (|| -> std::io::Result<Vec<u8>> {
            let dir = crate::safe_fs::open_dir(&checkout)?;
            let file = crate::safe_fs::open_beneath(&dir, &path)?;
            let mut bytes = Vec::new();
            file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        })();
        bytes.map(|b| {
            let parsed =
                (b.len() as u64 <= MAX_CONFIG_BYTES).then(|| steps_from_config(&b, &parse_with));
            (b.len(), parsed)
        })
    })
    .await
    .map_err(|e| RebuildError::Infrastructure(format!("reading the build config: {e}")))?;
    let missing = |why: String| {
        Ok(Err(unrebuildable(
            UnrebuildableReason::Other("no-build-config".into()),
            why,
        )))
    };
    let (steps, secrets) = match read {
        Ok((_, None)) => {
            return missing(format!(
                "{} in the recorded commit is over {MAX_CONFIG_BYTES} bytes, more than a build config",
                config.path
            ))
        }
        Ok((_, Some(Ok(found)))) => found,
        Ok((_, Some(Err(why)))) => {
            return Ok(Err(unrebuildable(
                UnrebuildableReason::Other("bad-build-config".into()),
                why,
            )))
        }
        Err(e) => {
            return missing(format!(
                "the provenance says the steps are in {}, which the recorded commit does not hold as a \
                 plain file ({e})",
                config.path
            ))
        }
    };
    let run = Recipe {
        steps,
        secrets,
        config_source: None,
        ..recipe.clone()
    };
    if let Err(u) = run.check() {
        return Ok(Err(unrebuildable(
            u.reason,
            format!("{} (steps read from {})", u.detail, config.path),
        )));
    }
    // Pinned is not enough: a step runs only an image the provenance says the build resolved.
    let digest = |image: &str| image.rsplit_once('@').map(|(_, d)| d.to_string());
    if let Some(step) = run.steps.iter().find(|s| {
        !config
            .pinned_images
            .iter()
            .any(|p| digest(p) == digest(&s.image))
    }) {
        return Ok(Err(unrebuildable(
            UnrebuildableReason::UnpinnedImage,
            format!(
                "step {:?} of {} runs {}, which the provenance does not say the build resolved (its \
                 resolvedDependencies name {})",
                step.name,
                config.path,
                step.image,
                config.pinned_images.join(", ")
            ),
        )));
    }
    outcome.steps_from = Some(format!(
        "{} in the recorded commit {} (the provenance records no steps)",
        config.path,
        recipe.source.as_ref().map_or("", |s| s.commit.as_str())
    ));
    Ok(Ok(Some(run)))
}
