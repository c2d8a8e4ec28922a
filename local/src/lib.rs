//! `meshbridge local` (the built-in mesh without a cluster) and `meshbridge echo-server`.

pub mod echo;
mod envoy_bin;
mod error;
pub mod inputs;
mod metrics;
mod pods;
pub mod procs;
pub mod runtime;

use std::path::PathBuf;
use std::process::ExitCode;

pub use envoy_bin::find_envoy;
pub use error::Error;
pub use inputs::Inputs;
pub use runtime::{Controls, UpOptions, up};

/// `meshbridge local ...`
#[derive(clap::Args, Debug)]
pub struct LocalArgs {
    #[command(subcommand)]
    pub command: LocalCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LocalCommand {
    /// Run the mesh described by the Kubernetes-shaped YAML in DIR: control plane, every
    /// pod's program and one Envoy sidecar per pod on loopback addresses. Prints one JSON line
    /// per pod, then `ready`; edits to DIR apply live; Ctrl-C stops everything.
    Up(UpArgs),
}

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Directory of YAML/JSON manifests (Namespaces, ServiceAccounts, Services, Pods or
    /// Deployments, SMI objects).
    pub dir: PathBuf,
    /// State directory (CA key, certificates, bootstraps, logs).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// xDS port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub xds_port: u16,
    /// Pods get 127.SUBNET.0.N and their programs 127.SUBNET.1.N.
    #[arg(long, default_value_t = 0)]
    pub subnet: u8,
    /// Use delta (incremental) xDS.
    #[arg(long)]
    pub delta: bool,
    /// Workload certificate lifetime in seconds (rotated at two thirds).
    #[arg(long, default_value_t = 3600)]
    pub cert_ttl: u64,
    /// Lifetime of each sidecar's xDS client certificate in seconds (rotated at two thirds
    /// through a file-based SDS secret the sidecar watches).
    #[arg(long, default_value_t = 30 * 86400)]
    pub xds_cert_ttl: u64,
    /// Envoy binary (default: $MESHBRIDGE_ENVOY, else `envoy` on PATH).
    #[arg(long)]
    pub envoy: Option<PathBuf>,
    /// SPIFFE trust domain of the workload identities (overrides the `envoy` Mesh object's
    /// `trustDomain`; default: that, else cluster.local).
    #[arg(long)]
    pub trust_domain: Option<String>,
    /// Namespace of DIR's namespaced objects that state none, as `kubectl apply -n NS`
    /// (default: `default`). An object that states another keeps its own, with a warning.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Where the web dashboard and the TrafficMetrics API
    /// (`/apis/metrics.smi-spec.io/v1alpha1`) are served; printed as the first JSON line
    /// (`{"ui": …, "metrics": …}`). Port 0: any free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub ui_addr: String,
    /// How often every sidecar's statistics are read, in milliseconds (at least 50).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..))]
    pub scrape_interval_ms: u64,
    /// Window of the TrafficMetrics answers, in seconds (at least 1).
    #[arg(long, default_value_t = meshbridge_core::metrics::DEFAULT_WINDOW_S, value_parser = clap::value_parser!(u64).range(1..))]
    pub metrics_window: u64,
}

/// `meshbridge local up`: runs until `controls.stop` (the caller provides the runtime and
/// turns signals into [`Controls`]).
pub async fn run_local(args: LocalArgs, controls: Controls) -> ExitCode {
    let LocalCommand::Up(a) = args.command;
    if a.cert_ttl < 10 || a.xds_cert_ttl < 10 {
        eprintln!("meshbridge local: --cert-ttl and --xds-cert-ttl must be at least 10 seconds");
        return ExitCode::from(2);
    }
    let opts = UpOptions {
        dir: a.dir,
        state_dir: a.state_dir,
        xds_port: a.xds_port,
        subnet: a.subnet,
        delta: a.delta,
        cert_ttl: std::time::Duration::from_secs(a.cert_ttl),
        xds_cert_ttl: std::time::Duration::from_secs(a.xds_cert_ttl),
        envoy: a.envoy,
        trust_domain: a.trust_domain,
        namespace: a.namespace,
        ui_addr: a.ui_addr,
        scrape_interval: std::time::Duration::from_millis(a.scrape_interval_ms),
        metrics_window: std::time::Duration::from_secs(a.metrics_window),
    };
    let res = up(opts, controls).await;
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshbridge local: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `meshbridge echo-server` (the caller provides the runtime).
pub async fn run_echo() -> ExitCode {
    let res = match echo::EchoConfig::from_env() {
        Ok(cfg) => echo::serve(cfg).await,
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        local: LocalCommand,
    }

    #[test]
    fn up_takes_a_default_namespace() {
        let Cli {
            local: LocalCommand::Up(a),
        } = Cli::parse_from(["local", "up", "DIR", "-n", "shop"]);
        assert_eq!(a.namespace.as_deref(), Some("shop"));
        let Cli {
            local: LocalCommand::Up(a),
        } = Cli::parse_from(["local", "up", "DIR"]);
        assert_eq!(a.namespace, None);
    }

    #[test]
    fn metrics_settings_out_of_range_are_usage_errors() {
        for (flag, value) in [("--scrape-interval-ms", "49"), ("--metrics-window", "0")] {
            let err = match Cli::try_parse_from(["local", "up", "DIR", flag, value]) {
                Ok(_) => panic!("{flag} {value} was accepted"),
                Err(e) => e,
            };
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(err.to_string().contains(flag), "{err}");
        }
        let Cli {
            local: LocalCommand::Up(a),
        } = Cli::parse_from(["local", "up", "DIR"]);
        assert_eq!((a.scrape_interval_ms, a.metrics_window), (1000, 30));
    }
}
