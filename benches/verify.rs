//! Parse + verify throughput, documents per second on one core (`cargo bench --bench verify`).
//!
//! Three numbers from the same run: a DSSE envelope signed with an ECDSA P-256 key, a keyless Sigstore
//! bundle (certificate chain, SET, inclusion proof and checkpoint), and the baseline — one bare OpenSSL
//! ECDSA P-256 verification of the same DSSE PAE, the floor any verifier pays. Ratios are against it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reprod::examine::examine;
use reprod::provenance::container::NoBlobs;
use reprod::trust::{PublicKey, TrustMaterial, TrustedRoot};

fn corpus(rel: &str) -> PathBuf {
    let root = std::env::var_os("REPROD_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/provenance"),
        PathBuf::from,
    );
    root.join(rel)
}

/// Runs `f` repeatedly for about `budget` after a warm-up; returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..50 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..20 {
            f();
        }
        n += 20;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_secs_f64(
        std::env::var("REPROD_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    let max = 16 << 20;

    let dsse_file = "danbev-learning-crypto/tekton-chains-taskrun-slsa-v0.2.dsse.json";
    let dsse = std::fs::read(corpus(dsse_file)).expect("corpus");
    let key_pem = std::fs::read(corpus(
        "danbev-learning-crypto/tekton-chains-cosign-signing-key.pub",
    ))
    .expect("key");
    let keyed = TrustMaterial {
        keys: vec![PublicKey::from_pem(&key_pem, "bench").expect("key")],
        ..Default::default()
    };
    let bundle_file =
        "slsa-verifier/gha_generic-v2.1.0-binary-linux-amd64-workflow_dispatch.intoto.jsonl";
    let bundle = std::fs::read(corpus(bundle_file)).expect("corpus");
    let root_json = std::fs::read(corpus("sigstore-python/trustedroot.v1.json")).expect("root");
    let keyless = TrustMaterial {
        roots: vec![TrustedRoot::from_json(&root_json, "bench").expect("root")],
        ..Default::default()
    };

    let once = |doc: &[u8], m: &TrustMaterial| {
        let f = examine(doc, max, &NoBlobs, m).expect("parses");
        assert!(
            f.iter().all(|f| f.verification.is_verified()),
            "the bench documents verify"
        );
    };
    once(&dsse, &keyed);
    once(&bundle, &keyless);

    // Baseline: the bare signature check on the same bytes.
    let env: serde_json::Value = serde_json::from_slice(&dsse).expect("json");
    let envelope = reprod::trust::dsse::Envelope::from_value(&env, "bench").expect("envelope");
    let pae = envelope.pae();
    let sig = envelope.signatures[0].sig.clone();
    let pkey = openssl::pkey::PKey::public_key_from_pem(&key_pem).expect("key");
    let baseline = rate(budget, || {
        let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &pkey)
            .expect("verifier");
        assert!(v.verify_oneshot(&sig, &pae).expect("verify"));
    });
    let dsse_rate = rate(budget, || once(&dsse, &keyed));
    let bundle_rate = rate(budget, || once(&bundle, &keyless));

    println!(
        "parse + verify, one core, {:.1} s per measurement",
        budget.as_secs_f64()
    );
    println!("baseline  bare OpenSSL ECDSA P-256 verify   {baseline:>10.0} /s   1.00");
    println!(
        "dsse      {dsse_file:<42} {dsse_rate:>10.0} /s   {:.2} of baseline",
        dsse_rate / baseline
    );
    println!(
        "keyless   {:<42} {bundle_rate:>10.0} /s   {:.2} of baseline",
        "gha_generic-v2.1.0 bundle v0.3 (SET+proof)",
        bundle_rate / baseline
    );
}
