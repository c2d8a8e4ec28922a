//! The Install reconciler against a mocked API server: every request is checked.

mod common;

use common::{
    DEPLOYS, INSTALLS, JOBS, NS, SAS, assert_stopped_first, condition_of, delete, deleted, end_job,
    install_at, lines, phase, service_account, step, writes,
};
use meshbridge_core::api::meshbridge::Install;
use meshbridge_discovery::install::{FINALIZER, Phase};
use meshbridge_discovery::kube::Step;
use meshbridge_test_support::FakeApi;
use serde_json::{Value, json};

const CRBS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";

fn install(name: &str, spec: Value, created: &str) -> Value {
    install_at(name, NS, created, spec)
}

fn read(f: &FakeApi, name: &str) -> Option<Install> {
    f.get_at(INSTALLS, name)
        .map(|v| serde_json::from_value(v).unwrap())
}

#[tokio::test]
async fn istio_install_job_status_and_uninstall_on_delete() {
    let f = FakeApi::new();
    // The installer ServiceAccount (the chart's, `installer.enabled=true`).
    f.insert(service_account("meshbridge-installer"));
    f.insert_at(
        INSTALLS,
        install(
            "istio",
            json!({"type": "istio", "version": "1.21.0", "revision": "1-21"}),
            "2026-01-01T00:00:00Z",
        ),
    );

    // 1. First pass: finalizer, RBAC, Job, status.
    assert_eq!(step(&f, "istio").await, Step::Waiting(Phase::Installing));
    let log = f.take_log();
    let job_name = f.names(JOBS).pop().expect("a Job");
    assert!(job_name.starts_with("istio-install-"), "{job_name}");
    assert_eq!(
        lines(&log),
        vec![
            format!("GET {JOBS}/{job_name}"),
            // The installer ServiceAccount must exist (never created here).
            format!("GET {SAS}/meshbridge-installer"),
            format!("PATCH {INSTALLS}/istio"),
            format!("GET {JOBS}/{job_name}"),
            format!("POST {JOBS}"),
            format!("PATCH {INSTALLS}/istio/status"),
        ]
    );
    // Finalizer added with a merge patch guarded by the resourceVersion.
    assert_eq!(log[2].content_type, "application/merge-patch+json");
    assert_eq!(log[2].body["metadata"]["finalizers"], json!([FINALIZER]));
    assert!(log[2].body["metadata"]["resourceVersion"].is_string());
    // The Job: pinned istioctl image and the install arguments, as the installer SA.
    let job = &log[4].body;
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], json!("meshbridge-installer"));
    assert_eq!(pod["restartPolicy"], json!("Never"));
    assert_eq!(
        pod["containers"][0]["image"],
        json!("docker.io/istio/istioctl:1.21.0")
    );
    assert_eq!(
        pod["containers"][0]["args"],
        json!([
            "install",
            "-y",
            "--set",
            "profile=default",
            "--set",
            "revision=1-21",
            "--set",
            "values.global.istioNamespace=istio-system"
        ])
    );
    let st = &f.get_at(INSTALLS, "istio").unwrap()["status"];
    assert_eq!(st["phase"], json!("Installing"));
    assert_eq!(st["job"], json!(job_name));
    assert_eq!(
        f.get_at(INSTALLS, "istio").unwrap()["metadata"]["finalizers"],
        json!([FINALIZER])
    );

    // 2. Nothing changed: no write at all (the Job exists; status is the same).
    step(&f, "istio").await;
    let log = f.take_log();
    assert!(
        log.iter()
            .all(|r| r.method == "GET" || r.content_type.starts_with("application/apply-patch")),
        "{:?}",
        lines(&log)
    );
    assert!(!lines(&log).contains(&format!("POST {JOBS}")));

    // 3. The Job completes: Installed, with the version.
    end_job(&f, &job_name, "Complete", "");
    assert!(matches!(step(&f, "istio").await, Step::Done(_)));
    let st = &f.get_at(INSTALLS, "istio").unwrap()["status"];
    assert_eq!(st["phase"], json!("Installed"));
    assert_eq!(st["installedVersion"], json!("1.21.0"));
    assert_eq!(
        condition_of(&f.get_at(INSTALLS, "istio").unwrap(), "Ready")["status"],
        "True"
    );
    f.take_log();

    // 4. Delete: the finalizer holds the object; an uninstall Job runs.
    let answer = delete(&f, "user", INSTALLS, "istio").await;
    assert!(answer["metadata"]["deletionTimestamp"].is_string());
    f.take_log();
    assert_eq!(step(&f, "istio").await, Step::Waiting(Phase::Uninstalling));
    let log = f.take_log();
    // The install Job is stopped (Foreground) before the uninstall Job is created.
    assert_stopped_first(&log, &job_name);
    let post = log.iter().find(|r| r.method == "POST").expect("a Job");
    assert_eq!(
        post.body["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["uninstall", "-y", "--revision", "1-21"])
    );
    let un = post.body["metadata"]["name"].as_str().unwrap().to_string();
    assert!(un.starts_with("istio-uninstall-"));
    assert!(read(&f, "istio").is_some(), "held by the finalizer");

    // 5. Uninstall done: Jobs removed, finalizer removed, the object is gone.
    end_job(&f, &un, "Complete", "");
    assert!(matches!(step(&f, "istio").await, Step::Done(_)));
    let log = f.take_log();
    assert_eq!(deleted(&log), [format!("{JOBS}/{un}")].into());
    let fin = log
        .iter()
        .find(|r| r.method == "PATCH" && r.path == format!("{INSTALLS}/istio"))
        .unwrap();
    assert_eq!(fin.body["metadata"]["finalizers"], json!([]));
    assert!(read(&f, "istio").is_none());
    assert!(f.names(JOBS).is_empty());
    // No ServiceAccount or binding was ever written; the chart's SA stays.
    assert_eq!(f.names(SAS), ["meshbridge-installer"]);
    assert!(f.names(CRBS).is_empty());
}

