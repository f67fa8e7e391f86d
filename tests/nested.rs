//! The nested step profile, against the real engine: a trust rule lets a signed document's buildah steps
//! run containers of their own (mount and user namespaces inside the step's user namespace), and from such
//! a step the host is as far out of reach as from a plain one. A Konflux-shaped PipelineRun (a clone task
//! reprod's checkout stands in for, a buildah build task, an SBOM task skipped) rebuilds bit for bit, and
//! the same build with a `RUN date` differs, the diff naming the file.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// A reprod whose trust policy accepts `pem`'s signatures and lets the buildah image run nested for
/// documents about images matching `images`.
fn nested_reprod(pem: &Path, images: &str) -> Reprod {
    nested_reprod_for(pem, images, debian_buildah_image())
}

/// [`nested_reprod`] for the step image `nested` (pinned; its repository is what the rule names).
fn nested_reprod_for(pem: &Path, images: &str, nested: &str) -> Reprod {
    let r = Reprod::new();
    let config = r.data.path().join("reprod.toml");
    let repository = nested.split('@').next().unwrap();
    std::fs::write(
        &config,
        format!(
            "[trust]\nkeys = [{:?}]\n\n[[trust.rules]]\nimages = [{images:?}]\nnested_steps = [{repository:?}]\n",
            pem.display().to_string()
        ),
    )
    .unwrap();
    r.with("REPROD_CONFIG", config.to_str().unwrap())
}

/// Signs `statement` and writes the envelope beside the data directory; returns its path.
fn signed(
    r: &Reprod,
    statement: &Value,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> std::path::PathBuf {
    let path = r.data.path().join("provenance.dsse.json");
    std::fs::write(&path, sign_envelope(statement, key)).unwrap();
    path
}

const PROBE: &str = r#"#!/bin/sh
echo "cap=$(grep CapEff /proc/self/status | cut -f2)"
echo "uidmap=$(head -1 /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
mknod /tmp/disk b 8 0 2>/dev/null && echo mknod=made || echo mknod=refused
[ -e /dev/vda ] || [ -e /dev/sda ] || [ -e /dev/nvme0n1 ] && echo hostdisk=visible || echo hostdisk=absent
mount -t ext4 /dev/vda /mnt 2>/dev/null && echo hostmount=mounted || echo hostmount=refused
[ -e /work ] || [ -e /var/lib/docker ] && echo hostroot=visible || echo hostroot=absent
unshare -m sh -c 'mount -t tmpfs t /mnt && echo inner=mounted' 2>/dev/null || echo inner=refused
(echo 1 > /proc/sys/kernel/sysrq) 2>/dev/null && echo sysctl=written || echo sysctl=refused
(echo x > /sys/kernel/uevent_helper) 2>/dev/null && echo sys=written || echo sys=refused
mount -o remount,rw / 2>/dev/null && echo root=writable || echo root=readonly
dmesg >/dev/null 2>/tmp/klog; if grep -q 'not implemented' /tmp/klog; then echo klog=enosys; elif grep -q 'not permitted' /tmp/klog; then echo klog=eperm; else echo "klog=other $(cat /tmp/klog)"; fi
touch /workspace/source/made-by-step
exit 0
"#;

fn probe_statement(repo: &Repo, subject_name: &str) -> Value {
    chains_provenance(
        vec![subject(subject_name, &unbuilt_digest('e'))],
        PROBE,
        debian_buildah_image(),
        &repo.url,
        &repo.commit,
    )
}

fn line<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {log}"))
}

