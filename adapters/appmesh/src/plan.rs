//! IR → [`DesiredState`]: the one translation both outputs (CRDs and direct API) render.

use crate::model::*;
use meshbridge_core::capability::{Feature, Level};
use meshbridge_core::ir::{
    Backend, Filter, HttpRoute, Ir, PathKind, PathRegex, Protocol, RouteRule, ServicePort, Split,
    SplitPort, SvcKey, TargetPort, Traffic, selects,
};
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_core::report::reasons;
use meshbridge_core::weights::largest_remainder;
use meshbridge_core::{Context, Finding};
use std::collections::BTreeSet;

/// Builds what App Mesh should hold for `ir`. Pure and deterministic.
pub fn desired_state(ir: &Ir, cx: &Context) -> DesiredState {
    let mut p = Planner {
        ir,
        cx,
        st: DesiredState {
            owner: cx.controller_namespace.clone(),
            ..Default::default()
        },
        roots: ir.splits.keys().cloned().collect(),
    };
    for split in ir.splits.values() {
        if split.rules.is_empty() || split.ports.is_empty() {
            p.split(split);
        } else {
            p.table(split);
        }
    }
    for (ns, splits) in &ir.consumer_splits {
        for split in splits.values() {
            p.finding(
                Feature::ConsumerRoutes,
                Level::None,
                &split.parent,
                "spec.parentRefs",
                format!(
                    "a consumer route (clients in namespace {ns} only, for Service {}): App Mesh routes per VirtualRouter, the same for every client, and has no per-client-namespace routing; not programmed, so clients in {ns} use the Service's own routing",
                    split.root
                ),
            );
        }
    }
    for policy in ir.access.values() {
        for rule in &policy.rules {
            let (feature, what) = match &rule.traffic {
                Traffic::Http(_) => (Feature::HttpAccess, "HTTP"),
                Traffic::Tcp => (Feature::TcpAccess, "TCP"),
                Traffic::Udp => (Feature::UdpAccess, "UDP"),
            };
            p.finding(
                feature,
                Level::None,
                &rule.parent,
                &rule.field,
                format!(
                    "App Mesh has no request-level authorization: this {what} allow rule for {} is not programmed (only client backends and listener TLS SAN validation exist)",
                    policy.destination
                ),
            );
        }
    }
    // A TrafficTarget without rules (v1alpha1/v1alpha2) allows nothing: its destination is
    // meant to stay denied, which App Mesh cannot express either (core reports the rule).
    let covered: BTreeSet<&ObjectKey> = ir
        .access
        .values()
        .flat_map(|p| p.rules.iter().map(|r| &r.parent))
        .collect();
    for (key, status) in &ir.status {
        if key.kind != Kind::TrafficTarget || !status.usable() || covered.contains(key) {
            continue;
        }
        let field = status
            .problems
            .iter()
            .find(|pr| pr.condition_reason == reasons::NO_RULES)
            .map_or("(object)", |pr| pr.field.as_str());
        p.finding(
            Feature::TcpAccess,
            Level::None,
            key,
            field,
            "the TrafficTarget allows nothing, so its destination is meant to be denied all traffic; App Mesh has no per-source authorization, so that is not programmed".into(),
        );
    }
    let mut st = p.st;
    for r in st.virtual_routers.values_mut() {
        r.routes.sort_by(|a, b| a.name.cmp(&b.name));
        r.listeners.sort();
        r.listeners.dedup();
    }
    for n in st.virtual_nodes.values_mut() {
        n.listeners.sort();
        n.listeners.dedup();
    }
    st.findings.sort();
    st.findings.dedup();
    st
}

/// App Mesh name of a virtual node or router for a Service (the controller's `awsName`
/// default: `<name>_<namespace>`).
pub fn node_names(svc: &SvcKey) -> Names {
    Names {
        namespace: svc.namespace.clone(),
        k8s_name: svc.name.clone(),
        aws_name: format!("{}_{}", svc.name, svc.namespace),
    }
}

fn protocol_of(p: &ServicePort) -> PortProtocol {
    if !p.is_http() {
        return PortProtocol::Tcp;
    }
    let ap = p.app_protocol.as_deref().unwrap_or("").to_ascii_lowercase();
    let name = p.name.as_deref().unwrap_or("").to_ascii_lowercase();
    if matches!(ap.as_str(), "grpc" | "grpc-web") || (ap.is_empty() && name.starts_with("grpc")) {
        // gRPC routes match on service/method only; HTTP/2 routes keep path/method/header
        // matching, and gRPC is HTTP/2.
        PortProtocol::Http2
    } else if matches!(ap.as_str(), "http2" | "h2c" | "kubernetes.io/h2c")
        || (ap.is_empty() && name.starts_with("http2"))
    {
        PortProtocol::Http2
    } else {
        PortProtocol::Http
    }
}

struct Planner<'a> {
    ir: &'a Ir,
    cx: &'a Context,
    st: DesiredState,
    roots: BTreeSet<SvcKey>,
}

/// A route target before normalisation.
struct RawTarget {
    node: Names,
    weight: u64,
    port: u16,
    label: String,
}

