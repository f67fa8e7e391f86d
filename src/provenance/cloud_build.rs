//! Google Cloud Build provenance. SLSA v0.1 (`recipe.arguments`) records each step's image (`name`),
//! `entrypoint`, `args`, `env` and `dir`, the recorded `substitutions` and the secrets a build used. SLSA v1
//! (`google-worker/v1`) records none of that, only where the build config is (`buildConfigSource.path`) and
//! what was resolved: its steps are read from that file in the recorded commit ([`steps_from_config`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::{str_at as s, string_map};
use super::tekton::{git_material, git_ref};
use super::{BuildType, Recipe, SourceRef, Statement, Step, Unrebuildable, UnrebuildableReason};

/// A build config in the source, which holds the steps the provenance does not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigSource {
    /// Its path in the checkout (`cloudbuild.yaml`).
    pub path: String,
    /// The substitutions the provenance recorded (the build's own and the system's, such as
    /// `COMMIT_SHA`), which the config's `$NAME`s take.
    pub substitutions: BTreeMap<String, String>,
    /// Images the provenance resolved (`repository@sha256:…`): a step naming one of these repositories
    /// by tag, or not at all, runs what was resolved.
    pub pinned_images: Vec<String>,
}

/// Largest build config read from the source.
pub const MAX_CONFIG_BYTES: u64 = 256 << 10;

/// The recipe of a Cloud Build v0.1 statement whose `recipe.type` is `recipe_type`.
pub fn from_v01(statement: &Statement, recipe_type: &str, builder_id: Option<String>) -> Recipe {
    let p = &statement.predicate;
    let substitutions = string_map(p.pointer("/recipe/arguments/substitutions"));
    let steps = match p.pointer("/recipe/arguments/steps") {
        Some(Value::Array(steps)) => steps
            .iter()
            .enumerate()
            .map(|(i, st)| cloud_build_step(i, st, &substitutions))
            .collect(),
        _ => Vec::new(),
    };
    Recipe {
        secrets: cloud_build_secrets(p),
        ..Recipe::of(
            statement,
            BuildType::CloudBuild {
                uri: recipe_type.to_string(),
            },
            builder_id,
            cloud_build_source(p),
            steps,
            substitutions,
        )
    }
}

/// The recipe of a Cloud Build SLSA v1 statement (`google-worker/v1`, or the `gcb-triggered-build` draft):
/// the source and the images it resolved, and where in the source the steps are. Nothing runs until the
/// config is read from the checkout.
pub fn from_v1(
    statement: &Statement,
    build_type: &str,
    ext: &Value,
    internal: &Value,
    deps: &Value,
    builder_id: Option<String>,
) -> Result<Recipe, Unrebuildable> {
    let unsupported = |why: String| {
        Unrebuildable::new(
            UnrebuildableReason::UnsupportedBuildType(build_type.to_string()),
            why,
        )
    };
    let config = ext
        .get("buildConfigSource")
        .or_else(|| ext.get("configSource"))
        .unwrap_or(&Value::Null);
    let Some(path) = s(config, "/path").filter(|p| !p.is_empty()) else {
        return Err(unsupported(
            "Cloud Build's v1 provenance records no steps, and this one names no build config \
             (buildConfigSource.path) to read them from"
                .into(),
        ));
    };
    if let Some(dir) = s(ext, "/sourceToBuild/dir").filter(|d| !d.is_empty() && *d != ".") {
        return Err(unsupported(format!(
            "the build ran on the directory {dir:?} of the source (sourceToBuild.dir), which reprod does \
             not lay out yet; only a build of the whole repository is rebuilt"
        )));
    }
    let items = deps.as_array().map(Vec::as_slice).unwrap_or_default();
    let source = items
        .iter()
        .find_map(|d| git_ref(d.get("uri")?.as_str()?, d.get("digest")?));
    // The config is read from the checkout of the source: a config kept in another repository (Cloud
    // Build can take it from one) is not what the checkout holds under that path.
    if let (Some(repository), Some(src)) = (s(config, "/repository"), &source) {
        if same_repository(repository) != same_repository(&src.uri) {
            return Err(unsupported(format!(
                "the build config came from {repository}, not from the source {} that reprod checks \
                 out; reading {path} from the source would not be the recorded build's config",
                src.uri
            )));
        }
    }
    let pinned_images = items
        .iter()
        .filter_map(|d| {
            let uri = d.get("uri")?.as_str()?;
            let hex = d.pointer("/digest/sha256")?.as_str()?;
            let repository = uri
                .split('@')
                .next()?
                .strip_prefix("oci://")
                .unwrap_or(uri.split('@').next()?);
            (!uri.starts_with("git+")).then(|| format!("{repository}@sha256:{hex}"))
        })
        .collect();
    let mut substitutions = string_map(ext.get("substitutions"));
    // The system's (COMMIT_SHA, BUILD_ID, ...) as the build had them; the build's own take precedence.
    for (k, v) in string_map(internal.get("systemSubstitutions")) {
        substitutions.entry(k).or_insert(v);
    }
    Ok(Recipe {
        config_source: Some(ConfigSource {
            path: path.to_string(),
            substitutions: substitutions.clone(),
            pinned_images,
        }),
        ..Recipe::of(
            statement,
            BuildType::CloudBuild {
                uri: build_type.to_string(),
            },
            builder_id,
            source,
            Vec::new(),
            substitutions,
        )
    })
}

