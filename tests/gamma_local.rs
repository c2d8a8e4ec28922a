//! Gateway API's GAMMA mesh conformance scenarios that apply to a data plane, run on the
//! built-in mesh with real Envoy through `meshbridge local` (one mesh for every scenario;
//! each scenario writes its routes and waits until every sidecar has acknowledged them).
//! The outcome is published as a Gateway API `ConformanceReport`
//! (conformance/gamma-report.yaml, compared without its `date`; `UPDATE_GOLDEN=1` rewrites
//! it). The scenarios follow the upstream mesh tests (gateway-api conformance/tests/mesh-*):
//! the echo Service with v1/v2, a client in its namespace and one in another.

mod local_common;

use local_common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const APPS: &str = include_str!("fixtures/gamma/apps.yaml");
const ECHO: &str = "echo.demo";

/// One request through `outbound`; the status, the response headers (lower-case names) and
/// the echo server's JSON answer (Null when the answer is not the echo server's).
fn request(
    outbound: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Value) {
    let mut s = TcpStream::connect(outbound).expect("connect to the sidecar");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {ECHO}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let hs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        status,
        hs,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn version(v: &Value) -> &str {
    match v["pod"].as_str() {
        Some(p) if p.starts_with("echo-v1") => "v1",
        Some(p) if p.starts_with("echo-v2") => "v2",
        _ => "?",
    }
}

/// A request through `outbound` must be answered 200 by echo `want` (`v1` or `v2`).
fn served_by(
    outbound: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    want: &str,
) -> Result<(), String> {
    let (st, _, v) = request(outbound, method, path, headers);
    expect(
        st == 200 && version(&v) == want,
        format!(
            "{method} {path} {headers:?} from {outbound}: {st} {} (want {want})",
            version(&v)
        ),
    )
}

fn route(name: &str, ns: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: echo, namespace: demo, port: 80}}]\n  rules:\n{rules}"
    )
}

/// A scenario: its upstream name, the Gateway API feature it proves (None: core), the
/// routes it writes and its check.
struct Scenario {
    name: &'static str,
    feature: Option<&'static str>,
    routes: String,
    check: fn(&Mesh) -> Result<(), String>,
}

struct Mesh {
    client: String,
    consumer: String,
}

