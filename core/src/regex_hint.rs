//! A hint for header regexes that look like they expect a substring match.
//!
//! SMI HTTPRouteGroup `headers` values are RE2 regexes matched against the **whole** header
//! value (as Envoy, Istio, Gateway API, Linkerd and App Mesh apply them; unlike `pathRegex`,
//! which is anchored at the start only): `user-agent: Firefox` matches only a User-Agent that
//! is exactly `Firefox`, never a browser's `Mozilla/5.0 ... Firefox/128.0`.
//!
//! The rule (docs/semantics.md, "Header regexes"), kept simple on purpose: a warning
//! (`SubstringRegex`) when the header is one whose values are long lists or free text —
//! [`LONG_VALUE_HEADERS`] — and its regex contains none of `^`, `$`, `.*`, `.+`. Such a regex
//! can only match one short, exact value, which is rarely what was meant. Writing `^R$`
//! keeps the exact match and silences the warning; `.*R.*` matches a substring.

/// Headers whose values are typically long (product lists, cookie lists, preference lists,
/// URLs), so a bare fragment is almost never the whole value. Lower case.
pub const LONG_VALUE_HEADERS: &[&str] = &[
    "user-agent",
    "cookie",
    "accept",
    "accept-language",
    "accept-encoding",
    "referer",
];

/// The warning text for header `name` with value regex `re`, or `None` when the regex is
/// fine (or the header is not one of [`LONG_VALUE_HEADERS`]). Call only for regexes that
/// compile.
pub fn substring_header_regex(name: &str, re: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    if re.is_empty() || !LONG_VALUE_HEADERS.contains(&name.as_str()) {
        return None;
    }
    if ["^", "$", ".*", ".+"].iter().any(|s| re.contains(s)) {
        return None;
    }
    Some(format!(
        "header regexes match the whole value: `{re}` matches only a {name} header that is \
         exactly that, not one containing it; write `.*{re}.*` for a substring, or `^{re}$` \
         to keep the exact match"
    ))
}

#[cfg(test)]
mod tests {
    use super::substring_header_regex as hint;

    #[test]
    fn bare_fragment_in_a_long_header_is_warned() {
        let w = hint("user-agent", "Firefox").unwrap();
        assert!(w.contains("`.*Firefox.*`"), "{w}");
        assert!(w.contains("`^Firefox$`"), "{w}");
        // Names are case-insensitive; a regex without anchors or wildcards counts too.
        assert!(hint("Cookie", "session=[a-z]+").is_some());
        assert!(hint("accept", "application/json").is_some());
        assert!(hint("referer", "example\\.com").is_some());
    }

    #[test]
    fn anchored_wildcarded_or_short_headers_are_not_warned() {
        for re in [
            ".*Firefox.*",
            "^Firefox$",
            "Mozilla.+",
            "(.*;)?type=insider(;.*)?",
        ] {
            assert_eq!(hint("user-agent", re), None, "{re}");
        }
        // Headers with short, exact values (and x-* headers) are left alone.
        assert_eq!(hint("x-tenant", "acme"), None);
        assert_eq!(hint("content-type", "application/json"), None);
        assert_eq!(hint("user-agent", ""), None);
    }
}
