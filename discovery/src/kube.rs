//! The Install reconciler against the Kubernetes API: finalizer, installer Jobs (run as
//! the pre-existing installer ServiceAccount), the built-in mesh, status. One call of [`reconcile_install`] takes one step; call it again on every change
//! of the Install or of its Jobs (or periodically) until it reports [`Step::Done`].

use crate::install::{
    self, ACTION_LABEL, Action, FINALIZER, INSTALL_LABEL, INSTALL_NS_LABEL, Phase, active_of,
    job_phase,
};
use crate::resources::{self as res, Resource};
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use meshbridge_core::api::meshbridge::{Install, InstallStatus, MeshType};
use serde_json::{Value, json};

/// Field manager of server-side applies made here.
pub const FIELD_MANAGER: &str = "meshbridge-install";

/// What a reconcile step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Waiting for a Job (reconcile again when it changes).
    Waiting(Phase),
    /// Nothing more to do for now (installed, uninstalled, or rejected).
    Done(String),
}

#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Error>;

/// The dynamic API of `r`, in `ns` (all namespaces, or cluster-scoped, when `None`).
fn api_in(client: &Client, r: &Resource, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r.api_resource()),
        None => Api::all_with(client.clone(), &r.api_resource()),
    }
}

/// The API and name of object `v`. Its kind must be in [`crate::resources`]: a path is
/// never made up from a kind's name.
fn api_of(client: &Client, v: &Value) -> Result<(Api<DynamicObject>, String)> {
    let what = || {
        format!(
            "{} {}",
            v["kind"].as_str().unwrap_or("object"),
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?")
        )
    };
    let r = Resource::of_object(v).ok_or_else(|| {
        Error(format!(
            "{}: apiVersion {} is not a resource meshbridge knows",
            what(),
            v["apiVersion"]
        ))
    })?;
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error(format!("{}: no metadata.name", what())))?;
    let ns = v.pointer("/metadata/namespace").and_then(Value::as_str);
    if r.namespaced && ns.is_none() {
        return Err(Error(format!("{}: no metadata.namespace", what())));
    }
    Ok((
        api_in(client, r, ns.filter(|_| r.namespaced)),
        name.to_string(),
    ))
}

/// The JSON of an object read through `r` (a list does not repeat `apiVersion`/`kind` on
/// its items; a get of a built-in kind may omit them too).
fn typed_value(o: impl serde::Serialize, r: &Resource) -> Option<Value> {
    let mut v = serde_json::to_value(o).ok()?;
    v["apiVersion"] = json!(r.api_version());
    v["kind"] = json!(r.kind);
    Some(v)
}

/// Deletes `name` with `policy` (already gone is fine). Returns whether the object is still
/// there, being deleted: with `Foreground` the server answers with the object,
/// `deletionTimestamp` set, while its dependents go; without it (or with a `Status`) it is
/// gone.
async fn delete(api: &Api<DynamicObject>, name: &str, policy: PropagationPolicy) -> Result<bool> {
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(r) => Ok(r
            .left()
            .is_some_and(|o| o.metadata.deletion_timestamp.is_some())),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn delete_if_ours(client: &Client, v: &Value, install_name: &str) -> Result<()> {
    let (api, name) = api_of(client, v)?;
    let ours = api.get_opt(&name).await?.is_some_and(|live| {
        live.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(INSTALL_LABEL))
            .map(String::as_str)
            == Some(install_name)
    });
    if ours {
        delete(&api, &name, PropagationPolicy::Background).await?;
    }
    Ok(())
}

fn jobs_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    api_in(client, &res::JOB, Some(ns))
}

/// Settings of the Install reconciler.
#[derive(Clone, Debug)]
pub struct InstallConfig {
    /// The controller namespace: Installs elsewhere are rejected (`WrongNamespace`); the
    /// installer Jobs and the built-in mesh run here.
    pub namespace: String,
    /// The ServiceAccount installer Jobs run as (created by the Helm chart with
    /// `installer.enabled=true`; never by the controller).
    pub installer_service_account: String,
}

impl InstallConfig {
    pub fn new(namespace: impl Into<String>) -> InstallConfig {
        InstallConfig {
            namespace: namespace.into(),
            installer_service_account: install::DEFAULT_INSTALLER_SERVICE_ACCOUNT.into(),
        }
    }
}

async fn ensure_job(
    client: &Client,
    i: &Install,
    action: Action,
    sa: &str,
) -> Result<Option<Value>> {
    let Some(job) = install::job_as(i, action, sa) else {
        return Ok(None);
    };
    let (api, name) = api_of(client, &job)?;
    let obj = match api.get_opt(&name).await? {
        Some(live) => live,
        None => {
            let obj: DynamicObject =
                serde_json::from_value(job).map_err(|e| Error(e.to_string()))?;
            api.create(&PostParams::default(), &obj).await?
        }
    };
    Ok(typed_value(obj, &res::JOB))
}

