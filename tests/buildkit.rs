//! BuildKit end to end, against the real engine: a real BuildKit build (Debian 13's dockerd in the buildkit
//! builder image) of a git context, with `--provenance=mode=max`, published to the local registry with its
//! attestation manifest, is rebuilt by `reprod rebuild docker://NAME@sha256:INDEX` from that provenance
//! alone: the build request replayed by reprod's BuildKit builder in the nested profile, the base image
//! pulled through the build network and pinned to the recorded digest, the exporter options read from the
//! published image, the platform manifest compared. A build with a `RUN date` differs, and the diff names
//! the file.

mod common;

use std::path::Path;
use std::process::{Child, Command};

use common::*;
use serde_json::Value;

/// `git daemon` serving a directory's repositories on 127.0.0.1 (BuildKit fetches git contexts itself).
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn serve(base: &Path) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("git")
            .args([
                "daemon",
                "--export-all",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return GitDaemon { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("git daemon did not listen on 127.0.0.1:{port}");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The original build, as a CI job would run it: BuildKit (in the buildkit builder image, run directly
/// under the nested profile's capabilities and seccomp profile, on the host's network to reach the git
/// server and the base image's registry) builds `dockerfile` of the git context `context` with mode=max
/// provenance into an OCI archive, which skopeo publishes as `published` (index, image and attestation
/// manifest, digests kept). Returns the index digest.
fn build_and_publish(
    context: &str,
    dockerfile: &str,
    published: &str,
    upstream: &common::upstream::TlsRegistry,
) -> String {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("upstream-ca.pem"), &upstream.ca_pem).unwrap();
    let script = format!(
        "set -e\nexport HOME=/tmp\nreprod-buildkitd\n\
         SOURCE_DATE_EPOCH=0 docker buildx build --builder default --network host --provenance=mode=max \
         --file {dockerfile} --output type=oci,dest=/out/image.tar,name={published},rewrite-timestamp=true \
         {context}\n"
    );
    let seccomp = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = nested_docker_run(seccomp.path());
    cmd.args([
        "--userns=host",
        "--network",
        "host",
        "--add-host",
        &format!("{}:127.0.0.1", upstream.name),
        "-e",
        "SSL_CERT_FILE=/out/upstream-ca.pem",
        "-v",
        &format!("{}:/out", out.path().display()),
        debian_buildkit_image(),
        "sh",
        "-c",
        &script,
    ]);
    sh(&mut cmd);
    sh(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", out.path().join("image.tar").display()),
        &format!("docker://{published}"),
    ]));
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{published}"),
        ])
        .output()
        .unwrap();
    assert!(raw.status.success());
    reprod::oci::sha256_bytes(&raw.stdout)
}

/// The platform manifest an index names (its first entry: the image; the second is the attestation).
fn platform_manifest(repository: &str, index: &str) -> String {
    let raw = sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repository}@{index}"),
    ]));
    let index: Value = serde_json::from_str(&raw).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What both scenarios start from: a second registry serving the base image as `base:1` under its own
/// name, the hello project with a Dockerfile `FROM` it by tag (and a dated one), served by `git daemon`.
struct Scenario {
    upstream: common::upstream::TlsRegistry,
    repo: Repo,
    git: GitDaemon,
    /// Where originals are published, in the local registry.
    repository: String,
}

impl Scenario {
    fn new(name: &str) -> Scenario {
        let upstream = common::upstream::TlsRegistry::start("registry.example.test");
        copy_image(
            &format!("docker://{}", builder_image()),
            &format!("docker://127.0.0.1:{}/base:1", upstream.port),
        );
        let repo = Repo::hello_with(|src| {
            for (name, run) in [
                ("Dockerfile", "cat /hello.txt > /copy.txt"),
                ("Dockerfile.dated", "date +%s%N > /f"),
            ] {
                std::fs::write(
                    src.join(name),
                    format!(
                        "FROM {}/base:1\nCOPY hello.txt /hello.txt\nRUN {run}\n",
                        upstream.host()
                    ),
                )
                .unwrap();
            }
            // The same build from a subdirectory, as Docker Official Images build (`#ref:dir`).
            std::fs::create_dir(src.join("app")).unwrap();
            // Bytes of its own: a rebuild of the wrong directory cannot match.
            std::fs::write(src.join("app/hello.txt"), "hello from app/\n").unwrap();
            std::fs::copy(src.join("Dockerfile"), src.join("app/Dockerfile")).unwrap();
        });
        let git = GitDaemon::serve(repo.dir.path());
        let repository = format!("127.0.0.1:5000/reprod-test/{name}-{}", std::process::id());
        Scenario {
            upstream,
            repo,
            git,
            repository,
        }
    }

