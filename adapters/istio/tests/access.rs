//! TrafficTarget (+ HTTPRouteGroup / TCPRoute / UDPRoute) → AuthorizationPolicy and
//! PeerAuthentication.

mod common;

use common::*;
use meshbridge_core::ir::{AccessPolicy, AccessRule, Identity, PodInfo, Ports, Traffic, Workload};
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_core::{Adapter, Context, Feature, Ir, Level};
use meshbridge_istio::IstioAdapter;
use serde_json::json;

fn td(trust_domain: &str) -> Context {
    Context {
        trust_domain: trust_domain.into(),
        ..Context::default()
    }
}

/// A v1alpha3 TrafficTarget `name` in namespace `ns`: `client` may send `kind` `route` traffic
/// to ServiceAccount `dest`.
fn target(name: &str, dest: &str, kind: &str, route: &str) -> String {
    format!(
        "---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  destination: {{kind: ServiceAccount, name: {dest}, namespace: ns}}\n  rules: [{{kind: {kind}, name: {route}}}]\n  sources: [{{kind: ServiceAccount, name: client, namespace: ns}}]\n"
    )
}

fn pod(ns: &str, name: &str, sa: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\nspec:\n  serviceAccountName: {sa}\n  containers: [{{name: c, image: x}}]\n---\n"
    )
}

const BOOKSTORE: &str = include_str!("fixtures/bookstore.yaml");

fn bookstore() -> String {
    format!(
        "{}{}{}{BOOKSTORE}",
        pod(
            "shop",
            "bookstore-1",
            "bookstore",
            "{app: bookstore, version: v1}"
        ),
        pod(
            "shop",
            "bookstore-2",
            "bookstore",
            "{app: bookstore, version: v1, pod-template-hash: abc}"
        ),
        pod("shop", "buyer-1", "buyer", "{app: buyer}"),
    )
}

#[test]
fn traffic_targets_with_and_without_matches_tcp_ports_udp_cross_namespace() {
    let t = translate_cx(&bookstore(), &td("example.org"));
    assert_istio_rules(&t);
    assert_eq!(
        names(&t),
        vec![
            "AuthorizationPolicy shop/allow-bookstore",
            "AuthorizationPolicy shop/meshbridge-allow-nothing",
            "PeerAuthentication shop/default",
        ]
    );
    let both = json!([{ "source": { "principals": [
        "example.org/ns/shop/sa/buyer",
        "example.org/ns/audit/sa/auditor",
    ] } }]);
    let buyer = json!([{ "source": { "principals": ["example.org/ns/shop/sa/buyer"] } }]);
    assert_eq!(
        spec(&t, "AuthorizationPolicy", "shop", "allow-bookstore"),
        &json!({
            // The labels all bookstore pods share, and no other identity's pods carry.
            "selector": { "matchLabels": { "app": "bookstore", "version": "v1" } },
            "action": "ALLOW",
            "rules": [
                {
                    "from": both,
                    "to": [{ "operation": { "methods": ["GET", "HEAD"], "paths": ["/books/*"] } }],
                    "when": [
                        { "key": "request.headers[x-tenant]", "values": ["acme"] },
                        { "key": "request.headers[x-version]", "values": ["v2*"] },
                    ],
                },
                { "from": both, "to": [{ "operation": { "paths": ["/ping"] } }] },
                // `versioned` is a regex: not emitted. `any` is any HTTP request: `paths: ["*"]`
                // keeps it from allowing raw TCP.
                { "from": both, "to": [{ "operation": { "paths": ["*"] } }] },
                { "from": both, "to": [{ "operation": { "ports": ["5432", "5433"] } }] },
                // TCPRoute without ports: every port, any traffic.
                { "from": both },
                // bookstore-ping: only the named match.
                { "from": buyer, "to": [{ "operation": { "paths": ["/ping"] } }] },
            ],
        })
    );
    assert_eq!(
        body(&t, "AuthorizationPolicy", "shop", "allow-bookstore")["metadata"]["annotations"]["meshbridge.io/parents"],
        json!(
            "[\"TrafficTarget/shop/bookstore-access\",\"TrafficTarget/shop/bookstore-ping\",\"HTTPRouteGroup/shop/api\"]"
        )
    );
    assert_eq!(
        spec(
            &t,
            "AuthorizationPolicy",
            "shop",
            "meshbridge-allow-nothing"
        ),
        &json!({})
    );
    assert_eq!(
        spec(&t, "PeerAuthentication", "shop", "default"),
        &json!({ "mtls": { "mode": "STRICT" } })
    );
    assert_eq!(
        body(&t, "PeerAuthentication", "shop", "default")["apiVersion"],
        json!("security.istio.io/v1")
    );
    assert_eq!(
        finding_keys(&t),
        vec![
            (
                Feature::HttpAccess,
                Level::None,
                "TrafficTarget/shop/bookstore-access".to_string(),
                "spec.rules[0]".to_string()
            ),
            (
                Feature::UdpAccess,
                Level::None,
                "TrafficTarget/shop/bookstore-access".to_string(),
                "spec.rules[3]".to_string()
            ),
        ]
    );
    assert!(t.findings[0].reason.contains("versioned"));
    assert!(t.findings[0].reason.contains("/v[0-9]+/books"));
    assert_findings_match_matrix(&t);
}

