//! meshbridge adapter for the Kubernetes Gateway API in mesh mode (GAMMA): SMI
//! TrafficSplits become `HTTPRoute`s, `GRPCRoute`s and `TCPRoute`s attached to the root
//! Service (`parentRefs: [{group: "", kind: Service, name: <root>, port: <root port>}]`).
//! Gateway API has no authorization resource, so every TrafficTarget rule is reported.
//!
//! Mapping (README.md has the full table):
//! - One route per root Service port, named `<root>-<port>` (a port number has no `-`, so
//!   the name is unique per root and port), in the root's namespace (a producer route).
//!   HTTP ports ([`ServicePort::is_http`]) get an `HTTPRoute` — a `GRPCRoute` on gRPC ports
//!   when every match is exactly expressible for gRPC; other TCP ports a `TCPRoute`
//!   (`v1`, or `v1alpha2` with the Mesh's `tcpRouteVersion`); UDP and SCTP ports nothing.
//! - `backendRefs` name each backend Service with the root port (SMI reaches backends on
//!   the root's port; core drops backends lacking it) and its weight, scaled with
//!   [`fit_under`] only when a weight exceeds 1,000,000.
//! - A/B splits: rules with the converted matches, then a catch-all rule to the root
//!   Service itself (its backend facet), since GAMMA rejects requests that no rule matches
//!   while SMI sends them to the root.
//! - GAMMA route tables ([`table`]): written back rule for rule (no catch-all); consumer
//!   routes in the client namespace with `parentRefs[].namespace`, plus ReferenceGrants for
//!   their backendRefs to other namespaces.

mod matches;
pub mod table;

pub use matches::{ANY_PATH_REGEX, exact_path_ok};

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::ir::SvcKey;
use meshbridge_core::ir::{
    Backend, HttpRoute, Ports, Protocol, ServicePort, Split, SplitPort, Traffic,
};
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_core::weights::fit_under;
use meshbridge_core::{
    Adapter, CapabilityMatrix, Context, Feature, Finding, Ir, Level, OutputObject, Translation,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// `gateway.networking.k8s.io/v1` (HTTPRoute, GRPCRoute, standard TCPRoute).
pub const API_V1: &str = "gateway.networking.k8s.io/v1";
/// `gateway.networking.k8s.io/v1alpha2` (experimental TCPRoute, what Linkerd bundles).
pub const API_V1ALPHA2: &str = "gateway.networking.k8s.io/v1alpha2";
/// `backendRefs[].weight` maximum.
pub const MAX_WEIGHT: u64 = 1_000_000;
/// `backendRefs` maxItems per rule.
pub const MAX_BACKEND_REFS: usize = 16;

/// Which TCPRoute version to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TcpRouteVersion {
    /// Standard channel since Gateway API v1.6.0 (`rules` maxItems 1).
    #[default]
    V1,
    /// Experimental channel (Linkerd and older clusters serve only this).
    V1Alpha2,
}

impl TcpRouteVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            TcpRouteVersion::V1 => API_V1,
            TcpRouteVersion::V1Alpha2 => API_V1ALPHA2,
        }
    }

    /// The version from `Context.mesh.tcp_route_version`: `v1` (default) or `v1alpha2`,
    /// optionally as a full apiVersion. An unrecognised value is returned as the second
    /// element, and `v1` is used.
    pub fn from_context(cx: &Context) -> (TcpRouteVersion, Option<String>) {
        let Some(raw) = cx
            .mesh
            .as_ref()
            .and_then(|m| m.tcp_route_version.as_deref())
        else {
            return (TcpRouteVersion::V1, None);
        };
        let v = raw.trim().to_ascii_lowercase();
        let v = v.strip_prefix("gateway.networking.k8s.io/").unwrap_or(&v);
        match v {
            "" | "v1" => (TcpRouteVersion::V1, None),
            "v1alpha2" => (TcpRouteVersion::V1Alpha2, None),
            _ => (TcpRouteVersion::V1, Some(raw.to_string())),
        }
    }
}

/// The Gateway API (GAMMA) backend.
#[derive(Clone, Debug, Default)]
pub struct GatewayApiAdapter;

const ACCESS_REASON: &str = "Gateway API has no authorization resource (GEP-3779 is experimental and L4-only): use the mesh's own adapter (istio, linkerd) for access control";

