//! `reprod rebuild --vary`: rebuild under environment variations and name the one that changes the output.
//!
//! Like reprotest's auto-build, but for container builds: a control build, a second control build a little
//! later (the clock is the one thing that changes), a build with every variation, then one build per
//! variation to find the culprit (and pairs, when no single variation explains the difference).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reprod_sandbox::{Executor, StepSpec};
use serde::Serialize;

use crate::config::Config;
use crate::diff::{self, DiffOptions, DiffReport};
use crate::examine::Admitted;
use crate::oci::Outputs;
use crate::provenance::tekton;
use crate::rebuild::{self, RebuildError, RebuildOptions, StepEnvironment};
use crate::verdict::{Status, Verdict};

/// One property of the build environment that a build should not depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variation {
    /// `SOURCE_DATE_EPOCH` set to another value.
    SourceDateEpoch,
    /// The job workspace mounted at another path (`/workspace` → [`VARIED_WORKSPACE`], in the step's
    /// script, command and arguments too).
    BuildPath,
    /// Another hostname and a domain name.
    Hostname,
    /// `TZ` set to a far-away zone.
    Timezone,
    /// `LANG` and `LC_ALL` set to a non-English locale.
    Locale,
    /// umask 0002 instead of the engine's 0022 (steps with an explicit entrypoint, via `/bin/sh`).
    Umask,
    /// Run as uid:gid 1000:1000 instead of the image's user.
    UserId,
    /// One CPU instead of all (what `nproc` reports).
    CpuCount,
    /// The environment variables in reverse order.
    EnvOrder,
}

impl Variation {
    pub const ALL: [Variation; 9] = [
        Variation::SourceDateEpoch,
        Variation::BuildPath,
        Variation::Hostname,
        Variation::Timezone,
        Variation::Locale,
        Variation::Umask,
        Variation::UserId,
        Variation::CpuCount,
        Variation::EnvOrder,
    ];

    /// The variation named `name` (as [`Variation::name`] writes it).
    pub fn from_name(name: &str) -> Option<Variation> {
        Variation::ALL.into_iter().find(|v| v.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Variation::SourceDateEpoch => "source-date-epoch",
            Variation::BuildPath => "build-path",
            Variation::Hostname => "hostname",
            Variation::Timezone => "timezone",
            Variation::Locale => "locale",
            Variation::Umask => "umask",
            Variation::UserId => "user-id",
            Variation::CpuCount => "cpu-count",
            Variation::EnvOrder => "env-order",
        }
    }
}

/// Where the workspace is mounted under the build-path variation.
pub const VARIED_WORKSPACE: &str = "/build/varied-path/workspace";

/// A set of variations is a step environment: the build path moves the workspace, the others change
/// each step's launch.
impl StepEnvironment for BTreeSet<Variation> {
    fn workspace_root(&self) -> &str {
        if self.contains(&Variation::BuildPath) {
            VARIED_WORKSPACE
        } else {
            tekton::WORKSPACE_ROOT
        }
    }

    fn adjust(&self, step: &mut StepSpec) {
        let set = |env: &mut Vec<(String, String)>, key: &str, value: &str| {
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value.to_string()));
        };
        for v in self {
            match v {
                Variation::SourceDateEpoch => {
                    let current = step
                        .env
                        .iter()
                        .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
                        .and_then(|(_, v)| v.parse::<u64>().ok());
                    let varied = current.map_or(1_234_567_890, |c| c + 86_400 * 397);
                    set(&mut step.env, "SOURCE_DATE_EPOCH", &varied.to_string());
                }
                Variation::Hostname => {
                    step.hostname = Some("reprod-varied-host".into());
                    step.domainname = Some("varied.example.invalid".into());
                }
                Variation::Timezone => set(&mut step.env, "TZ", "XYZ-13:45"),
                Variation::Locale => {
                    set(&mut step.env, "LANG", "fr_CH.UTF-8");
                    set(&mut step.env, "LC_ALL", "fr_CH.UTF-8");
                }
                Variation::Umask => {
                    if let Some(entry) = step.entrypoint.take() {
                        let mut args = entry;
                        args.extend(step.args.take().unwrap_or_default());
                        step.entrypoint = Some(vec![
                            "/bin/sh".into(),
                            "-c".into(),
                            "umask 0002 && exec \"$@\"".into(),
                            "reprod-umask".into(),
                        ]);
                        step.args = Some(args);
                    }
                }
                Variation::UserId => step.user = Some("1000:1000".into()),
                Variation::CpuCount => step.cpuset_cpus = Some("0".into()),
                Variation::EnvOrder => step.env.reverse(),
                // Applied through workspace_root.
                Variation::BuildPath => {}
            }
        }
    }
}

