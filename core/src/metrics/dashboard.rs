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
use std::collections::{BTreeMap, BTreeSet};

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
    /// Per backend, the topology nodes (`Kind/ns/name` of workloads and pods) its Service
    /// selects: how a request is attributed to a backend when the mesh reports the Service
    /// the client called (the apex) rather than the backend it was routed to (Istio's
    /// `reporter="destination"` names the Host, i.e. the apex).
    #[serde(skip)]
    pub selected: Vec<BTreeSet<String>>,
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
            selected: s
                .backends
                .iter()
                .map(|b| selected_by(ir, &b.service))
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

/// The topology nodes of the pods and pod templates the Service `svc` selects.
fn selected_by(ir: &Ir, svc: &crate::ir::SvcKey) -> BTreeSet<String> {
    let Some(s) = ir.services.get(svc).filter(|s| !s.selector.is_empty()) else {
        return BTreeSet::new();
    };
    ir.workloads
        .values()
        .flat_map(|w| &w.pods)
        .filter(|p| p.namespace == svc.namespace && crate::ir::selects(&s.selector, &p.labels))
        .filter_map(|p| {
            // A template is `<kind>/<name>` (lower case), a pod its own name.
            let (kind, name) = match p.name.split_once('/') {
                Some((k, n)) => (
                    ResourceKind::ALL
                        .into_iter()
                        .find(|r| r.kind().eq_ignore_ascii_case(k))?,
                    n,
                ),
                None => (ResourceKind::Pod, p.name.as_str()),
            };
            Some(node_id(&Resource {
                kind,
                namespace: p.namespace.clone(),
                name: name.to_string(),
            }))
        })
        .collect()
}

