//! One namespace's unit of work: its objects plus the cluster-wide facts it reads (its
//! Namespace object, every Mesh, the ServiceAccounts of namespaces its TrafficTargets name
//! as sources) → validate → IR (with last-known-good substitution) → the namespace's
//! adapters → desired outputs, findings and per-object status.

use super::change::OutKey;
use super::context::EngineConfig;
use super::output::{ApiPart, Desired};
use super::status::{ObjectState, state_of};
use super::store::Store;
use crate::api::meshbridge::MeshType;
use crate::ir::ObjectStatus;
use crate::model::{Kind, Object, ObjectKey};
use crate::{Adapter, Finding, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub(crate) struct Partition {
    pub outputs: BTreeMap<OutKey, Desired>,
    /// For meshes programmed through an API backend: the IR, instead of outputs.
    pub api: Vec<ApiPart>,
    pub states: BTreeMap<ObjectKey, ObjectState>,
    pub findings: Vec<(MeshType, Finding)>,
    /// Namespaces (other than this one) whose ServiceAccounts this partition read.
    pub sa_refs: BTreeSet<String>,
    /// Namespaces (other than this one) whose Services and ReferenceGrants this partition
    /// read: the parents and backends of its GAMMA consumer and cross-namespace routes.
    pub route_refs: BTreeSet<String>,
}

/// What a partition is rendered with.
pub(crate) struct Renderers<'a> {
    pub cfg: &'a EngineConfig,
    pub adapters: &'a BTreeMap<MeshType, Arc<dyn Adapter>>,
    pub api_meshes: &'a BTreeSet<MeshType>,
}

