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

/// Where `meshbridge run`'s TrafficMetrics numbers come from for `backends` (`auto`: any):
/// the Prometheus at `prometheus_url` asked with the series of each mesh that has them (Istio,
/// Linkerd; a Prometheus without a mesh's series answers nothing for it); `Err` says why there
/// are none (no URL; backends whose numbers no Prometheus convention names).
pub fn traffic_metrics(
    backends: &str,
    prometheus_url: Option<&str>,
) -> Result<std::sync::Arc<dyn meshbridge_metrics::Numbers>, String> {
    use meshbridge_metrics::prometheus::Prometheus;
    let window = meshbridge_core::metrics::DEFAULT_WINDOW_S;
    let wanted: Vec<MeshType> = if backends == "auto" {
        vec![MeshType::Istio, MeshType::Linkerd]
    } else {
        backends
            .split(',')
            .filter_map(|b| MeshType::parse(b.trim()))
            .collect()
    };
    let specs: Vec<meshbridge_core::metrics::prom::PromSpec> = wanted
        .iter()
        .filter_map(|m| match m {
            MeshType::Istio => Some(meshbridge_istio::metrics::prom_spec()),
            MeshType::Linkerd => Some(meshbridge_linkerd::metrics::prom_spec()),
            _ => None,
        })
        .collect();
    if specs.is_empty() {
        return Err(format!(
            "no TrafficMetrics for --backend {backends}: Gateway API and App Mesh define no traffic metrics meshbridge can read (see docs/capabilities.md, row metrics)"
        ));
    }
    let Some(url) = prometheus_url else {
        return Err("no --prometheus-url: Istio's and Linkerd's TrafficMetrics are read from the Prometheus that scrapes their proxies".into());
    };
    let mut sources: Vec<std::sync::Arc<dyn meshbridge_metrics::Numbers>> = specs
        .into_iter()
        .map(|s| {
            std::sync::Arc::new(Prometheus::new(url, s, window))
                as std::sync::Arc<dyn meshbridge_metrics::Numbers>
        })
        .collect();
    if sources.len() == 1 {
        return Ok(sources.remove(0));
    }
    Ok(std::sync::Arc::new(meshbridge_metrics::Merged(sources)))
}
