//! The sled queue against its contract: ordering, deduplication, leases, retries, dead letters, the reaper,
//! schema checks, a model-based property test of the whole state machine, and `kill -9` durability.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use reprod_jobs::*;

const MIN: Duration = Duration::from_secs(60);

fn config() -> QueueConfig {
    QueueConfig {
        max_attempts: 3,
        backoff_base: Duration::from_secs(10),
        backoff_cap: Duration::from_secs(100),
        jitter: 0.0,
        ..QueueConfig::default()
    }
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> SledQueue {
    SledQueue::open_with_clock(dir, config(), clock.clone()).unwrap()
}

fn job(id: &str, priority: i32) -> NewJob {
    NewJob {
        id: JobId(id.into()),
        aliases: vec![],
        payload: id.as_bytes().to_vec(),
        priority,
    }
}

fn id(s: &str) -> JobId {
    JobId(s.into())
}

#[test]
fn leases_follow_priority_then_enqueue_order_and_carry_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let q = open(dir.path(), &clock);
    for (name, prio) in [("low", -1), ("a", 0), ("b", 0), ("urgent", 10)] {
        assert_eq!(q.enqueue(job(name, prio)).unwrap(), Enqueued::New);
    }
    let order: Vec<String> = std::iter::from_fn(|| q.lease("w", MIN).unwrap())
        .map(|l| {
            assert_eq!(l.payload, l.job.0.as_bytes());
            assert_eq!(l.attempt, 1);
            l.job.0
        })
        .collect();
    assert_eq!(order, ["urgent", "a", "b", "low"]);
    assert_eq!(q.stats().unwrap().leased, 4);
}

#[test]
fn the_same_work_is_queued_once_by_id_or_alias() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let q = open(dir.path(), &clock);
    let mut first = job("sha256:aaa", 0);
    first.aliases = vec!["git:commit+recipe:1".into()];
    assert_eq!(q.enqueue(first.clone()).unwrap(), Enqueued::New);
    assert_eq!(
        q.enqueue(first).unwrap(),
        Enqueued::Duplicate(id("sha256:aaa"))
    );
    let mut other_doc = job("sha256:bbb", 0);
    other_doc.aliases = vec!["git:commit+recipe:1".into()];
    assert_eq!(
        q.enqueue(other_doc).unwrap(),
        Enqueued::Duplicate(id("sha256:aaa"))
    );
    assert!(q.get(&id("sha256:bbb")).unwrap().is_none());
    // Done work stays known: submitting it again does not rebuild it.
    let l = q.lease("w", MIN).unwrap().unwrap();
    q.complete(&l.job, &l.token, Completion::Done).unwrap();
    assert_eq!(
        q.enqueue(job("sha256:aaa", 5)).unwrap(),
        Enqueued::Duplicate(id("sha256:aaa"))
    );
    assert!(q.lease("w", MIN).unwrap().is_none());
}

#[test]
fn only_the_current_lease_token_completes_and_a_late_completion_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let q = open(dir.path(), &clock);
    q.enqueue(job("j", 0)).unwrap();
    let dead_worker = q.lease("w1", MIN).unwrap().unwrap();
    // The worker dies; its lease expires and the reaper hands the job to another worker.
    clock.advance(MIN + Duration::from_secs(1));
    assert!(matches!(
        q.heartbeat(&dead_worker.job, &dead_worker.token, MIN),
        Err(QueueError::StaleLease(_))
    ));
    assert_eq!(q.reap_expired().unwrap(), 1);
    let second = q.lease("w2", MIN).unwrap().unwrap();
    assert_eq!(second.attempt, 2);
    assert_ne!(second.token, dead_worker.token);
    assert!(matches!(
        q.complete(&dead_worker.job, &dead_worker.token, Completion::Done),
        Err(QueueError::StaleLease(_))
    ));
    assert_eq!(
        q.complete(&second.job, &second.token, Completion::Done)
            .unwrap(),
        JobState::Done
    );
    assert!(matches!(
        q.complete(&second.job, &second.token, Completion::Done),
        Err(QueueError::StaleLease(_))
    ));
}

#[test]
fn heartbeats_keep_a_lease_alive_past_its_first_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let q = open(dir.path(), &clock);
    q.enqueue(job("j", 0)).unwrap();
    let l = q.lease("w", MIN).unwrap().unwrap();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(50));
        q.heartbeat(&l.job, &l.token, MIN).unwrap();
        assert_eq!(q.reap_expired().unwrap(), 0);
    }
    q.complete(&l.job, &l.token, Completion::Done).unwrap();
}

