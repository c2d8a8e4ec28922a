//! TrafficTarget (+ HTTPRouteGroup / TCPRoute) → AuthorizationPolicy and PeerAuthentication.
//!
//! - Per destination identity: one ALLOW AuthorizationPolicy `allow-<serviceaccount>` in the
//!   destination's namespace, `selector.matchLabels` = [`Ir::isolating_selector`]. With no
//!   isolating selector nothing is emitted for that identity and every rule is reported:
//!   Istio cannot select by ServiceAccount, and a wider selector would widen the allows.
//!   (Over 512 rules: further policies `allow2-<sa>`, `allow3-<sa>`, … — ALLOW policies OR.)
//! - Per namespace holding destinations: the allow-nothing policy
//!   `meshbridge-allow-nothing` (`spec: {}`) so every workload there is denied by default,
//!   and a namespace-wide STRICT PeerAuthentication `default`, without which plaintext
//!   callers carry no principal and the allows could not match.
//!
//! Sources are principals `<trust domain>/ns/<ns>/sa/<sa>` (Istio's form: no `spiffe://`).
//! Istio matches strings only exactly, by prefix (`x*`), suffix (`*x`) or presence (`*`):
//! regexes are converted only when they are exactly such a string, otherwise the allow is
//! not emitted and reported (fail closed — never widened).

use crate::{ApiVersions, object_name};
use meshbridge_core::ir::{AccessRule, HttpRoute, Identity, PathKind, PathRegex, Ports, Traffic};
use meshbridge_core::model::ObjectKey;
use meshbridge_core::{Context, Feature, Finding, Ir, Level, OutputObject, Translation};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Istio's per-policy limit on `rules`.
pub const MAX_RULES: usize = 512;

/// Name of the allow-nothing policy in each namespace with destinations.
pub const ALLOW_NOTHING: &str = "meshbridge-allow-nothing";
/// Name of the namespace-wide STRICT PeerAuthentication.
pub const PEER_AUTHENTICATION: &str = "default";

/// Istio principal of an identity: `<td>/ns/<ns>/sa/<sa>`.
pub fn principal(id: &Identity, trust_domain: &str) -> String {
    format!(
        "{trust_domain}/ns/{}/sa/{}",
        id.namespace, id.service_account
    )
}

/// Name of the `n`-th (from 1) allow policy of a destination ServiceAccount.
pub fn allow_policy_name(sa: &str, n: usize) -> String {
    if n <= 1 {
        object_name("allow-", sa)
    } else {
        object_name(&format!("allow{n}-"), sa)
    }
}

fn feature_of(t: &Traffic) -> Feature {
    match t {
        Traffic::Http(_) => Feature::HttpAccess,
        Traffic::Tcp => Feature::TcpAccess,
        Traffic::Udp => Feature::UdpAccess,
    }
}

/// `spec.destination` (or `destination` for top-level versions), from a rule's field path.
fn destination_field(rule: &AccessRule) -> String {
    if rule.field.starts_with("spec.") {
        "spec.destination".into()
    } else {
        "destination".into()
    }
}

/// A literal usable as an Istio string match: `*` is a wildcard there, and `{`/`}` mark
/// path templates, so literals holding them cannot be matched exactly.
fn plain(s: &str) -> bool {
    !s.contains(['*', '{', '}'])
}

/// SMI pathRegex (start-anchored) → Istio `paths` values; `Ok(None)` = any path.
pub fn istio_paths(p: Option<&PathRegex>) -> Result<Option<Vec<String>>, String> {
    let Some(p) = p else { return Ok(None) };
    match p.kind() {
        PathKind::Any => Ok(None),
        PathKind::Exact(s) if !s.is_empty() && plain(&s) => Ok(Some(vec![s])),
        PathKind::Prefix(s) if plain(&s) => Ok(Some(vec![format!("{s}*")])),
        PathKind::Exact(_) | PathKind::Prefix(_) => Err(format!(
            "pathRegex `{}` is a literal holding `*`, `{{` or `}}` (or is empty), which Istio paths read as wildcards or templates",
            p.0
        )),
        PathKind::Regex => Err(format!(
            "pathRegex `{}` is a regex; Istio AuthorizationPolicy paths take only exact paths and prefixes (`/p*`)",
            p.0
        )),
    }
}

