//! GAMMA route tables and consumer routes → App Mesh controller CRDs. Every object is
//! validated against the official App Mesh controller CRD schemas (unknown fields rejected).

use meshbridge_appmesh::AppMeshAdapter;
use meshbridge_core::pipeline::{Output, translate};
use meshbridge_core::{Adapter, Context, Feature, Finding, Level};
use serde_json::{Value, json};

fn run(yaml: &str) -> Output {
    let loaded = meshbridge_core::load::load_str("input.yaml", yaml);
    translate(
        vec![loaded],
        Box::new(AppMeshAdapter),
        &Context::default(),
        None,
    )
}

fn assert_valid(out: &Output) {
    let dir = meshbridge_conformance::shared_dir().join("schemas/appmesh");
    let schemas = meshbridge_conformance::schema::Registry::load(&[dir.as_path()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.failed, "{:?}", out.diagnostics);
    for o in &out.translation.objects {
        let errs = schemas.validate(&o.body).err().unwrap_or_default();
        assert!(errs.is_empty(), "{} {}: {errs:?}", o.kind, o.name);
    }
    let caps = AppMeshAdapter.capabilities(&Context::default());
    for f in &out.translation.findings {
        assert_ne!(caps.level(f.feature), Level::Full, "{f:?}");
        if caps.level(f.feature) == Level::None {
            assert_eq!(f.level, Level::None, "{f:?}");
        }
    }
}

fn find<'a>(out: &'a Output, kind: &str, name: &str) -> &'a Value {
    out.translation
        .objects
        .iter()
        .map(|o| &o.body)
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not in output:\n{}", out.yaml))
}

fn findings(out: &Output, feature: Feature) -> Vec<&Finding> {
    out.translation
        .findings
        .iter()
        .filter(|f| f.feature == feature)
        .collect()
}

/// Services web, web-v1 and web-v2 (port 8080) in `default`.
const SERVICES: &str = include_str!("../../../conformance/fixtures/gamma/appmesh-services.yaml");
/// A route table for web: timeouts and retries, a redirect, a header modifier, a regex
/// query match and a weighted rule.
const TABLE: &str = include_str!("../../../conformance/fixtures/gamma/appmesh-route-table.yaml");

fn services() -> String {
    SERVICES.to_owned()
}

#[test]
fn route_table_becomes_prioritised_routes() {
    let out = run(&(services() + TABLE));
    assert_valid(&out);
    let vr = find(&out, "VirtualRouter", "web");
    let routes = vr["spec"]["routes"].as_array().unwrap();
    let summary: Vec<(String, u64)> = routes
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["priority"].as_u64().unwrap(),
            )
        })
        .collect();
    // Exact paths first (core's precedence), then prefixes longest first, then the rest:
    // the redirect (rule 0), header modifier (rule 1) and regex query (rule 4) rules are
    // left out; no catch-all.
    assert_eq!(
        summary,
        [
            ("p8080-r2-m0".to_string(), 2),
            ("p8080-r3-m0-get".to_string(), 3)
        ]
    );
    assert_eq!(
        routes[0]["httpRoute"],
        json!({
            "match": {"path": {"regex": "(?:/v2(?:/.*)?)"}},
            "action": {"weightedTargets": [{"virtualNodeRef": {"name": "web-v2"}, "weight": 100}]},
            "timeout": {"perRequest": {"unit": "s", "value": 5}},
            "retryPolicy": {
                "maxRetries": 2,
                "perRetryTimeout": {"unit": "ms", "value": 500},
                "httpRetryEvents": ["gateway-error"],
                "tcpRetryEvents": ["connection-error"],
            },
        })
    );
    assert_eq!(
        routes[1]["httpRoute"],
        json!({
            "match": {
                "prefix": "/",
                "method": "GET",
                "headers": [{"name": "x-canary", "match": {"exact": "yes"}}],
                "queryParameters": [{"name": "debug", "match": {"exact": "1.0"}}],
            },
            "action": {"weightedTargets": [
                {"virtualNodeRef": {"name": "web-v2"}, "weight": 20},
                {"virtualNodeRef": {"name": "web-v1"}, "weight": 80},
            ]},
            "timeout": {"perRequest": {"unit": "s", "value": 2}},
        })
    );
    let redirects = findings(&out, Feature::Redirects);
    assert_eq!(redirects.len(), 1);
    assert_eq!(redirects[0].level, Level::None);
    assert!(
        redirects[0].field.ends_with(".filters[0]"),
        "{:?}",
        redirects[0]
    );
    assert!(redirects[0].reason.contains("left out"));
    assert_eq!(findings(&out, Feature::HeaderModifiers).len(), 1);
    let query = findings(&out, Feature::QueryRouting);
    assert_eq!(query.len(), 1);
    assert_eq!(query[0].level, Level::None);
    // 503 alone is retried through gateway-error, which also retries 502 and 504.
    let retries = findings(&out, Feature::Retries);
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert!(
        retries[0].reason.contains("502, 504"),
        "{}",
        retries[0].reason
    );
}

