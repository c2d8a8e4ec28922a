//! The TrafficMetrics API (`metrics.smi-spec.io/v1alpha1`) answered from a [`Window`]: the
//! paths an aggregated API server serves, and the documents, exactly as the SMI spec shapes
//! them.
//!
//! Paths (below `/apis/metrics.smi-spec.io/v1alpha1`):
//! - `` — the `APIResourceList`;
//! - `/namespaces`, `/namespaces/{ns}`, `/namespaces/{ns}/edges`;
//! - `/{plural}` (every namespace), `/namespaces/{ns}/{plural}`,
//!   `/namespaces/{ns}/{plural}/{name}`, `/namespaces/{ns}/{plural}/{name}/edges` for
//!   `pods`, `deployments`, `daemonsets`, `statefulsets`.
//!
//! A resource's own metrics are what it served: every request to it, from any client
//! (`edge: {direction: from, side: server, resource: {}}`). Its edges list both ways: a peer it
//! called (`direction: to, side: client`) and a peer that called it (`direction: from, side:
//! server`), the peer as a resource of the same kind (a pod of no such workload: as a Pod).
//! Latencies are in seconds as Quantities (`10m` = 10 ms), as in the spec's example;
//! `success_count` counts non-5xx responses, `failure_count` the rest; latencies are left out
//! when nothing was served.

use super::{EdgeSample, Histogram, Peer, Window};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

pub const GROUP: &str = "metrics.smi-spec.io";
pub const VERSION: &str = "v1alpha1";
pub const GROUP_VERSION: &str = "metrics.smi-spec.io/v1alpha1";
/// Where the API lives on a server (`kubectl get --raw` paths start here).
pub const PREFIX: &str = "/apis/metrics.smi-spec.io/v1alpha1";

/// The resource kinds served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceKind {
    Namespace,
    Pod,
    Deployment,
    DaemonSet,
    StatefulSet,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Namespace,
        ResourceKind::Pod,
        ResourceKind::Deployment,
        ResourceKind::DaemonSet,
        ResourceKind::StatefulSet,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            ResourceKind::Namespace => "Namespace",
            ResourceKind::Pod => "Pod",
            ResourceKind::Deployment => "Deployment",
            ResourceKind::DaemonSet => "DaemonSet",
            ResourceKind::StatefulSet => "StatefulSet",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Namespace => "namespaces",
            ResourceKind::Pod => "pods",
            ResourceKind::Deployment => "deployments",
            ResourceKind::DaemonSet => "daemonsets",
            ResourceKind::StatefulSet => "statefulsets",
        }
    }

    /// From a plural or the `kubectl` short forms (`deploy`, `po`, `ds`, `sts`, `ns`).
    pub fn parse(s: &str) -> Option<ResourceKind> {
        let s = s.to_ascii_lowercase();
        ResourceKind::ALL.into_iter().find(|k| {
            s == k.plural()
                || s == k.kind().to_ascii_lowercase()
                || matches!(
                    (k, s.as_str()),
                    (ResourceKind::Namespace, "ns")
                        | (ResourceKind::Pod, "po")
                        | (ResourceKind::Deployment, "deploy")
                        | (ResourceKind::DaemonSet, "ds")
                        | (ResourceKind::StatefulSet, "sts")
                )
        })
    }
}

/// One SMI resource: a namespace (`namespace` = its name, `name` = its name) or a namespaced
/// object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resource {
    pub kind: ResourceKind,
    pub namespace: String,
    pub name: String,
}

impl Resource {
    /// `peer` seen as a resource of `kind`, if it is one.
    pub fn of(kind: ResourceKind, peer: &Peer) -> Option<Resource> {
        let name = match kind {
            ResourceKind::Namespace => Some(peer.namespace.clone()),
            ResourceKind::Pod => peer.pod.clone(),
            k => peer
                .owner
                .as_ref()
                .filter(|o| o.kind == k.kind())
                .map(|o| o.name.clone()),
        }?;
        Some(Resource {
            kind,
            namespace: peer.namespace.clone(),
            name,
        })
    }

