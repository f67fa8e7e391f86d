//! Server-rendered pages: dashboard, image history, job detail, and an Atom feed of verdicts. Plain HTML and
//! one stylesheet; no script. Templates are compiled in (askama) and escape every value: image names, logs
//! and reasons come from provenance and builds, and are shown as text.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reprod_jobs::Queue;

use crate::daemon::shared::{blocking, Shared};
use crate::store::{ListQuery, VerdictRecord};
use crate::verdict::Status;

mod charts;
mod feed;
mod images;
mod job;

const STYLE: &str = include_str!("../../../../templates/style.css");
/// Images on the dashboard: the most recently judged ones.
const RECENT_IMAGES: usize = 10;
/// The dashboard's chart reads at most this many of the newest verdicts, over at most this many days.
const CHART_RECORDS: usize = 2000;
const CHART_DAYS: usize = 30;

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
        .route("/images", get(images::images))
        .route("/images/{*name}", get(images::image))
        .route("/jobs/{id}", get(job::job))
        .route("/feed.atom", get(feed::feed))
        .route("/style.css", get(style))
}

/// [`PATH`] and `/`: a name becomes one path segment, so no `..` inside it can climb out of `/images/`.
/// (`.` and `..` themselves are not image names: `store::is_image_name`.)
const SEGMENT: &AsciiSet = &PATH.add(b'/');

pub fn image_href(name: &str) -> String {
    format!("/images/{}", utf8_percent_encode(name, SEGMENT))
}

pub(crate) fn job_href(job: &str) -> String {
    format!("/jobs/{}", utf8_percent_encode(job, SEGMENT))
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
    days: charts::Chart,
    images: Vec<images::ImageRow>,
    queue: reprod_jobs::QueueStats,
    workers: Vec<WorkerRow>,
    key_id: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
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
                    limit: CHART_RECORDS,
                    ..ListQuery::default()
                },
                CHART_RECORDS,
            )
            .map_err(|e| e.to_string())?
            .records;
        let days = charts::per_day(&recent, CHART_DAYS);
        let mut names: Vec<&str> = Vec::new();
        for r in &recent {
            for n in r.images() {
                if names.len() < RECENT_IMAGES && !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        let mut images = Vec::new();
        for name in names {
            let digests = s.store.digests_under(name, 20).map_err(|e| e.to_string())?;
            images.extend(images::image_row(name, &digests));
        }
        let queue = s.queue.stats().map_err(|e| e.to_string())?;
        Ok((counts, days, images, queue))
    })
    .await;
    let (counts, days, images, queue) = match found {
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
            days: charts::days_chart(&days, CHART_DAYS),
            images,
            queue,
            workers,
            key_id: shared.signer.key_id().to_string(),
        }
        .render(),
    )
}

#[cfg(test)]
mod tests {
    use super::feed::xml_text;
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
