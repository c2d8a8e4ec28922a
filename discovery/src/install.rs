//! `Install` → what runs in the cluster. Pure: manifests, phase from the installer Job,
//! which Install is active per mesh type, and what the reconciler must do next.
//!
//! Installers (pinned images; `spec.version` picks the tag, default [`default_version`]):
//! - Istio: one container `docker.io/istio/istioctl:<version>` running
//!   `istioctl install -y --set profile=default [--set revision=R] --set values.global.istioNamespace=NS`;
//!   uninstall `istioctl uninstall -y --revision R|default` (only that revision's objects).
//! - Linkerd: no published image holds both the `linkerd` CLI and kubectl, so the Job runs
//!   the official pipeline `linkerd install --crds | kubectl apply -f - && linkerd install |
//!   kubectl apply -f -` as sequential containers sharing an `emptyDir`: `curlimages/curl`
//!   downloads the release's `linkerd2-cli-<version>-linux-<arch>` from GitHub and checks
//!   the release's `.sha256`; the CLI renders, `registry.k8s.io/kubectl` applies (server
//!   side) and waits for the CRDs. Uninstall: `linkerd uninstall` rendered, then
//!   `kubectl delete`.
//! - Built-in mesh (`envoy`): meshbridge's own manifests (`deploy/meshbridge.yaml`), applied
//!   directly by the reconciler with the install labels; uninstall deletes exactly the
//!   objects carrying them.
//! - App Mesh and Gateway API: not installable here (`Accepted=False`, `Unsupported`).

use crate::detect::condition;
use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::{Install, InstallSpec, InstallStatus, MeshType};
use serde_json::{Value, json};

pub const FINALIZER: &str = "meshbridge.io/install";
pub const INSTALL_LABEL: &str = "meshbridge.io/install";
pub const INSTALL_NS_LABEL: &str = "meshbridge.io/install-namespace";
pub const ACTION_LABEL: &str = "meshbridge.io/install-action";
pub const KUBECTL_IMAGE: &str = "registry.k8s.io/kubectl:v1.31.4";
pub const CURL_IMAGE: &str = "docker.io/curlimages/curl:8.11.1";
pub const MESHBRIDGE_MANIFESTS: &str = include_str!("../../deploy/meshbridge.yaml");

/// The version installed when `spec.version` is omitted (the one meshbridge is tested with).
pub fn default_version(t: MeshType) -> Option<&'static str> {
    match t {
        MeshType::Istio => Some("1.24.2"),
        MeshType::Linkerd => Some("stable-2.14.10"),
        MeshType::Envoy => Some(env!("CARGO_PKG_VERSION")),
        MeshType::AppMesh | MeshType::GatewayApi => None,
    }
}

/// The namespace a mesh is installed into by default.
pub fn default_namespace(t: MeshType) -> &'static str {
    match t {
        MeshType::Istio => "istio-system",
        MeshType::Linkerd => "linkerd",
        MeshType::Envoy => "meshbridge-system",
        MeshType::AppMesh => "appmesh-system",
        MeshType::GatewayApi => "",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Install,
    Uninstall,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Install => "install",
            Action::Uninstall => "uninstall",
        }
    }

    /// The phase while this action's Job runs.
    pub fn running(self) -> Phase {
        match self {
            Action::Install => Phase::Installing,
            Action::Uninstall => Phase::Uninstalling,
        }
    }

    /// The phase once this action's Job completed.
    pub fn done(self) -> Phase {
        match self {
            Action::Install => Phase::Installed,
            Action::Uninstall => Phase::Uninstalled,
        }
    }
}

/// Lifecycle phase written to `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Installing,
    Installed,
    Failed,
    Uninstalling,
    Uninstalled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Installing => "Installing",
            Phase::Installed => "Installed",
            Phase::Failed => "Failed",
            Phase::Uninstalling => "Uninstalling",
            Phase::Uninstalled => "Uninstalled",
        }
    }
}

