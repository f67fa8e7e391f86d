//! The daemon's HTTP server: the route table, submitting provenance with a token, jobs and their logs, and
//! the remote-worker protocol (lease, heartbeat, complete with the lease token). The public read side is in
//! `api`, the HTML pages in `pages`. Errors are JSON `{"error": {"code", "message"}}` with a stable code.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use reprod_jobs::{JobId, Queue};
use serde_json::json;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::api;
use super::ingest::{ingest, Intake, IntakeError};
use super::{blocking, Blocking, Shared};

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
        r("get", "/healthz", get(healthz)),
        r("get", "/metrics", get(api::metrics)),
        r("get", "/v1/openapi.json", get(api::openapi)),
        r("post", "/v1/provenance", post(submit)),
        r(
            "get",
            "/v1/provenance/{digest}",
            get(api::provenance_document),
        ),
        r("get", "/v1/verdicts", get(api::verdicts)),
        r(
            "get",
            "/v1/verdicts/{digest}",
            get(api::verdicts_for_digest),
        ),
        r("get", "/v1/keys", get(api::keys)),
        r("get", "/v1/jobs/{id}", get(job)),
        r(
            "get",
            "/v1/jobs/{id}/attestations/{kind}",
            get(api::attestation),
        ),
        r("get", "/v1/jobs/{id}/artifacts/{*name}", get(artifact)),
        r("post", "/v1/worker/lease", post(worker_lease)),
        r("post", "/v1/worker/heartbeat", post(worker_heartbeat)),
        r("post", "/v1/worker/complete", post(worker_complete)),
    ]
}

/// The most a heartbeat body may hold: a job id and a lease token.
pub const HEARTBEAT_BODY_BYTES: usize = 64 << 10;

pub fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for route in api_routes() {
        router = router.route(route.path, route.handler);
    }
    super::pages::routes(router)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(security_headers))
        // The write routes read their bodies themselves, after the token, each to its own limit; this
        // bounds any extractor that would read one.
        .layer(DefaultBodyLimit::max(HEARTBEAT_BODY_BYTES))
        .with_state(shared)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not-found",
        format!(
            "no such resource: {} (the API is described at /v1/openapi.json)",
            uri.path()
        ),
    )
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this resource does not take that method (see /v1/openapi.json)",
    )
}

/// Nothing served here is to be sniffed, framed, or run as script: pages are plain HTML and CSS.
pub(crate) async fn security_headers(mut response: Response) -> Response {
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

/// 503 `storage`: a store could not be read or written.
pub(crate) fn storage_error(e: impl std::fmt::Display) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
}

/// An error answer. Messages echo what clients sent (ids, names, parse errors quoting a body), so every
/// one is made inert here: a client printing it raw on a terminal sees escape sequences, not their effect.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = crate::text::inert_line(&message.into()).into_owned();
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match blocking(&shared, |s| s.queue.stats()).await {
        Ok(stats) => Json(json!({"status": "ok", "queue": stats})).into_response(),
        Err(e) => storage_error(e),
    }
}

/// `Authorization: Bearer <token>` against `server.submit_tokens`, compared as sha256 digests. Returns the
/// refusal, if any.
fn refuse_unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let Some(value) = headers.get("authorization") else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "submitting needs `Authorization: Bearer <token>` with a token from server.submit_tokens",
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    let known = shared
        .config
        .server
        .submit_tokens
        .iter()
        .any(|t| Some(Sha256::digest(t.as_bytes())) == presented);
    (!known).then(|| {
        error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token is not one this server accepts",
        )
    })
}

/// A request body of at most `limit` bytes (`setting` names where the limit comes from), read only once
/// the caller has authorized the request: axum's extractors would read it before the handler could look at
/// the token. A declared `Content-Length` over the limit is refused before a byte is read, and a body that
/// runs past it is read no further.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
    setting: &str,
) -> Result<Bytes, Response> {
    use http_body_util::BodyExt;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
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
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            "bad-body",
            format!("the body could not be read: {e}"),
        )),
    }
}

async fn submit(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    if let Some(refusal) = refuse_unauthorized(&shared, &headers) {
        return refusal;
    }
    let limit = shared.config.max_document_bytes;
    let body = match read_body(&headers, body, limit, "the document", "max_document_bytes").await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    match blocking(&shared, move |s| ingest(s, &body)).await {
        Ok(Intake::Queued { job, duplicate_of }) => (
            StatusCode::ACCEPTED,
            Json(json!({"jobs": [{"id": job, "status": if duplicate_of.is_some() { "duplicate" } else { "new" }}]})),
        )
            .into_response(),
        Ok(Intake::Rejected { reason, detail }) => error(StatusCode::UNPROCESSABLE_ENTITY, &reason, detail),
        Err(Blocking::Op(IntakeError::Parse(msg))) => error(StatusCode::BAD_REQUEST, "unparsable", msg),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            format!("intake stopped, nothing was recorded: {e}"),
        ),
    }
}

