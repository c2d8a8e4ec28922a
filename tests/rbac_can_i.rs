//! `kubectl auth can-i` for the controller's ServiceAccount, evaluated on the rendered RBAC
//! of `deploy/meshbridge.yaml` (and, with Helm, the chart with the installer and the
//! built-in mesh opted in) by a small evaluator that follows the Kubernetes RBAC
//! authorizer (plugin/pkg/auth/authorizer/rbac): a request is allowed when a rule of a role
//! bound to the subject matches it — ClusterRoleBinding: the ClusterRole's rules everywhere;
//! RoleBinding: its Role's (or ClusterRole's) rules only in the binding's namespace. A rule
//! matches when its verbs, apiGroups and resources (`resource/subresource`; `*` and
//! `*/subresource` as wildcards) cover the request and its resourceNames (if any) contain
//! the request's name (a create or a collection request has none, so resourceNames never
//! allow it). Creating a binding additionally needs `bind` on the referenced role or every
//! permission of it (the escalation check of the RBAC REST storage); a role we cannot see
//! (cluster-admin: built into the cluster) counts as not held.
//!
//! Not modelled (and not needed by these checks): the cluster's default bindings
//! (system:basic-user, system:discovery), aggregated ClusterRoles, nonResourceURLs.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn docs(text: &str) -> Vec<Value> {
    meshbridge_core::load::split_documents(text)
        .into_iter()
        .filter_map(|(_, d)| meshbridge_core::load::parse_document(&d).unwrap())
        .collect()
}

/// A request of `kubectl auth can-i VERB RESOURCE[/SUB] [NAME] [-n NS]`.
#[derive(Clone, Debug)]
struct Req {
    verb: &'static str,
    group: &'static str,
    /// `resource` or `resource/subresource`.
    resource: &'static str,
    namespace: Option<&'static str>,
    name: Option<&'static str>,
    /// For a create of a (Cluster)RoleBinding: the referenced role (kind, name).
    role_ref: Option<(&'static str, &'static str)>,
}

fn req(verb: &'static str, group: &'static str, resource: &'static str) -> Req {
    Req {
        verb,
        group,
        resource,
        namespace: None,
        name: None,
        role_ref: None,
    }
}

impl Req {
    fn ns(mut self, ns: &'static str) -> Req {
        self.namespace = Some(ns);
        self
    }
    fn named(mut self, n: &'static str) -> Req {
        self.name = Some(n);
        self
    }
    fn binding_to(mut self, kind: &'static str, name: &'static str) -> Req {
        self.role_ref = Some((kind, name));
        self
    }
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The RBAC objects of a rendering and a subject (a ServiceAccount).
struct Rbac<'a> {
    docs: &'a [Value],
    sa: (&'a str, &'a str),
}

fn rule_allows(rule: &Value, r: &Req) -> bool {
    let verbs = strs(&rule["verbs"]);
    let groups = strs(&rule["apiGroups"]);
    let resources = strs(&rule["resources"]);
    let names = strs(&rule["resourceNames"]);
    let (res, sub) = r.resource.split_once('/').unwrap_or((r.resource, ""));
    let verb_ok = verbs.iter().any(|v| *v == "*" || *v == r.verb);
    let group_ok = groups.iter().any(|g| *g == "*" || *g == r.group);
    let res_ok = resources.iter().any(|x| {
        *x == "*"
            || *x == r.resource
            || (!sub.is_empty() && *x == format!("*/{sub}"))
            || (sub.is_empty() && *x == res)
    });
    let name_ok = names.is_empty() || r.name.is_some_and(|n| names.contains(&n));
    verb_ok && group_ok && res_ok && name_ok
}

