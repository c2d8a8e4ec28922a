//! The pure translation: IR → per-proxy Envoy resources. Every resource must encode with
//! Envoy's descriptors (an unknown field or wrong type fails here, not in Envoy).

use meshbridge_core::load::load_str;
use meshbridge_core::pipeline::translate;
use meshbridge_core::{Adapter, Context, Feature};
use meshbridge_envoy::EnvoyAdapter;
use serde_json::Value;

const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: demo}
spec: {selector: {app: web, v: "1"}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: demo}
spec: {selector: {app: web, v: "2"}, ports: [{name: http, port: 80, targetPort: web}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec: {selector: {app: db}, ports: [{name: pg, port: 5432}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: demo, labels: {app: web, v: "1"}}
spec: {serviceAccountName: web, containers: [{name: c, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: demo, labels: {app: web, v: "2"}}
spec: {serviceAccountName: web, containers: [{name: c, ports: [{containerPort: 8081, name: web}]}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec: {serviceAccountName: client, containers: [{name: c}]}
status: {podIP: 10.0.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: demo, labels: {app: db}}
spec: {serviceAccountName: db, containers: [{name: c, ports: [{containerPort: 5432}]}]}
status: {podIP: 10.0.0.4}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: rg, namespace: demo}
spec:
  matches:
  - {name: api, pathRegex: "/api", methods: [GET, POST]}
  - name: canary
    headers: [{x-canary: "yes"}, {host: "web.*"}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: demo}
spec:
  service: web
  backends: [{service: web-v1, weight: 75}, {service: web-v2, weight: 25}, {service: web, weight: 0}]
  matches: [{kind: HTTPRouteGroup, name: rg}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: demo}
spec: {matches: {ports: [5432]}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: to-web, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: demo}
  sources: [{kind: ServiceAccount, name: client, namespace: demo}]
  rules: [{kind: HTTPRouteGroup, name: rg, matches: [api]}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: to-db, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: db, namespace: demo}
  sources: [{kind: ServiceAccount, name: web, namespace: demo}]
  rules: [{kind: TCPRoute, name: tcp}]
"#;

fn run(text: &str) -> (Vec<Value>, Vec<String>) {
    let out = translate(
        vec![load_str("in.yaml", text)],
        &EnvoyAdapter,
        &Context::default(),
        None,
    );
    let docs = out
        .translation
        .objects
        .iter()
        .map(|o| o.body.clone())
        .collect();
    (docs, out.diagnostics)
}

fn proxy<'a>(docs: &'a [Value], node: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["node"]["id"] == node)
        .unwrap_or_else(|| panic!("no proxy {node}"))
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name || r["clusterName"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn every_resource_encodes_and_output_is_deterministic() {
    let (docs, diags) = run(BASE);
    assert!(diags.iter().all(|d| d.starts_with("warning:")), "{diags:?}");
    assert_eq!(docs.len(), 4);
    for d in &docs {
        for (k, list) in d["resources"].as_object().unwrap() {
            if k == "secrets" {
                continue;
            }
            for r in list.as_array().unwrap() {
                meshbridge_envoy::proto::encode(r).unwrap_or_else(|e| panic!("{k}: {e}\n{r:#}"));
            }
        }
    }
    assert_eq!(run(BASE).0, docs);
}

#[test]
fn routes_splits_and_ab_order() {
    let (docs, _) = run(BASE);
    let client = proxy(&docs, "demo/client");
    let rc = named(&client["resources"]["routes"], "outbound_http");
    let vh = named(&rc["virtualHosts"], "demo/web|80");
    let domains: Vec<&str> = vh["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for d in [
        "web.demo",
        "web.demo:80",
        "web.demo.svc.cluster.local",
        "web",
        "web:80",
    ] {
        assert!(domains.contains(&d), "{d} in {domains:?}");
    }
    let routes = vh["routes"].as_array().unwrap();
    // api: one route per method, path start-anchored as a full-match regex; canary: headers
    // (host → :authority); the root catch-all last.
    assert_eq!(routes.len(), 4, "{routes:#?}");
    assert_eq!(routes[0]["match"]["safeRegex"]["regex"], "(?:/api).*");
    assert_eq!(
        routes[0]["match"]["headers"][0]["stringMatch"]["exact"],
        "GET"
    );
    assert_eq!(
        routes[1]["match"]["headers"][0]["stringMatch"]["exact"],
        "POST"
    );
    let hs = routes[2]["match"]["headers"].as_array().unwrap();
    assert!(hs.iter().any(|h| h["name"] == ":authority" && h["stringMatch"]["safeRegex"]["regex"] == "web.*"));
    let wc = routes[0]["route"]["weightedClusters"]["clusters"]
        .as_array()
        .unwrap();
    let got: Vec<(String, u64)> = wc
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("demo/web-v1|80".into(), 75), ("demo/web-v2|80".into(), 25)],
        "zero weight dropped"
    );
    assert_eq!(routes[3]["match"]["prefix"], "/");
    assert_eq!(routes[3]["route"]["cluster"], "demo/web|80");
    // Endpoints: named target port resolved per pod.
    let eps = named(&client["resources"]["endpoints"], "demo/web-v2|80");
    assert_eq!(
        eps["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"]["portValue"],
        8081
    );
    // Secure naming: the upstream must be the web identity.
    let c = named(&client["resources"]["clusters"], "demo/web-v1|80");
    assert_eq!(
        c["transportSocket"]["typedConfig"]["commonTlsContext"]["combinedValidationContext"]["defaultValidationContext"]
            ["matchTypedSubjectAltNames"][0]["matcher"]["exact"],
        "spiffe://cluster.local/ns/demo/sa/web"
    );
    // TCP service: its own outbound listener.
    assert!(
        client["resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "outbound_tcp_5432")
    );
}

#[test]
fn access_control_is_default_deny_and_never_widened() {
    let (docs, _) = run(BASE);
    // web-1 serves 8080: only client, only GET|POST /api*.
    let web = proxy(&docs, "demo/web-1");
    let rc = named(&web["resources"]["routes"], "inbound_8080");
    let pol = &rc["virtualHosts"][0]["routes"][0]["typedPerFilterConfig"]["envoy.filters.http.rbac"]
        ["rbac"]["rules"]["policies"];
    let p = &pol["demo/to-web#0"];
    assert_eq!(
        p["principals"][0]["authenticated"]["principalName"]["exact"],
        "spiffe://cluster.local/ns/demo/sa/client"
    );
    let and = p["permissions"][0]["andRules"]["rules"].as_array().unwrap();
    assert_eq!(
        and[0]["urlPath"]["path"]["safeRegex"]["regex"],
        "(?:/api).*"
    );
    assert_eq!(
        pol.as_object().unwrap().len(),
        1,
        "the canary match is not in the rule: {pol:#}"
    );
    // The client pod has no TrafficTarget: no policy at all (deny).
    let client = proxy(&docs, "demo/client");
    assert!(
        client["resources"]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] == "outbound_http"),
        "client has no ports"
    );
    // db: network RBAC on 5432 for web only.
    let db = proxy(&docs, "demo/db-0");
    let l = named(&db["resources"]["listeners"], "inbound_5432");
    let f = &l["filterChains"][0]["filters"][0];
    assert_eq!(f["name"], "envoy.filters.network.rbac");
    assert_eq!(
        f["typedConfig"]["rules"]["policies"]["demo/to-db#0"]["principals"][0]["authenticated"]["principalName"]
            ["exact"],
        "spiffe://cluster.local/ns/demo/sa/web"
    );
    assert_eq!(
        l["filterChains"][0]["transportSocket"]["typedConfig"]["requireClientCertificate"],
        true
    );
    // Remove the TrafficTargets: every inbound policy set is empty.
    let cut = BASE
        .split("---\napiVersion: access.smi-spec.io")
        .next()
        .unwrap();
    let (docs, _) = run(cut);
    let web = proxy(&docs, "demo/web-1");
    let rc = named(&web["resources"]["routes"], "inbound_8080");
    let pol = &rc["virtualHosts"][0]["routes"][0]["typedPerFilterConfig"]["envoy.filters.http.rbac"]
        ["rbac"]["rules"];
    assert_eq!(pol["action"], "ALLOW");
    assert_eq!(pol["policies"].as_object().unwrap().len(), 0);
}

#[test]
fn udp_rules_are_reported() {
    let text = format!(
        "{BASE}\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRoute\nmetadata: {{name: u, namespace: demo}}\nspec: {{matches: {{ports: [53]}}}}\n---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: udp, namespace: demo}}\nspec:\n  destination: {{kind: ServiceAccount, name: db, namespace: demo}}\n  sources: [{{kind: ServiceAccount, name: web, namespace: demo}}]\n  rules: [{{kind: UDPRoute, name: u}}]\n"
    );
    let out = translate(
        vec![load_str("in.yaml", &text)],
        &EnvoyAdapter,
        &Context::default(),
        None,
    );
    let f = &out.translation.findings;
    assert!(f.iter().any(|f| f.feature == Feature::UdpAccess), "{f:?}");
    let caps = EnvoyAdapter.capabilities(&Context::default());
    for f in &out.translation.findings {
        assert_ne!(
            caps.level(f.feature),
            meshbridge_core::Level::Full,
            "finding on a Full row: {f:?}"
        );
    }
}
