//! One proxy's configuration, built in steps with one job each: its outbound scope (which
//! service ports it keeps), the outbound HTTP listener and route configuration, the outbound
//! TCP listeners, the outbound clusters and their endpoints, then per container port the
//! inbound access rules, local cluster, route configuration (HTTP) and listener.

use super::incremental::ViewMemo;
use super::{
    ADMIN_PORT, DENY_CLUSTER, DENY_PORT, Mesh, OUTBOUND_PORT, OUTBOUND_ROUTE, Proxy, ProxyConfig,
    RBAC_DENIED_BODY, RBAC_DENIED_STATUS, RBAC_EARLY_DATA_BYTES, ROOT_CA_SECRET, ads, cluster_name,
    outbound_scope_key, rbac_policies, router, socket,
};
use crate::proto::{CLUSTER, ENDPOINT, LISTENER, ROUTE, SCOPED_ROUTE};
use meshbridge_core::Finding;
use meshbridge_core::capability::{Feature, Level};
use meshbridge_core::ir::{AccessRule, PortKind, Protocol, Service, Traffic};
use meshbridge_core::model::ObjectKey;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Outbound: what Envoy's HTTP inspector reports for plaintext HTTP/1.x and HTTP/2 (h2c).
const SNIFFED_HTTP: [&str; 3] = ["http/1.0", "http/1.1", "h2c"];
/// Inbound (mTLS): the ALPN a client sidecar's HTTP connection pool offers.
const MTLS_HTTP: [&str; 2] = ["http/1.1", "h2"];
/// How long an outbound port whose protocol is detected waits for the client's first bytes
/// before proxying the connection as TCP (a server-first protocol such as MySQL's waits
/// this long once per connection: declare such ports `appProtocol: tcp` or `tcp-*`).
pub const DETECT_TIMEOUT: &str = "1s";
const HTTP_INSPECTOR: (&str, &str) = (
    "envoy.filters.listener.http_inspector",
    "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
);
const TLS_INSPECTOR: (&str, &str) = (
    "envoy.filters.listener.tls_inspector",
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
);

/// Well-known ports of protocols where the server speaks first (a client sends nothing until
/// it has read the greeting, so HTTP cannot be detected from its first bytes).
fn server_first(port: u16) -> Option<&'static str> {
    Some(match port {
        21 => "FTP",
        22 => "SSH",
        25 | 465 | 587 => "SMTP",
        110 => "POP3",
        143 => "IMAP",
        3306 => "MySQL",
        _ => return None,
    })
}

/// A proxy's configuration while it is built.
struct Build<'p> {
    proxy: &'p Proxy,
    /// The proxy's SPIFFE URI (its certificate's SDS name).
    own: String,
    /// Address its listeners bind.
    bind: String,
    parents: BTreeSet<ObjectKey>,
    listeners: BTreeMap<String, Arc<Value>>,
    routes: BTreeMap<String, Arc<Value>>,
    /// Route scopes of the outbound listener, by name.
    scopes: BTreeMap<String, Arc<Value>>,
    clusters: BTreeMap<String, Arc<Value>>,
    endpoints: BTreeMap<String, Arc<Value>>,
}

/// Which service ports a proxy keeps (see [`Mesh::scope`]).
#[derive(Default)]
struct Scope {
    /// Root clusters of the ports kept.
    kept: BTreeSet<String>,
    /// Clusters (with endpoints) the proxy is sent.
    send: BTreeSet<String>,
    /// Some HTTP port is trimmed (answered by the proxy's deny listener).
    trimmed: bool,
}

