//! The daemon's HTTP routes on a request a client chose: the input is a raw request head and body
//! (`METHOD PATH HTTP/1.1`, headers, a blank line, the body), served by the real router over a real store,
//! queue and signing key in a scratch data directory. Nothing may panic; every answer is a well-formed
//! HTTP response with a status the API documents as possible (no 500).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct World {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().expect("scratch");
        let mut config = reprod::config::Config::default();
        config.data_dir = dir.path().to_path_buf();
        config.max_document_bytes = 1 << 16;
        config.server.submit_tokens = vec!["fuzz-token-0123456789abcdef".into()];
        config
            .server
            .worker_tokens
            .insert("w".into(), "fuzz-worker-0123456789abcdef".into());
        config.server.accept_unsigned = true;
        let queue = reprod_jobs::SledQueue::open(&dir.path().join("queue"), Default::default())
            .expect("queue");
        let store = reprod::store::Store::open(&dir.path().join("store")).expect("store");
        let (signer, _) =
            reprod::attest::SigningKey::load_or_create(&dir.path().join("signing.key"), true)
                .expect("key");
        let shared = Arc::new(reprod::daemon::Shared::new(
            config,
            Default::default(),
            queue,
            store,
            signer,
        ));
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            router: reprod::daemon::http::router(shared),
            _dir: dir,
        }
    })
}

/// Parses a raw request; `None` when it is not one (the server's HTTP parser would refuse it too).
fn request(data: &[u8]) -> Option<Request<Body>> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&data[..end]).ok()?;
    let body = data[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?, first.next()?);
    let mut builder = Request::builder().method(method).uri(path);
    for line in lines {
        let (k, v) = line.split_once(':')?;
        builder = builder.header(k.trim(), v.trim());
    }
    builder.body(Body::from(body)).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = request(data) else { return };
    let w = world();
    let response = w
        .runtime
        .block_on(w.router.clone().oneshot(req))
        .expect("the router is infallible");
    assert!(
        response.status().as_u16() != 500,
        "an internal error answered {data:?}"
    );
});
