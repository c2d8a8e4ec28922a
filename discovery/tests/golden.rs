//! Discovery from recorded cluster states: `tests/fixtures/<case>/cluster.yaml` →
//! `expected.yaml` (the Mesh objects). `UPDATE_GOLDEN=1 cargo test -p meshbridge-discovery
//! --test golden` rewrites the expected files; review the diff.
//!
//! The capability callback here is a stand-in that echoes the settings it was called with,
//! so the goldens show which version each matrix was computed for without depending on the
//! adapters' wording (the real matrices are checked in `tests/adapters.rs`).

use meshbridge_core::api::meshbridge::{Mesh, MeshSpec};
use meshbridge_core::capability::{Capability, Feature, Level};
use meshbridge_discovery::{Config, discover, read_objects};
use std::path::PathBuf;

pub fn echo_caps(spec: &MeshSpec) -> Option<Vec<Capability>> {
    Some(vec![Capability {
        feature: Feature::TrafficSplit,
        level: Level::Full,
        reason: format!(
            "{} at {}{}",
            spec.mesh_type,
            spec.version
                .as_deref()
                .unwrap_or("the adapter's default version"),
            spec.linkerd_split_mode
                .map(|m| format!(", split mode {m:?}"))
                .unwrap_or_default()
        ),
    }])
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn run(case: &str) -> Vec<Mesh> {
    let (objs, _problems) = read_objects(&[fixtures().join(case).join("cluster.yaml")]);
    discover(&objs, &Config::default(), &echo_caps)
}

fn golden(case: &str) {
    let meshes = run(case);
    let values: Vec<serde_json::Value> = meshes
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    let have = if values.is_empty() {
        "# no mesh discovered\n".to_string()
    } else {
        meshbridge_core::yaml::to_yaml_stream(&values)
    };
    let path = fixtures().join(case).join("expected.yaml");
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &have).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        have,
        want,
        "{case}: discovery output differs from {}",
        path.display()
    );
}

#[test]
fn istio_1_12() {
    golden("istio-1.12");
    let m = run("istio-1.12");
    assert_eq!(m.len(), 1);
    let d = m[0].status.as_ref().unwrap().discovered.as_ref().unwrap();
    assert_eq!(m[0].spec.version.as_deref(), Some("1.12.9"));
    // The mesh-wide STRICT policy, not the workload-level DISABLE.
    assert_eq!(d.mtls_mode.as_deref(), Some("STRICT"));
    assert_eq!(d.namespaces, vec!["shop"]);
}

#[test]
fn istio_1_22() {
    golden("istio-1.22");
    let m = run("istio-1.22");
    let d = m[0].status.as_ref().unwrap().discovered.as_ref().unwrap();
    assert_eq!(m[0].spec.version.as_deref(), Some("1.22.3"));
    assert_eq!(d.trust_domain.as_deref(), Some("prod.example.com"));
    // A namespace-level STRICT policy does not make the mesh STRICT.
    assert_eq!(d.mtls_mode.as_deref(), Some("PERMISSIVE"));
    assert_eq!(d.namespaces, vec!["catalog", "payments"]);
}

#[test]
fn istio_revisions() {
    golden("istio-revisions");
    let m = run("istio-revisions");
    let names: Vec<_> = m.iter().map(|m| m.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, vec!["istio-1-20", "istio-1-21"]);
    assert_eq!(m[0].spec.version.as_deref(), Some("1.20.1"));
    assert_eq!(m[0].spec.revision.as_deref(), Some("1-20"));
    assert_eq!(m[1].spec.version.as_deref(), Some("1.21.0"));
    let d1 = m[1].status.as_ref().unwrap().discovered.as_ref().unwrap();
    // `mixed` has istio-injection=enabled, which wins and names the (absent) default.
    assert_eq!(d1.namespaces, vec!["billing", "jobs"]);
}

#[test]
fn linkerd_stable_2_14() {
    golden("linkerd-stable-2.14");
    let m = run("linkerd-stable-2.14");
    assert_eq!(m.len(), 1, "viz is an extension, not a control plane");
    assert_eq!(m[0].spec.version.as_deref(), Some("stable-2.14.10"));
}

#[test]
fn linkerd_edge() {
    golden("linkerd-edge");
    let m = run("linkerd-edge");
    assert_eq!(m[0].spec.version.as_deref(), Some("edge-24.8.2"));
    assert_eq!(m[0].spec.control_plane_namespace.as_deref(), Some("l5d"));
    assert_eq!(m[0].spec.trust_domain.as_deref(), Some("mesh.example.net"));
    let d = m[0].status.as_ref().unwrap().discovered.as_ref().unwrap();
    assert_eq!(d.mtls_mode.as_deref(), Some("STRICT"));
}

#[test]
fn appmesh() {
    golden("appmesh");
    let m = run("appmesh");
    assert_eq!(m[0].spec.version.as_deref(), Some("1.12.3"));
    assert_eq!(m[0].spec.app_mesh_name.as_deref(), Some("yelb-prod"));
}

#[test]
fn nothing_installed() {
    golden("nothing");
    assert!(run("nothing").is_empty());
}

#[test]
fn odd_tags() {
    golden("odd-tags");
    let m = run("odd-tags");
    let by_name = |n: &str| {
        m.iter()
            .find(|x| x.metadata.name.as_deref() == Some(n))
            .unwrap()
    };
    assert_eq!(by_name("istio").spec.version.as_deref(), Some("1.1"));
    let canary = by_name("istio-canary");
    assert_eq!(canary.spec.version, None);
    let vr = canary
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "VersionResolved")
        .unwrap();
    assert_eq!(
        (vr.status.as_str(), vr.reason.as_str()),
        ("False", "VersionUnknown")
    );
    assert_eq!(by_name("linkerd").spec.version, None);
    assert_eq!(by_name("appmesh").spec.version, None);
}