#[test]
fn from_a_nested_step_the_host_is_as_unreachable_as_from_a_plain_one() {
    let repo = Repo::hello();
    let keys = tempfile::tempdir().unwrap();
    let (key, pem) = builder_key(keys.path());
    const SYS_ADMIN: u64 = 1 << 21;
    for (name, nested) in [
        ("nested.example.test/app", true),
        ("plain.example.test/app", false),
    ] {
        let r = nested_reprod(&pem, "nested.example.test/*");
        let path = signed(&r, &probe_statement(&repo, name), &key);
        let (_, v, stderr) = r.rebuild_file_with(&path, &["--keep-workspace"]);
        let step = &v["steps"][0];
        assert_eq!(step["exit_code"], 0, "{v:#}\n{stderr}");
        assert_eq!(
            step["profile"].as_str(),
            nested.then_some("nested"),
            "the verdict says which profile the step had: {step:#}"
        );
        let log = step["log_tail"].as_str().unwrap().to_string();
        let cap = u64::from_str_radix(line(&log, "cap"), 16).unwrap();
        assert_eq!(cap & SYS_ADMIN != 0, nested, "CapEff {cap:x}\n{log}");
        // Root in the step is an unprivileged host uid, nested or not.
        let map: Vec<u64> = line(&log, "uidmap")
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(map[0], 0, "{log}");
        assert_ne!(map[1], 0, "container root is host root: {log}");
        for (k, want) in [
            ("mknod", "refused"),
            ("hostdisk", "absent"),
            ("hostmount", "refused"),
            ("hostroot", "absent"),
            ("sysctl", "refused"),
            ("sys", "refused"),
            ("root", "readonly"),
        ] {
            assert_eq!(line(&log, k), want, "{k} (nested: {nested})\n{log}");
        }
        // Only what the profile is for differs: a mount namespace of the step's own.
        assert_eq!(
            line(&log, "inner"),
            if nested { "mounted" } else { "refused" },
            "{log}"
        );
        // The kernel log (syslog), which Docker's default profile allows once SYS_ADMIN is granted, is
        // refused by reprod's own nested profile before the kernel sees it (ENOSYS), and by the kernel's
        // or Docker's checks in a plain step (EPERM).
        assert_eq!(
            line(&log, "klog"),
            if nested { "enosys" } else { "eperm" },
            "{log}"
        );
        // What the step wrote is owned on the host by the remapped uid, not by root.
        let dir = v["job_dir"].as_str().expect("kept job directory");
        let made = Path::new(dir).join("workspace/source/made-by-step");
        assert_eq!(std::fs::metadata(&made).unwrap().uid() as u64, map[1]);
    }
    assert!(orphan_containers().is_empty());
}

#[test]
fn an_unsigned_document_never_gets_the_nested_profile() {
    let repo = Repo::hello();
    let keys = tempfile::tempdir().unwrap();
    let (_, pem) = builder_key(keys.path());
    let r = nested_reprod(&pem, "*");
    let (_, v, stderr) = r.rebuild(&probe_statement(&repo, "nested.example.test/app"));
    let step = &v["steps"][0];
    assert_eq!(step["exit_code"], 0, "{v:#}\n{stderr}");
    assert!(step["profile"].is_null(), "{step:#}");
    assert_eq!(line(step["log_tail"].as_str().unwrap(), "inner"), "refused");
}

/// The hello project plus Containerfiles (or Dockerfiles) and, as their base, the busybox builder image as
/// an OCI layout at `base/`.
fn buildah_repo(containerfiles: &[(&str, &str)]) -> Repo {
    Repo::hello_with(|src| {
        for (name, text) in containerfiles {
            std::fs::write(src.join(name), text).unwrap();
        }
        sh(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--preserve-digests",
            &format!("docker://{}", builder_image()),
            &format!("oci:{}:latest", src.join("base").display()),
        ]));
    })
}

const BUILD: &str = "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n\
    buildah bud --isolation chroot --timestamp 0 -f $(params.DOCKERFILE) -t $(params.IMAGE) .\n\
    mkdir -p out\n\
    buildah push $(params.IMAGE) oci:$(workspaces.source.path)/out/image:latest\n";

