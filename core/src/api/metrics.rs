//! `metrics.smi-spec.io/v1alpha1` TrafficMetrics shapes. TrafficMetrics is served by an
//! aggregated APIService (read-only), not a CRD, so these types have no CRD.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "metrics.smi-spec.io";

pub mod v1alpha1 {
    use super::*;

    toplevel_object! {
        pub struct TrafficMetrics {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub resource: Option<ObjectReference>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub edge: Option<Edge>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub timestamp: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub window: Option<String>,
            #[serde(default)]
            pub metrics: Vec<Metric>,
        }
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    pub struct Edge {
        /// `to` or `from`.
        pub direction: String,
        /// `client` or `server` (spec text; SDK v1alpha2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub side: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub resource: Option<ObjectReference>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    pub struct Metric {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub unit: Option<String>,
        pub value: crate::api::common::Quantity,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TrafficMetricsList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub api_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub resource: Option<ObjectReference>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub selector: Option<LabelSelector>,
        #[serde(default)]
        pub items: Vec<TrafficMetrics>,
    }

    /// Metric names defined by the spec.
    pub const METRIC_NAMES: &[&str] = &[
        "p99_response_latency",
        "p90_response_latency",
        "p50_response_latency",
        "success_count",
        "failure_count",
    ];
}
