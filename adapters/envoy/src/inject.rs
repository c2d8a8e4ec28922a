//! Sidecar injection of the built-in mesh: what the mutating admission webhook and
//! `meshbridge inject` add to a pod (one function, so both produce exactly the same pod).
//!
//! Added (names fixed, like `istio-init` / `istio-proxy`):
//! - the init container `meshbridge-init` (`meshbridge init-net`), which installs the
//!   interception rules; it runs after the pod's own init containers, so those keep direct
//!   network access (no proxy runs yet while they do);
//! - the sidecar `meshbridge-proxy` (`meshbridge proxy`: proves the pod's identity with the
//!   projected token, writes Envoy's bootstrap with node id `<pod>.<namespace>`, runs Envoy),
//!   as a native sidecar (an init container with `restartPolicy: Always`, Kubernetes ≥ 1.29):
//!   the kubelet starts the app containers only once its startup probe (`/ready`: the first
//!   configuration is served) passes, and a Job's pod completes when its app does; for API
//!   servers before 1.29, [`InjectConfig::native_sidecar`] off makes it the first container;
//! - the volumes: the projected ServiceAccount token (audience `meshbridge`, one hour), the
//!   mesh's root certificate (ConfigMap `meshbridge-root-ca`) and an in-memory work directory.
//!
//! Left alone: pods annotated `meshbridge.io/inject: "false"`, pods already injected (a
//! container named `meshbridge-proxy`: injection is idempotent) and host-network pods (their
//! rules would intercept the node's traffic). Refused with a message naming the field: a pod
//! whose container uses a port the sidecar needs, a container already named
//! `meshbridge-init` without the sidecar, a malformed exclusion annotation.

use base64::Engine as _;
use serde_json::{Map, Value, json};

pub const INIT_CONTAINER: &str = "meshbridge-init";
pub const PROXY_CONTAINER: &str = "meshbridge-proxy";
/// `"false"` opts a pod out.
pub const INJECT_ANNOTATION: &str = "meshbridge.io/inject";
/// Set on an injected pod (the injector's version).
pub const STATUS_ANNOTATION: &str = "meshbridge.io/proxy-injected";
pub const EXCLUDE_INBOUND_PORTS: &str = "meshbridge.io/exclude-inbound-ports";
pub const EXCLUDE_OUTBOUND_PORTS: &str = "meshbridge.io/exclude-outbound-ports";
pub const EXCLUDE_OUTBOUND_CIDRS: &str = "meshbridge.io/exclude-outbound-ip-ranges";
/// ConfigMap (in every meshed namespace) holding the mesh's trust bundle.
pub const ROOT_CA_CONFIGMAP: &str = "meshbridge-root-ca";
pub const ROOT_CA_KEY: &str = "root-cert.pem";
pub use meshbridge_core::adapter::WORKLOAD_TOKEN_AUDIENCE as TOKEN_AUDIENCE;
pub const TOKEN_DIR: &str = "/var/run/secrets/meshbridge/tokens";
pub const CA_DIR: &str = "/var/run/secrets/meshbridge/ca";
pub const WORK_DIR: &str = "/etc/meshbridge/proxy";
/// The inbound listener traffic to the pod is redirected to.
pub const INBOUND_PORT: u16 = 15006;
/// The sidecar's health port (`/ready`, probed by the kubelet).
pub const HEALTH_PORT: u16 = 15021;
pub const PROXY_UID: i64 = 1337;

/// What the injector is configured with.
#[derive(Clone, Debug)]
pub struct InjectConfig {
    /// Image holding `meshbridge` and Envoy.
    pub image: String,
    pub image_pull_policy: String,
    /// `host:port` of the control plane's xDS (and certificate) endpoint.
    pub xds_address: String,
    pub proxy_uid: i64,
    /// Lifetime of the projected token, in seconds (the kubelet renews it at 80%).
    pub token_expiration_seconds: i64,
    /// The sidecar as a native sidecar (an init container with `restartPolicy: Always`;
    /// Kubernetes ≥ 1.29, where the SidecarContainers feature is on by default). Off: the
    /// first app container, with a readiness probe only (a v1.28 API server drops
    /// `restartPolicy` from init containers and then refuses their probes).
    pub native_sidecar: bool,
}