impl Build<'_> {
    fn listener(&mut self, name: &str, port: u16, filter_chain: Value) {
        self.listeners.insert(
            name.to_string(),
            Arc::new(json!({
                "@type": LISTENER,
                "name": name,
                "address": socket(&self.bind, port),
                "filterChains": [filter_chain]
            })),
        );
    }

    /// A listener whose first bytes choose the filter chain (the first chains carry a
    /// `filterChainMatch`, the last one is the fallback).
    fn sniffing_listener(
        &mut self,
        name: &str,
        port: u16,
        inspector: (&str, &str),
        timeout: Option<&str>,
        chains: Vec<Value>,
    ) {
        let mut l = json!({
            "@type": LISTENER,
            "name": name,
            "address": socket(&self.bind, port),
            "listenerFilters": [{"name": inspector.0, "typedConfig": {"@type": inspector.1}}],
            "filterChains": chains,
        });
        if let Some(t) = timeout {
            l["listenerFiltersTimeout"] = json!(t);
            l["continueOnListenerFiltersTimeout"] = json!(true);
        }
        self.listeners.insert(name.to_string(), Arc::new(l));
    }

    fn finish(self) -> ProxyConfig {
        let mut resources = BTreeMap::new();
        resources.insert(LISTENER, self.listeners);
        resources.insert(SCOPED_ROUTE, self.scopes);
        resources.insert(ROUTE, self.routes);
        resources.insert(CLUSTER, self.clusters);
        resources.insert(ENDPOINT, self.endpoints);
        ProxyConfig {
            node_id: self.proxy.node_id(),
            identity: self.proxy.identity.clone(),
            spiffe: self.own.clone(),
            resources,
            secrets: vec![ROOT_CA_SECRET.to_string(), self.own],
            parents: self.parents,
        }
    }
}

