//! The Kubernetes permissions discovery and the Install reconciler use — what the
//! controller's `meshbridge-discovery` ClusterRole ([`required_cluster`]) and Role in the
//! controller namespace ([`required_in_namespace`]) grant (deploy/), no more.
//!
//! `tests/run_deploy.rs` compares the chart's ClusterRole and Role with them, and
//! `tests/rbac_can_i.rs` evaluates the rendered RBAC against requests that must be allowed
//! and denied;
//! `discovery/tests/rbac_kube.rs` runs discovery and every Install flow against a mocked
//! API server and checks that each recorded request is covered by [`required`] and that
//! every entry of [`required`] was used.

use crate::install;
use crate::resources::{self as res, Resource};
use meshbridge_core::api::meshbridge::MeshType;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// (API group, resource incl. subresource, verb) → the object names it is limited to
/// (`None`: any name).
pub type Grants = BTreeMap<(String, String, String), Option<BTreeSet<String>>>;

/// The ClusterRole the Helm chart binds the installer ServiceAccount to (default of
/// `installer.clusterRole`, only with `installer.enabled=true`). The controller itself never
/// binds it and holds no `bind` at all.
pub const INSTALLER_CLUSTER_ROLE: &str = "cluster-admin";

const READ: &[&str] = &["list"];
/// Server-side apply (a create when the object is missing is authorised as `create`),
/// `get` + `delete` of the objects labelled for the Install.
const APPLIED: &[&str] = &["get", "create", "patch", "delete"];

/// Cluster-wide rules (the `meshbridge-discovery` ClusterRole): (resource, subresource,
/// verbs). Reads only, plus the status of Installs (an Install outside the controller
/// namespace gets `Accepted=False WrongNamespace`).
const CLUSTER_RULES: &[(Resource, &str, &[&str])] = &[
    // discovery reads (`kube::read_cluster`): control planes may run in any namespace
    (res::DEPLOYMENT, "", READ),
    (res::NAMESPACE, "", READ),
    (res::POD, "", READ),
    (res::PEER_AUTHENTICATION, "", READ),
    (res::APP_MESH_MESH, "", READ),
    // Installs: listed and watched by the runner in every namespace; status
    (res::INSTALL, "", &["list", "watch"]),
    (res::INSTALL, "status", &["patch"]),
];

/// Rules in the controller namespace only (the `meshbridge-discovery` Role).
const NAMESPACED_RULES: &[(Resource, &str, &[&str])] = &[
    // Mesh objects (`kube::write_meshes`), written in the controller namespace
    (res::MESH, "", &["list", "create", "patch"]),
    (res::MESH, "status", &["patch"]),
    // the finalizer of accepted Installs (merge patch); those live here
    (res::INSTALL, "", &["patch"]),
    // installer Jobs: get/create (`ensure_job`), list + watch (runner, cleanup, stopping
    // the install Job), delete
    (res::JOB, "", &["get", "list", "watch", "create", "delete"]),
];

/// What the chart makes configurable about these rules.
#[derive(Clone, Debug)]
pub struct Options {
    /// Istio revisions whose ConfigMap `istio-<rev>` discovery may read (Helm
    /// `discovery.istioRevisions`); other revisions fall back to the `istio` ConfigMap.
    pub istio_revisions: Vec<String>,
    /// The installer ServiceAccount (Helm `installer.serviceAccountName`).
    pub installer_service_account: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            istio_revisions: vec![],
            installer_service_account: install::DEFAULT_INSTALLER_SERVICE_ACCOUNT.into(),
        }
    }
}

fn add_rules(g: &mut Grants, rules: &[(Resource, &str, &[&str])]) {
    for (r, sub, verbs) in rules {
        let resource = if sub.is_empty() {
            r.plural.to_string()
        } else {
            format!("{}/{sub}", r.plural)
        };
        for v in *verbs {
            add(g, r.group, &resource, v, None);
        }
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

/// Everything discovery and the Install reconciler need, with the chart's defaults: the
/// union of [`required_cluster`] and [`required_in_namespace`].
pub fn required() -> Grants {
    required_for(&Options::default())
}

/// [`required`] for other chart values.
pub fn required_for(o: &Options) -> Grants {
    let mut g = required_cluster(o);
    for ((group, res, verb), names) in required_in_namespace(o) {
        match names {
            None => add(&mut g, &group, &res, &verb, None),
            Some(ns) => {
                for n in ns {
                    add(&mut g, &group, &res, &verb, Some(&n));
                }
            }
        }
    }
    g
}

/// The cluster-wide part (ClusterRole `meshbridge-discovery`): [`CLUSTER_RULES`] and `get`
/// on the mesh-config ConfigMaps by name (`istio`, `linkerd-config`, `istio-<rev>` for the
/// listed revisions) — never a list of ConfigMaps.
pub fn required_cluster(o: &Options) -> Grants {
    let mut g = Grants::new();
    add_rules(&mut g, CLUSTER_RULES);
    for n in ["istio", "linkerd-config"]
        .into_iter()
        .map(str::to_string)
        .chain(o.istio_revisions.iter().map(|r| format!("istio-{r}")))
    {
        add(
            &mut g,
            res::CONFIG_MAP.group,
            res::CONFIG_MAP.plural,
            "get",
            Some(&n),
        );
    }
    g
}

/// The part in the controller namespace (Role `meshbridge-discovery`): [`NAMESPACED_RULES`],
/// `get` of the two opt-in ServiceAccounts (the installer's and the built-in mesh's, to
/// report `InstallerNotEnabled` / `BuiltinMeshNotEnabled` when absent), and the built-in
/// mesh's objects (`install::builtin_objects`) by name. No ServiceAccount, Role or binding
/// is ever written: no `bind`, no `escalate`.
pub fn required_in_namespace(o: &Options) -> Grants {
    let mut g = Grants::new();
    add_rules(&mut g, NAMESPACED_RULES);
    for sa in [o.installer_service_account.as_str(), install::BUILTIN_NAME] {
        add(
            &mut g,
            res::SERVICE_ACCOUNT.group,
            res::SERVICE_ACCOUNT.plural,
            "get",
            Some(sa),
        );
    }
    let sample = install::new_install(
        "builtin",
        "meshbridge-system",
        install::spec_of(MeshType::Envoy),
    );
    // Objects of kinds not in the table are never applied (`kube::apply_builtin` fails on
    // them), so they need no grant.
    for obj in install::builtin_objects(&sample) {
        let (Some(r), Some(name)) = (
            Resource::of_object(&obj),
            obj.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        for v in APPLIED {
            add(&mut g, r.group, r.plural, v, Some(name));
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
