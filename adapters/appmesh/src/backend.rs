//! The App Mesh API backend of `meshbridge run --backend appmesh` (`--appmesh-mode api`):
//! given every namespace App Mesh programs (its IR and translation context), make each App
//! Mesh mesh hold exactly their plans, and say — typed — what changed and which input
//! objects are not programmed, and why.
//!
//! - Each namespace's IR is translated once ([`desired_state`]); the plan is kept until its
//!   IR or context changes.
//! - Plans are merged per App Mesh mesh: the Mesh object's `appMeshName`
//!   ([`crate::mesh_name`]), else the backend's default mesh (`--appmesh-mesh`). A
//!   namespace with neither is a [`BackendError::NoMesh`] for each of its TrafficSplits.
//! - A mesh whose plan did not change since its last successful sync is not called again
//!   unless `force` (resync, retry) is set: that is how drift is restored. A mesh no
//!   namespace uses any more is synced once with an empty plan (meshbridge's resources
//!   there are deleted).
//! - Failures and conflicts reach input objects through the parents every planned resource
//!   carries through [`sync`] ([`Failure::parents`], [`Conflict::parents`]).

use crate::desired_state;
use crate::model::DesiredState;
use crate::sync::{self, Conflict, Failure, ResourceId, SyncOptions, aws_sdk_appmesh::Client};
use meshbridge_core::model::ObjectKey;
use meshbridge_core::{Context, Ir};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One namespace to program: its IR and the translation context of its mesh.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    pub namespace: &'a str,
    pub ir: &'a Arc<Ir>,
    pub cx: &'a Context,
}

/// What happened to one remote resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Created,
    Updated,
    Deleted,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
        })
    }
}

/// A change made in one App Mesh mesh.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub mesh: String,
    pub action: Action,
    pub resource: ResourceId,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.mesh, self.action, self.resource)
    }
}

/// Why (part of) a namespace is not programmed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error(
        "namespace {namespace}: no App Mesh mesh to program: set spec.appMeshName on its Mesh object or run with --appmesh-mesh"
    )]
    NoMesh { namespace: String },
    /// A resource of `mesh` could not be written (after retries), or the mesh itself failed.
    #[error("{mesh}: {failure}")]
    Sync { mesh: String, failure: Failure },
}

/// A desired name in `mesh` held by a resource that is not meshbridge's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{mesh}: {conflict}")]
pub struct MeshConflict {
    pub mesh: String,
    pub conflict: Conflict,
}

/// Why one input object is not (fully) programmed; the message names the App Mesh mesh and
/// resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectProblem {
    /// A resource it needs could not be written (after retries).
    Failed(String),
    /// A resource it needs exists under the same name and is not meshbridge's.
    Conflict(String),
}

/// What one [`Backend::sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendReport {
    pub changes: Vec<Change>,
    pub errors: Vec<BackendError>,
    pub conflicts: Vec<MeshConflict>,
    /// Per input object, every problem of a resource behind it.
    pub objects: BTreeMap<ObjectKey, Vec<ObjectProblem>>,
    pub mutating_calls: usize,
    pub read_calls: usize,
}

impl BackendReport {
    fn problem(&mut self, object: &ObjectKey, p: ObjectProblem) {
        self.objects.entry(object.clone()).or_default().push(p);
    }
}

/// A namespace's plan and what it was made from.
struct Plan {
    ir: Arc<Ir>,
    cx: Context,
    state: DesiredState,
}

/// The App Mesh API backend (see the module docs).
pub struct Backend {
    /// `--appmesh-mesh`.
    default_mesh: Option<String>,
    /// Value of the owner tag (the controller namespace).
    owner: String,
    /// Created on the first sync that needs it (standard AWS chain) unless given.
    client: Option<Client>,
    options: SyncOptions,
    /// Per namespace, its last plan.
    plans: BTreeMap<String, Plan>,
    /// Per App Mesh mesh, the plan last synced without error.
    synced: BTreeMap<String, DesiredState>,
}

impl Backend {
    pub fn new(default_mesh: Option<String>, owner: String) -> Backend {
        Backend {
            default_mesh,
            owner,
            client: None,
            options: SyncOptions::default(),
            plans: BTreeMap::new(),
            synced: BTreeMap::new(),
        }
    }

    /// Uses `client` instead of one from the standard AWS chain.
    pub fn with_client(mut self, client: Client) -> Backend {
        self.client = Some(client);
        self
    }

    pub fn with_options(mut self, options: SyncOptions) -> Backend {
        self.options = options;
        self
    }

    fn empty(&self) -> DesiredState {
        DesiredState {
            owner: self.owner.clone(),
            ..DesiredState::default()
        }
    }

