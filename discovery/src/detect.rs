//! Discovery as a pure function: cluster objects (as JSON values, any kind) → one `Mesh`
//! per control plane. No I/O, no clock: the same objects always give the same Meshes.

use crate::version::{Found, image_repository, image_tag, linkerd_version_in, meta_str, semver_in};
use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::{DiscoveredMesh, Mesh, MeshSpec, MeshStatus, MeshType};
use meshbridge_core::capability::Capability;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Label on Mesh objects written by discovery.
pub const DISCOVERED_BY_LABEL: &str = "meshbridge.io/discovered-by";
pub const DISCOVERED_BY_VALUE: &str = "meshbridge-discovery";
/// Annotation: JSON map of the spec fields discovery last wrote (so a later change made by a
/// user is told apart from a value discovery set, and only the latter is refreshed).
pub const DISCOVERED_SPEC_ANNOTATION: &str = "meshbridge.io/discovered-spec";

/// Capabilities of a mesh type with the given settings (the binary passes the adapters'
/// `capabilities`); `None` when this build has no adapter for the type.
pub type CapsFn<'a> = &'a dyn Fn(&MeshSpec) -> Option<Vec<Capability>>;

/// Settings of a discovery run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespace the Mesh objects are written to (the controller namespace).
    pub namespace: String,
    /// Whether this run listed App Mesh meshes through the AWS API ([`with_api_meshes`]).
    /// When it did not (no credentials, API error), Meshes of API-only App Mesh meshes are
    /// left as they are instead of being marked NotFound.
    pub appmesh_api_listed: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: "meshbridge-system".into(),
            appmesh_api_listed: false,
        }
    }
}

/// One control plane found in the objects.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlPlane {
    pub mesh_type: MeshType,
    pub discovered: DiscoveredMesh,
    /// App Mesh: the mesh name in AWS, when the objects say.
    pub app_mesh_name: Option<String>,
    /// Human-readable facts: where the version, trust domain and mTLS mode came from.
    pub notes: Vec<String>,
    /// Why the control plane serves nothing (its Deployment is not available: no available
    /// replica, a rollout not observed yet, `Available=False`); `None` when it serves. An
    /// unavailable control plane is never reported Ready.
    pub unavailable: Option<String>,
}

impl ControlPlane {
    /// Whether the version could be determined.
    pub fn version_known(&self) -> bool {
        self.discovered.version.is_some()
    }

    /// Stable identity: (type, control-plane namespace, revision). An App Mesh mesh seen
    /// only through the AWS API has no control plane in the cluster: its identity is
    /// (appmesh, "", mesh name).
    pub fn identity(&self) -> (MeshType, String, String) {
        if self.is_api_only() {
            return (
                self.mesh_type,
                String::new(),
                self.app_mesh_name.clone().unwrap_or_default(),
            );
        }
        (
            self.mesh_type,
            self.discovered
                .control_plane_namespace
                .clone()
                .unwrap_or_default(),
            self.discovered.revision.clone().unwrap_or_default(),
        )
    }

    /// An App Mesh mesh found through the AWS API that no App Mesh controller in the
    /// cluster programs (meshbridge programs it directly: `run --backend appmesh`).
    pub fn is_api_only(&self) -> bool {
        self.mesh_type == MeshType::AppMesh && self.discovered.control_plane_namespace.is_none()
    }

    /// Default Mesh name: `istio` (default revision) / `istio-<rev>`, `linkerd`, `appmesh`,
    /// `meshbridge` (the built-in mesh).
    pub fn base_name(&self) -> String {
        match self.mesh_type {
            MeshType::Istio => match self.discovered.revision.as_deref() {
                None | Some("default") | Some("") => "istio".into(),
                Some(r) => dns_label(&format!("istio-{r}")),
            },
            MeshType::Envoy => "meshbridge".into(),
            MeshType::AppMesh if self.is_api_only() => dns_label(&format!(
                "appmesh-{}",
                self.app_mesh_name.as_deref().unwrap_or_default()
            )),
            t => t.as_str().into(),
        }
    }

    /// The spec discovery would write for a new Mesh.
    pub fn spec(&self) -> MeshSpec {
        MeshSpec {
            mesh_type: self.mesh_type,
            version: self.discovered.version.clone(),
            revision: self
                .discovered
                .revision
                .clone()
                .filter(|r| self.mesh_type == MeshType::Istio && r != "default"),
            trust_domain: self.discovered.trust_domain.clone(),
            control_plane_namespace: self.discovered.control_plane_namespace.clone(),
            linkerd_split_mode: None,
            tcp_route_version: None,
            app_mesh_name: self.app_mesh_name.clone(),
        }
    }
}