impl Planner<'_> {
    fn finding(
        &mut self,
        feature: Feature,
        level: Level,
        object: &ObjectKey,
        field: &str,
        reason: String,
    ) {
        self.st.findings.push(Finding {
            feature,
            level,
            object: object.clone(),
            field: field.to_string(),
            reason,
        });
    }

    /// The container port a Service's target port names, from the pods it selects.
    fn resolve_target_port(&self, svc: &SvcKey, tp: &TargetPort) -> Result<u16, String> {
        let name = match tp {
            TargetPort::Number(n) => return Ok(*n),
            TargetPort::Named(n) => n,
        };
        let Some(s) = self.ir.services.get(svc) else {
            return Err(format!(
                "Service {svc} is not in the input: named targetPort {name:?} cannot be resolved"
            ));
        };
        let mut found = BTreeSet::new();
        if !s.selector.is_empty() {
            for w in self.ir.workloads.values() {
                for pod in &w.pods {
                    if pod.namespace == svc.namespace && selects(&s.selector, &pod.labels) {
                        for (n, p) in &pod.container_ports {
                            if n.as_deref() == Some(name.as_str()) {
                                found.insert(*p);
                            }
                        }
                    }
                }
            }
        }
        match found.len() {
            1 => Ok(*found.iter().next().unwrap_or(&0)),
            0 => Err(format!(
                "named targetPort {name:?} of Service {svc} matches no container port of its pods: App Mesh listeners need a number"
            )),
            _ => Err(format!(
                "named targetPort {name:?} of Service {svc} means different container ports on different pods ({found:?}): App Mesh has one listener port per node"
            )),
        }
    }

    /// Registers (or extends) the virtual node of `svc` with a listener.
    fn node(&mut self, svc: &SvcKey, mapping: PortMapping, parent: &ObjectKey) -> Names {
        let names = node_names(svc);
        // The root Service of a split usually selects every version's pods; a pod matched
        // by two virtual nodes is rejected by the controller, so a root's node only serves
        // as a routing target (no podSelector).
        let selector = if self.roots.contains(svc) {
            None
        } else {
            self.ir
                .services
                .get(svc)
                .map(|s| s.selector.clone())
                .filter(|s| !s.is_empty())
        };
        let hostname = svc.fqdn(&self.cx.cluster_domain);
        let vn = self
            .st
            .virtual_nodes
            .entry(names.aws_name.clone())
            .or_insert_with(|| VirtualNodeDef {
                names: names.clone(),
                hostname,
                listeners: Vec::new(),
                pod_selector: selector,
                parents: BTreeSet::new(),
            });
        // One listener per port: the first protocol seen wins.
        if !vn.listeners.iter().any(|l| l.port == mapping.port) {
            vn.listeners.push(mapping);
        }
        vn.parents.insert(parent.clone());
        names
    }

    fn split(&mut self, split: &Split) {
        let parent = split.parent.clone();
        if split.ports.is_empty() {
            self.finding(
                Feature::TrafficSplit,
                Level::None,
                &parent,
                "spec.service",
                format!(
                    "root Service {} is not in the input: its ports are unknown, so no VirtualRouter listener can be written; not programmed",
                    split.root
                ),
            );
            return;
        }
        let usable = self.usable_ports(
            split,
            "spec.service",
            |p| match p {
                Protocol::Udp => "UDP".into(),
                _ => "SCTP".into(),
            },
            false,
        );
        if usable.is_empty() {
            return;
        }
        let multi = usable.len() > 1;
        let mut listeners = Vec::new();
        let mut routes: Vec<RouteDef> = Vec::new();
        // (index of the port's first route, the root's listener on that port)
        let mut root_ports: Vec<(usize, PortMapping)> = Vec::new();
        for (sp, proto) in usable {
            let port = sp.port.port;
            // The root's own endpoints (catch-all target of A/B, fallback of an all-zero port).
            let Some(root_tp) = self.root_port(split, sp, Feature::TrafficSplit, "spec.service")
            else {
                continue;
            };
            // The root's own node is registered only if a route targets it (below).
            let root_node = node_names(&split.root);
            root_ports.push((
                routes.len(),
                PortMapping {
                    port: root_tp,
                    protocol: proto,
                },
            ));
            if root_tp != port && !split.matches.is_empty() {
                self.finding(
                    Feature::TrafficSplit,
                    Level::Partial,
                    &parent,
                    "spec.service",
                    format!(
                        "Service {} maps port {port} to targetPort {root_tp}: App Mesh DNS service discovery dials {}:{root_tp} for requests that miss the matches, which reaches the pods only if the Service also exposes port {root_tp} (or use port == targetPort)",
                        split.root,
                        split.root.fqdn(&self.cx.cluster_domain)
                    ),
                );
            }
            listeners.push(PortMapping {
                port,
                protocol: proto,
            });
            let targets = self.targets(split, sp, proto, &root_node, root_tp, multi);
            let is_http = proto != PortProtocol::Tcp;
            let root_only = only(&root_node, multi.then_some(root_tp));
            if !is_http {
                let tgts = if split.matches.is_empty() {
                    targets
                } else {
                    self.finding(
                        Feature::TrafficSplitMatches,
                        Level::Partial,
                        &parent,
                        "spec.matches",
                        format!(
                            "port {port} of {} is not HTTP: HTTP matches cannot apply, so its connections go to the root service unchanged",
                            split.root
                        ),
                    );
                    root_only.clone()
                };
                routes.push(tcp_route(port, CATCH_ALL_PRIORITY, multi, tgts));
                continue;
            }
            let http2 = proto != PortProtocol::Http;
            let port_match = multi.then_some(port);
            if split.matches.is_empty() {
                let name = format!("p{port}-split");
                routes.push(catch_all(name, http2, port_match, targets));
                continue;
            }
            // A/B: one route per (match, method) in SMI order, explicit priorities, then
            // the catch-all to the root's own node.
            let mut priority: u16 = 1;
            for (i, m) in split.matches.iter().enumerate() {
                for (suffix, hm) in self.http_matches(&parent, i, m, port_match) {
                    if priority >= CATCH_ALL_PRIORITY {
                        self.finding(
                            Feature::TrafficSplitMatches,
                            Level::Partial,
                            &parent,
                            &format!("spec.matches[{i}]"),
                            format!(
                                "more than {} match routes on port {port}: App Mesh priorities run out; the rest go to the root service",
                                CATCH_ALL_PRIORITY - 1
                            ),
                        );
                        break;
                    }
                    let name = format!("p{port}-m{i}{suffix}");
                    routes.push(http_route(name, priority, http2, hm, targets.clone()));
                    priority += 1;
                }
            }
            let name = format!("p{port}-default");
            routes.push(catch_all(name, http2, port_match, root_only));
        }
        if listeners.is_empty() {
            return;
        }
        let root_names = node_names(&split.root);
        for (k, (first, mapping)) in root_ports.iter().enumerate() {
            let end = root_ports.get(k + 1).map_or(routes.len(), |n| n.0);
            if targets_node(&routes[*first..end], &root_names) {
                self.node(&split.root, *mapping, &parent);
            }
        }
        self.router(split, listeners, routes);
    }

    /// The ports of `split` App Mesh can route (with their protocol); the others (UDP,
    /// SCTP, named by `name`) are reported. With `http`, a plain TCP port carries HTTP.
    fn usable_ports<'s>(
        &mut self,
        split: &'s Split,
        field: &str,
        name: fn(Protocol) -> String,
        http: bool,
    ) -> Vec<(&'s SplitPort, PortProtocol)> {
        let mut usable = Vec::new();
        for sp in &split.ports {
            let p = sp.port.protocol;
            if p == Protocol::Tcp {
                let proto = match protocol_of(&sp.port) {
                    PortProtocol::Tcp if http => PortProtocol::Http,
                    proto => proto,
                };
                usable.push((sp, proto));
                continue;
            }
            self.finding(
                if p == Protocol::Udp {
                    Feature::UdpRoutes
                } else {
                    Feature::TcpRoutes
                },
                Level::None,
                &split.parent,
                field,
                format!(
                    "port {} of {} is {}: App Mesh routes only HTTP, HTTP/2, gRPC and TCP; not programmed",
                    sp.port.port,
                    split.root,
                    name(p)
                ),
            );
        }
        usable
    }

    /// The root's target port for `sp`, or `None` (reported: the port is not programmed).
    fn root_port(
        &mut self,
        split: &Split,
        sp: &SplitPort,
        feature: Feature,
        field: &str,
    ) -> Option<u16> {
        match self.resolve_target_port(&split.root, &sp.port.target_port) {
            Ok(tp) => Some(tp),
            Err(reason) => {
                let port = sp.port.port;
                self.finding(
                    feature,
                    Level::None,
                    &split.parent,
                    field,
                    format!("{reason}; port {port} not programmed"),
                );
                None
            }
        }
    }

    /// The root's VirtualRouter (with `listeners` and `routes` added) and the
    /// VirtualService that names it.
    fn router(&mut self, split: &Split, listeners: Vec<PortMapping>, routes: Vec<RouteDef>) {
        let parent = split.parent.clone();
        let router_names = node_names(&split.root);
        let vr = self
            .st
            .virtual_routers
            .entry(router_names.aws_name.clone())
            .or_insert_with(|| VirtualRouterDef {
                names: router_names.clone(),
                listeners: Vec::new(),
                routes: Vec::new(),
                parents: BTreeSet::new(),
            });
        vr.listeners.extend(listeners);
        vr.routes.extend(routes);
        vr.parents.insert(parent.clone());
        let vs_names = Names {
            namespace: split.root.namespace.clone(),
            k8s_name: split.root.name.clone(),
            aws_name: split.root.fqdn(&self.cx.cluster_domain),
        };
        let vs = self
            .st
            .virtual_services
            .entry(vs_names.aws_name.clone())
            .or_insert_with(|| VirtualServiceDef {
                names: vs_names,
                router: router_names,
                parents: BTreeSet::new(),
            });
        vs.parents.insert(parent);
    }

    /// Weighted targets of one port: merged per node, at most 10, normalised to 100.
    fn targets(
        &mut self,
        split: &Split,
        sp: &SplitPort,
        proto: PortProtocol,
        root_node: &Names,
        root_tp: u16,
        multi: bool,
    ) -> Vec<Target> {
        let parent = split.parent.clone();
        let port = sp.port.port;
        let mut raw: Vec<RawTarget> = Vec::new();
        for (idx, tp) in &sp.backends {
            let Some(b): Option<&Backend> = split.backends.get(*idx) else {
                continue;
            };
            let field = format!("spec.backends[{idx}]");
            let (node, tport) = if b.is_root {
                (root_node.clone(), root_tp)
            } else {
                let tport = match self.resolve_target_port(&b.service, tp) {
                    Ok(n) => n,
                    Err(reason) => {
                        if b.weight > 0 {
                            self.finding(
                                Feature::TrafficSplit,
                                Level::Partial,
                                &parent,
                                &field,
                                format!("{reason}; left out of the split on port {port}"),
                            );
                        }
                        continue;
                    }
                };
                let node = self.node(
                    &b.service,
                    PortMapping {
                        port: tport,
                        protocol: proto,
                    },
                    &parent,
                );
                (node, tport)
            };
            if tport != port && b.weight > 0 {
                self.finding(
                    Feature::TrafficSplit,
                    Level::Partial,
                    &parent,
                    &field,
                    format!(
                        "Service {} maps port {port} to targetPort {tport}: App Mesh DNS service discovery dials {}:{tport}, which reaches the pods only if the Service also exposes port {tport} (or use port == targetPort)",
                        b.service,
                        b.service.fqdn(&self.cx.cluster_domain)
                    ),
                );
            }
            // Two backends on one node (the same Service twice) are merged.
            if let Some(t) = raw.iter_mut().find(|t| t.node == node && t.port == tport) {
                t.weight = t.weight.saturating_add(b.weight);
            } else {
                raw.push(RawTarget {
                    node,
                    weight: b.weight,
                    port: tport,
                    label: b.service.to_string(),
                });
            }
        }
        if raw.iter().all(|t| t.weight == 0) {
            // Nothing left with a share on this port: SMI sends everything to the root.
            return only(root_node, multi.then_some(root_tp));
        }
        // Zero-weight backends never get traffic: leave them out (keeps within 10 targets).
        raw.retain(|t| t.weight > 0);
        if raw.len() > MAX_TARGETS {
            let mut order: Vec<usize> = (0..raw.len()).collect();
            order.sort_by(|a, b| raw[*b].weight.cmp(&raw[*a].weight).then(a.cmp(b)));
            let keep: BTreeSet<usize> = order.iter().take(MAX_TARGETS).copied().collect();
            let dropped: Vec<String> = (0..raw.len())
                .filter(|i| !keep.contains(i))
                .map(|i| raw[i].label.clone())
                .collect();
            self.finding(
                Feature::TrafficSplit,
                Level::Partial,
                &parent,
                "spec.backends",
                format!(
                    "{} backends on port {port}: an App Mesh route takes at most {MAX_TARGETS} weighted targets; the {MAX_TARGETS} largest are kept and renormalised, left out: {}",
                    raw.len(),
                    dropped.join(", ")
                ),
            );
            let mut i = 0;
            raw.retain(|_| {
                let k = keep.contains(&i);
                i += 1;
                k
            });
        }
        let weights: Vec<u64> = raw.iter().map(|t| t.weight).collect();
        let norm = largest_remainder(&weights, 100);
        let mut out = Vec::new();
        for (t, w) in raw.into_iter().zip(norm) {
            if w == 0 {
                self.finding(
                    Feature::TrafficSplit,
                    Level::Partial,
                    &parent,
                    "spec.backends",
                    format!(
                        "backend {} has weight {} which rounds to 0% on port {port}: App Mesh weights are whole percents, so it gets no traffic",
                        t.label, t.weight
                    ),
                );
                continue;
            }
            out.push(Target {
                node: t.node,
                weight: u8::try_from(w).unwrap_or(100),
                port: multi.then_some(t.port),
            });
        }
        out
    }

    /// One HTTP match per method (App Mesh takes one method per route). Matches that cannot
    /// be expressed are reported and left out: their requests go to the root service, never
    /// to a wider match.
    fn http_matches(
        &mut self,
        parent: &ObjectKey,
        i: usize,
        m: &HttpRoute,
        port: Option<u16>,
    ) -> Vec<(String, HttpMatch)> {
        let field = format!("spec.matches[{i}]");
        let label = format!(
            "{} {}/{} match {:?}",
            m.group.kind, m.group.namespace, m.group.name, m.name
        );
        let path = match match_path(m) {
            Ok(pm) => pm,
            Err(reason) => {
                self.finding(
                    Feature::PathRouting,
                    Level::Partial,
                    parent,
                    &field,
                    format!("{label}: {reason}; its requests go to the root service"),
                );
                return vec![];
            }
        };
        if m.headers.len() > MAX_HEADERS {
            self.finding(
                Feature::HeaderRouting,
                Level::Partial,
                parent,
                &field,
                format!(
                    "{label}: {} headers; App Mesh matches at most {MAX_HEADERS} per route; its requests go to the root service",
                    m.headers.len()
                ),
            );
            return vec![];
        }
        let mut headers = Vec::new();
        for h in &m.headers {
            if h.name.is_empty() || h.name.len() > MAX_HEADER_NAME {
                self.finding(
                    Feature::HeaderRouting,
                    Level::Partial,
                    parent,
                    &field,
                    format!(
                        "{label}: header name {:?} is longer than App Mesh's {MAX_HEADER_NAME} characters; its requests go to the root service",
                        h.name
                    ),
                );
                return vec![];
            }
            match header_value(&h.regex) {
                Some(value) => headers.push(HeaderDef {
                    name: h.name.clone(),
                    value,
                }),
                None => {
                    self.finding(
                        Feature::HeaderRouting,
                        Level::Partial,
                        parent,
                        &field,
                        format!(
                            "{label}: header {:?} regex is longer than App Mesh's {MAX_MATCH_LEN} characters; its requests go to the root service",
                            h.name
                        ),
                    );
                    return vec![];
                }
            }
        }
        headers.sort();
        let mut out = Vec::new();
        if m.methods.is_empty() {
            out.push((
                String::new(),
                HttpMatch {
                    path,
                    method: None,
                    headers,
                    port,
                },
            ));
            return out;
        }
        let mut methods: Vec<&String> = m.methods.iter().collect();
        methods.sort();
        methods.dedup();
        for meth in methods {
            let up = meth.to_ascii_uppercase();
            if !HTTP_METHODS.contains(&up.as_str()) {
                self.finding(
                    Feature::MethodRouting,
                    Level::Partial,
                    parent,
                    &field,
                    format!(
                        "{label}: method {meth:?} is not one App Mesh can match ({}); those requests go to the root service",
                        HTTP_METHODS.join(" ")
                    ),
                );
                continue;
            }
            out.push((
                format!("-{}", up.to_ascii_lowercase()),
                HttpMatch {
                    path: path.clone(),
                    method: Some(up),
                    headers: headers.clone(),
                    port,
                },
            ));
        }
        out
    }
}