/// Why an Install cannot be carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub message: String,
}

/// Checks the spec: installable type, version and names safe to put in arguments.
pub fn validate(spec: &InstallSpec) -> Result<(), Rejection> {
    if default_version(spec.mesh_type).is_none() {
        return Err(Rejection {
            reason: "Unsupported",
            message: format!(
                "meshbridge does not install {} (install it with its own tooling; discovery will find it)",
                spec.mesh_type
            ),
        });
    }
    let ok_token = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    };
    if let Some(v) = &spec.version
        && !ok_token(v)
    {
        return Err(Rejection {
            reason: "InvalidVersion",
            message: format!("spec.version `{v}` is not a version (letters, digits, `.-_+`)"),
        });
    }
    if let Some(r) = &spec.revision {
        if spec.mesh_type != MeshType::Istio {
            return Err(Rejection {
                reason: "InvalidRevision",
                message: "spec.revision applies to Istio only".into(),
            });
        }
        if !meshbridge_core::load::is_dns_label(r) {
            return Err(Rejection {
                reason: "InvalidRevision",
                message: format!("spec.revision `{r}` is not a DNS label"),
            });
        }
    }
    if let Some(n) = &spec.install_namespace
        && !meshbridge_core::load::is_dns_label(n)
    {
        return Err(Rejection {
            reason: "InvalidNamespace",
            message: format!("spec.installNamespace `{n}` is not a DNS label"),
        });
    }
    Ok(())
}

/// An Install spec of `mesh_type` at its default version, namespace and revision.
pub fn spec_of(mesh_type: MeshType) -> InstallSpec {
    InstallSpec {
        mesh_type,
        version: None,
        install_namespace: None,
        revision: None,
        disabled: false,
    }
}

pub fn version_of(spec: &InstallSpec) -> String {
    spec.version
        .clone()
        .or_else(|| default_version(spec.mesh_type).map(str::to_string))
        .unwrap_or_default()
}

pub fn namespace_of(spec: &InstallSpec) -> String {
    spec.install_namespace
        .clone()
        .unwrap_or_else(|| default_namespace(spec.mesh_type).to_string())
}

fn short(s: &str, max: usize) -> String {
    let mut s = s.to_string();
    s.truncate(max);
    s.trim_end_matches('-').to_string()
}

/// The Install's (namespace, name); namespace `default` when unset.
pub fn install_name(i: &Install) -> (String, String) {
    (
        i.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        i.metadata.name.clone().unwrap_or_default(),
    )
}

/// Name of the installer Job for `action`: changes with the version, revision and namespace
/// (Jobs are immutable: an upgrade is a new Job).
pub fn job_name(i: &Install, action: Action) -> String {
    let (_, n) = install_name(i);
    let s = &i.spec;
    let mut key = format!(
        "{}|{}|{}|{}|{}",
        action.as_str(),
        s.mesh_type,
        version_of(s),
        s.revision.clone().unwrap_or_default(),
        namespace_of(s)
    );
    // A retry of a failed uninstall is a new Job.
    let retry = retry_token(i);
    if action == Action::Uninstall && !retry.is_empty() {
        key.push('|');
        key.push_str(&retry);
    }
    let h = meshbridge_core::hash::short_hash(&key);
    format!("{}-{}-{h}", short(&n, 40), action.as_str())
}

/// The ServiceAccount the installer Jobs run as (`meshbridge run
/// --installer-service-account`; Helm `installer.serviceAccountName`). The Helm chart
/// creates it, bound to `cluster-admin`, only with `installer.enabled=true`; the controller
/// never creates ServiceAccounts or bindings itself.
pub const DEFAULT_INSTALLER_SERVICE_ACCOUNT: &str = "meshbridge-installer";

/// Annotation on an Install whose uninstall failed: a new value (e.g. a timestamp) runs a
/// new uninstall Job (`kubectl annotate install NAME meshbridge.io/retry-uninstall="$(date
/// +%s)" --overwrite`).
pub const RETRY_UNINSTALL_ANNOTATION: &str = "meshbridge.io/retry-uninstall";

