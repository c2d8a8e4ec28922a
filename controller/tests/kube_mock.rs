//! The kube layer against a mocked API server (tower-test): every request is checked.

mod common;

use common::*;
use meshbridge_controller::discovery::Discovery;
use meshbridge_controller::engine::Backends;
use meshbridge_controller::leader::{Elector, LeaseConfig, Step};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::sink::kube::{KubeSink, KubeStatusSink};
use meshbridge_controller::source::kube::{SharedInputResources, probe};
use meshbridge_controller::{Reconciler, Report, SyncTracker};
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::model::Kind;
use meshbridge_test_support::{FakeApi, Req};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const ROUTES: &str = "/apis/istio.test.meshbridge.io/v1/namespaces/shop/routes";

/// Kinds of one group/version: (kind, plural, namespaced, has a status subresource).
type Kinds = &'static [(&'static str, &'static str, bool, bool)];

/// What the fake serves besides the test adapters' outputs. meshbridge's own SMI CRDs have a
/// status subresource; this TrafficTarget CRD does not.
const SERVED: &[(&str, Kinds)] = &[
    (
        "split.smi-spec.io/v1alpha4",
        &[("TrafficSplit", "trafficsplits", true, true)],
    ),
    (
        "split.smi-spec.io/v1alpha1",
        &[("TrafficSplit", "trafficsplits", true, true)],
    ),
    (
        "access.smi-spec.io/v1alpha3",
        &[("TrafficTarget", "traffictargets", true, false)],
    ),
    (
        "specs.smi-spec.io/v1alpha4",
        &[("TCPRoute", "tcproutes", true, true)],
    ),
    (
        "meshbridge.io/v1alpha1",
        &[
            ("Mesh", "meshes", true, true),
            ("Install", "installs", true, true),
        ],
    ),
    ("events.k8s.io/v1", &[("Event", "events", true, false)]),
    (
        "coordination.k8s.io/v1",
        &[("Lease", "leases", true, false)],
    ),
    (
        "v1",
        &[
            ("Namespace", "namespaces", false, false),
            ("Service", "services", true, false),
            ("ServiceAccount", "serviceaccounts", true, false),
        ],
    ),
];

fn fake() -> FakeApi {
    let f = FakeApi::strict();
    serve_test_outputs(&f);
    for (av, kinds) in SERVED {
        f.serve(av, kinds.iter().copied());
    }
    // Writes are validated against the project's CRD schemas of the version in the URL.
    f.load_project_crd_schemas();
    f
}

async fn kube_reconciler(
    f: &FakeApi,
    client_name: &str,
    backends: Backends,
    leader: Arc<AtomicBool>,
) -> Reconciler {
    let client = f.client(client_name);
    let discovery = Discovery::new(client.clone());
    let resources = SharedInputResources::default();
    *resources.lock().unwrap() = probe(&discovery).await.unwrap();
    let sink = test_output_sink(client.clone(), discovery);
    let status = KubeStatusSink::new(client, resources, Some(client_name.into()));
    Reconciler::new(
        engine(backends),
        Box::new(sink),
        Box::new(status),
        Arc::new(Metrics::default()),
        leader,
    )
}

fn with_uid(yaml: &str, uid: &str) -> String {
    yaml.replacen("generation: 1}", &format!("generation: 1, uid: {uid}}}"), 1)
}

fn inputs() -> Vec<meshbridge_controller::Msg> {
    upsert_yaml(BASE)
        .into_iter()
        .chain(upsert_yaml(&with_uid(&web_split(), "split-uid")))
        .chain(upsert_yaml(&with_uid(TARGET, "tt-uid")))
        .collect()
}

/// Requests other than discovery reads.
fn writes_and_reads(log: &[Req]) -> Vec<&Req> {
    log.iter()
        .filter(|r| !(r.method == "GET" && r.path.split('/').count() <= 4))
        .collect()
}

