//! Black-box tests of `meshbridge meshes` and `meshbridge install`.

#[path = "../discovery/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fixture(case: &str) -> String {
    common::fixture(case).display().to_string()
}

/// The command exited 0 (else: its stderr).
fn assert_ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mb-disc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Splits a table row on runs of two or more spaces.
fn cells(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn meshes_table_from_recorded_cluster() {
    let o = bin(&["meshes", "-f", &fixture("istio-revisions")]);
    assert_ok(&o);
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        cells(lines[0]).join(" "),
        "NAME TYPE VERSION REVISION NAMESPACES TRUST-DOMAIN MTLS READY"
    );
    assert_eq!(
        cells(lines[1]),
        [
            "istio-1-20",
            "istio",
            "1.20.1",
            "1-20",
            "orders",
            "corp.example",
            "PERMISSIVE",
            "True"
        ]
    );
    assert_eq!(
        cells(lines[2]),
        [
            "istio-1-21",
            "istio",
            "1.21.0",
            "1-21",
            "billing,jobs",
            "corp.example",
            "PERMISSIVE",
            "True"
        ]
    );
    assert_eq!(lines.len(), 3);
}

#[test]
fn meshes_capabilities_are_per_discovered_version() {
    // Linkerd stable-2.14 (ServiceProfile mode) next to edge-24.8.2 (≥ 2.16: HTTPRoute).
    let d = tmpdir("two-linkerds");
    std::fs::copy(fixture("linkerd-stable-2.14"), d.join("a.yaml")).unwrap();
    std::fs::copy(fixture("istio-1.12"), d.join("b.yaml")).unwrap();
    let o = bin(&[
        "meshes",
        "--source",
        &format!("dir:{}", d.display()),
        "--capabilities",
    ]);
    assert_ok(&o);
    let text = out(&o);
    let matrix_header = text
        .lines()
        .find(|l| l.starts_with("FEATURE"))
        .expect("matrix printed");
    assert_eq!(cells(matrix_header), ["FEATURE", "istio", "linkerd"]);
    for f in meshbridge_core::Feature::ALL {
        let row = text
            .lines()
            .find(|l| cells(l).first().map(String::as_str) == Some(f.as_str()));
        let row = cells(row.unwrap_or_else(|| panic!("row {f}")));
        assert_eq!(row.len(), 3, "{row:?}");
        for c in &row[1..] {
            assert!(["Full", "Partial", "None"].contains(&c.as_str()), "{row:?}");
        }
    }
    // The cells are the adapters' own matrices at the discovered versions.
    use meshbridge_core::api::meshbridge::{MeshSpec, MeshType};
    use meshbridge_core::{Adapter, Context};
    let spec = |t, v: &str| MeshSpec {
        mesh_type: t,
        version: Some(v.into()),
        revision: None,
        trust_domain: Some("cluster.local".into()),
        control_plane_namespace: None,
        linkerd_split_mode: None,
        tcp_route_version: None,
        app_mesh_name: None,
    };
    let l = meshbridge_linkerd::LinkerdAdapter.capabilities(&Context {
        mesh: Some(spec(MeshType::Linkerd, "stable-2.14.10")),
        ..Context::default()
    });
    let i = meshbridge_istio::IstioAdapter.capabilities(&Context {
        mesh: Some(spec(MeshType::Istio, "1.12.9")),
        ..Context::default()
    });
    for f in meshbridge_core::Feature::ALL {
        let row = cells(
            text.lines()
                .find(|x| cells(x).first().map(String::as_str) == Some(f.as_str()))
                .unwrap(),
        );
        assert_eq!(row[1], i.level(f).to_string(), "{f}");
        assert_eq!(row[2], l.level(f).to_string(), "{f}");
        for (name, m) in [("istio", &i), ("linkerd", &l)] {
            let c = m.get(f);
            if c.level != meshbridge_core::Level::Full {
                assert!(
                    text.contains(&format!("  {f} ({}): {}", c.level, c.reason)),
                    "{name} {f}: reason missing"
                );
            }
        }
    }
}

#[test]
fn meshes_capabilities_without_input_lists_every_adapter() {
    let o = bin(&["meshes", "--capabilities"]);
    assert_ok(&o);
    let text = out(&o);
    let header = cells(text.lines().next().unwrap());
    assert_eq!(
        header,
        [
            "FEATURE",
            "istio",
            "linkerd",
            "appmesh",
            "envoy",
            "gateway-api"
        ]
    );
    assert_eq!(
        text.lines().take_while(|l| !l.is_empty()).count(),
        1 + meshbridge_core::Feature::ALL.len()
    );
}

