//! The registry client of the watcher: GETs bounded in bytes (per response and per poll), same-origin
//! redirects only, tags and digests checked and escaped before they go into a URL path, and every
//! manifest and blob fetched by digest checked against it.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::WatchConfig;
use crate::text::inert_line;
use crate::verdict::is_sha256;

pub(super) const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
/// Bytes fetched from one registry in one poll (tag lists, manifests, blobs).
pub const MAX_BYTES_PER_POLL: u64 = 256 << 20;
/// Same-origin redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;
/// What is escaped in one URL path segment: everything but letters, digits and `-._~:` (digests keep
/// their colon). Tags and digests are also checked against their grammar first.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Why a fetch or a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{url}: redirected to {location:?}, another host; not followed")]
    OffHost { url: String, location: String },
    #[error("{0}")]
    Invalid(String),
    #[error("this poll's budget of {MAX_BYTES_PER_POLL} bytes is spent; the rest waits for the next poll")]
    Budget,
    #[error("the store: {0}")]
    Store(String),
}

impl WatchError {
    /// Whether the whole poll stops (rather than only the image it happened for).
    pub(super) fn stops_poll(&self) -> bool {
        matches!(self, WatchError::Budget | WatchError::Store(_))
    }
}

/// A tag as the OCI distribution spec allows it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// One URL path segment, percent-escaped.
pub(super) fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// A repository name (`team/app`) as URL path segments.
pub(super) fn repo_path(repo: &str) -> String {
    repo.split('/').map(segment).collect::<Vec<_>>().join("/")
}

/// A response body and the digest the registry claims for it (`Docker-Content-Digest`).
pub(super) type Fetched = (Vec<u8>, Option<String>);

pub(super) struct Registry {
    agent: ureq::Agent,
    base: String,
    max_bytes: usize,
    /// Bytes this poll may still fetch.
    budget: Cell<u64>,
}

impl Registry {
    pub(super) fn new(target: &WatchConfig, max_bytes: usize) -> Result<Registry, WatchError> {
        let scheme = if target.insecure { "http" } else { "https" };
        // Redirects are followed by hand, to the same origin only.
        let mut builder = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .redirects(0);
        if !target.insecure {
            let tls = native_tls::TlsConnector::new()
                .map_err(|e| WatchError::Invalid(format!("TLS: {e}")))?;
            builder = builder.tls_connector(Arc::new(tls));
        }
        Ok(Registry {
            agent: builder.build(),
            base: format!("{scheme}://{}", target.registry),
            max_bytes,
            budget: Cell::new(MAX_BYTES_PER_POLL),
        })
    }

