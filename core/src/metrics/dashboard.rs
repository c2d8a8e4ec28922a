//! What the web dashboard shows, as one JSON document: the topology (workloads and the edges
//! between them with RPS, success rate and p99; refused edges marked), every TrafficSplit's
//! declared weights beside the split observed, the meshes with their capability matrices, and
//! every input object with its conditions and problems.
//!
//! [`Model`] is what the configuration says (built when it changes, from the engine); the
//! metrics [`Window`] is what was observed (new on every request); [`dashboard`] joins them.

use super::api::{Resource, ResourceKind, Totals};
use super::{Peer, Window};
use crate::CapabilityMatrix;
use crate::api::meshbridge::MeshType;
use crate::engine::Engine;
use crate::ir::Ir;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The configuration side of the dashboard.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Model {
    /// Bumped by the runtime on every change (the page shows it).
    pub generation: u64,
    pub splits: Vec<SplitView>,
    pub meshes: Vec<MeshView>,
    pub objects: Vec<ObjectView>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SplitView {
    /// The TrafficSplit (or GAMMA route) it comes from, `Kind/ns/name`.
    pub object: String,
    pub namespace: String,
    pub apex: String,
    /// Backend services (in `namespace` unless they say `ns/name`) and declared weights.
    pub backends: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeshView {
    pub name: String,
    #[serde(rename = "type")]
    pub mesh_type: String,
    pub capabilities: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectView {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub conditions: Value,
    pub problems: Vec<String>,
}

/// The model of `engine`'s objects and `ir`'s splits; `programmed` are the backends this
/// runtime programs (shown even without a Mesh object, as `meshbridge local` runs one).
pub fn model(engine: &Engine, ir: &Ir, programmed: &[(MeshType, CapabilityMatrix)]) -> Model {
    let splits = ir
        .splits
        .values()
        .map(|s| SplitView {
            object: s.parent.to_string(),
            namespace: s.root.namespace.clone(),
            apex: s.root.name.clone(),
            backends: s
                .backends
                .iter()
                .map(|b| {
                    let name = if b.service.namespace == s.root.namespace {
                        b.service.name.clone()
                    } else {
                        format!("{}/{}", b.service.namespace, b.service.name)
                    };
                    (name, b.weight)
                })
                .collect(),
        })
        .collect();
    let mut meshes: Vec<MeshView> = programmed
        .iter()
        .map(|(t, caps)| MeshView {
            name: format!("({t}, programmed by this runtime)"),
            mesh_type: t.to_string(),
            capabilities: serde_json::to_value(caps.rows()).unwrap_or_default(),
        })
        .collect();
    for (k, st) in engine.mesh_states() {
        meshes.push(MeshView {
            name: format!("{}/{}", k.namespace, k.name),
            mesh_type: engine
                .object(k)
                .and_then(|o| match o {
                    crate::model::Object::Mesh(m, _) => Some(m.spec.mesh_type.to_string()),
                    _ => None,
                })
                .unwrap_or_default(),
            capabilities: st
                .extra
                .as_ref()
                .map(|e| e["capabilities"].clone())
                .unwrap_or(Value::Null),
        });
    }
    let objects = engine
        .states()
        .map(|(k, st)| ObjectView {
            kind: k.kind.to_string(),
            namespace: k.namespace.clone(),
            name: k.name.clone(),
            conditions: serde_json::to_value(&st.conditions).unwrap_or_default(),
            problems: st.problems.iter().map(|p| p.to_string()).collect(),
        })
        .collect();
    Model {
        generation: 0,
        splits,
        meshes,
        objects,
    }
}

/// A node of the topology: the workload (else the pod) a peer is.
fn node_of(p: &Peer) -> Resource {
    [
        ResourceKind::Deployment,
        ResourceKind::StatefulSet,
        ResourceKind::DaemonSet,
        ResourceKind::Pod,
    ]
    .into_iter()
    .find_map(|k| Resource::of(k, p))
    .unwrap_or(Resource {
        kind: ResourceKind::Namespace,
        namespace: p.namespace.clone(),
        name: p.namespace.clone(),
    })
}

fn node_id(r: &Resource) -> String {
    format!("{}/{}/{}", r.kind.kind(), r.namespace, r.name)
}

fn stats(t: &Totals, seconds: u64) -> Value {
    let n = t.requests();
    json!({
        "requests": n.round(),
        "rps": if seconds > 0 { (n / seconds as f64 * 100.0).round() / 100.0 } else { 0.0 },
        "successRate": if n > 0.0 { Some(((t.success / n) * 10000.0).round() / 10000.0) } else { None },
        "p99Ms": if n > 0.0 { t.latency.quantile(0.99).map(|v| (v * 100.0).round() / 100.0) } else { None },
        "denied": t.denied.round(),
    })
}

/// The dashboard document: `m` joined with what `w` observed.
pub fn dashboard(m: &Model, w: &Window) -> Value {
    let mut nodes: BTreeMap<String, (Resource, Totals)> = BTreeMap::new();
    for p in &w.inventory {
        let r = node_of(p);
        nodes.entry(node_id(&r)).or_insert((r, Totals::default()));
    }
    let mut edges: BTreeMap<(String, String), Totals> = BTreeMap::new();
    // Requests per (namespace, service) called.
    let mut by_service: BTreeMap<(String, String), f64> = BTreeMap::new();
    for e in &w.edges {
        let (from, to) = (node_of(&e.from), node_of(&e.to));
        let (fi, ti) = (node_id(&from), node_id(&to));
        nodes.entry(fi.clone()).or_insert((from, Totals::default()));
        nodes
            .entry(ti.clone())
            .or_insert((to, Totals::default()))
            .1
            .add(e);
        edges.entry((fi, ti)).or_default().add(e);
        if let Some(s) = &e.service {
            *by_service
                .entry((e.to.namespace.clone(), s.clone()))
                .or_default() += e.requests();
        }
    }
    let nodes: Vec<Value> = nodes
        .into_iter()
        .map(|(id, (r, t))| {
            json!({"id": id, "kind": r.kind.kind(), "namespace": r.namespace, "name": r.name, "served": stats(&t, w.seconds)})
        })
        .collect();
    let edges: Vec<Value> = edges
        .into_iter()
        .map(|((from, to), t)| {
            let denied = t.denied > 0.0 && t.denied >= t.requests();
            json!({"from": from, "to": to, "stats": stats(&t, w.seconds), "refused": denied})
        })
        .collect();
    let splits: Vec<Value> = m
        .splits
        .iter()
        .map(|s| {
            let total_w: u64 = s.backends.iter().map(|b| b.1).sum();
            let seen: Vec<f64> = s
                .backends
                .iter()
                .map(|(name, _)| {
                    let (ns, svc) = match name.split_once('/') {
                        Some((ns, svc)) => (ns.to_string(), svc.to_string()),
                        None => (s.namespace.clone(), name.clone()),
                    };
                    by_service.get(&(ns, svc)).copied().unwrap_or(0.0)
                })
                .collect();
            let total_seen: f64 = seen.iter().sum();
            let backends: Vec<Value> = s
                .backends
                .iter()
                .zip(&seen)
                .map(|((name, wt), n)| {
                    json!({
                        "service": name,
                        "weight": wt,
                        "declaredPercent": if total_w > 0 { (*wt as f64 * 1000.0 / total_w as f64).round() / 10.0 } else { 0.0 },
                        "requests": n.round(),
                        "observedPercent": if total_seen > 0.0 { Some((n * 1000.0 / total_seen).round() / 10.0) } else { None },
                    })
                })
                .collect();
            json!({"object": s.object, "namespace": s.namespace, "apex": s.apex, "backends": backends})
        })
        .collect();
    json!({
        "generation": m.generation,
        "timestamp": w.timestamp,
        "window": format!("{}s", w.seconds),
        "nodes": nodes,
        "edges": edges,
        "splits": splits,
        "meshes": m.meshes,
        "objects": m.objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{EdgeSample, Histogram, Owner};

    fn peer(pod: &str, dep: &str) -> Peer {
        Peer::pod(
            "shop",
            pod,
            Some(Owner {
                kind: "Deployment".into(),
                name: dep.into(),
            }),
        )
    }

    #[test]
    fn observed_split_and_refused_edges() {
        let e = |to: Peer, svc: &str, ok: f64, denied: f64| EdgeSample {
            from: peer("web-0", "web"),
            to,
            service: Some(svc.into()),
            success: ok,
            failure: 0.0,
            denied,
            latency: Histogram {
                buckets: vec![(5.0, ok), (f64::INFINITY, ok)],
            },
        };
        let w = Window {
            timestamp: "t".into(),
            seconds: 10,
            edges: vec![
                e(peer("v1-0", "v1"), "api-v1", 90.0, 0.0),
                e(peer("v2-0", "v2"), "api-v2", 10.0, 0.0),
                e(peer("db-0", "db"), "db", 5.0, 5.0),
            ],
            inventory: vec![peer("idle-0", "idle")],
        };
        let m = Model {
            generation: 3,
            splits: vec![SplitView {
                object: "TrafficSplit/shop/api".into(),
                namespace: "shop".into(),
                apex: "api".into(),
                backends: vec![("api-v1".into(), 75), ("api-v2".into(), 25)],
            }],
            meshes: vec![],
            objects: vec![],
        };
        let d = dashboard(&m, &w);
        let b = &d["splits"][0]["backends"];
        assert_eq!(b[0]["declaredPercent"], 75.0);
        assert_eq!(b[0]["observedPercent"], 90.0);
        assert_eq!(b[1]["observedPercent"], 10.0);
        assert_eq!(d["nodes"].as_array().unwrap().len(), 5);
        let db = d["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["to"] == "Deployment/shop/db")
            .unwrap();
        assert_eq!(db["refused"], true);
        let v1 = d["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["to"] == "Deployment/shop/v1")
            .unwrap();
        assert_eq!(v1["stats"]["rps"], 9.0);
        assert_eq!(v1["stats"]["successRate"], 1.0);
        assert_eq!(v1["refused"], false);
    }
}
