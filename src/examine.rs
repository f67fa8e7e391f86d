//! What a provenance document says and whether to believe it: containers split, every signature checked
//! over the exact received bytes, and only then the statements read and normalized.

use serde::Serialize;

use crate::provenance::container::{self, Blobs, Item, Signing};
use crate::provenance::{self, Container, ParseError, Recipe, Subject};
use crate::trust::{self, TrustMaterial, Verification};

/// One statement of a document, with its signature outcome and what reprod makes of it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Where it sits in the document.
    pub at: String,
    pub container: Container,
    pub verification: Verification,
    /// Absent when the statement was not read (a failed signature, or a signature over an artifact).
    pub predicate_type: Option<String>,
    pub subjects: Vec<Subject>,
    /// The normalized recipe, when the family is understood (even if a rebuild would lack something).
    pub recipe: Option<Recipe>,
    /// Why this statement cannot be rebuilt (or was not read), as a reason code and a sentence.
    pub unrebuildable: Option<Problem>,
}

/// A reason code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub reason: String,
    pub detail: String,
}

impl Finding {
    pub fn builder_id(&self) -> Option<&str> {
        self.recipe.as_ref().and_then(|r| r.builder_id.as_deref())
    }
}

/// A document examined and decided once: the statement that stands for it, and whether its signature and
/// the trust policy let it through. Intake, the worker and the check of a remote worker's verdict all read
/// a document through this, so they cannot disagree about which statement is rebuilt.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// sha256 (hex) of the document's bytes exactly as received.
    pub sha256: String,
    pub findings: Vec<Finding>,
    /// Index of the statement rebuilt: the first that yields a recipe, else the first.
    pub chosen: usize,
    /// Why the document must be refused before anything is fetched or run (signature, policy).
    pub refusal: Option<Problem>,
}

impl Admitted {
    /// The statement that stands for the document.
    pub fn finding(&self) -> &Finding {
        &self.findings[self.chosen]
    }

    /// Whether the trust policy vouches for the statement that stands for the document as a statement
    /// about `images` (some of its subjects' names: the trust rule for those decides; see
    /// [`TrustConfig::vouches`](crate::trust::policy::TrustConfig::vouches)).
    pub fn vouched_for(&self, config: &crate::config::Config, images: &[&str]) -> bool {
        let f = self.finding();
        self.refusal.is_none()
            && config
                .trust
                .vouches(&f.verification, images, f.builder_id())
    }

    /// The step images a trust rule lets run with the nested profile (see
    /// [`TrustConfig::nested_steps`](crate::trust::policy::TrustConfig::nested_steps)).
    pub fn nested_steps(&self, config: &crate::config::Config) -> Vec<String> {
        if self.refusal.is_some() {
            return Vec::new();
        }
        let f = self.finding();
        config
            .trust
            .nested_steps(&f.verification, &image_names(&f.subjects), f.builder_id())
    }
}

/// Examines a document and decides which statement is rebuilt and whether it may be.
pub fn admit(
    config: &crate::config::Config,
    bytes: &[u8],
    blobs: &dyn Blobs,
    material: &TrustMaterial,
) -> Result<Admitted, ParseError> {
    let findings = examine(bytes, config.max_document_bytes, blobs, material)?;
    // A document may hold several statements (JSON Lines, Cloud Build's list): the first that is
    // provenance reprod can read is the one rebuilt.
    let chosen = findings
        .iter()
        .position(|f| f.recipe.is_some())
        .unwrap_or(0);
    let Some(finding) = findings.get(chosen) else {
        return Err(ParseError::NotAStatement(
            "the document holds no statement".into(),
        ));
    };
    let refusal = refusal(config, finding);
    let mut findings = findings;
    for f in &mut findings {
        if let Some(problem) = without_builder(config, f) {
            f.unrebuildable = Some(problem);
        }
    }
    Ok(Admitted {
        sha256: crate::oci::sha256_bytes(bytes)["sha256:".len()..].to_string(),
        chosen,
        refusal,
        findings,
    })
}

/// A complete BuildKit recipe on a rebuilder with no BuildKit builder: said, never a verdict on the image.
fn without_builder(config: &crate::config::Config, f: &Finding) -> Option<Problem> {
    let recipe = f.recipe.as_ref()?;
    if f.unrebuildable.is_some()
        || recipe.buildkit.is_none()
        || config.builders.buildkit.configured()
    {
        return None;
    }
    Some(Problem {
        reason: crate::provenance::UnrebuildableReason::NoBuilder("buildkit".into()).to_string(),
        detail:
            "the BuildKit recipe is complete, but this rebuilder has no BuildKit builder to run it \
                 (configure [builders.buildkit] with a pinned builder image); nothing was rebuilt"
                .into(),
    })
}