impl<'a> Rbac<'a> {
    fn role(&self, kind: &str, name: &str, ns: Option<&str>) -> Option<&'a Value> {
        self.docs.iter().find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && (kind == "ClusterRole" || d["metadata"]["namespace"].as_str() == ns)
        })
    }

    fn binds_me(&self, b: &Value) -> bool {
        b["subjects"].as_array().into_iter().flatten().any(|s| {
            s["kind"] == "ServiceAccount" && s["name"] == self.sa.1 && s["namespace"] == self.sa.0
        })
    }

    /// The rules that apply to a request in `ns` (`None`: cluster-scoped or all namespaces).
    fn rules_for(&self, ns: Option<&str>) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for b in self.docs {
            let kind = b["kind"].as_str().unwrap_or("");
            if !matches!(kind, "ClusterRoleBinding" | "RoleBinding") || !self.binds_me(b) {
                continue;
            }
            let bns = b["metadata"]["namespace"].as_str();
            if kind == "RoleBinding" && (ns.is_none() || ns != bns) {
                continue;
            }
            let rk = b["roleRef"]["kind"].as_str().unwrap_or("");
            let rn = b["roleRef"]["name"].as_str().unwrap_or("");
            if let Some(role) = self.role(rk, rn, bns) {
                out.extend(role["rules"].as_array().into_iter().flatten());
            }
        }
        out
    }

    fn allowed(&self, r: &Req) -> bool {
        let rules = self.rules_for(r.namespace);
        if !rules.iter().any(|rule| rule_allows(rule, r)) {
            return false;
        }
        // Creating a binding: `bind` on the role, or already holding all of it.
        if let Some((kind, name)) = r.role_ref {
            let bind = Req {
                verb: "bind",
                group: "rbac.authorization.k8s.io",
                resource: if kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                },
                namespace: r.namespace,
                name: Some(name),
                role_ref: None,
            };
            if rules.iter().any(|rule| rule_allows(rule, &bind)) {
                return true;
            }
            return self.holds_all(kind, name, r.namespace);
        }
        true
    }

    /// Whether every rule of the role is covered by a rule the subject holds (a rough
    /// version of the authorizer's covers(): rule by rule, each verb/group/resource/name).
    fn holds_all(&self, kind: &str, name: &str, ns: Option<&str>) -> bool {
        let Some(role) = self.role(kind, name, ns) else {
            return false; // not visible here (cluster-admin is built in): not held
        };
        let mine = self.rules_for(ns);
        role["rules"].as_array().into_iter().flatten().all(|rule| {
            let names = strs(&rule["resourceNames"]);
            let names: Vec<Option<&str>> = if names.is_empty() {
                vec![None]
            } else {
                names.into_iter().map(Some).collect()
            };
            strs(&rule["verbs"]).iter().all(|v| {
                strs(&rule["apiGroups"]).iter().all(|g| {
                    strs(&rule["resources"]).iter().all(|res| {
                        names.iter().all(|n| {
                            mine.iter().any(|m| {
                                let (mv, mg, mr, mn) = (
                                    strs(&m["verbs"]),
                                    strs(&m["apiGroups"]),
                                    strs(&m["resources"]),
                                    strs(&m["resourceNames"]),
                                );
                                (mv.contains(&"*") || mv.contains(v))
                                    && (mg.contains(&"*") || mg.contains(g))
                                    && (mr.contains(&"*") || mr.contains(res))
                                    && (mn.is_empty() || n.is_some_and(|n| mn.contains(&n)))
                            })
                        })
                    })
                })
            })
        })
    }
}

const NS: &str = "meshbridge-system";
const RBAC: &str = "rbac.authorization.k8s.io";

fn plain() -> Vec<Value> {
    docs(&std::fs::read_to_string(root().join("deploy/meshbridge.yaml")).unwrap())
}

