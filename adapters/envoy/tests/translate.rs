//! The pure translation: IR → per-proxy Envoy resources. Every resource must encode with
//! Envoy's descriptors (an unknown field or wrong type fails here, not in Envoy).

use meshbridge_core::load::load_str;
mod common;

use common::{assert_every_resource_encodes, proxy};
use meshbridge_core::pipeline::translate;
use meshbridge_core::{Adapter, Context, Feature};
use meshbridge_envoy::EnvoyAdapter;
use serde_json::Value;

const BASE: &str = include_str!("fixtures/base.yaml");

fn run(text: &str) -> (Vec<Value>, Vec<String>) {
    let out = translate(
        vec![load_str("in.yaml", text)],
        Box::new(EnvoyAdapter),
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
    assert_every_resource_encodes(&docs);
    assert_eq!(run(BASE).0, docs);
}

#[test]
fn routes_splits_and_ab_order() {
    let (docs, _) = run(BASE);
    let client = proxy(&docs, "demo/client");
    let rc = named(&client["resources"]["routes"], "outbound_http/demo/web");
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

/// The outbound listener picks a route configuration per service by the request's host
/// (scoped RDS): every host name of a service (no port) is one scope naming that service's
/// configuration, so a change to one service is one small RDS update.
#[test]
fn each_service_has_its_own_route_configuration_picked_by_host() {
    let (docs, _) = run(&format!(
        "{BASE}---\napiVersion: v1\nkind: Service\nmetadata: {{name: other, namespace: demo}}\nspec: {{clusterIP: 10.96.0.9, ports: [{{name: http, port: 80}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: v6, namespace: demo}}\nspec: {{clusterIP: \"fd00::9\", ports: [{{name: http, port: 80}}]}}\n"
    ));
    let client = proxy(&docs, "demo/client");
    let hcm = &named(&client["resources"]["listeners"], "outbound_http")["filterChains"][0]["filters"]
        [0]["typedConfig"];
    assert!(hcm.get("rds").is_none());
    assert_eq!(hcm["scopedRoutes"]["name"], "outbound_http");
    assert_eq!(
        hcm["scopedRoutes"]["scopeKeyBuilder"]["fragments"][0]["headerValueExtractor"],
        serde_json::json!({"name": ":authority", "elementSeparator": ":", "index": 0})
    );
    let scopes: std::collections::BTreeMap<String, String> = client["resources"]["scopedRoutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["key"]["fragments"].as_array().unwrap().len(), 1);
            (
                s["key"]["fragments"][0]["stringKey"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s["routeConfigurationName"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for host in [
        "web",
        "web.demo",
        "web.demo.svc",
        "web.demo.svc.cluster.local",
        "web.demo.svc.cluster.local.",
    ] {
        assert_eq!(scopes[host], "outbound_http/demo/web", "{host}");
    }
    // Its ClusterIP is a host too. An IPv6 address cannot be a key (the key ends at the
    // first colon).
    assert_eq!(scopes["other.demo"], "outbound_http/demo/other");
    assert_eq!(scopes["10.96.0.9"], "outbound_http/demo/other");
    assert!(!scopes.keys().any(|k| k.contains(':')));
    assert_eq!(scopes["v6.demo"], "outbound_http/demo/v6");
    // The TCP-only service has no HTTP virtual host, hence no route configuration or scope.
    assert!(!scopes.contains_key("db.demo"));
    // Every scope names a route configuration the proxy is served, which holds only that
    // service's virtual hosts.
    for (host, rc) in &scopes {
        let r = named(&client["resources"]["routes"], rc);
        let svc = rc.trim_start_matches("outbound_http/");
        for vh in r["virtualHosts"].as_array().unwrap() {
            assert!(
                vh["name"].as_str().unwrap().starts_with(&format!("{svc}|")),
                "{host}: {vh}"
            );
        }
    }
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
            .all(|r| r["name"].as_str().unwrap().starts_with("outbound_http/")),
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
        Box::new(EnvoyAdapter),
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

fn has(list: &Value, name: &str) -> bool {
    list.as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == name || r["clusterName"] == name)
}

/// The virtual host `ns/svc|port` (in the service's route configuration).
fn vhost<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let svc = name.split('|').next().unwrap();
    let rc = named(&doc["resources"]["routes"], &format!("outbound_http/{svc}"));
    named(&rc["virtualHosts"], name)
}

/// The single route of a vhost trimmed for this proxy: to the proxy's own deny listener
/// (which answers the destination's RBAC reply: [`deny_listener_answers_the_rbac_reply`]),
/// its refusals counted by the vhost's `denied` virtual cluster.
fn is_denied_here(vh: &Value) -> bool {
    let routes = vh["routes"].as_array().unwrap();
    routes.len() == 1
        && routes[0]["match"]["prefix"] == "/"
        && routes[0]["route"] == serde_json::json!({"cluster": "meshbridge-denied"})
        && vh["virtualClusters"][0]["name"] == "denied"
}

/// A proxy with a trimmed port has its deny listener (the RBAC filter's reply, on the pod's
/// address, port 15004) and the static cluster that reaches it; a proxy without one has
/// neither.
fn deny_listener_answers_the_rbac_reply(doc: &Value) -> bool {
    let Some(l) = doc["resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "meshbridge-denied")
    else {
        return false;
    };
    let route = &l["filterChains"][0]["filters"][0]["typedConfig"]["routeConfig"]["virtualHosts"]
        [0]["routes"][0];
    let c = named(&doc["resources"]["clusters"], "meshbridge-denied");
    l["address"]["socketAddress"]["portValue"] == 15004
        && route["directResponse"]["status"] == 403
        && route["directResponse"]["body"]["inlineString"] == "RBAC: access denied"
        && c["type"] == "STATIC"
        && c["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]
            == l["address"]
}

fn outbound_clusters(doc: &Value) -> Vec<String> {
    doc["resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| !n.starts_with("inbound|") && *n != "meshbridge-denied")
        .map(str::to_string)
        .collect()
}

#[test]
fn a_proxy_gets_only_the_clusters_it_may_reach() {
    let (docs, _) = run(BASE);
    // client → web (to-web): web, its split backends and both versions kept whole. client
    // → db: no rule, so db's TCP port is trimmed.
    let client = proxy(&docs, "demo/client");
    assert_eq!(
        outbound_clusters(client),
        vec!["demo/web-v1|80", "demo/web-v2|80", "demo/web|80"]
    );
    assert!(!has(&client["resources"]["endpoints"], "demo/db|5432"));
    assert!(!is_denied_here(vhost(client, "demo/web|80")));
    assert!(!is_denied_here(vhost(client, "demo/web-v1|80")));
    // web → db (to-db) but nothing → web: web's, web-v1's and web-v2's names answer 403
    // locally, with the same domains as before; db kept. (The root `web` targets 8080, which
    // web-2 does not declare: its sidecar listens there anyway, as Kubernetes sends 8080 to
    // it, so web-2 refuses with its RBAC too.)
    let web = proxy(&docs, "demo/web-1");
    assert_eq!(outbound_clusters(web), vec!["demo/db|5432"]);
    assert!(deny_listener_answers_the_rbac_reply(web), "{web:#}");
    assert!(!deny_listener_answers_the_rbac_reply(client));
    assert!(has(&web["resources"]["endpoints"], "demo/db|5432"));
    for vh in ["demo/web|80", "demo/web-v1|80", "demo/web-v2|80"] {
        let v = vhost(web, vh);
        assert!(is_denied_here(v), "{vh}: {v:#}");
        assert_eq!(
            v["domains"],
            vhost(client, vh)["domains"],
            "same names as an allowed client"
        );
    }
    // db may reach nothing: no cluster or endpoints at all.
    let db = proxy(&docs, "demo/db-0");
    assert!(outbound_clusters(db).is_empty());
    assert!(!has(&db["resources"]["endpoints"], "demo/db|5432"));
    // The TrafficTarget that opened a service shapes its source's configuration.
    let out = translate(
        vec![load_str("in.yaml", BASE)],
        Box::new(EnvoyAdapter),
        &Context::default(),
        None,
    );
    let parents = |node: &str| -> Vec<String> {
        out.translation
            .objects
            .iter()
            .find(|o| o.body["node"]["id"] == node)
            .unwrap()
            .parents
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert!(parents("demo/client").contains(&"to-web".to_string()));
    assert!(!parents("demo/client").contains(&"to-db".to_string()));
    assert!(parents("demo/web-1").contains(&"to-db".to_string()));
}

#[test]
fn a_trimmed_tcp_port_keeps_its_listener_and_closes_like_the_destination() {
    let (docs, _) = run(BASE);
    let client = proxy(&docs, "demo/client");
    let l = named(&client["resources"]["listeners"], "outbound_tcp_5432");
    let fs = l["filterChains"][0]["filters"].as_array().unwrap();
    assert_eq!(fs.len(), 2, "{l:#}");
    assert_eq!(fs[0]["name"], "envoy.filters.network.rbac");
    assert_eq!(fs[0]["typedConfig"]["rules"]["action"], "ALLOW");
    assert!(
        fs[0]["typedConfig"]["rules"]
            .get("policies")
            .is_none_or(|p| p.as_object().unwrap().is_empty()),
        "deny-all: {l:#}"
    );
    assert_eq!(fs[1]["name"], "envoy.filters.network.tcp_proxy");
    assert_eq!(
        fs[1]["typedConfig"]["upstreamConnectMode"],
        "ON_DOWNSTREAM_DATA"
    );
    // web may reach db: a plain TCP proxy, as before.
    let web = proxy(&docs, "demo/web-1");
    let l = named(&web["resources"]["listeners"], "outbound_tcp_5432");
    let fs = l["filterChains"][0]["filters"].as_array().unwrap();
    assert_eq!(fs.len(), 1, "{l:#}");
    assert_eq!(fs[0]["typedConfig"]["cluster"], "demo/db|5432");
    assert!(fs[0]["typedConfig"].get("upstreamConnectMode").is_none());
}

#[test]
fn adding_a_traffic_target_adds_the_clusters() {
    let allow = "\n---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: client-to-db, namespace: demo}\nspec:\n  destination: {kind: ServiceAccount, name: db, namespace: demo}\n  sources: [{kind: ServiceAccount, name: client, namespace: demo}]\n  rules: [{kind: TCPRoute, name: tcp}]\n";
    let (before, _) = run(BASE);
    let (after, _) = run(&format!("{BASE}{allow}"));
    let (b, a) = (proxy(&before, "demo/client"), proxy(&after, "demo/client"));
    assert!(!outbound_clusters(b).contains(&"demo/db|5432".to_string()));
    assert!(outbound_clusters(a).contains(&"demo/db|5432".to_string()));
    let eps = named(&a["resources"]["endpoints"], "demo/db|5432");
    assert_eq!(
        eps["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"]["address"],
        "10.0.0.4"
    );
    let l = named(&a["resources"]["listeners"], "outbound_tcp_5432");
    assert_eq!(
        l["filterChains"][0]["filters"][0]["typedConfig"]["cluster"],
        "demo/db|5432"
    );
    // Nothing else of the client changed but what the new rule opens.
    assert_eq!(b["resources"]["routes"], a["resources"]["routes"]);
    // Removing the HTTP rule to web trims web for the client: 403 here, no clusters.
    let cut = BASE.replace("name: to-web", "name: to-web-gone").replace(
        "sources: [{kind: ServiceAccount, name: client, namespace: demo}]\n  rules: [{kind: HTTPRouteGroup",
        "sources: [{kind: ServiceAccount, name: db, namespace: demo}]\n  rules: [{kind: HTTPRouteGroup",
    );
    let (docs, _) = run(&cut);
    let client = proxy(&docs, "demo/client");
    assert!(is_denied_here(vhost(client, "demo/web-v1|80")));
    assert!(is_denied_here(vhost(client, "demo/web-v2|80")));
    // …and opens it to db instead.
    let db = proxy(&docs, "demo/db-0");
    assert!(!is_denied_here(vhost(db, "demo/web-v1|80")));
    assert!(!is_denied_here(vhost(db, "demo/web-v2|80")));
}

/// Split backends running as different identities: the client may reach only web-v2's.
const SPLIT_IDS: &str = include_str!("fixtures/split_ids.yaml");

#[test]
fn a_reachable_split_keeps_every_backend_and_unenforced_ports_are_never_trimmed() {
    let (docs, _) = run(SPLIT_IDS);
    let client = proxy(&docs, "demo/client");
    // web is reachable (through web-v2): both backends stay, web-v1's requests are still
    // refused by web-v1's sidecar (403) as before.
    let vh = vhost(client, "demo/web|80");
    let wc = vh["routes"][0]["route"]["weightedClusters"]["clusters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = wc.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["demo/web-v1|80", "demo/web-v2|80"]);
    assert!(has(&client["resources"]["clusters"], "demo/web-v1|80"));
    assert!(has(&client["resources"]["endpoints"], "demo/web-v1|80"));
    // web-v1 on its own is not reachable: its names answer 403 here, while its cluster stays
    // for the split.
    assert!(is_denied_here(vhost(client, "demo/web-v1|80")));
    assert!(!is_denied_here(vhost(client, "demo/web-v2|80")));
    // No pods behind ghost: today's `503 no healthy upstream` stays (not trimmed to a 403).
    assert!(!is_denied_here(vhost(client, "demo/ghost|80")));
    assert!(has(&client["resources"]["clusters"], "demo/ghost|80"));
    // undeclared targets a port web-1 does not declare: its sidecar listens there anyway
    // (Kubernetes sends that port to it), so web-1's RBAC refuses the client: trimmed.
    assert!(is_denied_here(vhost(client, "demo/undeclared|80")));
    // web-1 may reach nothing enforced: everything with pods is trimmed.
    let w1 = proxy(&docs, "demo/web-1");
    assert!(is_denied_here(vhost(w1, "demo/web|80")));
    assert!(is_denied_here(vhost(w1, "demo/web-v2|80")));
    assert_eq!(outbound_clusters(w1), vec!["demo/ghost|80"]);
    // Every resource still encodes.
    assert_every_resource_encodes(&docs);
}
