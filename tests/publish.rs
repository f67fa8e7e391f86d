//! Verdicts published where consumers look (`[publish]`), against the local registry: pushed as OCI 1.1
//! referrers (listed in the referrers tag, as this registry has no referrers API) and in cosign's `.att`
//! layout, retried while the image is not there yet, read back by skopeo and by oras-py, and verified by
//! securesystemslib with the server's public key.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{push_hello, reference, Daemon};
use common::*;
use serde_json::Value;

fn publishing_daemon(data: &Path) -> Daemon {
    Daemon::start(
        data,
        &[
            ("REPROD_PUBLISH_ENABLED", "true"),
            ("REPROD_PUBLISH_REGISTRIES", "[\"127.0.0.1:5000\"]"),
            ("REPROD_PUBLISH_INSECURE", "[\"127.0.0.1:5000\"]"),
            ("REPROD_PUBLISH_RETRY_BASE_SECS", "1"),
        ],
    )
}

/// Waits until the job's publication satisfies `done`.
fn wait_publication(d: &Daemon, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let p = d.job(id)["publication"].clone();
        if done(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "publication never {what}: {p:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn inspect_raw(reference: &str) -> Value {
    serde_json::from_str(&sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://127.0.0.1:5000/{reference}"),
    ])))
    .unwrap()
}

