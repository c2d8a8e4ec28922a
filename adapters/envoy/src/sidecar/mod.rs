//! Pure translation: IR + where the proxies run → per-proxy Envoy resources, as proto3 JSON
//! (with `@type`), one map per xDS type keyed by resource name.
//!
//! Layout of one sidecar (pod IP `P`, application address `A`):
//! - `outbound_http` on `P:15001`: HTTP, routes from scoped RDS — one route configuration per
//!   service (`outbound_http/<ns>/<svc>`), picked by the request's host (a route scope per host
//!   name of the service, [`outbound_scope_key`]), with one virtual host per HTTP port and the
//!   service's names as domains; TrafficSplit weights become
//!   weighted clusters, A/B matches become routes (path regex full-match `(?:P).*`, one route
//!   per method, header regexes) with a catch-all to the root service last. A route table
//!   (GAMMA [`Split::rules`]) becomes one route per rule match in precedence order, with its
//!   filters, redirect, timeouts and retries, and no catch-all: unmatched requests get 404
//!   ([`rules`]). Each proxy uses the split or route table of its namespace
//!   ([`Ir::split_for`]: a consumer route there wins over the producer's).
//! - `outbound_tcp_<port>` on `P:<port>`: one per service port not declared HTTP, `tcp_proxy`;
//!   on a port not declared at all ([`PortKind::Detect`]) Envoy's HTTP inspector picks a chain:
//!   HTTP (`http/1.0`, `http/1.1`, `h2c`) → HCM with RDS `outbound_http_<port>` (the port's
//!   routes, any host), anything else — or nothing sent within 1 s, a
//!   server-first protocol — `tcp_proxy` (to the root service when the port has a route
//!   table: HTTP routes say nothing about other traffic). Undeclared ports also get a virtual host in
//!   their service's `outbound_http/…` (the bare names go to the first declared HTTP port, else the first
//!   undeclared one).
//! - `inbound_<port>` on `P:<port>` per container port: mTLS required (client certificate
//!   from the mesh CA); HTTP ports: HCM with RDS `inbound_<port>` whose single route carries the
//!   RBAC policy of the pod's identity (per-route `RBACPerRoute`, so access edits are RDS-only
//!   pushes), default deny (403); ports declared non-HTTP: network RBAC then `tcp_proxy`;
//!   undeclared ports: both chains, chosen by the TLS inspector from the ALPN the client
//!   sidecar offers (its HTTP pool `http/1.1`/`h2`, its TCP proxy none). Container ports are
//!   the declared ones plus the Services' target ports ([`meshbridge_core::ir::served_ports`]). The connection
//!   goes on to `A:<port>` (cluster `inbound|<port>`). The caller's URI SAN reaches the
//!   application in `x-forwarded-client-cert`.
//! - Clusters `<ns>/<svc>|<port>` (EDS, mTLS with SDS certificates, peer SAN checked against
//!   the service's identities), endpoints = selected pods' `P:<targetPort>`.
//!
//! Per-proxy scope (outbound trimming). Access is default deny per destination identity and
//! always enforced by the destination's sidecar (the built-in mesh has no permissive mode). A
//! proxy whose identity is not a source of any rule of any identity behind a service port
//! (its pods, or the pods of any backend of a split rooted there) cannot get one request
//! through to it, so it gets none of that port's clusters or endpoints. What the client sees
//! stays the same: a trimmed HTTP port keeps its virtual host (same domains) whose single
//! route answers `403 RBAC: access denied` itself — what the destination's RBAC filter would
//! have answered (status, body, content type); a trimmed TCP port keeps its listener, whose deny-all network RBAC
//! closes the connection on its first byte — as the destination's network RBAC would have.
//! A port is trimmed only when every destination it routes to would refuse in that same way
//! (pods exist, each serves the target port behind an inbound listener of the same kind);
//! otherwise (no pods: `503 no healthy upstream`; a target port without an inbound listener:
//! connection refused) it is kept whole, as before.