fn install_selector(i: &Install) -> String {
    let (ns, name) = install::install_name(i);
    format!("{INSTALL_LABEL}={name},{INSTALL_NS_LABEL}={ns}")
}

/// Removes every Job made for `i`.
async fn cleanup(client: &Client, i: &Install) -> Result<()> {
    let (ns, _) = install::install_name(i);
    let api = jobs_api(client, &ns);
    let jobs = api
        .list(&ListParams::default().labels(&install_selector(i)))
        .await?;
    for n in jobs.items.iter().filter_map(|j| j.metadata.name.as_deref()) {
        delete(&api, n, PropagationPolicy::Background).await?;
    }
    Ok(())
}

/// Stops the install Jobs of `i` before its uninstall starts: deletes them with
/// `propagationPolicy: Foreground` (the Job object stays until its pods are gone) and
/// returns the names of those still present (wait for them).
async fn stop_install_jobs(client: &Client, i: &Install) -> Result<Vec<String>> {
    let (ns, _) = install::install_name(i);
    let api = jobs_api(client, &ns);
    let sel = format!(
        "{},{ACTION_LABEL}={}",
        install_selector(i),
        Action::Install.as_str()
    );
    let jobs = api.list(&ListParams::default().labels(&sel)).await?;
    let mut left = Vec::new();
    for j in jobs.items {
        let Some(n) = j.metadata.name.clone() else {
            continue;
        };
        if j.metadata.deletion_timestamp.is_some()
            || delete(&api, &n, PropagationPolicy::Foreground).await?
        {
            left.push(n);
        }
    }
    Ok(left)
}

/// Whether ServiceAccount `name` exists in `ns` (the installer's or the built-in mesh's,
/// both created by the Helm chart on opt-in).
async fn service_account_exists(client: &Client, ns: &str, name: &str) -> Result<bool> {
    let api = api_in(client, &res::SERVICE_ACCOUNT, Some(ns));
    Ok(api.get_opt(name).await?.is_some())
}

/// Why an Install cannot run without the opt-in ServiceAccount, and how to enable it.
fn not_enabled(i: &Install, cfg: &InstallConfig, uninstall: bool) -> (&'static str, String) {
    let ns = &cfg.namespace;
    if i.spec.mesh_type == MeshType::Envoy {
        return (
            "BuiltinMeshNotEnabled",
            format!(
                "ServiceAccount {ns}/{} does not exist: the built-in mesh's identity is created by the Helm chart on opt-in (helm upgrade meshbridge deploy/helm/meshbridge -n {ns} --reuse-values --set builtinMesh.enabled=true)",
                install::BUILTIN_NAME
            ),
        );
    }
    let what = if uninstall {
        format!(
            "; to give up the uninstall instead, remove the finalizer by hand: kubectl -n {} patch install {} --type json -p '[{{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}}]'",
            i.metadata.namespace.clone().unwrap_or_default(),
            i.metadata.name.clone().unwrap_or_default()
        )
    } else {
        String::new()
    };
    (
        "InstallerNotEnabled",
        format!(
            "installer ServiceAccount {ns}/{} does not exist: mesh installers need cluster-admin, which meshbridge gets only when an admin opts in (helm upgrade meshbridge deploy/helm/meshbridge -n {ns} --reuse-values --set installer.enabled=true){what}",
            cfg.installer_service_account
        ),
    )
}

