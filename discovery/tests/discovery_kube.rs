//! A discovery pass against a mocked API server: narrow reads, create/patch only what
//! differs, user fields kept, a vanished control plane marked NotFound (never deleted).

mod common;

use common::{MESHES, condition_of, echo_caps, fake, load, writes};
use meshbridge_discovery::Config;
use meshbridge_discovery::kube::discover_and_write;
use serde_json::json;

const DEPLOYS: &str = "/apis/apps/v1/namespaces/istio-system/deployments";

#[tokio::test]
async fn discovery_pass_writes_only_differences() {
    let f = fake();
    load(&f, "istio-revisions");
    let c = f.client("meshbridge");
    let cfg = Config::default();

    let r = discover_and_write(&c, &cfg, &echo_caps).await.unwrap();
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
    // Alone (no controller), discovery writes the whole status, capabilities included.
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
        json!("istio at 1.20.1")
    );

    // Same cluster: no write.
    let r = discover_and_write(&c, &cfg, &echo_caps).await.unwrap();
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
    let r = discover_and_write(&c, &cfg, &echo_caps).await.unwrap();
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
    discover_and_write(&c, &cfg, &echo_caps).await.unwrap();
    assert_eq!(writes(&f), [format!("PATCH {MESHES}/istio-1-21/status")]);
    let m = f.get_at(MESHES, "istio-1-21").unwrap();
    let ready = condition_of(&m, "Ready");
    assert_eq!(ready["status"], json!("False"));
    assert_eq!(ready["reason"], json!("NotFound"));
}
