//! Command-line definition (flags defined once; help generated from them).

use crate::runtime::Threads;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "meshbridge",
    version,
    about = "Mesh-agnostic service-mesh control layer: SMI or Gateway API (GAMMA) in, Istio / Linkerd / App Mesh / Gateway API / Envoy out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Built once per process: the size of the `run` flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Translate SMI objects or GAMMA routes (and the Kubernetes objects they refer to) into a mesh's objects.
    Translate(crate::translate::TranslateArgs),
    /// Convert SMI TrafficSplits (and their HTTPRouteGroups) into equivalent Gateway API
    /// GAMMA routes on stdout, with a report on stderr of what changes meaning.
    Convert(crate::convert::ConvertArgs),
    /// Moving namespaces between meshes: `swap plan` lists what the new mesh cannot keep.
    Swap(crate::convert::SwapArgs),
    /// Print every CustomResourceDefinition meshbridge serves.
    Crds,
    /// The controller: watch inputs (cluster or directory), program the selected meshes.
    Run(meshbridge_controller::RunArgs),
    /// The built-in mesh without a cluster: `meshbridge local up DIR`.
    Local(meshbridge_local::LocalArgs),
    /// Echo server for demos and tests (run as a pod's command by `meshbridge local`).
    EchoServer,
    /// Discovered meshes (type, version, revision, namespaces, trust domain, mTLS) and,
    /// with --capabilities, what each can express.
    Meshes(meshbridge_discovery::cli::MeshesArgs),
    /// Create an Install object (printed, or applied with --apply) that installs a mesh.
    Install(meshbridge_discovery::cli::InstallArgs),
    /// Live traffic metrics (success rate, RPS, p50/p90/p99) per workload and, for
    /// `deploy/NAME`, per edge, from the TrafficMetrics API; like `linkerd viz stat`.
    Top(crate::top::TopArgs),
    /// Install the sidecar's traffic interception rules in this pod's network namespace (the init container's command).
    InitNet(crate::initnet::InitNetArgs),
    /// Add the built-in mesh's sidecar to Pods and pod templates (Deployments, StatefulSets,
    /// DaemonSets, Jobs, ...) of a YAML stream, exactly as the injection webhook would; like
    /// `istioctl kube-inject`. Other documents pass through unchanged.
    Inject(crate::inject::InjectArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Translate(args) => crate::translate::run(args),
        Command::Convert(args) => crate::convert::convert(args),
        Command::Swap(args) => crate::convert::swap(args),
        Command::Run(args) => {
            let mut ext = meshbridge_controller::Extensions::default();
            if args.appmesh_mode == "api" {
                ext.api_backends
                    .push(Box::new(crate::appmesh_api::AppMeshApi::new(
                        args.appmesh_mesh.clone(),
                        meshbridge_controller::run::controller_namespace(&args),
                    )));
            }
            if args.discovery && args.output == "kube" {
                // Mesh discovery and the Install reconciler (leader only, and only when
                // meshbridge writes to the cluster: `--output dir:` renders without side
                // effects).
                let interval = std::time::Duration::from_secs(args.discovery_interval.max(1));
                let installer_service_account = args.installer_service_account.clone();
                ext.tasks
                    .push(Box::new(move |cx: meshbridge_controller::TaskContext| {
                        Box::pin(async move {
                            let Some(client) = cx.client else { return };
                            let cfg = meshbridge_discovery::runner::RunnerConfig {
                                appmesh_meshes: crate::appmesh_api::mesh_lister(),
                                installer_service_account,
                                ..meshbridge_discovery::runner::RunnerConfig::new(
                                    cx.controller_namespace,
                                    interval,
                                    cx.once,
                                )
                            };
                            let caps = meshbridge_discovery::cli::shared_caps(
                                crate::registry::adapter_for,
                            );
                            meshbridge_discovery::runner::run(
                                client,
                                cx.leader,
                                cx.shutdown,
                                cfg,
                                caps,
                            )
                            .await
                        })
                    }));
            }
            ext.traffic_metrics = Some(crate::registry::traffic_metrics(
                &args.backend,
                args.prometheus_url.as_deref(),
            ));
            crate::runtime::init_tracing(&args.log);
            let adapters =
                meshbridge_controller::adapters_for(&args, &crate::registry::adapter_for, &ext);
            crate::runtime::block_on("run", Threads::Multi(None), async move {
                let res = meshbridge_controller::run_with(
                    args,
                    adapters,
                    ext,
                    crate::runtime::shutdown_signal(),
                )
                .await;
                ExitCode::from(meshbridge_controller::exit_code(res))
            })
        }
        // Two workers: the xDS server and the runtime's own loop; Envoy does the heavy lifting.
        Command::Local(args) => crate::runtime::block_on("local", Threads::Multi(Some(2)), async {
            let controls = meshbridge_local::Controls {
                stop: Box::pin(crate::runtime::shutdown_signal()),
                restart: crate::runtime::restart_signal(),
            };
            meshbridge_local::run_local(args, controls).await
        }),
        Command::EchoServer => crate::runtime::block_on(
            "echo-server",
            Threads::Multi(Some(2)),
            meshbridge_local::run_echo(),
        ),
        Command::Meshes(args) => crate::runtime::block_on(
            "meshes",
            Threads::Current,
            meshbridge_discovery::cli::meshes(
                args,
                &crate::registry::adapter_for,
                crate::appmesh_api::mesh_lister(),
            ),
        ),
        Command::Install(args) => crate::runtime::block_on(
            "install",
            Threads::Current,
            meshbridge_discovery::cli::install(args),
        ),
        Command::Top(args) => {
            crate::runtime::block_on("top", Threads::Current, crate::top::run(args))
        }
        Command::InitNet(args) => ExitCode::from(crate::initnet::run(args) as u8),
        Command::Inject(args) => crate::inject::run(args),
        Command::Crds => {
            print!("{}", meshbridge_core::crd::all_yaml());
            ExitCode::SUCCESS
        }
    }
}