/// The steps of a Cloud Build config (`cloudbuild.yaml`, YAML or JSON) as the recorded build ran them:
/// the provenance's substitutions over the config's own defaults, each step image that names a resolved
/// repository pinned to what was resolved, and the secrets it uses (named, for `needs-secrets`). `Err`
/// says why the file is not a build config.
pub fn steps_from_config(
    bytes: &[u8],
    config: &ConfigSource,
) -> Result<(Vec<Step>, Vec<String>), String> {
    let parsed = bounded_yaml(bytes, MAX_CONFIG_NODES)
        .map_err(|e| format!("{} is not a Cloud Build config: {e}", config.path))?;
    let Some(steps) = parsed.get("steps").and_then(Value::as_array) else {
        return Err(format!("{} has no `steps` list", config.path));
    };
    let mut substitutions = string_map(parsed.get("substitutions"));
    substitutions.extend(config.substitutions.clone());
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let mut step = cloud_build_step(i, st, &substitutions);
            step.image = pin(&step.image, &config.pinned_images);
            step
        })
        .collect();
    let secrets = secrets_of(&parsed);
    Ok((steps, secrets))
}

/// `image` pinned to the resolved image of the same repository (a tag, or no tag, is what the build
/// resolved then), when the provenance resolved exactly one image of that repository; otherwise (already
/// pinned, nothing resolved, or several: which tag was which is not recorded) it stays as written, and
/// the rebuild checks it runs only what the provenance resolved.
fn pin(image: &str, pinned: &[String]) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let repository = match last.split_once(':') {
        Some((name, _tag)) => &image[..image.len() - last.len() + name.len()],
        None => image,
    };
    let mut resolved = pinned
        .iter()
        .filter(|p| p.split('@').next() == Some(repository));
    match (resolved.next(), resolved.next()) {
        (Some(only), None) => only.clone(),
        _ => image.to_string(),
    }
}

/// A repository URI compared as a repository: without `git+`, a trailing `@ref`, `.git` or `/`.
fn same_repository(uri: &str) -> String {
    let uri = uri.trim().trim_start_matches("git+");
    let path_start = uri.find("://").map_or(0, |i| i + 3);
    let uri = match uri[path_start..].find('/') {
        Some(slash) => match uri[path_start + slash..].rfind('@') {
            Some(at) => &uri[..path_start + slash + at],
            None => uri,
        },
        None => uri,
    };
    uri.trim_end_matches('/')
        .trim_end_matches(".git")
        .to_ascii_lowercase()
}

/// Most nodes a build config may expand to (its aliases replayed): a real config has a few hundred.
pub const MAX_CONFIG_NODES: usize = 100_000;

