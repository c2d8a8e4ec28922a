//! API types: every released SMI version, and meshbridge's own `meshbridge.io/v1alpha1` kinds.
//! One module per group; one submodule per version.

/// One served version of an SMI kind with a `spec`: the spec struct with kube's
/// `CustomResource` derive and the attributes every SMI kind shares (namespaced, category
/// `smi`, status [`SmiStatus`]). Attributes before `struct` (docs, extra derives) are kept;
/// `printcolumn`s follow the short name.
macro_rules! smi_resource {
    (
        $group:literal, $version:literal, $kind:literal, $shortname:literal
        $(, printcolumn = $column:literal)*;
        $(#[$attr:meta])*
        pub struct $spec:ident { $($fields:tt)* }
    ) => {
        #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
        #[kube(
            group = $group,
            version = $version,
            kind = $kind,
            namespaced,
            shortname = $shortname,
            category = "smi",
            status = "SmiStatus"
            $(, printcolumn = $column)*
        )]
        $(#[$attr])*
        pub struct $spec { $($fields)* }
    };
}

/// A kind whose fields sit at the top level (no `spec`, as in the oldest SMI versions):
/// `apiVersion`, `kind` and `metadata`, then the given fields.
macro_rules! toplevel_object {
    (
        $(#[$attr:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        $(#[$attr])*
        #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub api_version: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub kind: Option<String>,
            #[serde(default)]
            pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            $($fields)*
        }
    };
}

pub mod access;
pub mod common;
pub mod gateway;
pub mod meshbridge;
pub mod metrics;
pub mod specs;
pub mod split;

pub use common::{Condition, Headers, IntOrString, Quantity, SmiStatus};
