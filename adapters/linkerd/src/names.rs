//! Object names: valid DNS-1123 subdomains, deterministic, unique per (kind, namespace).

use std::collections::BTreeSet;

/// Longest generated name; leaves room for Linkerd's own derived names and labels.
const MAX_NAME: usize = 63;

/// Eight hex digits of FNV-1a 64: the stable suffix of shortened names.
pub use meshbridge_core::hash::short_hash;

/// Joins `parts` with `-` into a valid name: lower-case `[a-z0-9.-]`, starting and ending
/// alphanumerically, at most 63 characters (longer names keep a prefix plus a hash of the
/// whole, so distinct inputs stay distinct).
pub fn name(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let mut s: String = joined
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s = trim_edges(&s);
    if s.is_empty() {
        s = format!("mb-{}", short_hash(&joined));
    }
    if s.len() > MAX_NAME {
        let keep = MAX_NAME - 9;
        let prefix = trim_edges(&s[..keep.min(s.len())]);
        s = format!("{prefix}-{}", short_hash(&joined));
    }
    s
}

fn trim_edges(s: &str) -> String {
    s.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Hands out names, making each unique per (kind, namespace): a clash gets a hash suffix of
/// the distinguishing `key`. Deterministic because callers visit inputs in sorted order.
#[derive(Default)]
pub struct Namer {
    taken: BTreeSet<(String, String, String)>,
}

impl Namer {
    pub fn take(&mut self, kind: &str, namespace: &str, base: String, key: &str) -> String {
        let mut candidate = base.clone();
        let mut n = 0u32;
        while self
            .taken
            .contains(&(kind.into(), namespace.into(), candidate.clone()))
        {
            n += 1;
            let suffix = short_hash(&format!("{key}#{n}"));
            candidate = name(&[&base, &suffix]);
        }
        self.taken
            .insert((kind.into(), namespace.into(), candidate.clone()));
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_bounded() {
        assert_eq!(name(&["web", "8080"]), "web-8080");
        assert_eq!(name(&["Web_SA", "http"]), "web-sa-http");
        let long = "a".repeat(100);
        let n = name(&[&long, "80"]);
        assert!(n.len() <= 63, "{n}");
        assert_ne!(n, name(&[&long, "81"]));
        assert!(n.chars().next().unwrap().is_ascii_alphanumeric());
        assert!(n.chars().last().unwrap().is_ascii_alphanumeric());
    }

    #[test]
    fn namer_disambiguates() {
        let mut nm = Namer::default();
        let a = nm.take("Server", "ns", "x".into(), "k1");
        let b = nm.take("Server", "ns", "x".into(), "k2");
        let c = nm.take("Server", "other", "x".into(), "k3");
        let d = nm.take("HTTPRoute", "ns", "x".into(), "k4");
        assert_eq!(a, "x");
        assert_ne!(a, b);
        assert_eq!(c, "x");
        assert_eq!(d, "x");
    }
}
