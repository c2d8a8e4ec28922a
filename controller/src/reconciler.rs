//! The reconciler: feeds messages into the [`Engine`], keeps a mirror of the live owned
//! outputs, and brings the sink and the status of input objects to the desired state,
//! writing only what differs.

use crate::api::{ApiBackend, ApiProblem, ApiReport};
use crate::engine::{Delta, Engine};
use crate::metrics::{Metrics, ObjectCounts};
use crate::sink::{PutOutcome, Sink, is_owned};
use crate::status::{
    StatusSink, StatusTarget, now_rfc3339, same_conditions, with_transition_times,
};
use crate::types::{Msg, OutKey};
use crate::{Error, Result};
use meshbridge_core::adapter::OWNER_LABEL;
use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::model::{Kind, ObjectKey};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Annotation carrying a hash of the applied object (kube sink), so a change of the desired
/// object is seen even for fields the live object still has from an earlier version.
pub const HASH_ANNOTATION: &str = "meshbridge.io/hash";

/// What one [`Reconciler::reconcile`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub delta: Delta,
    pub applied: Vec<OutKey>,
    pub deleted: Vec<OutKey>,
    pub conflicts: Vec<(OutKey, String)>,
    pub status_writes: Vec<ObjectKey>,
    pub errors: Vec<String>,
    /// Whether writes were skipped because this replica is not the leader.
    pub not_leader: bool,
    /// What each API backend's sync did (only backends that synced in this pass).
    pub api: Vec<(MeshType, ApiReport)>,
}

impl Report {
    /// Objects written or deleted, in the sink and through API backends.
    pub fn writes(&self) -> usize {
        self.applied.len()
            + self.deleted.len()
            + self.api.iter().map(|(_, r)| r.changes.len()).sum::<usize>()
    }

    /// Remote resources an API backend left alone because they are not meshbridge's.
    pub fn api_conflicts(&self) -> impl Iterator<Item = String> + '_ {
        self.api
            .iter()
            .flat_map(|(m, r)| r.conflicts.iter().map(move |c| format!("{m}: {c}")))
    }
}

/// A failed write of one output.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteFailure {
    /// The backend whose output it is (`None`: a stale output no backend renders now).
    pub mesh: Option<MeshType>,
    /// `Forbidden` when the server refused the write (RBAC), else `WriteFailed`.
    pub reason: &'static str,
    pub message: String,
}

impl WriteFailure {
    fn of(mesh: Option<MeshType>, e: &Error) -> WriteFailure {
        let reason = match e {
            Error::Api { code: 403, .. } => "Forbidden",
            _ => "WriteFailed",
        };
        WriteFailure {
            mesh,
            reason,
            message: e.to_string(),
        }
    }
}

/// Whether this replica may write (see [`crate::leader`]).
pub type LeaderFlag = Arc<std::sync::atomic::AtomicBool>;

pub struct Reconciler {
    pub engine: Engine,
    sink: Box<dyn Sink>,
    status: Box<dyn StatusSink>,
    live: BTreeMap<OutKey, Value>,
    live_loaded: bool,
    pending: BTreeSet<OutKey>,
    pending_status: BTreeSet<ObjectKey>,
    conflicts: BTreeMap<OutKey, String>,
    /// Outputs whose last write (apply or delete) failed, with the sink's error: their
    /// parents are not `Programmed` until a write succeeds.
    failures: BTreeMap<OutKey, WriteFailure>,
    metrics: Arc<Metrics>,
    leader: LeaderFlag,
    was_leader: bool,
    /// API versions of input objects, for status targets.
    pub api_versions: BTreeMap<Kind, String>,
    api_backends: Vec<Box<dyn ApiBackend>>,
    /// API backends to sync in the next pass, and whether to compare with the remote side
    /// even when nothing changed locally.
    api_pending: BTreeMap<MeshType, bool>,
    /// Per API mesh, the input objects its last sync could not (fully) program.
    api_problems: BTreeMap<MeshType, BTreeMap<ObjectKey, Vec<ApiProblem>>>,
    /// The dashboard / TrafficMetrics server's state, and the passes that changed something
    /// (its model's generation).
    ui: Option<(Arc<meshbridge_metrics::State>, u64)>,
}

