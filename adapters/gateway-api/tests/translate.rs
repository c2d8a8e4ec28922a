//! SMI inputs → exact Gateway API (GAMMA) outputs. Every output is also validated against the
//! official CRDs (schema + CEL intent) by `common::translate`.

mod common;

use common::*;
use meshbridge_core::adapter::Adapter;
use meshbridge_core::{Context, Feature, Level, Translation};
use meshbridge_gateway_api::GatewayApiAdapter;
use serde_json::{Value, json};

/// Services `name` in namespace `shop` with the given `ports` (YAML flow list items).
fn svc(name: &str, ports: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{ports}]\n"
    )
}

const HTTP80: &str = "{name: http, port: 80, targetPort: 8080}";

fn services(names: &[&str], ports: &str) -> String {
    names.iter().map(|n| svc(n, ports)).collect()
}

fn split(version: &str, backends: &[(&str, &str)], matches: &[&str]) -> String {
    let mut s = format!(
        "---\napiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\nmetadata: {{name: web-split, namespace: shop}}\nspec:\n  service: web\n  backends:\n"
    );
    for (b, w) in backends {
        s.push_str(&format!("  - service: {b}\n    weight: {w}\n"));
    }
    if !matches.is_empty() {
        s.push_str("  matches:\n");
        for m in matches {
            s.push_str(&format!("  - kind: HTTPRouteGroup\n    name: {m}\n"));
        }
    }
    s
}

/// Services `names` on `ports` and a match-less v1alpha4 split of `web` over `backends`.
fn plain_split(names: &[&str], ports: &str, backends: &[(&str, &str)]) -> String {
    services(names, ports) + &split("v1alpha4", backends, &[])
}

/// The spec of the only output object: a v1 `kind` named `name` in `shop`.
fn only<'a>(t: &'a Translation, kind: &str, name: &str) -> &'a Value {
    assert_eq!(
        kinds(t),
        [format!("gateway.networking.k8s.io/v1 {kind} shop/{name}")]
    );
    spec(t, kind, name)
}

fn backend(name: &str, port: u16, weight: u64) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight})
}

fn parent(name: &str, port: u16) -> Value {
    json!([{"group": "", "kind": "Service", "name": name, "port": port}])
}

fn all_paths() -> Value {
    json!([{"path": {"type": "PathPrefix", "value": "/"}}])
}

#[test]
fn split_90_10() {
    let t = translate(&plain_split(
        &["web", "web-v1", "web-v2"],
        HTTP80,
        &[("web-v1", "90"), ("web-v2", "10")],
    ));
    assert_eq!(
        only(&t, "HTTPRoute", "web-80"),
        &json!({
            "parentRefs": parent("web", 80),
            "rules": [{
                "matches": all_paths(),
                "backendRefs": [backend("web-v1", 80, 90), backend("web-v2", 80, 10)],
            }],
        })
    );
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    let o = &t.objects[0].body;
    assert_eq!(
        o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "meshbridge"
    );
    assert_eq!(
        o["metadata"]["labels"]["meshbridge.io/owner"],
        "meshbridge-system"
    );
    assert_eq!(
        o["metadata"]["annotations"]["meshbridge.io/parents"],
        r#"["TrafficSplit/shop/web-split"]"#
    );
}

/// (TrafficSplit version, backends with weights as written, the backendRefs' weights).
type WeightCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, u64)],
);

#[test]
fn weights_are_copied_as_relative_shares() {
    const CASES: &[WeightCase] = &[
        // v1alpha1 quantities are milli-units.
        (
            "v1alpha1",
            &[("web-v1", "1"), ("web-v2", "500m")],
            &[("web-v1", 1000), ("web-v2", 500)],
        ),
        (
            "v1alpha2",
            &[("a", "1"), ("b", "2"), ("c", "3")],
            &[("a", 1), ("b", 2), ("c", 3)],
        ),
        // A zero-weight backend keeps weight 0.
        (
            "v1alpha4",
            &[("web-v1", "100"), ("web-v2", "0")],
            &[("web-v1", 100), ("web-v2", 0)],
        ),
    ];
    for (version, backends, want) in CASES {
        let names: Vec<&str> = std::iter::once("web")
            .chain(backends.iter().map(|(b, _)| *b))
            .collect();
        let t = translate(&(services(&names, HTTP80) + &split(version, backends, &[])));
        let want: Vec<Value> = want.iter().map(|(b, w)| backend(b, 80, *w)).collect();
        assert_eq!(
            spec(&t, "HTTPRoute", "web-80")["rules"][0]["backendRefs"],
            json!(want),
            "{version} {backends:?}"
        );
        assert!(t.findings.is_empty(), "{:?}", t.findings);
    }
}

