//! The Kubernetes permissions discovery and the Install reconciler use — what the
//! controller's `meshbridge-discovery` ClusterRole (deploy/) grants, no more.
//!
//! `tests/run_deploy.rs` compares the chart's ClusterRole with [`required`], and
//! `discovery/tests/rbac_kube.rs` runs discovery and every Install flow against a mocked
//! API server and checks that each recorded request is covered by [`required`] and that
//! every entry of [`required`] was used.

use crate::install;
use meshbridge_core::api::meshbridge::{InstallSpec, MeshType};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// (API group, resource incl. subresource, verb) → the object names it is limited to
/// (`None`: any name).
pub type Grants = BTreeMap<(String, String, String), Option<BTreeSet<String>>>;

/// The ClusterRole the installer Jobs' ServiceAccounts are bound to.
pub const INSTALLER_CLUSTER_ROLE: &str = "cluster-admin";

const READ: &[&str] = &["list"];
/// Server-side apply (a create when the object is missing is authorised as `create`),
/// `get` + `delete` of the objects labelled for the Install.
const APPLIED: &[&str] = &["get", "create", "patch", "delete"];

/// Unnamed rules: (group, resource, verbs).
const RULES: &[(&str, &str, &[&str])] = &[
    // discovery reads (`kube::read_cluster`)
    ("apps", "deployments", READ),
    ("", "namespaces", READ),
    ("", "pods", READ),
    ("", "configmaps", READ),
    ("security.istio.io", "peerauthentications", READ),
    ("appmesh.k8s.aws", "meshes", READ),
    // Mesh objects (`kube::write_meshes`)
    ("meshbridge.io", "meshes", &["list", "create", "patch"]),
    ("meshbridge.io", "meshes/status", &["patch"]),
    // Installs: watched by the runner, finalizer (merge patch), status
    ("meshbridge.io", "installs", &["list", "watch", "patch"]),
    ("meshbridge.io", "installs/status", &["patch"]),
    // installer Jobs: get/create (`ensure_job`), list + watch (runner, cleanup), delete
    (
        "batch",
        "jobs",
        &["get", "list", "watch", "create", "delete"],
    ),
    // installer ServiceAccount and ClusterRoleBinding (`install::rbac`): names follow the
    // Install's name, so they cannot be limited by name
    ("", "serviceaccounts", APPLIED),
    ("rbac.authorization.k8s.io", "clusterrolebindings", APPLIED),
];

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Plural of a kind, as the API server names its resource.
pub fn plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if let Some(s) = k.strip_suffix('y') {
        format!("{s}ies")
    } else if k.ends_with('s') || k.ends_with("sh") || k.ends_with("ch") || k.ends_with('x') {
        format!("{k}es")
    } else {
        format!("{k}s")
    }
}

fn add(g: &mut Grants, group: &str, resource: &str, verb: &str, name: Option<&str>) {
    let e = g
        .entry((group.into(), resource.into(), verb.into()))
        .or_insert_with(|| Some(BTreeSet::new()));
    match (e, name) {
        (e @ Some(_), None) => *e = None,
        (Some(names), Some(n)) => {
            names.insert(n.into());
        }
        (None, _) => {}
    }
}

/// Everything discovery and the Install reconciler need.
///
/// Besides [`RULES`]: `bind` on the installer's ClusterRole (`cluster-admin`: the
/// ClusterRoleBinding of the installer Jobs); for the built-in mesh (`envoy` Install), the
/// objects of `install::builtin_objects` by name, and `bind` + `escalate` on its leader
/// election Role (a Role in another namespace than the controller's holds permissions the
/// controller has only in its own namespace). Its ClusterRole is a copy of the controller's
/// own, so creating and binding it needs nothing more.
pub fn required() -> Grants {
    let mut g = Grants::new();
    for (group, res, verbs) in RULES {
        for v in *verbs {
            add(&mut g, group, res, v, None);
        }
    }
    add(
        &mut g,
        "rbac.authorization.k8s.io",
        "clusterroles",
        "bind",
        Some(INSTALLER_CLUSTER_ROLE),
    );
    let sample = install::new_install(
        "builtin",
        "meshbridge-system",
        InstallSpec {
            mesh_type: MeshType::Envoy,
            version: None,
            install_namespace: None,
            revision: None,
            disabled: false,
        },
    );
    for o in install::builtin_objects(&sample) {
        let (Some(av), Some(kind), Some(name)) = (
            o.get("apiVersion").and_then(Value::as_str),
            o.get("kind").and_then(Value::as_str),
            o.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let (group, res) = (group_of(av), plural(kind));
        for v in APPLIED {
            add(&mut g, group, &res, v, Some(name));
        }
        if kind == "Role" {
            add(&mut g, group, &res, "escalate", Some(name));
            add(&mut g, group, &res, "bind", Some(name));
        }
    }
    g
}

/// The grants of a Role or ClusterRole object (its `rules`), in the form of [`required`].
/// Rules with `nonResourceURLs` or wildcards are kept verbatim (`*` as a verb or resource),
/// so a comparison with [`required`] fails on them.
pub fn grants_of_role(role: &Value) -> Grants {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut g = Grants::new();
    for r in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let names = strs(&r["resourceNames"]);
        for group in strs(&r["apiGroups"]) {
            for res in strs(&r["resources"]) {
                for v in strs(&r["verbs"]) {
                    if names.is_empty() {
                        add(&mut g, &group, &res, &v, None);
                    } else {
                        for n in &names {
                            add(&mut g, &group, &res, &v, Some(n));
                        }
                    }
                }
            }
        }
    }
    g
}
