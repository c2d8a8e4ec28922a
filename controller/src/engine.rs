//! The sans-IO heart of the controller: the input store, per-namespace partitions and the
//! desired output set. [`Engine::apply`] takes input changes and marks the namespaces they
//! affect; [`Engine::recompute`] rebuilds only those namespaces (validate → IR → the
//! namespace's adapters) and returns which outputs and statuses changed.
//!
//! Why per namespace: every SMI object and every output it produces live in one namespace
//! (a TrafficSplit's root and backends, a TrafficTarget's destination), so a namespace plus
//! the cluster-wide facts it reads (its Namespace object, Meshes, the ServiceAccounts of
//! namespaces its TrafficTargets name as sources) is a closed unit of work. An edit to one
//! TrafficSplit re-renders its namespace only. A test checks that the union of the
//! partitions equals translating the whole snapshot at once.

use crate::types::{Change, OutKey};
use meshbridge_core::adapter::MESH_LABEL;
use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::{MeshSpec, MeshType};
use meshbridge_core::ir::{Ir, ObjectStatus};
use meshbridge_core::model::{Kind, Object, ObjectKey};
use meshbridge_core::report::Problem;
use meshbridge_core::{Adapter, Context, Finding, OutputObject, Snapshot};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Which backends program a namespace that has no `meshbridge.io/mesh` label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backends {
    /// The single Mesh object's type if exactly one Mesh exists; otherwise unlabelled
    /// namespaces are not programmed (and their objects say so).
    Auto,
    /// These backends, in this order.
    List(Vec<MeshType>),
}

impl Backends {
    /// `auto` or a comma-separated list of mesh types.
    pub fn parse(s: &str) -> Result<Backends, String> {
        if s == "auto" {
            return Ok(Backends::Auto);
        }
        let mut v = Vec::new();
        for part in s.split(',').map(str::trim) {
            let m = MeshType::parse(part).ok_or_else(|| {
                format!("unknown backend `{part}` (expected auto or a comma-separated list of: istio, linkerd, gateway-api, appmesh, envoy)")
            })?;
            if !v.contains(&m) {
                v.push(m);
            }
        }
        if v.is_empty() {
            return Err("empty --backend".into());
        }
        Ok(Backends::List(v))
    }
}

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Controller namespace, trust domain and cluster domain for adapters.
    pub base: Context,
    /// `--trust-domain` (wins over a Mesh's).
    pub trust_domain: Option<String>,
    pub backends: Backends,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            base: Context::default(),
            trust_domain: None,
            backends: Backends::Auto,
        }
    }
}

/// One input object as the store keeps it.
#[derive(Clone, Debug, Default)]
struct Entry {
    /// The newest version that could be read (None when only an unreadable version exists).
    current: Option<Object>,
    /// Whether `current` was accepted the last time it was validated.
    current_good: bool,
    /// The last accepted version, kept while `current` is not accepted.
    last_good: Option<Object>,
    /// Problems of a newer version that could not be read at all.
    load_problems: Vec<Problem>,
    load_generation: Option<i64>,
    /// The object's status conditions in the cluster.
    live_status: Option<Vec<Condition>>,
}

/// A desired output object and where it came from.
#[derive(Clone, Debug)]
pub struct Desired {
    pub object: Arc<OutputObject>,
    pub mesh: MeshType,
    /// The partition (namespace) that produced it.
    pub partition: String,
}

/// Status computed for one input object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectState {
    pub conditions: Vec<Condition>,
    pub generation: Option<i64>,
    pub accepted: bool,
    pub resolved: bool,
    /// Problems in the `PATH:DOC: Kind ns/name: field: reason` form.
    pub problems: Vec<Problem>,
    /// An older, accepted version is programmed instead of the current one.
    pub using_last_good: bool,
    /// Status fields besides `conditions` and `observedGeneration` (a Mesh's capabilities).
    pub extra: Option<serde_json::Value>,
}

