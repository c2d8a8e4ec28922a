//! Glue between crates that must not know each other: the controller's [`ApiBackend`] for
//! AWS App Mesh is `meshbridge_appmesh::backend::Backend` (which plans, syncs and attributes
//! every failure and conflict to input objects, typed); this only converts its report to the
//! controller's. Also discovery's App Mesh mesh listing.

use meshbridge_appmesh::backend::{Backend, ObjectProblem, Part};
use meshbridge_appmesh::sync;
use meshbridge_controller::api::ApiProblem;
use meshbridge_controller::{ApiBackend, ApiReport};
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::engine::ApiPart;

pub struct AppMeshApi(Backend);

impl AppMeshApi {
    /// `default_mesh`: `--appmesh-mesh`; `owner`: the controller namespace.
    pub fn new(default_mesh: Option<String>, owner: String) -> AppMeshApi {
        AppMeshApi(Backend::new(default_mesh, owner))
    }
}

fn lines<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

#[async_trait::async_trait]
impl ApiBackend for AppMeshApi {
    fn mesh_type(&self) -> MeshType {
        MeshType::AppMesh
    }

    async fn sync(&mut self, parts: &[(&str, &ApiPart)], force: bool) -> ApiReport {
        let parts: Vec<Part<'_>> = parts
            .iter()
            .map(|(namespace, p)| Part {
                namespace,
                ir: &p.ir,
                cx: &p.cx,
            })
            .collect();
        let r = self.0.sync(&parts, force).await;
        let problem = |p: ObjectProblem| match p {
            ObjectProblem::Failed(m) => ApiProblem::Failed(m),
            ObjectProblem::Conflict(m) => ApiProblem::Conflict(m),
        };
        ApiReport {
            changes: lines(&r.changes),
            conflicts: lines(&r.conflicts),
            errors: lines(&r.errors),
            mutating_calls: r.mutating_calls,
            read_calls: r.read_calls,
            objects: (r.objects.into_iter())
                .map(|(k, ps)| (k, ps.into_iter().map(problem).collect()))
                .collect(),
        }
    }
}

/// Discovery's App Mesh listing (`ListMeshes` through the standard AWS chain), when
/// credentials are configured.
pub fn mesh_lister() -> Option<meshbridge_discovery::runner::ListAppMeshes> {
    if !sync::credentials_configured() {
        return None;
    }
    Some(std::sync::Arc::new(|| {
        Box::pin(async {
            let client = sync::client_from_env().await;
            sync::list_meshes(&client)
                .await
                .map_err(meshbridge_discovery::runner::ListError::from)
        })
    }))
}
