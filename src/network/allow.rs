//! The allow-list: what a step's build may fetch. Deny by default; an entry is one of
//!
//! - `host` or `*.domain`: that host (or any subdomain) on ports 80 and 443;
//! - `host:port`: that host on that port only;
//! - `1.2.3.4:port`, `[::1]:port`: that address (the only way to reach a loopback, link-local, private or
//!   unique-local address: a name never reaches one, whatever it resolves to);
//! - `host:port=ADDRESS`: that host on that port, connected at ADDRESS instead of what DNS says (as curl's
//!   `--resolve`): a registry or mirror the operator runs on a private or loopback address, reached under
//!   its own name (so TLS names it, and clients that never proxy loopback names still go through here);
//! - `http://host[:port]/path` or `https://…`: requests whose URL starts with it. Without TLS interception
//!   the path of an HTTPS request cannot be seen, so an `https://` entry opens a CONNECT tunnel only when it
//!   names a whole origin (no path).

use std::net::IpAddr;

/// Longest entry accepted.
const MAX_ENTRY: usize = 2048;
/// Most entries accepted.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allow-list entry {entry:?}: {why}")]
pub struct AllowListError {
    pub entry: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Exact(String),
    /// `*.example.com`: a subdomain of this (not the domain itself).
    Suffix(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    host: Host,
    /// `None`: 80 and 443.
    port: Option<u16>,
    /// For URL entries: the scheme and the path the URL must start with.
    url: Option<(String, String)>,
    /// `host:port=ADDRESS`: where the operator says the host is.
    at: Option<IpAddr>,
}

/// What an entry grants a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The entry names an address, not a name: that address may be special-purpose.
    pub names_address: bool,
    /// The address to connect to instead of resolving the name (`host:port=ADDRESS`).
    pub at: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

fn parse_host(text: &str) -> Result<Host, String> {
    if let Some(v6) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return v6
            .parse()
            .map(Host::Address)
            .map_err(|_| format!("{v6:?} is not an IPv6 address"));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Host::Address(ip));
    }
    let (suffix, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return Err(format!(
            "{text:?} is not a host name, `*.domain` or an address"
        ));
    }
    let name = name.to_ascii_lowercase();
    Ok(if suffix {
        Host::Suffix(name)
    } else {
        Host::Exact(name)
    })
}

/// `host`, `host:port`, `[v6]:port` → (host, port).
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let port_of = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port"))
    };
    if text.starts_with('[') {
        return match text.rsplit_once("]:") {
            Some((host, port)) => Ok((&text[..host.len() + 1], Some(port_of(port)?))),
            None => Ok((text, None)),
        };
    }
    match text.rsplit_once(':') {
        // A bare IPv6 address has colons but no port.
        Some(_) if text.parse::<IpAddr>().is_ok() => Ok((text, None)),
        Some((host, port)) => Ok((host, Some(port_of(port)?))),
        None => Ok((text, None)),
    }
}

