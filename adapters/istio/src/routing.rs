//! TrafficSplit → VirtualService.
//!
//! One VirtualService per root Service (the IR keeps one winning split per root, with the
//! matches of all its HTTPRouteGroups merged, so Istio's one-VirtualService-per-host rule
//! for sidecars always holds). Name: the root Service's name, in its namespace. `hosts`:
//! the root's FQDN; `gateways` is omitted (it defaults to `mesh`, i.e. every sidecar).
//!
//! Layout of `http` (per root port when the root Service is known, see [`Scope`]):
//! - without matches: one route with the weighted backends;
//! - with matches (A/B): one route per HTTPRouteGroup match (each method a separate
//!   HTTPMatchRequest, ORed), then a catch-all route sending 100% to the root service.
//!
//! `tcp` (splits without matches only): one route per TCP port with the same weights.
//! Weights: [`largest_remainder`] to exactly 100; backends at 0% are left out.
//!
//! Route tables (GAMMA routes, [`Split::rules`]), per HTTP root port: one http route per
//! rule, in the IR's order (Gateway API precedence; Istio takes the first http route that
//! matches). Each IR match becomes HTTPMatchRequests ([`gamma_match_requests`]: `Exact`
//! paths as `uri.exact`, segment prefixes and regexes as `uri.regex`, query parameters as
//! `queryParams.<name>.regex`); the rule's backends are the weighted `route`; header
//! filters become `headers.request` / `headers.response`, `URLRewrite` becomes
//! `rewrite.authority` and `rewrite.uriRegexRewrite` (the matches are regexes, so Istio's
//! prefix-only `rewrite.uri` does not apply), `RequestRedirect` becomes `redirect` (a
//! prefix-replacing redirect becomes two http routes per match: `uri.exact P` and
//! `uri.prefix P/`, where Istio's redirect replaces the matched prefix), a rule without
//! backends and redirect becomes `directResponse` 500, `timeouts.request` becomes `timeout`
//! and `retry` becomes `retries`. No catch-all route follows the rules: a request that
//! matches no http route of a VirtualService is answered 404 by the sidecar (Envoy's
//! `NR`, no route), which is what Gateway API requires. Rules do not apply to ports
//! declared TCP (reported).
//!
//! Consumer routes ([`Ir::consumer_splits`]): a VirtualService in the client namespace
//! named `<service>.<service namespace>` (Service names have no dots, so it never collides
//! with a producer VirtualService), `exportTo: ["."]` so only that namespace's sidecars see
//! it; Istio prefers a VirtualService of the proxy's own namespace for a host over one
//! exported from another namespace.

use crate::ApiVersions;
use meshbridge_core::ir::{
    Filter, HeaderEdit, HttpRoute, PathKind, PathRewrite, Protocol, Redirect, RouteRule,
    ServicePort, Split, SvcKey,
};
use meshbridge_core::weights::largest_remainder;
use meshbridge_core::{Context, Feature, Finding, Ir, Level, OutputObject, Translation};
use serde_json::{Map, Value, json};

/// How Istio treats a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortProtocol {
    /// Declared HTTP (name `http*`/`grpc*` or an HTTP `appProtocol`): `http` routes.
    Http,
    /// Declared opaque TCP (`tcp`, `mongo`, `mysql`, `redis`): `tcp` routes.
    Tcp,
    /// Undeclared: Istio sniffs the protocol, so both `http` and `tcp` routes apply.
    Auto,
    /// Declared TLS/HTTPS: Istio routes it with `tls` routes by SNI.
    Tls,
    Udp,
    Sctp,
}

/// Istio's protocol selection: `appProtocol`, else the port name's prefix before `-`.
pub fn port_protocol(p: &ServicePort) -> PortProtocol {
    match p.protocol {
        Protocol::Udp => return PortProtocol::Udp,
        Protocol::Sctp => return PortProtocol::Sctp,
        Protocol::Tcp => {}
    }
    if p.is_http() {
        return PortProtocol::Http;
    }
    let declared = match (&p.app_protocol, &p.name) {
        (Some(ap), _) => ap.to_ascii_lowercase(),
        (None, Some(n)) => n
            .to_ascii_lowercase()
            .split('-')
            .next()
            .unwrap_or_default()
            .to_string(),
        (None, None) => String::new(),
    };
    match declared.as_str() {
        "https" | "tls" => PortProtocol::Tls,
        "tcp" | "mongo" | "mysql" | "redis" => PortProtocol::Tcp,
        _ => PortProtocol::Auto,
    }
}

