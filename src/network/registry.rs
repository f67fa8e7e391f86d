//! Registry pulls, understood: a pull by digest (`GET /v2/<name>/blobs/sha256:…` or
//! `…/manifests/sha256:…`) is served from the cache shared by all jobs when it holds that digest, and
//! otherwise fetched whole into the cache first, verified against the digest, and only then served: a
//! build never receives bytes for a digest that do not hash to it. A pull by tag (`…/manifests/<tag>`) is
//! not pinned: refused unless `sandbox.network.allow_tag_pulls`, and recorded as unpinned when allowed.

use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use sha2::{Digest, Sha256};

use super::job::{refuse, text, Exchange, ProxyBody, State};

/// Largest answer other than 2xx passed back for a pull by digest (an error or challenge document).
const MAX_OTHER_ANSWER: usize = 1 << 20;

/// What a registry read names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pull {
    /// A blob or manifest by digest (`sha256:<hex>`).
    Pinned(String),
    /// A manifest by tag.
    Tag,
}

/// The registry read `(method, path)` is, if it is one.
pub(super) fn pull(method: &Method, path: &str) -> Option<Pull> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    let path = path.split('?').next()?;
    let rest = path.strip_prefix("/v2/")?;
    let (kind, reference) = match (rest.rsplit_once("/blobs/"), rest.rsplit_once("/manifests/")) {
        (Some((_, r)), _) => ("blobs", r),
        (None, Some((_, r))) => ("manifests", r),
        _ => return None,
    };
    let pinned = reference.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    match (pinned, kind) {
        (true, _) if *method == Method::GET => Some(Pull::Pinned(reference.to_string())),
        (true, _) => None,
        (false, "manifests") => Some(Pull::Tag),
        (false, _) => None,
    }
}

/// Where a request goes next: a pull by digest to [`pull_through`], anything else onward (a pull by tag
/// marked unpinned when the policy lets it through).
pub(super) enum Route {
    Pinned(String, Request<Incoming>),
    /// The request, and whether it is a pull by tag (unpinned).
    Onward(Request<Incoming>, bool),
}

/// Sorts an allowed request: `Err` is why a pull by tag the policy does not allow is refused.
pub(super) fn route(state: &State, url: &str, req: Request<Incoming>) -> Result<Route, String> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match pull(req.method(), path) {
        Some(Pull::Pinned(digest)) => Ok(Route::Pinned(digest, req)),
        Some(Pull::Tag) if !state.allow_tag_pulls => Err(format!(
            "{url} pulls by tag, an input not pinned by digest: pull by digest, or allow it with \
             sandbox.network.allow_tag_pulls"
        )),
        Some(Pull::Tag) => Ok(Route::Onward(req, true)),
        None => Ok(Route::Onward(req, false)),
    }
}

/// Answers a pull by `digest`: from the cache, or fetched over `connect` into it and verified first.
pub(super) async fn pull_through<C, F, I>(
    state: Arc<State>,
    url: String,
    authority: &str,
    path: &str,
    req: Request<Incoming>,
    digest: String,
    connect: C,
) -> Response<ProxyBody>
where
    C: FnOnce() -> F,
    F: Future<Output = Result<I, String>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let method = req.method().clone();
    let Some(cache) = state.cache.clone() else {
        return refuse(
            &state,
            &method,
            &url,
            "pulls by digest need the network cache".into(),
        );
    };
    let wanted = digest.clone();
    let c = cache.clone();
    if let Ok(Some(_)) = tokio::task::spawn_blocking(move || c.get(&wanted)).await {
        return super::replay::serve_cached(state, &method, url, digest, true).await;
    }
    let io = match connect().await {
        Ok(io) => io,
        Err(why) => return refuse(&state, &method, &url, why),
    };
    let answer = match super::upstream::ask(&state, &url, authority, path, req, io).await {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    if !answer.status().is_success() {
        // An authentication challenge, a redirect, an error: passed back as it is, and recorded.
        let status = answer.status().as_u16();
        // Such answers are small; a larger one is cut, and each counts against the job's bytes as if whole.
        if !state.spend(MAX_OTHER_ANSWER as u64) {
            let why = format!("the job's {} bytes are spent", state.limits.max_bytes);
            return refuse(&state, &method, &url, why);
        }
        state.record(Exchange {
            method: method.to_string(),
            url,
            status: Some(status),
            bytes: 0,
            sha256: None,
            refused: None,
            ..Default::default()
        });
        let (parts, body) = answer.into_parts();
        let body = http_body_util::Limited::new(body, MAX_OTHER_ANSWER).boxed();
        return Response::from_parts(parts, body);
    }
    // Whole into the cache, hashed on the way; kept only if it is the digest it was pulled by. The
    // writer runs off the async threads, fed through a bounded channel (a slow disk slows the pull).
    let writer = match tokio::task::spawn_blocking(move || cache.writer()).await {
        Ok(Ok(w)) => w,
        _ => {
            return refuse(
                &state,
                &method,
                &url,
                "the network cache cannot keep the pull".into(),
            )
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<hyper::body::Bytes>(16);
    let writing = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write(&chunk)?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut hasher = Sha256::new();
    let mut body = answer.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return text(
                    hyper::StatusCode::BAD_GATEWAY,
                    format!("upstream {authority}: {e}\n"),
                )
            }
        };
        if let Some(data) = frame.data_ref() {
            received += data.len() as u64;
            if !state.spend(data.len() as u64) {
                let why = format!("the job's {} bytes are spent", state.limits.max_bytes);
                return refuse(&state, &method, &url, why);
            }
            hasher.update(data);
            if tx.send(data.clone()).await.is_err() {
                return refuse(
                    &state,
                    &method,
                    &url,
                    "the network cache cannot keep the pull".into(),
                );
            }
        }
    }
    drop(tx);
    let Ok(Ok(writer)) = writing.await else {
        return refuse(
            &state,
            &method,
            &url,
            "the network cache cannot keep the pull".into(),
        );
    };
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if got != digest {
        let why = format!(
            "the upstream's {received} bytes for {digest} hash to {got}: a pull by digest gets only the \
             bytes that digest names"
        );
        return refuse(&state, &method, &url, why);
    }
    let expected = digest.clone();
    match tokio::task::spawn_blocking(move || writer.commit(&expected)).await {
        Ok(Ok(true)) => super::replay::serve_cached(state, &method, url, digest, false).await,
        _ => refuse(
            &state,
            &method,
            &url,
            "the network cache cannot keep the pull".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_by_digest_and_by_tag_are_told_apart() {
        let d = format!("sha256:{}", "a".repeat(64));
        let get = |p: &str| pull(&Method::GET, p);
        assert_eq!(
            get(&format!("/v2/team/app/blobs/{d}")),
            Some(Pull::Pinned(d.clone()))
        );
        assert_eq!(
            get(&format!("/v2/a/b/manifests/{d}")),
            Some(Pull::Pinned(d.clone()))
        );
        assert_eq!(get("/v2/team/app/manifests/latest"), Some(Pull::Tag));
        assert_eq!(
            pull(&Method::HEAD, "/v2/team/app/manifests/1"),
            Some(Pull::Tag)
        );
        assert_eq!(pull(&Method::HEAD, &format!("/v2/x/blobs/{d}")), None);
        assert_eq!(get("/v2/team/app/blobs/sha256:short"), None);
        assert_eq!(get("/v2/"), None);
        assert_eq!(get("/files/v2/x/manifests/1"), None);
        assert_eq!(pull(&Method::PUT, "/v2/x/manifests/1"), None);
    }
}
