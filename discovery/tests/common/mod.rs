//! What discovery's tests share (the root `tests/discovery_*.rs` include it too, through
//! `#[path]`): the recorded cluster states, the fake API server's cluster and what a test
//! asks of its request log, Install objects and reconcile steps, capability stand-ins,
//! condition lookups and goldens. [`swap`]: the swap flow through the controller.
#![allow(dead_code)]

pub mod swap;

use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::{DiscoveredMesh, Install, Mesh, MeshSpec};
use meshbridge_core::capability::{Capability, Feature, Level};
use meshbridge_discovery::kube::{InstallConfig, Step, reconcile_install_with};
use meshbridge_discovery::runner::{self, RunnerConfig, SharedCaps};
use meshbridge_test_support::{FakeApi, Req};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The controller namespace: Meshes, Installs and installer Jobs live here.
pub const NS: &str = "meshbridge-system";
pub const MESHES: &str = "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/meshes";
pub const INSTALLS: &str = "/apis/meshbridge.io/v1alpha1/namespaces/meshbridge-system/installs";
pub const JOBS: &str = "/apis/batch/v1/namespaces/meshbridge-system/jobs";
pub const SAS: &str = "/api/v1/namespaces/meshbridge-system/serviceaccounts";
/// Deployments in the controller namespace (the built-in mesh's).
pub const DEPLOYS: &str = "/apis/apps/v1/namespaces/meshbridge-system/deployments";
/// Installs in every namespace (what the runner lists and watches).
pub const ALL_INSTALLS: &str = "/apis/meshbridge.io/v1alpha1/installs";

// ---------------------------------------------------------------- recorded cluster states

/// The discovery crate's directory, from this crate or the workspace root's.
pub fn discovery_dir() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if env!("CARGO_PKG_NAME") == "meshbridge-discovery" {
        here
    } else {
        here.join("discovery")
    }
}

/// `tests/fixtures/<case>/<file>`.
pub fn fixture_file(case: &str, file: &str) -> PathBuf {
    discovery_dir().join("tests/fixtures").join(case).join(file)
}

/// A recorded cluster state: `tests/fixtures/<case>/cluster.yaml`.
pub fn fixture(case: &str) -> PathBuf {
    fixture_file(case, "cluster.yaml")
}

/// The fixture that holds documents that do not parse, on purpose.
const BROKEN_FIXTURE: &str = "odd-tags";

/// The objects of [`fixture`] `case`; every document parses (except in [`BROKEN_FIXTURE`]).
pub fn cluster(case: &str) -> Vec<Value> {
    let (objs, problems) = meshbridge_discovery::read_objects(&[fixture(case)]);
    assert!(
        problems.is_empty() || case == BROKEN_FIXTURE,
        "{case}: {problems:?}"
    );
    objs
}

/// The objects of a YAML stream (every document must parse).
pub fn objects_of(yaml: &str) -> Vec<Value> {
    meshbridge_core::load::split_documents(yaml)
        .into_iter()
        .filter_map(|(doc, body)| {
            meshbridge_core::load::parse_document(&body)
                .unwrap_or_else(|e| panic!("document {doc}: {e}"))
        })
        .collect()
}

// ---------------------------------------------------------------- capabilities, goldens

/// A stand-in for the adapters' matrices that echoes the settings it was computed with, so
/// goldens and assertions show which version each matrix is for without depending on the
/// adapters' wording (the real matrices are checked in the root `tests/adapters.rs`).
pub fn echo_caps(spec: &MeshSpec) -> Option<Vec<Capability>> {
    Some(vec![Capability {
        feature: Feature::TrafficSplit,
        level: Level::Full,
        reason: format!(
            "{} at {}{}",
            spec.mesh_type,
            spec.version
                .as_deref()
                .unwrap_or("the adapter's default version"),
            spec.linkerd_split_mode
                .map(|m| format!(", split mode {m:?}"))
                .unwrap_or_default()
        ),
    }])
}

/// An empty matrix for every mesh.
pub fn no_caps(_: &MeshSpec) -> Option<Vec<Capability>> {
    Some(vec![])
}