#[tokio::test]
async fn second_install_of_a_type_is_rejected_and_never_runs_a_job() {
    let f = FakeApi::new();
    f.insert(service_account("meshbridge-installer"));
    f.insert_at(
        INSTALLS,
        install(
            "linkerd",
            json!({"type": "linkerd"}),
            "2026-01-01T00:00:00Z",
        ),
    );
    f.insert_at(
        INSTALLS,
        install(
            "linkerd-again",
            json!({"type": "linkerd", "version": "edge-24.8.2"}),
            "2026-01-02T00:00:00Z",
        ),
    );
    step(&f, "linkerd").await;
    f.take_log();
    let s = step(&f, "linkerd-again").await;
    assert!(
        matches!(s, Step::Done(ref m) if m.contains("meshbridge-system/linkerd")),
        "{s:?}"
    );
    assert_eq!(
        writes(&f),
        vec![format!("PATCH {INSTALLS}/linkerd-again/status")]
    );
    let st = &f.get_at(INSTALLS, "linkerd-again").unwrap()["status"];
    assert_eq!(st["conditions"][0]["type"], json!("Accepted"));
    assert_eq!(st["conditions"][0]["status"], json!("False"));
    assert_eq!(st["conditions"][0]["reason"], json!("Duplicate"));
    assert!(f.get_at(INSTALLS, "linkerd-again").unwrap()["metadata"]["finalizers"].is_null());
    assert_eq!(f.names(JOBS).len(), 1);
    // The Linkerd Job: CLI fetched and checked, rendered, applied by kubectl in order.
    let job = f.get_at(JOBS, &f.names(JOBS)[0]).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    let init: Vec<&str> = pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        init,
        vec![
            "fetch-linkerd-cli",
            "render-crds",
            "apply-crds",
            "wait-crds",
            "render-control-plane"
        ]
    );
    let fetch = pod["initContainers"][0]["args"][0].as_str().unwrap();
    assert!(
        fetch.contains("releases/download/stable-2.14.10/linkerd2-cli-stable-2.14.10-linux-$arch")
    );
    assert!(fetch.contains("sha256sum -c"));
    assert_eq!(
        pod["containers"][0]["image"],
        json!(meshbridge_discovery::install::KUBECTL_IMAGE)
    );
    assert_eq!(
        pod["containers"][0]["args"],
        json!(["apply", "--server-side", "-f", "/work/control-plane.yaml"])
    );
}