impl Reconciler {
    pub fn new(
        engine: Engine,
        sink: Box<dyn Sink>,
        status: Box<dyn StatusSink>,
        metrics: Arc<Metrics>,
        leader: LeaderFlag,
    ) -> Reconciler {
        Reconciler {
            engine,
            sink,
            status,
            live: BTreeMap::new(),
            live_loaded: false,
            pending: BTreeSet::new(),
            pending_status: BTreeSet::new(),
            conflicts: BTreeMap::new(),
            failures: BTreeMap::new(),
            metrics,
            leader,
            was_leader: false,
            api_versions: BTreeMap::new(),
            api_backends: Vec::new(),
            api_pending: BTreeMap::new(),
            api_problems: BTreeMap::new(),
            ui: None,
        }
    }

    /// Keeps `state`'s configuration model current (after every pass that changes an
    /// output or a status).
    pub fn set_ui(&mut self, state: Arc<meshbridge_metrics::State>) {
        self.ui = Some((state, 0));
    }

    fn refresh_ui(&mut self, changed: bool) {
        let Some((state, generation)) = &mut self.ui else {
            return;
        };
        if !changed && *generation > 0 {
            return;
        }
        *generation += 1;
        let ir = meshbridge_core::build::build(&self.engine.snapshot_in_use());
        let mut m = meshbridge_core::metrics::dashboard::model(
            &self.engine,
            &ir,
            &self.engine.programmed(),
        );
        m.generation = *generation;
        state.set_model(m);
    }

