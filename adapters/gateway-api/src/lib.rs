//! meshbridge adapter for gateway-api. (Work in progress this session: the translation is being written.)

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::{Adapter, CapabilityMatrix, Context, Ir, Translation};

#[derive(Clone, Debug, Default)]
pub struct GatewayApiAdapter;

impl Adapter for GatewayApiAdapter {
    fn mesh_type(&self) -> MeshType {
        MeshType::GatewayApi
    }

    fn capabilities(&self, _cx: &Context) -> CapabilityMatrix {
        CapabilityMatrix::new([])
    }

    fn translate(&self, _ir: &Ir, _cx: &Context) -> Translation {
        Translation::default()
    }
}