#[tokio::test]
async fn failed_job_and_disable() {
    let f = FakeApi::new();
    f.insert(service_account("meshbridge-installer"));
    f.insert_at(
        INSTALLS,
        install("istio", json!({"type": "istio"}), "2026-01-01T00:00:00Z"),
    );
    step(&f, "istio").await;
    let job = f.names(JOBS).pop().unwrap();
    end_job(
        &f,
        &job,
        "Failed",
        "Job has reached the specified backoff limit",
    );
    assert!(matches!(step(&f, "istio").await, Step::Done(_)));
    assert_eq!(phase(&f, "istio"), "Failed");
    let ready = condition_of(&f.get_at(INSTALLS, "istio").unwrap(), "Ready");
    assert_eq!(ready["reason"], json!("Failed"));
    assert!(ready["message"].as_str().unwrap().contains("backoff limit"));

    // disabled: true → uninstall (default revision), then Uninstalled, object kept.
    f.edit(INSTALLS, "istio", |v| v["spec"]["disabled"] = json!(true));
    assert_eq!(step(&f, "istio").await, Step::Waiting(Phase::Uninstalling));
    assert_eq!(phase(&f, "istio"), "Uninstalling");
    let un = f
        .names(JOBS)
        .into_iter()
        .find(|n| n.contains("-uninstall-"))
        .unwrap();
    let uj = f.get_at(JOBS, &un).unwrap();
    assert_eq!(
        uj["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["uninstall", "-y", "--revision", "default"])
    );
    end_job(&f, &un, "Complete", "");
    assert!(matches!(step(&f, "istio").await, Step::Done(_)));
    let v = f.get_at(INSTALLS, "istio").expect("kept");
    assert_eq!(v["status"]["phase"], json!("Uninstalled"));
    assert_eq!(v["metadata"]["finalizers"], json!([]));
    assert!(f.names(JOBS).is_empty());
}

#[tokio::test]
async fn unsupported_type_is_rejected() {
    let f = FakeApi::new();
    f.insert_at(
        INSTALLS,
        install("am", json!({"type": "appmesh"}), "2026-01-01T00:00:00Z"),
    );
    step(&f, "am").await;
    let log = f.take_log();
    assert_eq!(lines(&log), vec![format!("PATCH {INSTALLS}/am/status")]);
    assert_eq!(
        f.get_at(INSTALLS, "am").unwrap()["status"]["conditions"][0]["reason"],
        json!("Unsupported")
    );
}

#[tokio::test]
async fn builtin_mesh_is_applied_directly_and_removed_exactly() {
    let f = FakeApi::new();
    f.insert_at(
        INSTALLS,
        install(
            "builtin",
            json!({"type": "envoy", "version": "0.2.0"}),
            "2026-01-01T00:00:00Z",
        ),
    );
    // The controller's own objects, which must never be touched.
    f.insert_at(
        DEPLOYS,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "meshbridge", "namespace": NS}}),
    );
    // Its ServiceAccount (the chart's, `builtinMesh.enabled=true`).
    f.insert(service_account("meshbridge-mesh"));
    // Applied; Installing until its Deployment is available.
    assert_eq!(step(&f, "builtin").await, Step::Waiting(Phase::Installing));
    let log = f.take_log();
    let applied: Vec<&meshbridge_test_support::Req> = log
        .iter()
        .filter(|r| r.content_type.starts_with("application/apply-patch"))
        .collect();
    let expected = meshbridge_discovery::install::builtin_objects(&read(&f, "builtin").unwrap());
    assert_eq!(applied.len(), expected.len());
    for r in &applied {
        assert!(
            r.path
                .rsplit('/')
                .next()
                .unwrap()
                .starts_with("meshbridge-mesh"),
            "{}",
            r.path
        );
        assert_eq!(
            r.body["metadata"]["labels"]["meshbridge.io/install"],
            json!("builtin")
        );
    }
    assert!(applied.iter().any(
        |r| r.path == "/apis/apps/v1/namespaces/meshbridge-system/deployments/meshbridge-mesh"
    ));
    assert!(
        log.iter().all(|r| r.method != "POST"),
        "no Job for the built-in mesh"
    );
    f.edit(DEPLOYS, "meshbridge-mesh", |d| {
        d["status"] = json!({"observedGeneration": 1, "replicas": 2, "availableReplicas": 2,
                             "conditions": [{"type": "Available", "status": "True"}]});
    });
    assert!(matches!(step(&f, "builtin").await, Step::Done(_)));
    f.take_log();
    assert_eq!(phase(&f, "builtin"), "Installed");
    // Delete: exactly the applied objects are deleted; the controller's Deployment stays.
    delete(&f, "user", INSTALLS, "builtin").await;
    f.take_log();
    assert!(matches!(step(&f, "builtin").await, Step::Done(_)));
    let log = f.take_log();
    let applied: std::collections::BTreeSet<String> =
        applied.iter().map(|r| r.path.clone()).collect();
    assert_eq!(deleted(&log), applied);
    assert!(f.get_at(DEPLOYS, "meshbridge").is_some());
    assert!(
        read(&f, "builtin").is_none(),
        "finalizer removed, object gone"
    );
}
