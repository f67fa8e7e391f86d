//! The house's layout, checked: no import circles between a crate's modules (reprod's at folder depth 1
//! to 3, the sandbox's and the queue's), the floors that must stay low import only what is below them, and
//! no file of any of the three crates grows past its size without a reason written here. Reads the sources as text: `crate::…` and `super::…` paths outside comments and
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

/// The source roots of the workspace's crates, as paths under the workspace.
const ROOTS: [&str; 3] = ["src", "sandbox/src", "jobs/src"];

fn sources(root: &str) -> BTreeMap<Vec<String>, (PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
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

/// What the crate root re-exports (`pub use module::{A, B};`): name → the module it comes from, so that
/// `crate::A` counts as an import of that module.
fn reexports(files: &BTreeMap<Vec<String>, (PathBuf, String)>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let Some((_, root)) = files.get(&Vec::new()) else {
        return out;
    };
    let code = code(root);
    for stmt in code.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let (module, names) = match rest.split_once("::{") {
            Some((m, names)) => (m, names.trim_end_matches('}').to_string()),
            None => match rest.rsplit_once("::") {
                Some((m, name)) => (m, name.to_string()),
                None => continue,
            },
        };
        let module: Vec<String> = module.split("::").map(str::to_string).collect();
        if !files.contains_key(&module) {
            continue;
        }
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            out.insert(name.to_string(), module.clone());
        }
    }
    out
}

/// `from → to` between a crate's modules cut to `depth` path components (reprod's CLI, a binary of its
/// own, and each crate root left out).
fn edges(root: &str, depth: usize) -> BTreeSet<(String, String)> {
    let files = sources(root);
    let reexported = reexports(&files);
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
            let mut path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            // `crate::{A, B}`: each name counts.
            let braced: Vec<&str> = if rest.starts_with("crate::{") {
                let inner = &rest["crate::{".len()..rest.find('}').unwrap_or(rest.len())];
                inner
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or(""))
                    .filter(|n| !n.is_empty())
                    .collect()
            } else {
                Vec::new()
            };
            let mut targets: Vec<Vec<String>> = Vec::new();
            if path[0] == "crate" && !braced.is_empty() {
                for name in braced {
                    if let Some(m) = reexported.get(name) {
                        targets.push(m.clone());
                    } else {
                        targets.push(vec![name.to_string()]);
                    }
                }
            } else {
                let mut target: Vec<String> = if path[0] == "crate" {
                    Vec::new()
                } else {
                    // `super` of `a::b` (the file a/b.rs or the folder a/b/mod.rs) is `a`.
                    let mut m = module.clone();
                    m.pop();
                    m
                };
                if path[0] == "crate" && path.len() > 1 {
                    if let Some(m) = reexported.get(path[1]) {
                        path.truncate(1);
                        target.extend(m.iter().cloned());
                    }
                }
                target.extend(path[1..].iter().map(|s| s.to_string()));
                targets.push(target);
            }
            for mut target in targets {
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
        let e = edges("src", depth);
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
    // The two lower crates are flat: one level.
    for (root, least) in [("sandbox/src", 10), ("jobs/src", 3)] {
        let e = edges(root, 1);
        assert!(e.len() >= least, "the scan found {root}'s imports: {e:?}");
        assert_eq!(
            circles(&e),
            Vec::<Vec<String>>::new(),
            "import circles in {root}"
        );
    }
}

/// The scan sees an import through the crate root's re-exports: the sandbox's one-time circle between
/// running a step and the job network came through `crate::StepNetwork`, which a plain path walk misses.
#[test]
fn imports_through_reexports_are_seen() {
    let e = edges("sandbox/src", 1);
    for (from, to) in [
        ("run", "spec"),
        ("network", "connect"),
        ("run", "containers"),
    ] {
        assert!(
            e.contains(&(from.to_string(), to.to_string())),
            "{from} → {to} not seen: {e:?}"
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
        ("store", &["verdict", "wire"]),
        ("publish", &["json", "oci", "text"]),
    ];
    let e = edges("src", 1);
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
    for (root, (rel, text)) in ROOTS
        .iter()
        .flat_map(|root| sources(root).into_values().map(move |f| (root, f)))
    {
        let lines = code(&text).lines().count();
        let rel = match *root {
            "src" => rel.display().to_string(),
            other => format!("{other}/{}", rel.display()),
        };
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
