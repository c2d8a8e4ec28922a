//! meshbridge adapter for Linkerd: the IR → `linkerd.io` / `policy.linkerd.io` objects.
//!
//! - TrafficSplit without matches → ServiceProfile `dstOverrides` (what linkerd-smi does) or
//!   an outbound HTTPRoute, per [`split_mode`]; TrafficSplit with matches → HTTPRoute only
//!   (ServiceProfiles cannot route by request). Never both for one Service.
//! - TrafficTarget → per destination port a Server (`accessPolicy: deny`), HTTPRoutes on it
//!   for HTTP rules, AuthorizationPolicies and MeshTLSAuthentications.
//!
//! See README.md for the mapping and the capability matrix.

mod access;
mod matches;
pub mod metrics;
mod names;
mod split;

use meshbridge_core::api::meshbridge::{LinkerdSplitMode, MeshType};
use meshbridge_core::model::ObjectKey;
use meshbridge_core::{
    Adapter, CapabilityMatrix, Context, Feature, Finding, Ir, Level, OutputObject, Translation,
};
use serde_json::Value;

pub use access::{DEFAULT_INBOUND_POLICY, linkerd_identity};
pub use split::SP_TOTAL_MILLI;

pub(crate) const SP_API: &str = "linkerd.io/v1alpha2";
pub(crate) const POLICY_V1BETA3: &str = "policy.linkerd.io/v1beta3";
pub(crate) const POLICY_V1BETA2: &str = "policy.linkerd.io/v1beta2";
pub(crate) const POLICY_V1BETA1: &str = "policy.linkerd.io/v1beta1";

/// API versions of the policy kinds for the Mesh's Linkerd version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyApis {
    /// Server API version.
    pub server: &'static str,
    /// Whether the Server carries `accessPolicy: deny` (v1beta3 only; older Servers deny
    /// unauthorized traffic without it).
    pub server_access_policy: bool,
    /// HTTPRoute API version.
    pub http_route: &'static str,
}

/// The newest versions (`Server` and `HTTPRoute` `v1beta3`) unless the Mesh names a Linkerd
/// older than 2.16, where Server `v1beta3` / `accessPolicy` do not exist (they came with
/// edge-24.7.5): then Server `v1beta1` (no `accessPolicy`; a Server denies unauthorized
/// traffic by default since 2.11) and HTTPRoute `v1beta2` (the fields used here are the same;
/// outbound HTTPRoutes need Linkerd 2.13 or later).
pub fn policy_apis(cx: &Context) -> PolicyApis {
    let old = cx
        .mesh
        .as_ref()
        .and_then(|m| m.version.as_deref())
        .and_then(version_at_least_2_16)
        == Some(false);
    if old {
        PolicyApis {
            server: POLICY_V1BETA1,
            server_access_policy: false,
            http_route: POLICY_V1BETA2,
        }
    } else {
        PolicyApis {
            server: POLICY_V1BETA3,
            server_access_policy: true,
            http_route: POLICY_V1BETA3,
        }
    }
}
pub(crate) const POLICY_V1ALPHA1: &str = "policy.linkerd.io/v1alpha1";
pub(crate) const POLICY_GROUP: &str = "policy.linkerd.io";

/// How TrafficSplits without matches are expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitMode {
    ServiceProfile,
    HttpRoute,
}

/// The split mode for `cx`: the Mesh's explicit `linkerdSplitMode` wins; otherwise
/// HTTPRoute when the Mesh's Linkerd version is 2.16 or later (when ServiceProfiles were
/// "fully supplanted" by Gateway API types; edge releases from edge-24.8), else
/// ServiceProfile — the linkerd-smi behaviour, which works on every Linkerd version.
pub fn split_mode(cx: &Context) -> SplitMode {
    let Some(mesh) = &cx.mesh else {
        return SplitMode::ServiceProfile;
    };
    match mesh.linkerd_split_mode {
        Some(LinkerdSplitMode::HTTPRoute) => SplitMode::HttpRoute,
        Some(LinkerdSplitMode::ServiceProfile) => SplitMode::ServiceProfile,
        None => match mesh.version.as_deref().and_then(version_at_least_2_16) {
            Some(true) => SplitMode::HttpRoute,
            _ => SplitMode::ServiceProfile,
        },
    }
}

