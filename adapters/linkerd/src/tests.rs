//! End-to-end tests: SMI YAML → IR (core's loader and builder) → Linkerd objects, with
//! every output validated against the official Linkerd CRD schemas.

use super::*;
use meshbridge_conformance::fixtures::valid_ir_of;
use meshbridge_core::api::meshbridge::MeshSpec;
use meshbridge_core::build::build;
use meshbridge_core::load::load_str;
use meshbridge_core::model::Kind;
use meshbridge_core::{Snapshot, Translation};
use serde_json::{Value, json};
use std::sync::OnceLock;

// === helpers ===

fn cx() -> Context {
    Context::default()
}

fn mesh(
    version: Option<&str>,
    mode: Option<LinkerdSplitMode>,
    cp_ns: Option<&str>,
) -> Option<MeshSpec> {
    Some(MeshSpec {
        version: version.map(str::to_string),
        control_plane_namespace: cp_ns.map(str::to_string),
        linkerd_split_mode: mode,
        ..MeshSpec::of(MeshType::Linkerd)
    })
}

fn cx_http_route() -> Context {
    Context {
        mesh: mesh(None, Some(LinkerdSplitMode::HTTPRoute), None),
        ..Context::default()
    }
}

/// Translates, then checks the invariants every translation must hold: schema-valid
/// objects, no field unknown to the schema, findings backed by a non-Full matrix row,
/// ownership metadata, and determinism.
fn run(yaml: &str, cx: &Context) -> Translation {
    check(&valid_ir_of(yaml), cx)
}

/// The invariants of [`run`] on any IR.
fn check(ir: &Ir, cx: &Context) -> Translation {
    let ir = ir.clone();
    let a = LinkerdAdapter;
    let t = a.translate(&ir, cx);
    assert_eq!(t, a.translate(&ir, cx), "translation is not deterministic");
    let matrix = a.capabilities(cx);
    for f in &t.findings {
        assert_ne!(
            matrix.level(f.feature),
            Level::Full,
            "finding on a Full row: {f:?}"
        );
        if matrix.level(f.feature) == Level::None {
            assert_eq!(f.level, Level::None, "{f:?}");
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for o in &t.objects {
        validate(&o.body);
        assert!(
            seen.insert((o.kind.clone(), o.namespace.clone(), o.name.clone())),
            "duplicate object {} {:?}/{}",
            o.kind,
            o.namespace,
            o.name
        );
        let md = &o.body["metadata"];
        assert_eq!(md["labels"]["app.kubernetes.io/managed-by"], "meshbridge");
        assert_eq!(md["labels"]["meshbridge.io/owner"], "meshbridge-system");
        assert!(md["annotations"]["meshbridge.io/parents"].is_string());
        assert!(!o.parents.is_empty());
        let n = o.name.as_str();
        assert!(n.len() <= 253 && !n.is_empty());
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
            "bad name {n}"
        );
    }
    t
}

fn objects<'a>(t: &'a Translation, kind: &str) -> Vec<&'a OutputObject> {
    t.objects.iter().filter(|o| o.kind == kind).collect()
}

fn one<'a>(t: &'a Translation, kind: &str) -> &'a OutputObject {
    let v = objects(t, kind);
    assert_eq!(v.len(), 1, "expected one {kind}, got {:#?}", v);
    v[0]
}

fn kinds(t: &Translation) -> Vec<&str> {
    t.objects.iter().map(|o| o.kind.as_str()).collect()
}

// --- schema validation against shared/schemas/linkerd ---

/// The official Linkerd CRDs through the conformance suite's structural-schema validator
/// (nullable, int-or-string; unknown fields — which Kubernetes would prune — rejected).
fn schemas() -> &'static meshbridge_conformance::schema::Registry {
    static S: OnceLock<meshbridge_conformance::schema::Registry> = OnceLock::new();
    S.get_or_init(|| {
        let dir = meshbridge_conformance::shared_dir().join("schemas/linkerd");
        meshbridge_conformance::schema::Registry::load(&[dir.as_path()]).expect("linkerd schemas")
    })
}

fn validate(obj: &Value) {
    let api = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    assert!(schemas().has(api, kind), "no schema for {api} {kind}");
    if let Err(errors) = schemas().validate(obj) {
        panic!("{api} {kind} invalid: {errors:#?}\n{obj:#}");
    }
}

// === fixtures ===

const SHOP: &str = include_str!("../tests/fixtures/shop.yaml");

fn with(base: &str, extra: &str) -> String {
    format!("{base}\n---\n{extra}")
}

fn split_v1alpha2(backends: &[(&str, u64)]) -> String {
    let b: Vec<String> = backends
        .iter()
        .map(|(s, w)| format!("  - service: {s}\n    weight: {w}"))
        .collect();
    format!(
        "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {{name: web-split, namespace: shop}}\nspec:\n  service: web\n  backends:\n{}\n",
        b.join("\n")
    )
}

fn dst_overrides(t: &Translation) -> Value {
    one(t, "ServiceProfile").body["spec"]["dstOverrides"].clone()
}

fn ov(svc: &str, w: &str) -> Value {
    json!({"authority": format!("{svc}.shop.svc.cluster.local"), "weight": w})
}

// === TrafficSplit → ServiceProfile ===

#[test]
fn split_90_10_service_profile() {
    let t = run(
        &with(SHOP, &split_v1alpha2(&[("web-v1", 90), ("web-v2", 10)])),
        &cx(),
    );
    assert_eq!(kinds(&t), ["ServiceProfile"]);
    let sp = one(&t, "ServiceProfile");
    assert_eq!(sp.api_version, "linkerd.io/v1alpha2");
    assert_eq!(sp.name, "web.shop.svc.cluster.local");
    assert_eq!(sp.namespace.as_deref(), Some("shop"));
    assert_eq!(
        sp.body["spec"],
        json!({"dstOverrides": [ov("web-v1", "900m"), ov("web-v2", "100m")]})
    );
    assert_eq!(
        sp.body["metadata"]["annotations"]["meshbridge.io/parents"],
        r#"["TrafficSplit/shop/web-split"]"#
    );
    assert!(t.findings.is_empty(), "{:?}", t.findings);
}

