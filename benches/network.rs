//! The build proxy's cost, as ratios against baselines measured in the same run (never asserted):
//!
//! 1. throughput of a large download through the proxy (recording, hashing, and with the cache on,
//!    keeping it) ÷ the same download straight from the upstream;
//! 2. added latency per small request (new connection each, as a build's curl makes them), p50 and p99;
//! 3. a replay of the large body from the cache ÷ `cp` of the cached file;
//! 4. a registry pull by digest of the large body (a base image's layer) served from the pull-through
//!    cache on a hit ÷ `cp` of the cached blob.
//!
//! `cargo bench --bench network` (REPROD_BENCH_MIB sets the large body's size, default 1024).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use reprod::network::{AllowList, Cache, Limits, Proxy, ReplaySet, Setup};

/// An HTTP server on loopback: `/big` answers `big` bytes of `x`, a registry blob `big` bytes of `y` (so its
/// digest is not one an earlier download put in the cache), anything else 2 bytes.
fn upstream(big: u64) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                    head.push(b[0]);
                }
                let line = String::from_utf8_lossy(&head).to_string();
                let blob = line.contains("/blobs/sha256:");
                let n = if line.contains(" /big ") || blob {
                    big
                } else {
                    2
                };
                let chunk = vec![if blob { b'y' } else { b'x' }; 1 << 20];
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n"
                );
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    if s.write_all(&chunk[..k]).is_err() {
                        return;
                    }
                    left -= k as u64;
                }
            });
        }
    });
    port
}