/// Lower-case DNS label of at most 63 characters.
pub fn dns_label(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(63);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "mesh".into() } else { out }
}

fn s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn kind_of(v: &Value) -> (&str, &str) {
    (
        s(v, "/apiVersion").unwrap_or(""),
        s(v, "/kind").unwrap_or(""),
    )
}

fn name(v: &Value) -> &str {
    s(v, "/metadata/name").unwrap_or("")
}

fn namespace(v: &Value) -> &str {
    s(v, "/metadata/namespace").unwrap_or("")
}

fn containers(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in ["/spec/template/spec/containers", "/spec/containers"] {
        if let Some(Value::Array(cs)) = d.pointer(p) {
            out.extend(cs.iter());
        }
    }
    out
}

fn images(d: &Value) -> Vec<(&str, &str)> {
    containers(d)
        .into_iter()
        .filter_map(|c| Some((s(c, "/name").unwrap_or(""), s(c, "/image")?)))
        .collect()
}

fn template_label<'a>(d: &'a Value, key: &str) -> Option<&'a str> {
    d.pointer("/spec/template/metadata/labels")?
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn template_annotation<'a>(d: &'a Value, key: &str) -> Option<&'a str> {
    d.pointer("/spec/template/metadata/annotations")?
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// A version candidate: where it was looked for, and the text found there.
type Candidate<'a> = (String, Option<&'a str>);

/// The label `key` of the object.
fn label<'a>(d: &'a Value, key: &str) -> Candidate<'a> {
    (format!("label {key}"), meta_str(d, "labels", key))
}

/// The label `key` of the pod template.
fn pod_label<'a>(d: &'a Value, key: &str) -> Candidate<'a> {
    (format!("pod label {key}"), template_label(d, key))
}

/// The annotation `key` of the object.
fn annotation<'a>(d: &'a Value, key: &str) -> Candidate<'a> {
    (format!("annotation {key}"), meta_str(d, "annotations", key))
}

/// The annotation `key` of the pod template.
fn pod_annotation<'a>(d: &'a Value, key: &str) -> Candidate<'a> {
    (format!("pod annotation {key}"), template_annotation(d, key))
}

/// The image tag of every container, as `image tag of <what>/<container>` (`of` names the
/// workload when several are searched together).
fn image_tags<'a>(d: &'a Value, of: Option<&str>) -> Vec<Candidate<'a>> {
    images(d)
        .into_iter()
        .map(|(c, img)| {
            let what = match of {
                Some(w) => format!("{w}/{c}"),
                None => format!("container {c}"),
            };
            (format!("image tag of {what}"), image_tag(img))
        })
        .collect()
}

/// The version of the first candidate that has one (`parse`d), tried in order. `notes` get
/// the candidates that carry none and where the version came from (`found` words it:
/// `found("1.2 from label x")`), or `unknown` when there is no version.
fn resolve_version(
    candidates: Vec<Candidate<'_>>,
    parse: fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
    found: &str,
    unknown: Option<&str>,
) -> Option<Found> {
    for (what, raw) in candidates {
        let Some(raw) = raw else { continue };
        match parse(raw) {
            Some(version) => {
                notes.push(format!("{found} {version} from {what} `{raw}`"));
                return Some(Found {
                    version,
                    source: format!("{what} `{raw}`"),
                });
            }
            None => notes.push(format!("{what} `{raw}` carries no version")),
        }
    }
    notes.extend(unknown.map(str::to_string));
    None
}

/// What a Mesh says when the version is unknown.
const VERSION_UNKNOWN: &str = "version unknown (no version label, annotation or image tag); capabilities are the adapter's defaults";

/// Parses a YAML or JSON document held in a ConfigMap key; `None` when it does not parse.
fn parse_embedded(text: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Some(v);
    }
    serde_saphyr::from_str::<Value>(text).ok()
}

fn configmap<'a>(objs: &'a [Value], ns: &str, n: &str) -> Option<&'a Value> {
    objs.iter()
        .find(|o| kind_of(o) == ("v1", "ConfigMap") && namespace(o) == ns && name(o) == n)
}

/// Finds every control plane in `objects`. Objects of unknown kinds and malformed objects
/// are ignored; nothing panics.
pub fn find_control_planes(objects: &[Value]) -> Vec<ControlPlane> {
    let deployments: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            let (av, k) = kind_of(o);
            k == "Deployment"
                && (av == "apps/v1" || av.starts_with("apps/") || av.starts_with("extensions/"))
        })
        .collect();
    let mut out = Vec::new();
    out.extend(istio(objects, &deployments));
    out.extend(linkerd(objects, &deployments));
    out.extend(appmesh(objects, &deployments));
    out.extend(builtin(objects, &deployments));
    let cps: BTreeSet<String> = out
        .iter()
        .filter_map(|c| c.discovered.control_plane_namespace.clone())
        .collect();
    for c in &mut out {
        c.discovered.namespaces.retain(|n| !cps.contains(n));
        c.discovered.namespaces.sort();
        c.discovered.namespaces.dedup();
    }
    out.sort_by_key(|c| c.identity());
    out
}

