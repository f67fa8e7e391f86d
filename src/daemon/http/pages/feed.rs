//! The Atom feed of verdicts: everything, or one image's, or one status's.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{error_page, job_href, unavailable};
use crate::daemon::http::base::Base;
use crate::daemon::shared::{blocking, Shared};
use crate::verdict::Status;

const FEED_ENTRIES: usize = 50;

/// Verdicts per image read to tell whether an `unreproducible` entry is a regression.
const REGRESSION_SCAN: usize = 50;

/// Subjects whose state a feed entry lists.
const FEED_SUBJECTS: usize = 10;

/// Text XML 1.0 can carry: its forbidden control characters become U+FFFD (a hostile name must not make
/// the feed unreadable for everyone).
pub(super) fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
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

/// `/feed.atom[?image=NAME][&status=STATUS]`: the newest verdicts, for everything or one image or status.
pub(super) async fn feed(
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
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
    let mut q = match crate::daemon::http::read::list_query(&params) {
        Ok(q) => q,
        Err(m) => return bad(m),
    };
    q.limit = FEED_ENTRIES;
    let found = blocking(&shared, move |s| -> Result<_, crate::store::StoreError> {
        let page = s.store.list(&q, crate::daemon::http::read::MAX_SCAN)?;
        // job → `regression` or `drift`
        let mut flagged = std::collections::HashMap::new();
        let failing = |r: &&crate::store::VerdictRecord| {
            matches!(r.status, Status::Unreproducible | Status::BuildFailed)
        };
        for r in page.records.iter().filter(failing) {
            for name in r.images() {
                let digests = s.store.digests_under(name, REGRESSION_SCAN)?;
                if r.status == Status::Unreproducible
                    && crate::store::regressed(&digests)
                    && digests[0].decided_by.job == r.job
                {
                    flagged.insert(r.job.clone(), "regression");
                } else if digests.iter().any(|d| d.drifted() && d.latest.job == r.job) {
                    flagged.insert(r.job.clone(), "drift");
                }
            }
        }
        Ok((page, flagged))
    })
    .await;
    let (page, flagged) = match found {
        Ok(p) => p,
        Err(e) => return unavailable(e),
    };
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
                title: xml_text(&match flagged.get(&r.job) {
                    Some(flag) => format!("{flag}: {}: {what}", r.status),
                    None => format!("{}: {what}", r.status),
                }),
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