fn retry_token(i: &Install) -> String {
    i.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RETRY_UNINSTALL_ANNOTATION))
        .cloned()
        .unwrap_or_default()
}

/// Labels on everything made for `i`.
pub fn labels(i: &Install) -> Value {
    let (ns, n) = install_name(i);
    json!({
        meshbridge_core::adapter::MANAGED_BY_LABEL: meshbridge_core::adapter::MANAGED_BY_VALUE,
        INSTALL_LABEL: short(&n, 63),
        INSTALL_NS_LABEL: ns,
    })
}

fn container(name: &str, image: &str, command: Option<Vec<String>>, args: Vec<String>) -> Value {
    let mut c = json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 65532,
                            "capabilities": {"drop": ["ALL"]}},
    });
    if let Some(cmd) = command {
        c["command"] = json!(cmd);
    }
    c
}

fn sh(script: String) -> (Option<Vec<String>>, Vec<String>) {
    (Some(vec!["/bin/sh".into(), "-ec".into()]), vec![script])
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The containers of the installer Job: `(init containers, main container)`.
fn steps(spec: &InstallSpec, action: Action) -> (Vec<Value>, Value) {
    let version = version_of(spec);
    let ns = namespace_of(spec);
    match spec.mesh_type {
        MeshType::Istio => {
            let image = format!("docker.io/istio/istioctl:{version}");
            let args = match action {
                Action::Install => {
                    let mut a = strs(&["install", "-y", "--set", "profile=default"]);
                    if let Some(r) = &spec.revision {
                        a.extend(["--set".to_string(), format!("revision={r}")]);
                    }
                    a.extend([
                        "--set".to_string(),
                        format!("values.global.istioNamespace={ns}"),
                    ]);
                    a
                }
                Action::Uninstall => {
                    let r = spec.revision.clone().unwrap_or_else(|| "default".into());
                    vec!["uninstall".into(), "-y".into(), "--revision".into(), r]
                }
            };
            (vec![], container("istioctl", &image, None, args))
        }
        MeshType::Linkerd => {
            let url = format!(
                "https://github.com/linkerd/linkerd2/releases/download/{version}/linkerd2-cli-{version}-linux-$arch"
            );
            let fetch = sh(format!(
                "case \"$(uname -m)\" in x86_64) arch=amd64;; aarch64|arm64) arch=arm64;; *) echo \"unsupported architecture $(uname -m)\" >&2; exit 1;; esac\n\
                 curl -fsSL -o /work/linkerd \"{url}\"\n\
                 want=\"$(curl -fsSL \"{url}.sha256\" | cut -d' ' -f1)\"\n\
                 echo \"$want  /work/linkerd\" | sha256sum -c -\n\
                 chmod 0755 /work/linkerd"
            ));
            // `linkerd <args> > /work/<out>` (the CLI runs in the curl image, which has a shell).
            let render = |name: &str, args: &str, out: &str| {
                let (cmd, a) = sh(format!(
                    "/work/linkerd {args} --linkerd-namespace {ns} > /work/{out}"
                ));
                container(name, CURL_IMAGE, cmd, a)
            };
            let kubectl =
                |name: &str, args: &[&str]| container(name, KUBECTL_IMAGE, None, strs(args));
            let mut init = vec![container("fetch-linkerd-cli", CURL_IMAGE, fetch.0, fetch.1)];
            let main = match action {
                Action::Install => {
                    init.push(render("render-crds", "install --crds", "crds.yaml"));
                    init.push(kubectl(
                        "apply-crds",
                        &["apply", "--server-side", "-f", "/work/crds.yaml"],
                    ));
                    init.push(kubectl(
                        "wait-crds",
                        &[
                            "wait",
                            "--for=condition=established",
                            "--timeout=300s",
                            "-f",
                            "/work/crds.yaml",
                        ],
                    ));
                    init.push(render(
                        "render-control-plane",
                        "install",
                        "control-plane.yaml",
                    ));
                    kubectl(
                        "apply-control-plane",
                        &["apply", "--server-side", "-f", "/work/control-plane.yaml"],
                    )
                }
                Action::Uninstall => {
                    init.push(render("render-uninstall", "uninstall", "uninstall.yaml"));
                    kubectl(
                        "delete",
                        &["delete", "--ignore-not-found", "-f", "/work/uninstall.yaml"],
                    )
                }
            };
            (init, main)
        }
        _ => (vec![], Value::Null),
    }
}

/// The installer (or uninstaller) Job, run as [`DEFAULT_INSTALLER_SERVICE_ACCOUNT`]; `None`
/// for mesh types installed without a Job (the built-in mesh) or not installable.
pub fn job(i: &Install, action: Action) -> Option<Value> {
    job_as(i, action, DEFAULT_INSTALLER_SERVICE_ACCOUNT)
}

/// [`job`] run as `service_account` (a ServiceAccount in the Install's namespace, the
/// controller namespace).
pub fn job_as(i: &Install, action: Action, service_account: &str) -> Option<Value> {
    if !matches!(i.spec.mesh_type, MeshType::Istio | MeshType::Linkerd) {
        return None;
    }
    let (ns, _) = install_name(i);
    let (init, main) = steps(&i.spec, action);
    let mut lbl = labels(i);
    lbl[ACTION_LABEL] = json!(action.as_str());
    let mut pod_spec = json!({
        "serviceAccountName": service_account,
        "restartPolicy": "Never",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [main],
        "volumes": [{"name": "work", "emptyDir": {}}],
    });
    if !init.is_empty() {
        pod_spec["initContainers"] = json!(init);
    }
    Some(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(i, action),
            "namespace": ns,
            "labels": lbl,
            "annotations": {
                "meshbridge.io/mesh-type": i.spec.mesh_type.as_str(),
                "meshbridge.io/version": version_of(&i.spec),
            },
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 1800,
            "template": {"metadata": {"labels": lbl}, "spec": pod_spec},
        },
    }))
}

