//! GAMMA routes → IR: validation field by field, the SMI-shaped split, route tables in Gateway
//! API precedence, consumer routes, ReferenceGrants, the one conflict rule with TrafficSplits,
//! and TrafficTargets naming an HTTPRoute.

use meshbridge_core::build::build;
use meshbridge_core::ir::{Filter, Ir, PathRewrite, SvcKey, Traffic};
use meshbridge_core::load::load_str;
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_core::snapshot::Snapshot;

/// Services web, web-v1 and web-v2 (port 8080 `http`) in `default`: the GAMMA tests' base.
const SERVICES: &str = include_str!("../../conformance/fixtures/gamma/services.yaml");

/// The IR of SERVICES plus `extra`, where a line `@route NAME` stands for the head of an
/// HTTPRoute `default/NAME` whose parent is the Service `web` (its `rules` follow).
fn ir_of(extra: &str) -> (Ir, Vec<String>) {
    let extra: String = extra
        .lines()
        .map(|l| match l.strip_prefix("@route ") {
            Some(name) => format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: web}}]\n"
            ),
            None => format!("{l}\n"),
        })
        .collect();
    let text = format!("{SERVICES}\n---\n{extra}");
    let l = load_str("in.yaml", &text);
    let mut problems: Vec<String> = l.problems.iter().map(|p| p.to_string()).collect();
    let ir = build(&Snapshot::from_objects(l.objects));
    problems.extend(ir.problems().iter().map(|p| p.to_string()));
    (ir, problems)
}

fn web() -> SvcKey {
    SvcKey::new("default", "web")
}

#[test]
fn one_rule_for_every_request_is_a_split() {
    let (ir, problems) = ir_of(
        r#"
@route canary
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web-v1, port: 8080, weight: 90}, {name: web-v2, port: 8080, weight: 10}]
"#,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let s = &ir.splits[&web()];
    assert!(s.rules.is_empty() && s.matches.is_empty());
    assert_eq!(s.weights(), vec![90, 10]);
    assert_eq!(
        s.parent,
        ObjectKey::new(Kind::HTTPRoute, "default", "canary")
    );
    assert_eq!(s.ports.len(), 1);
    assert_eq!(s.ports[0].backends.len(), 2);
}

#[test]
fn route_table_in_gateway_precedence_with_filters() {
    let (ir, problems) = ir_of(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 8080}]
  rules:
  - name: short-prefix
    matches: [{path: {type: PathPrefix, value: /v}}]
    backendRefs: [{name: web-v1, port: 8080}]
  - name: long-prefix
    matches: [{path: {type: PathPrefix, value: /v2/}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Version, value: v2}], remove: [x-debug]}
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: web-v2, port: 8080}]
    timeouts: {request: 5s, backendRequest: 1s}
    retry: {attempts: 2, codes: [503], backoff: 100ms}
  - name: exact
    matches: [{path: {type: Exact, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 301}}]
  - name: canary
    matches: [{path: {type: PathPrefix, value: /v}, headers: [{name: x-canary, value: "yes"}], queryParams: [{name: debug, value: "1"}]}]
    backendRefs: [{name: web-v1, port: 8080, weight: 80}, {name: web-v2, port: 8080, weight: 20}]
