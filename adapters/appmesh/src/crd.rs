//! [`DesiredState`] → App Mesh controller CRDs (`appmesh.k8s.aws/v1beta2`).
//!
//! Webhook rules honoured: `spec.meshRef` is never set (the controller's mutator fills it
//! in and rejects creates that carry it); `awsName` is written out, equal to the
//! controller's default for nodes and routers (`<name>_<namespace>`) and to the FQDN clients
//! dial for services; every HTTP match has exactly one of `prefix` / `path`, and `path`
//! exactly one of `exact` / `regex`; route names are unique per router.

use crate::model::*;
use meshbridge_core::model::ObjectKey;
use meshbridge_core::{Context, OutputObject, Translation};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

pub const API_VERSION: &str = "appmesh.k8s.aws/v1beta2";

/// One App Mesh controller object of `kind` (named by `names`, with `spec`).
fn object(
    cx: &Context,
    kind: &str,
    names: &Names,
    parents: &BTreeSet<ObjectKey>,
    spec: Value,
) -> OutputObject {
    let parents = parents.iter().cloned().collect();
    let body = json!({ "spec": spec });
    OutputObject::new(
        cx,
        API_VERSION,
        kind,
        Some(&names.namespace),
        &names.k8s_name,
        parents,
        body,
    )
}

fn listener(l: &PortMapping) -> Value {
    json!({"portMapping": {"port": l.port, "protocol": l.protocol.as_str()}})
}

fn target(t: &Target, router_ns: &str) -> Value {
    let mut r = json!({"name": t.node.k8s_name});
    if t.node.namespace != router_ns {
        r["namespace"] = json!(t.node.namespace);
    }
    let mut v = json!({"virtualNodeRef": r, "weight": t.weight});
    if let Some(p) = t.port {
        v["port"] = json!(p);
    }
    v
}

/// The `match` object of an HTTP route (shared by the CRD and API renderings: the field
/// names are the same).
pub fn http_match_json(m: &HttpMatch) -> Value {
    let mut o = Map::new();
    match &m.path {
        PathMatch::Prefix(p) => {
            o.insert("prefix".into(), json!(p));
        }
        PathMatch::Exact(p) => {
            o.insert("path".into(), json!({"exact": p}));
        }
        PathMatch::Regex(p) => {
            o.insert("path".into(), json!({"regex": p}));
        }
    }
    if let Some(meth) = &m.method {
        o.insert("method".into(), json!(meth));
    }
    if !m.headers.is_empty() {
        let hs: Vec<Value> = m
            .headers
            .iter()
            .map(|h| {
                let mm = match &h.value {
                    HeaderValue::Exact(v) => json!({"exact": v}),
                    HeaderValue::Regex(v) => json!({"regex": v}),
                };
                json!({"name": h.name, "match": mm})
            })
            .collect();
        o.insert("headers".into(), Value::Array(hs));
    }
    if let Some(p) = m.port {
        o.insert("port".into(), json!(p));
    }
    Value::Object(o)
}

/// An App Mesh `Duration`.
fn duration(ms: u64) -> Value {
    if ms.is_multiple_of(1000) {
        json!({"unit": "s", "value": ms / 1000})
    } else {
        json!({"unit": "ms", "value": ms})
    }
}

/// Adds query matches, timeout and retry policy to an `httpRoute` / `http2Route` object.
fn add_extras(hr: &mut Value, x: &RouteExtras) {
    if !x.query.is_empty() {
        hr["match"]["queryParameters"] = x
            .query
            .iter()
            .map(|(n, v)| json!({"name": n, "match": {"exact": v}}))
            .collect();
    }
    if let Some(ms) = x.per_request_ms {
        hr["timeout"] = json!({"perRequest": duration(ms)});
    }
    if let Some(rt) = &x.retry {
        let mut p = json!({
            "maxRetries": rt.max_retries,
            "perRetryTimeout": duration(rt.per_retry_timeout_ms),
        });
        if !rt.http_events.is_empty() {
            p["httpRetryEvents"] = json!(rt.http_events);
        }
        if !rt.tcp_events.is_empty() {
            p["tcpRetryEvents"] = json!(rt.tcp_events);
        }
        hr["retryPolicy"] = p;
    }
}

fn route(r: &RouteDef, router_ns: &str, extras: Option<&RouteExtras>) -> Value {
    let targets = |ts: &[Target]| -> Value {
        Value::Array(ts.iter().map(|t| target(t, router_ns)).collect())
    };
    match &r.kind {
        RouteKind::Http {
            http2,
            r#match,
            targets: ts,
        } => {
            let key = if *http2 { "http2Route" } else { "httpRoute" };
            let mut hr = json!({
                "match": http_match_json(r#match),
                "action": {"weightedTargets": targets(ts)},
            });
            if let Some(x) = extras {
                add_extras(&mut hr, x);
            }
            json!({"name": r.name, "priority": r.priority, key: hr})
        }
        RouteKind::Tcp { port, targets: ts } => {
            let mut tcp = json!({"action": {"weightedTargets": targets(ts)}});
            if let Some(p) = port {
                tcp["match"] = json!({"port": p});
            }
            json!({"name": r.name, "priority": r.priority, "tcpRoute": tcp})
        }
    }
}

/// Renders the controller CRDs of a desired state (findings are passed through).
pub fn render(st: &DesiredState, cx: &Context) -> Translation {
    let mut t = Translation::default();
    for vn in st.virtual_nodes.values() {
        let mut spec = json!({
            "awsName": vn.names.aws_name,
            "listeners": vn.listeners.iter().map(listener).collect::<Vec<_>>(),
            "serviceDiscovery": {"dns": {"hostname": vn.hostname}},
        });
        if let Some(sel) = &vn.pod_selector {
            spec["podSelector"] = json!({"matchLabels": sel});
        }
        t.objects
            .push(object(cx, "VirtualNode", &vn.names, &vn.parents, spec));
    }
    for vr in st.virtual_routers.values() {
        let spec = json!({
            "awsName": vr.names.aws_name,
            "listeners": vr.listeners.iter().map(listener).collect::<Vec<_>>(),
            "routes": vr
                .routes
                .iter()
                .map(|r| {
                    let x = st.route_extras.get(&(vr.names.aws_name.clone(), r.name.clone()));
                    route(r, &vr.names.namespace, x)
                })
                .collect::<Vec<_>>(),
        });
        t.objects
            .push(object(cx, "VirtualRouter", &vr.names, &vr.parents, spec));
    }
    for vs in st.virtual_services.values() {
        let mut r = json!({"name": vs.router.k8s_name});
        if vs.router.namespace != vs.names.namespace {
            r["namespace"] = json!(vs.router.namespace);
        }
        let spec = json!({
            "awsName": vs.names.aws_name,
            "provider": {"virtualRouter": {"virtualRouterRef": r}},
        });
        t.objects
            .push(object(cx, "VirtualService", &vs.names, &vs.parents, spec));
    }
    t.findings = st.findings.clone();
    t.finish()
}