/// One rule of a route table as App Mesh route matches (one per IR match and method), with
/// the query parameters each carries (route extras).
type RuleMatches = Vec<(String, HttpMatch, Vec<(String, String)>)>;

/// HTTP status codes App Mesh's `server-error` retry event covers.
const SERVER_ERRORS: [u16; 11] = [500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511];
/// `gateway-error`.
const GATEWAY_ERRORS: [u16; 3] = [502, 503, 504];
/// App Mesh's route timeout default (also Envoy's), used as the per-try timeout a retry
/// policy requires when the route gives none.
const DEFAULT_TIMEOUT_MS: u64 = 15_000;

/// The literal a whole-value regex stands for, if it is one (non-empty).
fn literal(re: &str) -> Option<String> {
    match PathRegex(format!("^(?:{re})$")).kind() {
        PathKind::Exact(lit) if !lit.is_empty() => Some(lit),
        _ => None,
    }
}

impl Planner<'_> {
    /// A GAMMA route table: one App Mesh route per rule match (and method), priorities in
    /// rule order (0 = first rule), no catch-all: a request no route matches gets Envoy's
    /// 404 (`NR`), which is what the table says. Rules App Mesh cannot express are left out
    /// whole (reported): their requests then match a later rule, or none.
    fn table(&mut self, split: &Split) {
        let parent = split.parent.clone();
        // An HTTPRoute / GRPCRoute says the port carries HTTP.
        let http_table = split.parent.kind != Kind::GatewayTCPRoute;
        let usable = self.usable_ports(split, "spec.parentRefs", |p| format!("{p:?}"), http_table);
        if usable.is_empty() {
            return;
        }
        // What each rule becomes (reported once, not per port).
        let plans: Vec<Option<(RuleMatches, RouteExtras)>> = split
            .rules
            .iter()
            .map(|r| self.rule_plan(&parent, r))
            .collect();
        let multi = usable.len() > 1;
        let router_names = node_names(&split.root);
        let root_names = node_names(&split.root);
        let mut listeners = Vec::new();
        let mut routes: Vec<RouteDef> = Vec::new();
        let mut extras: Vec<(String, RouteExtras)> = Vec::new();
        let mut root_mappings: Vec<PortMapping> = Vec::new();
        for (sp, proto) in usable {
            let port = sp.port.port;
            let Some(root_tp) = self.root_port(split, sp, Feature::RouteTables, "spec.parentRefs")
            else {
                continue;
            };
            let first = routes.len();
            listeners.push(PortMapping {
                port,
                protocol: proto,
            });
            let port_match = multi.then_some(port);
            if proto == PortProtocol::Tcp {
                if let Some(r) = split.rules.first()
                    && let Some(targets) =
                        self.rule_targets(split, r, sp, proto, &root_names, root_tp, multi)
                {
                    routes.push(tcp_route(port, 0, multi, targets));
                }
                for r in split.rules.iter().skip(1) {
                    self.finding(
                        Feature::TcpRoutes,
                        Level::Partial,
                        &parent,
                        &r.field,
                        "a TCP route applies its first rule to every connection; later rules are never used and are not programmed".into(),
                    );
                }
            } else {
                let http2 = proto != PortProtocol::Http;
                for (i, (r, plan)) in split.rules.iter().zip(&plans).enumerate() {
                    let Some((matches, x)) = plan else {
                        continue;
                    };
                    let Some(targets) =
                        self.rule_targets(split, r, sp, proto, &root_names, root_tp, multi)
                    else {
                        continue;
                    };
                    let priority = u16::try_from(i)
                        .unwrap_or(CATCH_ALL_PRIORITY)
                        .min(CATCH_ALL_PRIORITY);
                    for (j, (suffix, hm, query)) in matches.iter().enumerate() {
                        let name = format!("p{port}-r{i}-m{j}{suffix}");
                        let mut hm = hm.clone();
                        hm.port = port_match;
                        let mut x = x.clone();
                        x.query = query.clone();
                        if x != RouteExtras::default() {
                            extras.push((name.clone(), x));
                        }
                        routes.push(http_route(name, priority, http2, hm, targets.clone()));
                    }
                }
            }
            if targets_node(&routes[first..], &root_names) {
                root_mappings.push(PortMapping {
                    port: root_tp,
                    protocol: proto,
                });
            }
        }
        if listeners.is_empty() {
            return;
        }
        for m in root_mappings {
            self.node(&split.root, m, &parent);
        }
        for (route, x) in extras {
            self.st
                .route_extras
                .insert((router_names.aws_name.clone(), route), x);
        }
        self.router(split, listeners, routes);
    }

    /// Reports a rule left out of the table.
    fn leave_out(
        &mut self,
        parent: &ObjectKey,
        field: &str,
        feature: Feature,
        level: Level,
        why: String,
    ) {
        self.finding(
            feature,
            level,
            parent,
            field,
            format!(
                "{why}; the whole rule is left out, so its requests match a later rule of the route (and go to its backends) or none (404)"
            ),
        );
    }

    /// The weighted targets of one rule on one port; `None` (reported) when no backend
    /// with a positive weight serves the port: the rule answers 500, which App Mesh routes
    /// cannot do.
    #[allow(clippy::too_many_arguments)]
    fn rule_targets(
        &mut self,
        split: &Split,
        r: &RouteRule,
        sp: &SplitPort,
        proto: PortProtocol,
        root_node: &Names,
        root_tp: u16,
        multi: bool,
    ) -> Option<Vec<Target>> {
        let mut rs = split.clone();
        for b in &mut rs.backends {
            b.weight = 0;
        }
        for (i, w) in &r.backends {
            if let Some(b) = rs.backends.get_mut(*i) {
                b.weight = b.weight.saturating_add(*w);
            }
        }
        let rsp = SplitPort {
            port: sp.port.clone(),
            backends: sp
                .backends
                .iter()
                .filter(|(i, _)| rs.backends.get(*i).is_some_and(|b| b.weight > 0))
                .cloned()
                .collect(),
        };
        if rsp.backends.is_empty() || r.redirect().is_some() {
            if r.redirect().is_none() {
                self.leave_out(
                    &split.parent,
                    &r.field,
                    Feature::RouteTables,
                    Level::Partial,
                    format!(
                        "the rule has no backend with a positive weight on port {} (Gateway API answers its requests 500); an App Mesh route needs a weighted target and cannot answer a fixed status",
                        sp.port.port
                    ),
                );
            }
            return None;
        }
        let t = self.targets(&rs, &rsp, proto, root_node, root_tp, multi);
        (!t.is_empty()).then_some(t)
    }

    /// A rule's matches, timeout and retry policy, or `None` (reported) when App Mesh cannot
    /// express it: header modifiers, rewrites and redirects, regex query matches, limits.
    fn rule_plan(
        &mut self,
        parent: &ObjectKey,
        r: &RouteRule,
    ) -> Option<(RuleMatches, RouteExtras)> {
        for (k, f) in r.filters.iter().enumerate() {
            let (feature, what) = match f {
                Filter::RequestHeaders(_) => (Feature::HeaderModifiers, "RequestHeaderModifier"),
                Filter::ResponseHeaders(_) => (Feature::HeaderModifiers, "ResponseHeaderModifier"),
                Filter::Rewrite { .. } => (Feature::UrlRewrite, "URLRewrite"),
                Filter::Redirect(_) => (Feature::Redirects, "RequestRedirect"),
            };
            self.leave_out(
                parent,
                &format!("{}.filters[{k}]", r.field),
                feature,
                Level::None,
                format!("App Mesh virtual routes cannot express a {what} filter (routes only match and pick weighted targets)"),
            );
        }
        if !r.filters.is_empty() {
            return None;
        }
        let mut out: RuleMatches = Vec::new();
        let any = [HttpRoute {
            group: parent.clone(),
            name: String::new(),
            path: None,
            methods: vec![],
            headers: vec![],
            query: vec![],
        }];
        let matches: &[HttpRoute] = if r.matches.is_empty() {
            &any
        } else {
            &r.matches
        };
        for (j, m) in matches.iter().enumerate() {
            let field = format!("{}.matches[{j}]", r.field);
            let path = match match_path(m) {
                Ok(pm) => pm,
                Err(reason) => {
                    self.leave_out(parent, &field, Feature::PathRouting, Level::Partial, reason);
                    return None;
                }
            };
            if m.headers.len() > MAX_HEADERS || m.query.len() > MAX_HEADERS {
                self.leave_out(
                    parent,
                    &field,
                    Feature::HeaderRouting,
                    Level::Partial,
                    format!("{} headers and {} query parameters; App Mesh matches at most {MAX_HEADERS} of each per route", m.headers.len(), m.query.len()),
                );
                return None;
            }
            let mut headers = Vec::new();
            for h in &m.headers {
                match header_value(&h.regex) {
                    Some(value) if !h.name.is_empty() && h.name.len() <= MAX_HEADER_NAME => headers
                        .push(HeaderDef {
                            name: h.name.clone(),
                            value,
                        }),
                    _ => {
                        self.leave_out(
                            parent,
                            &field,
                            Feature::HeaderRouting,
                            Level::Partial,
                            format!("header {:?} exceeds App Mesh's limits (name {MAX_HEADER_NAME}, value {MAX_MATCH_LEN} characters)", h.name),
                        );
                        return None;
                    }
                }
            }
            headers.sort();
            let mut query = Vec::new();
            for q in &m.query {
                match literal(&q.regex) {
                    Some(v) if v.len() <= MAX_MATCH_LEN => query.push((q.name.clone(), v)),
                    _ => {
                        self.leave_out(
                            parent,
                            &field,
                            Feature::QueryRouting,
                            Level::None,
                            format!("query parameter {:?} is matched by the regex `{}`: App Mesh matches query parameters exactly only", q.name, q.regex),
                        );
                        return None;
                    }
                }
            }
            let methods: Vec<Option<String>> = if m.methods.is_empty() {
                vec![None]
            } else {
                m.methods
                    .iter()
                    .map(|x| Some(x.to_ascii_uppercase()))
                    .collect()
            };
            for meth in methods {
                if let Some(mm) = &meth
                    && !HTTP_METHODS.contains(&mm.as_str())
                {
                    self.leave_out(
                        parent,
                        &field,
                        Feature::MethodRouting,
                        Level::Partial,
                        format!(
                            "method {mm:?} is not one App Mesh can match ({})",
                            HTTP_METHODS.join(" ")
                        ),
                    );
                    return None;
                }
                let suffix = meth
                    .as_deref()
                    .map_or(String::new(), |x| format!("-{}", x.to_ascii_lowercase()));
                out.push((
                    suffix,
                    HttpMatch {
                        path: path.clone(),
                        method: meth,
                        headers: headers.clone(),
                        port: None,
                    },
                    query.clone(),
                ));
            }
        }
        // Without retries the one try is bounded by both timeouts.
        let mut x = RouteExtras {
            per_request_ms: match (r.timeout_ms, r.backend_timeout_ms, &r.retry) {
                (t, Some(b), None) => Some(t.filter(|t| *t > 0).map_or(b, |t| t.min(b))),
                (t, _, _) => t,
            },
            ..RouteExtras::default()
        };
        if let Some(ms) = x
            .per_request_ms
            .filter(|ms| *ms == 0 || *ms > DEFAULT_TIMEOUT_MS)
        {
            let what = if ms == 0 {
                "no timeout (perRequest 0)".to_string()
            } else {
                format!("a {ms}ms timeout")
            };
            self.finding(
                Feature::Timeouts,
                Level::Partial,
                parent,
                &format!("{}.timeouts", r.field),
                format!(
                    "{what} is written on the route, but App Mesh also bounds each request by the timeouts of every resource in the conversation, and the target VirtualNodes' listener timeouts (default {DEFAULT_TIMEOUT_MS}ms) are not set by meshbridge"
                ),
            );
        }
        if let Some(rt) = r.retry.as_ref().filter(|rt| rt.attempts > 0) {
            x.retry = Some(self.retry_def(parent, r, rt));
        }
        Some((out, x))
    }

    fn retry_def(
        &mut self,
        parent: &ObjectKey,
        r: &RouteRule,
        rt: &meshbridge_core::ir::Retry,
    ) -> RetryDef {
        let field = format!("{}.retry", r.field);
        let codes: BTreeSet<u16> = rt.codes.iter().copied().collect();
        let mut events: Vec<&'static str> = Vec::new();
        let mut covered: BTreeSet<u16> = BTreeSet::new();
        if !codes.is_empty() && codes.iter().all(|c| GATEWAY_ERRORS.contains(c)) {
            events.push("gateway-error");
            covered.extend(GATEWAY_ERRORS);
        } else if codes.iter().any(|c| SERVER_ERRORS.contains(c)) {
            events.push("server-error");
            covered.extend(SERVER_ERRORS);
        }
        if codes.contains(&409) {
            events.push("client-error");
            covered.insert(409);
        }
        let missing: Vec<String> = codes.difference(&covered).map(|c| c.to_string()).collect();
        let extra: Vec<String> = covered.difference(&codes).map(|c| c.to_string()).collect();
        if !missing.is_empty() {
            self.finding(
                Feature::Retries,
                Level::Partial,
                parent,
                &field,
                format!("App Mesh retries by event (server-error: 5xx, gateway-error: 502/503/504, client-error: 409), not by status code: {} are not retried", missing.join(", ")),
            );
        }
        if !extra.is_empty() {
            self.finding(
                Feature::Retries,
                Level::Partial,
                parent,
                &field,
                format!(
                    "App Mesh retries by event, not by status code: the events {} also retry {}",
                    events.join(", "),
                    extra.join(", ")
                ),
            );
        }
        if rt.backoff_ms.is_some() {
            self.finding(
                Feature::Retries,
                Level::Partial,
                parent,
                &field,
                "App Mesh retry policies have no backoff setting: Envoy's default backoff (25ms base) applies".into(),
            );
        }
        let per_try = r.backend_timeout_ms.or(r.timeout_ms.filter(|t| *t > 0));
        if per_try.is_none() {
            self.finding(
                Feature::Retries,
                Level::Partial,
                parent,
                &field,
                format!("an App Mesh retry policy needs a per-retry timeout and the rule gives none: {DEFAULT_TIMEOUT_MS}ms (App Mesh's default request timeout) is used"),
            );
        }
        RetryDef {
            max_retries: rt.attempts,
            per_retry_timeout_ms: per_try.unwrap_or(DEFAULT_TIMEOUT_MS),
            http_events: events,
            tcp_events: vec!["connection-error"],
        }
    }
}

