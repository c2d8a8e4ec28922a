//! meshbridge's built-in Envoy backend.
//!
//! Two layers:
//! 1. [`sidecar`]: a pure translation IR → per-proxy xDS resources (listeners, routes,
//!    clusters, endpoints, secret names), in Envoy's proto3 JSON form. [`EnvoyAdapter`] wraps
//!    it in the core [`Adapter`] contract (`meshbridge translate --mesh envoy`).
//! 2. [`server`]: a tonic ADS server (state of the world and delta) behind the
//!    [`server::SnapshotSource`] trait, knowing nothing of SMI; [`ca`]: the built-in CA issuing
//!    SPIFFE certificates served over SDS; [`bootstrap`]: an Envoy bootstrap for one proxy.

pub mod bootstrap;
pub mod ca;
pub mod inject;
pub mod proto;
pub mod server;
pub mod sidecar;
pub mod stats;

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::{
    Adapter, CapabilityMatrix, Context, Feature, Ir, Level, OutputObject, Translation,
};
use serde_json::json;

pub use sidecar::{Proxy, ProxyConfig, proxies_of, translate_all};

/// API version and kind of the per-proxy documents `translate` prints.
pub const API_VERSION: &str = "meshbridge.io/v1alpha1";
pub const KIND: &str = "EnvoyProxyConfig";

#[derive(Clone, Debug, Default)]
pub struct EnvoyAdapter;

/// The Envoy backend's capability matrix (one per build: Envoy can express all of SMI's HTTP
/// and TCP semantics and GAMMA's route tables, filters, timeouts and retries; the sidecar
/// proxies no UDP).
pub fn capabilities() -> CapabilityMatrix {
    CapabilityMatrix::new([
        (Feature::TrafficSplit, Level::Full, ""),
        (Feature::TrafficSplitMatches, Level::Full, ""),
        (Feature::PathRouting, Level::Full, ""),
        (Feature::MethodRouting, Level::Full, ""),
        (Feature::HeaderRouting, Level::Full, ""),
        (
            Feature::HttpAccess,
            Level::Partial,
            "HTTP rules are enforced on ports declared HTTP (appProtocol or port name) and on undeclared ports, where HTTP is detected from the first bytes (a server-first protocol there waits 1 s before it is proxied as TCP); on ports declared non-HTTP (appProtocol tcp, names tcp-/mysql-/mongo-...) they allow nothing",
        ),
        (Feature::TcpAccess, Level::Full, ""),
        (
            Feature::UdpAccess,
            Level::None,
            "the sidecar proxies no UDP: UDP stays denied",
        ),
        (
            Feature::TcpRoutes,
            Level::Partial,
            "outbound TCP is told apart by port only: two TCP services on one port cannot both be reached",
        ),
        (
            Feature::UdpRoutes,
            Level::None,
            "the sidecar proxies no UDP",
        ),
        (
            Feature::Metrics,
            Level::Partial,
            "TrafficMetrics served by `meshbridge local` (the built-in mesh does not run in a cluster yet) from each sidecar's own statistics (pods, workloads, namespaces, edges; calls the caller's own sidecar refuses are refused edges to the Service's pods); a Service's latency histogram is shared among its pods in proportion to their requests, not measured per pod",
        ),
        (Feature::Mtls, Level::Full, ""),
        (Feature::RouteTables, Level::Full, ""),
        (Feature::QueryRouting, Level::Full, ""),
        (
            Feature::HeaderModifiers,
            Level::Partial,
            "the `host` header cannot be set, added or removed by a header modifier (Envoy refuses it): such an edit is not applied and reported; use URLRewrite's hostname",
        ),
        (Feature::UrlRewrite, Level::Full, ""),
        (Feature::Redirects, Level::Full, ""),
        (Feature::Timeouts, Level::Full, ""),
        (
            Feature::Retries,
            Level::Partial,
            "a backoff is Envoy's fully jittered exponential back-off from that base interval: a retry may come sooner than the backoff",
        ),
        (Feature::ConsumerRoutes, Level::Full, ""),
    ])
}

impl Adapter for EnvoyAdapter {
    fn mesh_type(&self) -> MeshType {
        MeshType::Envoy
    }

    fn capabilities(&self, _cx: &Context) -> CapabilityMatrix {
        capabilities()
    }

    /// One `EnvoyProxyConfig` document per proxy (pod, or Deployment template): its node id,
    /// SPIFFE identity, and every xDS resource it is served, in proto3 JSON with `@type`
    /// (exactly what the ADS server encodes). Certificates are issued at run time and not printed; `secrets` names them.
    fn translate(&self, ir: &Ir, cx: &Context) -> Translation {
        let proxies = proxies_of(ir);
        let (configs, findings) = translate_all(ir, cx, &proxies);
        let mut objects = Vec::new();
        for c in configs {
            let mut resources = serde_json::Map::new();
            for (ty, key) in [
                (proto::LISTENER, "listeners"),
                (proto::SCOPED_ROUTE, "scopedRoutes"),
                (proto::ROUTE, "routes"),
                (proto::CLUSTER, "clusters"),
                (proto::ENDPOINT, "endpoints"),
            ] {
                let list: Vec<serde_json::Value> = c
                    .resources
                    .get(ty)
                    .map(|m| m.values().map(|v| serde_json::Value::clone(v)).collect())
                    .unwrap_or_default();
                resources.insert(key.into(), json!(list));
            }
            resources.insert("secrets".into(), json!(c.secrets));
            let (ns, name) = c
                .node_id
                .split_once('/')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .unwrap_or_default();
            objects.push(OutputObject::new(
                cx,
                API_VERSION,
                KIND,
                Some(&ns),
                &name,
                c.parents.iter().cloned().collect(),
                json!({
                    "node": {"id": c.node_id, "cluster": c.identity.to_string()},
                    "identity": c.spiffe,
                    "resources": resources,
                }),
            ));
        }
        Translation { objects, findings }.finish()
    }
}