use crate::proto::{CLUSTER, ENDPOINT, ROUTE, SCOPED_ROUTE};
use meshbridge_core::capability::{Feature, Level};
use meshbridge_core::ir::{
    HttpRoute, Identity, Ir, PodInfo, PortKind, Protocol, Service, ServicePort, Split, SvcKey,
    TargetPort, Traffic, port_name_kind, selects,
};
use meshbridge_core::model::ObjectKey;
use meshbridge_core::{Context, Finding};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod incremental;
mod proxy;
mod rbac;
mod rules;

pub use incremental::Translator;
pub use rbac::rbac_policies;

/// Outbound HTTP listener port on every sidecar.
pub const OUTBOUND_PORT: u16 = 15001;
/// Envoy admin port on every sidecar (local runtime).
pub const ADMIN_PORT: u16 = 15000;
/// SDS name of the CA bundle.
pub const ROOT_CA_SECRET: &str = "ROOTCA";
/// Route configuration of the outbound listener.
pub const OUTBOUND_ROUTE: &str = "outbound_http";
/// What Envoy's HTTP RBAC filter answers a request it denies (its local reply: status and
/// body, `content-type: text/plain`); trimmed ports answer the same.
pub const RBAC_DENIED_STATUS: u16 = 403;
pub const RBAC_DENIED_BODY: &str = "RBAC: access denied";
/// Where a proxy answers, itself, the requests it sends to trimmed HTTP ports: a listener
/// of its own on this port whose only route is the RBAC refusal above. Trimmed routes go
/// there through the cluster [`DENY_CLUSTER`] rather than answering directly, so that each
/// trimmed virtual host counts its refusals (virtual cluster [`DENIED_VCLUSTER`]:
/// `vhost.<ns>/<svc>|<port>.vcluster.denied.upstream_rq_403`), as a destination's refusals
/// are counted by the caller's cluster statistics: metrics see refused calls either way.
pub const DENY_PORT: u16 = 15004;
pub const DENY_CLUSTER: &str = "meshbridge-denied";
pub const DENIED_VCLUSTER: &str = "denied";
/// Early-data buffer of a trimmed TCP port's proxy (never used: its RBAC closes first).
const RBAC_EARLY_DATA_BYTES: u32 = 1024;

/// One proxy (sidecar) to configure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    pub namespace: String,
    /// Pod name.
    pub name: String,
    pub identity: Identity,
    /// The pod's address: where the sidecar listens and where other sidecars reach it.
    /// `None` (pod not scheduled): listeners bind `0.0.0.0` and the pod gets no endpoints.
    pub ip: Option<String>,
    /// Where the application listens (`127.0.0.1` in a pod; its own loopback address locally).
    pub app_ip: String,
    pub labels: BTreeMap<String, String>,
    pub container_ports: Vec<(Option<String>, u16)>,
}

impl Proxy {
    /// `namespace/name`: the Envoy node id.
    pub fn node_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn from_pod(id: &Identity, p: &PodInfo) -> Proxy {
        Proxy {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            identity: id.clone(),
            ip: p.ip.clone(),
            app_ip: "127.0.0.1".into(),
            labels: p.labels.clone(),
            container_ports: p.container_ports.clone(),
        }
    }

    fn resolve(&self, tp: &TargetPort) -> Option<u16> {
        match tp {
            TargetPort::Number(n) => Some(*n),
            TargetPort::Named(name) => self
                .container_ports
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name.as_str()))
                .map(|(_, p)| *p),
        }
    }
}

/// Every proxy of the IR: one per pod (or Deployment template) of every workload.
pub fn proxies_of(ir: &Ir) -> Vec<Proxy> {
    let mut v: Vec<Proxy> = ir
        .workloads
        .values()
        .flat_map(|w| w.pods.iter().map(|p| Proxy::from_pod(&w.identity, p)))
        .collect();
    v.sort_by_key(|p| p.node_id());
    v
}

/// One proxy's resources (proto3 JSON with `@type`), keyed by type URL then name.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    pub node_id: String,
    pub identity: Identity,
    /// SPIFFE URI of the identity (the SDS name of its certificate).
    pub spiffe: String,
    /// (Shared: proxies and generations that see the same resource share one value.)
    pub resources: BTreeMap<&'static str, BTreeMap<String, Arc<Value>>>,
    /// SDS secret names this proxy may fetch: its own certificate and the CA bundle.
    pub secrets: Vec<String>,
    /// Input objects that shaped this proxy's configuration.
    pub parents: BTreeSet<ObjectKey>,
}