/// Requests the controller's ServiceAccount must be allowed.
fn must_allow() -> Vec<Req> {
    vec![
        // outputs it manages (controller ClusterRole)
        req("patch", "networking.istio.io", "virtualservices")
            .ns("shop")
            .named("web"),
        req("create", "networking.istio.io", "virtualservices").ns("shop"),
        req("delete", "linkerd.io", "serviceprofiles")
            .ns("shop")
            .named("web.shop.svc.cluster.local"),
        req("patch", "split.smi-spec.io", "trafficsplits/status")
            .ns("shop")
            .named("web"),
        // GAMMA route status (read, then written back)
        req("get", "gateway.networking.k8s.io", "httproutes/status")
            .ns("shop")
            .named("web"),
        req("patch", "gateway.networking.k8s.io", "httproutes/status")
            .ns("shop")
            .named("web"),
        // inputs, watched cluster-wide
        req("watch", "split.smi-spec.io", "trafficsplits"),
        req("watch", "gateway.networking.k8s.io", "referencegrants"),
        req("list", "", "services"),
        // its lease
        req("update", "coordination.k8s.io", "leases")
            .ns(NS)
            .named("meshbridge-controller"),
        // discovery reads
        req("list", "apps", "deployments"),
        req("list", "", "namespaces"),
        req("list", "", "pods"),
        req("get", "", "configmaps")
            .ns("istio-system")
            .named("istio"),
        req("get", "", "configmaps")
            .ns("linkerd")
            .named("linkerd-config"),
        req("list", "security.istio.io", "peerauthentications").ns("istio-system"),
        // Mesh objects and Installs
        req("create", "meshbridge.io", "meshes").ns(NS),
        req("patch", "meshbridge.io", "meshes/status")
            .ns(NS)
            .named("istio"),
        req("watch", "meshbridge.io", "installs"),
        req("patch", "meshbridge.io", "installs")
            .ns(NS)
            .named("istio"),
        req("patch", "meshbridge.io", "installs/status")
            .ns("team-a")
            .named("istio"),
        // installer Jobs, in its own namespace
        req("create", "batch", "jobs").ns(NS),
        req("delete", "batch", "jobs")
            .ns(NS)
            .named("istio-install-x"),
        req("watch", "batch", "jobs").ns(NS),
        req("get", "", "serviceaccounts")
            .ns(NS)
            .named("meshbridge-installer"),
        // the built-in mesh's workload, by name, in its own namespace
        req("patch", "apps", "deployments")
            .ns(NS)
            .named("meshbridge-mesh"),
        req("delete", "policy", "poddisruptionbudgets")
            .ns(NS)
            .named("meshbridge-mesh"),
        req("patch", "", "services")
            .ns(NS)
            .named("meshbridge-mesh-metrics"),
    ]
}

/// Requests the controller's ServiceAccount must be denied.
fn must_deny() -> Vec<Req> {
    vec![
        // cluster-admin for itself
        req("create", RBAC, "clusterrolebindings")
            .named("x")
            .binding_to("ClusterRole", "cluster-admin"),
        req("create", RBAC, "clusterrolebindings"),
        req("patch", RBAC, "clusterrolebindings").named("meshbridge-installer"),
        req("create", RBAC, "rolebindings")
            .ns(NS)
            .binding_to("ClusterRole", "cluster-admin"),
        req("bind", RBAC, "clusterroles").named("cluster-admin"),
        req("bind", RBAC, "clusterroles").named("meshbridge"),
        req("bind", RBAC, "roles")
            .ns(NS)
            .named("meshbridge-leader-election"),
        req("escalate", RBAC, "clusterroles").named("meshbridge"),
        req("escalate", RBAC, "roles")
            .ns(NS)
            .named("meshbridge-discovery"),
        req("create", RBAC, "clusterroles"),
        req("create", RBAC, "roles").ns(NS),
        req("patch", RBAC, "clusterroles").named("meshbridge-mesh"),
        req("impersonate", "", "serviceaccounts")
            .ns(NS)
            .named("meshbridge-installer"),
        // Jobs and ServiceAccounts outside its namespace; no ServiceAccount writes at all
        req("create", "batch", "jobs").ns("kube-system"),
        req("create", "batch", "jobs").ns("default"),
        req("create", "batch", "jobs"),
        req("create", "", "serviceaccounts").ns(NS),
        req("create", "", "serviceaccounts").ns("kube-system"),
        req("patch", "", "serviceaccounts")
            .ns(NS)
            .named("meshbridge-installer"),
        req("create", "", "serviceaccounts/token")
            .ns(NS)
            .named("meshbridge-installer"),
        req("create", "", "pods").ns(NS),
        req("create", "", "pods/exec").ns(NS).named("x"),
        // ConfigMaps: named gets only
        req("list", "", "configmaps"),
        req("list", "", "configmaps").ns("kube-system"),
        req("watch", "", "configmaps").ns("istio-system"),
        req("get", "", "configmaps")
            .ns("kube-system")
            .named("kube-proxy"),
        req("get", "", "secrets")
            .ns("istio-system")
            .named("istio-ca-secret"),
        req("list", "", "secrets"),
        // the built-in mesh's objects only in its namespace, only by its names
        req("patch", "apps", "deployments")
            .ns("kube-system")
            .named("meshbridge-mesh"),
        req("patch", "apps", "deployments")
            .ns(NS)
            .named("meshbridge"),
        req("delete", "apps", "deployments")
            .ns("istio-system")
            .named("istiod"),
        req("create", "apps", "deployments").ns(NS),
        // Meshes written only in its namespace
        req("create", "meshbridge.io", "meshes").ns("team-a"),
        req("patch", "meshbridge.io", "installs")
            .ns("team-a")
            .named("istio"),
        // cluster objects
        req("delete", "", "namespaces").named("kube-system"),
        req(
            "create",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        ),
        req(
            "create",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
        ),
    ]
}

