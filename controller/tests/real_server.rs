//! What a real kube-apiserver does that the controller once got wrong (issue: the controller
//! in a real cluster), each against the faithful fake of `meshbridge-test-support` loaded
//! with the project's own CRDs and built-in kinds:
//! - list items carry no apiVersion/kind: objects that exist at start must still be read
//!   (Namespace labels choose the mesh; Services resolve; stale owned outputs are found);
//! - status is validated against the schema of the version in the URL: a v1alpha1 split's
//!   status goes through v1alpha1;
//! - a forbidden write is not `Programmed`, the Mesh says its outputs cannot be written, and
//!   readiness fails until the write succeeds;
//! - a controller namespace that does not exist stops the controller with a clear error.

mod common;

use common::*;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use meshbridge_controller::discovery::Discovery;
use meshbridge_controller::engine::Backends;
use meshbridge_controller::leader::{Elector, LeaseConfig};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::reconciler::OUTPUTS_WRITTEN;
use meshbridge_controller::sink::kube::KubeStatusSink;
use meshbridge_controller::source::Source;
use meshbridge_controller::source::kube::{KubeSource, SharedInputResources};
use meshbridge_controller::{Reconciler, SyncTracker};
use meshbridge_core::api::common::Condition;
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_test_support::FakeApi;
use meshbridge_test_support::auth::Rule;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A strict fake serving the built-in kinds, the project's CRDs (schemas included) and the
/// test adapter's output kinds.
fn cluster() -> FakeApi {
    let f = FakeApi::strict();
    f.serve_builtin().load_project_crds();
    serve_test_outputs(&f);
    f
}

/// Creates objects through the API as `kubectl` would (so managedFields record the
/// apiVersion each was written in).
async fn create(f: &FakeApi, yaml: &str) {
    let client = f.client("kubectl");
    for (_, doc) in meshbridge_core::load::split_documents(yaml) {
        let Some(v) = meshbridge_core::load::parse_document(&doc).unwrap() else {
            continue;
        };
        let (av, kind) = (
            v["apiVersion"].as_str().unwrap(),
            v["kind"].as_str().unwrap(),
        );
        let (g, ver) = av.rsplit_once('/').unwrap_or(("", av));
        let plural = plural_of(kind);
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, ver, kind), &plural);
        let obj: DynamicObject = serde_json::from_value(v.clone()).unwrap();
        let api: Api<DynamicObject> = match v.pointer("/metadata/namespace").and_then(Value::as_str)
        {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        api.create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {kind}: {e}"));
    }
}

fn plural_of(kind: &str) -> String {
    match kind {
        "Mesh" => "meshes".into(),
        k => format!("{}s", k.to_lowercase()),
    }
}

/// The cluster's inputs: `shop` labelled for the linkerd Mesh `lk` (an istio Mesh beside it),
/// the web Services, and a v1alpha1 split (quantity weights).
const INPUTS: &str = concat!(
    include_str!("common/fixtures/labelled_shop_and_meshes.yaml"),
    "---\n",
    include_str!("common/fixtures/web_services.yaml"),
    "---\n",
    include_str!("common/fixtures/v1alpha1_web_split.yaml"),
);

