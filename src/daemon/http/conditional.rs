//! Conditional answers: a strong ETag on every JSON answer of the read side, Last-Modified when known, and
//! `304 Not Modified` for a client whose copy is current.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::wire::ErrorCode;

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
pub fn conditional(
    headers: &HeaderMap,
    body: &impl Serialize,
    last_modified: Option<&str>,
) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("the answer could not be encoded: {e}"),
        )
    })?;
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
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_answer_304_only_for_a_finished_second_and_never_from_the_future() {
        let body = json!({"a": 1});
        let ims = |date: &str| {
            let mut h = HeaderMap::new();
            h.insert("if-modified-since", HeaderValue::from_str(date).unwrap());
            h
        };
        let plain =
            conditional(&HeaderMap::new(), &body, Some("2026-11-28T04:53:39.250Z")).unwrap();
        let lm = plain.headers()["last-modified"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(lm, "Sat, 28 Nov 2026 04:53:39 GMT");
        let status =
            |h: &HeaderMap, t: &str| conditional(h, &body, Some(t)).unwrap().status().as_u16();
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
                .unwrap()
                .headers()
                .get("last-modified")
                .is_none(),
            "no date while its second is still running"
        );
    }
}
