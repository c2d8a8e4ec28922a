//! The Install lifecycle around deletion, the installer ServiceAccount and the built-in
//! mesh's readiness, against the fake API server (meshbridge-test-support):
//! - deleting an Install while its install Job runs: `Uninstalling` status is written, the
//!   install Job is deleted (propagationPolicy Foreground) before the uninstall Job is
//!   created, the finalizer goes when the uninstall completes and the object is gone;
//! - a failed uninstall: `Ready=False UninstallFailed` with the Job's failure and the way
//!   out; `meshbridge.io/retry-uninstall` runs a new uninstall Job;
//! - no installer ServiceAccount: `Ready=False InstallerNotEnabled`, no finalizer, no Job,
//!   never a ServiceAccount or binding written;
//! - an Install outside the controller namespace: `Accepted=False WrongNamespace`;
//! - the built-in mesh: `Installed`/`Ready=True` only once its Deployment is available;
//!   pods that exit at start give `Ready=False ControlPlaneUnavailable` with the counts.

mod common;

use common::{
    DEPLOYS, INSTALLS, JOBS, SAS, assert_stopped_first, condition_of, delete, end_job, install,
    install_at, phase, service_account, srm, step, step_in, writes,
};
use meshbridge_discovery::install::{FINALIZER, Phase, RETRY_UNINSTALL_ANNOTATION};
use meshbridge_discovery::kube::Step;
use meshbridge_test_support::FakeApi;
use serde_json::{Value, json};

/// The Install's `Ready` condition, or its `Accepted=False` when it was rejected: (status,
/// reason, message).
fn ready(f: &FakeApi, coll: &str, name: &str) -> (String, String, String) {
    let v = f.get_at(coll, name).unwrap();
    let accepted = condition_of(&v, "Accepted");
    if accepted["status"] == "False" {
        srm(&accepted)
    } else {
        srm(&condition_of(&v, "Ready"))
    }
}

async fn delete_install(f: &FakeApi, name: &str) {
    delete(f, "user", INSTALLS, name).await;
}

#[tokio::test]
async fn delete_stops_the_install_job_writes_uninstalling_and_removes_the_finalizer() {
    let f = FakeApi::new();
    f.insert(service_account("meshbridge-installer"));
    f.insert_at(
        INSTALLS,
        install("istio", json!({"type": "istio", "version": "1.22.3"})),
    );
    assert_eq!(step(&f, "istio").await, Step::Waiting(Phase::Installing));
    let install_job = f.names(JOBS).pop().expect("install Job");
    assert!(install_job.starts_with("istio-install-"));
    let job = f.get_at(JOBS, &install_job).unwrap();
    assert_eq!(
        job["spec"]["template"]["spec"]["serviceAccountName"],
        "meshbridge-installer"
    );
    f.edit(JOBS, &install_job, |j| j["status"] = json!({"active": 1}));

    // Delete while the install Job runs.
    delete_install(&f, "istio").await;
    f.take_log();
    assert_eq!(step(&f, "istio").await, Step::Waiting(Phase::Uninstalling));
    let log = f.take_log();
    assert_stopped_first(&log, &install_job);
    // Status is written while deleting.
    assert_eq!(phase(&f, "istio"), "Uninstalling");
    let (st, reason, _) = ready(&f, INSTALLS, "istio");
    assert_eq!((st.as_str(), reason.as_str()), ("False", "Uninstalling"));
    // Never a ServiceAccount or binding written by the reconciler.
    assert!(
        log.iter().all(|r| r.method == "GET"
            || !(r.path.contains("/serviceaccounts") || r.path.contains("rbac.authorization"))),
        "{:?}",
        log.iter().map(|r| r.line()).collect::<Vec<_>>()
    );

    // Next step: the install Job is gone; the uninstall Job runs; no install Job beside it.
    step(&f, "istio").await;
    let jobs = f.names(JOBS);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let un = jobs[0].clone();
    assert!(un.starts_with("istio-uninstall-"), "{un}");
    assert_eq!(phase(&f, "istio"), "Uninstalling");
    assert_eq!(
        f.get_at(INSTALLS, "istio").unwrap()["status"]["job"],
        json!(un)
    );

    // The uninstall completes: Jobs removed, finalizer removed, object gone.
    end_job(&f, &un, "Complete", "");
    assert!(matches!(step(&f, "istio").await, Step::Done(_)));
    assert!(f.get_at(INSTALLS, "istio").is_none(), "finalizer removed");
    assert!(f.names(JOBS).is_empty());
}