/// A reconciler on the fake as `user`, its inputs read by the kube source (a full listing,
/// as at start).
async fn start(f: &FakeApi, user: &str) -> (Reconciler, Arc<Metrics>) {
    let client = f.client(user);
    let discovery = Discovery::new(client.clone());
    let resources = SharedInputResources::default();
    let src = KubeSource {
        client: client.clone(),
        discovery: discovery.clone(),
        resources: resources.clone(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    Box::new(src)
        .start(tx, SyncTracker::default(), false)
        .await
        .unwrap();
    let sink = test_output_sink(client.clone(), discovery);
    let metrics = Arc::new(Metrics::default());
    let mut rec = Reconciler::new(
        engine(Backends::Auto),
        Box::new(sink),
        Box::new(KubeStatusSink::new(client, resources, Some(user.into()))),
        metrics.clone(),
        Arc::new(AtomicBool::new(true)),
    );
    while let Ok(m) = rx.try_recv() {
        rec.handle(m);
    }
    (rec, metrics)
}

/// A new reconciler (a restart) on the same cluster reconciles without a single write.
async fn restart_writes_nothing(f: &FakeApi) {
    let (mut again, _) = start(f, "controller").await;
    f.take_log();
    let r = again.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let writes = write_lines(&f.take_log());
    assert!(writes.is_empty(), "{writes:#?}");
}

fn conditions(f: &FakeApi, av: &str, plural: &str, ns: &str, name: &str) -> Vec<Condition> {
    let v = f.get(av, plural, ns, name).expect("object");
    serde_json::from_value(v["status"]["conditions"].clone()).unwrap_or_default()
}

/// The conditions of the v1alpha1 split `shop/web` of INPUTS.
fn split_conditions(f: &FakeApi) -> Vec<Condition> {
    conditions(
        f,
        "split.smi-spec.io/v1alpha1",
        "trafficsplits",
        "shop",
        "web",
    )
}

fn condition<'a>(c: &'a [Condition], t: &str) -> &'a Condition {
    c.iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t} in {c:?}"))
}

#[tokio::test]
async fn list_items_without_type_are_read_labels_choose_the_mesh_and_stale_outputs_go() {
    let f = cluster();
    create(&f, INPUTS).await;
    // An output meshbridge wrote earlier for istio, which no input renders any more.
    f.insert(json!({
        "apiVersion": "istio.test.meshbridge.io/v1", "kind": "Route",
        "metadata": {"name": "web", "namespace": "shop", "labels": {
            "meshbridge.io/owner": CONTROLLER_NS, "app.kubernetes.io/managed-by": "meshbridge"}},
        "spec": {}
    }));
    // The fake answers as a real server does: list items of built-in kinds have no type.
    let raw = {
        let client = f.client("probe");
        let req = http::Request::get("/api/v1/namespaces/shop/services")
            .body(Vec::new())
            .unwrap();
        client.request::<Value>(req).await.unwrap()
    };
    assert_eq!(raw["kind"], "ServiceList");
    assert!(raw["items"][0].get("apiVersion").is_none(), "{raw}");
    assert!(raw["items"][0].get("kind").is_none(), "{raw}");

    let (mut rec, _) = start(&f, "controller").await;
    let ns = rec
        .engine
        .object(&ObjectKey::new(Kind::Namespace, "", "shop"))
        .expect("the Namespace listed at start is read");
    assert_eq!(ns.meta().api_version, "v1");
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // The namespace's label chose the Linkerd Mesh: its Route, and the stale Istio one gone.
    assert_eq!(
        r.applied.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        vec!["Route.linkerd.test.meshbridge.io shop/web"]
    );
    assert_eq!(
        r.deleted.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        vec!["Route.istio.test.meshbridge.io shop/web"]
    );
    // Services that exist resolve.
    let c = split_conditions(&f);
    assert_eq!(condition(&c, "ResolvedRefs").status, "True", "{c:?}");
    assert_eq!(condition(&c, "Programmed/linkerd").status, "True", "{c:?}");

    // Discovery writes its own condition types on the Mesh beside the controller's.
    f.edit(
        "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/meshes",
        "lk",
        |m| {
            m["status"]["conditions"].as_array_mut().unwrap().push(
                json!({"type": "Ready", "status": "False", "reason": "NotFound", "message": ""}),
            );
        },
    );
    // A restart with nothing changed writes nothing (not even over discovery's conditions).
    restart_writes_nothing(&f).await;
}

