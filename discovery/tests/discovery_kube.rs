//! A discovery pass against a mocked API server: narrow reads, create/patch only what
//! differs, user fields kept, a vanished control plane marked NotFound (never deleted).

use meshbridge_core::api::meshbridge::MeshSpec;
use meshbridge_core::capability::{Capability, Feature, Level};
use meshbridge_discovery::kube::discover_and_write;
use meshbridge_discovery::{Config, read_objects};
use meshbridge_test_support::FakeApi;
use serde_json::{Value, json};
use std::path::PathBuf;

const MESHES: &str = "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/meshes";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/istio-system/deployments";

fn caps(spec: &MeshSpec) -> Option<Vec<Capability>> {
    Some(vec![Capability {
        feature: Feature::TrafficSplit,
        level: Level::Full,
        reason: format!(
            "{} {}",
            spec.mesh_type,
            spec.version.clone().unwrap_or_default()
        ),
    }])
}

fn load(f: &FakeApi, case: &str) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
        .join("cluster.yaml");
    for v in read_objects(&[p]).0 {
        f.insert_object(v);
    }
}

fn writes(f: &FakeApi) -> Vec<String> {
    f.take_log()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.line())
        .collect()
}

#[tokio::test]
async fn discovery_pass_writes_only_differences() {
    let f = FakeApi::new();
    f.not_served("/apis/appmesh.k8s.aws/");
    load(&f, "istio-revisions");
    let c = f.client("meshbridge");
    let cfg = Config::default();

    let r = discover_and_write(&c, &cfg, &caps).await.unwrap();
    assert_eq!(r.created, ["istio-1-20", "istio-1-21"]);
    let log = f.take_log();
    let reads: Vec<String> = log
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| {
            format!(
                "{} {}",
                r.path,
                r.query.get("labelSelector").cloned().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        reads,
        [
            "/apis/apps/v1/deployments ",
            "/api/v1/namespaces ",
            "/api/v1/pods istio.io/rev",
            "/api/v1/pods linkerd.io/control-plane-ns",
            "/apis/appmesh.k8s.aws/v1beta2/meshes ",
            // The mesh-config ConfigMaps, by name (RBAC grants get by name, never a list).
            "/api/v1/namespaces/istio-system/configmaps/istio ",
            "/api/v1/namespaces/istio-system/configmaps/istio-1-20 ",
            "/api/v1/namespaces/istio-system/configmaps/istio-1-21 ",
            "/apis/security.istio.io/v1beta1/namespaces/istio-system/peerauthentications ",
            &format!("{MESHES} "),
        ]
    );
    let w: Vec<String> = log
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.line())
        .collect();
    assert_eq!(
        w,
        [
            format!("POST {MESHES}"),
            format!("PATCH {MESHES}/istio-1-20/status"),
            format!("POST {MESHES}"),
            format!("PATCH {MESHES}/istio-1-21/status"),
        ]
    );
    let m = f.get_at(MESHES, "istio-1-20").unwrap();
    assert_eq!(m["spec"]["version"], json!("1.20.1"));
    assert_eq!(m["status"]["discovered"]["namespaces"], json!(["orders"]));
    assert_eq!(
        m["status"]["capabilities"][0]["reason"],
        json!("istio 1.20.1")
    );

    // Same cluster: no write.
    let r = discover_and_write(&c, &cfg, &caps).await.unwrap();
    assert_eq!(r, Default::default());
    assert!(writes(&f).is_empty());

    // A user sets the trust domain; istiod-1-20 is patched to 1.20.2.
    f.edit(MESHES, "istio-1-20", |m| {
        m["spec"]["trustDomain"] = json!("user.example")
    });
    f.edit(DEPLOYS, "istiod-1-20", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("registry.internal:5000/mirror/istio/pilot:1.20.2-distroless")
    });
    let r = discover_and_write(&c, &cfg, &caps).await.unwrap();
    assert_eq!(r.updated, ["istio-1-20"]);
    assert_eq!(
        writes(&f),
        [
            format!("PATCH {MESHES}/istio-1-20"),
            format!("PATCH {MESHES}/istio-1-20/status")
        ]
    );
    let m = f.get_at(MESHES, "istio-1-20").unwrap();
    assert_eq!(m["spec"]["version"], json!("1.20.2"));
    assert_eq!(m["spec"]["trustDomain"], json!("user.example"));
    assert_eq!(
        m["status"]["discovered"]["trustDomain"],
        json!("corp.example")
    );

    // istiod-1-21 is removed: its Mesh stays, Ready=False NotFound.
    f.remove_at(DEPLOYS, "istiod-1-21");
    discover_and_write(&c, &cfg, &caps).await.unwrap();
    assert_eq!(writes(&f), [format!("PATCH {MESHES}/istio-1-21/status")]);
    let m = f.get_at(MESHES, "istio-1-21").unwrap();
    let ready = m["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(ready["status"], json!("False"));
    assert_eq!(ready["reason"], json!("NotFound"));
}
