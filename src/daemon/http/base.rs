//! The base of the absolute URLs in answers: `server.public_url` when set; else, when the server listens on
//! every address (`0.0.0.0`, `[::]`, which no client can use), the `Host` the client sent, if it is a plain
//! `host[:port]`; else the address it listens on. Signed statements never use a `Host`: they are signed once
//! for everyone and carry `server.public_url` (`ServerConfig::base_url`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::config::ServerConfig;
use crate::daemon::shared::Shared;

/// `scheme://host[:port]`, without a trailing slash.
pub struct Base(pub String);

impl FromRequestParts<Arc<Shared>> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok());
        Ok(Base(answer_base(&shared.config.server, host)))
    }
}

/// See the module's comment.
pub fn answer_base(server: &ServerConfig, host: Option<&str>) -> String {
    if !server.public_url.is_empty() || !listens_everywhere(&server.listen) {
        return server.base_url();
    }
    match host.filter(|h| is_plain_host(h)) {
        Some(h) => format!("http://{h}"),
        None => server.base_url(),
    }
}

/// Whether `listen` is an unspecified address, which is no address to give anyone.
pub fn listens_everywhere(listen: &str) -> bool {
    listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_unspecified())
}

/// A DNS name or an IP address, with an optional port: nothing that could change a URL's path or scheme.
fn is_plain_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (host, Some(port)),
        _ => (h, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(listen: &str, public_url: &str) -> ServerConfig {
        ServerConfig {
            listen: listen.into(),
            public_url: public_url.into(),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn the_host_is_used_only_when_nothing_better_is_known_and_only_when_plain() {
        let everywhere = server("0.0.0.0:8780", "");
        assert_eq!(
            answer_base(&everywhere, Some("rebuilder.example:8780")),
            "http://rebuilder.example:8780"
        );
        assert_eq!(
            answer_base(&everywhere, Some("[::1]:8780")),
            "http://[::1]:8780"
        );
        for hostile in ["evil.example/x", "a@b", "x:99999", "a b", "", "h:"] {
            assert_eq!(
                answer_base(&everywhere, Some(hostile)),
                "http://0.0.0.0:8780",
                "{hostile:?}"
            );
        }
        assert_eq!(
            answer_base(&server("127.0.0.1:8780", ""), Some("other.example")),
            "http://127.0.0.1:8780"
        );
        assert_eq!(
            answer_base(
                &server("0.0.0.0:8780", "https://r.example/"),
                Some("other.example")
            ),
            "https://r.example"
        );
    }
}
