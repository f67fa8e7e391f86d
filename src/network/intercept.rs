//! An intercepted CONNECT: the build's TLS ends here with a leaf certificate of the job's CA, and each
//! request inside it is checked by its full `https://` URL, sent to the upstream over TLS the proxy
//! speaks (the upstream's certificate verified), and recorded as a plain request is.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::job::{connect, refuse, Exchange, ProxyBody, State};

/// Answers an intercepted CONNECT to `host:port` and serves what the build sends inside it.
pub(super) async fn intercept(
    state: Arc<State>,
    req: Request<Incoming>,
    host: String,
    port: u16,
) -> Response<ProxyBody> {
    let method = req.method().clone();
    let target = format!("{host}:{port}");
    // In replay, every request inside is answered from the record, and with a sink a push to any host
    // lands in it; otherwise the host must be one the allow-list can let an HTTPS request through to.
    if state.replay.is_none()
        && state.sink.is_none()
        && state.allow.allows_origin(&host, port).is_none()
    {
        return refuse(
            &state,
            &method,
            &target,
            format!("{target} is not on the allow-list"),
        );
    }
    let acceptor = match state.intercept.as_ref().map(|i| i.ca.acceptor(&host)) {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            return refuse(
                &state,
                &method,
                &target,
                format!("a certificate for {host}: {e}"),
            )
        }
        None => return refuse(&state, &method, &target, "no interception".into()),
    };
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ssl = match openssl::ssl::Ssl::new(acceptor.context()) {
            Ok(ssl) => ssl,
            Err(_) => return,
        };
        let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, TokioIo::new(upgraded)) else {
            return;
        };
        if let Err(e) = Pin::new(&mut tls).accept().await {
            // Most likely the build does not trust the job's CA (it was not given it, or ignores it).
            state.record(Exchange {
                method: "CONNECT".into(),
                url: target.clone(),
                status: None,
                bytes: 0,
                sha256: None,
                refused: Some(format!(
                    "the build's TLS handshake with the proxy failed ({e}): it must trust the job's CA (SSL_CERT_FILE)"
                )),
                ..Default::default()
            });
            return;
        }
        let serving = state.clone();
        let service = hyper::service::service_fn(move |inner: Request<Incoming>| {
            let (state, host) = (serving.clone(), host.clone());
            async move { Ok::<_, Infallible>(inside(state, &host, port, inner).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .await;
    });
    Response::new(
        http_body_util::Empty::new()
            .map_err(|never: Infallible| match never {})
            .boxed(),
    )
}

/// One request inside an intercepted connection.
async fn inside(
    state: Arc<State>,
    host: &str,
    port: u16,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let method = req.method().clone();
    let authority = if port == 443 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let url = format!("https://{authority}{path}");
    if state.requests.fetch_add(1, Ordering::Relaxed) >= state.limits.max_requests {
        let why = format!("the job's {} requests are spent", state.limits.max_requests);
        return refuse(&state, &method, &url, why);
    }
    let allowed = state.allow.allows_request("https", host, port, &path);
    let req = match super::sink::to_sink(&state, &url, &authority, allowed.is_some(), req).await {
        Ok(answer) => return answer,
        Err(req) => req,
    };
    if state.replay.is_some() {
        return super::replay::serve(state, &method, url).await;
    }
    let Some(grant) = allowed else {
        let why = format!("{url} is not on the allow-list");
        return refuse(&state, &method, &url, why);
    };
    let (req, unpinned) = match super::registry::route(&state, &url, req) {
        Ok(super::registry::Route::Pinned(digest, req)) => {
            let (s, h, a) = (state.clone(), host.to_string(), authority.clone());
            return super::registry::pull_through(
                state,
                url,
                &authority,
                &path,
                req,
                digest,
                || async move {
                    upstream_tls(&s, &h, port, grant, &a)
                        .await
                        .map(TokioIo::new)
                },
            )
            .await;
        }
        Ok(super::registry::Route::Onward(req, unpinned)) => (req, unpinned),
        Err(why) => return refuse(&state, &method, &url, why),
    };
    match upstream_tls(&state, host, port, grant, &authority).await {
        Ok(tls) => {
            super::upstream::send(
                state,
                url,
                &authority,
                &path,
                req,
                TokioIo::new(tls),
                unpinned,
            )
            .await
        }
        Err(why) => refuse(&state, &method, &url, why),
    }
}

/// A TLS connection to the upstream `host:port`, its certificate and name verified.
async fn upstream_tls(
    state: &State,
    host: &str,
    port: u16,
    grant: super::allow::Grant,
    authority: &str,
) -> Result<tokio_openssl::SslStream<tokio::net::TcpStream>, String> {
    let tcp = connect(state, host, port, grant).await?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ssl = state
        .intercept
        .as_ref()
        .ok_or_else(|| "no interception".to_string())?
        .upstream
        .configure()
        .and_then(|c| c.into_ssl(bare))
        .map_err(|e| format!("TLS towards {authority}: {e}"))?;
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp)
        .map_err(|e| format!("TLS towards {authority}: {e}"))?;
    if let Err(e) = Pin::new(&mut tls).connect().await {
        let detail = tls.ssl().verify_result().error_string();
        return Err(format!(
            "the upstream {authority} is not trusted ({e}; {detail}): its certificate must chain to this \
             host's roots or sandbox.network.upstream_roots"
        ));
    }
    Ok(tls)
}