/// Names of the ConfigMaps discovery reads for `cps` (namespace, name), each got by name:
/// Istio `istio-<rev>` (a non-default revision) and `istio` in the control-plane namespace,
/// Linkerd `linkerd-config`. Sorted, no duplicates.
pub fn config_maps_needed(cps: &[ControlPlane]) -> Vec<(String, String)> {
    let mut out = BTreeSet::new();
    for c in cps {
        let Some(ns) = c.discovered.control_plane_namespace.clone() else {
            continue;
        };
        match c.mesh_type {
            MeshType::Istio => {
                if let Some(r) = c.discovered.revision.as_deref().filter(|r| *r != "default") {
                    out.insert((ns.clone(), format!("istio-{r}")));
                }
                out.insert((ns, "istio".to_string()));
            }
            MeshType::Linkerd => {
                out.insert((ns, "linkerd-config".to_string()));
            }
            _ => {}
        }
    }
    out.into_iter().collect()
}

fn namespaces(objects: &[Value]) -> impl Iterator<Item = &Value> {
    objects.iter().filter(|o| kind_of(o) == ("v1", "Namespace"))
}

fn pods(objects: &[Value]) -> impl Iterator<Item = &Value> {
    objects.iter().filter(|o| kind_of(o) == ("v1", "Pod"))
}

// ---------------------------------------------------------------- Istio

fn is_istiod(d: &Value) -> bool {
    let n = name(d);
    if n == "istiod" || n.starts_with("istiod-") || n == "istio-pilot" {
        return true;
    }
    if meta_str(d, "labels", "app") == Some("istiod") || template_label(d, "app") == Some("istiod")
    {
        return true;
    }
    images(d).iter().any(|(_, img)| {
        let repo = image_repository(img);
        let last = repo.rsplit('/').next().unwrap_or("");
        last == "pilot" && repo.contains("istio")
    })
}

fn istio(objects: &[Value], deployments: &[&Value]) -> Vec<ControlPlane> {
    let mut out = Vec::new();
    for d in deployments.iter().filter(|d| is_istiod(d)) {
        let ns = namespace(d).to_string();
        let n = name(d);
        let mut notes = vec![format!("istiod Deployment {ns}/{n}")];
        let revision = meta_str(d, "labels", "istio.io/rev")
            .or_else(|| template_label(d, "istio.io/rev"))
            .map(str::to_string)
            .or_else(|| n.strip_prefix("istiod-").map(str::to_string))
            .unwrap_or_else(|| "default".into());
        // Version: labels and annotations first, image tags last.
        let mut cands = vec![
            label(d, "app.kubernetes.io/version"),
            label(d, "operator.istio.io/version"),
            label(d, "helm.sh/chart"),
            pod_label(d, "app.kubernetes.io/version"),
            pod_label(d, "operator.istio.io/version"),
        ];
        let mut tags = image_tags(d, None);
        // The `discovery` container first (istiod's), then the others.
        tags.sort_by_key(|(what, _)| what != "image tag of container discovery");
        cands.extend(tags);
        let found = resolve_version(
            cands,
            semver_in,
            &mut notes,
            "version",
            Some(VERSION_UNKNOWN),
        );
        // Mesh config.
        let cm_name = if revision == "default" {
            "istio".to_string()
        } else {
            format!("istio-{revision}")
        };
        let mesh_cfg = configmap(objects, &ns, &cm_name)
            .or_else(|| configmap(objects, &ns, "istio"))
            .and_then(|cm| {
                let text = s(cm, "/data/mesh")?;
                match parse_embedded(text) {
                    Some(v) => Some((name(cm).to_string(), v)),
                    None => {
                        notes.push(format!(
                            "ConfigMap {ns}/{} key mesh does not parse; ignored",
                            name(cm)
                        ));
                        None
                    }
                }
            });
        let trust_domain = match mesh_cfg
            .as_ref()
            .and_then(|(cm, v)| Some((cm, s(v, "/trustDomain")?)))
        {
            Some((cm, td)) if !td.is_empty() => {
                notes.push(format!(
                    "trust domain from ConfigMap {ns}/{cm} mesh.trustDomain"
                ));
                td.to_string()
            }
            _ => {
                notes.push(
                    "trust domain cluster.local (Istio's default; no meshConfig.trustDomain)"
                        .into(),
                );
                "cluster.local".into()
            }
        };
        let root_ns = mesh_cfg
            .as_ref()
            .and_then(|(_, v)| s(v, "/rootNamespace"))
            .filter(|s| !s.is_empty())
            .unwrap_or(&ns)
            .to_string();
        let mtls = istio_mtls(objects, &root_ns, &mut notes);
        // Namespaces: `istio-injection=enabled` selects the default revision and wins over
        // `istio.io/rev`; `istio.io/rev=R` selects R.
        let mut covered = Vec::new();
        for n in namespaces(objects) {
            let inj = meta_str(n, "labels", "istio-injection");
            let rev = meta_str(n, "labels", "istio.io/rev");
            let mine = match inj {
                Some("enabled") => revision == "default",
                Some(_) => false,
                None => rev == Some(revision.as_str()),
            };
            if mine {
                covered.push(name(n).to_string());
            }
        }
        for p in pods(objects) {
            let pod_rev = meta_str(p, "labels", "istio.io/rev")
                .map(str::to_string)
                .or_else(|| {
                    let st = meta_str(p, "annotations", "sidecar.istio.io/status")?;
                    let v: Value = serde_json::from_str(st).ok()?;
                    s(&v, "/revision").map(str::to_string)
                });
            if pod_rev.as_deref() == Some(revision.as_str()) {
                covered.push(namespace(p).to_string());
            }
        }
        out.push(ControlPlane {
            mesh_type: MeshType::Istio,
            discovered: DiscoveredMesh {
                version: found.map(|f| f.version),
                revision: Some(revision),
                control_plane_namespace: Some(ns),
                trust_domain: Some(trust_domain),
                mtls_mode: Some(mtls),
                namespaces: covered,
            },
            app_mesh_name: None,
            notes,
            unavailable: deployment_availability(d).unavailable(),
        });
    }
    out
}