#[test]
fn root_as_its_own_backend() {
    let t = translate(&plain_split(
        &["web", "web-v2"],
        HTTP80,
        &[("web", "90"), ("web-v2", "10")],
    ));
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80"),
        &json!({
            "parentRefs": parent("web", 80),
            "rules": [{
                "matches": all_paths(),
                "backendRefs": [backend("web", 80, 90), backend("web-v2", 80, 10)],
            }],
        })
    );
}

const AB_GROUP: &str = include_str!("fixtures/ab_group.yaml");

#[test]
fn ab_split_with_headers_methods_and_catch_all() {
    let t = translate(
        &(services(&["web", "web-v1", "web-v2"], HTTP80)
            + AB_GROUP
            + &split(
                "v1alpha4",
                &[("web-v1", "50"), ("web-v2", "50")],
                &["canary-users"],
            )),
    );
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80"),
        &json!({
            "parentRefs": parent("web", 80),
            "rules": [
                {
                    "matches": [
                        {
                            "path": {"type": "RegularExpression", "value": "^.*$"},
                            "headers": [
                                {"name": "user-agent", "type": "RegularExpression", "value": "^(?:.*Firefox.*)$"},
                                {"name": "x-canary", "type": "Exact", "value": "yes"},
                            ],
                        },
                        {"path": {"type": "RegularExpression", "value": "^(?:/api).*$"}, "method": "GET"},
                        {"path": {"type": "RegularExpression", "value": "^(?:/api).*$"}, "method": "POST"},
                        {"path": {"type": "Exact", "value": "/ping"}},
                    ],
                    "backendRefs": [backend("web-v1", 80, 50), backend("web-v2", 80, 50)],
                },
                {
                    "matches": [{"path": {"type": "RegularExpression", "value": "^.*$"}}],
                    "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
                },
            ],
        })
    );
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    assert_eq!(
        t.objects[0].body["metadata"]["annotations"]["meshbridge.io/parents"],
        r#"["TrafficSplit/shop/web-split","HTTPRouteGroup/shop/canary-users"]"#
    );
}

#[test]
fn ab_split_without_regexes_uses_core_match_types() {
    let group = include_str!("fixtures/ab_split_without_regexes_uses_core_match_types_group.yaml");
    let t = translate(
        &(services(&["web", "web-v2"], HTTP80)
            + group
            + &split("v1alpha4", &[("web-v2", "1")], &["g"])),
    );
    let x_beta = json!([{"name": "x-beta", "type": "Exact", "value": "1"}]);
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80")["rules"],
        json!([
            {
                "matches": [
                    {"path": {"type": "PathPrefix", "value": "/"}, "method": "GET", "headers": x_beta},
                    {"path": {"type": "PathPrefix", "value": "/"}, "method": "DELETE", "headers": x_beta},
                    {"path": {"type": "PathPrefix", "value": "/"}, "method": "PATCH", "headers": x_beta},
                    {"path": {"type": "Exact", "value": "/healthz"}},
                ],
                "backendRefs": [backend("web-v2", 80, 1)],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
            },
        ])
    );
}

#[test]
fn match_selecting_everything_makes_the_split_unconditional() {
    let group = include_str!(
        "fixtures/match_selecting_everything_makes_the_split_unconditional_group.yaml"
    );
    let t = translate(
        &(services(&["web", "web-v2"], HTTP80)
            + group
            + &split("v1alpha4", &[("web-v2", "1")], &["g"])),
    );
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80")["rules"],
        json!([{"matches": all_paths(), "backendRefs": [backend("web-v2", 80, 1)]}])
    );
}

#[test]
fn conflicting_header_conditions_are_reported_and_left_out() {
    let group =
        include_str!("fixtures/conflicting_header_conditions_are_reported_and_left_out_group.yaml");
    let t = translate(
        &(services(&["web", "web-v2"], HTTP80)
            + group
            + &split("v1alpha4", &[("web-v2", "1")], &["g"])),
    );
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80")["rules"][0]["matches"],
        json!([{"path": {"type": "Exact", "value": "/ok"}}])
    );
    assert_eq!(t.findings.len(), 1, "{:?}", t.findings);
    let f = &t.findings[0];
    assert_eq!((f.feature, f.level), (Feature::HeaderRouting, Level::None));
    assert_eq!(f.object.to_string(), "TrafficSplit/shop/web-split");
    assert_eq!(f.field, "spec.matches");
    assert!(f.reason.contains("match `twice`"), "{}", f.reason);
}

