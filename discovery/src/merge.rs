//! Rediscovery: merge what was found with the Mesh objects that exist.
//!
//! - Existing Meshes are matched to control planes by identity (type, control-plane
//!   namespace, revision), never by name, so renamed or user-created Meshes keep their
//!   names (gloo-mesh#1897).
//! - Spec fields: discovery fills a field only when it is unset or still holds the value
//!   discovery last wrote (recorded in the `meshbridge.io/discovered-spec` annotation); a
//!   value set by a user survives (SuperGloo's rule, gloo-mesh#484/#485).
//! - Status: discovery owns `status.discovered` and the `Ready` and `VersionResolved`
//!   conditions, and fills `status.capabilities` (written only where no controller runs:
//!   [`crate::kube::StatusScope`]); other conditions (the controller's) are kept.
//! - A control plane that is gone leaves its Mesh in place with `Ready=False`, reason
//!   `NotFound`; nothing is deleted.

use crate::detect::{
    CapsFn, Config, ControlPlane, DISCOVERED_SPEC_ANNOTATION, condition,
    discovered_spec_annotation, found_conditions, mesh_object,
};
use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::{Mesh, MeshSpec, MeshStatus, MeshType};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Condition types discovery owns on a Mesh.
pub const OWNED_CONDITIONS: [&str; 2] = meshbridge_core::status::DISCOVERY_CONDITIONS;

/// Mesh types whose control planes discovery looks for (a Mesh of another type, e.g.
/// `gateway-api`, is never marked NotFound).
pub fn discoverable(t: MeshType) -> bool {
    matches!(
        t,
        MeshType::Istio | MeshType::Linkerd | MeshType::AppMesh | MeshType::Envoy
    )
}

fn default_rev(t: MeshType) -> &'static str {
    if t == MeshType::Istio { "default" } else { "" }
}

/// Identity of an existing Mesh: (type, control-plane namespace if known, revision).
fn identity_of(m: &Mesh) -> (MeshType, Option<String>, String) {
    let t = m.spec.mesh_type;
    let d = m.status.as_ref().and_then(|s| s.discovered.as_ref());
    let cpns = d
        .and_then(|d| d.control_plane_namespace.clone())
        .or_else(|| m.spec.control_plane_namespace.clone());
    if let Some(name) = api_only_mesh_name(m) {
        return (t, Some(String::new()), name);
    }
    let rev = d
        .and_then(|d| d.revision.clone())
        .or_else(|| m.spec.revision.clone())
        .unwrap_or_else(|| default_rev(t).to_string());
    (t, cpns, rev)
}

/// The App Mesh mesh name of a Mesh that stands for an API-only App Mesh mesh: type
/// appmesh, `appMeshName` set and no control-plane namespace (neither discovered nor in the
/// spec).
fn api_only_mesh_name(m: &Mesh) -> Option<String> {
    let d = m.status.as_ref().and_then(|s| s.discovered.as_ref());
    let cpns = d
        .and_then(|d| d.control_plane_namespace.as_ref())
        .or(m.spec.control_plane_namespace.as_ref());
    if m.spec.mesh_type == MeshType::AppMesh && cpns.is_none() {
        m.spec.app_mesh_name.clone()
    } else {
        None
    }
}

fn cp_identity(cp: &ControlPlane) -> (MeshType, String, String) {
    let (t, ns, rev) = cp.identity();
    let rev = if rev.is_empty() {
        default_rev(t).to_string()
    } else {
        rev
    };
    (t, ns, rev)
}

fn key(m: &Mesh) -> (String, String) {
    (
        m.metadata.namespace.clone().unwrap_or_default(),
        m.metadata.name.clone().unwrap_or_default(),
    )
}

/// Existing + found → every Mesh as it should be (unchanged ones included), sorted by
/// (namespace, name). Pure.
pub fn merge(existing: &[Mesh], found: &[ControlPlane], cfg: &Config, caps: CapsFn) -> Vec<Mesh> {
    let mut matched: BTreeMap<usize, usize> = BTreeMap::new(); // found index → existing index
    let mut used: BTreeSet<usize> = BTreeSet::new();
    // 1. Exact identity.
    for (fi, cp) in found.iter().enumerate() {
        let (t, ns, rev) = cp_identity(cp);
        if let Some(ei) = existing.iter().enumerate().position(|(ei, m)| {
            !used.contains(&ei) && identity_of(m) == (t, Some(ns.clone()), rev.clone())
        }) {
            matched.insert(fi, ei);
            used.insert(ei);
        }
    }
    // 2. A Mesh declared without a control-plane namespace matches the single control plane
    //    of its type (and revision) that is still unmatched.
    for (fi, cp) in found.iter().enumerate() {
        if matched.contains_key(&fi) {
            continue;
        }
        let (t, _, rev) = cp_identity(cp);
        let cands: Vec<usize> = existing
            .iter()
            .enumerate()
            .filter(|(ei, m)| {
                let (mt, mns, mrev) = identity_of(m);
                !used.contains(ei) && mt == t && mns.is_none() && mrev == rev
            })
            .map(|(ei, _)| ei)
            .collect();
        let same_type_unmatched = found
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                !matched.contains_key(i) && cp_identity(c).0 == t && cp_identity(c).2 == rev
            })
            .count();
        if cands.len() == 1 && same_type_unmatched == 1 {
            matched.insert(fi, cands[0]);
            used.insert(cands[0]);
        }
    }

    let mut out: Vec<Mesh> = Vec::new();
    let mut names: BTreeSet<(String, String)> = existing.iter().map(key).collect();
    for (ei, m) in existing.iter().enumerate() {
        let fi = matched.iter().find(|(_, e)| **e == ei).map(|(f, _)| *f);
        out.push(match fi {
            Some(fi) => update(m, &found[fi], caps),
            // Not listed this time because the API was not asked: unknown, not gone.
            None if api_only_mesh_name(m).is_some() && !cfg.appmesh_api_listed => m.clone(),
            None if discoverable(m.spec.mesh_type) => not_found(m),
            None => m.clone(),
        });
    }
    for (fi, cp) in found.iter().enumerate() {
        if matched.contains_key(&fi) {
            continue;
        }
        let base = cp.base_name();
        let ns = cfg.namespace.clone();
        let cpns = cp
            .discovered
            .control_plane_namespace
            .clone()
            .unwrap_or_default();
        let mut name = base.clone();
        if names.contains(&(ns.clone(), name.clone())) {
            name = crate::detect::dns_label(&format!("{base}-{cpns}"));
        }
        let mut n = 2;
        let stem = name.clone();
        while names.contains(&(ns.clone(), name.clone())) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        names.insert((ns, name.clone()));
        out.push(mesh_object(cp, &name, cfg, caps));
    }
    out.sort_by_key(key);
    out
}

