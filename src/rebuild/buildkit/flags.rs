//! A BuildKit plan → the `docker buildx build` argument list the builder step runs. Every recorded value
//! travels as one argument of its own (the step's argv, never a shell text), and every frontend option
//! reprod cannot give `buildx` the same way is refused by name rather than dropped.

use crate::provenance::{BuildKitPlan, Unrebuildable, UnrebuildableReason};

use super::exporter::Exporter;

/// Where the step finds the checkout (the build context) and where the build writes its image.
pub(super) const SOURCE_DIR: &str = "/workspace/source";
pub(super) const OUT_DIR: &str = "/workspace/buildkit-out";

/// Frontend options that change nothing in the image (cache use, the attestations asked for, how
/// references were resolved: every base is pinned here) or that the builder step sets itself.
const NOT_IN_THE_IMAGE: &[&str] = &[
    "no-cache",
    "image-resolve-mode",
    "multi-platform",
    "force-network-mode",
    "filename",
];

fn refuse(detail: String) -> Unrebuildable {
    Unrebuildable::new(
        UnrebuildableReason::Other("buildkit-option-unsupported".into()),
        detail,
    )
}

/// The `buildx build` arguments for `plan` (after the program name).
pub(super) fn build_args(
    plan: &BuildKitPlan,
    exporter: &Exporter,
) -> Result<Vec<String>, Unrebuildable> {
    match plan.frontend.as_deref() {
        None | Some("dockerfile.v0") => {}
        Some(other) => {
            return Err(refuse(format!(
                "the build ran the frontend {other:?}; reprod's BuildKit builder runs the built-in \
                 Dockerfile frontend (dockerfile.v0) only"
            )))
        }
    }
    let dockerfile = dockerfile_path(plan)?;
    let context = match plan.context_dir.as_str() {
        "" => SOURCE_DIR.to_string(),
        dir => format!("{SOURCE_DIR}/{}", inside("context directory", dir)?),
    };
    let dockerfile = match plan.dockerfile_dir.as_str() {
        "" => dockerfile,
        dir => format!("{}/{dockerfile}", inside("Dockerfile directory", dir)?),
    };
    let mut args: Vec<String> = [
        "buildx",
        "build",
        "--builder",
        "default",
        "--progress",
        "plain",
        // The step's own namespace: loopback only, or the job's proxy (see the README's build network).
        "--network",
        "host",
        "--provenance=false",
        "--sbom=false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--file".into(), format!("{SOURCE_DIR}/{dockerfile}")]);
    if let Some(platform) = plan
        .platform
        .as_deref()
        .or(plan.args.get("platform").map(String::as_str))
    {
        args.extend(["--platform".into(), platform.to_string()]);
    }
    for (key, value) in &plan.args {
        if let Some(name) = key.strip_prefix("build-arg:") {
            if name == "BUILDKIT_CONTEXT_KEEP_GIT_DIR" && value != "0" && !value.is_empty() {
                return Err(refuse(
                    "the build kept the git directory of its context (BUILDKIT_CONTEXT_KEEP_GIT_DIR): \
                     that .git is BuildKit's own fetch, which no checkout reproduces"
                        .into(),
                ));
            }
            args.extend([
                "--build-arg".into(),
                format!("{}={value}", checked_key(key, name)?),
            ]);
        } else if let Some(name) = key.strip_prefix("label:") {
            args.extend([
                "--label".into(),
                format!("{}={value}", checked_key(key, name)?),
            ]);
        } else if key == "target" {
            args.extend(["--target".into(), value.clone()]);
        } else if key == "add-hosts" {
            for host in value.split(',').filter(|h| !h.is_empty()) {
                args.extend(["--add-host".into(), host.to_string()]);
            }
        } else if key == "platform"
            || NOT_IN_THE_IMAGE.contains(&key.as_str())
            || key.starts_with("attest:")
        {
        } else {
            return Err(refuse(format!(
                "the build request has the frontend option {key:?}, which reprod's BuildKit builder cannot \
                 pass to buildx as recorded; nothing was rebuilt"
            )));
        }
    }
    args.extend([
        "--output".into(),
        format!(
            "type=oci,dest={OUT_DIR}/image.tar,{}",
            exporter.output_options()
        ),
        context,
    ]);
    if let Some(bad) = args.iter().find(|a| a.contains('\0')) {
        return Err(refuse(format!(
            "a recorded value holds a NUL byte, which no argument can carry: {:?}",
            crate::text::inert_line(bad)
        )));
    }
    Ok(args)
}

/// A build-argument or label name: what `buildx` reads up to the first `=`.
fn checked_key<'a>(key: &str, name: &'a str) -> Result<&'a str, Unrebuildable> {
    if name.is_empty() || name.contains('=') {
        return Err(refuse(format!(
            "the frontend option {key:?} has a name buildx cannot pass (empty, or holding '=')"
        )));
    }
    Ok(name)
}

/// The Dockerfile's path in its directory: relative, inside it.
fn dockerfile_path(plan: &BuildKitPlan) -> Result<String, Unrebuildable> {
    let path = plan
        .dockerfile
        .as_deref()
        .or(plan.args.get("filename").map(String::as_str))
        .unwrap_or("Dockerfile");
    inside("Dockerfile path", path.trim_start_matches("./")).map(str::to_string)
}