#[test]
fn every_match_left_out_means_no_route() {
    let group = format!(
        "---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: g, namespace: shop}}\nspec:\n  matches:\n  - name: long\n    pathRegex: \"/{}\"\n",
        "x".repeat(1100)
    );
    let t = translate(
        &(services(&["web", "web-v2"], HTTP80)
            + &group
            + &split("v1alpha4", &[("web-v2", "1")], &["g"])),
    );
    assert!(t.objects.is_empty());
    assert_eq!(t.findings.len(), 1);
    assert_eq!(t.findings[0].feature, Feature::PathRouting);
    assert_eq!(t.findings[0].level, Level::None);
}

const TCP_SVC: &str = "{name: postgres, port: 5432}";

#[test]
fn tcp_port_gives_tcproute_v1_by_default() {
    let t = translate(&plain_split(
        &["web", "web-v1", "web-v2"],
        TCP_SVC,
        &[("web-v1", "3"), ("web-v2", "1")],
    ));
    assert_eq!(
        only(&t, "TCPRoute", "web-5432"),
        &json!({
            "parentRefs": parent("web", 5432),
            "rules": [{"backendRefs": [backend("web-v1", 5432, 3), backend("web-v2", 5432, 1)]}],
        })
    );
    assert!(t.findings.is_empty());
}

#[test]
fn tcp_port_gives_tcproute_v1alpha2_when_selected() {
    let input = plain_split(
        &["web", "web-v1", "web-v2"],
        TCP_SVC,
        &[("web-v1", "3"), ("web-v2", "1")],
    );
    let t = translate_cx(&input, &mesh_cx(Some("v1alpha2")));
    assert_eq!(
        kinds(&t),
        ["gateway.networking.k8s.io/v1alpha2 TCPRoute shop/web-5432"]
    );
    assert_eq!(
        spec(&t, "TCPRoute", "web-5432")["rules"],
        json!([{"backendRefs": [backend("web-v1", 5432, 3), backend("web-v2", 5432, 1)]}])
    );
    // An unknown version: v1, reported on the TcpRoutes row (Partial in that context).
    let t = translate_cx(&input, &mesh_cx(Some("v9")));
    assert_eq!(
        kinds(&t),
        ["gateway.networking.k8s.io/v1 TCPRoute shop/web-5432"]
    );
    assert_eq!(t.findings.len(), 1);
    assert_eq!(t.findings[0].feature, Feature::TcpRoutes);
}

#[test]
fn tcp_route_version_from_a_mesh_object_through_the_pipeline() {
    let input = plain_split(&["web", "web-v1"], TCP_SVC, &[("web-v1", "1")])
        + "---\napiVersion: meshbridge.io/v1alpha1\nkind: Mesh\nmetadata: {name: linkerd-gamma, namespace: meshbridge-system}\nspec:\n  type: gateway-api\n  tcpRouteVersion: v1alpha2\n";
    let loaded = meshbridge_core::load::load_str("in.yaml", &input);
    let out = meshbridge_core::pipeline::translate(
        vec![loaded],
        Box::new(GatewayApiAdapter),
        &Context::default(),
        None,
    );
    assert!(!out.failed, "{:?}", out.diagnostics);
    assert!(
        out.yaml
            .contains("apiVersion: gateway.networking.k8s.io/v1alpha2"),
        "{}",
        out.yaml
    );
    assert!(out.yaml.contains("kind: TCPRoute"));
}

#[test]
fn several_ports_http_tcp_udp_grpc() {
    let ports = "{name: http, port: 80}, {name: admin, port: 9000}, {name: dns, port: 53, protocol: UDP}, {name: rpc, port: 7070, appProtocol: grpc}";
    let t = translate(&plain_split(
        &["web", "web-v2"],
        ports,
        &[("web", "80"), ("web-v2", "20")],
    ));
    assert_eq!(
        kinds(&t),
        [
            "gateway.networking.k8s.io/v1 GRPCRoute shop/web-7070",
            "gateway.networking.k8s.io/v1 HTTPRoute shop/web-80",
            "gateway.networking.k8s.io/v1 TCPRoute shop/web-9000",
        ]
    );
    assert_eq!(
        spec(&t, "GRPCRoute", "web-7070"),
        &json!({
            "parentRefs": parent("web", 7070),
            "rules": [{"backendRefs": [backend("web", 7070, 80), backend("web-v2", 7070, 20)]}],
        })
    );
    assert_eq!(
        spec(&t, "TCPRoute", "web-9000")["rules"][0]["backendRefs"],
        json!([backend("web", 9000, 80), backend("web-v2", 9000, 20)])
    );
    assert_eq!(t.findings.len(), 1, "{:?}", t.findings);
    let f = &t.findings[0];
    assert_eq!((f.feature, f.level), (Feature::UdpRoutes, Level::None));
    assert!(f.reason.contains("53/UDP"), "{}", f.reason);
}

