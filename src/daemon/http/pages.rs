//! Server-rendered pages: dashboard, image history, job detail, and an Atom feed of verdicts. Plain HTML and
//! one stylesheet; no script. Templates are compiled in (askama) and escape every value: image names, logs
//! and reasons come from provenance and builds, and are shown as text.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reprod_jobs::Queue;

use crate::daemon::{blocking, Shared};
use crate::store::{ListQuery, VerdictRecord};
use crate::verdict::{Status, SubjectState, Verdict};

const STYLE: &str = include_str!("../../../templates/style.css");
const RECENT: usize = 25;
const FEED_ENTRIES: usize = 50;

/// Everything but unreserved characters and the `/:@` image names are made of.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'\'')
    .add(b'&')
    .add(b'+')
    .add(b';')
    .add(b'=');

pub fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route("/", get(dashboard))
        .route("/images/{*name}", get(image))
        .route("/jobs/{id}", get(job))
        .route("/feed.atom", get(feed))
        .route("/style.css", get(style))
}

/// [`PATH`] and `/`: a name becomes one path segment, so no `..` inside it can climb out of `/images/`.
/// (`.` and `..` themselves are not image names: `store::is_image_name`.)
const SEGMENT: &AsciiSet = &PATH.add(b'/');

pub fn image_href(name: &str) -> String {
    format!("/images/{}", utf8_percent_encode(name, SEGMENT))
}

fn job_href(job: &str) -> String {
    format!("/jobs/{}", utf8_percent_encode(job, SEGMENT))
}

/// Text XML 1.0 can carry: its forbidden control characters become U+FFFD (a hostile name must not make
/// the feed unreadable for everyone).
/// Subjects whose state a feed entry lists.
const FEED_SUBJECTS: usize = 10;

fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// A verdict in a table.
pub struct Row {
    pub job: String,
    pub job_href: String,
    pub recorded_at: String,
    pub status: &'static str,
    pub reason: String,
    /// (name, href)
    pub images: Vec<(String, String)>,
    /// (digest, subject state)
    pub digests: Vec<(String, &'static str)>,
}

impl Row {
    fn of(r: &VerdictRecord) -> Self {
        let mut digests: Vec<(String, &'static str)> = Vec::new();
        for s in &r.subjects {
            if !digests.iter().any(|(d, _)| *d == s.digest) {
                digests.push((
                    crate::text::inert(&s.digest).into_owned(),
                    s.state(r.status).as_str(),
                ));
            }
        }
        Row {
            job: r.job.clone(),
            job_href: job_href(&r.job),
            recorded_at: r.recorded_at.clone(),
            status: r.status.as_str(),
            reason: r.reason.clone().unwrap_or_default(),
            images: r
                .images()
                .into_iter()
                .map(|n| (n.to_string(), image_href(n)))
                .collect(),
            digests,
        }
    }
}

pub struct WorkerRow {
    pub name: String,
    pub job: String,
    pub job_href: String,
    pub seen_secs_ago: u64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    counts: Vec<(String, u64)>,
    total: u64,
    rate: String,
    rows: Vec<Row>,
    queue: reprod_jobs::QueueStats,
    workers: Vec<WorkerRow>,
    key_id: String,
}

#[derive(Template)]
#[template(path = "image.html")]
struct ImagePage {
    name: String,
    feed_href: String,
    rows: Vec<Row>,
    older: Option<String>,
}

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
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

pub struct FeedEntry {
    pub id: String,
    pub title: String,
    pub link: String,
    pub updated: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "feed.xml")]
struct Feed {
    /// The feed's own URL (its id), with its filter.
    own: String,
    base: String,
    updated: String,
    entries: Vec<FeedEntry>,
}

fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    match page {
        Ok(body) => (status, [("content-type", "text/html; charset=utf-8")], body).into_response(),
        Err(e) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Rendering failed",
            e.to_string(),
        ),
    }
}

