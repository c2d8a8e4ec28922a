//! SMI HTTPRouteGroup matches → Gateway API `HTTPRouteMatch` / `GRPCRouteMatch`.
//!
//! Each SMI match is path AND methods AND headers; Gateway API matches are ORed within a
//! rule, and a match carries at most one method, so an SMI match becomes one
//! `HTTPRouteMatch` per method (none when any method is allowed).
//!
//! Path (SMI `pathRegex` is RE2 anchored at the start only):
//! - matches everything (no regex, `.*`, `/`...) → `PathPrefix /` (or `RegularExpression
//!   ^.*$` when the route uses regexes, see [`Converted::regex_mode`]);
//! - a literal ending in `$` → `Exact` when the value satisfies the CRD's CEL rules;
//! - anything else, including literal prefixes → `RegularExpression ^(?:P).*$`
//!   ([`meshbridge_core::ir::PathRegex::full_match_regex`] with explicit anchors, so engines
//!   that search instead of full-matching agree). `PathPrefix` is never used for a prefix
//!   other than `/`: it matches whole path segments and ignores a trailing `/` (`/api`
//!   does not match `/apiv2`; `/api/` matches `/api`), which differs from a string prefix
//!   whether or not the prefix ends with `/`.
//!
//! Headers: a literal value → `Exact` (Core); otherwise `RegularExpression ^(?:R)$`
//! (SMI header regexes match the whole value).

use meshbridge_core::ir::{HeaderMatch, HttpRoute, PathKind, PathRegex};
use meshbridge_core::{Feature, Level};
use serde_json::{Map, Value, json};

/// `HTTPPathMatch.value` and `GRPCMethodMatch` limits from the CRDs.
pub const MAX_PATH_LEN: usize = 1024;
/// `HTTPHeaderMatch.value` maxLength.
pub const MAX_HEADER_VALUE_LEN: usize = 4096;
/// `headers` maxItems per match.
pub const MAX_HEADERS: usize = 16;
/// Every rule's matches together (CEL on `spec.rules`), catch-all included.
pub const MAX_MATCHES_PER_ROUTE: usize = 128;
/// `matches` maxItems per rule.
pub const MAX_MATCHES_PER_RULE: usize = 64;

/// The regex that matches every path (catch-all and match-everything paths in regex mode).
pub const ANY_PATH_REGEX: &str = "^.*$";

