//! `/metrics`: what an operator graphs and alerts on, in the Prometheus (OpenMetrics) text format.
//!
//! Counters and the duration histogram count what this process did since it started; the gauges (queue
//! depth, stored verdicts, workers) are read from the stores at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Rebuild durations, seconds: a minute-long build and an hour-long one land in different buckets.
const DURATION_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

type DurationFamily = Family<StatusLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    verdicts: Family<StatusLabel, Counter>,
    durations: DurationFamily,
    intake: Family<OutcomeLabel, Counter>,
    queue: Family<StateLabel, Gauge>,
    stored: Family<StatusLabel, Gauge>,
    workers: Family<KindLabel, Gauge>,
    publish: Family<OutcomeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let verdicts = Family::<StatusLabel, Counter>::default();
        let durations: DurationFamily =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        let intake = Family::<OutcomeLabel, Counter>::default();
        let queue = Family::<StateLabel, Gauge>::default();
        let stored = Family::<StatusLabel, Gauge>::default();
        let workers = Family::<KindLabel, Gauge>::default();
        let publish = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reprod_verdicts",
            "Verdicts recorded by this process, by status",
            verdicts.clone(),
        );
        registry.register(
            "reprod_rebuild_duration_seconds",
            "Rebuild durations as the verdicts this process recorded report them (duration_ms), by status",
            durations.clone(),
        );
        registry.register(
            "reprod_intake",
            "Provenance documents offered to this process, by outcome (queued, duplicate, rejected, unparsable)",
            intake.clone(),
        );
        registry.register(
            "reprod_queue_jobs",
            "Jobs in the queue, by state (ready, delayed, leased, done, dead)",
            queue.clone(),
        );
        registry.register(
            "reprod_verdicts_stored",
            "Verdicts in the store, by status",
            stored.clone(),
        );
        registry.register(
            "reprod_workers",
            "Workers: configured in-process ones, and remote ones seen within a lease period",
            workers.clone(),
        );
        registry.register(
            "reprod_publish_attempts",
            "Attempts to push a verdict to registries ([publish]), by outcome (published, not-published, retry, failed)",
            publish.clone(),
        );
        // Every series exists from the start, so a rate over the first verdict is not lost.
        for status in crate::verdict::Status::ALL {
            let label = StatusLabel {
                status: status.as_str().into(),
            };
            let _ = verdicts.get_or_create(&label);
            let _ = durations.get_or_create(&label);
        }
        for outcome in [
            "queued",
            "duplicate",
            "rejected",
            "unparsable",
            "storage-failed",
        ] {
            let _ = intake.get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            });
        }
        Metrics {
            registry,
            verdicts,
            durations,
            intake,
            queue,
            stored,
            workers,
            publish,
        }
    }

    /// One attempt to publish a verdict, by its outcome.
    pub fn publish_attempt(&self, outcome: &str) {
        self.publish
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn verdict_recorded(&self, status: crate::verdict::Status, duration_ms: Option<u64>) {
        let label = StatusLabel {
            status: status.as_str().to_string(),
        };
        self.verdicts.get_or_create(&label).inc();
        if let Some(ms) = duration_ms {
            self.durations
                .get_or_create(&label)
                .observe(ms as f64 / 1000.0);
        }
    }

    pub fn intake(&self, outcome: &str) {
        self.intake
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The exposition, with the gauges set from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let s = &snapshot.queue;
        for (state, n) in [
            ("ready", s.ready),
            ("delayed", s.delayed),
            ("leased", s.leased),
            ("done", s.done),
            ("dead", s.dead),
        ] {
            self.queue
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(n as i64);
        }
        for (status, n) in &snapshot.stored {
            self.stored
                .get_or_create(&StatusLabel {
                    status: status.clone(),
                })
                .set(*n as i64);
        }
        for (kind, n) in [
            ("local", snapshot.local_workers),
            ("remote", snapshot.remote_workers),
        ] {
            self.workers
                .get_or_create(&KindLabel { kind: kind.into() })
                .set(n as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The state the gauges show.
pub struct Snapshot {
    pub queue: reprod_jobs::QueueStats,
    pub stored: Vec<(String, u64)>,
    pub local_workers: usize,
    pub remote_workers: usize,
}