/// Signature and policy: `Some` when the provenance must be refused before anything runs.
fn refusal(config: &crate::config::Config, finding: &Finding) -> Option<Problem> {
    let refuse = |reason: &str, detail: String| {
        Some(Problem {
            reason: reason.to_string(),
            detail,
        })
    };
    match &finding.verification {
        Verification::Failed { reason } => refuse("signature-failed", reason.clone()),
        Verification::Unsigned { reason } if config.trust.require_signature => refuse(
            "unsigned",
            format!("{reason}; trust.require_signature is on"),
        ),
        Verification::Unverifiable { reason } if config.trust.require_signature => refuse(
            "unverified",
            format!("{reason}; trust.require_signature is on"),
        ),
        Verification::Verified { signers } => config
            .trust
            .admit(
                signers,
                &image_names(&finding.subjects),
                finding.builder_id(),
            )
            .err()
            .and_then(|e| refuse("policy", e.to_string())),
        _ => None,
    }
}

/// Verifies one item's signatures with `material`: here is where a container's items meet their
/// verification (trust knows envelopes and bundles, not containers).
fn verify_item(item: &Item, material: &TrustMaterial) -> Verification {
    match &item.signing {
        Signing::Unsigned => Verification::Unsigned {
            reason: format!("a {} carries no signature", item.container),
        },
        Signing::Dsse { envelope, legacy } => trust::verify_envelope(envelope, *legacy, material),
        Signing::Bundle(bundle) => trust::verify_bundle(bundle, material),
    }
}

/// Applies the trust policy to verified findings, as a rebuild does before running anything, so that
/// `verify-provenance` never calls verified what `rebuild` would refuse.
pub fn settle(policy: &crate::trust::policy::TrustConfig, findings: &mut [Finding]) {
    for f in findings {
        let names = image_names(&f.subjects);
        let settled = policy.settle(&f.verification, &names, f.builder_id());
        f.verification = settled;
    }
}

/// The subjects' names, as the trust policy's image patterns match them.
fn image_names(subjects: &[Subject]) -> Vec<&str> {
    subjects.iter().map(|s| s.name.as_str()).collect()
}

/// Examines a document. `Err` only when no statement can be found at all.
pub fn examine(
    bytes: &[u8],
    max_bytes: usize,
    blobs: &dyn Blobs,
    material: &TrustMaterial,
) -> Result<Vec<Finding>, ParseError> {
    let items = container::decode(bytes, max_bytes, blobs)?;
    Ok(items
        .iter()
        .map(|item| finding(item, max_bytes, material))
        .collect())
}

fn finding(item: &Item, max_bytes: usize, material: &TrustMaterial) -> Finding {
    let mut f = Finding {
        at: item.at.clone(),
        container: item.container.clone(),
        verification: verify_item(item, material),
        predicate_type: None,
        subjects: Vec::new(),
        recipe: None,
        unrebuildable: None,
    };
    if let Verification::Failed { .. } = f.verification {
        f.unrebuildable = Some(Problem {
            reason: "signature-failed".into(),
            detail: "the statement was not read: its signature did not verify".into(),
        });
        return f;
    }
    if let container::Signing::Bundle(b) = &item.signing {
        if let crate::trust::bundle::Content::MessageSignature { sha256, .. } = &b.content {
            f.unrebuildable = Some(Problem {
                reason: "not-provenance: message-signature".into(),
                detail: format!(
                    "the bundle signs an artifact (sha256:{}), not an attestation: there is no statement to rebuild",
                    hex::encode(sha256)
                ),
            });
            return f;
        }
    }
    let statement = match item.statement(max_bytes) {
        Ok(s) => s,
        Err(e) => {
            f.unrebuildable = Some(Problem {
                reason: "invalid-statement".into(),
                detail: e.to_string(),
            });
            return f;
        }
    };
    if let (Some(digest), true) = (&item.attached_to, f.verification.is_verified()) {
        if !statement
            .subjects
            .iter()
            .any(|s| s.sha256().as_deref() == Some(digest.as_str()))
        {
            f.verification = Verification::Failed {
                reason: format!(
                    "the statement's subjects do not include {digest}, the image this provenance is attached to"
                ),
            };
        }
    }
    f.predicate_type = Some(statement.predicate_type.clone());
    f.subjects = statement.subjects.clone();
    match provenance::normalize(&statement) {
        Ok(recipe) => {
            if let Err(u) = recipe.check() {
                f.unrebuildable = Some(Problem {
                    reason: u.reason.to_string(),
                    detail: u.detail,
                });
            }
            f.recipe = Some(recipe);
        }
        Err(u) => {
            f.unrebuildable = Some(Problem {
                reason: u.reason.to_string(),
                detail: u.detail,
            })
        }
    }
    f
}

