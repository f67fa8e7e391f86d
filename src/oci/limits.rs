//! Bounds on scanning what a build left behind: the workspace is the build's to fill, so reading it must
//! cost at most a known amount of time, bytes, memory and output, however it is shaped.

use std::time::Instant;

/// How much one scan may read and report.
#[derive(Debug, Clone)]
pub struct ScanLimits {
    /// The scan stops here (the job's deadline): what was not read by then is a problem, not an output.
    pub deadline: Option<Instant>,
    /// Bytes hashed in all (files and blobs).
    pub max_bytes_hashed: u64,
    /// Blobs read in all, counted once each per image however many descriptors name them.
    pub max_blobs: usize,
    /// Directory entries looked at.
    pub max_entries: usize,
    /// Plain files listed in the outputs (files whose digest a subject names are listed beyond this).
    pub max_files_listed: usize,
    /// Problems kept per image and for the scan; the rest are counted.
    pub max_problems: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            deadline: None,
            max_bytes_hashed: 256 << 30,
            max_blobs: 200_000,
            max_entries: 500_000,
            max_files_listed: 10_000,
            max_problems: 100,
        }
    }
}

/// What a scan has spent of its [`ScanLimits`].
#[derive(Debug)]
pub struct Budget {
    pub limits: ScanLimits,
    hashed: u64,
    blobs: usize,
    /// Set once a limit stopped the scan; later reads fail at once with this reason.
    exhausted: Option<String>,
    /// The scan stopped on a fault of this host, not a limit: no verdict may rest on it.
    host_fault: bool,
}

impl Budget {
    pub fn new(limits: ScanLimits) -> Self {
        Budget {
            limits,
            hashed: 0,
            blobs: 0,
            exhausted: None,
            host_fault: false,
        }
    }

    /// Stops the scan on a fault of this host (see [`super::store::HOST_FAULT`]).
    pub fn fail_host(&mut self, why: String) -> String {
        self.host_fault = true;
        self.stop(why)
    }

    /// Whether the scan stopped on a fault of this host.
    pub fn host_fault(&self) -> bool {
        self.host_fault
    }

    /// Why the scan stopped early, if it did.
    pub fn exhausted(&self) -> Option<&str> {
        self.exhausted.as_deref()
    }

    fn stop(&mut self, why: String) -> String {
        self.exhausted.get_or_insert(why).clone()
    }

    /// Fails when the deadline has passed.
    pub fn check_time(&mut self) -> Result<(), String> {
        if let Some(e) = &self.exhausted {
            return Err(e.clone());
        }
        match self.limits.deadline {
            Some(d) if Instant::now() >= d => {
                Err(self.stop("the scan stopped at the job deadline; the rest was not read".into()))
            }
            _ => Ok(()),
        }
    }

    /// Counts one more blob read.
    pub fn blob(&mut self) -> Result<(), String> {
        self.check_time()?;
        self.blobs += 1;
        if self.blobs > self.limits.max_blobs {
            let max = self.limits.max_blobs;
            return Err(self.stop(format!(
                "the scan stopped after reading {max} blobs (limit)"
            )));
        }
        Ok(())
    }

    /// Charges `n` more bytes to hash.
    pub fn bytes(&mut self, n: usize) -> Result<(), String> {
        self.check_time()?;
        self.hashed += n as u64;
        if self.hashed > self.limits.max_bytes_hashed {
            let max = self.limits.max_bytes_hashed;
            return Err(self.stop(format!(
                "the scan stopped after hashing {max} bytes (limit)"
            )));
        }
        Ok(())
    }

    /// Hashes a stream within the budget.
    pub fn digest(
        &mut self,
        alg: super::Algorithm,
        reader: impl std::io::Read,
    ) -> Result<(String, u64), String> {
        let mut stopped = None;
        let result = super::digest_reader(alg, reader, |n| {
            self.bytes(n).map_err(|e| {
                stopped = Some(e.clone());
                std::io::Error::other(e)
            })
        });
        match (result, stopped) {
            (_, Some(why)) => Err(why),
            (Ok(r), None) => Ok(r),
            (Err(e), None) => Err(e.to_string()),
        }
    }
}

/// A list that keeps the first `max` items and counts the rest.
pub(crate) fn push_bounded(list: &mut Vec<String>, dropped: &mut usize, max: usize, item: String) {
    if list.len() < max {
        list.push(item);
    } else {
        *dropped += 1;
    }
}