/// Parses Linkerd version strings (`2.16.1`, `v2.16`, `stable-2.14.10`, `version-2.18`,
/// `enterprise-2.17.0`, `edge-24.8.2`) and says whether they are 2.16 or later. `None` when
/// unrecognised.
pub fn version_at_least_2_16(v: &str) -> Option<bool> {
    let v = v.trim();
    let nums = |s: &str| -> Option<(u64, u64)> {
        let mut it = s.split(['.', '-', '+']);
        let a = it.next()?.parse().ok()?;
        let b = it.next()?.parse().ok()?;
        Some((a, b))
    };
    if let Some(rest) = v.strip_prefix("edge-") {
        let (year, month) = nums(rest)?;
        return Some((year, month) >= (24, 8));
    }
    let rest = ["stable-", "version-", "enterprise-", "v"]
        .iter()
        .find_map(|p| v.strip_prefix(p))
        .unwrap_or(v);
    let (major, minor) = nums(rest)?;
    Some((major, minor) >= (2, 16))
}

/// Output being built: objects, findings and the names already handed out.
pub(crate) struct Out<'a> {
    pub cx: &'a Context,
    pub apis: PolicyApis,
    pub names: names::Namer,
    pub objects: Vec<OutputObject>,
    pub findings: Vec<Finding>,
}

impl Out<'_> {
    pub fn push(
        &mut self,
        api: &str,
        kind: &str,
        ns: &str,
        name: String,
        parents: Vec<ObjectKey>,
        content: Value,
    ) {
        self.objects.push(OutputObject::new(
            self.cx,
            api,
            kind,
            Some(ns),
            &name,
            parents,
            content,
        ));
    }

    pub fn finding(
        &mut self,
        feature: Feature,
        level: Level,
        object: &ObjectKey,
        field: &str,
        reason: String,
    ) {
        self.findings.push(Finding {
            feature,
            level,
            object: object.clone(),
            field: field.to_string(),
            reason,
        });
    }
}

#[derive(Clone, Debug, Default)]
pub struct LinkerdAdapter;

impl Adapter for LinkerdAdapter {
    fn mesh_type(&self) -> MeshType {
        MeshType::Linkerd
    }

