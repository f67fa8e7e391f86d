//! The public read side of `/v1`: verdicts by digest, by image and in filtered, cursor-paged lists; the
//! signed attestations and provenance documents exactly as kept; the public key; metrics; the OpenAPI
//! document. Lists and lookups answer conditional requests (ETag, Last-Modified).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::http::{error, storage_error};
use super::metrics::Snapshot;
use reprod_jobs::Queue;

use super::{blocking, Shared};
use crate::attest::uri;
use crate::store::{ListQuery, VerdictRecord, MAX_IMAGE_NAME};

/// The OpenAPI document, served as written; `tests/api.rs` keeps it and the routes in step.
pub const OPENAPI: &str = include_str!("openapi.json");

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;
/// Index entries one list request reads at most (a sparse filter answers with a cursor to go on from).
pub const MAX_SCAN: usize = 20_000;
pub(crate) const STATUSES: [&str; 5] = [
    "reproducible",
    "unreproducible",
    "build-failed",
    "unrebuildable",
    "rejected",
];
/// History entries a digest lookup lists (the deciding verdict is chosen from all of them).
pub const MAX_HISTORY: usize = 100;

fn bad_parameter(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad-parameter", message)
}

/// `sha256:<64 lowercase hex>` (the only digests a rebuild compares), or a sentence saying what was expected.
pub fn parse_digest(text: &str) -> Result<&str, String> {
    let shown: String = text.chars().take(80).collect();
    if crate::verdict::is_sha256(text) {
        Ok(text)
    } else {
        Err(format!(
            "{shown:?} is not a digest reprod compares: expected sha256:<64 lowercase hex digits>"
        ))
    }
}

/// A record as the API shows it: the record and where to find more.
pub fn record_json(r: &VerdictRecord) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    let job = &r.job;
    let mut atts = serde_json::Map::new();
    for kind in &r.attestations {
        atts.insert(
            kind.clone(),
            format!("/v1/jobs/{job}/attestations/{kind}").into(),
        );
    }
    v["links"] = json!({
        "job": format!("/v1/jobs/{job}"),
        "page": format!("/jobs/{job}"),
        "provenance": r.provenance_sha256.as_ref().map(|s| format!("/v1/provenance/sha256:{s}")),
        "attestations": atts,
    });
    v
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
                    _ => return Err(format!("limit must be a whole number from 1 to {MAX_LIMIT} (got {v:?})")),
                }
            }
            "cursor" => {
                q.before = Some(v.parse::<u64>().map_err(|_| {
                    format!("cursor {v:?} is not one this server gave out (use `next_cursor` from the previous page)")
                })?)
            }
            "status" => {
                if !STATUSES.contains(&v.as_str()) {
                    return Err(format!("status must be one of {} (got {v:?})", STATUSES.join(", ")));
                }
                q.status = Some(v.clone());
            }
            "image" => {
                if !crate::store::is_image_name(v) {
                    return Err(format!(
                        "image must be a name of 1 to {MAX_IMAGE_NAME} bytes without control characters"
                    ));
                }
                q.image = Some(v.clone());
            }
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

