//! The forward proxy a job's build reaches the network through: plain HTTP requests are forwarded, HTTPS
//! goes through CONNECT tunnels ([`super::tunnel`]). Every request is checked against the allow-list, the
//! name is resolved here and the address checked before connecting ([`super::address`]), and a job's
//! requests and bytes are capped. Each exchange is recorded: method, URL, status, bytes and, for forwarded
//! bodies, their sha256.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use super::allow::AllowList;
use super::cache::Cache;
use super::job::{connect, refuse, text, BoxError, Exchange, Limits, ProxyBody, State};
use super::replay::ReplaySet;

/// A job's proxy: its allow-list, budget and record, served on the listeners it is given. A rebuild serves
/// it only inside the job's own network namespace ([`Proxy::open_in`]); [`Proxy::start`] serves it on the
/// host's loopback (tests and benchmarks).
pub struct Proxy {
    addr: Option<SocketAddr>,
    state: Arc<State>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    /// A proxy that serves nothing yet.
    pub fn new(allow: AllowList, limits: Limits) -> Proxy {
        Proxy::with(allow, limits, None, None)
    }

    /// A proxy that keeps whole 2xx GET bodies in `cache`, or (with `replay`) fetches nothing and serves
    /// only the recorded bodies from it.
    pub fn with(
        allow: AllowList,
        limits: Limits,
        cache: Option<Cache>,
        replay: Option<ReplaySet>,
    ) -> Proxy {
        Proxy {
            addr: None,
            state: Arc::new(State {
                allow,
                limits,
                cache,
                replay: replay.map(Mutex::new),
                requests: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                log: Mutex::new(Vec::new()),
            }),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts a proxy on a fresh port of the host's 127.0.0.1 (any local process can reach it there: for
    /// tests and benchmarks, never for a rebuild).
    pub async fn start(allow: AllowList, limits: Limits) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut proxy = Proxy::new(allow, limits);
        proxy.addr = Some(listener.local_addr()?);
        proxy.serve(listener);
        Ok(proxy)
    }

    /// Serves the proxy on `127.0.0.1:port` inside the network namespace of process `pid` (port 0: any
    /// free one), and nowhere else: only what runs in that namespace reaches it. Returns the port.
    pub async fn open_in(&self, pid: u32, port: u16) -> std::io::Result<u16> {
        let listener = super::attach::listener_in(pid, port).await?;
        let port = listener.local_addr()?.port();
        self.serve(listener);
        Ok(port)
    }

    fn serve(&self, listener: TcpListener) {
        let serving = self.state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(task);
    }

    /// Where [`Proxy::start`] serves it on the host (`http://<addr>` as `HTTP_PROXY`); `None` for a proxy
    /// served only in namespaces.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// What it has recorded so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting and returns the record (exchanges still streaming are recorded as far as they got).
    pub fn stop(self) -> Vec<Exchange> {
        self.abort();
        self.exchanges()
    }

    fn abort(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.abort();
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let method = req.method().clone();
    let url = req.uri().to_string();
    if state.requests.fetch_add(1, Ordering::Relaxed) >= state.limits.max_requests {
        let why = format!("the job's {} requests are spent", state.limits.max_requests);
        return refuse(&state, &method, &url, why);
    }
    if state.replay.is_some() {
        return super::replay::serve(state, req).await;
    }
    if method == Method::CONNECT {
        return super::tunnel::tunnel(state, req).await;
    }
    forward(state, req).await
}

/// Headers that belong to one hop, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

async fn forward(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let method = req.method().clone();
    let url = req.uri().to_string();
    let uri = req.uri().clone();
    let scheme = uri.scheme_str().unwrap_or("");
    if scheme != "http" {
        let why = if scheme == "https" {
            "an https:// URL goes through CONNECT".to_string()
        } else {
            "a proxy request names an absolute http:// URL".to_string()
        };
        return refuse(&state, &method, &url, why);
    }
    let Some(authority) = uri.authority().cloned() else {
        return refuse(&state, &method, &url, "no host in the URL".into());
    };
    let (host, port) = (
        authority.host().to_string(),
        authority.port_u16().unwrap_or(80),
    );
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let Some(grant) = state.allow.allows_request("http", &host, port, &path) else {
        return refuse(
            &state,
            &method,
            &url,
            format!("{url} is not on the allow-list"),
        );
    };
    let stream = match connect(&state, &host, port, grant.names_address).await {
        Ok(s) => s,
        Err(why) => return refuse(&state, &method, &url, why),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("upstream {host}: {e}\n")),
    };
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    parts.uri = match path.parse() {
        Ok(p) => p,
        Err(_) => return refuse(&state, &method, &url, "an unusable path".into()),
    };
    if let Ok(v) = hyper::header::HeaderValue::from_str(authority.as_str()) {
        parts.headers.insert(hyper::header::HOST, v);
    }
    let answer = match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(a) => a,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("upstream {host}: {e}\n")),
    };
    let at = state.record(Exchange {
        method: method.to_string(),
        url,
        status: Some(answer.status().as_u16()),
        bytes: 0,
        sha256: None,
        refused: None,
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
    };
    Response::from_parts(parts, body.boxed())
}

/// What the cache writer is sent: the body's chunks, then its digest once it has passed whole. A
/// writer whose sender goes first keeps nothing.
enum Keep {
    Chunk(Bytes),
    Done(String),
}

/// Starts a writer off the async threads that keeps one body in the cache.
fn keeper(cache: Cache) -> tokio::sync::mpsc::UnboundedSender<Keep> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
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
    keep: Option<tokio::sync::mpsc::UnboundedSender<Keep>>,
}

impl Recorded {
    /// The whole body has passed: its digest goes into the record (and the kept copy becomes an entry).
    fn finish(&mut self) {
        if let Some(h) = self.hasher.take() {
            let digest = format!("sha256:{}", hex::encode(h.finalize()));
            if let Some(keep) = self.keep.take() {
                let _ = keep.send(Keep::Done(digest.clone()));
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
                        let _ = keep.send(Keep::Chunk(data.clone()));
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