/// YAML (or JSON) read into a JSON value, refused once it expands to more than `max_nodes` nodes: an
/// alias may replay a whole anchored tree, so a small file can stand for billions of nodes, and the
/// count stops that before they are made.
fn bounded_yaml(bytes: &[u8], max_nodes: usize) -> Result<Value, String> {
    use serde::de::DeserializeSeed;
    let budget = std::cell::Cell::new(max_nodes);
    let de = yaml_serde::Deserializer::from_slice(bytes);
    Node(&budget).deserialize(de).map_err(|e| e.to_string())
}

/// One node of [`bounded_yaml`], counted against what is left.
struct Node<'a>(&'a std::cell::Cell<usize>);

impl Node<'_> {
    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.0.get() {
            0 => Err(E::custom(format!(
                "it expands to more than {MAX_CONFIG_NODES} nodes"
            ))),
            n => {
                self.0.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(Node(self.0))? {
            let key = match key {
                Value::String(k) => k,
                other => other.to_string(),
            };
            out.insert(key, map.next_value_seed(Node(self.0))?);
        }
        Ok(Value::Object(out))
    }
}

/// Cloud Build's `materials[0]` is the repository, with the commit either as a digest or in a
/// `…/commit/<sha>` URL.
fn cloud_build_source(p: &Value) -> Option<SourceRef> {
    git_material(p.get("materials")).or_else(|| {
        let uri = s(p, "/materials/0/uri")?;
        let (repo, commit) = uri.rsplit_once("/commit/")?;
        (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())).then(|| SourceRef {
            uri: repo.to_string(),
            commit: commit.to_ascii_lowercase(),
        })
    })
}

/// A `cloudbuild.yaml` step as Cloud Build records it: `name` is the image; `args`, `env`, `dir`,
/// `entrypoint` and `name` take the recorded substitutions.
fn cloud_build_step(index: usize, v: &Value, substitutions: &BTreeMap<String, String>) -> Step {
    let sub = |text: &str| cloud_build_substitute(text, substitutions);
    let strings = |key: &str| -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(sub).collect())
            .unwrap_or_default()
    };
    Step {
        name: s(v, "/id").map_or_else(|| format!("step-{index}"), str::to_string),
        image: sub(s(v, "/name").unwrap_or_default()),
        script: s(v, "/script").map(str::to_string),
        command: s(v, "/entrypoint").map(sub),
        args: strings("args"),
        env: strings("env")
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, val)) => (k.to_string(), val.to_string()),
                None => (kv, String::new()),
            })
            .collect(),
        working_dir: s(v, "/dir").map(sub),
        task: None,
    }
}

/// Cloud Build's substitution rule: `$NAME` and `${NAME}` become the recorded value of NAME, `$$` is a
/// literal `$`, and anything else is left as written. (Cloud Build records steps after substituting, so
/// this is a no-op on most recorded steps; it matters for configs recorded before substitution.)
pub fn cloud_build_substitute(text: &str, substitutions: &BTreeMap<String, String>) -> String {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut plain = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&text[plain..i]);
        let (name, next) = match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
                plain = i;
                continue;
            }
            Some(b'{') => match text[i + 2..].find('}') {
                Some(end) => (&text[i + 2..i + 2 + end], i + 3 + end),
                None => ("", i + 1),
            },
            _ => {
                let end = bytes[i + 1..]
                    .iter()
                    .position(|b| !is_name(*b))
                    .map_or(bytes.len(), |p| i + 1 + p);
                (&text[i + 1..end], end)
            }
        };
        match substitutions.get(name) {
            Some(value) if !name.is_empty() => {
                out.push_str(value);
                i = next;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
        plain = i;
    }
    out.push_str(&text[plain..]);
    out
}

/// The secrets a Cloud Build v0.1 build used.
fn cloud_build_secrets(p: &Value) -> Vec<String> {
    p.pointer("/recipe/arguments")
        .map(secrets_of)
        .unwrap_or_default()
}

