//! GAMMA route tables (Gateway API routes with a Service parent) → Envoy routes: one route per
//! rule match in precedence order, filters, redirects, timeouts, retries, query matches, no
//! catch-all (unmatched requests get Envoy's 404), consumer routes only for clients of their
//! namespace. Every resource must encode with Envoy's descriptors.

mod common;

use common::{assert_every_resource_encodes, proxy};
use meshbridge_core::build::build;
use meshbridge_core::load::load_str;
use meshbridge_core::snapshot::Snapshot;
use meshbridge_core::{Adapter, Context, Feature, Level};
use meshbridge_envoy::EnvoyAdapter;
use serde_json::Value;

const SERVICES: &str = include_str!("../../../conformance/fixtures/gamma/services.yaml");
const WEB_ROUTE: &str = include_str!("../../../conformance/fixtures/gamma/web-route.yaml");

/// A pod labelled `app`, with one container (listening on `port`, if any).
fn pod(ns: &str, name: &str, app: &str, sa: &str, ip: &str, port: Option<u16>) -> String {
    let ports = port.map_or(String::new(), |p| {
        format!(", ports: [{{containerPort: {p}}}]")
    });
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {app}}}}}\n\
         spec:\n  serviceAccountName: {sa}\n  containers: [{{name: app, image: app{ports}}}]\n\
         status: {{podIP: {ip}}}\n"
    )
}

/// Services web, web-v1, web-v2 (port 8080 `http`) with one pod each (sa `web`); clients in
/// `default` and in `other` (sa `client`). No access policy yet.
fn workloads() -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n".to_string(),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n".to_string(),
        SERVICES.to_string(),
    ];
    for (app, ip) in [
        ("web", "10.0.0.1"),
        ("web-v1", "10.0.0.2"),
        ("web-v2", "10.0.0.3"),
    ] {
        docs.push(pod(
            "default",
            &format!("{app}-0"),
            app,
            "web",
            ip,
            Some(8080),
        ));
    }
    for (ns, ip) in [("default", "10.0.0.10"), ("other", "10.0.1.10")] {
        docs.push(pod(ns, "client", "client", "client", ip, None));
    }
    docs.join("\n---\n")
}

/// Both clients allowed to reach `web` (any TCP, so nothing is trimmed).
const ACCESS: &str = r#"
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: any, namespace: default}
spec: {}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: to-web, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: default}
  sources:
  - {kind: ServiceAccount, name: client, namespace: default}
  - {kind: ServiceAccount, name: client, namespace: other}
  rules: [{kind: TCPRoute, name: any}]
"#;

/// The workloads, the access policy, then `extra`.
fn inputs(extra: &str) -> String {
    format!("{}\n---\n{ACCESS}\n---\n{extra}", workloads())
}

/// The HTTPRoute `default/web` (parent: the Service web, port 8080) with these rule items.
fn web_route(rules: &str) -> String {
    format!("{WEB_ROUTE}{rules}")
}

/// The rules of the brief's route table, plus a rule with a rewrite, response headers and a
/// backoff (Envoy's own table: see `web_route`).
const TABLE: &str = r#"
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-version, value: v2}], add: [{name: x-trace, value: "1"}], remove: [x-debug]}
    backendRefs: [{name: web-v2, port: 8080}]
    timeouts: {request: 5s, backendRequest: 1500ms}
    retry: {attempts: 2, codes: [503], backoff: 100ms}
  - matches: [{path: {type: Exact, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 301}}]
  - matches: [{headers: [{name: x-canary, value: "yes"}], queryParams: [{name: debug, value: "1"}]}]
    backendRefs: [{name: web-v1, port: 8080, weight: 80}, {name: web-v2, port: 8080, weight: 20}]
  - matches: [{path: {type: PathPrefix, value: /legacy}, method: GET}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: legacy.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-served-by, value: legacy}], remove: [server]}
    backendRefs: [{name: web-v1, port: 8080}]
    timeouts: {request: 0s}
  - matches: [{path: {type: RegularExpression, value: "/api/v[0-9]+/.*"}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /api}}}]
    backendRefs: [{name: web-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /empty}}]
    backendRefs: [{name: web-v1, port: 8080, weight: 0}]
  - matches: [{path: {type: PathPrefix, value: /secure}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: secure.example}}]
"#;

/// Load → snapshot → IR (neither with problems) → the envoy adapter.
fn translate(text: &str) -> meshbridge_core::Translation {
    let loaded = load_str("in.yaml", text);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let ir = build(&Snapshot::from_objects(loaded.objects));
    let problems: Vec<String> = ir.problems().iter().map(|p| p.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}");
    EnvoyAdapter.translate(&ir, &Context::default())
}