    /// Adds a backend programmed through an API; the engine stops sending that mesh's
    /// objects to the sink and keeps its IR for the backend instead.
    pub fn add_api_backend(&mut self, backend: Box<dyn ApiBackend>) {
        let m = backend.mesh_type();
        self.api_backends.retain(|b| b.mesh_type() != m);
        self.api_backends.push(backend);
        self.engine
            .set_api_meshes(self.api_backends.iter().map(|b| b.mesh_type()));
        self.api_pending.insert(m, true);
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn controller_namespace(&self) -> &str {
        &self.engine.config().base.controller_namespace
    }

    /// Applies one message (no I/O).
    pub fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Input(c) => self.engine.apply(c),
            Msg::Replace { kinds, changes } => self.engine.replace(&kinds, changes),
            Msg::LiveUpsert(k, v) => {
                if is_owned(&v, self.controller_namespace()) {
                    self.live.insert(k.clone(), *v);
                } else {
                    // Our label was removed by someone: it is no longer ours.
                    self.live.remove(&k);
                }
                self.pending.insert(k);
            }
            Msg::LiveDelete(k) => {
                self.live.remove(&k);
                self.pending.insert(k);
            }
            Msg::LiveReplace {
                group,
                kind,
                objects,
            } => {
                let ns = self.controller_namespace().to_string();
                let stale: Vec<OutKey> = self
                    .live
                    .keys()
                    .filter(|k| k.group == group && k.kind == kind)
                    .cloned()
                    .collect();
                for k in stale {
                    self.live.remove(&k);
                    self.pending.insert(k);
                }
                for (k, v) in objects {
                    if is_owned(&v, &ns) {
                        self.pending.insert(k.clone());
                        self.live.insert(k, v);
                    }
                }
                self.live_loaded = true;
            }
            Msg::Synced(_) => {}
        }
    }

    /// Loads the live owned objects from the sink (done once, and on becoming leader).
    pub async fn load_live(&mut self) -> Result<()> {
        let live = self.sink.list_owned().await?;
        self.pending.extend(self.live.keys().cloned());
        self.pending.extend(live.keys().cloned());
        self.live = live;
        self.live_loaded = true;
        Ok(())
    }

    /// Marks every output and status for a full comparison.
    pub fn resync(&mut self) {
        self.pending.extend(self.live.keys().cloned());
        self.pending.extend(self.engine.desired().keys().cloned());
        self.pending_status
            .extend(self.engine.states().map(|(k, _)| k.clone()));
        self.pending_status
            .extend(self.engine.mesh_states().keys().cloned());
        for b in &self.api_backends {
            self.api_pending.insert(b.mesh_type(), true);
        }
    }

    /// One pass: re-render what changed, then write the differences (when leader).
    pub async fn reconcile(&mut self) -> Report {
        let start = Instant::now();
        let delta = self.engine.recompute();
        for (output, partitions) in &delta.shared {
            tracing::warn!(%output, ?partitions, "output produced by several namespaces; using one");
        }
        self.refresh_ui(!delta.outputs.is_empty() || !delta.states.is_empty());
        self.pending.extend(delta.outputs.iter().cloned());
        self.pending_status.extend(delta.states.iter().cloned());
        for m in &delta.api {
            self.api_pending.entry(*m).or_insert(false);
        }
        let mut report = Report {
            delta,
            ..Report::default()
        };
        let leader = self.leader.load(Ordering::Relaxed);
        self.metrics.leader.store(leader, Ordering::Relaxed);
        if !leader {
            self.was_leader = false;
            report.not_leader = true;
            self.finish_metrics(start, &report);
            return report;
        }
        if !self.was_leader || !self.live_loaded {
            // New leader: the mirror may be stale; compare everything.
            if !self.live_loaded
                && let Err(e) = self.load_live().await
            {
                report.errors.push(e.to_string());
                self.finish_metrics(start, &report);
                return report;
            }
            self.was_leader = true;
            self.resync();
        }
        self.sync_outputs(&mut report).await;
        self.sync_apis(&mut report).await;
        self.sync_status(&mut report).await;
        self.finish_metrics(start, &report);
        report
    }

    fn finish_metrics(&self, start: Instant, report: &Report) {
        let m = &self.metrics;
        m.observe_reconcile(start.elapsed().as_secs_f64());
        if !report.errors.is_empty() {
            m.reconcile_errors.fetch_add(1, Ordering::Relaxed);
            m.errors
                .fetch_add(report.errors.len() as u64, Ordering::Relaxed);
        }
        m.outputs_applied.fetch_add(
            (report.applied.len()
                + report
                    .api
                    .iter()
                    .map(|(_, r)| r.changes.len())
                    .sum::<usize>()) as u64,
            Ordering::Relaxed,
        );
        m.outputs_deleted
            .fetch_add(report.deleted.len() as u64, Ordering::Relaxed);
        m.output_conflicts
            .store(self.conflicts.len() as u64, Ordering::Relaxed);
        if !report.not_leader {
            let api_failing = report
                .api
                .iter()
                .filter(|(_, r)| !r.errors.is_empty())
                .count();
            m.write_failures.store(
                (self.failures.len() + api_failing) as u64,
                Ordering::Relaxed,
            );
        } else {
            m.write_failures.store(0, Ordering::Relaxed);
        }
        m.status_writes
            .fetch_add(report.status_writes.len() as u64, Ordering::Relaxed);
        m.inputs.store(self.engine.len() as u64, Ordering::Relaxed);
        m.outputs_desired
            .store(self.engine.desired().len() as u64, Ordering::Relaxed);
        if !report.delta.states.is_empty() {
            let mut c = ObjectCounts::default();
            for (_, s) in self.engine.states() {
                if !s.accepted {
                    c.invalid += 1;
                } else if !s.resolved {
                    c.unresolved += 1;
                } else {
                    c.accepted += 1;
                }
                if s.using_last_good {
                    c.last_good += 1;
                }
            }
            m.set_objects(c);
        }
    }

    /// The body to write for a desired object: as rendered, plus ownerReferences (sinks
    /// that want them) and the hash annotation (kube).
    fn body_for(&self, obj: &meshbridge_core::OutputObject) -> Value {
        let mut body = obj.body.clone();
        if !self.sink.owner_references() {
            return body;
        }
        let Some(ns) = obj.namespace.as_deref() else {
            return add_hash(body);
        };
        let mut refs = Vec::new();
        for p in &obj.parents {
            if p.namespace != ns {
                continue;
            }
            let Some(o) = self.engine.object(p) else {
                continue;
            };
            let m = o.meta();
            let Some(uid) = &m.uid else { continue };
            refs.push(json!({
                "apiVersion": m.api_version,
                "kind": p.kind.as_str(),
                "name": p.name,
                "uid": uid,
            }));
        }
        if !refs.is_empty() {
            body["metadata"]["ownerReferences"] = Value::Array(refs);
        }
        add_hash(body)
    }

    async fn sync_outputs(&mut self, report: &mut Report) {
        let keys = std::mem::take(&mut self.pending);
        let ns = self.controller_namespace().to_string();
        let mut retry = BTreeSet::new();
        for key in keys {
            let (desired, desired_mesh) = match self.engine.desired().get(&key) {
                Some(d) => (Some(d.object.clone()), Some(d.mesh)),
                None => (None, None),
            };
            let live = self.live.get(&key).cloned();
            match (desired, live) {
                (Some(d), live) => {
                    let body = self.body_for(&d);
                    if let Some(l) = &live
                        && self.sink.up_to_date(&body, l)
                    {
                        self.conflicts.remove(&key);
                        continue;
                    }
                    match self.sink.put(&key, &body, live.as_ref()).await {
                        Ok(PutOutcome::Written(v)) => {
                            tracing::info!(output = %key, "applied");
                            self.live.insert(key.clone(), v);
                            let was_conflict = self.conflicts.remove(&key).is_some();
                            if was_conflict | self.clear_failure(&key) {
                                self.mark_parents_status(&d.parents);
                            }
                            report.applied.push(key);
                        }
                        Ok(PutOutcome::Conflict(why)) => {
                            tracing::warn!(output = %key, reason = %why, "conflict: not overwriting an object meshbridge does not own");
                            if self.conflicts.insert(key.clone(), why.clone()).as_ref()
                                != Some(&why)
                            {
                                self.mark_parents_status(&d.parents);
                            }
                            report.conflicts.push((key.clone(), why));
                            // No watch tells us when the other object goes away (it lacks
                            // our label): check again with backoff.
                            retry.insert(key);
                        }
                        Err(e) => {
                            tracing::error!(output = %key, error = %e, "apply failed");
                            report.errors.push(format!("{key}: {e}"));
                            self.record_failure(&key, desired_mesh, &d.parents, &e);
                            retry.insert(key);
                        }
                    }
                }
                (None, Some(l)) => {
                    if self.conflicts.remove(&key).is_some() {
                        // nothing to tell: the parent is gone or no longer renders it
                    }
                    if !is_owned(&l, &ns) {
                        self.live.remove(&key);
                        continue;
                    }
                    match self.sink.delete(&key, &l).await {
                        Ok(()) => {
                            tracing::info!(output = %key, "deleted");
                            self.live.remove(&key);
                            self.clear_failure(&key);
                            report.deleted.push(key);
                        }
                        Err(Error::NotOwned(_)) => {
                            self.live.remove(&key);
                            self.clear_failure(&key);
                        }
                        Err(e) => {
                            tracing::error!(output = %key, error = %e, "delete failed");
                            report.errors.push(format!("{key}: {e}"));
                            // No parent renders it any more: the failure shows on the Mesh
                            // of the backend that made it (its `meshbridge.io/mesh` label
                            // is not kept, so: every Mesh) and in readiness.
                            self.record_failure(&key, None, &[], &e);
                            retry.insert(key);
                        }
                    }
                }
                (None, None) => {
                    self.conflicts.remove(&key);
                    self.clear_failure(&key);
                }
            }
        }
        self.pending = retry;
    }

    /// Hands each API backend whose desired state changed (or that is due a forced
    /// comparison) every namespace part it programs.
    async fn sync_apis(&mut self, report: &mut Report) {
        for b in &mut self.api_backends {
            let m = b.mesh_type();
            let Some(force) = self.api_pending.remove(&m) else {
                continue;
            };
            let parts = self.engine.api_parts(m);
            let r = b.sync(&parts, force).await;
            for c in &r.changes {
                tracing::info!(mesh = %m, resource = %c, "programmed");
            }
            for c in &r.conflicts {
                tracing::warn!(mesh = %m, resource = %c, "conflict: not overwriting a resource meshbridge does not own");
            }
            if !r.errors.is_empty() {
                for e in &r.errors {
                    tracing::error!(mesh = %m, error = %e, "sync failed");
                    report.errors.push(format!("{m}: {e}"));
                }
                // Compare everything again on the retry.
                self.api_pending.insert(m, true);
            }
            let old = self.api_problems.remove(&m).unwrap_or_default();
            if old != r.objects {
                self.pending_status.extend(old.keys().cloned());
                self.pending_status.extend(r.objects.keys().cloned());
            }
            if !r.objects.is_empty() {
                self.api_problems.insert(m, r.objects.clone());
            }
            report.api.push((m, r));
        }
    }

    fn mark_parents_status(&mut self, parents: &[ObjectKey]) {
        self.pending_status.extend(parents.iter().cloned());
    }

    /// Keys of the Mesh objects whose conditions report the writes of `mesh` (all Meshes
    /// when the mesh is not known, e.g. a stale output that could not be deleted).
    fn meshes_of(&self, mesh: Option<MeshType>) -> Vec<ObjectKey> {
        self.engine
            .mesh_states()
            .keys()
            .filter(|k| mesh.is_none() || self.mesh_type_of(k) == mesh)
            .cloned()
            .collect()
    }

    fn mesh_type_of(&self, key: &ObjectKey) -> Option<MeshType> {
        match self.engine.object(key)? {
            meshbridge_core::model::Object::Mesh(m, _) => Some(m.spec.mesh_type),
            _ => None,
        }
    }

    fn record_failure(
        &mut self,
        key: &OutKey,
        mesh: Option<MeshType>,
        parents: &[ObjectKey],
        e: &Error,
    ) {
        let f = WriteFailure::of(mesh, e);
        if self.failures.insert(key.clone(), f.clone()).as_ref() != Some(&f) {
            self.mark_parents_status(parents);
            let meshes = self.meshes_of(mesh);
            self.pending_status.extend(meshes);
        }
    }

    /// Forgets a failure after a successful write; returns whether there was one.
    fn clear_failure(&mut self, key: &OutKey) -> bool {
        let Some(f) = self.failures.remove(key) else {
            return false;
        };
        let meshes = self.meshes_of(f.mesh);
        self.pending_status.extend(meshes);
        true
    }

    /// Current write failures.
    pub fn failures(&self) -> &BTreeMap<OutKey, WriteFailure> {
        &self.failures
    }

    /// The `OutputsWritten` condition of a Mesh: whether every output of its type (and
    /// every stale output) was written.
    fn mesh_write_condition(&self, key: &ObjectKey, generation: Option<i64>) -> Option<Condition> {
        let t = self.mesh_type_of(key)?;
        let failing: Vec<(&OutKey, &WriteFailure)> = self
            .failures
            .iter()
            .filter(|(_, f)| f.mesh.is_none_or(|m| m == t))
            .collect();
        let c = match failing.first() {
            None => Condition {
                type_: OUTPUTS_WRITTEN.into(),
                status: "True".into(),
                reason: "Written".into(),
                message: String::new(),
                observed_generation: generation,
                last_transition_time: None,
            },
            Some((k, f)) => Condition {
                type_: OUTPUTS_WRITTEN.into(),
                status: "False".into(),
                reason: f.reason.into(),
                message: format!(
                    "{} output(s) cannot be written; first: {k}: {}",
                    failing.len(),
                    f.message
                ),
                observed_generation: generation,
                last_transition_time: None,
            },
        };
        Some(c)
    }

    /// Conditions to write for `key`: the computed ones, with what the sinks reported folded
    /// into the `Programmed/<mesh>` condition of each parent (output conflicts, failed
    /// writes, API sync problems): an object is `Programmed` only once its outputs were
    /// written. A Mesh also gets `OutputsWritten`.
    pub fn conditions_for(&self, key: &ObjectKey) -> Option<Vec<Condition>> {
        let st = self.engine.state(key)?;
        let mut conds = st.conditions.clone();
        let g = st.generation;
        let parents_of = |ok: &OutKey| {
            self.engine
                .desired()
                .get(ok)
                .filter(|d| d.object.parents.contains(key))
                .map(|d| d.mesh)
        };
        for (ok, why) in &self.conflicts {
            if let Some(mesh) = parents_of(ok) {
                let msg = format!("{ok}: {why}; not overwritten");
                not_programmed(&mut conds, mesh, "OutputConflict", msg, g);
            }
        }
        for (ok, f) in &self.failures {
            if let Some(mesh) = parents_of(ok) {
                let msg = format!("{ok}: {}", f.message);
                not_programmed(&mut conds, mesh, f.reason, msg, g);
            }
        }
        for (mesh, objects) in &self.api_problems {
            let Some(problems) = objects.get(key) else {
                continue;
            };
            let failed = problems.iter().any(|p| matches!(p, ApiProblem::Failed(_)));
            let msg = problems
                .iter()
                .map(|p| match p {
                    ApiProblem::Failed(m) => m.clone(),
                    ApiProblem::Conflict(m) => format!("{m}; not overwritten"),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let reason = if failed {
                "ApiSyncFailed"
            } else {
                "OutputConflict"
            };
            not_programmed(&mut conds, *mesh, reason, msg, g);
        }
        if let Some(c) = self.mesh_write_condition(key, g) {
            conds.push(c);
        }
        Some(conds)
    }

    async fn sync_status(&mut self, report: &mut Report) {
        let keys = std::mem::take(&mut self.pending_status);
        let mut retry = BTreeSet::new();
        let now = now_rfc3339();
        for key in keys {
            let Some(conds) = self.conditions_for(&key) else {
                continue;
            };
            // On a Mesh, discovery's condition types are discovery's to write.
            let live: Option<Vec<Condition>> = self.engine.live_status(&key).map(|l| {
                l.iter()
                    .filter(|c| {
                        key.kind != Kind::Mesh
                            || !meshbridge_core::status::DISCOVERY_CONDITIONS
                                .contains(&c.type_.as_str())
                    })
                    .cloned()
                    .collect()
            });
            if live.as_ref().is_some_and(|l| same_conditions(l, &conds)) {
                continue;
            }
            let conds = with_transition_times(&conds, live.as_deref(), &now);
            let (api_version, uid) = match self.engine.object(&key) {
                Some(o) => (Some(o.meta().api_version.clone()), o.meta().uid.clone()),
                None => (self.api_versions.get(&key.kind).cloned(), None),
            };
            let target = StatusTarget {
                key: key.clone(),
                api_version,
                uid,
                generation: self.engine.state(&key).and_then(|s| s.generation),
                extra: self.engine.state(&key).and_then(|s| s.extra.clone()),
            };
            match self.status.write(&target, &conds).await {
                Ok(()) => {
                    self.engine.set_live_status(&key, conds);
                    report.status_writes.push(key);
                }
                Err(e) => {
                    tracing::error!(object = %key, error = %e, "status write failed");
                    report.errors.push(format!("status of {key}: {e}"));
                    retry.insert(key);
                }
            }
        }
        self.pending_status = retry;
    }

    /// The live owned objects as mirrored.
    pub fn live(&self) -> &BTreeMap<OutKey, Value> {
        &self.live
    }

    /// Outputs not written because of hand-written objects.
    pub fn conflicts(&self) -> &BTreeMap<OutKey, String> {
        &self.conflicts
    }

    /// Whether writes are still outstanding (errors to retry).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.pending_status.is_empty() || !self.api_pending.is_empty()
    }
}