#[test]
fn ab_split_on_grpc_port_uses_grpcroute_when_faithful() {
    let group =
        include_str!("fixtures/ab_split_on_grpc_port_uses_grpcroute_when_faithful_group.yaml");
    let ports = "{name: grpc, port: 7070, appProtocol: grpc}";
    let t = translate(
        &(services(&["web", "web-v2"], ports)
            + group
            + &split("v1alpha4", &[("web-v2", "1")], &["rpc"])),
    );
    assert_eq!(
        spec(&t, "GRPCRoute", "web-7070"),
        &json!({
            "parentRefs": parent("web", 7070),
            "rules": [
                {
                    "matches": [
                        {"method": {"type": "Exact", "service": "echo.Echo", "method": "Say"}},
                        {
                            "method": {"type": "Exact", "service": "echo.Admin"},
                            "headers": [{"name": "x-team", "type": "Exact", "value": "ops"}],
                        },
                    ],
                    "backendRefs": [backend("web-v2", 7070, 1)],
                },
                {"backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 7070}]},
            ],
        })
    );
    // A method condition is not expressible in a GRPCRoute: HTTPRoute instead.
    let group2 = group.replace(
        "  - name: admin\n",
        "  - name: admin\n    methods: [POST]\n",
    );
    let t = translate(
        &(services(&["web", "web-v2"], ports)
            + &group2
            + &split("v1alpha4", &[("web-v2", "1")], &["rpc"])),
    );
    assert_eq!(
        kinds(&t),
        ["gateway.networking.k8s.io/v1 HTTPRoute shop/web-7070"]
    );
}

#[test]
fn ab_split_on_undeclared_tcp_port_is_reported() {
    let group = "---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g, namespace: shop}\nspec:\n  matches:\n  - name: a\n    pathRegex: /a\n";
    let t = translate(
        &(services(
            &["web", "web-v2"],
            "{name: http, port: 80}, {name: web, port: 8080}",
        ) + group
            + &split("v1alpha4", &[("web-v2", "1")], &["g"])),
    );
    assert_eq!(
        kinds(&t),
        ["gateway.networking.k8s.io/v1 HTTPRoute shop/web-80"]
    );
    assert_eq!(t.findings.len(), 1);
    let f = &t.findings[0];
    assert_eq!(
        (f.feature, f.level),
        (Feature::TrafficSplitMatches, Level::Partial)
    );
    assert!(f.reason.contains("port 8080"), "{}", f.reason);
}

#[test]
fn missing_root_service_is_reported_not_guessed() {
    // Backends are known, the root is not: no ports, so nothing is emitted.
    let t = translate(&plain_split(
        &["web-v1", "web-v2"],
        HTTP80,
        &[("web-v1", "90"), ("web-v2", "10")],
    ));
    assert!(t.objects.is_empty());
    assert_eq!(t.findings.len(), 1);
    let f = &t.findings[0];
    assert_eq!((f.feature, f.level), (Feature::TrafficSplit, Level::None));
    assert_eq!(f.object.to_string(), "TrafficSplit/shop/web-split");
    assert_eq!(f.field, "spec.service");
    assert!(
        f.reason.contains("Service shop/web is not in the input"),
        "{}",
        f.reason
    );
    // No Services at all.
    let t = translate(&split(
        "v1alpha4",
        &[("web-v1", "90"), ("web-v2", "10")],
        &[],
    ));
    assert!(t.objects.is_empty());
    assert_eq!(t.findings.len(), 1);
}

#[test]
fn backend_without_the_root_port_is_left_out() {
    let t = translate(
        &(svc(
            "web",
            "{name: http, port: 80}, {name: http-alt, port: 8080}",
        ) + &svc(
            "web-v1",
            "{name: http, port: 80}, {name: http-alt, port: 8080}",
        ) + &svc("web-v2", HTTP80)
            + &split("v1alpha4", &[("web-v1", "90"), ("web-v2", "10")], &[])),
    );
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80")["rules"][0]["backendRefs"],
        json!([backend("web-v1", 80, 90), backend("web-v2", 80, 10)])
    );
    assert_eq!(
        spec(&t, "HTTPRoute", "web-8080")["rules"][0]["backendRefs"],
        json!([backend("web-v1", 8080, 90)])
    );
}

