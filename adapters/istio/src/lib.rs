//! meshbridge adapter for Istio: the IR → `networking.istio.io` VirtualServices and
//! `security.istio.io` AuthorizationPolicies / PeerAuthentications.
//!
//! - Every winning TrafficSplit becomes one VirtualService named after its root Service, in
//!   the root's namespace ([`routing`]).
//! - Every destination identity with allows becomes one ALLOW AuthorizationPolicy
//!   `allow-<serviceaccount>` selecting exactly that identity's pods; each namespace with
//!   destinations gets the allow-nothing policy `meshbridge-allow-nothing` and a STRICT
//!   PeerAuthentication `default` ([`authz`]).
//!
//! The mapping, the naming rules and the capability matrix are described in `README.md`.

pub mod authz;
pub mod metrics;
pub mod routing;

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::{Adapter, CapabilityMatrix, Context, Feature, Ir, Level, Translation};

/// The Istio backend. Pure: no I/O, no clock.
#[derive(Clone, Debug, Default)]
pub struct IstioAdapter;

/// API versions to emit, by Istio version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiVersions {
    /// VirtualService.
    pub networking: &'static str,
    /// AuthorizationPolicy and PeerAuthentication.
    pub security: &'static str,
}

impl ApiVersions {
    /// `networking.istio.io/v1` and `security.istio.io/v1` (served from Istio 1.22; the
    /// default when the version is unknown); `v1beta1` of both for a known Istio older than
    /// 1.22 (networking `v1` and PeerAuthentication `v1` are not served there).
    pub fn for_context(cx: &Context) -> Self {
        let old = cx
            .mesh
            .as_ref()
            .and_then(|m| m.version.as_deref())
            .and_then(parse_version)
            .is_some_and(|(major, minor)| major < 1 || (major == 1 && minor < 22));
        if old {
            ApiVersions {
                networking: "networking.istio.io/v1beta1",
                security: "security.istio.io/v1beta1",
            }
        } else {
            ApiVersions {
                networking: "networking.istio.io/v1",
                security: "security.istio.io/v1",
            }
        }
    }
}

/// `1.12`, `v1.20.3`, `1.25-dev`, `1.22.0-beta.1` → `(major, minor)`.
pub fn parse_version(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let mut it = v.split('.');
    let major = it.next()?.parse::<u64>().ok()?;
    let minor_raw = it.next()?;
    let digits: String = minor_raw
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let minor = digits.parse::<u64>().ok()?;
    Some((major, minor))
}

impl Adapter for IstioAdapter {
    fn mesh_type(&self) -> MeshType {
        MeshType::Istio
    }

    fn capabilities(&self, _cx: &Context) -> CapabilityMatrix {
        // Nothing below depends on the Istio version: weights always sum to exactly 100
        // (accepted before and after 1.13), and the API version is chosen per version.
        CapabilityMatrix::new([
            (
                Feature::TrafficSplit,
                Level::Partial,
                "VirtualService weights are whole percentages summing to 100 (largest remainder, valid on every Istio version); a backend whose share rounds to 0% gets no traffic (reported)",
            ),
            (
                Feature::TrafficSplitMatches,
                Level::Full,
                "one http route per HTTPRouteGroup match before a catch-all route to the root service",
            ),
            (
                Feature::PathRouting,
                Level::Full,
                "uri.regex `(?:P).*` (Istio regexes are full-match RE2)",
            ),
            (
                Feature::MethodRouting,
                Level::Full,
                "one HTTPMatchRequest per method (ORed)",
            ),
            (
                Feature::HeaderRouting,
                Level::Partial,
                "headers.<name>.regex, `host` as authority.regex; Istio ignores the header names `uri`, `scheme`, `method` and `authority` and allows one condition per name, so such matches are not emitted (reported)",
            ),
            (
                Feature::HttpAccess,
                Level::Partial,
                "AuthorizationPolicy has no regex: a pathRegex must be a literal path or prefix (`/p*`), a header regex a literal, literal prefix or `.*`, and `host` cannot be checked; other rules are not emitted (fail closed, reported). The destination is selected by pod labels: without labels isolating the ServiceAccount's pods nothing is allowed (reported)",
            ),
            (
                Feature::TcpAccess,
                Level::Partial,
                "operation.ports; the destination is selected by pod labels: without labels isolating the ServiceAccount's pods nothing is allowed (reported)",
            ),
            (Feature::UdpAccess, Level::None, "Istio does not proxy UDP"),
            (
                Feature::TcpRoutes,
                Level::Partial,
                "tcp routes with weights per TCP port; TLS/HTTPS ports (Istio routes them by SNI) and SCTP ports are not split (reported)",
            ),
            (Feature::UdpRoutes, Level::None, "Istio does not proxy UDP"),
            (
                Feature::Metrics,
                Level::Partial,
                "served from Prometheus (`--prometheus-url`): `istio_requests_total` and `istio_request_duration_milliseconds_bucket` with `reporter=\"destination\"`; Istio labels do not say a workload's kind, so every workload is reported as a Deployment; client pods are not known (destination pods only where the scrape adds a `pod` label); requests from clients outside the mesh (`unknown`) and failures the destination never saw are not counted; counts are Prometheus `increase()` estimates",
            ),
            (
                Feature::Mtls,
                Level::Full,
                "STRICT PeerAuthentication in every namespace with TrafficTarget destinations",
            ),
            (
                Feature::RouteTables,
                Level::Partial,
                "one http route per rule in precedence order, no catch-all (unmatched requests get Envoy's 404 NR), directResponse 500 for rules without backends; rules do not apply on ports declared TCP, and matches Istio cannot express (a header named twice, `uri`/`scheme`/`method`/`authority` headers) are left out (reported)",
            ),
            (
                Feature::QueryRouting,
                Level::Full,
                "queryParams.<name>.regex (full-match RE2)",
            ),
            (
                Feature::HeaderModifiers,
                Level::Partial,
                "headers.request / headers.response set, add, remove; a header added twice (Istio's add is a map) makes the rule answer 500 (reported)",
            ),
            (
                Feature::UrlRewrite,
                Level::Full,
                "rewrite.authority and rewrite.uriRegexRewrite (full path, or the matched segment prefix)",
            ),
            (
                Feature::Redirects,
                Level::Full,
                "redirect uri, authority, scheme, port (else derivePort: the scheme's default when it changes, the request's port otherwise), redirectCode; a prefix redirect becomes uri.exact P and uri.prefix P/ routes",
            ),
            (
                Feature::Timeouts,
                Level::Partial,
                "timeout; backendRequest as retries.perTryTimeout with a retry, else it bounds the whole request (reported)",
            ),
            (
                Feature::Retries,
                Level::Partial,
                "retries attempts, retryOn connect-failure,refused-stream,unavailable,cancelled plus retriable-status-codes and the codes, perTryTimeout; no backoff (Envoy's default applies, reported); a rule without retry keeps Istio's default retry policy",
            ),
            (
                Feature::ConsumerRoutes,
                Level::Full,
                "VirtualService `<service>.<namespace>` in the client namespace with exportTo [\".\"]",
            ),
        ])
    }