/// Condition type on Mesh objects: whether the sink could write every output of the mesh.
pub const OUTPUTS_WRITTEN: &str = "OutputsWritten";

/// Makes `Programmed/<mesh>` False with `reason` (a True one is replaced; a False one keeps
/// its first reason and gains the message).
fn not_programmed(
    conds: &mut Vec<Condition>,
    mesh: MeshType,
    reason: &str,
    msg: String,
    generation: Option<i64>,
) {
    let t = format!("Programmed/{mesh}");
    match conds.iter_mut().find(|c| c.type_ == t) {
        Some(c) if c.status == "False" => {
            c.message = if c.message.is_empty() {
                msg
            } else {
                format!("{}; {msg}", c.message)
            };
        }
        Some(c) => {
            c.status = "False".into();
            c.reason = reason.into();
            c.message = msg;
        }
        None => conds.push(Condition {
            type_: t,
            status: "False".into(),
            reason: reason.into(),
            message: msg,
            observed_generation: generation,
            last_transition_time: None,
        }),
    }
}

pub use meshbridge_core::engine::hash_value;

fn add_hash(mut body: Value) -> Value {
    let h = hash_value(&body);
    if let Some(md) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        let ann = md
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(a) = ann.as_object_mut() {
            a.insert(HASH_ANNOTATION.into(), Value::String(h));
        }
    }
    body
}

/// Whether every field of `desired` has the same value in `live` (maps compared key by key,
/// lists and scalars exactly). Fields only the server or other managers set are ignored.
pub fn contained_in(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| contained_in(dv, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| contained_in(a, b))
        }
        (a, b) => a == b,
    }
}

/// Whether the live object still carries the owner label (used by sinks).
pub fn owner_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/labels")?.get(OWNER_LABEL)?.as_str()
}
