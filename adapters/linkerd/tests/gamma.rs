//! GAMMA route tables and consumer routes → Linkerd HTTPRoutes, validated against the
//! official Linkerd CRD schemas.

use meshbridge_core::api::meshbridge::{MeshSpec, MeshType};
use meshbridge_core::{Adapter, Context, Feature, Level, Translation};
use meshbridge_linkerd::LinkerdAdapter;
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

const RETRY_503: &str = "    retry: {attempts: 2, codes: [503]}\n";

/// The shared route table, plus for Linkerd the /v2 retry on the canary rule too and a
/// prefix rewrite (/rewrite, rule 3, same retry) before the /broken rule.
fn table() -> String {
    let t = fill(ROUTE_TABLE, "canary", RETRY_503);
    let rewrite = format!(
        "  - matches: [{{path: {{type: PathPrefix, value: /rewrite}}}}]\n    \
         filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}}}]\n    \
         backendRefs: [{{name: web-v1, port: 8080}}]\n{RETRY_503}"
    );
    web_route(&fill(&t, "before-broken", &rewrite))
}

fn schemas() -> &'static meshbridge_conformance::schema::Registry {
    static S: OnceLock<meshbridge_conformance::schema::Registry> = OnceLock::new();
    S.get_or_init(|| {
        let dir = meshbridge_conformance::shared_dir().join("schemas/linkerd");
        meshbridge_conformance::schema::Registry::load(&[dir.as_path()]).expect("linkerd schemas")
    })
}

fn run_cx(extra: &str, cx: &Context) -> Translation {
    let ir = meshbridge_conformance::fixtures::valid_ir_of(&format!("{SERVICES}\n---\n{extra}"));
    let a = LinkerdAdapter;
    let t = a.translate(&ir, cx);
    assert_eq!(t, a.translate(&ir, cx), "not deterministic");
    let m = a.capabilities(cx);
    for f in &t.findings {
        assert_ne!(
            m.level(f.feature),
            Level::Full,
            "finding on a Full row: {f:?}"
        );
        if m.level(f.feature) == Level::None {
            assert_eq!(f.level, Level::None, "{f:?}");
        }
    }
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

fn run(extra: &str) -> Translation {
    run_cx(extra, &Context::default())
}

fn route<'a>(t: &'a Translation, ns: &str, name: &str) -> &'a Value {
    match t
        .objects
        .iter()
        .find(|o| o.kind == "HTTPRoute" && o.namespace.as_deref() == Some(ns) && o.name == name)
    {
        Some(o) => &o.body,
        None => panic!(
            "no HTTPRoute {ns}/{name} in {:?}",
            t.objects
                .iter()
                .map(|o| (&o.kind, &o.namespace, &o.name))
                .collect::<Vec<_>>()
        ),
    }
}

fn keys(t: &Translation) -> Vec<(Feature, Level, String)> {
    t.findings
        .iter()
        .map(|f| (f.feature, f.level, f.field.clone()))
        .collect()
}

fn backend(name: &str, weight: u64) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": 8080, "weight": weight})
}