#[test]
fn meshes_yaml_and_rediscovery_keep_user_fields() {
    // First discovery → YAML; a user edits the trust domain and split mode; rediscovery
    // of a newer cluster state keeps the edits and refreshes the version.
    let d = tmpdir("rediscover");
    let o = bin(&[
        "meshes",
        "-f",
        &fixture("linkerd-stable-2.14"),
        "-o",
        "yaml",
    ]);
    assert_ok(&o);
    let yaml = out(&o).replace(
        "trustDomain: cluster.local\n  controlPlaneNamespace",
        "trustDomain: user.example\n  linkerdSplitMode: HTTPRoute\n  controlPlaneNamespace",
    );
    assert!(yaml.contains("user.example"), "{yaml}");
    std::fs::write(d.join("meshes.yaml"), &yaml).unwrap();
    let newer = std::fs::read_to_string(fixture("linkerd-stable-2.14"))
        .unwrap()
        .replace("stable-2.14.10", "stable-2.14.11");
    std::fs::write(d.join("cluster.yaml"), newer).unwrap();
    let o = bin(&["meshes", "-f", d.to_str().unwrap(), "-o", "yaml"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_saphyr::from_str(&out(&o)).unwrap();
    assert_eq!(v["spec"]["trustDomain"], "user.example");
    assert_eq!(v["spec"]["linkerdSplitMode"], "HTTPRoute");
    assert_eq!(v["spec"]["version"], "stable-2.14.11");
    assert_eq!(v["status"]["discovered"]["trustDomain"], "cluster.local");
    // An empty cluster state: the Mesh stays, Ready=False NotFound.
    std::fs::write(
        d.join("cluster.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
    )
    .unwrap();
    let o = bin(&["meshes", "-f", d.to_str().unwrap()]);
    assert_ok(&o);
    assert!(out(&o).contains("False (NotFound)"), "{}", out(&o));
}

#[test]
fn meshes_nothing_and_bad_input() {
    let o = bin(&["meshes", "-f", &fixture("nothing")]);
    assert_ok(&o);
    assert_eq!(out(&o), "No mesh found.\n");
    // Unparseable documents: reported, the rest still discovered, exit 1.
    let o = bin(&["meshes", "-f", &fixture("odd-tags")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("istio-canary"));
    let o = bin(&["meshes", "--source", "kube"]);
    assert_eq!(o.status.code(), Some(2));
    let o = bin(&["meshes", "-o", "json", "-f", &fixture("nothing")]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn install_prints_the_object_and_plan() {
    let o = bin(&[
        "install",
        "istio",
        "--version",
        "1.22.3",
        "--revision",
        "1-22",
    ]);
    assert_ok(&o);
    let v: serde_json::Value = serde_saphyr::from_str(&out(&o)).unwrap();
    assert_eq!(v["apiVersion"], "meshbridge.io/v1alpha1");
    assert_eq!(v["kind"], "Install");
    assert_eq!(v["metadata"]["name"], "istio");
    assert_eq!(v["metadata"]["namespace"], "meshbridge-system");
    assert_eq!(v["spec"]["type"], "istio");
    assert_eq!(v["spec"]["version"], "1.22.3");
    assert_eq!(v["spec"]["revision"], "1-22");
    let o = bin(&["install", "linkerd", "--plan", "--namespace", "l5d"]);
    assert_ok(&o);
    let text = out(&o);
    assert!(text.contains("kind: Job"));
    assert!(text.contains("--linkerd-namespace l5d"));
    // The Job runs as the chart's installer ServiceAccount; no RBAC is planned or made.
    assert!(
        text.contains("serviceAccountName: meshbridge-installer"),
        "{text}"
    );
    assert!(!text.contains("kind: ClusterRoleBinding"));
    for bad in [
        vec!["install", "consul"],
        vec!["install", "appmesh"],
        vec!["install", "linkerd", "--revision", "x"],
        vec!["install", "istio", "--version", "1.2; rm -rf /"],
    ] {
        assert_eq!(bin(&bad).status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn meshes_from_stdin() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .args(["meshes", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read_to_string(fixture("linkerd-edge")).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
    assert!(out(&o).contains("edge-24.8.2"), "{}", out(&o));
}

#[test]
fn run_has_discovery_flags() {
    let o = bin(&["run", "--help"]);
    assert!(o.status.success());
    let help = out(&o);
    assert!(help.contains("--discovery <DISCOVERY>"), "{help}");
    assert!(
        help.contains("--discovery-interval <DISCOVERY_INTERVAL>"),
        "{help}"
    );
    assert!(help.contains("[default: 30]"), "{help}");
    let o = bin(&["run", "--discovery=maybe", "--once"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn run_without_a_cluster_skips_discovery_and_exits() {
    // --source/--output dir: no cluster client, so the discovery task returns at once and
    // `--once` is not held up by it.
    let input = tmpdir("run-in");
    let output = tmpdir("run-out");
    let t = std::time::Instant::now();
    let o = bin(&[
        "run",
        &format!("--source=dir:{}", input.display()),
        &format!("--output=dir:{}", output.display()),
        "--once",
        "--discovery=true",
        "--discovery-interval=1",
        "--backend=istio",
        "--metrics-addr=off",
    ]);
    assert_ok(&o);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        t.elapsed()
    );
}
