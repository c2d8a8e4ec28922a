//! TrafficSplit → VirtualService.

mod common;

use common::*;
use meshbridge_core::api::meshbridge::{MeshSpec, MeshType};
use meshbridge_core::ir::{Backend, Split, SvcKey};
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_core::{Adapter, Context, Feature, Ir, Level};
use meshbridge_istio::IstioAdapter;
use serde_json::json;

fn split(name: &str, version: &str, backends: &[(&str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  service: reviews\n  backends:\n"
    );
    for (b, w) in backends {
        s.push_str(&format!("  - {{service: {b}, weight: {w}}}\n"));
    }
    s
}

fn dest(host: &str, weight: u64) -> serde_json::Value {
    json!({ "destination": { "host": format!("{host}.default.svc.cluster.local") }, "weight": weight })
}

/// Weighted routes of the VirtualService `default/reviews` (http and tcp must agree).
fn routes(yaml: &str) -> serde_json::Value {
    let t = translate(yaml);
    assert_istio_rules(&t);
    let s = spec(&t, "VirtualService", "default", "reviews");
    assert_eq!(s["http"][0]["route"], s["tcp"][0]["route"]);
    s["http"][0]["route"].clone()
}

#[test]
fn ninety_ten() {
    let t = translate(&split(
        "reviews-rollout",
        "v1alpha4",
        &[("reviews-v1", "90"), ("reviews-v2", "10")],
    ));
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    assert_eq!(names(&t), vec!["VirtualService default/reviews"]);
    let route = json!([dest("reviews-v1", 90), dest("reviews-v2", 10)]);
    assert_eq!(
        body(&t, "VirtualService", "default", "reviews"),
        &json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {
                "name": "reviews",
                "namespace": "default",
                "labels": {
                    "app.kubernetes.io/managed-by": "meshbridge",
                    "meshbridge.io/owner": "meshbridge-system",
                },
                "annotations": {
                    "meshbridge.io/parents": "[\"TrafficSplit/default/reviews-rollout\"]",
                },
            },
            "spec": {
                "hosts": ["reviews.default.svc.cluster.local"],
                "http": [{ "name": "split", "route": route }],
                "tcp": [{ "route": route }],
            },
        })
    );
}

#[test]
fn v1alpha1_quantities() {
    // v1alpha1 weights are quantities: 1 = 1000m against 500m → 2:1.
    assert_eq!(
        routes(&split(
            "r",
            "v1alpha1",
            &[("reviews-v1", "1"), ("reviews-v2", "500m")]
        )),
        json!([dest("reviews-v1", 67), dest("reviews-v2", 33)])
    );
}

#[test]
fn largest_remainders() {
    assert_eq!(
        routes(&split(
            "r",
            "v1alpha2",
            &[("a", "1"), ("b", "2"), ("c", "3")]
        )),
        json!([dest("a", 17), dest("b", 33), dest("c", 50)])
    );
    assert_eq!(
        routes(&split(
            "r",
            "v1alpha2",
            &[("a", "1"), ("b", "1"), ("c", "1")]
        )),
        json!([dest("a", 34), dest("b", 33), dest("c", 33)])
    );
    // Ties go to the earlier backend, and shares keep their order.
    assert_eq!(
        routes(&split(
            "r",
            "v1alpha2",
            &[("a", "1"), ("b", "2"), ("c", "2")]
        )),
        json!([dest("a", 20), dest("b", 40), dest("c", 40)])
    );
}

#[test]
fn zero_weight_backend_is_left_out() {
    let yaml = split("r", "v1alpha2", &[("reviews-v1", "1"), ("reviews-v2", "0")]);
    let t = translate(&yaml);
    assert!(
        t.findings.is_empty(),
        "a zero weight is intended: {:?}",
        t.findings
    );
    assert_eq!(routes(&yaml), json!([dest("reviews-v1", 100)]));
    assert!(
        !serde_json::to_string(&t.objects[0].body)
            .unwrap()
            .contains("reviews-v2")
    );
}

