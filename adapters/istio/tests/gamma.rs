//! GAMMA route tables and consumer routes → VirtualServices, validated against the official
//! Istio CRD schema.

mod common;

use common::*;
use meshbridge_core::{Adapter, Context, Feature, Level};
use meshbridge_istio::IstioAdapter;
use serde_json::{Value, json};
use std::sync::OnceLock;

const SERVICES: &str = include_str!("../../../conformance/fixtures/gamma/services.yaml");
const WEB_ROUTE: &str = include_str!("../../../conformance/fixtures/gamma/web-route.yaml");
const ROUTE_TABLE: &str = include_str!("../../../conformance/fixtures/gamma/route-table.yaml");
const CONSUMER_ROUTE: &str =
    include_str!("../../../conformance/fixtures/gamma/consumer-route.yaml");

/// The HTTPRoute `default/web` (parent: the Service web, port 8080) with these rule items.
fn web_route(rules: &str) -> String {
    format!("{WEB_ROUTE}{rules}")
}

/// `text` with `lines` put in after its `# <marker>` comment line (which must be there).
fn fill(text: &str, marker: &str, lines: &str) -> String {
    let at = format!("# <{marker}>\n");
    assert!(text.contains(&at), "no {at:?} in {text}");
    text.replacen(&at, &format!("{at}{lines}"), 1)
}

/// The shared route table, plus for Istio a URL rewrite on the /v2 rule and a prefix
/// redirect (/legacy, rule 2) after the /old rule.
fn table() -> String {
    let t = fill(
        ROUTE_TABLE,
        "v2-filters",
        "    - type: URLRewrite\n      \
         urlRewrite: {hostname: web-v2.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}\n",
    );
    let t = fill(
        &t,
        "after-old",
        "  - matches: [{path: {type: PathPrefix, value: /legacy}}]\n    \
         filters: [{type: RequestRedirect, requestRedirect: {hostname: old.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /archive}}}]\n",
    );
    web_route(&t)
}

fn schemas() -> &'static meshbridge_conformance::schema::Registry {
    static S: OnceLock<meshbridge_conformance::schema::Registry> = OnceLock::new();
    S.get_or_init(|| {
        let dir = meshbridge_conformance::shared_dir().join("schemas/istio");
        meshbridge_conformance::schema::Registry::load(&[dir.as_path()]).expect("istio schemas")
    })
}

fn run(extra: &str) -> meshbridge_core::Translation {
    let ir = meshbridge_conformance::fixtures::valid_ir_of(&format!("{SERVICES}\n---\n{extra}"));
    let t = IstioAdapter.translate(&ir, &Context::default());
    assert_eq!(t, IstioAdapter.translate(&ir, &Context::default()));
    assert_istio_rules_except_direct(&t);
    assert_findings_match_matrix(&t);
    for o in &t.objects {
        let api = o.body["apiVersion"].as_str().unwrap();
        let kind = o.body["kind"].as_str().unwrap();
        assert!(schemas().has(api, kind), "no schema for {api} {kind}");
        if let Err(e) = schemas().validate(&o.body) {
            panic!("{kind} invalid: {e:#?}\n{:#}", o.body);
        }
    }
    t
}

/// Weights sum to 100 on every route that has destinations.
fn assert_istio_rules_except_direct(t: &meshbridge_core::Translation) {
    for o in &t.objects {
        for r in o.body["spec"]["http"].as_array().into_iter().flatten() {
            let n = ["route", "redirect", "directResponse"]
                .iter()
                .filter(|k| r.get(**k).is_some())
                .count();
            assert_eq!(n, 1, "{r}");
            if let Some(route) = r["route"].as_array() {
                let sum: u64 = route.iter().map(|d| d["weight"].as_u64().unwrap()).sum();
                assert_eq!(sum, 100, "{r}");
            }
        }
    }
}

fn dest(host: &str, weight: u64) -> Value {
    json!({"destination": {"host": format!("{host}.default.svc.cluster.local"), "port": {"number": 8080}}, "weight": weight})
}