#[test]
fn weights_over_one_million_are_scaled() {
    // Exact ratio: no finding.
    let t = translate(&plain_split(
        &["web", "a", "b"],
        HTTP80,
        &[("a", "3000000"), ("b", "1000000")],
    ));
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80")["rules"][0]["backendRefs"],
        json!([backend("a", 80, 750000), backend("b", 80, 250000)])
    );
    assert!(t.findings.is_empty());
    // Rounded ratio: reported.
    let t = translate(&plain_split(
        &["web", "a", "b"],
        HTTP80,
        &[("a", "2000000"), ("b", "1000000")],
    ));
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80")["rules"][0]["backendRefs"],
        json!([backend("a", 80, 666667), backend("b", 80, 333333)])
    );
    assert_eq!(t.findings.len(), 1);
    let f = &t.findings[0];
    assert_eq!(
        (f.feature, f.level),
        (Feature::TrafficSplit, Level::Partial)
    );
    assert_eq!(f.field, "spec.backends");
    assert!(f.reason.contains("a 2000000 → 666667"), "{}", f.reason);
    // v1alpha1 quantities in milli-units can exceed the cap too; a tiny positive share stays.
    let t = translate(
        &(services(&["web", "a", "b"], HTTP80)
            + &split("v1alpha1", &[("a", "1m"), ("b", "100M")], &[])),
    );
    assert_eq!(
        spec(&t, "HTTPRoute", "web-80")["rules"][0]["backendRefs"],
        json!([backend("a", 80, 1), backend("b", 80, 1000000)])
    );
    assert_eq!(t.findings.len(), 1);
}

#[test]
fn more_than_16_backends() {
    let names: Vec<String> = (0..18).map(|i| format!("b{i}")).collect();
    let mut svcs = svc("web", HTTP80);
    for n in &names {
        svcs += &svc(n, HTTP80);
    }
    // 18 backends, two of them zero: the zero ones are dropped, 16 remain.
    let bs: Vec<(&str, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), if i < 2 { "0" } else { "1" }))
        .collect();
    let t = translate(&(svcs.clone() + &split("v1alpha4", &bs, &[])));
    let refs = spec(&t, "HTTPRoute", "web-80")["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(refs.len(), 16);
    assert_eq!(refs[0], backend("b2", 80, 1));
    assert!(t.findings.is_empty());
    // 18 positive backends: not expressible.
    let bs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let t = translate(&(svcs + &split("v1alpha4", &bs, &[])));
    assert!(t.objects.is_empty());
    assert_eq!(t.findings.len(), 1);
    assert_eq!(
        (t.findings[0].feature, t.findings[0].level),
        (Feature::TrafficSplit, Level::None)
    );
}

