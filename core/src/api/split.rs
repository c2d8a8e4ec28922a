//! `split.smi-spec.io` TrafficSplit, v1alpha1–v1alpha4.

use super::common::{Quantity, SmiStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "split.smi-spec.io";

/// v1alpha1: weights are Kubernetes quantities (`1` = `1000m`).
pub mod v1alpha1 {
    use super::*;

    smi_resource! {
        "split.smi-spec.io", "v1alpha1", "TrafficSplit", "ts",
        printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#;
        pub struct TrafficSplitSpec {
            /// Root service clients use: `name`, `name.namespace` or an FQDN.
            pub service: String,
            pub backends: Vec<TrafficSplitBackend>,
        }
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    pub struct TrafficSplitBackend {
        pub service: String,
        pub weight: Quantity,
    }
}

/// v1alpha2: whole-number weights.
pub mod v1alpha2 {
    use super::*;

    smi_resource! {
        "split.smi-spec.io", "v1alpha2", "TrafficSplit", "ts",
        printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#;
        pub struct TrafficSplitSpec {
            pub service: String,
            pub backends: Vec<TrafficSplitBackend>,
        }
    }

    /// Weight is a JSON number so that negative or fractional values reach validation
    /// (which names the field) instead of failing to parse.
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    pub struct TrafficSplitBackend {
        pub service: String,
        pub weight: serde_json::Number,
    }
}

macro_rules! split_with_matches {
    ($ver:ident, $vs:literal) => {
        pub mod $ver {
            use super::*;

            smi_resource! {
                "split.smi-spec.io", $vs, "TrafficSplit", "ts",
                printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#;
                pub struct TrafficSplitSpec {
                    pub service: String,
                    pub backends: Vec<TrafficSplitBackend>,
                    /// HTTPRouteGroups whose matches select the requests that are split; the rest go
                    /// to the root service.
                    #[serde(default, skip_serializing_if = "Vec::is_empty")]
                    pub matches: Vec<TrafficSplitMatch>,
                }
            }

            #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
            pub struct TrafficSplitBackend {
                pub service: String,
                pub weight: serde_json::Number,
            }

            #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
            #[serde(rename_all = "camelCase")]
            pub struct TrafficSplitMatch {
                pub kind: String,
                pub name: String,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub api_group: Option<String>,
            }
        }
    };
}

split_with_matches!(v1alpha3, "v1alpha3");
split_with_matches!(v1alpha4, "v1alpha4");

// === conversions to the version-neutral model (core/src/model.rs) ===

use crate::model::{RawWeight, SplitBackend, TypedRef};

impl From<v1alpha1::TrafficSplitBackend> for SplitBackend {
    fn from(b: v1alpha1::TrafficSplitBackend) -> Self {
        SplitBackend {
            service: b.service,
            weight: RawWeight::Quantity(b.weight),
        }
    }
}

macro_rules! number_backend {
    ($($ver:ident),*) => {$(
        impl From<$ver::TrafficSplitBackend> for SplitBackend {
            fn from(b: $ver::TrafficSplitBackend) -> Self {
                SplitBackend {
                    service: b.service,
                    weight: RawWeight::Number(b.weight),
                }
            }
        }
    )*};
}

number_backend!(v1alpha2, v1alpha3, v1alpha4);

impl From<v1alpha4::TrafficSplitMatch> for TypedRef {
    fn from(m: v1alpha4::TrafficSplitMatch) -> Self {
        TypedRef {
            kind: m.kind,
            name: m.name,
        }
    }
}