#[test]
fn split_v1alpha1_quantities() {
    let yaml = with(
        SHOP,
        include_str!("../tests/fixtures/split_v1alpha1_quantities.yaml"),
    );
    let t = run(&yaml, &cx());
    // 1 = 1000m and 500m: shares 2/3 and 1/3 of 1000m.
    assert_eq!(
        dst_overrides(&t),
        json!([ov("web-v1", "667m"), ov("web-v2", "333m")])
    );
}

/// (backend weights, the `dstOverrides` weights they become), all v1alpha2 splits of `web`.
type WeightCase = (
    &'static [(&'static str, u64)],
    &'static [(&'static str, &'static str)],
);

#[test]
fn split_weights_become_shares_of_1000m() {
    const CASES: &[WeightCase] = &[
        // Largest remainders: the total is exactly 1000m.
        (
            &[("web-v1", 1), ("web-v2", 2), ("web-v3", 3)],
            &[("web-v1", "167m"), ("web-v2", "333m"), ("web-v3", "500m")],
        ),
        (
            &[("web-v1", 1), ("web-v2", 1), ("web-v3", 1)],
            &[("web-v1", "334m"), ("web-v2", "333m"), ("web-v3", "333m")],
        ),
        // Huge weights would overflow Linkerd's uint32 decimilli: normalised anyway.
        (
            &[("web-v1", 4_000_000_000), ("web-v2", 1_000_000_000)],
            &[("web-v1", "800m"), ("web-v2", "200m")],
        ),
        // A zero-weight backend gets 0m.
        (
            &[("web-v1", 100), ("web-v2", 0)],
            &[("web-v1", "1000m"), ("web-v2", "0m")],
        ),
        // The root as its own backend.
        (
            &[("web", 50), ("web-v2", 50)],
            &[("web", "500m"), ("web-v2", "500m")],
        ),
    ];
    for (weights, want) in CASES {
        let t = run(&with(SHOP, &split_v1alpha2(weights)), &cx());
        let want: Vec<Value> = want.iter().map(|(svc, w)| ov(svc, w)).collect();
        assert_eq!(dst_overrides(&t), json!(want), "weights {weights:?}");
    }
}

fn golden(file: &str) -> String {
    let p = meshbridge_conformance::shared_dir()
        .join("smi/golden/linkerd-smi")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn linkerd_smi_golden_leaf_weights() {
    // linkerd-smi copies the quantities verbatim (500m / 0m); meshbridge normalises to a
    // 1000m total: the same shares, no uint32 overflow for large weights.
    let t = run(&golden("traffic-split-leaf-weights.input.yaml"), &cx());
    let sp = one(&t, "ServiceProfile");
    assert_eq!(sp.name, "backend-svc.default.svc.cluster.local");
    assert_eq!(sp.namespace.as_deref(), Some("default"));
    assert_eq!(
        sp.body["spec"]["dstOverrides"],
        json!([
            {"authority": "backend-svc.default.svc.cluster.local", "weight": "1000m"},
            {"authority": "failing-svc.default.svc.cluster.local", "weight": "0m"}
        ])
    );
    let t = run(
        &golden("updated-traffic-split-leaf-weights.input.yaml"),
        &cx(),
    );
    assert_eq!(
        dst_overrides(&t),
        json!([
            {"authority": "backend-svc.default.svc.cluster.local", "weight": "500m"},
            {"authority": "failing-svc.default.svc.cluster.local", "weight": "500m"}
        ])
    );
}

#[test]
fn split_custom_cluster_domain() {
    let cx = Context {
        cluster_domain: "corp.internal".into(),
        ..Context::default()
    };
    let t = run(
        &with(SHOP, &split_v1alpha2(&[("web-v1", 1), ("web-v2", 1)])),
        &cx,
    );
    let sp = one(&t, "ServiceProfile");
    assert_eq!(sp.name, "web.shop.svc.corp.internal");
    assert_eq!(
        sp.body["spec"]["dstOverrides"][0]["authority"],
        "web-v1.shop.svc.corp.internal"
    );
}

#[test]
fn service_profile_reports_backend_missing_a_port() {
    let yaml =
        include_str!("../tests/fixtures/service_profile_reports_backend_missing_a_port.yaml");
    let t = run(yaml, &cx());
    assert_eq!(kinds(&t), ["ServiceProfile"]);
    assert_eq!(t.findings.len(), 1, "{:?}", t.findings);
    let f = &t.findings[0];
    assert_eq!(
        (f.feature, f.level),
        (Feature::TrafficSplit, Level::Partial)
    );
    assert_eq!(f.field, "spec.backends[1].service");
    assert!(f.reason.contains("no port 9000"), "{}", f.reason);
    // HTTPRoute mode expresses it exactly: port 9000 keeps only the root.
    let t = run(yaml, &cx_http_route());
    let routes = objects(&t, "HTTPRoute");
    assert_eq!(routes.len(), 2);
    let admin = routes.iter().find(|r| r.name == "web-split-9000").unwrap();
    assert_eq!(
        admin.body["spec"]["rules"][0]["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "web", "port": 9000, "weight": 50}])
    );
}

// === TrafficSplit → HTTPRoute ===

#[test]
fn split_http_route_mode() {
    let t = run(
        &with(SHOP, &split_v1alpha2(&[("web-v1", 90), ("web-v2", 10)])),
        &cx_http_route(),
    );
    assert_eq!(kinds(&t), ["HTTPRoute"]);
    let r = one(&t, "HTTPRoute");
    assert_eq!(r.api_version, "policy.linkerd.io/v1beta3");
    assert_eq!(r.name, "web-split-80");
    assert_eq!(r.namespace.as_deref(), Some("shop"));
    assert_eq!(
        r.body["spec"],
        json!({
            "parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"group": "", "kind": "Service", "name": "web-v1", "port": 80, "weight": 90},
                    {"group": "", "kind": "Service", "name": "web-v2", "port": 80, "weight": 10}
                ]
            }]
        })
    );
    assert!(t.findings.is_empty(), "{:?}", t.findings);
}

