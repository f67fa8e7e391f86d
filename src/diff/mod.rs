//! `reprod diff`: why two images differ, layer by layer and entry by entry, classified.
//!
//! Every difference is reported (not just the first), each with a class, so a reader can tell real
//! content changes from noise that a normalization would remove (timestamps, file order, tar format,
//! compression). Layers are streamed: memory grows with the number of entries, not with layer size.

mod compare;
mod html;
mod layer;
mod source;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub use layer::{Compression, Entry};
pub use source::ImageSource;

/// Version of the JSON schema of [`DiffReport`]; bumped on any incompatible change.
pub const SCHEMA: &str = "https://reprod.dev/diff/v1";
/// Lines of unified diff kept per text file.
pub const TEXT_DIFF_LINES: usize = 40;

/// What kind of difference.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// A file's bytes, type, link target, presence; a layer or platform present on one side only.
    Content,
    /// Mode, owner ids and names, xattrs and other PAX records.
    Metadata,
    /// mtimes, PAX times, config and history `created`.
    Timestamp,
    /// The same entries in another order.
    Order,
    /// Tar header format, or bytes of the tar stream outside the entries.
    Format,
    /// Layer compression.
    Compression,
    /// The image config (environment, entrypoint, labels, architecture, ...).
    Config,
    /// The config's history (other than its timestamps).
    History,
    /// Index or manifest annotations.
    Annotation,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::Content,
        Class::Metadata,
        Class::Timestamp,
        Class::Order,
        Class::Format,
        Class::Compression,
        Class::Config,
        Class::History,
        Class::Annotation,
    ];

    /// Classes a normalization can remove without changing what the image runs.
    pub fn normalizable(self) -> bool {
        matches!(
            self,
            Class::Timestamp | Class::Order | Class::Format | Class::Compression
        )
    }

    /// The name used in JSON (`content`, `timestamp`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Content => "content",
            Class::Metadata => "metadata",
            Class::Timestamp => "timestamp",
            Class::Order => "order",
            Class::Format => "format",
            Class::Compression => "compression",
            Class::Config => "config",
            Class::History => "history",
            Class::Annotation => "annotation",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Class::Content => "contents",
            Class::Metadata => "metadata",
            Class::Timestamp => "timestamps",
            Class::Order => "file order",
            Class::Format => "tar format",
            Class::Compression => "compression",
            Class::Config => "config",
            Class::History => "history",
            Class::Annotation => "annotations",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Difference {
    pub class: Class,
    /// Where: `<platform> layer <n> <path>`, `<platform> config`, `index`, ...
    pub location: String,
    /// What: `content`, `mode`, `mtime`, `config.Labels.x`, `history[2].created_by`, ...
    pub field: String,
    /// Value in A (`None`: absent).
    pub a: Option<String>,
    /// Value in B (`None`: absent).
    pub b: Option<String>,
    /// Unified diff of a differing text file (first lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_diff: Option<String>,
}

/// The result of comparing two images. Stable JSON schema [`SCHEMA`].
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub schema: &'static str,
    pub a: String,
    pub b: String,
    pub identical: bool,
    /// Count of differences per class.
    pub summary: BTreeMap<Class, usize>,
    /// True when every difference is in a normalizable class.
    pub equivalent_after_normalization: bool,
    /// The normalizations that equivalence takes (empty when identical or not equivalent).
    pub normalizations: Vec<Class>,
    pub differences: Vec<Difference>,
    /// Things noticed that are not differences (unsafe entry paths).
    pub problems: Vec<String>,
}

/// Limits for hostile inputs.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Decompressed bytes allowed per layer (a gzip bomb stops here).
    pub max_layer_bytes: u64,
    /// Hash every layer blob that is read and refuse one whose bytes do not match its digest (costs a
    /// second hash of the compressed bytes; indexes, manifests and configs are always verified).
    pub verify_layers: bool,
    /// Reading stops here (a rebuild's job deadline): the comparison is then an error, not a report.
    pub deadline: Option<std::time::Instant>,
    /// Compare only this platform's image of each side (`os/arch[/variant]`; a side with one image
    /// that names no platform is taken as it), not the indexes around them.
    pub platform: Option<String>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            max_layer_bytes: 64 << 30,
            verify_layers: false,
            deadline: None,
            platform: None,
        }
    }
}