impl InjectConfig {
    /// Defaults for a control plane Service `meshbridge` in `controller_ns`.
    pub fn new(image: impl Into<String>, controller_ns: &str) -> InjectConfig {
        InjectConfig {
            image: image.into(),
            image_pull_policy: "IfNotPresent".into(),
            xds_address: format!("meshbridge.{controller_ns}.svc:15012"),
            proxy_uid: PROXY_UID,
            token_expiration_seconds: 3600,
            native_sidecar: true,
        }
    }

    fn xds_port(&self) -> u16 {
        self.xds_address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(15012)
    }
}

/// The result of injecting one pod (or pod template).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The new `metadata` and `spec`.
    Injected { metadata: Value, spec: Value },
    /// Left unchanged, and why.
    Skipped(Skip),
}

/// Why a pod is left unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("annotated {INJECT_ANNOTATION}: \"false\"")]
    OptedOut,
    #[error("already injected (has a container named {PROXY_CONTAINER})")]
    AlreadyInjected,
    /// The webhook admits it with a warning (the user asked for the mesh and gets none).
    #[error("spec.hostNetwork: true (interception would capture the node's traffic)")]
    HostNetwork,
}

/// Why a pod cannot be injected (the webhook's denial message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("meshbridge sidecar injection: {0}")]
pub struct Refused(pub String);

/// Ports of the sidecar no container of the pod may use.
const RESERVED_PORTS: [u16; 5] = [
    crate::sidecar::ADMIN_PORT,
    crate::sidecar::OUTBOUND_PORT,
    crate::sidecar::DENY_PORT,
    INBOUND_PORT,
    HEALTH_PORT,
];

fn annotation<'a>(metadata: &'a Value, key: &str) -> Option<&'a str> {
    metadata.pointer("/annotations")?.get(key)?.as_str()
}