#[tokio::test]
async fn failed_uninstall_is_a_condition_with_a_way_out_and_retry_runs_a_new_job() {
    let f = FakeApi::new();
    f.insert(service_account("meshbridge-installer"));
    f.insert_at(INSTALLS, install("linkerd", json!({"type": "linkerd"})));
    step(&f, "linkerd").await;
    let ij = f.names(JOBS).pop().unwrap();
    end_job(&f, &ij, "Complete", "");
    step(&f, "linkerd").await;
    assert_eq!(phase(&f, "linkerd"), "Installed");

    delete_install(&f, "linkerd").await;
    step(&f, "linkerd").await; // stops (deletes) the completed install Job
    step(&f, "linkerd").await; // the uninstall Job
    let un = f.names(JOBS).pop().unwrap();
    assert!(un.contains("-uninstall-"));
    end_job(
        &f,
        &un,
        "Failed",
        "Job has reached the specified backoff limit",
    );
    assert!(matches!(step(&f, "linkerd").await, Step::Done(_)));
    let v = f
        .get_at(INSTALLS, "linkerd")
        .expect("held by the finalizer");
    assert_eq!(v["metadata"]["finalizers"], json!([FINALIZER]));
    assert_eq!(v["status"]["phase"], "Failed");
    let (st, reason, msg) = ready(&f, INSTALLS, "linkerd");
    assert_eq!((st.as_str(), reason.as_str()), ("False", "UninstallFailed"));
    assert!(
        msg.contains("BackoffLimitExceeded") && msg.contains("backoff limit"),
        "{msg}"
    );
    assert!(msg.contains(RETRY_UNINSTALL_ANNOTATION), "{msg}");
    assert!(
        msg.contains("kubectl -n meshbridge-system patch install linkerd --type json"),
        "{msg}"
    );
    // Reconciling again changes nothing (no new Job).
    step(&f, "linkerd").await;
    assert_eq!(f.names(JOBS), std::slice::from_ref(&un));

    // The documented retry: a new annotation value → a new uninstall Job.
    f.edit(INSTALLS, "linkerd", |i| {
        i["metadata"]["annotations"] = json!({RETRY_UNINSTALL_ANNOTATION: "1767225600"})
    });
    assert_eq!(
        step(&f, "linkerd").await,
        Step::Waiting(Phase::Uninstalling)
    );
    let jobs = f.names(JOBS);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let retry = jobs.into_iter().find(|j| *j != un).unwrap();
    assert!(retry.contains("-uninstall-"));
    end_job(&f, &retry, "Complete", "");
    step(&f, "linkerd").await;
    assert!(f.get_at(INSTALLS, "linkerd").is_none());
    assert!(f.names(JOBS).is_empty(), "every Job of the Install removed");
}

#[tokio::test]
async fn without_the_installer_service_account_nothing_runs() {
    let f = FakeApi::new();
    f.insert_at(INSTALLS, install("istio", json!({"type": "istio"})));
    assert!(matches!(step(&f, "istio").await, Step::Done(_)));
    let (st, reason, msg) = ready(&f, INSTALLS, "istio");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "InstallerNotEnabled")
    );
    assert!(msg.contains("installer.enabled=true"), "{msg}");
    assert_eq!(phase(&f, "istio"), "Pending");
    let v = f.get_at(INSTALLS, "istio").unwrap();
    assert!(v["metadata"]["finalizers"].is_null(), "no finalizer");
    assert!(f.names(JOBS).is_empty(), "no Job");
    assert_eq!(writes(&f), [format!("PATCH {INSTALLS}/istio/status")]);
    assert!(f.names(SAS).is_empty(), "the reconciler never creates it");

    // The admin opts in: the next pass installs.
    f.insert(service_account("meshbridge-installer"));
    assert_eq!(step(&f, "istio").await, Step::Waiting(Phase::Installing));
    assert_eq!(f.names(JOBS).len(), 1);
}

