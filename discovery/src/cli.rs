//! `meshbridge meshes` and `meshbridge install`. The binary passes its adapters in
//! (`adapter_for`), so this crate depends on no adapter.

use crate::detect::{CapsFn, Config};
use crate::install;
use clap::Args;
use meshbridge_core::api::meshbridge::{Install, InstallSpec, Mesh, MeshSpec, MeshType};
use meshbridge_core::capability::Capability;
use meshbridge_core::{Adapter, Context};
use std::path::PathBuf;
use std::process::ExitCode;

/// The adapters of the binary.
pub type AdapterFor<'a> = &'a dyn Fn(MeshType) -> Option<Box<dyn Adapter>>;

#[derive(Args, Debug)]
pub struct MeshesArgs {
    /// Discover from recorded cluster objects: a file or directory (recursive: *.yaml,
    /// *.yml, *.json; `kubectl get -o yaml` lists are read too). Mesh objects among them are
    /// treated as the existing ones (rediscovery). Without -f/--source: the cluster's Mesh
    /// objects.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Same as -f, in the `run` style: `dir:PATH`.
    #[arg(long)]
    pub source: Option<String>,
    /// Also print the capability matrix of each mesh side by side (without any input: the
    /// matrix of every adapter in this build, at its default version).
    #[arg(long)]
    pub capabilities: bool,
    /// Output: `table` or `yaml` (the Mesh objects, e.g. for `kubectl apply -f -`).
    #[arg(short = 'o', long, default_value = "table")]
    pub output: String,
    /// Namespace of the Mesh objects (the controller namespace).
    #[arg(long, default_value = "meshbridge-system")]
    pub namespace: String,
    /// With a cluster: run discovery now (read Deployments, Namespaces, ConfigMaps,
    /// PeerAuthentications... and merge with the existing Meshes) instead of listing the
    /// Mesh objects.
    #[arg(long, conflicts_with_all = ["files", "source"])]
    pub discover: bool,
    /// With --discover: also write the result (create/patch Meshes; never deletes).
    #[arg(long, requires = "discover")]
    pub write: bool,
}

/// The capability callback for `meshbridge run`'s discovery loop, from the binary's
/// adapter registry.
pub fn shared_caps(
    adapter_for: fn(MeshType) -> Option<Box<dyn Adapter>>,
) -> crate::runner::SharedCaps {
    std::sync::Arc::new(move |spec: &MeshSpec| caps_with(&adapter_for)(spec))
}

