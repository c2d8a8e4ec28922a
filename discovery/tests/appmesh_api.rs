//! App Mesh discovery through the AWS API (`ListMeshes`): the pure folding of listed meshes
//! into the control planes found in the cluster, and a discovery pass against the mocked
//! API server with a listing callback (found → Mesh written; listing unavailable → Mesh
//! left alone; no longer listed → `Ready=False NotFound`, never deleted).

mod common;

use common::{MESHES, NS, cluster as fixture, condition_of, echo_caps, fake, shared, srm, writes};
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_discovery::runner::{self, ListAppMeshes, RunnerConfig};
use meshbridge_discovery::{ControlPlane, find_control_planes, with_api_meshes};
use meshbridge_test_support::FakeApi;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The App Mesh control planes among `found`.
fn app_meshes(found: &[ControlPlane]) -> Vec<&ControlPlane> {
    found
        .iter()
        .filter(|c| c.mesh_type == MeshType::AppMesh)
        .collect()
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
    let ctrl = app_meshes(&cluster);
    assert_eq!(ctrl.len(), 1, "the fixture has one App Mesh controller");
    let known = ctrl[0].app_mesh_name.clone();

    match known {
        Some(name) => {
            // Listed: confirmed, and not duplicated as an API-only mesh.
            let found = with_api_meshes(cluster.clone(), std::slice::from_ref(&name));
            let am = app_meshes(&found);
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
            let am = app_meshes(&found);
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
    let am = app_meshes(&found);
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

/// A listing callback whose answer the test sets.
fn lister(answer: Arc<Mutex<Result<Vec<String>, String>>>) -> ListAppMeshes {
    Arc::new(move || {
        let a = answer.lock().unwrap().clone();
        Box::pin(async move { a.map_err(runner::ListError::from) })
    })
}

/// (status, reason) of the Mesh's `Ready` condition, and its message.
fn ready(f: &FakeApi, name: &str) -> ((String, String), String) {
    let (status, reason, message) = srm(&condition_of(
        &f.get_at(MESHES, name).expect("the Mesh"),
        "Ready",
    ));
    ((status, reason), message)
}

#[tokio::test]
async fn a_pass_writes_api_meshes_and_marks_them_not_found_only_when_the_api_says_so() {
    let f = fake();
    let answer = Arc::new(Mutex::new(Ok(names(&["prod"]))));
    let cfg = RunnerConfig {
        appmesh_meshes: Some(lister(answer.clone())),
        ..RunnerConfig::new(NS, Duration::from_secs(30), true)
    };
    let leader = AtomicBool::new(true);
    let caps = shared(echo_caps);

    let r = runner::pass(&f.client("meshbridge"), &cfg, &caps, &leader).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(f.names(MESHES), ["appmesh-prod"]);
    let m = f.get_at(MESHES, "appmesh-prod").unwrap();
    assert_eq!(m["spec"]["type"], "appmesh");
    assert_eq!(m["spec"]["appMeshName"], "prod");
    assert_eq!(
        ready(&f, "appmesh-prod").0,
        ("True".into(), "Discovered".into())
    );

    // The API cannot be asked (credentials expired, say): the Mesh is left as it is.
    *answer.lock().unwrap() = Err("ExpiredToken".into());
    f.take_log();
    let r = runner::pass(&f.client("meshbridge"), &cfg, &caps, &leader).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(writes(&f), Vec::<String>::new());
    assert_eq!(
        ready(&f, "appmesh-prod").0,
        ("True".into(), "Discovered".into())
    );

    // The API no longer lists it: kept, with Ready=False NotFound.
    *answer.lock().unwrap() = Ok(vec![]);
    runner::pass(&f.client("meshbridge"), &cfg, &caps, &leader).await;
    assert_eq!(f.names(MESHES), ["appmesh-prod"]);
    let (ready, msg) = ready(&f, "appmesh-prod");
    assert_eq!(ready, ("False".into(), "NotFound".into()));
    assert!(msg.contains("not listed by the App Mesh API"), "{msg}");
}
