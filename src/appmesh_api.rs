//! `meshbridge run --backend appmesh` (with the default `--appmesh-mode api`): the
//! controller's API backend for AWS App Mesh. Per sync, every namespace the engine assigns
//! to App Mesh is planned with `meshbridge_appmesh::desired_state`, the plans are merged per
//! App Mesh mesh (the Mesh object's `appMeshName`, else `--appmesh-mesh`), and each mesh is
//! brought to its plan by `meshbridge_appmesh::sync::sync` (create / update what differs,
//! delete meshbridge's stale resources, never touch untagged ones).
//!
//! A mesh whose plan did not change since its last successful sync is not called again,
//! unless the controller forces a comparison (resync, retry): that is how drift made behind
//! meshbridge's back is restored. A mesh that no namespace uses any more is synced once with
//! an empty plan, which deletes what meshbridge created there.

use meshbridge_appmesh::model::DesiredState;
use meshbridge_appmesh::sync::{self, aws_sdk_appmesh::Client};
use meshbridge_controller::api::ApiProblem;
use meshbridge_controller::engine::ApiPart;
use meshbridge_controller::{ApiBackend, ApiReport};
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::model::ObjectKey;
use std::collections::{BTreeMap, BTreeSet};

pub struct AppMeshApi {
    /// `--appmesh-mesh`.
    default_mesh: Option<String>,
    /// Value of the owner tag (the controller namespace).
    owner: String,
    /// Created on the first sync that needs it (standard AWS chain).
    client: Option<Client>,
    /// Per App Mesh mesh, the plan last synced without error.
    synced: BTreeMap<String, DesiredState>,
}

impl AppMeshApi {
    pub fn new(default_mesh: Option<String>, owner: String) -> AppMeshApi {
        AppMeshApi {
            default_mesh,
            owner,
            client: None,
            synced: BTreeMap::new(),
        }
    }

    /// The plan per App Mesh mesh, and the namespaces that name no mesh (with the objects
    /// they hold).
    fn plan(&self, parts: &[(&str, &ApiPart)]) -> (BTreeMap<String, DesiredState>, Unplaced) {
        let mut want: BTreeMap<String, DesiredState> = BTreeMap::new();
        let mut errors = Vec::new();
        for (ns, part) in parts {
            let mesh = meshbridge_appmesh::mesh_name(&part.cx)
                .map(str::to_string)
                .or_else(|| self.default_mesh.clone());
            let Some(mesh) = mesh else {
                let why = format!(
                    "namespace {ns}: no App Mesh mesh to program: set spec.appMeshName on its Mesh object or run with --appmesh-mesh"
                );
                let objects = part.ir.splits.values().map(|s| s.parent.clone()).collect();
                errors.push((why, objects));
                continue;
            };
            let st = meshbridge_appmesh::desired_state(&part.ir, &part.cx);
            let into = want.entry(mesh).or_insert_with(|| DesiredState {
                owner: self.owner.clone(),
                ..DesiredState::default()
            });
            into.virtual_nodes.extend(st.virtual_nodes);
            into.virtual_routers.extend(st.virtual_routers);
            into.virtual_services.extend(st.virtual_services);
            into.findings.extend(st.findings);
        }
        // Meshes programmed before (or named by --appmesh-mesh) that no namespace wants now:
        // an empty plan removes meshbridge's resources from them.
        for m in self.synced.keys().chain(self.default_mesh.iter()) {
            want.entry(m.clone()).or_insert_with(|| DesiredState {
                owner: self.owner.clone(),
                ..DesiredState::default()
            });
        }
        (want, errors)
    }
}

/// Reasons with the objects they concern.
type Unplaced = Vec<(String, Vec<ObjectKey>)>;

