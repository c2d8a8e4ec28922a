//! The controller-CRD output: every object validates against the official App Mesh
//! controller CRD schemas (`shared/schemas/appmesh`, OpenAPI v3 converted to JSON Schema,
//! unknown fields rejected), honours the controller's webhook rules, and maps SMI as
//! documented.

use meshbridge_appmesh::AppMeshAdapter;
use meshbridge_core::pipeline::{Output, translate};
use meshbridge_core::{Adapter, Context, Feature, Level};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn schemas_dir() -> PathBuf {
    meshbridge_conformance::shared_dir().join("schemas/appmesh")
}

/// The official App Mesh controller CRDs, through the conformance suite's structural-schema
/// validator (nullable, int-or-string, preserve-unknown-fields; unknown fields rejected).
struct Schemas(meshbridge_conformance::schema::Registry);

impl Schemas {
    fn load() -> Schemas {
        let r = meshbridge_conformance::schema::Registry::load(&[schemas_dir().as_path()])
            .unwrap_or_else(|e| panic!("{e}"));
        for kind in ["VirtualNode", "VirtualRouter", "VirtualService"] {
            assert!(
                r.has("appmesh.k8s.aws/v1beta2", kind),
                "no schema for {kind}"
            );
        }
        Schemas(r)
    }

    fn validate(&self, obj: &Value) -> Vec<String> {
        assert_eq!(obj["apiVersion"], "appmesh.k8s.aws/v1beta2");
        self.0.validate(obj).err().unwrap_or_default()
    }
}

fn run(yaml: &str) -> Output {
    let loaded = meshbridge_core::load::load_str("input.yaml", yaml);
    translate(
        vec![loaded],
        Box::new(AppMeshAdapter),
        &Context::default(),
        None,
    )
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

/// The webhook rules of the App Mesh controller (webhooks/appmesh/*) that apply to what
/// meshbridge writes, plus App Mesh API limits.
fn check_webhook_rules(obj: &Value) {
    let kind = obj["kind"].as_str().unwrap();
    let name = obj["metadata"]["name"].as_str().unwrap();
    let ns = obj["metadata"]["namespace"].as_str().unwrap();
    let spec = &obj["spec"];
    assert!(
        spec.get("meshRef").is_none(),
        "{kind} {name}: meshRef must not be set on create"
    );
    let aws = spec["awsName"].as_str().unwrap();
    match kind {
        "VirtualNode" | "VirtualRouter" => assert_eq!(aws, format!("{name}_{ns}")),
        "VirtualService" => assert_eq!(aws, format!("{name}.{ns}.svc.cluster.local")),
        _ => panic!("unexpected kind {kind}"),
    }
    if kind == "VirtualNode" && spec["listeners"].as_array().is_some_and(|l| !l.is_empty()) {
        assert!(
            spec["serviceDiscovery"]["dns"]["hostname"].is_string(),
            "{name}: listeners need serviceDiscovery"
        );
    }
    if kind == "VirtualRouter" {
        let routes = spec["routes"].as_array().unwrap();
        let names: BTreeSet<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names.len(),
            routes.len(),
            "{name}: route names must be unique"
        );
        let multi = spec["listeners"].as_array().unwrap().len() > 1;
        for r in routes {
            let p = r["priority"].as_u64().unwrap();
            assert!(p <= 1000);
            let kinds: Vec<&str> = ["httpRoute", "http2Route", "grpcRoute", "tcpRoute"]
                .into_iter()
                .filter(|k| r.get(*k).is_some())
                .collect();
            assert_eq!(kinds.len(), 1, "{name}: one route type");
            let body = &r[kinds[0]];
            if kinds[0] != "tcpRoute" {
                let m = &body["match"];
                let has_prefix = m.get("prefix").is_some();
                let has_path = m.get("path").is_some();
                assert!(
                    has_prefix ^ has_path,
                    "{name}/{}: exactly one of prefix/path",
                    r["name"]
                );
                if has_prefix {
                    assert!(m["prefix"].as_str().unwrap().starts_with('/'));
                }
                if has_path {
                    let pm = m["path"].as_object().unwrap();
                    assert_eq!(pm.len(), 1, "path: exactly one of exact/regex");
                }
                if let Some(hs) = m["headers"].as_array() {
                    assert!(!hs.is_empty() && hs.len() <= 10);
                    for h in hs {
                        assert!(h["name"].as_str().unwrap().len() <= 50);
                    }
                }
                if multi {
                    assert!(m["port"].is_u64(), "several listeners: routes match a port");
                }
            }
            let ts = body["action"]["weightedTargets"].as_array().unwrap();
            assert!(!ts.is_empty() && ts.len() <= 10, "1..=10 targets");
            let sum: u64 = ts.iter().map(|t| t["weight"].as_u64().unwrap()).sum();
            assert_eq!(sum, 100, "{name}/{}: weights sum to 100", r["name"]);
        }
    }
}