#[test]
fn failures_back_off_exponentially_then_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let q = open(dir.path(), &clock);
    q.enqueue(job("flaky", 0)).unwrap();
    for (attempt, wait) in [(1, 10), (2, 20)] {
        let l = q.lease("w", MIN).unwrap().unwrap();
        assert_eq!(l.attempt, attempt);
        let state = q
            .complete(
                &l.job,
                &l.token,
                Completion::Retry {
                    reason: "docker down".into(),
                },
            )
            .unwrap();
        assert!(matches!(state, JobState::Delayed { .. }), "{state:?}");
        clock.advance(Duration::from_secs(wait - 1));
        assert!(q.lease("w", MIN).unwrap().is_none(), "still backing off");
        clock.advance(Duration::from_secs(1));
    }
    let l = q.lease("w", MIN).unwrap().unwrap();
    assert_eq!(l.attempt, 3);
    let state = q
        .complete(
            &l.job,
            &l.token,
            Completion::Retry {
                reason: "docker down".into(),
            },
        )
        .unwrap();
    match state {
        JobState::Dead { reason } => {
            assert!(reason.contains("3 attempts spent") && reason.contains("docker down"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.stats().unwrap().dead, 1);
    clock.advance(Duration::from_secs(1000));
    assert!(q.lease("w", MIN).unwrap().is_none());
}

#[test]
fn released_leases_run_again_without_spending_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let q = open(dir.path(), &clock);
    q.enqueue(job("j", 0)).unwrap();
    let l = q.lease("w", MIN).unwrap().unwrap();
    q.release(&l.job, &l.token).unwrap();
    assert!(matches!(
        q.release(&l.job, &l.token),
        Err(QueueError::StaleLease(_))
    ));
    assert_eq!(q.lease("w", MIN).unwrap().unwrap().attempt, 1);
}

/// An operator lists jobs by state, cancels one that waits (ready or backing off: out of its index, so it
/// is never leased), gives a dead one its attempts back, and is refused for the states those do not
/// apply to; every change is there after the queue is reopened.
#[test]
fn operators_list_cancel_and_retry_and_the_changes_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let q = open(dir.path(), &clock);
    for name in ["a", "b", "c", "d"] {
        q.enqueue(job(name, 0)).unwrap();
    }
    // a is done, b fails once (delayed), c is leased, d waits.
    let a = q.lease("w", MIN).unwrap().unwrap();
    assert_eq!(a.job, id("a"));
    q.complete(&a.job, &a.token, Completion::Done).unwrap();
    let b = q.lease("w", MIN).unwrap().unwrap();
    q.complete(
        &b.job,
        &b.token,
        Completion::Retry {
            reason: "engine down".into(),
        },
    )
    .unwrap();
    let c = q.lease("w", MIN).unwrap().unwrap();
    assert_eq!(c.job, id("c"));
    let names = |v: Vec<JobInfo>| v.into_iter().map(|i| i.id.0).collect::<Vec<_>>();
    assert_eq!(names(q.list(None, None, 10).unwrap()), ["a", "b", "c", "d"]);
    assert_eq!(names(q.list(Some("delayed"), None, 10).unwrap()), ["b"]);
    assert_eq!(names(q.list(None, Some(&id("b")), 2).unwrap()), ["c", "d"]);

    // The delayed and the ready job are cancelled; the leased and the done one cannot be.
    for waiting in ["b", "d"] {
        let info = q.cancel(&id(waiting), "bad document").unwrap();
        assert!(
            matches!(&info.state, JobState::Dead { reason } if reason.contains("bad document")),
            "{info:?}"
        );
    }
    for ended in ["a", "c"] {
        let e = q.cancel(&id(ended), "x").unwrap_err();
        assert!(matches!(e, QueueError::WrongState { .. }), "{e}");
    }
    assert!(matches!(
        q.cancel(&id("nope"), "x").unwrap_err(),
        QueueError::UnknownJob(_)
    ));
    // Nothing cancelled is leased, even once its backoff is over.
    clock.advance(Duration::from_secs(3600));
    assert!(q.lease("w", MIN).unwrap().is_none());

    // A dead job comes back with its attempts counted from zero; a done one does not.
    let info = q.retry(&id("b")).unwrap();
    assert_eq!((info.state.name(), info.attempt), ("ready", 0));
    assert_eq!(info.last_error.as_deref(), Some("engine down"));
    assert!(matches!(
        q.retry(&id("a")).unwrap_err(),
        QueueError::WrongState { .. }
    ));
    drop(q);

    let q = open(dir.path(), &clock);
    let states: Vec<(String, &str)> = q
        .list(None, None, 10)
        .unwrap()
        .into_iter()
        .map(|i| (i.id.0.clone(), i.state.name()))
        .collect();
    assert_eq!(
        states,
        [
            ("a".to_string(), "done"),
            ("b".to_string(), "ready"),
            ("c".to_string(), "leased"),
            ("d".to_string(), "dead")
        ]
    );
    let again = q.lease("w", MIN).unwrap().unwrap();
    assert_eq!((again.job, again.attempt), (id("b"), 1));
}