/// The findings for a human: one block per statement.
pub fn human(origin: &str, findings: &[Finding]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{origin}: {} statement(s)", findings.len());
    for (i, f) in findings.iter().enumerate() {
        let _ = writeln!(out, "\n[{}] {} ({})", i + 1, f.at, f.container);
        let _ = writeln!(out, "  signature: {}", f.verification.summary());
        if let Some(pt) = &f.predicate_type {
            let _ = writeln!(
                out,
                "  predicate: {}",
                if pt.is_empty() { "(empty)" } else { pt }
            );
        }
        for s in &f.subjects {
            let digests: Vec<String> = s.digests.iter().map(|(a, h)| format!("{a}:{h}")).collect();
            let name = if s.name.is_empty() {
                "(unnamed)"
            } else {
                &s.name
            };
            let _ = writeln!(out, "  subject:   {name} {}", digests.join(" "));
        }
        if let Some(r) = &f.recipe {
            let _ = writeln!(out, "  build:     {}", r.build_type.uri());
            if let Some(b) = &r.builder_id {
                let _ = writeln!(out, "  builder:   {b}");
            }
            match &r.source {
                Some(src) => {
                    let _ = writeln!(out, "  source:    {} @ {}", src.uri, src.commit);
                }
                None => {
                    let _ = writeln!(out, "  source:    (none recorded)");
                }
            }
            for t in &r.tasks {
                let _ = writeln!(out, "  task {}: {}", t.name, t.role.describe());
            }
            if let Some(plan) = &r.buildkit {
                human_buildkit(&mut out, plan);
            }
            for st in &r.steps {
                let _ = writeln!(out, "  step {}: {}", st.name, st.image);
                if let Some(c) = &st.command {
                    let _ = writeln!(out, "    command: {c} {}", st.args.join(" "));
                } else if !st.args.is_empty() {
                    let _ = writeln!(out, "    args: {}", st.args.join(" "));
                }
                if let Some(sc) = &st.script {
                    let first = sc
                        .lines()
                        .find(|l| !l.starts_with("#!"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "    script: {} line(s), first: {first}",
                        sc.lines().count()
                    );
                }
            }
        }
        match &f.unrebuildable {
            Some(p) => {
                let _ = writeln!(out, "  rebuild:   no: {}: {}", p.reason, p.detail);
            }
            None => {
                let _ = writeln!(out, "  rebuild:   yes");
            }
        }
    }
    out
}

/// The BuildKit plan, for `verify-provenance`.
fn human_buildkit(out: &mut String, plan: &crate::provenance::BuildKitPlan) {
    use crate::provenance::{BuildKitContext, BuildKitMode};
    use std::fmt::Write;
    let mode = match plan.mode {
        BuildKitMode::Max => "max",
        BuildKitMode::Min => "min",
    };
    let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not recorded)".into());
    let _ = writeln!(
        out,
        "  buildkit:  mode={mode}, frontend {}, Dockerfile {}, platform {}",
        or(&plan.frontend),
        or(&plan.dockerfile),
        or(&plan.platform)
    );
    let _ = match &plan.context {
        BuildKitContext::Git { uri, commit } => {
            writeln!(out, "  context:   git {uri} @ {commit} (fetched by BuildKit)")
        }
        BuildKitContext::LocalWithVcs {
            uri,
            revision,
            dirty,
        } => writeln!(
            out,
            "  context:   a local checkout of {uri} at {revision} (a hint from BuildKit's vcs metadata{})",
            if *dirty { "; it had uncommitted changes" } else { "" }
        ),
        BuildKitContext::Local => writeln!(out, "  context:   a local directory (no source recorded)"),
    };
    for (k, v) in &plan.args {
        let _ = writeln!(out, "  arg:       {k}={v}");
    }
    for m in &plan.materials {
        let _ = writeln!(
            out,
            "  material:  {} {}{}",
            m.uri,
            m.digest.as_deref().unwrap_or("(no digest)"),
            m.not_an_input
                .as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        );
    }
}
