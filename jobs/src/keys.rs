//! Index keys, big-endian so sled's byte order is the queue's order.

/// Ready index: higher priority first, then enqueue order.
pub(crate) fn ready(priority: i32, seq: u64) -> Vec<u8> {
    // Flip the sign bit so i32 order is byte order, then invert so higher sorts first.
    let p = !((priority as u32) ^ 0x8000_0000);
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&p.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Time-ordered indexes (delayed retries, lease expiries): time, then the job id to keep keys unique.
pub(crate) fn timed(ms: u64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// The upper bound of every timed key at or before `ms`.
pub(crate) fn timed_until(ms: u64) -> Vec<u8> {
    ms.saturating_add(1).to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ready_keys_sort_by_priority_descending_then_sequence() {
        let mut keys = vec![
            (super::ready(0, 2), "0/2"),
            (super::ready(-5, 0), "-5/0"),
            (super::ready(10, 9), "10/9"),
            (super::ready(0, 1), "0/1"),
            (super::ready(i32::MAX, 0), "max"),
            (super::ready(i32::MIN, 0), "min"),
        ];
        keys.sort();
        let order: Vec<_> = keys.iter().map(|(_, n)| *n).collect();
        assert_eq!(order, vec!["max", "10/9", "0/1", "0/2", "-5/0", "min"]);
    }
}