/// Routes emitted for one root port (or for every port when the root Service is unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Scope {
    /// `None`: the root's ports are unknown; routes match every port and destinations
    /// name no port (Istio then uses the port the client called, as SMI does).
    port: Option<u16>,
    http: bool,
    tcp: bool,
    /// Indexes into [`Split::backends`] that serve this port.
    backends: Vec<usize>,
}

pub(crate) fn virtual_services(ir: &Ir, cx: &Context, api: &ApiVersions, out: &mut Translation) {
    for split in ir.splits.values() {
        let place = Placement {
            namespace: split.root.namespace.clone(),
            name: split.root.name.clone(),
            export_here: false,
        };
        let vs = if split.rules.is_empty() {
            virtual_service(split, cx, api, &mut out.findings)
        } else {
            route_table(split, &place, cx, api, &mut out.findings)
        };
        out.objects.extend(vs);
    }
    for (ns, splits) in &ir.consumer_splits {
        for split in splits.values() {
            let place = Placement {
                namespace: ns.clone(),
                name: crate::object_name(
                    "",
                    &format!("{}.{}", split.root.name, split.root.namespace),
                ),
                export_here: true,
            };
            let vs = if split.rules.is_empty() {
                virtual_service(split, cx, api, &mut out.findings).map(|mut o| {
                    // The same routes, owned by the client namespace and seen only there.
                    let spec = o.body["spec"].take();
                    let mut spec = spec;
                    spec["exportTo"] = json!(["."]);
                    OutputObject::new(
                        cx,
                        api.networking,
                        "VirtualService",
                        Some(&place.namespace),
                        &place.name,
                        o.parents.clone(),
                        json!({ "spec": spec }),
                    )
                })
            } else {
                route_table(split, &place, cx, api, &mut out.findings)
            };
            out.objects.extend(vs);
        }
    }
}

/// Where a route table's VirtualService goes.
struct Placement {
    namespace: String,
    name: String,
    /// `exportTo: ["."]` (consumer routes).
    export_here: bool,
}

/// An http route name and its HTTPMatchRequests.
type NamedMatch = (String, Vec<Map<String, Value>>);

/// A/B routes of a split: `None` when the split applies to every request (no matches, or
/// one match that matches everything). Matches Istio cannot express are reported and left
/// out (their requests then take the catch-all route to the root, as unmatched ones do).
fn compiled_matches(split: &Split, findings: &mut Vec<Finding>) -> Option<Vec<NamedMatch>> {
    if split.matches.is_empty() || split.matches.iter().any(HttpRoute::is_catch_all) {
        return None;
    }
    let mut out = Vec::new();
    for m in &split.matches {
        match match_requests(m) {
            Ok(reqs) => out.push((format!("{}-{}", m.group.name, m.name), reqs)),
            Err(why) => findings.push(Finding {
                feature: Feature::HeaderRouting,
                level: Level::None,
                object: split.parent.clone(),
                field: "spec.matches".into(),
                reason: format!(
                    "HTTPRouteGroup {}/{} match `{}`: {why}; the match is not emitted (its requests go to the root service)",
                    m.group.namespace, m.group.name, m.name
                ),
            }),
        }
    }
    Some(out)
}

/// One SMI match → Istio HTTPMatchRequests (one per method; ORed by Istio).
pub fn match_requests(m: &HttpRoute) -> Result<Vec<Map<String, Value>>, String> {
    match_requests_of(m, false)
}

/// One GAMMA match → Istio HTTPMatchRequests: as [`match_requests`], with exact paths as
/// `uri.exact` and the query parameters as `queryParams.<name>.regex` (full-match RE2).
pub fn gamma_match_requests(m: &HttpRoute) -> Result<Vec<Map<String, Value>>, String> {
    match_requests_of(m, true)
}