/// An istio reconciler as "a" (the leader) that handled `inputs()` and reconciled once,
/// with the fake's log cleared before.
async fn reconcile_inputs(f: &FakeApi) -> (Reconciler, Report) {
    let mut rec = kube_reconciler(
        f,
        "a",
        Backends::List(vec![MeshType::Istio]),
        Arc::new(AtomicBool::new(true)),
    )
    .await;
    f.take_log();
    for m in inputs() {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    (rec, r)
}

async fn first_pass(f: &FakeApi) -> Reconciler {
    let (rec, r) = reconcile_inputs(f).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    rec
}

#[tokio::test]
async fn server_side_apply_with_field_manager_then_radio_silence() {
    let f = fake();
    let mut rec = first_pass(&f).await;
    let log = f.take_log();
    let lines: Vec<String> = writes_and_reads(&log).iter().map(|r| r.line()).collect();
    // Owned objects are listed by label; each new output is checked for a foreign object,
    // then applied; status goes to the split's /status and, for the TrafficTarget whose CRD
    // has no status subresource, to Events.
    let lists: Vec<&Req> = log
        .iter()
        .filter(|r| {
            r.method == "GET" && r.path.ends_with("/routes") || r.path.ends_with("/policies")
        })
        .collect();
    assert_eq!(lists.len(), 4, "{lines:#?}");
    for l in &lists {
        assert_eq!(
            l.query.get("labelSelector").map(String::as_str),
            Some("meshbridge.io/owner=meshbridge-system")
        );
    }
    let patches: Vec<&Req> = log
        .iter()
        .filter(|r| r.method == "PATCH" && !r.path.ends_with("/status"))
        .collect();
    assert_eq!(
        patches.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec![
            "/apis/istio.test.meshbridge.io/v1/namespaces/shop/policies/api",
            "/apis/istio.test.meshbridge.io/v1/namespaces/shop/routes/web",
        ]
    );
    for p in &patches {
        assert_eq!(
            p.query.get("fieldManager").map(String::as_str),
            Some("meshbridge")
        );
        assert_eq!(p.query.get("force").map(String::as_str), Some("true"));
        assert_eq!(p.content_type, "application/apply-patch+yaml");
        assert_eq!(
            p.body["metadata"]["labels"]["meshbridge.io/owner"],
            json!(CONTROLLER_NS)
        );
        assert_eq!(
            p.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            json!("meshbridge")
        );
        assert!(p.body["metadata"]["annotations"]["meshbridge.io/hash"].is_string());
    }
    let web = patches[1];
    assert_eq!(
        web.body["metadata"]["annotations"]["meshbridge.io/parents"],
        json!("[\"TrafficSplit/shop/web-split\"]")
    );
    assert_eq!(
        web.body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit", "name": "web-split", "uid": "split-uid"}])
    );
    assert_eq!(
        web.body["spec"]["backends"][0],
        json!({"service": "web-v1", "weight": 90})
    );
    // Each create was preceded by a GET of that name (foreign-object check).
    assert!(lines.contains(&format!("GET {ROUTES}/web")));
    // Status: SSA on /status with observedGeneration, and Events for the TrafficTarget.
    let st: Vec<&Req> = log.iter().filter(|r| r.path.ends_with("/status")).collect();
    assert_eq!(
        st.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec![
            "/apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits/web-split/status",
            "/apis/specs.smi-spec.io/v1alpha4/namespaces/shop/tcproutes/all/status",
        ],
        "{lines:#?}"
    );
    assert_eq!(
        st[0].path,
        "/apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits/web-split/status"
    );
    assert_eq!(
        st[0].query.get("fieldManager").map(String::as_str),
        Some("meshbridge")
    );
    assert_eq!(st[0].body["status"]["observedGeneration"], json!(1));
    let conds = st[0].body["status"]["conditions"].as_array().unwrap();
    assert_eq!(conds[0]["type"], json!("Accepted"));
    assert_eq!(conds[0]["status"], json!("True"));
    assert!(conds[0]["lastTransitionTime"].is_string());
    let events: Vec<&Req> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/events"))
        .collect();
    assert!(!events.is_empty(), "{lines:#?}");
    for e in &events {
        assert_eq!(e.body["regarding"]["kind"], json!("TrafficTarget"));
        assert_eq!(e.body["regarding"]["name"], json!("web-to-api"));
        assert_eq!(e.body["regarding"]["uid"], json!("tt-uid"));
    }
    assert!(!log.iter().any(|r| r.method == "DELETE"));

    // Nothing changed: not a single request.
    let r = rec.reconcile().await;
    assert_eq!(r.writes(), 0);
    assert!(f.take_log().is_empty(), "radio silence expected");

    // Drift on an owned object (seen through the output watch): reverted with one apply.
    let mut live = f
        .get("istio.test.meshbridge.io/v1", "routes", "shop", "web")
        .unwrap();
    live["spec"]["backends"][0]["weight"] = json!(1);
    f.insert(live.clone());
    rec.handle(meshbridge_controller::Msg::LiveUpsert(
        meshbridge_controller::OutKey::of_value(&live).unwrap(),
        Box::new(
            f.get("istio.test.meshbridge.io/v1", "routes", "shop", "web")
                .unwrap(),
        ),
    ));
    rec.reconcile().await;
    let log = f.take_log();
    assert_eq!(
        log.iter().map(Req::line).collect::<Vec<_>>(),
        vec![format!("PATCH {ROUTES}/web")]
    );
    assert_eq!(
        f.get("istio.test.meshbridge.io/v1", "routes", "shop", "web")
            .unwrap()["spec"]["backends"][0]["weight"],
        json!(90)
    );
}

#[tokio::test]
async fn deleting_an_smi_object_deletes_exactly_its_outputs() {
    let f = fake();
    let mut rec = first_pass(&f).await;
    f.take_log();
    let uid = f
        .get("istio.test.meshbridge.io/v1", "routes", "shop", "web")
        .unwrap()["metadata"]["uid"]
        .clone();
    rec.handle(delete(Kind::TrafficSplit, "shop", "web-split"));
    rec.reconcile().await;
    let log = f.take_log();
    assert_eq!(
        log.iter().map(Req::line).collect::<Vec<_>>(),
        vec![format!("DELETE {ROUTES}/web")]
    );
    assert_eq!(log[0].body["preconditions"]["uid"], uid);
    assert!(
        f.get("istio.test.meshbridge.io/v1", "policies", "shop", "api")
            .is_some()
    );
}

#[tokio::test]
async fn invalid_edit_writes_only_status() {
    let f = fake();
    let mut rec = first_pass(&f).await;
    f.take_log();
    let bad = with_uid(
        &split("web-split", "web", "web-v1", -1, "web-v2", 10),
        "split-uid",
    )
    .replace("generation: 1", "generation: 2");
    for m in upsert_yaml(&bad) {
        rec.handle(m);
    }
    rec.reconcile().await;
    let log = f.take_log();
    assert_eq!(
        log.iter().map(Req::line).collect::<Vec<_>>(),
        vec![
            "PATCH /apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits/web-split/status"
                .to_string()
        ]
    );
    let st = &log[0].body["status"];
    assert_eq!(st["observedGeneration"], json!(2));
    let acc = &st["conditions"][0];
    assert_eq!(
        (acc["type"].as_str(), acc["status"].as_str()),
        (Some("Accepted"), Some("False"))
    );
    assert!(
        acc["message"]
            .as_str()
            .unwrap()
            .contains("spec.backends[0].weight"),
        "{acc}"
    );
    assert_eq!(acc["observedGeneration"], json!(2));
}

#[tokio::test]
async fn hand_written_object_is_reported_not_overwritten() {
    let f = fake();
    f.insert(
        json!({"apiVersion": "istio.test.meshbridge.io/v1", "kind": "Route",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"mine": true}}),
    );
    let (_rec, r) = reconcile_inputs(&f).await;
    assert_eq!(r.conflicts.len(), 1);
    let log = f.take_log();
    assert!(
        !log.iter()
            .any(|r| r.method == "PATCH" && r.path == format!("{ROUTES}/web")),
        "overwrote a foreign object"
    );
    assert!(!log.iter().any(|r| r.method == "DELETE"));
    assert_eq!(
        f.get("istio.test.meshbridge.io/v1", "routes", "shop", "web")
            .unwrap()["spec"],
        json!({"mine": true})
    );
    let st = log
        .iter()
        .find(|r| r.path.ends_with("web-split/status"))
        .unwrap();
    let conds = st.body["status"]["conditions"].as_array().unwrap();
    let p = conds
        .iter()
        .find(|c| c["type"] == "Programmed/istio")
        .unwrap();
    assert_eq!(p["reason"], json!("OutputConflict"));
}

