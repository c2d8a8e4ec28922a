//! GAMMA as an input language, black-box: an SMI TrafficSplit and its GAMMA equivalent give
//! identical outputs on every backend; `meshbridge convert --to gamma` gives routes that
//! build the same IR as the SMI objects they replace; `meshbridge swap plan` lists what a
//! mesh cannot keep and exits 1 then.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MESHES: [&str; 5] = ["istio", "linkerd", "appmesh", "envoy", "gateway-api"];

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/cases")
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meshbridge"));
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        let mut si = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            si.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The output without the `meshbridge.io/parents` lines (they name the input objects, which
/// differ by construction).
fn without_parents(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim_start().starts_with("meshbridge.io/parents:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn smi_split_and_its_gamma_equivalent_give_identical_outputs_on_every_mesh() {
    for case in ["canary-90-10", "header-matches"] {
        let smi = cases().join("split").join(case).join("input.yaml");
        let gamma = cases().join("gamma").join(case).join("input.yaml");
        for mesh in MESHES {
            let a = run(
                &["translate", "--mesh", mesh, "-f", smi.to_str().unwrap()],
                None,
            );
            let b = run(
                &["translate", "--mesh", mesh, "-f", gamma.to_str().unwrap()],
                None,
            );
            assert_eq!(
                a.status.code(),
                Some(0),
                "{case} {mesh}: {}",
                text(&a.stderr)
            );
            assert_eq!(
                b.status.code(),
                Some(0),
                "{case} {mesh}: {}",
                text(&b.stderr)
            );
            let (a, b) = (text(&a.stdout), text(&b.stdout));
            assert!(!a.trim().is_empty(), "{case} {mesh}: no output");
            assert_eq!(
                without_parents(&a),
                without_parents(&b),
                "{case} on {mesh}: SMI and GAMMA outputs differ"
            );
            assert!(
                b.contains("HTTPRoute/default/"),
                "{case} {mesh}: parents name the route"
            );
        }
    }
}

/// The IR splits of some YAML, as comparable data: root → (weights per backend, matches as
/// (path regex, methods, headers)).
fn split_semantics(yaml: &str) -> Vec<String> {
    let l = meshbridge_core::load::load_str("in.yaml", yaml);
    assert!(l.problems.iter().all(|p| !p.is_error()), "{:?}", l.problems);
    let ir = meshbridge_core::build::build(&meshbridge_core::snapshot::Snapshot::from_objects(
        l.objects,
    ));
    ir.splits
        .values()
        .map(|s| {
            let backends: Vec<String> = s
                .backends
                .iter()
                .map(|b| format!("{}={}", b.service, b.weight))
                .collect();
            let matches: Vec<String> = s
                .matches
                .iter()
                .map(|m| {
                    let p = m.path.as_ref().map(|p| p.0.clone()).unwrap_or_default();
                    let h: Vec<String> = m
                        .headers
                        .iter()
                        .map(|h| format!("{}~{}", h.name, h.regex))
                        .collect();
                    format!("{p} {:?} {h:?}", m.methods)
                })
                .collect();
            format!(
                "{} {backends:?} {matches:?} rules={}",
                s.root,
                s.rules.len()
            )
        })
        .collect()
}

#[test]
fn convert_to_gamma_round_trips_to_the_same_split() {
    for case in ["canary-90-10", "header-matches", "remainders-1-2-3"] {
        let input = cases().join("split").join(case).join("input.yaml");
        let smi = std::fs::read_to_string(&input).unwrap();
        let o = run(
            &["convert", "--to", "gamma", "-f", input.to_str().unwrap()],
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{case}: {}", text(&o.stderr));
        let routes = text(&o.stdout);
        assert!(routes.contains("kind: HTTPRoute"), "{case}: {routes}");
        // Converted routes are the user's objects now: no ownership labels.
        assert!(!routes.contains("app.kubernetes.io/managed-by"), "{routes}");
        assert!(routes.contains("meshbridge.io/converted-from: TrafficSplit/default/"));
        assert!(text(&o.stderr).contains("# convert report"));
        // The Kubernetes objects of the case plus the routes, without the SMI objects.
        let k8s: Vec<&str> = smi
            .split("\n---\n")
            .filter(|d| !d.contains("smi-spec.io"))
            .collect();
        let gamma = format!("{}\n---\n{routes}", k8s.join("\n---\n"));
        // HTTPRouteGroup match names become rule names: compare meaning, not names.
        assert_eq!(
            split_semantics(&smi),
            split_semantics(&gamma),
            "{case}: the converted routes mean something else"
        );
        // And the routes are valid input with no problems.
        let t = run(&["translate", "--mesh", "envoy", "-f", "-"], Some(&gamma));
        assert_eq!(t.status.code(), Some(0), "{case}: {}", text(&t.stderr));
    }
}

#[test]
fn convert_reports_string_prefix_versus_segment_prefix() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api, namespace: default}
spec:
  matches: [{name: api, pathRegex: /api}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: default}
spec:
  service: web
  backends: [{service: web-v2, weight: 1}]
  matches: [{kind: HTTPRouteGroup, name: api}]
"#;
    let o = run(&["convert", "--to", "gamma", "-f", "-"], Some(yaml));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("pathRegex `/api` is a string prefix in SMI (it also matches `/apix`)"),
        "{err}"
    );
    let bad = run(&["convert", "--to", "smi", "-f", "-"], Some(yaml));
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn swap_plan_lists_what_the_new_mesh_cannot_keep() {
    let input = cases().join("split/header-matches/input.yaml");
    let o = run(
        &[
            "swap",
            "plan",
            "--namespace",
            "default",
            "--to",
            "istio",
            "-f",
            input.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("every object keeps its meaning on istio"));
    // Gateway API has no authorization resource: a TrafficTarget loses its meaning there.
    let tt = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: allow, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web}
  sources: [{kind: ServiceAccount, name: web}]
  rules: [{kind: TCPRoute, name: all}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: shop}
spec: {matches: {ports: []}}
"#;
    let o = run(
        &[
            "swap",
            "plan",
            "--namespace",
            "shop",
            "--to",
            "gateway-api",
            "-f",
            "-",
        ],
        Some(tt),
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("lost: TrafficTarget/shop/allow"), "{out}");
    // Another namespace's objects are not in the plan.
    let o = run(
        &[
            "swap",
            "plan",
            "--namespace",
            "other",
            "--to",
            "gateway-api",
            "-f",
            "-",
        ],
        Some(tt),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
}

/// A consumer route's partition reads the Services and ReferenceGrants of the namespaces it
/// names, and re-renders when they change: granting (then revoking) the reference turns the
/// consumer route on (then off) without touching the route.
#[test]
fn a_consumer_route_follows_the_reference_grant_of_the_other_namespace() {
    use meshbridge_core::api::meshbridge::MeshType;
    use meshbridge_core::engine::{Backends, Change, Engine, EngineConfig, changes_of};
    use meshbridge_core::model::{Kind, ObjectKey};
    let input = std::fs::read_to_string(cases().join("gamma/route-table/input.yaml")).unwrap();
    let (grant, rest): (Vec<&str>, Vec<&str>) = input
        .split("\n---\n")
        .partition(|d| d.contains("kind: ReferenceGrant"));
    let mut engine = Engine::new(
        EngineConfig {
            base: meshbridge_core::Context::default(),
            trust_domain: None,
            backends: Backends::Every(MeshType::GatewayApi),
        },
        vec![Box::new(meshbridge_gateway_api::GatewayApiAdapter)],
    );
    let apply = |engine: &mut Engine, text: &str| {
        let (changes, _) = changes_of(meshbridge_core::load::load_str("in.yaml", text));
        for c in changes {
            engine.apply(c);
        }
        engine.recompute();
    };
    let consumer_outputs = |engine: &Engine| {
        engine
            .desired()
            .values()
            .filter(|d| d.object.namespace.as_deref() == Some("client"))
            .count()
    };
    apply(&mut engine, &rest.join("\n---\n"));
    let route = ObjectKey::new(Kind::HTTPRoute, "client", "web-pinned");
    assert!(!engine.state(&route).unwrap().resolved, "no grant yet");
    assert_eq!(consumer_outputs(&engine), 0);
    apply(&mut engine, grant[0]);
    assert!(engine.state(&route).unwrap().resolved, "granted");
    assert!(consumer_outputs(&engine) > 0);
    engine.apply(Change::Delete(ObjectKey::new(
        Kind::ReferenceGrant,
        "default",
        "from-client",
    )));
    engine.recompute();
    assert!(!engine.state(&route).unwrap().resolved, "revoked");
    assert_eq!(consumer_outputs(&engine), 0);
}
