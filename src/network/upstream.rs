//! Sending an allowed request upstream and passing the answer back: hop-by-hop headers dropped, the
//! answer recorded, its body hashed, counted against the job's budget and kept in the cache as it passes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::cache::Cache;
use super::job::{refuse, text, BoxError, Exchange, ProxyBody, State};

/// Headers that belong to one hop, never forwarded (RFC 9110 §7.6.1).
pub(super) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Sends `req` (for `url`) to the upstream `authority` over `io` as an origin-form request for `path`,
/// without the hop-by-hop headers: the upstream's answer, or what the build is answered instead.
pub(super) async fn ask<I>(
    state: &State,
    url: &str,
    authority: &str,
    path: &str,
    req: Request<Incoming>,
    io: I,
) -> Result<Response<Incoming>, Box<Response<ProxyBody>>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let method = req.method().clone();
    let gateway = |e: hyper::Error| {
        Box::new(text(
            StatusCode::BAD_GATEWAY,
            format!("upstream {authority}: {e}\n"),
        ))
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(gateway)?;
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    parts.uri = path
        .parse()
        .map_err(|_| Box::new(refuse(state, &method, url, "an unusable path".into())))?;
    if let Ok(v) = hyper::header::HeaderValue::from_str(authority) {
        parts.headers.insert(hyper::header::HOST, v);
    }
    sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(gateway)
}

/// Sends an allowed request to its upstream over `io` (plain, or TLS the proxy speaks) and passes the
/// answer back, recording it and hashing (and keeping) its body as it goes.
pub(super) async fn send<I>(
    state: Arc<State>,
    url: String,
    authority: &str,
    path: &str,
    req: Request<Incoming>,
    io: I,
    unpinned: bool,
) -> Response<ProxyBody>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let method = req.method().clone();
    let answer = match ask(&state, &url, authority, path, req, io).await {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    let url_for_log = url.clone();
    let at = state.record(Exchange {
        method: method.to_string(),
        url,
        status: Some(answer.status().as_u16()),
        bytes: 0,
        sha256: None,
        refused: None,
        unpinned,
        ..Default::default()
    });
    let (mut parts, body) = answer.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    let keep = match &state.cache {
        Some(cache) if method == Method::GET && parts.status.is_success() => {
            Some(keeper(cache.clone()))
        }
        _ => None,
    };
    let body = Recorded {
        inner: body,
        state,
        at,
        hasher: Some(Sha256::new()),
        bytes: 0,
        keep,
        url: url_for_log,
    };
    Response::from_parts(parts, body.boxed())
}

/// What the cache writer is sent: the body's chunks, then its digest once it has passed whole. A
/// writer whose sender goes first keeps nothing.
enum Keep {
    Chunk(Bytes),
    Done(String),
}

/// Chunks a body's cache writer may lag behind the build by. A disk slower than that gives up keeping
/// the body (the build's download goes on; only the cache entry is lost): memory stays bounded.
const KEEP_QUEUE: usize = 1024;

/// Starts a writer off the async threads that keeps one body in the cache.
fn keeper(cache: Cache) -> tokio::sync::mpsc::Sender<Keep> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(KEEP_QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut writer = match cache.writer() {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(dir = %cache.dir().display(), error = %e, "the network cache cannot keep a body");
                return;
            }
        };
        while let Some(message) = rx.blocking_recv() {
            match message {
                Keep::Chunk(chunk) => {
                    if let Err(e) = writer.write(&chunk) {
                        tracing::warn!(error = %e, "the network cache could not keep a body");
                        return;
                    }
                }
                Keep::Done(digest) => {
                    if let Err(e) = writer.commit(&digest) {
                        tracing::warn!(error = %e, "the network cache could not keep a body");
                    }
                    return;
                }
            }
        }
    });
    tx
}

/// A response body on its way to the build, hashed and counted as it passes (and kept in the cache).
struct Recorded {
    inner: Incoming,
    state: Arc<State>,
    at: usize,
    hasher: Option<Sha256>,
    bytes: u64,
    keep: Option<tokio::sync::mpsc::Sender<Keep>>,
    /// For messages.
    url: String,
}

impl Recorded {
    /// The whole body has passed: its digest goes into the record (and the kept copy becomes an entry).
    fn finish(&mut self) {
        if let Some(h) = self.hasher.take() {
            let digest = format!("sha256:{}", hex::encode(h.finalize()));
            if let Some(keep) = self.keep.take() {
                let _ = keep.try_send(Keep::Done(digest.clone()));
            }
            self.state.update(self.at, |e| e.sha256 = Some(digest));
        }
    }
}

impl Body for Recorded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.bytes += n;
                    if let Some(h) = this.hasher.as_mut() {
                        h.update(data);
                    }
                    if let Some(keep) = &this.keep {
                        if keep.try_send(Keep::Chunk(data.clone())).is_err() {
                            tracing::warn!(url = %this.url, "the network cache fell behind; this body is not kept");
                            this.keep = None;
                        }
                    }
                    if let Err(why) = this.state.charge(this.at, n, this.bytes) {
                        // Over the job's budget: the build's connection is cut, and the record says why.
                        this.hasher = None;
                        this.keep = None;
                        return Poll::Ready(Some(Err(why.into())));
                    }
                }
                // A body of known length ends with its last frame; the server may not ask again.
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