fn match_requests_of(m: &HttpRoute, gamma: bool) -> Result<Vec<Map<String, Value>>, String> {
    let mut base = Map::new();
    base.insert("name".into(), json!(m.name));
    if let Some(p) = &m.path {
        match p.kind() {
            PathKind::Any => {}
            PathKind::Exact(e) if gamma => {
                base.insert("uri".into(), json!({ "exact": e }));
            }
            _ => {
                base.insert("uri".into(), json!({ "regex": p.full_match_regex() }));
            }
        }
    }
    let mut query = Map::new();
    for q in &m.query {
        if query.contains_key(&q.name) {
            return Err(format!(
                "query parameter `{}` appears twice; Istio takes one condition per parameter",
                q.name
            ));
        }
        query.insert(q.name.clone(), json!({ "regex": q.regex }));
    }
    if !query.is_empty() {
        base.insert("queryParams".into(), Value::Object(query));
    }
    let mut headers = Map::new();
    for h in &m.headers {
        match h.name.as_str() {
            "host" => {
                if base.contains_key("authority") {
                    return Err(
                        "header `host` appears twice; Istio takes one authority condition".into(),
                    );
                }
                base.insert("authority".into(), json!({ "regex": h.regex }));
            }
            "uri" | "scheme" | "method" | "authority" => {
                return Err(format!(
                    "Istio ignores the header name `{}` in match.headers",
                    h.name
                ));
            }
            name => {
                if headers.contains_key(name) {
                    return Err(format!(
                        "header `{name}` appears twice; Istio takes one condition per header"
                    ));
                }
                headers.insert(name.to_string(), json!({ "regex": h.regex }));
            }
        }
    }
    if !headers.is_empty() {
        base.insert("headers".into(), Value::Object(headers));
    }
    if m.methods.is_empty() {
        return Ok(vec![base]);
    }
    Ok(m.methods
        .iter()
        .map(|meth| {
            let mut r = base.clone();
            r.insert("method".into(), json!({ "exact": meth }));
            r
        })
        .collect())
}

fn scopes(split: &Split, conditional: bool, findings: &mut Vec<Finding>) -> Vec<Scope> {
    if split.ports.is_empty() {
        return vec![Scope {
            port: None,
            http: true,
            tcp: true,
            backends: (0..split.backends.len()).collect(),
        }];
    }
    let mut out: Vec<Scope> = Vec::new();
    for sp in &split.ports {
        let number = sp.port.port;
        if out.iter().any(|s| s.port == Some(number)) {
            continue;
        }
        let (http, tcp) = match port_protocol(&sp.port) {
            PortProtocol::Http => (true, false),
            PortProtocol::Tcp => (false, true),
            PortProtocol::Auto => (true, true),
            other => {
                // With matches, non-HTTP traffic goes to the root unchanged anyway.
                if !conditional {
                    let (feature, why) = match other {
                        PortProtocol::Tls => (
                            Feature::TcpRoutes,
                            "is TLS/HTTPS: Istio routes it by SNI (tls routes), which a TrafficSplit cannot name",
                        ),
                        PortProtocol::Udp => {
                            (Feature::UdpRoutes, "is UDP: Istio does not proxy UDP")
                        }
                        _ => (Feature::TcpRoutes, "is SCTP: Istio does not proxy SCTP"),
                    };
                    findings.push(Finding {
                        feature,
                        level: Level::None,
                        object: split.parent.clone(),
                        field: "spec.service".into(),
                        reason: format!(
                            "port {number} of Service {} {why}; traffic on it is not split (it goes to the root service)",
                            split.root
                        ),
                    });
                }
                continue;
            }
        };
        out.push(Scope {
            port: Some(number),
            http,
            tcp,
            backends: sp.backends.iter().map(|(i, _)| *i).collect(),
        });
    }
    out
}

fn destination(svc: &SvcKey, port: Option<u16>, cx: &Context) -> Value {
    let mut d = json!({ "host": svc.fqdn(&cx.cluster_domain) });
    if let Some(p) = port {
        d["port"] = json!({ "number": p });
    }
    d
}

