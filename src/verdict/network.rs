//! What a rebuild's steps had of the network, as the verdict and the signed rebuild provenance state it.

use serde::{Deserialize, Serialize};

use crate::network::{Exchange, NetworkMode};

/// The build network of one rebuild: its grant, what the steps were given to use it, and every exchange
/// the proxy saw. Absent from a verdict whose steps had no network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub mode: NetworkMode,
    /// The allow-list, as configured.
    pub allow: Vec<String>,
    /// The image patterns of the `[[sandbox.network.rules]]` entry that granted it; `None` for the
    /// `[sandbox.network]` section itself (or `reprod rebuild --network`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Vec<String>>,
    /// In `replay` mode: the record the bodies were served from (a verdict file or job), and nothing was
    /// fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_from: Option<String>,
    /// The proxy as the steps were told of it (`HTTP_PROXY`, `HTTPS_PROXY` and their lower-case forms).
    pub proxy: String,
    /// `NO_PROXY` as the steps were given it.
    pub no_proxy: String,
    /// TLS interception, when on: the job's CA the steps were given, and what was not intercepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsRecord>,
    /// What the build pushed, caught by the job's registry sink (never forwarded): each is an output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pushed: Vec<crate::network::sink::Pushed>,
    /// Every request and tunnel, in the order the proxy received them.
    pub exchanges: Vec<Exchange>,
}

/// The job's CA and where the steps found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsRecord {
    /// `sha256:` of the CA certificate's DER.
    pub ca_sha256: String,
    /// Paths in the step containers holding the CA (with this host's roots, for the bundle paths).
    pub ca_paths: Vec<String>,
    /// Hosts whose TLS passed through as bytes.
    pub tunnel_only: Vec<String>,
}

impl NetworkRecord {
    /// The refused exchanges from index `from` on.
    pub fn refusals_since(&self, from: usize) -> impl Iterator<Item = &Exchange> {
        self.exchanges
            .iter()
            .skip(from)
            .filter(|e| e.refused.is_some())
    }
}

/// One sentence naming the refused requests (at most three, then how many more).
pub fn refused_sentence<'a>(refused: impl Iterator<Item = &'a Exchange>) -> Option<String> {
    let all: Vec<&Exchange> = refused.collect();
    if all.is_empty() {
        return None;
    }
    let named: Vec<String> = all
        .iter()
        .take(3)
        .map(|e| {
            format!(
                "{} {} ({})",
                e.method,
                crate::text::inert_line(&e.url),
                crate::text::inert_line(e.refused.as_deref().unwrap_or("refused"))
            )
        })
        .collect();
    let more = match all.len() {
        n if n > 3 => format!(" and {} more", n - 3),
        _ => String::new(),
    };
    Some(format!(
        "this rebuilder's network policy refused {}{more}",
        named.join("; ")
    ))
}
