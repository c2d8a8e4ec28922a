//! HTTPRouteGroup matches → `policy.linkerd.io/v1beta3` HTTPRoute matches.
//!
//! Linkerd's proxy (`linkerd/http/route`) matches a `RegularExpression` path or header only
//! when the regex's leftmost-first match spans the whole value, `Exact` by equality and
//! `PathPrefix` by whole path segments (`/api` matches `/api/x` but not `/apix`, and
//! `/api/` matches `/api`). So:
//! - a start-anchored SMI `pathRegex` that is a plain literal followed by `$` becomes
//!   `Exact`; one that matches everything becomes `PathPrefix /`;
//! - everything else, including literal prefixes (segment matching differs from SMI's
//!   character prefix in both directions), becomes `RegularExpression ^(?:P).*$` — anchored
//!   explicitly so the proxy's leftmost-first search cannot stop short on an alternation;
//! - headers (whole-value regexes in the IR) become `Exact` when the regex is a literal,
//!   else `RegularExpression ^(?:R)$`;
//! - several methods fan out into one match each (a match has at most one method).

use meshbridge_core::Feature;
use meshbridge_core::ir::{HttpRoute, PathKind};
use serde_json::{Value, json};

/// Limits of the `policy.linkerd.io/v1beta3` HTTPRoute CRD.
pub const MAX_RULES: usize = 16;
pub const MAX_MATCHES_PER_RULE: usize = 8;
pub const MAX_BACKEND_REFS: usize = 16;
pub const MAX_HEADERS: usize = 16;
pub const MAX_PATH_VALUE: usize = 1024;
pub const MAX_HEADER_VALUE: usize = 4096;
pub const MAX_WEIGHT: u64 = 1_000_000;

/// Why a route cannot be expressed: the capability row and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inexpressible {
    pub feature: Feature,
    pub reason: String,
}

/// The match that selects every request (`PathPrefix /`).
pub fn catch_all() -> Value {
    json!({"path": {"type": "PathPrefix", "value": "/"}})
}

/// Whether `m` is the catch-all match.
pub fn is_catch_all(m: &Value) -> bool {
    *m == catch_all()
}

const REGEX_META: &[char] = &[
    '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
];

fn is_literal(re: &str) -> bool {
    !re.contains(REGEX_META)
}

/// The path part of a match.
fn path_of(route: &HttpRoute) -> Result<Value, Inexpressible> {
    let Some(p) = &route.path else {
        return Ok(json!({"type": "PathPrefix", "value": "/"}));
    };
    match p.kind() {
        PathKind::Any => Ok(json!({"type": "PathPrefix", "value": "/"})),
        PathKind::Exact(s) if s.starts_with('/') && s.len() <= MAX_PATH_VALUE => {
            Ok(json!({"type": "Exact", "value": s}))
        }
        _ => {
            let value = format!("^{}$", p.full_match_regex());
            if value.len() > MAX_PATH_VALUE {
                return Err(Inexpressible {
                    feature: Feature::PathRouting,
                    reason: format!(
                        "pathRegex of match `{}` needs a {}-character RegularExpression; Linkerd's HTTPRoute allows at most {MAX_PATH_VALUE}",
                        route.name,
                        value.len()
                    ),
                });
            }
            Ok(json!({"type": "RegularExpression", "value": value}))
        }
    }
}

fn headers_of(route: &HttpRoute) -> Result<Vec<Value>, Inexpressible> {
    if route.headers.len() > MAX_HEADERS {
        return Err(Inexpressible {
            feature: Feature::HeaderRouting,
            reason: format!(
                "match `{}` has {} headers; Linkerd's HTTPRoute allows at most {MAX_HEADERS} per match",
                route.name,
                route.headers.len()
            ),
        });
    }
    let mut out = Vec::new();
    for h in &route.headers {
        let (ty, value) = value_match(&h.regex);
        if value.len() > MAX_HEADER_VALUE {
            return Err(Inexpressible {
                feature: Feature::HeaderRouting,
                reason: format!(
                    "header `{}` of match `{}` needs a {}-character value; Linkerd's HTTPRoute allows at most {MAX_HEADER_VALUE}",
                    h.name,
                    route.name,
                    value.len()
                ),
            });
        }
        out.push(json!({"name": h.name, "type": ty, "value": value}));
    }
    Ok(out)
}

/// One IR route → Linkerd matches (one per method; the IR's AND within a match is kept,
/// the OR across methods becomes OR across matches).
pub fn convert(route: &HttpRoute) -> Result<Vec<Value>, Inexpressible> {
    Ok(matches_of(
        route,
        path_of(route)?,
        headers_of(route)?,
        vec![],
    ))
}

/// A whole-value regex as a Linkerd value match: `Exact` for a literal, else
/// `RegularExpression ^(?:R)$`.
fn value_match(regex: &str) -> (&'static str, String) {
    if !regex.is_empty() && is_literal(regex) {
        ("Exact", regex.to_string())
    } else {
        ("RegularExpression", format!("^(?:{regex})$"))
    }
}

