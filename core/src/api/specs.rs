//! `specs.smi-spec.io` HTTPRouteGroup (v1alpha1–v1alpha4), TCPRoute (v1alpha1–v1alpha4)
//! and UDPRoute (v1alpha4).

use super::common::{Headers, IntOrString, SmiStatus};
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

            toplevel_object! {
                /// HTTPRouteGroup with `matches` at the top level (no `spec`).
                pub struct HTTPRouteGroup {
                    #[serde(default)]
                    pub matches: Vec<HttpMatch>,
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    pub status: Option<SmiStatus>,
                }
            }

            toplevel_object! {
                /// TCPRoute without fields.
                pub struct TCPRoute {
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    pub status: Option<SmiStatus>,
                }
            }
        }
    };
}

toplevel_route_group!(v1alpha1);
toplevel_route_group!(v1alpha2);

pub mod v1alpha3 {
    use super::*;
    smi_resource! {
        "specs.smi-spec.io", "v1alpha3", "HTTPRouteGroup", "htr";
        pub struct HTTPRouteGroupSpec {
            #[serde(default)]
            pub matches: Vec<HttpMatch>,
        }
    }

    smi_resource! {
        "specs.smi-spec.io", "v1alpha3", "TCPRoute", "tr";
        /// TCPRoute with an empty spec.
        #[derive(Default)]
        pub struct TCPRouteSpec {}
    }
}

pub mod v1alpha4 {
    use super::*;
    smi_resource! {
        "specs.smi-spec.io", "v1alpha4", "HTTPRouteGroup", "htr";
        pub struct HTTPRouteGroupSpec {
            #[serde(default)]
            pub matches: Vec<HttpMatch>,
        }
    }

    smi_resource! {
        "specs.smi-spec.io", "v1alpha4", "TCPRoute", "tr";
        #[derive(Default)]
        pub struct TCPRouteSpec {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub matches: Option<PortMatch>,
        }
    }

    smi_resource! {
        "specs.smi-spec.io", "v1alpha4", "UDPRoute", "ur";
        #[derive(Default)]
        pub struct UDPRouteSpec {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub matches: Option<PortMatch>,
        }
    }
}