/// `path` when it is relative and stays inside the source (no `..`, no empty part).
fn inside<'a>(what: &str, path: &'a str) -> Result<&'a str, Unrebuildable> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|p| !p.is_empty() && p != "..");
    if ok {
        return Ok(path);
    }
    Err(Unrebuildable::new(
        UnrebuildableReason::Other("bad-dockerfile-path".into()),
        format!(
            "the recorded {what} {:?} is not a path inside the source",
            crate::text::inert_line(path)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::{BuildKitContext, BuildKitMode};

    fn plan(args: &[(&str, &str)]) -> BuildKitPlan {
        BuildKitPlan {
            mode: BuildKitMode::Max,
            frontend: Some("dockerfile.v0".into()),
            dockerfile: Some("Dockerfile".into()),
            context: BuildKitContext::Local,
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            platform: Some("linux/amd64".into()),
            materials: Vec::new(),
            source_date_epoch: None,
            missing: Vec::new(),
            context_dir: String::new(),
            dockerfile_dir: String::new(),
        }
    }

    fn exporter() -> Exporter {
        Exporter {
            oci_mediatypes: true,
            compression: super::super::exporter::Compression::Gzip,
            rewrite_timestamp: true,
        }
    }

    #[test]
    fn recorded_options_become_one_argument_each() {
        let p = plan(&[
            ("build-arg:SOURCE_DATE_EPOCH", "0"),
            ("build-arg:X", "a b'; rm -rf / #"),
            ("label:org.opencontainers.image.title", "T"),
            ("force-network-mode", "host"),
            ("target", "final"),
        ]);
        let args = build_args(&p, &exporter()).unwrap();
        let after = |flag: &str| -> Vec<&str> {
            args.windows(2)
                .filter(|w| w[0] == flag)
                .map(|w| w[1].as_str())
                .collect()
        };
        assert_eq!(
            after("--build-arg"),
            ["SOURCE_DATE_EPOCH=0", "X=a b'; rm -rf / #"]
        );
        assert_eq!(after("--label"), ["org.opencontainers.image.title=T"]);
        assert_eq!(after("--target"), ["final"]);
        assert_eq!(after("--platform"), ["linux/amd64"]);
        assert_eq!(after("--file"), ["/workspace/source/Dockerfile"]);
        assert!(
            after("--build-context").is_empty(),
            "bases are pinned by policy: {args:?}"
        );
        assert_eq!(
            after("--output"),
            ["type=oci,dest=/workspace/buildkit-out/image.tar,oci-mediatypes=true,compression=gzip,rewrite-timestamp=true"]
        );
        assert_eq!(args.last().map(String::as_str), Some("/workspace/source"));
    }

    #[test]
    fn the_context_and_the_dockerfile_are_where_the_source_had_them() {
        let mut p = plan(&[]);
        p.context_dir = "3.12/bookworm".into();
        p.dockerfile_dir = "3.12/bookworm".into();
        let args = build_args(&p, &exporter()).unwrap();
        assert_eq!(args.last().unwrap(), "/workspace/source/3.12/bookworm");
        let file = args.iter().position(|a| a == "--file").unwrap() + 1;
        assert_eq!(args[file], "/workspace/source/3.12/bookworm/Dockerfile");
        p.context_dir = String::new();
        p.dockerfile_dir = "docker".into();
        let args = build_args(&p, &exporter()).unwrap();
        assert_eq!(args.last().unwrap(), "/workspace/source");
        assert!(args.contains(&"/workspace/source/docker/Dockerfile".to_string()));
        for (context, dockerfile) in [("..", ""), ("a/../..", ""), ("", "/etc"), ("", "a//b")] {
            p.context_dir = context.into();
            p.dockerfile_dir = dockerfile.into();
            let err = build_args(&p, &exporter()).unwrap_err();
            assert!(err.detail.contains("not a path inside"), "{err}");
        }
    }

    #[test]
    fn what_cannot_be_passed_as_recorded_is_refused_by_name() {
        for (args, frontend, dockerfile, says) in [
            (
                vec![("shm-size", "1g")],
                "dockerfile.v0",
                "Dockerfile",
                "\"shm-size\"",
            ),
            (vec![], "gateway.v0", "Dockerfile", "gateway.v0"),
            (
                vec![("build-arg:BUILDKIT_CONTEXT_KEEP_GIT_DIR", "1")],
                "dockerfile.v0",
                "Dockerfile",
                "git directory",
            ),
            (
                vec![("build-arg:A", "x\0y")],
                "dockerfile.v0",
                "Dockerfile",
                "NUL",
            ),
            (
                vec![],
                "dockerfile.v0",
                "../etc/passwd",
                "not a path inside",
            ),
            (vec![], "dockerfile.v0", "/Dockerfile", "not a path inside"),
        ] {
            let mut p = plan(&args);
            p.frontend = Some(frontend.into());
            p.dockerfile = Some(dockerfile.into());
            let err = build_args(&p, &exporter()).unwrap_err();
            assert!(err.detail.contains(says), "{says}: {err}");
        }
    }
}
