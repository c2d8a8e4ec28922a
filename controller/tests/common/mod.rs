//! Test fixtures: a tiny adapter, object builders, a reconciler on memory sinks.
#![allow(dead_code)]

use meshbridge_controller::SyncTracker;
use meshbridge_controller::discovery::Discovery;
use meshbridge_controller::engine::{Backends, Engine, EngineConfig};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::reconciler::Reconciler;
use meshbridge_controller::sink::kube::KubeSink;
use meshbridge_controller::sink::memory::MemorySink;
use meshbridge_controller::status::LogStatusSink;
use meshbridge_controller::{Change, Msg};
use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::capability::CapabilityMatrix;
use meshbridge_core::ir::Ir;
use meshbridge_core::model::{Kind, Object, ObjectKey};
use meshbridge_core::{Adapter, Context, OutputObject, Translation};
use meshbridge_test_support::{FakeApi, Req};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub const CONTROLLER_NS: &str = "meshbridge-system";

/// A minimal backend: one `Route` per split root and one `Policy` per access destination,
/// in group `<mesh>.test.meshbridge.io`, carrying what they were made from.
pub struct TinyAdapter(pub MeshType);

impl Adapter for TinyAdapter {
    fn mesh_type(&self) -> MeshType {
        self.0
    }
    fn capabilities(&self, _: &Context) -> CapabilityMatrix {
        CapabilityMatrix::new([])
    }
    fn translate(&self, ir: &Ir, cx: &Context) -> Translation {
        let av = format!("{}.test.meshbridge.io/v1", self.0.as_str());
        let mut t = Translation::default();
        for (root, s) in &ir.splits {
            let backends: Vec<_> = s
                .backends
                .iter()
                .map(|b| json!({"service": b.service.name, "weight": b.weight}))
                .collect();
            t.objects.push(OutputObject::new(
                cx,
                &av,
                "Route",
                Some(&root.namespace),
                &root.name,
                vec![s.parent.clone()],
                json!({"spec": {"backends": backends}}),
            ));
        }
        for (id, p) in &ir.access {
            let parents: Vec<ObjectKey> = p.rules.iter().map(|r| r.parent.clone()).collect();
            let sources: Vec<String> = p
                .rules
                .iter()
                .flat_map(|r| r.sources.iter().map(|s| s.spiffe(&cx.trust_domain)))
                .collect();
            t.objects.push(OutputObject::new(
                cx,
                &av,
                "Policy",
                Some(&id.namespace),
                &id.service_account,
                parents,
                json!({"spec": {"sources": sources}}),
            ));
        }
        t.finish()
    }
}

/// Objects from YAML text (panics on problems: fixtures are valid unless a test says so).
pub fn objects(yaml: &str) -> Vec<Object> {
    let l = meshbridge_core::load::load_str("fixture.yaml", yaml);
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    l.objects
}

pub fn upsert(o: Object) -> Msg {
    Msg::Input(Change::Upsert {
        object: Box::new(o),
        live_status: None,
    })
}

pub fn upsert_yaml(yaml: &str) -> Vec<Msg> {
    objects(yaml).into_iter().map(upsert).collect()
}

/// Upserts of the objects in `yaml` as a watch returns them: with `status` as their live
/// status.
pub fn upsert_yaml_with_status(yaml: &str, status: &[Condition]) -> Vec<Msg> {
    objects(yaml)
        .into_iter()
        .map(|o| {
            Msg::Input(Change::Upsert {
                object: Box::new(o),
                live_status: Some(status.to_vec()),
            })
        })
        .collect()
}

pub fn delete(kind: Kind, ns: &str, name: &str) -> Msg {
    Msg::Input(Change::Delete(ObjectKey::new(kind, ns, name)))
}

/// An engine with the tiny adapter for istio and linkerd.
pub fn engine(backends: Backends) -> Engine {
    engine_with(backends, &[MeshType::Istio, MeshType::Linkerd])
}

