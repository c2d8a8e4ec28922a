//! The swap flow (Istio → Linkerd on one namespace) through the controller with its kube
//! sink against the mocked API server: every Istio output is deleted, every Linkerd output
//! applied, and no request writes an application object (Deployment, Service, Pod,
//! ServiceAccount, Namespace).

use meshbridge_controller::discovery::Discovery;
use meshbridge_controller::engine::{Backends, Engine, EngineConfig};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::reconciler::Reconciler;
use meshbridge_controller::sink::kube::KubeSink;
use meshbridge_controller::status::LogStatusSink;
use meshbridge_controller::{Change, Msg, SyncTracker};
use meshbridge_core::api::meshbridge::{MeshSpec, MeshType};
use meshbridge_core::capability::Capability;
use meshbridge_core::{Adapter, Context};
use meshbridge_discovery::{Config, find_control_planes, merge, read_objects};
use meshbridge_test_support::FakeApi;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

const NS: &str = "meshbridge-system";

fn adapter(t: MeshType) -> Box<dyn Adapter> {
    match t {
        MeshType::Istio => Box::new(meshbridge_istio::IstioAdapter),
        _ => Box::new(meshbridge_linkerd::LinkerdAdapter),
    }
}

fn caps(spec: &MeshSpec) -> Option<Vec<Capability>> {
    let cx = Context {
        mesh: Some(spec.clone()),
        ..Context::default()
    };
    Some(adapter(spec.mesh_type).capabilities(&cx).rows().to_vec())
}

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
        .join("cluster.yaml")
}

fn serve_all(f: &FakeApi) {
    f.serve(
        "networking.istio.io/v1",
        [
            ("VirtualService", "virtualservices", true),
            ("DestinationRule", "destinationrules", true),
            ("ServiceEntry", "serviceentries", true),
            ("Sidecar", "sidecars", true),
        ],
    );
    f.serve(
        "security.istio.io/v1",
        [
            ("AuthorizationPolicy", "authorizationpolicies", true),
            ("PeerAuthentication", "peerauthentications", true),
        ],
    );
    f.serve(
        "linkerd.io/v1alpha2",
        [("ServiceProfile", "serviceprofiles", true)],
    );
    for v in ["v1beta1", "v1beta2", "v1beta3"] {
        f.serve(
            &format!("policy.linkerd.io/{v}"),
            [
                ("Server", "servers", true),
                ("HTTPRoute", "httproutes", true),
                ("ServerAuthorization", "serverauthorizations", true),
            ],
        );
    }
    f.serve(
        "policy.linkerd.io/v1alpha1",
        [
            ("AuthorizationPolicy", "authorizationpolicies", true),
            ("MeshTLSAuthentication", "meshtlsauthentications", true),
            ("NetworkAuthentication", "networkauthentications", true),
            (
                "HTTPLocalRateLimitPolicy",
                "httplocalratelimitpolicies",
                true,
            ),
        ],
    );
    f.serve("apps/v1", [("Deployment", "deployments", true)]);
    f.serve(
        "v1",
        [
            ("Namespace", "namespaces", false),
            ("Service", "services", true),
            ("ServiceAccount", "serviceaccounts", true),
            ("Pod", "pods", true),
        ],
    );
}

/// The application both swap tests run (Services, ServiceAccounts, Deployments, SMI).
const APP: &str = include_str!("swap-app.yaml");

fn namespace(mesh: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {{meshbridge.io/mesh: {mesh}}}\n"
    )
}

fn msgs(yaml: &str) -> Vec<Msg> {
    let l = meshbridge_core::load::load_str("swap.yaml", yaml);
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    l.objects
        .into_iter()
        .map(|o| {
            Msg::Input(Change::Upsert {
                object: Box::new(o),
                live_status: None,
            })
        })
        .collect()
}

fn group_of_path(path: &str) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segs.first() == Some(&"api") {
        String::new()
    } else {
        segs.get(1).unwrap_or(&"").to_string()
    }
}

const APP_PLURALS: [&str; 5] = [
    "deployments",
    "services",
    "pods",
    "serviceaccounts",
    "namespaces",
];

/// The resource (plural) a request path addresses.
fn resource_of(path: &str) -> &str {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let base = if segs.first() == Some(&"api") { 2 } else { 3 };
    if segs.get(base) == Some(&"namespaces") && segs.len() > base + 2 {
        segs[base + 2]
    } else {
        segs.get(base).copied().unwrap_or("")
    }
}

fn is_app_write(r: &meshbridge_test_support::Req) -> bool {
    r.method != "GET" && APP_PLURALS.contains(&resource_of(&r.path))
}