/// `GET /v1/verdicts?status=&image=&since=&until=&cursor=&limit=`: newest first.
pub async fn verdicts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => return bad_parameter(e.body_text()),
    };
    let q = match list_query(&params) {
        Ok(q) => q,
        Err(m) => return bad_parameter(m),
    };
    let found = blocking(&shared, move |s| {
        Ok::<_, crate::store::StoreError>((s.store.list(&q, MAX_SCAN)?, s.store.latest()?))
    })
    .await;
    match found {
        Ok((page, latest)) => {
            let body = json!({
                "verdicts": page.records.iter().map(record_json).collect::<Vec<_>>(),
                "next_cursor": page.next.map(|n| n.to_string()),
            });
            conditional(
                &headers,
                &body,
                latest.as_ref().map(|r| r.recorded_at.as_str()),
            )
        }
        Err(e) => storage_error(e),
    }
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
    headers: HeaderMap,
    Path(digest): Path<String>,
    query: Result<Query<DigestQuery>, QueryRejection>,
) -> Response {
    if let Err(m) = parse_digest(&digest) {
        return error(StatusCode::BAD_REQUEST, "malformed-digest", m);
    }
    let image = match query {
        Ok(Query(q)) => q.image,
        Err(e) => {
            return bad_parameter(format!("{}; the only parameter is `image`", e.body_text()))
        }
    };
    let d = digest.clone();
    match blocking(&shared, move |s| s.store.history(&d)).await {
        Ok(history) if history.is_empty() => error(
            StatusCode::NOT_FOUND,
            "unknown-digest",
            format!("no verdict names {digest} (it was never submitted, or its rebuild has not finished)"),
        ),
        Ok(history) => {
            let decided = crate::store::deciding(&history, &digest, image.as_deref())
                .unwrap_or(&history[0]);
            let body = json!({
                "digest": digest,
                "status": decided.status,
                "decided_by": record_json(decided),
                "latest": record_json(&history[0]),
                "history": history.iter().take(MAX_HISTORY).map(record_json).collect::<Vec<_>>(),
                "history_total": history.len(),
            });
            conditional(&headers, &body, Some(&history[0].recorded_at))
        }
        Err(e) => storage_error(e),
    }
}

/// `GET /v1/provenance/{sha256:…}`: the document exactly as received.
pub async fn provenance_document(
    State(shared): State<Arc<Shared>>,
    Path(digest): Path<String>,
) -> Response {
    if let Err(m) = parse_digest(&digest) {
        return error(StatusCode::BAD_REQUEST, "malformed-digest", m);
    }
    let key = digest.clone();
    match blocking(&shared, move |s| s.store.provenance(&key)).await {
        Ok(Some(bytes)) => ([("content-type", "application/octet-stream")], bytes).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown-provenance",
            format!("no provenance document {digest} was accepted here"),
        ),
        Err(e) => storage_error(e),
    }
}

/// `GET /v1/jobs/{id}/attestations/{kind}`: the DSSE envelope exactly as signed.
pub async fn attestation(
    State(shared): State<Arc<Shared>>,
    Path((job, kind)): Path<(String, String)>,
) -> Response {
    use crate::attest::statements::KINDS;
    if kind != "vsa" && !KINDS.contains(&kind.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            "unknown-attestation",
            format!(
                "attestations are {} (and `vsa`, the one summary of a verdict that has one), not {kind:?}",
                KINDS.map(|k| format!("`{k}`")).join(", ")
            ),
        );
    }
    let (j, k) = (job.clone(), kind.clone());
    let found = blocking(&shared, move |s| -> Result<_, crate::store::StoreError> {
        if k != "vsa" {
            return Ok(s.store.attestation(&j, &k)?.map(|b| (k, b)));
        }
        // `vsa`: the verdict's summary when it has exactly one; verdicts recorded before summaries were
        // split kept theirs under this name.
        if let Some(b) = s.store.attestation(&j, "vsa")? {
            return Ok(Some(("vsa".to_string(), b)));
        }
        let passed = s.store.attestation(&j, "vsa-passed")?;
        let failed = s.store.attestation(&j, "vsa-failed")?;
        Ok(match (passed, failed) {
            (Some(b), None) => Some(("vsa-passed".to_string(), b)),
            (None, Some(b)) => Some(("vsa-failed".to_string(), b)),
            (Some(_), Some(_)) => Some(("ambiguous".to_string(), Vec::new())),
            (None, None) => None,
        })
    })
    .await;
    match found {
        Ok(Some((k, _))) if k == "ambiguous" => error(
            StatusCode::CONFLICT,
            "ambiguous-attestation",
            format!(
                "job {job} has two summaries: `vsa-passed` for the digests rebuilt bit for bit and `vsa-failed` for those that were not; ask for one"
            ),
        ),
        Ok(Some((_, bytes))) => ([("content-type", uri::ENVELOPE_MEDIA_TYPE)], bytes).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown-attestation",
            format!("job {job} has no {kind} attestation (no verdict yet, or nothing was compared or run to attest)"),
        ),
        Err(e) => storage_error(e),
    }
}

