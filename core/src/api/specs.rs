//! `specs.smi-spec.io` HTTPRouteGroup (v1alpha1–v1alpha4), TCPRoute (v1alpha1–v1alpha4)
//! and UDPRoute (v1alpha4).

use super::common::{Headers, IntOrString, SmiStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "specs.smi-spec.io";

/// One named HTTP match. Within a match, path AND method AND every header must hold.
///
/// `headers` is accepted in every version: v1alpha1 did not define it, but silently
/// dropping a header condition would widen the match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    pub name: String,
    /// RE2 regex anchored at the start of the path only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// HTTP methods; `*` = any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// TCPRoute/UDPRoute v1alpha4 `spec.matches` (an object, not a list).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PortMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Destination ports; empty or absent = every port of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<IntOrString>>,
}

macro_rules! toplevel_route_group {
    ($ver:ident) => {
        pub mod $ver {
            use super::*;

            /// HTTPRouteGroup with `matches` at the top level (no `spec`).
            #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
            #[serde(rename_all = "camelCase")]
            pub struct HTTPRouteGroup {
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub api_version: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub kind: Option<String>,
                #[serde(default)]
                pub metadata: ObjectMeta,
                #[serde(default)]
                pub matches: Vec<HttpMatch>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub status: Option<SmiStatus>,
            }

            /// TCPRoute without fields.
            #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
            #[serde(rename_all = "camelCase")]
            pub struct TCPRoute {
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub api_version: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub kind: Option<String>,
                #[serde(default)]
                pub metadata: ObjectMeta,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub status: Option<SmiStatus>,
            }
        }
    };
}

toplevel_route_group!(v1alpha1);
toplevel_route_group!(v1alpha2);

pub mod v1alpha3 {
    use super::*;
    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    #[kube(
        group = "specs.smi-spec.io",
        version = "v1alpha3",
        kind = "HTTPRouteGroup",
        namespaced,
        shortname = "htr",
        category = "smi",
        status = "SmiStatus"
    )]
    pub struct HTTPRouteGroupSpec {
        #[serde(default)]
        pub matches: Vec<HttpMatch>,
    }

    /// TCPRoute with an empty spec.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "specs.smi-spec.io",
        version = "v1alpha3",
        kind = "TCPRoute",
        namespaced,
        shortname = "tr",
        category = "smi",
        status = "SmiStatus"
    )]
    pub struct TCPRouteSpec {}
}

pub mod v1alpha4 {
    use super::*;
    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    #[kube(
        group = "specs.smi-spec.io",
        version = "v1alpha4",
        kind = "HTTPRouteGroup",
        namespaced,
        shortname = "htr",
        category = "smi",
        status = "SmiStatus"
    )]
    pub struct HTTPRouteGroupSpec {
        #[serde(default)]
        pub matches: Vec<HttpMatch>,
    }

    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "specs.smi-spec.io",
        version = "v1alpha4",
        kind = "TCPRoute",
        namespaced,
        shortname = "tr",
        category = "smi",
        status = "SmiStatus"
    )]
    pub struct TCPRouteSpec {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub matches: Option<PortMatch>,
    }

    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "specs.smi-spec.io",
        version = "v1alpha4",
        kind = "UDPRoute",
        namespaced,
        shortname = "ur",
        category = "smi",
        status = "SmiStatus"
    )]
    pub struct UDPRouteSpec {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub matches: Option<PortMatch>,
    }
}