#[test]
fn more_than_64_matches_span_rules() {
    let mut group = String::from(
        "---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g, namespace: shop}\nspec:\n  matches:\n",
    );
    for i in 0..70 {
        group += &format!("  - name: m{i}\n    pathRegex: \"/p{i}$\"\n");
    }
    let t = translate(
        &(services(&["web", "web-v2"], HTTP80)
            + &group
            + &split("v1alpha4", &[("web-v2", "1")], &["g"])),
    );
    let rules = spec(&t, "HTTPRoute", "web-80")["rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["matches"].as_array().unwrap().len(), 64);
    assert_eq!(rules[1]["matches"].as_array().unwrap().len(), 6);
    assert_eq!(
        rules[1]["matches"][5],
        json!({"path": {"type": "Exact", "value": "/p69"}})
    );
    assert_eq!(rules[2]["backendRefs"][0]["name"], "web");
    assert!(t.findings.is_empty());
}

#[test]
fn traffic_targets_are_reported_none() {
    let input = include_str!("fixtures/traffic_targets_are_reported_none_input.yaml");
    let t = translate(input);
    assert!(t.objects.is_empty());
    let got: Vec<(Feature, Level, String, String)> = t
        .findings
        .iter()
        .map(|f| (f.feature, f.level, f.object.to_string(), f.field.clone()))
        .collect();
    let tt = "TrafficTarget/shop/frontend-to-api".to_string();
    assert_eq!(
        got,
        [
            (
                Feature::HttpAccess,
                Level::None,
                tt.clone(),
                "spec.rules[0]".into()
            ),
            (
                Feature::TcpAccess,
                Level::None,
                tt.clone(),
                "spec.rules[1]".into()
            ),
            (Feature::UdpAccess, Level::None, tt, "spec.rules[2]".into()),
        ]
    );
    assert!(
        t.findings[0].reason.contains("[shop/frontend]"),
        "{}",
        t.findings[0].reason
    );
    assert!(
        t.findings[1].reason.contains("port 5432"),
        "{}",
        t.findings[1].reason
    );
}

#[test]
fn outputs_are_sorted_and_named_per_root_and_port() {
    let input = plain_split(
        &["web", "api", "web-v2", "api-v2"],
        HTTP80,
        &[("web-v2", "1")],
    ) + "---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: api-split, namespace: shop}\nspec:\n  service: api.shop.svc.cluster.local\n  backends:\n  - {service: api-v2, weight: 1}\n";
    let t = translate(&input);
    assert_eq!(
        kinds(&t),
        [
            "gateway.networking.k8s.io/v1 HTTPRoute shop/api-80",
            "gateway.networking.k8s.io/v1 HTTPRoute shop/web-80",
        ]
    );
}

#[test]
fn capability_matrix() {
    let m = GatewayApiAdapter.capabilities(&Context::default());
    let levels: Vec<(Feature, Level)> = m.rows().iter().map(|r| (r.feature, r.level)).collect();
    assert_eq!(
        levels,
        [
            (Feature::TrafficSplit, Level::Partial),
            (Feature::TrafficSplitMatches, Level::Partial),
            (Feature::PathRouting, Level::Partial),
            (Feature::MethodRouting, Level::Full),
            (Feature::HeaderRouting, Level::Partial),
            (Feature::HttpAccess, Level::None),
            (Feature::TcpAccess, Level::None),
            (Feature::UdpAccess, Level::None),
            (Feature::TcpRoutes, Level::Full),
            (Feature::UdpRoutes, Level::None),
            (Feature::Metrics, Level::None),
            (Feature::Mtls, Level::None),
            (Feature::RouteTables, Level::Partial),
            (Feature::QueryRouting, Level::Partial),
            (Feature::HeaderModifiers, Level::Full),
            (Feature::UrlRewrite, Level::Partial),
            (Feature::Redirects, Level::Partial),
            (Feature::Timeouts, Level::Partial),
            (Feature::Retries, Level::None),
            (Feature::ConsumerRoutes, Level::Full),
        ]
    );
    for r in m.rows() {
        assert_eq!(r.level == Level::Full, r.reason.is_empty(), "{r:?}");
    }
}

#[test]
fn validator_rejects_bad_objects() {
    // The checker used on every output can fail: a Service backendRef without a port, an
    // unknown field, a PathPrefix value breaking the CEL rules.
    let base = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "x", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [{"name": "web", "port": 80}]}],
        },
    });
    assert_eq!(validate(&base), Ok(()));
    let reached = cel_rules_reached(&base);
    for r in [
        "Must have port for Service reference",
        "must not contain '//' when type one of ['Exact', 'PathPrefix']",
        "While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128",
        "sectionName must be unique when parentRefs includes 2 or more references to the same parent",
    ] {
        assert!(reached.contains(r), "{r}: {reached:?}");
    }
    let mut no_port = base.clone();
    no_port["spec"]["rules"][0]["backendRefs"][0]
        .as_object_mut()
        .unwrap()
        .remove("port");
    assert!(validate(&no_port).is_err());
    let mut typo = base.clone();
    typo["spec"]["rules"][0]["backendRef"] = json!([]);
    assert!(validate(&typo).is_err());
    let mut bad_path = base.clone();
    bad_path["spec"]["rules"][0]["matches"][0]["path"]["value"] = json!("/a//b");
    assert!(validate(&bad_path).is_err());
    let mut weight = base;
    weight["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(1_000_001);
    assert!(validate(&weight).is_err());
    let tcp = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "TCPRoute",
        "metadata": {"name": "x"},
        "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 1}]}, {"backendRefs": [{"name": "b", "port": 1}]}]},
    });
    assert!(validate(&tcp).is_err(), "TCPRoute v1 allows one rule");
}