#[test]
fn default_trust_domain() {
    let t = translate(&bookstore());
    let rules = &spec(&t, "AuthorizationPolicy", "shop", "allow-bookstore")["rules"];
    assert_eq!(
        rules[0]["from"][0]["source"]["principals"],
        json!([
            "cluster.local/ns/shop/sa/buyer",
            "cluster.local/ns/audit/sa/auditor"
        ])
    );
}

#[test]
fn header_regexes_that_are_not_literals_are_not_emitted() {
    let yaml = format!(
        "{}{}",
        pod("ns", "web-1", "web", "{app: web}"),
        include_str!("fixtures/header_regexes_that_are_not_literals_are_not_emitted.yaml"),
    ) + &target("tt", "web", "HTTPRouteGroup", "g");
    let t = translate(&yaml);
    assert_istio_rules(&t);
    assert_eq!(
        spec(&t, "AuthorizationPolicy", "ns", "allow-web")["rules"],
        json!([{
            "from": [{ "source": { "principals": ["cluster.local/ns/ns/sa/client"] } }],
            "when": [{ "key": "request.headers[x-debug]", "values": ["*"] }],
        }])
    );
    assert_eq!(t.findings.len(), 3, "{:?}", t.findings);
    for f in &t.findings {
        assert_eq!((f.feature, f.level), (Feature::HttpAccess, Level::None));
    }
    for m in ["by-host", "contains", "twice"] {
        assert!(
            t.findings
                .iter()
                .any(|f| f.reason.contains(&format!("`{m}`"))),
            "{m}"
        );
    }
}

#[test]
fn no_isolating_selector_emits_no_allow_and_reports() {
    // web and admin pods share every label: no selector isolates web.
    let yaml = format!(
        "{}{}{}",
        pod("ns", "web-1", "web", "{app: shared}"),
        pod("ns", "admin-1", "admin", "{app: shared}"),
        include_str!("fixtures/no_isolating_selector_emits_no_allow_and_reports.yaml"),
    ) + &target("tt", "web", "TCPRoute", "all")
        + &target("to-ghost", "ghost", "TCPRoute", "all");
    let t = translate(&yaml);
    assert_istio_rules(&t);
    // Default deny still holds for the namespace.
    assert_eq!(
        names(&t),
        vec![
            "AuthorizationPolicy ns/meshbridge-allow-nothing",
            "PeerAuthentication ns/default",
        ]
    );
    assert_eq!(
        body(&t, "PeerAuthentication", "ns", "default")["metadata"]["annotations"]["meshbridge.io/parents"],
        json!("[\"TrafficTarget/ns/to-ghost\",\"TrafficTarget/ns/tt\"]")
    );
    assert_eq!(
        finding_keys(&t),
        vec![
            (
                Feature::TcpAccess,
                Level::None,
                "TrafficTarget/ns/to-ghost".to_string(),
                "spec.destination".to_string()
            ),
            (
                Feature::TcpAccess,
                Level::None,
                "TrafficTarget/ns/tt".to_string(),
                "spec.destination".to_string()
            ),
        ]
    );
    assert!(t.findings[1].reason.contains("ns/web"));
    assert_findings_match_matrix(&t);
}

