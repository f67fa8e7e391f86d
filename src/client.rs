//! The one HTTP client of the `/v1` API, typed by [`crate::wire`]: `reprod status`, `reprod submit`, the
//! remote worker (`reprod worker`) and the tests use it. Error answers come back as
//! [`ClientError::Api`] with their [`ErrorCode`]. Blocking (ureq); async callers use `spawn_blocking`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::{
    Completion, CompletionAnswer, DigestAnswer, ErrorBody, ErrorCode, Health, Heartbeat,
    HeartbeatAnswer, JobView, Lease, QueuedJob, QueuedJobs, SubmitAnswer,
};

/// Largest answer read from a server (a verdict with its history).
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: the server answered {status} {code}: {message}")]
    Api {
        url: String,
        status: u16,
        code: ErrorCode,
        message: String,
    },
    #[error("{url}: {why} (is `reprod serve` running there? set --server or REPROD_SERVER)")]
    Transport { url: String, why: String },
    #[error("{url}: unexpected answer: {why}")]
    Protocol { url: String, why: String },
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// True when the server refused the credentials (401, 403): trying again will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ClientError::Api {
                status: 401 | 403,
                ..
            }
        )
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl Client {
    /// `base` is the server's URL (`http://127.0.0.1:8780`, or `https://` verified against the system's CA
    /// store); `token` is a submit token (to submit) or a worker token (for the worker protocol).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/');
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(120));
        if base.starts_with("https://") {
            let tls = native_tls::TlsConnector::new()
                .map_err(|e| ClientError::Usage(format!("setting up TLS: {e}")))?;
            builder = builder.tls_connector(std::sync::Arc::new(tls));
        } else if !base.starts_with("http://") {
            return Err(ClientError::Usage(format!(
                "server URL {base:?} must start with http:// or https://"
            )));
        }
        Ok(Client {
            base: base.to_string(),
            agent: builder.build(),
            token,
        })
    }

    /// The server's URL, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The page of job `id` on this server (an absolute URL).
    pub fn job_page(&self, id: &str) -> String {
        const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b':')
            .remove(b'.')
            .remove(b'_')
            .remove(b'-');
        format!(
            "{}/jobs/{}",
            self.base,
            percent_encoding::utf8_percent_encode(id, KEPT)
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token(&self, what: &str) -> Result<&str, ClientError> {
        self.token
            .as_deref()
            .ok_or_else(|| ClientError::Usage(format!("{what} needs a token")))
    }

    /// The answer's body, or the error it stands for. `Ok(None)` for `204 No Content`.
    fn answer(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        match result {
            Ok(r) if r.status() == 204 => Ok(None),
            Ok(r) => body_bytes(r).map(Some).map_err(|e| ClientError::Transport {
                url: url.into(),
                why: e.to_string(),
            }),
            Err(ureq::Error::Status(status, r)) => {
                let body = body_bytes(r).unwrap_or_default();
                let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
                    Ok(b) => (b.error.code, b.error.message),
                    // Not reprod's answer (a proxy's page, say): no code to go by.
                    Err(_) => (ErrorCode::from_name("unknown"), "(no message)".to_string()),
                };
                Err(ClientError::Api {
                    url: url.into(),
                    status,
                    code,
                    message,
                })
            }
            Err(e) => Err(ClientError::Transport {
                url: url.into(),
                why: e.to_string(),
            }),
        }
    }

    fn parse<T: DeserializeOwned>(url: &str, body: Option<Vec<u8>>) -> Result<T, ClientError> {
        let body = body.ok_or_else(|| ClientError::Protocol {
            url: url.into(),
            why: "no content".into(),
        })?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            url: url.into(),
            why: format!("not the expected JSON: {e}"),
        })
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let body = self.answer(&url, self.agent.get(&url).call())?;
        Self::parse(&url, body)
    }

    /// POSTs JSON with the token; `Ok(None)` for `204 No Content`.
    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Option<T>, ClientError> {
        let url = self.url(path);
        let token = self.token("the worker protocol")?;
        let request = self
            .agent
            .post(&url)
            .set("authorization", &format!("Bearer {token}"));
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Usage(e.to_string()))?;
        let request = request.set("content-type", "application/json");
        match self.answer(&url, request.send_bytes(&bytes))? {
            None => Ok(None),
            some => Self::parse(&url, some).map(Some),
        }
    }

    /// The verdicts naming `digest`, those under `image` deciding first; `None` when the server has none.
    pub fn verdicts_for(
        &self,
        digest: &str,
        image: Option<&str>,
    ) -> Result<Option<DigestAnswer>, ClientError> {
        let query = image
            .map(|i| format!("?image={}", encode(i)))
            .unwrap_or_default();
        match self.get(&format!("/v1/verdicts/{digest}{query}")) {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Api {
                code: ErrorCode::UnknownDigest,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A job's signed attestation (`vsa-passed`, `provenance`, …), the bytes exactly as served.
    pub fn attestation(&self, job: &str, kind: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.url(&format!("/v1/jobs/{job}/attestations/{kind}"));
        let body = self.answer(&url, self.agent.get(&url).call())?;
        Ok(body.unwrap_or_default())
    }

    /// `GET /healthz`: the server is up, with its queue's counts.
    pub fn health(&self) -> Result<Health, ClientError> {
        self.get("/healthz")
    }

    pub fn job(&self, id: &str) -> Result<JobView, ClientError> {
        self.get(&format!("/v1/jobs/{id}"))
    }

    /// Submits a provenance document (with a submit token); the answer names the job it became.
    pub fn submit(&self, document: &[u8]) -> Result<SubmitAnswer, ClientError> {
        let url = self.url("/v1/provenance");
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
        let body = self.answer(&url, request.send_bytes(document))?;
        Self::parse(&url, body)
    }

    /// `GET /v1/admin/jobs` (with an admin token): a page of the queue's jobs, in `state` when given.
    pub fn admin_jobs(
        &self,
        state: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<QueuedJobs, ClientError> {
        let mut query = vec![format!("limit={limit}")];
        for (key, value) in [("state", state), ("after", after)] {
            if let Some(v) = value {
                query.push(format!("{key}={}", encode(v)));
            }
        }
        self.admin("GET", &format!("/v1/admin/jobs?{}", query.join("&")))
    }

    /// `POST /v1/admin/jobs/{id}/{action}` (`cancel` with a reason, or `retry`) with an admin token.
    pub fn admin_job(
        &self,
        id: &str,
        action: &str,
        reason: Option<&str>,
    ) -> Result<QueuedJob, ClientError> {
        let mut path = format!("/v1/admin/jobs/{}/{action}", encode(id));
        if let Some(r) = reason {
            path.push_str(&format!("?reason={}", encode(r)));
        }
        self.admin("POST", &path)
    }

    /// `POST /v1/admin/recheck?target=` with an admin token: the recheck job queued.
    pub fn admin_recheck(&self, target: &str) -> Result<QueuedJob, ClientError> {
        self.admin(
            "POST",
            &format!("/v1/admin/recheck?target={}", encode(target)),
        )
    }

    /// An operator's request (no body) with the admin token, and its JSON answer.
    fn admin<T: DeserializeOwned>(&self, method: &str, path: &str) -> Result<T, ClientError> {
        let token = self.token.as_deref().ok_or_else(|| {
            ClientError::Usage(
                "the operator's commands need a token: --token or REPROD_ADMIN_TOKEN (one of the server's server.admin_tokens)".into(),
            )
        })?;
        let url = self.url(path);
        let request = self
            .agent
            .request(method, &url)
            .set("authorization", &format!("Bearer {token}"));
        let body = self.answer(&url, request.call())?;
        Self::parse(&url, body)
    }

    /// A job to rebuild (with a worker token), or `None` when there is none.
    pub fn lease(&self) -> Result<Option<Lease>, ClientError> {
        self.post("/v1/worker/lease", &serde_json::Map::new())
    }

    pub fn heartbeat(&self, beat: &Heartbeat) -> Result<HeartbeatAnswer, ClientError> {
        let url = self.url("/v1/worker/heartbeat");
        self.post("/v1/worker/heartbeat", beat)?
            .ok_or(ClientError::Protocol {
                url,
                why: "no content".into(),
            })
    }

    pub fn complete(&self, completion: &Completion) -> Result<CompletionAnswer, ClientError> {
        let url = self.url("/v1/worker/complete");
        self.post("/v1/worker/complete", completion)?
            .ok_or(ClientError::Protocol {
                url,
                why: "no content".into(),
            })
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
    crate::oci::digest::parse_compared(digest).map_err(|m| {
        ClientError::Usage(format!(
            "{reference:?}: give IMAGE@sha256:<hex> or sha256:<hex>; {m}"
        ))
    })?;
    Ok((name, digest))
}

/// `text` as one URL path segment or query value.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
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
