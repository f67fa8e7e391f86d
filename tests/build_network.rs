//! The build network end to end: real steps in the real engine, in their job's own network namespace,
//! reaching upstreams this test starts on loopback only through reprod's proxy.

mod common;

use std::time::Duration;

use common::daemon::Daemon;
use common::upstream::Upstream;
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A daemon's environment granting every job the proxy, with 127.0.0.1:`port` allowed.
fn proxy_daemon_env(port: u16) -> Vec<(&'static str, String)> {
    let mut env = network_holder_env();
    env.push(("REPROD_SANDBOX_NETWORK_MODE", "proxy".into()));
    env.push((
        "REPROD_SANDBOX_NETWORK_ALLOW",
        format!(r#"["127.0.0.1:{port}"]"#),
    ));
    env
}

fn reprod() -> Reprod {
    Reprod::with_network_holder()
}

/// A step that fetches `url` into the checkout as `lib.tar`, after running `probes`.
fn fetching_script(url: &str, probes: &str) -> String {
    format!(
        "#!/bin/sh\ncd $(workspaces.source.path)\n{probes}wget -q -O lib.tar {url} || exit 10\n"
    )
}

#[test]
fn a_download_through_the_proxy_is_reproducible_and_recorded_by_digest() {
    let tarball = b"a pinned dependency, fetched at build time\n".repeat(2000);
    let up = Upstream::start("127.0.0.1", tarball.clone());
    let url = format!("http://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("lib.tar", &sha256(&tarball))],
        &fetching_script(&url, ""),
    );
    let allow = format!("127.0.0.1:{}", up.port);
    let (code, v, stderr) =
        reprod().rebuild_with(&prov, &["--network", "proxy", "--allow", &allow]);
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    let net = &v["network"];
    assert_eq!(net["mode"], "proxy");
    assert_eq!(net["allow"], serde_json::json!([allow]));
    assert_eq!(net["proxy"], "http://127.0.0.1:3128");
    let exchanges = net["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), 1, "{net:#}");
    assert_eq!(exchanges[0]["method"], "GET");
    assert_eq!(exchanges[0]["url"], url.as_str());
    assert_eq!(exchanges[0]["status"], 200);
    assert_eq!(exchanges[0]["bytes"], tarball.len());
    assert_eq!(exchanges[0]["sha256"], sha256(&tarball).as_str());
    assert_eq!(
        up.requests(),
        vec![format!("GET /deps/lib-1.0.tar HTTP/1.1")]
    );
    assert!(orphan_containers().is_empty(), "{:?}", orphan_containers());
}

#[test]
fn a_host_not_on_the_allow_list_is_network_denied_and_never_reached() {
    let up = Upstream::start("127.0.0.1", b"never served".to_vec());
    let url = format!("http://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("lib.tar", &unbuilt_digest('d'))],
        &fetching_script(&url, ""),
    );
    // Something else is allowed; this upstream is not.
    let (code, v, stderr) =
        reprod().rebuild_with(&prov, &["--network", "proxy", "--allow", "deb.debian.org"]);
    assert_eq!(v["status"], "build-failed", "{v:#}\n{stderr}");
    assert_eq!(code, 1);
    assert_eq!(v["reason"], "network-denied");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(&url) && detail.contains("limit of this rebuilder"),
        "{detail}"
    );
    assert_eq!(v["subjects"][0]["state"], "not-compared");
    let refused = &v["network"]["exchanges"][0];
    assert_eq!(refused["url"], url.as_str());
    assert_eq!(refused["status"], 403);
    assert!(
        refused["refused"].as_str().unwrap().contains("allow-list"),
        "{refused}"
    );
    assert!(
        up.requests().is_empty(),
        "the upstream was reached: {:?}",
        up.requests()
    );
}

#[test]
fn a_recorded_rebuild_replays_offline_byte_for_byte_and_nothing_else() {
    let tarball = b"a dependency that will not be online tomorrow\n".repeat(3000);
    let up = Upstream::start("127.0.0.1", tarball.clone());
    let url = format!("http://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("lib.tar", &sha256(&tarball))],
        &fetching_script(&url, ""),
    );
    let r = reprod();
    let allow = format!("127.0.0.1:{}", up.port);
    let (_, first, stderr) = r.rebuild_with(&prov, &["--network", "proxy", "--allow", &allow]);
    assert_eq!(first["status"], "reproducible", "{first:#}\n{stderr}");
    let recorded = r.data.path().join("first-verdict.json");
    std::fs::write(&recorded, serde_json::to_vec(&first).unwrap()).unwrap();
    // The body is in the cache by its digest.
    let hex = &sha256(&tarball)["sha256:".len()..];
    let entry = r.data.path().join("network-cache").join(hex);
    assert_eq!(std::fs::read(&entry).unwrap(), tarball);

    // The upstream is gone: the same document rebuilds from the record alone.
    up.stop();
    let replay = [
        "--network",
        "replay",
        "--replay-from",
        recorded.to_str().unwrap(),
    ];
    let (code, again, stderr) = r.rebuild_with(&prov, &replay);
    assert_eq!(again["status"], "reproducible", "{again:#}\n{stderr}");
    assert_eq!(code, 0);
    assert_eq!(again["subjects"], first["subjects"]);
    let net = &again["network"];
    assert_eq!(net["mode"], "replay");
    assert_eq!(net["replayed_from"], recorded.to_str().unwrap());
    assert_eq!(net["exchanges"][0]["url"], url.as_str());
    assert_eq!(net["exchanges"][0]["sha256"], sha256(&tarball).as_str());
    assert_eq!(up.requests().len(), 1, "the replay reached the upstream");

    // A build that asks for something the record does not hold fails, naming it.
    let other = format!("http://127.0.0.1:{}/deps/lib-2.0.tar", up.port);
    let new_prov = repo.provenance(
        vec![subject("lib.tar", &sha256(&tarball))],
        &fetching_script(&other, ""),
    );
    let (_, v, stderr) = r.rebuild_with(&new_prov, &replay);
    assert_eq!(v["status"], "build-failed", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "network-denied");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(&other) && detail.contains("not in the record"),
        "{detail}"
    );

    // A damaged cache entry is never served whole as the recorded body.
    let mut damaged = tarball.clone();
    damaged[10] ^= 1;
    std::fs::write(&entry, &damaged).unwrap();
    let (_, v, stderr) = r.rebuild_with(&prov, &replay);
    assert_eq!(v["status"], "build-failed", "{v:#}\n{stderr}");
    let refused = v["network"]["exchanges"][0]["refused"]
        .as_str()
        .unwrap_or_default();
    assert!(refused.contains("damaged"), "{v:#}");

    // Replay without a record, or a record of a rebuild without a network, is an error before anything runs.
    let (code, _, stderr) = r.rebuild_with(&prov, &["--network", "replay"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--replay-from"), "{stderr}");
    let plain = r.data.path().join("plain.json");
    std::fs::write(&plain, br#"{"status": "reproducible"}"#).unwrap();
    let (code, _, stderr) = r.rebuild_with(
        &prov,
        &[
            "--network",
            "replay",
            "--replay-from",
            plain.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("no network record"), "{stderr}");
}

#[test]
fn an_https_download_is_intercepted_with_the_job_ca_and_recorded_by_url_and_digest() {
    use common::upstream::TlsUpstream;
    let tarball = b"a dependency served over https only\n".repeat(2500);
    let up = TlsUpstream::start("127.0.0.1", tarball.clone());
    let url = format!("https://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let repo = Repo::hello();
    // curl in the Debian image, trusting what the step was given (CURL_CA_BUNDLE: this host's roots and
    // the job's CA), through the proxy even to a loopback address (NO_PROXY lists the step's own).
    let script = format!(
        "#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n\
         test -s /etc/reprod/job-ca.crt\n\
         ! grep -qF \"$(sed -n 2p /etc/reprod/job-ca.crt)\" /etc/ssl/certs/ca-certificates.crt\n\
         curl -sSf --noproxy '' -o lib.tar {url}\n"
    );
    let prov = chains_provenance(
        vec![subject("lib.tar", &sha256(&tarball))],
        &script,
        debian_builder_image(),
        &repo.url,
        &repo.commit,
    );
    let roots = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(roots.path(), &up.ca_pem).unwrap();
    let r = reprod().with(
        "REPROD_SANDBOX_NETWORK_UPSTREAM_ROOTS",
        &format!(r#"["{}"]"#, roots.path().display()),
    );
    // Only a path prefix of the origin: checkable because the proxy sees inside the TLS.
    let allow = format!("https://127.0.0.1:{}/deps/", up.port);
    let (code, v, stderr) = r.rebuild_with(&prov, &["--network", "proxy", "--allow", &allow]);
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    let net = &v["network"];
    let fetched = &net["exchanges"][0];
    assert_eq!(fetched["url"], url.as_str(), "{net:#}");
    assert_eq!(fetched["status"], 200);
    assert_eq!(fetched["sha256"], sha256(&tarball).as_str());
    let ca = net["tls"]["ca_sha256"].as_str().unwrap();
    assert!(ca.starts_with("sha256:") && ca.len() == 71, "{net:#}");
    assert_eq!(
        up.requests(),
        vec!["GET /deps/lib-1.0.tar HTTP/1.1".to_string()]
    );

    // Without the upstream's root the proxy refuses the upstream, and says so.
    let (_, v, stderr) = reprod().rebuild_with(&prov, &["--network", "proxy", "--allow", &allow]);
    assert_eq!(v["status"], "build-failed", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "network-denied");
    assert!(
        v["detail"].as_str().unwrap().contains("is not trusted"),
        "{}",
        v["detail"]
    );
    assert_eq!(up.requests().len(), 1);
}

#[test]
fn a_push_lands_in_the_sink_is_compared_with_the_subject_and_goes_nowhere() {
    let repo = Repo::hello();
    let [hello, _, _] = repo
        .reference_build(&HELLO_SCRIPT.replace("$(workspaces.source.path)", "/workspace/source"));
    // Step 1 builds the layout in the workspace (busybox, as the reference did); step 2 moves it out of
    // the workspace and pushes it with skopeo to a registry name that resolves nowhere. The pushed
    // manifest is then the only output with the subject's digest.
    let step = |name: &str, image: &str, script: &str| {
        serde_json::json!({
            "entryPoint": script,
            "arguments": null,
            "environment": {"container": name, "image": image},
            "annotations": null
        })
    };
    let push = "#!/bin/sh\nset -e\ncd /workspace/source\nmv out /tmp/out\n\
                skopeo copy --preserve-digests oci:/tmp/out/hello docker://registry.example.test/team/app:1\n";
    let prov = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://tekton.dev/chains/provenance",
        "subject": [subject("registry.example.test/team/app", &hello)],
        "predicate": {
            "invocation": {"parameters": [], "recipe_uri": "task://test", "builder.id": "test"},
            "recipe": {"steps": [
                step("build", builder_image(), HELLO_SCRIPT),
                step("push", debian_builder_image(), push),
            ]},
            "materials": [{"uri": repo.url, "digest": {"revision": repo.commit}}]
        }
    });
    // Nothing upstream is allowed at all: the push needs nothing but the sink.
    let (code, v, stderr) = reprod().rebuild_with(&prov, &["--network", "proxy"]);
    assert_eq!(v["status"], "reproducible", "{v:#}\n{stderr}");
    assert_eq!(code, 0);
    let s = &v["subjects"][0];
    assert_eq!(s["state"], "matched", "{s}");
    // ... by the pushed image, the only output with that digest.
    let holding: Vec<&str> = v["outputs"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["digests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == hello.as_str())
        })
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(holding, vec!["registry-sink"], "{:#}", v["outputs"]);
    let net = &v["network"];
    assert_eq!(
        net["pushed"][0]["reference"], "registry.example.test/team/app:1",
        "{net:#}"
    );
    assert_eq!(net["pushed"][0]["digest"], hello.as_str());
    let exchanges = net["exchanges"].as_array().unwrap();
    assert!(
        exchanges.iter().any(|e| e["method"] == "PUT"
            && e["url"] == "https://registry.example.test/v2/team/app/manifests/1"
            && e["sink"] == true),
        "{exchanges:#?}"
    );
    // Every exchange was the sink's: nothing was forwarded, nothing refused.
    assert!(
        exchanges.iter().all(|e| e["sink"] == true),
        "{exchanges:#?}"
    );
}

/// A rule grants the proxy to the images it names, in documents the trust policy vouches for; every
/// other document keeps the section's `none`, and an unsigned document naming the rule's images gets
/// nothing (its subject names are only its own word).
#[test]
fn a_network_rule_grants_the_proxy_to_the_images_it_names_only() {
    let tarball = b"fetched only by the team's images\n".repeat(1000);
    let up = Upstream::start("127.0.0.1", tarball.clone());
    let url = format!("http://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let r = reprod();
    let (key, pem) = builder_key(r.data.path());
    let config = r.data.path().join("reprod.toml");
    std::fs::write(
        &config,
        format!(
            "[trust]\nkeys = [{:?}]\n\n[sandbox.network]\nmode = \"none\"\n\n[[sandbox.network.rules]]\n\
             images = [\"registry.example.test/team/*\"]\nmode = \"proxy\"\nallow = [\"127.0.0.1:{}\"]\n",
            pem.display().to_string(),
            up.port
        ),
    )
    .unwrap();
    let r = r.with("REPROD_CONFIG", config.to_str().unwrap());
    let signed = |statement: &serde_json::Value, name: &str| {
        let path = r.data.path().join(name);
        std::fs::write(&path, sign_envelope(statement, &key)).unwrap();
        path
    };
    let repo = Repo::hello();
    let script = fetching_script(&url, "");
    let team = repo.provenance(
        vec![
            subject("registry.example.test/team/app", &unbuilt_digest('a')),
            subject("lib.tar", &sha256(&tarball)),
        ],
        &script,
    );
    let (_, v, stderr) = r.rebuild_file(&signed(&team, "team.dsse.json"));
    assert_eq!(v["network"]["mode"], "proxy", "{v:#}\n{stderr}");
    assert_eq!(
        v["network"]["rule"],
        serde_json::json!(["registry.example.test/team/*"])
    );
    assert_eq!(
        v["network"]["exchanges"][0]["sha256"],
        sha256(&tarball).as_str()
    );
    let lib = v["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "lib.tar")
        .unwrap();
    assert_eq!(lib["state"], "matched", "{v:#}");
    assert_eq!(up.requests().len(), 1);
    // The same statement unsigned: it names the team's image, but nothing vouches for that name, so the
    // rule is not applied and the verdict says why the step had no network.
    let (_, v, stderr) = r.rebuild(&team);
    assert_eq!(v["status"], "build-failed", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "step-failed");
    assert!(v["network"].is_null(), "{v:#}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("registry.example.test/team/*") && detail.contains("was not applied"),
        "{detail}"
    );
    assert!(
        stderr.contains(
            "the build network rule for [\"registry.example.test/team/*\"] is not applied"
        ),
        "{stderr}"
    );
    assert_eq!(
        up.requests().len(),
        1,
        "an unsigned document naming the rule's images reached the upstream"
    );
    // Another team's image, signed: no rule names it, so no network.
    let other = repo.provenance(
        vec![
            subject("registry.example.test/other/app", &unbuilt_digest('a')),
            subject("lib.tar", &sha256(&tarball)),
        ],
        &script,
    );
    let (_, v, stderr) = r.rebuild_file(&signed(&other, "other.dsse.json"));
    assert_eq!(v["status"], "build-failed", "{v:#}\n{stderr}");
    assert_eq!(v["reason"], "step-failed");
    assert!(v["network"].is_null());
    assert_eq!(
        up.requests().len(),
        1,
        "a document no rule names reached the upstream"
    );
}

#[test]
fn without_a_network_grant_a_step_reaches_nothing_and_records_nothing() {
    let up = Upstream::start("127.0.0.1", b"never served".to_vec());
    let url = format!("http://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let repo = Repo::hello();
    let prov = repo.provenance(
        vec![subject("lib.tar", &unbuilt_digest('e'))],
        &fetching_script(&url, ""),
    );
    let (_, v, stderr) = reprod().rebuild(&prov);
    assert_eq!(v["status"], "build-failed", "{v:#}\n{stderr}");
    // No proxy was offered, so no refusal explains it: the build's own failure.
    assert_eq!(v["reason"], "step-failed");
    assert!(v["network"].is_null(), "{v:#}");
    assert!(up.requests().is_empty());
}

#[test]
fn the_allow_list_needs_the_proxy_mode_and_the_proxy_mode_needs_a_holder() {
    let repo = Repo::hello();
    let prov = repo.provenance(vec![subject("x", &unbuilt_digest('f'))], "#!/bin/sh\n");
    let (code, _, stderr) = reprod().rebuild_with(&prov, &["--allow", "deb.debian.org"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("add --network proxy"), "{stderr}");
    let (code, _, stderr) = Reprod::new().rebuild_with(&prov, &["--network", "proxy"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("sandbox.network.holder_image"), "{stderr}");
}

/// The daemon, with the proxy granted and one upstream allowed: a step probes what else it can reach,
/// then fetches; the verdict and the signed rebuild provenance say what it fetched and what was refused.
#[test]
fn from_a_step_only_the_allowed_upstream_is_reached_and_the_signed_provenance_names_it() {
    let tarball = b"fetched by the daemon's build\n".repeat(500);
    let up = Upstream::start("127.0.0.1", tarball.clone());
    let other = Upstream::start("127.0.0.2", b"a second loopback service".to_vec());
    let url = format!("http://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let data = tempfile::tempdir().unwrap();
    let env = proxy_daemon_env(up.port);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Daemon::start(data.path(), &extra);
    let daemon_port = d.url.rsplit(':').next().unwrap().to_string();
    // Each probe prints whether it got through and, if not, how wget failed; none may get through.
    // (Busybox's wget has no -T: it crashes on it, which would pass for "blocked".)
    let probes = format!(
        "p() {{ out=$(\"$@\" 2>&1 >/dev/null); rc=$?; if [ $rc = 0 ]; then echo \"REACHED $*\"; \
         else echo \"blocked rc=$rc $* :: $out\"; fi; }}\n\
         p wget -q -O - http://127.0.0.1:{daemon_port}/v1/health\n\
         p wget -q -O - http://127.0.0.2:{}/secret\n\
         p env -u http_proxy -u HTTP_PROXY wget -q -O - {url}\n\
         p env -u http_proxy -u HTTP_PROXY wget -q -O - http://127.0.0.1:{daemon_port}/v1/health\n\
         echo probes done; cat /proc/net/dev | tail -n +3 | cut -d: -f1\n",
        other.port
    );
    let repo = Repo::hello();
    let doc = repo.provenance(
        vec![subject("lib.tar", &sha256(&tarball))],
        &fetching_script(&url, &probes),
    );
    let (code, answer) = d.submit(&doc);
    assert_eq!(code, 202, "{answer}");
    let id = answer["jobs"][0]["id"].as_str().unwrap().to_string();
    let done = d.wait_job(&id, "done", Duration::from_secs(180));
    let verdict = &done["verdict"];
    assert_eq!(verdict["status"], "reproducible", "{done:#}");
    let tail = verdict["steps"][0]["log_tail"].as_str().unwrap();
    let blocked: Vec<&str> = tail.lines().filter(|l| l.starts_with("blocked ")).collect();
    assert_eq!(blocked.len(), 4, "{tail}");
    assert!(!tail.contains("REACHED"), "{tail}");
    // Through the proxy: its refusal; around it: nothing listens in the job's namespace.
    for (line, why) in
        blocked
            .iter()
            .zip(["403", "403", "Connection refused", "Connection refused"])
    {
        assert!(
            line.starts_with("blocked rc=1 ") && line.contains(why),
            "{line}"
        );
    }
    // Its only interface is loopback.
    let interfaces: Vec<&str> = tail
        .split("probes done")
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(interfaces, vec!["lo"], "{tail}");
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert_eq!(up.requests().len(), 1, "only the proxied fetch arrived");
    let exchanges = verdict["network"]["exchanges"].as_array().unwrap();
    let refused: Vec<&str> = exchanges
        .iter()
        .filter(|e| e["refused"].is_string())
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        vec![
            format!("http://127.0.0.1:{daemon_port}/v1/health"),
            format!("http://127.0.0.2:{}/secret", other.port)
        ],
        "{exchanges:#?}"
    );

    // The signed rebuild provenance: the fetch is a resolved dependency by URL and digest, the refusals
    // are byproducts, and the statement is valid to the in-toto-attestation package.
    let (status, envelope) = fetch_attestation(&d, &id);
    assert_eq!(status, 200);
    let payload: Value = {
        use base64::Engine;
        let e: Value = serde_json::from_slice(&envelope).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(e["payload"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let deps = payload["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let hex = sha256(&tarball)["sha256:".len()..].to_string();
    assert!(
        deps.iter()
            .any(|d| d["uri"] == url.as_str() && d["digest"]["sha256"] == hex.as_str()),
        "{deps:#?}"
    );
    let byproducts = payload["predicate"]["runDetails"]["byproducts"]
        .as_array()
        .unwrap();
    let denied: Vec<&Value> = byproducts
        .iter()
        .filter(|b| b["name"] == "network-denied")
        .collect();
    assert_eq!(denied.len(), 2, "{byproducts:#?}");
    assert_eq!(
        payload["predicate"]["buildDefinition"]["internalParameters"]["sandbox"]["network"]["mode"],
        "proxy"
    );
    let path = data.path().join("provenance-envelope.json");
    std::fs::write(&path, &envelope).unwrap();
    assert_valid_statements(&[&path]);
    assert!(orphan_containers().is_empty(), "{:?}", orphan_containers());
}

fn fetch_attestation(d: &Daemon, job: &str) -> (u16, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .arg(format!("{}/v1/jobs/{job}/attestations/provenance", d.url))
        .output()
        .unwrap();
    let text = out.stdout;
    let cut = text.iter().rposition(|b| *b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&text[cut + 1..]).parse().unwrap();
    (status, text[..cut].to_vec())
}

/// The daemon killed with SIGKILL while a step's download is half-way: the next daemon on the same data
/// directory sweeps the job's containers (its network holder among them), rebuilds the job, and the
/// cache holds the whole body and no partial one.
#[test]
fn a_kill_9_mid_download_leaves_nothing_a_restart_cannot_use() {
    let tarball = b"a download the daemon dies in the middle of\n".repeat(20_000);
    let up = Upstream::start_stalling("127.0.0.1", tarball.clone(), 1);
    let url = format!("http://127.0.0.1:{}/deps/lib-1.0.tar", up.port);
    let data = tempfile::tempdir().unwrap();
    let mut env = proxy_daemon_env(up.port);
    env.push(("REPROD_SERVER_LEASE_SECS", "5".into()));
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let repo = Repo::hello();
    let doc = repo.provenance(
        vec![subject("lib.tar", &sha256(&tarball))],
        &fetching_script(&url, ""),
    );
    let mut d = Daemon::start(data.path(), &extra);
    let first_pid = d.child.id();
    let (code, answer) = d.submit(&doc);
    assert_eq!(code, 202, "{answer}");
    let id = answer["jobs"][0]["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while up.requests().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never fetched"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Half the body has passed the proxy: the cache is writing it.
    std::thread::sleep(Duration::from_millis(500));
    d.signal("-KILL");
    d.wait_exit(Duration::from_secs(10));
    assert!(
        !containers_of(&[first_pid]).is_empty(),
        "the killed daemon left no container (the test did not catch the step)"
    );
    let partial: Vec<String> = std::fs::read_dir(data.path().join("network-cache"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        partial.len() == 1 && partial[0].starts_with("tmp-"),
        "the kill did not catch a body half-kept: {partial:?}"
    );

    let mut d = Daemon::start(data.path(), &extra);
    let done = d.wait_job(&id, "done", Duration::from_secs(180));
    assert_eq!(done["verdict"]["status"], "reproducible", "{done:#}");
    assert!(done["attempt"].as_u64().unwrap() >= 2, "{done:#}");
    assert_eq!(up.requests().len(), 2, "the retry fetched again, once");
    assert!(
        containers_of(&[first_pid]).is_empty(),
        "the killed daemon's containers are still there: {:?}",
        containers_of(&[first_pid])
    );
    let cache: Vec<String> = std::fs::read_dir(data.path().join("network-cache"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        cache,
        vec![sha256(&tarball)["sha256:".len()..].to_string()],
        "the cache holds the whole body, under its digest, and nothing half-written"
    );
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
}
