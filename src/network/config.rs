//! `[sandbox.network]`: whether a job's steps get reprod's build proxy, what it lets through, and the
//! grants made to some images only (`[[sandbox.network.rules]]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AllowList, Limits};

/// How a step reaches the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Loopback only, nothing beyond it: the build fetches nothing.
    #[default]
    None,
    /// Loopback only, with reprod's recording proxy on `127.0.0.1:3128` as the one way out.
    Proxy,
    /// As `proxy`, but nothing is fetched: the proxy serves only what a named earlier rebuild fetched,
    /// from the cache (`reprod rebuild --network replay --replay-from VERDICT`).
    Replay,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Proxy => "proxy",
            NetworkMode::Replay => "replay",
        }
    }
}

impl std::str::FromStr for NetworkMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(NetworkMode::None),
            "proxy" => Ok(NetworkMode::Proxy),
            "replay" => Ok(NetworkMode::Replay),
            other => Err(format!(
                "{other:?} is not a network mode (none, proxy, replay)"
            )),
        }
    }
}

/// The `[sandbox.network]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// The mode of every job no rule below grants another.
    pub mode: NetworkMode,
    /// What the proxy lets through (syntax in [`super::allow`]); empty refuses everything.
    pub allow: Vec<String>,
    /// Requests and tunnels per job.
    pub max_requests: u64,
    /// Bytes a job may receive through the proxy.
    pub max_bytes: u64,
    pub connect_timeout_secs: u64,
    /// The image that holds a job's network namespace (pinned by digest), and its command, which must
    /// wait forever: Kubernetes' pause image (`/pause`) or busybox (`sleep 2147483647`).
    pub holder_image: String,
    pub holder_command: Vec<String>,
    /// Grants for some images: the first rule naming a subject of the document decides its mode and
    /// allow-list instead of the two above.
    pub rules: Vec<NetworkRule>,
    /// End the build's TLS with a CA made for the job, so that HTTPS exchanges are seen, checked by URL
    /// and recorded by digest; the build is given the CA. Hosts in `tunnel_only` pass through as bytes.
    pub intercept_tls: bool,
    /// Also mount the bundle of this host's roots and the job's CA over the image's own system bundle
    /// (`/etc/ssl/certs/ca-certificates.crt`, `/etc/ssl/cert.pem`), for tools that read only those.
    /// Off by default: a build that copies the system bundle into its output would then copy the job's
    /// CA, and its digest would differ because of this rebuilder. With it off, the steps find the CA
    /// through SSL_CERT_FILE and friends only.
    pub overlay_system_roots: bool,
    /// Hosts (`host`, `*.domain`) whose TLS is never intercepted: recorded by host, port and bytes only.
    pub tunnel_only: Vec<String>,
    /// Let registry pulls by tag through (each recorded as an unpinned input); refused by default: a
    /// rebuild pulls what the provenance pinned, by digest.
    pub allow_tag_pulls: bool,
    /// PEM files of roots the proxy trusts for upstreams, beside this host's.
    pub upstream_roots: Vec<std::path::PathBuf>,
    /// The content-addressed cache of fetched bodies (`<data_dir>/network-cache`), least recently used
    /// going first beyond this size.
    pub cache_bytes: u64,
    /// In `replay` mode, what may be served: set by `reprod rebuild --replay-from`, never by the file.
    #[serde(skip)]
    pub replay: Option<super::ReplaySet>,
}

/// A network grant for images whose name matches `images`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkRule {
    /// Glob patterns over subject names (`registry.example/team/*`).
    pub images: Vec<String>,
    pub mode: NetworkMode,
    pub allow: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        let limits = Limits::default();
        NetworkConfig {
            mode: NetworkMode::None,
            allow: Vec::new(),
            max_requests: limits.max_requests,
            max_bytes: limits.max_bytes,
            connect_timeout_secs: limits.connect_timeout.as_secs(),
            holder_image: String::new(),
            holder_command: vec!["/pause".to_string()],
            rules: Vec::new(),
            cache_bytes: 10 << 30,
            intercept_tls: true,
            overlay_system_roots: false,
            tunnel_only: Vec::new(),
            allow_tag_pulls: false,
            upstream_roots: Vec::new(),
            replay: None,
        }
    }
}

/// What one job's steps get on the network.
#[derive(Debug, Clone, PartialEq)]
pub struct JobGrant {
    pub mode: NetworkMode,
    /// In `replay` mode: what may be served.
    pub replay: Option<super::ReplaySet>,
    /// The allow-list as configured (recorded in the verdict as written).
    pub allow: Vec<String>,
    /// Which rule granted it (its image patterns), or `None` for `[sandbox.network]` itself.
    pub rule: Option<Vec<String>>,
    /// The image patterns of a rule that names the document's subjects but was not applied, because
    /// the trust policy does not vouch for the document (the grant is then `none`).
    pub withheld: Option<Vec<String>>,
}

