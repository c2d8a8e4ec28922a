//! `meshbridge run`: flags, wiring of source → reconciler → sink, the event loop (debounce,
//! retries, periodic resync), leader election, the metrics server and graceful shutdown.

use crate::api::ApiBackend;
use crate::engine::{Backends, Diagnostics, Engine, EngineConfig};
use crate::metrics::Metrics;
use crate::reconciler::{LeaderFlag, Reconciler, Report};
use crate::sink::Sink;
use crate::source::{Source, SyncTracker};
use crate::status::{LogStatusSink, StatusSink};
use crate::types::Msg;
use crate::{Error, Result};
use clap::Args;
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::report::Problem;
use meshbridge_core::{Adapter, Context};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Flags of `meshbridge run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Where inputs come from: `kube` (watch the cluster) or `dir:PATH` (watch a directory).
    #[arg(long, default_value = "kube")]
    pub source: String,
    /// With `--source dir`: namespace of namespaced objects that state none, as `kubectl
    /// apply -n NS` (default: `default`). An object that states another keeps its own, with
    /// a warning.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Where outputs go: `kube` (server-side apply) or `dir:PATH` (one file per object).
    #[arg(long, default_value = "kube")]
    pub output: String,
    /// Backend for namespaces without a `meshbridge.io/mesh` label: `auto` (the only Mesh
    /// object's type) or a comma-separated list of: istio, linkerd, gateway-api, appmesh
    /// (through the App Mesh API, or as App Mesh controller objects with --appmesh-mode crd).
    /// `envoy` is refused: the built-in mesh runs under `meshbridge local`.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Reconcile once and exit (0: done; 1: some input invalid or an output conflicts with a
    /// hand-written object; 2: usage; 3: writes failed).
    #[arg(long)]
    pub once: bool,
    /// Namespace of the controller: value of the `meshbridge.io/owner` label, home of the
    /// leader Lease. Default: $POD_NAMESPACE, else meshbridge-system.
    #[arg(long)]
    pub controller_namespace: Option<String>,
    /// SPIFFE trust domain (overrides a Mesh object's).
    #[arg(long)]
    pub trust_domain: Option<String>,
    /// Kubernetes cluster domain used in FQDNs.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Address of the /metrics, /healthz and /readyz endpoints (`off` to disable).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: String,
    /// Elect a leader with a Lease so several replicas are safe (only with `--output kube`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "meshbridge-controller")]
    pub lease_name: String,
    /// Lease duration in seconds.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Identity in the Lease. Default: $POD_NAME, else $HOSTNAME, else meshbridge-<pid>.
    #[arg(long)]
    pub identity: Option<String>,
    /// Quiet period before reconciling a burst of changes, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub debounce_ms: u64,
    /// Polling interval of `--source dir:`, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Full comparison of every output with the cluster, in seconds (drift is also seen
    /// immediately through watches).
    #[arg(long, default_value_t = 300)]
    pub resync_secs: u64,
    /// Log filter (tracing EnvFilter syntax); $RUST_LOG wins.
    #[arg(long, default_value = "info")]
    pub log: String,
    /// How namespaces whose backend is appmesh are programmed: `api` (the AWS App Mesh API,
    /// through the standard AWS credential chain; `AWS_ENDPOINT_URL` overrides the endpoint)
    /// or `crd` (App Mesh controller objects, appmesh.k8s.aws/v1beta2, written to --output).
    #[arg(long, default_value = "api", value_parser = ["api", "crd"])]
    pub appmesh_mode: String,
    /// App Mesh mesh for namespaces whose Mesh object sets no `appMeshName` (or that have no
    /// Mesh object). With `--appmesh-mode api` this mesh is also cleaned of meshbridge's
    /// stale resources at start.
    #[arg(long)]
    pub appmesh_mesh: Option<String>,
    /// Run mesh discovery (writes the Mesh objects) and the Install reconciler beside the
    /// controller (leader only; only with --output kube).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub discovery: bool,
    /// Seconds between discovery/Install passes; Install and installer Job changes trigger
    /// a pass at once.
    #[arg(long, default_value_t = 30)]
    pub discovery_interval: u64,
    /// ServiceAccount, in the controller namespace, that installer Jobs run as (the Helm
    /// chart creates it, bound to cluster-admin, only with installer.enabled=true; without it
    /// an Install reports InstallerNotEnabled and runs nothing).
    #[arg(long, default_value = "meshbridge-installer")]
    pub installer_service_account: String,
    /// Serve the TrafficMetrics API (metrics.smi-spec.io/v1alpha1) over HTTPS here, for the
    /// APIService `v1alpha1.metrics.smi-spec.io` (`off` to disable). Only clients with a
    /// certificate of the API server's request-header CA are answered.
    #[arg(long, default_value = "off")]
    pub traffic_metrics_addr: String,
    /// Serving certificate (PEM file) of --traffic-metrics-addr, with --traffic-metrics-key
    /// (default: a self-signed one for the Service named by --traffic-metrics-service).
    #[arg(long)]
    pub traffic_metrics_cert: Option<String>,
    /// The private key (PEM file) of --traffic-metrics-cert.
    #[arg(long)]
    pub traffic_metrics_key: Option<String>,
    /// The request-header client CA (PEM file) whose certificates may call the TrafficMetrics
    /// API (default: `requestheader-client-ca-file` of the ConfigMap
    /// kube-system/extension-apiserver-authentication).
    #[arg(long)]
    pub traffic_metrics_client_ca: Option<String>,
    /// Service (in the controller namespace) the APIService points at: the name in the
    /// self-signed certificate.
    #[arg(long, default_value = "meshbridge-traffic-metrics")]
    pub traffic_metrics_service: String,
    /// Prometheus that scrapes the mesh (Istio's or Linkerd's proxies), e.g.
    /// http://prometheus.istio-system:9090: where the TrafficMetrics numbers come from for
    /// those backends (plain http://).
    #[arg(long, value_parser = meshbridge_metrics::http::base_url)]
    pub prometheus_url: Option<String>,
    /// Serve the web dashboard (and the TrafficMetrics API, unauthenticated) over plain HTTP
    /// here (`off` to disable; in a cluster bind the pod's loopback and use
    /// `kubectl port-forward`).
    #[arg(long, default_value = "off")]
    pub ui_addr: String,
}

