//! The discovery/Install loop `meshbridge run` runs, against a mocked API server with
//! watches: as leader it lists the cluster, writes Mesh objects and reconciles Installs into
//! Jobs, and stops on shutdown; as non-leader it makes no request; a watch event on an
//! Install or an installer Job triggers a pass long before the interval; a failed pass is
//! retried with backoff. Every test is bounded to a few seconds.

use meshbridge_core::api::meshbridge::MeshSpec;
use meshbridge_core::capability::{Capability, Feature, Level};
use meshbridge_discovery::read_objects;
use meshbridge_discovery::runner::{self, RunnerConfig, SharedCaps};
use meshbridge_test_support::FakeApi;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

const NS: &str = "meshbridge-system";
const MESHES: &str = "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/meshes";
const INSTALLS: &str = "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/installs";
const JOBS: &str = "/apis/batch/v1/namespaces/meshbridge-system/jobs";
const INSTALL_WATCH: &str = "/apis/meshbridge.io/v1alpha1/installs";
/// Installer Jobs run (and are watched) only in the controller namespace.
const JOB_WATCH: &str = JOBS;

fn caps() -> SharedCaps {
    Arc::new(|spec: &MeshSpec| {
        Some(vec![Capability {
            feature: Feature::TrafficSplit,
            level: Level::Full,
            reason: format!("{}", spec.mesh_type),
        }])
    })
}

fn load(f: &FakeApi, case: &str) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
        .join("cluster.yaml");
    for v in read_objects(&[p]).0 {
        f.insert_object(v);
    }
}

fn install(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "meshbridge.io/v1alpha1", "kind": "Install",
        "metadata": {"name": name, "namespace": NS, "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    })
}

/// A cluster with two Istio revisions (App Mesh not served).
fn cluster() -> FakeApi {
    let f = FakeApi::new();
    f.not_served("/apis/appmesh.k8s.aws/");
    load(&f, "istio-revisions");
    // The installer ServiceAccount the chart creates with installer.enabled=true.
    f.insert(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "meshbridge-installer", "namespace": NS}}));
    f
}

fn config(interval: Duration) -> RunnerConfig {
    RunnerConfig {
        debounce: Duration::from_millis(20),
        leader_poll: Duration::from_millis(50),
        ..RunnerConfig::new(NS, interval, false)
    }
}

struct Running {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

fn start(f: &FakeApi, leader: Arc<AtomicBool>, cfg: RunnerConfig) -> Running {
    let (stop, rx) = watch::channel(false);
    let handle = tokio::spawn(runner::run(f.client("meshbridge"), leader, rx, cfg, caps()));
    Running { stop, handle }
}

impl Running {
    /// Signals shutdown; the loop must return within 2 s.
    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), self.handle)
            .await
            .expect("the loop stops on shutdown")
            .unwrap();
    }
}

/// Waits (up to `secs`) until `cond` holds.
async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no request has been made for `quiet`.
async fn settle(f: &FakeApi, quiet: Duration) {
    let mut seen = usize::MAX;
    loop {
        let n = f.lock().log.len();
        if n == seen {
            return;
        }
        seen = n;
        tokio::time::sleep(quiet).await;
    }
}

