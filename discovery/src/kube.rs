//! The Install reconciler against the Kubernetes API: finalizer, installer Jobs (run as
//! the pre-existing installer ServiceAccount), the built-in mesh, status. One call of [`reconcile_install`] takes one step; call it again on every change
//! of the Install or of its Jobs (or periodically) until it reports [`Step::Done`].

use crate::install::{
    self, ACTION_LABEL, Action, FINALIZER, INSTALL_LABEL, INSTALL_NS_LABEL, Phase, active_of,
    job_phase,
};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, PropagationPolicy,
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

fn ar(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (g, v) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, kind), plural)
}

fn plural_of(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('s') {
        format!("{k}es")
    } else if let Some(stem) = k.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{k}s")
    }
}

fn dyn_api(client: &Client, v: &Value) -> Option<(Api<DynamicObject>, String)> {
    let av = v.get("apiVersion")?.as_str()?;
    let kind = v.get("kind")?.as_str()?;
    let name = v.pointer("/metadata/name")?.as_str()?.to_string();
    let r = ar(av, kind, &plural_of(kind));
    let api = match v.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r),
        None => Api::all_with(client.clone(), &r),
    };
    Some((api, name))
}

async fn delete_if_ours(client: &Client, v: &Value, install_name: &str) -> Result<()> {
    let Some((api, name)) = dyn_api(client, v) else {
        return Ok(());
    };
    match api.get_opt(&name).await? {
        Some(live)
            if live
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(INSTALL_LABEL))
                .map(String::as_str)
                == Some(install_name) =>
        {
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        _ => Ok(()),
    }
}

fn jobs_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ar("batch/v1", "Job", "jobs"))
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
    let ns = job["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let api = jobs_api(client, &ns);
    if let Some(live) = api.get_opt(&name).await? {
        return Ok(Some(
            serde_json::to_value(live).map_err(|e| Error(e.to_string()))?,
        ));
    }
    let obj: DynamicObject = serde_json::from_value(job).map_err(|e| Error(e.to_string()))?;
    let created = api.create(&PostParams::default(), &obj).await?;
    Ok(Some(
        serde_json::to_value(created).map_err(|e| Error(e.to_string()))?,
    ))
}

fn install_selector(i: &Install) -> String {
    let ns = i.metadata.namespace.clone().unwrap_or_default();
    let name = i.metadata.name.clone().unwrap_or_default();
    format!("{INSTALL_LABEL}={name},{INSTALL_NS_LABEL}={ns}")
}

