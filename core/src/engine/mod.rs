//! The sans-IO engine every runtime drives (`meshbridge run` through the controller's
//! reconciler, `meshbridge local` directly): an object store fed by [`Change`]s from any
//! source, partitioned by namespace, rendered through the mesh each namespace selects
//! (validate → IR → adapters → desired outputs), with one last-known-good rule and
//! per-object status. No I/O, no clock, no async: callers feed changes and read results.
//!
//! - [`store`]: the objects by [`Key`] and the last-known-good rule (which version of each
//!   object is in use);
//! - [`context`]: settings, backend selection per namespace and the adapter context rule;
//! - [`partition`]: rendering one namespace;
//! - [`status`]: per-object status (SMI objects and Meshes);
//! - [`change`]: what flows in ([`Change`]) and the key of what flows out ([`OutKey`]);
//! - [`output`]: what is rendered ([`Desired`] outputs, [`ApiPart`]s).
//!
//! **Why per namespace**: every SMI object and every output it produces live in one
//! namespace (a TrafficSplit's root and backends, a TrafficTarget's destination), so a
//! namespace plus the cluster-wide facts it reads (its Namespace object, Meshes, the
//! ServiceAccounts of namespaces its TrafficTargets name as sources) is a closed unit of
//! work. An edit to one TrafficSplit re-renders its namespace only. `tests/run_engine.rs`
//! checks that the union of the partitions equals translating the whole snapshot at once.
//!
//! **Keys and federation**: the store is keyed by [`Key`] = [`ClusterId`] + [`ObjectKey`].
//! Every source today feeds the local cluster ([`ClusterId::LOCAL`]), and the public API
//! speaks [`ObjectKey`] for it. Several clusters feeding one store is an addition: an
//! `apply_from(cluster, change)` next to [`Engine::apply`], statuses/outputs tagged with the
//! cluster; no key changes shape.
//!
//! **Last-known-good** (one rule for every runtime, docs/semantics.md): an SMI object whose
//! newest version is not accepted — invalid, or unreadable ([`Change::Invalid`]) — is
//! programmed from its last accepted version and its `Accepted` condition says so
//! ([`status::LAST_GOOD_NOTE`]); unresolved references and conflicts are not the version's
//! fault and never bring an older version back. Kinds the engine does not validate keep
//! their previous version when a new one cannot be read. A deleted object's outputs go.
//! (A file that fails to parse keeps its previous objects: sources never delete what an
//! unreadable document may hold, see [`crate::source::dir`].)

pub mod change;
pub mod context;
pub mod diagnostics;
pub mod key;
pub mod output;
mod partition;
pub mod status;
mod store;

pub use change::{Change, OutKey, changes_of, group_of};
pub use context::{Backends, EngineConfig};
pub use diagnostics::Diagnostics;
pub use key::{ClusterId, Key};
pub use output::{ApiPart, Desired};
pub use status::{LAST_GOOD_NOTE, ObjectState, hash_value, last_good_line};

use crate::api::common::Condition;
use crate::api::meshbridge::{MeshSpec, MeshType};
use crate::model::{Kind, Object, ObjectKey};
use crate::report::Problem;
use crate::{Adapter, Context, Finding, Snapshot};
use partition::{Partition, Renderers};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use store::Store;

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
    /// Outputs that several namespaces produce (one is used: the output's own namespace,
    /// else the first by name), with those namespaces. For the caller to report.
    pub shared: BTreeMap<OutKey, Vec<String>>,
}