/// The lowest-priority HTTP route of a port: every request (`prefix: /`) to `targets`.
fn catch_all(name: String, http2: bool, port: Option<u16>, targets: Vec<Target>) -> RouteDef {
    let every = HttpMatch {
        path: PathMatch::Prefix("/".into()),
        method: None,
        headers: vec![],
        port,
    };
    http_route(name, CATCH_ALL_PRIORITY, http2, every, targets)
}

/// An HTTP (or HTTP/2) route.
fn http_route(
    name: String,
    priority: u16,
    http2: bool,
    r#match: HttpMatch,
    targets: Vec<Target>,
) -> RouteDef {
    RouteDef {
        name,
        priority,
        kind: RouteKind::Http {
            http2,
            r#match,
            targets,
        },
    }
}

/// The TCP route of `port` (matching the port only when the router has several).
fn tcp_route(port: u16, priority: u16, multi: bool, targets: Vec<Target>) -> RouteDef {
    RouteDef {
        name: format!("p{port}-tcp"),
        priority,
        kind: RouteKind::Tcp {
            port: multi.then_some(port),
            targets,
        },
    }
}

/// All traffic to one node.
fn only(node: &Names, port: Option<u16>) -> Vec<Target> {
    vec![Target {
        node: node.clone(),
        weight: 100,
        port,
    }]
}

