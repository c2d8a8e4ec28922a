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

use crate::ApiVersions;
use meshbridge_core::ir::{HttpRoute, PathKind, Protocol, ServicePort, Split, SvcKey};
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
        if let Some(vs) = virtual_service(split, cx, api, &mut out.findings) {
            out.objects.push(vs);
        }
    }
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
    let mut base = Map::new();
    base.insert("name".into(), json!(m.name));
    if let Some(p) = &m.path
        && p.kind() != PathKind::Any
    {
        base.insert("uri".into(), json!({ "regex": p.full_match_regex() }));
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