/// The store, the partitions and the desired set.
pub struct Engine {
    cfg: EngineConfig,
    adapters: BTreeMap<MeshType, Arc<dyn Adapter>>,
    store: Store,
    partitions: BTreeMap<String, Partition>,
    /// Who contributes each output (normally one partition).
    contributors: BTreeMap<OutKey, BTreeMap<String, Desired>>,
    desired: BTreeMap<OutKey, Desired>,
    dirty: BTreeSet<String>,
    all_dirty: bool,
    /// Status of each Mesh object (capabilities of its backend).
    mesh_states: BTreeMap<ObjectKey, ObjectState>,
    /// Meshes programmed outside the engine rather than through desired outputs.
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
            store: Store::default(),
            partitions: BTreeMap::new(),
            contributors: BTreeMap::new(),
            desired: BTreeMap::new(),
            dirty: BTreeSet::new(),
            all_dirty: true,
            mesh_states: BTreeMap::new(),
            api_meshes: BTreeSet::new(),
        }
    }

    /// Declares meshes programmed outside the engine (e.g. App Mesh through the AWS API):
    /// their adapter, if the engine has one, still runs (findings and statuses), but its
    /// objects are not desired outputs; the namespace's IR is kept instead
    /// ([`Engine::api_parts`]). A declared mesh without an adapter here is translated by the
    /// caller (the built-in Envoy mesh of `meshbridge local`, per proxy): its objects are
    /// `Programmed/<mesh>` without findings.
    pub fn set_api_meshes(&mut self, meshes: impl IntoIterator<Item = MeshType>) {
        self.api_meshes = meshes.into_iter().collect();
        self.all_dirty = true;
    }

    /// What the backend of `mesh` should program: one part per namespace, by namespace.
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

    /// Each adapter's capability matrix in the engine's base context (what this runtime
    /// programs, with or without a Mesh object).
    pub fn capabilities(&self) -> Vec<(MeshType, crate::CapabilityMatrix)> {
        self.adapters
            .iter()
            .map(|(t, a)| (*t, a.capabilities(&self.cfg.base)))
            .collect()
    }

    /// The capability matrices of the backends this runtime programs now: the configured
    /// backends (`--backend LIST`, or the one of `Every`), and with `auto` each adapter that
    /// programs at least one namespace (through its label or the single Mesh) — not every
    /// adapter compiled in.
    pub fn programmed(&self) -> Vec<(MeshType, crate::CapabilityMatrix)> {
        let used: BTreeSet<MeshType> = match &self.cfg.backends {
            Backends::List(v) => v.iter().copied().collect(),
            Backends::Every(m) => [*m].into(),
            Backends::Auto => self
                .store
                .by_ns
                .keys()
                .chain(self.store.namespaces.iter())
                .filter_map(|ns| self.meshes_for(ns).ok())
                .flatten()
                .map(|(m, _)| m)
                .collect(),
        };
        self.capabilities()
            .into_iter()
            .filter(|(m, _)| used.contains(m))
            .collect()
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

    fn compute_mesh_states(&self) -> BTreeMap<ObjectKey, ObjectState> {
        let mut out = BTreeMap::new();
        for k in &self.store.meshes {
            let Some(Object::Mesh(m, meta)) =
                self.store.entries.get(k).and_then(|e| e.current.as_ref())
            else {
                continue;
            };
            let cx = self.cfg.context(Some(m.spec.clone()));
            out.insert(
                k.object.clone(),
                status::mesh_state(&m.spec, meta.generation, &self.adapters, &cx),
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

    /// The newest readable version of `key`.
    pub fn object(&self, key: &ObjectKey) -> Option<&Object> {
        self.store.get(key)?.current.as_ref()
    }

    /// The version of `key` in use after the last [`Engine::recompute`]: the newest one,
    /// or its last good version when the newest is not accepted or cannot be read.
    pub fn in_use(&self, key: &ObjectKey) -> Option<&Object> {
        let e = self.store.get(key)?;
        let fallback = e.current.is_none()
            || (e.last_good.is_some() && self.state(key).is_some_and(|s| s.using_last_good));
        if fallback {
            e.last_good.as_ref()
        } else {
            e.current.as_ref()
        }
    }

    /// Every object at the version in use ([`Engine::in_use`]), as one snapshot: what a
    /// runtime that translates the whole mesh at once (`meshbridge local`) reads.
    pub fn snapshot_in_use(&self) -> Snapshot {
        let mut keys: Vec<&Key> = self.store.entries.keys().collect();
        keys.sort();
        let mut snap = Snapshot::default();
        for k in keys {
            if let Some(o) = self.in_use(&k.object) {
                snap.apply(o.clone());
            }
        }
        snap
    }

    /// Problems of every input object: each SMI object's (validation and reading) and the
    /// reading problems of other kinds whose newest version could not be read, sorted.
    pub fn problems(&self) -> Vec<Problem> {
        let mut v: Vec<Problem> = self
            .states()
            .flat_map(|(_, s)| s.problems.iter().cloned())
            .collect();
        for (k, e) in &self.store.entries {
            if !k.object.kind.has_status() && e.current.is_none() {
                v.extend(e.load_problems.iter().cloned());
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// SMI objects programmed from their last accepted version, sorted.
    pub fn using_last_good(&self) -> Vec<&ObjectKey> {
        let mut v: Vec<&ObjectKey> = self
            .states()
            .filter(|(_, s)| s.using_last_good)
            .map(|(k, _)| k)
            .collect();
        v.sort();
        v
    }

    /// The status conditions the object carries in the cluster, when known.
    pub fn live_status(&self, key: &ObjectKey) -> Option<&Vec<Condition>> {
        self.store.get(key)?.live_status.as_ref()
    }

    /// Records status conditions just written (so the next comparison sees them).
    pub fn set_live_status(&mut self, key: &ObjectKey, conditions: Vec<Condition>) {
        if let Some(e) = self.store.get_mut(key) {
            e.live_status = Some(conditions);
        }
    }

    /// Number of input objects held.
    pub fn len(&self) -> usize {
        self.store.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.entries.is_empty()
    }

    /// Applies one change (of the local cluster); marks the namespaces whose outputs may
    /// change.
    pub fn apply(&mut self, change: Change) {
        let key = Key::local(change.key());
        // The echo of our own status write (same object, same generation: the spec did
        // not change) only refreshes what the object's status is; nothing to re-render.
        if let Change::Upsert {
            object,
            live_status: Some(ls),
        } = &change
            && (key.object.kind.has_status() || key.object.kind == Kind::Mesh)
            && let Some(e) = self.store.entries.get_mut(&key)
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
        self.mark(&key.object);
        self.store.apply(key, change);
    }

    /// Replaces every object of `kinds` with `changes` (a relist): objects not listed are
    /// deleted; listed objects identical to what is held (same resourceVersion) are skipped.
    pub fn replace(&mut self, kinds: &[Kind], changes: Vec<Change>) {
        let listed: BTreeSet<ObjectKey> = changes.iter().map(Change::key).collect();
        let stale: Vec<ObjectKey> = self
            .store
            .entries
            .keys()
            .filter(|k| kinds.contains(&k.object.kind) && !listed.contains(&k.object))
            .map(|k| k.object.clone())
            .collect();
        for k in stale {
            self.apply(Change::Delete(k));
        }
        for c in changes {
            if let Change::Upsert { object, .. } = &c
                && let Some(rv) = &object.meta().resource_version
                && let Some(e) = self.store.get(&c.key())
                && let Some(cur) = &e.current
                && cur.meta().resource_version.as_ref() == Some(rv)
            {
                continue;
            }
            self.apply(c);
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
            Kind::Service | Kind::ReferenceGrant => {
                self.dirty.insert(key.namespace.clone());
                for (ns, p) in &self.partitions {
                    if p.route_refs.contains(&key.namespace) {
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
            self.store
                .by_ns
                .keys()
                .chain(self.partitions.keys())
                .chain(self.store.namespaces.iter())
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
            let r = Renderers {
                cfg: &self.cfg,
                adapters: &self.adapters,
                api_meshes: &self.api_meshes,
            };
            let new = partition::compute(&mut self.store, &r, &ns);
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
            delta.shared.insert(k.clone(), c.keys().cloned().collect());
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
        self.cfg.meshes_for(&self.store, ns)
    }

    /// The adapter context of a mesh with these settings (flag > Mesh > default).
    pub fn context(&self, spec: Option<MeshSpec>) -> Context {
        self.cfg.context(spec)
    }
}
