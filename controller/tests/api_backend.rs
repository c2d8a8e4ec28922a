//! API backends (e.g. App Mesh through the AWS API): namespaces whose mesh has one are
//! handed to it as IR, never written to the sink; it is called only when its part of the
//! desired state changed, on retries after errors and on resyncs (forced), and only by the
//! leader.

mod common;

use common::*;
use meshbridge_controller::api::ApiProblem;
use meshbridge_controller::engine::{ApiPart, Backends};
use meshbridge_controller::reconciler::Reconciler;
use meshbridge_controller::sink::memory::{MemorySink, Write};
use meshbridge_controller::{ApiBackend, ApiReport, OutKey};
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::model::{Kind, ObjectKey};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One call: (namespace, split roots with their weights) per part, and `force`.
type Call = (Vec<(String, Vec<String>)>, bool);

#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
    fail_next: Arc<AtomicBool>,
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

struct Backend(Recorder);

#[async_trait::async_trait]
impl ApiBackend for Backend {
    fn mesh_type(&self) -> MeshType {
        MeshType::AppMesh
    }
    async fn sync(&mut self, parts: &[(&str, &ApiPart)], force: bool) -> ApiReport {
        let seen = parts
            .iter()
            .map(|(ns, p)| {
                assert_eq!(p.mesh, MeshType::AppMesh);
                let splits =
                    p.ir.splits
                        .values()
                        .map(|s| {
                            let w: Vec<String> = s
                                .backends
                                .iter()
                                .map(|b| format!("{}={}", b.service.name, b.weight))
                                .collect();
                            format!("{}:{}", s.root, w.join(","))
                        })
                        .collect();
                (ns.to_string(), splits)
            })
            .collect();
        self.0.calls.lock().unwrap().push((seen, force));
        if self.0.fail_next.swap(false, Ordering::SeqCst) {
            let mut objects = std::collections::BTreeMap::new();
            objects.insert(
                ObjectKey::new(Kind::TrafficSplit, "shop", "web-split"),
                vec![ApiProblem::Failed(
                    "VirtualRouter/web_shop: create: throttled".into(),
                )],
            );
            return ApiReport {
                errors: vec!["throttled".into()],
                objects,
                ..ApiReport::default()
            };
        }
        ApiReport {
            changes: vec!["VirtualRouter/web_shop".into()],
            mutating_calls: 1,
            ..ApiReport::default()
        }
    }
}

const MESHES: &str = r#"
apiVersion: meshbridge.io/v1alpha1
kind: Mesh
metadata: {name: aws, namespace: meshbridge-system}
spec: {type: appmesh, appMeshName: prod}
---
apiVersion: meshbridge.io/v1alpha1
kind: Mesh
metadata: {name: istio, namespace: meshbridge-system}
spec: {type: istio}
"#;

fn label(mesh: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop, labels: {{meshbridge.io/mesh: {mesh}}}}}\n"
    )
}

fn setup() -> (Reconciler, MemorySink, Recorder, Arc<AtomicBool>) {
    let leader = Arc::new(AtomicBool::new(true));
    let (mut rec, sink) = memory_reconciler_with(
        engine_with(Backends::Auto, &[MeshType::Istio, MeshType::AppMesh]),
        leader.clone(),
    );
    let recorder = Recorder::default();
    rec.add_api_backend(Box::new(Backend(recorder.clone())));
    for m in upsert_yaml(BASE)
        .into_iter()
        .chain(upsert_yaml(MESHES))
        .chain(upsert_yaml(&label("aws")))
        .chain(upsert_yaml(&web_split()))
    {
        rec.handle(m);
    }
    (rec, sink, recorder, leader)
}

fn web(w1: u64, w2: u64) -> Vec<(String, Vec<String>)> {
    vec![(
        "shop".into(),
        vec![format!("shop/web:web-v1={w1},web-v2={w2}")],
    )]
}