impl Adapter for GatewayApiAdapter {
    fn mesh_type(&self) -> MeshType {
        MeshType::GatewayApi
    }

    fn capabilities(&self, cx: &Context) -> CapabilityMatrix {
        let mut m = CapabilityMatrix::new([
            (
                Feature::TrafficSplit,
                Level::Partial,
                "weighted backendRefs per root port; weights above 1,000,000 are scaled down (shares may round); needs the root Service in the input for its ports; at most 16 backends per port; SCTP ports are not routed",
            ),
            (
                Feature::TrafficSplitMatches,
                Level::Partial,
                "rules with the matches plus a catch-all rule to the root Service (GAMMA rejects unmatched requests); at most 127 matches per route (one per method); only on ports declared HTTP (appProtocol or port name)",
            ),
            (
                Feature::PathRouting,
                Level::Partial,
                "exact paths → Exact and `/` → PathPrefix (Core); other prefixes and regexes → RegularExpression, whose support and precedence are implementation-specific (PathPrefix matches whole segments, unlike SMI's string prefix); at most 1024 characters",
            ),
            (Feature::MethodRouting, Level::Full, ""),
            (
                Feature::HeaderRouting,
                Level::Partial,
                "literal values → Exact (Core); other regexes → RegularExpression (implementation-specific); one condition per header name and at most 16 per match",
            ),
            (Feature::HttpAccess, Level::None, ACCESS_REASON),
            (Feature::TcpAccess, Level::None, ACCESS_REASON),
            (Feature::UdpAccess, Level::None, ACCESS_REASON),
            (Feature::TcpRoutes, Level::Full, ""),
            (
                Feature::UdpRoutes,
                Level::None,
                "UDPRoute is experimental and not defined for mesh (GAMMA)",
            ),
            (
                Feature::Metrics,
                Level::None,
                "no Gateway API counterpart; read metrics from the mesh itself",
            ),
            (
                Feature::Mtls,
                Level::None,
                "not configurable through Gateway API; the underlying mesh provides mTLS",
            ),
            (
                Feature::RouteTables,
                Level::Partial,
                "rules written back in order without a catch-all (GAMMA answers unmatched requests 404); at most 16 rules, 64 matches per rule and fewer than 128 in all: the table ends at the first rule that does not fit (its requests then get 404); RegularExpression paths are implementation-specific",
            ),
            (
                Feature::QueryRouting,
                Level::Partial,
                "literal values → Exact (Core); other regexes → RegularExpression (implementation-specific); HTTPRoute only (GRPCRoute has no queryParams)",
            ),
            (Feature::HeaderModifiers, Level::Full, ""),
            (
                Feature::UrlRewrite,
                Level::Partial,
                "URLRewrite is Extended support; routes with a rewrite are HTTPRoutes (GRPCRoute has no URLRewrite)",
            ),
            (
                Feature::Redirects,
                Level::Partial,
                "RequestRedirect is Core for HTTPRoute; routes with a redirect are HTTPRoutes (GRPCRoute has no redirect)",
            ),
            (
                Feature::Timeouts,
                Level::Partial,
                "`timeouts` is Extended support; routes with timeouts are HTTPRoutes (GRPCRoute has none)",
            ),
            (
                Feature::Retries,
                Level::None,
                "`retry` is an experimental-channel field: meshbridge writes the standard channel (v1.6.1), whose HTTPRoute CRD lacks it",
            ),
            (Feature::ConsumerRoutes, Level::Full, ""),
        ]);
        if let (_, Some(bad)) = TcpRouteVersion::from_context(cx) {
            m.set(
                Feature::TcpRoutes,
                Level::Partial,
                format!(
                    "Mesh tcpRouteVersion `{bad}` is neither v1 nor v1alpha2: TCPRoute v1 is emitted"
                ),
            );
        }
        m
    }