#[test]
fn api_plan_leaves_out_what_the_sync_cannot_write() {
    let ir = meshbridge_conformance::fixtures::valid_ir_of(&(services() + TABLE));
    let st = meshbridge_appmesh::desired_state(&ir, &Context::default());
    assert_eq!(st.route_extras.len(), 2);
    let api = st.clone().for_api();
    assert!(api.route_extras.is_empty());
    let names: Vec<&str> = api.virtual_routers["web_default"]
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    // The route with a query match is left out; the timeout/retry route stays (reported).
    assert_eq!(names, ["p8080-r2-m0"]);
    assert!(api.findings.len() > st.findings.len());
}

#[test]
fn consumer_routes_are_reported() {
    let input = services()
        + include_str!("../../../conformance/fixtures/gamma/appmesh-consumer-route.yaml");
    let out = run(&input);
    assert!(!out.failed, "{:?}", out.diagnostics);
    let c = findings(&out, Feature::ConsumerRoutes);
    assert_eq!(c.len(), 1, "{:?}", out.translation.findings);
    assert_eq!(c[0].level, Level::None);
    assert_eq!(c[0].object.name, "web-for-shop");
    // Nothing is programmed for it.
    assert!(
        out.translation
            .objects
            .iter()
            .all(|o| o.kind != "VirtualRouter"),
        "{}",
        out.yaml
    );
}

#[test]
fn capability_rows_for_gamma() {
    let m = AppMeshAdapter.capabilities(&Context::default());
    for (f, l) in [
        (Feature::RouteTables, Level::Partial),
        (Feature::QueryRouting, Level::Partial),
        (Feature::HeaderModifiers, Level::None),
        (Feature::UrlRewrite, Level::None),
        (Feature::Redirects, Level::None),
        (Feature::Timeouts, Level::Partial),
        (Feature::Retries, Level::Partial),
        (Feature::ConsumerRoutes, Level::None),
    ] {
        assert_eq!(m.level(f), l, "{f}");
        assert!(!m.get(f).reason.is_empty());
    }
}

#[test]
fn long_timeouts_and_default_per_retry_timeout_are_reported() {
    let input =
        services() + include_str!("../../../conformance/fixtures/gamma/appmesh-timeouts.yaml");
    let out = run(&input);
    assert_valid(&out);
    let t = findings(&out, Feature::Timeouts);
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(t[0].reason.contains("30000ms"), "{}", t[0].reason);
    let vr = find(&out, "VirtualRouter", "web");
    let retry = vr["spec"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| r["httpRoute"].get("retryPolicy"))
        .unwrap();
    assert_eq!(
        retry,
        &json!({
            "maxRetries": 3,
            "perRetryTimeout": {"unit": "s", "value": 15},
            "httpRetryEvents": ["server-error", "client-error"],
            "tcpRetryEvents": ["connection-error"],
        })
    );
    let r = findings(&out, Feature::Retries);
    assert!(
        r.iter().any(|f| f.reason.contains("per-retry timeout")),
        "{r:?}"
    );
    assert!(r.iter().any(|f| f.reason.contains("also retry")), "{r:?}");
}
