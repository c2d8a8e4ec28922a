//! Served resources: what the fake answers for, the built-in Kubernetes catalog, kind and
//! plural guesses for the open mode.

/// A served kind at one group/version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// Has a `status` subresource.
    pub status: bool,
}

impl From<(&str, &str, bool, bool)> for Served {
    fn from((kind, plural, namespaced, status): (&str, &str, bool, bool)) -> Served {
        Served {
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            status,
        }
    }
}

impl From<&(&str, &str, bool, bool)> for Served {
    fn from(t: &(&str, &str, bool, bool)) -> Served {
        Served::from(*t)
    }
}

/// `(kind, plural, namespaced)`: the status subresource as the built-in catalog has it
/// (none for kinds it does not know).
impl From<(&str, &str, bool)> for Served {
    fn from((kind, plural, namespaced): (&str, &str, bool)) -> Served {
        let status = BUILTIN
            .iter()
            .find(|b| b.2 == kind && b.3 == plural)
            .is_some_and(|b| b.5);
        Served {
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            status,
        }
    }
}

impl From<&(&str, &str, bool)> for Served {
    fn from(t: &(&str, &str, bool)) -> Served {
        Served::from(*t)
    }
}

/// Kubernetes v1.28 built-in resources: (group, version, kind, plural, namespaced, status).
pub const BUILTIN: &[(&str, &str, &str, &str, bool, bool)] = &[
    ("", "v1", "Namespace", "namespaces", false, true),
    ("", "v1", "Node", "nodes", false, true),
    ("", "v1", "Service", "services", true, true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, false),
    ("", "v1", "Pod", "pods", true, true),
    ("", "v1", "ConfigMap", "configmaps", true, false),
    ("", "v1", "Secret", "secrets", true, false),
    ("", "v1", "Endpoints", "endpoints", true, false),
    ("", "v1", "Event", "events", true, false),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        true,
    ),
    ("apps", "v1", "Deployment", "deployments", true, true),
    ("apps", "v1", "StatefulSet", "statefulsets", true, true),
    ("apps", "v1", "DaemonSet", "daemonsets", true, true),
    ("apps", "v1", "ReplicaSet", "replicasets", true, true),
    ("batch", "v1", "Job", "jobs", true, true),
    ("batch", "v1", "CronJob", "cronjobs", true, true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        false,
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, false),
    ("events.k8s.io", "v1", "Event", "events", true, false),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        false,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        true,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        true,
    ),
];

/// Groups whose objects carry no `metadata.generation`.
const NO_GENERATION: &[&str] = &[
    "",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "events.k8s.io",
    "discovery.k8s.io",
];

pub fn tracks_generation(group: &str) -> bool {
    !NO_GENERATION.contains(&group)
}

/// Whether a group is a built-in one (not a custom resource).
pub fn is_builtin_group(group: &str) -> bool {
    BUILTIN.iter().any(|b| b.0 == group)
}

pub fn builtin_by_plural(group: &str, plural: &str) -> Option<Served> {
    BUILTIN
        .iter()
        .find(|b| b.0 == group && b.3 == plural)
        .map(|b| (b.2, b.3, b.4, b.5).into())
}

pub fn builtin_by_kind(group: &str, kind: &str) -> Option<Served> {
    BUILTIN
        .iter()
        .find(|b| b.0 == group && b.2 == kind)
        .map(|b| (b.2, b.3, b.4, b.5).into())
}

/// The plural a kind most likely has (`Mesh` → `meshes`, `Policy` → `policies`).
pub fn guess_plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('s') || k.ends_with("sh") || k.ends_with("ch") || k.ends_with('x') {
        format!("{k}es")
    } else if let Some(stem) = k.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{k}s")
    }
}

/// The kind a plural most likely names (`meshes` → `Mesh`), for the open mode.
pub fn guess_kind(plural: &str) -> String {
    let s = if let Some(stem) = plural.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = plural
        .strip_suffix("sses")
        .map(|s| format!("{s}ss"))
        .or_else(|| plural.strip_suffix("shes").map(|s| format!("{s}sh")))
        .or_else(|| plural.strip_suffix("ches").map(|s| format!("{s}ch")))
        .or_else(|| plural.strip_suffix("xes").map(|s| format!("{s}x")))
    {
        stem
    } else {
        plural.strip_suffix('s').unwrap_or(plural).to_string()
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// `group/version`, or `version` for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// (group, version) of an apiVersion.
pub fn split_api_version(av: &str) -> (String, String) {
    match av.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), av.to_string()),
    }
}