/// [`translate`]: every proxy's document (each resource encodes) and the findings.
fn run(text: &str) -> (Vec<Value>, Vec<meshbridge_core::Finding>) {
    let t = translate(text);
    let docs: Vec<Value> = t.objects.iter().map(|o| o.body.clone()).collect();
    assert_every_resource_encodes(&docs);
    (docs, t.findings)
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:#}"))
}

/// The routes of `svc`'s virtual host (port 8080) on the proxy's outbound listener.
fn routes(doc: &Value, svc: &str) -> Vec<Value> {
    let rc = named(
        &doc["resources"]["routes"],
        &format!("outbound_http/default/{svc}"),
    );
    named(&rc["virtualHosts"], &format!("default/{svc}|8080"))["routes"]
        .as_array()
        .unwrap()
        .clone()
}

fn clusters(doc: &Value) -> Vec<String> {
    doc["resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_route_table_becomes_routes_in_precedence_order_with_filters() {
    let (docs, findings) = run(&inputs(&web_route(TABLE)));
    let client = proxy(&docs, "default/client");
    let rs = routes(client, "web");
    let names: Vec<&str> = rs.iter().map(|r| r["name"].as_str().unwrap()).collect();
    // Gateway API precedence: exact, regex, prefixes longest first, then the header match.
    assert_eq!(
        names,
        [
            "web/rule1",
            "web/rule4",
            "web/rule3",
            "web/rule6",
            "web/rule5",
            "web/rule0",
            "web/rule2"
        ],
        "{rs:#?}"
    );
    let by = |n: &str| rs.iter().find(|r| r["name"] == n).unwrap().clone();

    // Exact path → redirect with the full path, 301, the called port kept explicit.
    let old = by("web/rule1");
    assert_eq!(old["match"], serde_json::json!({"path": "/old"}));
    assert_eq!(
        old["redirect"],
        serde_json::json!({"pathRedirect": "/new", "portRedirect": 8080, "responseCode": "MOVED_PERMANENTLY"})
    );
    assert!(old.get("route").is_none());

    // Prefix → path_separated_prefix; header edits, timeouts and retries.
    let v2 = by("web/rule0");
    assert_eq!(
        v2["match"],
        serde_json::json!({"pathSeparatedPrefix": "/v2"})
    );
    assert_eq!(
        v2["requestHeadersToAdd"],
        serde_json::json!([
            {"header": {"key": "x-version", "value": "v2"}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "x-trace", "value": "1"}, "appendAction": "APPEND_IF_EXISTS_OR_ADD"},
        ])
    );
    assert_eq!(v2["requestHeadersToRemove"], serde_json::json!(["x-debug"]));
    let a = &v2["route"];
    assert_eq!(a["cluster"], "default/web-v2|8080");
    assert_eq!(a["timeout"], "5s");
    assert_eq!(a["clusterNotFoundResponseCode"], "INTERNAL_SERVER_ERROR");
    assert_eq!(
        a["retryPolicy"],
        serde_json::json!({
            "numRetries": 2,
            "retryOn": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            "retriableStatusCodes": [503],
            "perTryTimeout": "1.500s",
            "retryBackOff": {"baseInterval": "0.100s"},
        })
    );

    // Headers and query parameters, weighted clusters, no timeout.
    let canary = by("web/rule2");
    assert_eq!(
        canary["match"],
        serde_json::json!({
            "prefix": "/",
            "queryParameters": [{"name": "debug", "stringMatch": {"safeRegex": {"regex": "1"}}}],
            "headers": [{"name": "x-canary", "stringMatch": {"safeRegex": {"regex": "yes"}}}],
        })
    );
    assert_eq!(
        canary["route"]["weightedClusters"]["clusters"],
        serde_json::json!([
            {"name": "default/web-v1|8080", "weight": 80},
            {"name": "default/web-v2|8080", "weight": 20},
        ])
    );
    assert_eq!(canary["route"]["timeout"], "0s");
    assert!(canary["route"].get("retryPolicy").is_none());

    // Method, prefix rewrite to `/` (a regex rewrite), host rewrite, response headers.
    let legacy = by("web/rule3");
    assert_eq!(
        legacy["match"],
        serde_json::json!({
            "pathSeparatedPrefix": "/legacy",
            "headers": [{"name": ":method", "stringMatch": {"exact": "GET"}}],
        })
    );
    assert_eq!(legacy["route"]["hostRewriteLiteral"], "legacy.internal");
    assert_eq!(
        legacy["route"]["regexRewrite"],
        serde_json::json!({"pattern": {"regex": "^/legacy/*"}, "substitution": "/"})
    );
    assert_eq!(legacy["route"]["timeout"], "0s");
    assert_eq!(
        legacy["responseHeadersToAdd"],
        serde_json::json!([{"header": {"key": "x-served-by", "value": "legacy"}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"}])
    );
    assert_eq!(
        legacy["responseHeadersToRemove"],
        serde_json::json!(["server"])
    );

    // A regular expression: a full-match safe regex; a full path rewrite.
    let api = by("web/rule4");
    assert_eq!(
        api["match"]["safeRegex"]["regex"],
        "(?:(?:/api/v[0-9]+/.*))"
    );
    assert_eq!(
        api["route"]["regexRewrite"],
        serde_json::json!({"pattern": {"regex": "^.*$"}, "substitution": "/api"})
    );

    // No backend of positive weight: 500.
    let empty = by("web/rule5");
    assert_eq!(empty["directResponse"], serde_json::json!({"status": 500}));

    // A new scheme and host on the scheme's default port: Envoy writes no port.
    let secure = by("web/rule6");
    assert_eq!(
        secure["redirect"],
        serde_json::json!({"schemeRedirect": "https", "hostRedirect": "secure.example", "responseCode": "FOUND"})
    );

    // No catch-all to the root: a request no rule matches (say `/other`) gets Envoy's 404.
    assert!(
        !rs.iter()
            .any(|r| r["match"] == serde_json::json!({"prefix": "/"})),
        "{rs:#?}"
    );
    assert!(
        !rs.iter()
            .any(|r| r["route"]["cluster"] == "default/web|8080")
    );

    // Every backend a rule names has its cluster (and the root keeps its own).
    let cs = clusters(client);
    for c in [
        "default/web|8080",
        "default/web-v1|8080",
        "default/web-v2|8080",
    ] {
        assert!(cs.iter().any(|x| x == c), "{c} in {cs:?}");
    }
    // The backoff cannot be honoured exactly: said, on the rule's field.
    assert!(
        findings.iter().any(|f| f.feature == Feature::Retries
            && f.level == Level::Partial
            && f.field == "spec.rules[0].retry.backoff"
            && f.object.name == "web"),
        "{findings:?}"
    );
}

#[test]
fn the_route_is_a_parent_of_every_client_proxy() {
    let t = translate(&inputs(&web_route(TABLE)));
    let client = t
        .objects
        .iter()
        .find(|o| o.body["node"]["id"] == "default/client")
        .unwrap();
    assert!(
        client
            .parents
            .iter()
            .any(|p| p.name == "web" && p.kind.k8s_kind() == "HTTPRoute"),
        "{:?}",
        client.parents
    );
}

#[test]
fn a_consumer_route_applies_only_to_clients_of_its_namespace() {
    // Envoy's own consumer route: from `other`, where a client pod runs, with a port.
    let consumer = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pin, namespace: other}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: default, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /pinned}}]
    backendRefs: [{name: web-v2, namespace: default, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-other, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: other}]
  to: [{group: "", kind: Service}]