/// The secrets a Cloud Build config (or recorded build) uses: each step's `secretEnv`, and
/// `availableSecrets`.
fn secrets_of(build: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Array(steps)) = build.get("steps") {
        for (i, st) in steps.iter().enumerate() {
            for name in st
                .get("secretEnv")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let id = s(st, "/id").map_or_else(|| format!("step-{i}"), str::to_string);
                out.push(format!("{name} (secretEnv of {id})"));
            }
        }
    }
    if let Some(avail) = build.get("availableSecrets") {
        if out.is_empty() && avail.as_object().is_some_and(|m| !m.is_empty()) {
            out.push("availableSecrets".into());
        }
    }
    out
}

/// `Err` naming the first step in Cloud Build's own Docker builder (`gcr.io/cloud-builders/docker`, or a
/// mirror of it): such a step drives the worker's Docker daemon, which a rebuild cannot give.
pub fn needs_docker_daemon(steps: &[Step]) -> Result<(), Unrebuildable> {
    let uses_daemon = |image: &str| {
        let repository = image.split('@').next().unwrap_or(image);
        let last = repository.rsplit('/').next().unwrap_or(repository);
        let name = last.split(':').next().unwrap_or(last);
        name == "docker" && repository[..repository.len() - last.len()].ends_with("cloud-builders/")
    };
    match steps.iter().find(|s| uses_daemon(&s.image)) {
        None => Ok(()),
        Some(step) => Err(Unrebuildable::new(
            UnrebuildableReason::Other("needs-docker-daemon".into()),
            format!(
                "step {:?} runs {}, which drives the Docker daemon Cloud Build gives its steps; reprod's \
                 sandbox has none to give (a daemon in the nested profile cannot network a RUN without \
                 NET_ADMIN, which the profile withholds)",
                step.name, step.image
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cloud_build_substitutions_follow_cloud_build() {
        let subs = std::collections::BTreeMap::from([
            ("_TAG".to_string(), "v1".to_string()),
            ("PROJECT_ID".to_string(), "p".to_string()),
        ]);
        let sub = |t: &str| super::cloud_build_substitute(t, &subs);
        assert_eq!(sub("gcr.io/$PROJECT_ID/app:${_TAG}"), "gcr.io/p/app:v1");
        assert_eq!(
            sub("echo $$HOME $UNKNOWN ${_NOPE} $"),
            "echo $HOME $UNKNOWN ${_NOPE} $"
        );
        assert_eq!(sub("${_TAG"), "${_TAG");
        assert_eq!(sub("é$_TAG.é"), "év1.é");
    }

    /// A step in Cloud Build's Docker builder drives the worker's daemon, which a rebuild cannot give:
    /// said before anything runs, naming the step; other steps (and other `docker` images) are not.
    #[test]
    fn a_docker_builder_step_needs_the_daemon_cloud_build_gives() {
        let pinned = |image: &str| format!("{image}@sha256:{}", "a".repeat(64));
        let statement = |image: String| crate::provenance::Statement {
            statement_type: "https://in-toto.io/Statement/v0.1".into(),
            predicate_type: "https://slsa.dev/provenance/v0.1".into(),
            subjects: vec![crate::provenance::Subject {
                name: "gcr.io/p/app".into(),
                digests: [("sha256".to_string(), "b".repeat(64))].into(),
            }],
            predicate: serde_json::json!({
                "recipe": {"type": "https://cloudbuild.googleapis.com/CloudBuildYaml@v1",
                           "arguments": {"steps": [
                               {"name": pinned("gcr.io/cloud-builders/git"), "args": ["status"]},
                               {"id": "image", "name": image, "args": ["build", "-t", "gcr.io/p/app", "."]}]}},
                "materials": [{"uri": "git+https://example.invalid/r", "digest": {"sha1": "c".repeat(40)}}]
            }),
        };
        for image in [
            pinned("gcr.io/cloud-builders/docker"),
            pinned("us-docker.pkg.dev/mirror/cloud-builders/docker:24"),
        ] {
            let r = super::from_v01(&statement(image), "CloudBuildYaml", None);
            let e = r.check().unwrap_err();
            assert_eq!(e.reason.to_string(), "needs-docker-daemon", "{e}");
            assert!(e.detail.contains("step \"image\""), "{e}");
        }
        let r = super::from_v01(&statement(pinned("docker.io/library/docker")), "x", None);
        assert_eq!(r.check(), Ok(()));
    }
}