impl Entry {
    fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_ENTRY || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "at most {MAX_ENTRY} characters, without spaces or control characters"
            ));
        }
        if let Some((scheme, rest)) = text.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err("a URL entry is http:// or https://".into());
            }
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if authority.contains('@') {
                return Err("a URL entry carries no credentials".into());
            }
            let (host, port) = split_port(authority)?;
            let host = parse_host(host)?;
            if matches!(host, Host::Suffix(_)) {
                return Err("a URL entry names one host, not `*.domain`".into());
            }
            let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
            return Ok(Entry {
                host,
                port: Some(port),
                url: Some((scheme, path.to_string())),
                at: None,
            });
        }
        let (text, at) = match text.split_once('=') {
            Some((entry, address)) => {
                let address = address.trim_start_matches('[').trim_end_matches(']');
                let ip = address
                    .parse::<IpAddr>()
                    .map_err(|_| format!("{address:?} after `=` is not an IP address"))?;
                (entry, Some(ip))
            }
            None => (text, None),
        };
        let (host, port) = split_port(text)?;
        let host = parse_host(host)?;
        if matches!(host, Host::Address(_)) && port.is_none() {
            return Err("an address entry names its port (`1.2.3.4:8080`, `[::1]:8080`)".into());
        }
        if at.is_some() && !(matches!(host, Host::Exact(_)) && port.is_some()) {
            return Err(
                "`=ADDRESS` pins one host name on one port: `registry.example:5443=127.0.0.1`"
                    .into(),
            );
        }
        Ok(Entry {
            host,
            port,
            url: None,
            at,
        })
    }

    fn host_matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        match &self.host {
            Host::Exact(name) => *name == host,
            Host::Suffix(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            Host::Address(ip) => bare.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.map_or(port == 80 || port == 443, |p| p == port)
    }

    fn grant(&self) -> Grant {
        Grant {
            // An address the operator wrote down is named as much as one in a bare address entry.
            names_address: matches!(self.host, Host::Address(_)) || self.at.is_some(),
            at: self.at,
        }
    }
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowListError> {
        if entries.len() > MAX_ENTRIES {
            return Err(AllowListError {
                entry: format!("({} entries)", entries.len()),
                why: format!("at most {MAX_ENTRIES} entries"),
            });
        }
        let entries = entries
            .iter()
            .map(|e| {
                Entry::parse(e.as_ref()).map_err(|why| AllowListError {
                    entry: e.as_ref().chars().take(120).collect(),
                    why,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A plain-HTTP request for `scheme://host:port/path…`.
    pub fn allows_request(&self, scheme: &str, host: &str, port: u16, path: &str) -> Option<Grant> {
        self.find(host, port, |s, prefix| {
            s == scheme && path.starts_with(prefix)
        })
    }

    /// A CONNECT tunnel to `host:port`: a host entry, or a URL entry naming a whole `https://` origin.
    pub fn allows_tunnel(&self, host: &str, port: u16) -> Option<Grant> {
        self.find(host, port, |s, prefix| s == "https" && prefix == "/")
    }

    /// A CONNECT that the proxy will intercept: any entry that can allow an HTTPS request to `host:port`
    /// (a host entry, or an `https://` URL entry of any path; each request is then checked by its URL).
    pub fn allows_origin(&self, host: &str, port: u16) -> Option<Grant> {
        self.find(host, port, |s, _| s == "https")
    }

    /// The first entry for `host:port` that is a host entry or a URL entry `url_ok` accepts.
    fn find(&self, host: &str, port: u16, url_ok: impl Fn(&str, &str) -> bool) -> Option<Grant> {
        self.entries
            .iter()
            .find(|e| {
                e.host_matches(host)
                    && e.port_matches(port)
                    && e.url.as_ref().is_none_or(|(s, prefix)| url_ok(s, prefix))
            })
            .map(Entry::grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).unwrap()
    }

    #[test]
    fn entries_grant_what_they_name_and_nothing_else() {
        let l = list(&[
            "deb.debian.org",
            "*.golang.org",
            "registry.example:5000",
            "http://files.example/pub/",
            "https://api.example",
            "127.0.0.1:8080",
        ]);
        let http = |h: &str, p: u16, path: &str| l.allows_request("http", h, p, path).is_some();
        assert!(http("deb.debian.org", 80, "/debian/x.deb"));
        assert!(
            http("DEB.debian.org.", 80, "/"),
            "names compare case-insensitively"
        );
        assert!(
            !http("deb.debian.org", 8080, "/"),
            "a bare host is ports 80 and 443"
        );
        assert!(!http("evil-deb.debian.org.attacker", 80, "/"));
        assert!(http("proxy.golang.org", 443, "/"));
        assert!(
            !http("golang.org", 443, "/"),
            "`*.domain` is its subdomains"
        );
        assert!(!http("xgolang.org", 443, "/"));
        assert!(http("registry.example", 5000, "/v2/"));
        assert!(!http("registry.example", 443, "/v2/"));
        assert!(http("files.example", 80, "/pub/a.tar"));
        assert!(!http("files.example", 80, "/private/a.tar"));
        assert!(l
            .allows_request("https", "files.example", 80, "/pub/")
            .is_none());
        assert!(l.allows_tunnel("api.example", 443).is_some());
        assert!(l.allows_tunnel("files.example", 443).is_none());
        let local = l.allows_request("http", "127.0.0.1", 8080, "/").unwrap();
        assert!(local.names_address);
        assert!(
            !l.allows_request("http", "deb.debian.org", 80, "/")
                .unwrap()
                .names_address
        );
        assert!(l.allows_tunnel("127.0.0.1", 8081).is_none());
        assert!(AllowList::default()
            .allows_tunnel("deb.debian.org", 443)
            .is_none());
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for (entry, why) in [
            ("ftp://x.example/", "http:// or https://"),
            ("https://user:pw@x.example/", "no credentials"),
            ("127.0.0.1", "names its port"),
            ("x.example:0", "not a port"),
            ("x.example:99999", "not a port"),
            ("bad_host!", "not a host name"),
            ("a b", "without spaces"),
            ("https://*.x.example/", "one host"),
        ] {
            let e = AllowList::parse(&[entry]).unwrap_err();
            assert!(e.to_string().contains(why), "{entry}: {e}");
        }
        assert!(AllowList::parse(&["[::1]:8080", "::1"]).is_err());
        assert!(AllowList::parse(&["[::1]:8080"])
            .unwrap()
            .allows_request("http", "[::1]", 8080, "/")
            .is_some());
    }

    #[test]
    fn a_pinned_entry_names_its_address_for_one_host_and_port() {
        let list = AllowList::parse(&["registry.example.test:5443=127.0.0.1"]).unwrap();
        let g = list
            .allows_origin("registry.example.test", 5443)
            .expect("the pinned host and port");
        assert_eq!(g.at, Some("127.0.0.1".parse().unwrap()));
        assert!(g.names_address);
        assert!(list.allows_origin("registry.example.test", 443).is_none());
        assert!(
            list.allows_origin("127.0.0.1", 5443).is_none(),
            "the address alone is not allowed"
        );
        for bad in [
            "registry.example.test=127.0.0.1",
            "*.example.test:443=127.0.0.1",
            "127.0.0.1:80=127.0.0.1",
            "registry.example.test:5443=localhost",
        ] {
            assert!(AllowList::parse(&[bad]).is_err(), "{bad} accepted");
        }
    }
}
