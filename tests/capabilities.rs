//! The capability matrices: `docs/capabilities.md` is generated from the adapters (and kept
//! in sync by this test; `UPDATE_GOLDEN=1` rewrites it), and every `warning: ... [feature:
//! Level]` line in the conformance goldens names a row of its adapter's matrix that is not
//! `Full`, with a level no better than the row's.

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::{Adapter, Context, Feature, Level};
use std::path::PathBuf;

fn adapters() -> Vec<Box<dyn Adapter>> {
    vec![
        Box::new(meshbridge_istio::IstioAdapter),
        Box::new(meshbridge_linkerd::LinkerdAdapter),
        Box::new(meshbridge_gateway_api::GatewayApiAdapter),
        Box::new(meshbridge_appmesh::AppMeshAdapter),
        Box::new(meshbridge_envoy::EnvoyAdapter),
    ]
}

fn render() -> String {
    let cx = Context::default();
    let ads = adapters();
    let mut s = String::from(
        "# Capability matrix\n\nGenerated from the adapters (`tests/capabilities.rs`; `UPDATE_GOLDEN=1 cargo test --test capabilities` rewrites it).\nDefault settings (no Mesh object, latest versions); `meshbridge meshes --capabilities` prints the matrix for discovered versions.\n\n| Feature |",
    );
    for a in &ads {
        s.push_str(&format!(" {} |", a.mesh_type()));
    }
    s.push_str("\n|---|");
    for _ in &ads {
        s.push_str("---|");
    }
    s.push('\n');
    let mats: Vec<_> = ads.iter().map(|a| a.capabilities(&cx)).collect();
    for f in Feature::ALL {
        s.push_str(&format!("| {f} |"));
        for m in &mats {
            s.push_str(&format!(" {} |", m.level(f)));
        }
        s.push('\n');
    }
    for (a, m) in ads.iter().zip(&mats) {
        s.push_str(&format!("\n## {}\n\n", a.mesh_type()));
        for row in m.rows() {
            if row.level != Level::Full {
                s.push_str(&format!(
                    "- **{}** — {}: {}\n",
                    row.feature, row.level, row.reason
                ));
            }
        }
    }
    s
}

#[test]
fn docs_capabilities_is_generated_from_the_adapters() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/capabilities.md");
    let want = render();
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        have, want,
        "docs/capabilities.md is stale: UPDATE_GOLDEN=1 cargo test --test capabilities"
    );
}

#[test]
fn matrices_are_honest_about_access_and_udp() {
    let cx = Context::default();
    for a in adapters() {
        let m = a.capabilities(&cx);
        // Rows that are not Full must say why.
        for row in m.rows() {
            if row.level != Level::Full {
                assert!(
                    !row.reason.trim().is_empty(),
                    "{}: {} has no reason",
                    a.mesh_type(),
                    row.feature
                );
            }
        }
        if matches!(a.mesh_type(), MeshType::GatewayApi | MeshType::AppMesh) {
            assert_eq!(
                m.level(Feature::HttpAccess),
                Level::None,
                "{}",
                a.mesh_type()
            );
            assert_eq!(
                m.level(Feature::TcpAccess),
                Level::None,
                "{}",
                a.mesh_type()
            );
        }
    }
}

#[test]
fn every_warning_is_traceable_to_a_matrix_row() {
    let cx = Context::default();
    let cases = meshbridge_conformance::cases::discover();
    let mut checked = 0;
    for a in adapters() {
        let mesh = a.mesh_type().to_string();
        let m = a.capabilities(&cx);
        for case in &cases {
            let Ok(text) = std::fs::read_to_string(case.expected_stderr(&mesh)) else {
                continue;
            };
            for line in text
                .lines()
                .filter(|l| l.starts_with("warning: ") && l.ends_with(']'))
            {
                let Some(tag) = line.rsplit_once(" [").map(|(_, t)| t.trim_end_matches(']')) else {
                    continue;
                };
                // `[mesh: feature: level]` (core's one diagnostics format).
                let Some((tag_mesh, rest)) = tag.split_once(": ") else {
                    continue;
                };
                let Some((feature, level)) = rest.split_once(": ") else {
                    continue;
                };
                assert_eq!(tag_mesh, mesh, "{}: {line}", case.name);
                assert!(
                    matches!(level, "Partial" | "None"),
                    "{}: finding level `{level}`: {line}",
                    case.name
                );
                let row = Feature::ALL
                    .iter()
                    .find(|f| f.as_str() == feature)
                    .unwrap_or_else(|| {
                        panic!("{}: unknown feature `{feature}` in: {line}", case.name)
                    });
                let row_level = m.level(*row);
                // Settings in the case (a Mesh object) may change the matrix; the default
                // matrix must at least not claim Full for a feature that was reported.
                assert_ne!(
                    row_level,
                    Level::Full,
                    "{} [{mesh}]: warning on a Full row: {line}",
                    case.name
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} warnings checked");
}
