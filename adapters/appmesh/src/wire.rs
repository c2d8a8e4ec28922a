//! The App Mesh API form of the model: [`DesiredState`](crate::DesiredState) resources as
//! `aws-sdk-appmesh` specs, and one canonical JSON shape for comparing a desired spec with
//! a described one (fields meshbridge never sets count as a difference, so an edit adding
//! them is reverted too).

use crate::crd::http_match_json;
use crate::model::*;
use aws_sdk_appmesh::types as t;
use serde_json::{Value, json};

fn port_mapping(l: &PortMapping) -> Result<t::PortMapping, String> {
    t::PortMapping::builder()
        .port(i32::from(l.port))
        .protocol(t::PortProtocol::from(l.protocol.as_str()))
        .build()
        .map_err(|e| e.to_string())
}

/// One listener per port mapping (`None` when there are none, as the builder leaves it).
fn listeners<L>(
    ls: &[PortMapping],
    listener: impl Fn(t::PortMapping) -> L,
) -> Result<Option<Vec<L>>, String> {
    let v: Vec<L> = ls
        .iter()
        .map(|l| port_mapping(l).map(&listener))
        .collect::<Result<_, _>>()?;
    Ok(Some(v).filter(|v| !v.is_empty()))
}

/// The API spec of a virtual node.
pub fn node_spec(vn: &VirtualNodeDef) -> Result<t::VirtualNodeSpec, String> {
    let b = t::VirtualNodeSpec::builder().set_listeners(listeners(&vn.listeners, |pm| {
        t::Listener::builder().port_mapping(pm).build()
    })?);
    let dns = t::DnsServiceDiscovery::builder()
        .hostname(&vn.hostname)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(b.service_discovery(t::ServiceDiscovery::Dns(dns)).build())
}

/// The API spec of a virtual router (its routes are separate resources).
pub fn router_spec(vr: &VirtualRouterDef) -> Result<t::VirtualRouterSpec, String> {
    let ls = listeners(&vr.listeners, |pm| {
        t::VirtualRouterListener::builder().port_mapping(pm).build()
    })?;
    Ok(t::VirtualRouterSpec::builder().set_listeners(ls).build())
}

