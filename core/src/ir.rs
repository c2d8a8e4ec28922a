//! The mesh-neutral model (IR): plain, sorted data that every adapter translates. Built from
//! a [`crate::snapshot::Snapshot`] by [`crate::build::build`]; only valid, resolved,
//! non-conflicting objects reach it.

use crate::model::ObjectKey;
use crate::report::{Problem, Severity};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A Service, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SvcKey {
    pub namespace: String,
    pub name: String,
}

impl SvcKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        SvcKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// `name.namespace.svc.<cluster_domain>`.
    pub fn fqdn(&self, cluster_domain: &str) -> String {
        format!("{}.{}.svc.{}", self.name, self.namespace, cluster_domain)
    }
}

impl fmt::Display for SvcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A workload identity: a ServiceAccount.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub namespace: String,
    pub service_account: String,
}

impl Identity {
    pub fn new(namespace: impl Into<String>, service_account: impl Into<String>) -> Self {
        Identity {
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }

    /// `spiffe://<td>/ns/<ns>/sa/<sa>` (also Istio's principal without the scheme).
    pub fn spiffe(&self, trust_domain: &str) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            trust_domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service_account)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum TargetPort {
    Number(u16),
    Named(String),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: u16,
    pub target_port: TargetPort,
    pub protocol: Protocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

impl ServicePort {
    /// Whether the port carries HTTP: `appProtocol` (`http`, `http2`, `h2c`, `grpc`,
    /// `kubernetes.io/h2c`, `kubernetes.io/ws`) or, failing that, Istio's port-name
    /// convention (`http`, `http-*`, `http2*`, `grpc*`).
    pub fn is_http(&self) -> bool {
        if self.protocol != Protocol::Tcp {
            return false;
        }
        if let Some(ap) = &self.app_protocol {
            let ap = ap.to_ascii_lowercase();
            return matches!(
                ap.as_str(),
                "http"
                    | "http2"
                    | "h2c"
                    | "grpc"
                    | "grpc-web"
                    | "kubernetes.io/h2c"
                    | "kubernetes.io/ws"
            );
        }
        self.name.as_deref().is_some_and(is_http_port_name)
    }
}

/// What a TCP port is declared to carry, for meshes that detect the protocol when it is not
/// declared (the built-in mesh, as Istio and Linkerd do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortKind {
    /// Declared HTTP ([`ServicePort::is_http`]).
    Http,
    /// Declared non-HTTP: `appProtocol` other than an HTTP one (`tcp`, `mysql`, `tls`...),
    /// a port name of Istio's convention for another protocol (`tcp`, `tcp-*`, `mongo-*`,
    /// `mysql-*`, `redis-*`, `tls-*`, `https-*`...), or not TCP at all.
    Opaque,
    /// Not declared: the protocol is detected from the first bytes the client sends.
    Detect,
}

/// Istio's port-name prefixes of protocols other than HTTP.
const OPAQUE_PORT_NAMES: &[&str] = &[
    "tcp",
    "tls",
    "https",
    "mongo",
    "mysql",
    "redis",
    "udp",
    "thrift",
    "dubbo",
    "zookeeper",
    "kafka",
    "amqp",
    "postgres",
    "postgresql",
    "nats",
    "memcache",
    "cassandra",
];

/// The [`PortKind`] a port name declares (Istio's convention: `<protocol>` or
/// `<protocol>-<suffix>`, any case).
pub fn port_name_kind(name: Option<&str>) -> PortKind {
    let Some(name) = name else {
        return PortKind::Detect;
    };
    if is_http_port_name(name) {
        return PortKind::Http;
    }
    let n = name.to_ascii_lowercase();
    let proto = n.split_once('-').map(|(p, _)| p).unwrap_or(&n);
    if OPAQUE_PORT_NAMES.contains(&proto) {
        PortKind::Opaque
    } else {
        PortKind::Detect
    }
}

impl ServicePort {
    /// What the port is declared to carry: `appProtocol` first, then the port name.
    pub fn kind(&self) -> PortKind {
        if self.protocol != Protocol::Tcp {
            return PortKind::Opaque;
        }
        if self.is_http() {
            return PortKind::Http;
        }
        if self.app_protocol.is_some() {
            return PortKind::Opaque;
        }
        port_name_kind(self.name.as_deref())
    }
}

/// The ports a pod serves: its containers' declared ports, plus every port a Service
/// selecting it targets (Kubernetes needs no `containerPort` declaration): a numeric
/// `targetPort` as it is (`targetPort` absent is the service port), a named one only when a
/// container port has that name (already listed). Sorted by port, one entry per port.
pub fn served_ports<'a>(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    container_ports: &[(Option<String>, u16)],
    services: impl IntoIterator<Item = &'a Service>,
) -> Vec<(Option<String>, u16)> {
    let mut out: Vec<(Option<String>, u16)> = Vec::new();
    for (n, p) in container_ports {
        if !out.iter().any(|(_, q)| q == p) {
            out.push((n.clone(), *p));
        }
    }
    for s in services {
        if s.key.namespace != namespace || s.selector.is_empty() || !selects(&s.selector, labels) {
            continue;
        }
        for sp in &s.ports {
            if sp.protocol != Protocol::Tcp {
                continue;
            }
            if let TargetPort::Number(n) = sp.target_port
                && !out.iter().any(|(_, q)| *q == n)
            {
                out.push((None, n));
            }
        }
    }
    out.sort_by_key(|(_, p)| *p);
    out
}