/// Weighted destinations of one scope, summing to exactly 100.
fn destinations(
    split: &Split,
    scope: &Scope,
    cx: &Context,
    findings: &mut Vec<Finding>,
) -> Vec<Value> {
    let ws: Vec<u64> = scope
        .backends
        .iter()
        .map(|i| split.backends.get(*i).map_or(0, |b| b.weight))
        .collect();
    let total: u128 = ws.iter().map(|w| *w as u128).sum();
    let pct = largest_remainder(&ws, 100);
    let mut out = Vec::new();
    for (k, i) in scope.backends.iter().enumerate() {
        let Some(b) = split.backends.get(*i) else {
            continue;
        };
        if pct[k] == 0 {
            if ws[k] > 0 {
                let on = scope
                    .port
                    .map(|p| format!(" on port {p}"))
                    .unwrap_or_default();
                findings.push(Finding {
                    feature: Feature::TrafficSplit,
                    level: Level::Partial,
                    object: split.parent.clone(),
                    field: format!("spec.backends[{i}].weight"),
                    reason: format!(
                        "backend {} has weight {} of {total}{on}, under 0.5%: Istio weights are whole percentages summing to 100, so it gets no traffic",
                        b.service.name, ws[k]
                    ),
                });
            }
            continue;
        }
        out.push(json!({
            "destination": destination(&b.service, scope.port, cx),
            "weight": pct[k],
        }));
    }
    if out.is_empty() {
        // No backend serves this port: the root keeps its traffic.
        out.push(json!({
            "destination": destination(&split.root, scope.port, cx),
            "weight": 100,
        }));
    }
    out
}

fn with_port(name: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{name}-{p}"),
        None => name.to_string(),
    }
}

fn virtual_service(
    split: &Split,
    cx: &Context,
    api: &ApiVersions,
    findings: &mut Vec<Finding>,
) -> Option<OutputObject> {
    let matches = compiled_matches(split, findings);
    let scopes = scopes(split, matches.is_some(), findings);
    let mut http = Vec::new();
    let mut tcp = Vec::new();
    for scope in &scopes {
        let port_match = |mut m: Map<String, Value>| {
            if let Some(p) = scope.port {
                m.insert("port".into(), json!(p));
            }
            Value::Object(m)
        };
        if scope.http {
            let dests = destinations(split, scope, cx, findings);
            match &matches {
                None => {
                    let mut r = json!({ "name": with_port("split", scope.port) });
                    if scope.port.is_some() {
                        r["match"] = json!([port_match(Map::new())]);
                    }
                    r["route"] = json!(dests);
                    http.push(r);
                }
                Some(ms) => {
                    for (name, reqs) in ms {
                        http.push(json!({
                            "name": with_port(name, scope.port),
                            "match": reqs.iter().cloned().map(port_match).collect::<Vec<_>>(),
                            "route": dests,
                        }));
                    }
                    let mut r = json!({ "name": with_port("root", scope.port) });
                    if scope.port.is_some() {
                        r["match"] = json!([port_match(Map::new())]);
                    }
                    r["route"] = json!([{
                        "destination": destination(&split.root, scope.port, cx),
                        "weight": 100,
                    }]);
                    http.push(r);
                }
            }
        }
        if scope.tcp && matches.is_none() {
            let dests = destinations(split, scope, cx, findings);
            let mut r = Map::new();
            if scope.port.is_some() {
                r.insert("match".into(), json!([port_match(Map::new())]));
            }
            r.insert("route".into(), json!(dests));
            tcp.push(Value::Object(r));
        }
    }
    if http.is_empty() && tcp.is_empty() {
        return None;
    }
    let mut spec = json!({ "hosts": [split.root.fqdn(&cx.cluster_domain)] });
    if !http.is_empty() {
        spec["http"] = json!(http);
    }
    if !tcp.is_empty() {
        spec["tcp"] = json!(tcp);
    }
    let mut parents = vec![split.parent.clone()];
    parents.extend(split.matches.iter().map(|m| m.group.clone()));
    Some(OutputObject::new(
        cx,
        api.networking,
        "VirtualService",
        Some(&split.root.namespace),
        &split.root.name,
        parents,
        json!({ "spec": spec }),
    ))
}