/// Whether any of `routes` sends traffic to `node`.
fn targets_node(routes: &[RouteDef], node: &Names) -> bool {
    routes
        .iter()
        .any(|r| r.kind.targets().iter().any(|t| t.node == *node))
}

/// The path of a match: `prefix: /` when it gives none.
fn match_path(m: &HttpRoute) -> Result<PathMatch, String> {
    m.path
        .as_ref()
        .map_or_else(|| Ok(PathMatch::Prefix("/".into())), path_match)
}

/// A start-anchored SMI path regex as an App Mesh path match: `prefix` for literals
/// (optionally followed by `.*`), `path.exact` for `literal$`, else `path.regex` with the
/// whole-path form `(?:P).*`.
pub fn path_match(p: &PathRegex) -> Result<PathMatch, String> {
    let pm = match p.kind() {
        PathKind::Any => PathMatch::Prefix("/".into()),
        PathKind::Prefix(lit) if lit.starts_with('/') => PathMatch::Prefix(lit),
        PathKind::Exact(lit) if lit.starts_with('/') => PathMatch::Exact(lit),
        _ => PathMatch::Regex(p.full_match_regex()),
    };
    let len = match &pm {
        PathMatch::Prefix(s) | PathMatch::Exact(s) | PathMatch::Regex(s) => s.len(),
    };
    if len > MAX_MATCH_LEN {
        return Err(format!(
            "pathRegex {:?} needs {len} characters; App Mesh accepts at most {MAX_MATCH_LEN}",
            p.0
        ));
    }
    Ok(pm)
}