/// Renders namespace `ns`. `None` when the namespace holds nothing to render.
pub(crate) fn compute(store: &mut Store, r: &Renderers<'_>, ns: &str) -> Option<Partition> {
    let keys: Vec<_> = store.by_ns.get(ns)?.iter().cloned().collect();
    let mut snap = Snapshot::default();
    let mut sa_refs = BTreeSet::new();
    let mut route_refs: BTreeSet<String> = BTreeSet::new();
    let mut fallback_candidates = Vec::new();
    let mut load_invalid = Vec::new();
    for k in &keys {
        let Some(e) = store.entries.get(k) else {
            continue;
        };
        match (&e.current, &e.last_good) {
            (Some(cur), _) => {
                if let Object::TrafficTarget(tt) = cur {
                    for s in &tt.sources {
                        if let Some(n) = s.namespace.as_ref().filter(|n| *n != ns) {
                            sa_refs.insert(n.clone());
                        }
                    }
                }
                if let Object::GammaRoute(r) = cur {
                    route_refs.extend(r.spec.namespaces().into_iter().filter(|n| n != ns));
                }
                snap.apply(cur.clone());
                if e.last_good.is_some() {
                    fallback_candidates.push(k.clone());
                }
            }
            (None, Some(good)) => {
                snap.apply(good.clone());
                load_invalid.push(k.clone());
            }
            (None, None) => load_invalid.push(k.clone()),
        }
    }
    // Cluster-wide facts: the Namespace objects this partition reads, every Mesh and the
    // source ServiceAccounts of other namespaces.
    let mut ns_names: BTreeSet<&str> = sa_refs.iter().map(String::as_str).collect();
    ns_names.insert(ns);
    for n in ns_names {
        if let Some(o) = store.fact(&ObjectKey::new(Kind::Namespace, "", n)) {
            snap.apply(o.clone());
        }
    }
    for m in &store.meshes {
        if m.object.namespace != ns
            && let Some(o) = store.entries.get(m).and_then(|e| e.readable())
        {
            snap.apply(o.clone());
        }
    }
    let read_from = |snap: &mut Snapshot, other: &String, kinds: &[Kind]| {
        if let Some(set) = store.by_ns.get(other) {
            for k in set.iter().filter(|k| kinds.contains(&k.object.kind)) {
                if let Some(o) = store.entries.get(k).and_then(|e| e.readable()) {
                    snap.apply(o.clone());
                }
            }
        }
    };
    for other in &sa_refs {
        read_from(&mut snap, other, &[Kind::ServiceAccount]);
    }
    for other in &route_refs {
        read_from(&mut snap, other, &[Kind::Service, Kind::ReferenceGrant]);
    }

    let first = crate::build::build(&snap);
    // Last-known-good: an object whose newest version is not accepted is programmed from
    // its last accepted version.
    let mut replaced = BTreeSet::new();
    for k in &fallback_candidates {
        if first.status.get(&k.object).is_some_and(|s| !s.accepted)
            && let Some(good) = store.entries.get(k).and_then(|e| e.last_good.clone())
        {
            snap.apply(good);
            replaced.insert(k.object.clone());
        }
    }
    let rebuilt = if replaced.is_empty() {
        None
    } else {
        Some(crate::build::build(&snap))
    };
    let ir = rebuilt.as_ref().unwrap_or(&first);

    // The good/last-good bookkeeping.
    for (k, st) in &first.status {
        if let Some(e) = store.get_mut(k) {
            e.record_validation(st.accepted);
        }
    }

    // Backends.
    let mut p = Partition {
        sa_refs,
        route_refs,
        ..Partition::default()
    };
    let selection = r.cfg.meshes_for(store, ns);
    let mut per_object: BTreeMap<ObjectKey, Vec<(MeshType, Vec<Finding>)>> = BTreeMap::new();
    let mut backend_problem: Option<String> = None;
    match &selection {
        Ok(list) => {
            for (mesh, spec) in list {
                let api = r.api_meshes.contains(mesh);
                let cx = r.cfg.context(spec.clone());
                if api {
                    p.api.push(ApiPart {
                        mesh: *mesh,
                        ir: Arc::new(ir.clone()),
                        cx: cx.clone(),
                    });
                }
                let adapter = match r.adapters.get(mesh) {
                    Some(a) => a.clone(),
                    // A mesh translated outside the engine from the IR kept for it (the
                    // built-in Envoy mesh of `meshbridge local`, per proxy).
                    None if api => {
                        for k in ir.status.keys() {
                            per_object
                                .entry(k.clone())
                                .or_default()
                                .push((*mesh, vec![]));
                        }
                        continue;
                    }
                    None => {
                        backend_problem = Some(format!(
                            "backend {mesh} is not available in `meshbridge run` (this build programs: {})",
                            r.adapters
                                .keys()
                                .map(|m| m.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        continue;
                    }
                };
                let tr = adapter.translate(ir, &cx);
                for k in ir.status.keys() {
                    per_object
                        .entry(k.clone())
                        .or_default()
                        .push((*mesh, vec![]));
                }
                for f in &tr.findings {
                    if let Some(v) = per_object.get_mut(&f.object)
                        && let Some((_, fs)) = v.iter_mut().find(|(m, _)| m == mesh)
                    {
                        fs.push(f.clone());
                    }
                    p.findings.push((*mesh, f.clone()));
                }
                for o in tr.objects.into_iter().filter(|_| !api) {
                    p.outputs.insert(
                        OutKey::of(&o),
                        Desired {
                            object: Arc::new(o),
                            mesh: *mesh,
                            partition: ns.to_string(),
                        },
                    );
                }
            }
        }
        Err(e) => backend_problem = Some(e.clone()),
    }

    // Statuses of this namespace's SMI objects.
    for (k, st) in &first.status {
        if k.namespace != ns {
            continue;
        }
        let meshes: Vec<(MeshType, Vec<&Finding>)> = per_object
            .get(k)
            .map(|v| v.iter().map(|(m, fs)| (*m, fs.iter().collect())).collect())
            .unwrap_or_default();
        p.states.insert(
            k.clone(),
            state_of(
                st,
                &meshes,
                replaced.contains(k),
                backend_problem.as_deref(),
            ),
        );
    }
    for k in load_invalid {
        let Some(e) = store.entries.get(&k) else {
            continue;
        };
        if !k.object.kind.has_status() {
            continue;
        }
        let st = ObjectStatus {
            generation: e.load_generation,
            accepted: false,
            resolved_refs: true,
            conflicted: false,
            problems: e.load_problems.clone(),
        };
        let meshes: Vec<(MeshType, Vec<&Finding>)> = match &selection {
            Ok(l) => l.iter().map(|(m, _)| (*m, vec![])).collect(),
            Err(_) => vec![],
        };
        p.states.insert(
            k.object.clone(),
            state_of(
                &st,
                &meshes,
                e.last_good.is_some(),
                backend_problem.as_deref(),
            ),
        );
    }
    if p.outputs.is_empty()
        && p.api.is_empty()
        && p.states.is_empty()
        && p.sa_refs.is_empty()
        && p.route_refs.is_empty()
    {
        return None;
    }
    Some(p)
}
