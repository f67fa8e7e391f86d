//! The forward proxy a job's build reaches the network through: plain HTTP requests are forwarded, HTTPS
//! goes through CONNECT tunnels. Every request is checked against the allow-list, the name is resolved
//! here and the address checked before connecting ([`super::address`]), and a job's requests and bytes are
//! capped. Each exchange is recorded: method, URL, status, bytes and, for forwarded bodies, their sha256.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};

use super::address;
use super::allow::AllowList;

/// A job's budget on the network.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests and tunnels, together.
    pub max_requests: u64,
    /// Bytes received from upstream, bodies and tunnels together.
    pub max_bytes: u64,
    /// Connecting to an upstream gives up after this long.
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests: 10_000,
            max_bytes: 8 << 30,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// One request or tunnel of a build, as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    /// The URL requested (`host:port` for a tunnel).
    pub url: String,
    /// The upstream's status (403 for a refusal).
    pub status: Option<u16>,
    /// Bytes received from upstream (for a tunnel: both directions).
    pub bytes: u64,
    /// sha256 of the whole body received (`sha256:<hex>`); absent for tunnels and bodies not read to the end.
    pub sha256: Option<String>,
    /// Why the proxy refused it: this rebuilder's policy, not the build's doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

struct State {
    allow: AllowList,
    limits: Limits,
    requests: AtomicU64,
    bytes: AtomicU64,
    log: Mutex<Vec<Exchange>>,
}

impl State {
    fn record(&self, e: Exchange) -> usize {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.push(e);
        log.len() - 1
    }

    fn update(&self, at: usize, f: impl FnOnce(&mut Exchange)) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = log.get_mut(at) {
            f(e);
        }
    }

    /// Counts `n` bytes against the budget; `false` once it is spent.
    fn spend(&self, n: u64) -> bool {
        self.bytes.fetch_add(n, Ordering::Relaxed) + n <= self.limits.max_bytes
    }
}

/// A running proxy for one job, on 127.0.0.1.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

fn text(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut r = Response::new(boxed_full(message));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // A refused client is not kept waiting on a kept-alive connection.
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

impl Proxy {
    /// Starts a proxy on a fresh port of 127.0.0.1.
    pub async fn start(allow: AllowList, limits: Limits) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            allow,
            limits,
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let serving = state.clone();
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
        Ok(Proxy { addr, state, task })
    }

    /// Where builds reach it (`http://<addr>` as `HTTP_PROXY` and `HTTPS_PROXY`).
    pub fn addr(&self) -> SocketAddr {
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
        self.task.abort();
        self.exchanges()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Refuses a request: recorded, and answered 403 with the reason.
fn refuse(state: &State, method: &Method, url: &str, why: String) -> Response<ProxyBody> {
    state.record(Exchange {
        method: method.to_string(),
        url: url.to_string(),
        status: Some(403),
        bytes: 0,
        sha256: None,
        refused: Some(why.clone()),
    });
    text(
        StatusCode::FORBIDDEN,
        format!("reprod build network: network-denied: {why}\n"),
    )
}

/// Resolves `host:port` and connects to the first address the policy accepts.
async fn connect(
    state: &State,
    host: &str,
    port: u16,
    names_address: bool,
) -> Result<TcpStream, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let resolved: Vec<SocketAddr> = tokio::time::timeout(
        state.limits.connect_timeout,
        tokio::net::lookup_host((bare, port)),
    )
    .await
    .map_err(|_| format!("resolving {host} took too long"))?
    .map_err(|e| format!("{host} does not resolve: {e}"))?
    .collect();
    let mut refusals = Vec::new();
    for addr in resolved {
        match address::special(addr.ip()) {
            // A name may resolve anywhere; only an entry naming the address itself reaches a special one.
            Some(why) if !names_address => {
                refusals.push(format!("{host} resolves to {} ({why})", addr.ip()))
            }
            _ => {
                return match tokio::time::timeout(
                    state.limits.connect_timeout,
                    TcpStream::connect(addr),
                )
                .await
                {
                    Ok(Ok(s)) => Ok(s),
                    Ok(Err(e)) => Err(format!("connecting to {addr}: {e}")),
                    Err(_) => Err(format!("connecting to {addr} took too long")),
                };
            }
        }
    }
    Err(if refusals.is_empty() {
        format!("{host} has no address")
    } else {
        refusals.join("; ")
    })
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let method = req.method().clone();
    let url = req.uri().to_string();
    if state.requests.fetch_add(1, Ordering::Relaxed) >= state.limits.max_requests {
        let why = format!("the job's {} requests are spent", state.limits.max_requests);
        return refuse(&state, &method, &url, why);
    }
    if method == Method::CONNECT {
        return tunnel(state, req).await;
    }
    forward(state, req).await
}

async fn tunnel(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let method = req.method().clone();
    let Some(authority) = req.uri().authority().cloned() else {
        return refuse(
            &state,
            &method,
            &req.uri().to_string(),
            "CONNECT without host:port".into(),
        );
    };
    let (host, port) = (
        authority.host().to_string(),
        authority.port_u16().unwrap_or(443),
    );
    let target = format!("{host}:{port}");
    let Some(grant) = state.allow.allows_tunnel(&host, port) else {
        return refuse(
            &state,
            &method,
            &target,
            format!("{target} is not on the allow-list"),
        );
    };
    let upstream = match connect(&state, &host, port, grant.names_address).await {
        Ok(s) => s,
        Err(why) => return refuse(&state, &method, &target, why),
    };
    let at = state.record(Exchange {
        method: method.to_string(),
        url: target,
        status: Some(200),
        bytes: 0,
        sha256: None,
        refused: None,
    });
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        carry(state, at, TokioIo::new(upgraded), upstream).await;
    });
    Response::new(
        http_body_util::Empty::new()
            .map_err(|never: Infallible| match never {})
            .boxed(),
    )
}

