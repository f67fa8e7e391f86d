//! CONNECT tunnels: HTTPS (and anything else a build speaks over TLS) passes through as bytes, to an
//! allowed host and port only, counted against the job's budget both ways and cut when it is spent.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::job::{connect, refuse, Exchange, ProxyBody, State};

pub(super) async fn tunnel(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
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
    if state.intercept.as_ref().is_some_and(|i| !i.tunnels(&host)) {
        return super::intercept::intercept(state, req, host, port).await;
    }
    if state.replay.is_some() {
        let why = format!(
            "{target} is tunnel-only, and a tunnel cannot be replayed: its content was never seen"
        );
        return refuse(&state, &method, &target, why);
    }
    let Some(grant) = state.allow.allows_tunnel(&host, port) else {
        return refuse(
            &state,
            &method,
            &target,
            format!("{target} is not on the allow-list"),
        );
    };
    let upstream = match connect(&state, &host, port, grant).await {
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
        ..Default::default()
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
