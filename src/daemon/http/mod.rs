//! The daemon's HTTP side: the route table and the layers every answer passes through. Each concern
//! has its own file:
//!
//! - [`submit`]: `POST /v1/provenance`, with a submit token;
//! - [`read`]: the public read API (verdicts, provenance documents, attestations, keys, health, metrics);
//! - [`jobs`]: a job with its verdict, and its stored logs and diffs;
//! - [`admin`]: the operator's routes (list, cancel, retry jobs), with an admin token;
//! - [`worker_protocol`]: lease, heartbeat and complete for remote workers;
//! - [`pages`]: the HTML dashboard, image and job pages, and the Atom feed;
//! - [`auth`], [`body`], [`error`], [`conditional`], [`headers`]: who may write, bounded bodies, error
//!   answers, ETags, the security headers on every answer;
//! - [`listen`]: the accept loop with its timeouts and connection caps.

pub mod admin;
pub mod auth;
pub mod base;
pub mod body;
pub mod bundle;
pub mod conditional;
pub mod error;
pub mod headers;
pub mod jobs;
pub mod listen;
pub mod pages;
pub mod read;
pub mod submit;
pub mod worker_protocol;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use crate::daemon::shared::Shared;
use crate::wire::ErrorCode;
pub use error::ApiError;

/// One route of the API: what the OpenAPI document must list, and what serves it.
pub struct ApiRoute {
    pub method: &'static str,
    /// In axum's syntax (`{id}`, `{*name}` for a rest that may hold `/`).
    pub path: &'static str,
    pub handler: MethodRouter<Arc<Shared>>,
}

/// Every API route. The router is built from this list, and `tests/api.rs` checks the OpenAPI document
/// lists exactly these; adding a route without documenting it fails that test.
pub fn api_routes() -> Vec<ApiRoute> {
    let r = |method, path, handler| ApiRoute {
        method,
        path,
        handler,
    };
    vec![
        r("get", "/healthz", get(read::healthz)),
        r("get", "/metrics", get(read::metrics)),
        r("get", "/v1/openapi.json", get(read::openapi)),
        r("post", "/v1/provenance", post(submit::submit)),
        r(
            "get",
            "/v1/provenance/{digest}",
            get(read::provenance_document),
        ),
        r("get", "/v1/verdicts", get(read::verdicts)),
        r(
            "get",
            "/v1/verdicts/{digest}",
            get(read::verdicts_for_digest),
        ),
        r("get", "/v1/keys", get(read::keys)),
        r("get", "/v1/jobs/{id}", get(jobs::job)),
        r(
            "get",
            "/v1/jobs/{id}/attestations/{kind}",
            get(read::attestation),
        ),
        r("get", "/v1/jobs/{id}/bundles/{kind}", get(bundle::bundle)),
        r(
            "get",
            "/v1/jobs/{id}/artifacts/{*name}",
            get(jobs::artifact),
        ),
        r("get", "/v1/admin/jobs", get(admin::jobs)),
        r("post", "/v1/admin/jobs/{id}/cancel", post(admin::cancel)),
        r("post", "/v1/admin/jobs/{id}/retry", post(admin::retry)),
        r("post", "/v1/admin/recheck", post(admin::recheck)),
        r("post", "/v1/worker/lease", post(worker_protocol::lease)),
        r(
            "post",
            "/v1/worker/heartbeat",
            post(worker_protocol::heartbeat),
        ),
        r(
            "post",
            "/v1/worker/complete",
            post(worker_protocol::complete),
        ),
    ]
}

pub fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for route in api_routes() {
        router = router.route(route.path, route.handler);
    }
    pages::routes(router)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(headers::security_headers))
        // The write routes read their bodies themselves, after the token, each to its own limit; this
        // bounds any extractor that would read one.
        .layer(DefaultBodyLimit::max(worker_protocol::HEARTBEAT_BODY_BYTES))
        .with_state(shared)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        ErrorCode::NotFound,
        format!(
            "no such resource: {} (the API is described at /v1/openapi.json)",
            uri.path()
        ),
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this resource does not take that method (see /v1/openapi.json)",
    )
}
