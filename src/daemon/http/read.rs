//! The public read side of `/v1`: verdicts by digest, by image and in filtered, cursor-paged lists; the
//! signed attestations and provenance documents exactly as kept; the public key; health; metrics; the
//! OpenAPI document. Lists and lookups answer conditional requests (ETag, Last-Modified).

use super::base::Base;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use reprod_jobs::Queue;

use super::conditional::conditional;
use super::error::ApiError;
use crate::attest::uri;
use crate::daemon::metrics::Snapshot;
use crate::daemon::shared::{blocking, Shared};
use crate::store::{ListQuery, VerdictRecord, MAX_IMAGE_NAME};
use crate::verdict::Status;
use crate::wire::{
    DigestAnswer, ErrorCode, Health, KeyInfo, Keys, Links, RecordView, SubjectSummary, VerdictList,
};

/// The OpenAPI document, served as written; `tests/api.rs` keeps it and the routes in step.
pub const OPENAPI: &str = include_str!("openapi.json");

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;
/// Index entries one list request reads at most (a sparse filter answers with a cursor to go on from).
pub const MAX_SCAN: usize = 20_000;
/// History entries a digest lookup lists (the deciding verdict is chosen from all of them).
pub const MAX_HISTORY: usize = 100;

/// A stored record as the API shows it: the record and where to find more, as absolute URLs under `base`.
pub fn record_view(base: &str, r: &VerdictRecord) -> RecordView {
    let job = &r.job;
    RecordView {
        job: job.clone(),
        seq: r.seq,
        recorded_at: r.recorded_at.clone(),
        status: r.status,
        reason: r.reason.clone(),
        detail: r.detail.clone(),
        provenance_sha256: r.provenance_sha256.clone(),
        signature: r.signature.clone(),
        subjects: r
            .subjects
            .iter()
            .map(|s| {
                let state = s.state(r.status);
                SubjectSummary {
                    name: s.name.clone(),
                    digest: s.digest.clone(),
                    matched: state == crate::verdict::SubjectState::Matched,
                    state,
                }
            })
            .collect(),
        subjects_total: r.subjects_total,
        attestations: r.attestations.clone(),
        duration_ms: r.duration_ms,
        links: Links {
            job: format!("{base}/v1/jobs/{job}"),
            page: format!("{base}/jobs/{job}"),
            provenance: r
                .provenance_sha256
                .as_ref()
                .map(|s| format!("{base}/v1/provenance/sha256:{s}")),
            attestations: r
                .attestations
                .iter()
                .map(|kind| {
                    (
                        kind.clone(),
                        format!("{base}/v1/jobs/{job}/attestations/{kind}"),
                    )
                })
                .collect(),
        },
    }
}

