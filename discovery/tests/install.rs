//! Install manifests (pure): Job names follow the spec, validation, the built-in mesh's
//! objects, and discovery recognising what the built-in install deploys.

use meshbridge_core::api::meshbridge::{Install, InstallSpec, MeshType};
use meshbridge_discovery::install::{self, Action, Phase, spec_of as spec};
use meshbridge_discovery::{Config, find_control_planes};
use serde_json::json;

#[test]
fn job_names_change_with_version_and_action() {
    let a = install::new_install("istio", "meshbridge-system", spec(MeshType::Istio));
    let mut b = a.clone();
    b.spec.version = Some("1.23.0".into());
    let n = install::job_name;
    assert_ne!(n(&a, Action::Install), n(&b, Action::Install));
    assert_ne!(n(&a, Action::Install), n(&a, Action::Uninstall));
    assert_eq!(n(&a, Action::Install), n(&a.clone(), Action::Install));
    assert!(n(&a, Action::Install).len() <= 63);
    let long = install::new_install(&"x".repeat(63), "ns", spec(MeshType::Linkerd));
    assert!(n(&long, Action::Uninstall).len() <= 63);
    let j = install::job(&a, Action::Install).unwrap();
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("docker.io/istio/istioctl:1.24.2")
    );
    assert!(
        install::job(
            &install::new_install("m", "ns", spec(MeshType::Envoy)),
            Action::Install
        )
        .is_none()
    );
}

#[test]
fn validation() {
    assert!(install::validate(&spec(MeshType::Istio)).is_ok());
    for (t, v, r, ns, reason) in [
        (MeshType::GatewayApi, None, None, None, "Unsupported"),
        (MeshType::AppMesh, None, None, None, "Unsupported"),
        (
            MeshType::Istio,
            Some("1.2 && curl x"),
            None,
            None,
            "InvalidVersion",
        ),
        (MeshType::Istio, Some(""), None, None, "InvalidVersion"),
        (MeshType::Linkerd, None, Some("r1"), None, "InvalidRevision"),
        (
            MeshType::Istio,
            None,
            Some("Bad_Rev"),
            None,
            "InvalidRevision",
        ),
        (MeshType::Istio, None, None, Some("a/b"), "InvalidNamespace"),
    ] {
        let s = InstallSpec {
            version: v.map(str::to_string),
            install_namespace: ns.map(str::to_string),
            revision: r.map(str::to_string),
            ..spec(t)
        };
        assert_eq!(install::validate(&s).unwrap_err().reason, reason, "{s:?}");
    }
}

#[test]
fn job_phases() {
    let j = |st: serde_json::Value| json!({"metadata": {"name": "j"}, "status": st});
    let phase = |st: serde_json::Value, a: Action| install::job_phase(Some(&j(st)), a).0;
    assert_eq!(install::job_phase(None, Action::Install).0, Phase::Pending);
    let active = json!({"active": 1});
    assert_eq!(phase(active.clone(), Action::Install), Phase::Installing);
    assert_eq!(phase(active, Action::Uninstall), Phase::Uninstalling);
    let done = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    assert_eq!(phase(done.clone(), Action::Install), Phase::Installed);
    assert_eq!(phase(done, Action::Uninstall), Phase::Uninstalled);
    let failed = j(
        json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too slow"}]}),
    );
    let (p, m) = install::job_phase(Some(&failed), Action::Install);
    assert_eq!(p, Phase::Failed);
    assert!(m.contains("DeadlineExceeded") && m.contains("too slow"));
    // A condition that is not True does not count.
    let not_yet = json!({"conditions": [{"type": "Complete", "status": "False"}]});
    assert_eq!(phase(not_yet, Action::Install), Phase::Installing);
}

#[test]
fn one_active_install_per_type() {
    let mut a = install::new_install("a", "x", spec(MeshType::Istio));
    a.metadata.creation_timestamp = Some(k8s_time("2026-01-02T00:00:00Z"));
    let mut b = install::new_install("b", "x", spec(MeshType::Istio));
    b.metadata.creation_timestamp = Some(k8s_time("2026-01-01T00:00:00Z"));
    let c = install::new_install("c", "x", spec(MeshType::Linkerd));
    let active = |all: &[Install]| {
        install::active_of(all, MeshType::Istio).and_then(|i| i.metadata.name.clone())
    };
    assert_eq!(
        active(&[a.clone(), b.clone(), c.clone()]).as_deref(),
        Some("b")
    );
    // A disabled one does not block the others.
    let mut b2 = b.clone();
    b2.spec.disabled = true;
    let all = vec![a, b2, c];
    assert_eq!(active(&all).as_deref(), Some("a"));
    assert!(install::active_of(&all, MeshType::Envoy).is_none());
}

fn k8s_time(s: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    serde_json::from_value(json!(s)).unwrap()
}

#[test]
fn builtin_mesh_objects_and_discovery_round_trip() {
    let mut s = spec(MeshType::Envoy);
    s.version = Some("0.2.0".into());
    let i = install::new_install("builtin", "meshbridge-system", s);
    let objs = install::builtin_objects(&i);
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    // The workload only: its ServiceAccount and RBAC come from the chart (builtinMesh.enabled).
    let mut sorted = kinds.clone();
    sorted.sort();
    let mut want = install::BUILTIN_KINDS.to_vec();
    want.sort();
    assert_eq!(sorted, want, "{kinds:?}");
    assert!(!kinds.contains(&"CustomResourceDefinition") && !kinds.contains(&"Namespace"));
    for o in &objs {
        assert_eq!(
            o["metadata"]["labels"]["meshbridge.io/install"],
            json!("builtin"),
            "{o}"
        );
        let name = o["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with(install::BUILTIN_NAME),
            "{name}: must not clash with the controller's own objects"
        );
    }
    let d = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(args.contains(&json!("--backend=envoy")));
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        json!(install::BUILTIN_NAME)
    );
    // Discovery finds what the built-in install deploys.
    let cps = find_control_planes(&objs);
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].mesh_type, MeshType::Envoy);
    assert_eq!(cps[0].discovered.version.as_deref(), Some("0.2.0"));
    let _ = Config::default();
}
