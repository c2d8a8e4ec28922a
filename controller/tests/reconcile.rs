//! The reconciler with the memory source and sink and a tiny test adapter.

mod common;

use common::*;
use meshbridge_controller::OutKey;
use meshbridge_controller::engine::Backends;
use meshbridge_controller::sink::memory::Write;
use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::model::{Kind, ObjectKey};
use serde_json::json;

fn key(mesh: &str, kind: &str, name: &str) -> OutKey {
    OutKey {
        group: format!("{mesh}.test.meshbridge.io"),
        kind: kind.into(),
        namespace: "shop".into(),
        name: name.into(),
    }
}

/// The condition of type `type_` of `shop/web-split` (panics if there is none).
fn web_split_condition(rec: &meshbridge_controller::Reconciler, type_: &str) -> Condition {
    rec.conditions_for(&ObjectKey::new(Kind::TrafficSplit, "shop", "web-split"))
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == type_)
        .unwrap()
}

/// Hands `msgs` to the reconciler, then runs one pass.
async fn handle_and_reconcile(
    rec: &mut meshbridge_controller::Reconciler,
    msgs: Vec<meshbridge_controller::Msg>,
) -> meshbridge_controller::Report {
    for m in msgs {
        rec.handle(m);
    }
    rec.reconcile().await
}