/// Every node id a peer can be seen as (its pod, its workload).
fn ids_of(p: &Peer) -> impl Iterator<Item = String> + '_ {
    ResourceKind::ALL
        .into_iter()
        .filter(|k| *k != ResourceKind::Namespace)
        .filter_map(|k| Resource::of(k, p))
        .map(|r| node_id(&r))
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
    // The observed split counts the requests served: a refused request (by the caller's
    // own sidecar or the server's access policy) is a refused edge, not a split outcome.
    // Served requests per (namespace, service) called.
    let mut by_service: BTreeMap<(String, String), f64> = BTreeMap::new();
    // Served requests per (namespace, service) called and the server's node ids.
    let mut by_server: Vec<(String, String, Vec<String>, f64)> = Vec::new();
    for e in &w.edges {
        let (from, to) = (node_of(&e.from), node_of(&e.to));
        let (fi, ti) = (node_id(&from), node_id(&to));
        nodes.entry(fi.clone()).or_insert((from, Totals::default()));
        let served = &mut nodes.entry(ti.clone()).or_insert((to, Totals::default())).1;
        if !e.refused_by_caller {
            served.add(e);
        }
        edges.entry((fi, ti)).or_default().add(e);
        if let Some(s) = &e.service {
            *by_service
                .entry((e.to.namespace.clone(), s.clone()))
                .or_default() += e.requests() - e.denied;
        }
        by_server.push((
            e.to.namespace.clone(),
            e.service.clone().unwrap_or_default(),
            ids_of(&e.to).collect(),
            e.requests() - e.denied,
        ));
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
            let keys: Vec<(String, String)> = s
                .backends
                .iter()
                .map(|(name, _)| match name.split_once('/') {
                    Some((ns, svc)) => (ns.to_string(), svc.to_string()),
                    None => (s.namespace.clone(), name.clone()),
                })
                .collect();
            // A request reported under the backend it was routed to counts for it; one
            // reported under the apex (or no Service) counts for the backends whose Service
            // selects the server, shared evenly when several do.
            let mut seen: Vec<f64> = keys
                .iter()
                .map(|k| by_service.get(k).copied().unwrap_or(0.0))
                .collect();
            for (ns, svc, ids, n) in &by_server {
                if keys.iter().any(|k| &k.1 == svc && &k.0 == ns)
                    || !(svc.is_empty() || (ns == &s.namespace && svc == &s.apex))
                {
                    continue;
                }
                let hits: Vec<usize> = (0..keys.len())
                    .filter(|&i| {
                        &keys[i].0 == ns
                            && s.selected
                                .get(i)
                                .is_some_and(|sel| ids.iter().any(|id| sel.contains(id)))
                    })
                    .collect();
                for i in &hits {
                    seen[*i] += n / hits.len() as f64;
                }
            }
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
            refused_by_caller: false,
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
                selected: vec![BTreeSet::new(), BTreeSet::new()],
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

    #[test]
    fn requests_reported_under_the_apex_count_for_the_backend_selecting_the_server() {
        // Istio (reporter="destination") names the Host called: the apex.
        let e = |to: Peer, svc: Option<&str>, n: f64| EdgeSample {
            from: peer("web-0", "web"),
            to,
            service: svc.map(String::from),
            success: n,
            failure: 0.0,
            denied: 0.0,
            latency: Histogram::default(),
            refused_by_caller: false,
        };
        let w = Window {
            timestamp: "t".into(),
            seconds: 10,
            edges: vec![
                e(
                    Peer::workload("shop", "Deployment", "v1"),
                    Some("api"),
                    60.0,
                ),
                e(
                    Peer::workload("shop", "Deployment", "v2"),
                    Some("api"),
                    20.0,
                ),
                // Routed to the backend by name: counts for it alone.
                e(peer("v2-1", "v2"), Some("api-v2"), 20.0),
                // Another Service's traffic to the same server is not the split's.
                e(
                    Peer::workload("shop", "Deployment", "v1"),
                    Some("other"),
                    99.0,
                ),
                // No Service: the server decides; a pod selected by both backends is shared.
                e(Peer::pod("shop", "both-0", None), None, 10.0),
                // Refused (here by the caller's own sidecar): not a split outcome.
                EdgeSample {
                    denied: 30.0,
                    ..e(
                        Peer::workload("shop", "Deployment", "v1"),
                        Some("api"),
                        30.0,
                    )
                },
            ],
            inventory: vec![],
        };
        let sel = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let m = Model {
            generation: 1,
            splits: vec![SplitView {
                object: "TrafficSplit/shop/api".into(),
                namespace: "shop".into(),
                apex: "api".into(),
                backends: vec![("api-v1".into(), 50), ("api-v2".into(), 50)],
                selected: vec![
                    sel(&["Deployment/shop/v1", "Pod/shop/both-0"]),
                    sel(&["Deployment/shop/v2", "Pod/shop/both-0"]),
                ],
            }],
            meshes: vec![],
            objects: vec![],
        };
        let d = dashboard(&m, &w);
        let b = &d["splits"][0]["backends"];
        assert_eq!(b[0]["requests"], 65.0, "{b}");
        assert_eq!(b[1]["requests"], 45.0, "{b}");
    }

    #[test]
    fn the_model_knows_what_each_backend_selects() {
        let dep = |name: &str, version: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{app: web, version: {version}}}}}\n  template:\n    metadata: {{labels: {{app: web, version: {version}}}}}\n    spec: {{containers: [{{name: app, image: x}}]}}\n"
            )
        };
        let svc = |name: &str, sel: &str| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{selector: {sel}, ports: [{{port: 80}}]}}\n"
            )
        };
        let docs = [
            dep("web-v1", "v1"),
            dep("web-v2", "v2"),
            svc("web", "{app: web}"),
            svc("web-v1", "{app: web, version: v1}"),
            svc("web-v2", "{app: web, version: v2}"),
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web, namespace: shop}\nspec: {service: web, backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]}\n".to_string(),
        ];
        let loaded = crate::load::load_str("in.yaml", &docs.join("---\n"));
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let ir = crate::build::build(&crate::snapshot::Snapshot::from_objects(loaded.objects));
        let engine = Engine::new(crate::engine::EngineConfig::default(), vec![]);
        let m = model(&engine, &ir, &[]);
        assert_eq!(m.splits.len(), 1);
        let s = &m.splits[0];
        assert_eq!(
            s.backends,
            vec![("web-v1".into(), 90), ("web-v2".into(), 10)]
        );
        assert_eq!(
            s.selected,
            vec![
                BTreeSet::from(["Deployment/shop/web-v1".to_string()]),
                BTreeSet::from(["Deployment/shop/web-v2".to_string()]),
            ]
        );
    }
}