/// Name of the controller's ClusterRole (and binding) for discovery and Installs in
/// `deploy/meshbridge.yaml`; not copied to the built-in mesh.
pub const DISCOVERY_ROLE: &str = "meshbridge-discovery";

/// Name of the built-in mesh's objects (distinct from the controller's own `meshbridge`, so
/// installing and uninstalling the mesh never touches the running controller). Also the
/// name of its ServiceAccount, which the Helm chart creates with `builtinMesh.enabled=true`
/// (bound to the controller's ClusterRole and lease Role).
pub const BUILTIN_NAME: &str = "meshbridge-mesh";

/// The kinds an `envoy` Install applies (copied from meshbridge's own manifests).
pub const BUILTIN_KINDS: [&str; 3] = ["Deployment", "PodDisruptionBudget", "Service"];

fn rename(v: &mut Value, ns: &str) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                match (k.as_str(), child.as_str()) {
                    ("name" | "serviceAccountName" | "app.kubernetes.io/instance", Some(n))
                        if (n == "meshbridge" || n.starts_with("meshbridge-"))
                            && !n.starts_with(BUILTIN_NAME) =>
                    {
                        *child = json!(format!("{BUILTIN_NAME}{}", &n["meshbridge".len()..]));
                    }
                    ("namespace", Some(_)) => *child = json!(ns),
                    _ => rename(child, ns),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rename(c, ns)),
        _ => {}
    }
}

