//! Versions from labels, annotations and (last) image references. Nothing here panics on
//! any input: odd tags (`latest`, digests, `release-1.1-latest-daily`, registry ports,
//! distroless suffixes) yield `None` or the version they carry.

use serde_json::Value;

/// The tag of an image reference, if any: `host:5000/istio/pilot:1.20.1-distroless@sha256:…`
/// → `1.20.1-distroless`. A registry port is not a tag (the tag is after the last `/`).
pub fn image_tag(image: &str) -> Option<&str> {
    let no_digest = image.split('@').next().unwrap_or("");
    let last = no_digest.rsplit('/').next().unwrap_or("");
    let (_, tag) = last.split_once(':')?;
    let tag = tag.trim();
    (!tag.is_empty()).then_some(tag)
}

/// The repository name of an image without registry and tag: `host:5000/istio/pilot:1.2` →
/// `istio/pilot`; `docker.io/istio/pilot` → `istio/pilot`.
pub fn image_repository(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or("");
    let (path, last) = match no_digest.rsplit_once('/') {
        Some((p, l)) => (Some(p), l),
        None => (None, no_digest),
    };
    let name = last.split(':').next().unwrap_or("");
    let mut parts: Vec<&str> = path.map(|p| p.split('/').collect()).unwrap_or_default();
    // A first component with a dot or a colon, or `localhost`, is a registry host.
    if parts
        .first()
        .is_some_and(|h| h.contains('.') || h.contains(':') || *h == "localhost")
    {
        parts.remove(0);
    }
    parts.push(name);
    parts.join("/")
}

/// A semantic-ish version found in `s`: the first `N.N[.N]` run (optionally after `v`),
/// keeping a `-pre` suffix that is a pre-release (`-beta.1`, `-rc.0`, `-alpha.x`, `-dev`)
/// and dropping build flavours (`-distroless`, `-debug`, `-slim`). `None` when there is no
/// such run (`latest`, `sha-abcdef`, `master`).
pub fn semver_in(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let at_boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'v';
        if b[i].is_ascii_digit() && at_boundary {
            let start = i;
            let mut dots = 0;
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                if b[j] == b'.' {
                    if j + 1 >= b.len() || !b[j + 1].is_ascii_digit() {
                        break;
                    }
                    dots += 1;
                }
                j += 1;
            }
            if dots >= 1 {
                let mut v = s[start..j].to_string();
                let rest = &s[j..];
                for pre in ["-alpha", "-beta", "-rc", "-dev"] {
                    if let Some(r) = rest.strip_prefix(pre) {
                        let tail: String = r
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                            .collect();
                        v.push_str(pre);
                        v.push_str(tail.trim_end_matches('.'));
                        break;
                    }
                }
                return Some(v);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    None
}

/// A Linkerd release name in `s`: `stable-2.14.10`, `edge-24.8.2`, `enterprise-2.17.0`,
/// `version-2.18.0`, or a plain version (`2.16.1`, `v2.16.1` → `2.16.1`).
pub fn linkerd_version_in(s: &str) -> Option<String> {
    for channel in ["stable-", "edge-", "enterprise-", "version-"] {
        if let Some(pos) = s.find(channel) {
            let rest = &s[pos + channel.len()..];
            let num: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let num = num.trim_end_matches('.');
            if num.contains('.') {
                return Some(format!("{channel}{num}"));
            }
        }
    }
    semver_in(s)
}

/// Labels or annotations of an object, as a string map view.
pub fn meta_str<'a>(obj: &'a Value, field: &str, key: &str) -> Option<&'a str> {
    obj.get("metadata")?
        .get(field)?
        .get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Where a version came from (for the Mesh's condition message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub version: String,
    pub source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(image_tag("istio/pilot:1.20.1"), Some("1.20.1"));
        assert_eq!(
            image_tag("host:5000/istio/pilot:1.20.1-distroless"),
            Some("1.20.1-distroless")
        );
        assert_eq!(image_tag("host:5000/istio/pilot"), None);
        assert_eq!(image_tag("istio/pilot@sha256:abcd"), None);
        assert_eq!(
            image_tag("gcr.io/istio-release/pilot:1.12.0@sha256:ab"),
            Some("1.12.0")
        );
        assert_eq!(image_tag(""), None);
        assert_eq!(image_tag(":"), None);
        assert_eq!(image_tag("a:b:c/d"), None);
    }

    #[test]
    fn repositories() {
        assert_eq!(image_repository("host:5000/istio/pilot:1.2"), "istio/pilot");
        assert_eq!(image_repository("docker.io/istio/pilot"), "istio/pilot");
        assert_eq!(image_repository("pilot"), "pilot");
        assert_eq!(
            image_repository("cr.l5d.io/linkerd/controller:stable-2.14.10"),
            "linkerd/controller"
        );
        assert_eq!(image_repository("localhost/x/y@sha256:1"), "x/y");
    }

    #[test]
    fn versions() {
        assert_eq!(semver_in("1.20.1-distroless").as_deref(), Some("1.20.1"));
        assert_eq!(semver_in("v1.12.0").as_deref(), Some("1.12.0"));
        assert_eq!(semver_in("1.22.0-beta.1").as_deref(), Some("1.22.0-beta.1"));
        assert_eq!(semver_in("1.25-dev").as_deref(), Some("1.25-dev"));
        assert_eq!(semver_in("latest"), None);
        assert_eq!(
            semver_in("release-1.1-latest-daily").as_deref(),
            Some("1.1")
        );
        assert_eq!(semver_in("sha-1234abc"), None);
        assert_eq!(semver_in("istiod-1.20.1").as_deref(), Some("1.20.1"));
        assert_eq!(semver_in("1."), None);
        assert_eq!(semver_in("..1..2"), None);
        assert_eq!(semver_in(""), None);
        assert_eq!(semver_in("é1.2é").as_deref(), Some("1.2"));
        assert_eq!(
            linkerd_version_in("linkerd/cli stable-2.14.10").as_deref(),
            Some("stable-2.14.10")
        );
        assert_eq!(
            linkerd_version_in("edge-24.8.2").as_deref(),
            Some("edge-24.8.2")
        );
        assert_eq!(linkerd_version_in("v2.16.1").as_deref(), Some("2.16.1"));
        assert_eq!(linkerd_version_in("edge-"), None);
    }
}