/// One build of the search.
#[derive(Debug, Clone, Serialize)]
pub struct VaryBuild {
    /// `control`, `control-again`, `all`, or the variations applied.
    pub label: String,
    pub variations: Vec<Variation>,
    pub status: Status,
    /// Outputs whose digest differs from the control build's (workspace-relative paths).
    pub differing: Vec<String>,
    pub job_dir: Option<String>,
}

/// What the search found.
#[derive(Debug, Clone, Serialize)]
pub struct VaryReport {
    /// The control build's verdict against the recorded digests.
    pub control: Verdict,
    pub builds: Vec<VaryBuild>,
    /// True when every varied build gave the control build's outputs.
    pub stable: bool,
    /// Each culprit: one variation, or a pair; `clock` is reported as `["clock"]`.
    pub culprits: Vec<Vec<String>>,
    /// Variations under which the build fails outright (not a difference in output, but worth knowing).
    pub breaks: Vec<String>,
    /// The diff between the control build and the first culprit's build, for the first differing image.
    pub diff: Option<DiffReport>,
}

impl VaryReport {
    /// The report when the control build produced nothing to vary (unrebuildable, refused, failed).
    pub fn nothing_to_vary(control: Verdict) -> Self {
        VaryReport {
            control,
            builds: Vec::new(),
            stable: false,
            culprits: Vec::new(),
            breaks: Vec::new(),
            diff: None,
        }
    }

    /// 0 when no variation changes the outputs, 1 when one does, 2 when the control build produced no
    /// outputs to compare (it failed, or the provenance is unrebuildable).
    pub fn exit_code(&self) -> u8 {
        if self.control.outputs.is_none() {
            2
        } else {
            u8::from(!self.stable)
        }
    }

    pub fn human(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "control build: {} against the recorded digests",
            self.control.status.as_str()
        );
        if self.control.outputs.is_none() {
            let _ = writeln!(
                s,
                "nothing to vary: the control build produced no outputs ({})",
                self.control.detail
            );
            return s;
        }
        for b in &self.builds {
            let what = if b.status == Status::BuildFailed {
                "build failed".to_string()
            } else if b.differing.is_empty() {
                "same outputs".to_string()
            } else {
                format!("differs: {}", b.differing.join(", "))
            };
            let _ = writeln!(s, "  {:<28} {what}", b.label);
        }
        if self.stable {
            let _ = writeln!(s, "stable: no variation changed the outputs");
        }
        for c in &self.culprits {
            let _ = writeln!(s, "culprit: {}", c.join(" + "));
        }
        if !self.breaks.is_empty() {
            let _ = writeln!(s, "the build fails under: {}", self.breaks.join(", "));
        }
        if !self.stable && self.culprits.is_empty() {
            let _ = writeln!(s, "no single variation or pair explains the difference");
        }
        if let Some(d) = &self.diff {
            let _ = write!(s, "{}", d.human(20));
        }
        s
    }
}

/// Paths and digests of the outputs, for comparing two builds.
fn fingerprint(outputs: &Outputs) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for image in &outputs.images {
        let digests: Vec<_> = image.entries.iter().map(|e| e.digest.as_str()).collect();
        map.insert(image.path.clone(), digests.join(","));
    }
    for f in &outputs.files {
        map.entry(f.path.clone())
            .or_insert_with(|| f.digest.clone());
    }
    map
}

fn differing(control: &BTreeMap<String, String>, other: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = control.keys().chain(other.keys()).collect();
    keys.into_iter()
        .filter(|k| control.get(*k) != other.get(*k))
        .cloned()
        .collect()
}

struct Built {
    verdict: Verdict,
    fingerprint: BTreeMap<String, String>,
    job_dir: Option<PathBuf>,
}

/// What every build of the search shares: the document is admitted (and its signatures verified) once.
struct Search<'a> {
    config: &'a Config,
    admitted: &'a Admitted,
    executor: &'a dyn Executor,
    base: &'a RebuildOptions<'a>,
    /// The variations tried (`--only`, `--skip`), in [`Variation::ALL`]'s order.
    variations: Vec<Variation>,
}

async fn build(
    search: &Search<'_>,
    variations: &BTreeSet<Variation>,
) -> Result<Built, RebuildError> {
    let opts = RebuildOptions {
        keep_workspace: true,
        environment: variations,
        // The builds are compared with each other; fetching the originals would explain nothing here.
        explain: false,
        ..search.base.clone()
    };
    let outcome =
        rebuild::rebuild(search.config, search.admitted, search.executor, &opts, None).await?;
    let verdict = crate::verdict::decide(search.admitted, outcome);
    let fingerprint = verdict
        .outputs
        .as_ref()
        .map(fingerprint)
        .unwrap_or_default();
    let job_dir = verdict.job_dir.clone().map(PathBuf::from);
    Ok(Built {
        verdict,
        fingerprint,
        job_dir,
    })
}