#[test]
fn route_table_in_order_without_catch_all() {
    let t = run(&table());
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    assert_eq!(names(&t), vec!["VirtualService default/web"]);
    let http = spec(&t, "VirtualService", "default", "web")["http"].clone();
    let names: Vec<&str> = http
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    // Gateway API precedence (core's order): Exact, then the longest prefixes, then headers.
    assert_eq!(
        names,
        vec![
            "rule-1-8080",
            "rule-2-0-exact-8080",
            "rule-2-0-prefix-8080",
            "rule-4-8080",
            "rule-0-8080",
            "rule-3-8080",
        ],
        "one route per rule, no catch-all"
    );
    let by = |n: &str| {
        http.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone()
    };
    let r0 = by("rule-0-8080");
    assert_eq!(r0["match"][0]["uri"], json!({"regex": "(?:/v2(?:/.*)?)"}));
    assert_eq!(r0["match"][0]["port"], 8080);
    assert_eq!(r0["route"], json!([dest("web-v2", 100)]));
    assert_eq!(
        r0["headers"],
        json!({
            "request": {"set": {"x-version": "v2"}, "remove": ["x-debug"]},
            "response": {"add": {"x-served-by": "v2"}},
        })
    );
    assert_eq!(
        r0["rewrite"],
        json!({"authority": "web-v2.internal", "uriRegexRewrite": {"match": "^(?:/v2)/?(.*)$", "rewrite": "/\\1"}})
    );
    assert_eq!(r0["timeout"], "5s");
    assert_eq!(
        r0["retries"],
        json!({"attempts": 2, "retryOn": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,503", "perTryTimeout": "1.5s"})
    );
    let r1 = by("rule-1-8080");
    assert_eq!(r1["match"][0]["uri"], json!({"exact": "/old"}));
    assert_eq!(
        r1["redirect"],
        json!({"uri": "/new", "derivePort": "FROM_REQUEST_PORT", "redirectCode": 301})
    );
    let r2 = by("rule-2-0-exact-8080");
    assert_eq!(r2["match"][0]["uri"], json!({"exact": "/legacy"}));
    assert_eq!(
        r2["redirect"],
        json!({"uri": "/archive", "authority": "old.example.com", "derivePort": "FROM_REQUEST_PORT", "redirectCode": 302})
    );
    let r2p = by("rule-2-0-prefix-8080");
    assert_eq!(r2p["match"][0]["uri"], json!({"prefix": "/legacy/"}));
    assert_eq!(r2p["redirect"]["uri"], "/archive/");
    let r3 = by("rule-3-8080");
    let m = &r3["match"][0];
    assert_eq!(m["headers"], json!({"x-canary": {"regex": "yes"}}));
    assert_eq!(m["queryParams"], json!({"debug": {"regex": "1"}}));
    assert_eq!(r3["route"], json!([dest("web-v1", 80), dest("web-v2", 20)]));
    assert_eq!(by("rule-4-8080")["directResponse"], json!({"status": 500}));
    assert!(spec(&t, "VirtualService", "default", "web")["tcp"].is_null());
}

#[test]
fn backoff_is_reported() {
    let t = run(&web_route(
        r#"
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: web-v1, port: 8080}]
    retry: {attempts: 3, backoff: 100ms}
  - backendRefs: [{name: web-v2, port: 8080}]
    timeouts: {backendRequest: 2s}
"#,
    ));
    let keys = finding_keys(&t);
    assert!(
        keys.contains(&(
            Feature::Retries,
            Level::Partial,
            "HTTPRoute/default/web".into(),
            "spec.rules[0].retry.backoff".into()
        )),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.0 == Feature::Timeouts && k.3 == "spec.rules[1].timeouts.backendRequest"),
        "{keys:?}"
    );
    let http = &spec(&t, "VirtualService", "default", "web")["http"];
    assert_eq!(
        http[0]["retries"],
        json!({"attempts": 3, "retryOn": "connect-failure,refused-stream,unavailable,cancelled"})
    );
    assert_eq!(http[1]["timeout"], "2s");
    assert_eq!(http[1]["match"], json!([{"port": 8080}]));
}

#[test]
fn scheme_redirect_derives_the_port() {
    let t = run(&web_route(
        r#"
  - matches: [{path: {type: Exact, value: /secure}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - matches: [{path: {type: Exact, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: other.example.com, port: 8443, statusCode: 301}}]
  - backendRefs: [{name: web-v1, port: 8080}]
    timeouts: {request: 0s}
"#,
    ));
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    let http = &spec(&t, "VirtualService", "default", "web")["http"];
    assert_eq!(
        http[0]["redirect"],
        json!({"scheme": "https", "derivePort": "FROM_PROTOCOL_DEFAULT", "redirectCode": 302})
    );
    assert_eq!(
        http[1]["redirect"],
        json!({"authority": "other.example.com", "port": 8443, "redirectCode": 301})
    );
    assert!(
        http[2].get("timeout").is_none(),
        "0s = no timeout: Istio's default"
    );
}

#[test]
fn consumer_route_lives_in_the_client_namespace() {
    let t = run(CONSUMER_ROUTE);
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    assert_eq!(names(&t), vec!["VirtualService client/web.default"]);
    let s = spec(&t, "VirtualService", "client", "web.default");
    assert_eq!(s["exportTo"], json!(["."]));
    assert_eq!(s["hosts"], json!(["web.default.svc.cluster.local"]));
    assert_eq!(s["http"][0]["match"][0]["uri"], json!({"exact": "/x"}));
    assert_eq!(s["http"][0]["route"], json!([dest("web-v2", 100)]));
    assert_eq!(s["http"][1]["route"], json!([dest("web-v1", 100)]));
}

#[test]
fn matrix_declares_the_gamma_rows() {
    let m = IstioAdapter.capabilities(&Context::default());
    for f in Feature::gamma() {
        assert!(!m.get(*f).reason.contains("not implemented"), "{f:?}");
    }
}
