//! The push sink: what a build pushes to any registry (blob uploads, `PUT /v2/<name>/manifests/<ref>`)
//! is never forwarded. It lands in a registry of the job's own, kept as an OCI image layout in the job
//! directory (`index.json` naming each pushed manifest by `org.opencontainers.image.ref.name` =
//! `host/name:tag`), which the output scan reads like any layout the build left: every pushed manifest
//! or index is an output, compared with the subjects by digest and paired with them by name.
//!
//! It speaks as much of the OCI distribution protocol as a push needs: the `/v2/` ping (for hosts the
//! allow-list does not name), blob existence checks, uploads (POST, PATCH, PUT with `?digest=`; a
//! cross-repository mount request is answered with a plain upload), manifest PUT, and reads of what was
//! pushed. Every digest is verified before anything is kept under it.

use std::sync::atomic::Ordering;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::job::{boxed_full, Exchange, ProxyBody, State};
use super::sink_store::write_layout;
pub use super::sink_store::{Pushed, Sink};

/// Largest manifest accepted (registries commonly take 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;

/// Whether `(method, path)` is a request the sink answers: anything that writes to a registry, and the
/// ping of a host nothing upstream is allowed for.
pub(super) fn takes(method: &Method, path: &str, host_allowed: bool) -> bool {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return false;
    };
    if rest.is_empty() || rest.starts_with('?') {
        return !host_allowed;
    }
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        || (!host_allowed && matches!(*method, Method::GET | Method::HEAD))
}

fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// What a `/v2/` path names.
enum Route<'a> {
    Ping,
    Blob { digest: &'a str },
    StartUpload { name: &'a str },
    Upload { name: &'a str, id: &'a str },
    Manifest { name: &'a str, reference: &'a str },
}

fn route(path: &str) -> Option<Route<'_>> {
    let path = path.split('?').next()?;
    let rest = path.strip_prefix("/v2/")?;
    if rest.is_empty() {
        return Some(Route::Ping);
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        if let Some(id) = digest.strip_prefix("uploads/") {
            return Some(if id.is_empty() {
                Route::StartUpload { name }
            } else {
                Route::Upload { name, id }
            });
        }
        if digest == "uploads" {
            return Some(Route::StartUpload { name });
        }
        return Some(Route::Blob { digest });
    }
    let (name, reference) = rest.rsplit_once("/manifests/")?;
    Some(Route::Manifest { name, reference })
}