/// Runs the search. `keep` keeps every build's job directory; otherwise they are removed at the end,
/// also when the search stops on an infrastructure error.
pub async fn vary(
    config: &Config,
    admitted: &Admitted,
    executor: &dyn Executor,
    base: &RebuildOptions<'_>,
    keep: bool,
    variations: &[Variation],
) -> Result<VaryReport, RebuildError> {
    let mut dirs = Vec::new();
    let search = Search {
        config,
        admitted,
        executor,
        base,
        variations: Variation::ALL
            .into_iter()
            .filter(|v| variations.contains(v))
            .collect(),
    };
    let result = run_search(&search, &mut dirs).await;
    cleanup(&dirs, keep).await;
    result
}

async fn run_search(
    search: &Search<'_>,
    dirs: &mut Vec<PathBuf>,
) -> Result<VaryReport, RebuildError> {
    let say = search.base.progress;
    let n = search.variations.len();
    // Control, control again, everything, each alone, all but the breaking ones, then the pairs: the most
    // builds the search can take; it stops as soon as it has its answer.
    let most = 4 + n + n * n.saturating_sub(1) / 2;
    let count = std::sync::atomic::AtomicUsize::new(0);
    let progress = |what: &str| {
        let k = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        say(&format!("vary: build {k} of at most {most}: {what}"));
    };
    let none = BTreeSet::new();
    progress("control");
    let control = build(search, &none).await?;
    let mut report = VaryReport {
        control: control.verdict.clone(),
        builds: Vec::new(),
        stable: true,
        culprits: Vec::new(),
        breaks: Vec::new(),
        diff: None,
    };
    dirs.extend(control.job_dir.iter().cloned());
    if control.verdict.outputs.is_none() {
        // Nothing was built (unrebuildable, failed): there is nothing to vary.
        return Ok(VaryReport::nothing_to_vary(report.control));
    }

    let record = |report: &mut VaryReport, label: String, vars: &[Variation], b: &Built| {
        let diff = differing(&control.fingerprint, &b.fingerprint);
        report.builds.push(VaryBuild {
            label,
            variations: vars.to_vec(),
            status: b.verdict.status,
            differing: if b.verdict.outputs.is_some() {
                diff.clone()
            } else {
                Vec::new()
            },
            job_dir: b.job_dir.as_ref().map(|p| p.display().to_string()),
        });
        if b.verdict.outputs.is_none() {
            None
        } else {
            Some(diff)
        }
    };

    // Time passes: with everything else equal, a difference is the clock's (or randomness's).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    progress("control again, a second later");
    let again = build(search, &none).await?;
    dirs.extend(again.job_dir.iter().cloned());
    if let Some(d) = record(&mut report, "control-again".into(), &[], &again) {
        if !d.is_empty() {
            report.stable = false;
            report.culprits.push(vec!["clock".into()]);
            report.diff = first_image_diff(&control, &again, &d).await;
            return Ok(report);
        }
    }

    let all: BTreeSet<Variation> = search.variations.iter().copied().collect();
    progress(&format!(
        "every variation ({})",
        search
            .variations
            .iter()
            .map(|v| v.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let everything = build(search, &all).await?;
    dirs.extend(everything.job_dir.iter().cloned());
    let all_vec: Vec<Variation> = all.iter().copied().collect();
    if record(&mut report, "all variations".into(), &all_vec, &everything)
        .is_some_and(|d| d.is_empty())
    {
        return Ok(report);
    }

    // Something differs, or the build broke: one variation at a time.
    let mut harmless = Vec::new();
    for &v in &search.variations {
        progress(&format!("{} varied", v.name()));
        let b = build(search, &BTreeSet::from([v])).await?;
        dirs.extend(b.job_dir.iter().cloned());
        match record(&mut report, v.name().into(), &[v], &b) {
            None => report.breaks.push(v.name().into()),
            Some(d) if !d.is_empty() => {
                if report.diff.is_none() {
                    report.diff = first_image_diff(&control, &b, &d).await;
                }
                report.culprits.push(vec![v.name().into()]);
            }
            Some(_) => harmless.push(v),
        }
    }
    if !report.culprits.is_empty() {
        report.stable = false;
    } else if !report.breaks.is_empty() {
        // The all-variations build may have differed only because it broke: retry without the breakers.
        let rest: BTreeSet<Variation> = harmless.iter().copied().collect();
        progress("every variation that does not break the build");
        let b = build(search, &rest).await?;
        dirs.extend(b.job_dir.iter().cloned());
        let label = "all but the breaking".to_string();
        report.stable = record(&mut report, label, &harmless, &b).is_some_and(|d| d.is_empty());
    } else {
        report.stable = false;
    }
    if !report.stable && report.culprits.is_empty() {
        // No single variation: try the pairs of those that built fine on their own.
        'pairs: for (i, &x) in harmless.iter().enumerate() {
            for &y in &harmless[i + 1..] {
                let label = format!("{} + {}", x.name(), y.name());
                progress(&format!("{label} varied"));
                let b = build(search, &BTreeSet::from([x, y])).await?;
                dirs.extend(b.job_dir.iter().cloned());
                if let Some(d) = record(&mut report, label, &[x, y], &b) {
                    if !d.is_empty() {
                        report.diff = first_image_diff(&control, &b, &d).await;
                        report.culprits.push(vec![x.name().into(), y.name().into()]);
                        break 'pairs;
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Diffs the first differing output that is an image between two kept builds (off the async threads:
/// it reads and decompresses every layer).
async fn first_image_diff(a: &Built, b: &Built, differing: &[String]) -> Option<DiffReport> {
    let (da, db) = (a.job_dir.as_ref()?, b.job_dir.as_ref()?);
    let images = &a.verdict.outputs.as_ref()?.images;
    let path = differing
        .iter()
        .find(|p| images.iter().any(|i| &&i.path == p))?;
    let at = |dir: &Path| dir.join("workspace").join(path);
    let (x, y) = (at(da), at(db));
    tokio::task::spawn_blocking(move || diff::diff(&x, &y, &DiffOptions::default()).ok())
        .await
        .ok()
        .flatten()
}

async fn cleanup(dirs: &[PathBuf], keep: bool) {
    if keep {
        return;
    }
    let dirs = dirs.to_vec();
    let _ = tokio::task::spawn_blocking(move || {
        for d in dirs {
            let _ = crate::rebuild::remove_job_dir_blocking(&d);
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use reprod_sandbox::FakeExecutor;

    use super::*;
    use crate::rebuild::tests::{options, sha256_hex, Fixture};

    #[tokio::test]
    async fn the_variation_that_changes_the_output_is_named() {
        let f = Fixture::new();
        let a = f.admitted(&[("app.bin", &sha256_hex(b"tz="))]);
        // A build that writes its time zone into its output.
        let fake = FakeExecutor::new().on_step(|step| {
            let tz = step
                .spec
                .env
                .iter()
                .find(|(k, _)| k == "TZ")
                .map_or("", |(_, v)| v.as_str());
            let root = &step.spec.mounts[0].container_path;
            step.write(&format!("{root}/source/out/app.bin"), format!("tz={tz}"))?;
            Ok(step.exited(0, ""))
        });
        let base = options(&rebuild::Faithful);
        let report = vary(&f.config, &a, &fake, &base, false, &Variation::ALL)
            .await
            .unwrap();
        assert_eq!(report.control.status, Status::Reproducible);
        assert!(!report.stable);
        assert_eq!(report.culprits, vec![vec!["timezone".to_string()]]);
        assert!(report.breaks.is_empty());
        let runs = fake.runs();
        // control, control again, all variations, then each of the nine alone.
        assert_eq!(runs.len(), 3 + Variation::ALL.len());
        assert!(
            runs.iter()
                .any(|r| r.mounts[0].container_path == VARIED_WORKSPACE),
            "the build-path variation moves the workspace"
        );
        assert!(
            runs.iter().any(|r| r.user.as_deref() == Some("1000:1000")),
            "the user-id variation reaches the step"
        );
    }

    #[test]
    fn variations_change_only_what_they_name() {
        let mut spec = StepSpec {
            entrypoint: Some(vec!["/tekton/scripts/00-build".into()]),
            args: Some(vec!["a".into()]),
            env: vec![
                ("SOURCE_DATE_EPOCH".into(), "100".into()),
                ("A".into(), "1".into()),
            ],
            ..StepSpec::new(
                "j",
                "build",
                reprod_sandbox::PinnedImage::parse(crate::rebuild::tests::IMAGE).unwrap(),
                std::path::Path::new("/tmp").into(),
            )
        };
        BTreeSet::from([Variation::SourceDateEpoch, Variation::Umask]).adjust(&mut spec);
        assert_eq!(
            spec.env,
            vec![
                ("A".to_string(), "1".to_string()),
                (
                    "SOURCE_DATE_EPOCH".to_string(),
                    (100 + 86_400 * 397).to_string()
                )
            ]
        );
        assert_eq!(spec.entrypoint.as_ref().unwrap()[0], "/bin/sh");
        assert_eq!(
            spec.args.as_deref().unwrap(),
            ["/tekton/scripts/00-build", "a"],
            "the recorded entrypoint runs under the umask"
        );
        assert_eq!(spec.user, None);
        assert_eq!(
            BTreeSet::from([Variation::Timezone]).workspace_root(),
            tekton::WORKSPACE_ROOT
        );
        assert_eq!(
            BTreeSet::from([Variation::BuildPath]).workspace_root(),
            VARIED_WORKSPACE
        );
    }
}