fn weighted(ts: &[Target]) -> Result<Vec<t::WeightedTarget>, String> {
    ts.iter()
        .map(|tg| {
            t::WeightedTarget::builder()
                .virtual_node(&tg.node.aws_name)
                .weight(i32::from(tg.weight))
                .set_port(tg.port.map(i32::from))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The API spec of a route.
pub fn route_spec(r: &RouteDef) -> Result<t::RouteSpec, String> {
    let b = t::RouteSpec::builder().priority(i32::from(r.priority));
    Ok(match &r.kind {
        RouteKind::Http {
            http2,
            r#match,
            targets,
        } => {
            let mut m = t::HttpRouteMatch::builder().set_port(r#match.port.map(i32::from));
            m = match &r#match.path {
                PathMatch::Prefix(p) => m.prefix(p),
                PathMatch::Exact(p) => m.path(t::HttpPathMatch::builder().exact(p).build()),
                PathMatch::Regex(p) => m.path(t::HttpPathMatch::builder().regex(p).build()),
            };
            if let Some(meth) = &r#match.method {
                m = m.method(t::HttpMethod::from(meth.as_str()));
            }
            for h in &r#match.headers {
                let mm = match &h.value {
                    HeaderValue::Exact(v) => t::HeaderMatchMethod::Exact(v.clone()),
                    HeaderValue::Regex(v) => t::HeaderMatchMethod::Regex(v.clone()),
                };
                m = m.headers(
                    t::HttpRouteHeader::builder()
                        .name(&h.name)
                        .r#match(mm)
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            let action = t::HttpRouteAction::builder()
                .set_weighted_targets(Some(weighted(targets)?))
                .build()
                .map_err(|e| e.to_string())?;
            let hr = t::HttpRoute::builder()
                .r#match(m.build())
                .action(action)
                .build();
            if *http2 {
                b.http2_route(hr).build()
            } else {
                b.http_route(hr).build()
            }
        }
        RouteKind::Tcp { port, targets } => {
            let action = t::TcpRouteAction::builder()
                .set_weighted_targets(Some(weighted(targets)?))
                .build()
                .map_err(|e| e.to_string())?;
            let mut tr = t::TcpRoute::builder().action(action);
            if let Some(p) = port {
                tr = tr.r#match(t::TcpRouteMatch::builder().port(i32::from(*p)).build());
            }
            b.tcp_route(tr.build()).build()
        }
    })
}

/// The API spec of a virtual service.
pub fn service_spec(vs: &VirtualServiceDef) -> Result<t::VirtualServiceSpec, String> {
    let p = t::VirtualRouterServiceProvider::builder()
        .virtual_router_name(&vs.router.aws_name)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(t::VirtualServiceSpec::builder()
        .provider(t::VirtualServiceProvider::VirtualRouter(p))
        .build())
}

// ---- comparison: desired and described specs in one canonical JSON shape ----
// Fields meshbridge never sets make the described form differ (`"extra": true`), so an
// edit adding them is reverted too.

fn mapping_wire(port: i32, protocol: &str) -> Value {
    json!({"port": port, "protocol": protocol})
}

fn sorted(mut v: Vec<Value>) -> Value {
    v.sort_by_key(|x| x.to_string());
    Value::Array(v)
}

pub(crate) fn node_wire_desired(vn: &VirtualNodeDef) -> Value {
    json!({
        "listeners": sorted(vn.listeners.iter().map(|l| mapping_wire(i32::from(l.port), l.protocol.as_str())).collect()),
        "dns": vn.hostname,
        "extra": false,
    })
}

pub(crate) fn node_wire(s: &t::VirtualNodeSpec) -> Value {
    let mut extra =
        s.backend_defaults().is_some() || !s.backends().is_empty() || s.logging().is_some();
    let mut ls = Vec::new();
    for l in s.listeners() {
        extra |= l.tls().is_some()
            || l.health_check().is_some()
            || l.timeout().is_some()
            || l.outlier_detection().is_some()
            || l.connection_pool().is_some();
        match l.port_mapping() {
            Some(pm) => ls.push(mapping_wire(pm.port(), pm.protocol().as_str())),
            None => extra = true,
        }
    }
    let dns = match s.service_discovery() {
        Some(t::ServiceDiscovery::Dns(d)) => {
            extra |= d.ip_preference().is_some()
                || d.response_type()
                    .is_some_and(|r| *r != t::DnsResponseType::Loadbalancer);
            json!(d.hostname())
        }
        Some(_) => json!({"other": true}),
        None => Value::Null,
    };
    json!({"listeners": sorted(ls), "dns": dns, "extra": extra})
}

pub(crate) fn router_wire_desired(vr: &VirtualRouterDef) -> Value {
    sorted(
        vr.listeners
            .iter()
            .map(|l| mapping_wire(i32::from(l.port), l.protocol.as_str()))
            .collect(),
    )
}

pub(crate) fn router_wire(s: &t::VirtualRouterSpec) -> Value {
    sorted(
        s.listeners()
            .iter()
            .map(|l| match l.port_mapping() {
                Some(pm) => mapping_wire(pm.port(), pm.protocol().as_str()),
                None => Value::Null,
            })
            .collect(),
    )
}

fn targets_wire_desired(ts: &[Target]) -> Value {
    Value::Array(
        ts.iter()
            .map(
                |tg| json!({"virtualNode": tg.node.aws_name, "weight": tg.weight, "port": tg.port}),
            )
            .collect(),
    )
}

fn targets_wire(ts: &[t::WeightedTarget]) -> Value {
    Value::Array(
        ts.iter()
            .map(|tg| json!({"virtualNode": tg.virtual_node(), "weight": tg.weight(), "port": tg.port()}))
            .collect(),
    )
}

pub(crate) fn route_wire_desired(r: &RouteDef) -> Value {
    match &r.kind {
        RouteKind::Http {
            http2,
            r#match,
            targets,
        } => json!({
            "priority": r.priority,
            "type": if *http2 { "http2" } else { "http" },
            "match": http_match_json(r#match),
            "targets": targets_wire_desired(targets),
            "extra": false,
        }),
        RouteKind::Tcp { port, targets } => json!({
            "priority": r.priority,
            "type": "tcp",
            "match": {"port": port},
            "targets": targets_wire_desired(targets),
            "extra": false,
        }),
    }
}

fn http_route_wire(h: &t::HttpRoute, extra: &mut bool) -> (Value, Value) {
    *extra |= h.retry_policy().is_some() || h.timeout().is_some();
    let mut m = serde_json::Map::new();
    if let Some(hm) = h.r#match() {
        *extra |= !hm.query_parameters().is_empty() || hm.scheme().is_some();
        if let Some(p) = hm.prefix() {
            m.insert("prefix".into(), json!(p));
        }
        if let Some(p) = hm.path() {
            let mut pm = serde_json::Map::new();
            if let Some(e) = p.exact() {
                pm.insert("exact".into(), json!(e));
            }
            if let Some(r) = p.regex() {
                pm.insert("regex".into(), json!(r));
            }
            m.insert("path".into(), Value::Object(pm));
        }
        if let Some(meth) = hm.method() {
            m.insert("method".into(), json!(meth.as_str()));
        }
        if !hm.headers().is_empty() {
            let hs: Vec<Value> = hm
                .headers()
                .iter()
                .map(|hd| {
                    *extra |= hd.invert() == Some(true);
                    let mm = match hd.r#match() {
                        Some(t::HeaderMatchMethod::Exact(v)) => json!({"exact": v}),
                        Some(t::HeaderMatchMethod::Regex(v)) => json!({"regex": v}),
                        Some(_) => json!({"other": true}),
                        None => Value::Null,
                    };
                    json!({"name": hd.name(), "match": mm})
                })
                .collect();
            m.insert("headers".into(), Value::Array(hs));
        }
        if let Some(p) = hm.port() {
            m.insert("port".into(), json!(p));
        }
    }
    let targets = h
        .action()
        .map(|a| targets_wire(a.weighted_targets()))
        .unwrap_or(Value::Null);
    (Value::Object(m), targets)
}

pub(crate) fn route_wire(s: &t::RouteSpec) -> Value {
    let mut extra = s.grpc_route().is_some();
    let priority = s.priority();
    if let Some(h) = s.http_route() {
        extra |= s.http2_route().is_some() || s.tcp_route().is_some();
        let (m, targets) = http_route_wire(h, &mut extra);
        return json!({"priority": priority, "type": "http", "match": m, "targets": targets, "extra": extra});
    }
    if let Some(h) = s.http2_route() {
        extra |= s.tcp_route().is_some();
        let (m, targets) = http_route_wire(h, &mut extra);
        return json!({"priority": priority, "type": "http2", "match": m, "targets": targets, "extra": extra});
    }
    if let Some(tr) = s.tcp_route() {
        extra |= tr.timeout().is_some();
        let targets = tr
            .action()
            .map(|a| targets_wire(a.weighted_targets()))
            .unwrap_or(Value::Null);
        let port = tr.r#match().and_then(|m| m.port());
        return json!({"priority": priority, "type": "tcp", "match": {"port": port}, "targets": targets, "extra": extra});
    }
    json!({"priority": priority, "type": "other", "extra": true})
}

pub(crate) fn service_wire_desired(vs: &VirtualServiceDef) -> Value {
    json!({"router": vs.router.aws_name})
}

pub(crate) fn service_wire(s: &t::VirtualServiceSpec) -> Value {
    match s.provider() {
        Some(t::VirtualServiceProvider::VirtualRouter(r)) => {
            json!({"router": r.virtual_router_name()})
        }
        Some(t::VirtualServiceProvider::VirtualNode(n)) => json!({"node": n.virtual_node_name()}),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &str) -> Names {
        Names {
            namespace: "ns".into(),
            k8s_name: n.into(),
            aws_name: format!("{n}_ns"),
        }
    }

    /// A spec built for the API reads back (describe) as equal to the desired form.
    #[test]
    fn wire_forms_round_trip() {
        let r = RouteDef {
            name: "p80-m0-get".into(),
            priority: 1,
            kind: RouteKind::Http {
                http2: false,
                r#match: HttpMatch {
                    path: PathMatch::Regex("(?:/v[0-9]).*".into()),
                    method: Some("GET".into()),
                    headers: vec![HeaderDef {
                        name: "x-canary".into(),
                        value: HeaderValue::Exact("1".into()),
                    }],
                    port: None,
                },
                targets: vec![
                    Target {
                        node: names("a"),
                        weight: 67,
                        port: None,
                    },
                    Target {
                        node: names("b"),
                        weight: 33,
                        port: None,
                    },
                ],
            },
        };
        let spec = route_spec(&r).unwrap();
        assert_eq!(route_wire(&spec), route_wire_desired(&r));
        let mut r2 = r.clone();
        r2.priority = 2;
        assert_ne!(route_wire(&spec), route_wire_desired(&r2));
        let tcp = RouteDef {
            name: "p5432-tcp".into(),
            priority: 1000,
            kind: RouteKind::Tcp {
                port: Some(5432),
                targets: vec![Target {
                    node: names("db"),
                    weight: 100,
                    port: Some(5432),
                }],
            },
        };
        assert_eq!(
            route_wire(&route_spec(&tcp).unwrap()),
            route_wire_desired(&tcp)
        );
        let vn = VirtualNodeDef {
            names: names("a"),
            hostname: "a.ns.svc.cluster.local".into(),
            listeners: vec![PortMapping {
                port: 8080,
                protocol: PortProtocol::Http,
            }],
            pod_selector: None,
            parents: Default::default(),
        };
        assert_eq!(node_wire(&node_spec(&vn).unwrap()), node_wire_desired(&vn));
        let vr = VirtualRouterDef {
            names: names("r"),
            listeners: vn.listeners.clone(),
            routes: vec![],
            parents: Default::default(),
        };
        assert_eq!(
            router_wire(&router_spec(&vr).unwrap()),
            router_wire_desired(&vr)
        );
        let vs = VirtualServiceDef {
            names: names("r"),
            router: names("r"),
            parents: Default::default(),
        };
        assert_eq!(
            service_wire(&service_spec(&vs).unwrap()),
            service_wire_desired(&vs)
        );
    }
}
