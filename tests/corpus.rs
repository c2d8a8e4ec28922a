//! The realistic-input corpus (conformance/corpus/<set>/*.yaml): multi-document files in the
//! shapes the SMI projects publish (OSM bookstore, Traefik Mesh, Linkerd booksapp, Argo
//! Rollouts, kubectl-style objects without a namespace), written for meshbridge. Every set
//! goes through `meshbridge translate --mesh <m> -f <set> [-n NS]` for every mesh, and:
//! - the exit code is the one in `<set>/expect` (`exit:`; only 0 or 1 are allowed) and
//!   stderr has no panic (no line starting with `thread`, no `panicked`);
//! - every object istio, linkerd, gateway-api and appmesh emit validates against the
//!   official schema in shared/schemas (the validator of tests/conformance.rs);
//! - splits keep their ratio: every list of two or more weighted entries in the output
//!   (VirtualService routes, HTTPRoute backendRefs, ServiceProfile dstOverrides, App Mesh
//!   weightedTargets, Envoy weightedClusters) has the proportions of one `ratio:` line,
//!   and on the meshes that express weights every `ratio:` line appears;
//! - `stderr:` lines are substrings stderr contains; with `namespace:` (passed as `-n`)
//!   every namespaced output object is in that namespace.

use meshbridge_conformance::{cases, schema};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const MESHES: &[&str] = &["istio", "linkerd", "gateway-api", "appmesh", "envoy"];
/// Meshes whose output is Kubernetes objects with official schemas in shared/schemas.
const SCHEMA_MESHES: &[&str] = &["istio", "linkerd", "gateway-api", "appmesh"];
/// Meshes whose split output always carries weights.
const WEIGHT_MESHES: &[&str] = &["istio", "linkerd", "gateway-api", "appmesh"];

#[derive(Default, Debug)]
struct Expect {
    exit: i32,
    namespace: Option<String>,
    ratios: Vec<Vec<f64>>,
    stderr: Vec<String>,
}

fn expect(dir: &Path) -> Expect {
    let text = std::fs::read_to_string(dir.join("expect"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("expect").display()));
    let mut x = Expect::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: bad line {line:?}", dir.display()));
        let v = v.trim();
        match k.trim() {
            "exit" => x.exit = v.parse().expect("exit code"),
            "namespace" => x.namespace = Some(v.to_string()),
            "ratio" => x.ratios.push(normalize(
                &v.split_whitespace()
                    .map(|w| w.parse::<f64>().expect("ratio number"))
                    .collect::<Vec<_>>(),
            )),
            "stderr" => x.stderr.push(v.to_string()),
            other => panic!("{}: unknown key {other:?}", dir.display()),
        }
    }
    assert!(
        matches!(x.exit, 0 | 1),
        "{}: exit must be 0 or 1",
        dir.display()
    );
    x
}

fn sets() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/corpus");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("conformance/corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn normalize(w: &[f64]) -> Vec<f64> {
    let sum: f64 = w.iter().sum();
    w.iter()
        .map(|x| if sum > 0.0 { x / sum } else { 0.0 })
        .collect()
}

/// A weight as a number: integers, or Kubernetes quantities (`500m`, `1`).
fn weight(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.strip_suffix('m') {
            Some(milli) => milli.parse::<f64>().ok().map(|m| m / 1000.0),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// Every array of two or more objects that all carry a `weight`.
fn weight_groups(v: &Value, out: &mut Vec<Vec<f64>>) {
    match v {
        Value::Array(a) => {
            if a.len() >= 2 {
                let ws: Option<Vec<f64>> =
                    a.iter().map(|e| e.get("weight").and_then(weight)).collect();
                if let Some(ws) = ws {
                    out.push(ws);
                }
            }
            a.iter().for_each(|e| weight_groups(e, out));
        }
        Value::Object(m) => m.values().for_each(|e| weight_groups(e, out)),
        _ => {}
    }
}

fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.005)
}

#[test]
fn corpus_translates_on_every_mesh() {
    let registry = schema::target_registry().expect("load shared/schemas");
    let sets = sets();
    let names: Vec<String> = sets
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "osm-bookstore",
        "traefik-mesh",
        "linkerd-booksapp",
        "argo-rollouts",
        "objects-without-namespace",
    ] {
        assert!(names.iter().any(|n| n == want), "corpus set {want} missing");
    }
    let mut failures = Vec::new();
    let mut validated = 0usize;
    for (dir, name) in sets.iter().zip(&names) {
        let x = expect(dir);
        for mesh in MESHES {
            let tag = format!("{name} [{mesh}]");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshbridge"));
            cmd.args(["translate", "--mesh", mesh, "-f"]).arg(dir);
            if let Some(ns) = &x.namespace {
                cmd.args(["-n", ns]);
            }
            let out = cmd.output().expect("run meshbridge");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.lines().any(|l| l.starts_with("thread")) || stderr.contains("panicked") {
                failures.push(format!("{tag}: panic:\n{stderr}"));
                continue;
            }
            let code = out.status.code().unwrap_or(-1);
            if code != x.exit {
                failures.push(format!("{tag}: exit {code}, want {}:\n{stderr}", x.exit));
                continue;
            }
            for s in &x.stderr {
                if !stderr.contains(s.as_str()) {
                    failures.push(format!("{tag}: stderr lacks {s:?}:\n{stderr}"));
                }
            }
            let docs = match cases::documents(&stdout) {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{tag}: output is not YAML: {e}"));
                    continue;
                }
            };
            if docs.is_empty() {
                failures.push(format!("{tag}: no output objects"));
            }
            let mut groups = Vec::new();
            for d in &docs {
                let what = format!(
                    "{} {}",
                    d["kind"].as_str().unwrap_or("?"),
                    d["metadata"]["name"].as_str().unwrap_or("?")
                );
                if SCHEMA_MESHES.contains(mesh) {
                    validated += 1;
                    if let Err(errs) = registry.validate(d) {
                        failures.push(format!(
                            "{tag}: {what} does not validate against the official schema:\n  {}",
                            errs.join("\n  ")
                        ));
                    }
                }
                if let (Some(ns), Some(got)) = (&x.namespace, d["metadata"]["namespace"].as_str())
                    && got != ns
                {
                    failures.push(format!("{tag}: {what} in namespace {got}, want {ns}"));
                }
                weight_groups(d, &mut groups);
            }
            let groups: Vec<Vec<f64>> = groups.iter().map(|g| normalize(g)).collect();
            for g in &groups {
                if !x.ratios.iter().any(|r| same(r, g)) {
                    failures.push(format!(
                        "{tag}: weights in proportions {g:?}, input ratios {:?}",
                        x.ratios
                    ));
                }
            }
            if WEIGHT_MESHES.contains(mesh) {
                for r in &x.ratios {
                    if !groups.iter().any(|g| same(r, g)) {
                        failures.push(format!("{tag}: no weighted output in proportions {r:?}"));
                    }
                }
            }
        }
    }
    eprintln!("corpus: {} sets, validated {validated} objects", sets.len());
    assert!(validated > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
