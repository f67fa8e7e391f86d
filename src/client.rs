//! The HTTP client behind `reprod status` and `reprod submit`: a thin layer over the `/v1` API that turns
//! its JSON errors back into typed ones.

use std::time::Duration;

use serde_json::Value;

/// Largest answer read from a server (a verdict with its history).
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: the server answered {status} {code}: {message}")]
    Api {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{url}: {why} (is `reprod serve` running there? set --server or REPROD_SERVER)")]
    Transport { url: String, why: String },
    #[error("{url}: unexpected answer: {why}")]
    Protocol { url: String, why: String },
    #[error("{0}")]
    Usage(String),
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl Client {
    /// `base` is the server's URL (`http://127.0.0.1:8780`); `token` is needed only to submit.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Usage(format!(
                "server URL {base:?} must start with http:// or https://"
            )));
        }
        Ok(Client {
            base: base.to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout(Duration::from_secs(120))
                .build(),
            token,
        })
    }

    fn read(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let parse = |r: ureq::Response| -> Result<Value, String> {
            let body = body_bytes(r).map_err(|e| e.to_string())?;
            serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
        };
        match result {
            Ok(r) => parse(r).map_err(|why| ClientError::Protocol {
                url: url.into(),
                why,
            }),
            Err(ureq::Error::Status(status, r)) => {
                let body = parse(r).unwrap_or(Value::Null);
                Err(ClientError::Api {
                    url: url.into(),
                    status,
                    code: body["error"]["code"].as_str().unwrap_or("unknown").into(),
                    message: body["error"]["message"]
                        .as_str()
                        .unwrap_or("(no message)")
                        .into(),
                })
            }
            Err(e) => Err(ClientError::Transport {
                url: url.into(),
                why: e.to_string(),
            }),
        }
    }

    fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        self.read(&url, self.agent.get(&url).call())
    }

    /// The verdicts naming `digest` (`{digest, status, decided_by, latest, history, history_total}`), those
    /// under `image` deciding first; `None` when the server has none.
    pub fn verdicts_for(
        &self,
        digest: &str,
        image: Option<&str>,
    ) -> Result<Option<Value>, ClientError> {
        let query = image
            .map(|i| {
                format!(
                    "?image={}",
                    percent_encoding::utf8_percent_encode(i, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .unwrap_or_default();
        match self.get(&format!("/v1/verdicts/{digest}{query}")) {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Api { code, .. }) if code == "unknown-digest" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A job's signed attestation (`vsa`, `provenance`), the bytes exactly as served.
    pub fn attestation(&self, job: &str, kind: &str) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}/v1/jobs/{job}/attestations/{kind}", self.base);
        match self.agent.get(&url).call() {
            Ok(r) => body_bytes(r).map_err(|e| ClientError::Transport {
                url: url.clone(),
                why: e.to_string(),
            }),
            Err(e) => self.read(&url, Err(e)).map(|_| Vec::new()),
        }
    }

    pub fn job(&self, id: &str) -> Result<Value, ClientError> {
        self.get(&format!("/v1/jobs/{id}"))
    }

    /// Submits a provenance document; the answer lists the jobs it became.
    pub fn submit(&self, document: &[u8]) -> Result<Value, ClientError> {
        let url = format!("{}/v1/provenance", self.base);
        let Some(token) = &self.token else {
            return Err(ClientError::Usage(
                "submitting needs a token: --token or REPROD_TOKEN (one of the server's server.submit_tokens)".into(),
            ));
        };
        let request = self
            .agent
            .post(&url)
            .set("authorization", &format!("Bearer {token}"))
            .set("content-type", "application/octet-stream");
        self.read(&url, request.send_bytes(document))
    }
}

/// A response's body, at most [`MAX_RESPONSE_BYTES`].
fn body_bytes(r: ureq::Response) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut body = Vec::new();
    r.into_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut body)?;
    Ok(body)
}

/// `NAME@sha256:…` or `sha256:…` → (name, digest).
pub fn parse_reference(reference: &str) -> Result<(Option<&str>, &str), ClientError> {
    let (name, digest) = match reference.rsplit_once('@') {
        Some((name, digest)) if !name.is_empty() => (Some(name), digest),
        Some(_) => (None, &reference[1..]),
        None => (None, reference),
    };
    crate::daemon::api::parse_digest(digest).map_err(|m| {
        ClientError::Usage(format!(
            "{reference:?}: give IMAGE@sha256:<hex> or sha256:<hex>; {m}"
        ))
    })?;
    Ok((name, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_digest() {
        let d = format!("sha256:{}", "0".repeat(64));
        assert_eq!(parse_reference(&d).unwrap(), (None, d.as_str()));
        let r = format!("127.0.0.1:5000/app@{d}");
        assert_eq!(
            parse_reference(&r).unwrap(),
            (Some("127.0.0.1:5000/app"), d.as_str())
        );
        assert!(parse_reference("127.0.0.1:5000/app:latest").is_err());
        assert!(parse_reference("app@sha256:abc").is_err());
    }
}