/// A background task `meshbridge run` starts beside the reconciler (e.g. mesh discovery and
/// the Install reconciler). It gets a [`TaskContext`] and should return when
/// `shutdown` turns true (or, when `once`, after one pass).
pub type Task = Box<
    dyn FnOnce(TaskContext) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send,
>;

/// What a [`Task`] gets.
#[derive(Clone)]
pub struct TaskContext {
    /// The cluster, when `--source` or `--output` is `kube`.
    pub client: Option<kube::Client>,
    /// True while this replica is the leader (only the leader should write).
    pub leader: LeaderFlag,
    pub controller_namespace: String,
    /// `--once`: do one pass and return.
    pub once: bool,
    /// Turns true on shutdown.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// What the binary plugs into `meshbridge run` besides the adapters.
#[derive(Default)]
pub struct Extensions {
    /// Backends programmed through an API (their mesh's adapter must also be passed).
    pub api_backends: Vec<Box<dyn ApiBackend>>,
    /// Background tasks.
    pub tasks: Vec<Task>,
    /// Where the TrafficMetrics numbers come from (chosen by the binary from the backends
    /// and `--prometheus-url`); `Err`: why there are none.
    pub traffic_metrics: Option<std::result::Result<Arc<dyn meshbridge_metrics::Numbers>, String>>,
}

/// Parsed `--source` / `--output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Kube,
    Dir(PathBuf),
}

impl Endpoint {
    pub fn parse(s: &str, flag: &str) -> Result<Endpoint> {
        if s == "kube" {
            Ok(Endpoint::Kube)
        } else if let Some(p) = s.strip_prefix("dir:") {
            if p.is_empty() {
                return Err(Error::Usage(format!("{flag} dir: needs a path")));
            }
            Ok(Endpoint::Dir(PathBuf::from(p)))
        } else {
            Err(Error::Usage(format!(
                "{flag} `{s}`: expected `kube` or `dir:PATH`"
            )))
        }
    }
}

