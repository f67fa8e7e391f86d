//! The running steps' newest output lines, per job, for the job page of a job an in-process worker is
//! rebuilding (a remote worker's output reaches the server only with its completion). In memory only, a
//! few lines per job, made inert as they arrive; gone when the job is.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// Lines kept per job.
const LINES: usize = 20;
/// Characters kept per line.
const LINE_CHARS: usize = 300;

struct Tail {
    label: String,
    started: Instant,
    lines: VecDeque<String>,
    partial: String,
}

/// What a running job's page shows.
pub struct Running {
    /// `step 2/3 build`
    pub label: String,
    pub secs: u64,
    pub lines: Vec<String>,
}

#[derive(Default)]
pub struct LiveTails {
    jobs: Mutex<HashMap<String, Tail>>,
}

impl LiveTails {
    /// A chunk of `job`'s step `label` output.
    pub fn chunk(&self, job: &str, label: &str, bytes: &[u8]) {
        let Ok(mut jobs) = self.jobs.lock() else {
            return;
        };
        let tail = jobs.entry(job.to_string()).or_insert_with(|| Tail {
            label: String::new(),
            started: Instant::now(),
            lines: VecDeque::new(),
            partial: String::new(),
        });
        if tail.label != label {
            tail.label = label.to_string();
            tail.started = Instant::now();
            tail.lines.clear();
            tail.partial.clear();
        }
        tail.partial.push_str(&String::from_utf8_lossy(bytes));
        while let Some(at) = tail.partial.find(['\n', '\r']) {
            let line: String = tail.partial[..at].chars().take(LINE_CHARS).collect();
            tail.partial.drain(..=at);
            if !line.trim().is_empty() {
                if tail.lines.len() == LINES {
                    tail.lines.pop_front();
                }
                tail.lines
                    .push_back(crate::text::inert_line(&line).into_owned());
            }
        }
        if tail.partial.len() > 4 * LINE_CHARS {
            tail.partial.clear();
        }
    }

    pub fn running(&self, job: &str) -> Option<Running> {
        let jobs = self.jobs.lock().ok()?;
        let t = jobs.get(job)?;
        let mut lines: Vec<String> = t.lines.iter().cloned().collect();
        if !t.partial.trim().is_empty() {
            lines.push(
                crate::text::inert_line(&t.partial)
                    .chars()
                    .take(LINE_CHARS)
                    .collect(),
            );
        }
        Some(Running {
            label: t.label.clone(),
            secs: t.started.elapsed().as_secs(),
            lines,
        })
    }

    /// The job is no longer running here.
    pub fn finished(&self, job: &str) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.remove(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_lines_of_the_current_step_are_kept_inert_and_bounded() {
        let t = LiveTails::default();
        t.chunk("j", "step 1/2 a", b"one\ntw");
        t.chunk("j", "step 1/2 a", b"o\n\x1b[31mred\n");
        let r = t.running("j").unwrap();
        assert_eq!(r.label, "step 1/2 a");
        assert_eq!(r.lines, ["one", "two", "\\x1b[31mred"]);
        for i in 0..100 {
            t.chunk("j", "step 1/2 a", format!("line {i}\n").as_bytes());
        }
        let r = t.running("j").unwrap();
        assert_eq!(r.lines.len(), LINES);
        assert_eq!(r.lines.last().unwrap(), "line 99");
        // A new step starts afresh.
        t.chunk("j", "step 2/2 b", b"partial");
        assert_eq!(t.running("j").unwrap().lines, ["partial"]);
        t.finished("j");
        assert!(t.running("j").is_none());
    }
}