/// One service as one view (a proxy's namespace and identity) sees it: everything of the
/// outbound side that depends on that service, built once per view and kept across
/// generations while nothing it read changed (see [`incremental`]).
#[derive(Debug, Default)]
pub(crate) struct Fragment {
    /// Clusters of the ports the view keeps (not trimmed).
    kept: Vec<String>,
    /// Clusters (with endpoints) those ports send to.
    send: BTreeSet<String>,
    /// Input objects that shaped it.
    parents: BTreeSet<ObjectKey>,
    /// Its route configuration (name, resource), when a port may carry HTTP.
    route: Option<(String, Arc<Value>)>,
    /// Its route scopes, by host (a host another service claimed first is left to it).
    scopes: Vec<(String, Arc<Value>)>,
    /// Some virtual host is trimmed (answered by the proxy's deny listener).
    trimmed: bool,
    /// Every cluster whose facts (identities, endpoints, refusal) it read.
    reads: Vec<String>,
}

/// How the outbound listener finds a request's route scope: the `:authority` up to its first
/// colon (the host without its port), compared exactly with each scope's host name.
pub fn outbound_scope_key() -> Value {
    json!({"fragments": [{"headerValueExtractor": {"name": ":authority", "elementSeparator": ":", "index": 0}}]})
}

/// How every endpoint of a cluster refuses a client whose identity it does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Refusal {
    /// The inbound port is HTTP: the RBAC filter answers `403 RBAC: access denied`.
    Forbidden,
    /// The inbound port is not HTTP: the network RBAC filter closes the connection.
    Close,
    /// The inbound port's protocol is detected: HTTP gets the 403, anything else is closed.
    Either,
}

/// One outbound cluster, computed once per IR.
struct ClusterInfo<'a> {
    /// Identities of the pods behind it (secure naming, and who may let a client in).
    ids: BTreeSet<&'a Identity>,
    /// The `ClusterLoadAssignment` (the same for every proxy).
    endpoints: Arc<Value>,
    /// How its destinations refuse a client they do not allow; `None` when they would not all
    /// refuse it the same way through their RBAC (no pods; a target port without an inbound
    /// listener; HTTP and non-HTTP inbound ports mixed).
    refusal: Option<Refusal>,
}

/// Shared (proxy-independent) outbound state, computed once per IR.
pub struct Mesh<'a> {
    ir: &'a Ir,
    cx: &'a Context,
    proxies: &'a [Proxy],
    /// Clusters `ns/svc|port`.
    clusters: BTreeMap<String, ClusterInfo<'a>>,
    /// Source identity → destination identities with a rule naming it → those rules'
    /// TrafficTargets.
    allowed: BTreeMap<&'a Identity, BTreeMap<&'a Identity, BTreeSet<&'a ObjectKey>>>,
    findings: Vec<Finding>,
}

pub fn cluster_name(svc: &SvcKey, port: u16) -> String {
    format!("{}/{}|{}", svc.namespace, svc.name, port)
}

/// The route action of a trimmed route: to the proxy's own deny listener.
fn denied_action() -> Value {
    json!({"cluster": DENY_CLUSTER})
}

fn ads() -> Value {
    json!({"ads": {}, "resourceApiVersion": "V3"})
}

fn sds(name: &str) -> Value {
    json!({"name": name, "sdsConfig": ads()})
}

fn socket(ip: &str, port: u16) -> Value {
    json!({"socketAddress": {"address": ip, "portValue": port}})
}

