//! `meshbridge translate`: files → snapshot → IR → one adapter → YAML on stdout.
//! Exit 0: all valid; 1: some input invalid (valid objects still translated); 2: usage.

use clap::Args;
use meshbridge_core::Context;
use meshbridge_core::api::meshbridge::MeshType;
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
    /// Namespace of namespaced input objects that state none, as `kubectl apply -n NS`
    /// (default: `default`). An object that states another keeps its own, with a warning.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
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
    let opts = meshbridge_core::load::LoadOptions {
        default_namespace: args.namespace.clone(),
    };
    let loaded = files
        .iter()
        .map(|f| crate::inputs::load_file(f, &opts))
        .collect();
    let base = Context {
        controller_namespace: args.controller_namespace.clone(),
        cluster_domain: args.cluster_domain.clone(),
        ..Context::default()
    };
    let out =
        meshbridge_core::pipeline::translate(loaded, adapter, &base, args.trust_domain.as_deref());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.yaml.as_bytes());
    let _ = stdout.flush();
    let mut stderr = std::io::stderr().lock();
    for l in &out.diagnostics {
        let _ = writeln!(stderr, "{l}");
    }
    if out.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