/// Everything known about a job, for the API and the job page.
pub(crate) struct JobView {
    pub info: reprod_jobs::JobInfo,
    pub verdict: Option<serde_json::Value>,
    pub record: Option<crate::store::VerdictRecord>,
    pub artifacts: Vec<String>,
}

pub(crate) async fn job_view(shared: &Arc<Shared>, id: &str) -> Result<Option<JobView>, String> {
    let lookup = id.to_string();
    blocking(shared, move |s| -> Result<_, String> {
        let Some(info) = s
            .queue
            .get(&JobId(lookup.clone()))
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        Ok(Some(JobView {
            info,
            verdict: s.store.verdict(&lookup).map_err(|e| e.to_string())?,
            record: s.store.record(&lookup).map_err(|e| e.to_string())?,
            artifacts: s.store.artifact_names(&lookup).map_err(|e| e.to_string())?,
        }))
    })
    .await
    .map_err(|e| e.to_string())
}

async fn job(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match job_view(&shared, &id).await {
        Ok(Some(v)) => api::conditional(
            &headers,
            &json!({
                "id": id,
                "state": v.info.state.name(),
                "attempt": v.info.attempt,
                "last_error": v.info.last_error,
                "record": v.record.as_ref().map(api::record_json),
                "verdict": v.verdict,
                "artifacts": v.artifacts,
            }),
            // The queue state changes after the verdict is recorded: no date, the ETag decides.
            None,
        ),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown-job", format!("no job {id}")),
        Err(e) => storage_error(e),
    }
}

/// One stored log (`logs/00-build.log`, text) or diff report (`diffs/0.json`).
async fn artifact(
    State(shared): State<Arc<Shared>>,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let (j, n) = (id.clone(), name.clone());
    match blocking(&shared, move |s| s.store.artifact(&j, &n)).await {
        Ok(Some(bytes)) => {
            let kind = if name.ends_with(".json") {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            ([("content-type", kind)], bytes).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown-artifact",
            format!("job {id} has no artifact {name}"),
        ),
        Err(e) => storage_error(e),
    }
}

// ---- remote workers ----

/// The worker a `Bearer` token belongs to (`server.worker_tokens`), or the refusal.
fn worker_of(shared: &Shared, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    let Some(presented) = presented else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "workers authenticate with `Authorization: Bearer <token>` from server.worker_tokens",
        )));
    };
    shared
        .config
        .server
        .worker_tokens
        .iter()
        .find(|(_, t)| Sha256::digest(t.as_bytes()) == presented)
        .map(|(name, _)| name.clone())
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "not a registered worker (registration is closed: workers are configured in server.worker_tokens)",
            ))
        })
}

/// A lease handed to a remote worker.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RemoteLease {
    pub job: String,
    pub token: String,
    pub attempt: u32,
    pub lease_secs: u64,
    /// The provenance document, base64.
    pub payload: String,
}

/// What a remote worker reports (the server reads it as a [`CompletionBody`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RemoteCompletion {
    pub job: String,
    pub token: String,
    /// The verdict, when one was reached.
    pub verdict: Option<serde_json::Value>,
    /// Why the job should be retried, when no verdict was reached.
    pub retry: Option<String>,
    /// Full step logs and diff reports (`logs/…`, `diffs/…` → base64), kept with the verdict.
    #[serde(default)]
    pub artifacts: std::collections::BTreeMap<String, String>,
}

/// A [`RemoteCompletion`] as the server parses it, straight from the body's bytes: the verdict stays raw
/// JSON until the lease is found to be this worker's, so nobody else's verdict is ever parsed.
#[derive(serde::Deserialize)]
pub struct CompletionBody<'a> {
    pub job: String,
    pub token: String,
    #[serde(borrow, default)]
    pub verdict: Option<&'a RawValue>,
    #[serde(default)]
    pub retry: Option<String>,
    #[serde(default)]
    pub artifacts: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
pub struct RemoteHeartbeat {
    pub job: String,
    pub token: String,
}

async fn worker_lease(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let name = match worker_of(&shared, &headers) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let secs = shared.config.server.lease_secs;
    let who = format!("remote:{name}");
    let seen = who.clone();
    match blocking(&shared, move |s| {
        s.queue.lease(&who, std::time::Duration::from_secs(secs))
    })
    .await
    {
        Ok(Some(l)) => {
            use base64::Engine;
            shared.saw_worker(&seen, Some(l.job.0.clone()));
            Json(RemoteLease {
                job: l.job.0,
                token: l.token.0,
                attempt: l.attempt,
                lease_secs: secs,
                payload: base64::engine::general_purpose::STANDARD.encode(l.payload),
            })
            .into_response()
        }
        Ok(None) => {
            shared.saw_worker(&seen, None);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => storage_error(e),
    }
}

/// The lease must be current (409 otherwise) and this worker's (403 otherwise).
async fn check_lease(shared: &Arc<Shared>, name: &str, job: &str, token: &str) -> Option<Response> {
    let id = JobId(job.to_string());
    let info = match blocking(shared, move |s| s.queue.get(&id)).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            return Some(error(
                StatusCode::NOT_FOUND,
                "unknown-job",
                format!("no job {job}"),
            ))
        }
        Err(e) => {
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage",
                e.to_string(),
            ))
        }
    };
    match info.state {
        reprod_jobs::JobState::Leased {
            token: t, worker, ..
        } if t.0 == token => (worker != format!("remote:{name}")).then(|| {
            error(
                StatusCode::FORBIDDEN,
                "not-your-lease",
                format!("job {job} is leased to {worker}"),
            )
        }),
        _ => Some(error(
            StatusCode::CONFLICT,
            "stale-lease",
            format!(
                "job {job} is not leased with this token (it expired, was completed or taken over)"
            ),
        )),
    }
}

