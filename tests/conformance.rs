//! Golden conformance cases (conformance/cases/*/*/): every case's IR compared with
//! `expected/ir.yaml`, then the case through `meshbridge translate` for every mesh this build
//! implements, stdout and stderr compared with the goldens, and every generated Kubernetes
//! object validated against the official CRD schema in shared/schemas.
//! `UPDATE_GOLDEN=1 cargo test --test conformance` rewrites the goldens (docs/conformance.md).

use meshbridge_conformance::cases::{self, Actual};
use meshbridge_conformance::schema;
use std::process::Command;

/// Meshes whose output is Kubernetes objects validated against shared/schemas.
const SCHEMA_MESHES: &[&str] = &["istio", "linkerd", "gateway-api", "appmesh"];
const MESHES: &[&str] = &["istio", "linkerd", "gateway-api", "appmesh", "envoy"];

fn run(case: &cases::Case, mesh: &str) -> Actual {
    let out = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .current_dir(&case.dir)
        .args(["translate", "--mesh", mesh, "-f", "input.yaml"])
        .output()
        .expect("run meshbridge");
    Actual {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

fn implemented(mesh: &str) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .args(["translate", "--mesh", mesh, "-f", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run meshbridge");
    !(out.status.code() == Some(2)
        && String::from_utf8_lossy(&out.stderr).contains("not implemented"))
}

#[test]
fn golden_cases() {
    let all = cases::discover();
    assert!(
        all.len() >= 20,
        "expected the seeded cases, found {}",
        all.len()
    );
    let registry = schema::target_registry().expect("load shared/schemas");
    let meshes: Vec<&str> = MESHES.iter().copied().filter(|m| implemented(m)).collect();
    assert!(!meshes.is_empty(), "no mesh implemented");
    let mut failures = Vec::new();
    let mut validated = 0usize;
    for case in &all {
        if let Err(e) = case.ir().and_then(|ir| case.check_ir(&ir)) {
            failures.push(e);
        }
        let mut written = Vec::new();
        for mesh in &meshes {
            let actual = run(case, mesh);
            if actual.stderr.contains("panicked") {
                failures.push(format!("{} [{mesh}]: panic:\n{}", case.name, actual.stderr));
                continue;
            }
            if let Err(e) = case.check(mesh, &actual) {
                failures.push(e);
            }
            written.push(mesh.to_string());
            if SCHEMA_MESHES.contains(mesh) {
                match cases::documents(&actual.stdout) {
                    Ok(docs) => {
                        for d in docs {
                            validated += 1;
                            if let Err(errs) = registry.validate(&d) {
                                failures.push(format!(
                                    "{} [{mesh}]: {} {} does not validate against the official schema:\n  {}",
                                    case.name,
                                    d["kind"].as_str().unwrap_or("?"),
                                    d["metadata"]["name"].as_str().unwrap_or("?"),
                                    errs.join("\n  ")
                                ));
                            }
                        }
                    }
                    Err(e) => {
                        failures.push(format!("{} [{mesh}]: output is not YAML: {e}", case.name))
                    }
                }
            }
        }
        // Goldens for meshes this build does not implement are stale.
        for m in case.meshes_with_goldens() {
            if !written.contains(&m) && !cases::updating() {
                failures.push(format!(
                    "{}: golden for {m}, but this build does not implement it",
                    case.name
                ));
            }
        }
        case.remove_orphans(&written);
    }
    eprintln!("validated {validated} generated objects against shared/schemas");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `meshbridge translate` on the SMI spec's own examples: every object any mesh emits is
/// accepted by that mesh's official schema.
#[test]
fn spec_examples_translate_to_schema_valid_objects() {
    let registry = schema::target_registry().expect("load shared/schemas");
    let root = meshbridge_conformance::shared_dir().join("smi/examples");
    let mut failures = Vec::new();
    let mut validated = 0usize;
    for mesh in SCHEMA_MESHES.iter().filter(|m| implemented(m)) {
        let out = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
            .args(["translate", "--mesh", mesh, "-f"])
            .arg(&root)
            .output()
            .expect("run meshbridge");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{mesh}: {:?}",
            out.status
        );
        let docs = cases::documents(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
        for d in docs {
            validated += 1;
            if let Err(errs) = registry.validate(&d) {
                failures.push(format!(
                    "[{mesh}] {} {}: {}",
                    d["kind"],
                    d["metadata"]["name"],
                    errs.join("; ")
                ));
            }
        }
    }
    assert!(validated > 0, "the spec examples produced no objects");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
