//! The resource table (`meshbridge_discovery::resources`) is what API servers serve: each
//! row's plural, scope and version against the Kubernetes v1.28 built-ins (the fake API
//! server's catalog), the project's CRDs (`crds/`, and kube-derive's names for the typed
//! `Mesh` and `Install`), and Istio's and App Mesh's CRDs (`<shared>/schemas`). With
//! `rbac_kube.rs` (every request of every flow, against a fake serving only those APIs, is
//! granted by `rbac::required`, which names resources only through the table), no request
//! goes to a path made up from a kind's name.

mod common;

use meshbridge_core::api::meshbridge::{Install, Mesh};
use meshbridge_discovery::resources::{self as res, Resource};
use meshbridge_test_support::resources::{BUILTIN, is_builtin_group};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A CRD's names: (group, kind) → (plural, namespaced, served versions).
type Crds = BTreeMap<(String, String), (String, bool, Vec<String>)>;

fn crds_in(dir: &Path, out: &mut Crds) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for crd in common::objects_of(&text) {
            if crd["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let spec = &crd["spec"];
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let served = spec["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["served"] == true)
                .map(|v| s(&v["name"]))
                .collect();
            out.insert(
                (s(&spec["group"]), s(&spec["names"]["kind"])),
                (
                    s(&spec["names"]["plural"]),
                    spec["scope"] == "Namespaced",
                    served,
                ),
            );
        }
    }
}

fn served_crds() -> Crds {
    let mut crds = Crds::new();
    crds_in(&common::discovery_dir().join("../crds"), &mut crds);
    let schemas = meshbridge_conformance::shared_dir().join("schemas");
    crds_in(&schemas.join("istio"), &mut crds);
    crds_in(&schemas.join("appmesh"), &mut crds);
    crds
}

#[test]
fn every_row_is_served_as_written() {
    let crds = served_crds();
    for r in res::ALL {
        if is_builtin_group(r.group) {
            assert!(
                BUILTIN.iter().any(|b| (b.0, b.1, b.2, b.3, b.4)
                    == (r.group, r.version, r.kind, r.plural, r.namespaced)),
                "{r:?} is not a Kubernetes v1.28 built-in resource"
            );
        } else {
            let (plural, namespaced, versions) = crds
                .get(&(r.group.to_string(), r.kind.to_string()))
                .unwrap_or_else(|| panic!("{r:?}: no CRD serves it"));
            assert_eq!(
                (plural.as_str(), *namespaced),
                (r.plural, r.namespaced),
                "{r:?}"
            );
            assert!(
                versions.iter().any(|v| v == r.version),
                "{r:?}: {versions:?}"
            );
        }
    }
}

#[test]
fn the_typed_apis_address_the_same_resources() {
    use kube::Resource as _;
    for (r, plural, api_version) in [
        (res::MESH, Mesh::plural(&()), Mesh::api_version(&())),
        (
            res::INSTALL,
            Install::plural(&()),
            Install::api_version(&()),
        ),
    ] {
        assert_eq!(
            (r.plural, r.api_version()),
            (&*plural, api_version.to_string())
        );
    }
    assert_eq!(
        Resource::of("meshbridge.io/v1alpha1", "Mesh"),
        Some(&res::MESH)
    );
    assert_eq!(
        Resource::of("appmesh.k8s.aws/v1beta2", "Mesh"),
        Some(&res::APP_MESH_MESH)
    );
}