/// The Linkerd matches of one IR route: one per method (none: one), each with the path,
/// headers and query parameters.
fn matches_of(
    route: &HttpRoute,
    path: Value,
    headers: Vec<Value>,
    query: Vec<Value>,
) -> Vec<Value> {
    let mk = |method: Option<&str>| {
        let mut m = serde_json::Map::new();
        if !headers.is_empty() {
            m.insert("headers".into(), Value::Array(headers.clone()));
        }
        if let Some(meth) = method {
            m.insert("method".into(), json!(meth));
        }
        m.insert("path".into(), path.clone());
        if !query.is_empty() {
            m.insert("queryParams".into(), Value::Array(query.clone()));
        }
        Value::Object(m)
    };
    if route.methods.is_empty() {
        vec![mk(None)]
    } else {
        route.methods.iter().map(|m| mk(Some(m))).collect()
    }
}

/// One GAMMA match → Linkerd matches: as [`convert`], with segment prefixes as `PathPrefix`
/// (Linkerd's prefixes are whole segments, as Gateway API's) and the query parameters as
/// `queryParams` (`Exact` for literals, else `RegularExpression ^(?:R)$`).
pub fn gamma_convert(route: &HttpRoute) -> Result<Vec<Value>, Inexpressible> {
    let path = match route.path.as_ref().and_then(|p| p.segment_prefix()) {
        Some(prefix) if prefix.len() <= MAX_PATH_VALUE => {
            json!({"type": "PathPrefix", "value": prefix})
        }
        _ => path_of(route)?,
    };
    let headers = headers_of(route)?;
    if route.query.len() > MAX_HEADERS {
        return Err(Inexpressible {
            feature: Feature::QueryRouting,
            reason: format!(
                "match `{}` has {} query parameters; Linkerd's HTTPRoute allows at most {MAX_HEADERS}",
                route.name,
                route.query.len()
            ),
        });
    }
    let mut query = Vec::new();
    for q in &route.query {
        if query.iter().any(|v: &Value| v["name"] == q.name.as_str()) {
            return Err(Inexpressible {
                feature: Feature::QueryRouting,
                reason: format!(
                    "query parameter `{}` appears twice in match `{}`; Linkerd's HTTPRoute takes one condition per name",
                    q.name, route.name
                ),
            });
        }
        let (ty, value) = value_match(&q.regex);
        if value.len() > MAX_PATH_VALUE {
            return Err(Inexpressible {
                feature: Feature::QueryRouting,
                reason: format!(
                    "query parameter `{}` of match `{}` needs a {}-character value; Linkerd's HTTPRoute allows at most {MAX_PATH_VALUE}",
                    q.name,
                    route.name,
                    value.len()
                ),
            });
        }
        query.push(json!({"name": q.name, "type": ty, "value": value}));
    }
    Ok(matches_of(route, path, headers, query))
}

/// What one converted path accepts, for the disjointness check.
enum PathSet {
    All,
    Exact(String),
    Regex(Option<regex::Regex>),
}

fn path_set(m: &Value) -> PathSet {
    let ty = m["path"]["type"].as_str().unwrap_or("PathPrefix");
    let v = m["path"]["value"].as_str().unwrap_or("/");
    match ty {
        "Exact" => PathSet::Exact(v.to_string()),
        "RegularExpression" => PathSet::Regex(regex::Regex::new(v).ok()),
        _ if v == "/" => PathSet::All,
        // Other prefixes are never generated; treat as overlapping.
        _ => PathSet::Regex(None),
    }
}

fn full_match(re: &regex::Regex, s: &str) -> bool {
    re.find(s)
        .is_some_and(|m| m.start() == 0 && m.end() == s.len())
}

