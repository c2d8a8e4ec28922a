//! The swap flow (Istio → Linkerd on one namespace) through the controller with its kube
//! sink against the mocked API server: every Istio output is deleted, every Linkerd output
//! applied, and no request writes an application object (Deployment, Service, Pod,
//! ServiceAccount, Namespace).

mod common;

use common::swap::{self, APP, namespace};
use common::{NS, deleted, objects_of, target};
use meshbridge_controller::SyncTracker;
use meshbridge_controller::discovery::Discovery;
use meshbridge_controller::sink::kube::KubeSink;
use meshbridge_test_support::{FakeApi, Req, collection_of};
use serde_json::Value;
use std::collections::BTreeSet;

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

const APP_PLURALS: [&str; 5] = [
    "deployments",
    "services",
    "pods",
    "serviceaccounts",
    "namespaces",
];

fn is_app_write(r: &Req) -> bool {
    r.method != "GET" && APP_PLURALS.contains(&target(&r.path).resource.as_str())
}

fn group_of_path(path: &str) -> String {
    target(path).group
}

/// The paths written by server-side apply.
fn applied(log: &[Req]) -> BTreeSet<String> {
    log.iter()
        .filter(|r| r.method == "PATCH" && r.content_type.starts_with("application/apply-patch"))
        .map(|r| r.path.clone())
        .collect()
}

/// The stored object `v` (as read back from the fake).
fn stored(f: &FakeApi, v: &Value) -> Option<Value> {
    f.get_at(&collection_of(v), v["metadata"]["name"].as_str().unwrap())
}

#[tokio::test]
async fn istio_to_linkerd_swap_through_the_mocked_cluster() {
    let f = FakeApi::new();
    serve_all(&f);
    // The application exists in the cluster.
    let app = objects_of(&format!("{APP}---\n{}", namespace("istio")));
    for v in &app {
        f.insert_object(v.clone());
    }
    let app_before: Vec<Value> = app.iter().map(|v| stored(&f, v).unwrap()).collect();

    // Discovery finds Istio 1.22 and Linkerd stable-2.14.
    let (_, meshes) = swap::discovered();

    let client = f.client("meshbridge");
    let sink = KubeSink::new(
        client.clone(),
        Discovery::new(client.clone()),
        NS,
        None,
        SyncTracker::default(),
    );
    let mut rec = swap::reconciler(Box::new(sink));
    swap::start(&mut rec, &meshes);
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let log = f.take_log();
    let istio = applied(&log);
    assert!(!istio.is_empty());
    assert!(
        istio.iter().all(|p| group_of_path(p).ends_with("istio.io")),
        "{istio:#?}"
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
    swap::feed(&mut rec, &namespace("linkerd"));
    let r = rec.reconcile().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let log = f.take_log();
    assert_eq!(
        deleted(&log),
        istio,
        "every Istio output deleted, nothing else"
    );
    let created = applied(&log);
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
        assert_eq!(stored(&f, v).as_ref(), Some(before));
    }
}
