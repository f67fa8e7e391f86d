//! A BuildKit rebuild: the recorded build request run by the operator's BuildKit builder
//! (`[builders.buildkit]`) as one step in the nested profile. Its base images are pulled through the job's
//! build network, each pinned by a source policy to the digest the provenance recorded (no registry is
//! asked what a tag means now); its exporter options are read from the published image; what it exports is
//! an OCI layout whose platform manifest is compared with the subject, never the index.

mod exporter;
mod flags;
mod policy;

use super::{unrebuildable, Job, JobDirs, RebuildError};
use crate::provenance::{Recipe, Step, UnrebuildableReason};
use crate::verdict::{Ending, RebuildOutcome};

use exporter::Exporter;
use flags::OUT_DIR;

/// The builder step's script: the build request is its arguments, never part of its text.
const SCRIPT: &str = "#!/bin/sh
# reprod's BuildKit builder step: the recorded build request is \"$@\" (docker buildx arguments).
set -e
export HOME=/tmp
reprod-buildkitd
# Every base image pinned to the digest the provenance recorded (written by reprod when a FROM names a tag).
if [ -f /workspace/buildkit-policy.json ]; then
  export EXPERIMENTAL_BUILDKIT_SOURCE_POLICY=/workspace/buildkit-policy.json
fi
out=/workspace/buildkit-out
mkdir -p \"$out\"
{ docker version --format 'dockerd {{.Server.Version}}'; docker buildx version; } > \"$out/version\" 2>&1 || true
# BuildKit fetched a git context without its .git directory; the checkout has one.
rm -rf /workspace/source/.git
docker \"$@\"
mkdir \"$out/image\"
tar -xf \"$out/image.tar\" -C \"$out/image\"
rm \"$out/image.tar\"
";

/// The source policy's file in the job workspace (read by the step's script).
const POLICY_FILE: &str = "buildkit-policy.json";

/// The largest version report read back from the builder.
const MAX_VERSION_BYTES: u64 = 1024;