/// A whole-value header regex as `exact` (a non-empty literal) or `regex`; `None` when too
/// long for App Mesh.
pub fn header_value(re: &str) -> Option<HeaderValue> {
    if let PathKind::Exact(lit) = PathRegex(format!("^(?:{re})$")).kind()
        && !lit.is_empty()
        && lit.len() <= MAX_MATCH_LEN
    {
        return Some(HeaderValue::Exact(lit));
    }
    let re = if re.is_empty() { "^$" } else { re };
    (re.len() <= MAX_MATCH_LEN).then(|| HeaderValue::Regex(re.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_forms() {
        let pm = |s: &str| path_match(&PathRegex(s.into())).unwrap();
        assert_eq!(pm("/api"), PathMatch::Prefix("/api".into()));
        assert_eq!(pm(".*"), PathMatch::Prefix("/".into()));
        assert_eq!(pm("/ping$"), PathMatch::Exact("/ping".into()));
        assert_eq!(pm("/v[0-9]+"), PathMatch::Regex("(?:/v[0-9]+).*".into()));
        assert_eq!(pm("api"), PathMatch::Regex("(?:api).*".into()));
        assert!(path_match(&PathRegex(format!("/{}", "a".repeat(300)))).is_err());
    }

    #[test]
    fn header_forms() {
        assert_eq!(
            header_value("canary"),
            Some(HeaderValue::Exact("canary".into()))
        );
        assert_eq!(
            header_value(".*Firefox.*"),
            Some(HeaderValue::Regex(".*Firefox.*".into()))
        );
        assert_eq!(header_value(""), Some(HeaderValue::Regex("^$".into())));
        assert_eq!(header_value(&"x|".repeat(200)), None);
    }
}
