//! Mirror maps: prefix → replacement, for git URLs (`source.mirrors`) and image repositories
//! (`images.mirrors`). The longest matching prefix wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MirrorMap(BTreeMap<String, String>);

impl MirrorMap {
    /// `text` with its longest matching prefix replaced, or `None` when no prefix matches.
    pub fn rewrite(&self, text: &str) -> Option<String> {
        self.0
            .iter()
            .filter(|(prefix, _)| text.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, to)| format!("{to}{}", &text[prefix.len()..]))
    }

    pub fn insert(&mut self, prefix: String, to: String) {
        self.0.insert(prefix, to);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for MirrorMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        MirrorMap(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins_and_no_prefix_means_no_rewrite() {
        let map: MirrorMap = [
            ("docker.io/".to_string(), "127.0.0.1:5000/".to_string()),
            (
                "docker.io/library/".to_string(),
                "127.0.0.1:5000/lib/".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            map.rewrite("docker.io/library/busybox").as_deref(),
            Some("127.0.0.1:5000/lib/busybox")
        );
        assert_eq!(
            map.rewrite("docker.io/x/y").as_deref(),
            Some("127.0.0.1:5000/x/y")
        );
        assert_eq!(map.rewrite("quay.io/x"), None);
    }
}