/// The adapters `meshbridge run` renders with, from the binary's registry: the
/// Kubernetes-object backends, App Mesh in its CRD form (`--appmesh-mode crd`) and the
/// meshes of API backends. The built-in Envoy mesh is served by `meshbridge local`.
pub fn adapters_for(
    args: &RunArgs,
    adapter_for: &dyn Fn(MeshType) -> Option<Box<dyn Adapter>>,
    ext: &Extensions,
) -> Vec<Box<dyn Adapter>> {
    let api_meshes: Vec<MeshType> = ext.api_backends.iter().map(|b| b.mesh_type()).collect();
    MeshType::ALL
        .into_iter()
        .filter(|m| {
            matches!(
                m,
                MeshType::Istio | MeshType::Linkerd | MeshType::GatewayApi
            ) || (*m == MeshType::AppMesh && args.appmesh_mode == "crd")
                || api_meshes.contains(m)
        })
        .filter_map(adapter_for)
        .collect()
}

/// The process exit code for what [`run_with`] returned (0 done, 1 invalid input or
/// conflicts, 2 usage, 3 writes or the environment failed), printing the error.
pub fn exit_code(res: Result<u8>) -> u8 {
    match res {
        Ok(code) => code,
        Err(Error::Usage(e)) => {
            eprintln!("meshbridge run: {e}");
            2
        }
        Err(e) => {
            eprintln!("meshbridge run: {e}");
            3
        }
    }
}

fn identity(args: &RunArgs) -> String {
    args.identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("meshbridge-{}", std::process::id()))
}

/// The controller namespace: `--controller-namespace`, else $POD_NAMESPACE, else
/// `meshbridge-system`.
pub fn controller_namespace(args: &RunArgs) -> String {
    args.controller_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "meshbridge-system".into())
}

