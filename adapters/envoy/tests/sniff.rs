//! Undeclared ports: HTTP detected on both sides (listener JSON shape), declared ports keep
//! their single chain, a finding for HTTP rules on a port declared non-HTTP, inbound ports
//! from the Services' target ports when containers declare none, pod templates of every
//! workload kind, and ignored documents named.

mod common;

use common::{assert_every_resource_encodes, proxy};
use meshbridge_core::build::build;
use meshbridge_core::load::load_str;
use meshbridge_core::{Adapter, Context, Snapshot};
use meshbridge_envoy::EnvoyAdapter;
use serde_json::Value;

const BOOKS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Service
metadata: {name: bookstore, namespace: demo}
spec: {selector: {app: bookstore}, ports: [{name: bookstore-port, port: 14001}, {name: http-admin, port: 9000}, {name: metrics, port: 9100, appProtocol: tcp}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec: {selector: {app: db}, ports: [{name: mysql, port: 3306}]}
---
apiVersion: v1
kind: Pod
metadata: {name: bookstore, namespace: demo, labels: {app: bookstore}}
spec: {serviceAccountName: bookstore, containers: [{name: c}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: bookbuyer, namespace: demo, labels: {app: bookbuyer}}
spec: {serviceAccountName: bookbuyer, containers: [{name: c}]}
status: {podIP: 10.0.0.1}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {serviceAccountName: db, containers: [{name: c}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: demo}
data: {a: b}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: books, namespace: demo}
spec:
  matches:
  - {name: books, pathRegex: /books, methods: [GET]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: buyer, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: demo}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: demo}]
  rules: [{kind: HTTPRouteGroup, name: books, matches: [books]}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: db-http, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: db, namespace: demo}
  sources: [{kind: ServiceAccount, name: bookstore, namespace: demo}]
  rules: [{kind: HTTPRouteGroup, name: books, matches: [books]}]
"#;

/// Load → snapshot → IR → the envoy adapter. Returns the proxies' documents, the loader's
/// problem lines and the findings (`reason [feature: level]`).
fn run(text: &str) -> (Vec<Value>, Vec<String>, Vec<String>) {
    let loaded = load_str("in.yaml", text);
    let problems = loaded.problems.iter().map(|p| p.to_string()).collect();
    let ir = build(&Snapshot::from_objects(loaded.objects));
    let t = EnvoyAdapter.translate(&ir, &Context::default());
    let docs = t.objects.iter().map(|o| o.body.clone()).collect();
    let findings = t
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {}/{}: {}: {} [{}: {}]",
                f.object.kind,
                f.object.namespace,
                f.object.name,
                f.field,
                f.reason,
                f.feature,
                f.level
            )
        })
        .collect();
    (docs, problems, findings)
}

fn named<'a>(p: &'a Value, list: &str, name: &str) -> &'a Value {
    p["resources"][list]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {list} {name}"))
}