fn expect(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.into()) }
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "MeshHTTPRouteSimpleSameNamespace",
            feature: None,
            routes: route(
                "echo",
                "demo",
                "  - backendRefs: [{name: echo-v1, port: 80}]\n",
            ),
            check: |m| {
                for _ in 0..5 {
                    served_by(&m.client, "GET", "/", &[], "v1")?;
                }
                Ok(())
            },
        },
        Scenario {
            name: "MeshHTTPRouteWeight",
            feature: None,
            routes: route(
                "echo",
                "demo",
                "  - backendRefs: [{name: echo-v1, port: 80, weight: 70}, {name: echo-v2, port: 80, weight: 30}]\n",
            ),
            check: |m| {
                let n = 400;
                let mut v1 = 0;
                for _ in 0..n {
                    let (st, _, v) = request(&m.client, "GET", "/", &[]);
                    expect(st == 200, format!("status {st}"))?;
                    if version(&v) == "v1" {
                        v1 += 1;
                    }
                }
                expect(
                    within_binomial(v1, n, 0.7, 4.0),
                    format!("{v1}/{n} to v1, want 70% within 4 sigma"),
                )
            },
        },
        Scenario {
            name: "MeshHTTPRouteMatching",
            feature: None,
            routes: route(
                "echo",
                "demo",
                concat!(
                    "  - matches: [{path: {type: PathPrefix, value: /v2}}, {headers: [{name: version, value: two}]}]\n",
                    "    backendRefs: [{name: echo-v2, port: 80}]\n",
                    "  - matches: [{path: {type: PathPrefix, value: /}}]\n",
                    "    backendRefs: [{name: echo-v1, port: 80}]\n",
                ),
            ),
            check: |m| {
                for (path, hs, want) in [
                    ("/", &[][..], "v1"),
                    ("/v2", &[][..], "v2"),
                    ("/v2/example", &[][..], "v2"),
                    ("/v2example", &[][..], "v1"),
                    ("/", &[("version", "two")][..], "v2"),
                    ("/", &[("version", "one")][..], "v1"),
                ] {
                    served_by(&m.client, "GET", path, hs, want)?;
                }
                Ok(())
            },
        },
        Scenario {
            name: "MeshHTTPRouteQueryParamMatching",
            feature: Some("HTTPRouteQueryParamMatching"),
            routes: route(
                "echo",
                "demo",
                concat!(
                    "  - matches: [{queryParams: [{name: animal, value: whale}]}]\n",
                    "    backendRefs: [{name: echo-v2, port: 80}]\n",
                    "  - backendRefs: [{name: echo-v1, port: 80}]\n",
                ),
            ),
            check: |m| {
                for (path, want) in [
                    ("/?animal=whale", "v2"),
                    ("/?animal=dolphin", "v1"),
                    ("/", "v1"),
                ] {
                    served_by(&m.client, "GET", path, &[], want)?;
                }
                Ok(())
            },
        },
        Scenario {
            name: "MeshHTTPRouteMethodMatching",
            feature: Some("HTTPRouteMethodMatching"),
            routes: route(
                "echo",
                "demo",
                concat!(
                    "  - matches: [{method: POST}]\n",
                    "    backendRefs: [{name: echo-v2, port: 80}]\n",
                    "  - matches: [{method: GET}]\n",
                    "    backendRefs: [{name: echo-v1, port: 80}]\n",
                ),
            ),
            check: |m| {
                served_by(&m.client, "POST", "/", &[], "v2")?;
                served_by(&m.client, "GET", "/", &[], "v1")?;
                // No rule matches HEAD... DELETE: Gateway API answers 404.
                let (st, _, _) = request(&m.client, "DELETE", "/", &[]);
                expect(st == 404, format!("DELETE matched no rule: {st}, want 404"))
            },
        },
        Scenario {
            name: "MeshHTTPRouteRequestHeaderModifier",
            feature: None,
            routes: route(
                "echo",
                "demo",
                concat!(
                    "  - filters:\n",
                    "    - type: RequestHeaderModifier\n",
                    "      requestHeaderModifier:\n",
                    "        set: [{name: x-header-set, value: set-overwrites-values}]\n",
                    "        add: [{name: x-header-add, value: header-val-1}]\n",
                    "        remove: [x-header-remove]\n",
                    "    backendRefs: [{name: echo-v1, port: 80}]\n",
                ),
            ),
            check: |m| {
                let (st, _, v) = request(
                    &m.client,
                    "GET",
                    "/",
                    &[
                        ("x-header-set", "some-other-value"),
                        ("x-header-add", "add-appends-values"),
                        ("x-header-remove", "remove-me"),
                    ],
                );
                expect(st == 200, format!("status {st}"))?;
                let h = &v["headers"];
                let get = |k: &str| h.get(k).map(|x| x.to_string()).unwrap_or_default();
                expect(
                    get("x-header-set").contains("set-overwrites-values")
                        && !get("x-header-set").contains("some-other-value"),
                    format!("set: {}", get("x-header-set")),
                )?;
                expect(
                    get("x-header-add").contains("add-appends-values")
                        && get("x-header-add").contains("header-val-1"),
                    format!("add: {}", get("x-header-add")),
                )?;
                expect(
                    h.get("x-header-remove").is_none(),
                    format!("remove: {}", get("x-header-remove")),
                )
            },
        },
        Scenario {
            name: "MeshHTTPRouteResponseHeaderModifier",
            feature: Some("HTTPRouteResponseHeaderModification"),
            routes: route(
                "echo",
                "demo",
                concat!(
                    "  - filters:\n",
                    "    - type: ResponseHeaderModifier\n",
                    "      responseHeaderModifier: {set: [{name: x-mesh, value: meshbridge}]}\n",
                    "    backendRefs: [{name: echo-v1, port: 80}]\n",
                ),
            ),
            check: |m| {
                let (st, hs, _) = request(&m.client, "GET", "/", &[]);
                expect(
                    st == 200 && hs.iter().any(|(k, v)| k == "x-mesh" && v == "meshbridge"),
                    format!("{st} {hs:?}"),
                )
            },
        },
        Scenario {
            name: "MeshHTTPRouteRewritePath",
            feature: Some("HTTPRoutePathRewrite"),
            routes: route(
                "echo",
                "demo",
                concat!(
                    "  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]\n",
                    "    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}}]\n",
                    "    backendRefs: [{name: echo-v1, port: 80}]\n",
                    "  - matches: [{path: {type: PathPrefix, value: /full}}]\n",
                    "    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /one}}}]\n",
                    "    backendRefs: [{name: echo-v1, port: 80}]\n",
                ),
            ),
            check: |m| {
                for (path, want) in [
                    ("/prefix/one/two", "/one/two"),
                    ("/prefix/one", "/one"),
                    ("/full/path", "/one"),
                ] {
                    let (st, _, v) = request(&m.client, "GET", path, &[]);
                    expect(
                        st == 200 && v["path"] == want,
                        format!("{path}: {st} path {}", v["path"]),
                    )?;
                }
                Ok(())
            },
        },
        Scenario {
            name: "MeshHTTPRouteRedirectPath",
            feature: Some("HTTPRoutePathRedirect"),
            routes: route(
                "echo",
                "demo",
                concat!(
                    "  - matches: [{path: {type: Exact, value: /old}}]\n",
                    "    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 301}}]\n",
                    "  - matches: [{path: {type: PathPrefix, value: /host}}]\n",
                    "    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]\n",
                ),
            ),
            check: |m| {
                let (st, hs, _) = request(&m.client, "GET", "/old", &[]);
                let loc = hs
                    .iter()
                    .find(|(k, _)| k == "location")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                expect(
                    st == 301 && loc.ends_with("/new"),
                    format!("/old: {st} location {loc}"),
                )?;
                let (st, hs, _) = request(&m.client, "GET", "/host/x", &[]);
                let loc = hs
                    .iter()
                    .find(|(k, _)| k == "location")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                expect(
                    st == 302 && loc.contains("://example.org") && loc.ends_with("/host/x"),
                    format!("/host/x: {st} location {loc}"),
                )
            },
        },
        Scenario {
            name: "MeshConsumerRoute",
            feature: Some("MeshConsumerRoute"),
            routes: route(
                "echo",
                "demo",
                "  - backendRefs: [{name: echo-v1, port: 80}]\n",
            ) + "\n---\n"
                + &route(
                    "echo-consumer",
                    "consumer",
                    "  - backendRefs: [{name: echo-v2, namespace: demo, port: 80}]\n",
                ),
            check: |m| {
                for _ in 0..5 {
                    served_by(&m.client, "GET", "/", &[], "v1")?;
                    served_by(&m.consumer, "GET", "/", &[], "v2")?;
                }
                Ok(())
            },
        },
    ]
}