#[test]
fn split_mode_selection() {
    let yaml = with(SHOP, &split_v1alpha2(&[("web-v1", 1), ("web-v2", 1)]));
    let with_mesh = |m| Context {
        mesh: m,
        ..Context::default()
    };
    let cases = [
        (None, "ServiceProfile"),
        (mesh(None, None, None), "ServiceProfile"),
        (mesh(Some("stable-2.14.10"), None, None), "ServiceProfile"),
        (mesh(Some("2.15.4"), None, None), "ServiceProfile"),
        (mesh(Some("edge-24.5.1"), None, None), "ServiceProfile"),
        (mesh(Some("2.16.0"), None, None), "HTTPRoute"),
        (mesh(Some("version-2.18"), None, None), "HTTPRoute"),
        (mesh(Some("edge-25.1.2"), None, None), "HTTPRoute"),
        (mesh(Some("garbage"), None, None), "ServiceProfile"),
        (
            mesh(Some("2.18.0"), Some(LinkerdSplitMode::ServiceProfile), None),
            "ServiceProfile",
        ),
        (
            mesh(Some("2.12.0"), Some(LinkerdSplitMode::HTTPRoute), None),
            "HTTPRoute",
        ),
    ];
    for (m, kind) in cases {
        let label = format!("{m:?}");
        let c = with_mesh(m);
        let t = run(&yaml, &c);
        assert_eq!(kinds(&t), [kind], "{label}");
        let caps = LinkerdAdapter.capabilities(&c);
        let expect = if kind == "HTTPRoute" {
            "HTTPRoute mode"
        } else {
            "ServiceProfile dstOverrides"
        };
        assert!(
            caps.get(Feature::TrafficSplit).reason.starts_with(expect),
            "{label}"
        );
    }
}

#[test]
fn version_parsing() {
    for (v, want) in [
        ("2.16.0", Some(true)),
        ("v2.16", Some(true)),
        ("2.9.1", Some(false)),
        ("2.15", Some(false)),
        ("stable-2.14.10", Some(false)),
        ("enterprise-2.17.0", Some(true)),
        ("edge-24.8.2", Some(true)),
        ("edge-24.7.5", Some(false)),
        ("3.0.0", Some(true)),
        ("", None),
        ("latest", None),
    ] {
        assert_eq!(version_at_least_2_16(v), want, "{v}");
    }
}

#[test]
fn http_route_mode_without_root_service_falls_back_to_service_profile() {
    let t = run(
        &split_v1alpha2(&[("web-v1", 3), ("web-v2", 1)]),
        &cx_http_route(),
    );
    assert_eq!(kinds(&t), ["ServiceProfile"]);
    assert_eq!(
        dst_overrides(&t),
        json!([ov("web-v1", "750m"), ov("web-v2", "250m")])
    );
}

const AB: &str = include_str!("../tests/fixtures/ab.yaml");

#[test]
fn split_with_header_matches_is_http_route_only() {
    // Default (ServiceProfile) mode: a split with matches still becomes an HTTPRoute, and
    // no ServiceProfile is written for the Service.
    let t = run(&with(SHOP, AB), &cx());
    assert_eq!(kinds(&t), ["HTTPRoute"]);
    let r = one(&t, "HTTPRoute");
    let backends = json!([
        {"group": "", "kind": "Service", "name": "web-v1", "port": 80, "weight": 0},
        {"group": "", "kind": "Service", "name": "web-v2", "port": 80, "weight": 100}
    ]);
    let beta = |m: &str| {
        json!({
            "headers": [{"name": "x-beta", "type": "Exact", "value": "yes"}],
            "method": m,
            "path": {"type": "RegularExpression", "value": "^(?:/api/beta).*$"}
        })
    };
    assert_eq!(
        r.body["spec"],
        json!({
            "parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
            "rules": [
                {
                    "matches": [
                        {
                            "headers": [{"name": "user-agent", "type": "RegularExpression", "value": "^(?:.*Firefox.*)$"}],
                            "path": {"type": "PathPrefix", "value": "/"}
                        },
                        beta("GET"),
                        beta("POST")
                    ],
                    "backendRefs": backends
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}]
                }
            ]
        })
    );
    assert_eq!(
        r.body["metadata"]["annotations"]["meshbridge.io/parents"],
        r#"["TrafficSplit/shop/ab","HTTPRouteGroup/shop/ab-test"]"#
    );
    assert!(t.findings.is_empty(), "{:?}", t.findings);
}