/// A query parameter, percent-decoded (`?digest=sha256%3A…`).
fn query(path: &str, key: &str) -> Option<String> {
    path.split_once('?')?.1.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn answer(status: StatusCode, headers: &[(&str, String)], body: Vec<u8>) -> Response<ProxyBody> {
    let mut r = Response::new(boxed_full(String::from_utf8_lossy(&body).into_owned()));
    *r.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r.headers_mut().insert(
        "docker-distribution-api-version",
        hyper::header::HeaderValue::from_static("registry/2.0"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    answer(
        status,
        &[("content-type", "application/json".into())],
        body.to_string().into_bytes(),
    )
}

impl Sink {
    /// Answers one registry request of the build for `host`.
    pub(super) async fn handle(
        &self,
        state: &State,
        host: &str,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let method = req.method().clone();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let Some(r) = route(&path) else {
            return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "not a registry path");
        };
        match r {
            Route::Ping => answer(StatusCode::OK, &[], b"{}".to_vec()),
            Route::Blob { digest } if is_digest(digest) => {
                let file = self.blob(digest);
                match tokio::fs::read(&file).await {
                    Ok(bytes) => {
                        let headers = [
                            ("content-length", bytes.len().to_string()),
                            ("docker-content-digest", digest.to_string()),
                        ];
                        let body = if method == Method::HEAD {
                            Vec::new()
                        } else {
                            bytes
                        };
                        answer(StatusCode::OK, &headers, body)
                    }
                    Err(_) => error(
                        StatusCode::NOT_FOUND,
                        "BLOB_UNKNOWN",
                        "not in this job's sink",
                    ),
                }
            }
            Route::Blob { .. } => {
                error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "a sha256 digest")
            }
            Route::StartUpload { name } => {
                let id = format!("u{}", self.next.fetch_add(1, Ordering::Relaxed));
                let file = self.dir.join("uploads").join(&id);
                if tokio::fs::write(&file, b"").await.is_err() {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "UNKNOWN",
                        "the sink cannot write",
                    );
                }
                self.uploads
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.clone(), file);
                // A monolithic upload: POST with ?digest= and the body.
                if let Some(digest) = query(&path, "digest") {
                    return self.finish(state, name, &id, &digest, req).await;
                }
                let location = format!("/v2/{name}/blobs/uploads/{id}");
                answer(
                    StatusCode::ACCEPTED,
                    &[
                        ("location", location),
                        ("range", "0-0".into()),
                        ("docker-upload-uuid", id),
                        ("content-length", "0".into()),
                    ],
                    Vec::new(),
                )
            }
            Route::Upload { name, id } => match method {
                Method::PATCH => match self.append(state, id, req).await {
                    Ok(size) => answer(
                        StatusCode::ACCEPTED,
                        &[
                            ("location", format!("/v2/{name}/blobs/uploads/{id}")),
                            ("range", format!("0-{}", size.saturating_sub(1))),
                            ("docker-upload-uuid", id.to_string()),
                            ("content-length", "0".into()),
                        ],
                        Vec::new(),
                    ),
                    Err(r) => r,
                },
                Method::PUT => match query(&path, "digest") {
                    Some(digest) => self.finish(state, name, id, &digest, req).await,
                    None => error(
                        StatusCode::BAD_REQUEST,
                        "DIGEST_INVALID",
                        "PUT needs ?digest=",
                    ),
                },
                _ => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "UNSUPPORTED",
                    "PATCH or PUT",
                ),
            },
            Route::Manifest { name, reference } => match method {
                Method::PUT => self.put_manifest(state, host, name, reference, req).await,
                Method::GET | Method::HEAD => self.get_manifest(host, name, reference, &method),
                _ => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "UNSUPPORTED",
                    "GET, HEAD or PUT",
                ),
            },
        }
    }

    /// Appends a request body to an upload; its new size, or the answer to give.
    async fn append(
        &self,
        state: &State,
        id: &str,
        req: Request<Incoming>,
    ) -> Result<u64, Response<ProxyBody>> {
        use tokio::io::AsyncWriteExt;
        let file = self
            .uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UPLOAD_UNKNOWN",
                    "no such upload",
                )
            })?;
        let fail = || {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "the sink cannot write",
            )
        };
        let mut out = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .await
            .map_err(|_| fail())?;
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| fail())?;
            if let Some(data) = frame.data_ref() {
                if !state.spend(data.len() as u64) {
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "DENIED",
                        &format!("the job's {} bytes are spent", state.limits.max_bytes),
                    ));
                }
                out.write_all(data).await.map_err(|_| fail())?;
            }
        }
        out.sync_all().await.map_err(|_| fail())?;
        Ok(out.metadata().await.map_err(|_| fail())?.len())
    }

    /// Ends an upload: its bytes must hash to `digest`, then they are a blob.
    async fn finish(
        &self,
        state: &State,
        name: &str,
        id: &str,
        digest: &str,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        if !is_digest(digest) {
            return error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "a sha256 digest");
        }
        if let Err(r) = self.append(state, id, req).await {
            return r;
        }
        let Some(file) = self
            .uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id)
        else {
            return error(
                StatusCode::NOT_FOUND,
                "BLOB_UPLOAD_UNKNOWN",
                "no such upload",
            );
        };
        let (target, wanted) = (self.blob(digest), digest.to_string());
        let kept = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let mut hasher = Sha256::new();
            let mut f = std::fs::File::open(&file)?;
            std::io::copy(&mut f, &mut hasher)?;
            let got = format!("sha256:{}", hex::encode(hasher.finalize()));
            if got != wanted {
                let _ = std::fs::remove_file(&file);
                return Ok(false);
            }
            std::fs::rename(&file, &target)?;
            Ok(true)
        })
        .await;
        match kept {
            Ok(Ok(true)) => answer(
                StatusCode::CREATED,
                &[
                    ("location", format!("/v2/{name}/blobs/{digest}")),
                    ("docker-content-digest", digest.to_string()),
                    ("content-length", "0".into()),
                ],
                Vec::new(),
            ),
            Ok(Ok(false)) => error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "the uploaded bytes do not hash to the digest given",
            ),
            _ => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "the sink cannot write",
            ),
        }
    }

    async fn put_manifest(
        &self,
        state: &State,
        host: &str,
        name: &str,
        reference: &str,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let media_type = req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_string();
        let body = match http_body_util::Limited::new(req.into_body(), MAX_MANIFEST)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "MANIFEST_INVALID",
                    "a manifest of at most 4 MiB",
                )
            }
        };
        if !state.spend(body.len() as u64) {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "DENIED",
                "the job's bytes are spent",
            );
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if reference.starts_with("sha256:") && reference != digest {
            return error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "the manifest does not hash to the digest it is pushed by",
            );
        }
        let full = if reference.starts_with("sha256:") {
            format!("{host}/{name}@{reference}")
        } else {
            format!("{host}/{name}:{reference}")
        };
        let pushed = Pushed {
            reference: full,
            digest: digest.clone(),
            media_type,
            size: body.len() as u64,
        };
        let (dir, blob) = (self.dir.clone(), self.blob(&digest));
        let all = {
            let mut list = self
                .pushed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            list.retain(|p| p.reference != pushed.reference);
            list.push(pushed);
            list.clone()
        };
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::write(&blob, &body)?;
            write_layout(&dir, &all)
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "the sink cannot write",
            );
        }
        answer(
            StatusCode::CREATED,
            &[
                ("location", format!("/v2/{name}/manifests/{digest}")),
                ("docker-content-digest", digest),
                ("content-length", "0".into()),
            ],
            Vec::new(),
        )
    }

    fn get_manifest(
        &self,
        host: &str,
        name: &str,
        reference: &str,
        method: &Method,
    ) -> Response<ProxyBody> {
        let full_tag = format!("{host}/{name}:{reference}");
        let found = self.pushed().into_iter().find(|p| {
            p.reference == full_tag
                || (p.digest == reference && p.reference.starts_with(&format!("{host}/{name}")))
        });
        let Some(p) = found else {
            return error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "not in this job's sink",
            );
        };
        let bytes = std::fs::read(self.blob(&p.digest)).unwrap_or_default();
        let headers = [
            ("content-type", p.media_type.clone()),
            ("content-length", bytes.len().to_string()),
            ("docker-content-digest", p.digest.clone()),
        ];
        answer(
            StatusCode::OK,
            &headers,
            if *method == Method::HEAD {
                Vec::new()
            } else {
                bytes
            },
        )
    }
}