    fn translate(&self, ir: &Ir, cx: &Context) -> Translation {
        let (tcp, bad_version) = TcpRouteVersion::from_context(cx);
        let mut out = Translation::default();
        let mut grants = Grants::new();
        let consumers = ir
            .consumer_splits
            .iter()
            .flat_map(|(ns, m)| m.values().map(move |s| (Some(ns.as_str()), s)));
        for (consumer, split) in ir.splits.values().map(|s| (None, s)).chain(consumers) {
            SplitTranslation {
                ir,
                cx,
                split,
                tcp,
                bad_version: bad_version.as_deref(),
                consumer,
                grants: &mut grants,
                out: &mut out,
            }
            .run();
        }
        table::reference_grants(cx, grants, &mut out);
        access_findings(ir, &mut out.findings);
        out.finish()
    }
}

fn finding(
    feature: Feature,
    level: Level,
    object: &ObjectKey,
    field: &str,
    reason: String,
) -> Finding {
    Finding {
        feature,
        level,
        object: object.clone(),
        field: field.to_string(),
        reason,
    }
}

/// A `backendRef` to a Service in the route's namespace.
fn service_ref(name: &str, port: u16, weight: Option<u64>) -> Value {
    let mut v = json!({"group": "", "kind": "Service", "name": name, "port": port});
    if let Some(w) = weight {
        v["weight"] = json!(w);
    }
    v
}

/// Cross-namespace backendRefs of consumer routes, which need a ReferenceGrant in the
/// backend's namespace: (backend namespace, route namespace, route kind) → Service names
/// and the objects that asked for them.
type Grants = BTreeMap<(String, String, &'static str), (BTreeSet<String>, BTreeSet<ObjectKey>)>;

/// `a` and `b` give every backend the same share (`a_i / Σa == b_i / Σb`).
fn same_shares(a: &[u64], b: &[u64]) -> bool {
    let sa: u128 = a.iter().map(|x| *x as u128).sum();
    let sb: u128 = b.iter().map(|x| *x as u128).sum();
    a.iter()
        .zip(b)
        .all(|(x, y)| (*x as u128) * sb == (*y as u128) * sa)
}

/// gRPC ports: `appProtocol: grpc`, or (without appProtocol) Istio's port-name convention
/// `grpc` / `grpc-*` (but not `grpc-web*`, which is HTTP/1-compatible).
fn is_grpc(p: &ServicePort) -> bool {
    match &p.app_protocol {
        Some(ap) => ap.eq_ignore_ascii_case("grpc"),
        None => p.name.as_deref().is_some_and(|n| {
            let n = n.to_ascii_lowercase();
            (n == "grpc" || n.starts_with("grpc-")) && !n.starts_with("grpc-web")
        }),
    }
}

struct SplitTranslation<'a> {
    ir: &'a Ir,
    cx: &'a Context,
    split: &'a Split,
    tcp: TcpRouteVersion,
    bad_version: Option<&'a str>,
    /// The client namespace of a consumer route (`Ir::consumer_splits`); `None` for the
    /// producer's split.
    consumer: Option<&'a str>,
    grants: &'a mut Grants,
    out: &'a mut Translation,
}