    /// GET `path` (already escaped); `None` for 404.
    pub(super) fn get(&self, path: &str, accept: &str) -> Result<Option<Fetched>, WatchError> {
        use std::io::Read;
        let mut url = format!("{}{path}", self.base);
        let fetch = |url: &str, message: String| WatchError::Fetch {
            url: url.to_string(),
            message,
        };
        for _ in 0..=MAX_REDIRECTS {
            let response = match self.agent.get(&url).set("Accept", accept).call() {
                Ok(r) => r,
                Err(ureq::Error::Status(404, _)) => return Ok(None),
                Err(e) => return Err(fetch(&url, e.to_string())),
            };
            if (300..400).contains(&response.status()) {
                let location = response.header("Location").unwrap_or_default();
                url = same_origin(&url, location).ok_or_else(|| WatchError::OffHost {
                    url: url.clone(),
                    location: location.to_string(),
                })?;
                continue;
            }
            let digest = response.header("Docker-Content-Digest").map(str::to_string);
            let left = self.budget.get();
            let cap = (self.max_bytes as u64).min(left);
            let mut bytes = Vec::new();
            response
                .into_reader()
                .take(cap + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| fetch(&url, e.to_string()))?;
            let got = bytes.len() as u64;
            if got > self.max_bytes as u64 {
                return Err(fetch(&url, format!("over {} bytes", self.max_bytes)));
            }
            if got > left {
                self.budget.set(0);
                return Err(WatchError::Budget);
            }
            self.budget.set(left - got);
            return Ok(Some((bytes, digest)));
        }
        Err(fetch(&url, format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// A manifest by tag or digest (checked against its grammar); by digest, the bytes must hash to it.
    pub(super) fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, String)>, WatchError> {
        if !(is_tag(reference) || is_sha256(reference)) {
            return Err(WatchError::Invalid(format!(
                "{repo}: {:?} is neither a tag nor a sha256 digest",
                inert_line(reference)
            )));
        }
        let path = format!("/v2/{}/manifests/{}", repo_path(repo), segment(reference));
        let Some((bytes, header)) = self.get(&path, MANIFEST_TYPES)? else {
            return Ok(None);
        };
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if reference.starts_with("sha256:") && actual != reference {
            return Err(WatchError::Invalid(format!(
                "{repo}@{reference}: the registry served bytes with digest {actual}"
            )));
        }
        if let Some(h) = header.filter(|h| *h != actual) {
            return Err(WatchError::Invalid(format!(
                "{repo}:{reference}: Docker-Content-Digest {:?} but the bytes are {actual}",
                inert_line(&h)
            )));
        }
        Ok(Some((bytes, actual)))
    }

    pub(super) fn blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>, WatchError> {
        if !is_sha256(digest) {
            return Err(WatchError::Invalid(format!(
                "{repo}: a layer digest {:?} that is not sha256:<hex>",
                inert_line(digest)
            )));
        }
        let path = format!("/v2/{}/blobs/{}", repo_path(repo), segment(digest));
        let (bytes, _) = self
            .get(&path, "*/*")?
            .ok_or_else(|| WatchError::Invalid(format!("{repo}: blob {digest} is missing")))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(WatchError::Invalid(format!(
                "{repo}: blob {digest} has digest {actual}"
            )));
        }
        Ok(bytes)
    }

    pub(super) fn tags(&self, repo: &str) -> Result<Vec<String>, WatchError> {
        let path = format!("/v2/{}/tags/list", repo_path(repo));
        let Some((list, _)) = self.get(&path, "application/json")? else {
            return Ok(Vec::new());
        };
        Ok(serde_json::from_slice::<Value>(&list)
            .ok()
            .and_then(|v| serde_json::from_value(v["tags"].clone()).ok())
            .unwrap_or_default())
    }
}

/// `location` (absolute or relative) resolved against `url`, if it stays on the same scheme, host and
/// port: a registry must not send the watcher to another host.
pub(super) fn same_origin(url: &str, location: &str) -> Option<String> {
    let from = url::Url::parse(url).ok()?;
    let to = from.join(location).ok()?;
    (to.origin() == from.origin()).then(|| to.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn tags_and_digests_are_checked_and_escaped() {
        for ok in ["v1", "latest", "1.2.3-rc_1", "_x", &"a".repeat(128)] {
            assert!(is_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "..",
            "a/b",
            "a?b",
            "a b",
            &"a".repeat(129),
            "ä",
        ] {
            assert!(!is_tag(bad), "{bad}");
        }
        assert_eq!(segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(segment("sha256:ab"), "sha256:ab");
        assert_eq!(repo_path("team/a b"), "team/a%20b");
    }

    #[test]
    fn redirects_stay_on_the_same_origin() {
        let base = "http://127.0.0.1:5000/v2/a/blobs/sha256:x";
        assert_eq!(
            same_origin(base, "/other/place").as_deref(),
            Some("http://127.0.0.1:5000/other/place")
        );
        assert_eq!(
            same_origin(base, "http://127.0.0.1:5000/x").as_deref(),
            Some("http://127.0.0.1:5000/x")
        );
        for elsewhere in [
            "http://127.0.0.1:5001/x",
            "https://127.0.0.1:5000/x",
            "http://localhost:5000/x",
            "//storage.example/x",
            "http://storage.example/x",
        ] {
            assert_eq!(same_origin(base, elsewhere), None, "{elsewhere}");
        }
    }

    /// A real HTTP exchange on 127.0.0.1: a same-origin redirect is followed, one to another port (another
    /// origin) is not, and nothing connects to it.
    #[test]
    fn a_redirect_to_another_host_is_not_followed() {
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let other_port = other.local_addr().unwrap().port();
        other.set_nonblocking(true).unwrap();
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let serving = std::thread::spawn(move || {
            for stream in server.incoming().take(3) {
                let mut stream = stream.unwrap();
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                reader.read_line(&mut line).unwrap();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let answer = if line.contains("/same") {
                    "HTTP/1.1 302 Found\r\nConnection: close\r\nLocation: /landed\r\nContent-Length: 0\r\n\r\n"
                        .to_string()
                } else if line.contains("/landed") {
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
                        .to_string()
                } else {
                    format!("HTTP/1.1 307 Temporary Redirect\r\nConnection: close\r\nLocation: http://127.0.0.1:{other_port}/stolen\r\nContent-Length: 0\r\n\r\n")
                };
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        let target = WatchConfig {
            registry: format!("127.0.0.1:{port}"),
            repositories: vec!["a".into()],
            insecure: true,
            interval_secs: 1,
        };
        let reg = Registry::new(&target, 1 << 20).unwrap();
        let (body, _) = reg.get("/same", "*/*").unwrap().unwrap();
        assert_eq!(body, b"ok");
        let err = reg.get("/elsewhere", "*/*").unwrap_err();
        assert!(matches!(err, WatchError::OffHost { .. }), "{err}");
        serving.join().unwrap();
        assert!(
            other.accept().is_err(),
            "the watcher connected to the other host"
        );
    }
}