#[test]
fn a_newer_or_foreign_store_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledQueue::open(dir.path(), config()).err().unwrap();
    assert!(
        matches!(err, QueueError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade reprod"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("jobs").unwrap().insert("x", "y").unwrap();
        db.flush().unwrap();
    }
    let err = SledQueue::open(dir.path(), config()).err().unwrap();
    assert!(matches!(err, QueueError::Corrupt { .. }), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db"), vec![0xA5u8; 4096]).unwrap();
    std::fs::write(dir.path().join("conf"), b"not a sled config").unwrap();
    let err = SledQueue::open(dir.path(), config()).err().unwrap();
    assert!(
        matches!(err, QueueError::Corrupt { .. } | QueueError::Storage(_)),
        "{err}"
    );
}

#[test]
fn an_unwritable_data_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let err = SledQueue::open(&file.join("queue"), config())
        .err()
        .unwrap();
    assert!(err.to_string().contains("cannot open"), "{err}");
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let token;
    {
        let q = open(dir.path(), &clock);
        q.enqueue(job("a", 0)).unwrap();
        q.enqueue(job("b", 0)).unwrap();
        token = q.lease("w", MIN).unwrap().unwrap().token;
    }
    let q = open(dir.path(), &clock);
    assert_eq!(
        q.stats().unwrap(),
        QueueStats {
            ready: 1,
            leased: 1,
            ..Default::default()
        }
    );
    q.complete(&id("a"), &token, Completion::Done).unwrap();
}

// ---- model-based property test ----