    fn matches(&self, peer: &Peer) -> bool {
        Resource::of(self.kind, peer).as_ref() == Some(self)
    }

    fn reference(&self) -> Value {
        if self.kind == ResourceKind::Namespace {
            json!({"kind": "Namespace", "name": self.name})
        } else {
            json!({"kind": self.kind.kind(), "namespace": self.namespace, "name": self.name})
        }
    }

    fn self_link(&self) -> String {
        if self.kind == ResourceKind::Namespace {
            format!("{PREFIX}/namespaces/{}", self.name)
        } else {
            format!(
                "{PREFIX}/namespaces/{}/{}/{}",
                self.namespace,
                self.kind.plural(),
                self.name
            )
        }
    }
}

/// An error answer: a Kubernetes `Status` document with the HTTP status.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    fn not_found(message: String) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message,
        }
    }

    pub fn to_status(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code})
    }
}

/// Totals of several samples: counts and merged latency buckets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub success: f64,
    pub failure: f64,
    pub denied: f64,
    pub latency: Histogram,
}

impl Totals {
    pub fn add(&mut self, e: &EdgeSample) {
        self.success += e.success;
        self.failure += e.failure;
        self.denied += e.denied;
        self.latency.add(&e.latency);
    }

    pub fn requests(&self) -> f64 {
        self.success + self.failure
    }

    /// The spec's five metrics (latencies only when something was served).
    pub fn metrics(&self) -> Value {
        let mut v = Vec::new();
        if self.requests() > 0.0 {
            for (name, q) in [
                ("p99_response_latency", 0.99),
                ("p90_response_latency", 0.90),
                ("p50_response_latency", 0.50),
            ] {
                if let Some(ms) = self.latency.quantile(q) {
                    v.push(json!({"name": name, "unit": "seconds", "value": seconds_quantity(ms)}));
                }
            }
        }
        v.push(json!({"name": "success_count", "value": count_quantity(self.success)}));
        v.push(json!({"name": "failure_count", "value": count_quantity(self.failure)}));
        Value::Array(v)
    }
}

/// Milliseconds as a Quantity of seconds: `10m` for 10 ms, `1500u` for 1.5 ms.
pub fn seconds_quantity(ms: f64) -> String {
    let us = (ms * 1000.0).round().max(0.0) as u64;
    if us.is_multiple_of(1000) {
        format!("{}m", us / 1000)
    } else {
        format!("{us}u")
    }
}

/// A count (windowed increases can be fractional) as a whole-number Quantity.
pub fn count_quantity(n: f64) -> String {
    format!("{}", n.round().max(0.0) as u64)
}

/// Answers `path` (below [`PREFIX`]) from `w`.
pub fn answer(path: &str, w: &Window) -> Result<Value, ApiError> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let kind = |s: &str| {
        ResourceKind::parse(s)
            .filter(|k| *k != ResourceKind::Namespace && s == k.plural())
            .ok_or_else(|| ApiError::not_found(format!("the server could not find the requested resource (no resource \"{s}\" in {GROUP_VERSION})")))
    };
    match parts.as_slice() {
        [] => Ok(resource_list()),
        ["namespaces"] => Ok(list(w, ResourceKind::Namespace, None)),
        ["namespaces", ns] => one(w, &namespace(ns)),
        ["namespaces", ns, "edges"] => edges(w, &namespace(ns)),
        [plural] => Ok(list(w, kind(plural)?, None)),
        ["namespaces", ns, plural] => Ok(list(w, kind(plural)?, Some(ns))),
        ["namespaces", ns, plural, name] => one(
            w,
            &Resource {
                kind: kind(plural)?,
                namespace: ns.to_string(),
                name: name.to_string(),
            },
        ),
        ["namespaces", ns, plural, name, "edges"] => edges(
            w,
            &Resource {
                kind: kind(plural)?,
                namespace: ns.to_string(),
                name: name.to_string(),
            },
        ),
        _ => Err(ApiError::not_found(format!(
            "the server could not find the requested resource ({PREFIX}/{})",
            parts.join("/")
        ))),
    }
}

