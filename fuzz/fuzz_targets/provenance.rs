//! Everything reprod does with an untrusted provenance document before a rebuild: JSON caps, container
//! decoding (DSSE, JSON Lines, bundles, Cloud Build, npm, cosign, rekor-cli), signature and Sigstore
//! verification with real keys and a real trust root, statement parsing and normalization.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use reprod::provenance::container::NoBlobs;
use reprod::trust::{PublicKey, TrustMaterial, TrustedRoot};

fn material() -> &'static TrustMaterial {
    static M: OnceLock<TrustMaterial> = OnceLock::new();
    M.get_or_init(|| {
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/provenance/");
        let read = |rel: &str| std::fs::read(format!("{corpus}{rel}")).expect("corpus file");
        TrustMaterial {
            keys: [
                "danbev-learning-crypto/tekton-chains-cosign-signing-key.pub",
                "rekor/intoto_multi_pub2.pem",
                "slsa-verifier/gcb-keys/global.key",
            ]
            .iter()
            .map(|k| PublicKey::from_pem(&read(k), *k).expect("key"))
            .collect(),
            roots: vec![TrustedRoot::from_json(&read("sigstore-python/trustedroot.v1.json"), "root").expect("root")],
            // Keyless bundles are verified all the way (identity waived), so every check is exercised.
            any_identity: true,
            ..TrustMaterial::default()
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(findings) = reprod::examine::examine(data, 1 << 20, &NoBlobs, material()) {
        let _ = reprod::examine::human("fuzz", &findings);
    }
});