/// The built-in mesh's objects: the Deployment, PodDisruptionBudget and Service of
/// meshbridge's own manifests (`deploy/meshbridge.yaml`) as a second deployment named
/// `meshbridge-mesh` that serves the built-in mesh (`--backend=envoy`, label
/// `meshbridge.io/builtin-mesh: "true"`, ServiceAccount `meshbridge-mesh`), each object
/// labelled for this Install. Its ServiceAccount and RBAC come from the Helm chart
/// (`builtinMesh.enabled`); CRDs and the Namespace belong to meshbridge itself, so
/// uninstalling the mesh never deletes them or the controller.
pub fn builtin_objects(i: &Install) -> Vec<Value> {
    let mut out = Vec::new();
    let version = version_of(&i.spec);
    let ns = namespace_of(&i.spec);
    let ns = if i.spec.install_namespace.is_none() {
        i.metadata.namespace.clone().unwrap_or(ns)
    } else {
        ns
    };
    for (_, body) in meshbridge_core::load::split_documents(MESHBRIDGE_MANIFESTS) {
        let Ok(Some(mut v)) = meshbridge_core::load::parse_document(&body) else {
            continue;
        };
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // Only the workload: its ServiceAccount and RBAC are pre-created by the Helm chart
        // (`builtinMesh.enabled`), so installing the mesh needs neither `bind` nor
        // `escalate`; CRDs and the Namespace belong to meshbridge itself.
        if !BUILTIN_KINDS.contains(&kind.as_str()) {
            continue;
        }
        if !v["metadata"].is_object() {
            continue;
        }
        // One TrafficMetrics API per cluster (one APIService): the controller's.
        if v["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-traffic-metrics"))
        {
            continue;
        }
        rename(&mut v, &ns);
        if v.pointer("/metadata/labels/app.kubernetes.io~1version")
            .is_some()
        {
            v["metadata"]["labels"]["app.kubernetes.io/version"] = json!(version);
        }
        if let Value::Object(l) = labels(i) {
            for (k, val) in l {
                v["metadata"]["labels"][k] = val;
            }
        }
        if kind == "Deployment" {
            v["metadata"]["labels"]["meshbridge.io/builtin-mesh"] = json!("true");
            if let Some(cs) = v
                .pointer_mut("/spec/template/spec/containers")
                .and_then(Value::as_array_mut)
            {
                for c in cs {
                    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                        ports.retain(|p| p["name"] != "https-tm");
                    }
                    if let Some(img) = c.get("image").and_then(Value::as_str) {
                        let repo = img.rsplit_once(':').map(|(r, _)| r).unwrap_or(img);
                        c["image"] = json!(format!("{repo}:{version}"));
                    }
                    if let Some(args) = c.get_mut("args").and_then(Value::as_array_mut) {
                        // One discovery/Install loop and one TrafficMetrics API per
                        // cluster: the controller's.
                        args.retain(|a| {
                            a.as_str().is_none_or(|s| {
                                !s.starts_with("--discovery=")
                                    && !s.starts_with("--discovery-interval=")
                                    && !s.starts_with("--installer-service-account=")
                                    && !s.starts_with("--traffic-metrics-")
                                    && !s.starts_with("--prometheus-url=")
                                    && !s.starts_with("--ui-addr=")
                            })
                        });
                        for a in args.iter_mut() {
                            let Some(s) = a.as_str() else { continue };
                            if s.starts_with("--backend=") {
                                *a = json!("--backend=envoy");
                            } else if s.starts_with("--lease-name=") {
                                *a = json!(format!("--lease-name={BUILTIN_NAME}"));
                            }
                        }
                        args.push(json!("--discovery=false"));
                    }
                }
            }
        }
        out.push(v);
    }
    out
}