/// Removes every Job made for `i`.
async fn cleanup(client: &Client, i: &Install) -> Result<()> {
    let ns = i
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api = jobs_api(client, &ns);
    let jobs = api
        .list(&ListParams::default().labels(&install_selector(i)))
        .await?;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for j in jobs.items {
        if let Some(n) = &j.metadata.name {
            match api.delete(n, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Stops the install Jobs of `i` before its uninstall starts: deletes them with
/// `propagationPolicy: Foreground` (the Job object stays until its pods are gone) and
/// returns the names of those still present (wait for them).
async fn stop_install_jobs(client: &Client, i: &Install) -> Result<Vec<String>> {
    let ns = i
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api = jobs_api(client, &ns);
    let sel = format!(
        "{},{ACTION_LABEL}={}",
        install_selector(i),
        Action::Install.as_str()
    );
    let jobs = api.list(&ListParams::default().labels(&sel)).await?;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteParams::default()
    };
    let mut left = Vec::new();
    for j in jobs.items {
        let Some(n) = j.metadata.name.clone() else {
            continue;
        };
        if j.metadata.deletion_timestamp.is_none() {
            match api.delete(&n, &dp).await {
                // Foreground: the server answers with the Job, deletionTimestamp set, while
                // its pods are deleted; without it (or with a Status) the Job is gone.
                Ok(r) => match r.left() {
                    Some(o) if o.metadata.deletion_timestamp.is_some() => {}
                    _ => continue,
                },
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        left.push(n);
    }
    Ok(left)
}

/// Whether ServiceAccount `name` exists in `ns` (the installer's or the built-in mesh's,
/// both created by the Helm chart on opt-in).
async fn service_account_exists(client: &Client, ns: &str, name: &str) -> Result<bool> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ar("v1", "ServiceAccount", "serviceaccounts"),
    );
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

fn comparable(st: &InstallStatus) -> Value {
    let mut v = serde_json::to_value(st).unwrap_or(Value::Null);
    if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in cs {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    v
}

async fn write_status(api: &Api<Install>, i: &Install, st: InstallStatus) -> Result<()> {
    if i.status.as_ref().map(comparable) == Some(comparable(&st)) {
        return Ok(());
    }
    let name = i.metadata.name.clone().unwrap_or_default();
    let patch = json!({"status": st});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Applies the built-in mesh's objects and returns its phase from the Deployment's
/// availability (the server-side apply answers with the live object, status included).
async fn apply_builtin(client: &Client, i: &Install) -> Result<(Phase, &'static str, String)> {
    let mut deployment = None;
    for o in install::builtin_objects(i) {
        let Some((api, name)) = dyn_api(client, &o) else {
            continue;
        };
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let live = api.patch(&name, &pp, &Patch::Apply(&o)).await?;
        if o["kind"] == "Deployment" {
            deployment = serde_json::to_value(live).ok();
        }
    }
    let Some(mut d) = deployment else {
        return Ok((
            Phase::Failed,
            "Failed",
            "no Deployment in the built-in mesh's manifests".into(),
        ));
    };
    d["apiVersion"] = json!("apps/v1");
    d["kind"] = json!("Deployment");
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
    let cfg = InstallConfig::new(
        i.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    );
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
    let ns = i
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = i.metadata.name.clone().unwrap_or_default();
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
                write_status(&api, i, st).await?;
                return Ok(Step::Done(msg));
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
                write_status(&api, i, st).await?;
                return Ok(Step::Done(msg));
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

    if ns != cfg.namespace {
        let r = install::Rejection {
            reason: "WrongNamespace",
            message: format!(
                "Installs are carried out only in the controller namespace {}; create this one there",
                cfg.namespace
            ),
        };
        write_status(&api, i, install::rejected_status(i, &r)).await?;
        return Ok(Step::Done(r.message));
    }
    if let Err(r) = install::validate(&i.spec) {
        write_status(&api, i, install::rejected_status(i, &r)).await?;
        return Ok(Step::Done(r.message));
    }
    if i.spec.mesh_type == MeshType::Envoy
        && i.spec.install_namespace.as_ref().is_some_and(|n| *n != ns)
    {
        let r = install::Rejection {
            reason: "InvalidNamespace",
            message: format!(
                "the built-in mesh runs in the controller namespace {ns}; drop spec.installNamespace"
            ),
        };
        write_status(&api, i, install::rejected_status(i, &r)).await?;
        return Ok(Step::Done(r.message));
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
        write_status(&api, i, st).await?;
        return Ok(Step::Done(msg));
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
        write_status(&api, i, st).await?;
        return Ok(Step::Done(msg));
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
    r: &ApiResource,
    ns: Option<&str>,
    lp: &ListParams,
) -> Result<Vec<Value>> {
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, r),
        None => Api::all_with(client.clone(), r),
    };
    match api.list(lp).await {
        Ok(l) => Ok(l
            .items
            .into_iter()
            .filter_map(|o| {
                let mut v = serde_json::to_value(o).ok()?;
                // Lists do not repeat apiVersion/kind on items.
                v["apiVersion"] = json!(r.api_version);
                v["kind"] = json!(r.kind);
                Some(v)
            })
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
    let lp = ListParams::default();
    let mut out = list_values(
        client,
        &ar("apps/v1", "Deployment", "deployments"),
        None,
        &lp,
    )
    .await?;
    out.extend(list_values(client, &ar("v1", "Namespace", "namespaces"), None, &lp).await?);
    for sel in ["istio.io/rev", "linkerd.io/control-plane-ns"] {
        out.extend(
            list_values(
                client,
                &ar("v1", "Pod", "pods"),
                None,
                &ListParams::default().labels(sel),
            )
            .await?,
        );
    }
    out.extend(
        list_values(
            client,
            &ar("appmesh.k8s.aws/v1beta2", "Mesh", "meshes"),
            None,
            &lp,
        )
        .await?,
    );
    let cps = crate::find_control_planes(&out);
    let mut cp_namespaces: Vec<String> = cps
        .iter()
        .filter_map(|c| c.discovered.control_plane_namespace.clone())
        .collect();
    cp_namespaces.sort();
    cp_namespaces.dedup();
    let mut roots = Vec::new();
    // ConfigMaps by name only (the ClusterRole grants `get` on these names, never a list).
    let cm = ar("v1", "ConfigMap", "configmaps");
    for (ns, n) in crate::detect::config_maps_needed(&cps) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &cm);
        let obj = match api.get(&n).await {
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
        let Ok(mut v) = serde_json::to_value(obj) else {
            continue;
        };
        v["apiVersion"] = json!("v1");
        v["kind"] = json!("ConfigMap");
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
    roots.extend(cp_namespaces);
    roots.sort();
    roots.dedup();
    for ns in roots {
        out.extend(
            list_values(
                client,
                &ar(
                    "security.istio.io/v1beta1",
                    "PeerAuthentication",
                    "peerauthentications",
                ),
                Some(&ns),
                &lp,
            )
            .await?,
        );
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

fn without_times(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in cs {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    v
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
        if c["type"]
            .as_str()
            .is_some_and(|t| crate::merge::OWNED_CONDITIONS.contains(&t))
        {
            c["observedGeneration"] = json!(g);
        }
    }
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
/// that differ (merge patch guarded by resourceVersion), patches `/status` that differs.
/// Never deletes.
pub async fn write_meshes(
    client: &Client,
    cfg: &crate::Config,
    existing: &[meshbridge_core::api::meshbridge::Mesh],
    merged: Vec<meshbridge_core::api::meshbridge::Mesh>,
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
                    report.updated.push(name.clone());
                }
            }
        }
        if live_status.as_ref().map(without_times) != Some(without_times(&status)) {
            api.patch_status(&name, &pp, &Patch::Merge(&json!({"status": status})))
                .await?;
            report.status_written.push(name);
        }
    }
    Ok(report)
}

/// One discovery pass: read the cluster, merge with the Meshes in `cfg.namespace`, and write
/// only what differs (create new Meshes; spec/annotation changes as a merge patch guarded
/// by resourceVersion; status as a `/status` merge patch). Never deletes a Mesh.
pub async fn discover_and_write(
    client: &Client,
    cfg: &crate::Config,
    caps: crate::CapsFn<'_>,
) -> Result<DiscoveryReport> {
    let state = read_state(client, cfg).await?;
    let merged = desired(&state, cfg, caps);
    write_meshes(client, cfg, &state.existing, merged).await
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
        let key = format!(
            "{}/{}",
            i.metadata.namespace.clone().unwrap_or_default(),
            i.metadata.name.clone().unwrap_or_default()
        );
        out.push((key, reconcile_install_with(client, i, &all, cfg).await));
    }
    Ok(out)
}