/// Runs `script` in `image` as an original build would: `docker run` (in the engine's user namespace)
/// with the nested profile (its capabilities, storage and seccomp profile) on a fresh checkout of `repo` at
/// /workspace/source, which it returns.
fn run_nested_directly(repo: &Repo, image: &str, script: &str) -> std::path::PathBuf {
    let checkout = repo.reference_checkout();
    let _ = std::fs::remove_dir_all(&checkout);
    sh(Command::new("git").args(["clone", "-q", &repo.url, checkout.to_str().unwrap()]));
    sh(Command::new("git")
        .args(["checkout", "-q", &repo.commit])
        .current_dir(&checkout));
    // Root in the container is a remapped uid (the engine's root directory is named after it): the
    // checkout is handed to it, as reprod hands its checkout to the step user.
    let root_dir = sh(Command::new("docker").args(["info", "--format", "{{.DockerRootDir}}"]));
    let owner = root_dir
        .trim()
        .rsplit('/')
        .next()
        .unwrap()
        .replace('.', ":");
    sh(Command::new("chown").args(["-R", &owner, checkout.to_str().unwrap()]));
    let seccomp = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = nested_docker_run(seccomp.path());
    cmd.args([
        "--network",
        "none",
        "-v",
        &format!("{}:/workspace/source", checkout.display()),
        image,
        "sh",
        "-c",
        script,
    ]);
    sh(&mut cmd);
    checkout
}

/// The digest of the one image of the OCI layout at `layout`.
fn layout_digest(layout: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs the build step as the original build did (see [`run_nested_directly`]); returns the image's
/// manifest digest.
fn reference_buildah(repo: &Repo, dockerfile: &str, image: &str) -> String {
    let script = BUILD
        .replace("$(workspaces.source.path)", "/workspace/source")
        .replace("$(params.DOCKERFILE)", dockerfile)
        .replace("$(params.IMAGE)", image);
    let checkout = run_nested_directly(repo, debian_buildah_image(), &script);
    layout_digest(&checkout.join("out/image"))
}

/// A Konflux-shaped Chains PipelineRun: `clone` (git-clone, its commit result the recorded one), `build`
/// (buildah), `show-sbom` (reports only).
fn konflux(repo: &Repo, image: &str, digest: &str, dockerfile: &str, script: &str) -> Value {
    let buildah = debian_buildah_image();
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [subject(image, digest)],
        "predicate": {
            "builder": {"id": "https://tekton.dev/chains/v2"},
            "buildType": "tekton.dev/v1beta1/PipelineRun",
            "invocation": {"configSource": {}, "parameters": {"output-image": image}},
            "buildConfig": {"tasks": [
                {"name": "clone-repository", "ref": {"kind": "Task", "name": "git-clone"},
                 "invocation": {"parameters": {"url": repo.url}},
                 "results": [{"name": "commit", "type": "string", "value": repo.commit},
                             {"name": "url", "type": "string", "value": repo.url}],
                 "steps": [{"entryPoint": "#!/bin/sh\nexit 3\n", "arguments": null,
                            "environment": {"container": "clone", "image": buildah}}]},
                {"name": "build-container", "after": ["clone-repository"], "ref": {"kind": "Task", "name": "buildah"},
                 "invocation": {"parameters": {"IMAGE": image, "DOCKERFILE": dockerfile}},
                 "results": [{"name": "IMAGE_DIGEST", "type": "string", "value": digest}],
                 "steps": [{"entryPoint": script, "arguments": null,
                            "environment": {"container": "build", "image": buildah}}]},
                {"name": "show-sbom", "after": ["build-container"], "ref": {"kind": "Task", "name": "show-sbom"},
                 "invocation": {"parameters": {}},
                 "steps": [{"entryPoint": "#!/bin/sh\nexit 4\n", "arguments": null,
                            "environment": {"container": "show", "image": buildah}}]}
            ]},
            "materials": [{"uri": repo.url, "digest": {"sha1": repo.commit}}]
        }
    })
}

/// Publishes the reference build's image as `reference`, as the original build system would have.
fn publish(repo: &Repo, reference: &str) {
    sh(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--preserve-digests",
        &format!(
            "oci:{}:latest",
            repo.reference_checkout().join("out/image").display()
        ),
        &format!("docker://{reference}"),
    ]));
}