fn objects(out: &Output) -> Vec<&Value> {
    out.translation.objects.iter().map(|o| &o.body).collect()
}

fn find<'a>(out: &'a Output, kind: &str, name: &str) -> &'a Value {
    objects(out)
        .into_iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not in output:\n{}", out.yaml))
}

fn assert_valid(out: &Output) {
    let schemas = Schemas::load();
    assert!(!out.translation.objects.is_empty());
    for o in objects(out) {
        let errs = schemas.validate(o);
        assert!(
            errs.is_empty(),
            "{} {}: {errs:?}",
            o["kind"],
            o["metadata"]["name"]
        );
        check_webhook_rules(o);
    }
    // Every finding corresponds to a capability-matrix row that is not Full.
    let caps = AppMeshAdapter.capabilities(&Context::default());
    for f in &out.translation.findings {
        assert_ne!(caps.level(f.feature), Level::Full, "{f:?}");
    }
}

#[test]
fn schema_rejects_unknown_fields_and_bad_values() {
    let schemas = Schemas::load();
    let out = run(&fixture("shop.yaml"));
    let vr = find(&out, "VirtualRouter", "api").clone();
    assert!(schemas.validate(&vr).is_empty());
    let mut bad = vr.clone();
    bad["spec"]["routes"][0]["httpRoute"]["match"]["typo"] = json!(1);
    assert!(!schemas.validate(&bad).is_empty(), "unknown field accepted");
    let mut bad = vr.clone();
    bad["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"][0]["weight"] = json!(101);
    assert!(!schemas.validate(&bad).is_empty(), "weight 101 accepted");
    let mut bad = vr;
    bad["spec"]["routes"][0]["httpRoute"]["match"]["method"] = json!("PURGE");
    assert!(!schemas.validate(&bad).is_empty(), "bad method accepted");
}

#[test]
fn shop_translates_validly() {
    let out = run(&fixture("shop.yaml"));
    assert!(!out.failed, "{:?}", out.diagnostics);
    assert_valid(&out);

    // Canary: 1:2 → 33/67, one route.
    let web = find(&out, "VirtualRouter", "web");
    assert_eq!(
        web["spec"]["listeners"],
        json!([{"portMapping": {"port": 8080, "protocol": "http"}}])
    );
    let routes = web["spec"]["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0]["httpRoute"],
        json!({"match": {"prefix": "/"}, "action": {"weightedTargets": [
            {"virtualNodeRef": {"name": "web-v1"}, "weight": 33},
            {"virtualNodeRef": {"name": "web-v2"}, "weight": 67}]}})
    );
    let vs = find(&out, "VirtualService", "web");
    assert_eq!(
        vs["spec"]["provider"],
        json!({"virtualRouter": {"virtualRouterRef": {"name": "web"}}})
    );
    let v1 = find(&out, "VirtualNode", "web-v1");
    assert_eq!(
        v1["spec"]["serviceDiscovery"],
        json!({"dns": {"hostname": "web-v1.shop.svc.cluster.local"}})
    );
    assert_eq!(
        v1["spec"]["podSelector"],
        json!({"matchLabels": {"app": "web", "version": "v1"}})
    );
    assert_eq!(
        v1["spec"]["listeners"],
        json!([{"portMapping": {"port": 8080, "protocol": "http"}}])
    );
    assert_eq!(
        v1["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "meshbridge"
    );
    // The root's node is a routing target only (its Service selects every version's pods).
    assert!(
        find(&out, "VirtualNode", "api")["spec"]
            .get("podSelector")
            .is_none()
    );

    // A/B: one route per (match, method), explicit priorities in SMI order, catch-all last.
    let api = find(&out, "VirtualRouter", "api");
    let got: Vec<(String, u64, Value)> = api["spec"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["priority"].as_u64().unwrap(),
                r["httpRoute"]["match"].clone(),
            )
        })
        .collect();
    let to_v2 = json!([{"virtualNodeRef": {"name": "api-v2"}, "weight": 100}]);
    assert_eq!(
        got,
        vec![
            ("p9080-default".into(), 1000, json!({"prefix": "/"})),
            (
                "p9080-m0".into(),
                1,
                json!({"prefix": "/", "headers": [
                    {"name": "user-agent", "match": {"regex": ".*Firefox.*"}},
                    {"name": "x-canary", "match": {"exact": "1"}}]})
            ),
            (
                "p9080-m1-post".into(),
                2,
                json!({"path": {"regex": "(?:/v[0-9]+/orders).*"}, "method": "POST"})
            ),
            (
                "p9080-m1-put".into(),
                3,
                json!({"path": {"regex": "(?:/v[0-9]+/orders).*"}, "method": "PUT"})
            ),
            ("p9080-m2".into(), 4, json!({"path": {"exact": "/ping"}})),
        ]
    );
    for r in api["spec"]["routes"].as_array().unwrap() {
        let ts = &r["httpRoute"]["action"]["weightedTargets"];
        if r["name"] == "p9080-default" {
            assert_eq!(
                ts,
                &json!([{"virtualNodeRef": {"name": "api"}, "weight": 100}])
            );
        } else {
            assert_eq!(ts, &to_v2);
        }
    }

    // TCP split with the root as its own backend: 3:1 → 75/25; the UDP port is reported.
    let db = find(&out, "VirtualRouter", "db");
    assert_eq!(
        db["spec"]["listeners"],
        json!([{"portMapping": {"port": 5432, "protocol": "tcp"}}])
    );
    assert_eq!(
        db["spec"]["routes"],
        json!([{"name": "p5432-tcp", "priority": 1000, "tcpRoute": {"action": {"weightedTargets": [
            {"virtualNodeRef": {"name": "db"}, "weight": 75},
            {"virtualNodeRef": {"name": "db-new"}, "weight": 25}]}}}])
    );
    let findings: Vec<(Feature, Level, String)> = out
        .translation
        .findings
        .iter()
        .map(|f| (f.feature, f.level, f.object.to_string()))
        .collect();
    assert!(
        findings.contains(&(
            Feature::UdpRoutes,
            Level::None,
            "TrafficSplit/shop/db-move".into()
        )),
        "{findings:?}"
    );
    assert!(
        findings.contains(&(
            Feature::HttpAccess,
            Level::None,
            "TrafficTarget/shop/web-to-api".into()
        )),
        "{findings:?}"
    );
    assert!(
        out.diagnostics
            .iter()
            .any(|d| d.contains("no request-level authorization")),
        "{:?}",
        out.diagnostics
    );
    // Nothing for the TrafficTarget is emitted (never faked).
    assert!(
        out.translation
            .objects
            .iter()
            .all(|o| !o.parents.iter().any(|p| p.name == "web-to-api"))
    );

    // Deterministic.
    assert_eq!(run(&fixture("shop.yaml")).yaml, out.yaml);
}

