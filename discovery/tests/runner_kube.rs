//! The discovery/Install loop `meshbridge run` runs, against a mocked API server with
//! watches: as leader it lists the cluster, writes Mesh objects and reconciles Installs into
//! Jobs, and stops on shutdown; as non-leader it makes no request; a watch event on an
//! Install or an installer Job triggers a pass long before the interval; a failed pass is
//! retried with backoff. Every test is bounded to a few seconds.

mod common;

use common::{
    ALL_INSTALLS as INSTALL_WATCH, INSTALLS, JOBS, MESHES, NS, condition_of, echo_caps, fake,
    install, job_ended, load, phase, run_once, service_account, shared, srm, until, writes,
};
use meshbridge_discovery::runner::{self, RunnerConfig};
use meshbridge_test_support::{FakeApi, Req};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Installer Jobs run (and are watched) only in the controller namespace.
const JOB_WATCH: &str = JOBS;

/// A cluster with two Istio revisions (App Mesh not served).
fn cluster() -> FakeApi {
    let f = fake();
    load(&f, "istio-revisions");
    // The installer ServiceAccount the chart creates with installer.enabled=true.
    f.insert(service_account("meshbridge-installer"));
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
    let handle = tokio::spawn(runner::run(
        f.client("meshbridge"),
        leader,
        rx,
        cfg,
        shared(echo_caps),
    ));
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
    j["status"] = job_ended("Complete", "");
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
    run_once(&f, shared(echo_caps)).await;
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
        shared(echo_caps),
    ));
    drop(stop);
    tokio::time::timeout(Duration::from_secs(2), h)
        .await
        .expect("returns when the controller is gone")
        .unwrap();
}

/// What the controller writes on a Mesh (`meshbridge run`'s server-side apply of its
/// status, field manager `meshbridge`): `capabilities`, `observedGeneration` and its
/// conditions. Stored as a real API server leaves the status after that apply — the
/// controller's conditions merged by `type` into the list beside discovery's (the CRD's
/// `x-kubernetes-list-type: map`); the fake's apply replaces lists whole, so the result is
/// stored directly.
fn controller_writes_status(f: &FakeApi, mesh: &str) {
    f.edit(MESHES, mesh, |m| {
        let st = &mut m["status"];
        st["observedGeneration"] = json!(1);
        st["capabilities"] =
            json!([{"feature": "trafficSplit", "level": "Partial", "reason": "the controller's"}]);
        let conditions = st["conditions"]
            .as_array_mut()
            .expect("discovery's conditions");
        for t in ["Accepted", "OutputsWritten", "Supported"] {
            conditions.push(
                json!({"type": t, "status": "True", "reason": t, "message": "",
                                   "observedGeneration": 1}),
            );
        }
    });
}

fn condition_types(m: &Value) -> Vec<String> {
    m["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["type"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn beside_the_controller_a_pass_writes_only_what_discovery_owns() {
    let f = cluster();
    let cfg = RunnerConfig::new(NS, Duration::from_secs(60), true);
    let caps = shared(echo_caps);
    let leader = AtomicBool::new(true);
    let pass = || async { runner::pass(&f.client("meshbridge"), &cfg, &caps, &leader).await };

    // 1. New Meshes: their status is discovery's part only — no capabilities (the adapters'
    //    matrices are the controller's to write), no observedGeneration.
    let r = pass().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let meshes = f.names(MESHES);
    assert_eq!(meshes, ["istio-1-20", "istio-1-21"]);
    let log = f.take_log();
    let status_writes: Vec<&Req> = log
        .iter()
        .filter(|q| {
            q.method == "PATCH" && q.path.starts_with(MESHES) && q.path.ends_with("/status")
        })
        .collect();
    assert_eq!(status_writes.len(), 2);
    for q in &status_writes {
        assert_eq!(
            q.content_type,
            "application/json-patch+json",
            "{}",
            q.line()
        );
        let body = q.body.to_string();
        assert!(!body.contains("capabilities"), "{}: {body}", q.line());
    }
    for name in &meshes {
        let m = f.get_at(MESHES, name).unwrap();
        let fields: Vec<&String> = m["status"].as_object().unwrap().keys().collect();
        assert_eq!(fields, ["conditions", "discovered"], "{name}");
        assert_eq!(condition_types(&m), ["Ready", "VersionResolved"], "{name}");
        assert_eq!(
            m["status"]["discovered"]["revision"],
            name.trim_start_matches("istio-")
        );
    }

    // 2. The controller writes its part; the next pass writes nothing at all.
    for name in &meshes {
        controller_writes_status(&f, name);
    }
    let controllers = |m: &Value| {
        let c = condition_types(m);
        (
            m["status"]["capabilities"].clone(),
            m["status"]["observedGeneration"].clone(),
            c.into_iter()
                .filter(|t| !["Ready", "VersionResolved"].contains(&t.as_str()))
                .collect::<Vec<_>>(),
        )
    };
    let before = controllers(&f.get_at(MESHES, "istio-1-21").unwrap());
    f.take_log();
    let r = pass().await;
    assert_eq!(r.discovery, Some(Default::default()));
    assert_eq!(writes(&f), Vec::<String>::new());

    // 3. A control plane goes: discovery patches its Ready condition, in place; the
    //    controller's capabilities, observedGeneration and conditions stay as they were.
    f.remove_at(
        "/apis/apps/v1/namespaces/istio-system/deployments",
        "istiod-1-21",
    );
    let r = pass().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(writes(&f), [format!("PATCH {MESHES}/istio-1-21/status")]);
    let m = f.get_at(MESHES, "istio-1-21").unwrap();
    let (status, reason, _) = srm(&condition_of(&m, "Ready"));
    assert_eq!((status.as_str(), reason.as_str()), ("False", "NotFound"));
    assert_eq!(controllers(&m), before);
    assert_eq!(
        condition_types(&m),
        [
            "Ready",
            "VersionResolved",
            "Accepted",
            "OutputsWritten",
            "Supported"
        ]
    );
    pass().await;
    assert_eq!(writes(&f), Vec::<String>::new());
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