/// smi-adapter-istio's TrafficTarget v1alpha1 input (shared/smi/golden/smi-adapter-istio),
/// with pods so each destination can be selected. They emitted RBAC v1alpha1
/// ServiceRole/ServiceRoleBinding per TrafficTarget (and no rules at all when `matches` was
/// omitted); we emit one AuthorizationPolicy per destination identity.
#[test]
fn bookinfo_v1alpha1() {
    let mut yaml = String::new();
    for sa in ["reviews-v1", "reviews-v3", "details-v1"] {
        yaml.push_str(&pod(
            "default",
            &format!("{sa}-pod"),
            sa,
            &format!("{{app: {sa}}}"),
        ));
    }
    yaml.push_str(include_str!("fixtures/bookinfo_v1alpha1.yaml"));
    let t = translate(&yaml);
    assert_istio_rules(&t);
    assert_eq!(
        spec(&t, "AuthorizationPolicy", "default", "allow-reviews-v1"),
        &json!({
            "selector": { "matchLabels": { "app": "reviews-v1" } },
            "action": "ALLOW",
            "rules": [{
                "from": [{ "source": { "principals": ["cluster.local/ns/default/sa/productpage-v1"] } }],
                "to": [{ "operation": { "paths": ["*"] } }],
            }],
        })
    );
    // ratings-v1 has no pods: reported at the v1alpha1 top-level field.
    assert_eq!(
        finding_keys(&t),
        vec![(
            Feature::HttpAccess,
            Level::None,
            "TrafficTarget/default/reviews-ratings".to_string(),
            "destination".to_string()
        )]
    );
}

#[test]
fn v1alpha2_destination_port() {
    let yaml = format!(
        "{}{}",
        pod("ns", "web-1", "web", "{app: web}"),
        include_str!("fixtures/v1alpha2_destination_port.yaml")
    );
    let ir = ir_of(&yaml);
    assert!(
        ir.access.contains_key(&Identity::new("ns", "web")),
        "{:?}",
        ir.problems()
    );
    let t = translate(&yaml);
    assert_istio_rules(&t);
    let from = json!([{ "source": { "principals": ["cluster.local/ns/monitoring/sa/prom"] } }]);
    assert_eq!(
        spec(&t, "AuthorizationPolicy", "ns", "allow-web")["rules"],
        json!([
            { "from": from, "to": [{ "operation": { "methods": ["GET"], "paths": ["/metrics*"], "ports": ["8080"] } }] },
            { "from": from, "to": [{ "operation": { "ports": ["8080"] } }] },
        ])
    );
}

fn identity_ir(rules: Vec<AccessRule>) -> Ir {
    let id = Identity::new("ns", "web");
    let mut ir = Ir::default();
    ir.workloads.insert(
        id.clone(),
        Workload {
            identity: id.clone(),
            pods: vec![PodInfo {
                namespace: "ns".into(),
                name: "web-1".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                ip: None,
                container_ports: vec![],
            }],
        },
    );
    ir.access.insert(
        id.clone(),
        AccessPolicy {
            destination: id,
            rules,
        },
    );
    ir
}

fn tcp_rule(i: usize, sources: Vec<Identity>, ports: Ports) -> AccessRule {
    AccessRule {
        parent: ObjectKey::new(Kind::TrafficTarget, "ns", "tt"),
        rule_index: i,
        field: format!("spec.rules[{i}]"),
        sources,
        ports,
        traffic: Traffic::Tcp,
    }
}

#[test]
fn rules_that_allow_nothing_are_not_widened() {
    // No sources (v1alpha1/2 allow an empty list) and an empty port set both allow nothing:
    // emitting them would allow any source / any port.
    let ir = identity_ir(vec![
        tcp_rule(0, vec![], Ports::All),
        tcp_rule(
            1,
            vec![Identity::new("ns", "c")],
            Ports::Only(Default::default()),
        ),
    ]);
    let t = IstioAdapter.translate(&ir, &Context::default());
    assert_eq!(
        names(&t),
        vec![
            "AuthorizationPolicy ns/meshbridge-allow-nothing",
            "PeerAuthentication ns/default",
        ]
    );
    assert!(t.findings.is_empty());
}

#[test]
fn more_than_512_rules_are_split_over_policies() {
    let rules = (0..600)
        .map(|i| {
            tcp_rule(
                i,
                vec![Identity::new("ns", "c")],
                Ports::Only([(i + 1) as u16].into()),
            )
        })
        .collect();
    let t = IstioAdapter.translate(&identity_ir(rules), &Context::default());
    assert_istio_rules(&t);
    let first = spec(&t, "AuthorizationPolicy", "ns", "allow-web")["rules"]
        .as_array()
        .unwrap();
    let second = spec(&t, "AuthorizationPolicy", "ns", "allow2-web")["rules"]
        .as_array()
        .unwrap();
    assert_eq!((first.len(), second.len()), (512, 88));
    assert_eq!(first[0]["to"][0]["operation"]["ports"], json!(["1"]));
    assert_eq!(second[87]["to"][0]["operation"]["ports"], json!(["600"]));
    assert_eq!(
        spec(&t, "AuthorizationPolicy", "ns", "allow2-web")["selector"],
        json!({ "matchLabels": { "app": "web" } })
    );
}