fn error_page(status: StatusCode, title: &str, message: String) -> Response {
    let page = ErrorPage {
        title: title.to_string(),
        message,
    };
    match page.render() {
        Ok(body) => (status, [("content-type", "text/html; charset=utf-8")], body).into_response(),
        Err(_) => (status, page.message).into_response(),
    }
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The store cannot be read",
        e.to_string(),
    )
}

async fn style() -> Response {
    ([("content-type", "text/css; charset=utf-8")], STYLE).into_response()
}

async fn dashboard(State(shared): State<Arc<Shared>>) -> Response {
    let found = blocking(&shared, |s| -> Result<_, String> {
        let counts = s.store.counts().map_err(|e| e.to_string())?;
        let recent = s
            .store
            .list(
                &ListQuery {
                    limit: RECENT,
                    ..ListQuery::default()
                },
                RECENT,
            )
            .map_err(|e| e.to_string())?;
        let queue = s.queue.stats().map_err(|e| e.to_string())?;
        Ok((counts, recent.records, queue))
    })
    .await;
    let (counts, recent, queue) = match found {
        Ok(f) => f,
        Err(e) => return unavailable(e),
    };
    let total = counts.iter().map(|(_, n)| n).sum();
    let count = |s: Status| {
        counts
            .iter()
            .find(|(k, _)| k == s.as_str())
            .map_or(0, |(_, n)| *n)
    };
    // Rebuilds that ran: compared, or failed in a recorded step.
    let attempted =
        count(Status::Reproducible) + count(Status::Unreproducible) + count(Status::BuildFailed);
    let rate = if attempted == 0 {
        "no rebuilds yet".to_string()
    } else {
        format!(
            "{:.1}% ({} of {} rebuilds)",
            100.0 * count(Status::Reproducible) as f64 / attempted as f64,
            count(Status::Reproducible),
            attempted
        )
    };
    let workers = shared
        .live_workers()
        .into_iter()
        .map(|(name, seen)| WorkerRow {
            name,
            job_href: seen.job.as_deref().map(job_href).unwrap_or_default(),
            job: seen.job.unwrap_or_default(),
            seen_secs_ago: seen.last_seen.elapsed().as_secs(),
        })
        .collect();
    html(
        StatusCode::OK,
        DashboardPage {
            counts,
            total,
            rate,
            rows: recent.iter().map(Row::of).collect(),
            queue,
            workers,
            key_id: shared.signer.key_id().to_string(),
        }
        .render(),
    )
}

#[derive(serde::Deserialize)]
struct ImageQuery {
    cursor: Option<u64>,
}

async fn image(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    query: Result<Query<ImageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Bad cursor",
            "the `cursor` parameter must be one this page linked to".into(),
        );
    };
    let q = ListQuery {
        image: Some(name.clone()),
        before: query.cursor,
        limit: 100,
        ..ListQuery::default()
    };
    let page = match blocking(&shared, move |s| s.store.list(&q, super::read::MAX_SCAN)).await {
        Ok(p) => p,
        Err(e) => return unavailable(e),
    };
    if page.records.is_empty() && query.cursor.is_none() {
        return error_page(
            StatusCode::NOT_FOUND,
            "Unknown image",
            format!("no verdict names the image {name}"),
        );
    }
    let older = page
        .next
        .map(|n| format!("{}?cursor={n}", image_href(&name)));
    html(
        StatusCode::OK,
        ImagePage {
            feed_href: format!(
                "/feed.atom?image={}",
                utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC)
            ),
            rows: page.records.iter().map(Row::of).collect(),
            name,
            older,
        }
        .render(),
    )
}

/// Text from a verdict for a page, with control characters made visible (see [`crate::text::inert`]).
fn text(s: &str) -> String {
    crate::text::inert(s).into_owned()
}