    fn capabilities(&self, cx: &Context) -> CapabilityMatrix {
        let mut m = CapabilityMatrix::new([
            (
                Feature::TrafficSplit,
                Level::Partial,
                "HTTPRoute mode: one HTTPRoute per root port with weighted backendRefs, at most 16 backends per port; roots whose Service (ports) is not in the input get a ServiceProfile",
            ),
            (
                Feature::TrafficSplitMatches,
                Level::Partial,
                "HTTPRoute (policy.linkerd.io/v1beta3) only, in either split mode (ServiceProfiles cannot route by request); needs the root Service's ports; at most 120 matches (methods fanned out) and 16 backends per split",
            ),
            (
                Feature::PathRouting,
                Level::Partial,
                "HTTPRoute Exact or RegularExpression `^(?:P).*$` (whole-path, Rust regex ≈ RE2); regexes over 1024 characters cannot be expressed",
            ),
            (Feature::MethodRouting, Level::Full, ""),
            (
                Feature::HeaderRouting,
                Level::Partial,
                "HTTPRoute Exact / RegularExpression `^(?:R)$`; at most 16 headers per match, values up to 4096 characters",
            ),
            (
                Feature::HttpAccess,
                Level::Partial,
                "Server per destination port + HTTPRoute + AuthorizationPolicy + MeshTLSAuthentication: needs a label selector isolating the destination ServiceAccount's pods and known ports; deny-by-default outside Servers needs the namespace annotation config.linkerd.io/default-inbound-policy: deny; Linkerd authorizes a request against the single HTTPRoute it selects, so overlapping routes allowed to different sources may deny (never allow) some requests; attaching HTTPRoutes to a Server drops Linkerd's default probe route",
            ),
            (
                Feature::TcpAccess,
                Level::Partial,
                "Server per port + AuthorizationPolicy + MeshTLSAuthentication: needs a label selector isolating the destination ServiceAccount's pods and known ports; deny-by-default outside Servers needs the namespace annotation config.linkerd.io/default-inbound-policy: deny",
            ),
            (
                Feature::UdpAccess,
                Level::None,
                "Linkerd does not proxy UDP",
            ),
            (
                Feature::TcpRoutes,
                Level::Partial,
                "HTTPRoute mode routes HTTP requests only: non-HTTP connections to the root are not split (no TCPRoute is emitted); ServiceProfile dstOverrides are per Service, not per protocol; SCTP is not proxied",
            ),
            (
                Feature::UdpRoutes,
                Level::None,
                "Linkerd does not proxy UDP",
            ),
            (
                Feature::Metrics,
                Level::Partial,
                "served from Prometheus (`--prometheus-url`, linkerd-viz's or one scraping the proxies the same way): `response_total` and `response_latency_ms_bucket` with `direction=\"outbound\"`, so requests from clients without a Linkerd proxy and calls to destinations outside the cluster are not counted; counts are Prometheus `increase()` estimates",
            ),
            (Feature::Mtls, Level::Full, ""),
            (
                Feature::RouteTables,
                Level::Partial,
                "HTTPRoute per root port with the rules in Gateway API precedence (which Linkerd applies itself), no catch-all (Linkerd answers unmatched requests 404); a rule without backends gets a backendRef to a Service that cannot exist, which Linkerd answers 500; at most 16 rules of 8 matches and 16 backendRefs per rule (reported); needs the root Service's ports; non-HTTP connections on undeclared ports are not routed",
            ),
            (
                Feature::QueryRouting,
                Level::Partial,
                "queryParams Exact / RegularExpression `^(?:R)$`; at most 16 per match, one condition per name (reported)",
            ),
            (
                Feature::HeaderModifiers,
                Level::Partial,
                "RequestHeaderModifier on the rule; ResponseHeaderModifier only on backendRefs (Linkerd's rule filters do not take it), so it is not applied to redirects or rules without backends (reported)",
            ),
            (
                Feature::UrlRewrite,
                Level::None,
                "Linkerd's HTTPRoute has no URLRewrite filter: a rule with one answers 500 (reported) rather than forwarding unrewritten requests",
            ),
            (
                Feature::Redirects,
                Level::Full,
                "RequestRedirect (scheme, hostname, path, port, statusCode)",
            ),
            (
                Feature::Timeouts,
                Level::Partial,
                "rules[].timeouts request and backendRequest (policy.linkerd.io/v1beta3, Linkerd 2.16+; not applied on older versions, reported)",
            ),
            (
                Feature::Retries,
                Level::Partial,
                "retry.linkerd.io/http (the status codes) and retry.linkerd.io/limit annotations (Linkerd 2.16+), which hold for a whole HTTPRoute: only when every forwarding rule has the same retry with status codes; no backoff setting (reported)",
            ),
            (
                Feature::ConsumerRoutes,
                Level::Partial,
                "HTTPRoute in the client namespace with parentRef namespace set to the Service's namespace; backendRefs name the backends' namespace, and a Linkerd that enforces ReferenceGrants needs one allowing policy.linkerd.io HTTPRoutes from the client namespace",
            ),
        ]);
        if split_mode(cx) == SplitMode::ServiceProfile {
            m.set(
                Feature::TrafficSplit,
                Level::Partial,
                "ServiceProfile dstOverrides (weights normalised to 1000m) apply to every port of the root Service: a backend lacking one of its ports still gets (and fails) that port's share",
            );
        }
        m
    }

    fn translate(&self, ir: &Ir, cx: &Context) -> Translation {
        let mut out = Out {
            cx,
            apis: policy_apis(cx),
            names: names::Namer::default(),
            objects: vec![],
            findings: vec![],
        };
        let mode = split_mode(cx);
        for s in ir.splits.values() {
            split::translate(ir, s, mode, &mut out);
        }
        for (ns, splits) in &ir.consumer_splits {
            for s in splits.values() {
                split::translate_consumer(ns, s, &mut out);
            }
        }
        for p in ir.access.values() {
            access::translate(ir, p, &mut out);
        }
        Translation {
            objects: out.objects,
            findings: out.findings,
        }
        .finish()
    }
}

#[cfg(test)]
mod tests;