#[tokio::test]
async fn a_v1alpha1_split_gets_its_status_through_v1alpha1() {
    let f = cluster();
    create(&f, INPUTS).await;
    // What went wrong before: the v1alpha4 schema refuses the stored quantity weights.
    let client = f.client("probe");
    let body = json!({"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
        "status": {"conditions": []}});
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        "shop",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("split.smi-spec.io", "v1alpha4", "TrafficSplit"),
            "trafficsplits",
        ),
    );
    let err = api
        .patch_status(
            "web",
            &kube::api::PatchParams::apply("probe").force(),
            &kube::api::Patch::Apply(body),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected numeric (int or float), got string"),
        "{err}"
    );

    let (mut rec, _) = start(&f, "controller").await;
    f.take_log();
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let status_writes: Vec<String> = f
        .take_log()
        .iter()
        .filter(|r| r.path.contains("trafficsplits"))
        .map(|r| r.line())
        .collect();
    assert_eq!(
        status_writes,
        vec!["PATCH /apis/split.smi-spec.io/v1alpha1/namespaces/shop/trafficsplits/web/status"]
    );
    let c = split_conditions(&f);
    assert_eq!(condition(&c, "Accepted").status, "True", "{c:?}");
    // The spec was left as written.
    let v = f
        .get("split.smi-spec.io/v1alpha1", "trafficsplits", "shop", "web")
        .unwrap();
    assert_eq!(v["spec"]["backends"][0]["weight"], "900m");
}

#[tokio::test]
async fn a_forbidden_write_is_not_programmed_and_makes_the_replica_unready() {
    let f = cluster();
    create(&f, INPUTS).await;
    // The controller may do everything but write the Linkerd test kinds.
    f.deny(
        "controller",
        Rule::new(
            &["create", "patch"],
            &["linkerd.test.meshbridge.io"],
            &["*"],
        ),
    );
    let (mut rec, metrics) = start(&f, "controller").await;
    let r = rec.reconcile().await;
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.applied.is_empty(), "{:?}", r.applied);
    let c = split_conditions(&f);
    let p = condition(&c, "Programmed/linkerd");
    assert_eq!(
        (p.status.as_str(), p.reason.as_str()),
        ("False", "Forbidden"),
        "{p:?}"
    );
    assert!(
        p.message
            .contains("Route.linkerd.test.meshbridge.io shop/web")
            && p.message
                .contains("is forbidden: User \"controller\" cannot patch resource \"routes\""),
        "{}",
        p.message
    );
    let m = conditions(&f, "meshbridge.io/v1alpha1", "meshes", CONTROLLER_NS, "lk");
    let w = condition(&m, OUTPUTS_WRITTEN);
    assert_eq!(
        (w.status.as_str(), w.reason.as_str()),
        ("False", "Forbidden"),
        "{w:?}"
    );
    assert!(
        w.message.starts_with("1 output(s) cannot be written"),
        "{}",
        w.message
    );
    // The Istio Mesh's outputs are all written.
    let i = conditions(&f, "meshbridge.io/v1alpha1", "meshes", CONTROLLER_NS, "is");
    assert_eq!(condition(&i, OUTPUTS_WRITTEN).status, "True", "{i:?}");
    assert_eq!(metrics.write_failures.load(Ordering::Relaxed), 1);
    assert!(rec.has_pending(), "the write is retried");

    // Rights granted: the retry writes it, and every condition turns.
    f.lock().authz.deny.clear();
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.applied.len(), 1);
    let c = split_conditions(&f);
    assert_eq!(condition(&c, "Programmed/linkerd").status, "True", "{c:?}");
    let m = conditions(&f, "meshbridge.io/v1alpha1", "meshes", CONTROLLER_NS, "lk");
    assert_eq!(condition(&m, OUTPUTS_WRITTEN).status, "True", "{m:?}");
    assert_eq!(metrics.write_failures.load(Ordering::Relaxed), 0);
}

fn lease(ns: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: ns.into(),
        name: "meshbridge-controller".into(),
        identity: "a".into(),
        lease_duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    }
}

/// The error of a first election step as `user` with the Lease in `namespace`.
async fn first_step_error(f: &FakeApi, user: &str, namespace: &str) -> String {
    let mut el = Elector::new(f.client(user), lease(namespace));
    el.first_step().await.unwrap_err().to_string()
}

