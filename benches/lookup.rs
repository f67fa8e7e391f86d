//! Verdict lookups by digest against a daemon holding 100,000 signed verdicts (`cargo bench --bench lookup`).
//!
//! Fills a store through the real write path (sign VSA + rebuild provenance, one flushed transaction per
//! verdict), starts the real `reprod serve` on it, and drives it with wrk from 127.0.0.1: random digests
//! at `GET /v1/verdicts/{digest}`, against a baseline measured in the same run on the same server,
//! `GET /v1/keys` (the same HTTP stack, no store). Also reports resident memory. Needs Docker running
//! (serve connects at start) and wrk (scripts/setup.sh installs both). `REPROD_BENCH_VERDICTS` scales it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use reprod::attest::SigningKey;
use reprod::store::Store;

fn verdict(i: usize) -> reprod::verdict::Verdict {
    // Every tenth rebuild differs.
    let differs = i.is_multiple_of(10);
    let v = serde_json::json!({
        "status": if differs { "unreproducible" } else { "reproducible" },
        "reason": if differs { serde_json::Value::from("digest-mismatch") } else { serde_json::Value::Null },
        "detail": "every subject digest was rebuilt bit for bit",
        "provenance": {"origin": "job", "sha256": format!("{i:064x}"), "signature": "verified: key sha256:ab",
                       "container": {"kind": "dsse-envelope"},
                       "verification": {"status": "verified", "signers": [{"kind": "key", "key_id": "sha256:ab", "label": "builder.pub", "form": "dsse-pae"}]},
                       "predicate_type": "https://slsa.dev/provenance/v0.2"},
        "source": {"uri": format!("https://git.example/app-{}", i % 500), "commit": format!("{i:040x}")},
        "subjects": [
            {"name": format!("registry.example/app-{}", i % 500), "digest": format!("sha256:{:064x}", i), "matched": !differs,
             "state": if differs { "differs" } else { "matched" },
             "rebuilt_digest": format!("sha256:{:064x}", i + differs as usize), "rebuilt_path": null},
            {"name": format!("registry.example/app-{}-debug", i % 500), "digest": format!("sha256:{:064x}", i + 1_000_000), "matched": true,
             "state": "matched",
             "rebuilt_digest": format!("sha256:{:064x}", i + 1_000_000), "rebuilt_path": null},
        ],
        "steps": [{"name": "build", "image": format!("registry.example/builder@sha256:{:064x}", 7),
                   "pulled_image": format!("registry.example/builder@sha256:{:064x}", 7), "exit_code": 0,
                   "termination": "exited", "duration_ms": 61234, "log_bytes": 20480, "log_truncated": false,
                   "log_artifact": "logs/00-build.log", "log_sha256": format!("sha256:{:064x}", 9),
                   "log_tail": "built hello: sha256:0123456789abcdef\n".repeat(12)}],
        "fetched_url": null, "outputs": null, "claimed_results": {}, "job_dir": null,
        "reprod_version": env!("CARGO_PKG_VERSION"),
        "duration_ms": 65000,
    });
    serde_json::from_value(v).expect("a verdict")
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// (requests/s, p99 ms) from wrk's output.
fn wrk(url: &str, script: Option<&Path>, secs: u64) -> (f64, f64) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c16", &format!("-d{secs}s"), "--latency"]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk (scripts/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("Non-2xx"), "some requests failed:\n{text}");
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in wrk's output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| {
            let v = v.trim();
            let (n, unit) =
                v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
            let n: f64 = n.parse().unwrap_or(f64::NAN);
            match unit {
                "us" => n / 1000.0,
                "ms" => n,
                "s" => n * 1000.0,
                _ => f64::NAN,
            }
        })
        .unwrap_or(f64::NAN);
    (rate, p99)
}

fn main() {
    let n: usize = std::env::var("REPROD_BENCH_VERDICTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let (key, _) =
        SigningKey::load_or_create(&data.join("signing.key"), true).expect("signing key");
    let start = Instant::now();
    {
        let store = Store::open(&data.join("store")).expect("store");
        for i in 0..n {
            let v = verdict(i);
            let at = reprod::store::now_rfc3339();
            let job = format!("sha256:{i:064x}");
            let publication = reprod::attest::Publication {
                job: &job,
                recorded_at: &at,
                base_url: "http://127.0.0.1:8780",
            };
            let signed = reprod::attest::attest(&v, &publication, &key).expect("sign");
            let envelopes: Vec<(&str, Vec<u8>)> =
                signed.into_iter().map(|a| (a.kind, a.envelope)).collect();
            store
                .put_verdict_once(&job, &v, &at, &envelopes, None)
                .expect("store");
        }
    }
    let fill = start.elapsed();
    let store_bytes: u64 = walk_size(&data.join("store"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_reprod"))
        .arg("serve")
        .env("REPROD_DATA_DIR", &data)
        .env("REPROD_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("REPROD_SERVER_WORKERS", "0")
        .env("RUST_LOG", "error")
        .stderr(Stdio::piped())
        .spawn()
        .expect("reprod serve");
    let stderr = serve.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("listening on") => break,
            Some(Ok(_)) => {}
            _ => panic!("reprod serve did not start"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let pid = serve.id();
    let rss_idle = rss_kib(pid, "VmRSS:");

    let script = dir.path().join("lookup.lua");
    let mut f = std::fs::File::create(&script).expect("script");
    writeln!(
        f,
        "math.randomseed(7)\nrequest = function()\n  return wrk.format(\"GET\", string.format(\"/v1/verdicts/sha256:%064x\", math.random(0, {})))\nend",
        n - 1
    )
    .expect("write script");
    let base = format!("http://127.0.0.1:{port}");
    // Warm up both paths, then measure.
    wrk(&format!("{base}/v1/keys"), None, 2);
    wrk(&base, Some(&script), 2);
    let (baseline, baseline_p99) = wrk(&format!("{base}/v1/keys"), None, 10);
    let (lookups, lookup_p99) = wrk(&base, Some(&script), 10);
    let (lists, list_p99) = wrk(&format!("{base}/v1/verdicts?limit=50"), None, 10);
    let rss_loaded = rss_kib(pid, "VmRSS:");
    let rss_peak = rss_kib(pid, "VmHWM:");
    let _ = serve.kill();
    let _ = serve.wait();

    println!("{n} signed verdicts stored in {:.1}s ({:.0}/s, one flushed transaction each); store {:.0} MiB on disk",
        fill.as_secs_f64(), n as f64 / fill.as_secs_f64(), store_bytes as f64 / 1048576.0);
    println!("wrk -t1 -c16 -d10s from 127.0.0.1, the daemon on the same 2 cores:");
    println!("baseline  GET /v1/keys (no store)          {baseline:>9.0} req/s  p99 {baseline_p99:>6.2} ms  1.00");
    println!("lookup    GET /v1/verdicts/{{random digest}} {lookups:>9.0} req/s  p99 {lookup_p99:>6.2} ms  {:.2}", lookups / baseline);
    println!("list      GET /v1/verdicts?limit=50        {lists:>9.0} req/s  p99 {list_p99:>6.2} ms  {:.2}", lists / baseline);
    println!(
        "resident memory: {:.0} MiB after start, {:.0} MiB after the load, peak {:.0} MiB",
        rss_idle as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        rss_peak as f64 / 1024.0
    );
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => walk_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