/// Istio's port-name convention for HTTP: `http`, `http-*`, `http2*`, `grpc*` (any case).
/// Used for Service ports without `appProtocol` and for container ports.
pub fn is_http_port_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "http" || n.starts_with("http-") || n.starts_with("http2") || n.starts_with("grpc")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Serialized as the key of [`Ir::services`].
    #[serde(skip)]
    pub key: SvcKey,
    pub ports: Vec<ServicePort>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
}

impl Service {
    pub fn port(&self, port: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == port)
    }
}

/// One pod (or a workload's pod template) running as an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub namespace: String,
    /// Pod name, or `<kind>/<name>` for a template (`deployment/web`, `statefulset/db`).
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The ports the pod serves ([`served_ports`]): declared container ports and the target
    /// ports of the Services selecting it.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "ser::container_ports"
    )]
    pub container_ports: Vec<(Option<String>, u16)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Serialized as the key of [`Ir::workloads`].
    #[serde(skip)]
    pub identity: Identity,
    pub pods: Vec<PodInfo>,
}

/// A path condition: an RE2 regex anchored at the start of the path only.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PathRegex(pub String);

/// The tail of a segment-prefix regex: the end of the path, or `/` and anything.
const SEGMENT_TAIL: &str = "(?:/.*)?$";

