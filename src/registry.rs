//! The adapters compiled into this binary.

use meshbridge_core::Adapter;
use meshbridge_core::api::meshbridge::MeshType;

/// The adapter for a mesh, or `None` when this build does not implement it yet.
pub fn adapter_for(mesh: MeshType) -> Option<Box<dyn Adapter>> {
    match mesh {
        MeshType::Istio => Some(Box::new(meshbridge_istio::IstioAdapter)),
        MeshType::Linkerd => Some(Box::new(meshbridge_linkerd::LinkerdAdapter)),
        MeshType::GatewayApi => Some(Box::new(meshbridge_gateway_api::GatewayApiAdapter)),
        MeshType::Envoy => Some(Box::new(meshbridge_envoy::EnvoyAdapter)),
        MeshType::AppMesh => Some(Box::new(meshbridge_appmesh::AppMeshAdapter)),
    }
}