impl NetworkConfig {
    /// Fails with the option at fault: a bad mode, allow-list entry, limit, glob or holder.
    pub fn validate(&self) -> Result<(), String> {
        AllowList::parse(&self.allow).map_err(|e| format!("sandbox.network.allow: {e}"))?;
        if self.max_requests == 0 || self.max_bytes == 0 || self.connect_timeout_secs == 0 {
            return Err(
                "sandbox.network.max_requests, max_bytes and connect_timeout_secs must be positive"
                    .into(),
            );
        }
        if self.mode == NetworkMode::Replay && self.replay.is_none() {
            return Err(
                "sandbox.network.mode: \"replay\" needs the rebuild to replay, so it is chosen \
                 for one rebuild: reprod rebuild --network replay --replay-from VERDICT.json"
                    .into(),
            );
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("sandbox.network.rules[{i}]");
            if rule.mode == NetworkMode::Replay {
                return Err(format!(
                    "{at}.mode: \"replay\" is chosen for one rebuild (--network replay --replay-from), not per image"
                ));
            }
            if rule.images.is_empty() {
                return Err(format!("{at}.images: a rule must name image patterns"));
            }
            if let Some(bad) = rule.images.iter().find(|p| glob::Pattern::new(p).is_err()) {
                return Err(format!("{at}.images: {bad:?} is not a glob pattern"));
            }
            AllowList::parse(&rule.allow).map_err(|e| format!("{at}.allow: {e}"))?;
        }
        if self.intercept_tls && !self.upstream_roots.is_empty() {
            super::tls::upstream_connector(&self.upstream_roots)
                .map_err(|e| format!("sandbox.network.upstream_roots: {e}"))?;
        }
        let needs_holder = self.mode != NetworkMode::None
            || self.rules.iter().any(|r| r.mode != NetworkMode::None);
        if needs_holder {
            self.holder()?;
        }
        Ok(())
    }

    /// The holder image and command, once a mode needs them.
    pub fn holder(&self) -> Result<reprod_sandbox::NetworkHolder, String> {
        if self.holder_image.is_empty() {
            return Err("sandbox.network.holder_image: the proxy mode needs an image that holds each \
                 job's network namespace, pinned by digest (e.g. Kubernetes' pause image with \
                 holder_command = [\"/pause\"], or a busybox image with [\"sleep\", \"2147483647\"])"
                .into());
        }
        let image = reprod_sandbox::PinnedImage::parse(&self.holder_image)
            .map_err(|e| format!("sandbox.network.holder_image: {e}"))?;
        if self.holder_command.is_empty() {
            return Err(
                "sandbox.network.holder_command: the holder needs a command that waits forever"
                    .into(),
            );
        }
        Ok(reprod_sandbox::NetworkHolder {
            image,
            command: self.holder_command.clone(),
        })
    }