impl<'a> Mesh<'a> {
    pub fn new(ir: &'a Ir, cx: &'a Context, proxies: &'a [Proxy]) -> Self {
        let mut allowed: BTreeMap<&Identity, BTreeMap<&Identity, BTreeSet<&ObjectKey>>> =
            BTreeMap::new();
        for pol in ir.access.values() {
            for r in &pol.rules {
                for src in &r.sources {
                    allowed
                        .entry(src)
                        .or_default()
                        .entry(&pol.destination)
                        .or_default()
                        .insert(&r.parent);
                }
            }
        }
        let mut m = Mesh {
            ir,
            cx,
            proxies,
            clusters: BTreeMap::new(),
            allowed,
            findings: vec![],
        };
        let mut clusters = BTreeMap::new();
        for s in ir.services.values() {
            for p in &s.ports {
                if p.protocol != meshbridge_core::ir::Protocol::Tcp {
                    continue;
                }
                let name = cluster_name(&s.key, p.port);
                let info = m.cluster_info(&name, s, p);
                clusters.insert(name, info);
            }
        }
        m.clusters = clusters;
        m.global_findings();
        m
    }

    fn cluster_info(&self, name: &str, s: &'a Service, sp: &ServicePort) -> ClusterInfo<'a> {
        let mut ids = BTreeSet::new();
        let mut eps: Vec<(String, u16)> = vec![];
        let mut refusals = BTreeSet::new();
        let mut enforced = true;
        for p in self.pods_of(s) {
            ids.insert(&p.identity);
            let Some(port) = p.resolve(&sp.target_port) else {
                continue;
            };
            if let Some(ip) = &p.ip {
                eps.push((ip.clone(), port));
            }
            // A pod not yet scheduled (no address) counts as the endpoint it will become.
            if p.container_ports.iter().any(|(_, q)| *q == port) {
                refusals.insert(match self.port_kind(p, port) {
                    PortKind::Http => Refusal::Forbidden,
                    PortKind::Opaque => Refusal::Close,
                    PortKind::Detect => Refusal::Either,
                });
            } else {
                // No inbound listener there: the connection is refused (503), not the RBAC.
                enforced = false;
            }
        }
        eps.sort();
        eps.dedup();
        let lb: Vec<Value> = eps
            .iter()
            .map(|(ip, port)| json!({"endpoint": {"address": socket(ip, *port)}}))
            .collect();
        let mut endpoints = json!({"@type": ENDPOINT, "clusterName": name});
        if !lb.is_empty() {
            endpoints["endpoints"] = json!([{"lbEndpoints": lb}]);
        }
        let refusal = match (enforced, refusals.len()) {
            (true, 1) => refusals.into_iter().next(),
            _ => None,
        };
        ClusterInfo {
            ids,
            endpoints: Arc::new(endpoints),
            refusal,
        }
    }

    fn global_findings(&mut self) {
        for split in self.ir.splits.values() {
            if let Some(root) = self.ir.services.get(&split.root) {
                for p in &root.ports {
                    if p.protocol == meshbridge_core::ir::Protocol::Udp {
                        self.findings.push(Finding {
                            feature: Feature::UdpRoutes,
                            level: Level::None,
                            object: split.parent.clone(),
                            field: "spec.service".into(),
                            reason: format!(
                                "port {} of {} is UDP: the sidecar does not proxy UDP, the split is not applied to it",
                                p.port, split.root
                            ),
                        });
                    }
                }
            }
        }
        let tables = self
            .ir
            .splits
            .values()
            .chain(self.ir.consumer_splits.values().flat_map(|m| m.values()));
        for split in tables {
            rules::findings(split, &mut self.findings);
        }
        for pol in self.ir.access.values() {
            for r in &pol.rules {
                if r.traffic == Traffic::Udp {
                    self.findings.push(Finding {
                        feature: Feature::UdpAccess,
                        level: Level::None,
                        object: r.parent.clone(),
                        field: r.field.clone(),
                        reason: "the sidecar does not proxy UDP; UDP stays denied".into(),
                    });
                }
            }
        }
    }

    /// Findings (not per proxy), sorted later by the caller.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Pods (proxies) a service selects.
    fn pods_of(&self, s: &Service) -> impl Iterator<Item = &'a Proxy> + '_ {
        let sel = s.selector.clone();
        let ns = s.key.namespace.clone();
        self.proxies
            .iter()
            .filter(move |p| p.namespace == ns && !sel.is_empty() && selects(&sel, &p.labels))
    }

    fn tls_common(&self, own: &str) -> Value {
        json!({
            "tlsCertificateSdsSecretConfigs": [sds(own)],
            "validationContextSdsSecretConfig": sds(ROOT_CA_SECRET),
        })
    }

    fn cluster(&self, name: &str, own: &str) -> Value {
        let mut common = self.tls_common(own);
        if let Some(info) = self.clusters.get(name) {
            // Secure naming: the upstream sidecar must present one of the service's identities.
            let mut ids: Vec<String> = info
                .ids
                .iter()
                .map(|i| i.spiffe(&self.cx.trust_domain))
                .collect();
            ids.sort();
            ids.dedup();
            if !ids.is_empty() {
                let sans: Vec<Value> = ids
                    .iter()
                    .map(|i| json!({"sanType": "URI", "matcher": {"exact": i}}))
                    .collect();
                common = json!({
                    "tlsCertificateSdsSecretConfigs": [sds(own)],
                    "combinedValidationContext": {
                        "defaultValidationContext": {"matchTypedSubjectAltNames": sans},
                        "validationContextSdsSecretConfig": sds(ROOT_CA_SECRET),
                    }
                });
            }
        }
        json!({
            "@type": CLUSTER,
            "name": name,
            "type": "EDS",
            "edsClusterConfig": {"edsConfig": ads()},
            "connectTimeout": "1s",
            "transportSocket": {
                "name": "envoy.transport_sockets.tls",
                "typedConfig": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "commonTlsContext": common,
                }
            }
        })
    }