fn services(ns: &str, names: &[&str], port: u16, target: u16) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {n}, namespace: {ns}}}\nspec:\n  selector: {{app: {n}}}\n  ports: [{{name: http, port: {port}, targetPort: {target}}}]\n---\n"
            )
        })
        .collect()
}

#[test]
fn limits_are_reported() {
    // 12 backends (max 10 targets), one of weight 1 in 10,000 (rounds to 0%), a long header
    // name, an unknown method, a too-long regex, port != targetPort.
    let names: Vec<String> = (0..12).map(|i| format!("b{i}")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push("root");
    let mut y = services("lim", &all, 80, 8080);
    let backends: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "  - {{service: {n}, weight: {}}}\n",
                if i == 11 { 1 } else { 1000 }
            )
        })
        .collect();
    y.push_str(&format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: many, namespace: lim}}\nspec:\n  service: root\n  matches:\n  - {{kind: HTTPRouteGroup, name: g}}\n  backends:\n{backends}---\n"
    ));
    let long_header = "x".repeat(51);
    let long_regex = format!("/{}[0-9]", "a".repeat(260));
    y.push_str(&format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: g, namespace: lim}}\nspec:\n  matches:\n  - {{name: long-header, headers: [{{{long_header}: a}}]}}\n  - {{name: methods, methods: [GET]}}\n  - {{name: long-path, pathRegex: \"{long_regex}\"}}\n"
    ));
    let out = run(&y);
    assert!(!out.failed, "{:?}", out.diagnostics);
    assert_valid(&out);
    let vr = find(&out, "VirtualRouter", "root");
    let routes = vr["spec"]["routes"].as_array().unwrap();
    let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
    // Only match 1 (GET) is expressible; the others go to the root (catch-all).
    assert_eq!(names, vec!["p80-default", "p80-m1-get"]);
    let ts = routes[1]["httpRoute"]["action"]["weightedTargets"]
        .as_array()
        .unwrap();
    assert_eq!(ts.len(), 10);
    assert!(ts.iter().all(|t| t["weight"] == 10));
    let reasons: Vec<(Feature, String)> = out
        .translation
        .findings
        .iter()
        .map(|f| (f.feature, f.reason.clone()))
        .collect();
    let has = |feat: Feature, needle: &str| {
        assert!(
            reasons
                .iter()
                .any(|(f, r)| *f == feat && r.contains(needle)),
            "{feat:?} {needle:?} not in {reasons:#?}"
        )
    };
    has(Feature::TrafficSplit, "at most 10 weighted targets");
    has(Feature::HeaderRouting, "longer than App Mesh's 50");
    has(Feature::PathRouting, "at most 255");
    has(Feature::TrafficSplit, "targetPort 8080");
}

