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
    // Into one buffer sized by the declared length: collecting the frames and then joining them would
    // hold every body twice at its peak.
    let mut limited = http_body_util::Limited::new(body, limit);
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
    while let Some(frame) = limited.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(e) => {
                return Err(ApiError::bad_body(format!(
                    "the body could not be read: {e}"
                )))
            }
        }
    }
    Ok(Bytes::from(bytes))
}