/// The mesh-wide mTLS mode: the selector-less PeerAuthentication in the root namespace
/// (`default` first, then by name). `UNSET` at the root means Istio's default, PERMISSIVE.
/// Never guessed as STRICT (gloo-mesh#484).
fn istio_mtls(objects: &[Value], root_ns: &str, notes: &mut Vec<String>) -> String {
    let mut pas: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            let (av, k) = kind_of(o);
            k == "PeerAuthentication"
                && av.starts_with("security.istio.io/")
                && namespace(o) == root_ns
        })
        .filter(|o| {
            o.pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
        })
        .collect();
    pas.sort_by_key(|o| (name(o) != "default", name(o).to_string()));
    match pas.first() {
        Some(pa) => {
            let mode = s(pa, "/spec/mtls/mode")
                .unwrap_or("UNSET")
                .to_ascii_uppercase();
            let effective = match mode.as_str() {
                "STRICT" | "PERMISSIVE" | "DISABLE" => mode.clone(),
                _ => "PERMISSIVE".into(),
            };
            notes.push(format!(
                "mTLS {effective} from PeerAuthentication {root_ns}/{} (mode {mode})",
                name(pa)
            ));
            effective
        }
        None => {
            notes.push(format!(
                "mTLS PERMISSIVE: no mesh-wide PeerAuthentication in {root_ns} (Istio's default)"
            ));
            "PERMISSIVE".into()
        }
    }
}

// ---------------------------------------------------------------- Linkerd

const LINKERD_COMPONENTS: [&str; 4] = [
    "linkerd-destination",
    "linkerd-identity",
    "linkerd-controller",
    "linkerd-proxy-injector",
];

fn is_linkerd_cp(d: &Value) -> bool {
    LINKERD_COMPONENTS.contains(&name(d))
        || meta_str(d, "labels", "linkerd.io/control-plane-component").is_some()
}

/// Destination, identity or the pre-2.x controller: what makes a namespace a control plane.
fn is_linkerd_core(d: &Value) -> bool {
    matches!(
        name(d),
        "linkerd-destination" | "linkerd-identity" | "linkerd-controller"
    ) || matches!(
        meta_str(d, "labels", "linkerd.io/control-plane-component"),
        Some("destination" | "identity" | "controller")
    )
}

