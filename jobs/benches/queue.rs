//! The sled queue on this machine's disk (`cargo bench -p reprod-jobs --bench queue`).
//!
//! Baseline, measured in the same run: one 1 KiB sled insert plus flush, the floor of any acknowledged
//! write. Then enqueue + lease + complete cycles (three acknowledged writes each), bulk enqueue, lease
//! latency and resident memory with 100,000 jobs queued.

use std::time::{Duration, Instant};

use reprod_jobs::{Completion, JobId, NewJob, Queue, QueueConfig, SledQueue};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn job(n: u64, payload: &[u8]) -> NewJob {
    NewJob {
        id: JobId(format!("sha256:{n:064x}")),
        aliases: vec![format!("git:{n:040x}+recipe")],
        payload: payload.to_vec(),
        priority: (n % 3) as i32,
    }
}

fn main() {
    let secs: f64 = std::env::var("REPROD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let budget = Duration::from_secs_f64(secs);
    let payload = vec![b'x'; 1024];
    let ttl = Duration::from_secs(600);

    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path().join("baseline")).expect("sled");
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        db.insert(n.to_be_bytes(), payload.as_slice())
            .expect("insert");
        db.flush().expect("flush");
        n += 1;
    }
    let baseline = n as f64 / start.elapsed().as_secs_f64();

    let q = SledQueue::open(&dir.path().join("cycles"), QueueConfig::default()).expect("queue");
    let start = Instant::now();
    let mut cycles = 0u64;
    while start.elapsed() < budget {
        q.enqueue(job(cycles, &payload)).expect("enqueue");
        let l = q.lease("bench", ttl).expect("lease").expect("a job");
        q.complete(&l.job, &l.token, Completion::Done)
            .expect("complete");
        cycles += 1;
    }
    let cycle_rate = cycles as f64 / start.elapsed().as_secs_f64();

    let q = SledQueue::open(&dir.path().join("big"), QueueConfig::default()).expect("queue");
    let rss_before = rss_kib();
    let start = Instant::now();
    for chunk in 0..100u64 {
        q.enqueue_batch((0..1000).map(|i| job(chunk * 1000 + i, &payload)).collect())
            .expect("batch");
    }
    let bulk = 100_000.0 / start.elapsed().as_secs_f64();
    let rss_queued = rss_kib();
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let l = q.lease("bench", ttl).expect("lease").expect("a job");
        lat.push(t.elapsed());
        q.complete(&l.job, &l.token, Completion::Done)
            .expect("complete");
    }
    lat.sort();
    let stats = q.stats().expect("stats");

    println!("sled queue on this disk, {secs:.1} s per rate");
    println!("baseline  1 KiB sled insert + flush            {baseline:>9.0} /s   1.00");
    println!(
        "cycle     enqueue + lease + complete           {cycle_rate:>9.0} /s   {:.2} of baseline (3 flushed writes each)",
        cycle_rate / baseline
    );
    println!(
        "bulk      enqueue_batch of 1,000 (1 flush)      {bulk:>9.0} jobs/s {:.2} of baseline",
        bulk / baseline
    );
    println!(
        "lease     with 100,000 queued: p50 {:?}, p99 {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    println!(
        "memory    resident {} MiB with {} jobs queued ({} MiB before filling)",
        rss_queued / 1024,
        stats.ready,
        rss_before / 1024
    );
}