/// The literal an escaped regex stands for, if it is only escaped literal characters.
fn unescape_literal(re: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else if "()[]{}|*+?.^$".contains(c) {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// What a start-anchored path regex means, for targets without (or with full-match) regex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// Matches every path (`.*`, empty, or the prefix `/`: every request path starts with it).
    Any,
    /// Matches exactly this path.
    Exact(String),
    /// Matches every path starting with this string.
    Prefix(String),
    /// Only a regex can express it.
    Regex,
}

impl PathRegex {
    /// The regex of a path equal to `path` (Gateway API `Exact`).
    pub fn exact(path: &str) -> PathRegex {
        PathRegex(format!("^{}$", regex_syntax::escape(path)))
    }

    /// The regex of Gateway API's `PathPrefix` `prefix`: whole path segments (`/foo` matches
    /// `/foo`, `/foo/` and `/foo/bar`, not `/foobar`); a trailing `/` is ignored. `None` for
    /// `/` (every path).
    pub fn segment_prefix_of(prefix: &str) -> Option<PathRegex> {
        let p = prefix.trim_end_matches('/');
        if p.is_empty() {
            return None;
        }
        Some(PathRegex(format!(
            "^{}{SEGMENT_TAIL}",
            regex_syntax::escape(p)
        )))
    }

    /// The prefix when this regex is one [`PathRegex::segment_prefix_of`] made.
    pub fn segment_prefix(&self) -> Option<String> {
        let lit = self.0.strip_prefix('^')?.strip_suffix(SEGMENT_TAIL)?;
        let unescaped = unescape_literal(lit)?;
        (regex_syntax::escape(&unescaped) == lit).then_some(unescaped)
    }

    /// A regex for targets whose regex match is whole-path (Envoy `safe_regex`, Istio
    /// `regex`, Gateway API `RegularExpression`): `(?:P).*`, or `P` without the `.*`
    /// when `P` already ends with `$`.
    pub fn full_match_regex(&self) -> String {
        let p = self.0.strip_prefix('^').unwrap_or(&self.0);
        if p.ends_with('$') && !p.ends_with("\\$") {
            format!("(?:{})", &p[..p.len() - 1])
        } else {
            format!("(?:{p}).*")
        }
    }

    /// Classifies the regex as any / exact / prefix when it is a literal (optionally
    /// followed by `.*` or `$`), else `Regex`. Used by targets without regex support
    /// (authorization policies), which must never widen a rule.
    pub fn kind(&self) -> PathKind {
        use regex_syntax::hir::{Class, HirKind, Look};
        let Ok(hir) = regex_syntax::Parser::new().parse(&self.0) else {
            return PathKind::Regex;
        };
        let parts: Vec<regex_syntax::hir::Hir> = match hir.kind() {
            HirKind::Concat(v) => v.clone(),
            _ => vec![hir.clone()],
        };
        let parts: Vec<regex_syntax::hir::Hir> = parts
            .into_iter()
            .filter(|h| !matches!(h.kind(), HirKind::Empty))
            .collect();
        let mut i = 0;
        if let Some(HirKind::Look(Look::Start)) = parts.first().map(|h| h.kind()) {
            i = 1;
        }
        let mut lit = String::new();
        while i < parts.len() {
            match parts[i].kind() {
                HirKind::Literal(l) => match std::str::from_utf8(&l.0) {
                    Ok(s) => lit.push_str(s),
                    Err(_) => return PathKind::Regex,
                },
                _ => break,
            }
            i += 1;
        }
        let rest = &parts[i..];
        let is_dot_star = |h: &regex_syntax::hir::Hir| match h.kind() {
            HirKind::Repetition(r) if r.min == 0 && r.max.is_none() => match r.sub.kind() {
                // `.` without (?s) excludes only '\n' — no valid URL path contains it.
                HirKind::Class(Class::Unicode(c)) => {
                    c.ranges()
                        .iter()
                        .map(|r| (r.end() as u32) - (r.start() as u32) + 1)
                        .sum::<u32>()
                        >= 1_000_000
                }
                HirKind::Class(Class::Bytes(c)) => {
                    c.ranges()
                        .iter()
                        .map(|r| (r.end() as u32) - (r.start() as u32) + 1)
                        .sum::<u32>()
                        >= 255
                }
                _ => false,
            },
            _ => false,
        };
        let is_end = |h: &regex_syntax::hir::Hir| matches!(h.kind(), HirKind::Look(Look::End));
        match rest {
            [] => {
                if lit.is_empty() || lit == "/" {
                    PathKind::Any
                } else {
                    PathKind::Prefix(lit)
                }
            }
            [d] if is_dot_star(d) => {
                if lit.is_empty() || lit == "/" {
                    PathKind::Any
                } else {
                    PathKind::Prefix(lit)
                }
            }
            [e] if is_end(e) => PathKind::Exact(lit),
            [d, e] if is_dot_star(d) && is_end(e) => {
                if lit.is_empty() || lit == "/" {
                    PathKind::Any
                } else {
                    PathKind::Prefix(lit)
                }
            }
            _ => PathKind::Regex,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HeaderMatch {
    /// Lower-cased header name.
    pub name: String,
    /// RE2 regex; whole-value match (as Envoy, Istio and Gateway API apply it).
    pub regex: String,
}

/// One HTTPRouteGroup match: path AND method AND every header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HttpRoute {
    /// The HTTPRouteGroup it came from.
    #[serde(serialize_with = "ser::display")]
    pub group: ObjectKey,
    /// The match's name (unique in its group).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRegex>,
    /// Upper-case methods; empty = any method (`*` is normalised to empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    /// Query parameters (GAMMA `queryParams`): name as written (case-sensitive), whole-value
    /// RE2 regex; every one must match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<HeaderMatch>,
}

impl HttpRoute {
    /// A match of `group` named `name`: an optional path regex, methods (upper case, empty =
    /// any) and `(lower-case name, value regex)` headers.
    pub fn new(
        group: ObjectKey,
        name: impl Into<String>,
        path: Option<&str>,
        methods: &[&str],
        headers: &[(&str, &str)],
    ) -> HttpRoute {
        HttpRoute {
            group,
            name: name.into(),
            path: path.map(|p| PathRegex(p.into())),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            headers: headers
                .iter()
                .map(|(n, r)| HeaderMatch {
                    name: n.to_string(),
                    regex: r.to_string(),
                })
                .collect(),
            query: vec![],
        }
    }

    /// True when the route matches every request.
    pub fn is_catch_all(&self) -> bool {
        self.methods.is_empty()
            && self.headers.is_empty()
            && self.query.is_empty()
            && self.path.as_ref().is_none_or(|p| p.kind() == PathKind::Any)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    pub service: SvcKey,
    /// Relative share (v1alpha1: milli-units; v1alpha2+: as written).
    pub weight: u64,
    /// The backend is the root service itself (its own endpoints).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_root: bool,
}

/// Backends of a split on one root port, after dropping those lacking the port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SplitPort {
    pub port: ServicePort,
    /// Indexes into [`Split::backends`] with each backend's target port.
    #[serde(serialize_with = "ser::split_backends")]
    pub backends: Vec<(usize, TargetPort)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Split {
    #[serde(serialize_with = "ser::display")]
    pub parent: ObjectKey,
    /// Serialized as the key of [`Ir::splits`].
    #[serde(skip)]
    pub root: SvcKey,
    pub backends: Vec<Backend>,
    /// A/B: only requests matching one of these are split; the rest go to the root.
    /// Empty = every request is split.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRoute>,
    /// Per root port (empty when the root Service is not in the snapshot).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<SplitPort>,
    /// A route table (GAMMA routes that are more than one weighted split): the rules in
    /// order, the first whose matches match a request applies, and a request matching no
    /// rule is answered 404 (Gateway API), not sent to the root. When non-empty, `matches`
    /// is empty and `backends` lists every backend any rule names (each once, with the
    /// weight of its first rule); rules name backends by index. Routes that are exactly a
    /// split (one rule, or matched rules to one weighted set then a catch-all to the root,
    /// no filters, timeouts or retries) are built as a split instead, so that an SMI
    /// TrafficSplit and its GAMMA equivalent give the same IR.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RouteRule>,
}

/// One rule of a route table ([`Split::rules`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    /// Field path of the rule (`spec.rules[2]`), for findings.
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ORed; empty = every request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRoute>,
    /// `(index into Split::backends, weight)`; empty with no redirect = answered 500
    /// (Gateway API: a rule without backends fails its requests).
    pub backends: Vec<(usize, u64)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Whole-request timeout in ms (`timeouts.request`); 0 = none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Per-try timeout in ms (`timeouts.backendRequest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

impl RouteRule {
    /// The rule's redirect, if it has one (a redirect rule sends no request upstream).
    pub fn redirect(&self) -> Option<&Redirect> {
        self.filters.iter().find_map(|f| match f {
            Filter::Redirect(r) => Some(r),
            _ => None,
        })
    }
}

/// Header edits (Gateway API `RequestHeaderModifier` / `ResponseHeaderModifier`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderEdit {
    /// `(name, value)`: replaces any existing value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    /// `(name, value)`: appended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A path rewrite (Gateway API `HTTPPathModifier`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathRewrite {
    /// The whole path becomes this.
    Full(String),
    /// The matched path prefix (the rule's only match is a segment prefix) becomes this.
    Prefix(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redirect {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// 301 or 302 (default 302).
    pub status_code: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Filter {
    RequestHeaders(HeaderEdit),
    ResponseHeaders(HeaderEdit),
    Redirect(Redirect),
    Rewrite {
        #[serde(skip_serializing_if = "Option::is_none")]
        hostname: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<PathRewrite>,
    },
}

/// Retries (Gateway API `rules[].retry`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Retries after the first try.
    pub attempts: u32,
    /// HTTP status codes that are retried (empty: connection failures only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

impl Split {
    pub fn weights(&self) -> Vec<u64> {
        self.backends.iter().map(|b| b.weight).collect()
    }
}

/// Which ports a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    All,
    Only(BTreeSet<u16>),
}

impl Ports {
    pub fn contains(&self, p: u16) -> bool {
        match self {
            Ports::All => true,
            Ports::Only(s) => s.contains(&p),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Traffic {
    /// HTTP requests matching any of these routes.
    Http(Vec<HttpRoute>),
    /// Any TCP connection (on the rule's ports).
    Tcp,
    /// Any UDP datagram (on the rule's ports).
    Udp,
}

/// One allow: `sources` may send `traffic` to the destination on `ports`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    /// The TrafficTarget it came from.
    #[serde(serialize_with = "ser::display")]
    pub parent: ObjectKey,
    /// Index of the rule in the TrafficTarget (`spec.rules[i]` / `specs[i]`).
    pub rule_index: usize,
    /// Field path of the rule, for findings.
    pub field: String,
    pub sources: Vec<Identity>,
    pub ports: Ports,
    pub traffic: Traffic,
}

/// Every allow for one destination identity. Anything not allowed is denied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessPolicy {
    /// Serialized as the key of [`Ir::access`].
    #[serde(skip)]
    pub destination: Identity,
    pub rules: Vec<AccessRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceInfo {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Validation and reference outcome for one input object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    pub accepted: bool,
    pub resolved_refs: bool,
    pub conflicted: bool,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "ser::problems"
    )]
    pub problems: Vec<Problem>,
}

impl ObjectStatus {
    /// Valid, resolved and not conflicting: it reaches the IR.
    pub fn usable(&self) -> bool {
        !self.problems.iter().any(|p| p.is_error())
    }
}

/// Serializes to the stable form of the IR golden (`conformance/cases/*/*/expected/ir.yaml`,
/// see [`Ir::to_yaml`]): maps in key order, keys as `namespace/name` (services, splits),
/// `namespace/serviceAccount` (workloads, access) and `Kind/namespace/name` (status), empty
/// and absent fields left out. Only input data appears: no clock, no addresses in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ir {
    pub namespaces: BTreeMap<String, NamespaceInfo>,
    pub services: BTreeMap<SvcKey, Service>,
    pub workloads: BTreeMap<Identity, Workload>,
    /// Winning split (or route table) per root service.
    pub splits: BTreeMap<SvcKey, Split>,
    /// GAMMA consumer routes: per client namespace, the route table its clients use for a
    /// Service of another namespace (instead of the producer's split).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub consumer_splits: BTreeMap<String, BTreeMap<SvcKey, Split>>,
    pub access: BTreeMap<Identity, AccessPolicy>,
    /// Every SMI input object's outcome.
    #[serde(serialize_with = "ser::status")]
    pub status: BTreeMap<ObjectKey, ObjectStatus>,
}

impl Ir {
    /// The split (or route table) clients in `client_ns` use for `svc`: a consumer route of
    /// their namespace, else the producer's.
    pub fn split_for(&self, client_ns: &str, svc: &SvcKey) -> Option<&Split> {
        self.consumer_splits
            .get(client_ns)
            .and_then(|m| m.get(svc))
            .or_else(|| self.splits.get(svc))
    }

    /// The IR as one deterministic YAML document (the per-stage golden `ir.yaml`): the same
    /// IR always renders to the same bytes.
    pub fn to_yaml(&self) -> String {
        let v = serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::Value::String(format!("IR does not serialize: {e}")));
        crate::yaml::to_yaml(&v)
    }

    /// Every problem, sorted (origin, then object).
    pub fn problems(&self) -> Vec<&Problem> {
        let mut v: Vec<&Problem> = self.status.values().flat_map(|s| &s.problems).collect();
        v.sort();
        v
    }

    /// Services whose selector selects pods running as `id` (the identity's services).
    pub fn services_of(&self, id: &Identity) -> Vec<&Service> {
        let Some(w) = self.workloads.get(id) else {
            return vec![];
        };
        self.services_in(&id.namespace)
            .filter(|s| !s.selector.is_empty())
            .filter(|s| w.pods.iter().any(|p| selects(&s.selector, &p.labels)))
            .collect()
    }

    /// Services of one namespace (a range scan: keys sort by namespace first).
    pub fn services_in<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Service> + 'a {
        let ns = namespace.to_string();
        self.services
            .range(SvcKey::new(namespace, "")..)
            .take_while(move |(k, _)| k.namespace == ns)
            .map(|(_, s)| s)
    }

    /// Workloads of one namespace (a range scan).
    pub fn workloads_in<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Workload> + 'a {
        let ns = namespace.to_string();
        self.workloads
            .range(Identity::new(namespace, "")..)
            .take_while(move |(k, _)| k.namespace == ns)
            .map(|(_, w)| w)
    }

    /// Identities whose pods a Service selects.
    pub fn identities_of(&self, svc: &SvcKey) -> Vec<&Identity> {
        let Some(s) = self.services.get(svc) else {
            return vec![];
        };
        if s.selector.is_empty() {
            return vec![];
        }
        self.workloads_in(&svc.namespace)
            .filter(|w| w.pods.iter().any(|p| selects(&s.selector, &p.labels)))
            .map(|w| &w.identity)
            .collect()
    }

    /// A label selector that selects every known pod of `id` and no pod of any other
    /// identity in its namespace: the labels all of `id`'s pods share, if that set
    /// isolates them. `None` when no such set exists (or no pods are known) — callers must
    /// then report the gap rather than select a wider set.
    pub fn isolating_selector(&self, id: &Identity) -> Option<BTreeMap<String, String>> {
        let w = self.workloads.get(id)?;
        let mut pods = w.pods.iter();
        let first = pods.next()?;
        let mut common = first.labels.clone();
        for p in pods {
            common.retain(|k, v| p.labels.get(k) == Some(v));
        }
        if common.is_empty() {
            return None;
        }
        let leaks = self
            .workloads_in(&id.namespace)
            .filter(|o| o.identity != *id)
            .flat_map(|o| &o.pods)
            .any(|p| selects(&common, &p.labels));
        if leaks { None } else { Some(common) }
    }
}

// === serialization ===

impl Serialize for SvcKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `all`, or the list of ports.
impl Serialize for Ports {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ports::All => s.serialize_str("all"),
            Ports::Only(p) => p.serialize(s),
        }
    }
}

/// `serialize_with` helpers for fields whose types live elsewhere or are tuples.
mod ser {
    use super::*;

    pub fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn container_ports<S: Serializer>(
        v: &[(Option<String>, u16)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Port<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'a str>,
            port: u16,
        }
        s.collect_seq(v.iter().map(|(name, port)| Port {
            name: name.as_deref(),
            port: *port,
        }))
    }

    pub fn split_backends<S: Serializer>(
        v: &[(usize, TargetPort)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct PortBackend<'a> {
            backend: usize,
            target_port: &'a TargetPort,
        }
        s.collect_seq(v.iter().map(|(backend, target_port)| PortBackend {
            backend: *backend,
            target_port,
        }))
    }

    /// Each problem as its severity, condition reason and the line the CLI prints.
    pub fn problems<S: Serializer>(v: &[Problem], s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct P {
            severity: &'static str,
            condition_reason: &'static str,
            message: String,
        }
        s.collect_seq(v.iter().map(|p| P {
            severity: match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            condition_reason: p.condition_reason,
            message: p.to_string(),
        }))
    }

    pub fn status<S: Serializer>(
        v: &BTreeMap<ObjectKey, ObjectStatus>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, st) in v {
            m.serialize_entry(&k.to_string(), st)?;
        }
        m.end()
    }
}

/// Whether a (matchLabels) selector selects a label set.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_kinds() {
        let k = |s: &str| PathRegex(s.into()).kind();
        assert_eq!(k("/metrics"), PathKind::Prefix("/metrics".into()));
        assert_eq!(k("/api/.*"), PathKind::Prefix("/api/".into()));
        assert_eq!(k("^/api"), PathKind::Prefix("/api".into()));
        assert_eq!(k(".*"), PathKind::Any);
        assert_eq!(k(""), PathKind::Any);
        assert_eq!(k("/"), PathKind::Any);
        assert_eq!(k("/.*"), PathKind::Any);
        assert_eq!(k("/ping$"), PathKind::Exact("/ping".into()));
        assert_eq!(k("/api/v[0-9]+"), PathKind::Regex);
        assert_eq!(k("/a.b"), PathKind::Regex);
        assert_eq!(k("/a\\.b"), PathKind::Prefix("/a.b".into()));
    }

    #[test]
    fn gateway_paths() {
        let e = PathRegex::exact("/a.b");
        assert_eq!(e.kind(), PathKind::Exact("/a.b".into()));
        let p = PathRegex::segment_prefix_of("/api/").unwrap();
        assert_eq!(p.segment_prefix().as_deref(), Some("/api"));
        assert_eq!(PathRegex::segment_prefix_of("/"), None);
        let re = regex::Regex::new(&p.0).unwrap();
        for (path, want) in [
            ("/api", true),
            ("/api/", true),
            ("/api/v1", true),
            ("/apix", false),
        ] {
            assert_eq!(re.is_match(path), want, "{path}");
        }
        let dotted = PathRegex::segment_prefix_of("/v1.0").unwrap();
        assert_eq!(dotted.segment_prefix().as_deref(), Some("/v1.0"));
        assert_eq!(PathRegex("/api(?:/.*)?$".into()).segment_prefix(), None);
        assert_eq!(PathRegex("^/a.b(?:/.*)?$".into()).segment_prefix(), None);
    }

    #[test]
    fn full_match_keeps_start_anchor_semantics() {
        let r = PathRegex("/api".into()).full_match_regex();
        let re = regex::Regex::new(&format!("^{r}$")).unwrap();
        assert!(re.is_match("/api/v1"));
        assert!(re.is_match("/api"));
        assert!(!re.is_match("/x/api"));
        let r = PathRegex("/ping$".into()).full_match_regex();
        let re = regex::Regex::new(&format!("^{r}$")).unwrap();
        assert!(re.is_match("/ping"));
        assert!(!re.is_match("/ping/x"));
    }

    #[test]
    fn yaml_form_is_stable_and_sorted() {
        use crate::model::Kind;
        let key = ObjectKey::new(Kind::TrafficTarget, "ns", "t");
        let mut ir = Ir::default();
        for sa in ["b", "a"] {
            let id = Identity::new("ns", sa);
            ir.access.insert(
                id.clone(),
                AccessPolicy {
                    destination: id,
                    rules: vec![AccessRule {
                        parent: key.clone(),
                        rule_index: 0,
                        field: "spec.rules[0]".into(),
                        sources: vec![Identity::new("other", "c")],
                        ports: if sa == "a" {
                            Ports::All
                        } else {
                            Ports::Only([443, 80].into())
                        },
                        traffic: Traffic::Tcp,
                    }],
                },
            );
        }
        ir.status.insert(key, ObjectStatus::default());
        let want = "namespaces: {}\nservices: {}\nworkloads: {}\nsplits: {}\naccess:\n  ns/a:\n    rules:\n    - parent: TrafficTarget/ns/t\n      ruleIndex: 0\n      field: spec.rules[0]\n      sources:\n      - other/c\n      ports: all\n      traffic: tcp\n  ns/b:\n    rules:\n    - parent: TrafficTarget/ns/t\n      ruleIndex: 0\n      field: spec.rules[0]\n      sources:\n      - other/c\n      ports:\n      - 80\n      - 443\n      traffic: tcp\nstatus:\n  TrafficTarget/ns/t:\n    accepted: false\n    resolvedRefs: false\n    conflicted: false\n";
        assert_eq!(ir.to_yaml(), want);
        assert_eq!(ir.clone().to_yaml(), ir.to_yaml());
    }
}