async fn setup() -> (
    meshbridge_controller::Reconciler,
    meshbridge_controller::sink::memory::MemorySink,
) {
    let (mut rec, sink) = memory_reconciler(Backends::List(vec![MeshType::Istio]));
    for m in base_with_web_split()
        .into_iter()
        .chain(upsert_yaml(&split(
            "api-split",
            "api",
            "api",
            50,
            "api-v2",
            50,
        )))
        .chain(upsert_yaml(TARGET))
    {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    (rec, sink)
}

#[tokio::test]
async fn first_pass_writes_everything_then_nothing() {
    let (mut rec, sink) = setup().await;
    let writes = sink.take_writes();
    assert_eq!(
        writes,
        vec![
            Write::Put(key("istio", "Policy", "api")),
            Write::Put(key("istio", "Route", "api")),
            Write::Put(key("istio", "Route", "web")),
        ]
    );
    let web = &sink.objects()[&key("istio", "Route", "web")];
    assert_eq!(
        web["spec"]["backends"][1],
        json!({"service": "web-v2", "weight": 10})
    );
    assert_eq!(
        web["metadata"]["annotations"]["meshbridge.io/parents"],
        json!("[\"TrafficSplit/shop/web-split\"]")
    );
    // Reconcile twice with nothing changed: zero writes, zero status writes.
    let r = rec.reconcile().await;
    assert_eq!(r.writes(), 0);
    assert!(r.status_writes.is_empty(), "{:?}", r.status_writes);
    // Re-applying identical objects (a resync) changes nothing either.
    for m in upsert_yaml(&web_split()) {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert_eq!(r.writes(), 0);
    assert!(r.status_writes.is_empty());
    assert!(sink.take_writes().is_empty());
}

#[tokio::test]
async fn one_edit_rerenders_one_namespace_and_writes_one_object() {
    let (mut rec, sink) = setup().await;
    sink.take_writes();
    let edit = upsert_yaml(&split("web-split", "web", "web-v1", 50, "web-v2", 50));
    let r = handle_and_reconcile(&mut rec, edit).await;
    assert_eq!(r.delta.partitions, 1);
    assert_eq!(
        sink.take_writes(),
        vec![Write::Put(key("istio", "Route", "web"))]
    );
    assert_eq!(
        r.status_writes,
        Vec::<ObjectKey>::new(),
        "status unchanged: still Accepted"
    );
}

#[tokio::test]
async fn deleting_an_smi_object_deletes_its_outputs_only() {
    let (mut rec, sink) = setup().await;
    sink.take_writes();
    rec.handle(delete(Kind::TrafficSplit, "shop", "web-split"));
    rec.reconcile().await;
    assert_eq!(
        sink.take_writes(),
        vec![Write::Delete(key("istio", "Route", "web"))]
    );
    assert!(sink.objects().contains_key(&key("istio", "Route", "api")));
    assert!(sink.objects().contains_key(&key("istio", "Policy", "api")));
}

#[tokio::test]
async fn invalid_edit_keeps_outputs_and_names_the_field() {
    let (mut rec, sink) = setup().await;
    sink.take_writes();
    let before = sink.objects();
    // A negative weight: loadable, rejected by validation.
    for m in upsert_yaml(&split("web-split", "web", "web-v1", -5, "web-v2", 10)) {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert_eq!(r.writes(), 0, "outputs unchanged");
    assert_eq!(sink.objects(), before);
    let k = ObjectKey::new(Kind::TrafficSplit, "shop", "web-split");
    let conds = rec.conditions_for(&k).unwrap();
    let acc = conds.iter().find(|c| c.type_ == "Accepted").unwrap();
    assert_eq!(acc.status, "False");
    assert!(
        acc.message.contains("spec.backends[0].weight"),
        "{}",
        acc.message
    );
    assert!(
        acc.message.contains("last accepted version"),
        "{}",
        acc.message
    );
    assert!(r.status_writes.contains(&k));
    // A second invalid edit still keeps the first good version.
    for m in upsert_yaml(&split("web-split", "web", "web-v1", -7, "web-v2", 10)) {
        rec.handle(m);
    }
    assert_eq!(rec.reconcile().await.writes(), 0);
    // Fixing it programs the new version.
    for m in upsert_yaml(&split("web-split", "web", "web-v1", 1, "web-v2", 3)) {
        rec.handle(m);
    }
    rec.reconcile().await;
    assert_eq!(
        sink.take_writes(),
        vec![Write::Put(key("istio", "Route", "web"))]
    );
    let acc = rec.conditions_for(&k).unwrap();
    assert_eq!(acc[0].status, "True");
}

#[tokio::test]
async fn unreadable_edit_keeps_outputs() {
    let (mut rec, sink) = setup().await;
    sink.take_writes();
    // A field of the wrong type: the loader cannot read it at all.
    let l = meshbridge_core::load::load_str(
        "x.yaml",
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web-split, namespace: shop}\nspec: {service: web, backends: notalist}\n",
    );
    let (changes, other) = meshbridge_controller::source::changes_of(l);
    assert!(other.is_empty());
    for c in changes {
        rec.handle(meshbridge_controller::Msg::Input(c));
    }
    let r = rec.reconcile().await;
    assert_eq!(r.writes(), 0);
    let k = ObjectKey::new(Kind::TrafficSplit, "shop", "web-split");
    let acc = rec.conditions_for(&k).unwrap();
    assert_eq!(acc[0].status, "False");
    assert!(
        acc[0].message.contains("spec.backends"),
        "{}",
        acc[0].message
    );
}

#[tokio::test]
async fn namespace_label_flip_swaps_backend() {
    let (mut rec, sink) = memory_reconciler(Backends::Auto);
    let meshes = r#"
apiVersion: meshbridge.io/v1alpha1
kind: Mesh
metadata: {name: istio, namespace: meshbridge-system}
spec: {type: istio}
---
apiVersion: meshbridge.io/v1alpha1
kind: Mesh
metadata: {name: linkerd, namespace: meshbridge-system}
spec: {type: linkerd}
"#;
    for m in upsert_yaml(BASE)
        .into_iter()
        .chain(upsert_yaml(meshes))
        .chain(upsert_yaml(&web_split()))
        .chain(upsert_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {meshbridge.io/mesh: istio}}\n"))
    {
        rec.handle(m);
    }
    rec.reconcile().await;
    assert_eq!(
        sink.take_writes(),
        vec![Write::Put(key("istio", "Route", "web"))]
    );
    for m in upsert_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {meshbridge.io/mesh: linkerd}}\n",
    ) {
        rec.handle(m);
    }
    rec.reconcile().await;
    let mut w = sink.take_writes();
    w.sort_by_key(|w| format!("{w:?}"));
    assert_eq!(
        w,
        vec![
            Write::Delete(key("istio", "Route", "web")),
            Write::Put(key("linkerd", "Route", "web")),
        ]
    );
    let objs = sink.objects();
    assert!(!objs.contains_key(&key("istio", "Route", "web")));
    assert!(objs.contains_key(&key("linkerd", "Route", "web")));
    // Unknown Mesh name: nothing programmed, and the object says why.
    for m in upsert_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {meshbridge.io/mesh: nope}}\n",
    ) {
        rec.handle(m);
    }
    rec.reconcile().await;
    assert_eq!(
        sink.take_writes(),
        vec![Write::Delete(key("linkerd", "Route", "web"))]
    );
    let p = web_split_condition(&rec, "Programmed");
    assert_eq!(p.reason, "NoBackend");
    assert!(p.message.contains("nope"));
}

