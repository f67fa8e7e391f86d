//! The job page: a verdict in full (steps with their logs, subjects with their states and why), or, for
//! a verdict an older reprod wrote, what its record kept.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use percent_encoding::utf8_percent_encode;

use super::{error_page, html, unavailable, PATH, SEGMENT};
use crate::daemon::shared::Shared;
use crate::store::VerdictRecord;
use crate::verdict::{SubjectState, Verdict};

pub struct StepRow {
    pub name: String,
    pub image: String,
    pub exit_code: String,
    pub termination: String,
    pub duration: String,
    pub log_href: Option<String>,
    pub log_tail: String,
}

pub struct SubjectRow {
    pub name: String,
    pub digest: String,
    /// `matched`, `differs`, `not-found` or `not-compared`.
    pub state: &'static str,
    pub rebuilt: String,
    pub why: Vec<String>,
    pub diffs: Vec<DiffRow>,
}

/// One of the first differences of a subject, and its unified diff (empty unless both sides are text).
pub struct DiffRow {
    pub line: String,
    pub text_diff: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    id: String,
    state: String,
    attempt: u32,
    last_error: String,
    status: String,
    reason: String,
    detail: String,
    recorded_at: String,
    source: String,
    signature: String,
    provenance_href: Option<String>,
    steps: Vec<StepRow>,
    subjects: Vec<SubjectRow>,
    /// (kind, href)
    attestations: Vec<(String, String)>,
    /// (name, href)
    artifacts: Vec<(String, String)>,
    /// Where the verdict's publication to registries stands, one line; empty when not taken up.
    published: String,
    /// A job still queued or running: the page reloads itself until it has a verdict.
    refresh: bool,
    /// What an in-process worker is running for it now (`step 2/3 build for 12s`), and its newest lines.
    running: String,
    running_tail: String,
}

/// Text from a verdict for a page, with control characters made visible (see [`crate::text::inert`]).
fn text(s: &str) -> String {
    crate::text::inert(s).into_owned()
}

/// The explanation of a differing subject: the summary line, then the first differences, each with its
/// unified text diff when the files are text.
fn explanation_lines(x: &crate::verdict::Explanation) -> (Vec<String>, Vec<DiffRow>) {
    let why = vec![text(&x.summary_line())];
    let mut diffs = Vec::new();
    if x.error.is_none() {
        for d in x.first_differences.iter().take(10) {
            diffs.push(DiffRow {
                line: text(&format!(
                    "{} {} {}: {} → {}",
                    d.class.as_str(),
                    d.location,
                    d.field,
                    d.a.as_deref().unwrap_or("(absent)"),
                    d.b.as_deref().unwrap_or("(absent)")
                )),
                text_diff: d.text_diff.as_deref().map(text).unwrap_or_default(),
            });
        }
    }
    (why, diffs)
}

fn step_rows(verdict: &Verdict, log_of: impl Fn(usize, &str) -> Option<String>) -> Vec<StepRow> {
    verdict
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepRow {
            log_href: log_of(i, &s.name),
            name: text(&s.name),
            image: text(&s.image),
            exit_code: s.exit_code.to_string(),
            termination: s.termination.as_str().to_string(),
            duration: format!("{:.1}s", s.duration_ms as f64 / 1000.0),
            log_tail: text(&s.log_tail),
        })
        .collect()
}

fn subject_rows(verdict: &Verdict) -> Vec<SubjectRow> {
    verdict
        .subjects
        .iter()
        .map(|s| {
            let (mut why, diffs) = s
                .explanation
                .as_ref()
                .map(explanation_lines)
                .unwrap_or_default();
            if let Some(p) = &s.problem {
                why.insert(0, text(p));
            }
            SubjectRow {
                name: text(&s.name),
                digest: text(&s.digest),
                state: s.state.as_str(),
                rebuilt: match (&s.rebuilt_digest, s.state) {
                    (Some(d), state) if state != SubjectState::Matched => text(d),
                    _ => String::new(),
                },
                why,
                diffs,
            }
        })
        .collect()
}

/// Subjects of a verdict an older reprod wrote (its JSON does not read as today's verdict): what its
/// record kept.
fn recorded_subject_rows(record: &VerdictRecord) -> Vec<SubjectRow> {
    record
        .subjects
        .iter()
        .map(|s| SubjectRow {
            name: text(&s.name),
            digest: text(&s.digest),
            state: s.state(record.status).as_str(),
            rebuilt: String::new(),
            why: vec!["recorded by an earlier reprod: the details are in the job's JSON".into()],
            diffs: Vec::new(),
        })
        .collect()
}