/// `5s`, `1.5s`, `0.25s`: a protobuf Duration string (what Istio's CRD accepts).
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        format!("{}s", s.trim_end_matches('0'))
    }
}

/// A regex matching the literal `s`.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn finding(split: &Split, feature: Feature, level: Level, field: &str, reason: String) -> Finding {
    Finding {
        feature,
        level,
        object: split.parent.clone(),
        field: field.to_string(),
        reason,
    }
}

/// Header edits → Istio `HeaderOperations`, or why not.
fn header_ops(e: &HeaderEdit) -> Result<Value, String> {
    let mut ops = Map::new();
    let mut set = Map::new();
    for (n, v) in &e.set {
        set.insert(n.clone(), json!(v));
    }
    let mut add = Map::new();
    for (n, v) in &e.add {
        if add.insert(n.clone(), json!(v)).is_some() {
            return Err(format!(
                "header `{n}` is added twice; Istio's `add` is a map with one value per name"
            ));
        }
    }
    if !set.is_empty() {
        ops.insert("set".into(), Value::Object(set));
    }
    if !add.is_empty() {
        ops.insert("add".into(), Value::Object(add));
    }
    if !e.remove.is_empty() {
        ops.insert("remove".into(), json!(e.remove));
    }
    Ok(Value::Object(ops))
}

/// The uriRegexRewrite replacing the segment prefixes of `rule`'s matches with `to`.
fn prefix_rewrite(rule: &RouteRule, to: &str) -> Option<Value> {
    let prefixes: Vec<String> = rule
        .matches
        .iter()
        .map(|m| m.path.as_ref().and_then(|p| p.segment_prefix()))
        .collect::<Option<Vec<_>>>()?;
    if prefixes.is_empty() {
        return None;
    }
    let alt = prefixes
        .iter()
        .map(|p| escape(p))
        .collect::<Vec<_>>()
        .join("|");
    let to_trimmed = to.trim_end_matches('/');
    Some(if to_trimmed.is_empty() {
        // `/foo` → `/`, `/foo/bar` → `/bar`.
        json!({ "match": format!("^(?:{alt})/?(.*)$"), "rewrite": "/\\1" })
    } else {
        json!({ "match": format!("^(?:{alt})(/.*)?$"), "rewrite": format!("{to_trimmed}\\1") })
    })
}

/// The Istio `redirect` of `r` (with `uri` for a full-path replacement).
fn redirect_of(r: &Redirect, uri: Option<&str>) -> Value {
    let mut v = Map::new();
    if let Some(u) = uri {
        v.insert("uri".into(), json!(u));
    }
    if let Some(h) = &r.hostname {
        v.insert("authority".into(), json!(h));
    }
    if let Some(s) = &r.scheme {
        v.insert("scheme".into(), json!(s));
    }
    // Gateway API: without a port, the scheme's well-known port when the scheme changes,
    // else the request's port (what Istio's own Gateway API translation sets).
    match r.port {
        Some(p) => {
            v.insert("port".into(), json!(p));
        }
        None => {
            let derive = if r.scheme.is_some() {
                "FROM_PROTOCOL_DEFAULT"
            } else {
                "FROM_REQUEST_PORT"
            };
            v.insert("derivePort".into(), json!(derive));
        }
    }
    v.insert("redirectCode".into(), json!(r.status_code));
    Value::Object(v)
}