#[derive(Clone, Debug, PartialEq, Eq)]
enum PathEnc {
    Any,
    Exact(String),
    Regex(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MatchEnc {
    path: PathEnc,
    method: Option<String>,
    headers: Vec<Value>,
}

/// A problem with one SMI match: (feature, level, reason).
pub type Issue = (Feature, Level, String);

/// The HTTP form of a split's matches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Converted {
    /// `HTTPRouteMatch` objects (at most [`MAX_MATCHES_PER_ROUTE`] - 1), without the catch-all.
    pub matches: Vec<Value>,
    /// Some path is a `RegularExpression`. Then paths that match everything, and the
    /// catch-all, are written as `RegularExpression ^.*$` too: the precedence of regex
    /// matches against `PathPrefix` is implementation-specific (Istio ranks any
    /// `PathPrefix` above every regex, Linkerd ranks by matched length), while between two
    /// regex matches of equal path both rank the one with a method or more headers first —
    /// so the catch-all never shadows a match.
    pub regex_mode: bool,
    /// What could not be expressed (the match is left out: its requests go to the root).
    pub issues: Vec<Issue>,
}

impl Converted {
    /// The catch-all match (the last rule's): every request not matched above.
    pub fn catch_all(&self) -> Value {
        if self.regex_mode {
            json!({"path": {"type": "RegularExpression", "value": ANY_PATH_REGEX}})
        } else {
            json!({"path": {"type": "PathPrefix", "value": "/"}})
        }
    }
}

/// Whether a path condition matches every path (`/` is a prefix of every path).
fn path_is_any(p: Option<&PathRegex>) -> bool {
    p.is_none_or(|p| p.kind() == PathKind::Any)
}

fn describe(m: &HttpRoute) -> String {
    format!(
        "HTTPRouteGroup {}/{} match `{}`",
        m.group.namespace, m.group.name, m.name
    )
}

/// The CEL rules (and character pattern) an `Exact`/`PathPrefix` value must satisfy.
pub fn exact_path_ok(v: &str) -> bool {
    if v.is_empty() || v.len() > MAX_PATH_LEN || !v.starts_with('/') {
        return false;
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if v.contains(bad) {
            return false;
        }
    }
    if v.ends_with("/..") || v.ends_with("/.") {
        return false;
    }
    // ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                i += 3;
                continue;
            }
            return false;
        }
        if !(c.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

fn encode_path(p: Option<&PathRegex>) -> Result<PathEnc, String> {
    let Some(p) = p else {
        return Ok(PathEnc::Any);
    };
    if path_is_any(Some(p)) {
        return Ok(PathEnc::Any);
    }
    if let PathKind::Exact(lit) = p.kind()
        && exact_path_ok(&lit)
    {
        return Ok(PathEnc::Exact(lit));
    }
    let re = format!("^{}$", p.full_match_regex());
    if re.len() > MAX_PATH_LEN {
        return Err(format!(
            "pathRegex `{}` needs a {}-character RegularExpression; Gateway API allows {MAX_PATH_LEN}",
            p.0,
            re.len()
        ));
    }
    Ok(PathEnc::Regex(re))
}

/// A header regex without metacharacters matches exactly itself.
fn is_literal(re: &str) -> bool {
    !re.is_empty() && !re.chars().any(|c| "\\.+*?()|[]{}^$".contains(c))
}

/// `HTTPHeaderMatch` objects (same shape for gRPC). Header names are case-insensitive and
/// a match lists each name once, so two different conditions on one name cannot be written.
pub fn encode_headers(hs: &[HeaderMatch]) -> Result<Vec<Value>, String> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for h in hs {
        match seen.iter().find(|(n, _)| n.eq_ignore_ascii_case(&h.name)) {
            Some((_, re)) if *re == h.regex => continue,
            Some((_, re)) => {
                return Err(format!(
                    "header `{}` has two conditions (`{re}` and `{}`); a Gateway API match names each header once",
                    h.name, h.regex
                ));
            }
            None => seen.push((&h.name, &h.regex)),
        }
    }
    if seen.len() > MAX_HEADERS {
        return Err(format!(
            "{} header conditions; a Gateway API match takes at most {MAX_HEADERS}",
            seen.len()
        ));
    }
    let mut out = Vec::new();
    for (name, re) in seen {
        let (ty, value) = if is_literal(re) {
            ("Exact", re.to_string())
        } else {
            ("RegularExpression", format!("^(?:{re})$"))
        };
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(format!(
                "header `{name}` regex is {} characters; Gateway API allows {MAX_HEADER_VALUE_LEN}",
                value.len()
            ));
        }
        out.push(json!({"name": name, "type": ty, "value": value}));
    }
    Ok(out)
}

fn match_json(m: &MatchEnc, regex_mode: bool) -> Value {
    let mut o = Map::new();
    let path = match &m.path {
        PathEnc::Any if regex_mode => {
            json!({"type": "RegularExpression", "value": ANY_PATH_REGEX})
        }
        PathEnc::Any => json!({"type": "PathPrefix", "value": "/"}),
        PathEnc::Exact(v) => json!({"type": "Exact", "value": v}),
        PathEnc::Regex(r) => json!({"type": "RegularExpression", "value": r}),
    };
    o.insert("path".into(), path);
    if let Some(method) = &m.method {
        o.insert("method".into(), json!(method));
    }
    if !m.headers.is_empty() {
        o.insert("headers".into(), Value::Array(m.headers.clone()));
    }
    Value::Object(o)
}