impl SplitTranslation<'_> {
    fn report(&mut self, feature: Feature, level: Level, field: &str, reason: String) {
        self.out
            .findings
            .push(finding(feature, level, &self.split.parent, field, reason));
    }

    /// The namespace the route is written to: the client's for a consumer route.
    fn route_ns(&self) -> &str {
        self.consumer.unwrap_or(&self.split.root.namespace)
    }

    /// The route's name: `<root>-<port>`; a consumer route `<root>.<root namespace>-<port>`
    /// (one client namespace may route Services of equal names in several namespaces).
    fn route_name(&self, port: u16) -> String {
        let root = &self.split.root;
        match self.consumer {
            None => format!("{}-{port}", root.name),
            Some(_) => format!("{}.{}-{port}", root.name, root.namespace),
        }
    }

    /// `parentRefs` naming the root Service on `port` (with its namespace for a consumer
    /// route).
    fn parent_refs(&self, port: u16) -> Value {
        let root = &self.split.root;
        let mut p = json!({"group": "", "kind": "Service", "name": root.name, "port": port});
        if self.consumer.is_some() {
            p["namespace"] = json!(root.namespace);
        }
        json!([p])
    }

    /// A `backendRef` to `svc` from a route of kind `kind`: with `namespace` (and a
    /// ReferenceGrant recorded) when the Service is in another namespace than the route.
    fn backend_ref(
        &mut self,
        kind: &'static str,
        svc: &SvcKey,
        port: u16,
        weight: Option<u64>,
    ) -> Value {
        let mut v = service_ref(&svc.name, port, weight);
        let route_ns = self.route_ns().to_string();
        if svc.namespace != route_ns {
            v["namespace"] = json!(svc.namespace);
            let e = self
                .grants
                .entry((svc.namespace.clone(), route_ns, kind))
                .or_default();
            e.0.insert(svc.name.clone());
            e.1.insert(self.split.parent.clone());
        }
        v
    }

    fn run(mut self) {
        let split = self.split;
        let root = &split.root;
        if !split.ports.is_empty() && !split.rules.is_empty() {
            self.run_table();
            return;
        }
        if split.ports.is_empty() {
            let reason = if self.ir.services.contains_key(root) {
                format!(
                    "Service {root} declares no ports: Gateway API routes attach to a Service port and name backend ports, so the split is not translated"
                )
            } else {
                format!(
                    "Service {root} is not in the input: Gateway API routes need its ports (parentRefs[].port, backendRefs[].port), which are not guessed, so the split is not translated; include the Service"
                )
            };
            self.report(Feature::TrafficSplit, Level::None, "spec.service", reason);
            return;
        }
        // A/B: only when no match selects every request (then the split covers everything).
        let ab = !split.matches.is_empty() && !split.matches.iter().any(HttpRoute::is_catch_all);
        let http = ab.then(|| matches::convert_http(&split.matches));
        let grpc = if ab {
            matches::convert_grpc(&split.matches)
        } else {
            None
        };
        let mut parents = vec![split.parent.clone()];
        if ab {
            parents.extend(split.matches.iter().map(|m| m.group.clone()));
        }
        let mut used_http_matches = false;
        for sp in &split.ports {
            let p = &sp.port;
            match p.protocol {
                Protocol::Udp => {
                    if !ab {
                        self.report(
                            Feature::UdpRoutes,
                            Level::None,
                            "spec.service",
                            format!(
                                "port {}/UDP of Service {root}: UDPRoute is not defined for mesh (GAMMA), so the split is not applied on this port",
                                p.port
                            ),
                        );
                    }
                    continue;
                }
                Protocol::Sctp => {
                    if !ab {
                        self.report(
                            Feature::TrafficSplit,
                            Level::None,
                            "spec.service",
                            format!(
                                "port {}/SCTP of Service {root}: Gateway API has no route kind for SCTP, so the split is not applied on this port",
                                p.port
                            ),
                        );
                    }
                    continue;
                }
                Protocol::Tcp => {}
            }
            if !p.is_http() && ab {
                self.report(
                    Feature::TrafficSplitMatches,
                    Level::Partial,
                    "spec.matches",
                    format!(
                        "port {} of Service {root} is not declared HTTP (appProtocol `http`, or a port name `http` / `http-*`), so the matches cannot apply on it and its traffic goes to the root Service unchanged (declare the port if it carries HTTP)",
                        p.port
                    ),
                );
                continue;
            }
            let kind: &'static str = if !p.is_http() {
                "TCPRoute"
            } else if is_grpc(p) && (!ab || grpc.is_some()) {
                "GRPCRoute"
            } else {
                "HTTPRoute"
            };
            let Some(refs) = self.backend_refs(sp, kind) else {
                continue;
            };
            let name = self.route_name(p.port);
            let parent_refs = self.parent_refs(p.port);
            let root_ref = if ab {
                self.backend_ref(kind, root, p.port, None)
            } else {
                Value::Null
            };
            let (api, kind, rules) = if kind == "TCPRoute" {
                if let Some(bad) = self.bad_version {
                    self.report(
                        Feature::TcpRoutes,
                        Level::Partial,
                        "spec.service",
                        format!(
                            "Mesh tcpRouteVersion `{bad}` is neither v1 nor v1alpha2: TCPRoute v1 is emitted"
                        ),
                    );
                }
                (
                    self.tcp.api_version(),
                    "TCPRoute",
                    json!([{"backendRefs": refs}]),
                )
            } else if kind == "GRPCRoute" {
                let rules = match &grpc {
                    None => json!([{"backendRefs": refs}]),
                    Some(ms) => {
                        let mut rules: Vec<Value> = ms
                            .chunks(matches::MAX_MATCHES_PER_RULE)
                            .map(|c| json!({"matches": c, "backendRefs": refs}))
                            .collect();
                        rules.push(json!({"backendRefs": [root_ref]}));
                        Value::Array(rules)
                    }
                };
                (API_V1, "GRPCRoute", rules)
            } else {
                let rules = match &http {
                    None => json!([{
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "backendRefs": refs,
                    }]),
                    Some(conv) => {
                        used_http_matches = true;
                        if conv.matches.is_empty() {
                            // Every match was left out (reported): all requests go to the root.
                            continue;
                        }
                        let mut rules: Vec<Value> = conv
                            .matches
                            .chunks(matches::MAX_MATCHES_PER_RULE)
                            .map(|c| json!({"matches": c, "backendRefs": refs}))
                            .collect();
                        rules.push(
                            json!({"matches": [conv.catch_all()], "backendRefs": [root_ref]}),
                        );
                        Value::Array(rules)
                    }
                };
                (API_V1, "HTTPRoute", rules)
            };
            self.out.objects.push(OutputObject::new(
                self.cx,
                api,
                kind,
                Some(self.route_ns()),
                &name,
                parents.clone(),
                json!({"spec": {"parentRefs": parent_refs, "rules": rules}}),
            ));
        }
        if used_http_matches && let Some(conv) = &http {
            for (feature, level, reason) in conv.issues.clone() {
                self.report(feature, level, "spec.matches", reason);
            }
        }
    }

    /// The weighted `backendRefs` of one root port, or `None` when no route is needed (no
    /// backend with a positive weight serves the port: SMI sends its traffic to the root)
    /// or possible (reported).
    fn backend_refs(&mut self, sp: &SplitPort, kind: &'static str) -> Option<Vec<Value>> {
        let split = self.split;
        let mut entries: Vec<&Backend> = sp
            .backends
            .iter()
            .filter_map(|(i, _)| split.backends.get(*i))
            .collect();
        if entries.iter().all(|b| b.weight == 0) {
            return None;
        }
        if entries.len() > MAX_BACKEND_REFS {
            // Zero-weight backends receive nothing: leaving them out changes no share.
            entries.retain(|b| b.weight > 0);
        }
        if entries.len() > MAX_BACKEND_REFS {
            self.report(
                Feature::TrafficSplit,
                Level::None,
                "spec.backends",
                format!(
                    "port {} of Service {}: {} backends with a positive weight; a Gateway API rule takes at most {MAX_BACKEND_REFS} backendRefs, so the split is not applied on this port",
                    sp.port.port,
                    split.root,
                    entries.len()
                ),
            );
            return None;
        }
        let weights: Vec<u64> = entries.iter().map(|b| b.weight).collect();
        let mut scaled = fit_under(&weights, MAX_WEIGHT);
        for (s, w) in scaled.iter_mut().zip(&weights) {
            // Keep every positive backend in the split (SMI gives it a share).
            if *w > 0 && *s == 0 {
                *s = 1;
            }
        }
        if !same_shares(&weights, &scaled) {
            let pairs: Vec<String> = entries
                .iter()
                .zip(&scaled)
                .map(|(b, s)| format!("{} {} → {s}", b.service.name, b.weight))
                .collect();
            self.report(
                Feature::TrafficSplit,
                Level::Partial,
                "spec.backends",
                format!(
                    "weights above the Gateway API maximum of {MAX_WEIGHT} are scaled down, which rounds the shares: {}",
                    pairs.join(", ")
                ),
            );
        }
        Some(
            entries
                .iter()
                .zip(scaled)
                .map(|(b, w)| self.backend_ref(kind, &b.service, sp.port.port, Some(w)))
                .collect(),
        )
    }
}