/// The weighted destinations of one rule on one scope; empty when no backend with a
/// positive weight serves the scope's port.
fn rule_destinations(
    split: &Split,
    rule: &RouteRule,
    scope: &Scope,
    cx: &Context,
    findings: &mut Vec<Finding>,
) -> Vec<Value> {
    let bs: Vec<(usize, u64)> = rule
        .backends
        .iter()
        .filter(|(i, _)| scope.backends.contains(i) && split.backends.get(*i).is_some())
        .copied()
        .collect();
    let ws: Vec<u64> = bs.iter().map(|(_, w)| *w).collect();
    let total: u128 = ws.iter().map(|w| *w as u128).sum();
    if total == 0 {
        return vec![];
    }
    let pct = largest_remainder(&ws, 100);
    let mut out = Vec::new();
    for (k, (i, w)) in bs.iter().enumerate() {
        let b = &split.backends[*i];
        if pct[k] == 0 {
            if *w > 0 {
                findings.push(finding(
                    split,
                    Feature::TrafficSplit,
                    Level::Partial,
                    &format!("{}.backendRefs", rule.field),
                    format!(
                        "backend {} has weight {w} of {total}: Istio weights are whole percentages summing to 100, so it gets no traffic",
                        b.service.name
                    ),
                ));
            }
            continue;
        }
        out.push(json!({
            "destination": destination(&b.service, scope.port, cx),
            "weight": pct[k],
        }));
    }
    out
}