/// `old` with the conditions of the types in `new` replaced by those, sorted by type (the
/// other writers' conditions are kept as they are).
fn replace_conditions(old: &[Condition], new: Vec<Condition>) -> Vec<Condition> {
    let mut v: Vec<Condition> = old
        .iter()
        .filter(|c| !new.iter().any(|n| n.type_ == c.type_))
        .cloned()
        .collect();
    v.extend(new);
    v.sort_by(|a, b| a.type_.cmp(&b.type_));
    v
}

fn spec_map(spec: &MeshSpec) -> serde_json::Map<String, Value> {
    match serde_json::to_value(spec) {
        Ok(Value::Object(m)) => m,
        _ => Default::default(),
    }
}

/// Fields discovery may write into the spec.
const SPEC_FIELDS: [&str; 5] = [
    "version",
    "revision",
    "trustDomain",
    "controlPlaneNamespace",
    "appMeshName",
];

fn update(m: &Mesh, cp: &ControlPlane, caps: CapsFn) -> Mesh {
    let last: serde_json::Map<String, Value> = m
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DISCOVERED_SPEC_ANNOTATION))
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let mut cur = spec_map(&m.spec);
    let new = spec_map(&cp.spec());
    for f in SPEC_FIELDS {
        let have = cur.get(f);
        let discovery_owned = have.is_none() || have == last.get(f);
        if discovery_owned {
            match new.get(f) {
                Some(v) => {
                    cur.insert(f.to_string(), v.clone());
                }
                None => {
                    cur.remove(f);
                }
            }
        }
    }
    let spec: MeshSpec =
        serde_json::from_value(Value::Object(cur)).unwrap_or_else(|_| m.spec.clone());
    let mut out = m.clone();
    out.spec = spec.clone();
    out.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            DISCOVERED_SPEC_ANNOTATION.into(),
            discovered_spec_annotation(&cp.spec()),
        );
    let old = m.status.clone().unwrap_or_default();
    let mut conds = found_conditions(cp);
    for c in &mut conds {
        c.observed_generation = m.metadata.generation;
    }
    out.status = Some(MeshStatus {
        observed_generation: m.metadata.generation.or(old.observed_generation),
        conditions: replace_conditions(&old.conditions, conds),
        discovered: Some(cp.discovered.clone()),
        capabilities: caps(&spec).unwrap_or_default(),
    });
    out
}

fn not_found(m: &Mesh) -> Mesh {
    let mut out = m.clone();
    let old = m.status.clone().unwrap_or_default();
    let (t, ns, rev) = identity_of(m);
    let what = match (ns, rev.as_str()) {
        (Some(ns), name) if ns.is_empty() && t == MeshType::AppMesh => {
            format!("App Mesh mesh `{name}` (no controller in the cluster)")
        }
        (Some(ns), "" | "default") => format!("{t} control plane in namespace {ns}"),
        (Some(ns), r) => format!("{t} control plane revision {r} in namespace {ns}"),
        (None, _) => format!("a {t} control plane"),
    };
    let last = old
        .discovered
        .as_ref()
        .and_then(|d| d.version.as_deref())
        .map(|v| format!(" (last seen at version {v})"))
        .unwrap_or_default();
    let mut c = condition(
        "Ready",
        false,
        "NotFound",
        format!(
            "{what} is not {}{last}; this Mesh is kept (delete it if the mesh is gone for good)",
            if api_only_mesh_name(m).is_some() {
                "listed by the App Mesh API any more"
            } else {
                "running in the cluster"
            }
        ),
    );
    c.observed_generation = m.metadata.generation;
    out.status = Some(MeshStatus {
        conditions: replace_conditions(&old.conditions, vec![c]),
        ..old
    });
    out
}