"#;
    let (docs, _) = run(&inputs(consumer));
    // The client in `other` uses its namespace's route: only /pinned, to web-v2; nothing else.
    let rs = routes(proxy(&docs, "other/client"), "web");
    assert_eq!(rs.len(), 1, "{rs:#?}");
    assert_eq!(rs[0]["name"], "pin/rule0");
    assert_eq!(
        rs[0]["match"],
        serde_json::json!({"pathSeparatedPrefix": "/pinned"})
    );
    assert_eq!(rs[0]["route"]["cluster"], "default/web-v2|8080");
    assert!(clusters(proxy(&docs, "other/client")).contains(&"default/web-v2|8080".to_string()));
    // The client in `default` is not affected: the Service itself, every request.
    let rs = routes(proxy(&docs, "default/client"), "web");
    assert_eq!(rs.len(), 1, "{rs:#?}");
    assert_eq!(rs[0]["match"], serde_json::json!({"prefix": "/"}));
    assert_eq!(rs[0]["route"]["cluster"], "default/web|8080");
}

#[test]
fn an_unmatched_path_has_no_route() {
    let only = r#"
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-v, value: "2"}]}}]
    backendRefs: [{name: web-v2, port: 8080}]
"#;
    let (docs, _) = run(&inputs(&web_route(only)));
    let rs = routes(proxy(&docs, "default/client"), "web");
    // One route, matching only /v2 and below: /v2x, /other and / match nothing (404).
    assert_eq!(rs.len(), 1, "{rs:#?}");
    assert_eq!(
        rs[0]["match"],
        serde_json::json!({"pathSeparatedPrefix": "/v2"})
    );
    assert_eq!(rs[0]["route"]["cluster"], "default/web-v2|8080");
}