fn linkerd(objects: &[Value], deployments: &[&Value]) -> Vec<ControlPlane> {
    let mut by_ns: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for d in deployments.iter().filter(|d| is_linkerd_cp(d)) {
        by_ns.entry(namespace(d)).or_default().push(d);
    }
    let mut out = Vec::new();
    for (ns, mut ds) in by_ns {
        // Only a namespace with the destination or identity controller is a control plane
        // (extensions such as viz carry control-plane labels too).
        let core = ds.iter().any(|d| is_linkerd_core(d));
        if !core {
            continue;
        }
        ds.sort_by_key(|d| (name(d) != "linkerd-destination", name(d).to_string()));
        let mut notes = vec![format!(
            "Linkerd control plane in {ns}: {}",
            ds.iter().map(|d| name(d)).collect::<Vec<_>>().join(", ")
        )];
        let mut cands = Vec::new();
        for d in &ds {
            let n = name(d);
            cands.extend(
                [
                    label(d, "linkerd.io/control-plane-version"),
                    label(d, "app.kubernetes.io/version"),
                    annotation(d, "linkerd.io/created-by"),
                    pod_annotation(d, "linkerd.io/created-by"),
                    pod_annotation(d, "linkerd.io/proxy-version"),
                    label(d, "helm.sh/chart"),
                ]
                .map(|(what, raw)| (format!("{n} {what}"), raw)),
            );
        }
        for d in &ds {
            cands.extend(image_tags(d, Some(name(d))));
        }
        let found = resolve_version(
            cands,
            linkerd_version_in,
            &mut notes,
            "version",
            Some(VERSION_UNKNOWN),
        );
        let cfg = configmap(objects, ns, "linkerd-config");
        let values = cfg
            .and_then(|cm| s(cm, "/data/values"))
            .and_then(parse_embedded);
        let global = cfg
            .and_then(|cm| s(cm, "/data/global"))
            .and_then(parse_embedded);
        let td = values
            .as_ref()
            .and_then(|v| s(v, "/identityTrustDomain"))
            .map(|t| (t, "linkerd-config values.identityTrustDomain"))
            .or_else(|| {
                global
                    .as_ref()
                    .and_then(|g| s(g, "/identityContext/trustDomain"))
                    .map(|t| (t, "linkerd-config global.identityContext.trustDomain"))
            })
            .filter(|(t, _)| !t.is_empty());
        let trust_domain = match td {
            Some((t, from)) => {
                notes.push(format!("trust domain from ConfigMap {ns}/{from}"));
                t.to_string()
            }
            None => {
                notes.push("trust domain cluster.local (Linkerd's default; no linkerd-config identityTrustDomain)".into());
                "cluster.local".into()
            }
        };
        let policy = values.as_ref().and_then(|v| {
            s(v, "/proxy/defaultInboundPolicy")
                .or_else(|| s(v, "/policyController/defaultAllowPolicy"))
        });
        let mtls = match policy {
            Some(p @ ("all-authenticated" | "cluster-authenticated" | "deny")) => {
                notes.push(format!("mTLS STRICT: default inbound policy {p}"));
                "STRICT"
            }
            Some(p) => {
                notes.push(format!("mTLS PERMISSIVE: meshed traffic is always mTLS, default inbound policy {p} also admits unmeshed clients"));
                "PERMISSIVE"
            }
            None => {
                notes.push("mTLS PERMISSIVE: meshed traffic is always mTLS; Linkerd's default inbound policy all-unauthenticated also admits unmeshed clients".into());
                "PERMISSIVE"
            }
        };
        let mut covered = Vec::new();
        for n in namespaces(objects) {
            if matches!(
                meta_str(n, "annotations", "linkerd.io/inject"),
                Some("enabled" | "ingress")
            ) {
                covered.push(name(n).to_string());
            }
        }
        for p in pods(objects) {
            if meta_str(p, "labels", "linkerd.io/control-plane-ns") == Some(ns)
                || matches!(
                    meta_str(p, "annotations", "linkerd.io/inject"),
                    Some("enabled" | "ingress")
                )
            {
                covered.push(namespace(p).to_string());
            }
        }
        // Serving needs every core component (destination, identity, the pre-2.x
        // controller) that is deployed to be available.
        let unavailable: Vec<String> = ds
            .iter()
            .filter(|d| is_linkerd_core(d))
            .filter_map(|d| deployment_availability(d).unavailable())
            .collect();
        out.push(ControlPlane {
            mesh_type: MeshType::Linkerd,
            discovered: DiscoveredMesh {
                version: found.map(|f| f.version),
                revision: None,
                control_plane_namespace: Some(ns.to_string()),
                trust_domain: Some(trust_domain),
                mtls_mode: Some(mtls.into()),
                namespaces: covered,
            },
            app_mesh_name: None,
            notes,
            unavailable: (!unavailable.is_empty()).then(|| unavailable.join("; ")),
        });
    }
    out
}

// ---------------------------------------------------------------- App Mesh