fn check(docs: &[Value], sa: (&str, &str)) {
    let rbac = Rbac { docs, sa };
    let wrong_denied: Vec<_> = must_allow()
        .into_iter()
        .filter(|r| !rbac.allowed(r))
        .collect();
    let wrong_allowed: Vec<_> = must_deny()
        .into_iter()
        .filter(|r| rbac.allowed(r))
        .collect();
    assert!(
        wrong_denied.is_empty() && wrong_allowed.is_empty(),
        "must be allowed but denied: {wrong_denied:#?}\nmust be denied but allowed: {wrong_allowed:#?}"
    );
}

#[test]
fn controller_service_account_can_i() {
    check(&plain(), (NS, "meshbridge"));
}

/// Through the discovery ClusterRole, Role and their bindings alone: each grant of
/// `rbac::required_in_namespace` is allowed in the controller namespace and denied in
/// kube-system; each of `rbac::required_cluster` in any namespace.
#[test]
fn required_grants_are_allowed_exactly_where_they_belong() {
    use meshbridge_discovery::rbac::{Options, required_cluster, required_in_namespace};
    let docs: Vec<Value> = plain()
        .into_iter()
        .filter(|d| d["metadata"]["name"] == meshbridge_discovery::install::DISCOVERY_ROLE)
        .collect();
    assert_eq!(docs.len(), 4, "ClusterRole, Role and their bindings");
    let rbac = Rbac {
        docs: &docs,
        sa: (NS, "meshbridge"),
    };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let o = Options::default();
    for (scope, grants) in [
        ("ns", required_in_namespace(&o)),
        ("cluster", required_cluster(&o)),
    ] {
        for ((g, res, v), names) in grants {
            let names: Vec<Option<&'static str>> = match names {
                None => vec![None],
                Some(ns) => ns.into_iter().map(|n| Some(leak(n))).collect(),
            };
            for n in names {
                let base = Req {
                    verb: leak(v.clone()),
                    group: leak(g.clone()),
                    resource: leak(res.clone()),
                    namespace: Some(NS),
                    name: n.or(Some("some-name")),
                    role_ref: None,
                };
                assert!(rbac.allowed(&base), "{scope}: denied {base:?}");
                let elsewhere = base.clone().ns("kube-system");
                assert_eq!(
                    rbac.allowed(&elsewhere),
                    scope == "cluster",
                    "{scope}: {elsewhere:?}"
                );
            }
        }
    }
}