async fn worker_heartbeat(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = match worker_of(&shared, &headers) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let limit = HEARTBEAT_BODY_BYTES;
    let bytes = match read_body(&headers, body, limit, "a heartbeat", "heartbeats are small").await
    {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let Ok(hb) = serde_json::from_slice::<RemoteHeartbeat>(&bytes) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-body",
            "expected {\"job\", \"token\"}",
        );
    };
    if let Some(refusal) = check_lease(&shared, &name, &hb.job, &hb.token).await {
        return refusal;
    }
    shared.saw_worker(&format!("remote:{name}"), Some(hb.job.clone()));
    let secs = shared.config.server.lease_secs;
    let (job, token) = (JobId(hb.job), reprod_jobs::LeaseToken(hb.token));
    match blocking(&shared, move |s| {
        s.queue
            .heartbeat(&job, &token, std::time::Duration::from_secs(secs))
    })
    .await
    {
        Ok(_) => Json(json!({"lease_secs": secs})).into_response(),
        Err(e) => queue_failure(e),
    }
}

async fn worker_complete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = match worker_of(&shared, &headers) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let limit = shared.config.server.max_completion_bytes;
    let setting = "server.max_completion_bytes";
    let bytes = match read_body(&headers, body, limit, "the completion", setting).await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let done: CompletionBody = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-body",
                format!("expected {{job, token, verdict | retry, artifacts}}: {e}"),
            )
        }
    };
    if let Some(refusal) = check_lease(&shared, &name, &done.job, &done.token).await {
        return refusal;
    }
    shared.saw_worker(&format!("remote:{name}"), None);
    let how = match (done.verdict, done.retry) {
        (Some(verdict), None) => {
            let verdict: crate::verdict::Verdict = match serde_json::from_str(verdict.get()) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "bad-verdict",
                        format!("`verdict` is not a verdict object: {e}"),
                    )
                }
            };
            let (j, worker) = (done.job.clone(), name.clone());
            let checked = blocking(&shared, move |s| {
                super::record::check_remote_verdict(s, &j, &worker, verdict)
            })
            .await;
            let (verdict, work_key) = match checked {
                Ok(v) => v,
                Err(Blocking::Op(why)) => {
                    return error(StatusCode::UNPROCESSABLE_ENTITY, "bad-verdict", why)
                }
                Err(e) => return storage_error(e),
            };
            let job = done.job.clone();
            let mut files = Vec::new();
            for (name, b64) in &done.artifacts {
                let ok_name = (name.starts_with("logs/") || name.starts_with("diffs/"))
                    && !name.contains("..");
                match crate::provenance::json::decode_base64(b64) {
                    Ok(bytes) if ok_name => files.push((name.clone(), bytes)),
                    _ => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad-body",
                            format!(
                                "artifact {name:?}: expected logs/… or diffs/… with base64 content"
                            ),
                        )
                    }
                }
            }
            let stored = blocking(&shared, move |s| {
                s.store.put_artifacts(&job, &files)?;
                super::record::record_verdict(s, &job, &verdict, work_key.as_deref())
            });
            if let Err(e) = stored.await {
                return storage_error(e);
            }
            reprod_jobs::Completion::Done
        }
        (None, Some(reason)) => reprod_jobs::Completion::Retry { reason },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "give exactly one of `verdict` and `retry`",
            )
        }
    };
    let (job, token) = (JobId(done.job), reprod_jobs::LeaseToken(done.token));
    match blocking(&shared, move |s| s.queue.complete(&job, &token, how)).await {
        Ok(state) => Json(json!({"state": state.name()})).into_response(),
        Err(e) => queue_failure(e),
    }
}

/// A lease that expired between the check and the write is a conflict; anything else is storage.
fn queue_failure(e: Blocking<reprod_jobs::QueueError>) -> Response {
    match e {
        Blocking::Op(reprod_jobs::QueueError::StaleLease(j)) => error(
            StatusCode::CONFLICT,
            "stale-lease",
            format!("job {j}: the lease expired"),
        ),
        e => storage_error(e),
    }
}