#[tokio::test]
async fn namespace_label_flip_moves_outputs_between_meshes() {
    let f = fake();
    let mut rec = kube_reconciler(&f, "a", Backends::Auto, Arc::new(AtomicBool::new(true))).await;
    let meshes = "apiVersion: meshbridge.io/v1alpha1\nkind: Mesh\nmetadata: {name: i, namespace: meshbridge-system}\nspec: {type: istio}\n---\napiVersion: meshbridge.io/v1alpha1\nkind: Mesh\nmetadata: {name: l, namespace: meshbridge-system}\nspec: {type: linkerd}\n";
    for m in inputs().into_iter().chain(upsert_yaml(meshes)).chain(upsert_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {meshbridge.io/mesh: i}}\n")) {
        rec.handle(m);
    }
    rec.reconcile().await;
    f.take_log();
    for m in upsert_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {meshbridge.io/mesh: l}}\n",
    ) {
        rec.handle(m);
    }
    rec.reconcile().await;
    let log = f.take_log();
    let mut lines: Vec<String> = log
        .iter()
        .filter(|r| !r.path.ends_with("/status") && !r.path.contains("/events"))
        .map(Req::line)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "DELETE /apis/istio.test.meshbridge.io/v1/namespaces/shop/policies/api",
            "DELETE /apis/istio.test.meshbridge.io/v1/namespaces/shop/routes/web",
            "GET /apis/linkerd.test.meshbridge.io/v1/namespaces/shop/policies/api",
            "GET /apis/linkerd.test.meshbridge.io/v1/namespaces/shop/routes/web",
            "PATCH /apis/linkerd.test.meshbridge.io/v1/namespaces/shop/policies/api",
            "PATCH /apis/linkerd.test.meshbridge.io/v1/namespaces/shop/routes/web",
        ]
    );
    assert!(
        f.get("istio.test.meshbridge.io/v1", "routes", "shop", "web")
            .is_none()
    );
    assert!(
        f.get("linkerd.test.meshbridge.io/v1", "routes", "shop", "web")
            .is_some()
    );
}