async fn set_finalizer(api: &Api<Install>, i: &Install, present: bool) -> Result<()> {
    let mut fins: Vec<String> = i.metadata.finalizers.clone().unwrap_or_default();
    let has = fins.iter().any(|f| f == FINALIZER);
    if has == present {
        return Ok(());
    }
    if present {
        fins.push(FINALIZER.into());
    } else {
        fins.retain(|f| f != FINALIZER);
    }
    let name = i.metadata.name.clone().unwrap_or_default();
    // Merge patch with the resourceVersion: a concurrent change makes it fail (409) and the
    // next reconcile starts from the new object.
    let patch =
        json!({"metadata": {"finalizers": fins, "resourceVersion": i.metadata.resource_version}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn write_status(api: &Api<Install>, i: &Install, st: InstallStatus) -> Result<()> {
    let comparable = |st: &InstallStatus| without_times(&json!(st));
    if i.status.as_ref().map(comparable) == Some(comparable(&st)) {
        return Ok(());
    }
    let name = i.metadata.name.clone().unwrap_or_default();
    let patch = json!({"status": st});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Writes `st` (when it differs) and ends the step with `msg`.
async fn done(api: &Api<Install>, i: &Install, st: InstallStatus, msg: String) -> Result<Step> {
    write_status(api, i, st).await?;
    Ok(Step::Done(msg))
}

/// Why `i` is not carried out at all (`Accepted=False`): outside the controller namespace,
/// an invalid spec, or a built-in mesh outside the controller namespace.
fn rejection(i: &Install, cfg: &InstallConfig) -> Option<install::Rejection> {
    let (ns, _) = install::install_name(i);
    if ns != cfg.namespace {
        return Some(install::Rejection {
            reason: "WrongNamespace",
            message: format!(
                "Installs are carried out only in the controller namespace {}; create this one there",
                cfg.namespace
            ),
        });
    }
    if let Err(r) = install::validate(&i.spec) {
        return Some(r);
    }
    if i.spec.mesh_type == MeshType::Envoy
        && i.spec.install_namespace.as_ref().is_some_and(|n| *n != ns)
    {
        return Some(install::Rejection {
            reason: "InvalidNamespace",
            message: format!(
                "the built-in mesh runs in the controller namespace {ns}; drop spec.installNamespace"
            ),
        });
    }
    None
}

/// Applies the built-in mesh's objects and returns its phase from the Deployment's
/// availability (the server-side apply answers with the live object, status included).
async fn apply_builtin(client: &Client, i: &Install) -> Result<(Phase, &'static str, String)> {
    let mut deployment = None;
    for o in install::builtin_objects(i) {
        let (api, name) = api_of(client, &o)?;
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let live = api.patch(&name, &pp, &Patch::Apply(&o)).await?;
        if Resource::of_object(&o) == Some(&res::DEPLOYMENT) {
            deployment = typed_value(live, &res::DEPLOYMENT);
        }
    }
    let Some(d) = deployment else {
        return Ok((
            Phase::Failed,
            "Failed",
            "no Deployment in the built-in mesh's manifests".into(),
        ));
    };
    let a = crate::detect::deployment_availability(&d);
    Ok(if a.available {
        (Phase::Installed, "Installed", a.message)
    } else if a.failed {
        (Phase::Failed, "ControlPlaneUnavailable", a.message)
    } else {
        (Phase::Installing, "ControlPlaneUnavailable", a.message)
    })
}

/// One reconcile step for `i` with the Install's own namespace as the controller namespace
/// and the default installer ServiceAccount (see [`reconcile_install_with`]).
pub async fn reconcile_install(client: &Client, i: &Install, all: &[Install]) -> Result<Step> {
    let cfg = InstallConfig::new(install::install_name(i).0);
    reconcile_install_with(client, i, all, &cfg).await
}

/// One reconcile step for `i`; `all` are the Installs of the cluster (for the
/// one-active-Install-per-mesh-type rule).
pub async fn reconcile_install_with(
    client: &Client,
    i: &Install,
    all: &[Install],
    cfg: &InstallConfig,
) -> Result<Step> {
    let (ns, name) = install::install_name(i);
    let api: Api<Install> = Api::namespaced(client.clone(), &ns);
    let deleting = i.metadata.deletion_timestamp.is_some();
    let has_finalizer = i
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));

    if deleting || i.spec.disabled {
        if !has_finalizer {
            // Never installed by this Install (or already cleaned up).
            if !deleting {
                let st = install::phase_status(i, Phase::Uninstalled, "disabled".into(), None);
                write_status(&api, i, st).await?;
            }
            return Ok(Step::Done("nothing installed".into()));
        }
        let (phase, reason, msg, job) = if i.spec.mesh_type == MeshType::Envoy {
            for o in install::builtin_objects(i).iter().rev() {
                delete_if_ours(client, o, &name).await?;
            }
            (
                Phase::Uninstalled,
                "Uninstalled",
                "built-in mesh objects deleted".to_string(),
                None,
            )
        } else {
            // 1. The install Job must not run beside the uninstall Job.
            let left = stop_install_jobs(client, i).await?;
            if !left.is_empty() {
                let msg = format!(
                    "stopping install Job(s) {} before the uninstall starts",
                    left.join(", ")
                );
                let st = install::phase_status(i, Phase::Uninstalling, msg, None);
                write_status(&api, i, st).await?;
                return Ok(Step::Waiting(Phase::Uninstalling));
            }
            // 2. The uninstall Job, as the installer ServiceAccount.
            let job_name = install::job_name(i, Action::Uninstall);
            let live = jobs_api(client, &ns).get_opt(&job_name).await?;
            if live.is_none()
                && !service_account_exists(client, &cfg.namespace, &cfg.installer_service_account)
                    .await?
            {
                let (reason, msg) = not_enabled(i, cfg, true);
                let st = install::phase_status_because(
                    i,
                    Phase::Uninstalling,
                    reason,
                    msg.clone(),
                    None,
                );
                return done(&api, i, st, msg).await;
            }
            let job =
                ensure_job(client, i, Action::Uninstall, &cfg.installer_service_account).await?;
            let (p, m) = job_phase(job.as_ref(), Action::Uninstall);
            if p == Phase::Failed {
                // 3. A failed uninstall keeps the finalizer (the mesh may still be there)
                //    and says how to go on.
                let msg = format!(
                    "uninstall failed: {m}. Fix the cause, then retry: kubectl -n {ns} annotate install {name} {}=\"$(date +%s)\" --overwrite; or give up the uninstall (the mesh's objects stay): kubectl -n {ns} patch install {name} --type json -p '[{{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}}]'",
                    install::RETRY_UNINSTALL_ANNOTATION
                );
                let st = install::phase_status_because(
                    i,
                    Phase::Failed,
                    "UninstallFailed",
                    msg.clone(),
                    Some(job_name),
                );
                return done(&api, i, st, msg).await;
            }
            (p, p.as_str(), m, Some(job_name))
        };
        if phase == Phase::Uninstalled {
            cleanup(client, i).await?;
            // The finalizer first: its patch is guarded by the resourceVersion we read.
            set_finalizer(&api, i, false).await?;
            if !deleting {
                write_status(&api, i, install::phase_status(i, phase, msg.clone(), job)).await?;
            }
            return Ok(Step::Done(msg));
        }
        let st = install::phase_status_because(i, phase, reason, msg, job);
        write_status(&api, i, st).await?;
        return Ok(Step::Waiting(phase));
    }

    if let Some(r) = rejection(i, cfg) {
        return done(&api, i, install::rejected_status(i, &r), r.message).await;
    }
    if let Some(w) = active_of(all, i.spec.mesh_type)
        && (w.metadata.namespace.as_deref(), w.metadata.name.as_deref())
            != (Some(ns.as_str()), Some(name.as_str()))
    {
        let st = install::duplicate_status(i, w);
        let msg = st
            .conditions
            .first()
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return done(&api, i, st, msg).await;
    }
    // The opt-in ServiceAccount must exist before anything runs (no finalizer, no Job
    // otherwise). The installer's is checked only while its Job is not there yet.
    let sa = if i.spec.mesh_type == MeshType::Envoy {
        install::BUILTIN_NAME.to_string()
    } else {
        cfg.installer_service_account.clone()
    };
    let install_job = install::job_name(i, Action::Install);
    let job_exists = i.spec.mesh_type != MeshType::Envoy
        && jobs_api(client, &ns).get_opt(&install_job).await?.is_some();
    if !job_exists && !service_account_exists(client, &cfg.namespace, &sa).await? {
        let (reason, msg) = not_enabled(i, cfg, false);
        let st = install::phase_status_because(i, Phase::Pending, reason, msg.clone(), None);
        return done(&api, i, st, msg).await;
    }
    if !has_finalizer {
        // The finalizer goes on before anything is installed, so a delete always uninstalls.
        set_finalizer(&api, i, true).await?;
    }
    let (phase, reason, msg, job) = if i.spec.mesh_type == MeshType::Envoy {
        let (p, r, m) = apply_builtin(client, i).await?;
        (p, r, m, None)
    } else {
        let job = ensure_job(client, i, Action::Install, &cfg.installer_service_account).await?;
        let (p, m) = job_phase(job.as_ref(), Action::Install);
        (p, p.as_str(), m, Some(install_job))
    };
    let st = install::phase_status_because(i, phase, reason, msg.clone(), job);
    write_status(&api, i, st).await?;
    Ok(match phase {
        Phase::Installed | Phase::Failed => Step::Done(msg),
        p => Step::Waiting(p),
    })
}

// ---------------------------------------------------------------- discovery in a cluster

async fn list_values(
    client: &Client,
    r: &Resource,
    ns: Option<&str>,
    lp: &ListParams,
) -> Result<Vec<Value>> {
    match api_in(client, r, ns).list(lp).await {
        Ok(l) => Ok(l
            .items
            .into_iter()
            .filter_map(|o| typed_value(o, r))
            .collect()),
        // A kind that is not served (CRD not installed) has nothing to discover.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(vec![]),
        Err(e) => Err(e.into()),
    }
}

/// Reads what discovery needs from the cluster, keeping reads narrow: every Deployment and
/// Namespace; the mesh-config ConfigMaps by name ([`crate::detect::config_maps_needed`]);
/// PeerAuthentications only in namespaces that run a control plane (and the mesh config's
/// root namespace); only Pods carrying `istio.io/rev` or
/// `linkerd.io/control-plane-ns`; App Mesh `Mesh` objects when that CRD is served.
pub async fn read_cluster(client: &Client) -> Result<Vec<Value>> {
    let all = ListParams::default();
    let mut out = Vec::new();
    for (r, lp) in [
        (&res::DEPLOYMENT, all.clone()),
        (&res::NAMESPACE, all.clone()),
        (&res::POD, ListParams::default().labels("istio.io/rev")),
        (
            &res::POD,
            ListParams::default().labels("linkerd.io/control-plane-ns"),
        ),
        (&res::APP_MESH_MESH, all.clone()),
    ] {
        out.extend(list_values(client, r, None, &lp).await?);
    }
    let cps = crate::find_control_planes(&out);
    let mut roots: Vec<String> = cps
        .iter()
        .filter_map(|c| c.discovered.control_plane_namespace.clone())
        .collect();
    // ConfigMaps by name only (the ClusterRole grants `get` on these names, never a list).
    for (ns, n) in crate::detect::config_maps_needed(&cps) {
        let obj = match api_in(client, &res::CONFIG_MAP, Some(&ns)).get(&n).await {
            Ok(o) => o,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            // Not granted (an Istio revision missing from the chart's
            // `discovery.istioRevisions`): discovery goes on without it.
            Err(kube::Error::Api(e)) if e.code == 403 => {
                tracing::warn!(
                    "discovery: ConfigMap {ns}/{n} is not readable ({}); add its Istio revision to the Helm value discovery.istioRevisions",
                    e.message
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(v) = typed_value(obj, &res::CONFIG_MAP) else {
            continue;
        };
        if let Some(root) = v
            .pointer("/data/mesh")
            .and_then(Value::as_str)
            .and_then(|t| serde_saphyr::from_str::<Value>(t).ok())
            .and_then(|m| {
                m.get("rootNamespace")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        {
            roots.push(root);
        }
        out.push(v);
    }
    roots.sort();
    roots.dedup();
    for ns in roots {
        out.extend(list_values(client, &res::PEER_AUTHENTICATION, Some(&ns), &all).await?);
    }
    Ok(out)
}

/// What a discovery pass wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub status_written: Vec<String>,
}

/// A condition without its `lastTransitionTime` (compared without it).
fn without_time(c: &Value) -> Value {
    let mut c = c.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("lastTransitionTime");
    }
    c
}

/// A status with its conditions compared without their `lastTransitionTime`.
fn without_times(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in cs {
            *c = without_time(c);
        }
    }
    v
}

fn is_owned(c: &Value) -> bool {
    c["type"]
        .as_str()
        .is_some_and(|t| crate::merge::OWNED_CONDITIONS.contains(&t))
}

/// Sets `status.observedGeneration` and that of the conditions discovery owns to `g`.
fn observe_generation(status: &mut Value, g: i64) {
    if !status.is_object() {
        return;
    }
    status["observedGeneration"] = json!(g);
    for c in status
        .get_mut("conditions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if is_owned(c) {
            c["observedGeneration"] = json!(g);
        }
    }
}

/// Which part of a Mesh's status a discovery pass writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusScope {
    /// All of it, as [`crate::merge`] computed it — `discovered`, `capabilities`,
    /// `observedGeneration` and the conditions (discovery's, and the others as read) — by a
    /// `/status` merge patch. For discovery without a controller (`meshbridge meshes
    /// --discover --write`).
    Whole,
    /// Only what discovery owns: `status.discovered` and the conditions
    /// [`crate::merge::OWNED_CONDITIONS`] (`Ready`, `VersionResolved`). `capabilities`,
    /// `observedGeneration` and the other conditions (`Accepted`, `Supported`,
    /// `OutputsWritten`) are the controller's, which writes them by server-side apply (field
    /// manager `meshbridge`); discovery never writes them. A `/status` JSON patch of exactly
    /// those fields (see [`owned_status_patch`]). For discovery inside `meshbridge run`
    /// ([`crate::runner`]).
    Owned,
}

/// The JSON patch that gives the live status (`live`, of the object at resourceVersion
/// `rv`) discovery's part of `want`: `status.discovered` and the conditions of
/// [`crate::merge::OWNED_CONDITIONS`], nothing else; empty when that part is already as
/// wanted (conditions compared without `lastTransitionTime`). An owned condition is
/// replaced at its index, after a `test` of the type found there (a list changed meanwhile
/// fails the patch instead of hitting another writer's condition), or appended. Adding a
/// status or condition list that is not there yet is guarded by a `test` of the
/// resourceVersion, so it never replaces one written meanwhile.
pub fn owned_status_patch(live: Option<&Value>, rv: Option<&str>, want: &Value) -> Vec<Value> {
    let op = |op: &str, path: String, value: Option<&Value>| {
        let mut o = json!({"op": op, "path": path});
        if let Some(v) = value {
            o["value"] = v.clone();
        }
        o
    };
    let guard = || rv.map(|rv| op("test", "/metadata/resourceVersion".into(), Some(&json!(rv))));
    let want_discovered = want.get("discovered").filter(|d| !d.is_null());
    let want_conds: Vec<&Value> = want
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| is_owned(c))
        .collect();
    let Some(live) = live.filter(|l| l.is_object()) else {
        if want_discovered.is_none() && want_conds.is_empty() {
            return vec![];
        }
        let mut st = json!({"conditions": want_conds});
        if let Some(d) = want_discovered {
            st["discovered"] = d.clone();
        }
        return guard()
            .into_iter()
            .chain([op("add", "/status".into(), Some(&st))])
            .collect();
    };
    let mut ops = Vec::new();
    match (
        live.get("discovered").filter(|d| !d.is_null()),
        want_discovered,
    ) {
        (l, Some(w)) if l != Some(w) => ops.push(op("add", "/status/discovered".into(), Some(w))),
        (Some(_), None) => ops.push(op("remove", "/status/discovered".into(), None)),
        _ => {}
    }
    let Some(list) = live.get("conditions").and_then(Value::as_array) else {
        if !want_conds.is_empty() {
            ops.extend(guard());
            ops.push(op(
                "add",
                "/status/conditions".into(),
                Some(&json!(want_conds)),
            ));
        }
        return ops;
    };
    let at = |i: usize| format!("/status/conditions/{i}");
    let mut removed = Vec::new();
    for t in crate::merge::OWNED_CONDITIONS {
        let i = list.iter().position(|c| c["type"] == t);
        match (i, want_conds.iter().find(|c| c["type"] == t)) {
            (Some(i), Some(w)) if without_time(&list[i]) != without_time(w) => {
                ops.push(op("test", format!("{}/type", at(i)), Some(&json!(t))));
                ops.push(op("replace", at(i), Some(w)));
            }
            (None, Some(w)) => ops.push(op("add", "/status/conditions/-".into(), Some(w))),
            (Some(i), None) => removed.push((i, t)),
            _ => {}
        }
    }
    // Removals last and from the end: the indices above stay valid.
    removed.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (i, t) in removed {
        ops.push(op("test", format!("{}/type", at(i)), Some(&json!(t))));
        ops.push(op("remove", at(i), None));
    }
    ops
}

/// Field manager of the Mesh writes made by discovery (create and patches), so
/// `managedFields` tell discovery's writes from a user's.
pub const DISCOVERY_FIELD_MANAGER: &str = "meshbridge-discovery";

/// What a discovery pass read: the cluster objects discovery looks at and the Meshes in
/// the controller namespace.
pub struct ClusterState {
    pub objects: Vec<Value>,
    pub existing: Vec<meshbridge_core::api::meshbridge::Mesh>,
    /// App Mesh meshes listed through the AWS API; `None` when the API was not asked.
    pub appmesh_api: Option<Vec<String>>,
}

impl ClusterState {
    /// Adds the App Mesh meshes `list` returns (the AWS API). A failure is returned for the
    /// caller to log, not raised: without the API, Meshes of API-only App Mesh meshes stay as
    /// they are (neither found nor lost).
    pub async fn list_app_meshes(
        &mut self,
        list: Option<&crate::runner::ListAppMeshes>,
    ) -> Option<String> {
        match list?().await {
            Ok(m) => {
                self.appmesh_api = Some(m);
                None
            }
            Err(e) => Some(format!("App Mesh API: cannot list meshes: {e}")),
        }
    }
}

/// The reads of a discovery pass ([`read_cluster`] and the Meshes in `cfg.namespace`).
pub async fn read_state(client: &Client, cfg: &crate::Config) -> Result<ClusterState> {
    use meshbridge_core::api::meshbridge::Mesh;
    let objects = read_cluster(client).await?;
    let api: Api<Mesh> = Api::namespaced(client.clone(), &cfg.namespace);
    let existing = api.list(&ListParams::default()).await?.items;
    Ok(ClusterState {
        objects,
        existing,
        appmesh_api: None,
    })
}

/// The Meshes discovery wants for `state` (pure).
pub fn desired(
    state: &ClusterState,
    cfg: &crate::Config,
    caps: crate::CapsFn<'_>,
) -> Vec<meshbridge_core::api::meshbridge::Mesh> {
    let mut found = crate::find_control_planes(&state.objects);
    let mut cfg = cfg.clone();
    if let Some(listed) = &state.appmesh_api {
        found = crate::with_api_meshes(found, listed);
        cfg.appmesh_api_listed = true;
    }
    crate::merge(&state.existing, &found, &cfg, caps)
}

/// Writes `merged` against the `existing` Meshes: creates new ones, patches spec/annotations
/// that differ (merge patch guarded by resourceVersion), and writes the `scope` part of
/// `/status` where it differs. Never deletes.
pub async fn write_meshes(
    client: &Client,
    cfg: &crate::Config,
    existing: &[meshbridge_core::api::meshbridge::Mesh],
    merged: Vec<meshbridge_core::api::meshbridge::Mesh>,
    scope: StatusScope,
) -> Result<DiscoveryReport> {
    use meshbridge_core::api::meshbridge::Mesh;
    let api: Api<Mesh> = Api::namespaced(client.clone(), &cfg.namespace);
    let pp = PatchParams {
        field_manager: Some(DISCOVERY_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let post = PostParams {
        field_manager: Some(DISCOVERY_FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let mut report = DiscoveryReport::default();
    for m in merged {
        let name = m.metadata.name.clone().unwrap_or_default();
        let before = existing.iter().find(|e| e.metadata.name == m.metadata.name);
        let mut status = serde_json::to_value(&m.status).unwrap_or(Value::Null);
        let live_status = before.map(|b| serde_json::to_value(&b.status).unwrap_or(Value::Null));
        // The resourceVersion the status patch starts from.
        let mut rv = before.and_then(|b| b.metadata.resource_version.clone());
        match before {
            None => {
                let mut body = m.clone();
                body.status = None;
                body.metadata.resource_version = None;
                let created = api.create(&post, &body).await?;
                // The server set the generation: the conditions observe it (as rediscovery's
                // will, so the next pass has nothing to write).
                if let Some(g) = created.metadata.generation {
                    observe_generation(&mut status, g);
                }
                rv = created.metadata.resource_version;
                report.created.push(name.clone());
            }
            Some(b) => {
                if b.spec != m.spec || b.metadata.annotations != m.metadata.annotations {
                    let patch = json!({
                        "metadata": {"annotations": m.metadata.annotations, "resourceVersion": b.metadata.resource_version},
                        "spec": m.spec,
                    });
                    let patched = api.patch(&name, &pp, &Patch::Merge(&patch)).await?;
                    // A spec change is a new generation: discovery's conditions observe it.
                    if let Some(g) = patched.metadata.generation
                        && patched.metadata.generation != b.metadata.generation
                    {
                        observe_generation(&mut status, g);
                    }
                    rv = patched.metadata.resource_version;
                    report.updated.push(name.clone());
                }
            }
        }
        let patch = match scope {
            StatusScope::Whole => (live_status.as_ref().map(without_times)
                != Some(without_times(&status)))
            .then(|| Patch::Merge(json!({"status": status}))),
            StatusScope::Owned => {
                let ops = owned_status_patch(live_status.as_ref(), rv.as_deref(), &status);
                (!ops.is_empty())
                    .then(|| serde_json::from_value(Value::Array(ops)).map(Patch::Json))
                    .transpose()
                    .map_err(|e| Error(format!("Mesh {name}: status patch: {e}")))?
            }
        };
        if let Some(patch) = patch {
            api.patch_status(&name, &pp, &patch).await?;
            report.status_written.push(name);
        }
    }
    Ok(report)
}

/// One discovery pass as the only writer of the Meshes ([`StatusScope::Whole`]): read the
/// cluster, merge with the Meshes in `cfg.namespace`, and write only what differs (create
/// new Meshes; spec/annotation changes as a merge patch guarded by resourceVersion; status
/// as a `/status` merge patch). Never deletes a Mesh.
pub async fn discover_and_write(
    client: &Client,
    cfg: &crate::Config,
    caps: crate::CapsFn<'_>,
) -> Result<DiscoveryReport> {
    let state = read_state(client, cfg).await?;
    let merged = desired(&state, cfg, caps);
    write_meshes(client, cfg, &state.existing, merged, StatusScope::Whole).await
}

/// One pass over every Install in the cluster (for a periodic loop or a watch handler in
/// the controller): each gets one [`reconcile_install_with`] step. Results by
/// `namespace/name`.
pub async fn reconcile_all_installs(
    client: &Client,
    cfg: &InstallConfig,
) -> Result<Vec<(String, Result<Step>)>> {
    let api: Api<Install> = Api::all(client.clone());
    let all = api.list(&ListParams::default()).await?.items;
    let mut out = Vec::new();
    for i in &all {
        let (ns, name) = install::install_name(i);
        let key = format!("{ns}/{name}");
        out.push((key, reconcile_install_with(client, i, &all, cfg).await));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::owned_status_patch;
    use serde_json::{Value, json};

    fn cond(t: &str, status: &str, reason: &str) -> Value {
        json!({"type": t, "status": status, "reason": reason, "message": "", "observedGeneration": 1})
    }

    /// `obj` with `ops` applied as the API server applies a JSON patch.
    fn apply(obj: &Value, ops: &[Value]) -> Result<Value, String> {
        let mut v = obj.clone();
        meshbridge_test_support::util::json_patch(&mut v, &json!(ops))?;
        Ok(v)
    }

    fn mesh(status: Option<Value>) -> Value {
        let mut m = json!({"metadata": {"name": "istio", "resourceVersion": "7"}});
        if let Some(s) = status {
            m["status"] = s;
        }
        m
    }

    #[test]
    fn only_discoverys_fields_are_patched_and_the_rest_is_left_as_it_is() {
        let controller = json!({
            "observedGeneration": 1,
            "capabilities": [{"feature": "trafficSplit", "level": "Full"}],
            "conditions": [cond("Accepted", "True", "Accepted"), cond("Ready", "True", "Discovered"),
                           cond("Supported", "True", "AdapterAvailable")],
            "discovered": {"version": "1.20.1"},
        });
        let live = mesh(Some(controller.clone()));
        // Wanted: Ready changes, VersionResolved is new, discovered changes; what discovery
        // computed for the other fields does not matter.
        let want = json!({
            "observedGeneration": 9,
            "capabilities": [],
            "conditions": [cond("Accepted", "False", "Other"), cond("Ready", "False", "NotFound"),
                           cond("VersionResolved", "True", "VersionResolved")],
            "discovered": {"version": "1.20.2"},
        });
        let ops = owned_status_patch(live.get("status"), Some("7"), &want);
        assert!(
            ops.iter().all(|o| !o.to_string().contains("capabilities")
                && !o.to_string().contains("Accepted")
                && !o.to_string().contains("observedGeneration\":9")),
            "{ops:#?}"
        );
        let after = apply(&live, &ops).unwrap();
        let st = &after["status"];
        assert_eq!(st["capabilities"], controller["capabilities"]);
        assert_eq!(st["observedGeneration"], 1);
        assert_eq!(st["discovered"], json!({"version": "1.20.2"}));
        assert_eq!(
            st["conditions"],
            json!([
                cond("Accepted", "True", "Accepted"),
                cond("Ready", "False", "NotFound"),
                cond("Supported", "True", "AdapterAvailable"),
                cond("VersionResolved", "True", "VersionResolved")
            ])
        );
        // Applied: nothing more to write.
        assert_eq!(
            owned_status_patch(after.get("status"), Some("8"), &want),
            Vec::<Value>::new()
        );
        // Another writer moved the conditions meanwhile: the patch fails, hits nothing.
        let mut moved = live.clone();
        moved["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .swap(0, 1);
        let failed = apply(&moved, &ops).unwrap_err();
        assert!(failed.contains("/status/conditions/1/type"), "{failed}");
    }

    #[test]
    fn a_status_or_condition_list_not_there_yet_is_added_only_at_the_version_read() {
        let want = json!({"capabilities": [{"feature": "mtls", "level": "Full"}],
                          "conditions": [cond("Ready", "True", "Discovered")],
                          "discovered": {"version": "1"}});
        let ops = owned_status_patch(None, Some("7"), &want);
        let after = apply(&mesh(None), &ops).unwrap();
        assert_eq!(
            after["status"],
            json!({"conditions": [cond("Ready", "True", "Discovered")], "discovered": {"version": "1"}})
        );
        let mut newer = mesh(None);
        newer["metadata"]["resourceVersion"] = json!("8");
        assert!(apply(&newer, &ops).is_err());
        // A status without conditions (the controller's, say): they are added, guarded too.
        let live = mesh(Some(json!({"capabilities": []})));
        let ops = owned_status_patch(live.get("status"), Some("7"), &want);
        assert_eq!(
            apply(&live, &ops).unwrap()["status"]["conditions"],
            json!([cond("Ready", "True", "Discovered")])
        );
        assert!(ops.iter().any(|o| o["path"] == "/metadata/resourceVersion"));
        // Nothing of discovery's wanted, nothing there: no patch.
        assert!(owned_status_patch(None, Some("7"), &json!({"capabilities": []})).is_empty());
    }

    #[test]
    fn conditions_compare_without_transition_times_and_removals_keep_indices_valid() {
        let mut ready = cond("Ready", "True", "Discovered");
        ready["lastTransitionTime"] = json!("2026-01-01T00:00:00Z");
        let live = mesh(Some(json!({"conditions": [
            cond("VersionResolved", "True", "VersionResolved"), cond("Accepted", "True", "Accepted"), ready]})));
        let want = json!({"conditions": [cond("Ready", "True", "Discovered")]});
        // Ready is the same; VersionResolved is no longer wanted.
        let ops = owned_status_patch(live.get("status"), Some("7"), &want);
        let after = apply(&live, &ops).unwrap();
        assert_eq!(after["status"]["conditions"][0]["type"], "Accepted");
        assert_eq!(after["status"]["conditions"][1]["type"], "Ready");
        assert_eq!(after["status"]["conditions"].as_array().unwrap().len(), 2);
    }
}
