//! `access.smi-spec.io` TrafficTarget, v1alpha1–v1alpha3.

use super::common::{IntOrString, SmiStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "access.smi-spec.io";

/// An identity reference (`kind: ServiceAccount`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct IdentityRef {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Destination in v1alpha1/v1alpha2: an identity plus an optional port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct DestinationWithPort {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
}

/// A rule: a route object and, optionally, the names of its matches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TrafficTargetRule {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<String>>,
}

/// v1alpha1: fields at the top level (no `spec`), rules are called `specs`.
pub mod v1alpha1 {
    use super::*;

    toplevel_object! {
        pub struct TrafficTarget {
            pub destination: DestinationWithPort,
            #[serde(default)]
            pub specs: Vec<TrafficTargetRule>,
            #[serde(default)]
            pub sources: Vec<IdentityRef>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<SmiStatus>,
        }
    }
}

/// v1alpha2: fields under `spec`, `rules`; destination may carry a port.
pub mod v1alpha2 {
    use super::*;

    smi_resource! {
        "access.smi-spec.io", "v1alpha2", "TrafficTarget", "tt";
        pub struct TrafficTargetSpec {
            pub destination: DestinationWithPort,
            #[serde(default)]
            pub rules: Vec<TrafficTargetRule>,
            #[serde(default)]
            pub sources: Vec<IdentityRef>,
        }
    }
}

/// v1alpha3: ports moved to TCPRoute/UDPRoute; rules may name UDPRoutes.
pub mod v1alpha3 {
    use super::*;

    smi_resource! {
        "access.smi-spec.io", "v1alpha3", "TrafficTarget", "tt";
        pub struct TrafficTargetSpec {
            pub destination: IdentityRef,
            pub rules: Vec<TrafficTargetRule>,
            pub sources: Vec<IdentityRef>,
        }
    }
}

// === conversions to the version-neutral model (core/src/model.rs) ===

impl From<IdentityRef> for crate::model::Subject {
    fn from(s: IdentityRef) -> Self {
        crate::model::Subject {
            kind: s.kind,
            name: s.name,
            namespace: s.namespace,
        }
    }
}

impl DestinationWithPort {
    /// The identity, and the port on its own.
    pub fn into_subject_and_port(self) -> (crate::model::Subject, Option<IntOrString>) {
        let subject = crate::model::Subject {
            kind: self.kind,
            name: self.name,
            namespace: self.namespace,
        };
        (subject, self.port)
    }
}

impl From<TrafficTargetRule> for crate::model::TargetRule {
    fn from(r: TrafficTargetRule) -> Self {
        crate::model::TargetRule {
            kind: r.kind,
            name: r.name,
            matches: r.matches,
        }
    }
}