#[tokio::test]
async fn istio_to_linkerd_swap_through_the_mocked_cluster() {
    let f = FakeApi::new();
    serve_all(&f);
    // The application exists in the cluster.
    let (app, _) = {
        let d = std::env::temp_dir().join(format!("mb-swap-kube-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("app.yaml"),
            format!("{APP}---\n{}", namespace("istio")),
        )
        .unwrap();
        read_objects(&[d.join("app.yaml")])
    };
    for v in &app {
        f.insert_object(v.clone());
    }
    let app_before: Vec<Value> = app
        .iter()
        .map(|v| {
            f.get_at(
                &meshbridge_test_support::collection_of(v),
                v["metadata"]["name"].as_str().unwrap(),
            )
            .unwrap()
        })
        .collect();

    // Discovery finds Istio 1.22 and Linkerd stable-2.14.
    let (cluster, _) = read_objects(&[fixture("istio-1.22"), fixture("linkerd-stable-2.14")]);
    let meshes = merge(
        &[],
        &find_control_planes(&cluster),
        &Config {
            namespace: NS.into(),
            ..Config::default()
        },
        &caps,
    );
    let mesh_yaml = meshbridge_core::yaml::to_yaml_stream(
        &meshes
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect::<Vec<_>>(),
    );

    let client = f.client("meshbridge");
    let sink = KubeSink::new(
        client.clone(),
        Discovery::new(client.clone()),
        NS,
        None,
        SyncTracker::default(),
    );
    let engine = Engine::new(
        EngineConfig {
            base: Context {
                controller_namespace: NS.into(),
                ..Context::default()
            },
            trust_domain: None,
            backends: Backends::Auto,
        },
        vec![adapter(MeshType::Istio), adapter(MeshType::Linkerd)],
    );
    let mut rec = Reconciler::new(
        engine,
        Box::new(sink),
        Box::new(LogStatusSink::default()),
        Arc::new(Metrics::default()),
        Arc::new(AtomicBool::new(true)),
    );
    for m in msgs(&mesh_yaml)
        .into_iter()
        .chain(msgs(APP))
        .chain(msgs(&namespace("istio")))
    {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let log = f.take_log();
    let applied: BTreeSet<String> = log
        .iter()
        .filter(|r| r.method == "PATCH" && r.content_type.starts_with("application/apply-patch"))
        .map(|r| r.path.clone())
        .collect();
    assert!(!applied.is_empty());
    assert!(
        applied
            .iter()
            .all(|p| group_of_path(p).ends_with("istio.io")),
        "{applied:#?}"
    );
    assert!(
        !log.iter().any(is_app_write),
        "{:#?}",
        log.iter()
            .filter(|r| is_app_write(r))
            .map(|r| r.line())
            .collect::<Vec<_>>()
    );

    // Flip the namespace label.
    for m in msgs(&namespace("linkerd")) {
        rec.handle(m);
    }
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let log = f.take_log();
    let deleted: BTreeSet<String> = log
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(deleted, applied, "every Istio output deleted, nothing else");
    let created: BTreeSet<String> = log
        .iter()
        .filter(|r| r.method == "PATCH" && r.content_type.starts_with("application/apply-patch"))
        .map(|r| r.path.clone())
        .collect();
    assert!(!created.is_empty());
    assert!(
        created
            .iter()
            .all(|p| group_of_path(p).ends_with("linkerd.io")),
        "{created:#?}"
    );
    assert!(
        created
            .iter()
            .any(|p| group_of_path(p) == "policy.linkerd.io"),
        "{created:#?}"
    );
    assert!(
        !log.iter().any(is_app_write),
        "an application object was written"
    );
    // Everything the Linkerd adapter renders is in the cluster, with the owner label.
    let desired: BTreeSet<(String, String)> = rec
        .engine
        .desired()
        .keys()
        .map(|k| (k.kind.clone(), k.name.clone()))
        .collect();
    let live: BTreeSet<(String, String)> = f
        .lock()
        .objects
        .values()
        .filter(|v| {
            v.pointer("/metadata/labels/meshbridge.io~1owner")
                .and_then(Value::as_str)
                == Some(NS)
        })
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(live, desired);
    assert_eq!(created.len(), desired.len());
    // Application objects are exactly as before (same resourceVersion).
    for (v, before) in app.iter().zip(&app_before) {
        let now = f
            .get_at(
                &meshbridge_test_support::collection_of(v),
                v["metadata"]["name"].as_str().unwrap(),
            )
            .unwrap();
        assert_eq!(&now, before);
    }
}