/// The controller's Lease as stored.
fn stored_lease(f: &FakeApi) -> Value {
    f.get(
        "coordination.k8s.io/v1",
        "leases",
        CONTROLLER_NS,
        "meshbridge-controller",
    )
    .unwrap()
}

fn lease_cfg(id: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: CONTROLLER_NS.into(),
        name: "meshbridge-controller".into(),
        identity: id.into(),
        lease_duration: Duration::from_secs(1),
        renew_every: Duration::from_millis(300),
    }
}

/// Puts the fixture inputs into the fake cluster.
fn seed_cluster(f: &FakeApi) {
    let text = format!(
        "{BASE}---\n{}---\n{TARGET}",
        with_uid(&web_split(), "split-uid")
    );
    for (_, doc) in meshbridge_core::load::split_documents(&text) {
        if let Some(v) = meshbridge_core::load::parse_document(&doc).unwrap() {
            f.insert(v);
        }
    }
}

/// What a replica's kube source reads from the fake cluster (a full listing).
async fn read_cluster(f: &FakeApi, client: &str) -> Vec<meshbridge_controller::Msg> {
    use meshbridge_controller::source::Source;
    let c = f.client(client);
    let src = meshbridge_controller::source::kube::KubeSource {
        client: c.clone(),
        discovery: Discovery::new(c),
        resources: SharedInputResources::default(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    Box::new(src)
        .start(tx, SyncTracker::default(), false)
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        out.push(m);
    }
    out
}

/// An istio reconciler as `name`, the leader while `leader` is set, that has read the cluster
/// (as `src-<name>`).
async fn istio_replica(f: &FakeApi, name: &str, leader: Arc<AtomicBool>) -> Reconciler {
    let mut rec = kube_reconciler(f, name, Backends::List(vec![MeshType::Istio]), leader).await;
    for m in read_cluster(f, &format!("src-{name}")).await {
        rec.handle(m);
    }
    rec
}

#[tokio::test]
async fn two_replicas_only_the_leader_writes() {
    let f = fake();
    seed_cluster(&f);
    let flag_a = Arc::new(AtomicBool::new(false));
    let flag_b = Arc::new(AtomicBool::new(false));
    let mut el_a = Elector::new(f.client("lease-a"), lease_cfg("a"));
    let mut el_b = Elector::new(f.client("lease-b"), lease_cfg("b"));
    assert_eq!(el_a.step().await, Step::Leader);
    assert_eq!(
        el_b.step().await,
        Step::Follower {
            holder: Some("a".into())
        }
    );
    flag_a.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut rec_a = istio_replica(&f, "a", flag_a.clone()).await;
    let mut rec_b = istio_replica(&f, "b", flag_b.clone()).await;
    f.take_log();
    let (ra, rb) = (rec_a.reconcile().await, rec_b.reconcile().await);
    assert_eq!(ra.writes(), 2);
    assert!(rb.not_leader);
    let log = f.take_log();
    assert!(log.iter().any(|r| r.client == "a" && r.method == "PATCH"));
    assert!(
        log.iter().all(|r| r.client != "b"),
        "the follower made requests: {:?}",
        log.iter()
            .filter(|r| r.client == "b")
            .map(Req::line)
            .collect::<Vec<_>>()
    );
    // The leader renews; the follower still cannot take over.
    assert_eq!(el_a.step().await, Step::Leader);
    assert_eq!(
        el_b.step().await,
        Step::Follower {
            holder: Some("a".into())
        }
    );
    // The follower's watches see what the leader wrote (outputs and status).
    for m in read_cluster(&f, "src-b").await {
        rec_b.handle(m);
    }
    // The leader stops renewing (crash): after the lease duration, b takes over, resyncs
    // against the cluster and finds nothing to apply or delete, and no status to patch.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(el_b.step().await, Step::Leader);
    let lease = stored_lease(&f);
    assert_eq!(lease["spec"]["holderIdentity"], json!("b"));
    assert_eq!(lease["spec"]["leaseTransitions"], json!(1));
    flag_a.store(false, std::sync::atomic::Ordering::SeqCst);
    flag_b.store(true, std::sync::atomic::Ordering::SeqCst);
    f.take_log();
    let rb = rec_b.reconcile().await;
    assert_eq!(rb.writes(), 0, "{rb:?}");
    let log = f.take_log();
    let non_event_writes: Vec<String> = log
        .iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/events"))
        .map(Req::line)
        .collect();
    assert!(non_event_writes.is_empty(), "{non_event_writes:?}");
    // The old leader, now a follower, writes nothing even with a change pending.
    rec_a.handle(delete(Kind::TrafficSplit, "shop", "web-split"));
    assert!(rec_a.reconcile().await.not_leader);
    assert!(f.take_log().is_empty());
    // Graceful release: the holder gives the lease up and the other takes it at once.
    el_b.release().await;
    let lease = stored_lease(&f);
    assert!(lease["spec"]["holderIdentity"].is_null());
    assert_eq!(el_a.step().await, Step::Leader);
}

#[tokio::test]
async fn kube_source_probes_versions_and_reads_objects_as_written() {
    let f = fake();
    // Stored once, served at v1alpha4 without conversion; written at v1alpha1 (quantities).
    f.insert(json!({
        "apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
        "metadata": {"name": "old", "namespace": "shop", "generation": 3, "uid": "u-old",
            "managedFields": [
                {"manager": "kubectl", "operation": "Update", "apiVersion": "split.smi-spec.io/v1alpha1", "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {}},
                {"manager": "meshbridge", "operation": "Apply", "apiVersion": "split.smi-spec.io/v1alpha4", "time": "2024-02-01T00:00:00Z", "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {}}
            ]},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": "500m"}, {"service": "web-v2", "weight": "1"}]},
        "status": {"observedGeneration": 3, "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}]}
    }));
    let client = f.client("src");
    let discovery = Discovery::new(client.clone());
    let found = probe(&discovery).await.unwrap();
    assert_eq!(
        found.served_versions[&Kind::TrafficSplit],
        vec!["v1alpha4", "v1alpha1"]
    );
    assert_eq!(found.watched[&Kind::TrafficSplit].api.version, "v1alpha4");
    assert!(found.watched[&Kind::TrafficSplit].has_status);
    assert!(!found.watched[&Kind::TrafficTarget].has_status);
    assert!(found.missing.contains(&Kind::HTTPRouteGroup));
    f.take_log();
    let res = found.watched[&Kind::TrafficSplit].clone();
    let changes = meshbridge_controller::source::kube::list_kind(
        client,
        Kind::TrafficSplit,
        &res,
        &found.served_versions[&Kind::TrafficSplit],
    )
    .await
    .unwrap();
    let log = f.take_log();
    assert_eq!(
        log.iter().map(Req::line).collect::<Vec<_>>(),
        vec!["GET /apis/split.smi-spec.io/v1alpha4/trafficsplits"]
    );
    assert_eq!(changes.len(), 1);
    match &changes[0] {
        meshbridge_controller::Change::Upsert {
            object,
            live_status,
        } => {
            let m = object.meta();
            assert_eq!(m.api_version, "split.smi-spec.io/v1alpha1");
            assert_eq!(m.generation, Some(3));
            assert_eq!(m.uid.as_deref(), Some("u-old"));
            assert_eq!(live_status.as_ref().unwrap()[0].type_, "Accepted");
            let snap = meshbridge_core::Snapshot::from_objects([(**object).clone()]);
            let ir = meshbridge_core::build::build(&snap);
            let st = &ir.status[&object.key()];
            assert!(st.accepted, "{:?}", st.problems);
            let s = ir.splits.values().next().unwrap();
            assert_eq!(
                s.backends.iter().map(|b| b.weight).collect::<Vec<_>>(),
                vec![500, 1000]
            );
        }
        other => panic!("{other:?}"),
    }
    // An object the loader cannot read becomes an Invalid change carrying its generation.
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
        "metadata": {"name": "bad", "namespace": "shop", "generation": 7},
        "spec": {"service": "web", "backends": "nope"}
    }))
    .unwrap();
    let split_res = meshbridge_controller::discovery::Resource {
        api: kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("split.smi-spec.io", "v1alpha4", "TrafficSplit"),
            "trafficsplits",
        ),
        namespaced: true,
        has_status: true,
    };
    let c = meshbridge_controller::source::kube::convert(
        Kind::TrafficSplit,
        &split_res,
        &["v1alpha4".into()],
        &bad,
    );
    match &c[..] {
        [
            meshbridge_controller::Change::Invalid {
                generation,
                problems,
                ..
            },
        ] => {
            assert_eq!(*generation, Some(7));
            assert!(
                problems[0].field.starts_with("spec.backends"),
                "{:?}",
                problems
            );
        }
        other => panic!("{other:?}"),
    }
    let _: Value = Value::Null;
}