#[test]
fn rounding_to_zero_is_reported_and_never_gets_traffic() {
    let mut y = services("r", &["root", "a", "b"], 80, 80);
    y.push_str("apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: r}\nspec:\n  service: root\n  backends:\n  - {service: a, weight: 999}\n  - {service: b, weight: 1}\n");
    let out = run(&y);
    assert_valid(&out);
    let vr = find(&out, "VirtualRouter", "root");
    assert_eq!(
        vr["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"],
        json!([{"virtualNodeRef": {"name": "a"}, "weight": 100}])
    );
    assert!(
        out.translation
            .findings
            .iter()
            .any(|f| f.feature == Feature::TrafficSplit && f.reason.contains("rounds to 0%"))
    );
}

#[test]
fn multi_port_root_uses_port_matches() {
    let y = "apiVersion: v1\nkind: Service\nmetadata: {name: m, namespace: p}\nspec:\n  selector: {app: m}\n  ports:\n  - {name: http, port: 80, targetPort: 80}\n  - {name: grpc, port: 90, targetPort: 90}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: m2, namespace: p}\nspec:\n  selector: {app: m2}\n  ports:\n  - {name: http, port: 80, targetPort: 80}\n  - {name: grpc, port: 90, targetPort: 90}\n---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: p}\nspec:\n  service: m\n  backends:\n  - {service: m, weight: 50}\n  - {service: m2, weight: 50}\n";
    let out = run(y);
    assert_valid(&out);
    let vr = find(&out, "VirtualRouter", "m");
    assert_eq!(
        vr["spec"]["listeners"],
        json!([{"portMapping": {"port": 80, "protocol": "http"}}, {"portMapping": {"port": 90, "protocol": "http2"}}])
    );
    assert_eq!(vr["spec"]["routes"][1]["name"], "p90-split");
    assert_eq!(
        vr["spec"]["routes"][1]["http2Route"],
        json!({"match": {"prefix": "/", "port": 90}, "action": {"weightedTargets": [
            {"virtualNodeRef": {"name": "m"}, "weight": 50, "port": 90},
            {"virtualNodeRef": {"name": "m2"}, "weight": 50, "port": 90}]}})
    );
    let vn = find(&out, "VirtualNode", "m2");
    assert_eq!(vn["spec"]["listeners"].as_array().unwrap().len(), 2);
}

#[test]
fn smi_spec_examples_translate_validly() {
    // Each SMI spec example directory (all its files together) validates.
    let base = meshbridge_conformance::shared_dir().join("smi/examples");
    let mut dirs = Vec::new();
    let mut stack = vec![base];
    while let Some(d) = stack.pop() {
        let mut files = Vec::new();
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
        files.sort();
        if !files.is_empty() {
            dirs.push((d, files));
        }
    }
    dirs.sort();
    let schemas = Schemas::load();
    let mut n = 0;
    for (d, files) in dirs {
        let load = || -> Vec<_> {
            files
                .iter()
                .map(|f| {
                    let text = std::fs::read_to_string(f).unwrap();
                    meshbridge_core::load::load_str(&f.display().to_string(), &text)
                })
                .collect()
        };
        let out = translate(load(), Box::new(AppMeshAdapter), &Context::default(), None);
        let ir = meshbridge_core::build::build(&meshbridge_core::pipeline::snapshot_of(load()).0);
        for o in objects(&out) {
            let errs = schemas.validate(o);
            assert!(errs.is_empty(), "{}: {errs:?}", d.display());
            check_webhook_rules(o);
        }
        // Every split in the IR is either programmed or reported (the spec examples carry
        // no Services, so most roots have no known port: reported, never guessed).
        for split in ir.splits.values() {
            let programmed = out
                .translation
                .objects
                .iter()
                .any(|o| o.kind == "VirtualRouter" && o.parents.contains(&split.parent));
            let reported = out
                .translation
                .findings
                .iter()
                .any(|f| f.object == split.parent && f.feature == Feature::TrafficSplit);
            assert!(
                programmed || reported,
                "{}: {} neither programmed nor reported",
                d.display(),
                split.parent
            );
            n += 1;
        }
    }
    assert!(n > 0, "no SMI example split reached the IR");
}