/// Parses the list parameters; unknown or repeated ones are errors, so a typo is not a silent no-op.
pub fn list_query(params: &[(String, String)]) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    let mut seen = Vec::new();
    for (k, v) in params {
        if seen.contains(&k.as_str()) {
            return Err(format!("parameter `{k}` is given twice"));
        }
        seen.push(k.as_str());
        match k.as_str() {
            "limit" => {
                q.limit = match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                    _ => {
                        return Err(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT} (got {v:?})"
                        ))
                    }
                }
            }
            "cursor" => {
                // Opaque to clients; it is the sequence number the page ended before.
                q.before = Some(v.parse::<u64>().ok().filter(|_| v.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| {
                    format!("cursor {v:?} is not one this server gave out (use `next_cursor` from the previous page)")
                })?)
            }
            "status" => {
                q.status = Some(Status::from_name(v).ok_or_else(|| {
                    let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    format!("status must be one of {} (got {v:?})", all.join(", "))
                })?);
            }
            "image" => q.image = Some(image_filter(v)?),
            "since" | "until" => {
                let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|e| {
                    format!("{k} must be an RFC 3339 time such as 2026-11-28T00:00:00Z ({e}; got {v:?})")
                })?;
                let t = crate::store::format_time(t.with_timezone(&chrono::Utc));
                if k == "since" {
                    q.since = Some(t);
                } else {
                    q.until = Some(t);
                }
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}`; known: status, image, since, until, cursor, limit"
                ))
            }
        }
    }
    Ok(q)
}

/// `GET /healthz`.
pub async fn healthz(State(shared): State<Arc<Shared>>) -> Result<Json<Health>, ApiError> {
    let queue = blocking(&shared, |s| s.queue.stats()).await?;
    Ok(Json(Health {
        status: "ok".into(),
        queue,
    }))
}

/// The `image` parameter of both verdict routes: 1 to [`MAX_IMAGE_NAME`] characters, none of them a control
/// character (what `openapi.json` says). A name longer in bytes than an indexed name can be matches
/// nothing, so it is accepted and finds nothing.
fn image_filter(v: &str) -> Result<String, String> {
    let n = v.chars().count();
    if n == 0 || n > MAX_IMAGE_NAME || v.chars().any(char::is_control) {
        return Err(format!(
            "image must be a name of 1 to {MAX_IMAGE_NAME} characters without control characters"
        ));
    }
    Ok(v.to_string())
}

/// `GET /v1/verdicts?status=&image=&since=&until=&cursor=&limit=`: newest first.
pub async fn verdicts(
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_parameter(e.body_text()))?;
    let q = list_query(&params).map_err(ApiError::bad_parameter)?;
    let (page, latest) = blocking(&shared, move |s| {
        Ok::<_, crate::store::StoreError>((s.store.list(&q, MAX_SCAN)?, s.store.latest()?))
    })
    .await?;
    let body = VerdictList {
        verdicts: page.records.iter().map(|r| record_view(&base, r)).collect(),
        next_cursor: page.next.map(|n| n.to_string()),
    };
    conditional(
        &headers,
        &body,
        latest.as_ref().map(|r| r.recorded_at.as_str()),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestQuery {
    /// Prefer the verdicts that name the digest under this image name.
    image: Option<String>,
}

/// `GET /v1/verdicts/{digest}[?image=NAME]`: the verdict that decides the digest, the latest, and the
/// history, newest first.
pub async fn verdicts_for_digest(
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
    headers: HeaderMap,
    Path(digest): Path<String>,
    query: Result<Query<DigestQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    ApiError::check_digest(&digest)?;
    let Query(DigestQuery { image }) = query.map_err(|e| {
        ApiError::bad_parameter(format!("{}; the only parameter is `image`", e.body_text()))
    })?;
    let image = image
        .map(|i| image_filter(&i))
        .transpose()
        .map_err(ApiError::bad_parameter)?;
    let d = digest.clone();
    let history = blocking(&shared, move |s| s.store.history(&d)).await?;
    let Some(latest) = history.first() else {
        return Err(ApiError::not_found(
            ErrorCode::UnknownDigest,
            format!("no verdict names {digest} (it was never submitted, or its rebuild has not finished)"),
        ));
    };
    let decided = crate::store::deciding(&history, &digest, image.as_deref()).unwrap_or(latest);
    let body = DigestAnswer {
        status: decided.status,
        decided_by: record_view(&base, decided),
        latest: record_view(&base, latest),
        history: history
            .iter()
            .take(MAX_HISTORY)
            .map(|r| record_view(&base, r))
            .collect(),
        history_total: history.len(),
        digest,
    };
    conditional(&headers, &body, Some(&latest.recorded_at))
}

/// `GET /v1/provenance/{sha256:…}`: the document exactly as received.
pub async fn provenance_document(
    State(shared): State<Arc<Shared>>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    ApiError::check_digest(&digest)?;
    let key = digest.clone();
    match blocking(&shared, move |s| s.store.provenance(&key)).await? {
        Some(bytes) => Ok(([("content-type", "application/octet-stream")], bytes).into_response()),
        None => Err(ApiError::not_found(
            ErrorCode::UnknownProvenance,
            format!("no provenance document {digest} was accepted here"),
        )),
    }
}

/// What `GET /v1/jobs/{id}/attestations/vsa` finds.
enum Summary {
    One(Vec<u8>),
    Two,
    None,
}

/// `GET /v1/jobs/{id}/attestations/{kind}`: the DSSE envelope exactly as signed.
pub async fn attestation(
    State(shared): State<Arc<Shared>>,
    Path((job, kind)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let bytes = envelope(&shared, &job, &kind).await?;
    Ok(([("content-type", uri::ENVELOPE_MEDIA_TYPE)], bytes).into_response())
}

/// The DSSE envelope of job `job`'s attestation `kind` (`vsa`: its one summary), exactly as signed.
pub(super) async fn envelope(
    shared: &Arc<Shared>,
    job: &str,
    kind: &str,
) -> Result<Vec<u8>, ApiError> {
    use crate::attest::statements::KINDS;
    if kind != "vsa" && !KINDS.contains(&kind) {
        return Err(ApiError::not_found(
            ErrorCode::UnknownAttestation,
            format!(
                "attestations are {} (and `vsa`, the one summary of a verdict that has one), not {kind:?}",
                KINDS.map(|k| format!("`{k}`")).join(", ")
            ),
        ));
    }
    let (j, k) = (job.to_string(), kind.to_string());
    let found = blocking(shared, move |s| -> Result<_, crate::store::StoreError> {
        if k != "vsa" {
            return Ok(s
                .store
                .attestation(&j, &k)?
                .map_or(Summary::None, Summary::One));
        }
        // `vsa`: the verdict's summary when it has exactly one; verdicts recorded before summaries were
        // split kept theirs under this name.
        if let Some(b) = s.store.attestation(&j, "vsa")? {
            return Ok(Summary::One(b));
        }
        let passed = s.store.attestation(&j, "vsa-passed")?;
        let failed = s.store.attestation(&j, "vsa-failed")?;
        Ok(match (passed, failed) {
            (Some(b), None) | (None, Some(b)) => Summary::One(b),
            (Some(_), Some(_)) => Summary::Two,
            (None, None) => Summary::None,
        })
    })
    .await?;
    match found {
        Summary::One(bytes) => Ok(bytes),
        Summary::Two => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::AmbiguousAttestation,
            format!(
                "job {job} has two summaries: `vsa-passed` for the digests rebuilt bit for bit and `vsa-failed` for those that were not; ask for one"
            ),
        )),
        Summary::None => Err(ApiError::not_found(
            ErrorCode::UnknownAttestation,
            format!("job {job} has no {kind} attestation (no verdict yet, or nothing was compared or run to attest)"),
        )),
    }
}

/// `GET /v1/keys`: the public key verdicts are signed with.
pub async fn keys(State(shared): State<Arc<Shared>>) -> Json<Keys> {
    Json(Keys {
        keys: vec![KeyInfo {
            keyid: shared.signer.key_id().to_string(),
            keytype: "ecdsa".into(),
            scheme: "ecdsa-sha2-nistp256".into(),
            pem: shared.signer.public_pem().to_string(),
        }],
    })
}

/// `GET /metrics`: OpenMetrics when the scraper asks for it first, else Prometheus' text format 0.0.4.
pub async fn metrics(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use crate::daemon::exposition;
    let local = shared.config.server.workers;
    let remote = shared
        .live_workers()
        .iter()
        .filter(|(n, _)| n.starts_with("remote:"))
        .count();
    let snap = blocking(&shared, move |s| {
        Ok::<_, String>(Snapshot {
            queue: s.queue.stats().map_err(|e| e.to_string())?,
            stored: s.store.counts().map_err(|e| e.to_string())?,
            local_workers: local,
            remote_workers: remote,
        })
    })
    .await?;
    let openmetrics = shared.metrics.render(&snap);
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Ok(if exposition::wants_openmetrics(accept) {
        ([("content-type", exposition::OPENMETRICS)], openmetrics).into_response()
    } else {
        (
            [("content-type", exposition::TEXT)],
            exposition::to_text_format(&openmetrics),
        )
            .into_response()
    })
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameters_are_checked() {
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(list_query(&[]).unwrap().limit, DEFAULT_LIMIT);
        assert!(list_query(&p("limit", "0")).is_err());
        assert!(list_query(&p("limit", "501")).is_err());
        assert!(list_query(&p("limit", "99999999999999999999999")).is_err());
        assert!(list_query(&p("cursor", "-1")).is_err());
        assert!(list_query(&p("cursor", "+5")).is_err());
        assert!(list_query(&p("cursor", "")).is_err());
        assert_eq!(list_query(&p("cursor", "42")).unwrap().before, Some(42));
        // The image filter is what openapi.json says: 1 to 1024 characters, none a control character. A
        // name of 1024 characters but more bytes is accepted (and matches nothing).
        let wide = "é".repeat(MAX_IMAGE_NAME);
        assert!(list_query(&p("image", &wide)).is_ok());
        assert!(list_query(&p("image", &"a".repeat(MAX_IMAGE_NAME + 1))).is_err());
        assert!(list_query(&p("image", "a\u{85}b")).is_err());
        assert!(list_query(&p("image", "")).is_err());
        assert!(list_query(&p("status", "great")).is_err());
        assert!(list_query(&p("stauts", "reproducible"))
            .unwrap_err()
            .contains("unknown parameter"));
        assert_eq!(
            list_query(&p("since", "2026-11-28T01:00:00+01:00"))
                .unwrap()
                .since
                .as_deref(),
            Some("2026-11-28T00:00:00.000Z")
        );
        let twice = [p("limit", "1"), p("limit", "2")].concat();
        assert!(list_query(&twice).unwrap_err().contains("twice"));
    }
}
