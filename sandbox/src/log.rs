//! Bounded log capture: keeps the head and the tail of a step's output, drops the middle with a marker.
//!
//! The tail is what explains a failure, the head is what explains the set-up; a flood in between must not
//! cost memory or disk.

/// Output of a step, bounded to a byte budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedLog {
    /// The captured text (lossy UTF-8), with a `[reprod: … bytes of output omitted …]` marker where bytes were dropped.
    pub text: String,
    /// Total bytes the step wrote.
    pub total_bytes: u64,
    /// Bytes dropped from the middle.
    pub omitted_bytes: u64,
}

impl CapturedLog {
    /// True when part of the output was dropped.
    pub fn truncated(&self) -> bool {
        self.omitted_bytes > 0
    }

    /// The last `lines` lines of the captured text.
    pub fn tail_lines(&self, lines: usize) -> String {
        let trimmed = self.text.trim_end_matches('\n');
        let start = trimmed
            .rmatch_indices('\n')
            .nth(lines.saturating_sub(1))
            .map_or(0, |(i, _)| i + 1);
        trimmed[start..].to_string()
    }
}

/// Accumulates output chunks within a budget: the first half of the budget for the head, a ring for the tail.
pub(crate) struct LogBuffer {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl LogBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        let head_cap = limit / 2;
        LogBuffer {
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            head_cap,
            tail_cap: limit - head_cap,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let n = room.min(chunk.len());
            self.head.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
        }
        if chunk.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&chunk[chunk.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + chunk.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(chunk);
    }

    pub(crate) fn finish(self) -> CapturedLog {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let omitted = self.total - kept;
        let mut bytes = self.head;
        if omitted > 0 {
            bytes.extend_from_slice(
                format!(
                    "\n[reprod: log truncated: {omitted} bytes of output omitted here; {} bytes in all]\n",
                    self.total
                )
                .as_bytes(),
            );
        }
        bytes.extend(self.tail);
        CapturedLog {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            total_bytes: self.total,
            omitted_bytes: omitted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut b = LogBuffer::new(100);
        b.push(b"hello\n");
        b.push(b"world\n");
        let log = b.finish();
        assert_eq!(log.text, "hello\nworld\n");
        assert!(!log.truncated());
        assert_eq!(log.tail_lines(1), "world");
    }

    #[test]
    fn flood_keeps_head_and_tail_with_marker() {
        let mut b = LogBuffer::new(20);
        b.push(b"0123456789");
        for _ in 0..1000 {
            b.push(b"xxxxxxxxxxxxxxxxxxxx");
        }
        b.push(b"abcdefghij");
        let log = b.finish();
        assert_eq!(log.total_bytes, 20_020);
        assert_eq!(log.omitted_bytes, 20_000);
        assert!(log
            .text
            .starts_with("0123456789\n[reprod: log truncated: 20000 bytes"));
        assert!(log.text.ends_with("]\nabcdefghij"));
    }
}