/// Converts a split's matches (none of which matches everything) to `HTTPRouteMatch`es.
pub fn convert_http(routes: &[HttpRoute]) -> Converted {
    let mut out = Converted::default();
    let mut encs: Vec<MatchEnc> = Vec::new();
    for m in routes {
        let path = match encode_path(m.path.as_ref()) {
            Ok(p) => p,
            Err(e) => {
                out.issues.push((
                    Feature::PathRouting,
                    Level::None,
                    format!(
                        "{}: {e}; the match is left out, so its requests go to the root Service",
                        describe(m)
                    ),
                ));
                continue;
            }
        };
        let headers = match encode_headers(&m.headers) {
            Ok(h) => h,
            Err(e) => {
                out.issues.push((
                    Feature::HeaderRouting,
                    Level::None,
                    format!(
                        "{}: {e}; the match is left out, so its requests go to the root Service",
                        describe(m)
                    ),
                ));
                continue;
            }
        };
        let methods: Vec<Option<String>> = if m.methods.is_empty() {
            vec![None]
        } else {
            m.methods.iter().cloned().map(Some).collect()
        };
        for method in methods {
            let e = MatchEnc {
                path: path.clone(),
                method,
                headers: headers.clone(),
            };
            if !encs.contains(&e) {
                encs.push(e);
            }
        }
    }
    let room = MAX_MATCHES_PER_ROUTE - 1;
    if encs.len() > room {
        out.issues.push((
            Feature::TrafficSplitMatches,
            Level::Partial,
            format!(
                "the matches need {} HTTPRouteMatches (one per method); a route holds {MAX_MATCHES_PER_ROUTE} including the catch-all, so the last {} are left out and their requests go to the root Service",
                encs.len(),
                encs.len() - room
            ),
        ));
        encs.truncate(room);
    }
    out.regex_mode = encs.iter().any(|e| matches!(e.path, PathEnc::Regex(_)));
    out.matches = encs.iter().map(|e| match_json(e, out.regex_mode)).collect();
    out
}

/// `pkg.Service` as GRPCRoute accepts it (`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`,
/// without the leading dot, which no gRPC path carries).
fn grpc_service_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_PATH_LEN && s.split('.').all(grpc_ident_ok)
}