/// Folds the App Mesh meshes listed through the AWS API (`ListMeshes`, in the controller's
/// region) into the control planes found in the cluster. Pure.
/// - An App Mesh controller whose mesh name the cluster does not tell (no or several
///   `appmesh.k8s.aws` Mesh objects) gets the API's mesh when the API lists exactly one.
/// - A controller whose mesh the API does not list gets a note (wrong region or account?).
/// - Every listed mesh that no controller programs becomes an API-only control plane (type
///   appmesh, `appMeshName` set, no control-plane namespace): meshbridge programs such a
///   mesh directly (`meshbridge run --backend appmesh`).
pub fn with_api_meshes(mut found: Vec<ControlPlane>, api_meshes: &[String]) -> Vec<ControlPlane> {
    let mut listed: Vec<String> = api_meshes.to_vec();
    listed.sort();
    listed.dedup();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for cp in found
        .iter_mut()
        .filter(|c| c.mesh_type == MeshType::AppMesh)
    {
        match &cp.app_mesh_name {
            Some(n) if listed.contains(n) => {
                cp.notes
                    .push(format!("App Mesh mesh `{n}` confirmed by the App Mesh API"));
                covered.insert(n.clone());
            }
            Some(n) => cp.notes.push(format!(
                "App Mesh mesh `{n}` is not listed by the App Mesh API in this account and region"
            )),
            None => {
                if let [one] = listed.as_slice() {
                    cp.notes.push(format!(
                        "App Mesh mesh `{one}`: the only mesh the App Mesh API lists"
                    ));
                    cp.app_mesh_name = Some(one.clone());
                    covered.insert(one.clone());
                }
            }
        }
    }
    for m in listed.into_iter().filter(|m| !covered.contains(m)) {
        found.push(ControlPlane {
            mesh_type: MeshType::AppMesh,
            discovered: DiscoveredMesh {
                mtls_mode: Some("UNSET".into()),
                ..DiscoveredMesh::default()
            },
            notes: vec![
                format!("App Mesh mesh `{m}` listed by the App Mesh API; no App Mesh controller in the cluster programs it (meshbridge run --backend appmesh programs it through the API)"),
                "mTLS UNSET: App Mesh TLS is configured per virtual node".into(),
            ],
            app_mesh_name: Some(m),
            unavailable: None,
        });
    }
    found.sort_by_key(|c| c.identity());
    found
}

fn appmesh(objects: &[Value], deployments: &[&Value]) -> Vec<ControlPlane> {
    let mut out = Vec::new();
    for d in deployments.iter().filter(|d| {
        name(d) == "appmesh-controller"
            || images(d)
                .iter()
                .any(|(_, i)| image_repository(i).ends_with("appmesh-controller"))
    }) {
        let ns = namespace(d).to_string();
        let mut notes = vec![format!("App Mesh controller Deployment {ns}/{}", name(d))];
        let mut cands = vec![
            label(d, "app.kubernetes.io/version"),
            label(d, "helm.sh/chart"),
        ];
        cands.extend(image_tags(d, None));
        let found = resolve_version(
            cands,
            semver_in,
            &mut notes,
            "controller version",
            Some("controller version unknown"),
        );
        // The mesh's name in AWS: a single appmesh.k8s.aws Mesh object (awsName or name).
        let meshes: Vec<String> = objects
            .iter()
            .filter(|o| {
                let (av, k) = kind_of(o);
                k == "Mesh" && av.starts_with("appmesh.k8s.aws/")
            })
            .map(|m| s(m, "/spec/awsName").unwrap_or(name(m)).to_string())
            .collect();
        let app_mesh_name = match meshes.as_slice() {
            [one] => {
                notes.push(format!(
                    "App Mesh mesh `{one}` from its appmesh.k8s.aws Mesh object"
                ));
                Some(one.clone())
            }
            [] => {
                notes.push("no appmesh.k8s.aws Mesh object: the mesh name in AWS is unknown (set spec.appMeshName)".into());
                None
            }
            many => {
                notes.push(format!(
                    "several App Mesh meshes ({}): set spec.appMeshName",
                    many.join(", ")
                ));
                None
            }
        };
        notes.push("mTLS UNSET: App Mesh TLS is configured per virtual node".into());
        let covered = namespaces(objects)
            .filter(|n| {
                meta_str(n, "labels", "appmesh.k8s.aws/sidecarInjectorWebhook") == Some("enabled")
            })
            .map(|n| name(n).to_string())
            .collect();
        out.push(ControlPlane {
            mesh_type: MeshType::AppMesh,
            discovered: DiscoveredMesh {
                version: found.map(|f| f.version),
                revision: None,
                control_plane_namespace: Some(ns),
                trust_domain: None,
                mtls_mode: Some("UNSET".into()),
                namespaces: covered,
            },
            app_mesh_name,
            notes,
            unavailable: deployment_availability(d).unavailable(),
        });
    }
    out
}