#[test]
fn a_konflux_shaped_pipelinerun_rebuilds_with_buildah_bit_for_bit_and_a_dated_one_differs() {
    let repo = buildah_repo(&[
        (
            "Containerfile",
            "FROM oci:/workspace/source/base:latest\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy.txt\n",
        ),
        (
            "Containerfile.dated",
            "FROM oci:/workspace/source/base:latest\nCOPY hello.txt /hello.txt\nRUN date +%s%N > /f\n",
        ),
    ]);
    let keys = tempfile::tempdir().unwrap();
    let (key, pem) = builder_key(keys.path());
    let name = format!("127.0.0.1:5000/reprod-test-{}/konflux", std::process::id());

    let digest = timed("konflux pipelinerun (buildah), run directly", || {
        reference_buildah(&repo, "Containerfile", &format!("{name}:v1"))
    });
    publish(&repo, &format!("{name}:v1"));
    let r = nested_reprod(&pem, "127.0.0.1:5000/*")
        .with("REPROD_IMAGES_FETCH_ORIGINALS", "true")
        .with("REPROD_IMAGES_ORIGINALS_FROM", "[\"127.0.0.1:5000\"]");
    let path = signed(
        &r,
        &konflux(
            &repo,
            &format!("{name}:v1"),
            &digest,
            "Containerfile",
            BUILD,
        ),
        &key,
    );
    let (code, v, stderr) = timed("konflux pipelinerun (buildah), rebuilt", || {
        r.rebuild_file(&path)
    });
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "only the build task ran: {steps:#?}");
    assert_eq!(steps[0]["profile"], "nested");
    assert_konflux_roles(&v);
    assert_eq!(v["claimed_results"].as_object().map(|m| m.len()), Some(0));

    // The dated build, its original published where the explanation can fetch it.
    let dated = reference_buildah(&repo, "Containerfile.dated", &format!("{name}:dated"));
    publish(&repo, &format!("{name}:dated"));
    let r = nested_reprod(&pem, "127.0.0.1:5000/*")
        .with("REPROD_IMAGES_FETCH_ORIGINALS", "true")
        .with("REPROD_IMAGES_ORIGINALS_FROM", "[\"127.0.0.1:5000\"]");
    let path = signed(
        &r,
        &konflux(
            &repo,
            &format!("{name}:dated"),
            &dated,
            "Containerfile.dated",
            BUILD,
        ),
        &key,
    );
    let (code, v, stderr) = r.rebuild_file(&path);
    assert_differs_naming_f(code, &v, &stderr);
}