"#,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let s = &ir.splits[&web()];
    let order: Vec<&str> = s.rules.iter().map(|r| r.name.as_deref().unwrap()).collect();
    // Exact first, then the longer prefix, then `/v` with a header and query (more specific)
    // before plain `/v`.
    assert_eq!(order, ["exact", "long-prefix", "canary", "short-prefix"]);
    let long = &s.rules[1];
    assert_eq!(long.timeout_ms, Some(5000));
    assert_eq!(long.backend_timeout_ms, Some(1000));
    let retry = long.retry.as_ref().unwrap();
    assert_eq!(
        (retry.attempts, retry.codes.clone(), retry.backoff_ms),
        (2, vec![503], Some(100))
    );
    assert!(
        matches!(&long.filters[0], Filter::RequestHeaders(e) if e.set == [("x-version".to_string(), "v2".to_string())] && e.remove == ["x-debug"])
    );
    assert!(
        matches!(&long.filters[1], Filter::Rewrite { path: Some(PathRewrite::Prefix(p)), .. } if p == "/")
    );
    assert_eq!(
        long.matches[0]
            .path
            .as_ref()
            .unwrap()
            .segment_prefix()
            .as_deref(),
        Some("/v2")
    );
    let exact = &s.rules[0];
    let r = exact.redirect().unwrap();
    assert_eq!(r.status_code, 301);
    assert!(exact.backends.is_empty());
    let canary = &s.rules[2];
    assert_eq!(canary.matches[0].query[0].name, "debug");
    assert_eq!(canary.matches[0].headers[0].regex, "yes");
    let names: Vec<&str> = canary
        .backends
        .iter()
        .map(|(i, _)| s.backends[*i].service.name.as_str())
        .collect();
    assert_eq!(names, ["web-v1", "web-v2"]);
    assert_eq!(
        canary.backends.iter().map(|b| b.1).collect::<Vec<_>>(),
        [80, 20]
    );
}

#[test]
fn invalid_fields_are_named_and_the_route_is_not_applied() {
    let (ir, problems) = ir_of(
        r#"
@route bad
  rules:
  - matches: [{path: {type: PathPrefix, value: "v2"}, method: get}]
    filters: [{type: RequestMirror}]
    backendRefs: [{name: web-v1, port: 8080, weight: -1}]
    timeouts: {request: 5x}
"#,
    );
    assert!(!ir.splits.contains_key(&web()));
    let all = problems.join("\n");
    for want in [
        "in.yaml:26: HTTPRoute default/bad: spec.rules[0].matches[0].path.value: `v2` must start with `/`",
        "spec.rules[0].matches[0].method: `get` is not an HTTP method",
        "spec.rules[0].filters[0].type: `RequestMirror` is not supported",
        "spec.rules[0].backendRefs[0].weight: -1: weights are 0–1000000",
        "spec.rules[0].timeouts.request: `5x` is not a Gateway API duration",
    ] {
        assert!(all.contains(want), "missing {want:?} in\n{all}");
    }
    let st = &ir.status[&ObjectKey::new(Kind::HTTPRoute, "default", "bad")];
    assert!(!st.accepted);
}

#[test]
fn whole_value_anchors_are_unwrapped_only_when_they_wrap_everything() {
    let (ir, problems) = ir_of(
        r#"
@route h
  rules:
  - matches:
    - headers:
      - {type: RegularExpression, name: a, value: "^(?:.*Android.*)$"}
      - {type: RegularExpression, name: b, value: "^(?:x)|(?:y)$"}
    backendRefs: [{name: web-v1, port: 8080}]
"#,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let h = &ir.splits[&web()].rules[0].matches[0].headers;
    assert_eq!(h[0].regex, ".*Android.*");
    assert_eq!(h[1].regex, "^(?:x)|(?:y)$");
}

#[test]
fn gateway_only_routes_are_not_mesh_routes() {
    let (ir, problems) = ir_of(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: north-south, namespace: default}
spec:
  parentRefs: [{name: my-gateway}]
  rules: [{backendRefs: [{name: web-v1, port: 8080}]}]
"#,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert!(ir.splits.is_empty());
    assert!(
        !ir.status
            .contains_key(&ObjectKey::new(Kind::HTTPRoute, "default", "north-south"))
    );
}

#[test]
fn meshbridge_output_routes_are_not_input() {
    let (ir, problems) = ir_of(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web-8080
  namespace: default
  labels: {app.kubernetes.io/managed-by: meshbridge, meshbridge.io/owner: meshbridge-system}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v1, port: 8080}]}]
"#,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert!(ir.splits.is_empty() && ir.status.is_empty());
}

#[test]
fn consumer_routes_and_reference_grants() {
    let route = r#"
apiVersion: v1
kind: Namespace
metadata: {name: client}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pin-v2, namespace: client}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: default}]
  rules: [{backendRefs: [{name: web-v2, namespace: default, port: 8080}]}]
"#;
    let (ir, problems) = ir_of(route);
    assert!(ir.consumer_splits.is_empty());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("spec.rules[0].backendRefs[0].namespace: no ReferenceGrant in namespace default allows HTTPRoutes of namespace client")),
        "{problems:?}"
    );
    let grant = r#"
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-client, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: client}]
  to: [{group: "", kind: Service}]