#[tokio::test]
async fn installs_outside_the_controller_namespace_are_rejected() {
    let f = FakeApi::new();
    f.insert(service_account("meshbridge-installer"));
    let coll = "/apis/meshbridge.io/v1alpha1/namespaces/team-a/installs";
    f.insert_at(
        coll,
        install_at(
            "istio",
            "team-a",
            "2026-01-01T00:00:00Z",
            json!({"type": "istio"}),
        ),
    );
    assert!(matches!(step_in(&f, coll, "istio").await, Step::Done(_)));
    let (st, reason, _) = ready(&f, coll, "istio");
    assert_eq!((st.as_str(), reason.as_str()), ("False", "WrongNamespace"));
    assert!(f.names("/apis/batch/v1/jobs").is_empty());
}

fn deployment_status(f: &FakeApi, status: Value) {
    f.edit(DEPLOYS, "meshbridge-mesh", |d| d["status"] = status);
}

#[tokio::test]
async fn builtin_mesh_is_ready_only_when_its_deployment_is_available() {
    let f = FakeApi::new();
    f.insert_at(
        INSTALLS,
        install("builtin", json!({"type": "envoy", "version": "0.2.0"})),
    );
    // Not opted in: no identity for the mesh.
    step(&f, "builtin").await;
    let (_, reason, msg) = ready(&f, INSTALLS, "builtin");
    assert_eq!(reason, "BuiltinMeshNotEnabled");
    assert!(msg.contains("builtinMesh.enabled=true"), "{msg}");
    assert!(f.names(DEPLOYS).is_empty());

    f.insert(service_account("meshbridge-mesh"));
    assert_eq!(step(&f, "builtin").await, Step::Waiting(Phase::Installing));
    let applied: Vec<String> = f
        .take_log()
        .into_iter()
        .filter(|r| r.content_type.starts_with("application/apply-patch"))
        .map(|r| r.body["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(applied, ["PodDisruptionBudget", "Service", "Deployment"]);
    let (st, reason, _) = ready(&f, INSTALLS, "builtin");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "ControlPlaneUnavailable")
    );

    // Pods exit at start (CrashLoopBackOff): never Installed.
    deployment_status(
        &f,
        json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "unavailableReplicas": 2,
               "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                               "message": "Deployment does not have minimum availability."}]}),
    );
    assert_eq!(step(&f, "builtin").await, Step::Waiting(Phase::Installing));
    assert_eq!(phase(&f, "builtin"), "Installing");
    let (st, reason, msg) = ready(&f, INSTALLS, "builtin");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "ControlPlaneUnavailable")
    );
    assert!(msg.contains("0/2 replicas available"), "{msg}");
    assert!(f.get_at(INSTALLS, "builtin").unwrap()["status"]["installedVersion"].is_null());

    // The rollout gives up: Failed.
    deployment_status(
        &f,
        json!({"observedGeneration": 1, "replicas": 2, "unavailableReplicas": 2,
               "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                               "message": "ReplicaSet has timed out progressing."}]}),
    );
    assert!(matches!(step(&f, "builtin").await, Step::Done(_)));
    assert_eq!(phase(&f, "builtin"), "Failed");

    // Available: Installed, Ready=True.
    deployment_status(
        &f,
        json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2,
               "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}),
    );
    assert!(matches!(step(&f, "builtin").await, Step::Done(_)));
    assert_eq!(phase(&f, "builtin"), "Installed");
    let (st, _, msg) = ready(&f, INSTALLS, "builtin");
    assert_eq!(st, "True");
    assert!(msg.contains("2/2 replicas available"), "{msg}");
}
