//! GAMMA inputs (route tables, consumer routes) → Gateway API routes written back rule for
//! rule. Every output is validated against the official CRDs by `common::translate`.

mod common;

use common::*;
use meshbridge_core::{Feature, Level};
use serde_json::{Value, json};

/// Services web, web-v1 and web-v2 (port 8080) in `default`.
const SERVICES: &str =
    include_str!("../../../conformance/fixtures/gamma/gateway-api-services.yaml");
/// A route table for web: header modifiers, a redirect, a rewrite, timeouts, a retry and
/// query matches.
const TABLE: &str =
    include_str!("../../../conformance/fixtures/gamma/gateway-api-route-table.yaml");
/// Lets HTTPRoutes in `shop` reference Services in `default`.
const SHOP_GRANT: &str =
    include_str!("../../../conformance/fixtures/gamma/gateway-api-shop-grant.yaml");

fn services() -> String {
    SERVICES.to_owned()
}

fn backend(name: &str, weight: u64) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": 8080, "weight": weight})
}

#[test]
fn route_table_is_written_back_rule_for_rule() {
    let t = translate(&(services() + TABLE));
    assert_eq!(
        kinds(&t),
        ["gateway.networking.k8s.io/v1 HTTPRoute default/web-8080"]
    );
    let s = spec(&t, "HTTPRoute", "web-8080");
    assert_eq!(
        s["parentRefs"],
        json!([{"group": "", "kind": "Service", "name": "web", "port": 8080}])
    );
    let rules = s["rules"].as_array().unwrap();
    // Precedence order (core): Exact first, then PathPrefix longest first, then the rest;
    // no catch-all to the root.
    let paths: Vec<&Value> = rules.iter().map(|r| &r["matches"][0]["path"]).collect();
    assert_eq!(
        paths,
        [
            &json!({"type": "Exact", "value": "/old"}),
            &json!({"type": "PathPrefix", "value": "/api"}),
            &json!({"type": "PathPrefix", "value": "/v2"}),
            &json!({"type": "PathPrefix", "value": "/"}),
        ]
    );
    assert_eq!(
        rules[0],
        json!({
            "matches": [{"path": {"type": "Exact", "value": "/old"}}],
            "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}, "statusCode": 301}}],
        })
    );
    assert_eq!(
        rules[1],
        json!({
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
            "filters": [
                {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v1"}}},
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "x-served", "value": "1"}]}},
            ],
            "backendRefs": [backend("web-v1", 1)],
        })
    );
    assert_eq!(
        rules[2],
        json!({
            "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-version", "value": "v2"}], "remove": ["x-debug"]}}],
            "backendRefs": [backend("web-v2", 1)],
            "timeouts": {"request": "5s", "backendRequest": "500ms"},
        })
    );
    assert_eq!(
        rules[3],
        json!({
            "matches": [{
                "path": {"type": "PathPrefix", "value": "/"},
                "headers": [{"name": "x-canary", "type": "Exact", "value": "yes"}],
                "queryParams": [
                    {"name": "debug", "type": "Exact", "value": "1.0"},
                    {"name": "user", "type": "RegularExpression", "value": "^(?:a.*)$"},
                ],
            }],
            "backendRefs": [backend("web-v1", 80), backend("web-v2", 20)],
        })
    );
    // Only the retry is reported and not written (experimental-channel field missing from
    // the standard CRD).
    assert_eq!(t.findings.len(), 1, "{:?}", t.findings);
    assert_eq!(t.findings[0].feature, Feature::Retries);
    assert_eq!(t.findings[0].level, Level::None);
    assert!(
        t.findings[0].field.ends_with(".retry"),
        "{:?}",
        t.findings[0]
    );
}