fn boxed_full(message: String) -> ProxyBody {
    Full::new(Bytes::from(message))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Carries a tunnel both ways, counting what comes from upstream against the job's byte budget: the
/// tunnel is closed when the budget is spent, and the record says why.
async fn carry(
    state: Arc<State>,
    at: usize,
    client: TokioIo<hyper::upgrade::Upgraded>,
    upstream: TcpStream,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut up_read, mut up_write) = upstream.into_split();
    let sent = AtomicU64::new(0);
    let to_upstream = async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if up_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        let _ = up_write.shutdown().await;
    };
    let mut received = 0u64;
    let from_upstream = async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match up_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    received += n as u64;
                    if !state.spend(n as u64) {
                        let why = format!("the job's {} bytes are spent", state.limits.max_bytes);
                        state.update(at, |e| e.refused = Some(why));
                        break;
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_write.shutdown().await;
    };
    // Each direction runs to its end (a half-closed side still gets its answer); a spent budget ends the
    // download direction at once.
    tokio::join!(to_upstream, from_upstream);
    let total = received + sent.load(Ordering::Relaxed);
    state.update(at, |e| e.bytes = total);
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
    let body = Recorded {
        inner: body,
        state,
        at,
        hasher: Some(Sha256::new()),
        bytes: 0,
    };
    Response::from_parts(parts, body.boxed())
}

/// A response body on its way to the build, hashed and counted as it passes.
struct Recorded {
    inner: Incoming,
    state: Arc<State>,
    at: usize,
    hasher: Option<Sha256>,
    bytes: u64,
}

impl Recorded {
    /// The whole body has passed: its digest goes into the record.
    fn finish(&mut self) {
        if let Some(h) = self.hasher.take() {
            let digest = format!("sha256:{}", hex::encode(h.finalize()));
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
                    let (at, bytes) = (this.at, this.bytes);
                    this.state.update(at, |e| e.bytes = bytes);
                    if !this.state.spend(n) {
                        // Over the job's budget: the build's connection is cut, and the record says why.
                        this.hasher = None;
                        let why =
                            format!("the job's {} bytes are spent", this.state.limits.max_bytes);
                        let said = why.clone();
                        this.state.update(at, |e| e.refused = Some(said));
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