/// A reproducible verdict about an image not yet in the registry is pending with the reason and tried
/// again; once the image is pushed, every signed statement lands next to it as a referrer and in the
/// `.att` image, byte for byte as the API serves it, and verifies with the server's key in
/// securesystemslib. Names the registry is not configured for are skipped, with the reason, and not
/// retried.
#[test]
fn verdicts_are_pushed_as_referrers_and_cosign_attestations_and_verify_independently() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let name = format!("reprod-test/publish-{}", std::process::id());
    let image = format!("127.0.0.1:5000/{name}");
    let doc = repo.provenance(
        vec![
            subject(&image, &digests[0]),
            subject("hello.txt", &digests[2]),
        ],
        HELLO_SCRIPT,
    );
    let data = tempfile::tempdir().unwrap();
    let d = publishing_daemon(data.path());
    let (code, v) = d.submit(&doc);
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let done = d.wait_job(&id, "done", Duration::from_secs(180));
    assert_eq!(done["verdict"]["status"], "reproducible", "{done:#}");

    // Not in the registry yet: pending, saying so, and tried again with backoff.
    let p = wait_publication(&d, &id, "retried", |p| {
        p["attempts"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(p["state"], "pending", "{p:#}");
    let error = p["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{} is not in {image}", digests[0])),
        "{error}"
    );

    push_hello(&repo, &name, "v1");
    let p = wait_publication(&d, &id, "published", |p| p["state"] == "published");
    assert!(p.get("error").is_none(), "{p:#}");
    let pushed = &p["pushed"][0];
    assert_eq!(pushed["image"], format!("{image}@{}", digests[0]).as_str());
    assert_eq!(pushed["repository"], image.as_str());
    let skipped = p["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{p:#}");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not in publish.registries"),
        "{p:#}"
    );

    // What the API serves, per kind, is what the registry holds.
    let kinds: Vec<String> = done["record"]["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"vsa-passed".to_string()), "{kinds:?}");
    let served: Vec<Vec<u8>> = kinds
        .iter()
        .map(|k| {
            let o = Command::new("curl")
                .args(["-sf", &format!("{}/v1/jobs/{id}/attestations/{k}", d.url)])
                .output()
                .unwrap();
            assert!(o.status.success());
            o.stdout
        })
        .collect();
    let referrers = pushed["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), kinds.len(), "{p:#}");

    // skopeo: the referrer manifests by digest, the referrers tag and the .att image.
    let hex = digests[0].trim_start_matches("sha256:");
    for r in referrers {
        let m = inspect_raw(&format!("{name}@{}", r.as_str().unwrap()));
        assert_eq!(m["subject"]["digest"], digests[0].as_str(), "{m:#}");
        assert_eq!(m["artifactType"], "application/vnd.in-toto+json");
        assert_eq!(
            m["layers"][0]["mediaType"],
            "application/vnd.dsse.envelope.v1+json"
        );
    }
    let index = inspect_raw(&format!("{name}:sha256-{hex}"));
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        kinds.len(),
        "{index:#}"
    );
    let att = inspect_raw(&format!("{name}:sha256-{hex}.att"));
    assert_eq!(
        att["layers"].as_array().unwrap().len(),
        kinds.len(),
        "{att:#}"
    );
    assert!(att["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["annotations"]["predicateType"] == "https://slsa.dev/verification_summary/v1"));

    // oras-py reads the same, and securesystemslib verifies every envelope it got with the server's key.
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(python())
        .arg(project_root().join("tests/support/read_referrers.py"))
        .args([
            "127.0.0.1:5000",
            &name,
            &digests[0],
            out.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (_, keys) = d.request("GET", "/v1/keys", None, None);
    let keyid = keys["keys"][0]["keyid"].as_str().unwrap();
    let pem = out.path().join("key.pem");
    std::fs::write(&pem, keys["keys"][0]["pem"].as_str().unwrap()).unwrap();
    let mut got = Vec::new();
    for entry in read["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(read["att"].as_array().unwrap())
    {
        let path = entry["path"].as_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        assert!(
            served.contains(&bytes),
            "{path} is not an envelope the API serves"
        );
        got.push(bytes);
        let v = Command::new(python())
            .arg(project_root().join("tests/support/verify_envelope.py"))
            .args([path, pem.to_str().unwrap(), keyid])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&v.stdout).trim(),
            "verified",
            "{path}"
        );
    }
    for r in read["referrers"].as_array().unwrap() {
        assert_eq!(r["subject"], digests[0].as_str());
        assert_eq!(r["layerMediaType"], "application/vnd.dsse.envelope.v1+json");
    }
    // Every statement came back twice (referrer and .att), and nothing else did.
    assert_eq!(got.len(), 2 * kinds.len());
    for s in &served {
        assert_eq!(got.iter().filter(|g| *g == s).count(), 2);
    }
    // The job page says where it went.
    let (_, page) = d.text(&format!("/jobs/{id}"));
    assert!(
        page.contains(&format!(
            "<td id=\"published\">published to {image} (sha256-{hex}.att)"
        )),
        "{page}"
    );
}

/// Credentials come from the `auths` of the Docker config `publish.docker_config` names: a registry that
/// asks for them refuses the push without (the verdict waits, saying so), and takes it once they are
/// there (after a restart, from the retry the store kept).
#[test]
fn a_registry_that_asks_for_credentials_gets_them_from_the_docker_config() {
    use base64::Engine;
    let registry = common::registry::AuthRegistry::start("publisher", "s3cret-publisher-pass");
    let host = registry.host();
    let repo = Repo::hello();
    let digests = reference(&repo);
    let image = format!("{host}/reprod-test/auth-{}", std::process::id());
    let creds = format!("{}:{}", registry.user, registry.password);
    sh(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &format!(
            "oci:{}",
            repo.reference_checkout().join("out/hello").display()
        ),
        &format!("docker://{image}:v1"),
    ]));
    let data = tempfile::tempdir().unwrap();
    let docker_config = data.path().join("docker-config.json");
    std::fs::write(&docker_config, r#"{"auths": {}}"#).unwrap();
    let env = |registries: &str| {
        vec![
            ("REPROD_PUBLISH_ENABLED", "true".to_string()),
            ("REPROD_PUBLISH_REGISTRIES", registries.to_string()),
            ("REPROD_PUBLISH_INSECURE", registries.to_string()),
            ("REPROD_PUBLISH_RETRY_BASE_SECS", "1".to_string()),
            (
                "REPROD_PUBLISH_DOCKER_CONFIG",
                format!("{:?}", docker_config.display().to_string()),
            ),
        ]
    };
    let registries = format!("[{host:?}]");
    let id = {
        let vars = env(&registries);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let d = Daemon::start(data.path(), &vars);
        let (code, v) =
            d.submit(&repo.provenance(vec![subject(&image, &digests[0])], HELLO_SCRIPT));
        assert_eq!(code, 202, "{v}");
        let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
        d.wait_job(&id, "done", Duration::from_secs(120));
        let p = wait_publication(&d, &id, "refused", |p| p["error"].is_string());
        assert_eq!(p["state"], "pending", "{p:#}");
        assert!(
            p["error"].as_str().unwrap().contains("Not authorized"),
            "{p:#}"
        );
        id
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(&creds);
    std::fs::write(
        &docker_config,
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let vars = env(&registries);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Daemon::start(data.path(), &vars);
    let p = wait_publication(&d, &id, "published", |p| p["state"] == "published");
    let hex = digests[0].trim_start_matches("sha256:");
    let att: Value = serde_json::from_str(&sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{image}:sha256-{hex}.att"),
    ])))
    .unwrap();
    assert!(
        !att["layers"].as_array().unwrap().is_empty(),
        "{att:#} {p:#}"
    );
    // The secret is in no answer.
    assert!(!d.job(&id).to_string().contains(&registry.password));
}

/// A verdict that differs is published too: its FAILED summary next to the image, while its rebuild
/// provenance, which names the digest reprod built (no image anyone published), is skipped saying so.
#[test]
fn an_unreproducible_verdict_publishes_its_failed_summary_and_skips_what_has_no_image() {
    let repo = Repo::hello();
    let noisy = NOISY_SCRIPT;
    let [original, _, _] = repo.reference_build(noisy);
    let name = format!("reprod-test/publish-differs-{}", std::process::id());
    let image = format!("127.0.0.1:5000/{name}");
    push_hello(&repo, &name, "v1");
    let data = tempfile::tempdir().unwrap();
    let d = publishing_daemon(data.path());
    let (code, v) = d.submit(&repo.provenance(vec![subject(&image, &original)], noisy));
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let done = d.wait_job(&id, "done", Duration::from_secs(180));
    assert_eq!(done["verdict"]["status"], "unreproducible", "{done:#}");
    let p = wait_publication(&d, &id, "settled", |p| {
        p["state"] == "published" || p["state"] == "failed"
    });
    assert_eq!(p["state"], "published", "{p:#}");
    assert_eq!(
        p["pushed"][0]["image"],
        format!("{image}@{original}").as_str()
    );
    assert_eq!(
        p["pushed"][0]["referrers"].as_array().unwrap().len(),
        1,
        "{p:#}"
    );
    let skipped = p["skipped"].as_array().unwrap();
    assert!(
        skipped.iter().any(|s| s["reason"]
            .as_str()
            .unwrap()
            .contains("a digest reprod built that the document did not record")),
        "{p:#}"
    );
    let hex = original.trim_start_matches("sha256:");
    let att = inspect_raw(&format!("{name}:sha256-{hex}.att"));
    let layers = att["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{att:#}");
    assert_eq!(
        layers[0]["annotations"]["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
}