    fn translate(&self, ir: &Ir, cx: &Context) -> Translation {
        let api = ApiVersions::for_context(cx);
        let mut out = Translation::default();
        routing::virtual_services(ir, cx, &api, &mut out);
        authz::policies(ir, cx, &api, &mut out);
        out.finish()
    }
}

/// A Kubernetes object name `prefix` + `name`, kept within 253 characters: longer names are
/// cut and get an 8-hex-digit FNV-1a hash of the full name, so they stay unique and stable.
pub fn object_name(prefix: &str, name: &str) -> String {
    let full = format!("{prefix}{name}");
    if full.len() <= 253 {
        return full;
    }
    let hash = meshbridge_core::hash::short_hash(&full);
    let mut cut = 253 - 1 - hash.len();
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = full[..cut].trim_end_matches(['-', '.']);
    format!("{head}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshbridge_core::api::meshbridge::MeshSpec;

    fn cx_with(version: Option<&str>) -> Context {
        Context {
            mesh: Some(MeshSpec {
                version: version.map(str::to_string),
                ..MeshSpec::of(MeshType::Istio)
            }),
            ..Context::default()
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.12"), Some((1, 12)));
        assert_eq!(parse_version("v1.20.3"), Some((1, 20)));
        assert_eq!(parse_version("1.25-dev"), Some((1, 25)));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(parse_version("1"), None);
        let v1 = ApiVersions::for_context(&Context::default());
        assert_eq!(v1.networking, "networking.istio.io/v1");
        assert_eq!(v1.security, "security.istio.io/v1");
        assert_eq!(ApiVersions::for_context(&cx_with(Some("1.22.0"))), v1);
        assert_eq!(ApiVersions::for_context(&cx_with(None)), v1);
        assert_eq!(ApiVersions::for_context(&cx_with(Some("nonsense"))), v1);
        let old = ApiVersions::for_context(&cx_with(Some("1.12")));
        assert_eq!(old.networking, "networking.istio.io/v1beta1");
        assert_eq!(old.security, "security.istio.io/v1beta1");
        assert_eq!(ApiVersions::for_context(&cx_with(Some("1.21.6"))), old);
    }

    #[test]
    fn names_stay_valid() {
        assert_eq!(object_name("allow-", "web"), "allow-web");
        let long = "a".repeat(253);
        let n = object_name("allow-", &long);
        assert_eq!(n.len(), 253);
        assert!(n.starts_with("allow-aaa"));
        assert_ne!(n, object_name("allow-", &"a".repeat(252)));
        assert_eq!(n, object_name("allow-", &long));
    }

    #[test]
    fn matrix_is_complete_and_explained() {
        let m = IstioAdapter.capabilities(&Context::default());
        for row in m.rows() {
            assert!(!row.reason.is_empty(), "{:?}", row.feature);
            assert!(!row.reason.contains("not implemented by this adapter"));
        }
        assert_eq!(m.level(Feature::UdpRoutes), Level::None);
        assert_eq!(m.level(Feature::UdpAccess), Level::None);
        assert_eq!(m.level(Feature::TrafficSplitMatches), Level::Full);
    }
}