// ---------------------------------------------------------------- built-in mesh

/// meshbridge's built-in Envoy mesh: a meshbridge Deployment (`app.kubernetes.io/name:
/// meshbridge`) that serves xDS — its `--backend` names `envoy`, or it has a port named
/// `*xds*`, or it carries `meshbridge.io/builtin-mesh: "true"`. A controller that only
/// programs other meshes (`--backend=auto`, no xDS) is not a mesh.
fn builtin(objects: &[Value], deployments: &[&Value]) -> Vec<ControlPlane> {
    let mut out = Vec::new();
    for d in deployments {
        if meta_str(d, "labels", "app.kubernetes.io/name") != Some("meshbridge") {
            continue;
        }
        let cs = containers(d);
        let args: Vec<&str> = cs
            .iter()
            .flat_map(|c| {
                ["/args", "/command"]
                    .into_iter()
                    .filter_map(|p| c.pointer(p).and_then(Value::as_array))
                    .flatten()
                    .filter_map(Value::as_str)
            })
            .collect();
        let backend_envoy = args
            .windows(2)
            .any(|w| w[0] == "--backend" && w[1].split(',').any(|b| b.trim() == "envoy"))
            || args.iter().any(|a| {
                a.strip_prefix("--backend=")
                    .is_some_and(|b| b.split(',').any(|b| b.trim() == "envoy"))
            });
        let xds_port = cs.iter().any(|c| {
            c.pointer("/ports")
                .and_then(Value::as_array)
                .is_some_and(|ps| {
                    ps.iter()
                        .any(|p| s(p, "/name").is_some_and(|n| n.contains("xds")))
                })
        });
        let flagged = meta_str(d, "labels", "meshbridge.io/builtin-mesh") == Some("true");
        if !(backend_envoy || xds_port || flagged) {
            continue;
        }
        let ns = namespace(d).to_string();
        let mut notes = vec![format!(
            "meshbridge Deployment {ns}/{} serves the built-in mesh",
            name(d)
        )];
        let mut cands = vec![label(d, "app.kubernetes.io/version")];
        cands.extend(image_tags(d, None));
        let found = resolve_version(cands, semver_in, &mut notes, "version", None);
        let td = args
            .iter()
            .find_map(|a| a.strip_prefix("--trust-domain="))
            .unwrap_or("cluster.local")
            .to_string();
        notes.push("mTLS STRICT: the built-in mesh always requires mTLS between sidecars".into());
        let covered = namespaces(objects)
            .filter(|n| {
                meta_str(n, "labels", meshbridge_core::adapter::MESH_LABEL) == Some("meshbridge")
            })
            .map(|n| name(n).to_string())
            .collect();
        out.push(ControlPlane {
            mesh_type: MeshType::Envoy,
            discovered: DiscoveredMesh {
                version: found.map(|f| f.version),
                revision: None,
                control_plane_namespace: Some(ns),
                trust_domain: Some(td),
                mtls_mode: Some("STRICT".into()),
                namespaces: covered,
            },
            app_mesh_name: None,
            notes,
            unavailable: deployment_availability(d).unavailable(),
        });
    }
    out
}

// ---------------------------------------------------------------- Deployment availability

/// Whether a control plane's Deployment serves, from its status as the Deployment
/// controller writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Availability {
    /// At least one replica available, the current generation observed, and no
    /// `Available=False` condition.
    pub available: bool,
    /// The rollout gave up (`Progressing=False`, reason `ProgressDeadlineExceeded`).
    pub failed: bool,
    /// `Deployment NS/NAME: A/D replicas available (R ready, U updated)` and, when not
    /// available, why.
    pub message: String,
}

impl Availability {
    /// The message when not available.
    pub fn unavailable(self) -> Option<String> {
        (!self.available).then_some(self.message)
    }
}