#[test]
fn split_with_many_matches_chunks_rules() {
    let ms: Vec<String> = (0..20)
        .map(|i| format!("  - name: m{i}\n    pathRegex: /p{i}$"))
        .collect();
    let yaml = format!(
        "{SHOP}\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: many, namespace: shop}}\nspec:\n  matches:\n{}\n---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: s, namespace: shop}}\nspec:\n  service: web\n  matches: [{{kind: HTTPRouteGroup, name: many}}]\n  backends: [{{service: web-v1, weight: 1}}]\n",
        ms.join("\n")
    );
    let t = run(&yaml, &cx());
    let rules = one(&t, "HTTPRoute").body["spec"]["rules"]
        .as_array()
        .unwrap()
        .clone();
    // 20 matches → rules of 8, 8, 4, then the catch-all.
    let sizes: Vec<usize> = rules
        .iter()
        .map(|r| r["matches"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [8, 8, 4, 1]);
    assert_eq!(
        rules[0]["matches"][0]["path"],
        json!({"type": "Exact", "value": "/p0"})
    );
    assert_eq!(rules[3]["backendRefs"][0]["name"], "web");
}

#[test]
fn split_matches_without_root_service_is_reported() {
    let t = run(AB, &cx());
    assert!(t.objects.is_empty());
    assert_eq!(t.findings.len(), 1);
    assert_eq!(
        (t.findings[0].feature, t.findings[0].level),
        (Feature::TrafficSplitMatches, Level::None)
    );
}

#[test]
fn split_on_non_http_and_udp_ports() {
    let yaml = include_str!("../tests/fixtures/split_on_non_http_and_udp_ports.yaml");
    let t = run(yaml, &cx_http_route());
    assert_eq!(kinds(&t), ["HTTPRoute"]);
    assert_eq!(one(&t, "HTTPRoute").name, "db-split-5432");
    let fs: Vec<(Feature, Level)> = t.findings.iter().map(|f| (f.feature, f.level)).collect();
    assert_eq!(
        fs,
        [
            (Feature::TcpRoutes, Level::Partial),
            (Feature::UdpRoutes, Level::None)
        ]
    );
    let t = run(yaml, &cx());
    assert_eq!(kinds(&t), ["ServiceProfile"]);
    let fs: Vec<(Feature, Level)> = t.findings.iter().map(|f| (f.feature, f.level)).collect();
    assert_eq!(fs, [(Feature::UdpRoutes, Level::None)]);
}

// === TrafficTarget ===

const ACCESS_BASE: &str = include_str!("../tests/fixtures/access_base.yaml");

fn tt(name: &str, rules: &str, sources: &str) -> String {
    format!(
        "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  destination: {{kind: ServiceAccount, name: api, namespace: shop}}\n  rules:\n{rules}\n  sources:\n{sources}\n"
    )
}

const FRONT: &str = "  - {kind: ServiceAccount, name: front, namespace: front}";
const BATCH: &str = "  - {kind: ServiceAccount, name: batch, namespace: shop}";

fn by_name<'a>(t: &'a Translation, kind: &str, name: &str) -> &'a Value {
    &t.objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", names_of(t)))
        .body
}

fn names_of(t: &Translation) -> Vec<String> {
    t.objects
        .iter()
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect()
}

fn findings_of(t: &Translation) -> Vec<(Feature, Level, String)> {
    t.findings
        .iter()
        .map(|f| (f.feature, f.level, f.field.clone()))
        .collect()
}

#[test]
fn traffic_target_with_http_matches() {
    let yaml = with(
        ACCESS_BASE,
        &tt(
            "front-items",
            "  - {kind: HTTPRouteGroup, name: api-routes, matches: [items]}",
            FRONT,
        ),
    );
    let t = run(&yaml, &cx());
    let route_name = format!("api-8080-{}", names::short_hash("front/front"));
    assert_eq!(
        names_of(&t),
        [
            format!("AuthorizationPolicy/{route_name}"),
            format!("HTTPRoute/{route_name}"),
            format!("MeshTLSAuthentication/{route_name}"),
            "Server/api-8080".to_string(),
        ]
    );
    // The Service's named targetPort `http` resolves through the container ports to 8080.
    assert_eq!(
        by_name(&t, "Server", "api-8080")["spec"],
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "port": 8080, "accessPolicy": "deny"})
    );
    assert_eq!(
        by_name(&t, "HTTPRoute", &route_name)["spec"],
        json!({
            "parentRefs": [{"group": "policy.linkerd.io", "kind": "Server", "name": "api-8080"}],
            "rules": [{"matches": [{
                "method": "GET",
                "path": {"type": "RegularExpression", "value": "^(?:/items).*$"}
            }]}]
        })
    );
    assert_eq!(
        by_name(&t, "AuthorizationPolicy", &route_name)["spec"],
        json!({
            "targetRef": {"group": "policy.linkerd.io", "kind": "HTTPRoute", "name": route_name},
            "requiredAuthenticationRefs": [
                {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": route_name}
            ]
        })
    );
    // Cross-namespace source: its own namespace in the identity.
    assert_eq!(
        by_name(&t, "MeshTLSAuthentication", &route_name)["spec"],
        json!({"identities": ["front.front.serviceaccount.identity.linkerd.cluster.local"]})
    );
    // The only finding: deny-by-default beyond the Server needs the namespace annotation.
    assert_eq!(
        findings_of(&t),
        [(
            Feature::HttpAccess,
            Level::Partial,
            "spec.destination".to_string()
        )]
    );
    assert!(
        t.findings[0]
            .reason
            .contains("config.linkerd.io/default-inbound-policy: deny")
    );
}

#[test]
fn traffic_target_rule_without_matches_allows_every_group_match() {
    let yaml = with(
        ACCESS_BASE,
        &tt(
            "front-all",
            "  - {kind: HTTPRouteGroup, name: api-routes}",
            FRONT,
        ),
    );
    let t = run(&yaml, &cx());
    let route = one(&t, "HTTPRoute");
    assert_eq!(
        route.body["spec"]["rules"],
        json!([{"matches": [
            {"method": "GET", "path": {"type": "RegularExpression", "value": "^(?:/items).*$"}},
            {"path": {"type": "Exact", "value": "/healthz"}}
        ]}])
    );
    assert_eq!(
        route.body["metadata"]["annotations"]["meshbridge.io/parents"],
        r#"["TrafficTarget/shop/front-all","HTTPRouteGroup/shop/api-routes"]"#
    );
}