#[test]
fn consumer_route_lives_in_the_client_namespace() {
    let input = services()
        + include_str!("../../../conformance/fixtures/gamma/gateway-api-consumer-route.yaml")
        + SHOP_GRANT;
    let t = translate(&input);
    assert_eq!(
        kinds(&t),
        [
            "gateway.networking.k8s.io/v1 HTTPRoute shop/web.default-8080",
            "gateway.networking.k8s.io/v1beta1 ReferenceGrant default/meshbridge-httproute-shop",
        ]
    );
    assert_eq!(
        spec(&t, "HTTPRoute", "web.default-8080"),
        &json!({
            "parentRefs": [{"group": "", "kind": "Service", "name": "web", "namespace": "default", "port": 8080}],
            "rules": [
                {
                    "matches": [{"path": {"type": "Exact", "value": "/ping"}}],
                    "backendRefs": [{"group": "", "kind": "Service", "name": "web-v2", "namespace": "default", "port": 8080, "weight": 1}],
                    "timeouts": {"request": "1m30s"},
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [backend("web-shop", 1)],
                },
            ],
        })
    );
    assert_eq!(
        spec(&t, "ReferenceGrant", "meshbridge-httproute-shop"),
        &json!({
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}],
            "to": [{"group": "", "kind": "Service", "name": "web-v2"}],
        })
    );
    assert!(t.findings.is_empty(), "{:?}", t.findings);
}

#[test]
fn grpc_route_table_stays_a_grpcroute() {
    let input = include_str!("../../../conformance/fixtures/gamma/gateway-api-grpc-route.yaml");
    let t = translate(input);
    assert_eq!(
        kinds(&t),
        ["gateway.networking.k8s.io/v1 GRPCRoute default/echo-8080"]
    );
    let rules = &spec(&t, "GRPCRoute", "echo-8080")["rules"];
    assert_eq!(
        rules[0]["matches"],
        json!([{"method": {"type": "Exact", "service": "pkg.Echo", "method": "Say"}}])
    );
    assert_eq!(
        rules[1]["matches"],
        json!([{"method": {"type": "Exact", "service": "pkg.Admin"}, "headers": [{"name": "x-admin", "type": "Exact", "value": "1"}]}])
    );
    assert_eq!(rules[0]["backendRefs"], json!([backend("echo-v2", 1)]));
    assert_eq!(rules.as_array().unwrap().len(), 2);
    assert!(t.findings.is_empty(), "{:?}", t.findings);
}

#[test]
fn durations_and_literals() {
    use meshbridge_gateway_api::table::{duration, literal_of};
    assert_eq!(duration(0), "0s");
    assert_eq!(duration(500), "500ms");
    assert_eq!(duration(5000), "5s");
    assert_eq!(duration(90_000), "1m30s");
    assert_eq!(duration(3_600_250), "1h250ms");
    assert_eq!(literal_of("1\\.0").as_deref(), Some("1.0"));
    assert_eq!(literal_of("yes").as_deref(), Some("yes"));
    assert_eq!(literal_of("a.*"), None);
    assert_eq!(literal_of("\\d"), None);
    assert_eq!(literal_of(""), None);
}

#[test]
fn split_shaped_consumer_route_keeps_the_split_form() {
    // One rule of weighted backends: core builds an ordinary split, in the consumer map.
    let input = services()
        + include_str!("../../../conformance/fixtures/gamma/gateway-api-canary-route.yaml")
        + SHOP_GRANT;
    let t = translate(&input);
    let with_ns = |name: &str, w: u64| {
        let mut b = backend(name, w);
        b["namespace"] = json!("default");
        b
    };
    assert_eq!(
        spec(&t, "HTTPRoute", "web.default-8080"),
        &json!({
            "parentRefs": [{"group": "", "kind": "Service", "name": "web", "namespace": "default", "port": 8080}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [with_ns("web-v1", 90), with_ns("web-v2", 10)],
            }],
        })
    );
    assert_eq!(
        spec(&t, "ReferenceGrant", "meshbridge-httproute-shop")["to"],
        json!([
            {"group": "", "kind": "Service", "name": "web-v1"},
            {"group": "", "kind": "Service", "name": "web-v2"},
        ])
    );
    assert!(t.findings.is_empty(), "{:?}", t.findings);
}