/// The same reconcile to a directory and to the mocked cluster: the applied bodies are the
/// files' objects plus only the kube-specific metadata (hash, ownerReferences).
#[tokio::test]
async fn cluster_and_directory_outputs_agree() {
    use meshbridge_controller::sink::dir::DirSink;
    let f = fake();
    let mut kube = kube_reconciler(
        &f,
        "a",
        Backends::List(vec![MeshType::Istio]),
        Arc::new(AtomicBool::new(true)),
    )
    .await;
    let out = std::env::temp_dir().join(format!("meshbridge-agree-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut dir = Reconciler::new(
        engine(Backends::List(vec![MeshType::Istio])),
        Box::new(DirSink::new(&out, CONTROLLER_NS)),
        Box::new(meshbridge_controller::status::LogStatusSink::default()),
        Arc::new(Metrics::default()),
        Arc::new(AtomicBool::new(true)),
    );
    f.take_log();
    for m in inputs() {
        kube.handle(m.clone());
        dir.handle(m);
    }
    assert!(kube.reconcile().await.errors.is_empty());
    assert!(dir.reconcile().await.errors.is_empty());
    let mut applied: Vec<Value> = f
        .take_log()
        .into_iter()
        .filter(|r| r.method == "PATCH" && !r.path.ends_with("/status"))
        .map(|r| {
            let mut b = r.body;
            b["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("ownerReferences");
            b["metadata"]["annotations"]
                .as_object_mut()
                .unwrap()
                .remove("meshbridge.io/hash");
            b
        })
        .collect();
    let mut files: Vec<Value> = dir.live().values().cloned().collect();
    for v in &files {
        let k = meshbridge_controller::OutKey::of_value(v).unwrap();
        let text = std::fs::read_to_string(out.join(DirSink::rel_path(&k))).unwrap();
        assert_eq!(
            &meshbridge_core::load::parse_document(&text)
                .unwrap()
                .unwrap(),
            v
        );
    }
    let key = |v: &Value| meshbridge_controller::OutKey::of_value(v).unwrap();
    applied.sort_by_key(key);
    files.sort_by_key(key);
    assert_eq!(applied.len(), 2);
    assert_eq!(applied, files);
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn mesh_status_carries_the_capability_matrix() {
    let f = fake();
    let mut rec = kube_reconciler(&f, "a", Backends::Auto, Arc::new(AtomicBool::new(true))).await;
    f.take_log();
    let meshes = "apiVersion: meshbridge.io/v1alpha1\nkind: Mesh\nmetadata: {name: i, namespace: meshbridge-system, generation: 4}\nspec: {type: istio}\n---\napiVersion: meshbridge.io/v1alpha1\nkind: Mesh\nmetadata: {name: e, namespace: meshbridge-system, generation: 1}\nspec: {type: envoy}\n";
    for m in upsert_yaml(meshes) {
        rec.handle(m);
    }
    rec.reconcile().await;
    let log = f.take_log();
    let st: Vec<&Req> = log.iter().filter(|r| r.path.ends_with("/status")).collect();
    assert_eq!(
        st.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec![
            "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/meshes/e/status",
            "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/meshes/i/status",
        ]
    );
    let e = &st[0].body["status"];
    assert_eq!(e["conditions"][1]["reason"], json!("AdapterUnavailable"));
    assert!(e.get("capabilities").is_none());
    let i = &st[1].body["status"];
    assert_eq!(i["observedGeneration"], json!(4));
    assert_eq!(i["conditions"][1]["reason"], json!("AdapterAvailable"));
    // The test adapter declares nothing: every feature is None, one row per feature.
    let caps = i["capabilities"].as_array().unwrap();
    assert_eq!(caps.len(), meshbridge_core::Feature::ALL.len());
    assert!(caps.iter().all(|c| c["level"] == json!("None")), "{caps:?}");
    // Nothing changed: nothing written.
    rec.reconcile().await;
    assert!(f.take_log().is_empty());
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The long-running controller on the mocked cluster, through real kube-rs watchers:
/// initial list+watch of every input kind and of the owned outputs, apply, then live input
/// edits, drift on an output, deletes — each answered with exactly the matching writes.
#[tokio::test]
async fn event_loop_with_watches() {
    use meshbridge_controller::source::Source;
    let f = fake();
    seed_cluster(&f);
    let client = f.client("ctl");
    let discovery = Discovery::new(client.clone());
    let resources = SharedInputResources::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let tracker = SyncTracker::default();
    let mut sink = KubeSink::new(
        client.clone(),
        discovery.clone(),
        CONTROLLER_NS,
        Some(tx.clone()),
        tracker.clone(),
    );
    sink.add_output_kind("istio.test.meshbridge.io/v1", "Route");
    sink.add_output_kind("istio.test.meshbridge.io/v1", "Policy");
    let status = KubeStatusSink::new(client.clone(), resources.clone(), None);
    let mut rec = Reconciler::new(
        engine(Backends::List(vec![MeshType::Istio])),
        Box::new(sink),
        Box::new(status),
        Arc::new(Metrics::default()),
        Arc::new(AtomicBool::new(true)),
    );
    let src = meshbridge_controller::source::kube::KubeSource {
        client,
        discovery,
        resources,
    };
    Box::new(src)
        .start(tx.clone(), tracker.clone(), true)
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let notify = Arc::new(tokio::sync::Notify::new());
    let handle = tokio::spawn(async move {
        let code = meshbridge_controller::run::event_loop(
            &mut rec,
            rx,
            &tracker,
            notify,
            Duration::from_millis(20),
            Duration::from_secs(3600),
            async {
                let _ = stop_rx.await;
            },
        )
        .await;
        (
            code,
            rec.metrics()
                .synced
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    });
    let route = |f: &FakeApi| f.get("istio.test.meshbridge.io/v1", "routes", "shop", "web");
    let stored_split = |f: &FakeApi| {
        f.get(
            "split.smi-spec.io/v1alpha4",
            "trafficsplits",
            "shop",
            "web-split",
        )
        .unwrap()
    };
    wait_until("initial apply", || route(&f).is_some()).await;
    // Watches were opened on the inputs and, with the owner label selector, on the outputs.
    let watches: Vec<Req> = f.lock().watch_log.clone();
    assert!(
        watches
            .iter()
            .any(|w| w.path == "/apis/split.smi-spec.io/v1alpha4/trafficsplits")
    );
    wait_until("output watch", || {
        f.lock()
            .watch_log
            .iter()
            .any(|w| w.path == "/apis/istio.test.meshbridge.io/v1/routes")
    })
    .await;
    let w = f
        .lock()
        .watch_log
        .iter()
        .find(|w| w.path == "/apis/istio.test.meshbridge.io/v1/routes")
        .cloned()
        .unwrap();
    assert_eq!(
        w.query.get("labelSelector").map(String::as_str),
        Some("meshbridge.io/owner=meshbridge-system")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.take_log();

    // An input edit arrives through the TrafficSplit watch: one apply of the route.
    let mut ts = stored_split(&f);
    ts["spec"]["backends"][0]["weight"] = json!(60);
    ts["metadata"]["generation"] = json!(2);
    f.push_watch_event("MODIFIED", ts);
    let route_weight_is = |w: i64| route(&f).unwrap()["spec"]["backends"][0]["weight"] == json!(w);
    wait_until("edit applied", || route_weight_is(60)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = f.take_log();
    let writes = write_lines(&log);
    assert!(
        writes.contains(&format!("PATCH {ROUTES}/web")),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|w| w.starts_with("DELETE")),
        "{writes:?}"
    );

    // Drift on the owned route, seen through the output watch: reverted.
    let mut live = route(&f).unwrap();
    live["spec"]["backends"][0]["weight"] = json!(1);
    f.push_watch_event("MODIFIED", live);
    wait_until("drift reverted", || route_weight_is(60)).await;

    // The split is deleted: its route goes, the policy stays.
    let ts = stored_split(&f);
    f.take_log();
    f.push_watch_event("DELETED", ts);
    wait_until("route deleted", || route(&f).is_none()).await;
    assert!(
        f.get("istio.test.meshbridge.io/v1", "policies", "shop", "api")
            .is_some()
    );
    let log = f.take_log();
    assert_eq!(
        log.iter()
            .filter(|r| r.method == "DELETE")
            .map(Req::line)
            .collect::<Vec<_>>(),
        vec![format!("DELETE {ROUTES}/web")]
    );

    let _ = stop_tx.send(());
    let (code, synced) = handle.await.unwrap();
    assert_eq!(code, 0);
    assert!(synced);
}
