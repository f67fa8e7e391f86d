//! The human summary of a verdict, as `reprod rebuild` prints it.

use super::{Status, SubjectState, Verdict};

impl Verdict {
    /// The human summary printed by `reprod rebuild`. Everything the build or the provenance chose is made
    /// inert for a terminal first.
    pub fn human(&self) -> String {
        use crate::text::inert;
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "verdict: {}", self.status.as_str());
        if let Some(reason) = &self.reason {
            let _ = writeln!(s, "reason:  {}", inert(reason));
        }
        let _ = writeln!(s, "         {}", inert(&self.detail));
        let _ = writeln!(
            s,
            "provenance: {} (sha256:{}; {})",
            inert(&self.provenance.origin),
            self.provenance.sha256,
            inert(&self.provenance.signature)
        );
        if let Some(src) = &self.source {
            let _ = writeln!(s, "source:  {} @ {}", inert(&src.uri), inert(&src.commit));
        }
        if let Some(from) = &self.steps_from {
            let _ = writeln!(s, "steps:   read from {}", inert(from));
        }
        if let Some(job) = &self.reused_rebuild {
            let _ = writeln!(
                s,
                "rebuild: reused from job {job} (same source commit and steps); nothing was run again"
            );
        }
        if let Some(who) = &self.rebuilt_by {
            let _ = writeln!(s, "rebuilt by: {} (its claim)", inert(who));
        }
        for st in &self.steps {
            let _ = writeln!(
                s,
                "step {}: {} in {:.1}s, exit {} ({}){}",
                inert(&st.name),
                inert(&st.image),
                st.duration_ms as f64 / 1000.0,
                st.exit_code,
                st.termination.as_str(),
                if st.log_truncated {
                    ", log truncated"
                } else {
                    ""
                }
            );
        }
        if let Some(net) = &self.network {
            let _ = writeln!(
                s,
                "network: {} mode through {}, {} allow-list entries; {} exchanges ({} refused)",
                net.mode.as_str(),
                net.proxy,
                net.allow.len(),
                net.exchanges.len(),
                net.refusals_since(0).count()
            );
            if let Some(tls) = &net.tls {
                let _ = writeln!(
                    s,
                    "  TLS intercepted with the job's CA {} (given to the steps at {})",
                    tls.ca_sha256,
                    tls.ca_paths.join(", ")
                );
            }
            for e in net.exchanges.iter().take(20) {
                let _ = writeln!(
                    s,
                    "  {} {} -> {}{}",
                    inert(&e.method),
                    inert(&e.url),
                    match (&e.refused, e.status) {
                        (Some(why), _) => format!("refused: {}", inert(why)),
                        (None, Some(code)) => format!("{code}, {} bytes", e.bytes),
                        (None, None) => format!("no answer, {} bytes", e.bytes),
                    },
                    e.sha256
                        .as_deref()
                        .map(|d| format!(", {d}"))
                        .unwrap_or_default()
                );
            }
            if net.exchanges.len() > 20 {
                let _ = writeln!(
                    s,
                    "  ... {} more in the verdict's JSON",
                    net.exchanges.len() - 20
                );
            }
        }
        if self.status == Status::BuildFailed {
            if let Some(st) = self.steps.last() {
                let _ = writeln!(s, "log tail of step {}:", inert(&st.name));
                for line in st.log_tail.lines() {
                    let _ = writeln!(s, "  | {}", inert(line));
                }
            }
        }
        let count = |state| self.subjects.iter().filter(|x| x.state == state).count();
        let _ = writeln!(
            s,
            "subjects: {} listed, {} distinct: {} matched, {} differ, {} not found, {} not compared",
            self.subjects.len(),
            self.distinct_subjects(),
            count(SubjectState::Matched),
            count(SubjectState::Differs),
            count(SubjectState::NotFound),
            count(SubjectState::NotCompared),
        );
        for sub in &self.subjects {
            let _ = write!(
                s,
                "  {:<12} {} {}",
                sub.state.as_str(),
                inert(&sub.name),
                inert(&sub.digest)
            );
            if let Some(d) = sub.rebuilt_digest.as_deref().filter(|_| !sub.matched) {
                let _ = write!(s, "\n               rebuilt: {}", inert(d));
                if let Some(p) = &sub.rebuilt_path {
                    let _ = write!(s, " (workspace/{})", inert(p));
                }
            } else if sub.state == SubjectState::NotFound && sub.problem.is_none() {
                let _ = write!(s, "\n               rebuilt: (no corresponding output)");
            }
            if let Some(p) = &sub.problem {
                let _ = write!(s, "\n               problem: {}", inert(p));
            }
            if let Some(x) = &sub.explanation {
                let _ = write!(s, "\n               why: {}", inert(&x.line()));
            }
            s.push('\n');
        }
        let unexplained = self.subjects.iter().any(|x| {
            x.state == SubjectState::Differs
                && x.artifact == Some(super::ArtifactKind::Image)
                && x.explanation.as_ref().is_none_or(|e| e.error.is_some())
        });
        if self.status == Status::Unreproducible && unexplained && self.reused_rebuild.is_none() {
            let _ = writeln!(
                s,
                "to see why: rerun with --keep-workspace, then `reprod diff ORIGINAL <job_dir>/workspace/<path>` \
                 with the original image as an OCI layout (e.g. `skopeo copy docker://NAME@DIGEST oci:ORIGINAL`)"
            );
        }
        if !self.claimed_results.is_empty() {
            let _ = writeln!(s, "claimed by the build (not evidence):");
            for (k, v) in &self.claimed_results {
                let _ = writeln!(s, "  {} = {}", inert(k), inert(v.trim()));
            }
        }
        s
    }
}
