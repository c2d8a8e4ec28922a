//! meshbridge adapter for appmesh. (Work in progress this session: the translation is being written.)

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::{Adapter, CapabilityMatrix, Context, Ir, Translation};

#[derive(Clone, Debug, Default)]
pub struct AppMeshAdapter;

impl Adapter for AppMeshAdapter {
    fn mesh_type(&self) -> MeshType {
        MeshType::AppMesh
    }

    fn capabilities(&self, _cx: &Context) -> CapabilityMatrix {
        CapabilityMatrix::new([])
    }

    fn translate(&self, _ir: &Ir, _cx: &Context) -> Translation {
        Translation::default()
    }
}