/// The http routes of one rule on one scope (normally one; two per match for a
/// prefix-replacing redirect).
fn rule_routes(
    split: &Split,
    rule: &RouteRule,
    index: usize,
    scope: &Scope,
    cx: &Context,
    findings: &mut Vec<Finding>,
) -> Vec<Value> {
    let port_match = |mut m: Map<String, Value>| {
        if let Some(p) = scope.port {
            m.insert("port".into(), json!(p));
        }
        Value::Object(m)
    };
    // Matches (ORed). A match Istio cannot express is left out (reported): its requests
    // fall to the later rules, never to this rule's backends.
    let mut reqs: Vec<Map<String, Value>> = Vec::new();
    let mut kept: Vec<&HttpRoute> = Vec::new();
    for (j, m) in rule.matches.iter().enumerate() {
        match gamma_match_requests(m) {
            Ok(r) => {
                reqs.extend(r);
                kept.push(m);
            }
            Err(why) => findings.push(finding(
                split,
                Feature::RouteTables,
                Level::Partial,
                &format!("{}.matches[{j}]", rule.field),
                format!(
                    "{why}; the match is not emitted (its requests are not routed by this rule)"
                ),
            )),
        }
    }
    if !rule.matches.is_empty() && reqs.is_empty() {
        return vec![];
    }
    // Named after the rule's index in the route (`spec.rules[3]` → `rule-3`), not its
    // position after precedence ordering.
    let base_name = rule.name.clone().unwrap_or_else(|| {
        let n: String = rule
            .field
            .rsplit('[')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if n.is_empty() {
            format!("rule-{index}")
        } else {
            format!("rule-{n}")
        }
    });
    let mut r = Map::new();
    r.insert("name".into(), json!(with_port(&base_name, scope.port)));
    if reqs.is_empty() {
        if scope.port.is_some() {
            r.insert("match".into(), json!([port_match(Map::new())]));
        }
    } else {
        r.insert(
            "match".into(),
            json!(reqs.iter().cloned().map(port_match).collect::<Vec<_>>()),
        );
    }
    let mut request_ops: Option<Value> = None;
    let mut response_ops: Option<Value> = None;
    let mut rewrite = Map::new();
    let mut fail = false;
    for (k, f) in rule.filters.iter().enumerate() {
        let field = format!("{}.filters[{k}]", rule.field);
        match f {
            Filter::RequestHeaders(e) | Filter::ResponseHeaders(e) => {
                let slot = if matches!(f, Filter::RequestHeaders(_)) {
                    &mut request_ops
                } else {
                    &mut response_ops
                };
                match header_ops(e) {
                    Ok(v) if slot.is_none() => *slot = Some(v),
                    Ok(_) => {
                        findings.push(finding(
                            split,
                            Feature::HeaderModifiers,
                            Level::Partial,
                            &field,
                            "a second header modifier of the same direction: Istio takes one per route; the rule answers 500".into(),
                        ));
                        fail = true;
                    }
                    Err(why) => {
                        findings.push(finding(
                            split,
                            Feature::HeaderModifiers,
                            Level::Partial,
                            &field,
                            format!("{why}; the rule answers 500"),
                        ));
                        fail = true;
                    }
                }
            }
            Filter::Rewrite { hostname, path } => {
                if let Some(h) = hostname {
                    rewrite.insert("authority".into(), json!(h));
                }
                match path {
                    None => {}
                    Some(PathRewrite::Full(p)) => {
                        rewrite.insert(
                            "uriRegexRewrite".into(),
                            json!({ "match": "^.*$", "rewrite": p }),
                        );
                    }
                    Some(PathRewrite::Prefix(p)) => match prefix_rewrite(rule, p) {
                        Some(v) => {
                            rewrite.insert("uriRegexRewrite".into(), v);
                        }
                        None => {
                            findings.push(finding(
                                split,
                                Feature::UrlRewrite,
                                Level::Partial,
                                &field,
                                "a prefix rewrite needs every match to have a path prefix; the rule answers 500".into(),
                            ));
                            fail = true;
                        }
                    },
                }
            }
            Filter::Redirect(_) => {}
        }
    }
    let mut headers = Map::new();
    if let Some(v) = request_ops {
        headers.insert("request".into(), v);
    }
    if let Some(v) = response_ops {
        headers.insert("response".into(), v);
    }
    let timeout = rule.timeout_ms.filter(|t| *t > 0);
    if let Some(redirect) = rule.redirect() {
        if !headers.is_empty() {
            r.insert("headers".into(), Value::Object(headers));
        }
        match &redirect.path {
            None => {
                r.insert("redirect".into(), redirect_of(redirect, None));
            }
            Some(PathRewrite::Full(p)) => {
                r.insert("redirect".into(), redirect_of(redirect, Some(p)));
            }
            Some(PathRewrite::Prefix(to)) => {
                // Istio replaces the matched prefix only when the match is `uri.prefix`:
                // per match, `exact P` (→ `to`) then `prefix P/` (→ `to/`).
                let to_slash = format!("{}/", to.trim_end_matches('/'));
                let mut out = Vec::new();
                for (j, m) in kept.iter().enumerate() {
                    let Some(prefix) = m.path.as_ref().and_then(|p| p.segment_prefix()) else {
                        findings.push(finding(
                            split,
                            Feature::Redirects,
                            Level::Partial,
                            &format!("{}.matches[{j}]", rule.field),
                            "a prefix redirect needs a path prefix on every match; the match is not emitted".into(),
                        ));
                        continue;
                    };
                    let Ok(ms) = gamma_match_requests(m) else {
                        continue;
                    };
                    for (suffix, uri, target) in [
                        ("exact", json!({ "exact": prefix }), to.as_str()),
                        (
                            "prefix",
                            json!({ "prefix": format!("{prefix}/") }),
                            to_slash.as_str(),
                        ),
                    ] {
                        let mut route = r.clone();
                        route.insert(
                            "name".into(),
                            json!(with_port(&format!("{base_name}-{j}-{suffix}"), scope.port)),
                        );
                        let reqs: Vec<Value> = ms
                            .iter()
                            .cloned()
                            .map(|mut q| {
                                q.insert("uri".into(), uri.clone());
                                port_match(q)
                            })
                            .collect();
                        route.insert("match".into(), json!(reqs));
                        route.insert("redirect".into(), redirect_of(redirect, Some(target)));
                        out.push(Value::Object(route));
                    }
                }
                return out;
            }
        }
        return vec![Value::Object(r)];
    }
    let dests = if fail {
        vec![]
    } else {
        rule_destinations(split, rule, scope, cx, findings)
    };
    if dests.is_empty() {
        r.insert("directResponse".into(), json!({ "status": 500 }));
        return vec![Value::Object(r)];
    }
    r.insert("route".into(), json!(dests));
    if !headers.is_empty() {
        r.insert("headers".into(), Value::Object(headers));
    }
    if !rewrite.is_empty() {
        r.insert("rewrite".into(), Value::Object(rewrite));
    }
    match (
        timeout,
        rule.backend_timeout_ms.filter(|b| *b > 0),
        &rule.retry,
    ) {
        (Some(t), Some(b), None) => {
            r.insert("timeout".into(), json!(duration(t.min(b))));
        }
        (None, Some(b), None) => {
            r.insert("timeout".into(), json!(duration(b)));
        }
        (Some(t), _, _) => {
            r.insert("timeout".into(), json!(duration(t)));
        }
        _ => {}
    }
    if rule.backend_timeout_ms.is_some_and(|b| b > 0) && rule.retry.is_none() {
        findings.push(finding(
            split,
            Feature::Timeouts,
            Level::Partial,
            &format!("{}.timeouts.backendRequest", rule.field),
            "without a retry, Istio takes a per-try timeout only with retries: the backendRequest timeout bounds the whole request instead (Istio's default retries share it)".into(),
        ));
    }
    if let Some(retry) = &rule.retry {
        let mut on = vec![
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        if !retry.codes.is_empty() {
            on.push("retriable-status-codes".into());
            on.extend(retry.codes.iter().map(|c| c.to_string()));
        }
        let mut rv = json!({ "attempts": retry.attempts, "retryOn": on.join(",") });
        if let Some(b) = rule.backend_timeout_ms.filter(|b| *b > 0) {
            rv["perTryTimeout"] = json!(duration(b));
        }
        r.insert("retries".into(), rv);
        if retry.backoff_ms.is_some() {
            findings.push(finding(
                split,
                Feature::Retries,
                Level::Partial,
                &format!("{}.retry.backoff", rule.field),
                "Istio's VirtualService has no retry backoff: Envoy's default (25ms base, exponential) applies".into(),
            ));
        }
    }
    vec![Value::Object(r)]
}

/// A route table ([`Split::rules`]) → one VirtualService.
fn route_table(
    split: &Split,
    place: &Placement,
    cx: &Context,
    api: &ApiVersions,
    findings: &mut Vec<Finding>,
) -> Option<OutputObject> {
    let scopes = scopes(split, true, findings);
    let mut http = Vec::new();
    for scope in &scopes {
        if !scope.http {
            findings.push(finding(
                split,
                Feature::RouteTables,
                Level::Partial,
                "spec.rules",
                format!(
                    "port {} of Service {} is declared TCP: Istio applies no HTTP rules there (its traffic goes to the Service unrouted)",
                    scope.port.unwrap_or_default(),
                    split.root
                ),
            ));
            continue;
        }
        for (i, rule) in split.rules.iter().enumerate() {
            http.extend(rule_routes(split, rule, i, scope, cx, findings));
        }
    }
    if http.is_empty() {
        return None;
    }
    let mut spec = json!({ "hosts": [split.root.fqdn(&cx.cluster_domain)] });
    if place.export_here {
        spec["exportTo"] = json!(["."]);
    }
    spec["http"] = json!(http);
    Some(OutputObject::new(
        cx,
        api.networking,
        "VirtualService",
        Some(&place.namespace),
        &place.name,
        vec![split.parent.clone()],
        json!({ "spec": spec }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshbridge_core::ir::TargetPort;

    fn port(name: Option<&str>, app: Option<&str>, proto: Protocol) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            port: 80,
            target_port: TargetPort::Number(80),
            protocol: proto,
            app_protocol: app.map(str::to_string),
        }
    }

    #[test]
    fn protocols() {
        use PortProtocol::*;
        let t = Protocol::Tcp;
        assert_eq!(port_protocol(&port(Some("http"), None, t)), Http);
        assert_eq!(port_protocol(&port(Some("grpc-web"), None, t)), Http);
        assert_eq!(port_protocol(&port(None, Some("http"), t)), Http);
        assert_eq!(port_protocol(&port(Some("tcp-db"), None, t)), Tcp);
        assert_eq!(port_protocol(&port(Some("mysql"), None, t)), Tcp);
        assert_eq!(port_protocol(&port(Some("https"), None, t)), Tls);
        assert_eq!(port_protocol(&port(Some("web"), Some("tls"), t)), Tls);
        assert_eq!(port_protocol(&port(Some("web"), None, t)), Auto);
        assert_eq!(port_protocol(&port(None, None, t)), Auto);
        assert_eq!(port_protocol(&port(Some("http"), None, Protocol::Udp)), Udp);
        assert_eq!(port_protocol(&port(None, None, Protocol::Sctp)), Sctp);
    }
}