fn containers(spec: &Value, field: &str) -> Vec<Value> {
    spec.get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn name_of(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

/// A comma-separated port list (`15000, 15021`): each 1-65535, duplicates dropped. The one
/// parser of the injector's annotations and of `meshbridge init-net`'s flags.
pub fn parse_ports(value: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u16>() {
            Ok(p) if p > 0 => {
                if !out.contains(&p) {
                    out.push(p)
                }
            }
            _ => {
                return Err(format!(
                    "invalid port {item:?} in {value:?} (expected a number 1-65535)"
                ));
            }
        }
    }
    Ok(out)
}

/// A comma-separated IPv4 CIDR list: `a.b.c.d/n` or `a.b.c.d` (= /32), each as the network
/// with the host bits cleared (what iptables stores and lists), duplicates dropped.
pub fn parse_cidrs(value: &str) -> Result<Vec<String>, String> {
    use std::net::Ipv4Addr;
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || format!("invalid IPv4 CIDR {item:?} in {value:?} (expected A.B.C.D/N)");
        let (addr, len) = match item.split_once('/') {
            Some((a, l)) => (
                a,
                l.parse::<u8>().ok().filter(|l| *l <= 32).ok_or_else(bad)?,
            ),
            None => (item, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let cidr = format!("{}/{len}", Ipv4Addr::from(u32::from(addr) & mask));
        if !out.contains(&cidr) {
            out.push(cidr)
        }
    }
    Ok(out)
}

/// The list annotation `key` holds, parsed by `parse` (absent: empty).
fn annotation_list<T>(
    metadata: &Value,
    key: &str,
    parse: fn(&str) -> Result<Vec<T>, String>,
) -> Result<Vec<T>, Refused> {
    annotation(metadata, key)
        .map_or(Ok(vec![]), parse)
        .map_err(|e| Refused(format!("annotation {key}: {e}")))
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn init_container(cfg: &InjectConfig, metadata: &Value) -> Result<Value, Refused> {
    let mut inbound = vec![
        crate::sidecar::ADMIN_PORT.to_string(),
        HEALTH_PORT.to_string(),
    ];
    inbound.extend(
        annotation_list(metadata, EXCLUDE_INBOUND_PORTS, parse_ports)?
            .iter()
            .map(u16::to_string),
    );
    let outbound: Vec<String> = annotation_list(metadata, EXCLUDE_OUTBOUND_PORTS, parse_ports)?
        .iter()
        .map(u16::to_string)
        .collect();
    let cidrs = annotation_list(metadata, EXCLUDE_OUTBOUND_CIDRS, parse_cidrs)?;
    let mut args = vec![
        "init-net".to_string(),
        "--proxy-uid".into(),
        cfg.proxy_uid.to_string(),
        "--outbound-port".into(),
        crate::sidecar::OUTBOUND_PORT.to_string(),
        "--inbound-port".into(),
        INBOUND_PORT.to_string(),
        "--xds-port".into(),
        cfg.xds_port().to_string(),
        "--exclude-inbound-ports".into(),
        inbound.join(","),
    ];
    if !outbound.is_empty() {
        args.extend(["--exclude-outbound-ports".into(), outbound.join(",")]);
    }
    if !cidrs.is_empty() {
        args.extend(["--exclude-outbound-cidrs".into(), cidrs.join(",")]);
    }
    Ok(json!({
        "name": INIT_CONTAINER,
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "args": args,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "privileged": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
        },
    }))
}

fn proxy_container(cfg: &InjectConfig) -> Value {
    let probe = |failures: u32| {
        json!({
            "httpGet": {"path": "/ready", "port": HEALTH_PORT},
            "periodSeconds": 1,
            "timeoutSeconds": 1,
            "failureThreshold": failures,
        })
    };
    json!({
        "name": PROXY_CONTAINER,
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "restartPolicy": "Always",
        "args": [
            "proxy",
            "--xds-address", cfg.xds_address,
            "--token", format!("{TOKEN_DIR}/token"),
            "--ca", format!("{CA_DIR}/{ROOT_CA_KEY}"),
            "--work-dir", WORK_DIR,
        ],
        "env": [
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_UID", "metadata.uid"),
            field_env("POD_IP", "status.podIP"),
            field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        "ports": [{"name": "mb-health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        // The first configuration may take a while on a busy control plane: up to 10 min.
        "startupProbe": probe(600),
        "readinessProbe": probe(3),
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "runAsUser": cfg.proxy_uid,
            "runAsGroup": cfg.proxy_uid,
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "privileged": false,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "meshbridge-token", "mountPath": TOKEN_DIR, "readOnly": true},
            {"name": "meshbridge-ca", "mountPath": CA_DIR, "readOnly": true},
            {"name": "meshbridge-proxy", "mountPath": WORK_DIR},
        ],
    })
}

fn volumes(cfg: &InjectConfig) -> [Value; 3] {
    [
        json!({"name": "meshbridge-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": TOKEN_AUDIENCE,
            "expirationSeconds": cfg.token_expiration_seconds,
            "path": "token",
        }}]}}),
        json!({"name": "meshbridge-ca", "configMap": {"name": ROOT_CA_CONFIGMAP}}),
        json!({"name": "meshbridge-proxy", "emptyDir": {"medium": "Memory"}}),
    ]
}