    /// The plan of one namespace: kept from the last call while its IR and context are the
    /// same, translated otherwise.
    fn plan_of(&mut self, part: &Part<'_>) -> &DesiredState {
        let fresh = self
            .plans
            .get(part.namespace)
            .is_some_and(|p| (Arc::ptr_eq(&p.ir, part.ir) || p.ir == *part.ir) && p.cx == *part.cx);
        if !fresh {
            let plan = Plan {
                ir: part.ir.clone(),
                cx: part.cx.clone(),
                state: desired_state(part.ir, part.cx).for_api(),
            };
            self.plans.insert(part.namespace.to_string(), plan);
        }
        &self.plans[part.namespace].state
    }

    /// The plan per App Mesh mesh; namespaces that name no mesh go in the report.
    fn plan(
        &mut self,
        parts: &[Part<'_>],
        report: &mut BackendReport,
    ) -> BTreeMap<String, DesiredState> {
        self.plans
            .retain(|ns, _| parts.iter().any(|p| p.namespace == ns));
        let mut want: BTreeMap<String, DesiredState> = BTreeMap::new();
        for part in parts {
            let mesh = crate::mesh_name(part.cx).or(self.default_mesh.as_deref());
            let Some(mesh) = mesh.map(str::to_string) else {
                let e = BackendError::NoMesh {
                    namespace: part.namespace.to_string(),
                };
                for s in part.ir.splits.values() {
                    report.problem(&s.parent, ObjectProblem::Failed(e.to_string()));
                }
                report.errors.push(e);
                self.plans.remove(part.namespace);
                continue;
            };
            let empty = self.empty();
            let st = self.plan_of(part).clone();
            let into = want.entry(mesh).or_insert(empty);
            into.virtual_nodes.extend(st.virtual_nodes);
            into.virtual_routers.extend(st.virtual_routers);
            into.virtual_services.extend(st.virtual_services);
            into.findings.extend(st.findings);
        }
        // Meshes programmed before (or named by --appmesh-mesh) that no namespace wants now:
        // an empty plan removes meshbridge's resources from them.
        for m in self.synced.keys().chain(self.default_mesh.iter()) {
            want.entry(m.clone()).or_insert_with(|| self.empty());
        }
        want
    }

    /// Makes every App Mesh mesh hold exactly what `parts` (one per namespace) describe;
    /// `force` compares with the remote side even where the plan did not change since the
    /// last successful sync. Never panics; failures are in the report.
    pub async fn sync(&mut self, parts: &[Part<'_>], force: bool) -> BackendReport {
        let mut report = BackendReport::default();
        let want = self.plan(parts, &mut report);
        let todo: Vec<(String, DesiredState)> = want
            .into_iter()
            .filter(|(m, st)| force || self.synced.get(m) != Some(st))
            .collect();
        if todo.is_empty() {
            return report;
        }
        let client = match &self.client {
            Some(c) => c.clone(),
            None => self.client.insert(sync::client_from_env().await).clone(),
        };
        for (mesh, st) in todo {
            let r = sync::sync_with(&client, &mesh, &st, &self.options).await;
            let ok = r.errors.is_empty();
            self.record(&mesh, r, &mut report);
            if !ok {
                self.synced.remove(&mesh);
            } else if st.resource_count() == 0 && Some(&mesh) != self.default_mesh.as_ref() {
                // Cleaned up: nothing of ours is left there.
                self.synced.remove(&mesh);
            } else {
                self.synced.insert(mesh, st);
            }
        }
        report
    }

    /// Adds one mesh's sync to the report: each failure and conflict goes to the input
    /// objects it carries.
    fn record(&self, mesh: &str, r: sync::SyncReport, report: &mut BackendReport) {
        let changes = [
            (Action::Created, r.created),
            (Action::Updated, r.updated),
            (Action::Deleted, r.deleted),
        ];
        for (action, ids) in changes {
            report
                .changes
                .extend(ids.into_iter().map(|resource| Change {
                    mesh: mesh.to_string(),
                    action,
                    resource,
                }));
        }
        for failure in r.errors {
            let msg = format!("App Mesh {mesh}: {failure}");
            for o in &failure.parents {
                report.problem(o, ObjectProblem::Failed(msg.clone()));
            }
            let mesh = mesh.to_string();
            report.errors.push(BackendError::Sync { mesh, failure });
        }
        for conflict in r.conflicts {
            let msg = format!("App Mesh {mesh}: {conflict}");
            for o in &conflict.parents {
                report.problem(o, ObjectProblem::Conflict(msg.clone()));
            }
            let mesh = mesh.to_string();
            report.conflicts.push(MeshConflict { mesh, conflict });
        }
        report.mutating_calls += r.mutating_calls;
        report.read_calls += r.read_calls;
    }
}
