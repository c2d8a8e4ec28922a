//! The discovery and Install loop `meshbridge run` runs beside its reconciler.
//!
//! While this replica is the leader, each pass runs discovery ([`kube::read_state`] →
//! [`kube::desired`] → [`kube::write_meshes`]: Mesh objects created/patched only where they
//! differ) and one [`kube::reconcile_install`] step for every Install. Beside the
//! controller, discovery writes only its own part of a Mesh's status
//! ([`kube::StatusScope::Owned`]: `status.discovered`, the `Ready` and `VersionResolved`
//! conditions); `status.capabilities` and the other conditions are the controller's. Passes run every
//! `interval`, promptly (after a short debounce) when an Install or an installer Job changes
//! (kube-runtime watchers, the Jobs by the `meshbridge.io/install` label), and sooner after a
//! failed pass (exponential backoff from 1 s up to the interval). Non-leaders make no
//! request at all; the watchers start with the first pass as leader. The loop returns when
//! `shutdown` turns true (or its sender is dropped), or after one pass when `once`.
//!
//! This module does not depend on the controller crate: the binary adapts the controller's
//! task context to [`run`].

use crate::install::INSTALL_LABEL;
use crate::kube::{self as k, Step};
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use meshbridge_core::api::meshbridge::{Install, MeshSpec};
use meshbridge_core::capability::Capability;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The capability callback of [`crate::CapsFn`], shareable across tasks.
pub type SharedCaps = Arc<dyn Fn(&MeshSpec) -> Option<Vec<Capability>> + Send + Sync>;

/// The error of a [`ListAppMeshes`] call: the AWS SDK's own error, typed, behind a box
/// (this crate does not depend on the AWS SDK).
pub type ListError = Box<dyn std::error::Error + Send + Sync>;

/// Lists the App Mesh meshes of the AWS account and region (`ListMeshes`); the binary
/// provides it (this crate does not depend on the AWS SDK) when AWS credentials are
/// configured.
pub type ListAppMeshes = Arc<
    dyn Fn() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Vec<String>, ListError>> + Send>,
        > + Send
        + Sync,
>;

/// Settings of the loop.
#[derive(Clone)]
pub struct RunnerConfig {
    /// Namespace of the Mesh objects (the controller namespace).
    pub namespace: String,
    /// Time between passes when nothing changes.
    pub interval: Duration,
    /// Quiet time after a watch event before the pass (coalesces bursts).
    pub debounce: Duration,
    /// While not the leader: how often the leader flag is checked.
    pub leader_poll: Duration,
    /// One pass (as leader), then return.
    pub once: bool,
    /// App Mesh meshes through the AWS API, when credentials exist.
    pub appmesh_meshes: Option<ListAppMeshes>,
    /// The ServiceAccount installer Jobs run as (`meshbridge run
    /// --installer-service-account`, default `meshbridge-installer`); it must exist in
    /// `namespace` (the Helm chart creates it with `installer.enabled=true`).
    pub installer_service_account: String,
}

impl RunnerConfig {
    pub fn new(namespace: impl Into<String>, interval: Duration, once: bool) -> RunnerConfig {
        RunnerConfig {
            namespace: namespace.into(),
            interval: interval.max(Duration::from_millis(10)),
            debounce: Duration::from_millis(200),
            leader_poll: Duration::from_secs(1),
            once,
            appmesh_meshes: None,
            installer_service_account: crate::install::DEFAULT_INSTALLER_SERVICE_ACCOUNT.into(),
        }
    }
}

/// What one pass did (for logs and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub discovery: Option<k::DiscoveryReport>,
    /// `namespace/name` → the step taken.
    pub installs: Vec<(String, Step)>,
    /// Everything that failed (the pass is retried with backoff).
    pub errors: Vec<String>,
}

