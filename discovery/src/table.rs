//! Text output of `meshbridge meshes`: the table of Meshes and the capability matrix side by
//! side (rows = SMI features, columns = meshes), with the reasons listed below it.

use meshbridge_core::api::meshbridge::Mesh;
use meshbridge_core::capability::{Capability, Feature, Level};

fn render(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

/// `NAME TYPE VERSION REVISION NAMESPACES TRUST-DOMAIN MTLS READY`. Values shown are the
/// effective ones: the spec (user or discovery) first, then what was discovered.
pub fn meshes_table(meshes: &[Mesh]) -> String {
    let mut rows = vec![
        [
            "NAME",
            "TYPE",
            "VERSION",
            "REVISION",
            "NAMESPACES",
            "TRUST-DOMAIN",
            "MTLS",
            "READY",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for m in meshes {
        let st = m.status.clone().unwrap_or_default();
        let d = st.discovered.clone().unwrap_or_default();
        let ready = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| {
                if c.status == "True" {
                    "True".to_string()
                } else {
                    format!("False ({})", c.reason)
                }
            })
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            m.metadata.name.clone().unwrap_or_default(),
            m.spec.mesh_type.to_string(),
            or_dash(m.spec.version.as_deref().or(d.version.as_deref())),
            or_dash(m.spec.revision.as_deref().or(d.revision.as_deref())),
            if d.namespaces.is_empty() {
                "-".into()
            } else {
                d.namespaces.join(",")
            },
            or_dash(m.spec.trust_domain.as_deref().or(d.trust_domain.as_deref())),
            or_dash(d.mtls_mode.as_deref()),
            ready,
        ]);
    }
    render(&rows)
}

/// The capability matrix: one column per `(header, capabilities)`, one row per SMI feature
/// (`None` for a feature a column does not list), then every non-Full cell's reason.
pub fn capability_matrix(columns: &[(String, Vec<Capability>)]) -> String {
    let mut rows = vec![
        std::iter::once("FEATURE".to_string())
            .chain(columns.iter().map(|(h, _)| h.clone()))
            .collect::<Vec<_>>(),
    ];
    let cell = |caps: &[Capability], f: Feature| -> (Level, String) {
        caps.iter()
            .find(|c| c.feature == f)
            .map(|c| (c.level, c.reason.clone()))
            .unwrap_or((Level::None, "not reported".into()))
    };
    for f in Feature::ALL {
        let mut r = vec![f.to_string()];
        for (_, caps) in columns {
            r.push(cell(caps, f).0.to_string());
        }
        rows.push(r);
    }
    let mut s = render(&rows);
    for (h, caps) in columns {
        let notes: Vec<String> = Feature::ALL
            .iter()
            .filter_map(|f| {
                let (level, reason) = cell(caps, *f);
                (level != Level::Full).then(|| format!("  {f} ({level}): {reason}\n"))
            })
            .collect();
        if !notes.is_empty() {
            s.push_str(&format!("\n{h}:\n"));
            for n in notes {
                s.push_str(&n);
            }
        }
    }
    s
}
