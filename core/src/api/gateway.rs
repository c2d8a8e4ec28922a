//! `gateway.networking.k8s.io` routes read as input in the GAMMA (mesh) profile: HTTPRoute
//! and GRPCRoute (`v1`), TCPRoute (`v1alpha2`, and `v1` of the standard channel), and
//! ReferenceGrant (`v1beta1`, `v1`). Only the fields meshbridge reads; the official CRDs are
//! the schema (these types are never served as CRDs by meshbridge). Every field is optional
//! here so that validation (core's `build`) names what is missing or wrong, field by field.

use serde::{Deserialize, Serialize};

pub const GROUP: &str = "gateway.networking.k8s.io";

/// `parentRefs[]`: in the GAMMA profile, a Service (`group: ""`, `kind: Service`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ParentRef {
    /// Absent = `gateway.networking.k8s.io`.
    pub group: Option<String>,
    /// Absent = `Gateway`.
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i64>,
}

impl ParentRef {
    /// Whether it names a Service (the GAMMA profile) rather than a Gateway.
    pub fn is_service(&self) -> bool {
        self.group.as_deref() == Some("") && self.kind.as_deref() == Some("Service")
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct BackendRef {
    /// Absent or `""` = core.
    pub group: Option<String>,
    /// Absent = `Service`.
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i64>,
    /// Absent = 1.
    pub weight: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PathMatch {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Absent = `/`.
    pub value: Option<String>,
}

/// A header or query parameter match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ValueMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub name: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteMatch {
    pub path: Option<PathMatch>,
    pub headers: Vec<ValueMatch>,
    pub query_params: Vec<ValueMatch>,
    pub method: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct HeaderValue {
    pub name: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct HeaderModifier {
    pub set: Vec<HeaderValue>,
    pub add: Vec<HeaderValue>,
    pub remove: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub type_: String,
    pub replace_full_path: Option<String>,
    pub replace_prefix_match: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestRedirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<i64>,
    pub status_code: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct UrlRewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteFilter {
    /// `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestRedirect`, `URLRewrite`,
    /// `RequestMirror`, `CORS`, `ExtensionRef`.
    #[serde(rename = "type")]
    pub type_: String,
    pub request_header_modifier: Option<HeaderModifier>,
    pub response_header_modifier: Option<HeaderModifier>,
    pub request_redirect: Option<RequestRedirect>,
    #[serde(rename = "urlRewrite")]
    pub url_rewrite: Option<UrlRewrite>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Timeouts {
    pub request: Option<String>,
    pub backend_request: Option<String>,
}

/// `rules[].retry` (experimental channel, GEP-1731).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Retry {
    pub codes: Vec<i64>,
    pub attempts: Option<i64>,
    pub backoff: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteRule {
    pub name: Option<String>,
    pub matches: Vec<HttpRouteMatch>,
    pub filters: Vec<RouteFilter>,
    pub backend_refs: Vec<BackendRef>,
    pub timeouts: Option<Timeouts>,
    pub retry: Option<Retry>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteSpec {
    pub parent_refs: Vec<ParentRef>,
    pub hostnames: Vec<String>,
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcMethodMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub service: Option<String>,
    pub method: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcRouteMatch {
    pub method: Option<GrpcMethodMatch>,
    pub headers: Vec<ValueMatch>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcRouteRule {
    pub name: Option<String>,
    pub matches: Vec<GrpcRouteMatch>,
    pub filters: Vec<RouteFilter>,
    pub backend_refs: Vec<BackendRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcRouteSpec {
    pub parent_refs: Vec<ParentRef>,
    pub hostnames: Vec<String>,
    pub rules: Vec<GrpcRouteRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpRouteRule {
    pub name: Option<String>,
    pub backend_refs: Vec<BackendRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpRouteSpec {
    pub parent_refs: Vec<ParentRef>,
    pub rules: Vec<TcpRouteRule>,
}

/// A route object of either kind, as read (`spec`).
#[derive(Clone, Debug, PartialEq)]
pub enum RouteSpec {
    Http(HttpRouteSpec),
    Grpc(GrpcRouteSpec),
    Tcp(TcpRouteSpec),
}

impl RouteSpec {
    /// Namespaces the route names (Service parents and backendRefs that state one).
    pub fn namespaces(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .parent_refs()
            .iter()
            .filter(|p| p.is_service())
            .filter_map(|p| p.namespace.clone())
            .collect();
        let refs: Vec<&BackendRef> = match self {
            RouteSpec::Http(s) => s.rules.iter().flat_map(|r| &r.backend_refs).collect(),
            RouteSpec::Grpc(s) => s.rules.iter().flat_map(|r| &r.backend_refs).collect(),
            RouteSpec::Tcp(s) => s.rules.iter().flat_map(|r| &r.backend_refs).collect(),
        };
        out.extend(refs.into_iter().filter_map(|b| b.namespace.clone()));
        out.retain(|n| !n.is_empty());
        out.sort();
        out.dedup();
        out
    }

    pub fn parent_refs(&self) -> &[ParentRef] {
        match self {
            RouteSpec::Http(s) => &s.parent_refs,
            RouteSpec::Grpc(s) => &s.parent_refs,
            RouteSpec::Tcp(s) => &s.parent_refs,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GrantTo {
    pub group: String,
    pub kind: String,
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ReferenceGrantSpec {
    pub from: Vec<GrantFrom>,
    pub to: Vec<GrantTo>,
}

/// Parses a Gateway API duration (GEP-2257: `1h`, `10s`, `500ms`, `1h30m`; units h, m, s,
/// ms; at most 4 parts) into milliseconds. `0s` is allowed (no timeout).
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(format!(
                "`{s}` is not a Gateway API duration (like `10s`, `500ms`, `1h30m`)"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{s}`: bad number"))?;
        rest = &rest[digits..];
        let (mult, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return Err(format!(
                "`{s}` is not a Gateway API duration: units are h, m, s and ms"
            ));
        };
        rest = &rest[len..];
        total += n * mult;
        parts += 1;
        if parts > 4 {
            return Err(format!("`{s}`: a duration has at most 4 parts"));
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("1.5s").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("5d").is_err());
    }
}