/// With the installer and the built-in mesh opted in, the controller's own rights do not
/// change (it still cannot bind cluster-admin); the installer ServiceAccount holds
/// cluster-admin through its binding; the built-in mesh holds only the controller's roles.
#[test]
fn opt_in_identities() {
    let helm = [
        std::env::var_os("HELM").map(PathBuf::from),
        Some(root().join(".tools/bin/helm")),
        Some(PathBuf::from("helm")),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        Command::new(p)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(helm) = helm else {
        assert!(
            std::env::var_os("CI").is_none(),
            "helm not found in CI: run scripts/install-helm.sh .tools/bin first"
        );
        eprintln!("SKIPPED: helm not found (scripts/install-helm.sh .tools/bin installs it)");
        return;
    };
    let out = Command::new(helm)
        .args(["template", "meshbridge"])
        .arg(root().join("deploy/helm/meshbridge"))
        .args(["--namespace", NS])
        .args(["--set", "installer.enabled=true,builtinMesh.enabled=true"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = docs(&String::from_utf8(out.stdout).unwrap());
    check(&docs, (NS, "meshbridge"));
    let installer_binding = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding" && d["roleRef"]["name"] == "cluster-admin")
        .expect("installer binding");
    assert_eq!(
        installer_binding["subjects"][0]["name"],
        "meshbridge-installer"
    );
    // The built-in mesh: the controller's outputs, but no Jobs, no Mesh writes, no RBAC.
    let mesh = Rbac {
        docs: &docs,
        sa: (NS, "meshbridge-mesh"),
    };
    assert!(
        mesh.allowed(
            &req("patch", "networking.istio.io", "virtualservices")
                .ns("shop")
                .named("web")
        )
    );
    assert!(mesh.allowed(&req("create", "coordination.k8s.io", "leases").ns(NS)));
    for r in [
        req("create", "batch", "jobs").ns(NS),
        req("create", RBAC, "clusterrolebindings").binding_to("ClusterRole", "cluster-admin"),
        req("bind", RBAC, "clusterroles").named("cluster-admin"),
        req("get", "", "configmaps")
            .ns("istio-system")
            .named("istio"),
    ] {
        assert!(!mesh.allowed(&r), "built-in mesh allowed {r:?}");
    }
}

/// The evaluator itself, on the authorizer's documented cases.
#[test]
fn evaluator_follows_the_rbac_authorizer() {
    let docs = docs(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: wide}
rules:
  - {apiGroups: ["*"], resources: ["*/status"], verbs: ["patch"]}
  - {apiGroups: [""], resources: ["configmaps"], resourceNames: ["a"], verbs: ["get", "create"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: jobs}
rules:
  - {apiGroups: ["batch"], resources: ["jobs"], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: wide}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wide}
subjects: [{kind: ServiceAccount, name: me, namespace: ns}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: jobs, namespace: ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: jobs}
subjects: [{kind: ServiceAccount, name: me, namespace: ns}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: other, namespace: ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: jobs}
subjects: [{kind: ServiceAccount, name: someone-else, namespace: ns}]
"#,
    );
    let r = Rbac {
        docs: &docs,
        sa: ("ns", "me"),
    };
    // `*/status` covers every status subresource, not the resource itself.
    assert!(
        r.allowed(
            &req("patch", "apps", "deployments/status")
                .ns("x")
                .named("d")
        )
    );
    assert!(!r.allowed(&req("patch", "apps", "deployments").ns("x").named("d")));
    // resourceNames: only that name; never a create (no name) or a list.
    assert!(r.allowed(&req("get", "", "configmaps").ns("x").named("a")));
    assert!(!r.allowed(&req("get", "", "configmaps").ns("x").named("b")));
    assert!(!r.allowed(&req("create", "", "configmaps").ns("x")));
    assert!(!r.allowed(&req("list", "", "configmaps").ns("x")));
    // A RoleBinding to a ClusterRole grants it in the binding's namespace only.
    assert!(r.allowed(&req("create", "batch", "jobs").ns("ns")));
    assert!(!r.allowed(&req("create", "batch", "jobs").ns("other")));
    assert!(!r.allowed(&req("create", "batch", "jobs")));
    // Bindings of other subjects do not count.
    let other = Rbac {
        docs: &docs,
        sa: ("ns", "nobody"),
    };
    assert!(!other.allowed(&req("create", "batch", "jobs").ns("ns")));
}