/// An SMI header regex (whole-value match) → Istio `when` values.
pub fn istio_header_values(name: &str, regex: &str) -> Result<Vec<String>, String> {
    if name == "host" {
        return Err(
            "header `host`: Istio authorization cannot check the request authority with header conditions"
                .into(),
        );
    }
    // A whole-value regex R is the start-anchored regex `(?:R)$`; outer `^`/`$` anchors are
    // no-ops for a whole-value match and are dropped first.
    let kind = PathRegex(format!("(?:{})$", strip_anchors(regex))).kind();
    match kind {
        PathKind::Any => Ok(vec!["*".into()]),
        PathKind::Exact(s) if !s.is_empty() && !s.contains('*') => Ok(vec![s]),
        PathKind::Prefix(s) if !s.contains('*') => Ok(vec![format!("{s}*")]),
        _ => Err(format!(
            "header `{name}` regex `{regex}` is not a literal or literal prefix; Istio `when` values take only exact, prefix, suffix or presence matches"
        )),
    }
}

/// Drops one leading `^` and one trailing unescaped `$`.
fn strip_anchors(re: &str) -> &str {
    let re = re.strip_prefix('^').unwrap_or(re);
    match re.strip_suffix('$') {
        Some(rest) => {
            let backslashes = rest.bytes().rev().take_while(|b| *b == b'\\').count();
            if backslashes % 2 == 0 { rest } else { re }
        }
        None => re,
    }
}

/// One SMI match → (operation, when) of an Istio rule.
pub fn http_rule_parts(
    route: &HttpRoute,
    ports: Option<&[String]>,
) -> Result<(Map<String, Value>, Vec<Value>), String> {
    let mut op = Map::new();
    if !route.methods.is_empty() {
        op.insert("methods".into(), json!(route.methods));
    }
    if let Some(paths) = istio_paths(route.path.as_ref())? {
        op.insert("paths".into(), json!(paths));
    }
    let mut when = Vec::new();
    let mut seen = BTreeSet::new();
    for h in &route.headers {
        if !seen.insert(h.name.as_str()) {
            return Err(format!(
                "header `{}` appears twice; this converter does not combine two conditions on one header",
                h.name
            ));
        }
        let values = istio_header_values(&h.name, &h.regex)?;
        when.push(json!({ "key": format!("request.headers[{}]", h.name), "values": values }));
    }
    if op.is_empty() && when.is_empty() {
        // Any HTTP request. `paths: ["*"]` keeps the rule HTTP-only: Istio ignores ALLOW
        // rules with HTTP fields on plain TCP, so raw TCP is not allowed by an HTTP rule.
        op.insert("paths".into(), json!(["*"]));
    }
    if let Some(ports) = ports {
        op.insert("ports".into(), json!(ports));
    }
    Ok((op, when))
}