#[tokio::test]
async fn hand_written_objects_are_never_touched() {
    let (mut rec, sink) = memory_reconciler(Backends::List(vec![MeshType::Istio]));
    // Someone else's object with the name meshbridge would use, and an unrelated one.
    let theirs = json!({
        "apiVersion": "istio.test.meshbridge.io/v1", "kind": "Route",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"team": "a"}},
        "spec": {"hand": "written"}
    });
    let other = json!({
        "apiVersion": "istio.test.meshbridge.io/v1", "kind": "Route",
        "metadata": {"name": "other", "namespace": "shop"}, "spec": {}
    });
    sink.insert_foreign(theirs.clone());
    sink.insert_foreign(other.clone());
    for m in base_with_web_split() {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    assert!(sink.take_writes().is_empty());
    assert_eq!(sink.objects()[&key("istio", "Route", "web")], theirs);
    assert_eq!(sink.objects()[&key("istio", "Route", "other")], other);
    let p = web_split_condition(&rec, "Programmed/istio");
    assert_eq!(
        (p.status.as_str(), p.reason.as_str()),
        ("False", "OutputConflict")
    );
    // Deleting the split does not delete their object either.
    rec.handle(delete(Kind::TrafficSplit, "shop", "web-split"));
    rec.reconcile().await;
    assert!(sink.take_writes().is_empty());
    assert_eq!(sink.objects()[&key("istio", "Route", "web")], theirs);
}

#[tokio::test]
async fn drift_on_owned_objects_is_reverted() {
    let (mut rec, sink) = setup().await;
    sink.take_writes();
    let k = key("istio", "Route", "web");
    let mut drifted = sink.objects()[&k].clone();
    drifted["spec"]["backends"][0]["weight"] = json!(1);
    sink.lock().objects.insert(k.clone(), drifted.clone());
    rec.handle(meshbridge_controller::Msg::LiveUpsert(
        k.clone(),
        Box::new(drifted),
    ));
    rec.reconcile().await;
    assert_eq!(sink.take_writes(), vec![Write::Put(k.clone())]);
    assert_eq!(
        sink.objects()[&k]["spec"]["backends"][0]["weight"],
        json!(90)
    );
    // An owned object nobody renders any more (e.g. left from an earlier run) is removed.
    let stale = json!({
        "apiVersion": "istio.test.meshbridge.io/v1", "kind": "Route",
        "metadata": {"name": "gone", "namespace": "shop",
                     "labels": {"meshbridge.io/owner": CONTROLLER_NS}},
    });
    let sk = key("istio", "Route", "gone");
    sink.lock().objects.insert(sk.clone(), stale.clone());
    rec.handle(meshbridge_controller::Msg::LiveUpsert(
        sk.clone(),
        Box::new(stale),
    ));
    rec.reconcile().await;
    assert_eq!(sink.take_writes(), vec![Write::Delete(sk)]);
}