    /// Builds `dockerfile` as the original build did and publishes it as `tag`; the index digest.
    fn publish(&self, dockerfile: &str, tag: &str) -> String {
        self.publish_from("main", dockerfile, tag)
    }

    /// [`Scenario::publish`] of the git context `hello.git#fragment` (`main`, or `main:DIR`).
    fn publish_from(&self, fragment: &str, dockerfile: &str, tag: &str) -> String {
        let context = format!("git://127.0.0.1:{}/hello.git#{fragment}", self.git.port);
        build_and_publish(
            &context,
            dockerfile,
            &format!("{}:{tag}", self.repository),
            &self.upstream,
        )
    }

    /// The upstream's CA, written to `dir`, for `sandbox.network.upstream_roots`.
    fn upstream_roots(&self, dir: &Path) -> String {
        let ca = dir.join("upstream-ca.pem");
        std::fs::write(&ca, &self.upstream.ca_pem).unwrap();
        format!("[{:?}]", ca.display().to_string())
    }
}

#[test]
fn a_real_buildkit_build_is_rebuilt_from_its_attached_provenance_and_a_dated_one_differs() {
    let scenario = Scenario::new("buildkit-e2e");
    let Scenario {
        upstream,
        repo,
        repository,
        ..
    } = &scenario;
    let base_digest = builder_image().split_once('@').unwrap().1.to_string();
    let index = timed("BuildKit from a git context, run directly", || {
        scenario.publish("Dockerfile", "1")
    });
    let image = platform_manifest(repository, &index);

    let keys = tempfile::tempdir().unwrap();
    let roots = scenario.upstream_roots(keys.path());
    let reprod = |documents: &str| {
        let r = Reprod::new();
        let config = r.data.path().join("reprod.toml");
        std::fs::write(
            &config,
            format!(
                "[builders.buildkit]\nimage = {:?}\ndocuments = {documents:?}\n",
                debian_buildkit_image()
            ),
        )
        .unwrap();
        let mut r = r
            .with("REPROD_CONFIG", config.to_str().unwrap())
            .with("REPROD_IMAGES_INSECURE", "[\"127.0.0.1:5000\"]")
            .with("REPROD_SANDBOX_NETWORK_UPSTREAM_ROOTS", &roots);
        for (k, v) in network_holder_env() {
            r = r.with(k, &v);
        }
        r
    };
    let allow = format!("{}=127.0.0.1", upstream.host());
    let rebuild = |r: &Reprod, index: &str, network: bool| {
        let reference = format!("docker://{repository}@{index}");
        let mut args = vec!["rebuild", "--json"];
        if network {
            args.extend(["--network", "proxy", "--allow", &allow]);
        }
        args.push(reference.as_str());
        let out = r.run(&args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status.code().unwrap_or(-1),
            v,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    // BuildKit's provenance is unsigned: a builder for vouched documents only does not run it, and says so.
    let (code, v, stderr) = rebuild(&reprod("vouched"), &index, true);
    assert_eq!(v["status"], "unrebuildable", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "builder-not-granted");
    assert_eq!(code, 1);
    // Without the build network the base image cannot be had: said before anything runs.
    let (_, v, stderr) = rebuild(&reprod("any"), &index, false);
    assert_eq!(v["reason"], "needs-build-network", "{v:#}\n{stderr}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{}/base", upstream.host())),
        "{v:#}"
    );

    // Moved since: the tag the Dockerfile names now points elsewhere; the source policy still pins it to
    // the digest the provenance recorded.
    copy_image(
        &format!("docker://{}", debian_builder_image()),
        &format!("docker://127.0.0.1:{}/base:1", upstream.port),
    );
    let (code, v, stderr) = timed(
        "BuildKit from a git context, rebuilt from its provenance",
        || rebuild(&reprod("any"), &index, true),
    );
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    assert_eq!(v["subjects"][0]["digest"], image.as_str());
    assert_eq!(v["subjects"][0]["state"], "matched");
    assert_eq!(v["source"]["commit"], repo.commit.as_str(), "{v:#}");
    assert_eq!(v["steps"].as_array().unwrap().len(), 1);
    assert_eq!(v["steps"][0]["profile"], "nested");
    let from = v["steps_from"].as_str().unwrap();
    assert!(
        from.contains("1 named by tag and pinned by a source policy")
            && from.contains("oci-mediatypes=true,compression=gzip,rewrite-timestamp=true")
            && from.contains("the builder reported: dockerd 26."),
        "{from}"
    );
    let base_url = format!(
        "https://{}/v2/base/manifests/{base_digest}",
        upstream.host()
    );
    assert!(
        fetched_through_proxy(&v, &base_url),
        "the base pulled by its recorded digest: {:#}",
        v["network"]
    );

    // The dated build: its own original, published; the rebuild differs, and the diff names f.
    let dated = scenario.publish("Dockerfile.dated", "dated");
    let r = reprod("any")
        .with("REPROD_IMAGES_FETCH_ORIGINALS", "true")
        .with("REPROD_IMAGES_ORIGINALS_FROM", "[\"127.0.0.1:5000\"]");
    let (code, v, stderr) = rebuild(&r, &dated, true);
    assert_eq!(v["status"], "unreproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 1);
    assert!(
        explanation_names(&v, "f"),
        "the diff names f: {:#}\n{stderr}",
        v["subjects"]
    );
    assert!(orphan_containers().is_empty());
}

/// The service's way: a registry watcher finds the image BuildKit published (built from a subdirectory of
/// the git context, `#main:app`), reads the provenance from its attestation manifest, and a worker rebuilds
/// it with the BuildKit builder, through the build network the configuration grants, reading the exporter
/// options from the watched registry.
#[test]
fn a_watched_buildkit_image_is_rebuilt_by_the_daemon() {
    let scenario = Scenario::new("buildkit-watch");
    let index = scenario.publish_from("main:app", "Dockerfile", "1");
    let image = platform_manifest(&scenario.repository, &index);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("reprod.toml");
    let watched = scenario.repository.strip_prefix("127.0.0.1:5000/").unwrap();
    std::fs::write(
        &config,
        format!(
            "[builders.buildkit]\nimage = {:?}\ndocuments = \"any\"\n\n\
             [sandbox.network]\nmode = \"proxy\"\nallow = [\"{}=127.0.0.1\"]\nupstream_roots = {}\n\n\
             [[server.watch]]\nregistry = \"127.0.0.1:5000\"\nrepositories = [{watched:?}]\ninsecure = true\ninterval_secs = 1\n",
            debian_buildkit_image(),
            scenario.upstream.host(),
            scenario.upstream_roots(data.path()),
        ),
    )
    .unwrap();
    let holder = network_holder_env();
    let mut env: Vec<(&str, &str)> = vec![("REPROD_CONFIG", config.to_str().unwrap())];
    env.extend(holder.iter().map(|(k, v)| (*k, v.as_str())));
    let mut d = common::daemon::Daemon::start(data.path(), &env);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let (_, h) = d.request("GET", "/healthz", None, None);
        if h["queue"]["done"].as_u64() == Some(1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no verdict: {h}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    d.signal("-TERM");
    assert_eq!(d.wait_exit(std::time::Duration::from_secs(60)), Some(0));
    let store = reprod::store::Store::open(&data.path().join("store")).unwrap();
    let jobs = store.jobs_for_subject(&image).unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let v: Value =
        serde_json::from_str(store.verdict_json(&jobs[0]).unwrap().unwrap().get()).unwrap();
    assert_eq!(v["status"], "reproducible", "{v:#}");
    assert_eq!(v["subjects"][0]["digest"], image.as_str());
    assert_eq!(v["steps"][0]["profile"], "nested");
    assert!(orphan_containers().is_empty());
}