    /// Targets of a service port for clients in namespace `from` (their consumer route, else
    /// the producer's split): `(cluster, weight)`; a split applies when it has the port.
    /// `None` = the port is not routable (split configured but no backend has the port). A
    /// route table ([`Split::rules`]) routes HTTP only, rule by rule ([`rules`]): its port's
    /// targets here are the root (what non-HTTP traffic on a detected port reaches).
    fn targets(
        &self,
        from: &str,
        s: &Service,
        port: u16,
    ) -> (Vec<(String, u64)>, Option<&'a Split>) {
        let root = vec![(cluster_name(&s.key, port), 1)];
        let Some(split) = self.ir.split_for(from, &s.key) else {
            return (root, None);
        };
        let Some(sp) = split.ports.iter().find(|p| p.port.port == port) else {
            return (root, None);
        };
        if !split.rules.is_empty() {
            return (root, Some(split));
        }
        let v = fit_weights(
            sp.backends
                .iter()
                .filter_map(|(i, _)| split.backends.get(*i))
                .map(|b| (cluster_name(&b.service, port), b.weight))
                .collect(),
        );
        if v.is_empty() {
            return (root, None);
        }
        (v, Some(split))
    }

    fn http_action(&self, targets: &[(String, u64)]) -> Value {
        if targets.len() == 1 {
            json!({"cluster": targets[0].0, "timeout": "0s"})
        } else {
            let cs: Vec<Value> = targets
                .iter()
                .map(|(c, w)| json!({"name": c, "weight": w}))
                .collect();
            json!({"weightedClusters": {"clusters": cs}, "timeout": "0s"})
        }
    }

    /// The host names of a service (without port), as seen from namespace `from`.
    fn hosts(&self, s: &Service, from: &str) -> Vec<String> {
        let k = &s.key;
        let cd = &self.cx.cluster_domain;
        let mut names = vec![
            format!("{}.{}", k.name, k.namespace),
            format!("{}.{}.svc", k.name, k.namespace),
            k.fqdn(cd),
            format!("{}.", k.fqdn(cd)),
        ];
        if k.namespace == from {
            names.push(k.name.clone());
        }
        if let Some(ip) = &s.cluster_ip {
            names.push(ip.clone());
        }
        names
    }

    /// Domains of a service port, as seen from namespace `from`.
    fn domains(&self, s: &Service, port: u16, default_port: bool, from: &str) -> Vec<String> {
        let mut out = Vec::new();
        for n in self.hosts(s, from) {
            out.push(format!("{n}:{port}"));
            if default_port {
                out.push(n);
            }
        }
        out
    }