/// Injects the sidecar into a pod's (or pod template's) `metadata` and `spec`.
pub fn inject(metadata: &Value, spec: &Value, cfg: &InjectConfig) -> Result<Outcome, Refused> {
    if annotation(metadata, INJECT_ANNOTATION) == Some("false") {
        return Ok(Outcome::Skipped(Skip::OptedOut));
    }
    if !spec.is_object() {
        return Err(Refused("spec: not an object".into()));
    }
    let mut inits = containers(spec, "initContainers");
    let apps = containers(spec, "containers");
    if inits
        .iter()
        .chain(&apps)
        .any(|c| name_of(c) == PROXY_CONTAINER)
    {
        return Ok(Outcome::Skipped(Skip::AlreadyInjected));
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Ok(Outcome::Skipped(Skip::HostNetwork));
    }
    if apps.is_empty() {
        return Err(Refused("spec.containers: the pod has no container".into()));
    }
    for (field, list) in [("initContainers", &inits), ("containers", &apps)] {
        for (i, c) in list.iter().enumerate() {
            if name_of(c) == INIT_CONTAINER {
                return Err(Refused(format!(
                    "spec.{field}[{i}]: a container is already named {INIT_CONTAINER} but the pod has no {PROXY_CONTAINER}"
                )));
            }
            for p in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let port = p.get("containerPort").and_then(Value::as_u64).unwrap_or(0);
                if RESERVED_PORTS.iter().any(|r| u64::from(*r) == port) {
                    return Err(Refused(format!(
                        "spec.{field}[{i}] ({}): port {port} is reserved for the sidecar (reserved: {:?}); use another port or annotate the pod {INJECT_ANNOTATION}: \"false\"",
                        name_of(c),
                        RESERVED_PORTS
                    )));
                }
            }
        }
    }
    inits.push(init_container(cfg, metadata)?);
    let mut apps = apps;
    if cfg.native_sidecar {
        inits.push(proxy_container(cfg));
    } else {
        let mut proxy = proxy_container(cfg);
        if let Some(o) = proxy.as_object_mut() {
            o.remove("restartPolicy");
            o.remove("startupProbe");
        }
        apps.insert(0, proxy);
    }
    let mut vols = containers(spec, "volumes");
    for v in volumes(cfg) {
        if let Some(clash) = vols.iter().position(|x| name_of(x) == name_of(&v)) {
            return Err(Refused(format!(
                "spec.volumes[{clash}]: a volume is already named {}",
                name_of(&v)
            )));
        }
        vols.push(v);
    }
    let mut spec = spec.clone();
    spec["initContainers"] = Value::Array(inits);
    spec["containers"] = Value::Array(apps);
    spec["volumes"] = Value::Array(vols);
    let mut metadata = if metadata.is_object() {
        metadata.clone()
    } else {
        json!({})
    };
    let ann = metadata
        .as_object_mut()
        .expect("an object")
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !ann.is_object() {
        return Err(Refused("metadata.annotations: not an object".into()));
    }
    ann[STATUS_ANNOTATION] = json!(env!("CARGO_PKG_VERSION"));
    Ok(Outcome::Injected { metadata, spec })
}

/// The JSON patch (RFC 6902) turning `before` into the injected pod: the changed top-level
/// fields of `metadata` and `spec`, each replaced whole (`add` on an object member replaces it).
fn patch(before: &Value, metadata: &Value, spec: &Value) -> Value {
    let mut ops = vec![];
    for (section, after) in [("metadata", metadata), ("spec", spec)] {
        let old = before.get(section);
        if old.is_none() {
            ops.push(json!({"op": "add", "path": format!("/{section}"), "value": after}));
            continue;
        }
        for (k, v) in after.as_object().into_iter().flatten() {
            if old.and_then(|o| o.get(k)) != Some(v) {
                let key = k.replace('~', "~0").replace('/', "~1");
                ops.push(json!({"op": "add", "path": format!("/{section}/{key}"), "value": v}));
            }
        }
    }
    Value::Array(ops)
}