/// True when no request can match both `a` and `b` (a conservative check: `false` means
/// "may overlap").
pub fn disjoint(a: &Value, b: &Value) -> bool {
    if let (Some(ma), Some(mb)) = (a["method"].as_str(), b["method"].as_str())
        && ma != mb
    {
        return true;
    }
    let paths_disjoint = match (path_set(a), path_set(b)) {
        (PathSet::Exact(x), PathSet::Exact(y)) => x != y,
        (PathSet::Exact(x), PathSet::Regex(Some(r)))
        | (PathSet::Regex(Some(r)), PathSet::Exact(x)) => !full_match(&r, &x),
        _ => false,
    };
    if paths_disjoint {
        return true;
    }
    let empty = vec![];
    let ha = a["headers"].as_array().unwrap_or(&empty);
    let hb = b["headers"].as_array().unwrap_or(&empty);
    for x in ha {
        for y in hb {
            if !x["name"]
                .as_str()
                .unwrap_or("")
                .eq_ignore_ascii_case(y["name"].as_str().unwrap_or(""))
            {
                continue;
            }
            let xv = x["value"].as_str().unwrap_or("");
            let yv = y["value"].as_str().unwrap_or("");
            let exact = |h: &Value| h["type"] == "Exact";
            let differ = match (exact(x), exact(y)) {
                (true, true) => xv != yv,
                (true, false) => regex::Regex::new(yv).is_ok_and(|r| !full_match(&r, xv)),
                (false, true) => regex::Regex::new(xv).is_ok_and(|r| !full_match(&r, yv)),
                (false, false) => false,
            };
            if differ {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshbridge_core::model::{Kind, ObjectKey};

    fn route(path: Option<&str>, methods: &[&str], headers: &[(&str, &str)]) -> HttpRoute {
        let group = ObjectKey::new(Kind::HTTPRouteGroup, "ns", "g");
        HttpRoute::new(group, "m", path, methods, headers)
    }

    #[test]
    fn paths() {
        assert_eq!(
            convert(&route(None, &[], &[])).unwrap(),
            vec![json!({"path": {"type": "PathPrefix", "value": "/"}})]
        );
        assert_eq!(
            convert(&route(Some("/ping$"), &[], &[])).unwrap(),
            vec![json!({"path": {"type": "Exact", "value": "/ping"}})]
        );
        assert_eq!(
            convert(&route(Some("/api"), &[], &[])).unwrap(),
            vec![json!({"path": {"type": "RegularExpression", "value": "^(?:/api).*$"}})]
        );
        assert_eq!(
            convert(&route(Some(".*"), &[], &[])).unwrap(),
            vec![json!({"path": {"type": "PathPrefix", "value": "/"}})]
        );
        assert_eq!(
            convert(&route(Some("/v[0-9]+/items$"), &[], &[])).unwrap(),
            vec![json!({"path": {"type": "RegularExpression", "value": "^(?:/v[0-9]+/items)$"}})]
        );
        let long = format!("/{}", "a".repeat(1100));
        let e = convert(&route(Some(&long), &[], &[])).unwrap_err();
        assert_eq!(e.feature, Feature::PathRouting);
    }

    #[test]
    fn regex_semantics_match_smi() {
        // SMI `/a|/ab` is start-anchored: `/ab` and `/abc` match. The emitted regex must
        // make the proxy's leftmost-first whole-span check accept them too.
        let m = convert(&route(Some("/a|/ab"), &[], &[])).unwrap();
        let re = regex::Regex::new(m[0]["path"]["value"].as_str().unwrap()).unwrap();
        for ok in ["/a", "/ab", "/abc", "/a/b"] {
            assert!(full_match(&re, ok), "{ok}");
        }
        assert!(!full_match(&re, "/b"));
        assert!(!full_match(&re, "x/a"));
    }

    #[test]
    fn methods_fan_out_and_headers() {
        let m = convert(&route(
            Some("/x$"),
            &["GET", "POST"],
            &[("x-user", "alice"), ("x-env", "(dev|qa)")],
        ))
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            json!({
                "headers": [
                    {"name": "x-user", "type": "Exact", "value": "alice"},
                    {"name": "x-env", "type": "RegularExpression", "value": "^(?:(dev|qa))$"}
                ],
                "method": "GET",
                "path": {"type": "Exact", "value": "/x"}
            })
        );
        assert_eq!(m[1]["method"], "POST");
        let many: Vec<(String, String)> = (0..17)
            .map(|i| (format!("h{i}"), "v".to_string()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            convert(&route(None, &[], &many)).unwrap_err().feature,
            Feature::HeaderRouting
        );
    }

    #[test]
    fn disjointness() {
        let c = |p: Option<&str>, m: &[&str], h: &[(&str, &str)]| {
            convert(&route(p, m, h)).unwrap().remove(0)
        };
        assert!(disjoint(&c(None, &["GET"], &[]), &c(None, &["POST"], &[])));
        assert!(disjoint(
            &c(Some("/a$"), &[], &[]),
            &c(Some("/b$"), &[], &[])
        ));
        assert!(disjoint(
            &c(Some("/a$"), &[], &[]),
            &c(Some("/b"), &[], &[])
        ));
        assert!(!disjoint(
            &c(Some("/b/x$"), &[], &[]),
            &c(Some("/b"), &[], &[])
        ));
        assert!(!disjoint(
            &c(Some("/a"), &[], &[]),
            &c(Some("/b"), &[], &[])
        ));
        assert!(!disjoint(&c(None, &[], &[]), &c(Some("/b$"), &[], &[])));
        assert!(disjoint(
            &c(None, &[], &[("x", "1")]),
            &c(None, &[], &[("x", "2")])
        ));
        assert!(!disjoint(
            &c(None, &[], &[("x", "1")]),
            &c(None, &[], &[("y", "2")])
        ));
    }
}