fn report(results: &[(&Scenario, Result<(), String>)]) -> String {
    let core: Vec<_> = results
        .iter()
        .filter(|(s, _)| s.feature.is_none())
        .collect();
    let ext: Vec<_> = results
        .iter()
        .filter(|(s, _)| s.feature.is_some())
        .collect();
    let stats = |v: &[&(&Scenario, Result<(), String>)]| {
        let passed = v.iter().filter(|(_, r)| r.is_ok()).count();
        let failed = v.len() - passed;
        let result = if failed == 0 { "success" } else { "failure" };
        (result, passed, failed)
    };
    let (cr, cp, cf) = stats(&core);
    let (er, ep, ef) = stats(&ext);
    let mut features: Vec<&str> = ext
        .iter()
        .filter(|(_, r)| r.is_ok())
        .filter_map(|(s, _)| s.feature)
        .collect();
    features.sort();
    let failed_tests = |v: &[&(&Scenario, Result<(), String>)]| {
        let f: Vec<String> = v
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(s, _)| s.name.to_string())
            .collect();
        format!("[{}]", f.join(", "))
    };
    let mut out = String::new();
    out += "# Gateway API ConformanceReport of meshbridge's built-in mesh (real Envoy through\n";
    out +=
        "# `meshbridge local`), written by tests/gamma_local.rs (UPDATE_GOLDEN=1 rewrites it).\n";
    out += "# The scenarios are the upstream GAMMA mesh tests that apply to a data plane, run by\n";
    out += "# meshbridge's own harness (not the upstream Go suite, which needs a cluster).\n";
    out += "apiVersion: gateway.networking.k8s.io/v1\nkind: ConformanceReport\n";
    out += &format!(
        "date: \"{}\"\n",
        meshbridge_controller::status::now_rfc3339()
    );
    out += "gatewayAPIVersion: v1.6.1\ngatewayAPIChannel: standard\n";
    out += "implementation:\n  organization: meshbridge\n  project: meshbridge\n";
    out += "  url: https://github.com/meshbridge/meshbridge\n";
    out += &format!("  version: {}\n  contact: []\n", env!("CARGO_PKG_VERSION"));
    out += "mode: default\nprofiles:\n- name: MESH-HTTP\n";
    out += &format!("  # core tests: {}\n", names(&core));
    out += &format!(
        "  core:\n    result: {cr}\n    statistics: {{Passed: {cp}, Failed: {cf}, Skipped: 0}}\n    failedTests: {}\n",
        failed_tests(&core)
    );
    out += &format!("  # extended tests: {}\n", names(&ext));
    out += &format!(
        "  extended:\n    result: {er}\n    statistics: {{Passed: {ep}, Failed: {ef}, Skipped: 0}}\n    failedTests: {}\n    supportedFeatures: [{}]\n",
        failed_tests(&ext),
        features.join(", ")
    );
    out
}

