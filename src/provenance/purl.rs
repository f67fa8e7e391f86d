//! Docker package URLs as BuildKit writes them for the images a build resolved
//! (`pkg:docker/alpine@3.20?digest=sha256:…&platform=linux%2Famd64`): the image they name, and the names a
//! Dockerfile's `FROM` finds them under.

use percent_encoding::percent_decode_str;

/// One image a BuildKit build resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerPurl {
    /// The familiar name, as BuildKit writes it (`alpine`, `ghcr.io/o/app`, `127.0.0.1:5000/base`).
    pub name: String,
    /// The tag the build asked for, when it asked for one.
    pub tag: Option<String>,
    /// The digest the `FROM` itself named (`?digest=`), when it named one.
    pub pinned: Option<String>,
    /// `os/arch[/variant]`, when recorded.
    pub platform: Option<String>,
}

impl DockerPurl {
    /// Parses `pkg:docker/NAMESPACE/NAME[@VERSION][?QUALIFIERS]`; `None` for anything else (a git or
    /// HTTP material, a malformed name).
    pub fn parse(uri: &str) -> Option<DockerPurl> {
        let rest = uri.strip_prefix("pkg:docker/")?;
        let (path, qualifiers) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let path = path.split('#').next().unwrap_or(path);
        let (name, version) = match path.rsplit_once('@') {
            Some((n, v)) => (n, Some(decode(v)?)),
            None => (path, None),
        };
        let name = name
            .split('/')
            .map(decode)
            .collect::<Option<Vec<_>>>()?
            .join("/");
        if !is_image_name(&name) {
            return None;
        }
        let mut pinned = None;
        let mut platform = None;
        for pair in qualifiers.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=')?;
            match key {
                "digest" => pinned = Some(decode(value)?),
                "platform" => platform = Some(decode(value)?),
                _ => {}
            }
        }
        // A version that is a digest is the pin itself (older BuildKit wrote `@sha256:…` there).
        let (tag, pinned) = match version {
            Some(v) if v.starts_with("sha256:") => (None, pinned.or(Some(v))),
            other => (other, pinned),
        };
        if tag
            .as_deref()
            .is_some_and(|t| t.is_empty() || t.len() > 128 || !t.bytes().all(is_tag_byte))
            || pinned
                .as_deref()
                .is_some_and(|d| !crate::oci::digest::is_sha256(d))
        {
            return None;
        }
        Some(DockerPurl {
            name,
            tag,
            pinned,
            platform,
        })
    }

    /// The repository in full (`docker.io/library/alpine`), for fetching and for image mirrors.
    pub fn repository(&self) -> String {
        let first = self.name.split('/').next().unwrap_or("");
        if first.contains(['.', ':']) || first == "localhost" {
            self.name.clone()
        } else if self.name.contains('/') {
            format!("docker.io/{}", self.name)
        } else {
            format!("docker.io/library/{}", self.name)
        }
    }

    /// The names the Dockerfile frontend looks a `FROM` up under among the build's named contexts: the
    /// familiar reference as written, `:latest` trimmed (`alpine`, `golang:1.24`,
    /// `golang:1.24@sha256:…`, `base@sha256:…`). Every form the recorded reference may have been written in
    /// is given; the frontend uses the one its `FROM` names.
    pub fn context_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let tagged = match self.tag.as_deref() {
            Some("latest") | None => self.name.clone(),
            Some(tag) => format!("{}:{tag}", self.name),
        };
        match &self.pinned {
            Some(digest) => {
                names.push(format!("{tagged}@{digest}"));
                if self.tag.as_deref() == Some("latest") {
                    names.push(format!("{}:latest@{digest}", self.name));
                }
            }
            None => names.push(tagged),
        }
        names
    }
}

fn decode(text: &str) -> Option<String> {
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Registry host (with port) and lowercase path components: what a `docker-image://` reference may hold,
/// and nothing a shell, a flag parser or a path could read otherwise.
fn is_image_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with('/')
        && !name.contains("//")
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:c5adecdb7b3f8c5ca3c88648a861882849cc8b02fed68ece31e25de88ad13418";

    #[test]
    fn buildkit_materials_name_their_image_and_the_from_it_answers() {
        let p = DockerPurl::parse(&format!(
            "pkg:docker/golang@1.24.1?digest={D}&platform=linux%2Famd64"
        ))
        .unwrap();
        assert_eq!(p.repository(), "docker.io/library/golang");
        assert_eq!(p.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(p.context_names(), vec![format!("golang:1.24.1@{D}")]);

        let p = DockerPurl::parse("pkg:docker/alpine@latest?platform=linux%2Famd64").unwrap();
        assert_eq!(p.context_names(), vec!["alpine".to_string()]);
        assert_eq!(p.pinned, None);

        // A registry with a port (BuildKit escapes the colon), pinned by digest only.
        let p = DockerPurl::parse(&format!(
            "pkg:docker/127.0.0.1%3A5000/reprod/busybox?digest={D}&platform=linux%2Famd64"
        ))
        .unwrap();
        assert_eq!(p.repository(), "127.0.0.1:5000/reprod/busybox");
        assert_eq!(
            p.context_names(),
            vec![format!("127.0.0.1:5000/reprod/busybox@{D}")]
        );
        assert_eq!(
            DockerPurl::parse("pkg:docker/docker/dockerfile@1")
                .unwrap()
                .repository(),
            "docker.io/docker/dockerfile"
        );
    }

    #[test]
    fn what_is_not_a_docker_image_name_is_refused() {
        for bad in [
            "git://127.0.0.1/repo.git#main",
            "pkg:docker/",
            "pkg:docker/a%20b@1",
            "pkg:docker/-rm@1",
            "pkg:docker/a/../b@1",
            "pkg:docker/alpine@1;id",
            "pkg:docker/alpine?digest=sha256:12",
            "pkg:docker/alpine@%ff",
        ] {
            assert_eq!(DockerPurl::parse(bad), None, "{bad}");
        }
    }
}