pub(crate) fn policies(ir: &Ir, cx: &Context, api: &ApiVersions, out: &mut Translation) {
    // Namespaces with destinations → the TrafficTargets naming them.
    let mut namespaces: BTreeMap<&str, BTreeSet<ObjectKey>> = BTreeMap::new();
    for (id, policy) in &ir.access {
        let parents_ns = namespaces.entry(id.namespace.as_str()).or_default();
        parents_ns.extend(policy.rules.iter().map(|r| r.parent.clone()));
        let Some(selector) = ir.isolating_selector(id) else {
            for rule in &policy.rules {
                out.findings.push(Finding {
                    feature: feature_of(&rule.traffic),
                    level: Level::None,
                    object: rule.parent.clone(),
                    field: destination_field(rule),
                    reason: format!(
                        "no pod labels select exactly the pods of ServiceAccount {id} (Istio cannot select a workload by ServiceAccount): its allows are not emitted, so it stays denied"
                    ),
                });
            }
            continue;
        };
        let mut rules: Vec<Value> = Vec::new();
        let mut parents: Vec<ObjectKey> = Vec::new();
        for rule in &policy.rules {
            if let Traffic::Udp = rule.traffic {
                out.findings.push(Finding {
                    feature: Feature::UdpAccess,
                    level: Level::None,
                    object: rule.parent.clone(),
                    field: rule.field.clone(),
                    reason: "Istio does not proxy UDP: this allow is not emitted, and Istio neither allows nor denies UDP traffic".into(),
                });
                continue;
            }
            if rule.sources.is_empty() {
                // Allows no one (an empty principals list would mean "anyone").
                continue;
            }
            let ports: Option<Vec<String>> = match &rule.ports {
                Ports::All => None,
                // No port left (e.g. destination.port outside the TCPRoute's): allows nothing.
                Ports::Only(s) if s.is_empty() => continue,
                Ports::Only(s) => Some(s.iter().map(|p| p.to_string()).collect()),
            };
            let principals: Vec<String> = rule
                .sources
                .iter()
                .map(|s| principal(s, &cx.trust_domain))
                .collect();
            let from = json!([{ "source": { "principals": principals } }]);
            match &rule.traffic {
                Traffic::Udp => {}
                Traffic::Tcp => {
                    let mut r = json!({ "from": from });
                    if let Some(ports) = &ports {
                        r["to"] = json!([{ "operation": { "ports": ports } }]);
                    }
                    rules.push(r);
                    parents.push(rule.parent.clone());
                }
                Traffic::Http(routes) => {
                    for route in routes {
                        match http_rule_parts(route, ports.as_deref()) {
                            Ok((op, when)) => {
                                let mut r = json!({ "from": from });
                                if !op.is_empty() {
                                    r["to"] = json!([{ "operation": op }]);
                                }
                                if !when.is_empty() {
                                    r["when"] = json!(when);
                                }
                                rules.push(r);
                                parents.push(rule.parent.clone());
                                parents.push(route.group.clone());
                            }
                            Err(why) => out.findings.push(Finding {
                                feature: Feature::HttpAccess,
                                level: Level::None,
                                object: rule.parent.clone(),
                                field: rule.field.clone(),
                                reason: format!(
                                    "HTTPRouteGroup {}/{} match `{}`: {why}; this allow is not emitted (fail closed)",
                                    route.group.namespace, route.group.name, route.name
                                ),
                            }),
                        }
                    }
                }
            }
        }
        if rules.is_empty() {
            continue;
        }
        for (n, chunk) in rules.chunks(MAX_RULES).enumerate() {
            out.objects.push(OutputObject::new(
                cx,
                api.security,
                "AuthorizationPolicy",
                Some(&id.namespace),
                &allow_policy_name(&id.service_account, n + 1),
                parents.clone(),
                json!({ "spec": {
                    "selector": { "matchLabels": selector },
                    "action": "ALLOW",
                    "rules": chunk,
                }}),
            ));
        }
    }
    for (ns, parents) in namespaces {
        let parents: Vec<ObjectKey> = parents.into_iter().collect();
        out.objects.push(OutputObject::new(
            cx,
            api.security,
            "AuthorizationPolicy",
            Some(ns),
            ALLOW_NOTHING,
            parents.clone(),
            json!({ "spec": {} }),
        ));
        out.objects.push(OutputObject::new(
            cx,
            api.security,
            "PeerAuthentication",
            Some(ns),
            PEER_AUTHENTICATION,
            parents,
            json!({ "spec": { "mtls": { "mode": "STRICT" } } }),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = |s: &str| istio_paths(Some(&PathRegex(s.into())));
        assert_eq!(p("/api"), Ok(Some(vec!["/api*".to_string()])));
        assert_eq!(p("/api/.*"), Ok(Some(vec!["/api/*".to_string()])));
        assert_eq!(p("/ping$"), Ok(Some(vec!["/ping".to_string()])));
        assert_eq!(p("^/ping$"), Ok(Some(vec!["/ping".to_string()])));
        assert_eq!(p(".*"), Ok(None));
        assert_eq!(istio_paths(None), Ok(None));
        assert!(p("/api/v[0-9]+").is_err());
        assert!(p("/a\\*b").is_err());
        assert!(p("/a\\{b\\}").is_err());
        assert!(p("^$").is_err());
    }

    #[test]
    fn header_values() {
        let h = |r: &str| istio_header_values("x-user", r);
        assert_eq!(h("alice"), Ok(vec!["alice".to_string()]));
        assert_eq!(h("^alice$"), Ok(vec!["alice".to_string()]));
        assert_eq!(h("beta-.*"), Ok(vec!["beta-*".to_string()]));
        assert_eq!(h(".*"), Ok(vec!["*".to_string()]));
        assert_eq!(h("a\\.b"), Ok(vec!["a.b".to_string()]));
        assert!(h("a.b").is_err());
        assert!(h("(?i)alice").is_err());
        assert!(h("alice|bob").is_err());
        assert!(h("a\\*").is_err());
        assert!(h("").is_err());
        assert_eq!(h("a\\$"), Ok(vec!["a$".to_string()]));
        assert_eq!(h("a\\\\$"), Ok(vec!["a\\".to_string()]));
        assert!(h("alice$$").is_err());
        assert!(istio_header_values("host", "example.com").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(allow_policy_name("web", 1), "allow-web");
        assert_eq!(allow_policy_name("web", 2), "allow2-web");
        assert_eq!(
            principal(&Identity::new("ns1", "sa1"), "example.org"),
            "example.org/ns/ns1/sa/sa1"
        );
    }
}