/// The Konflux scenario whole: a PipelineRun (a clone task reprod's checkout stands in for, a buildah task,
/// an SBOM task skipped) whose buildah pulls its base by digest, through the build network, from a
/// registry that answers under its own name (HTTPS, its own CA) on 127.0.0.1, and pushes to the image the
/// provenance names: the push lands in the sink, the task's IMAGE_DIGEST result is what landed, and a
/// second rebuild is judged against the first, bit for bit. The same with a `RUN date` differs, and the
/// diff against the original (published, and fetched through an image mirror) names the file.
#[test]
fn a_konflux_pipelinerun_pulls_its_base_through_the_network_and_pushes_to_the_sink() {
    let upstream = common::upstream::TlsRegistry::start("registry.example.test");
    copy_image(
        &format!("docker://{}", builder_image()),
        &format!("docker://127.0.0.1:{}/base:1", upstream.port),
    );
    let base_digest = builder_image().split_once('@').unwrap().1.to_string();
    let base = format!("{}/base@{base_digest}", upstream.host());
    let repo = Repo::hello_with(|src| {
        for (name, run) in [
            ("Containerfile", "cat /hello.txt > /copy.txt"),
            ("Containerfile.dated", "date +%s%N > /f"),
        ] {
            std::fs::write(
                src.join(name),
                format!("FROM {base}\nCOPY hello.txt /hello.txt\nRUN {run}\n"),
            )
            .unwrap();
        }
    });
    let keys = tempfile::tempdir().unwrap();
    let (key, pem) = builder_key(keys.path());
    let ca = keys.path().join("upstream-ca.pem");
    std::fs::write(&ca, &upstream.ca_pem).unwrap();
    // Built, then pushed to the image the provenance names, as Konflux's buildah task does; IMAGE_DIGEST
    // is buildah's own word for what it pushed.
    const BUILD_AND_PUSH: &str = "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n\
        buildah bud --isolation chroot --timestamp 0 -f $(params.DOCKERFILE) -t $(params.IMAGE) .\n\
        buildah push --digestfile $(results.IMAGE_DIGEST.path) $(params.IMAGE) docker://$(params.IMAGE)\n";
    let image = "push.example.test/team/app";
    // Where the originals are published (the mirror an explanation fetches them from).
    let published = format!("127.0.0.1:5000/reprod-test-{}/", std::process::id());
    let allow = format!("{}=127.0.0.1", upstream.host());
    let rebuild = |tag: &str, digest: &str, dockerfile: &str, keep: bool| {
        let mut r = nested_reprod(&pem, "push.example.test/*")
            .with(
                "REPROD_SANDBOX_NETWORK_UPSTREAM_ROOTS",
                &format!("[{:?}]", ca.display().to_string()),
            )
            .with("REPROD_IMAGES_FETCH_ORIGINALS", "true")
            .with(
                "REPROD_IMAGES_MIRRORS",
                &format!("{{\"push.example.test/\" = {published:?}}}"),
            )
            .with("REPROD_IMAGES_INSECURE", "[\"127.0.0.1:5000\"]");
        for (k, v) in network_holder_env() {
            r = r.with(k, &v);
        }
        let statement = konflux(
            &repo,
            &format!("{image}:{tag}"),
            digest,
            dockerfile,
            BUILD_AND_PUSH,
        );
        let path = signed(&r, &statement, &key);
        let mut flags = vec!["--network", "proxy", "--allow", &allow];
        if keep {
            flags.push("--keep-workspace");
        }
        let (code, v, stderr) = r.rebuild_file_with(&path, &flags);
        if let Some(dir) = v["job_dir"].as_str() {
            // Kept only to publish what the first dated build pushed.
            let pushed = format!("{image}:{tag}");
            sh(Command::new("skopeo").args([
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--preserve-digests",
                &format!("oci:{dir}/registry-sink:{pushed}"),
                &format!("docker://{published}team/app:{tag}"),
            ]));
            reprod::rebuild::remove_job_dir_blocking(std::path::Path::new(dir)).unwrap();
        }
        (code, v, stderr)
    };
    let base_url = format!(
        "https://{}/v2/base/manifests/{base_digest}",
        upstream.host()
    );
    let pulled = |v: &Value| fetched_through_proxy(v, &base_url);

    // First rebuild: nothing to compare with yet; it tells the digest the build makes.
    let (_, v, stderr) = rebuild("1", &unbuilt_digest('d'), "Containerfile", false);
    let pushed = &v["network"]["pushed"][0];
    assert_eq!(pushed["reference"], format!("{image}:1"), "{v:#}\n{stderr}");
    let built = pushed["digest"].as_str().unwrap().to_string();
    assert_eq!(
        v["claimed_results"]["build-container.IMAGE_DIGEST"]
            .as_str()
            .map(str::trim),
        Some(built.as_str()),
        "the build task's IMAGE_DIGEST is what landed in the sink: {:#}",
        v["claimed_results"]
    );
    assert!(pulled(&v), "the base pull is recorded: {:#}", v["network"]);
    assert_konflux_roles(&v);

    // Second rebuild, judged against the first one's digest: bit for bit, matched by the sink's image.
    let (code, v, stderr) = rebuild("1", &built, "Containerfile", false);
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    let in_sink = v["outputs"]["images"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| {
            i["path"] == "registry-sink" && i["digests"].as_array().unwrap().contains(&json!(built))
        });
    assert!(
        in_sink,
        "matched by what landed in the sink: {:#}",
        v["outputs"]
    );
    assert_eq!(v["steps"].as_array().unwrap().len(), 1);
    assert_eq!(v["steps"][0]["profile"], "nested");
    assert!(pulled(&v), "{:#}", v["network"]);

    // The dated build: the first run's push is published as the original; the second differs from it, and
    // the diff of the two names the file the RUN wrote.
    let (_, v, stderr) = rebuild("dated", &unbuilt_digest('e'), "Containerfile.dated", true);
    let dated = v["network"]["pushed"][0]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{v:#}\n{stderr}"))
        .to_string();
    let (code, v, stderr) = rebuild("dated", &dated, "Containerfile.dated", false);
    assert_differs_naming_f(code, &v, &stderr);
}

/// The verdict of the dated build: unreproducible, and the diff against the original names `f`, the file
/// its `RUN date` wrote.
fn assert_differs_naming_f(code: i32, v: &Value, stderr: &str) {
    assert_eq!(v["status"], "unreproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 1);
    assert!(
        explanation_names(v, "f"),
        "the diff names f: {:#}",
        v["subjects"][0]["explanation"]
    );
    assert!(orphan_containers().is_empty());
}

/// What the rebuild did with each task of [`konflux`]: reprod's checkout stood in for the clone, the build
/// ran, the SBOM task was skipped.
fn assert_konflux_roles(v: &Value) {
    let role = |task: &str| {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == task)
            .unwrap()["role"]
            .clone()
    };
    assert_eq!(role("clone-repository"), "source-fetch");
    assert_eq!(role("build-container"), "run");
    assert_eq!(role("show-sbom"), "skipped");
}

/// A BuildKit build (Debian 13's dockerd, rootless, in the buildkit builder image) in a nested step: its
/// `COPY` and `RUN` over a base given as an OCI layout, exported as an OCI layout with rewritten
/// timestamps, rebuilds bit for bit against the same build run directly, under the nested profile and
/// reprod's own seccomp profile unchanged.
#[test]
fn a_buildkit_build_in_a_nested_step_rebuilds_bit_for_bit() {
    let base = builder_image().split_once('@').unwrap().1.to_string();
    let repo = buildah_repo(&[(
        "Dockerfile",
        "FROM base\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy.txt\n",
    )]);
    let script = format!(
        "#!/bin/sh\nset -e\nexport HOME=/tmp\nreprod-buildkitd\ncd $(workspaces.source.path)\nmkdir -p out\n\
         SOURCE_DATE_EPOCH=0 docker buildx build --builder default --network host --provenance=false \
         --build-context base=oci-layout://$(workspaces.source.path)/base@{base} \
         --output type=oci,dest=out/image.tar,rewrite-timestamp=true .\n\
         mkdir out/image && tar -xf out/image.tar -C out/image && rm out/image.tar\n"
    );
    let digest = timed("buildkit in a nested step, run directly", || {
        let checkout = run_nested_directly(
            &repo,
            debian_buildkit_image(),
            &script.replace("$(workspaces.source.path)", "/workspace/source"),
        );
        layout_digest(&checkout.join("out/image"))
    });
    let keys = tempfile::tempdir().unwrap();
    let (key, pem) = builder_key(keys.path());
    let r = nested_reprod_for(&pem, "example.invalid/*", debian_buildkit_image());
    let statement = chains_provenance(
        vec![subject("example.invalid/buildkit-app", &digest)],
        &script,
        debian_buildkit_image(),
        &repo.url,
        &repo.commit,
    );
    let path = signed(&r, &statement, &key);
    let (code, v, stderr) = timed("buildkit in a nested step, rebuilt", || {
        r.rebuild_file(&path)
    });
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    assert_eq!(v["steps"][0]["profile"], "nested");
    assert!(orphan_containers().is_empty());
}
