//! Comparing two images: manifests, configs, layers, tar entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::layer::{self, Entry, Listing};
use super::source::{BlobRef, ImageSource, PlatformImage};
use super::{Class, DiffError, DiffOptions, Difference};

/// Collects differences for one pair of sources.
pub(super) struct Comparer<'a> {
    pub a: &'a ImageSource,
    pub b: &'a ImageSource,
    pub opts: &'a DiffOptions,
    pub out: Vec<Difference>,
    pub problems: Vec<String>,
}

fn diff(
    class: Class,
    location: &str,
    field: &str,
    a: Option<String>,
    b: Option<String>,
) -> Difference {
    Difference {
        class,
        location: location.to_string(),
        field: field.to_string(),
        a,
        b,
        text_diff: None,
    }
}

impl Comparer<'_> {
    pub fn run(&mut self) -> Result<(), DiffError> {
        for (k, va, vb) in pairs(&self.a.index_annotations, &self.b.index_annotations) {
            self.out.push(diff(
                Class::Annotation,
                "index",
                &format!("annotation {k}"),
                va,
                vb,
            ));
        }
        let (a_imgs, b_imgs) = (&self.a.images, &self.b.images);
        let single = a_imgs.len() == 1 && b_imgs.len() == 1;
        for ia in a_imgs {
            let ib = if single {
                Some(&b_imgs[0])
            } else {
                b_imgs.iter().find(|i| i.platform == ia.platform)
            };
            match ib {
                Some(ib) => self.image(ia, ib)?,
                None => self.out.push(diff(
                    Class::Content,
                    &ia.platform,
                    "platform image",
                    ia.manifest_digest.clone().or(Some("present".into())),
                    None,
                )),
            }
        }
        if !single {
            for ib in b_imgs
                .iter()
                .filter(|ib| !a_imgs.iter().any(|ia| ia.platform == ib.platform))
            {
                self.out.push(diff(
                    Class::Content,
                    &ib.platform,
                    "platform image",
                    None,
                    ib.manifest_digest.clone().or(Some("present".into())),
                ));
            }
        }
        Ok(())
    }

    fn image(&mut self, ia: &PlatformImage, ib: &PlatformImage) -> Result<(), DiffError> {
        if ia.manifest_digest.is_some() && ia.manifest_digest == ib.manifest_digest {
            // Equal digests name equal bytes only if the bytes on disk are the ones named: the configs are
            // read and verified on both sides, and every layer must be there at its declared size.
            let _: Value = self.a.json(&ia.config.name, ia.config.digest.as_deref())?;
            let _: Value = self.b.json(&ib.config.name, ib.config.digest.as_deref())?;
            for (la, lb) in ia.layers.iter().zip(&ib.layers) {
                self.present(&la.blob, &lb.blob)?;
            }
            return Ok(());
        }
        let loc = ia.platform.clone();
        for (k, va, vb) in pairs(&ia.manifest_annotations, &ib.manifest_annotations) {
            self.out.push(diff(
                Class::Annotation,
                &format!("{loc} manifest"),
                &format!("annotation {k}"),
                va,
                vb,
            ));
        }
        if ia.config.digest.is_none() || ia.config.digest != ib.config.digest {
            let ca: Value = self.a.json(&ia.config.name, ia.config.digest.as_deref())?;
            let cb: Value = self.b.json(&ib.config.name, ib.config.digest.as_deref())?;
            self.config(&loc, &ca, &cb);
        }
        let n = ia.layers.len().max(ib.layers.len());
        for i in 0..n {
            let where_ = format!("{loc} layer {i}");
            match (ia.layers.get(i), ib.layers.get(i)) {
                (Some(la), Some(lb)) => {
                    if la.blob.digest.is_some() && la.blob.digest == lb.blob.digest {
                        self.present(&la.blob, &lb.blob)?;
                        continue;
                    }
                    self.layer(&where_, &la.blob, &lb.blob)?;
                }
                (Some(la), None) => self.out.push(diff(
                    Class::Content,
                    &where_,
                    "layer",
                    la.blob.digest.clone().or(Some(la.blob.name.clone())),
                    None,
                )),
                (None, Some(lb)) => self.out.push(diff(
                    Class::Content,
                    &where_,
                    "layer",
                    None,
                    lb.blob.digest.clone().or(Some(lb.blob.name.clone())),
                )),
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// Layers named by equal digests are not compared entry by entry; each side's blob must be there at
    /// its declared size (and, with `--verify-layers`, hash to its name).
    fn present(&mut self, a: &BlobRef, b: &BlobRef) -> Result<(), DiffError> {
        self.a.check_present(a)?;
        self.b.check_present(b)?;
        if self.opts.verify_layers {
            self.a.check_digest(a)?;
            self.b.check_digest(b)?;
        }
        Ok(())
    }

    fn config(&mut self, loc: &str, a: &Value, b: &Value) {
        let loc = format!("{loc} config");
        let empty = serde_json::Map::new();
        let (oa, ob) = (
            a.as_object().unwrap_or(&empty),
            b.as_object().unwrap_or(&empty),
        );
        let keys: BTreeSet<&String> = oa.keys().chain(ob.keys()).collect();
        for key in keys {
            let (va, vb) = (oa.get(key), ob.get(key));
            if va == vb {
                continue;
            }
            match key.as_str() {
                "rootfs" => {} // diff_ids follow the layers, compared entry by entry
                "created" => {
                    self.out
                        .push(diff(Class::Timestamp, &loc, "created", show(va), show(vb)))
                }
                "history" => self.history(&loc, va, vb),
                "config" => {
                    let (ca, cb) = (va.and_then(Value::as_object), vb.and_then(Value::as_object));
                    let (ca, cb) = (ca.unwrap_or(&empty), cb.unwrap_or(&empty));
                    let inner: BTreeSet<&String> = ca.keys().chain(cb.keys()).collect();
                    for k in inner {
                        let (x, y) = (ca.get(k), cb.get(k));
                        if x == y {
                            continue;
                        }
                        if let (Some(Value::Object(lx)), Some(Value::Object(ly))) = (x, y) {
                            let names: BTreeSet<&String> = lx.keys().chain(ly.keys()).collect();
                            for name in names.into_iter().filter(|n| lx.get(*n) != ly.get(*n)) {
                                self.out.push(diff(
                                    Class::Config,
                                    &loc,
                                    &format!("config.{k}.{name}"),
                                    show(lx.get(name)),
                                    show(ly.get(name)),
                                ));
                            }
                        } else {
                            self.out.push(diff(
                                Class::Config,
                                &loc,
                                &format!("config.{k}"),
                                show(x),
                                show(y),
                            ));
                        }
                    }
                }
                other => self
                    .out
                    .push(diff(Class::Config, &loc, other, show(va), show(vb))),
            }
        }
    }

    fn history(&mut self, loc: &str, a: Option<&Value>, b: Option<&Value>) {
        let empty = Vec::new();
        let ha = a.and_then(Value::as_array).unwrap_or(&empty);
        let hb = b.and_then(Value::as_array).unwrap_or(&empty);
        if ha.len() != hb.len() {
            self.out.push(diff(
                Class::History,
                loc,
                "history length",
                Some(ha.len().to_string()),
                Some(hb.len().to_string()),
            ));
            return;
        }
        for (i, (x, y)) in ha.iter().zip(hb).enumerate() {
            let (ox, oy) = (x.as_object(), y.as_object());
            let keys: BTreeSet<&String> = ox.into_iter().chain(oy).flat_map(|o| o.keys()).collect();
            for k in keys {
                let (vx, vy) = (ox.and_then(|o| o.get(k)), oy.and_then(|o| o.get(k)));
                if vx != vy {
                    let class = if k == "created" {
                        Class::Timestamp
                    } else {
                        Class::History
                    };
                    self.out.push(diff(
                        class,
                        loc,
                        &format!("history[{i}].{k}"),
                        show(vx),
                        show(vy),
                    ));
                }
            }
        }
    }

    fn layer(&mut self, loc: &str, blob_a: &BlobRef, blob_b: &BlobRef) -> Result<(), DiffError> {
        let (name_a, name_b) = (blob_a.name.as_str(), blob_b.name.as_str());
        let verify = self.opts.verify_layers;
        let (da, db) = (
            blob_a.digest.as_deref().filter(|_| verify),
            blob_b.digest.as_deref().filter(|_| verify),
        );
        let cap = self.opts.max_layer_bytes;
        // The two layers are independent streams: read them on two cores.
        let (la, lb) = std::thread::scope(|scope| {
            let a = scope.spawn(|| list(self.a, name_a, da, cap));
            let lb = list(self.b, name_b, db, cap);
            let la = a.join().unwrap_or_else(|_| {
                Err(DiffError::Layer {
                    image: self.a.display.clone(),
                    name: name_a.to_string(),
                    problem: "the reading thread panicked".into(),
                })
            });
            (la, lb)
        });
        let (la, lb) = (la?, lb?);
        for (side, l) in [("a", &la), ("b", &lb)] {
            for p in &l.unsafe_paths {
                self.problems.push(format!(
                    "{side}: {loc}: entry {p:?} has an absolute path or `..` (never extracted)"
                ));
            }
        }
        let before = self.out.len();
        if la.compression != lb.compression {
            self.out.push(diff(
                Class::Compression,
                loc,
                "compression",
                Some(format!("{:?}", la.compression).to_lowercase()),
                Some(format!("{:?}", lb.compression).to_lowercase()),
            ));
        }
        let texts = self.entries(loc, &la, &lb);
        if !texts.is_empty() {
            self.text_diffs(loc, name_a, name_b, texts, before)?;
        }
        if self.out.len() == before {
            self.out.push(diff(
                Class::Format,
                loc,
                "tar stream",
                Some("differs outside the entries (padding, end-of-archive blocks)".into()),
                None,
            ));
        }
        Ok(())
    }

    /// Compares entries; returns the text files whose content differs (for a line diff).
    fn entries(&mut self, loc: &str, la: &Listing, lb: &Listing) -> Vec<String> {
        let map = |l: &Listing| -> HashMap<String, Entry> {
            l.entries
                .iter()
                .map(|e| (e.path.clone(), e.clone()))
                .collect()
        };
        let (ma, mb) = (map(la), map(lb));
        let mut texts = Vec::new();
        for e in &la.entries {
            let at = format!("{loc} {}", e.path);
            let Some(f) = mb.get(&e.path) else {
                self.out.push(diff(
                    Class::Content,
                    &at,
                    "presence",
                    Some(e.kind.clone()),
                    None,
                ));
                continue;
            };
            if e.kind != f.kind {
                self.out.push(diff(
                    Class::Content,
                    &at,
                    "type",
                    Some(e.kind.clone()),
                    Some(f.kind.clone()),
                ));
                continue;
            }
            if e.digest != f.digest {
                self.out.push(diff(
                    Class::Content,
                    &at,
                    "content",
                    e.digest.as_ref().map(|d| format!("{d} ({} bytes)", e.size)),
                    f.digest.as_ref().map(|d| format!("{d} ({} bytes)", f.size)),
                ));
                if e.text && f.text {
                    texts.push(e.path.clone());
                }
            }
            if e.link != f.link {
                self.out.push(diff(
                    Class::Content,
                    &at,
                    "link target",
                    e.link.clone(),
                    f.link.clone(),
                ));
            }
            let meta: [(&str, String, String); 5] = [
                ("mode", format!("{:o}", e.mode), format!("{:o}", f.mode)),
                ("uid", e.uid.to_string(), f.uid.to_string()),
                ("gid", e.gid.to_string(), f.gid.to_string()),
                ("uname", e.uname.clone(), f.uname.clone()),
                ("gname", e.gname.clone(), f.gname.clone()),
            ];
            for (field, x, y) in meta {
                if x != y {
                    self.out
                        .push(diff(Class::Metadata, &at, field, Some(x), Some(y)));
                }
            }
            if e.mtime != f.mtime {
                self.out.push(diff(
                    Class::Timestamp,
                    &at,
                    "mtime",
                    Some(e.mtime.to_string()),
                    Some(f.mtime.to_string()),
                ));
            }
            let keys: BTreeSet<&String> = e.pax.keys().chain(f.pax.keys()).collect();
            for k in keys {
                let (x, y) = (e.pax.get(k), f.pax.get(k));
                if x != y {
                    let class = match k.as_str() {
                        "mtime" | "atime" | "ctime" | "LIBARCHIVE.creationtime" => Class::Timestamp,
                        _ => Class::Metadata,
                    };
                    let field = match k.strip_prefix("SCHILY.xattr.") {
                        Some(x) => format!("xattr {x}"),
                        None => format!("pax {k}"),
                    };
                    self.out
                        .push(diff(class, &at, &field, x.cloned(), y.cloned()));
                }
            }
            if e.format != f.format {
                self.out.push(diff(
                    Class::Format,
                    &at,
                    "tar format",
                    Some(e.format.clone()),
                    Some(f.format.clone()),
                ));
            }
        }
        for f in lb.entries.iter().filter(|f| !ma.contains_key(&f.path)) {
            self.out.push(diff(
                Class::Content,
                &format!("{loc} {}", f.path),
                "presence",
                None,
                Some(f.kind.clone()),
            ));
        }
        self.order(loc, la, lb, &ma, &mb);
        texts
    }

    /// One difference when the entries both layers share come in a different order.
    fn order(
        &mut self,
        loc: &str,
        la: &Listing,
        lb: &Listing,
        ma: &HashMap<String, Entry>,
        mb: &HashMap<String, Entry>,
    ) {
        let common_a: Vec<&str> = la
            .entries
            .iter()
            .filter(|e| mb.contains_key(&e.path))
            .map(|e| e.path.as_str())
            .collect();
        let common_b: Vec<&str> = lb
            .entries
            .iter()
            .filter(|e| ma.contains_key(&e.path))
            .map(|e| e.path.as_str())
            .collect();
        let moved: Vec<&str> = common_a
            .iter()
            .zip(&common_b)
            .filter(|(x, y)| x != y)
            .map(|(x, _)| *x)
            .collect();
        if let Some(first) = moved.first() {
            self.out.push(diff(
                Class::Order,
                loc,
                "file order",
                Some(format!(
                    "{} of {} shared entries at other positions; first: {first}",
                    moved.len(),
                    common_a.len()
                )),
                None,
            ));
        }
    }

    /// Adds unified diffs to this layer's content differences (those from index `from` on).
    fn text_diffs(
        &mut self,
        loc: &str,
        name_a: &str,
        name_b: &str,
        paths: Vec<String>,
        from: usize,
    ) -> Result<(), DiffError> {
        let cap = self.opts.max_layer_bytes;
        let ta = texts(self.a, name_a, cap, &paths)?;
        let tb = texts(self.b, name_b, cap, &paths)?;
        for d in self.out[from..].iter_mut().filter(|d| d.field == "content") {
            let Some(path) = d
                .location
                .strip_prefix(loc)
                .and_then(|p| p.strip_prefix(' '))
            else {
                continue;
            };
            if let (Some(x), Some(y)) = (ta.get(path), tb.get(path)) {
                let unified = similar::TextDiff::from_lines(x, y)
                    .unified_diff()
                    .context_radius(2)
                    .header(&format!("a/{path}"), &format!("b/{path}"))
                    .to_string();
                let mut lines: Vec<&str> =
                    unified.lines().take(super::TEXT_DIFF_LINES + 1).collect();
                if lines.len() > super::TEXT_DIFF_LINES {
                    lines.truncate(super::TEXT_DIFF_LINES);
                    lines.push("…");
                }
                d.text_diff = Some(lines.join("\n"));
            }
        }
        Ok(())
    }
}

/// Lists a layer; with `digest`, also hashes the blob as read (to its end) and proves it matches.
fn list(
    src: &ImageSource,
    name: &str,
    digest: Option<&str>,
    cap: u64,
) -> Result<Listing, DiffError> {
    let layer_error = |problem: String| DiffError::Layer {
        image: src.display.clone(),
        name: name.to_string(),
        problem,
    };
    let (reader, _) = src.open_blob(name)?;
    let Some(expected) = digest else {
        return layer::list(reader, cap).map_err(|e| layer_error(e.to_string()));
    };
    let hashed = std::sync::Arc::new(std::sync::Mutex::new(sha2::Sha256::default()));
    let reader = Box::new(HashingReader {
        inner: reader,
        hasher: hashed.clone(),
    });
    let listing = layer::list_draining(reader, cap).map_err(|e| layer_error(e.to_string()))?;
    let found = {
        use sha2::Digest as _;
        let hasher = hashed
            .lock()
            .map_err(|_| layer_error("hasher poisoned".into()))?
            .clone();
        format!("sha256:{}", hex::encode(hasher.finalize()))
    };
    if found != expected {
        return Err(layer_error(format!(
            "does not match its digest {expected}: its bytes hash to {found}"
        )));
    }
    Ok(listing)
}

/// Hashes the compressed bytes of a blob on their way to the decompressor.
struct HashingReader {
    inner: Box<dyn std::io::Read + Send>,
    hasher: std::sync::Arc<std::sync::Mutex<sha2::Sha256>>,
}

impl std::io::Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        if let Ok(mut h) = self.hasher.lock() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

fn texts(
    src: &ImageSource,
    name: &str,
    cap: u64,
    paths: &[String],
) -> Result<BTreeMap<String, String>, DiffError> {
    let (reader, _) = src.open_blob(name)?;
    layer::read_texts(reader, cap, paths).map_err(|e| DiffError::Layer {
        image: src.display.clone(),
        name: name.to_string(),
        problem: e.to_string(),
    })
}

fn show(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Keys whose values differ between two sorted key/value lists.
fn pairs(
    a: &[(String, String)],
    b: &[(String, String)],
) -> Vec<(String, Option<String>, Option<String>)> {
    let ma: BTreeMap<_, _> = a.iter().cloned().collect();
    let mb: BTreeMap<_, _> = b.iter().cloned().collect();
    let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    keys.into_iter()
        .filter(|k| ma.get(*k) != mb.get(*k))
        .map(|k| (k.clone(), ma.get(k).cloned(), mb.get(k).cloned()))
        .collect()
}