    fn route_matches(r: &HttpRoute) -> Vec<Value> {
        let mut base = json!({});
        match &r.path {
            Some(p) if p.kind() != meshbridge_core::ir::PathKind::Any => {
                base["safeRegex"] = json!({"regex": p.full_match_regex()});
            }
            _ => base["prefix"] = json!("/"),
        }
        Self::with_headers(r, base)
    }

    /// `base` (a path match) with the route's query parameters, then one match per method
    /// (`:method` first) with its headers (`host` as `:authority`).
    fn with_headers(r: &HttpRoute, mut base: Value) -> Vec<Value> {
        if !r.query.is_empty() {
            let qs: Vec<Value> = r
                .query
                .iter()
                .map(|q| json!({"name": q.name, "stringMatch": {"safeRegex": {"regex": q.regex}}}))
                .collect();
            base["queryParameters"] = json!(qs);
        }
        let headers: Vec<Value> = r
            .headers
            .iter()
            .map(|h| {
                let name = if h.name == "host" {
                    ":authority"
                } else {
                    &h.name
                };
                json!({"name": name, "stringMatch": {"safeRegex": {"regex": h.regex}}})
            })
            .collect();
        let with = |extra: Option<Value>| {
            let mut m = base.clone();
            let mut hs = headers.clone();
            if let Some(e) = extra {
                hs.insert(0, e);
            }
            if !hs.is_empty() {
                m["headers"] = json!(hs);
            }
            m
        };
        if r.methods.is_empty() {
            vec![with(None)]
        } else {
            r.methods
                .iter()
                .map(|m| {
                    with(Some(
                        json!({"name": ":method", "stringMatch": {"exact": m}}),
                    ))
                })
                .collect()
        }
    }

    /// Clusters of one service port: every cluster it may send to (its own and every backend
    /// of its split on that port, zero weights included), and those it routes to (for HTTP the
    /// root too when A/B matches send the rest there).
    fn port_clusters(
        &self,
        from: &str,
        s: &Service,
        port: u16,
        http: bool,
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let root = cluster_name(&s.key, port);
        let (targets, split) = self.targets(from, s, port);
        let mut routed: BTreeSet<String> = targets.into_iter().map(|(c, _)| c).collect();
        let mut all = routed.clone();
        all.insert(root.clone());
        if let Some(split) = split {
            if http && !split.matches.is_empty() {
                routed.insert(root);
            }
            // A route table: every cluster a rule sends to (the root stays in `routed`).
            routed.extend(rules::routed(split, port));
            if let Some(sp) = split.ports.iter().find(|p| p.port.port == port) {
                all.extend(
                    sp.backends
                        .iter()
                        .filter_map(|(i, _)| split.backends.get(*i))
                        .map(|b| cluster_name(&b.service, port)),
                );
            }
        }
        (all, routed)
    }

    /// Whether a service port is trimmed for a proxy running as `id`: no identity behind any
    /// cluster it may send to has a rule naming `id` as a source (so no request or connection
    /// of `id` can get through), and every cluster it routes to refuses as `how` says, so the
    /// proxy can answer that refusal itself. Otherwise returns the clusters to send (all of
    /// them, as without trimming) and records the TrafficTargets that let `id` in.
    /// `all` and `routed`: the port's clusters ([`Mesh::port_clusters`]).
    fn scope(
        &self,
        id: &Identity,
        all: &BTreeSet<String>,
        routed: &BTreeSet<String>,
        http: bool,
        parents: &mut BTreeSet<ObjectKey>,
    ) -> Option<BTreeSet<String>> {
        let mut reachable = false;
        if let Some(dests) = self.allowed.get(id) {
            for info in all.iter().filter_map(|c| self.clusters.get(c)) {
                for d in &info.ids {
                    if let Some(tts) = dests.get(d) {
                        reachable = true;
                        parents.extend(tts.iter().map(|k| (*k).clone()));
                    }
                }
            }
        }
        let how = if http {
            Refusal::Forbidden
        } else {
            Refusal::Close
        };
        let refused = routed.iter().all(|c| {
            self.clusters
                .get(c)
                .is_some_and(|i| i.refusal == Some(how) || i.refusal == Some(Refusal::Either))
        });
        if !reachable && refused {
            None
        } else {
            Some(all.clone())
        }
    }