fn phase(f: &FakeApi, name: &str) -> String {
    f.get_at(INSTALLS, name)
        .and_then(|v| v["status"]["phase"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test]
async fn leader_discovers_writes_meshes_reconciles_installs_and_stops_on_shutdown() {
    let f = cluster();
    f.insert_at(
        INSTALLS,
        install("istio", json!({"type": "istio", "version": "1.22.3"})),
    );
    let leader = Arc::new(AtomicBool::new(true));
    let r = start(&f, leader, config(Duration::from_secs(60)));

    until(5, "Mesh objects and an installer Job", || {
        f.names(MESHES).len() == 2 && !f.names(JOBS).is_empty()
    })
    .await;
    assert_eq!(f.names(MESHES), ["istio-1-20", "istio-1-21"]);
    until(5, "Install status", || phase(&f, "istio") == "Installing").await;
    settle(&f, Duration::from_millis(200)).await;
    let log = f.take_log();

    // It lists the cluster (narrow reads) and the Installs.
    for path in [
        "/apis/apps/v1/deployments",
        "/api/v1/namespaces",
        "/api/v1/namespaces/istio-system/configmaps/istio-1-20",
        "/apis/meshbridge.io/v1alpha1/installs",
    ] {
        assert!(
            log.iter().any(|q| q.method == "GET" && q.path == path),
            "no list of {path}"
        );
    }
    // Mesh objects: created, then their status, with discovery's field manager.
    let mesh_writes: Vec<_> = log
        .iter()
        .filter(|q| q.path.starts_with(MESHES) && q.method != "GET")
        .collect();
    assert_eq!(
        mesh_writes.iter().map(|q| q.line()).collect::<Vec<_>>(),
        [
            format!("POST {MESHES}"),
            format!("PATCH {MESHES}/istio-1-20/status"),
            format!("POST {MESHES}"),
            format!("PATCH {MESHES}/istio-1-21/status"),
        ]
    );
    for q in &mesh_writes {
        assert_eq!(
            q.query.get("fieldManager").map(String::as_str),
            Some("meshbridge-discovery"),
            "{}",
            q.line()
        );
    }
    let mesh = f.get_at(MESHES, "istio-1-21").unwrap();
    assert_eq!(mesh["spec"]["type"], "istio");
    assert_eq!(mesh["spec"]["revision"], "1-21");
    assert_eq!(mesh["status"]["conditions"][0]["type"], "Ready");
    // The Install: finalizer, RBAC by server-side apply (field manager meshbridge-install),
    // the Job.
    let inst = f.get_at(INSTALLS, "istio").unwrap();
    assert_eq!(
        inst["metadata"]["finalizers"],
        json!(["meshbridge.io/install"])
    );
    // No ServiceAccount or RBAC object is written (the installer's comes from the chart).
    assert!(
        !log.iter().any(|q| q.method != "GET"
            && (q.path.contains("/serviceaccounts") || q.path.contains("rbac.authorization"))),
        "the Install wrote a ServiceAccount or RBAC object"
    );
    assert!(
        log.iter()
            .any(|q| q.method == "POST" && q.path == JOBS && q.body["kind"] == "Job")
    );
    // Watches on Installs and installer Jobs (by label) are open.
    assert_eq!(f.watching(INSTALL_WATCH), 1);
    assert_eq!(f.watching(JOB_WATCH), 1);
    let wl = f.take_watch_log();
    let job_watch = wl.iter().find(|q| q.path == JOB_WATCH).unwrap();
    assert_eq!(
        job_watch.query.get("labelSelector").map(String::as_str),
        Some("meshbridge.io/install")
    );

    // The Job completes: the Job watch wakes the loop, the Install becomes Installed.
    let job = f.names(JOBS).pop().unwrap();
    let mut j = f.get_at(JOBS, &job).unwrap();
    j["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1});
    f.upsert(j);
    until(3, "Installed after the Job completed", || {
        phase(&f, "istio") == "Installed"
    })
    .await;

    // Shutdown: the loop returns, the watches close, no request follows.
    r.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.watching(INSTALL_WATCH), 0);
    assert_eq!(f.watching(JOB_WATCH), 0);
    f.take_log();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(f.take_log().is_empty(), "requests after shutdown");
}

#[tokio::test]
async fn non_leader_makes_no_request_until_it_leads() {
    let f = cluster();
    f.insert_at(
        INSTALLS,
        install("istio", json!({"type": "istio", "version": "1.22.3"})),
    );
    let leader = Arc::new(AtomicBool::new(false));
    let r = start(&f, leader.clone(), config(Duration::from_millis(100)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(f.take_log().is_empty(), "a non-leader made requests");
    assert!(f.take_watch_log().is_empty(), "a non-leader watched");
    assert!(f.names(MESHES).is_empty());
    assert!(f.names(JOBS).is_empty());

    // Leadership gained: the next check of the flag runs a pass.
    leader.store(true, Ordering::SeqCst);
    until(3, "Meshes and a Job once leader", || {
        f.names(MESHES).len() == 2 && !f.names(JOBS).is_empty()
    })
    .await;
    // Leadership lost: writes stop (the periodic pass no longer runs).
    leader.store(false, Ordering::SeqCst);
    settle(&f, Duration::from_millis(300)).await;
    f.take_log();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        f.take_log().is_empty(),
        "a replica that lost leadership kept working"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn install_watch_event_triggers_a_pass_before_the_interval() {
    let f = cluster();
    let leader = Arc::new(AtomicBool::new(true));
    let r = start(&f, leader, config(Duration::from_secs(60)));
    until(5, "watches open", || {
        f.watching(INSTALL_WATCH) == 1 && f.watching(JOB_WATCH) == 1
    })
    .await;
    until(5, "first pass", || f.names(MESHES).len() == 2).await;
    settle(&f, Duration::from_millis(300)).await;
    f.take_log();
    assert!(f.names(JOBS).is_empty());

    // A new Install (as `kubectl apply` would create it): a pass runs at once, not in 60 s.
    f.upsert(install(
        "linkerd",
        json!({"type": "linkerd", "version": "stable-2.14.10"}),
    ));
    until(3, "the Install's Job", || !f.names(JOBS).is_empty()).await;
    assert!(f.names(JOBS)[0].starts_with("linkerd-install-"));
    until(3, "Install status", || !phase(&f, "linkerd").is_empty()).await;
    r.shutdown().await;
}

#[tokio::test]
async fn without_events_the_interval_drives_passes() {
    let f = cluster();
    let leader = Arc::new(AtomicBool::new(true));
    let r = start(&f, leader, config(Duration::from_millis(300)));
    until(5, "first pass", || f.names(MESHES).len() == 2).await;
    // An Install stored without any watch event: only the periodic pass can see it.
    f.insert_at(
        INSTALLS,
        install("istio", json!({"type": "istio", "version": "1.22.3"})),
    );
    until(3, "the Install's Job from a periodic pass", || {
        !f.names(JOBS).is_empty()
    })
    .await;
    r.shutdown().await;
}

#[tokio::test]
async fn failed_pass_is_retried_with_backoff() {
    let f = cluster();
    // Mesh objects cannot be listed yet (CRDs not served): the pass fails.
    f.not_served("/apis/meshbridge.io/");
    let leader = Arc::new(AtomicBool::new(true));
    let r = start(&f, leader, config(Duration::from_secs(60)));
    until(3, "a failed pass", || {
        f.lock()
            .log
            .iter()
            .any(|q| q.path == MESHES && q.method == "GET")
    })
    .await;
    assert!(f.names(MESHES).is_empty());
    f.lock().not_served.clear();
    // Retried after 1 s (backoff), not after the 60 s interval.
    until(4, "Meshes after the retry", || f.names(MESHES).len() == 2).await;
    r.shutdown().await;
}

#[tokio::test]
async fn once_runs_one_pass_without_watches_and_returns() {
    let f = cluster();
    f.insert_at(
        INSTALLS,
        install("istio", json!({"type": "istio", "version": "1.22.3"})),
    );
    let (_stop, rx) = watch::channel(false);
    let cfg = RunnerConfig::new(NS, Duration::from_secs(60), true);
    tokio::time::timeout(
        Duration::from_secs(5),
        runner::run(
            f.client("meshbridge"),
            Arc::new(AtomicBool::new(true)),
            rx,
            cfg,
            caps(),
        ),
    )
    .await
    .expect("--once returns after one pass");
    assert_eq!(f.names(MESHES).len(), 2);
    assert_eq!(f.names(JOBS).len(), 1);
    assert!(f.take_watch_log().is_empty());
}

#[tokio::test]
async fn dropped_shutdown_sender_stops_the_loop() {
    let f = cluster();
    let (stop, rx) = watch::channel(false);
    let h = tokio::spawn(runner::run(
        f.client("meshbridge"),
        Arc::new(AtomicBool::new(false)),
        rx,
        config(Duration::from_secs(60)),
        caps(),
    ));
    drop(stop);
    tokio::time::timeout(Duration::from_secs(2), h)
        .await
        .expect("returns when the controller is gone")
        .unwrap();
}

#[test]
fn backoff_doubles_up_to_the_interval() {
    let i = Duration::from_secs(30);
    assert_eq!(runner::backoff(1, i), Duration::from_secs(1));
    assert_eq!(runner::backoff(2, i), Duration::from_secs(2));
    assert_eq!(runner::backoff(4, i), Duration::from_secs(8));
    assert_eq!(runner::backoff(6, i), i);
    assert_eq!(runner::backoff(u32::MAX, i), i);
    assert_eq!(
        runner::backoff(3, Duration::from_millis(500)),
        Duration::from_millis(500)
    );
}
