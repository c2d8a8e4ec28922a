//! The swap flow's parts (Istio → Linkerd on one namespace, no application change), shared
//! by `swap_kube.rs` (the controller's kube sink against the fake API server) and the root
//! `tests/discovery_swap.rs` (its memory sink): the application, the namespace whose label
//! flips, the discovered Meshes and a reconciler with the real Istio and Linkerd adapters.

use meshbridge_controller::engine::{Backends, Engine, EngineConfig};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::reconciler::Reconciler;
use meshbridge_controller::sink::Sink;
use meshbridge_controller::status::LogStatusSink;
use meshbridge_controller::{Change, Msg};
use meshbridge_core::api::meshbridge::{Mesh, MeshSpec, MeshType};
use meshbridge_core::capability::Capability;
use meshbridge_core::{Adapter, Context};
use meshbridge_discovery::{Config, find_control_planes, merge};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The application (Services, ServiceAccounts, Deployments, SMI) in namespace `shop`.
pub const APP: &str = include_str!("../swap-app.yaml");

/// The recorded clusters running both meshes (Istio 1.22 and Linkerd stable-2.14).
pub const BOTH_MESHES: [&str; 2] = ["istio-1.22", "linkerd-stable-2.14"];

/// The adapters of the flow.
pub fn adapter(t: MeshType) -> Option<Box<dyn Adapter>> {
    match t {
        MeshType::Istio => Some(Box::new(meshbridge_istio::IstioAdapter)),
        MeshType::Linkerd => Some(Box::new(meshbridge_linkerd::LinkerdAdapter)),
        _ => None,
    }
}

/// The adapters' own matrices with the Mesh's settings.
pub fn caps(spec: &MeshSpec) -> Option<Vec<Capability>> {
    let cx = Context {
        mesh: Some(spec.clone()),
        ..Context::default()
    };
    Some(adapter(spec.mesh_type)?.capabilities(&cx).rows().to_vec())
}

/// The namespace `shop`, labelled for `mesh`.
pub fn namespace(mesh: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {{meshbridge.io/mesh: {mesh}}}\n"
    )
}

/// The cluster objects of [`BOTH_MESHES`] and the Meshes discovery makes of them.
pub fn discovered() -> (Vec<Value>, Vec<Mesh>) {
    let cluster: Vec<Value> = BOTH_MESHES.iter().flat_map(|c| super::cluster(c)).collect();
    let meshes = merge(&[], &find_control_planes(&cluster), &config(), &caps);
    (cluster, meshes)
}

/// Discovery's settings: Meshes in the controller namespace.
pub fn config() -> Config {
    Config {
        namespace: super::NS.into(),
        ..Config::default()
    }
}

/// The controller's reconciler (backend chosen per namespace) with the Istio and Linkerd
/// adapters, writing to `sink`.
pub fn reconciler(sink: Box<dyn Sink>) -> Reconciler {
    let engine = Engine::new(
        EngineConfig {
            base: Context {
                controller_namespace: super::NS.into(),
                ..Context::default()
            },
            trust_domain: None,
            backends: Backends::Auto,
        },
        [MeshType::Istio, MeshType::Linkerd]
            .into_iter()
            .filter_map(adapter)
            .collect(),
    );
    Reconciler::new(
        engine,
        sink,
        Box::new(LogStatusSink::default()),
        Arc::new(Metrics::default()),
        Arc::new(AtomicBool::new(true)),
    )
}

/// The starting point of the flow: the discovered `meshes`, the application and its
/// namespace on Istio, handed to the reconciler.
pub fn start(rec: &mut Reconciler, meshes: &[Mesh]) {
    feed(rec, &super::yaml_of(meshes));
    feed(rec, APP);
    feed(rec, &namespace("istio"));
}

/// Hands the objects of `yaml` to the reconciler as upserts.
pub fn feed(rec: &mut Reconciler, yaml: &str) {
    let l = meshbridge_core::load::load_str("swap.yaml", yaml);
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    for o in l.objects {
        rec.handle(Msg::Input(Change::Upsert {
            object: Box::new(o),
            live_status: None,
        }));
    }
}