#[test]
fn tcp_route_ports_and_all_ports() {
    let yaml = with(
        ACCESS_BASE,
        &format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: pg, namespace: shop}}\nspec:\n  matches:\n    ports: [5432]\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: any, namespace: shop}}\nspec:\n  matches:\n    ports: []\n---\n{}---\n{}",
            tt("batch-pg", "  - {kind: TCPRoute, name: pg}", BATCH),
            tt("front-any", "  - {kind: TCPRoute, name: any}", FRONT)
        ),
    );
    let t = run(&yaml, &cx());
    assert_eq!(
        names_of(&t),
        [
            "AuthorizationPolicy/api-5432",
            "AuthorizationPolicy/api-8080",
            "MeshTLSAuthentication/api-5432",
            "MeshTLSAuthentication/api-8080",
            "Server/api-5432",
            "Server/api-8080",
        ]
    );
    assert_eq!(
        by_name(&t, "Server", "api-5432")["spec"],
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "port": 5432, "accessPolicy": "deny"})
    );
    // 5432: batch (TCPRoute port 5432, not declared by any container); 8080 (the
    // destination's only known port): front (all ports).
    assert_eq!(
        by_name(&t, "MeshTLSAuthentication", "api-5432")["spec"]["identities"],
        json!(["batch.shop.serviceaccount.identity.linkerd.cluster.local"])
    );
    assert_eq!(
        by_name(&t, "MeshTLSAuthentication", "api-8080")["spec"]["identities"],
        json!(["front.front.serviceaccount.identity.linkerd.cluster.local"])
    );
    assert_eq!(
        by_name(&t, "AuthorizationPolicy", "api-5432")["spec"]["targetRef"],
        json!({"group": "policy.linkerd.io", "kind": "Server", "name": "api-5432"})
    );
    let ann = &t
        .objects
        .iter()
        .find(|o| o.kind == "Server" && o.name == "api-5432")
        .unwrap()
        .parents;
    assert_eq!(
        ann,
        &vec![ObjectKey::new(Kind::TrafficTarget, "shop", "batch-pg")]
    );
}

#[test]
fn udp_route_is_reported_none() {
    let yaml = with(
        ACCESS_BASE,
        &format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRoute\nmetadata: {{name: dns, namespace: shop}}\nspec:\n  matches:\n    ports: [53]\n---\n{}",
            tt("front-dns", "  - {kind: UDPRoute, name: dns}", FRONT)
        ),
    );
    let t = run(&yaml, &cx());
    // Nothing allowed: the destination's known TCP port is denied by default.
    assert_eq!(names_of(&t), ["Server/api-8080"]);
    assert_eq!(
        findings_of(&t),
        [(Feature::UdpAccess, Level::None, "spec.rules[0]".to_string())]
    );
}

#[test]
fn non_default_trust_domain_and_control_plane_namespace() {
    let yaml = with(
        ACCESS_BASE,
        &tt(
            "front-all",
            "  - {kind: HTTPRouteGroup, name: api-routes}",
            FRONT,
        ),
    );
    let cx = Context {
        trust_domain: "prod.example.org".into(),
        mesh: mesh(None, None, Some("linkerd-prod")),
        ..Context::default()
    };
    let t = run(&yaml, &cx);
    assert_eq!(
        one(&t, "MeshTLSAuthentication").body["spec"]["identities"],
        json!(["front.front.serviceaccount.identity.linkerd-prod.prod.example.org"])
    );
}

#[test]
fn no_isolating_selector_emits_nothing() {
    // `api` and `batch` pods share every label: no selector isolates `api`.
    let yaml = ACCESS_BASE
        .replace("labels: {app: batch}", "labels: {app: api}")
        .replace("matchLabels: {app: batch}", "matchLabels: {app: api}");
    let yaml = with(
        &yaml,
        &tt(
            "front-all",
            "  - {kind: HTTPRouteGroup, name: api-routes}",
            FRONT,
        ),
    );
    let t = run(&yaml, &cx());
    assert!(t.objects.is_empty(), "{:?}", names_of(&t));
    assert_eq!(
        findings_of(&t),
        [(
            Feature::HttpAccess,
            Level::None,
            "spec.destination".to_string()
        )]
    );
}

#[test]
fn all_ports_unknown_is_reported() {
    let yaml = include_str!("../tests/fixtures/all_ports_unknown_is_reported.yaml");
    let t = run(yaml, &cx());
    assert!(t.objects.is_empty());
    assert_eq!(
        findings_of(&t),
        [(Feature::TcpAccess, Level::None, "spec.rules[0]".to_string())]
    );
}

#[test]
fn destination_port_v1alpha1_and_namespace_annotation() {
    // A namespace already denying by default: no annotation finding.
    let base = ACCESS_BASE.replace(
        "metadata: {name: shop}",
        "metadata: {name: shop, annotations: {config.linkerd.io/default-inbound-policy: deny}}",
    );
    let yaml = with(
        &base,
        include_str!("../tests/fixtures/destination_port_v1alpha1_and_namespace_annotation.yaml"),
    );
    let t = run(&yaml, &cx());
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    let route = one(&t, "HTTPRoute");
    assert_eq!(
        route.body["spec"]["rules"],
        json!([{"matches": [{"path": {"type": "Exact", "value": "/healthz"}}]}])
    );
    assert_eq!(by_name(&t, "Server", "api-8080")["spec"]["port"], 8080);
}

#[test]
fn ports_without_expressible_allows_still_get_a_deny_server() {
    // TCPRoute 5432 for batch; the destination also listens on 8080 (its Service and
    // container port), which no rule allows: it gets a Server without authorization.
    let yaml = with(
        ACCESS_BASE,
        &format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: pg, namespace: shop}}\nspec:\n  matches:\n    ports: [5432]\n---\n{}",
            tt("batch-pg", "  - {kind: TCPRoute, name: pg}", BATCH)
        ),
    );
    let t = run(&yaml, &cx());
    assert_eq!(
        names_of(&t),
        [
            "AuthorizationPolicy/api-5432",
            "MeshTLSAuthentication/api-5432",
            "Server/api-5432",
            "Server/api-8080",
        ]
    );
    assert_eq!(
        by_name(&t, "Server", "api-8080")["spec"],
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "port": 8080, "accessPolicy": "deny"})
    );
}

#[test]
fn disjoint_rule_and_destination_ports_allow_nothing() {
    let yaml = with(
        ACCESS_BASE,
        include_str!("../tests/fixtures/disjoint_rule_and_destination_ports_allow_nothing.yaml"),
    );
    let t = run(&yaml, &cx());
    // TCPRoute port 5432 ∩ destination port 9999 = nothing allowed; 8080 stays denied.
    assert_eq!(names_of(&t), ["Server/api-8080"]);
    assert_eq!(
        findings_of(&t),
        [(
            Feature::TcpAccess,
            Level::Partial,
            "destination".to_string()
        )]
    );
}