/// For a BuildKit recipe: the recipe with the one builder step that runs its build request (its base
/// images pinned by a source policy written into the workspace), noted in `outcome` (`steps_from`); or
/// why it cannot be rebuilt here. `None` for every other recipe.
pub(super) async fn builder_step(
    job: &Job<'_>,
    recipe: &Recipe,
    outcome: &mut RebuildOutcome,
) -> Result<Result<Option<Recipe>, Ending>, RebuildError> {
    let Some(plan) = &recipe.buildkit else {
        return Ok(Ok(None));
    };
    let builder = &job.config.builders.buildkit;
    if !builder.configured() {
        return Ok(Err(unrebuildable(
            UnrebuildableReason::NoBuilder("buildkit".into()),
            "no [builders.buildkit] is configured",
        )));
    }
    if !granted(job) {
        return Ok(Err(unrebuildable(
            UnrebuildableReason::Other("builder-not-granted".into()),
            "the BuildKit builder runs in the nested profile, which [builders.buildkit] gives only to \
             documents the trust policy vouches for (documents = \"vouched\"), and it does not vouch for \
             this one (BuildKit writes its provenance unsigned); set documents = \"any\" to rebuild \
             unsigned BuildKit provenance",
        )));
    }
    if let Some(platform) = plan
        .platform
        .as_deref()
        .filter(|p| *p != crate::oci::host_platform())
    {
        return Ok(Err(unrebuildable(
            UnrebuildableReason::Other("platform-unavailable".into()),
            format!(
                "the build was for {platform}; this rebuilder builds {} only (no emulation)",
                crate::oci::host_platform()
            ),
        )));
    }
    (job.opts.progress)("reading the exporter options from the published image");
    let exporter = match published_exporter(job).await? {
        Ok(e) => e,
        Err(why) => {
            return Ok(Err(unrebuildable(
                UnrebuildableReason::Other("exporter-unknown".into()),
                why,
            )))
        }
    };
    let args = match flags::build_args(plan, &exporter) {
        Ok(a) => a,
        Err(e) => return Ok(Err(unrebuildable(e.reason, e.detail))),
    };
    let bases = policy::base_images(plan);
    if let Some((purl, _)) = bases.iter().find(|(_, digest)| digest.is_none()) {
        return Ok(Err(unrebuildable(
            UnrebuildableReason::UnpinnedImage,
            format!(
                "the base image {} has no recorded digest",
                purl.repository()
            ),
        )));
    }
    if !bases.is_empty() && !super::network::wanted(&super::network::grant(job)) {
        return Ok(Err(unrebuildable(
            UnrebuildableReason::Other("needs-build-network".into()),
            format!(
                "the build pulls {} base image{} ({}) by digest through the build network, and this \
                 document is granted none: grant their registries ([sandbox.network] or a rule, or \
                 `reprod rebuild --network proxy --allow REGISTRY`)",
                bases.len(),
                if bases.len() == 1 { "" } else { "s" },
                bases
                    .iter()
                    .map(|(p, _)| p.repository())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )));
    }
    let pinned = bases.iter().filter(|(p, _)| p.pinned.is_none()).count();
    if let Some(policy) = policy::pinning_policy(&bases) {
        let path = job.dirs.path(JobDirs::WORKSPACE).join(POLICY_FILE);
        let bytes = serde_json::to_vec_pretty(&policy).unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut f = crate::safe_fs::create_new(&path, 0o644)?;
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .await
        .map_err(|e| RebuildError::Infrastructure(e.to_string()))?
        .map_err(|e| RebuildError::Infrastructure(format!("writing the source policy: {e}")))?;
    }
    outcome.steps_from = Some(format!(
        "the BuildKit build request of the provenance (frontend {}, {}, {} recorded option{}, {} base \
         image{}, {pinned} named by tag and pinned by a source policy to the recorded digest), run by \
         reprod's builder {} with the exporter options of the published image ({})",
        plan.frontend.as_deref().unwrap_or("dockerfile.v0"),
        plan.dockerfile.as_deref().unwrap_or("Dockerfile"),
        plan.args.len(),
        if plan.args.len() == 1 { "" } else { "s" },
        bases.len(),
        if bases.len() == 1 { "" } else { "s" },
        builder.image,
        exporter.output_options()
    ));
    let step = Step {
        name: "buildkit".into(),
        image: builder.image.clone(),
        script: Some(SCRIPT.into()),
        command: None,
        args,
        env: Vec::new(),
        working_dir: Some(flags::SOURCE_DIR.into()),
        task: None,
    };
    Ok(Ok(Some(Recipe {
        steps: vec![step],
        ..recipe.clone()
    })))
}

/// The builder's repository, when this job's BuildKit recipe may run it in the nested profile (checked
/// by [`builder_step`] before any step runs).
pub(super) fn nested_builder(job: &Job<'_>, recipe: &Recipe) -> Option<String> {
    recipe.buildkit.as_ref()?;
    if !granted(job) {
        return None;
    }
    let image = reprod_sandbox::PinnedImage::parse(&job.config.builders.buildkit.image).ok()?;
    Some(image.repository().to_string())
}

/// Whether `[builders.buildkit]` rebuilds this document (its `documents` setting).
fn granted(job: &Job<'_>) -> bool {
    use crate::builders::BuilderDocuments;
    let names: Vec<String> = crate::verdict::subjects_of(job.admitted)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match job.config.builders.buildkit.documents {
        BuilderDocuments::Any => true,
        BuilderDocuments::Vouched => job.admitted.vouched_for(job.config, &names),
    }
}

/// The exporter options of the image the provenance's subject names, read from its published platform
/// manifest (from a mirror, a registry on `images.originals_from`, or the registry the document was
/// found in). `Err` says why they cannot be told.
async fn published_exporter(job: &Job<'_>) -> Result<Result<Exporter, String>, RebuildError> {
    let subjects = crate::verdict::subjects_of(job.admitted);
    let Some(subject) = subjects.first() else {
        return Ok(Err("the provenance names no subject".into()));
    };
    // The registries the operator named as where documents come from: `reprod rebuild docker://…`'s, and
    // the watched ones (plain HTTP where the watch says so).
    let watched = &job.config.server.watch;
    let mut named: Vec<String> = watched.iter().map(|w| w.registry.clone()).collect();
    if let Some(found_in) = job.opts.origin.strip_prefix("docker://") {
        named.push(crate::oci::registry_of(found_in).to_string());
    }
    let source = super::explain::OriginalSource::of(
        job.config,
        &super::explain::subject_repository(&subject.name),
        &named,
    );
    let config = job.config.clone();
    let plain_http: Vec<String> = watched
        .iter()
        .filter(|w| w.insecure)
        .map(|w| w.registry.clone())
        .collect();
    let digest = subject.digest.clone();
    let deadline = job.deadline;
    let read = tokio::task::spawn_blocking(move || -> Result<Exporter, String> {
        source.check().map_err(|e| {
            format!(
                "the exporter options (compression, media types, rewritten timestamps) are read from the \
                 published image, and it cannot be read: {e}"
            )
        })?;
        let from = source.repository;
        let registry = crate::oci::registry_of(&from);
        let mut limits = config.images.fetch_limits(registry);
        limits.insecure |= plain_http.iter().any(|r| r == registry);
        limits.timeout = limits
            .timeout
            .min(deadline.saturating_duration_since(std::time::Instant::now()));
        let bytes = crate::oci::fetch_manifest(&format!("{from}@{digest}"), &limits).map_err(|e| {
            format!(
                "the exporter options are read from the published image, and its manifest could not be \
                 read ({e}); nothing was rebuilt"
            )
        })?;
        Exporter::from_manifest(&bytes)
    })
    .await
    .map_err(|e| RebuildError::Infrastructure(format!("reading the published manifest: {e}")))?;
    Ok(read)
}

/// Adds to `outcome`'s `steps_from` what the builder said it is (dockerd's and buildx's versions): the
/// provenance does not name the BuildKit that made the original.
pub(super) async fn note_builder_version(job: &Job<'_>, outcome: &mut RebuildOutcome) {
    let dir = job
        .dirs
        .path(JobDirs::WORKSPACE)
        .join(OUT_DIR.trim_start_matches("/workspace/"));
    let read = tokio::task::spawn_blocking(move || -> Option<String> {
        use std::io::Read;
        let dir = crate::safe_fs::open_dir(&dir).ok()?;
        let file = crate::safe_fs::open_beneath(&dir, "version").ok()?;
        let mut text = String::new();
        file.take(MAX_VERSION_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        (!text.is_empty()).then(|| crate::text::inert_line(&text).into_owned())
    });
    if let (Ok(Some(version)), Some(from)) = (read.await, outcome.steps_from.as_mut()) {
        from.push_str(&format!("; the builder reported: {version}"));
    }
}