#[tokio::test]
async fn a_follower_renders_but_does_not_write() {
    use std::sync::atomic::Ordering;
    let leader = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut rec, sink) = memory_reconciler_with(
        engine(Backends::List(vec![MeshType::Istio])),
        leader.clone(),
    );
    for m in base_with_web_split() {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert!(r.not_leader);
    assert!(sink.take_writes().is_empty());
    assert_eq!(rec.engine.desired().len(), 1);
    leader.store(true, Ordering::SeqCst);
    rec.reconcile().await;
    assert_eq!(
        sink.take_writes(),
        vec![Write::Put(key("istio", "Route", "web"))]
    );
}

#[tokio::test]
async fn cross_namespace_service_account_changes_rerender_the_referring_namespace() {
    let (mut rec, _sink) = setup().await;
    let tt = r#"
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: ext, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  sources:
  - {kind: ServiceAccount, name: client, namespace: other}
  rules:
  - {kind: TCPRoute, name: all}
"#;
    for m in upsert_yaml(tt).into_iter().chain(upsert_yaml(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, namespace: other}\n",
    )) {
        rec.handle(m);
    }
    rec.reconcile().await;
    let k = ObjectKey::new(Kind::TrafficTarget, "shop", "ext");
    let before = rec.engine.state(&k).unwrap().clone();
    assert!(
        !before.problems.is_empty(),
        "other/client does not exist: {before:?}"
    );
    for m in upsert_yaml(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: client, namespace: other}\n",
    ) {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert!(r.delta.states.contains(&k), "{:?}", r.delta);
    assert!(rec.engine.state(&k).unwrap().problems.is_empty());
}

#[tokio::test]
async fn a_status_echo_does_not_rerender() {
    let (mut rec, sink) = setup().await;
    sink.take_writes();
    let text = web_split().replace("generation: 1}", "generation: 1, uid: u1}");
    for o in objects(&text) {
        rec.handle(meshbridge_controller::Msg::Input(
            meshbridge_controller::Change::Upsert {
                object: Box::new(o),
                live_status: Some(vec![]),
            },
        ));
    }
    let r = rec.reconcile().await;
    assert_eq!(r.delta.partitions, 1, "new uid: re-rendered once");
    // The same object again, as the watch returns it after our status write.
    let conds = rec
        .conditions_for(&ObjectKey::new(Kind::TrafficSplit, "shop", "web-split"))
        .unwrap();
    for m in upsert_yaml_with_status(&text, &conds) {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert_eq!(r.delta.partitions, 0);
    assert_eq!(r.writes(), 0);
    assert!(r.status_writes.is_empty());
    // A new generation is rendered.
    let next = text
        .replace("generation: 1", "generation: 2")
        .replace("weight: 90", "weight: 80");
    let r = handle_and_reconcile(&mut rec, upsert_yaml_with_status(&next, &conds)).await;
    assert_eq!(r.delta.partitions, 1);
    assert_eq!(
        sink.take_writes(),
        vec![Write::Put(key("istio", "Route", "web"))]
    );
}

#[tokio::test]
async fn a_conflict_clears_once_the_foreign_object_is_gone() {
    let (mut rec, sink) = memory_reconciler(Backends::List(vec![MeshType::Istio]));
    sink.insert_foreign(json!({
        "apiVersion": "istio.test.meshbridge.io/v1", "kind": "Route",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {}
    }));
    for m in base_with_web_split() {
        rec.handle(m);
    }
    assert_eq!(rec.reconcile().await.conflicts.len(), 1);
    assert!(rec.has_pending(), "a conflict is retried");
    sink.lock().objects.clear();
    let r = rec.reconcile().await;
    assert!(r.conflicts.is_empty());
    assert_eq!(
        sink.take_writes(),
        vec![Write::Put(key("istio", "Route", "web"))]
    );
    let p = web_split_condition(&rec, "Programmed/istio");
    assert_eq!(p.status, "True");
    assert!(
        r.status_writes
            .contains(&ObjectKey::new(Kind::TrafficSplit, "shop", "web-split"))
    );
}
