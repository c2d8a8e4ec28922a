//! App Mesh discovery through the AWS API (`ListMeshes`): the pure folding of listed meshes
//! into the control planes found in the cluster, and a discovery pass against the mocked
//! API server with a listing callback (found → Mesh written; listing unavailable → Mesh
//! left alone; no longer listed → `Ready=False NotFound`, never deleted).

use meshbridge_core::api::meshbridge::{MeshSpec, MeshType};
use meshbridge_core::capability::{Capability, Feature, Level};
use meshbridge_discovery::runner::{self, ListAppMeshes, RunnerConfig, SharedCaps};
use meshbridge_discovery::{find_control_planes, read_objects, with_api_meshes};
use meshbridge_test_support::FakeApi;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NS: &str = "meshbridge-system";
const MESHES: &str = "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/meshes";

fn fixture(case: &str) -> Vec<Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
        .join("cluster.yaml");
    let (objs, problems) = read_objects(&[p]);
    assert!(problems.is_empty(), "{problems:?}");
    objs
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn api_meshes_without_a_controller_become_api_only_control_planes() {
    let found = with_api_meshes(
        find_control_planes(&fixture("nothing")),
        &names(&["b", "a"]),
    );
    let got: Vec<_> = found
        .iter()
        .map(|c| {
            (
                c.mesh_type,
                c.app_mesh_name.clone(),
                c.base_name(),
                c.is_api_only(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                MeshType::AppMesh,
                Some("a".into()),
                "appmesh-a".into(),
                true
            ),
            (
                MeshType::AppMesh,
                Some("b".into()),
                "appmesh-b".into(),
                true
            ),
        ]
    );
    assert_eq!(found[0].spec().app_mesh_name.as_deref(), Some("a"));
    assert_eq!(found[0].spec().control_plane_namespace, None);
}

#[test]
fn the_controllers_mesh_is_confirmed_or_filled_in_by_the_api() {
    let cluster = find_control_planes(&fixture("appmesh"));
    let ctrl: Vec<_> = cluster
        .iter()
        .filter(|c| c.mesh_type == MeshType::AppMesh)
        .collect();
    assert_eq!(ctrl.len(), 1, "the fixture has one App Mesh controller");
    let known = ctrl[0].app_mesh_name.clone();

    match known {
        Some(name) => {
            // Listed: confirmed, and not duplicated as an API-only mesh.
            let found = with_api_meshes(cluster.clone(), std::slice::from_ref(&name));
            let am: Vec<_> = found
                .iter()
                .filter(|c| c.mesh_type == MeshType::AppMesh)
                .collect();
            assert_eq!(am.len(), 1);
            assert!(
                am[0].notes.iter().any(|n| n.contains("confirmed")),
                "{:?}",
                am[0].notes
            );
            // Not listed: a note, and the other listed mesh is API-only.
            let found = with_api_meshes(cluster, &names(&["other"]));
            let ctrl = found.iter().find(|c| !c.is_api_only()).unwrap();
            assert!(ctrl.notes.iter().any(|n| n.contains("not listed")));
            assert!(
                found
                    .iter()
                    .any(|c| c.is_api_only() && c.app_mesh_name.as_deref() == Some("other"))
            );
        }
        None => {
            let found = with_api_meshes(cluster, &names(&["only"]));
            let am: Vec<_> = found
                .iter()
                .filter(|c| c.mesh_type == MeshType::AppMesh)
                .collect();
            assert_eq!(am.len(), 1);
            assert_eq!(am[0].app_mesh_name.as_deref(), Some("only"));
            assert!(!am[0].is_api_only());
        }
    }
}

#[test]
fn a_controller_with_an_unknown_mesh_name_takes_the_only_listed_mesh() {
    let mut cluster = find_control_planes(&fixture("appmesh"));
    for c in &mut cluster {
        c.app_mesh_name = None;
    }
    let found = with_api_meshes(cluster.clone(), &names(&["prod"]));
    let am: Vec<_> = found
        .iter()
        .filter(|c| c.mesh_type == MeshType::AppMesh)
        .collect();
    assert_eq!(am.len(), 1);
    assert_eq!(am[0].app_mesh_name.as_deref(), Some("prod"));
    assert!(am[0].notes.iter().any(|n| n.contains("the only mesh")));
    // Two listed: the controller's stays unknown (never guessed).
    let found = with_api_meshes(cluster, &names(&["a", "b"]));
    let ctrl = found
        .iter()
        .find(|c| c.mesh_type == MeshType::AppMesh && !c.is_api_only())
        .unwrap();
    assert_eq!(ctrl.app_mesh_name, None);
}

fn caps() -> SharedCaps {
    Arc::new(|spec: &MeshSpec| {
        Some(vec![Capability {
            feature: Feature::TrafficSplit,
            level: Level::Partial,
            reason: format!("{}", spec.mesh_type),
        }])
    })
}

/// A listing callback whose answer the test sets.
fn lister(answer: Arc<Mutex<Result<Vec<String>, String>>>) -> ListAppMeshes {
    Arc::new(move || {
        let a = answer.lock().unwrap().clone();
        Box::pin(async move { a })
    })
}

fn ready(f: &FakeApi, name: &str) -> (String, String) {
    let m = f.get_at(MESHES, name).expect("the Mesh exists");
    let c = m["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    (
        c["status"].as_str().unwrap().to_string(),
        c["reason"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_pass_writes_api_meshes_and_marks_them_not_found_only_when_the_api_says_so() {
    let f = FakeApi::new();
    f.not_served("/apis/appmesh.k8s.aws/");
    let answer = Arc::new(Mutex::new(Ok(names(&["prod"]))));
    let cfg = RunnerConfig {
        appmesh_meshes: Some(lister(answer.clone())),
        ..RunnerConfig::new(NS, Duration::from_secs(30), true)
    };
    let leader = AtomicBool::new(true);

    let r = runner::pass(&f.client("meshbridge"), &cfg, &caps(), &leader).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(f.names(MESHES), ["appmesh-prod"]);
    let m = f.get_at(MESHES, "appmesh-prod").unwrap();
    assert_eq!(m["spec"]["type"], "appmesh");
    assert_eq!(m["spec"]["appMeshName"], "prod");
    assert_eq!(
        ready(&f, "appmesh-prod"),
        ("True".into(), "Discovered".into())
    );

    // The API cannot be asked (credentials expired, say): the Mesh is left as it is.
    *answer.lock().unwrap() = Err("ExpiredToken".into());
    f.take_log();
    let r = runner::pass(&f.client("meshbridge"), &cfg, &caps(), &leader).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let writes: Vec<_> = f
        .take_log()
        .into_iter()
        .filter(|q| q.method != "GET")
        .map(|q| q.line())
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    assert_eq!(
        ready(&f, "appmesh-prod"),
        ("True".into(), "Discovered".into())
    );

    // The API no longer lists it: kept, with Ready=False NotFound.
    *answer.lock().unwrap() = Ok(vec![]);
    runner::pass(&f.client("meshbridge"), &cfg, &caps(), &leader).await;
    assert_eq!(f.names(MESHES), ["appmesh-prod"]);
    assert_eq!(
        ready(&f, "appmesh-prod"),
        ("False".into(), "NotFound".into())
    );
    let m = f.get_at(MESHES, "appmesh-prod").unwrap();
    let msg = m["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("not listed by the App Mesh API"), "{msg}");
}
