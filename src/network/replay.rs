//! `replay`: a build is served only what a named earlier rebuild fetched, byte for byte, from the cache,
//! with no upstream at all. A request outside the record is refused, naming it; a cached body that is no
//! longer what the record names is cut off before its end (the build sees a failed download, never other
//! bytes passing for the recorded ones).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame};
use hyper::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio_util::io::ReaderStream;

use super::job::{refuse, BoxError, Exchange, ProxyBody, State};
pub use super::replay_set::ReplaySet;

/// Answers a request for `url` from the record alone.
pub(super) async fn serve(state: Arc<State>, method: &Method, url: String) -> Response<ProxyBody> {
    let from = || {
        state
            .replay
            .as_ref()
            .map(|r| {
                r.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .from
                    .clone()
            })
            .unwrap_or_default()
    };
    if method != Method::GET {
        let why = format!(
            "a replay serves only the GET requests the rebuild it replays ({}) made; {method} is not one \
             (a tunnel's content was never seen, so it cannot be replayed)",
            from()
        );
        return refuse(&state, method, &url, why);
    }
    let digest = state.replay.as_ref().and_then(|r| {
        r.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next(&url)
    });
    let Some(digest) = digest else {
        let why = format!(
            "{url} is not in the record of the rebuild being replayed ({})",
            from()
        );
        return refuse(&state, method, &url, why);
    };
    serve_cached(state, method, url, digest, false).await
}

/// Serves the cached body `digest` for `url`, checked as it passes; `shared` marks a pull served from
/// the cache all jobs share (the upstream not asked).
pub(super) async fn serve_cached(
    state: Arc<State>,
    method: &Method,
    url: String,
    digest: String,
    shared: bool,
) -> Response<ProxyBody> {
    let Some(cache) = state.cache.clone() else {
        return refuse(
            &state,
            method,
            &url,
            "a replay needs the network cache".into(),
        );
    };
    let wanted = digest.clone();
    let entry = tokio::task::spawn_blocking(move || cache.get(&wanted))
        .await
        .ok()
        .flatten();
    let opened = match &entry {
        Some(path) => tokio::fs::File::open(path).await.ok(),
        None => None,
    };
    let (Some(file), Some(path)) = (opened, entry) else {
        let why = format!("{url} names {digest}, but the network cache no longer holds that body");
        return refuse(&state, method, &url, why);
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let url_for_type = url.clone();
    let at = state.record(Exchange {
        method: method.to_string(),
        url,
        status: Some(200),
        bytes: 0,
        sha256: None,
        refused: None,
        cached: shared,
        ..Default::default()
    });
    let expected_digest = digest.clone();
    let media_type = registry_media_type(&url_for_type, &path, len).await;
    let body = Checked {
        inner: ReaderStream::with_capacity(file, 256 << 10),
        state,
        at,
        hasher: Some(Sha256::new()),
        expected: digest,
        bytes: 0,
        held: None,
    };
    let mut answer = Response::new(body.boxed());
    *answer.status_mut() = StatusCode::OK;
    if let Ok(v) = hyper::header::HeaderValue::from_str(&len.to_string()) {
        answer
            .headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, v);
    }
    if let Some(media_type) = media_type {
        let headers = answer.headers_mut();
        for (name, value) in [
            ("content-type", media_type.as_str()),
            ("docker-content-digest", expected_digest.as_str()),
        ] {
            if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
    }
    answer
}

/// For a registry pull by digest (`/v2/…/manifests/sha256:…` or `/v2/…/blobs/sha256:…`), the media type
/// to answer with: a cached body is kept by digest alone, so a manifest's type is read from the manifest
/// itself ([`super::manifest::manifest_media_type`]); a blob is `application/octet-stream`.
async fn registry_media_type(url: &str, path: &std::path::Path, len: u64) -> Option<String> {
    let route = url.split_once("/v2/")?.1;
    if route.contains("/blobs/sha256:") {
        return Some("application/octet-stream".into());
    }
    if !route.contains("/manifests/sha256:") || len > super::manifest::MAX_MANIFEST_BYTES {
        return None;
    }
    let bytes = tokio::fs::read(path).await.ok()?;
    Some(super::manifest::manifest_media_type(&bytes).to_string())
}

/// A cached body on its way to the build, hashed as it passes. Its last chunk is held back until the
/// whole body is known to be the one the record names: a damaged entry is cut off before its end, so a
/// build never receives a whole body that is not the recorded one.
struct Checked {
    inner: ReaderStream<tokio::fs::File>,
    state: Arc<State>,
    at: usize,
    hasher: Option<Sha256>,
    expected: String,
    bytes: u64,
    held: Option<Bytes>,
}

impl Body for Checked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use futures_util::Stream;
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let n = chunk.len() as u64;
                    this.bytes += n;
                    if let Some(h) = this.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    if let Err(why) = this.state.charge(this.at, n, this.bytes) {
                        return Poll::Ready(Some(Err(why.into())));
                    }
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(Frame::data(previous))));
                    }
                }
                Poll::Ready(None) => {
                    if let Some(h) = this.hasher.take() {
                        let digest = format!("sha256:{}", hex::encode(h.finalize()));
                        if digest != this.expected {
                            let why = format!(
                                "the cached body is {digest}, not the recorded {}: the cache entry is damaged",
                                this.expected
                            );
                            let said = why.clone();
                            this.state.update(this.at, |e| e.refused = Some(said));
                            this.held = None;
                            return Poll::Ready(Some(Err(why.into())));
                        }
                        this.state.update(this.at, |e| e.sha256 = Some(digest));
                    }
                    return Poll::Ready(this.held.take().map(|last| Ok(Frame::data(last))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