/// Validates flags against the compiled adapters.
pub fn engine_config(args: &RunArgs, available: &[MeshType]) -> Result<EngineConfig> {
    let backends = Backends::parse(&args.backend).map_err(Error::Usage)?;
    if let Backends::List(v) = &backends {
        for m in v {
            if *m == MeshType::Envoy {
                return Err(Error::Usage(
                    "--backend envoy: the built-in mesh is served by `meshbridge local` (xDS control plane and Envoy sidecars on this machine); serving it inside a cluster (sidecar injection, CA in a Secret) is not implemented".into(),
                ));
            }
            if !available.contains(m) {
                return Err(Error::Usage(format!(
                    "--backend {m}: not available in `meshbridge run` (available: {})",
                    available
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let controller_namespace = controller_namespace(args);
    Ok(EngineConfig {
        base: Context {
            controller_namespace,
            cluster_domain: args.cluster_domain.clone(),
            ..Context::default()
        },
        trust_domain: args.trust_domain.clone(),
        backends,
    })
}

/// Runs the controller until `shutdown` completes (the binary passes SIGINT/SIGTERM) or,
/// with `--once`, after one pass; returns the exit code.
pub async fn run_with(
    args: RunArgs,
    adapters: Vec<Box<dyn Adapter>>,
    ext: Extensions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<u8> {
    let source_ep = Endpoint::parse(&args.source, "--source")?;
    let output_ep = Endpoint::parse(&args.output, "--output")?;
    let available: Vec<MeshType> = adapters.iter().map(|a| a.mesh_type()).collect();
    let cfg = engine_config(&args, &available)?;
    let controller_ns = cfg.base.controller_namespace.clone();
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let tracker = SyncTracker::default();

    // Bound first: a taken address is a usage error naming the flag, before any work.
    let metrics_listener = if args.once || args.metrics_addr == "off" {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&args.metrics_addr)
                .await
                .map_err(|e| {
                    Error::Usage(format!(
                        "--metrics-addr {}: cannot listen: {e} (choose another address, e.g. --metrics-addr 127.0.0.1:9090, or --metrics-addr off)",
                        args.metrics_addr
                    ))
                })?,
        )
    };
    let needs_client = source_ep == Endpoint::Kube || output_ep == Endpoint::Kube;
    let client = if needs_client {
        Some(
            kube::Client::try_default()
                .await
                .map_err(|e| Error::Kube(format!("cannot reach the cluster: {e}")))?,
        )
    } else {
        None
    };
    let discovery = client.clone().map(crate::discovery::Discovery::new);
    let input_resources = crate::source::kube::SharedInputResources::default();
    let dir_problems: Arc<Mutex<Vec<Problem>>> = Arc::default();

    let source: Box<dyn Source> = match (&source_ep, &client, &discovery) {
        (Endpoint::Dir(p), _, _) => Box::new(crate::source::dir::DirSource {
            root: p.clone(),
            opts: meshbridge_core::load::LoadOptions {
                default_namespace: args.namespace.clone(),
            },
            poll: Duration::from_millis(args.poll_ms.max(10)),
            debounce: Duration::from_millis(args.debounce_ms.max(10)),
            problems: dir_problems.clone(),
        }),
        (Endpoint::Kube, Some(c), Some(d)) => Box::new(crate::source::kube::KubeSource {
            client: c.clone(),
            discovery: d.clone(),
            resources: input_resources.clone(),
        }),
        _ => return Err(Error::Usage("--source kube needs a cluster".into())),
    };
    let sink: Box<dyn Sink> = match (&output_ep, &client, &discovery) {
        (Endpoint::Dir(p), _, _) => {
            Box::new(crate::sink::dir::DirSink::new(p.clone(), &controller_ns))
        }
        (Endpoint::Kube, Some(c), Some(d)) => Box::new(crate::sink::kube::KubeSink::new(
            c.clone(),
            d.clone(),
            &controller_ns,
            if args.once { None } else { Some(tx.clone()) },
            tracker.clone(),
        )),
        _ => return Err(Error::Usage("--output kube needs a cluster".into())),
    };
    let status: Box<dyn StatusSink> = match (&source_ep, &client) {
        (Endpoint::Kube, Some(c)) if output_ep == Endpoint::Kube => {
            Box::new(crate::sink::kube::KubeStatusSink::new(
                c.clone(),
                input_resources.clone(),
                Some(identity(&args)),
            ))
        }
        _ => Box::new(LogStatusSink::default()),
    };

    let elect = args.leader_elect && !args.once && output_ep == Endpoint::Kube;
    let leader: LeaderFlag = Arc::new(AtomicBool::new(!elect));
    let engine = Engine::new(cfg, adapters);
    let mut rec = Reconciler::new(engine, sink, status, metrics.clone(), leader.clone());
    for b in ext.api_backends {
        rec.add_api_backend(b);
    }
    if !args.once {
        let numbers = ext.traffic_metrics.unwrap_or_else(|| {
            Err("this build of meshbridge run has no source of traffic metrics".into())
        });
        if let Some(state) =
            crate::traffic::start(&args, client.as_ref(), &controller_ns, numbers).await?
        {
            rec.set_ui(state);
        }
    }

    source
        .start(tx.clone(), tracker.clone(), !args.once)
        .await?;

    let leader_changed = Arc::new(Notify::new());
    let (stop_tasks, shutdown_rx) = tokio::sync::watch::channel(false);
    let task_cx = TaskContext {
        client: client.clone(),
        leader: leader.clone(),
        controller_namespace: controller_ns.clone(),
        once: args.once,
        shutdown: shutdown_rx,
    };
    let tasks: Vec<_> = ext
        .tasks
        .into_iter()
        .map(|t| tokio::spawn(t(task_cx.clone())))
        .collect();
    let join_tasks = |tasks: Vec<tokio::task::JoinHandle<()>>| async move {
        for t in tasks {
            if tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .is_err()
            {
                tracing::warn!("a background task did not stop within 10 s");
            }
        }
    };

    if args.once {
        drop(tx);
        let code = run_once(rec, rx, &tracker, &dir_problems).await;
        join_tasks(tasks).await;
        return Ok(code);
    }

    if let Some(listener) = metrics_listener {
        tokio::spawn(crate::metrics::serve(listener, metrics.clone()));
    }
    let stop_election = Arc::new(Notify::new());
    let election = if elect && let Some(c) = &client {
        let cfg = crate::leader::LeaseConfig {
            namespace: controller_ns.clone(),
            name: args.lease_name.clone(),
            identity: identity(&args),
            lease_duration: Duration::from_secs(args.lease_duration.max(2)),
            renew_every: Duration::from_secs((args.lease_duration / 3).max(1)),
        };
        let mut el = crate::leader::Elector::new(c.clone(), cfg);
        if el.first_step().await? == crate::leader::Step::Leader {
            leader.store(true, Ordering::SeqCst);
        }
        Some(tokio::spawn(el.run(
            leader.clone(),
            leader_changed.clone(),
            stop_election.clone(),
        )))
    } else {
        None
    };
    let code = event_loop(
        &mut rec,
        rx,
        &tracker,
        leader_changed,
        Duration::from_millis(args.debounce_ms),
        Duration::from_secs(args.resync_secs.max(1)),
        shutdown,
    )
    .await;
    let _ = stop_tasks.send(true);
    join_tasks(tasks).await;
    stop_election.notify_one();
    if let Some(h) = election {
        let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
    }
    Ok(code)
}

/// Receives until every stream is synced and the queue is empty.
async fn drain_until_synced(
    rec: &mut Reconciler,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    tracker: &SyncTracker,
) -> bool {
    loop {
        while let Ok(m) = rx.try_recv() {
            if let Msg::Synced(id) = m {
                tracker.done(id);
            }
            rec.handle(m);
        }
        if tracker.all_synced() {
            return true;
        }
        match rx.recv().await {
            Some(m) => {
                if let Msg::Synced(id) = &m {
                    tracker.done(*id);
                }
                rec.handle(m);
            }
            None => return tracker.all_synced(),
        }
    }
}

async fn run_once(
    mut rec: Reconciler,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    tracker: &SyncTracker,
    dir_problems: &Arc<Mutex<Vec<Problem>>>,
) -> u8 {
    if !drain_until_synced(&mut rec, &mut rx, tracker).await {
        eprintln!("meshbridge run: the source ended before its initial listing");
        return 3;
    }
    let report = rec.reconcile().await;
    // The one severity rule and format (core's `Diagnostics`), as `translate` and `local`.
    let mut diags = Diagnostics::default();
    for p in dir_problems
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        diags.problem(p);
    }
    diags.engine(&rec.engine);
    for (k, why) in &report.conflicts {
        diags.error(format!("conflict: {k}: {why}"));
    }
    let api_conflicts: Vec<String> = report.api_conflicts().collect();
    for c in &api_conflicts {
        diags.error(format!("conflict: {c}"));
    }
    for l in diags.lines() {
        eprintln!("{l}");
    }
    print_summary(&report);
    if !report.errors.is_empty() {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        return 3;
    }
    if diags.failed() { 1 } else { 0 }
}

fn print_summary(r: &Report) {
    for (m, a) in &r.api {
        tracing::info!(
            mesh = %m,
            changed = a.changes.len(),
            mutating_calls = a.mutating_calls,
            read_calls = a.read_calls,
            conflicts = a.conflicts.len(),
            errors = a.errors.len(),
            "synced through the API"
        );
    }
    tracing::info!(
        applied = r.applied.len(),
        deleted = r.deleted.len(),
        conflicts = r.conflicts.len(),
        status_writes = r.status_writes.len(),
        "reconciled"
    );
}

/// The long-running loop. Returns the exit code (0 on a signal-driven shutdown).
pub async fn event_loop(
    rec: &mut Reconciler,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    tracker: &SyncTracker,
    leader_changed: Arc<Notify>,
    debounce: Duration,
    resync: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> u8 {
    tokio::pin!(shutdown);
    // Initial sync: nothing is written before every source and output watch has listed.
    tokio::select! {
        ok = drain_until_synced(rec, &mut rx, tracker) => {
            if !ok {
                tracing::error!("a source ended before its initial listing");
                return 3;
            }
        }
        _ = &mut shutdown => return 0,
    }
    rec.metrics().synced.store(true, Ordering::Relaxed);
    tracing::info!(inputs = rec.engine.len(), "initial sync done");
    let mut backoff = Duration::from_millis(500);
    let mut retry_at: Option<tokio::time::Instant>;
    let mut resync_tick = tokio::time::interval(resync);
    resync_tick.tick().await;
    loop {
        {
            // Debounce: absorb a burst of changes before rendering.
            let deadline = tokio::time::sleep(debounce);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => { rec.handle(m); }
                        None => break,
                    },
                    _ = &mut deadline => break,
                }
            }
            let report = rec.reconcile().await;
            if report.writes() > 0 || !report.status_writes.is_empty() {
                print_summary(&report);
            }
            if !report.errors.is_empty() || rec.has_pending() && !report.not_leader {
                retry_at = Some(tokio::time::Instant::now() + backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            } else {
                retry_at = None;
                backoff = Duration::from_millis(500);
            }
        }
        let retry = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => rec.handle(m),
                None => { tracing::warn!("all sources ended"); return 0; }
            },
            _ = leader_changed.notified() => {}
            _ = resync_tick.tick() => rec.resync(),
            _ = retry => {}
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                return 0;
            }
        }
    }
}