#[derive(Debug, Clone)]
enum Op {
    Enqueue(u8, Option<u8>, i8),
    Lease,
    Heartbeat(usize),
    Complete(usize, bool),
    CompleteStale(usize),
    Release(usize),
    Advance(u16),
    Reap,
    Cancel(u8),
    Retry(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6, proptest::option::of(0u8..3), -2i8..3).prop_map(|(i, a, p)| Op::Enqueue(i, a, p)),
        3 => Just(Op::Lease),
        1 => (0usize..4).prop_map(Op::Heartbeat),
        3 => (0usize..4, any::<bool>()).prop_map(|(i, ok)| Op::Complete(i, ok)),
        1 => (0usize..4).prop_map(Op::CompleteStale),
        1 => (0usize..4).prop_map(Op::Release),
        2 => (1u16..90).prop_map(Op::Advance),
        1 => Just(Op::Reap),
        1 => (0u8..6).prop_map(Op::Cancel),
        1 => (0u8..6).prop_map(Op::Retry),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum M {
    Ready,
    Delayed(u64),
    Leased(u64),
    Done,
    Dead,
}

#[derive(Debug, Clone)]
struct MJob {
    state: M,
    attempt: u32,
    priority: i32,
    seq: u64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    /// Any sequence of operations (an operator's cancel and retry among them) leaves the queue exactly
    /// where a plain model says it must be; stale tokens never complete; the stats always add up.
    #[test]
    fn the_queue_behaves_like_its_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let q = open(dir.path(), &clock);
        let cfg = config();
        let ttl = Duration::from_secs(60);
        let mut model: HashMap<String, MJob> = HashMap::new();
        let mut aliases: HashMap<u8, String> = HashMap::new();
        let mut seq = 0u64;
        let mut held: Vec<Lease> = Vec::new();
        let mut stale: Vec<Lease> = Vec::new();
        for op in ops {
            let now = clock.now_ms();
            match op {
                Op::Enqueue(i, alias, p) => {
                    let name = format!("job-{i}");
                    let alias_name = alias.map(|a| format!("alias-{a}"));
                    let mut nj = job(&name, p as i32);
                    nj.aliases = alias_name.iter().cloned().collect();
                    let got = q.enqueue(nj).unwrap();
                    let expected = if model.contains_key(&name) {
                        Enqueued::Duplicate(id(&name))
                    } else if let Some(owner) = alias.and_then(|a| aliases.get(&a)) {
                        Enqueued::Duplicate(id(owner))
                    } else {
                        seq += 1;
                        model.insert(name.clone(), MJob { state: M::Ready, attempt: 0, priority: p as i32, seq });
                        if let Some(a) = alias { aliases.insert(a, name.clone()); }
                        Enqueued::New
                    };
                    prop_assert_eq!(got, expected);
                }
                Op::Lease => {
                    for j in model.values_mut() {
                        if let M::Delayed(until) = j.state { if until <= now { j.state = M::Ready; } }
                    }
                    let want = model
                        .iter()
                        .filter(|(_, j)| j.state == M::Ready)
                        .min_by_key(|(_, j)| (-j.priority, j.seq))
                        .map(|(n, _)| n.clone());
                    let got = q.lease("w", ttl).unwrap();
                    prop_assert_eq!(got.as_ref().map(|l| l.job.0.clone()), want.clone());
                    if let (Some(l), Some(name)) = (got, want) {
                        let j = model.get_mut(&name).unwrap();
                        j.attempt += 1;
                        j.state = M::Leased(now + 60_000);
                        prop_assert_eq!(l.attempt, j.attempt);
                        held.push(l);
                    }
                }
                Op::Heartbeat(i) => {
                    if let Some(l) = held.get(i) {
                        let j = model.get_mut(&l.job.0).unwrap();
                        let ok = q.heartbeat(&l.job, &l.token, ttl).is_ok();
                        let alive = matches!(j.state, M::Leased(e) if e >= now);
                        prop_assert_eq!(ok, alive);
                        if ok { j.state = M::Leased(now + 60_000); }
                    }
                }
                Op::Complete(i, success) => {
                    if i < held.len() {
                        let l = held.remove(i);
                        let j = model.get_mut(&l.job.0).unwrap();
                        let how = if success { Completion::Done } else { Completion::Retry { reason: "x".into() } };
                        let got = q.complete(&l.job, &l.token, how);
                        // The model's lease is current if it was not reaped and re-leased since.
                        let current = matches!(j.state, M::Leased(_)) && !stale.iter().any(|s| s.token == l.token);
                        prop_assert_eq!(got.is_ok(), current, "{:?}", got);
                        if current {
                            j.state = if success {
                                M::Done
                            } else if j.attempt >= cfg.max_attempts {
                                M::Dead
                            } else {
                                M::Delayed(now + backoff(j.attempt, &cfg, 0.5).as_millis() as u64)
                            };
                        }
                        stale.push(l);
                    }
                }
                Op::CompleteStale(i) => {
                    if let Some(l) = stale.get(i) {
                        prop_assert!(matches!(q.complete(&l.job, &l.token, Completion::Done), Err(QueueError::StaleLease(_))));
                    }
                }
                Op::Release(i) => {
                    if i < held.len() {
                        let l = held.remove(i);
                        let j = model.get_mut(&l.job.0).unwrap();
                        let current = matches!(j.state, M::Leased(_)) && !stale.iter().any(|s| s.token == l.token);
                        prop_assert_eq!(q.release(&l.job, &l.token).is_ok(), current);
                        if current { j.state = M::Ready; j.attempt -= 1; }
                        stale.push(l);
                    }
                }
                Op::Advance(secs) => clock.advance(Duration::from_secs(secs.into())),
                Op::Reap => {
                    let mut expect = 0;
                    for (name, j) in model.iter_mut() {
                        if let M::Leased(e) = j.state {
                            if e < now {
                                expect += 1;
                                j.state = if j.attempt >= cfg.max_attempts { M::Dead } else { M::Ready };
                                // Its holder's token is stale from now on.
                                if let Some(pos) = held.iter().position(|l| &l.job.0 == name) {
                                    stale.push(held.remove(pos));
                                }
                            }
                        }
                    }
                    prop_assert_eq!(q.reap_expired().unwrap(), expect);
                }
                Op::Cancel(i) => {
                    let name = format!("job-{i}");
                    let got = q.cancel(&id(&name), "operator");
                    match model.get_mut(&name) {
                        None => prop_assert!(matches!(got, Err(QueueError::UnknownJob(_)))),
                        Some(j) if matches!(j.state, M::Ready | M::Delayed(_)) => {
                            prop_assert!(got.is_ok(), "{:?}", got);
                            j.state = M::Dead;
                        }
                        Some(_) => prop_assert!(matches!(got, Err(QueueError::WrongState { .. })), "{:?}", got),
                    }
                }
                Op::Retry(i) => {
                    let name = format!("job-{i}");
                    let got = q.retry(&id(&name));
                    match model.get_mut(&name) {
                        None => prop_assert!(matches!(got, Err(QueueError::UnknownJob(_)))),
                        Some(j) if j.state == M::Dead => {
                            prop_assert!(got.is_ok(), "{:?}", got);
                            seq += 1;
                            (j.state, j.attempt, j.seq) = (M::Ready, 0, seq);
                        }
                        Some(_) => prop_assert!(matches!(got, Err(QueueError::WrongState { .. })), "{:?}", got),
                    }
                }
            }
            // Every job is where the model says.
            for (name, j) in &model {
                let info = q.get(&id(name)).unwrap().unwrap();
                let same = matches!(
                    (&info.state, &j.state),
                    (JobState::Ready, M::Ready) | (JobState::Done, M::Done) | (JobState::Dead { .. }, M::Dead)
                ) || matches!((&info.state, &j.state), (JobState::Delayed { until_ms }, M::Delayed(u)) if until_ms == u)
                  || matches!((&info.state, &j.state), (JobState::Leased { expires_ms, .. }, M::Leased(e)) if expires_ms == e);
                prop_assert!(same, "{}: queue {:?}, model {:?}", name, info.state, j.state);
                prop_assert_eq!(info.attempt, j.attempt);
            }
            let s = q.stats().unwrap();
            prop_assert_eq!((s.ready + s.delayed + s.leased + s.done + s.dead) as usize, model.len());
        }
    }
}