/// One pass: discovery, then one step for every Install (skipped if leadership was lost
/// meanwhile). Errors of one part do not stop the other.
pub async fn pass(
    client: &Client,
    cfg: &RunnerConfig,
    caps: &SharedCaps,
    leader: &AtomicBool,
) -> PassReport {
    let mut report = PassReport::default();
    let dcfg = crate::Config {
        namespace: cfg.namespace.clone(),
        ..crate::Config::default()
    };
    match k::read_state(client, &dcfg).await {
        Ok(mut state) => {
            if let Some(e) = state.list_app_meshes(cfg.appmesh_meshes.as_ref()).await {
                tracing::warn!("{e}");
            }
            let merged = k::desired(&state, &dcfg, &**caps);
            let scope = k::StatusScope::Owned;
            match k::write_meshes(client, &dcfg, &state.existing, merged, scope).await {
                Ok(r) => report.discovery = Some(r),
                Err(e) => report.errors.push(format!("discovery: {e}")),
            }
        }
        Err(e) => report.errors.push(format!("discovery: {e}")),
    }
    if !leader.load(Ordering::SeqCst) {
        return report;
    }
    let icfg = k::InstallConfig {
        namespace: cfg.namespace.clone(),
        installer_service_account: cfg.installer_service_account.clone(),
    };
    match k::reconcile_all_installs(client, &icfg).await {
        Ok(results) => {
            for (key, r) in results {
                match r {
                    Ok(step) => report.installs.push((key, step)),
                    Err(e) => report.errors.push(format!("install {key}: {e}")),
                }
            }
        }
        Err(e) => report.errors.push(format!("installs: {e}")),
    }
    report
}

fn log(report: &PassReport) {
    if let Some(d) = &report.discovery
        && (!d.created.is_empty() || !d.updated.is_empty() || !d.status_written.is_empty())
    {
        tracing::info!(
            created = ?d.created,
            updated = ?d.updated,
            status = ?d.status_written,
            "discovery wrote Mesh objects"
        );
    }
    for (key, step) in &report.installs {
        tracing::debug!(install = %key, ?step, "install reconciled");
    }
    for e in &report.errors {
        tracing::warn!("{e}");
    }
}

/// Delay before retrying after `failures` failed passes in a row: 1 s, 2 s, 4 s … capped
/// at `interval`.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(16);
    Duration::from_secs(secs).min(interval)
}

/// Watches Installs (all namespaces) and installer Jobs (label `meshbridge.io/install`, in
/// the controller namespace, the only one where they run); every change after the initial
/// list, and the end of each (re)list, wakes the loop.
fn start_watchers(
    client: &Client,
    namespace: &str,
    wake: Arc<Notify>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let installs: Api<Install> = Api::all(client.clone());
    let jobs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &crate::resources::JOB.api_resource(),
    );
    vec![
        wake_on(installs, watcher::Config::default(), wake.clone()),
        wake_on(jobs, watcher::Config::default().labels(INSTALL_LABEL), wake),
    ]
}

/// A task that watches `api` and wakes the loop on every event that [`wakes`] it.
fn wake_on<K>(api: Api<K>, cfg: watcher::Config, wake: Arc<Notify>) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut s = watcher(api, cfg).default_backoff().boxed();
        while let Some(ev) = s.next().await {
            if wakes(&ev) {
                wake.notify_one();
            }
        }
    })
}

fn wakes<K>(ev: &Result<watcher::Event<K>, watcher::Error>) -> bool {
    match ev {
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => true,
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => false,
        Err(e) => {
            tracing::debug!("discovery watch: {e}");
            false
        }
    }
}

/// Aborts the watcher tasks when the loop returns.
struct Watchers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watchers {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Resolves when `shutdown` is true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// The loop (see the module documentation). `caps` feeds the merge only: the capability
/// matrices on the Meshes are the controller's to write.
pub async fn run(
    client: Client,
    leader: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
    cfg: RunnerConfig,
    caps: SharedCaps,
) {
    let wake = Arc::new(Notify::new());
    let mut watchers: Option<Watchers> = None;
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let is_leader = leader.load(Ordering::SeqCst);
        if is_leader {
            if watchers.is_none() && !cfg.once {
                watchers = Some(Watchers(start_watchers(
                    &client,
                    &cfg.namespace,
                    wake.clone(),
                )));
            }
            let report = tokio::select! {
                r = pass(&client, &cfg, &caps, &leader) => r,
                _ = stopped(&mut shutdown) => return,
            };
            log(&report);
            failures = if report.errors.is_empty() {
                0
            } else {
                failures.saturating_add(1)
            };
        }
        if cfg.once {
            return;
        }
        let wait = if !is_leader {
            cfg.leader_poll.min(cfg.interval)
        } else if failures > 0 {
            backoff(failures, cfg.interval)
        } else {
            cfg.interval
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {
                // Coalesce a burst of events (our own writes come back as events too).
                tokio::select! {
                    _ = tokio::time::sleep(cfg.debounce) => {}
                    _ = stopped(&mut shutdown) => return,
                }
            }
            _ = stopped(&mut shutdown) => return,
        }
    }
}