#[test]
fn a_trimmed_client_keeps_redirects_and_answers_the_refusal_itself() {
    // Without the TrafficTarget, no client may reach web's pods: routes that would send a
    // request go to the proxy's own deny listener (403 there); the redirect and the 500
    // stay.
    let (docs, _) = run(&format!("{}\n---\n{}", workloads(), web_route(TABLE)));
    let rs = routes(proxy(&docs, "default/client"), "web");
    assert_eq!(rs.len(), 7);
    let by = |n: &str| rs.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(by("web/rule0")["route"]["cluster"], "meshbridge-denied");
    assert!(by("web/rule1")["redirect"].is_object());
    assert_eq!(by("web/rule5")["directResponse"]["status"], 500);
    assert!(
        clusters(proxy(&docs, "default/client"))
            .iter()
            .all(|c| !c.starts_with("default/web"))
    );
}

#[test]
fn query_matches_on_a_split_shaped_route() {
    // Matched rules to one weighted set, then everything else to the Service: an SMI-shaped
    // A/B split whose match carries a query parameter.
    let ab = r#"
  - matches: [{queryParams: [{name: canary, value: "true"}]}]
    backendRefs: [{name: web-v2, port: 8080}]
  - backendRefs: [{name: web, port: 8080}]
"#;
    let (docs, _) = run(&inputs(&web_route(ab)));
    let rs = routes(proxy(&docs, "default/client"), "web");
    assert_eq!(rs.len(), 2, "{rs:#?}");
    assert_eq!(
        rs[0]["match"]["queryParameters"],
        serde_json::json!([{"name": "canary", "stringMatch": {"safeRegex": {"regex": "true"}}}])
    );
    assert_eq!(rs[0]["route"]["cluster"], "default/web-v2|8080");
    assert_eq!(rs[1]["match"], serde_json::json!({"prefix": "/"}));
    assert_eq!(rs[1]["route"]["cluster"], "default/web|8080");
}

#[test]
fn capability_rows_for_gamma_features() {
    let m = EnvoyAdapter.capabilities(&Context::default());
    for f in [
        Feature::RouteTables,
        Feature::QueryRouting,
        Feature::UrlRewrite,
        Feature::Redirects,
        Feature::Timeouts,
        Feature::ConsumerRoutes,
    ] {
        assert_eq!(m.level(f), Level::Full, "{f}");
    }
    assert_eq!(m.level(Feature::Retries), Level::Partial);
    assert_eq!(m.level(Feature::HeaderModifiers), Level::Partial);
}

#[test]
fn prefix_redirects_and_host_edits() {
    let table = r#"
  - matches: [{path: {type: PathPrefix, value: /a/}}, {path: {type: PathPrefix, value: /b}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /c/}, port: 9090, statusCode: 302}}]
  - matches: [{path: {type: PathPrefix, value: /host}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: Host, value: elsewhere}, {name: x-kept, value: "1"}]}
    backendRefs: [{name: web-v1, port: 8080}]
"#;
    let (docs, findings) = run(&inputs(&web_route(table)));
    let rs = routes(proxy(&docs, "default/client"), "web");
    // One route per match, each rewriting its own prefix (trailing `/` dropped).
    assert_eq!(rs.len(), 3, "{rs:#?}");
    let redirects: Vec<&Value> = rs.iter().filter(|r| r["redirect"].is_object()).collect();
    assert_eq!(redirects.len(), 2);
    for r in redirects {
        assert_eq!(r["redirect"]["prefixRewrite"], "/c");
        assert_eq!(r["redirect"]["portRedirect"], 9090);
        assert_eq!(r["redirect"]["responseCode"], "FOUND");
    }
    // `host` cannot be edited by Envoy's header edits: left out, and said.
    let host = rs.iter().find(|r| r["route"].is_object()).unwrap();
    assert_eq!(
        host["requestHeadersToAdd"],
        serde_json::json!([{"header": {"key": "x-kept", "value": "1"}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"}])
    );
    assert!(
        findings
            .iter()
            .any(|f| f.feature == Feature::HeaderModifiers
                && f.level == Level::Partial
                && f.field.ends_with(".filters[0].requestHeaderModifier")),
        "{findings:?}"
    );
}