impl Mesh<'_> {
    /// Builds one proxy's configuration. Proxy-specific findings go to `findings`; what
    /// it can reuse of the last generation (and leaves for the next) is in `memo`.
    pub(super) fn proxy(
        &self,
        proxy: &Proxy,
        memo: &mut ViewMemo,
        findings: &mut Vec<Finding>,
    ) -> ProxyConfig {
        let mut b = Build {
            proxy,
            own: proxy.identity.spiffe(&self.cx.trust_domain),
            bind: proxy.ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
            parents: BTreeSet::new(),
            listeners: BTreeMap::new(),
            routes: BTreeMap::new(),
            scopes: BTreeMap::new(),
            clusters: BTreeMap::new(),
            endpoints: BTreeMap::new(),
        };
        let scope = self.outbound_services(&mut b, memo);
        self.outbound_http(&mut b, scope.trimmed);
        self.outbound_tcp(&mut b, &scope.kept, findings);
        self.outbound_clusters(&mut b, &scope.send, memo);
        self.inbound(&mut b, findings);
        b.finish()
    }

    /// Every service as this proxy sees it ([`Mesh::fragment`], reused from `memo` when
    /// nothing it read changed): which ports it keeps (with their clusters) and which it
    /// answers itself with the destinations' refusal, the route configurations and the
    /// route scopes (a host two services claim goes to the first).
    fn outbound_services(&self, b: &mut Build, memo: &mut ViewMemo) -> Scope {
        let proxy = b.proxy;
        let mut scope = Scope::default();
        for s in self.ir.services.values() {
            let f = memo.fragment(&s.key, || {
                self.fragment(&proxy.identity, &proxy.namespace, s)
            });
            scope.kept.extend(f.kept.iter().cloned());
            scope.send.extend(f.send.iter().cloned());
            scope.trimmed |= f.trimmed;
            b.parents.extend(f.parents.iter().cloned());
            if let Some((name, v)) = &f.route {
                b.routes.insert(name.clone(), v.clone());
            }
            for (name, v) in &f.scopes {
                if !b.scopes.contains_key(name) {
                    b.scopes.insert(name.clone(), v.clone());
                }
            }
        }
        scope
    }

    /// The outbound HTTP listener (its routes are the services' route configurations,
    /// picked by route scopes), and the deny listener when some port is trimmed.
    fn outbound_http(&self, b: &mut Build, trimmed: bool) {
        b.listener(
            OUTBOUND_ROUTE,
            OUTBOUND_PORT,
            json!({"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typedConfig": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "statPrefix": "outbound_http",
                    "scopedRoutes": {
                        "name": OUTBOUND_ROUTE,
                        "scopeKeyBuilder": outbound_scope_key(),
                        "rdsConfigSource": ads(),
                        "scopedRds": {"scopedRdsConfigSource": ads()},
                    },
                    "httpFilters": [router()],
                }
            }]}),
        );
        if trimmed {
            Self::deny_listener(b);
        }
    }

    /// The proxy's own refusal of trimmed HTTP ports ([`DENY_PORT`]): a listener answering
    /// every request with the destinations' RBAC refusal, and the cluster trimmed routes
    /// send to it.
    fn deny_listener(b: &mut Build) {
        b.listener(
            DENY_CLUSTER,
            DENY_PORT,
            json!({"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typedConfig": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "statPrefix": "denied",
                    "routeConfig": {"name": DENY_CLUSTER, "virtualHosts": [{
                        "name": DENY_CLUSTER,
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "directResponse": {
                            "status": RBAC_DENIED_STATUS,
                            "body": {"inlineString": RBAC_DENIED_BODY},
                        }}],
                    }]},
                    "httpFilters": [router()],
                }
            }]}),
        );
        let addr = if b.bind == "0.0.0.0" {
            "127.0.0.1".to_string()
        } else {
            b.bind.clone()
        };
        b.clusters.insert(
            DENY_CLUSTER.to_string(),
            Arc::new(json!({
                "@type": CLUSTER,
                "name": DENY_CLUSTER,
                "type": "STATIC",
                "connectTimeout": "1s",
                "loadAssignment": {"clusterName": DENY_CLUSTER, "endpoints": [{"lbEndpoints": [{"endpoint": {"address": socket(&addr, DENY_PORT)}}]}]},
            })),
        );
    }

    /// The outbound TCP service ports, one per port number: a port another service already
    /// uses, or the pod itself (or the sidecar), gets no listener (a finding says so).
    fn tcp_ports(&self, proxy: &Proxy, findings: &mut Vec<Finding>) -> BTreeMap<u16, &Service> {
        let inbound_ports: BTreeSet<u16> = proxy.container_ports.iter().map(|(_, p)| *p).collect();
        let mut tcp_ports: BTreeMap<u16, &Service> = BTreeMap::new();
        for s in self.ir.services.values() {
            for p in &s.ports {
                if p.kind() == PortKind::Http || p.protocol != Protocol::Tcp {
                    continue;
                }
                if let Some(other) = tcp_ports.get(&p.port) {
                    self.tcp_conflict(
                        &proxy.namespace,
                        s,
                        p.port,
                        &format!("{} already uses it", other.key),
                        findings,
                    );
                    continue;
                }
                if inbound_ports.contains(&p.port)
                    || p.port == OUTBOUND_PORT
                    || p.port == ADMIN_PORT
                    || p.port == DENY_PORT
                {
                    self.tcp_conflict(
                        &proxy.namespace,
                        s,
                        p.port,
                        &format!("pod {} uses the port itself", proxy.node_id()),
                        findings,
                    );
                    continue;
                }
                tcp_ports.insert(p.port, s);
            }
        }
        tcp_ports
    }

    /// One outbound TCP listener per TCP service port (see [`Mesh::tcp_ports`]).
    fn outbound_tcp(&self, b: &mut Build, kept: &BTreeSet<String>, findings: &mut Vec<Finding>) {
        for (port, s) in self.tcp_ports(b.proxy, findings) {
            let (targets, split) = self.targets(&b.proxy.namespace, s, port);
            if let Some(split) = split {
                b.parents.insert(split.parent.clone());
            }
            let mut tp = json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "statPrefix": format!("outbound_tcp_{port}"),
            });
            if targets.len() == 1 {
                tp["cluster"] = json!(targets[0].0);
            } else {
                tp["weightedClusters"] = json!({"clusters": targets.iter().map(|(c, w)| json!({"name": c, "weight": w})).collect::<Vec<_>>()});
            }
            let name = format!("outbound_tcp_{port}");
            let mut filters =
                vec![json!({"name": "envoy.filters.network.tcp_proxy", "typedConfig": tp})];
            if !kept.contains(&cluster_name(&s.key, port)) {
                // Trimmed: no destination of the port lets this proxy in, and each would close
                // the connection with its network RBAC (checked on the first byte). Do the
                // same here: a deny-all network RBAC, and a TCP proxy that would connect only
                // once data arrives — which the RBAC never lets through — so the client sees
                // an accepted connection closed on its first byte, as before, and no cluster
                // is needed.
                filters[0]["typedConfig"]["upstreamConnectMode"] = json!("ON_DOWNSTREAM_DATA");
                filters[0]["typedConfig"]["maxEarlyDataBytes"] = json!(RBAC_EARLY_DATA_BYTES);
                filters.insert(
                    0,
                    json!({"name": "envoy.filters.network.rbac", "typedConfig": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
                        "statPrefix": name,
                        "rules": {"action": "ALLOW", "policies": {}},
                    }}),
                );
            }
            let tcp_chain = json!({"filters": filters});
            if s.port(port).is_some_and(|p| p.kind() == PortKind::Detect) {
                // Not declared: HTTP is detected from the client's first bytes and routed
                // like the outbound HTTP listener routes the port; anything else (or
                // nothing within the timeout: a server-first protocol) is proxied as TCP.
                let route = format!("outbound_http_{port}");
                let routes = self.port_routes(&b.proxy.namespace, s, port, kept, &mut b.parents);
                b.routes.insert(
                    route.clone(),
                    Arc::new(json!({"@type": ROUTE, "name": route, "virtualHosts": [{
                        "name": cluster_name(&s.key, port),
                        "domains": ["*"],
                        "routes": routes,
                    }]})),
                );
                let http_chain = json!({
                    "filterChainMatch": {"applicationProtocols": SNIFFED_HTTP},
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typedConfig": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "statPrefix": route,
                            "rds": {"configSource": ads(), "routeConfigName": route},
                            "httpFilters": [router()],
                        }
                    }],
                });
                b.sniffing_listener(
                    &name,
                    port,
                    HTTP_INSPECTOR,
                    Some(DETECT_TIMEOUT),
                    vec![http_chain, tcp_chain],
                );
            } else {
                b.listener(&name, port, tcp_chain);
            }
        }
    }

    /// The clusters in scope, with their endpoints (each cluster as this identity sees it
    /// reused from `memo` while its facts are unchanged).
    fn outbound_clusters(&self, b: &mut Build, send: &BTreeSet<String>, memo: &mut ViewMemo) {
        for name in send {
            if let Some(info) = self.clusters.get(name) {
                let c = memo.cluster(name, || self.cluster(name, &b.own));
                b.clusters.insert(name.clone(), c);
                b.endpoints.insert(name.clone(), info.endpoints.clone());
            }
        }
    }

    /// Per container port: the access rules, the local cluster, the listener (and the route
    /// configuration of an HTTP port).
    fn inbound(&self, b: &mut Build, findings: &mut Vec<Finding>) {
        let inbound_ports: BTreeSet<u16> =
            b.proxy.container_ports.iter().map(|(_, p)| *p).collect();
        for port in inbound_ports {
            let kind = self.port_kind(b.proxy, port);
            let rules = self.inbound_rules(b, port, kind, findings);
            let local = format!("inbound|{port}");
            b.clusters.insert(
                local.clone(),
                Arc::new(json!({
                    "@type": CLUSTER,
                    "name": local,
                    "type": "STATIC",
                    "connectTimeout": "1s",
                    "loadAssignment": {"clusterName": local, "endpoints": [{"lbEndpoints": [{"endpoint": {"address": socket(&b.proxy.app_ip, port)}}]}]},
                })),
            );
            let name = format!("inbound_{port}");
            let td = &self.cx.trust_domain;
            let tls = self.tls_common(&b.own);
            let chain = |filters: Value| {
                json!({
                    "filters": filters,
                    "transportSocket": {"name": "envoy.transport_sockets.tls", "typedConfig": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                        "requireClientCertificate": true,
                        "commonTlsContext": tls,
                    }},
                })
            };
            match kind {
                PortKind::Http => {
                    let c = chain(inbound_http(
                        b,
                        &name,
                        &local,
                        rbac_policies(&rules, true, td),
                    ));
                    b.listener(&name, port, c);
                }
                PortKind::Opaque => {
                    let c = chain(inbound_tcp(&name, &local, rbac_policies(&rules, false, td)));
                    b.listener(&name, port, c);
                }
                PortKind::Detect => {
                    // Sidecars reach each other over mTLS: the client sidecar's HTTP
                    // connections offer ALPN `http/1.1` (`h2` for HTTP/2), its TCP proxy
                    // none, so the TLS inspector tells them apart (a TLS client speaks first).
                    let mut http = chain(inbound_http(
                        b,
                        &name,
                        &local,
                        rbac_policies(&rules, true, td),
                    ));
                    http["filterChainMatch"] = json!({"applicationProtocols": MTLS_HTTP});
                    let tcp = chain(inbound_tcp(&name, &local, rbac_policies(&rules, false, td)));
                    b.sniffing_listener(&name, port, TLS_INSPECTOR, None, vec![http, tcp]);
                }
            }
        }
    }

    /// The access rules of the proxy's identity that cover `port` (and their objects among the
    /// parents); HTTP rules on a port declared non-HTTP allow nothing, which a finding says.
    fn inbound_rules(
        &self,
        b: &mut Build,
        port: u16,
        kind: PortKind,
        findings: &mut Vec<Finding>,
    ) -> Vec<&AccessRule> {
        let rules: Vec<&AccessRule> = self
            .ir
            .access
            .get(&b.proxy.identity)
            .map(|p| p.rules.iter().filter(|r| r.ports.contains(port)).collect())
            .unwrap_or_default();
        for r in &rules {
            b.parents.insert(r.parent.clone());
            if let Traffic::Http(rs) = &r.traffic {
                for h in rs {
                    b.parents.insert(h.group.clone());
                }
                let named = matches!(r.ports, meshbridge_core::ir::Ports::Only(_));
                let any_http = b
                    .proxy
                    .container_ports
                    .iter()
                    .any(|(_, p)| self.port_kind(b.proxy, *p) != PortKind::Opaque);
                // Said once per rule: on the port it names, or (a rule for every port) when
                // no port of the pod can carry HTTP.
                let node = b.proxy.node_id();
                let reason = match (kind, server_first(port)) {
                    (PortKind::Detect, Some(proto)) => Some(format!(
                        "port {port} of {node} is not declared and is {proto}'s port, a protocol where the server speaks first: its clients wait {DETECT_TIMEOUT} for protocol detection before their connection is proxied as TCP, where HTTP rules allow nothing; declare the port `appProtocol: tcp` or name it `tcp-*`, and allow it with a TCPRoute"
                    )),
                    (PortKind::Opaque, _) if named || !any_http => Some(format!(
                        "port {port} of {node} is declared non-HTTP (appProtocol or port name): HTTP rules cannot be checked there and allow nothing; leave the port undeclared (detected) or declare it HTTP"
                    )),
                    _ => None,
                };
                if let Some(reason) = reason {
                    findings.push(Finding {
                        feature: Feature::HttpAccess,
                        level: Level::Partial,
                        object: r.parent.clone(),
                        field: r.field.clone(),
                        reason,
                    });
                }
            }
        }
        rules
    }
}