    /// The first rule naming one of `images`, and which of them it names.
    pub fn rule_for<'a>(&self, images: &[&'a str]) -> Option<(&NetworkRule, Vec<&'a str>)> {
        let matches =
            |pattern: &str, name: &str| glob::Pattern::new(pattern).is_ok_and(|p| p.matches(name));
        self.rules.iter().find_map(|r| {
            let named: Vec<&str> = images
                .iter()
                .copied()
                .filter(|name| r.images.iter().any(|pat| matches(pat, name)))
                .collect();
            (!named.is_empty()).then_some((r, named))
        })
    }

    /// The grant for a document whose subjects are named `images`: the first rule naming one of them,
    /// or the section's own mode and allow-list. A rule applies only to a document the trust policy
    /// vouches for (`vouched`): the subject names are the document's own word, so a document nothing
    /// vouches for that names a rule's images gets no network at all, neither the rule's nor the
    /// section's.
    pub fn grant_for(&self, images: &[&str], vouched: bool) -> JobGrant {
        match self.rule_for(images).map(|(r, _)| r) {
            Some(r) if vouched => JobGrant {
                mode: r.mode,
                replay: None,
                allow: r.allow.clone(),
                rule: Some(r.images.clone()),
                withheld: None,
            },
            Some(r) => JobGrant {
                mode: NetworkMode::None,
                replay: None,
                allow: Vec::new(),
                rule: None,
                withheld: Some(r.images.clone()),
            },
            None => JobGrant {
                mode: self.mode,
                replay: self.replay.clone(),
                allow: self.allow.clone(),
                rule: None,
                withheld: None,
            },
        }
    }

    /// The per-job budget.
    pub fn limits(&self) -> Limits {
        Limits {
            max_requests: self.max_requests,
            max_bytes: self.max_bytes,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rule_naming_a_subject_decides_and_the_section_decides_the_rest() {
        let config = NetworkConfig {
            allow: vec!["deb.debian.org".into()],
            rules: vec![
                NetworkRule {
                    images: vec!["registry.example/team/*".into()],
                    mode: NetworkMode::Proxy,
                    allow: vec!["proxy.golang.org".into()],
                },
                NetworkRule {
                    images: vec!["registry.example/*".into()],
                    mode: NetworkMode::None,
                    allow: vec![],
                },
            ],
            ..NetworkConfig::default()
        };
        let team = config.grant_for(&["other/x", "registry.example/team/app"], true);
        assert_eq!(team.mode, NetworkMode::Proxy);
        assert_eq!(team.allow, vec!["proxy.golang.org".to_string()]);
        assert_eq!(team.rule, Some(vec!["registry.example/team/*".to_string()]));
        assert_eq!(team.withheld, None);
        assert_eq!(
            config.grant_for(&["registry.example/else"], true).mode,
            NetworkMode::None
        );
        let rest = config.grant_for(&["elsewhere/app"], true);
        assert_eq!((rest.mode, rest.rule), (NetworkMode::None, None));
        assert_eq!(rest.allow, vec!["deb.debian.org".to_string()]);
    }

    #[test]
    fn a_rule_says_which_of_the_names_it_names() {
        let config = NetworkConfig {
            rules: vec![NetworkRule {
                images: vec!["registry.example/team/*".into()],
                mode: NetworkMode::Proxy,
                allow: vec![],
            }],
            ..NetworkConfig::default()
        };
        let (_, named) = config
            .rule_for(&["attacker.example/x", "registry.example/team/app"])
            .unwrap();
        assert_eq!(named, ["registry.example/team/app"]);
        assert!(config.rule_for(&["attacker.example/x"]).is_none());
    }

    #[test]
    fn a_rule_is_applied_only_to_a_document_the_trust_policy_vouches_for() {
        let config = NetworkConfig {
            mode: NetworkMode::Proxy,
            allow: vec!["deb.debian.org".into()],
            rules: vec![NetworkRule {
                images: vec!["registry.example/team/*".into()],
                mode: NetworkMode::Proxy,
                allow: vec!["proxy.golang.org".into()],
            }],
            ..NetworkConfig::default()
        };
        // An unsigned document naming the team's image gets nothing: not the rule's allow-list, and not
        // the section's either (it cannot leave a rule's bounds by naming the rule's images).
        let forged = config.grant_for(&["registry.example/team/app"], false);
        assert_eq!(forged.mode, NetworkMode::None);
        assert!(forged.allow.is_empty() && forged.rule.is_none());
        assert_eq!(
            forged.withheld,
            Some(vec!["registry.example/team/*".to_string()])
        );
        // A document no rule names gets the section's grant, vouched for or not: the operator gave it to
        // every document.
        let other = config.grant_for(&["elsewhere/app"], false);
        assert_eq!(other.mode, NetworkMode::Proxy);
        assert_eq!(other.allow, vec!["deb.debian.org".to_string()]);
    }

    #[test]
    fn a_mode_that_needs_a_holder_is_refused_without_one_and_bad_entries_name_their_option() {
        let proxy = NetworkConfig {
            mode: NetworkMode::Proxy,
            ..NetworkConfig::default()
        };
        assert!(proxy.validate().unwrap_err().contains("holder_image"));
        let tagged = NetworkConfig {
            holder_image: "busybox:latest".into(),
            ..proxy.clone()
        };
        assert!(tagged.validate().unwrap_err().contains("holder_image"));
        let pinned = NetworkConfig {
            holder_image: format!("busybox@sha256:{}", "a".repeat(64)),
            ..proxy.clone()
        };
        assert_eq!(pinned.validate(), Ok(()));
        let bad_entry = NetworkConfig {
            allow: vec!["http://".into()],
            ..pinned.clone()
        };
        assert!(bad_entry
            .validate()
            .unwrap_err()
            .starts_with("sandbox.network.allow"));
        let bad_rule = NetworkConfig {
            rules: vec![NetworkRule {
                images: vec!["x".into()],
                mode: NetworkMode::None,
                allow: vec!["*".into()],
            }],
            ..pinned
        };
        assert!(bad_rule
            .validate()
            .unwrap_err()
            .starts_with("sandbox.network.rules[0].allow"));
        // Nothing needs a holder when nothing grants a network.
        assert_eq!(NetworkConfig::default().validate(), Ok(()));
    }
}
