//! Daemon intake of signed provenance, documents per second on one core (`cargo bench --bench ingest`).
//!
//! Each document is a distinct DSSE envelope (ECDSA P-256) over a Tekton statement. Baseline, measured in
//! the same run: parse + verify + normalize alone (`examine`); intake adds the trust decision, keeping the
//! document and a deduplicated, flushed enqueue, one flush each (the cost of acknowledging durably).

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use reprod::config::Config;
use reprod::daemon::intake::{ingest, Intake};
use reprod::daemon::Shared;
use reprod::provenance::container::NoBlobs;
use reprod::trust::{PublicKey, TrustMaterial};
use reprod_jobs::{QueueConfig, SledQueue};

fn main() {
    let n: usize = std::env::var("REPROD_BENCH_DOCS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve"))
            .expect("key"),
    )
    .expect("pkey");
    let public =
        PublicKey::from_pem(&key.public_key_to_pem().expect("pem"), "bench").expect("public");
    let docs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let statement = serde_json::json!({
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://tekton.dev/chains/provenance",
                "subject": [{"name": format!("registry.example/app-{i}"), "digest": {"sha256": format!("{i:064x}")}}],
                "predicate": {
                    "invocation": {"parameters": [], "recipe_uri": "task://bench", "builder.id": "bench"},
                    "recipe": {"steps": [{
                        "entryPoint": format!("#!/bin/sh\nmake build-{i}\n"),
                        "arguments": null,
                        "environment": {"container": "build", "image": format!("registry.example/builder@sha256:{:064x}", 7)},
                    }]},
                    "materials": [{"uri": "https://git.example/app", "digest": {"sha1": format!("{i:040x}")}}]
                }
            });
            let payload = serde_json::to_vec(&statement).expect("json");
            let pae = reprod::trust::dsse::pae("application/vnd.in-toto+json", &payload);
            let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).expect("signer");
            let sig = signer.sign_oneshot_to_vec(&pae).expect("sign");
            let b64 = base64::engine::general_purpose::STANDARD;
            serde_json::to_vec(&serde_json::json!({
                "payloadType": "application/vnd.in-toto+json",
                "payload": b64.encode(payload),
                "signatures": [{"keyid": "", "sig": b64.encode(sig)}]
            }))
            .expect("json")
        })
        .collect();
    let material = TrustMaterial {
        keys: vec![public],
        ..Default::default()
    };

    let start = Instant::now();
    for d in &docs {
        let f = reprod::examine::examine(d, 16 << 20, &NoBlobs, &material).expect("parses");
        assert!(f[0].verification.is_verified());
    }
    let baseline = n as f64 / start.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.trust.require_signature = true;
    let (signer, _) =
        reprod::attest::SigningKey::load_or_create(&dir.path().join("signing.key"), true)
            .expect("signing key");
    let shared = Shared::new(
        config,
        material,
        SledQueue::open(&dir.path().join("queue"), QueueConfig::default()).expect("queue"),
        reprod::store::Store::open(&dir.path().join("store")).expect("store"),
        signer,
    );
    let shared = Arc::new(shared);
    let start = Instant::now();
    for d in &docs {
        match ingest(&shared, d).expect("ingest") {
            Intake::Queued {
                duplicate_of: None, ..
            } => {}
            other => panic!("{other:?}"),
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("intake of {n} distinct signed documents, one core");
    println!("baseline  parse + verify + normalize        {baseline:>8.0} docs/s   1.00");
    println!("ingest    + trust decision, store, enqueue  {rate:>8.0} docs/s   {:.2} of baseline (2 flushes each)", rate / baseline);
}