fn int(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

/// Availability of a Deployment (`apps/v1` JSON): `status.availableReplicas` ≥ 1,
/// `status.observedGeneration` ≥ `metadata.generation` (when both are known), and the
/// `Available` condition not `False`. A Deployment without status (never seen by the
/// Deployment controller) or scaled to 0 is not available: a mesh is never Ready on a
/// control plane that serves nothing.
pub fn deployment_availability(d: &Value) -> Availability {
    let id = format!("Deployment {}/{}", namespace(d), name(d));
    let desired = int(d, "/spec/replicas").unwrap_or(1);
    let avail = int(d, "/status/availableReplicas").unwrap_or(0);
    let ready = int(d, "/status/readyReplicas").unwrap_or(0);
    let updated = int(d, "/status/updatedReplicas").unwrap_or(0);
    let counts =
        format!("{id}: {avail}/{desired} replicas available ({ready} ready, {updated} updated)");
    let cond = |t: &str| {
        d.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| s(c, "/type") == Some(t)))
    };
    let failed = cond("Progressing").is_some_and(|c| {
        s(c, "/status") == Some("False") && s(c, "/reason") == Some("ProgressDeadlineExceeded")
    });
    let why = if d.get("status").is_none_or(|st| !st.is_object()) {
        Some("no status: not seen by the Deployment controller".to_string())
    } else if desired == 0 {
        Some("scaled to 0 replicas".to_string())
    } else if let (Some(g), og) = (
        int(d, "/metadata/generation"),
        int(d, "/status/observedGeneration"),
    ) && og.is_none_or(|og| og < g)
    {
        Some(format!(
            "generation {g} not observed yet (observedGeneration {})",
            og.unwrap_or(0)
        ))
    } else if let Some(c) = cond("Available").filter(|c| s(c, "/status") == Some("False")) {
        Some(format!(
            "Available=False ({}): {}",
            s(c, "/reason").unwrap_or(""),
            s(c, "/message").unwrap_or("")
        ))
    } else if avail < 1 {
        Some("no available replica".to_string())
    } else {
        None
    };
    let mut message = counts;
    if let Some(w) = &why {
        message.push_str("; ");
        message.push_str(w);
    }
    if failed && let Some(c) = cond("Progressing") {
        message.push_str(&format!(
            "; rollout failed (ProgressDeadlineExceeded): {}",
            s(c, "/message").unwrap_or("")
        ));
    }
    Availability {
        available: why.is_none(),
        failed,
        message,
    }
}

// ---------------------------------------------------------------- Mesh objects

pub fn condition(type_: &str, ok: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: None,
        last_transition_time: None,
    }
}

/// Conditions discovery sets on a Mesh it found.
pub fn found_conditions(cp: &ControlPlane) -> Vec<Condition> {
    let mut v = vec![match &cp.unavailable {
        None => condition("Ready", true, "Discovered", cp.notes.join("; ")),
        Some(why) => condition(
            "Ready",
            false,
            "ControlPlaneUnavailable",
            format!(
                "control plane serves nothing: {why}; {}",
                cp.notes.join("; ")
            ),
        ),
    }];
    v.push(if cp.version_known() {
        condition(
            "VersionResolved",
            true,
            "VersionResolved",
            format!("version {}", cp.discovered.version.clone().unwrap_or_default()),
        )
    } else {
        condition(
            "VersionResolved",
            false,
            "VersionUnknown",
            "no version in labels, annotations or image tags; capabilities are the adapter's defaults (set spec.version)".into(),
        )
    });
    v
}

/// A Mesh object for a control plane found now (no existing object).
pub fn mesh_object(cp: &ControlPlane, name: &str, cfg: &Config, caps: CapsFn) -> Mesh {
    let spec = cp.spec();
    let mut m = Mesh::new(name, spec.clone());
    m.metadata.namespace = Some(cfg.namespace.clone());
    m.metadata.labels = Some(
        [(
            DISCOVERED_BY_LABEL.to_string(),
            DISCOVERED_BY_VALUE.to_string(),
        )]
        .into_iter()
        .collect(),
    );
    m.metadata.annotations = Some(
        [(
            DISCOVERED_SPEC_ANNOTATION.to_string(),
            discovered_spec_annotation(&spec),
        )]
        .into_iter()
        .collect(),
    );
    m.status = Some(MeshStatus {
        observed_generation: None,
        conditions: found_conditions(cp),
        discovered: Some(cp.discovered.clone()),
        capabilities: caps(&spec).unwrap_or_default(),
    });
    m
}

/// The JSON text of the spec fields discovery wrote (sorted keys).
pub fn discovered_spec_annotation(spec: &MeshSpec) -> String {
    let v = serde_json::to_value(spec).unwrap_or(Value::Null);
    let sorted: BTreeMap<String, Value> = v
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    serde_json::to_string(&sorted).unwrap_or_default()
}

/// Discovery from scratch: one Mesh per control plane, named by [`ControlPlane::base_name`]
/// (a name used twice gets the control-plane namespace appended), sorted by name.
pub fn discover(objects: &[Value], cfg: &Config, caps: CapsFn) -> Vec<Mesh> {
    crate::merge::merge(&[], &find_control_planes(objects), cfg, caps)
}