#[test]
fn share_rounding_to_zero_is_reported() {
    let yaml = split("r", "v1alpha2", &[("canary", "1"), ("stable", "999")]);
    assert_eq!(routes(&yaml), json!([dest("stable", 100)]));
    let t = translate(&yaml);
    assert_eq!(
        finding_keys(&t),
        vec![(
            Feature::TrafficSplit,
            Level::Partial,
            "TrafficSplit/default/r".to_string(),
            "spec.backends[0].weight".to_string()
        )]
    );
    assert!(t.findings[0].reason.contains("canary"));
    assert_findings_match_matrix(&t);
}

#[test]
fn root_as_its_own_backend() {
    assert_eq!(
        routes(&split(
            "r",
            "v1alpha4",
            &[("reviews", "75"), ("reviews-canary", "25")]
        )),
        json!([dest("reviews", 75), dest("reviews-canary", 25)])
    );
}

const AB: &str = include_str!("fixtures/ab.yaml");

#[test]
fn header_match_ab_with_catch_all_last() {
    let t = translate(AB);
    assert_istio_rules(&t);
    let v2 = json!([{ "destination": { "host": "website-v2.default.svc.cluster.local" }, "weight": 100 }]);
    assert_eq!(
        spec(&t, "VirtualService", "default", "website"),
        &json!({
            "hosts": ["website.default.svc.cluster.local"],
            "http": [
                {
                    "name": "ab-routes-firefox-users",
                    "match": [{
                        "name": "firefox-users",
                        "headers": {
                            "user-agent": { "regex": ".*Firefox.*" },
                            "x-beta": { "regex": "yes" },
                        },
                    }],
                    "route": v2,
                },
                {
                    "name": "ab-routes-api",
                    "match": [
                        { "name": "api", "uri": { "regex": "(?:/api).*" }, "method": { "exact": "GET" } },
                        { "name": "api", "uri": { "regex": "(?:/api).*" }, "method": { "exact": "POST" } },
                    ],
                    "route": v2,
                },
                {
                    "name": "more-routes-by-host",
                    "match": [{ "name": "by-host", "authority": { "regex": "shop\\.example\\.com" } }],
                    "route": v2,
                },
                {
                    "name": "root",
                    "route": [{ "destination": { "host": "website.default.svc.cluster.local" }, "weight": 100 }],
                },
            ],
        })
    );
    // Both route groups are parents; the header Istio ignores is reported.
    assert_eq!(
        body(&t, "VirtualService", "default", "website")["metadata"]["annotations"]["meshbridge.io/parents"],
        json!(
            "[\"TrafficSplit/default/ab-test\",\"HTTPRouteGroup/default/ab-routes\",\"HTTPRouteGroup/default/more-routes\"]"
        )
    );
    assert_eq!(
        finding_keys(&t),
        vec![(
            Feature::HeaderRouting,
            Level::None,
            "TrafficSplit/default/ab-test".to_string(),
            "spec.matches".to_string()
        )]
    );
    assert!(t.findings[0].reason.contains("by-method-header"));
    assert_findings_match_matrix(&t);
}

#[test]
fn catch_all_match_splits_everything() {
    let t = translate(include_str!(
        "fixtures/catch_all_match_splits_everything.yaml"
    ));
    let s = spec(&t, "VirtualService", "default", "web");
    assert_eq!(s["http"].as_array().unwrap().len(), 1);
    assert_eq!(s["http"][0]["name"], "split");
    assert!(s["http"][0].get("match").is_none());
    assert_eq!(s["tcp"][0]["route"], s["http"][0]["route"]);
}

#[test]
fn two_splits_on_one_root_only_the_oldest_is_programmed() {
    let yaml = include_str!("fixtures/two_splits_on_one_root_only_the_oldest_is_programmed.yaml");
    let ir = ir_of(yaml);
    assert_eq!(ir.splits.len(), 1);
    let winner = &ir.splits[&SvcKey::new("default", "reviews")];
    assert_eq!(winner.parent.name, "zz-older");
    assert!(ir.status[&ObjectKey::new(Kind::TrafficSplit, "default", "aa-newer")].conflicted);
    let t = translate(yaml);
    assert_eq!(names(&t), vec!["VirtualService default/reviews"]);
    assert_eq!(
        spec(&t, "VirtualService", "default", "reviews")["http"][0]["route"],
        json!([dest("reviews-v1", 25), dest("reviews-v2", 75)])
    );
    assert_eq!(
        body(&t, "VirtualService", "default", "reviews")["metadata"]["annotations"]["meshbridge.io/parents"],
        json!("[\"TrafficSplit/default/zz-older\"]")
    );
}

