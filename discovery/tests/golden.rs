//! Discovery from recorded cluster states: `tests/fixtures/<case>/cluster.yaml` →
//! `expected.yaml` (the Mesh objects). `UPDATE_GOLDEN=1 cargo test -p meshbridge-discovery
//! --test golden` rewrites the expected files; review the diff.
//!
//! The capability callback is `common::echo_caps`, a stand-in that echoes the settings it
//! was called with, so the goldens show which version each matrix was computed for.

mod common;

use common::{assert_golden, cluster, condition, discovered, echo_caps, fixture_file, yaml_of};
use meshbridge_core::api::meshbridge::Mesh;
use meshbridge_discovery::{Config, discover};

fn run(case: &str) -> Vec<Mesh> {
    discover(&cluster(case), &Config::default(), &echo_caps)
}

fn golden(case: &str) {
    let meshes = run(case);
    let have = if meshes.is_empty() {
        "# no mesh discovered\n".to_string()
    } else {
        yaml_of(&meshes)
    };
    assert_golden(&fixture_file(case, "expected.yaml"), &have);
}

#[test]
fn istio_1_12() {
    golden("istio-1.12");
    let m = run("istio-1.12");
    assert_eq!(m.len(), 1);
    let d = discovered(&m[0]);
    assert_eq!(m[0].spec.version.as_deref(), Some("1.12.9"));
    // The mesh-wide STRICT policy, not the workload-level DISABLE.
    assert_eq!(d.mtls_mode.as_deref(), Some("STRICT"));
    assert_eq!(d.namespaces, vec!["shop"]);
}

#[test]
fn istio_1_22() {
    golden("istio-1.22");
    let m = run("istio-1.22");
    let d = discovered(&m[0]);
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
    let d1 = discovered(&m[1]);
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
    let d = discovered(&m[0]);
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
    let vr = condition(canary, "VersionResolved");
    assert_eq!(
        (vr.status.as_str(), vr.reason.as_str()),
        ("False", "VersionUnknown")
    );
    assert_eq!(by_name("linkerd").spec.version, None);
    assert_eq!(by_name("appmesh").spec.version, None);
}