/// `caps` for the runner.
pub fn shared(caps: fn(&MeshSpec) -> Option<Vec<Capability>>) -> SharedCaps {
    Arc::new(caps)
}

/// Meshes as the multi-document YAML `meshbridge meshes -o yaml` prints.
pub fn yaml_of(meshes: &[Mesh]) -> String {
    let values: Vec<Value> = meshes
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    meshbridge_core::yaml::to_yaml_stream(&values)
}

/// `have` equals the golden file `path` (`UPDATE_GOLDEN=1` rewrites it; review the diff).
pub fn assert_golden(path: &Path, have: &str) {
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(path, have).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(have, want, "output differs from {}", path.display());
}

// ---------------------------------------------------------------- conditions

/// The condition `type_` of a Mesh.
pub fn condition<'a>(m: &'a Mesh, type_: &str) -> &'a Condition {
    m.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("{:?}: no {type_} condition", m.metadata.name))
}

/// `status.discovered` of a Mesh.
pub fn discovered(m: &Mesh) -> &DiscoveredMesh {
    m.status
        .as_ref()
        .and_then(|s| s.discovered.as_ref())
        .unwrap_or_else(|| panic!("{:?}: nothing discovered", m.metadata.name))
}

/// The condition `type_` of an object as JSON (`status.conditions`).
pub fn condition_of(v: &Value, type_: &str) -> Value {
    v["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {}", v["status"]))
}

/// (status, reason, message) of a JSON condition.
pub fn srm(c: &Value) -> (String, String, String) {
    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
    (s("status"), s("reason"), s("message"))
}

// ---------------------------------------------------------------- the fake API server

/// A fake cluster that does not serve the App Mesh CRD (its `Mesh` list answers 404).
pub fn fake() -> FakeApi {
    let f = FakeApi::new();
    f.not_served("/apis/appmesh.k8s.aws/");
    f
}

/// A strict fake serving exactly what a cluster with meshbridge's, Istio's and App Mesh's
/// CRDs serves — the Kubernetes v1.28 built-ins, `crds/`, the CRDs in
/// `<shared>/schemas/{istio,appmesh}` — and nothing else: a request to any other path
/// answers 404, and writes are validated against the CRDs' schemas.
pub fn served_cluster() -> FakeApi {
    let f = FakeApi::strict();
    f.serve_builtin().load_project_crds();
    let schemas = meshbridge_conformance::shared_dir().join("schemas");
    f.load_crds_dir(schemas.join("istio"))
        .load_crds_dir(schemas.join("appmesh"));
    f
}

/// Stores the objects of [`fixture`] `case` in the fake.
pub fn load(f: &FakeApi, case: &str) {
    for v in cluster(case) {
        f.insert_object(v);
    }
}

/// `METHOD path` of each request.
pub fn lines(log: &[Req]) -> Vec<String> {
    log.iter().map(Req::line).collect()
}

/// The writes (every request but GETs) since the log was last taken, as `METHOD path`.
pub fn writes(f: &FakeApi) -> Vec<String> {
    f.take_log()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.line())
        .collect()
}

/// The paths deleted in `log`.
pub fn deleted(log: &[Req]) -> BTreeSet<String> {
    log.iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect()
}

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// API group (`""` for the core group).
    pub group: String,
    pub namespace: Option<String>,
    /// The plural, with `/<subresource>` when there is one.
    pub resource: String,
    pub name: Option<String>,
}

/// The [`Target`] of an API path (`/api/v1/...` or `/apis/<group>/<version>/...`).
pub fn target(path: &str) -> Target {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _, rest @ ..] => ("", rest),
        ["apis", g, _, rest @ ..] => (*g, rest),
        _ => panic!("not an API path: {path}"),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        _ => (None, rest),
    };
    let (resource, name) = match rest {
        [res] => (res.to_string(), None),
        [res, name] => (res.to_string(), Some(name.to_string())),
        [res, name, sub] => (format!("{res}/{sub}"), Some(name.to_string())),
        _ => panic!("not an API path: {path}"),
    };
    Target {
        group: group.into(),
        namespace,
        resource,
        name,
    }
}

/// A ServiceAccount in the controller namespace (the opt-in ones the Helm chart creates).
pub fn service_account(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NS}})
}