#[tokio::test]
async fn a_missing_controller_namespace_is_an_error_not_a_silent_follower() {
    let f = cluster();
    f.require_namespaces(true);
    create(&f, INPUTS).await;
    // Without RBAC limits the server answers 404 `namespaces "nope" not found`.
    let e = first_step_error(&f, "controller", "nope").await;
    assert!(
        e.contains("the controller namespace `nope` does not exist")
            && e.contains("kubectl create namespace nope"),
        "{e}"
    );
    // With the chart's RBAC (a Role in the controller namespace only), a real server
    // answers 403 first: still reported as a missing namespace.
    f.grant(
        "limited",
        [
            Rule::new(
                &["get", "create", "update"],
                &["coordination.k8s.io"],
                &["leases"],
            )
            .in_namespace(CONTROLLER_NS),
            Rule::new(&["list", "watch"], &[""], &["namespaces"]),
        ],
    );
    let e = first_step_error(&f, "limited", "nope").await;
    assert!(e.contains("`nope` does not exist"), "{e}");
    // An existing namespace whose Lease the replica may not manage: the RBAC is named.
    create(
        &f,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
    )
    .await;
    let e = first_step_error(&f, "limited", "other").await;
    assert!(
        e.contains("cannot manage the leader Lease `other/meshbridge-controller`")
            && e.contains("forbidden"),
        "{e}"
    );
    // The controller namespace exists and the Role allows it: leader.
    let mut el = Elector::new(f.client("limited"), lease(CONTROLLER_NS));
    assert_eq!(
        el.first_step().await.unwrap(),
        meshbridge_controller::leader::Step::Leader
    );
}

/// The official Gateway API HTTPRoute CRD (../shared/schemas), served with its schema.
fn load_httproute_crd(f: &FakeApi) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/schemas/gateway-api/gateway.networking.k8s.io_httproutes.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let crd = meshbridge_core::load::parse_document(&text)
        .unwrap()
        .unwrap();
    f.load_crd(&crd);
}

#[tokio::test]
async fn a_gamma_route_gets_its_status_in_parents_beside_other_controllers() {
    let f = cluster();
    load_httproute_crd(&f);
    create(
        &f,
        concat!(
            include_str!("common/fixtures/labelled_shop_and_meshes.yaml"),
            "---\n",
            include_str!("common/fixtures/web_services.yaml"),
            "---\n",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: shop}\n",
            "spec:\n  parentRefs: [{group: \"\", kind: Service, name: web, port: 80}, {name: edge}]\n",
            "  rules: [{backendRefs: [{name: web-v1, port: 80, weight: 9}, {name: web-v2, port: 80, weight: 1}]}]\n",
        ),
    )
    .await;
    // A gateway controller already reports on its Gateway parent.
    let other = json!({
        "parentRef": {"name": "edge"},
        "controllerName": "example.com/gateway",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
    });
    f.edit(
        "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes",
        "web",
        |r| r["status"] = json!({"parents": [other.clone()]}),
    );
    let (mut rec, _) = start(&f, "controller").await;
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let route = f
        .get("gateway.networking.k8s.io/v1", "httproutes", "shop", "web")
        .unwrap();
    let parents = route["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2, "{parents:#?}");
    assert_eq!(
        parents[0], other,
        "the other controller's entry is kept as it was"
    );
    let ours = &parents[1];
    assert_eq!(ours["controllerName"], "meshbridge.io/mesh-controller");
    assert_eq!(
        ours["parentRef"],
        json!({"group": "", "kind": "Service", "name": "web", "port": 80})
    );
    let conds: Vec<Condition> = serde_json::from_value(ours["conditions"].clone()).unwrap();
    assert_eq!(condition(&conds, "Accepted").status, "True", "{conds:?}");
    assert_eq!(
        condition(&conds, "ResolvedRefs").status,
        "True",
        "{conds:?}"
    );
    assert_eq!(
        condition(&conds, "meshbridge.io/programmed-linkerd").status,
        "True",
        "{conds:?}"
    );
    // The route is programmed like a split: the test adapter's output for shop/web.
    assert!(
        r.applied
            .iter()
            .any(|k| k.to_string() == "Route.linkerd.test.meshbridge.io shop/web"),
        "{:?}",
        r.applied
    );
    // A restart with nothing changed writes nothing.
    restart_writes_nothing(&f).await;
}