/// What an API backend ([`crate::api::ApiBackend`]) programs for one namespace: the
/// namespace's IR and the adapter context of its mesh.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiPart {
    pub mesh: MeshType,
    pub ir: Arc<Ir>,
    pub cx: Context,
}

#[derive(Clone, Debug, Default)]
struct Partition {
    outputs: BTreeMap<OutKey, Desired>,
    /// For meshes programmed through an API backend: the IR, instead of outputs.
    api: Vec<ApiPart>,
    states: BTreeMap<ObjectKey, ObjectState>,
    findings: Vec<(MeshType, Finding)>,
    /// Namespaces (other than this one) whose ServiceAccounts this partition read.
    sa_refs: BTreeSet<String>,
}

/// What one [`Engine::recompute`] changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    /// Outputs added, changed or removed.
    pub outputs: BTreeSet<OutKey>,
    /// Input objects whose status changed (or that disappeared).
    pub states: BTreeSet<ObjectKey>,
    /// Namespaces re-rendered.
    pub partitions: usize,
    /// API-programmed meshes whose desired state changed.
    pub api: BTreeSet<MeshType>,
}

/// The store, the partitions and the desired set.
pub struct Engine {
    cfg: EngineConfig,
    adapters: BTreeMap<MeshType, Arc<dyn Adapter>>,
    entries: HashMap<ObjectKey, Entry>,
    by_ns: BTreeMap<String, BTreeSet<ObjectKey>>,
    namespaces: BTreeSet<String>,
    meshes: BTreeSet<ObjectKey>,
    partitions: BTreeMap<String, Partition>,
    /// Who contributes each output (normally one partition).
    contributors: BTreeMap<OutKey, BTreeMap<String, Desired>>,
    desired: BTreeMap<OutKey, Desired>,
    dirty: BTreeSet<String>,
    all_dirty: bool,
    /// Status of each Mesh object (capabilities of its backend).
    mesh_states: BTreeMap<ObjectKey, ObjectState>,
    /// Meshes programmed through an API backend rather than the sink.
    api_meshes: BTreeSet<MeshType>,
}

impl Engine {
    pub fn new(cfg: EngineConfig, adapters: Vec<Box<dyn Adapter>>) -> Engine {
        let adapters = adapters
            .into_iter()
            .map(|a| (a.mesh_type(), Arc::from(a)))
            .collect();
        Engine {
            cfg,
            adapters,
            entries: HashMap::new(),
            by_ns: BTreeMap::new(),
            namespaces: BTreeSet::new(),
            meshes: BTreeSet::new(),
            partitions: BTreeMap::new(),
            contributors: BTreeMap::new(),
            desired: BTreeMap::new(),
            dirty: BTreeSet::new(),
            all_dirty: true,
            mesh_states: BTreeMap::new(),
            api_meshes: BTreeSet::new(),
        }
    }

    /// Declares meshes that an API backend programs (e.g. App Mesh through the AWS API):
    /// their adapter still runs (findings and statuses), but its objects are not desired
    /// outputs; the namespace's IR is kept for the backend instead ([`Engine::api_parts`]).
    pub fn set_api_meshes(&mut self, meshes: impl IntoIterator<Item = MeshType>) {
        self.api_meshes = meshes.into_iter().collect();
        self.all_dirty = true;
    }