/// An engine with the tiny adapter for each of `meshes`.
pub fn engine_with(backends: Backends, meshes: &[MeshType]) -> Engine {
    let cfg = EngineConfig {
        base: Context {
            controller_namespace: CONTROLLER_NS.into(),
            ..Context::default()
        },
        trust_domain: None,
        backends,
    };
    let adapters: Vec<Box<dyn Adapter>> = meshes
        .iter()
        .map(|m| Box::new(TinyAdapter(*m)) as Box<dyn Adapter>)
        .collect();
    Engine::new(cfg, adapters)
}

pub fn memory_reconciler(backends: Backends) -> (Reconciler, MemorySink) {
    memory_reconciler_with(engine(backends), Arc::new(AtomicBool::new(true)))
}

/// A reconciler over `engine` on a memory sink, the leader while `leader` is set.
pub fn memory_reconciler_with(engine: Engine, leader: Arc<AtomicBool>) -> (Reconciler, MemorySink) {
    let sink = MemorySink::new(CONTROLLER_NS);
    let rec = Reconciler::new(
        engine,
        Box::new(sink.clone()),
        Box::new(LogStatusSink::default()),
        Arc::new(Metrics::default()),
        leader,
    );
    (rec, sink)
}

/// The `shop` namespace: the web and api Services (web and api with versions) and the web
/// and api ServiceAccounts.
pub const BASE: &str = concat!(
    include_str!("fixtures/shop_namespace.yaml"),
    "---\n",
    include_str!("fixtures/web_services.yaml"),
    "---\n",
    include_str!("fixtures/api_services_and_accounts.yaml"),
);
pub fn split(name: &str, root: &str, b1: &str, w1: i64, b2: &str, w2: i64) -> String {
    format!(
        r#"
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: {name}, namespace: shop, generation: 1}}
spec:
  service: {root}
  backends:
  - {{service: {b1}, weight: {w1}}}
  - {{service: {b2}, weight: {w2}}}
"#
    )
}

/// `web-split`: web to web-v1 (90) and web-v2 (10).
pub fn web_split() -> String {
    split("web-split", "web", "web-v1", 90, "web-v2", 10)
}

/// BASE and `web-split`, as input messages.
pub fn base_with_web_split() -> Vec<Msg> {
    upsert_yaml(BASE)
        .into_iter()
        .chain(upsert_yaml(&web_split()))
        .collect()
}

/// TrafficTarget `web-to-api` (generation 1) and its TCPRoute `all`.
pub const TARGET: &str = include_str!("fixtures/target.yaml");
/// The output kinds of the tiny adapters (`Route`, `Policy` in `<mesh>.test.meshbridge.io/v1`).
pub const TEST_OUTPUT_VERSIONS: [&str; 2] = [
    "istio.test.meshbridge.io/v1",
    "linkerd.test.meshbridge.io/v1",
];

/// Serves the tiny adapters' output kinds on the fake.
pub fn serve_test_outputs(f: &FakeApi) {
    for av in TEST_OUTPUT_VERSIONS {
        f.serve(
            av,
            vec![
                ("Route", "routes", true, false),
                ("Policy", "policies", true, false),
            ],
        );
    }
}

/// A kube sink writing the tiny adapters' output kinds.
pub fn test_output_sink(client: kube::Client, discovery: Discovery) -> KubeSink {
    let mut sink = KubeSink::new(
        client,
        discovery,
        CONTROLLER_NS,
        None,
        SyncTracker::default(),
    );
    for av in TEST_OUTPUT_VERSIONS {
        sink.add_output_kind(av, "Route");
        sink.add_output_kind(av, "Policy");
    }
    sink
}

/// The requests of `log` other than reads, as `METHOD path` lines.
pub fn write_lines(log: &[Req]) -> Vec<String> {
    log.iter()
        .filter(|r| r.method != "GET")
        .map(Req::line)
        .collect()
}