/// The explanation of a differing subject, line by line: the summary, then the first differences.
fn explanation_lines(x: &crate::verdict::Explanation) -> Vec<String> {
    let mut why = vec![text(&x.summary_line())];
    if x.error.is_none() {
        for d in x.first_differences.iter().take(10) {
            why.push(text(&format!(
                "{} {} {}: {} → {}",
                d.class.as_str(),
                d.location,
                d.field,
                d.a.as_deref().unwrap_or(""),
                d.b.as_deref().unwrap_or("")
            )));
        }
    }
    why
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
            let mut why = s
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
        })
        .collect()
}

async fn job(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let view = match super::jobs::job_parts(&shared, &id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return error_page(StatusCode::NOT_FOUND, "Unknown job", format!("no job {id}"))
        }
        Err(e) => return unavailable(e.message),
    };
    // The stored JSON is parsed here, at the edge; a verdict an older reprod wrote that does not read as
    // today's is shown from its record.
    let verdict: Option<Verdict> = view
        .verdict
        .as_ref()
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
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
    let page = JobPage {
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
        id,
    };
    html(StatusCode::OK, page.render())
}

/// `/feed.atom[?image=NAME][&status=STATUS]`: the newest verdicts, for everything or one image or status.
async fn feed(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    params: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let bad = |m: String| error_page(StatusCode::BAD_REQUEST, "Bad feed parameters", m);
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => return bad(e.body_text()),
    };
    if let Some((k, _)) = params.iter().find(|(k, _)| k != "image" && k != "status") {
        return bad(format!(
            "unknown parameter `{k}`; a feed takes `image` and `status`"
        ));
    }
    let mut q = match super::read::list_query(&params) {
        Ok(q) => q,
        Err(m) => return bad(m),
    };
    q.limit = FEED_ENTRIES;
    let page = match blocking(&shared, move |s| s.store.list(&q, super::read::MAX_SCAN)).await {
        Ok(p) => p,
        Err(e) => return unavailable(e),
    };
    let base = shared.config.server.base_url();
    let entries: Vec<FeedEntry> = page
        .records
        .iter()
        .map(|r| {
            let what = match r.images().first() {
                Some(name) => name.to_string(),
                None => r
                    .subjects
                    .first()
                    .map(|s| s.digest.clone())
                    .unwrap_or_default(),
            };
            FeedEntry {
                id: xml_text(&format!("{base}{}", job_href(&r.job))),
                title: xml_text(&format!("{}: {what}", r.status)),
                link: xml_text(&format!("{base}{}", job_href(&r.job))),
                updated: r.recorded_at.clone(),
                summary: xml_text(&{
                    let mut text = match &r.reason {
                        Some(reason) => format!("{} ({reason}): {}", r.status, r.detail),
                        None => format!("{}: {}", r.status, r.detail),
                    };
                    let states: Vec<String> = r
                        .subjects
                        .iter()
                        .take(FEED_SUBJECTS)
                        .map(|s| format!("{} {}: {}", s.name, s.digest, s.state(r.status).as_str()))
                        .collect();
                    if !states.is_empty() {
                        text.push_str(&format!(" | subjects: {}", states.join("; ")));
                    }
                    text
                }),
            }
        })
        .collect();
    let updated = page
        .records
        .first()
        .map(|r| r.recorded_at.clone())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into());
    let own = match raw.filter(|r| !r.is_empty()) {
        Some(r) => format!("{base}/feed.atom?{r}"),
        None => format!("{base}/feed.atom"),
    };
    match (Feed {
        own: xml_text(&own),
        base: xml_text(&base),
        updated,
        entries,
    })
    .render()
    {
        Ok(body) => (
            [("content-type", "application/atom+xml; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Rendering failed",
            e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_inside_their_page_and_the_feed_stays_xml() {
        assert_eq!(
            image_href("x/../../jobs/y?z#w"),
            "/images/x%2F..%2F..%2Fjobs%2Fy%3Fz%23w"
        );
        assert_eq!(xml_text("a\u{0}b\u{c}c\td"), "a\u{fffd}b\u{fffd}c\td");
    }
}