/// The webhook's answer to an `admission.k8s.io/v1` AdmissionReview. `enabled(namespace)`
/// says whether the namespace belongs to a built-in Mesh (pods elsewhere are admitted
/// unchanged, whatever the webhook's selector let through). Never fails: a review it cannot
/// read is answered with a denial that says why.
pub fn review(body: &Value, cfg: &InjectConfig, enabled: impl Fn(&str) -> bool) -> Value {
    let req = &body["request"];
    let uid = req.get("uid").cloned().unwrap_or(json!(""));
    let answer = |response: Value| {
        let mut r = json!({"uid": uid, "allowed": true});
        r.as_object_mut()
            .expect("an object")
            .extend(response.as_object().cloned().unwrap_or_default());
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": r})
    };
    let deny = |code: u16, message: String| {
        answer(json!({"allowed": false, "status": {
            "code": code, "reason": if code == 400 { "BadRequest" } else { "Forbidden" }, "message": message,
        }}))
    };
    let warn = |msg: String| answer(json!({"warnings": [msg]}));
    if !req.is_object() || uid.as_str().is_none_or(str::is_empty) {
        return deny(
            400,
            "meshbridge sidecar injection: the AdmissionReview has no request.uid".into(),
        );
    }
    let kind = req.pointer("/kind/kind").and_then(Value::as_str);
    let op = req.get("operation").and_then(Value::as_str);
    if kind != Some("Pod") || op != Some("CREATE") || req.get("subResource").is_some() {
        return answer(json!({}));
    }
    let pod = &req["object"];
    let ns = req
        .get("namespace")
        .and_then(Value::as_str)
        .or_else(|| pod.pointer("/metadata/namespace").and_then(Value::as_str))
        .unwrap_or("default");
    if !enabled(ns) {
        return answer(json!({}));
    }
    if !pod.is_object() {
        return deny(
            400,
            "meshbridge sidecar injection: request.object: not a Pod".into(),
        );
    }
    let metadata = pod.get("metadata").cloned().unwrap_or(json!({}));
    match inject(&metadata, pod.get("spec").unwrap_or(&Value::Null), cfg) {
        Err(e) => deny(403, e.to_string()),
        Ok(Outcome::Skipped(why @ Skip::HostNetwork)) => {
            warn(format!("meshbridge sidecar not injected: {why}"))
        }
        Ok(Outcome::Skipped(Skip::OptedOut | Skip::AlreadyInjected)) => answer(json!({})),
        Ok(Outcome::Injected { metadata, spec }) => {
            let ops = patch(pod, &metadata, &spec);
            let bytes = serde_json::to_vec(&ops).unwrap_or_default();
            answer(json!({
                "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD.encode(bytes),
            }))
        }
    }
}

/// The decoded JSON patch of a [`review`] answer (`None`: no patch).
pub fn decoded_patch(response: &Value) -> Result<Option<Value>, String> {
    let Some(p) = response.pointer("/response/patch").and_then(Value::as_str) else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(p)
        .map_err(|e| format!("patch: {e}"))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("patch: {e}"))
}

/// The pod the API server stores: `pod` with the [`review`] answer's patch applied.
pub fn admitted(pod: &Value, response: &Value) -> Result<Value, String> {
    let mut pod = pod.clone();
    if let Some(p) = decoded_patch(response)? {
        apply_patch(&mut pod, &p)?;
    }
    Ok(pod)
}

/// Applies the `add` operations [`review`] produces.
fn apply_patch(pod: &mut Value, patch: &Value) -> Result<(), String> {
    for op in patch.as_array().ok_or("patch: not a list")? {
        if op["op"] != "add" {
            return Err(format!("patch: unsupported op {}", op["op"]));
        }
        let path = op["path"].as_str().ok_or("patch: no path")?;
        let mut parts: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect();
        let last = parts.pop().ok_or("patch: empty path")?;
        let mut at = &mut *pod;
        for p in parts {
            at = at
                .get_mut(&p)
                .ok_or_else(|| format!("patch: {path}: no `{p}`"))?;
        }
        at.as_object_mut()
            .ok_or_else(|| format!("patch: {path}: parent not an object"))?
            .insert(last, op["value"].clone());
    }
    Ok(())
}