/// `GET /v1/keys`: the public key verdicts are signed with.
pub async fn keys(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({"keys": [{
        "keyid": shared.signer.key_id(),
        "keytype": "ecdsa",
        "scheme": "ecdsa-sha2-nistp256",
        "pem": shared.signer.public_pem(),
    }]}))
    .into_response()
}

/// `GET /metrics`.
pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
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
    .await;
    match snap {
        Ok(snap) => (
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            shared.metrics.render(&snap),
        )
            .into_response(),
        Err(e) => storage_error(e),
    }
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&chrono::Utc)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A JSON answer with a strong ETag (the body's sha256) and, when known, Last-Modified; `304 Not Modified`
/// when the client's copy is current. `If-None-Match` wins over `If-Modified-Since` (RFC 9110). HTTP dates
/// have whole seconds, so Last-Modified is sent only once the second of the last change is over (a later
/// change in that same second would otherwise look unmodified); a date in the future is ignored.
pub fn conditional(headers: &HeaderMap, body: &Value, last_modified: Option<&str>) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let changed = last_modified
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .filter(|t| t.timestamp() < now);
    let modified = changed.map(http_date);
    let not_modified = match headers.get("if-none-match").and_then(|v| v.to_str().ok()) {
        Some(tags) => tags
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*"),
        None => match (
            headers
                .get("if-modified-since")
                .and_then(|v| v.to_str().ok()),
            changed,
        ) {
            (Some(since), Some(changed)) => {
                chrono::DateTime::parse_from_rfc2822(since).is_ok_and(|since| {
                    since.timestamp() <= now && changed.timestamp() <= since.timestamp()
                })
            }
            _ => false,
        },
    };
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([("content-type", "application/json")], bytes).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    if let Some(v) = modified.and_then(|m| HeaderValue::from_str(&m).ok()) {
        h.insert("last-modified", v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_in_lowercase_hex() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(parse_digest(&ok).is_ok());
        for bad in [
            "sha256:".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{}", "a".repeat(128)),
            format!("md5:{}", "a".repeat(32)),
            "latest".to_string(),
        ] {
            let e = parse_digest(&bad).unwrap_err();
            assert!(
                e.contains("expected sha256:<64 lowercase hex digits>"),
                "{e}"
            );
        }
    }

    #[test]
    fn list_parameters_are_checked() {
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(list_query(&[]).unwrap().limit, DEFAULT_LIMIT);
        assert!(list_query(&p("limit", "0")).is_err());
        assert!(list_query(&p("limit", "501")).is_err());
        assert!(list_query(&p("limit", "99999999999999999999999")).is_err());
        assert!(list_query(&p("cursor", "-1")).is_err());
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

    #[test]
    fn dates_answer_304_only_for_a_finished_second_and_never_from_the_future() {
        let body = json!({"a": 1});
        let ims = |date: &str| {
            let mut h = HeaderMap::new();
            h.insert("if-modified-since", HeaderValue::from_str(date).unwrap());
            h
        };
        let plain = conditional(&HeaderMap::new(), &body, Some("2026-11-28T04:53:39.250Z"));
        let lm = plain.headers()["last-modified"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(lm, "Sat, 28 Nov 2026 04:53:39 GMT");
        let status = |h: &HeaderMap, t: &str| conditional(h, &body, Some(t)).status().as_u16();
        assert_eq!(status(&ims(&lm), "2026-11-28T04:53:39.250Z"), 304);
        assert_eq!(
            status(&ims(&lm.to_lowercase()), "2026-11-28T04:53:39.250Z"),
            304
        );
        assert_eq!(
            status(&ims(&lm), "2026-11-28T04:53:40.001Z"),
            200,
            "changed since"
        );
        assert_eq!(
            status(
                &ims("Fri, 01 Jan 2100 00:00:00 GMT"),
                "2026-11-28T04:53:39.250Z"
            ),
            200,
            "future"
        );
        let now = crate::store::now_rfc3339();
        assert!(
            conditional(&HeaderMap::new(), &body, Some(&now))
                .headers()
                .get("last-modified")
                .is_none(),
            "no date while its second is still running"
        );
    }
}