/// Hands a registry write (or a read of what was pushed) to the job's sink, if it takes it, and records
/// it; `Err` gives the request back.
pub(super) async fn to_sink(
    state: &State,
    url: &str,
    authority: &str,
    host_allowed: bool,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Response<ProxyBody>, hyper::Request<hyper::body::Incoming>> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Some(sink) = state
        .sink
        .clone()
        .filter(|_| takes(req.method(), path, host_allowed))
    else {
        return Err(req);
    };
    let method = req.method().to_string();
    let answer = sink.handle(state, authority, req).await;
    state.record(Exchange {
        method,
        url: url.to_string(),
        status: Some(answer.status().as_u16()),
        bytes: 0,
        sha256: None,
        refused: None,
        sink: true,
        ..Default::default()
    });
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_are_taken_and_reads_only_for_hosts_nothing_upstream_is_allowed_for() {
        assert!(takes(&Method::PUT, "/v2/team/app/manifests/1", true));
        assert!(takes(&Method::POST, "/v2/team/app/blobs/uploads/", true));
        assert!(takes(&Method::PATCH, "/v2/team/app/blobs/uploads/u1", true));
        assert!(!takes(&Method::GET, "/v2/team/app/blobs/sha256:aa", true));
        assert!(takes(&Method::GET, "/v2/team/app/blobs/sha256:aa", false));
        assert!(takes(&Method::GET, "/v2/", false));
        assert!(!takes(&Method::GET, "/v2/", true));
        assert!(!takes(&Method::PUT, "/upload/v2/x", false));
        assert!(matches!(
            route("/v2/team/app/manifests/1"),
            Some(Route::Manifest {
                name: "team/app",
                reference: "1"
            })
        ));
        assert!(matches!(
            route("/v2/a/b/c/blobs/uploads/?mount=sha256:x&from=d"),
            Some(Route::StartUpload { name: "a/b/c" })
        ));
        assert_eq!(
            query("/x?y=1&digest=sha256%3Aab", "digest").as_deref(),
            Some("sha256:ab")
        );
    }
}