fn filter_names(chain: &Value) -> Vec<&str> {
    chain["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

#[test]
fn an_undeclared_inbound_port_tells_http_from_tcp_by_the_client_sidecars_alpn() {
    let (docs, _, _) = run(BOOKS);
    // No containerPort: the Service's target ports are served anyway.
    let store = proxy(&docs, "demo/bookstore");
    let l = named(store, "listeners", "inbound_14001");
    assert_eq!(
        l["listenerFilters"][0]["name"],
        "envoy.filters.listener.tls_inspector"
    );
    let chains = l["filterChains"].as_array().unwrap();
    assert_eq!(chains.len(), 2, "{l:#}");
    assert_eq!(
        chains[0]["filterChainMatch"]["applicationProtocols"],
        serde_json::json!(["http/1.1", "h2"])
    );
    assert_eq!(
        filter_names(&chains[0]),
        vec!["envoy.filters.network.http_connection_manager"]
    );
    // The fallback: TCP, where the HTTP rule allows nothing.
    assert!(chains[1].get("filterChainMatch").is_none());
    assert_eq!(
        filter_names(&chains[1]),
        vec![
            "envoy.filters.network.rbac",
            "envoy.filters.network.tcp_proxy"
        ]
    );
    let tcp_policies = &chains[1]["filters"][0]["typedConfig"]["rules"]["policies"];
    assert!(tcp_policies.as_object().is_none_or(|p| p.is_empty()));
    for c in chains {
        assert_eq!(
            c["transportSocket"]["typedConfig"]["requireClientCertificate"],
            true
        );
    }
    // The HTTP chain's route carries the rule (GET /books).
    let r = named(store, "routes", "inbound_14001");
    let pol = &r["virtualHosts"][0]["routes"][0]["typedPerFilterConfig"]["envoy.filters.http.rbac"]
        ["rbac"]["rules"]["policies"]["demo/buyer#0"];
    assert!(pol.is_object(), "{r:#}");
    // Declared ports keep one chain and no listener filter.
    for (port, first) in [
        (9000, "envoy.filters.network.http_connection_manager"),
        (9100, "envoy.filters.network.rbac"),
    ] {
        let l = named(store, "listeners", &format!("inbound_{port}"));
        assert!(l.get("listenerFilters").is_none(), "{l:#}");
        assert_eq!(l["filterChains"].as_array().unwrap().len(), 1);
        assert_eq!(filter_names(&l["filterChains"][0])[0], first);
    }
}

#[test]
fn an_undeclared_outbound_port_sniffs_http_and_falls_back_to_tcp() {
    let (docs, _, _) = run(BOOKS);
    let buyer = proxy(&docs, "demo/bookbuyer");
    let l = named(buyer, "listeners", "outbound_tcp_14001");
    assert_eq!(
        l["listenerFilters"][0]["name"],
        "envoy.filters.listener.http_inspector"
    );
    assert_eq!(l["listenerFiltersTimeout"], "1s");
    assert_eq!(l["continueOnListenerFiltersTimeout"], true);
    let chains = l["filterChains"].as_array().unwrap();
    assert_eq!(chains.len(), 2);
    assert_eq!(
        chains[0]["filterChainMatch"]["applicationProtocols"],
        serde_json::json!(["http/1.0", "http/1.1", "h2c"])
    );
    let hcm = &chains[0]["filters"][0]["typedConfig"];
    assert_eq!(hcm["rds"]["routeConfigName"], "outbound_http_14001");
    assert_eq!(
        chains[1]["filters"][0]["typedConfig"]["cluster"],
        "demo/bookstore|14001"
    );
    let r = named(buyer, "routes", "outbound_http_14001");
    assert_eq!(r["virtualHosts"][0]["domains"], serde_json::json!(["*"]));
    assert_eq!(
        r["virtualHosts"][0]["routes"][0]["route"]["cluster"],
        "demo/bookstore|14001"
    );
    // The port is on the outbound HTTP listener too; the bare names go to the declared HTTP
    // port (9000), not the undeclared one.
    let out = named(buyer, "routes", "outbound_http/demo/bookstore");
    let vh = |n: &str| {
        out["virtualHosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("no vhost {n}"))
            .clone()
    };
    let undeclared = vh("demo/bookstore|14001");
    assert!(
        undeclared["domains"]
            .as_array()
            .unwrap()
            .contains(&"bookstore:14001".into())
    );
    assert!(
        !undeclared["domains"]
            .as_array()
            .unwrap()
            .contains(&"bookstore".into())
    );
    assert!(
        vh("demo/bookstore|9000")["domains"]
            .as_array()
            .unwrap()
            .contains(&"bookstore".into())
    );
    // A declared TCP port: one plain chain.
    let l = named(buyer, "listeners", "outbound_tcp_9100");
    assert!(l.get("listenerFilters").is_none());
    assert_eq!(l["filterChains"].as_array().unwrap().len(), 1);
    // Everything encodes with Envoy's descriptors.
    assert_every_resource_encodes(&docs);
}

#[test]
fn http_rules_on_a_port_declared_non_http_are_reported_and_ignored_kinds_named() {
    let (docs, problems, findings) = run(BOOKS);
    assert!(
        findings
            .iter()
            .any(|d| d.starts_with("TrafficTarget demo/db-http")
                && d.contains("port 3306 of demo/statefulset/db is declared non-HTTP")
                && d.ends_with("[httpAccess: Partial]")),
        "{findings:#?}"
    );
    // The StatefulSet's template is a proxy, its port derived from the Service.
    let db = proxy(&docs, "demo/statefulset/db");
    let l = named(db, "listeners", "inbound_3306");
    assert_eq!(
        filter_names(&l["filterChains"][0]),
        vec![
            "envoy.filters.network.rbac",
            "envoy.filters.network.tcp_proxy"
        ]
    );
    // An undeclared port of a server-first protocol (MySQL's 3306): HTTP rules cannot apply.
    let (_, _, findings) = run(&BOOKS.replace("{name: mysql, port: 3306}", "{port: 3306}"));
    assert!(
        findings
            .iter()
            .any(|d| d.starts_with("TrafficTarget demo/db-http")
                && d.contains(
                    "port 3306 of demo/statefulset/db is not declared and is MySQL's port"
                )
                && d.ends_with("[httpAccess: Partial]")),
        "{findings:#?}"
    );
    // The ConfigMap is not read, and said so with its file, kind and name.
    assert!(
        problems.iter().any(|d| d.starts_with("in.yaml:")
            && d.contains("ConfigMap demo/settings: (document):")
            && d.contains("ignored")),
        "{problems:#?}"
    );
}