fn names(v: &[&(&Scenario, Result<(), String>)]) -> String {
    v.iter().map(|(s, _)| s.name).collect::<Vec<_>>().join(", ")
}

fn without_date(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn gamma_mesh_conformance_on_the_built_in_mesh() {
    if envoy_or_skip().is_none() {
        return;
    }
    let mut local = Local::start("gamma", 51, &[("00-apps.yaml", APPS.to_string())], &[]);
    let outbound = |l: &Local, pod: &str| {
        l.pods
            .iter()
            .find(|p| p["pod"] == pod)
            .and_then(|p| p["outbound"].as_str())
            .unwrap_or_else(|| panic!("no pod {pod}"))
            .to_string()
    };
    let mesh = Mesh {
        client: outbound(&local, "demo/client"),
        consumer: outbound(&local, "consumer/client"),
    };
    let all = scenarios();
    let mut results = Vec::new();
    for s in &all {
        local.write("10-routes.yaml", &s.routes);
        let r = (s.check)(&mesh);
        if let Err(e) = &r {
            eprintln!("{}: FAILED: {e}", s.name);
        }
        results.push((s, r));
    }
    let text = report(&results);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/gamma-report.yaml");
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(s, r)| r.as_ref().err().map(|e| format!("{}: {e}", s.name)))
        .collect();
    assert!(
        failed.is_empty(),
        "GAMMA scenarios failed:\n{}",
        failed.join("\n")
    );
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        without_date(&published),
        without_date(&text),
        "conformance/gamma-report.yaml is stale: run UPDATE_GOLDEN=1 cargo test --test gamma_local"
    );
}

#[test]
fn gamma_inputs_validate_against_the_official_gateway_api_crds() {
    let dir = shared_dir().join("schemas/gateway-api");
    let reg = meshbridge_conformance::schema::Registry::load(&[dir.as_path()])
        .expect("gateway-api schemas");
    let mut docs: Vec<(String, Value)> = Vec::new();
    let mut add = |name: String, text: &str| {
        for (_, d) in meshbridge_core::load::split_documents(text) {
            if let Ok(Some(v)) = meshbridge_core::load::parse_document(&d)
                && v["apiVersion"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("gateway.networking.k8s.io/"))
            {
                docs.push((name.clone(), v));
            }
        }
    };
    for s in scenarios() {
        add(s.name.to_string(), &s.routes);
    }
    add("apps.yaml".into(), APPS);
    let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/cases/gamma");
    for e in std::fs::read_dir(&cases).unwrap() {
        let p = e.unwrap().path().join("input.yaml");
        add(
            p.display().to_string(),
            &std::fs::read_to_string(&p).unwrap(),
        );
    }
    assert!(docs.len() >= 12, "{}", docs.len());
    for (name, v) in &docs {
        reg.validate(v)
            .unwrap_or_else(|e| panic!("{name}: {} {}: {e:?}", v["kind"], v["metadata"]["name"]));
    }
}