// ---- kill -9 ----

/// Child half of the crash test: enqueues and completes jobs forever, printing each acknowledgement only
/// after the queue returned Ok. Runs only when the parent sets REPROD_JOBS_CRASH_DIR.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("REPROD_JOBS_CRASH_DIR") else {
        return;
    };
    let start: u64 = std::env::var("REPROD_JOBS_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let q = SledQueue::open(std::path::Path::new(&dir), config()).unwrap();
    use std::io::Write;
    let mut out = std::io::stdout();
    for n in start.. {
        let name = format!("job-{n}");
        if q.enqueue(job(&name, 0)).unwrap() == Enqueued::New {
            writeln!(out, "enqueued {name}").unwrap();
        }
        if let Some(l) = q.lease("child", MIN).unwrap() {
            q.complete(&l.job, &l.token, Completion::Done).unwrap();
            writeln!(out, "done {}", l.job).unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut enqueued = Vec::new();
    let mut done = Vec::new();
    let mut start = 0u64;
    for round in 0..20 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("REPROD_JOBS_CRASH_DIR", dir.path())
            .env("REPROD_JOBS_CRASH_START", start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // Kill at a different moment each round: 150 ms to ~1 s in.
        std::thread::sleep(Duration::from_millis(150 + (round * 97 % 900) as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            if let Some(name) = line.strip_prefix("enqueued ") {
                enqueued.push(name.to_string());
            } else if let Some(name) = line.strip_prefix("done ") {
                done.push(name.to_string());
            }
        }
        start += 1_000_000;
    }
    assert!(
        enqueued.len() > 20 && done.len() > 20,
        "work happened: {} / {}",
        enqueued.len(),
        done.len()
    );
    let clock = Arc::new(ManualClock::new(u64::MAX / 2));
    let q = open(dir.path(), &clock);
    for name in &enqueued {
        assert!(
            q.get(&id(name)).unwrap().is_some(),
            "acknowledged enqueue of {name} was lost"
        );
    }
    for name in &done {
        assert_eq!(
            q.get(&id(name)).unwrap().unwrap().state,
            JobState::Done,
            "acknowledged completion of {name} lost"
        );
    }
    // Leases a killed child held come back through the reaper; nothing is stuck.
    q.reap_expired().unwrap();
    let s = q.stats().unwrap();
    assert_eq!(s.leased, 0, "{s:?}");
    eprintln!(
        "kill -9 x20: {} enqueues and {} completions acknowledged, all present; {s:?}",
        enqueued.len(),
        done.len()
    );
}
