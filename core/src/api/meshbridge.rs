//! `meshbridge.io/v1alpha1` kinds: `Mesh` (a control plane meshbridge programs, discovered or
//! declared) and `Install` (a declarative install of a mesh).

use super::common::Condition;
use crate::capability::Capability;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "meshbridge.io";

/// The backends meshbridge can program.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum MeshType {
    #[serde(rename = "istio")]
    Istio,
    #[serde(rename = "linkerd")]
    Linkerd,
    #[serde(rename = "appmesh")]
    AppMesh,
    /// meshbridge's built-in Envoy xDS control plane.
    #[serde(rename = "envoy")]
    Envoy,
    /// Gateway API (GAMMA) routes, for any GAMMA-conformant mesh.
    #[serde(rename = "gateway-api")]
    GatewayApi,
}

impl MeshType {
    pub const ALL: [MeshType; 5] = [
        MeshType::Istio,
        MeshType::Linkerd,
        MeshType::AppMesh,
        MeshType::Envoy,
        MeshType::GatewayApi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MeshType::Istio => "istio",
            MeshType::Linkerd => "linkerd",
            MeshType::AppMesh => "appmesh",
            MeshType::Envoy => "envoy",
            MeshType::GatewayApi => "gateway-api",
        }
    }

    pub fn parse(s: &str) -> Option<MeshType> {
        MeshType::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl std::fmt::Display for MeshType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the Linkerd adapter expresses TrafficSplits without matches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum LinkerdSplitMode {
    /// `linkerd.io/v1alpha2` ServiceProfile `dstOverrides` (what linkerd-smi does).
    #[default]
    ServiceProfile,
    /// `policy.linkerd.io/v1beta3` HTTPRoute (preferred from Linkerd 2.16).
    HTTPRoute,
}

/// Settings of one Mesh. Fields set by a user survive rediscovery.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "meshbridge.io",
    version = "v1alpha1",
    kind = "Mesh",
    namespaced,
    status = "MeshStatus",
    shortname = "mesh",
    category = "meshbridge",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.discovered.version"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MeshSpec {
    #[serde(rename = "type")]
    pub mesh_type: MeshType,
    /// Control-plane version (discovered when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Istio revision (`istio.io/rev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// SPIFFE trust domain; default `cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// Namespace the control plane runs in (Linkerd identities embed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_namespace: Option<String>,
    /// Linkerd: how splits without matches are expressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkerd_split_mode: Option<LinkerdSplitMode>,
    /// Gateway API: TCPRoute version to emit (`v1` or `v1alpha2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_route_version: Option<String>,
    /// App Mesh: the mesh name in AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_mesh_name: Option<String>,
}

impl MeshSpec {
    /// A Mesh of `mesh_type` with every setting left to discovery or its default.
    pub fn of(mesh_type: MeshType) -> MeshSpec {
        MeshSpec {
            mesh_type,
            version: None,
            revision: None,
            trust_domain: None,
            control_plane_namespace: None,
            linkerd_split_mode: None,
            tcp_route_version: None,
            app_mesh_name: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered: Option<DiscoveredMesh>,
    /// What this mesh (at this version) can express, per SMI feature.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredMesh {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// `STRICT`, `PERMISSIVE`, `DISABLE` or `UNSET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// Declarative install, upgrade and uninstall of a mesh.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "meshbridge.io",
    version = "v1alpha1",
    kind = "Install",
    namespaced,
    status = "InstallStatus",
    shortname = "mbinstall",
    category = "meshbridge",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct InstallSpec {
    #[serde(rename = "type")]
    pub mesh_type: MeshType,
    /// Version to install (pinned installer image); default: the version meshbridge was tested with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Namespace the mesh is installed into (default: the mesh's usual one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_namespace: Option<String>,
    /// Istio revision to install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `true` uninstalls the mesh but keeps this object.
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `Pending`, `Installing`, `Installed`, `Uninstalling`, `Uninstalled`, `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// The installer Job currently or last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}
