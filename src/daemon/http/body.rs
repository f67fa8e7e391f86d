//! Request bodies of the write routes, read only once the caller is authorized: axum's extractors would
//! read a body before the handler could look at the token.

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};

use super::error::ApiError;
use crate::wire::ErrorCode;

/// A body of at most `limit` bytes (`setting` names where the limit comes from). A declared
/// `Content-Length` over the limit is refused before a byte is read, and a body that runs past it is read
/// no further.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
    setting: &str,
) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("{what} is over the {limit}-byte limit ({setting})"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_body(format!(
            "the body could not be read: {e}"
        ))),
    }
}
