//! The house's layout, checked: no import circles between the crate's modules (at folder depth 1 to 3), the
//! floors that must stay low import only what is below them, and no file grows past its size without a
//! reason written here. Reads the sources as text: `crate::…` and `super::…` paths outside comments and
//! test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path of a source file (`src/daemon/http/mod.rs` → `daemon::http`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts
}

/// The file's code without its `#[cfg(test)]` part and without comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sources() -> BTreeMap<Vec<String>, (PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(&root).unwrap().to_path_buf();
                let text = std::fs::read_to_string(&p).unwrap();
                out.insert(module_of(&rel), (rel, text));
            }
        }
    }
    out
}

/// `from → to` between modules cut to `depth` path components (the CLI, a binary of its own, left out).
fn edges(depth: usize) -> BTreeSet<(String, String)> {
    let files = sources();
    let mut out = BTreeSet::new();
    for (module, (_, text)) in &files {
        if module.first().is_some_and(|m| m == "cli") || module.is_empty() {
            continue;
        }
        let code = code(text);
        for (i, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            // A whole word only (`reprod_sandbox::` or `my_crate::` are not paths of this crate).
            if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[i..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            let mut target: Vec<String> = if path[0] == "crate" {
                Vec::new()
            } else {
                // `super` of `a::b` (the file a/b.rs or the folder a/b/mod.rs) is `a`.
                let mut m = module.clone();
                m.pop();
                m
            };
            target.extend(path[1..].iter().map(|s| s.to_string()));
            while !target.is_empty() && !files.contains_key(&target) {
                target.pop();
            }
            if target.is_empty() {
                continue;
            }
            let cut = |m: &[String]| m[..m.len().min(depth)].join("::");
            let (a, b) = (cut(module), cut(&target));
            if a != b {
                out.insert((a, b));
            }
        }
    }
    out
}

/// The strongly connected components with more than one module (Tarjan).
fn circles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        graph.entry(a).or_default().push(b);
        graph.entry(b).or_default();
    }
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for &w in &g[v] {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                s.found.push(c);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(v, &graph, &mut s);
        }
    }
    s.found
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    for depth in 1..=3 {
        let e = edges(depth);
        assert!(
            e.len() > 20,
            "the scan found the imports ({} at depth {depth})",
            e.len()
        );
        assert_eq!(
            circles(&e),
            Vec::<Vec<String>>::new(),
            "import circles at depth {depth}"
        );
    }
}

#[test]
fn the_low_floors_import_only_what_is_below_them() {
    // module → what it may import (at depth 1).
    let allowed: &[(&str, &[&str])] = &[
        ("json", &[]),
        ("text", &[]),
        ("mirror", &[]),
        ("safe_fs", &[]),
        ("network", &[]),
        ("trust", &["json"]),
        ("oci", &["safe_fs"]),
        ("diff", &["oci"]),
        ("provenance", &["json", "oci", "trust"]),
        ("wire", &["verdict"]),
        ("client", &["oci", "wire"]),
        ("store", &["verdict"]),
    ];
    let e = edges(1);
    for (module, may) in allowed {
        let imports: Vec<&str> = e
            .iter()
            .filter(|(a, _)| a == module)
            .map(|(_, b)| b.as_str())
            .collect();
        let extra: Vec<&&str> = imports.iter().filter(|b| !may.contains(b)).collect();
        assert!(
            extra.is_empty(),
            "{module} imports {extra:?} (it may import {may:?})"
        );
    }
}

#[test]
fn no_file_outgrows_its_room_without_a_reason() {
    // Over ~500 lines of code (tests not counted), and why they stay whole.
    let allowed: &[(&str, usize, &str)] = &[
        (
            "config.rs",
            600,
            "every option with its default and check, and the REPROD_* overrides: one schema",
        ),
        (
            "diff/compare.rs",
            600,
            "one streaming comparer with its classification; cut, it would pass state around",
        ),
        (
            "provenance/container.rs",
            560,
            "one decoder per container format, each short",
        ),
        (
            "trust/bundle.rs",
            580,
            "the Sigstore bundle verification, step by step in the order the spec gives",
        ),
        (
            "store/mod.rs",
            570,
            "the trees and their one-transaction writes; the record model is apart",
        ),
    ];
    let mut over = Vec::new();
    for (rel, text) in sources().into_values() {
        let lines = code(&text).lines().count();
        let rel = rel.display().to_string();
        let limit = allowed
            .iter()
            .find(|(p, ..)| *p == rel)
            .map_or(500, |(_, n, _)| *n);
        if lines > limit {
            over.push(format!("{rel}: {lines} lines (limit {limit})"));
        }
    }
    assert!(over.is_empty(), "over their limit: {over:?}");
}