    /// One service as a proxy running as `id` in namespace `from` sees it ([`Fragment`]):
    /// which of its ports the proxy keeps and the clusters they send to ([`Mesh::scope`]),
    /// and, when a port may carry HTTP (declared or detected), its route configuration
    /// `outbound_http/<ns>/<svc>` (one virtual host per such port) and its route scopes (one
    /// per host name of the service, see [`outbound_scope_key`]). One service's change is
    /// then one small route configuration, not every virtual host of the mesh.
    fn fragment(&self, id: &Identity, from: &str, s: &Service) -> Fragment {
        let mut f = Fragment::default();
        let mut kept = BTreeSet::new();
        for p in &s.ports {
            if p.protocol != Protocol::Tcp {
                continue;
            }
            let http = p.kind() != PortKind::Opaque;
            let (all, routed) = self.port_clusters(from, s, p.port, http);
            f.reads.extend(all.iter().chain(&routed).cloned());
            if let Some(cs) = self.scope(id, &all, &routed, http, &mut f.parents) {
                kept.insert(cluster_name(&s.key, p.port));
                f.send.extend(cs);
            }
        }
        f.reads.sort();
        f.reads.dedup();
        let http: Vec<&ServicePort> = s
            .ports
            .iter()
            .filter(|p| p.kind() != PortKind::Opaque)
            .collect();
        if !http.is_empty() {
            // The bare names (no port) go to the first declared HTTP port, else the first
            // port whose protocol is detected.
            let default = http
                .iter()
                .position(|p| p.kind() == PortKind::Http)
                .unwrap_or(0);
            let mut vhosts = Vec::new();
            for (i, p) in http.iter().enumerate() {
                let name = cluster_name(&s.key, p.port);
                let mut vh = json!({
                    "name": name,
                    "domains": self.domains(s, p.port, i == default, from),
                    "routes": self.port_routes(from, s, p.port, &kept, &mut f.parents),
                });
                if !kept.contains(&name) {
                    vh["virtualClusters"] = json!([{"name": DENIED_VCLUSTER, "headers": [{"name": ":method", "presentMatch": true}]}]);
                    f.trimmed = true;
                }
                vhosts.push(vh);
            }
            let route = format!("{OUTBOUND_ROUTE}/{}/{}", s.key.namespace, s.key.name);
            for host in self.hosts(s, from) {
                // A host with a colon (an IPv6 address) cannot be a scope key: the key is
                // the authority up to its first colon.
                if host.contains(':') {
                    continue;
                }
                let v = json!({
                    "@type": SCOPED_ROUTE,
                    "name": format!("{OUTBOUND_ROUTE}/{host}"),
                    "routeConfigurationName": route,
                    "key": {"fragments": [{"stringKey": host}]},
                });
                f.scopes.push((host, Arc::new(v)));
            }
            let v = json!({"@type": ROUTE, "name": route, "virtualHosts": vhosts});
            f.route = Some((route, Arc::new(v)));
        }
        f.kept = kept.into_iter().collect();
        f
    }

