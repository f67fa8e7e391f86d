//! What a replay may serve, taken from an earlier rebuild's record (the serving is [`super::replay`]).

use std::collections::{BTreeMap, VecDeque};

use super::Exchange;

/// What a replay may serve: for each URL, the digests of the bodies the earlier rebuild received, in
/// the order it received them (the last one answers any further request for the URL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySet {
    bodies: BTreeMap<String, VecDeque<String>>,
    /// Where the record came from, for messages.
    pub from: String,
}

impl ReplaySet {
    /// The GETs of a record that were answered 2xx and whose whole body was hashed.
    pub fn from_record(exchanges: &[Exchange], from: impl Into<String>) -> ReplaySet {
        let mut bodies: BTreeMap<String, VecDeque<String>> = BTreeMap::new();
        for e in exchanges {
            if let Some(digest) = e.body_received().filter(|_| e.method == "GET") {
                bodies
                    .entry(e.url.clone())
                    .or_default()
                    .push_back(digest.to_string());
            }
        }
        ReplaySet {
            bodies,
            from: from.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// How many bodies the record holds.
    pub fn len(&self) -> usize {
        self.bodies.values().map(VecDeque::len).sum()
    }

    /// The digest to serve for the next request of `url`.
    pub(super) fn next(&mut self, url: &str) -> Option<String> {
        let queue = self.bodies.get_mut(url)?;
        if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        }
    }
}