fn namespace(ns: &str) -> Resource {
    Resource {
        kind: ResourceKind::Namespace,
        namespace: ns.to_string(),
        name: ns.to_string(),
    }
}

/// The `APIResourceList` discovery document.
pub fn resource_list() -> Value {
    let resources: Vec<Value> = ResourceKind::ALL
        .iter()
        .map(|k| {
            json!({"name": k.plural(), "singularName": "", "namespaced": *k != ResourceKind::Namespace,
                "kind": "TrafficMetrics", "verbs": ["get", "list"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION, "resources": resources})
}

/// Every resource of `kind` (in `ns`) that is known or seen in traffic.
pub fn resources(w: &Window, kind: ResourceKind, ns: Option<&str>) -> BTreeSet<Resource> {
    w.inventory
        .iter()
        .chain(w.edges.iter().flat_map(|e| [&e.from, &e.to]))
        .filter(|p| ns.is_none_or(|n| p.namespace == n))
        .filter_map(|p| Resource::of(kind, p))
        .collect()
}

fn known(w: &Window, r: &Resource) -> bool {
    w.inventory
        .iter()
        .chain(w.edges.iter().flat_map(|e| [&e.from, &e.to]))
        .any(|p| r.matches(p))
}

/// What `r` served over the window (every client; not what a caller's own proxy refused).
pub fn served(w: &Window, r: &Resource) -> Totals {
    let mut t = Totals::default();
    for e in w
        .edges
        .iter()
        .filter(|e| !e.refused_by_caller && r.matches(&e.to))
    {
        t.add(e);
    }
    t
}

fn traffic_metrics(w: &Window, r: &Resource, edge: Value, t: &Totals) -> Value {
    let mut meta =
        json!({"name": r.name, "selfLink": r.self_link(), "creationTimestamp": w.timestamp});
    if r.kind != ResourceKind::Namespace {
        meta["namespace"] = json!(r.namespace);
    }
    json!({
        "kind": "TrafficMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": meta,
        "timestamp": w.timestamp,
        "window": format!("{}s", w.seconds),
        "resource": r.reference(),
        "edge": edge,
        "metrics": t.metrics(),
    })
}

fn server_edge() -> Value {
    json!({"direction": "from", "side": "server", "resource": {}})
}

fn one(w: &Window, r: &Resource) -> Result<Value, ApiError> {
    if !known(w, r) {
        return Err(ApiError::not_found(format!(
            "{} \"{}\" not found",
            r.kind.plural(),
            r.name
        )));
    }
    Ok(traffic_metrics(w, r, server_edge(), &served(w, r)))
}

fn list(w: &Window, kind: ResourceKind, ns: Option<&str>) -> Value {
    let items: Vec<Value> = resources(w, kind, ns)
        .iter()
        .map(|r| traffic_metrics(w, r, server_edge(), &served(w, r)))
        .collect();
    let mut resource = json!({"kind": kind.kind()});
    if let Some(ns) = ns {
        resource["namespace"] = json!(ns);
    }
    let link = match ns {
        Some(ns) => format!("{PREFIX}/namespaces/{ns}/{}", kind.plural()),
        None => format!("{PREFIX}/{}", kind.plural()),
    };
    json!({"kind": "TrafficMetricsList", "apiVersion": GROUP_VERSION, "metadata": {"selfLink": link},
        "resource": resource, "items": items})
}

/// The peer as a resource of `kind`, else as a Pod, else nothing known (`{}`).
fn peer_ref(kind: ResourceKind, p: &Peer) -> Value {
    Resource::of(kind, p)
        .or_else(|| Resource::of(ResourceKind::Pod, p))
        .map(|r| r.reference())
        .unwrap_or_else(|| json!({}))
}

/// Every edge of `r` in both directions, one item per peer and direction. A request the
/// caller's own proxy refused is the caller's edge only (the server never saw it).
pub fn edge_totals(w: &Window, r: &Resource) -> BTreeMap<(&'static str, String), (Value, Totals)> {
    let mut by: BTreeMap<(&'static str, String), (Value, Totals)> = BTreeMap::new();
    for e in &w.edges {
        for (dir, me, peer) in [("to", &e.from, &e.to), ("from", &e.to, &e.from)] {
            if !r.matches(me) || (dir == "from" && e.refused_by_caller) {
                continue;
            }
            let pr = peer_ref(r.kind, peer);
            by.entry((dir, pr.to_string()))
                .or_insert_with(|| (pr, Totals::default()))
                .1
                .add(e);
        }
    }
    by
}

fn edges(w: &Window, r: &Resource) -> Result<Value, ApiError> {
    if !known(w, r) {
        return Err(ApiError::not_found(format!(
            "{} \"{}\" not found",
            r.kind.plural(),
            r.name
        )));
    }
    let items: Vec<Value> = edge_totals(w, r)
        .into_iter()
        .map(|((dir, _), (peer, t))| {
            let side = if dir == "to" { "client" } else { "server" };
            traffic_metrics(
                w,
                r,
                json!({"direction": dir, "side": side, "resource": peer}),
                &t,
            )
        })
        .collect();
    Ok(
        json!({"kind": "TrafficMetricsList", "apiVersion": GROUP_VERSION,
        "metadata": {"selfLink": format!("{}/edges", r.self_link())},
        "resource": r.reference(), "items": items}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Owner, Peer};

    fn deploy(ns: &str, pod: &str, name: &str) -> Peer {
        Peer::pod(
            ns,
            pod,
            Some(Owner {
                kind: "Deployment".into(),
                name: name.into(),
            }),
        )
    }

    fn window() -> Window {
        let lat = |n: f64| Histogram {
            buckets: vec![(1.0, 0.0), (5.0, n), (10.0, n), (f64::INFINITY, n)],
        };
        let e = |from: Peer, to: Peer, s: f64, f: f64| EdgeSample {
            from,
            to,
            service: Some("svc".into()),
            success: s,
            failure: f,
            denied: 0.0,
            latency: lat(s + f),
            refused_by_caller: false,
        };
        Window {
            timestamp: "2026-12-07T12:00:00Z".into(),
            seconds: 30,
            edges: vec![
                e(
                    deploy("shop", "web-0", "web"),
                    deploy("shop", "api-0", "api"),
                    8.0,
                    2.0,
                ),
                e(
                    deploy("shop", "web-1", "web"),
                    deploy("shop", "api-1", "api"),
                    10.0,
                    0.0,
                ),
                e(
                    deploy("shop", "api-0", "api"),
                    deploy("db", "db-0", "db"),
                    4.0,
                    0.0,
                ),
            ],
            inventory: vec![deploy("shop", "idle-0", "idle")],
        }
    }

    fn metric(v: &Value, name: &str) -> String {
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["value"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_deployment_sums_its_pods_and_lists_its_edges() {
        let w = window();
        let d = answer("/namespaces/shop/deployments/api", &w).unwrap();
        assert_eq!(d["kind"], "TrafficMetrics");
        assert_eq!(
            d["resource"],
            json!({"kind": "Deployment", "namespace": "shop", "name": "api"})
        );
        assert_eq!(
            d["edge"],
            json!({"direction": "from", "side": "server", "resource": {}})
        );
        assert_eq!(metric(&d, "success_count"), "18");
        assert_eq!(metric(&d, "failure_count"), "2");
        assert_eq!(metric(&d, "p50_response_latency"), "3m");
        assert_eq!(d["window"], "30s");

        let e = answer("/namespaces/shop/deployments/api/edges", &w).unwrap();
        let items = e["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{e:#}");
        let to = items
            .iter()
            .find(|i| i["edge"]["direction"] == "to")
            .unwrap();
        assert_eq!(to["edge"]["side"], "client");
        assert_eq!(
            to["edge"]["resource"],
            json!({"kind": "Deployment", "namespace": "db", "name": "db"})
        );
        assert_eq!(metric(to, "success_count"), "4");
        let from = items
            .iter()
            .find(|i| i["edge"]["direction"] == "from")
            .unwrap();
        assert_eq!(from["edge"]["resource"]["name"], "web");
        assert_eq!(metric(from, "success_count"), "18");
    }

    #[test]
    fn a_request_the_callers_proxy_refused_is_the_callers_edge_only() {
        let mut w = window();
        w.edges.push(EdgeSample {
            from: deploy("shop", "intruder-0", "intruder"),
            to: deploy("shop", "api-0", "api"),
            service: Some("svc".into()),
            success: 7.0,
            failure: 0.0,
            denied: 7.0,
            latency: Histogram::default(),
            refused_by_caller: true,
        });
        // api never saw them: what it served and its `from` edges are as before.
        let d = answer("/namespaces/shop/deployments/api", &w).unwrap();
        assert_eq!(metric(&d, "success_count"), "18");
        let e = answer("/namespaces/shop/deployments/api/edges", &w).unwrap();
        assert_eq!(e["items"].as_array().unwrap().len(), 2, "{e:#}");
        // The intruder's own edge to api holds them.
        let e = answer("/namespaces/shop/deployments/intruder/edges", &w).unwrap();
        let items = e["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{e:#}");
        assert_eq!(items[0]["edge"]["direction"], "to");
        assert_eq!(items[0]["edge"]["resource"]["name"], "api");
        assert_eq!(metric(&items[0], "success_count"), "7");
    }

    #[test]
    fn lists_include_idle_workloads_and_pods_and_namespaces() {
        let w = window();
        let l = answer("/namespaces/shop/deployments", &w).unwrap();
        let names: Vec<&str> = l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["resource"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["api", "idle", "web"]);
        let idle = &l["items"][1];
        assert_eq!(metric(idle, "success_count"), "0");
        assert_eq!(
            metric(idle, "p99_response_latency"),
            "",
            "no latency without requests"
        );
        let pod = answer("/namespaces/shop/pods/api-0/edges", &w).unwrap();
        assert_eq!(pod["items"].as_array().unwrap().len(), 2);
        let ns = answer("/namespaces/db", &w).unwrap();
        assert_eq!(ns["resource"], json!({"kind": "Namespace", "name": "db"}));
        assert_eq!(metric(&ns, "success_count"), "4");
        let all = answer("/namespaces", &w).unwrap();
        assert_eq!(all["items"].as_array().unwrap().len(), 2);
        let all_pods = answer("/pods", &w).unwrap();
        assert_eq!(all_pods["items"].as_array().unwrap().len(), 6);
        assert_eq!(
            answer("", &w).unwrap()["resources"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn unknown_paths_and_objects_are_404_statuses() {
        let w = window();
        let e = answer("/namespaces/shop/deployments/nope", &w).unwrap_err();
        assert_eq!(e.code, 404);
        assert_eq!(e.to_status()["reason"], "NotFound");
        assert_eq!(
            answer("/namespaces/shop/services", &w).unwrap_err().code,
            404
        );
        assert_eq!(answer("/a/b/c/d/e/f", &w).unwrap_err().code, 404);
    }

    #[test]
    fn quantities() {
        assert_eq!(seconds_quantity(10.0), "10m");
        assert_eq!(seconds_quantity(1.5), "1500u");
        assert_eq!(count_quantity(99.6), "100");
    }
}
