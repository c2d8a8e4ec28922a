//! Test fixtures: a tiny adapter, object builders, a reconciler on memory sinks.
#![allow(dead_code)]

use meshbridge_controller::engine::{Backends, Engine, EngineConfig};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::reconciler::Reconciler;
use meshbridge_controller::sink::memory::MemorySink;
use meshbridge_controller::status::LogStatusSink;
use meshbridge_controller::{Change, Msg};
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::capability::CapabilityMatrix;
use meshbridge_core::ir::Ir;
use meshbridge_core::model::{Kind, Object, ObjectKey};
use meshbridge_core::{Adapter, Context, OutputObject, Translation};
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

pub fn delete(kind: Kind, ns: &str, name: &str) -> Msg {
    Msg::Input(Change::Delete(ObjectKey::new(kind, ns, name)))
}

pub fn engine(backends: Backends) -> Engine {
    let cfg = EngineConfig {
        base: Context {
            controller_namespace: CONTROLLER_NS.into(),
            ..Context::default()
        },
        trust_domain: None,
        backends,
    };
    Engine::new(
        cfg,
        vec![
            Box::new(TinyAdapter(MeshType::Istio)),
            Box::new(TinyAdapter(MeshType::Linkerd)),
        ],
    )
}

pub fn memory_reconciler(backends: Backends) -> (Reconciler, MemorySink) {
    let sink = MemorySink::new(CONTROLLER_NS);
    let rec = Reconciler::new(
        engine(backends),
        Box::new(sink.clone()),
        Box::new(LogStatusSink::default()),
        Arc::new(Metrics::default()),
        Arc::new(AtomicBool::new(true)),
    );
    (rec, sink)
}

pub const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec: {selector: {app: web, v: "1"}, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web, v: "2"}, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-v2, namespace: shop}
spec: {selector: {app: api, v: "2"}, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: api, namespace: shop}
"#;

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

pub const TARGET: &str = r#"
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-to-api, namespace: shop, generation: 1}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  sources:
  - {kind: ServiceAccount, name: web, namespace: shop}
  rules:
  - {kind: TCPRoute, name: all}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: shop}
spec: {}
"#;
