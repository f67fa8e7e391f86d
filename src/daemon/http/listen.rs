//! The daemon's accept loop, on hyper and hyper-util rather than `axum::serve`, which has no timeout and no cap: a
//! client that opened connections and never finished a request head held a descriptor each until the
//! process ran out (EMFILE) and nobody else could connect.
//!
//! Every connection has a header-read timeout (hyper starts it again while a kept-alive connection waits
//! for its next request, so it is the keep-alive timeout too) and an idle timeout (nothing read or
//! written: a stalled upload, a client that stopped reading its answer). At most `max_connections` are
//! open; more wait in the listen backlog until one closes. At most `max_requests` are handled at once;
//! another is answered `503 overloaded` at once rather than queued behind them.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::error::ApiError;
use crate::config::ServerConfig;
use crate::wire::ErrorCode;

/// Descriptors kept for what is not a client connection (the stores, the Docker engine, git, logs) when
/// `server.max_connections` is lowered to fit the file-descriptor limit.
pub const RESERVED_FDS: u64 = 256;

/// How the accept loop bounds its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_requests: usize,
    /// After the stop, how long open connections may finish their requests.
    pub drain: Duration,
}

impl Limits {
    /// The configured limits, with `max_connections` lowered to what `fd_limit` leaves room for.
    pub fn new(server: &ServerConfig, fd_limit: u64) -> Limits {
        let room = fd_limit.saturating_sub(RESERVED_FDS).max(1);
        Limits {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(server.idle_timeout_secs),
            max_connections: server
                .max_connections
                .min(usize::try_from(room).unwrap_or(usize::MAX)),
            max_requests: server.max_requests,
            drain: Duration::from_secs(server.shutdown_grace_secs),
        }
    }
}

/// The soft limit on open files before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub before: u64,
    pub now: u64,
}

/// Raises the soft limit on open files to the hard limit. The soft limit a service manager or shell gives
/// (often 1024) is below the connections a daemon must hold; the hard limit is what the operator allows.
pub fn raise_fd_limit() -> Result<FdLimit, rustix::io::Errno> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // Linux never allows an unlimited number of files: an infinite hard limit means the kernel's cap.
    let hard = limit.maximum.unwrap_or(1 << 20);
    let before = limit.current.unwrap_or(hard);
    if before >= hard {
        return Ok(FdLimit {
            before,
            now: before,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        },
    )?;
    Ok(FdLimit { before, now: hard })
}

/// Serves `app` on `listener` within `limits` until `stop` turns true, then lets open connections finish
/// for `limits.drain` (hyper closes the idle ones at once) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let service = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(shed))
        .load_shed()
        .concurrency_limit(limits.max_requests)
        .service(app);
    // HTTP/1 only, as before (axum here is built without HTTP/2).
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut last_complaint: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(e, &mut last_complaint).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let conn = builder.serve_connection(io, TowerToHyperService::new(service.clone()));
        let conn = graceful.watch(conn);
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            // The slot is given back when the connection ends, however it ends.
            let _permit = permit;
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                () = activity.idle_for(idle) => {
                    tracing::debug!(idle_secs = idle.as_secs(), "closed an idle HTTP connection");
                }
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open,
            "HTTP connections still open after the shutdown grace period are dropped"
        );
    }
}

/// A failed accept. One peer giving up is skipped; anything else (out of descriptors or memory) waits a
/// moment, as retrying at once would spin, and is logged at most every ten seconds.
async fn accept_failed(e: io::Error, last: &mut Option<Instant>) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        tracing::error!(error = %e, "cannot accept HTTP connections");
        *last = Some(Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The answer when `max_requests` are already being handled.
async fn shed(e: tower::BoxError) -> Response {
    let response = if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "the server is handling as many requests as it takes (server.max_requests); try again shortly",
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("the request failed: {e}"),
        )
    };
    super::headers::security_headers(response.into_response()).await
}

/// When a connection last moved a byte, in milliseconds since it was opened.
#[derive(Clone)]
struct Activity {
    opened: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Returns once nothing has been read or written for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A connection's socket that notes in its [`Activity`] every byte it moves.
struct Watched<T> {
    inner: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_below_the_descriptor_limit() {
        let server = ServerConfig::default();
        assert_eq!(
            Limits::new(&server, 1 << 20).max_connections,
            server.max_connections
        );
        assert_eq!(Limits::new(&server, 1024).max_connections, 1024 - 256);
        assert_eq!(Limits::new(&server, 10).max_connections, 1);
    }
}
