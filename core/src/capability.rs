//! The capability matrix: per SMI feature, what an adapter (at a mesh version) can express.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// SMI features, as listed in DESIGN.md.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Feature {
    /// TrafficSplit weights.
    TrafficSplit,
    /// TrafficSplit `matches` (A/B on HTTPRouteGroup).
    TrafficSplitMatches,
    /// HTTPRouteGroup `pathRegex` in routing.
    PathRouting,
    /// HTTPRouteGroup `methods` in routing.
    MethodRouting,
    /// HTTPRouteGroup `headers` in routing.
    HeaderRouting,
    /// TrafficTarget with HTTPRouteGroup rules.
    HttpAccess,
    /// TrafficTarget with TCPRoute rules.
    TcpAccess,
    /// TrafficTarget with UDPRoute rules.
    UdpAccess,
    /// TCP traffic routing (splits on TCP ports).
    TcpRoutes,
    /// UDP traffic routing.
    UdpRoutes,
    /// TrafficMetrics.
    Metrics,
    /// Mutual TLS between workloads.
    Mtls,
    /// GAMMA route tables: several rules with their own matches and backends, in Gateway
    /// API precedence, unmatched requests answered 404.
    RouteTables,
    /// GAMMA `queryParams` matches.
    QueryRouting,
    /// GAMMA `RequestHeaderModifier` / `ResponseHeaderModifier` filters.
    HeaderModifiers,
    /// GAMMA `URLRewrite` filter (path and host).
    UrlRewrite,
    /// GAMMA `RequestRedirect` filter.
    Redirects,
    /// GAMMA `timeouts` (request, backendRequest).
    Timeouts,
    /// GAMMA `retry`.
    Retries,
    /// GAMMA consumer routes (a route in the client's namespace for a Service elsewhere).
    ConsumerRoutes,
}

impl Feature {
    pub const ALL: [Feature; 20] = [
        Feature::TrafficSplit,
        Feature::TrafficSplitMatches,
        Feature::PathRouting,
        Feature::MethodRouting,
        Feature::HeaderRouting,
        Feature::HttpAccess,
        Feature::TcpAccess,
        Feature::UdpAccess,
        Feature::TcpRoutes,
        Feature::UdpRoutes,
        Feature::Metrics,
        Feature::Mtls,
        Feature::RouteTables,
        Feature::QueryRouting,
        Feature::HeaderModifiers,
        Feature::UrlRewrite,
        Feature::Redirects,
        Feature::Timeouts,
        Feature::Retries,
        Feature::ConsumerRoutes,
    ];

    /// The GAMMA features (the last rows of [`Feature::ALL`]).
    pub fn gamma() -> &'static [Feature] {
        &Feature::ALL[12..]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::TrafficSplit => "trafficSplit",
            Feature::TrafficSplitMatches => "trafficSplitMatches",
            Feature::PathRouting => "pathRouting",
            Feature::MethodRouting => "methodRouting",
            Feature::HeaderRouting => "headerRouting",
            Feature::HttpAccess => "httpAccess",
            Feature::TcpAccess => "tcpAccess",
            Feature::UdpAccess => "udpAccess",
            Feature::TcpRoutes => "tcpRoutes",
            Feature::UdpRoutes => "udpRoutes",
            Feature::Metrics => "metrics",
            Feature::Mtls => "mtls",
            Feature::RouteTables => "routeTables",
            Feature::QueryRouting => "queryRouting",
            Feature::HeaderModifiers => "headerModifiers",
            Feature::UrlRewrite => "urlRewrite",
            Feature::Redirects => "redirects",
            Feature::Timeouts => "timeouts",
            Feature::Retries => "retries",
            Feature::ConsumerRoutes => "consumerRoutes",
        }
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum Level {
    Full,
    Partial,
    None,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Full => "Full",
            Level::Partial => "Partial",
            Level::None => "None",
        })
    }
}

/// One row of the matrix. `reason` says what is missing (empty for `Full`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Capability {
    pub feature: Feature,
    pub level: Level,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A complete matrix: exactly one row per [`Feature`], in [`Feature::ALL`] order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CapabilityMatrix(Vec<Capability>);

impl CapabilityMatrix {
    /// Builds a matrix; every feature not listed is `None` with reason "not implemented".
    pub fn new(rows: impl IntoIterator<Item = (Feature, Level, &'static str)>) -> Self {
        let mut out: Vec<Capability> = Feature::ALL
            .iter()
            .map(|f| Capability {
                feature: *f,
                level: Level::None,
                reason: "not implemented by this adapter".into(),
            })
            .collect();
        for (f, level, reason) in rows {
            let row = &mut out[Feature::ALL.iter().position(|x| *x == f).unwrap_or(0)];
            row.level = level;
            row.reason = reason.to_string();
        }
        CapabilityMatrix(out)
    }

    pub fn get(&self, f: Feature) -> &Capability {
        // `new` guarantees one row per feature in ALL order.
        &self.0[Feature::ALL.iter().position(|x| *x == f).unwrap_or(0)]
    }

    pub fn level(&self, f: Feature) -> Level {
        self.get(f).level
    }

    pub fn rows(&self) -> &[Capability] {
        &self.0
    }

    /// Overrides one row (used for version-dependent capabilities).
    pub fn set(&mut self, f: Feature, level: Level, reason: impl Into<String>) {
        if let Some(i) = Feature::ALL.iter().position(|x| *x == f) {
            self.0[i].level = level;
            self.0[i].reason = reason.into();
        }
    }
}
