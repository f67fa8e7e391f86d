//! Headers every answer carries, pages and API alike, also the answers of the accept loop itself.

use axum::http::HeaderValue;
use axum::response::Response;

/// Nothing served here is to be sniffed, framed, or run as script: pages are plain HTML and CSS.
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}