/// Why two images could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{path}: {problem}")]
    Open { path: String, problem: String },
    #[error("{image}: {problem}")]
    Blob { image: String, problem: String },
    #[error("{image}: layer {name}: {problem}")]
    Layer {
        image: String,
        name: String,
        problem: String,
    },
}

/// Keeps `platform`'s image of `side` (a lone image that names no platform stands for it), and not the
/// index around it; `Err` naming the platforms it has when it has not that one.
fn only_platform(side: &mut ImageSource, platform: &str) -> Result<(), DiffError> {
    let lone_default = side.images.len() == 1 && side.images[0].platform == "default";
    if !lone_default {
        let has: Vec<String> = side.images.iter().map(|i| i.platform.clone()).collect();
        side.images.retain(|i| i.platform == platform);
        if side.images.is_empty() {
            return Err(DiffError::Open {
                path: side.display.clone(),
                problem: format!("has no {platform} image (it has: {})", has.join(", ")),
            });
        }
    }
    side.index_annotations.clear();
    Ok(())
}

/// Compares two images (layout directories, OCI archives or `docker save` archives). Blocking.
pub fn diff(a: &Path, b: &Path, opts: &DiffOptions) -> Result<DiffReport, DiffError> {
    let mut sa = ImageSource::open(a)?;
    let mut sb = ImageSource::open(b)?;
    sa.deadline = opts.deadline;
    sb.deadline = opts.deadline;
    if let Some(platform) = &opts.platform {
        for side in [&mut sa, &mut sb] {
            only_platform(side, platform)?;
        }
    }
    let mut c = compare::Comparer {
        a: &sa,
        b: &sb,
        opts,
        out: Vec::new(),
        problems: Vec::new(),
    };
    c.run()?;
    let (differences, problems) = (c.out, c.problems);
    let mut summary = BTreeMap::new();
    for d in &differences {
        *summary.entry(d.class).or_insert(0) += 1;
    }
    let identical = differences.is_empty();
    let equivalent = !identical && summary.keys().all(|c| c.normalizable());
    Ok(DiffReport {
        schema: SCHEMA,
        a: sa.display.clone(),
        b: sb.display.clone(),
        identical,
        normalizations: if equivalent {
            summary.keys().copied().collect()
        } else {
            Vec::new()
        },
        equivalent_after_normalization: equivalent,
        summary,
        differences,
        problems,
    })
}

impl DiffReport {
    /// Exit status: 0 identical, 1 different.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.identical)
    }

    /// Human text: the summary first, then at most `limit` differences.
    pub fn human(&self, limit: usize) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if self.identical {
            let _ = writeln!(s, "identical: {} and {}", self.a, self.b);
            return s;
        }
        let _ = writeln!(s, "different: {} and {}", self.a, self.b);
        let counts: Vec<String> = self
            .summary
            .iter()
            .map(|(c, n)| format!("{}: {n}", c.plural()))
            .collect();
        let _ = writeln!(
            s,
            "  {} difference(s) — {}",
            self.differences.len(),
            counts.join(", ")
        );
        if let [(only, n)] = self.summary.iter().collect::<Vec<_>>().as_slice() {
            let _ = writeln!(s, "  only {} differ: {n}", only.plural());
        }
        if self.equivalent_after_normalization {
            let names: Vec<_> = self.normalizations.iter().map(|c| c.plural()).collect();
            let _ = writeln!(s, "  equivalent after normalizing: {}", names.join(", "));
        }
        for d in self.differences.iter().take(limit) {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
            let _ = writeln!(
                s,
                "[{}] {}: {}: {} -> {}",
                d.class.as_str(),
                d.location,
                d.field,
                show(&d.a),
                show(&d.b)
            );
            if let Some(t) = &d.text_diff {
                for line in t.lines() {
                    let _ = writeln!(s, "    {line}");
                }
            }
        }
        if self.differences.len() > limit {
            let _ = writeln!(
                s,
                "… {} more (use --json for all)",
                self.differences.len() - limit
            );
        }
        for p in &self.problems {
            let _ = writeln!(s, "note: {p}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::Class;

    #[test]
    fn class_names_match_the_json_schema() {
        for c in Class::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