/// `^[A-Za-z_][A-Za-z_0-9]*$`.
fn grpc_ident_ok(s: &str) -> bool {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `GRPCRouteMatch`es, when every SMI match is exactly expressible for gRPC requests (whose
/// path is `/pkg.Service/Method` and method POST): no HTTP methods, and a path that is
/// anything, exactly `/S/M`, or the prefix `/S/`. `None` = use an HTTPRoute instead.
pub fn convert_grpc(routes: &[HttpRoute]) -> Option<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    for m in routes {
        if !m.methods.is_empty() {
            return None;
        }
        let method = if path_is_any(m.path.as_ref()) {
            None
        } else {
            match m.path.as_ref()?.kind() {
                PathKind::Exact(lit) => {
                    let (svc, meth) = lit.strip_prefix('/')?.split_once('/')?;
                    if !grpc_service_ok(svc) || !grpc_ident_ok(meth) || meth.len() > MAX_PATH_LEN {
                        return None;
                    }
                    Some(json!({"type": "Exact", "service": svc, "method": meth}))
                }
                PathKind::Prefix(lit) => {
                    let svc = lit.strip_prefix('/')?.strip_suffix('/')?;
                    if !grpc_service_ok(svc) {
                        return None;
                    }
                    Some(json!({"type": "Exact", "service": svc}))
                }
                _ => return None,
            }
        };
        let headers = encode_headers(&m.headers).ok()?;
        let mut o = Map::new();
        if let Some(mm) = method {
            o.insert("method".into(), mm);
        }
        if !headers.is_empty() {
            o.insert("headers".into(), Value::Array(headers));
        }
        if o.is_empty() {
            // Matches every request: the caller handles such splits as unconditional.
            return None;
        }
        let v = Value::Object(o);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() || out.len() > MAX_MATCHES_PER_ROUTE - 1 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshbridge_core::model::{Kind, ObjectKey};

    fn route(path: Option<&str>, methods: &[&str], headers: &[(&str, &str)]) -> HttpRoute {
        let group = ObjectKey::new(Kind::HTTPRouteGroup, "ns", "g");
        HttpRoute::new(group, "m", path, methods, headers)
    }

    fn full(re: &str) -> regex::Regex {
        // Gateway API regexes as Istio/Envoy apply them: the whole value must match.
        regex::Regex::new(&format!("^(?:{re})$")).unwrap()
    }

    #[test]
    fn path_encodings() {
        assert_eq!(encode_path(None), Ok(PathEnc::Any));
        assert_eq!(encode_path(Some(&PathRegex(".*".into()))), Ok(PathEnc::Any));
        assert_eq!(encode_path(Some(&PathRegex("/".into()))), Ok(PathEnc::Any));
        assert_eq!(
            encode_path(Some(&PathRegex("/.*".into()))),
            Ok(PathEnc::Any)
        );
        assert_eq!(
            encode_path(Some(&PathRegex("/ping$".into()))),
            Ok(PathEnc::Exact("/ping".into()))
        );
        assert_eq!(
            encode_path(Some(&PathRegex("^/api\\.v1$".into()))),
            Ok(PathEnc::Exact("/api.v1".into()))
        );
        // A prefix never becomes PathPrefix (segment semantics differ), trailing `/` or not.
        assert_eq!(
            encode_path(Some(&PathRegex("/api".into()))),
            Ok(PathEnc::Regex("^(?:/api).*$".into()))
        );
        assert_eq!(
            encode_path(Some(&PathRegex("/api/".into()))),
            Ok(PathEnc::Regex("^(?:/api/).*$".into()))
        );
        // Exact literals that break the CEL rules fall back to a regex.
        assert_eq!(
            encode_path(Some(&PathRegex("/a//b$".into()))),
            Ok(PathEnc::Regex("^(?:/a//b)$".into()))
        );
        assert_eq!(
            encode_path(Some(&PathRegex("/a b$".into()))),
            Ok(PathEnc::Regex("^(?:/a b)$".into()))
        );
        assert_eq!(
            encode_path(Some(&PathRegex("/v[0-9]+/items".into()))),
            Ok(PathEnc::Regex("^(?:/v[0-9]+/items).*$".into()))
        );
        let long = format!("/{}", "a".repeat(1100));
        assert!(encode_path(Some(&PathRegex(long))).is_err());
    }

    #[test]
    fn regexes_keep_smi_meaning() {
        let PathEnc::Regex(r) = encode_path(Some(&PathRegex("/api".into()))).unwrap() else {
            panic!()
        };
        let re = full(&r);
        for p in ["/api", "/api/v1", "/apiv2"] {
            assert!(re.is_match(p), "{p}");
        }
        for p in ["/x/api", "/ap"] {
            assert!(!re.is_match(p), "{p}");
        }
        // Search-semantics engines agree thanks to the explicit anchors.
        let search = regex::Regex::new(&r).unwrap();
        assert!(!search.is_match("/x/api"));
        let h = encode_headers(&[HeaderMatch {
            name: "user-agent".into(),
            regex: ".*Firefox.*".into(),
        }])
        .unwrap();
        let v = h[0]["value"].as_str().unwrap();
        assert_eq!(v, "^(?:.*Firefox.*)$");
        assert!(regex::Regex::new(v).unwrap().is_match("Mozilla Firefox 1"));
    }

    #[test]
    fn exact_path_cel_rules() {
        for ok in ["/", "/a", "/a/b.c", "/%20x", "/a:b@c"] {
            assert!(exact_path_ok(ok), "{ok}");
        }
        for bad in [
            "", "a", "/a//b", "/a/./b", "/a/../b", "/a%2fb", "/a%2Fb", "/a#", "/a/..", "/a/.",
            "/a b", "/%2", "/%zz", "/é",
        ] {
            assert!(!exact_path_ok(bad), "{bad}");
        }
    }

    #[test]
    fn headers_literal_regex_and_conflicts() {
        let h = encode_headers(&[
            HeaderMatch {
                name: "x-version".into(),
                regex: "v2".into(),
            },
            HeaderMatch {
                name: "cookie".into(),
                regex: "^(.*?;)?(type=insider)(;.*)?$".into(),
            },
            HeaderMatch {
                name: "x-empty".into(),
                regex: "".into(),
            },
        ])
        .unwrap();
        assert_eq!(
            Value::Array(h),
            json!([
                {"name": "x-version", "type": "Exact", "value": "v2"},
                {"name": "cookie", "type": "RegularExpression", "value": "^(?:^(.*?;)?(type=insider)(;.*)?$)$"},
                {"name": "x-empty", "type": "RegularExpression", "value": "^(?:)$"},
            ])
        );
        let same = encode_headers(&[
            HeaderMatch {
                name: "x-a".into(),
                regex: "1".into(),
            },
            HeaderMatch {
                name: "x-a".into(),
                regex: "1".into(),
            },
        ])
        .unwrap();
        assert_eq!(same.len(), 1);
        assert!(
            encode_headers(&[
                HeaderMatch {
                    name: "x-a".into(),
                    regex: "1".into(),
                },
                HeaderMatch {
                    name: "x-a".into(),
                    regex: "2".into(),
                },
            ])
            .is_err()
        );
        let many: Vec<HeaderMatch> = (0..17)
            .map(|i| HeaderMatch {
                name: format!("x-{i}"),
                regex: "v".into(),
            })
            .collect();
        assert!(encode_headers(&many).is_err());
    }

    #[test]
    fn regex_mode_rewrites_any_paths_and_catch_all() {
        let c = convert_http(&[
            route(None, &[], &[("x-canary", "yes")]),
            route(Some("/api"), &["GET"], &[]),
        ]);
        assert!(c.regex_mode);
        assert_eq!(
            c.matches,
            vec![
                json!({"path": {"type": "RegularExpression", "value": "^.*$"}, "headers": [{"name": "x-canary", "type": "Exact", "value": "yes"}]}),
                json!({"path": {"type": "RegularExpression", "value": "^(?:/api).*$"}, "method": "GET"}),
            ]
        );
        assert_eq!(
            c.catch_all(),
            json!({"path": {"type": "RegularExpression", "value": "^.*$"}})
        );
        let c = convert_http(&[route(Some("/ping$"), &[], &[("x-canary", "yes")])]);
        assert!(!c.regex_mode);
        assert_eq!(
            c.catch_all(),
            json!({"path": {"type": "PathPrefix", "value": "/"}})
        );
    }

    #[test]
    fn too_many_matches_are_cut_and_reported() {
        let methods = [
            "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        let routes: Vec<HttpRoute> = (0..15)
            .map(|i| {
                let mut r = route(Some(&format!("/p{i}$")), &methods, &[]);
                r.name = format!("m{i}");
                r
            })
            .collect();
        let c = convert_http(&routes);
        assert_eq!(c.matches.len(), 127);
        assert_eq!(c.issues.len(), 1);
        assert_eq!(c.issues[0].0, Feature::TrafficSplitMatches);
        assert!(c.issues[0].2.contains("135"), "{}", c.issues[0].2);
    }

    #[test]
    fn grpc_forms() {
        assert_eq!(
            convert_grpc(&[
                route(Some("^/pkg\\.Echo/Say$"), &[], &[]),
                route(Some("/pkg\\.Admin/"), &[], &[("x-a", "1")]),
                route(None, &[], &[("x-b", "2")]),
            ]),
            Some(vec![
                json!({"method": {"type": "Exact", "service": "pkg.Echo", "method": "Say"}}),
                json!({"method": {"type": "Exact", "service": "pkg.Admin"}, "headers": [{"name": "x-a", "type": "Exact", "value": "1"}]}),
                json!({"headers": [{"name": "x-b", "type": "Exact", "value": "2"}]}),
            ])
        );
        // Not exactly expressible for gRPC → None (an HTTPRoute is used). An unescaped `.`
        // matches any character, so it is not a service name.
        assert_eq!(
            convert_grpc(&[route(Some("/pkg.Echo/Say$"), &[], &[])]),
            None
        );
        assert_eq!(
            convert_grpc(&[route(Some("/pkg\\.Echo/Say"), &[], &[])]),
            None
        );
        assert_eq!(convert_grpc(&[route(Some("/pkg\\.Echo"), &[], &[])]), None);
        assert_eq!(
            convert_grpc(&[route(Some("/pkg\\.Echo/Say$"), &["POST"], &[])]),
            None
        );
        assert_eq!(convert_grpc(&[route(Some("/v[0-9]/x"), &[], &[])]), None);
        assert_eq!(convert_grpc(&[route(Some("/1pkg/Say$"), &[], &[])]), None);
    }
}