/// Phase of a Job from its status (`None`: no Job yet).
pub fn job_phase(job: Option<&Value>, action: Action) -> (Phase, String) {
    let Some(j) = job else {
        return (Phase::Pending, "installer Job not created yet".into());
    };
    let name = j
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let conds = j
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is = |t: &str| {
        conds.iter().find(|c| {
            c.get("type").and_then(Value::as_str) == Some(t)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    };
    if is("Complete").is_some() {
        return (action.done(), format!("Job {name} completed"));
    }
    if let Some(c) = is("Failed") {
        let why = c.get("message").and_then(Value::as_str).unwrap_or("");
        let reason = c.get("reason").and_then(Value::as_str).unwrap_or("Failed");
        return (
            Phase::Failed,
            format!("Job {name} failed ({reason}): {why}"),
        );
    }
    let active = j
        .pointer("/status/active")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let failed = j
        .pointer("/status/failed")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    (
        action.running(),
        format!("Job {name}: {active} active, {failed} failed attempt(s)"),
    )
}

fn ts(i: &Install) -> String {
    i.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

/// Whether `i` wants its mesh installed (not disabled, not being deleted, valid).
pub fn wants_install(i: &Install) -> bool {
    !i.spec.disabled && i.metadata.deletion_timestamp.is_none() && validate(&i.spec).is_ok()
}

/// The active Install of `i`'s mesh type among `all`: the oldest (creationTimestamp, then
/// namespace/name) that wants its mesh installed. A second Install of the same type is
/// rejected, so two installers never fight over one mesh.
pub fn active_of(all: &[Install], t: MeshType) -> Option<&Install> {
    all.iter()
        .filter(|i| i.spec.mesh_type == t && wants_install(i))
        .min_by_key(|i| (ts(i), install_name(i)))
}

/// Conditions + phase for an Install rejected as a duplicate of `winner`.
pub fn duplicate_status(i: &Install, winner: &Install) -> InstallStatus {
    let (wns, wn) = install_name(winner);
    status_with(
        i,
        None,
        vec![condition(
            "Accepted",
            false,
            "Duplicate",
            format!(
                "Install {wns}/{wn} already manages {}; only one active Install per mesh type",
                i.spec.mesh_type
            ),
        )],
    )
}

pub fn rejected_status(i: &Install, r: &Rejection) -> InstallStatus {
    status_with(
        i,
        None,
        vec![condition("Accepted", false, r.reason, r.message.clone())],
    )
}

/// Status for an accepted Install in `phase` (the `Ready` reason is the phase, `Failed`
/// for a failure).
pub fn phase_status(
    i: &Install,
    phase: Phase,
    message: String,
    job: Option<String>,
) -> InstallStatus {
    phase_status_because(i, phase, phase.as_str(), message, job)
}

/// [`phase_status`] with the `Ready` condition's reason given (e.g. `UninstallFailed`,
/// `InstallerNotEnabled`, `ControlPlaneUnavailable`).
pub fn phase_status_because(
    i: &Install,
    phase: Phase,
    reason: &str,
    message: String,
    job: Option<String>,
) -> InstallStatus {
    let ready = matches!(phase, Phase::Installed);
    let reason = if phase == Phase::Failed && reason == phase.as_str() {
        "Failed"
    } else {
        reason
    };
    let conds = vec![
        condition("Accepted", true, "Accepted", String::new()),
        condition("Ready", ready, reason, message),
    ];
    let mut st = status_with(i, Some(phase), conds);
    st.job = job;
    if phase == Phase::Installed {
        st.installed_version = Some(version_of(&i.spec));
    } else {
        st.installed_version = i.status.as_ref().and_then(|s| s.installed_version.clone());
        if phase == Phase::Uninstalled {
            st.installed_version = None;
        }
    }
    st
}

fn status_with(i: &Install, phase: Option<Phase>, mut conds: Vec<Condition>) -> InstallStatus {
    for c in &mut conds {
        c.observed_generation = i.metadata.generation;
    }
    InstallStatus {
        observed_generation: i.metadata.generation,
        conditions: conds,
        phase: phase.map(|p| p.as_str().to_string()),
        installed_version: None,
        job: None,
    }
}

/// A new Install object (what `meshbridge install` prints or applies).
pub fn new_install(name: &str, namespace: &str, spec: InstallSpec) -> Install {
    let mut i = Install::new(name, spec);
    i.metadata.namespace = Some(namespace.to_string());
    i
}
