//! The status site as its readers use it: verdicts of every status, an image that regressed and an image
//! with a hostile name, then every page reachable from the dashboard walked in headless Chromium at phone
//! (390 px) and desktop (1280 px) widths, with a screenshot of each kept under `REPROD_ARTIFACTS_DIR`
//! (default `target/site-screenshots`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::daemon::{push_hello, reference, Daemon};
use common::*;
use serde_json::Value;

const EVIL: &str =
    "example.invalid/<script>document.body.setAttribute('data-pwned','yes')</script>";

/// Submits `doc` and waits for its verdict; returns the job id.
fn judged(d: &Daemon, doc: &Value, status: &str) -> String {
    let (code, v) = d.submit(doc);
    assert_eq!(code, 202, "{v}");
    let id = v["jobs"][0]["id"].as_str().unwrap().to_string();
    let done = d.wait_job(&id, "done", Duration::from_secs(300));
    assert_eq!(done["verdict"]["status"], status, "{done:#}");
    id
}

fn artifacts_dir() -> PathBuf {
    std::env::var_os("REPROD_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join("site-screenshots")
}

#[test]
fn every_page_is_reachable_readable_at_both_widths_and_inert() {
    let repo = Repo::hello();
    let digests = reference(&repo);
    let data = tempfile::tempdir().unwrap();
    let mut jobs: Vec<(&str, String)> = Vec::new();
    let evil_job;
    // An image in the local registry: rebuilt bit for bit, then a newer digest of it, published from a
    // build that writes random bytes, which its rebuild does not give (and which the job page explains).
    let pid = std::process::id();
    let hello_name = format!("127.0.0.1:5000/reprod-site-{pid}/hello");
    let hello_href = format!("/images/127.0.0.1:5000%2Freprod-site-{pid}%2Fhello");
    let noisy = NOISY_SCRIPT;
    let [original, _, _] = repo.reference_build(noisy);
    push_hello(&repo, &format!("reprod-site-{pid}/hello"), "v2");
    {
        let d = Daemon::start(
            data.path(),
            &[
                ("REPROD_IMAGES_FETCH_ORIGINALS", "true"),
                ("REPROD_IMAGES_ORIGINALS_FROM", "[\"127.0.0.1:5000\"]"),
                ("REPROD_IMAGES_INSECURE", "[\"127.0.0.1:5000\"]"),
            ],
        );
        let good = repo.provenance(
            vec![
                subject(&hello_name, &digests[0]),
                subject("hello.txt", &digests[2]),
            ],
            &format!("{HELLO_SCRIPT}# good\n"),
        );
        jobs.push(("reproducible", judged(&d, &good, "reproducible")));
        let newer = repo.provenance(vec![subject(&hello_name, &original)], noisy);
        jobs.push(("unreproducible", judged(&d, &newer, "unreproducible")));
        let broken = repo.provenance(
            vec![subject("example.invalid/broken", &digests[0])],
            "#!/bin/sh\necho compiling; echo 'error: it broke' >&2; exit 3\n",
        );
        jobs.push(("build-failed", judged(&d, &broken, "build-failed")));
        let unpinned = chains_provenance(
            vec![subject("example.invalid/unpinned", &digests[0])],
            HELLO_SCRIPT,
            "busybox:latest",
            &repo.url,
            &repo.commit,
        );
        jobs.push(("unrebuildable", judged(&d, &unpinned, "unrebuildable")));
        let evil = repo.provenance(
            vec![subject(EVIL, &digests[0])],
            &format!("{HELLO_SCRIPT}# evil\n"),
        );
        evil_job = judged(&d, &evil, "reproducible");
        // Queued while unsigned documents were accepted, judged after they no longer are.
    }
    let refused = repo.provenance(
        vec![subject("example.invalid/refused", &digests[0])],
        &format!("{HELLO_SCRIPT}# refused\n"),
    );
    let queued = {
        let d = Daemon::start(data.path(), &[("REPROD_SERVER_WORKERS", "0")]);
        let (code, v) = d.submit(&refused);
        assert_eq!(code, 202, "{v}");
        v["jobs"][0]["id"].as_str().unwrap().to_string()
    };
    let d = Daemon::start(data.path(), &[("REPROD_SERVER_ACCEPT_UNSIGNED", "false")]);
    let done = d.wait_job(&queued, "done", Duration::from_secs(120));
    assert_eq!(done["verdict"]["status"], "rejected", "{done:#}");
    jobs.push(("rejected", queued));

    // The image list: each name once with its newest digest's status; filters; a digest to its answer.
    let (code, images) = d.text("/images");
    assert_eq!(code, 200);
    for name in [
        hello_name.as_str(),
        "example.invalid/broken",
        "example.invalid/unpinned",
        "example.invalid/refused",
    ] {
        assert_eq!(
            images.matches(&format!(">{name}</a>")).count(),
            1,
            "{name} in\n{images}"
        );
    }
    assert!(
        images.contains("example.invalid/&#60;script&#62;") && !images.contains("<script>"),
        "{images}"
    );
    let (_, unrepro) = d.text("/images?status=unreproducible");
    assert!(
        unrepro.contains(&format!(
            ">{hello_name}</a> <span class=\"regression\">regression</span>"
        )),
        "{unrepro}"
    );
    assert!(!unrepro.contains("example.invalid/broken"), "{unrepro}");
    let (_, search) = d.text("/images?q=BROK");
    assert!(
        search.contains(">example.invalid/broken</a>") && !search.contains(&hello_name),
        "{search}"
    );
    let o = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &format!("{}/images?q={}", d.url, digests[0]),
        ])
        .output()
        .unwrap();
    let redirect = String::from_utf8_lossy(&o.stdout).into_owned();
    // The deciding verdict: the newest bit-for-bit rebuild of that digest (the hostile-named image's).
    assert_eq!(redirect, format!("303 {}/jobs/{evil_job}", d.url));
    assert_eq!(d.text("/images?status=bogus").0, 400);
    assert_eq!(d.text(&format!("/images?q={}", unbuilt_digest('9'))).0, 404);

    // The image page: each digest's status, the regression, the history strip.
    let (_, hello) = d.text(&hello_href);
    assert!(hello.contains("id=\"regression\""), "{hello}");
    assert!(
        hello.contains(&format!(
            "title=\"{}\">{}</code></td><td class=\"status reproducible\"",
            digests[0], digests[0]
        )),
        "{hello}"
    );
    assert!(
        hello.contains(&format!(
            "{}</code></td><td class=\"status unreproducible\"",
            original
        )),
        "{hello}"
    );
    assert_eq!(hello.matches("<rect ").count(), 2, "{hello}");
    let (_, broken) = d.text("/images/example.invalid%2Fbroken");
    assert!(!broken.contains("id=\"regression\""), "{broken}");
    // The feed says it too.
    let (_, feed) = d.text(&format!("/feed.atom?image={hello_name}"));
    assert!(
        feed.contains(&format!(
            "<title>regression: unreproducible: {hello_name}</title>"
        )),
        "{feed}"
    );
    // The job page of the failed build shows its log tail; a job of every status renders.
    let (_, differs) = d.text(&format!("/jobs/{}", jobs[1].1));
    assert!(
        differs.contains("<pre class=\"diff\">") && differs.contains("+built with "),
        "the unreproducible job's page shows no text diff:\n{differs}"
    );
    let (_, failed) = d.text(&format!("/jobs/{}", jobs[2].1));
    assert!(failed.contains("error: it broke"), "{failed}");

    // Chromium, in a namespace where only the daemon answers, from the dashboard, at both widths.
    let port: u16 = d.url.rsplit(':').next().unwrap().parse().unwrap();
    let out = artifacts_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let script = "PLAYWRIGHT_CORE=/var/lib/reprod-dev/playwright/node_modules/playwright-core \
                  timeout 240 node \"$1\" \"$2\" \"$3\" 390 1280";
    let browse = project_root().join("tests/support/browse.js");
    let o = common::browser::with_only_the_daemon(
        port,
        script,
        &[browse.to_str().unwrap(), &d.url, out.to_str().unwrap()],
    );
    assert!(
        o.status.success(),
        "browse.js: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let walked: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(walked["errors"], serde_json::json!([]), "{walked:#}");
    assert_eq!(
        walked["dialogs"],
        serde_json::json!([]),
        "a page ran a script: {walked:#}"
    );
    assert_eq!(
        walked["pwned"],
        serde_json::json!([]),
        "a page ran a script: {walked:#}"
    );
    let pages = walked["pages"].as_array().unwrap();
    let overflowing: Vec<String> = pages
        .iter()
        .filter(|p| p["scrollWidth"].as_u64() > p["clientWidth"].as_u64() || p["status"] != 200)
        .map(|p| {
            format!(
                "{} at {} px: {} wide, status {}",
                p["path"], p["width"], p["scrollWidth"], p["status"]
            )
        })
        .collect();
    assert!(
        overflowing.is_empty(),
        "pages wider than the window or not 200: {overflowing:#?}"
    );
    for width in [390, 1280] {
        let paths: Vec<&str> = pages
            .iter()
            .filter(|p| p["width"] == width)
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        let mut wanted = vec![
            "/".to_string(),
            "/images".to_string(),
            hello_href.clone(),
            "/images/example.invalid%2Fbroken".to_string(),
        ];
        wanted.extend(jobs.iter().map(|(_, id)| format!("/jobs/{id}")));
        for w in &wanted {
            assert!(
                paths.contains(&w.as_str()),
                "{w} not reachable from the dashboard at {width} px: {paths:#?}"
            );
        }
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with("/images/example.invalid%2F%3Cscript")),
            "the hostile image's page not reached at {width} px: {paths:#?}"
        );
    }
    // The set a reader looks at first, under names that say what they show.
    let curated = out.join("curated");
    std::fs::create_dir_all(&curated).unwrap();
    let mut wanted: Vec<(String, String)> = vec![
        ("/".into(), "dashboard".into()),
        ("/images".into(), "images".into()),
        (hello_href.clone(), "image-regressed".into()),
    ];
    wanted.extend(
        jobs.iter()
            .map(|(status, id)| (format!("/jobs/{id}"), format!("job-{status}"))),
    );
    for (path, name) in &wanted {
        for width in [390, 1280] {
            let shot = pages
                .iter()
                .find(|p| p["path"] == path.as_str() && p["width"] == width)
                .and_then(|p| p["shot"].as_str())
                .unwrap_or_else(|| panic!("no screenshot of {path} at {width} px"));
            std::fs::copy(shot, curated.join(format!("{name}-{width}.png"))).unwrap();
        }
    }
    eprintln!("screenshots of {} pages in {}", pages.len(), out.display());
}