fn caps_with(adapter_for: AdapterFor<'_>) -> impl Fn(&MeshSpec) -> Option<Vec<Capability>> + '_ {
    move |spec: &MeshSpec| {
        let a = adapter_for(spec.mesh_type)?;
        let cx = Context::for_mesh(&Context::default(), None, Some(spec.clone()));
        Some(a.capabilities(&cx).rows().to_vec())
    }
}

fn print_meshes(meshes: &[Mesh], capabilities: bool, yaml: bool) {
    if yaml {
        let values: Vec<serde_json::Value> = meshes
            .iter()
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect();
        print!("{}", meshbridge_core::yaml::to_yaml_stream(&values));
        return;
    }
    if meshes.is_empty() {
        println!("No mesh found.");
        return;
    }
    print!("{}", crate::table::meshes_table(meshes));
    if capabilities {
        let cols: Vec<(String, Vec<Capability>)> = meshes
            .iter()
            .map(|m| {
                (
                    m.metadata.name.clone().unwrap_or_default(),
                    m.status
                        .as_ref()
                        .map(|s| s.capabilities.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        println!();
        print!("{}", crate::table::capability_matrix(&cols));
    }
}

/// `meshbridge meshes`. `appmesh` lists the App Mesh meshes of the AWS account (given by the
/// binary when AWS credentials are configured; used with `--discover`).
pub async fn meshes(
    args: MeshesArgs,
    adapter_for: AdapterFor<'_>,
    appmesh: Option<crate::runner::ListAppMeshes>,
) -> ExitCode {
    let yaml = match args.output.as_str() {
        "table" => false,
        "yaml" => true,
        o => {
            eprintln!("meshbridge meshes: unknown output `{o}` (expected table or yaml)");
            return ExitCode::from(2);
        }
    };
    let mut files = args.files.clone();
    if let Some(src) = &args.source {
        match src.strip_prefix("dir:") {
            Some(p) if !p.is_empty() => files.push(PathBuf::from(p)),
            _ => {
                eprintln!(
                    "meshbridge meshes: --source must be dir:PATH (for the cluster, give no input)"
                );
                return ExitCode::from(2);
            }
        }
    }
    let caps = caps_with(adapter_for);
    let cfg = Config {
        namespace: args.namespace.clone(),
        ..Config::default()
    };
    // The Meshes from the cluster, printed (exit 0), or why not (exit 1).
    let shown = |r: Result<Vec<Mesh>, String>| match r {
        Ok(ms) => {
            print_meshes(&ms, args.capabilities, yaml);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meshbridge meshes: {e}");
            ExitCode::from(1)
        }
    };
    if args.discover {
        let r = discover_in_cluster(&cfg, &caps, args.write, appmesh.as_ref()).await;
        return shown(r.map_err(|e| format!("discovery failed: {e}")));
    }
    if files.is_empty() {
        if args.capabilities && !yaml {
            let cols: Vec<(String, Vec<Capability>)> = MeshType::ALL
                .iter()
                .filter_map(|t| {
                    let a = adapter_for(*t)?;
                    Some((
                        t.to_string(),
                        a.capabilities(&Context::default()).rows().to_vec(),
                    ))
                })
                .collect();
            print!("{}", crate::table::capability_matrix(&cols));
            return ExitCode::SUCCESS;
        }
        let listed = match client().await {
            Ok(c) => list_cluster_meshes(&c).await,
            Err(e) => Err(e),
        };
        return shown(listed.map_err(|e| {
            format!(
                "cannot list Mesh objects from the cluster: {e}\n(offline: meshbridge meshes -f DIR)"
            )
        }));
    }
    let (objects, problems) = crate::read_objects(&files);
    for p in &problems {
        eprintln!("{p}");
    }
    let existing: Vec<Mesh> = objects
        .iter()
        .filter(|o| {
            o.get("apiVersion").and_then(|v| v.as_str()) == Some("meshbridge.io/v1alpha1")
                && o.get("kind").and_then(|v| v.as_str()) == Some("Mesh")
        })
        .filter_map(|o| match serde_json::from_value::<Mesh>(o.clone()) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!(
                    "Mesh {}: {e}; ignored",
                    o.pointer("/metadata/name")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?")
                );
                None
            }
        })
        .collect();
    let found = crate::find_control_planes(&objects);
    let caps_ref: CapsFn = &caps;
    let meshes = crate::merge(&existing, &found, &cfg, caps_ref);
    print_meshes(&meshes, args.capabilities, yaml);
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The client of the kubeconfig (or in-cluster configuration).
async fn client() -> Result<kube::Client, String> {
    kube::Client::try_default().await.map_err(|e| e.to_string())
}

/// Discovery now; with `write`, also written as the only writer of the Meshes
/// ([`crate::kube::StatusScope::Whole`]: capabilities included, there is no controller to
/// write them), then listed back.
async fn discover_in_cluster(
    cfg: &Config,
    caps: CapsFn<'_>,
    write: bool,
    appmesh: Option<&crate::runner::ListAppMeshes>,
) -> Result<Vec<Mesh>, String> {
    let client = client().await?;
    let mut state = crate::kube::read_state(&client, cfg)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(e) = state.list_app_meshes(appmesh).await {
        eprintln!("meshbridge meshes: {e}");
    }
    let merged = crate::kube::desired(&state, cfg, caps);
    if !write {
        return Ok(merged);
    }
    let scope = crate::kube::StatusScope::Whole;
    crate::kube::write_meshes(&client, cfg, &state.existing, merged, scope)
        .await
        .map_err(|e| e.to_string())?;
    list_cluster_meshes(&client).await
}

async fn list_cluster_meshes(client: &kube::Client) -> Result<Vec<Mesh>, String> {
    let api: kube::Api<Mesh> = kube::Api::all(client.clone());
    let list = api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut v = list.items;
    v.sort_by_key(|m| (m.metadata.namespace.clone(), m.metadata.name.clone()));
    Ok(v)
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Mesh to install: istio, linkerd or envoy (meshbridge's built-in mesh).
    pub mesh: String,
    /// Version (pinned installer image); default: the version meshbridge is tested with.
    #[arg(long)]
    pub version: Option<String>,
    /// Namespace the mesh is installed into (default: the mesh's usual one).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Istio revision.
    #[arg(long)]
    pub revision: Option<String>,
    /// Name of the Install object (default: the mesh type).
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace of the Install object (the controller namespace).
    #[arg(long, default_value = "meshbridge-system")]
    pub object_namespace: String,
    /// Also print the installer Job (what the controller will create; it runs as the
    /// installer ServiceAccount the Helm chart creates with `installer.enabled=true`), or
    /// the built-in mesh's objects, for review.
    #[arg(long)]
    pub plan: bool,
    /// Create the Install in the cluster (server-side apply) instead of printing it.
    #[arg(long)]
    pub apply: bool,
}

/// `meshbridge install`.
pub async fn install(args: InstallArgs) -> ExitCode {
    let Some(t) = MeshType::parse(&args.mesh) else {
        eprintln!(
            "meshbridge install: unknown mesh `{}` (expected istio, linkerd or envoy)",
            args.mesh
        );
        return ExitCode::from(2);
    };
    let spec = InstallSpec {
        version: args.version.clone(),
        install_namespace: args.namespace.clone(),
        revision: args.revision.clone(),
        ..install::spec_of(t)
    };
    if let Err(r) = install::validate(&spec) {
        eprintln!("meshbridge install: {} ({})", r.message, r.reason);
        return ExitCode::from(2);
    }
    let name = args.name.clone().unwrap_or_else(|| t.as_str().to_string());
    if !meshbridge_core::load::is_dns_label(&name) {
        eprintln!("meshbridge install: --name `{name}` is not a DNS label");
        return ExitCode::from(2);
    }
    let obj: Install = install::new_install(&name, &args.object_namespace, spec);
    let value = match serde_json::to_value(&obj) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("meshbridge install: {e}");
            return ExitCode::from(1);
        }
    };
    if args.apply {
        let r = async {
            let client = client().await?;
            let api: kube::Api<Install> = kube::Api::namespaced(client, &args.object_namespace);
            let pp = kube::api::PatchParams::apply("meshbridge-cli");
            api.patch(&name, &pp, &kube::api::Patch::Apply(&value))
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        return match r {
            Ok(_) => {
                println!(
                    "install.meshbridge.io/{name} applied in {}",
                    args.object_namespace
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("meshbridge install: {e}");
                ExitCode::from(1)
            }
        };
    }
    let mut docs = vec![value];
    if args.plan {
        if t == MeshType::Envoy {
            docs.extend(install::builtin_objects(&obj));
        } else {
            docs.extend(install::job(&obj, install::Action::Install));
        }
    }
    print!("{}", meshbridge_core::yaml::to_yaml_stream(&docs));
    ExitCode::SUCCESS
}