const PORTS: &str = include_str!("fixtures/ports.yaml");

fn pdest(host: &str, port: u16, weight: u64) -> serde_json::Value {
    json!({ "destination": { "host": format!("{host}.shop.svc.cluster.local"), "port": { "number": port } }, "weight": weight })
}

#[test]
fn ports_of_a_known_root() {
    let t = translate(PORTS);
    assert_istio_rules(&t);
    let both = |p| json!([pdest("web", p, 67), pdest("web-v2", p, 33)]);
    assert_eq!(
        spec(&t, "VirtualService", "shop", "web"),
        &json!({
            "hosts": ["web.shop.svc.cluster.local"],
            "http": [
                { "name": "split-80", "match": [{ "port": 80 }], "route": both(80) },
                // Port 9000 is undeclared: Istio sniffs it, so it gets http and tcp routes.
                { "name": "split-9000", "match": [{ "port": 9000 }], "route": both(9000) },
            ],
            "tcp": [
                // web-v2 has no port 5432: the root keeps all of it.
                { "match": [{ "port": 5432 }], "route": [pdest("web", 5432, 100)] },
                { "match": [{ "port": 9000 }], "route": both(9000) },
            ],
        })
    );
    let mut keys = finding_keys(&t);
    keys.sort();
    assert_eq!(
        keys,
        vec![
            (
                Feature::TcpRoutes,
                Level::None,
                "TrafficSplit/shop/web-rollout".to_string(),
                "spec.service".to_string()
            ),
            (
                Feature::TcpRoutes,
                Level::None,
                "TrafficSplit/shop/web-rollout".to_string(),
                "spec.service".to_string()
            ),
            (
                Feature::UdpRoutes,
                Level::None,
                "TrafficSplit/shop/web-rollout".to_string(),
                "spec.service".to_string()
            ),
        ]
    );
    let reasons: Vec<&str> = t.findings.iter().map(|f| f.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("port 443") && r.contains("TLS"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("port 2905") && r.contains("SCTP"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("port 53") && r.contains("UDP"))
    );
    assert_findings_match_matrix(&t);
}

#[test]
fn ab_split_on_several_http_ports() {
    let t = translate(include_str!("fixtures/ab_split_on_several_http_ports.yaml"));
    assert!(t.findings.is_empty(), "{:?}", t.findings);
    let m =
        |p: u16| json!([{ "name": "beta", "headers": { "x-beta": { "regex": "1" } }, "port": p }]);
    let to = |h: &str, p: u16| json!([pdest(h, p, 100)]);
    // Non-HTTP traffic cannot match an HTTP match: it stays with the root (no tcp routes).
    assert_eq!(
        spec(&t, "VirtualService", "shop", "api"),
        &json!({
            "hosts": ["api.shop.svc.cluster.local"],
            "http": [
                { "name": "g-beta-80", "match": m(80), "route": to("api-v2", 80) },
                { "name": "root-80", "match": [{ "port": 80 }], "route": to("api", 80) },
                { "name": "g-beta-8080", "match": m(8080), "route": to("api-v2", 8080) },
                { "name": "root-8080", "match": [{ "port": 8080 }], "route": to("api", 8080) },
            ],
        })
    );
}

#[test]
fn udp_only_root_emits_nothing_and_reports() {
    let t = translate(include_str!(
        "fixtures/udp_only_root_emits_nothing_and_reports.yaml"
    ));
    assert!(t.objects.is_empty());
    assert_eq!(
        finding_keys(&t),
        vec![(
            Feature::UdpRoutes,
            Level::None,
            "TrafficSplit/default/s".to_string(),
            "spec.service".to_string()
        )]
    );
}

#[test]
fn istio_before_1_13_and_1_22() {
    let cx = Context {
        mesh: Some(MeshSpec {
            version: Some("1.12".into()),
            ..MeshSpec::of(MeshType::Istio)
        }),
        ..Context::default()
    };
    let t = translate_cx(
        &split("r", "v1alpha2", &[("a", "1"), ("b", "1"), ("c", "1")]),
        &cx,
    );
    assert_istio_rules(&t);
    // Weights always sum to exactly 100 (the pre-1.13 webhook rule), so nothing changes but
    // the API version: networking v1 is served only from 1.22.
    assert_eq!(t.objects[0].api_version, "networking.istio.io/v1beta1");
    assert_eq!(
        t.objects[0].body["spec"]["http"][0]["route"],
        json!([dest("a", 34), dest("b", 33), dest("c", 33)])
    );
}

/// smi-adapter-istio golden pairs (shared/smi/golden/smi-adapter-istio): same inputs, our
/// rules. They named the VirtualService `<split>-vs`, used short hosts, kept weight-0
/// destinations, and gave the remainder to the last backend.
#[test]
fn smi_adapter_istio_goldens() {
    // 02: weights 1 / 0 → they: v1 100, v2 0; we: v1 100, v2 left out.
    assert_eq!(
        routes(&split(
            "reviews-rollout",
            "v1alpha2",
            &[("reviews-v1", "1"), ("reviews-v2", "0")]
        )),
        json!([dest("reviews-v1", 100)])
    );
    // 05: weights 0 / 1 → they: 0 / 100; we: v2 100 only.
    assert_eq!(
        routes(&split(
            "reviews-rollout",
            "v1alpha2",
            &[("reviews-v1", "0"), ("reviews-v2", "1")]
        )),
        json!([dest("reviews-v2", 100)])
    );
    // 04 (stale fixture): v1alpha2 integers 1 / 500 → 0.2% / 99.8%; the fixture's 67/33 is
    // the v1alpha1 quantity reading (1 = 1000m vs 500m).
    let v1alpha2 = split(
        "reviews-rollout",
        "v1alpha2",
        &[("reviews-v1", "1"), ("reviews-v2", "500")],
    );
    assert_eq!(routes(&v1alpha2), json!([dest("reviews-v2", 100)]));
    assert_eq!(translate(&v1alpha2).findings.len(), 1);
    assert_eq!(
        routes(&split(
            "reviews-rollout",
            "v1alpha1",
            &[("reviews-v1", "1"), ("reviews-v2", "500m")]
        )),
        json!([dest("reviews-v1", 67), dest("reviews-v2", 33)])
    );
}

#[test]
fn output_is_deterministic_and_order_independent() {
    let docs: Vec<&str> = PORTS.split("\n---\n").chain(AB.split("\n---\n")).collect();
    let forward = docs.join("\n---\n");
    let mut rev = docs.clone();
    rev.reverse();
    let backward = rev.join("\n---\n");
    let a = translate(&forward);
    assert_eq!(a, translate(&forward));
    assert_eq!(a, translate(&backward));
}

proptest::proptest! {
    #[test]
    fn weights_always_sum_to_100(ws in proptest::collection::vec(0u64..100_000, 1..10)) {
        proptest::prop_assume!(ws.iter().any(|w| *w > 0));
        let mut ir = Ir::default();
        let root = SvcKey::new("ns", "root");
        ir.splits.insert(root.clone(), Split {
            parent: ObjectKey::new(Kind::TrafficSplit, "ns", "s"),
            root: root.clone(),
            backends: ws.iter().enumerate().map(|(i, w)| Backend {
                service: SvcKey::new("ns", format!("b{i}")),
                weight: *w,
                is_root: false,
            }).collect(),
            matches: vec![],
            ports: vec![],
            rules: vec![],
        });
        let t = IstioAdapter.translate(&ir, &Context::default());
        assert_istio_rules(&t);
        let route = t.objects[0].body["spec"]["http"][0]["route"].as_array().unwrap().clone();
        for d in &route {
            let host = d["destination"]["host"].as_str().unwrap();
            let i: usize = host.trim_start_matches('b').split('.').next().unwrap().parse().unwrap();
            proptest::prop_assert!(ws[i] > 0, "zero weight got traffic");
        }
        // Every positive backend is either routed or reported.
        let positive = ws.iter().filter(|w| **w > 0).count();
        proptest::prop_assert_eq!(route.len() + t.findings.len(), positive);
    }
}