/// GETs `url` from `to` (the upstream itself, or a proxy); returns the body bytes read.
fn get(to: SocketAddr, request_target: &str, host: &str) -> u64 {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {request_target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut head_done = false;
    let mut head = Vec::new();
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        if head_done {
            total += n as u64;
            continue;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head_done = true;
            total += (head.len() - i - 4) as u64;
        }
    }
    total
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let mib: u64 = std::env::var("REPROD_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let big = mib << 20;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = upstream(big);
    let up: SocketAddr = ([127, 0, 0, 1], port).into();
    let host = format!("127.0.0.1:{port}");
    let url = |path: &str| format!("http://{host}{path}");
    let allow = AllowList::parse(std::slice::from_ref(&host)).unwrap();
    let limits = Limits {
        max_bytes: u64::MAX / 2,
        max_requests: u64::MAX / 2,
        ..Limits::default()
    };
    let cache_dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let cache = Cache::open(cache_dir.path(), u64::MAX / 2).unwrap();
    let (plain, cached) = runtime.block_on(async {
        let plain = Proxy::start(allow.clone(), limits.clone()).await.unwrap();
        let cached = Proxy::start_with(Proxy::with(Setup {
            allow: allow.clone(),
            limits: limits.clone(),
            cache: Some(cache.clone()),
            replay: None,
            intercept: None,
            sink: None,
            allow_tag_pulls: false,
        }))
        .await
        .unwrap();
        (plain, cached)
    });
    let (plain_at, cached_at) = (plain.addr().unwrap(), cached.addr().unwrap());

    // 1. Throughput, best of three each.
    let timed = |f: &dyn Fn() -> u64| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(f(), big);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let direct = timed(&|| get(up, "/big", &host));
    let proxied = timed(&|| get(plain_at, &url("/big"), &host));
    let kept = timed(&|| get(cached_at, &url("/big"), &host));
    let rate = |secs: f64| big as f64 / secs / (1 << 20) as f64;
    // The floor the proxy cannot go below: every byte is hashed (SHA-256, one core) on its way.
    let hashing = {
        use sha2::Digest;
        let chunk = vec![b'x'; 1 << 20];
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let mut h = sha2::Sha256::new();
                for _ in 0..mib {
                    h.update(&chunk);
                }
                let _ = h.finalize();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    println!(
        "SHA-256 of {mib} MiB on one core: {:.0} MiB/s (the proxy's bound: {:.2} of direct)",
        rate(hashing),
        direct / hashing
    );
    println!(
        "download of {mib} MiB: direct {:.0} MiB/s; through the proxy {:.0} MiB/s (ratio {:.2}; {:.2} of \
         the hashing bound); with the cache keeping it {:.0} MiB/s (ratio {:.2})",
        rate(direct),
        rate(proxied),
        direct / proxied,
        hashing / proxied,
        rate(kept),
        direct / kept
    );

    // 2. Latency of small requests, each on a new connection.
    let sample = |to: SocketAddr, target: &str| {
        let mut v: Vec<f64> = (0..1000)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(get(to, target, &host), 2);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let d = sample(up, "/small");
    let p = sample(plain_at, &url("/small"));
    println!(
        "small request, new connection each (1000): direct p50 {:.3} ms p99 {:.3} ms; through the proxy \
         p50 {:.3} ms p99 {:.3} ms; added p50 {:.3} ms, p99 {:.3} ms",
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        percentile(&p, 0.5),
        percentile(&p, 0.99),
        percentile(&p, 0.5) - percentile(&d, 0.5),
        percentile(&p, 0.99) - percentile(&d, 0.99)
    );

    // 3. A replay of the cached body ÷ cp of the same file.
    let record = cached.exchanges();
    let digest = record
        .iter()
        .find_map(|e| e.sha256.clone())
        .expect("the cached download was recorded whole");
    let entry = cache.get(&digest).expect("the body is in the cache");
    let replaying = runtime.block_on(async {
        Proxy::start_with(Proxy::with(Setup {
            allow: AllowList::default(),
            limits: limits.clone(),
            cache: Some(cache.clone()),
            replay: Some(ReplaySet::from_record(&record, "bench")),
            intercept: None,
            sink: None,
            allow_tag_pulls: false,
        }))
        .await
        .unwrap()
    });
    let replay_at = replaying.addr().unwrap();
    let replayed = timed(&|| get(replay_at, &url("/big"), &host));
    let copy_to = cache_dir.path().join("copy");
    // `cp` of a cache entry, best of three.
    let cp_of = |entry: &std::path::Path| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let ok = std::process::Command::new("cp")
                    .arg(entry)
                    .arg(&copy_to)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok);
                let secs = t.elapsed().as_secs_f64();
                let _ = std::fs::remove_file(&copy_to);
                secs
            })
            .fold(f64::MAX, f64::min)
    };
    let cp = cp_of(&entry);
    println!(
        "replay of the cached {mib} MiB: {:.0} MiB/s; cp of the cache entry {:.0} MiB/s (ratio {:.2})",
        rate(replayed),
        rate(cp),
        cp / replayed
    );

    // 4. A registry pull by digest: the first fills the shared cache (fetched whole, verified), a hit is
    //    served from it; the hit ÷ cp of the cached blob.
    let blob_digest = {
        use sha2::Digest;
        let chunk = vec![b'y'; 1 << 20];
        let mut h = sha2::Sha256::new();
        for _ in 0..mib {
            h.update(&chunk);
        }
        hex::encode(h.finalize())
    };
    assert!(
        cache.get(&blob_digest).is_none(),
        "the blob is not cached before its first pull"
    );
    let blob = url(&format!("/v2/bench/base/blobs/sha256:{blob_digest}"));
    let cold = {
        let t = Instant::now();
        assert_eq!(get(cached_at, &blob, &host), big);
        t.elapsed().as_secs_f64()
    };
    let hit = timed(&|| get(cached_at, &blob, &host));
    let blob_entry = cache
        .get(&blob_digest)
        .expect("the pulled blob is in the cache");
    let cp_blob = cp_of(&blob_entry);
    println!(
        "registry pull by digest of {mib} MiB through the pull-through cache: the first (fetched, verified, \
         kept) {:.0} MiB/s; a hit {:.0} MiB/s; cp of the cached blob {:.0} MiB/s (hit ratio {:.2})",
        rate(cold),
        rate(hit),
        rate(cp_blob),
        cp_blob / hit
    );
    drop((plain, cached, replaying));
}