#[test]
fn mixed_tcp_and_http_rules_on_one_port() {
    let yaml = with(
        ACCESS_BASE,
        &format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: web, namespace: shop}}\nspec:\n  matches:\n    ports: [8080]\n---\n{}---\n{}",
            tt("batch-tcp", "  - {kind: TCPRoute, name: web}", BATCH),
            tt(
                "front-items",
                "  - {kind: HTTPRouteGroup, name: api-routes, matches: [items]}",
                FRONT
            )
        ),
    );
    let t = run(&yaml, &cx());
    // batch may send anything on 8080: Server-level policy plus a catch-all route so its
    // requests outside front's route are not answered 404.
    assert_eq!(
        by_name(&t, "AuthorizationPolicy", "api-8080")["spec"]["targetRef"]["kind"],
        "Server"
    );
    let routes = objects(&t, "HTTPRoute");
    assert_eq!(routes.len(), 2);
    let catch_all = routes
        .iter()
        .find(|r| r.body["spec"]["rules"][0]["matches"][0] == matches::catch_all())
        .expect("catch-all route");
    // No route-level policy on the catch-all: only the Server's (batch) applies there.
    assert!(
        !t.objects
            .iter()
            .any(|o| o.kind == "AuthorizationPolicy" && o.name == catch_all.name)
    );
    assert_eq!(objects(&t, "AuthorizationPolicy").len(), 2);
    assert_eq!(objects(&t, "Server").len(), 1);
}

#[test]
fn same_match_for_two_targets_is_one_route_with_both_sources() {
    let yaml = with(
        ACCESS_BASE,
        &format!(
            "{}---\n{}",
            tt(
                "front-items",
                "  - {kind: HTTPRouteGroup, name: api-routes, matches: [items]}",
                FRONT
            ),
            tt(
                "batch-items",
                "  - {kind: HTTPRouteGroup, name: api-routes, matches: [items]}",
                BATCH
            )
        ),
    );
    let t = run(&yaml, &cx());
    assert_eq!(objects(&t, "HTTPRoute").len(), 1);
    assert_eq!(
        one(&t, "MeshTLSAuthentication").body["spec"]["identities"],
        json!([
            "front.front.serviceaccount.identity.linkerd.cluster.local",
            "batch.shop.serviceaccount.identity.linkerd.cluster.local"
        ])
    );
    // Disjoint or identical routes: nothing about overlaps.
    assert!(
        t.findings
            .iter()
            .all(|f| !f.reason.contains("may match the same request")),
        "{:?}",
        t.findings
    );
}

#[test]
fn overlapping_routes_for_different_sources_are_reported() {
    let yaml = with(
        ACCESS_BASE,
        &format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: admin, namespace: shop}}\nspec:\n  matches:\n  - name: items-admin\n    pathRegex: /items/admin\n---\n{}---\n{}",
            tt(
                "front-items",
                "  - {kind: HTTPRouteGroup, name: api-routes, matches: [items]}",
                FRONT
            ),
            tt(
                "batch-admin",
                "  - {kind: HTTPRouteGroup, name: admin}",
                BATCH
            )
        ),
    );
    let t = run(&yaml, &cx());
    assert_eq!(objects(&t, "HTTPRoute").len(), 2);
    let overlaps: Vec<&Finding> = t
        .findings
        .iter()
        .filter(|f| f.reason.contains("may match the same request"))
        .collect();
    assert_eq!(overlaps.len(), 2, "{:?}", t.findings);
    assert!(overlaps.iter().all(|f| f.level == Level::Partial));
}

#[test]
fn http_catch_all_source_is_authorized_on_every_route() {
    let yaml = with(
        ACCESS_BASE,
        &format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: everything, namespace: shop}}\nspec:\n  matches:\n  - name: all\n    pathRegex: \".*\"\n---\n{}---\n{}",
            tt(
                "front-items",
                "  - {kind: HTTPRouteGroup, name: api-routes, matches: [items]}",
                FRONT
            ),
            tt(
                "batch-all",
                "  - {kind: HTTPRouteGroup, name: everything}",
                BATCH
            )
        ),
    );
    let t = run(&yaml, &cx());
    let batch_id = "batch.shop.serviceaccount.identity.linkerd.cluster.local";
    let authns = objects(&t, "MeshTLSAuthentication");
    assert_eq!(authns.len(), 2);
    // The `items` route authorizes front and batch (batch may send any HTTP request); the
    // catch-all route authorizes batch only.
    for a in &authns {
        let ids = a.body["spec"]["identities"].as_array().unwrap();
        assert!(ids.contains(&json!(batch_id)), "{ids:?}");
    }
    assert!(
        authns
            .iter()
            .any(|a| a.body["spec"]["identities"].as_array().unwrap().len() == 2)
    );
    // batch never gets a Server-level (TCP) authorization.
    assert!(
        objects(&t, "AuthorizationPolicy")
            .iter()
            .all(|a| a.body["spec"]["targetRef"]["kind"] == "HTTPRoute")
    );
}

#[test]
fn destination_without_known_pods_is_reported() {
    let yaml = format!(
        "{}---\n{}",
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: any, namespace: shop}\nspec:\n  matches:\n    ports: [80]\n",
        tt("t", "  - {kind: TCPRoute, name: any}", FRONT)
    );
    let t = run(&yaml, &cx());
    assert!(t.objects.is_empty());
    assert_eq!(
        findings_of(&t),
        [(
            Feature::TcpAccess,
            Level::None,
            "spec.destination".to_string()
        )]
    );
    assert!(t.findings[0].reason.contains("no Pod or Deployment"));
}

