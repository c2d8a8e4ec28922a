//! A mesh is Ready only when its control plane serves: discovery reads the availability of
//! the control-plane Deployment (istiod, Linkerd's destination/identity, the App Mesh
//! controller, the built-in mesh) from its status. `tests/fixtures/unavailable` records
//! three that serve nothing (pods exiting at start, a generation not observed, a rollout
//! that gave up) → `expected.yaml` (`UPDATE_GOLDEN=1` rewrites it).

mod common;

use common::{assert_golden, cluster, condition, discovered, fixture_file, no_caps, yaml_of};
use meshbridge_core::api::meshbridge::Mesh;
use meshbridge_discovery::detect::deployment_availability;
use meshbridge_discovery::{Config, discover};
use serde_json::json;

fn run() -> Vec<Mesh> {
    discover(&cluster("unavailable"), &Config::default(), &no_caps)
}

fn ready(m: &Mesh) -> (String, String, String) {
    let c = condition(m, "Ready");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn unavailable_control_planes_are_never_ready() {
    let meshes = run();
    assert_golden(
        &fixture_file("unavailable", "expected.yaml"),
        &yaml_of(&meshes),
    );

    let names: Vec<&str> = meshes
        .iter()
        .filter_map(|m| m.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["istio", "linkerd", "meshbridge"]);
    for m in &meshes {
        let (st, reason, _) = ready(m);
        assert_eq!(
            (st.as_str(), reason.as_str()),
            ("False", "ControlPlaneUnavailable"),
            "{:?}",
            m.metadata.name
        );
    }
    let (_, _, builtin) = ready(&meshes[2]);
    assert!(
        builtin.contains("Deployment meshbridge-system/meshbridge-mesh: 0/2 replicas available")
            && builtin.contains("MinimumReplicasUnavailable"),
        "{builtin}"
    );
    // The mTLS mode is still what the mesh is configured with; Ready says it serves nothing.
    assert_eq!(discovered(&meshes[2]).mtls_mode.as_deref(), Some("STRICT"));
    let (_, _, istio) = ready(&meshes[0]);
    assert!(istio.contains("generation 4 not observed yet"), "{istio}");
    let (_, _, linkerd) = ready(&meshes[1]);
    assert!(
        linkerd.contains("linkerd/linkerd-identity")
            && !linkerd.contains("linkerd/linkerd-destination:"),
        "{linkerd}"
    );
    assert!(linkerd.contains("ProgressDeadlineExceeded"), "{linkerd}");
}

#[test]
fn deployment_availability_rules() {
    let d = |status: serde_json::Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "istiod", "namespace": "istio-system", "generation": 2},
               "spec": {"replicas": 2}, "status": status})
    };
    let ok = deployment_availability(&d(json!({"observedGeneration": 2, "availableReplicas": 1,
        "readyReplicas": 1, "updatedReplicas": 2,
        "conditions": [{"type": "Available", "status": "True"}]})));
    assert!(ok.available && !ok.failed, "{ok:?}");
    assert_eq!(
        ok.message,
        "Deployment istio-system/istiod: 1/2 replicas available (1 ready, 2 updated)"
    );
    // No status at all (never seen by the Deployment controller), an empty one, none
    // available, Available=False, an unobserved generation, scaled to 0: not available.
    let mut no_status = d(json!(null));
    no_status.as_object_mut().unwrap().remove("status");
    for (v, why) in [
        (no_status, "no status"),
        (d(json!({})), "generation 2 not observed yet"),
        (
            d(json!({"observedGeneration": 2, "replicas": 2, "unavailableReplicas": 2})),
            "no available replica",
        ),
        (
            d(json!({"observedGeneration": 2, "availableReplicas": 1,
                     "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "m"}]})),
            "Available=False (MinimumReplicasUnavailable)",
        ),
        (
            d(json!({"observedGeneration": 1, "availableReplicas": 2})),
            "generation 2 not observed yet",
        ),
    ] {
        let a = deployment_availability(&v);
        assert!(!a.available, "{v}");
        assert!(a.message.contains(why), "{why}: {}", a.message);
    }
    let mut zero = d(json!({"observedGeneration": 2}));
    zero["spec"]["replicas"] = json!(0);
    assert!(
        deployment_availability(&zero)
            .message
            .contains("scaled to 0")
    );
    let gave_up = deployment_availability(&d(json!({"observedGeneration": 2,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}]})));
    assert!(!gave_up.available && gave_up.failed, "{gave_up:?}");
}