#[test]
fn route_table_rules_in_precedence_without_catch_all() {
    let t = run(&table());
    assert_eq!(
        keys(&t),
        vec![(
            Feature::UrlRewrite,
            Level::None,
            "spec.rules[3].filters[0]".into()
        )]
    );
    assert_eq!(t.objects.len(), 1);
    let r = route(&t, "default", "web-split-8080");
    assert_eq!(r["apiVersion"], "policy.linkerd.io/v1beta3");
    assert_eq!(
        r["spec"]["parentRefs"],
        json!([{"group": "", "kind": "Service", "name": "web", "port": 8080}])
    );
    let ann = &r["metadata"]["annotations"];
    assert_eq!(ann["retry.linkerd.io/http"], "503");
    assert_eq!(ann["retry.linkerd.io/limit"], "2");
    let rules = r["spec"]["rules"].as_array().unwrap();
    let paths: Vec<Value> = rules
        .iter()
        .map(|r| r["matches"][0]["path"].clone())
        .collect();
    // Gateway API precedence: Exact, then longest prefixes, then the header match; no
    // catch-all rule after them.
    assert_eq!(
        paths,
        vec![
            json!({"type": "Exact", "value": "/old"}),
            json!({"type": "PathPrefix", "value": "/rewrite"}),
            json!({"type": "PathPrefix", "value": "/broken"}),
            json!({"type": "PathPrefix", "value": "/v2"}),
            json!({"type": "PathPrefix", "value": "/"}),
        ]
    );
    assert_eq!(
        rules[0]["filters"],
        json!([{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}, "statusCode": 301}}])
    );
    assert!(rules[0].get("backendRefs").is_none());
    let no_backend =
        json!([{"group": "", "kind": "Service", "name": "no-backend.meshbridge.io", "port": 8080}]);
    assert_eq!(
        rules[1]["backendRefs"], no_backend,
        "a rewrite rule fails closed"
    );
    assert_eq!(rules[2]["backendRefs"], no_backend);
    let v2 = &rules[3];
    assert_eq!(
        v2["filters"],
        json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-version", "value": "v2"}], "remove": ["x-debug"]}}])
    );
    let mut b = backend("web-v2", 1);
    b["filters"] = json!([{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "v2"}]}}]);
    assert_eq!(v2["backendRefs"], json!([b]));
    assert_eq!(
        v2["timeouts"],
        json!({"request": "5s", "backendRequest": "1500ms"})
    );
    let canary = &rules[4];
    assert_eq!(
        canary["matches"],
        json!([{
            "headers": [{"name": "x-canary", "type": "Exact", "value": "yes"}],
            "path": {"type": "PathPrefix", "value": "/"},
            "queryParams": [{"name": "debug", "type": "Exact", "value": "1"}],
        }])
    );
    assert_eq!(
        canary["backendRefs"],
        json!([backend("web-v1", 80), backend("web-v2", 20)])
    );
}

#[test]
fn differing_retries_and_old_linkerd_are_reported() {
    let yaml = &web_route(
        r#"
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: web-v1, port: 8080}]
    retry: {attempts: 3, codes: [502]}
    timeouts: {request: 2s}
  - backendRefs: [{name: web-v2, port: 8080}]
"#,
    );
    let t = run(yaml);
    assert_eq!(
        keys(&t),
        vec![(
            Feature::Retries,
            Level::Partial,
            "spec.rules[0].retry".into()
        )]
    );
    let r = route(&t, "default", "web-split-8080");
    assert!(
        r["metadata"]["annotations"]
            .get("retry.linkerd.io/http")
            .is_none()
    );
    let old = Context {
        mesh: Some(MeshSpec {
            version: Some("2.14.0".into()),
            ..MeshSpec::of(MeshType::Linkerd)
        }),
        ..Context::default()
    };
    let t = run_cx(yaml, &old);
    let k = keys(&t);
    assert!(
        k.contains(&(
            Feature::Timeouts,
            Level::Partial,
            "spec.rules[0].timeouts".into()
        )),
        "{k:?}"
    );
    assert!(
        k.contains(&(
            Feature::Retries,
            Level::Partial,
            "spec.rules[0].retry".into()
        )),
        "{k:?}"
    );
    let r = route(&t, "default", "web-split-8080");
    assert_eq!(r["apiVersion"], "policy.linkerd.io/v1beta2");
    assert!(r["spec"]["rules"][0].get("timeouts").is_none());
}

#[test]
fn consumer_route_lives_in_the_client_namespace() {
    let t = run(CONSUMER_ROUTE);
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    assert_eq!(t.objects.len(), 1);
    let r = route(&t, "client", "web-default-route-8080");
    assert_eq!(
        r["spec"]["parentRefs"],
        json!([{"group": "", "kind": "Service", "name": "web", "namespace": "default", "port": 8080}])
    );
    let mut v2 = backend("web-v2", 1);
    v2["namespace"] = json!("default");
    let mut v1 = backend("web-v1", 1);
    v1["namespace"] = json!("default");
    let rules = &r["spec"]["rules"];
    assert_eq!(
        rules[0]["matches"],
        json!([{"path": {"type": "Exact", "value": "/x"}}])
    );
    assert_eq!(rules[0]["backendRefs"], json!([v2]));
    assert_eq!(
        rules[1]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}])
    );
    assert_eq!(rules[1]["backendRefs"], json!([v1]));
}

#[test]
fn matrix_declares_the_gamma_rows() {
    let m = LinkerdAdapter.capabilities(&Context::default());
    for f in Feature::gamma() {
        assert!(!m.get(*f).reason.contains("not implemented"), "{f:?}");
    }
    assert_eq!(m.level(Feature::UrlRewrite), Level::None);
}
