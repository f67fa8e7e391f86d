//! The forward proxy a job's build reaches the network through: plain HTTP requests are forwarded, HTTPS
//! goes through CONNECT tunnels ([`super::tunnel`]). Every request is checked against the allow-list, the
//! name is resolved here and the address checked before connecting ([`super::address`]), and a job's
//! requests and bytes are capped. Each exchange is recorded: method, URL, status, bytes and, for forwarded
//! bodies, their sha256.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::allow::AllowList;
use super::cache::Cache;
use super::job::{connect, refuse, Exchange, Limits, ProxyBody, State};
use super::replay::ReplaySet;
use super::sink::Sink;
use super::tls::Interception;

/// What a job's proxy lets through and does with it.
pub struct Setup {
    pub allow: AllowList,
    pub limits: Limits,
    /// Where whole 2xx GET bodies are kept by digest (and, in replay, served from).
    pub cache: Option<Cache>,
    /// Fetch nothing: serve only these recorded bodies from the cache.
    pub replay: Option<ReplaySet>,
    /// End the build's TLS with the job's CA, to see and record HTTPS exchanges.
    pub intercept: Option<Interception>,
    /// Where the build's registry pushes land (never forwarded).
    pub sink: Option<Arc<Sink>>,
    /// Let registry pulls by tag through (recorded as unpinned); refused otherwise.
    pub allow_tag_pulls: bool,
}

/// A job's proxy: its allow-list, budget and record, served on the listeners it is given. A rebuild serves
/// it only inside the job's own network namespace ([`Proxy::open_in`]); [`Proxy::start`] serves it on the
/// host's loopback (tests and benchmarks).
pub struct Proxy {
    addr: Option<SocketAddr>,
    state: Arc<State>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    /// A proxy that serves nothing yet, keeps nothing and intercepts nothing.
    pub fn new(allow: AllowList, limits: Limits) -> Proxy {
        Proxy::with(Setup {
            allow,
            limits,
            cache: None,
            replay: None,
            intercept: None,
            sink: None,
            allow_tag_pulls: false,
        })
    }

    /// A proxy as `setup` says.
    pub fn with(setup: Setup) -> Proxy {
        Proxy {
            addr: None,
            state: Arc::new(State {
                allow: setup.allow,
                limits: setup.limits,
                cache: setup.cache,
                replay: setup.replay.map(Mutex::new),
                intercept: setup.intercept,
                sink: setup.sink,
                allow_tag_pulls: setup.allow_tag_pulls,
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
        Proxy::start_with(Proxy::new(allow, limits)).await
    }

    /// [`Proxy::start`] for a proxy made with [`Proxy::with`].
    pub async fn start_with(mut proxy: Proxy) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
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
    if method == Method::CONNECT {
        return super::tunnel::tunnel(state, req).await;
    }
    forward(state, req).await
}

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
    let allowed = state.allow.allows_request("http", &host, port, &path);
    let req = match super::sink::to_sink(&state, &url, authority.as_str(), allowed.is_some(), req)
        .await
    {
        Ok(answer) => return answer,
        Err(req) => req,
    };
    if state.replay.is_some() {
        return super::replay::serve(state, &method, url).await;
    }
    let Some(grant) = allowed else {
        return refuse(
            &state,
            &method,
            &url,
            format!("{url} is not on the allow-list"),
        );
    };
    let req = match super::registry::route(&state, &url, req) {
        Ok(super::registry::Route::Pinned(digest, req)) => {
            let s = state.clone();
            return super::registry::pull_through(
                state,
                url,
                authority.as_str(),
                &path,
                req,
                digest,
                || async move { connect(&s, &host, port, grant).await.map(TokioIo::new) },
            )
            .await;
        }
        Ok(super::registry::Route::Onward(req, unpinned)) => (req, unpinned),
        Err(why) => return refuse(&state, &method, &url, why),
    };
    let (req, unpinned) = req;
    let stream = match connect(&state, &host, port, grant).await {
        Ok(s) => s,
        Err(why) => return refuse(&state, &method, &url, why),
    };
    super::upstream::send(
        state,
        url,
        authority.as_str(),
        &path,
        req,
        TokioIo::new(stream),
        unpinned,
    )
    .await
}
