//! The BuildKit source policy that pins every base image of a rebuild to the digest its provenance
//! recorded: a `FROM` by tag is converted to that tag at the recorded digest, so a tag that moved since
//! cannot change what is rebuilt. (Named build contexts would pin too, but BuildKit then rewrites the base
//! image's layers on export, and the image differs from one built by a plain `FROM`.)

use serde_json::{json, Value};

use crate::provenance::purl::DockerPurl;
use crate::provenance::BuildKitPlan;

/// `PolicyAction.CONVERT` of BuildKit's source policy (`sourcepolicy/pb`), as buildx reads the file.
const CONVERT: u8 = 2;

/// The docker images the build resolved (not the attestation's own tools), with their recorded digests.
pub(super) fn base_images(plan: &BuildKitPlan) -> Vec<(DockerPurl, Option<String>)> {
    plan.materials
        .iter()
        .filter(|m| m.not_an_input.is_none())
        .filter_map(|m| {
            let purl = DockerPurl::parse(&m.uri)?;
            let digest = m.digest.clone().or(purl.pinned.clone());
            Some((purl, digest))
        })
        .collect()
}

/// The policy (`EXPERIMENTAL_BUILDKIT_SOURCE_POLICY`) converting each base image the build asked for by
/// tag into that tag at its recorded digest; `None` when every base was already named by digest.
pub(super) fn pinning_policy(images: &[(DockerPurl, Option<String>)]) -> Option<Value> {
    let rules: Vec<Value> = images
        .iter()
        .filter(|(purl, _)| purl.pinned.is_none())
        .filter_map(|(purl, digest)| {
            let digest = digest.as_deref()?;
            let tagged = format!(
                "{}:{}",
                purl.repository(),
                purl.tag.as_deref().unwrap_or("latest")
            );
            Some(json!({
                "action": CONVERT,
                "selector": {"identifier": format!("docker-image://{tagged}")},
                "updates": {"identifier": format!("docker-image://{tagged}@{digest}")},
            }))
        })
        .collect();
    (!rules.is_empty()).then(|| json!({ "rules": rules }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::{BuildKitContext, BuildKitMode, Material};

    #[test]
    fn tags_are_pinned_to_the_recorded_digests_and_digests_left_alone() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let material = |uri: String, digest: String| Material {
            uri,
            digest: Some(digest),
            not_an_input: None,
        };
        let plan = BuildKitPlan {
            mode: BuildKitMode::Max,
            frontend: None,
            dockerfile: None,
            context: BuildKitContext::Local,
            args: Default::default(),
            platform: None,
            materials: vec![
                material(
                    "pkg:docker/alpine@latest?platform=linux%2Famd64".into(),
                    d('a'),
                ),
                material(
                    "pkg:docker/registry.example.test%3A5443/base@1?platform=linux%2Famd64".into(),
                    d('b'),
                ),
                material(format!("pkg:docker/golang@1.24?digest={}", d('c')), d('c')),
                material("git://127.0.0.1/repo.git#main".into(), d('e')),
                Material {
                    uri: "pkg:docker/docker/buildkit-syft-scanner@stable-1".into(),
                    digest: Some(d('f')),
                    not_an_input: Some("the SBOM scanner".into()),
                },
            ],
            source_date_epoch: None,
            missing: Vec::new(),
            context_dir: String::new(),
            dockerfile_dir: String::new(),
        };
        let images = base_images(&plan);
        assert_eq!(images.len(), 3, "docker images the build resolved only");
        let policy = pinning_policy(&images).unwrap();
        assert_eq!(
            policy,
            json!({"rules": [
                {"action": 2,
                 "selector": {"identifier": "docker-image://docker.io/library/alpine:latest"},
                 "updates": {"identifier": format!("docker-image://docker.io/library/alpine:latest@{}", d('a'))}},
                {"action": 2,
                 "selector": {"identifier": "docker-image://registry.example.test:5443/base:1"},
                 "updates": {"identifier": format!("docker-image://registry.example.test:5443/base:1@{}", d('b'))}},
            ]})
        );
        assert_eq!(pinning_policy(&images[2..]), None);
    }
}