    /// What the API backend of `mesh` should program: one part per namespace, by namespace.
    pub fn api_parts(&self, mesh: MeshType) -> Vec<(&str, &ApiPart)> {
        self.partitions
            .iter()
            .flat_map(|(ns, p)| {
                p.api
                    .iter()
                    .filter(move |a| a.mesh == mesh)
                    .map(move |a| (ns.as_str(), a))
            })
            .collect()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Mesh types that have an adapter here.
    pub fn available(&self) -> Vec<MeshType> {
        self.adapters.keys().copied().collect()
    }

    /// Desired outputs (after the last [`Engine::recompute`]).
    pub fn desired(&self) -> &BTreeMap<OutKey, Desired> {
        &self.desired
    }

    /// Computed status of every SMI input object.
    pub fn states(&self) -> impl Iterator<Item = (&ObjectKey, &ObjectState)> {
        self.partitions.values().flat_map(|p| p.states.iter())
    }

    /// Computed status of every Mesh object.
    pub fn mesh_states(&self) -> &BTreeMap<ObjectKey, ObjectState> {
        &self.mesh_states
    }

    pub fn state(&self, key: &ObjectKey) -> Option<&ObjectState> {
        if key.kind == Kind::Mesh {
            return self.mesh_states.get(key);
        }
        self.partitions.get(&key.namespace)?.states.get(key)
    }

    /// Status of each Mesh: accepted, whether `run` can program its type, and the
    /// backend's capability matrix (with the Mesh's settings).
    fn compute_mesh_states(&self) -> BTreeMap<ObjectKey, ObjectState> {
        let mut out = BTreeMap::new();
        for k in &self.meshes {
            let Some(Object::Mesh(m, meta)) = self.entries.get(k).and_then(|e| e.current.as_ref())
            else {
                continue;
            };
            let t = m.spec.mesh_type;
            let g = meta.generation;
            let cond = |ty: &str, ok: bool, reason: &str, message: String| Condition {
                type_: ty.into(),
                status: if ok { "True" } else { "False" }.into(),
                reason: reason.into(),
                message,
                observed_generation: g,
                last_transition_time: None,
            };
            let mut conditions = vec![cond(
                meshbridge_core::status::ACCEPTED,
                true,
                "Accepted",
                String::new(),
            )];
            let extra = match self.adapters.get(&t) {
                Some(a) => {
                    let caps = a.capabilities(&self.context(Some(m.spec.clone())));
                    let v = serde_json::to_value(caps.rows()).unwrap_or_default();
                    // The matrix's hash in the message: a changed matrix changes the
                    // condition, so comparing conditions is enough to know when to write.
                    conditions.push(cond(
                        "Supported",
                        true,
                        "AdapterAvailable",
                        format!(
                            "meshbridge run programs {t}; capability matrix {}",
                            crate::reconciler::hash_value(&v)
                        ),
                    ));
                    Some(serde_json::json!({ "capabilities": v }))
                }
                None => {
                    conditions.push(cond(
                        "Supported",
                        false,
                        "AdapterUnavailable",
                        format!("meshbridge run does not program {t} in this build"),
                    ));
                    None
                }
            };
            out.insert(
                k.clone(),
                ObjectState {
                    conditions,
                    generation: g,
                    accepted: true,
                    resolved: true,
                    problems: vec![],
                    using_last_good: false,
                    extra,
                },
            );
        }
        out
    }

    /// Findings per mesh (what the targets could not express), sorted.
    pub fn findings(&self) -> Vec<(MeshType, Finding)> {
        let mut v: Vec<_> = self
            .partitions
            .values()
            .flat_map(|p| p.findings.iter().cloned())
            .collect();
        v.sort();
        v
    }

    /// The object currently used for `key` (the readable newest version).
    pub fn object(&self, key: &ObjectKey) -> Option<&Object> {
        self.entries.get(key)?.current.as_ref()
    }

    /// The status conditions the object carries in the cluster, when known.
    pub fn live_status(&self, key: &ObjectKey) -> Option<&Vec<Condition>> {
        self.entries.get(key)?.live_status.as_ref()
    }

    /// Records status conditions just written (so the next comparison sees them).
    pub fn set_live_status(&mut self, key: &ObjectKey, conditions: Vec<Condition>) {
        if let Some(e) = self.entries.get_mut(key) {
            e.live_status = Some(conditions);
        }
    }

    /// Number of input objects held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies one change; marks the namespaces whose outputs may change.
    pub fn apply(&mut self, change: Change) {
        let key = change.key();
        // The echo of our own status write (same object, same generation: the spec did
        // not change) only refreshes what the object's status is; nothing to re-render.
        if let Change::Upsert {
            object,
            live_status: Some(ls),
        } = &change
            && (key.kind.is_smi() || key.kind == Kind::Mesh)
            && let Some(e) = self.entries.get_mut(&key)
            && let Some(cur) = &e.current
            && cur.meta().generation.is_some()
            && cur.meta().generation == object.meta().generation
            && cur.meta().uid.is_some()
            && cur.meta().uid == object.meta().uid
        {
            e.live_status = Some(ls.clone());
            e.current = Some((**object).clone());
            return;
        }
        self.mark(&key);
        match change {
            Change::Upsert {
                object,
                live_status,
            } => {
                let e = self.entries.entry(key.clone()).or_default();
                if e.current_good
                    && let Some(prev) = e.current.take()
                {
                    e.last_good = Some(prev);
                }
                e.current = Some(*object);
                e.current_good = false;
                e.load_problems.clear();
                e.load_generation = None;
                if live_status.is_some() {
                    e.live_status = live_status;
                }
                self.index(&key);
            }
            Change::Delete(_) => {
                self.entries.remove(&key);
                self.unindex(&key);
            }
            Change::Invalid {
                generation,
                problems,
                ..
            } => {
                let e = self.entries.entry(key.clone()).or_default();
                if e.current_good
                    && let Some(prev) = e.current.take()
                {
                    e.last_good = Some(prev);
                }
                e.current = None;
                e.current_good = false;
                e.load_problems = problems;
                e.load_generation = generation;
                self.index(&key);
            }
        }
    }

    /// Replaces every object of `kinds` with `changes` (a relist): objects not listed are
    /// deleted; listed objects identical to what is held (same resourceVersion) are skipped.
    pub fn replace(&mut self, kinds: &[Kind], changes: Vec<Change>) {
        let listed: BTreeSet<ObjectKey> = changes.iter().map(Change::key).collect();
        let stale: Vec<ObjectKey> = self
            .entries
            .keys()
            .filter(|k| kinds.contains(&k.kind) && !listed.contains(k))
            .cloned()
            .collect();
        for k in stale {
            self.apply(Change::Delete(k));
        }
        for c in changes {
            if let Change::Upsert { object, .. } = &c
                && let Some(rv) = &object.meta().resource_version
                && let Some(e) = self.entries.get(&c.key())
                && let Some(cur) = &e.current
                && cur.meta().resource_version.as_ref() == Some(rv)
            {
                continue;
            }
            self.apply(c);
        }
    }

    fn index(&mut self, key: &ObjectKey) {
        match key.kind {
            Kind::Namespace => {
                self.namespaces.insert(key.name.clone());
            }
            Kind::Mesh => {
                self.meshes.insert(key.clone());
            }
            _ => {}
        }
        if key.kind != Kind::Namespace {
            self.by_ns
                .entry(key.namespace.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &ObjectKey) {
        match key.kind {
            Kind::Namespace => {
                self.namespaces.remove(&key.name);
            }
            Kind::Mesh => {
                self.meshes.remove(key);
            }
            _ => {}
        }
        if let Some(set) = self.by_ns.get_mut(&key.namespace) {
            set.remove(key);
            if set.is_empty() {
                self.by_ns.remove(&key.namespace);
            }
        }
    }

    fn mark(&mut self, key: &ObjectKey) {
        match key.kind {
            Kind::Namespace => {
                self.dirty.insert(key.name.clone());
            }
            // A Mesh can change which adapter (and which settings) any namespace uses.
            Kind::Mesh => self.all_dirty = true,
            Kind::Install => {}
            Kind::ServiceAccount => {
                self.dirty.insert(key.namespace.clone());
                for (ns, p) in &self.partitions {
                    if p.sa_refs.contains(&key.namespace) {
                        self.dirty.insert(ns.clone());
                    }
                }
            }
            _ => {
                self.dirty.insert(key.namespace.clone());
            }
        }
    }

    /// Marks every namespace for re-rendering (e.g. after a restart of the output side).
    pub fn mark_all(&mut self) {
        self.all_dirty = true;
    }

    /// Re-renders the dirty namespaces. Returns what changed.
    pub fn recompute(&mut self) -> Delta {
        let dirty: BTreeSet<String> = if self.all_dirty {
            self.by_ns
                .keys()
                .chain(self.partitions.keys())
                .chain(self.namespaces.iter())
                .cloned()
                .collect()
        } else {
            std::mem::take(&mut self.dirty)
        };
        let meshes_changed = self.all_dirty;
        self.all_dirty = false;
        self.dirty.clear();
        let mut delta = Delta {
            partitions: dirty.len(),
            ..Delta::default()
        };
        if meshes_changed {
            let new = self.compute_mesh_states();
            for (k, s) in &new {
                if self.mesh_states.get(k) != Some(s) {
                    delta.states.insert(k.clone());
                }
            }
            for k in self.mesh_states.keys() {
                if !new.contains_key(k) {
                    delta.states.insert(k.clone());
                }
            }
            self.mesh_states = new;
        }
        for ns in dirty {
            let new = self.compute(&ns);
            let old = match &new {
                Some(p) => self.partitions.insert(ns.clone(), p.clone()),
                None => self.partitions.remove(&ns),
            };
            let old = old.unwrap_or_default();
            let new = new.unwrap_or_default();
            for m in &self.api_meshes {
                let of = |p: &Partition| -> Vec<ApiPart> {
                    p.api.iter().filter(|a| a.mesh == *m).cloned().collect()
                };
                if of(&old) != of(&new) {
                    delta.api.insert(*m);
                }
            }
            // Statuses.
            for (k, s) in &new.states {
                if old.states.get(k) != Some(s) {
                    delta.states.insert(k.clone());
                }
            }
            for k in old.states.keys() {
                if !new.states.contains_key(k) {
                    delta.states.insert(k.clone());
                }
            }
            // Outputs.
            for k in old.outputs.keys() {
                if !new.outputs.contains_key(k) {
                    if let Some(c) = self.contributors.get_mut(k) {
                        c.remove(&ns);
                        if c.is_empty() {
                            self.contributors.remove(k);
                        }
                    }
                    self.refresh_desired(k, &mut delta);
                }
            }
            for (k, d) in new.outputs {
                let same = old
                    .outputs
                    .get(&k)
                    .is_some_and(|o| o.object.body == d.object.body && o.mesh == d.mesh);
                if same {
                    continue;
                }
                self.contributors
                    .entry(k.clone())
                    .or_default()
                    .insert(ns.clone(), d);
                self.refresh_desired(&k, &mut delta);
            }
        }
        delta
    }

    /// Picks the effective desired object for `k` among its contributors: the partition of
    /// the object's own namespace, else the first by name (deterministic).
    fn refresh_desired(&mut self, k: &OutKey, delta: &mut Delta) {
        let pick = self
            .contributors
            .get(k)
            .and_then(|c| c.get(&k.namespace).or_else(|| c.values().next()).cloned());
        let changed = match (&pick, self.desired.get(k)) {
            (Some(a), Some(b)) => a.object.body != b.object.body || a.mesh != b.mesh,
            (None, None) => false,
            _ => true,
        };
        if let Some(c) = self.contributors.get(k)
            && c.len() > 1
        {
            tracing::warn!(output = %k, partitions = ?c.keys().collect::<Vec<_>>(), "output produced by several namespaces; using one");
        }
        match pick {
            Some(d) => {
                self.desired.insert(k.clone(), d);
            }
            None => {
                self.desired.remove(k);
            }
        }
        if changed {
            delta.outputs.insert(k.clone());
        }
    }

    /// Which meshes program namespace `ns`, with their settings; or why none does.
    pub fn meshes_for(&self, ns: &str) -> Result<Vec<(MeshType, Option<MeshSpec>)>, String> {
        let label = self
            .entries
            .get(&ObjectKey::new(Kind::Namespace, "", ns))
            .and_then(|e| e.current.as_ref())
            .and_then(|o| o.meta().labels.get(MESH_LABEL).cloned());
        let meshes: Vec<(&ObjectKey, &MeshSpec)> = self
            .meshes
            .iter()
            .filter_map(|k| match self.entries.get(k)?.current.as_ref()? {
                Object::Mesh(m, _) => Some((k, &m.spec)),
                _ => None,
            })
            .collect();
        if let Some(name) = label {
            let named: Vec<_> = meshes.iter().filter(|(k, _)| k.name == name).collect();
            let pick = named
                .iter()
                .find(|(k, _)| k.namespace == self.cfg.base.controller_namespace)
                .or(if named.len() == 1 {
                    named.first()
                } else {
                    None
                });
            return match pick {
                Some((_, spec)) => Ok(vec![(spec.mesh_type, Some((*spec).clone()))]),
                None if named.is_empty() => Err(format!(
                    "namespace label {MESH_LABEL}={name} names a Mesh that does not exist"
                )),
                None => Err(format!(
                    "namespace label {MESH_LABEL}={name} is ambiguous: Meshes named `{name}` exist in several namespaces and none in the controller namespace `{}`",
                    self.cfg.base.controller_namespace
                )),
            };
        }
        match &self.cfg.backends {
            Backends::List(v) => Ok(v
                .iter()
                .map(|t| {
                    let spec = meshes
                        .iter()
                        .find(|(_, s)| s.mesh_type == *t)
                        .map(|(_, s)| (*s).clone());
                    (*t, spec)
                })
                .collect()),
            Backends::Auto => match meshes.as_slice() {
                [(_, spec)] => Ok(vec![(spec.mesh_type, Some((*spec).clone()))]),
                [] => Err(format!(
                    "no backend: no Mesh exists; label the namespace with {MESH_LABEL} or run with --backend"
                )),
                _ => Err(format!(
                    "no backend: several Meshes exist; label the namespace with {MESH_LABEL}: <Mesh name>"
                )),
            },
        }
    }

    fn context(&self, spec: Option<MeshSpec>) -> Context {
        Context::for_mesh(&self.cfg.base, self.cfg.trust_domain.as_deref(), spec)
    }

    /// Renders one namespace. `None` when the namespace holds nothing to render.
    fn compute(&mut self, ns: &str) -> Option<Partition> {
        let keys: Vec<ObjectKey> = self.by_ns.get(ns)?.iter().cloned().collect();
        // Cluster-wide facts: Namespace objects this partition reads and every Mesh.
        let mut snap = Snapshot::default();
        let mut sa_refs = BTreeSet::new();
        let mut fallback_candidates = Vec::new();
        let mut load_invalid = Vec::new();
        for k in &keys {
            let Some(e) = self.entries.get(k) else {
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
        let mut ns_names: BTreeSet<&str> = sa_refs.iter().map(String::as_str).collect();
        ns_names.insert(ns);
        for n in ns_names {
            if let Some(o) = self
                .entries
                .get(&ObjectKey::new(Kind::Namespace, "", n))
                .and_then(|e| e.current.as_ref())
            {
                snap.apply(o.clone());
            }
        }
        for m in &self.meshes {
            if m.namespace != ns
                && let Some(o) = self.entries.get(m).and_then(|e| e.current.as_ref())
            {
                snap.apply(o.clone());
            }
        }
        for other in &sa_refs {
            if let Some(set) = self.by_ns.get(other) {
                for k in set.iter().filter(|k| k.kind == Kind::ServiceAccount) {
                    if let Some(o) = self.entries.get(k).and_then(|e| e.current.as_ref()) {
                        snap.apply(o.clone());
                    }
                }
            }
        }

        let first = meshbridge_core::build::build(&snap);
        // Last-known-good: an object whose newest version is not accepted is programmed
        // from its last accepted version.
        let mut replaced = Vec::new();
        for k in &fallback_candidates {
            if first.status.get(k).is_some_and(|s| !s.accepted)
                && let Some(good) = self.entries.get(k).and_then(|e| e.last_good.clone())
            {
                snap.apply(good);
                replaced.push(k.clone());
            }
        }
        let rebuilt = if replaced.is_empty() {
            None
        } else {
            Some(meshbridge_core::build::build(&snap))
        };
        let ir = rebuilt.as_ref().unwrap_or(&first);

        // Update the good/last-good bookkeeping.
        for (k, st) in &first.status {
            if let Some(e) = self.entries.get_mut(k)
                && e.current.is_some()
                && st.accepted
            {
                e.current_good = true;
                e.last_good = None;
            }
        }

        // Backends.
        let mut p = Partition {
            sa_refs,
            ..Partition::default()
        };
        let selection = self.meshes_for(ns);
        let mut per_object: BTreeMap<ObjectKey, Vec<(MeshType, Vec<Finding>)>> = BTreeMap::new();
        let mut backend_problem: Option<String> = None;
        match &selection {
            Ok(list) => {
                for (mesh, spec) in list {
                    let Some(adapter) = self.adapters.get(mesh).cloned() else {
                        backend_problem = Some(format!(
                            "backend {mesh} is not available in `meshbridge run` (this build programs: {})",
                            self.available()
                                .iter()
                                .map(|m| m.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        continue;
                    };
                    let cx = self.context(spec.clone());
                    let tr = adapter.translate(ir, &cx);
                    let api = self.api_meshes.contains(mesh);
                    if api {
                        p.api.push(ApiPart {
                            mesh: *mesh,
                            ir: Arc::new(ir.clone()),
                            cx: cx.clone(),
                        });
                    }
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
            let using_last_good = replaced.contains(k);
            p.states.insert(
                k.clone(),
                state_of(st, &meshes, using_last_good, backend_problem.as_deref()),
            );
        }
        for k in load_invalid {
            let Some(e) = self.entries.get(&k) else {
                continue;
            };
            if !k.kind.is_smi() {
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
                k.clone(),
                state_of(
                    &st,
                    &meshes,
                    e.last_good.is_some(),
                    backend_problem.as_deref(),
                ),
            );
        }
        if p.outputs.is_empty() && p.api.is_empty() && p.states.is_empty() && p.sa_refs.is_empty() {
            return None;
        }
        Some(p)
    }
}

fn state_of(
    st: &ObjectStatus,
    meshes: &[(MeshType, Vec<&Finding>)],
    using_last_good: bool,
    backend_problem: Option<&str>,
) -> ObjectState {
    let mut conditions = meshbridge_core::status::conditions(st, meshes);
    if using_last_good
        && let Some(c) = conditions
            .iter_mut()
            .find(|c| c.type_ == meshbridge_core::status::ACCEPTED)
    {
        c.message = format!("{}; the last accepted version stays programmed", c.message);
    }
    if let Some(why) = backend_problem {
        conditions.push(Condition {
            type_: "Programmed".into(),
            status: "False".into(),
            reason: "NoBackend".into(),
            message: why.to_string(),
            observed_generation: st.generation,
            last_transition_time: None,
        });
    }
    let mut problems = st.problems.clone();
    problems.sort();
    ObjectState {
        conditions,
        generation: st.generation,
        accepted: st.accepted && !st.problems.iter().any(|p| p.is_error() && !p.is_ref()),
        resolved: st.resolved_refs,
        problems,
        using_last_good,
        extra: None,
    }
}