"#;
    let (ir, problems) = ir_of(&format!("{route}{grant}"));
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        ir.splits.is_empty(),
        "a consumer route is not the producer's split"
    );
    let s = &ir.consumer_splits["client"][&web()];
    assert_eq!(s.backends[0].service, SvcKey::new("default", "web-v2"));
    assert_eq!(
        ir.split_for("client", &web()).map(|s| &s.parent),
        Some(&s.parent)
    );
    assert!(ir.split_for("default", &web()).is_none());
}

#[test]
fn smi_and_gamma_on_one_service_oldest_wins_and_both_say_so() {
    let (ir, problems) = ir_of(
        r#"
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: smi, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: gamma, namespace: default, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v2, port: 8080}]}]
"#,
    );
    assert_eq!(ir.splits[&web()].parent.kind, Kind::TrafficSplit);
    let gamma = &ir.status[&ObjectKey::new(Kind::HTTPRoute, "default", "gamma")];
    assert!(gamma.conflicted);
    let all = problems.join("\n");
    assert!(all.contains("HTTPRoute default/gamma: spec.parentRefs[0]: TrafficSplit default/smi already routes default/web"), "{all}");
    assert!(all.contains("TrafficSplit default/smi: spec.service: HTTPRoute default/gamma also routes default/web and is not applied"), "{all}");
}

#[test]
fn traffic_target_may_name_an_http_route_rule() {
    let (ir, problems) = ir_of(
        r#"
@route api
  rules:
  - name: read
    matches: [{path: {type: PathPrefix, value: /api}, method: GET}]
    backendRefs: [{name: web, port: 8080}]
  - name: write
    matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
    backendRefs: [{name: web, port: 8080}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: readers, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: web}
  sources: [{kind: ServiceAccount, name: client, namespace: default}]
  rules: [{kind: HTTPRoute, name: api, matches: [read]}]
"#,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let policy = ir.access.values().next().unwrap();
    let Traffic::Http(routes) = &policy.rules[0].traffic else {
        panic!("not http")
    };
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].methods, ["GET"]);
    assert_eq!(
        routes[0].path.as_ref().unwrap().segment_prefix().as_deref(),
        Some("/api")
    );
    // An unknown rule name is an unresolved reference.
    let (_, problems) = ir_of(
        r#"
@route api
  rules: [{name: read, backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: readers, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: web}
  sources: [{kind: ServiceAccount, name: client}]
  rules: [{kind: HTTPRoute, name: api, matches: [delete]}]
"#,
    );
    assert!(
        problems.iter().any(|p| p.contains(
            "spec.rules[0].matches[0]: HTTPRoute default/api has no rule named `delete`"
        )),
        "{problems:?}"
    );
}

#[test]
fn tcp_and_grpc_routes() {
    let (ir, problems) = ir_of(
        r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec: {ports: [{name: tcp-db, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: db-v2, namespace: default}
spec: {ports: [{name: tcp-db, port: 5432}]}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: db, port: 5432}]
  rules: [{backendRefs: [{name: db, port: 5432, weight: 3}, {name: db-v2, port: 5432, weight: 1}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches: [{method: {service: echo.Echo, method: Say}}]
    backendRefs: [{name: web-v2, port: 8080}]
"#,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let db = &ir.splits[&SvcKey::new("default", "db")];
    assert_eq!(db.parent.kind, Kind::GatewayTCPRoute);
    assert_eq!(db.weights(), vec![3, 1]);
    assert!(db.backends[0].is_root);
    assert_eq!(db.ports.len(), 1, "a TCPRoute applies to opaque TCP ports");
    let g = &ir.splits[&web()];
    assert_eq!(g.rules.len(), 1);
    let re = regex::Regex::new(&g.rules[0].matches[0].path.as_ref().unwrap().0).unwrap();
    assert!(re.is_match("/echo.Echo/Say"));
    assert!(!re.is_match("/echoxEcho/Say"));
    assert!(!re.is_match("/echo.Echo/SayMore"));
}
