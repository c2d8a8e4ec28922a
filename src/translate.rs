//! `meshbridge translate`: files → snapshot → IR → one adapter → YAML on stdout.
//! Exit 0: all valid; 1: some input invalid (valid objects still translated); 2: usage.

use clap::Args;
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::model::Origin;
use meshbridge_core::report::Severity;
use meshbridge_core::{Context, Snapshot};
use std::io::Write;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// Target mesh: istio, linkerd, appmesh, envoy or gateway-api.
    #[arg(long)]
    pub mesh: String,
    /// Input file, directory (recursive: *.yaml, *.yml, *.json) or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// SPIFFE trust domain of the mesh (overrides a Mesh object's).
    #[arg(long)]
    pub trust_domain: Option<String>,
    /// Kubernetes cluster domain used in FQDNs.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Namespace of the meshbridge controller (value of the `meshbridge.io/owner` label).
    #[arg(long, default_value = "meshbridge-system")]
    pub controller_namespace: String,
}

pub fn run(args: TranslateArgs) -> ExitCode {
    let Some(mesh) = MeshType::parse(&args.mesh) else {
        eprintln!(
            "meshbridge translate: unknown mesh `{}` (expected one of: istio, linkerd, appmesh, envoy, gateway-api)",
            args.mesh
        );
        return ExitCode::from(2);
    };
    let Some(adapter) = crate::registry::adapter_for(mesh) else {
        eprintln!("meshbridge translate: --mesh {mesh} is not implemented in this build yet");
        return ExitCode::from(2);
    };
    let files = match crate::inputs::expand(&args.files) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("meshbridge translate: {e}");
            return ExitCode::from(2);
        }
    };
    let mut lines: Vec<String> = Vec::new();
    let mut failed = false;
    let mut snap = Snapshot::default();
    for f in &files {
        let loaded = crate::inputs::load_file(f);
        for p in &loaded.problems {
            failed = true;
            lines.push(p.to_string());
        }
        for o in loaded.objects {
            let key = o.key();
            if let Some(prev) = snap.origin(&key).cloned() {
                lines.push(format!(
                    "warning: {}: {} {}/{}: (document): also defined at {prev}; the later definition wins",
                    o.meta().origin,
                    key.kind,
                    key.namespace,
                    key.name
                ));
            }
            snap.apply(o);
        }
    }
    let ir = meshbridge_core::build::build(&snap);
    for p in ir.problems() {
        match p.severity {
            Severity::Error => {
                failed = true;
                lines.push(p.to_string());
            }
            Severity::Warning => lines.push(format!("warning: {p}")),
        }
    }
    let cx = context(&args, &snap, mesh);
    let t = adapter.translate(&ir, &cx);
    for f in &t.findings {
        let origin = snap.origin(&f.object).cloned().unwrap_or(Origin::Api);
        lines.push(format!(
            "warning: {origin}: {} {}/{}: {}: {} [{}: {}]",
            f.object.kind, f.object.namespace, f.object.name, f.field, f.reason, f.feature, f.level
        ));
    }
    let out = meshbridge_core::yaml::to_yaml_stream(t.objects.iter().map(|o| &o.body));
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    let mut stderr = std::io::stderr().lock();
    for l in lines {
        let _ = writeln!(stderr, "{l}");
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Settings: flags first, then the first Mesh object of the target type in the input.
fn context(args: &TranslateArgs, snap: &Snapshot, mesh: MeshType) -> Context {
    let spec = snap
        .meshes
        .values()
        .map(|(m, _)| &m.spec)
        .find(|s| s.mesh_type == mesh)
        .cloned();
    let trust_domain = args
        .trust_domain
        .clone()
        .or_else(|| spec.as_ref().and_then(|s| s.trust_domain.clone()))
        .unwrap_or_else(|| "cluster.local".into());
    Context {
        controller_namespace: args.controller_namespace.clone(),
        trust_domain,
        cluster_domain: args.cluster_domain.clone(),
        mesh: spec,
    }
}
