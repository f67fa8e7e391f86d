//! The image-centric pages: `/images` (every image name with the status of its newest digest, filtered by
//! status, searched by name; a digest goes straight to the verdict that decides it) and `/images/{name}`
//! (each digest's status, a history strip, a regression flag, and the verdicts naming the image).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use percent_encoding::utf8_percent_encode;

use super::charts::{history_strip, Chart};
use super::{error_page, html, image_href, job_href, unavailable, Row};
use crate::daemon::shared::{blocking, Shared};
use crate::store::{deciding, regressed, DigestUnderName, ListQuery};
use crate::verdict::Status;

/// Names per page of `/images`.
const PAGE: usize = 50;
/// Names looked at per request when a filter matches few: the page is then short, with a link onward.
/// Every name costs reads (its newest verdicts and its newest digests' histories), on a public page.
const MAX_NAMES_SCANNED: usize = 500;
/// Verdicts per name read for the list (its newest digest is among them).
const LIST_SCAN: usize = 20;
/// Verdicts per name read for its own page.
const DIGEST_SCAN: usize = 200;
/// Verdicts in an image page's history strip.
const STRIP: usize = 60;

/// One image name in the list.
pub struct ImageRow {
    pub name: String,
    pub href: String,
    pub status: &'static str,
    pub digest: String,
    pub rebuilt: String,
    pub job_href: String,
    pub regression: bool,
    /// The newest digest's latest rebuild (a recheck) differs or failed after a bit-for-bit one: its job.
    pub drift_href: Option<String>,
}

#[derive(Template)]
#[template(path = "images.html")]
struct ImagesPage {
    rows: Vec<ImageRow>,
    q: String,
    status: String,
    statuses: Vec<&'static str>,
    more: Option<String>,
}

#[derive(serde::Deserialize)]
pub(super) struct ImagesQuery {
    q: Option<String>,
    status: Option<String>,
    after: Option<String>,
}

fn bad(message: String) -> Response {
    error_page(StatusCode::BAD_REQUEST, "Bad parameters", message)
}

fn encoded(s: &str) -> String {
    utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One digest of a name, as a row.
pub(super) fn image_row(name: &str, digests: &[DigestUnderName]) -> Option<ImageRow> {
    let newest = digests.first()?;
    Some(ImageRow {
        name: name.to_string(),
        href: image_href(name),
        status: newest.status().as_str(),
        digest: newest.digest.clone(),
        rebuilt: newest.decided_by.recorded_at.clone(),
        job_href: job_href(&newest.decided_by.job),
        regression: regressed(digests),
        drift_href: newest.drifted().then(|| job_href(&newest.latest.job)),
    })
}

pub(super) async fn images(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ImagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad(
            "`/images` takes `q` (a name or part of one, or a digest), `status` and `after`".into(),
        );
    };
    let q = query.q.unwrap_or_default().trim().to_string();
    if q.len() > crate::store::MAX_IMAGE_NAME {
        return bad(format!(
            "`q` is longer than an image name can be ({} bytes)",
            crate::store::MAX_IMAGE_NAME
        ));
    }
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match Status::ALL.iter().find(|x| x.as_str() == s) {
            Some(x) => Some(*x),
            None => return bad(format!("unknown status {s:?}")),
        },
    };
    if q.starts_with("sha256:") {
        return digest_answer(&shared, q).await;
    }
    let (needle, after) = (q.to_lowercase(), query.after.clone());
    let found = blocking(&shared, move |s| -> Result<_, crate::store::StoreError> {
        let mut rows = Vec::new();
        let mut scanned = 0;
        let mut cursor = after;
        loop {
            let names = s.store.image_names(cursor.as_deref(), 200)?;
            let Some(last) = names.last().cloned() else {
                return Ok((rows, None));
            };
            for name in names {
                scanned += 1;
                let wanted_name = needle.is_empty() || name.to_lowercase().contains(&needle);
                if wanted_name {
                    let digests = s.store.digests_under(&name, LIST_SCAN)?;
                    if let Some(row) = image_row(&name, &digests) {
                        if status.is_none_or(|x| x.as_str() == row.status) {
                            rows.push(row);
                        }
                    }
                }
                if rows.len() >= PAGE || scanned >= MAX_NAMES_SCANNED {
                    return Ok((rows, Some(name)));
                }
            }
            cursor = Some(last);
        }
    })
    .await;
    let (rows, next) = match found {
        Ok(f) => f,
        Err(e) => return unavailable(e),
    };
    let filter = format!(
        "q={}&status={}",
        encoded(&q),
        status.map_or("", |s| s.as_str())
    );
    html(
        StatusCode::OK,
        ImagesPage {
            rows,
            q,
            status: status.map_or(String::new(), |s| s.as_str().to_string()),
            statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
            more: next.map(|n: String| format!("/images?{filter}&after={}", encoded(&n))),
        }
        .render(),
    )
}

/// A digest searched for: to the job whose verdict decides it.
async fn digest_answer(shared: &Arc<Shared>, digest: String) -> Response {
    if !crate::verdict::is_sha256(&digest) {
        return bad(format!(
            "{digest:?} is not a digest: expected sha256: and 64 lowercase hex digits"
        ));
    }
    let d = digest.clone();
    let history = match blocking(shared, move |s| s.store.history(&d)).await {
        Ok(h) => h,
        Err(e) => return unavailable(e),
    };
    match deciding(&history, &digest, None) {
        Some(r) => Redirect::to(&job_href(&r.job)).into_response(),
        None => error_page(
            StatusCode::NOT_FOUND,
            "Unknown digest",
            format!("no verdict names {digest}"),
        ),
    }
}

#[derive(Template)]
#[template(path = "image.html")]
struct ImagePage {
    name: String,
    feed_href: String,
    digests: Vec<ImageRow>,
    regression: bool,
    drift: bool,
    strip: Chart,
    rows: Vec<Row>,
    older: Option<String>,
}

#[derive(serde::Deserialize)]
pub(super) struct ImageQuery {
    cursor: Option<u64>,
}

pub(super) async fn image(
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
        limit: 50,
        ..ListQuery::default()
    };
    let n = name.clone();
    let found = blocking(&shared, move |s| -> Result<_, crate::store::StoreError> {
        let page = s.store.list(&q, super::super::read::MAX_SCAN)?;
        let digests = s.store.digests_under(&n, DIGEST_SCAN)?;
        let strip = s
            .store
            .list(
                &ListQuery {
                    image: Some(n.clone()),
                    limit: STRIP,
                    ..ListQuery::default()
                },
                STRIP,
            )?
            .records;
        Ok((page, digests, strip))
    })
    .await;
    let (page, digests, strip) = match found {
        Ok(f) => f,
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
    let rows = (0..digests.len())
        .filter_map(|i| image_row(&name, &digests[i..]))
        .map(|mut r| {
            // Only the newest digest can be a regression: older ones were followed by another.
            r.regression = false;
            r
        })
        .collect();
    html(
        StatusCode::OK,
        ImagePage {
            feed_href: format!("/feed.atom?image={}", encoded(&name)),
            digests: rows,
            regression: regressed(&digests),
            drift: digests.iter().any(|d| d.drifted()),
            strip: history_strip(&strip, STRIP),
            rows: page.records.iter().map(Row::of).collect(),
            name,
            older,
        }
        .render(),
    )
}