pub(super) async fn job(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let view = match crate::daemon::http::jobs::job_parts(&shared, &id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return error_page(StatusCode::NOT_FOUND, "Unknown job", format!("no job {id}"))
        }
        Err(e) => return unavailable(e.message),
    };
    // The stored JSON is parsed here, at the edge; a verdict an older reprod wrote that does not read as
    // today's is shown from its record.
    // Off the async threads: a remote worker's verdict may be large.
    let raw = view.verdict.clone();
    let verdict: Option<Verdict> = tokio::task::spawn_blocking(move || {
        raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
    })
    .await
    .ok()
    .flatten();
    let enc_id = utf8_percent_encode(&id, SEGMENT).to_string();
    let artifact_href = |a: &str| {
        format!(
            "/v1/jobs/{enc_id}/artifacts/{}",
            utf8_percent_encode(a, PATH)
        )
    };
    let log_of = |i: usize, name: &str| -> Option<String> {
        let prefix = format!("logs/{i:02}-");
        view.artifacts
            .iter()
            .find(|a| a.starts_with(&prefix) || a.as_str() == format!("logs/{name}.log"))
            .map(|a| artifact_href(a))
    };
    let record = view.record.as_ref();
    let (status, reason, detail) = match (&verdict, record) {
        (Some(v), _) => (
            v.status.as_str().to_string(),
            v.reason.clone().unwrap_or_default(),
            v.detail.clone(),
        ),
        (None, Some(r)) => (
            r.status.as_str().to_string(),
            r.reason.clone().unwrap_or_default(),
            r.detail.clone(),
        ),
        (None, None) => Default::default(),
    };
    let running = shared.live.running(&id);
    let page = JobPage {
        running: running
            .as_ref()
            .map(|r| format!("{} for {}s", r.label, r.secs))
            .unwrap_or_default(),
        running_tail: running.map(|r| r.lines.join("\n")).unwrap_or_default(),
        state: view.info.state.name().to_string(),
        attempt: view.info.attempt,
        last_error: view.info.last_error.clone().unwrap_or_default(),
        status,
        reason: text(&reason),
        detail: text(&detail),
        recorded_at: record.map(|r| r.recorded_at.clone()).unwrap_or_default(),
        source: verdict
            .as_ref()
            .and_then(|v| v.source.as_ref())
            .map(|s| format!("{} @ {}", text(&s.uri), text(&s.commit)))
            .unwrap_or_default(),
        signature: verdict
            .as_ref()
            .map(|v| v.provenance.signature.clone())
            .or_else(|| record.and_then(|r| r.signature.clone()))
            .map(|s| text(&s))
            .unwrap_or_default(),
        provenance_href: verdict
            .as_ref()
            .map(|v| v.provenance.sha256.clone())
            .or_else(|| record.and_then(|r| r.provenance_sha256.clone()))
            .map(|s| format!("/v1/provenance/sha256:{s}")),
        steps: verdict
            .as_ref()
            .map(|v| step_rows(v, log_of))
            .unwrap_or_default(),
        subjects: match (&verdict, record) {
            (Some(v), _) => subject_rows(v),
            (None, Some(r)) => recorded_subject_rows(r),
            (None, None) => Vec::new(),
        },
        attestations: record
            .map(|r| {
                r.attestations
                    .iter()
                    .map(|k| (k.clone(), format!("/v1/jobs/{enc_id}/attestations/{k}")))
                    .collect()
            })
            .unwrap_or_default(),
        artifacts: view
            .artifacts
            .iter()
            .map(|a| (a.clone(), artifact_href(a)))
            .collect(),
        refresh: !matches!(view.info.state.name(), "done" | "dead"),
        published: view
            .publication
            .as_ref()
            .map(publication_line)
            .unwrap_or_default(),
        id,
    };
    html(StatusCode::OK, page.render())
}

/// One line for the job page: the state, where it went, and why not.
fn publication_line(p: &crate::wire::Publication) -> String {
    let mut line = p.state.as_str().to_string();
    let to: Vec<String> = p
        .pushed
        .iter()
        .map(|x| format!("{} ({})", x.repository, x.cosign_tag))
        .collect();
    if !to.is_empty() {
        line.push_str(&format!(" to {}", to.join(", ")));
    }
    if let Some(e) = &p.error {
        line.push_str(&format!(" after {} attempt(s): {e}", p.attempts));
    }
    if !p.skipped.is_empty() {
        line.push_str(&format!("; {} image(s) not published", p.skipped.len()));
    }
    text(&line)
}