/// The SMI objects behind each planned resource, keyed the way sync reports name resources
/// (`VirtualNode/<name>`, `VirtualRouter/<name>`, `Route/<router>/<route>`,
/// `VirtualService/<name>`).
fn parents_by_id(st: &DesiredState) -> BTreeMap<String, BTreeSet<ObjectKey>> {
    let mut m = BTreeMap::new();
    for (name, n) in &st.virtual_nodes {
        m.insert(format!("VirtualNode/{name}"), n.parents.clone());
    }
    for (name, r) in &st.virtual_routers {
        m.insert(format!("VirtualRouter/{name}"), r.parents.clone());
        for route in &r.routes {
            m.insert(format!("Route/{name}/{}", route.name), r.parents.clone());
        }
    }
    for (name, v) in &st.virtual_services {
        m.insert(format!("VirtualService/{name}"), v.parents.clone());
    }
    m
}

#[async_trait::async_trait]
impl ApiBackend for AppMeshApi {
    fn mesh_type(&self) -> MeshType {
        MeshType::AppMesh
    }

    async fn sync(&mut self, parts: &[(&str, &ApiPart)], force: bool) -> ApiReport {
        let (want, unplaced) = self.plan(parts);
        let mut report = ApiReport::default();
        for (why, objects) in unplaced {
            for o in objects {
                report
                    .objects
                    .entry(o)
                    .or_default()
                    .push(ApiProblem::Failed(why.clone()));
            }
            report.errors.push(why);
        }
        let todo: Vec<(String, DesiredState)> = want
            .into_iter()
            .filter(|(m, st)| force || self.synced.get(m) != Some(st))
            .collect();
        if todo.is_empty() {
            return report;
        }
        if self.client.is_none() {
            self.client = Some(sync::client_from_env().await);
        }
        let Some(client) = self.client.clone() else {
            return report;
        };
        for (mesh, st) in todo {
            let r = sync::sync(&client, &mesh, &st).await;
            report.changes.extend(
                r.created
                    .iter()
                    .map(|c| format!("{mesh}: created {c}"))
                    .chain(r.updated.iter().map(|c| format!("{mesh}: updated {c}")))
                    .chain(r.deleted.iter().map(|c| format!("{mesh}: deleted {c}"))),
            );
            report
                .conflicts
                .extend(r.conflicts.iter().map(|c| format!("{mesh}: {c}")));
            report
                .errors
                .extend(r.errors.iter().map(|e| format!("{mesh}: {e}")));
            let parents = parents_by_id(&st);
            let all: BTreeSet<&ObjectKey> = parents.values().flatten().collect();
            let lines = r
                .errors
                .iter()
                .map(|e| (e, false))
                .chain(r.conflicts.iter().map(|c| (c, true)));
            for (line, conflict) in lines {
                let id = line.split(": ").next().unwrap_or_default();
                // A mesh-wide failure (`Mesh/<name>: ...`) concerns every object of the plan.
                let affected: Vec<&ObjectKey> = match parents.get(id) {
                    Some(p) => p.iter().collect(),
                    None if id.starts_with("Mesh/") => all.iter().copied().collect(),
                    None => vec![],
                };
                let msg = format!("App Mesh {mesh}: {line}");
                for o in affected {
                    report
                        .objects
                        .entry(o.clone())
                        .or_default()
                        .push(if conflict {
                            ApiProblem::Conflict(msg.clone())
                        } else {
                            ApiProblem::Failed(msg.clone())
                        });
                }
            }
            report.mutating_calls += r.mutating_calls;
            report.read_calls += r.read_calls;
            if !r.errors.is_empty() {
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
}

/// Whether AWS credentials are configured for this process without probing instance
/// metadata: access keys, a profile or shared credentials file, IRSA (web identity), or
/// ECS/EKS Pod Identity container credentials.
pub fn aws_credentials_configured() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    set("AWS_ACCESS_KEY_ID")
        || set("AWS_PROFILE")
        || set("AWS_SHARED_CREDENTIALS_FILE")
        || (set("AWS_ROLE_ARN") && set("AWS_WEB_IDENTITY_TOKEN_FILE"))
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
}

/// Discovery's App Mesh listing (`ListMeshes` through the standard AWS chain), when
/// credentials are configured.
pub fn mesh_lister() -> Option<meshbridge_discovery::runner::ListAppMeshes> {
    if !aws_credentials_configured() {
        return None;
    }
    Some(std::sync::Arc::new(|| {
        Box::pin(async {
            let client = sync::client_from_env().await;
            sync::list_meshes(&client).await
        })
    }))
}