#[tokio::test]
async fn an_api_mesh_is_handed_to_its_backend_only_when_it_changes() {
    let (mut rec, sink, calls, _) = setup();
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // First pass: compared with the remote side (forced), nothing written to the sink.
    assert_eq!(calls.take(), vec![(web(90, 10), true)]);
    assert_eq!(sink.take_writes(), vec![]);
    assert_eq!(r.writes(), 1);
    assert_eq!(r.api.len(), 1);

    // Nothing changed: no call.
    let r = rec.reconcile().await;
    assert!(r.api.is_empty());
    assert_eq!(calls.take(), vec![]);

    // An edit: one call with the new desired state, not forced.
    for m in upsert_yaml(&split("web-split", "web", "web-v1", 50, "web-v2", 50)) {
        rec.handle(m);
    }
    rec.reconcile().await;
    assert_eq!(calls.take(), vec![(web(50, 50), false)]);
    assert_eq!(sink.take_writes(), vec![]);

    // A resync compares again (drift).
    rec.resync();
    rec.reconcile().await;
    assert_eq!(calls.take(), vec![(web(50, 50), true)]);
}

#[tokio::test]
async fn a_failed_sync_is_retried_forced() {
    let (mut rec, _sink, calls, _) = setup();
    calls.fail_next.store(true, Ordering::SeqCst);
    let r = rec.reconcile().await;
    assert_eq!(r.errors, vec!["appmesh: throttled".to_string()]);
    assert!(rec.has_pending());
    assert_eq!(calls.take().len(), 1);
    // The object the failure concerns says so.
    let split = ObjectKey::new(Kind::TrafficSplit, "shop", "web-split");
    let programmed = |rec: &Reconciler| {
        rec.conditions_for(&split)
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Programmed/appmesh")
            .unwrap()
    };
    let c = programmed(&rec);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "ApiSyncFailed")
    );
    assert!(
        c.message
            .contains("VirtualRouter/web_shop: create: throttled"),
        "{c:?}"
    );
    assert!(r.status_writes.contains(&split), "{:?}", r.status_writes);

    let r = rec.reconcile().await;
    assert!(r.errors.is_empty());
    assert_eq!(calls.take(), vec![(web(90, 10), true)]);
    assert!(!rec.has_pending());
    // ... and is programmed again once a sync succeeds.
    assert_eq!(programmed(&rec).status, "True");
    assert!(r.status_writes.contains(&split), "{:?}", r.status_writes);
}

#[tokio::test]
async fn a_follower_does_not_call_the_backend_and_a_new_leader_compares() {
    let (mut rec, _sink, calls, leader) = setup();
    leader.store(false, Ordering::SeqCst);
    let r = rec.reconcile().await;
    assert!(r.not_leader);
    assert_eq!(calls.take(), vec![]);
    // The edit made while following is not lost.
    for m in upsert_yaml(&split("web-split", "web", "web-v1", 1, "web-v2", 3)) {
        rec.handle(m);
    }
    rec.reconcile().await;
    assert_eq!(calls.take(), vec![]);
    leader.store(true, Ordering::SeqCst);
    rec.reconcile().await;
    assert_eq!(calls.take(), vec![(web(1, 3), true)]);
}

#[tokio::test]
async fn a_namespace_moved_to_another_mesh_leaves_the_api_backend_with_nothing() {
    let (mut rec, sink, calls, _) = setup();
    rec.reconcile().await;
    calls.take();
    for m in upsert_yaml(&label("istio")) {
        rec.handle(m);
    }
    rec.reconcile().await;
    // The backend hears that it programs nothing now (it deletes what it made) ...
    assert_eq!(calls.take(), vec![(vec![], false)]);
    // ... and the new mesh's objects go to the sink.
    assert_eq!(
        sink.take_writes(),
        vec![Write::Put(OutKey {
            group: "istio.test.meshbridge.io".into(),
            kind: "Route".into(),
            namespace: "shop".into(),
            name: "web".into(),
        })]
    );
}