    /// The HTTP routes of one service port (its virtual host's), for clients in `from`.
    fn port_routes(
        &self,
        from: &str,
        s: &Service,
        port: u16,
        kept: &BTreeSet<String>,
        parents: &mut BTreeSet<ObjectKey>,
    ) -> Vec<Value> {
        let name = cluster_name(&s.key, port);
        let (targets, split) = self.targets(from, s, port);
        if let Some(split) = split {
            parents.insert(split.parent.clone());
        }
        let mut routes = Vec::new();
        if let Some(split) = split.filter(|sp| !sp.rules.is_empty()) {
            // A route table: its rules in order, no catch-all (unmatched requests: 404).
            // Trimmed, every route that would reach a destination answers its refusal.
            for r in &split.rules {
                for m in &r.matches {
                    parents.insert(m.group.clone());
                }
            }
            return rules::routes(split, port, !kept.contains(&name));
        }
        if !kept.contains(&name) {
            // Trimmed: this proxy may not reach any destination of the port, and each
            // of them would answer it with its RBAC filter's local reply. The proxy's own
            // deny listener answers that instead ([`DENY_PORT`]), without the port's
            // clusters and endpoints, so the client gets what it got before: the same
            // status, body and content type.
            routes.push(
                json!({"name": "denied", "match": {"prefix": "/"}, "route": denied_action()}),
            );
        } else if let Some(split) = split {
            for m in &split.matches {
                parents.insert(m.group.clone());
                for rm in Self::route_matches(m) {
                    routes.push(json!({"name": format!("{}/{}", m.group.name, m.name), "match": rm, "route": self.http_action(&targets)}));
                }
            }
            if !split.matches.is_empty() {
                let root = vec![(name.clone(), 1)];
                routes.push(json!({"name": "root", "match": {"prefix": "/"}, "route": self.http_action(&root)}));
            } else {
                routes.push(json!({"name": "split", "match": {"prefix": "/"}, "route": self.http_action(&targets)}));
            }
        } else {
            routes.push(json!({"name": "default", "match": {"prefix": "/"}, "route": self.http_action(&targets)}));
        }
        routes
    }

    fn tcp_conflict(
        &self,
        from: &str,
        s: &Service,
        port: u16,
        why: &str,
        findings: &mut Vec<Finding>,
    ) {
        if let Some(split) = self.ir.split_for(from, &s.key) {
            findings.push(Finding {
                feature: Feature::TcpRoutes,
                level: Level::Partial,
                object: split.parent.clone(),
                field: "spec.service".into(),
                reason: format!("TCP port {port} of {}: {why}; without the original destination the sidecar cannot tell them apart, so {} gets no outbound TCP listener", s.key, s.key),
            });
        }
    }

    /// What an inbound port carries: HTTP when a service port targeting it declares HTTP;
    /// detected when one leaves it undeclared; otherwise (every such port declared non-HTTP)
    /// opaque. With no service targeting it, what the container port's name declares.
    fn port_kind(&self, proxy: &Proxy, port: u16) -> PortKind {
        let mut kinds = BTreeSet::new();
        for s in self.ir.services_in(&proxy.namespace) {
            if s.selector.is_empty() || !selects(&s.selector, &proxy.labels) {
                continue;
            }
            for p in &s.ports {
                if p.protocol == Protocol::Tcp && proxy.resolve(&p.target_port) == Some(port) {
                    kinds.insert(p.kind());
                }
            }
        }
        // PortKind orders Http < Opaque < Detect.
        if kinds.contains(&PortKind::Http) {
            return PortKind::Http;
        }
        if kinds.contains(&PortKind::Detect) {
            return PortKind::Detect;
        }
        if !kinds.is_empty() {
            return PortKind::Opaque;
        }
        let name = proxy
            .container_ports
            .iter()
            .find(|(_, p)| *p == port)
            .and_then(|(n, _)| n.as_deref());
        port_name_kind(name)
    }
}

/// Weighted targets as Envoy takes them: the sum must fit in u32 (scaled to a million when
/// it does not), and zero weights get no traffic.
fn fit_weights(mut v: Vec<(String, u64)>) -> Vec<(String, u64)> {
    let sum: u128 = v.iter().map(|(_, w)| *w as u128).sum();
    if sum > u32::MAX as u128 {
        let ws: Vec<u64> = v.iter().map(|(_, w)| *w).collect();
        let scaled = meshbridge_core::weights::largest_remainder(&ws, 1_000_000);
        for (e, w) in v.iter_mut().zip(scaled) {
            e.1 = w;
        }
    }
    v.retain(|(_, w)| *w > 0);
    v
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typedConfig": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    }})
}

/// Translates every proxy. Returns configs sorted by node id, plus findings. (A cold
/// [`Translator`] run: what a runtime that translates again on every change keeps between
/// runs is the translator.)
pub fn translate_all(ir: &Ir, cx: &Context, proxies: &[Proxy]) -> (Vec<ProxyConfig>, Vec<Finding>) {
    incremental::run(ir, cx, proxies, None).0
}