/// Every TrafficTarget rule (and rule-less TrafficTarget) is an access decision Gateway API
/// cannot express.
fn access_findings(ir: &Ir, findings: &mut Vec<Finding>) {
    let mut covered: BTreeSet<&ObjectKey> = BTreeSet::new();
    for policy in ir.access.values() {
        let dest = &policy.destination;
        for r in &policy.rules {
            covered.insert(&r.parent);
            let (feature, what) = match &r.traffic {
                Traffic::Http(_) => (Feature::HttpAccess, "HTTP requests"),
                Traffic::Tcp => (Feature::TcpAccess, "TCP connections"),
                Traffic::Udp => (Feature::UdpAccess, "UDP traffic"),
            };
            let sources: Vec<String> = r.sources.iter().map(|s| s.to_string()).collect();
            let ports = match &r.ports {
                Ports::All => "any port".to_string(),
                Ports::Only(s) if s.is_empty() => "no port".to_string(),
                Ports::Only(s) => {
                    let v: Vec<String> = s.iter().map(|p| p.to_string()).collect();
                    format!("port {}", v.join(", "))
                }
            };
            findings.push(finding(
                feature,
                Level::None,
                &r.parent,
                &r.field,
                format!(
                    "allowing {what} from [{}] to ServiceAccount {dest} on {ports}, and denying everything else to it, is not expressed: {ACCESS_REASON}",
                    sources.join(", ")
                ),
            ));
        }
    }
    for (key, st) in &ir.status {
        if key.kind == Kind::TrafficTarget && st.usable() && !covered.contains(key) {
            let field = st
                .problems
                .iter()
                .find(|p| p.condition_reason == meshbridge_core::report::reasons::NO_RULES)
                .map_or("(object)", |p| p.field.as_str());
            findings.push(finding(
                Feature::TcpAccess,
                Level::None,
                key,
                field,
                format!(
                    "the TrafficTarget allows nothing, so its destination is denied all traffic; that is not expressed: {ACCESS_REASON}"
                ),
            ));
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn shares() {
        assert!(same_shares(&[2_000_000, 2_000_000], &[500_000, 500_000]));
        assert!(!same_shares(&[2_000_000, 1_000_000], &[666_667, 333_333]));
        assert!(same_shares(&[90, 10], &[90, 10]));
        assert!(same_shares(&[3, 0], &[1_000_000, 0]));
    }

    #[test]
    fn grpc_ports() {
        let port = |name: Option<&str>, ap: Option<&str>| ServicePort {
            name: name.map(str::to_string),
            port: 9000,
            target_port: meshbridge_core::ir::TargetPort::Number(9000),
            protocol: Protocol::Tcp,
            app_protocol: ap.map(str::to_string),
        };
        assert!(is_grpc(&port(None, Some("grpc"))));
        assert!(is_grpc(&port(None, Some("GRPC"))));
        assert!(!is_grpc(&port(Some("grpc"), Some("http"))));
        assert!(is_grpc(&port(Some("grpc"), None)));
        assert!(is_grpc(&port(Some("grpc-api"), None)));
        assert!(!is_grpc(&port(Some("grpc-web"), None)));
        assert!(!is_grpc(&port(Some("http"), None)));
    }

    #[test]
    fn tcp_route_versions() {
        let cx = |v: Option<&str>| Context {
            mesh: Some(meshbridge_core::api::meshbridge::MeshSpec {
                tcp_route_version: v.map(str::to_string),
                ..meshbridge_core::api::meshbridge::MeshSpec::of(MeshType::GatewayApi)
            }),
            ..Context::default()
        };
        assert_eq!(
            TcpRouteVersion::from_context(&Context::default()),
            (TcpRouteVersion::V1, None)
        );
        assert_eq!(
            TcpRouteVersion::from_context(&cx(Some("v1alpha2"))),
            (TcpRouteVersion::V1Alpha2, None)
        );
        assert_eq!(
            TcpRouteVersion::from_context(&cx(Some("gateway.networking.k8s.io/v1alpha2"))),
            (TcpRouteVersion::V1Alpha2, None)
        );
        assert_eq!(
            TcpRouteVersion::from_context(&cx(Some("v1"))),
            (TcpRouteVersion::V1, None)
        );
        assert_eq!(
            TcpRouteVersion::from_context(&cx(Some("v1beta9"))),
            (TcpRouteVersion::V1, Some("v1beta9".into()))
        );
        let m = GatewayApiAdapter.capabilities(&cx(Some("v1beta9")));
        assert_eq!(m.level(Feature::TcpRoutes), Level::Partial);
        let m = GatewayApiAdapter.capabilities(&cx(Some("v1alpha2")));
        assert_eq!(m.level(Feature::TcpRoutes), Level::Full);
    }
}