/// An inbound HTTP port: its route configuration (one route to the local cluster, carrying
/// the RBAC policies) and its filters (HCM with XFCC, RBAC denying by default, router).
fn inbound_http(b: &mut Build, name: &str, local: &str, policies: Value) -> Value {
    b.routes.insert(
        name.to_string(),
        Arc::new(json!({
            "@type": ROUTE,
            "name": name,
            "virtualHosts": [{"name": "inbound", "domains": ["*"], "routes": [{
                "name": "inbound",
                "match": {"prefix": "/"},
                "route": {"cluster": local, "timeout": "0s"},
                "typedPerFilterConfig": {"envoy.filters.http.rbac": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
                    "rbac": {"rules": {"action": "ALLOW", "policies": policies}},
                }},
            }]}],
        })),
    );
    json!([{
        "name": "envoy.filters.network.http_connection_manager",
        "typedConfig": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "statPrefix": name,
            "rds": {"configSource": ads(), "routeConfigName": name},
            "forwardClientCertDetails": "SANITIZE_SET",
            "setCurrentClientCertDetails": {"uri": true},
            "httpFilters": [
                {"name": "envoy.filters.http.rbac", "typedConfig": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    "rules": {"action": "ALLOW"},
                }},
                router(),
            ],
        }
    }])
}

/// An inbound TCP port's filters: network RBAC, then a TCP proxy to the local cluster.
fn inbound_tcp(name: &str, local: &str, policies: Value) -> Value {
    json!([
        {"name": "envoy.filters.network.rbac", "typedConfig": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
            "statPrefix": name,
            "rules": {"action": "ALLOW", "policies": policies},
        }},
        {"name": "envoy.filters.network.tcp_proxy", "typedConfig": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "statPrefix": name,
            "cluster": local,
        }},
    ])
}