#[test]
fn inexpressible_access_route_fails_closed() {
    let long = format!("/{}", "x".repeat(1100));
    let yaml = with(
        ACCESS_BASE,
        &format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: long, namespace: shop}}\nspec:\n  matches:\n  - name: l\n    pathRegex: {long}\n---\n{}",
            tt(
                "front-long",
                "  - {kind: HTTPRouteGroup, name: long}",
                FRONT
            )
        ),
    );
    let t = run(&yaml, &cx());
    // The port stays denied; nothing is allowed.
    assert_eq!(names_of(&t), ["Server/api-8080"]);
    let fs = findings_of(&t);
    assert!(
        fs.contains(&(
            Feature::HttpAccess,
            Level::Partial,
            "spec.rules[0]".to_string()
        )),
        "{fs:?}"
    );
    assert!(t.findings.iter().any(|f| f.reason.contains("fail closed")));
}

#[test]
fn http_route_mode_with_too_many_backends_is_reported() {
    let mut yaml = String::from(SHOP);
    let mut backends = vec![];
    for i in 0..17 {
        yaml.push_str(&format!(
            "\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: b{i}, namespace: shop}}\nspec:\n  selector: {{app: b{i}}}\n  ports: [{{name: http, port: 80}}]\n"
        ));
        backends.push((format!("b{i}"), 1u64));
    }
    let b: Vec<(&str, u64)> = backends.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let yaml = with(&yaml, &split_v1alpha2(&b));
    let t = run(&yaml, &cx_http_route());
    assert!(t.objects.is_empty(), "{:?}", names_of(&t));
    assert_eq!(
        findings_of(&t),
        [(
            Feature::TrafficSplit,
            Level::None,
            "spec.backends".to_string()
        )]
    );
    // ServiceProfile mode has no such limit.
    let t = run(&yaml, &cx());
    assert_eq!(dst_overrides(&t).as_array().unwrap().len(), 17);
}

#[test]
fn older_linkerd_gets_older_policy_versions() {
    let yaml = with(
        ACCESS_BASE,
        &tt(
            "front-items",
            "  - {kind: HTTPRouteGroup, name: api-routes, matches: [items]}",
            FRONT,
        ),
    );
    let old = Context {
        mesh: mesh(Some("stable-2.14.10"), None, None),
        ..Context::default()
    };
    let t = run(&yaml, &old);
    let server = one(&t, "Server");
    assert_eq!(server.api_version, "policy.linkerd.io/v1beta1");
    assert_eq!(
        server.body["spec"],
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "port": 8080})
    );
    assert_eq!(
        one(&t, "HTTPRoute").api_version,
        "policy.linkerd.io/v1beta2"
    );
    let t = run(&with(SHOP, AB), &old);
    assert_eq!(
        one(&t, "HTTPRoute").api_version,
        "policy.linkerd.io/v1beta2"
    );
    let new = Context {
        mesh: mesh(Some("2.16.0"), None, None),
        ..Context::default()
    };
    let t = run(&yaml, &new);
    assert_eq!(one(&t, "Server").api_version, "policy.linkerd.io/v1beta3");
    assert_eq!(one(&t, "Server").body["spec"]["accessPolicy"], "deny");
}

#[test]
fn capability_matrix_is_complete() {
    let m = LinkerdAdapter.capabilities(&cx());
    assert_eq!(m.rows().len(), Feature::ALL.len());
    for r in m.rows() {
        assert!(
            !r.reason.contains("not implemented"),
            "{:?} left at the default",
            r.feature
        );
        if r.level != Level::Full {
            assert!(!r.reason.is_empty(), "{:?}", r.feature);
        }
    }
    assert_eq!(m.level(Feature::UdpAccess), Level::None);
    assert_eq!(m.level(Feature::UdpRoutes), Level::None);
    assert_eq!(m.level(Feature::Mtls), Level::Full);
    assert_eq!(m.level(Feature::MethodRouting), Level::Full);
}

#[test]
fn pipeline_yaml_is_sorted_and_stable() {
    let files = vec![load_str(
        "in.yaml",
        &with(
            ACCESS_BASE,
            &format!(
                "{}---\n{}",
                tt(
                    "front-all",
                    "  - {kind: HTTPRouteGroup, name: api-routes}",
                    FRONT
                ),
                with(SHOP, &split_v1alpha2(&[("web-v1", 90), ("web-v2", 10)]))
            ),
        ),
    )];
    let out = meshbridge_core::pipeline::translate(files, Box::new(LinkerdAdapter), &cx(), None);
    assert!(!out.failed, "{:?}", out.diagnostics);
    assert!(out.yaml.contains("kind: ServiceProfile"));
    assert!(out.yaml.contains("kind: Server\n"));
    assert!(
        out.diagnostics
            .iter()
            .any(|d| d.starts_with("warning:") && d.contains("[linkerd: httpAccess: Partial]")),
        "{:?}",
        out.diagnostics
    );
}

// === generated inputs: never panic, always schema-valid, findings consistent ===

mod generated {
    use super::*;
    use proptest::prelude::*;

    const PATHS: &[&str] = &[
        "",
        "/",
        ".*",
        "/api",
        "/api/",
        "/ping$",
        "^/x",
        "/a|/ab",
        "/v[0-9]+/items$",
        "/é",
        "/(a|b)/c",
        "[/]",
        "/x\\$",
        "\\d+",
    ];
    const HEADER_RES: &[&str] = &[
        "yes",
        ".*Firefox.*",
        "",
        "a|b",
        "^(.*?;)?(type=x)(;.*)?$",
        "v1.2",
    ];
    const METHODS: &[&str] = &["GET", "POST", "*", "DELETE"];

    /// (path index, method indexes, (header name, header regex index)).
    type GenMatch = (usize, Vec<usize>, Vec<(usize, usize)>);

