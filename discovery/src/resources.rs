//! Every API resource discovery and the Install reconciler address, with its plural as the
//! API server names it: one table, so no request goes to a path made up from a kind's name
//! (a kind missing here is an error, never a guess). [`crate::rbac`] grants exactly these
//! resources; `discovery/tests/resources.rs` checks each row against the APIs that serve it
//! (the Kubernetes v1.28 built-ins, the project's `crds/`, Istio's and App Mesh's CRDs).

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// One served resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for the core group).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The resource name in paths and RBAC rules.
    pub plural: &'static str,
    pub namespaced: bool,
}

const fn row(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        version,
        kind,
        plural,
        namespaced,
    }
}

pub const DEPLOYMENT: Resource = row("apps", "v1", "Deployment", "deployments", true);
pub const NAMESPACE: Resource = row("", "v1", "Namespace", "namespaces", false);
pub const POD: Resource = row("", "v1", "Pod", "pods", true);
pub const CONFIG_MAP: Resource = row("", "v1", "ConfigMap", "configmaps", true);
pub const SERVICE: Resource = row("", "v1", "Service", "services", true);
pub const SERVICE_ACCOUNT: Resource = row("", "v1", "ServiceAccount", "serviceaccounts", true);
pub const POD_DISRUPTION_BUDGET: Resource = row(
    "policy",
    "v1",
    "PodDisruptionBudget",
    "poddisruptionbudgets",
    true,
);
pub const JOB: Resource = row("batch", "v1", "Job", "jobs", true);
pub const PEER_AUTHENTICATION: Resource = row(
    "security.istio.io",
    "v1beta1",
    "PeerAuthentication",
    "peerauthentications",
    true,
);
/// App Mesh controller's `Mesh` (cluster-scoped).
pub const APP_MESH_MESH: Resource = row("appmesh.k8s.aws", "v1beta2", "Mesh", "meshes", false);
/// meshbridge's own `Mesh` (read and written through its typed API).
pub const MESH: Resource = row("meshbridge.io", "v1alpha1", "Mesh", "meshes", true);
/// meshbridge's own `Install` (read and written through its typed API).
pub const INSTALL: Resource = row("meshbridge.io", "v1alpha1", "Install", "installs", true);

/// The whole table.
pub const ALL: [Resource; 12] = [
    DEPLOYMENT,
    NAMESPACE,
    POD,
    CONFIG_MAP,
    SERVICE,
    SERVICE_ACCOUNT,
    POD_DISRUPTION_BUDGET,
    JOB,
    PEER_AUTHENTICATION,
    APP_MESH_MESH,
    MESH,
    INSTALL,
];

impl Resource {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kube-rs resource (for `Api::*_with`).
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }

    /// The row of `api_version` (`group/version` or `v1`) and `kind`; `None` for anything
    /// not in [`ALL`].
    pub fn of(api_version: &str, kind: &str) -> Option<&'static Resource> {
        ALL.iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
    }

    /// [`Resource::of`] an object's `apiVersion` and `kind`.
    pub fn of_object(v: &Value) -> Option<&'static Resource> {
        Resource::of(v.get("apiVersion")?.as_str()?, v.get("kind")?.as_str()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_kind_and_per_path() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert!((a.group, a.kind) != (b.group, b.kind), "{a:?} twice");
                assert!((a.group, a.plural) != (b.group, b.plural), "{a:?} / {b:?}");
            }
        }
        assert_eq!(Resource::of("apps/v1", "Deployment"), Some(&DEPLOYMENT));
        assert_eq!(Resource::of("v1", "Service"), Some(&SERVICE));
        // Not in the table: no resource, whatever the kind looks like.
        assert_eq!(Resource::of("apps/v1", "StatefulSet"), None);
        assert_eq!(Resource::of("policy/v1beta1", "PodDisruptionBudget"), None);
    }

    #[test]
    fn every_builtin_mesh_object_is_in_the_table() {
        let envoy = crate::install::spec_of(meshbridge_core::api::meshbridge::MeshType::Envoy);
        let i = crate::install::new_install("builtin", "meshbridge-system", envoy);
        let objs = crate::install::builtin_objects(&i);
        assert_eq!(objs.len(), crate::install::BUILTIN_KINDS.len());
        for o in objs {
            assert!(Resource::of_object(&o).is_some(), "{}", o["kind"]);
        }
    }
}