/// Waits (up to `secs`) until `cond` holds.
pub async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `DELETE <collection>/<name>` as `user` (as `kubectl delete` sends it); the answer.
pub async fn delete(f: &FakeApi, user: &str, collection: &str, name: &str) -> Value {
    let req = kube::core::Request::new(collection)
        .delete(name, &kube::api::DeleteParams::default())
        .unwrap();
    f.client(user).request::<Value>(req).await.unwrap()
}

// ---------------------------------------------------------------- Installs

/// An Install in `ns`, created at `created`.
pub fn install_at(name: &str, ns: &str, created: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "meshbridge.io/v1alpha1", "kind": "Install",
        "metadata": {"name": name, "namespace": ns, "generation": 1, "creationTimestamp": created},
        "spec": spec,
    })
}

/// An Install in the controller namespace.
pub fn install(name: &str, spec: Value) -> Value {
    install_at(name, NS, "2026-01-01T00:00:00Z", spec)
}

/// Every Install in the fake, any namespace.
pub fn installs(f: &FakeApi) -> Vec<Install> {
    f.objects()
        .into_iter()
        .filter(|o| o["kind"] == "Install")
        .filter_map(|o| serde_json::from_value(o).ok())
        .collect()
}

/// One reconcile step of the Install `name` in `collection`, the controller namespace being
/// [`NS`].
pub async fn step_in(f: &FakeApi, collection: &str, name: &str) -> Step {
    let i: Install = serde_json::from_value(f.get_at(collection, name).expect("the Install"))
        .expect("an Install");
    reconcile_install_with(
        &f.client("meshbridge"),
        &i,
        &installs(f),
        &InstallConfig::new(NS),
    )
    .await
    .unwrap()
}

/// [`step_in`] for an Install in the controller namespace.
pub async fn step(f: &FakeApi, name: &str) -> Step {
    step_in(f, INSTALLS, name).await
}

/// `status.phase` of the Install `name` (`""` before the first status).
pub fn phase(f: &FakeApi, name: &str) -> String {
    f.get_at(INSTALLS, name)
        .and_then(|v| v["status"]["phase"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The status the Job controller writes when a Job ends: condition `ty` (`Complete` or
/// `Failed`, then after the backoff limit) with `message`.
pub fn job_ended(ty: &str, message: &str) -> Value {
    let failed = ty == "Failed";
    json!({"conditions": [{"type": ty, "status": "True", "message": message,
                           "reason": if failed {"BackoffLimitExceeded"} else {"Completed"}}],
           "failed": if failed {3} else {0}, "succeeded": if failed {0} else {1}})
}

/// Ends installer Job `job` (see [`job_ended`]), without a watch event.
pub fn end_job(f: &FakeApi, job: &str, ty: &str, message: &str) {
    f.edit(JOBS, job, |j| j["status"] = job_ended(ty, message));
}

/// In `log`: the install Job `job` was deleted with `propagationPolicy: Foreground` before
/// any Job was created (an install Job never runs beside the uninstall Job).
pub fn assert_stopped_first(log: &[Req], job: &str) {
    let del = log
        .iter()
        .position(|r| r.method == "DELETE" && r.path == format!("{JOBS}/{job}"))
        .expect("the install Job is deleted");
    assert_eq!(log[del].body["propagationPolicy"], "Foreground");
    if let Some(post) = log.iter().position(|r| r.method == "POST") {
        assert!(
            del < post,
            "install Job stopped before the uninstall Job starts"
        );
    }
}

/// Completes every installer Job.
pub fn complete_jobs(f: &FakeApi) {
    for j in f.names(JOBS) {
        end_job(f, &j, "Complete", "");
    }
}

/// One pass of the runner as leader (`meshbridge run --once`): discovery, then every
/// Install.
pub async fn run_once(f: &FakeApi, caps: SharedCaps) {
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let cfg = RunnerConfig::new(NS, Duration::from_secs(60), true);
    tokio::time::timeout(
        Duration::from_secs(5),
        runner::run(
            f.client("meshbridge"),
            Arc::new(AtomicBool::new(true)),
            rx,
            cfg,
            caps,
        ),
    )
    .await
    .expect("--once returns after one pass");
}