    fn route_group(name: &str, matches: &[GenMatch]) -> String {
        let mut y = format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  matches:\n"
        );
        for (i, (p, ms, hs)) in matches.iter().enumerate() {
            y.push_str(&format!("  - name: m{i}\n"));
            let path = PATHS[*p];
            if !path.is_empty() {
                y.push_str(&format!(
                    "    pathRegex: {}\n",
                    serde_json::to_string(path).unwrap()
                ));
            }
            if !ms.is_empty() {
                let ms: Vec<&str> = ms.iter().map(|m| METHODS[*m]).collect();
                y.push_str(&format!(
                    "    methods: {}\n",
                    serde_json::to_string(&ms).unwrap()
                ));
            }
            if !hs.is_empty() {
                y.push_str("    headers:\n");
                for (h, r) in hs {
                    y.push_str(&format!(
                        "      h{h}: {}\n",
                        serde_json::to_string(HEADER_RES[*r]).unwrap()
                    ));
                }
            }
        }
        y
    }

    fn service(name: &str, ports: &[(u16, bool, bool)], app: &str) -> String {
        let ps: Vec<String> = ports
            .iter()
            .map(|(p, http, udp)| {
                format!(
                    "{{name: {}-{p}, port: {p}, protocol: {}}}",
                    if *http { "http" } else { "tcp" },
                    if *udp { "UDP" } else { "TCP" }
                )
            })
            .collect();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  selector: {{app: {app}}}\n  ports: [{}]\n",
            ps.join(", ")
        )
    }

    prop_compose! {
        fn matches_strategy()(v in proptest::collection::vec(
            (0..PATHS.len(),
             proptest::collection::vec(0..METHODS.len(), 0..3),
             proptest::collection::vec((0usize..20, 0..HEADER_RES.len()), 0..3)),
            0..12)) -> Vec<GenMatch> {
            // Header names must be unique within a match.
            v.into_iter().map(|(p, m, mut h)| {
                h.sort_by_key(|x| x.0);
                h.dedup_by_key(|x| x.0);
                (p, m, h)
            }).collect()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
        #[test]
        fn any_input_translates_to_valid_linkerd(
            root_ports in proptest::collection::vec((1u16..100, any::<bool>(), any::<bool>()), 0..3),
            backends in proptest::collection::vec((0u64..3_000_000_000, any::<bool>()), 1..19),
            split_matches in matches_strategy(),
            access_matches in matches_strategy(),
            tcp_ports in proptest::collection::vec(1u16..100, 0..3),
            with_root in any::<bool>(),
            with_pods in any::<bool>(),
            mode in 0u8..3,
            rules in proptest::collection::vec(0u8..3, 1..4),
        ) {
            let mut root_ports = root_ports;
            root_ports.sort_by_key(|p| (p.0, p.2));
            root_ports.dedup_by_key(|p| (p.0, p.2));
            let mut docs = vec![
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n".to_string(),
            ];
            if with_root {
                docs.push(service("root", &root_ports, "root"));
            }
            let mut bs = vec![];
            for (i, (w, has_port)) in backends.iter().enumerate() {
                let name = format!("b{i}");
                if *has_port && with_root {
                    docs.push(service(&name, &root_ports, &name));
                }
                bs.push(format!("  - {{service: {name}, weight: {w}}}"));
            }
            docs.push(route_group("split-rg", &split_matches));
            docs.push(route_group("access-rg", &access_matches));
            let with_split_matches = !split_matches.is_empty() && mode == 2;
            docs.push(format!(
                "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: s, namespace: ns}}\nspec:\n  service: root\n{}  backends:\n{}\n",
                if with_split_matches { "  matches: [{kind: HTTPRouteGroup, name: split-rg}]\n" } else { "" },
                bs.join("\n")
            ));
            if with_pods {
                docs.push("apiVersion: v1\nkind: Pod\nmetadata: {name: p0, namespace: ns, labels: {app: root}}\nspec:\n  serviceAccountName: dest\n  containers: [{name: c, image: x, ports: [{name: web, containerPort: 8080}]}]\n".into());
            }
            let ports: Vec<String> = tcp_ports.iter().map(|p| p.to_string()).collect();
            docs.push(format!(
                "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: tcp, namespace: ns}}\nspec:\n  matches:\n    ports: [{}]\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRoute\nmetadata: {{name: udp, namespace: ns}}\nspec:\n  matches:\n    ports: [53]\n",
                ports.join(", ")
            ));
            let rule_yaml: Vec<&str> = rules.iter().map(|r| match r {
                0 => "  - {kind: HTTPRouteGroup, name: access-rg}",
                1 => "  - {kind: TCPRoute, name: tcp}",
                _ => "  - {kind: UDPRoute, name: udp}",
            }).collect();
            docs.push(format!(
                "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: t, namespace: ns}}\nspec:\n  destination: {{kind: ServiceAccount, name: dest, namespace: ns}}\n  rules:\n{}\n  sources:\n  - {{kind: ServiceAccount, name: a, namespace: other}}\n  - {{kind: ServiceAccount, name: b, namespace: ns}}\n",
                rule_yaml.join("\n")
            ));
            let yaml = docs.join("---\n");
            let loaded = load_str("gen.yaml", &yaml);
            let ir = build(&Snapshot::from_objects(loaded.objects));
            let cx = Context {
                mesh: match mode {
                    0 => None,
                    1 => mesh(Some("2.18.1"), None, Some("l5d")),
                    _ => mesh(Some("stable-2.14.10"), Some(LinkerdSplitMode::ServiceProfile), None),
                },
                ..Context::default()
            };
            let t = check(&ir, &cx);
            // ServiceProfile weights always total exactly 1000m.
            for sp in objects(&t, "ServiceProfile") {
                let total: u64 = sp.body["spec"]["dstOverrides"].as_array().unwrap().iter()
                    .map(|o| o["weight"].as_str().unwrap().trim_end_matches('m').parse::<u64>().unwrap())
                    .sum();
                prop_assert_eq!(total, 1000);
            }
            // Never a ServiceProfile and an HTTPRoute for the same root Service.
            let sp = !objects(&t, "ServiceProfile").is_empty();
            let split_routes = objects(&t, "HTTPRoute").iter()
                .any(|r| r.body["spec"]["parentRefs"][0]["kind"] == "Service");
            prop_assert!(!(sp && split_routes));
        }
    }
}
