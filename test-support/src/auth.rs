//! Authentication and authorization as the API server does them: RBAC rules per user
//! (from ClusterRole/Role objects or built by hand), evaluated like the RBAC authorizer;
//! 403 `Forbidden` Status bodies in the server's words; SubjectAccessReview and
//! TokenReview answers.

use crate::util::{details, qualified, status_body};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The user meshbridge's controller runs as in a cluster.
pub const CONTROLLER_USER: &str = "system:serviceaccount:meshbridge-system:meshbridge";

/// One RBAC policy rule, bound cluster-wide (`namespace: None`, a ClusterRoleBinding) or in
/// one namespace (a RoleBinding).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    /// `resource`, `resource/subresource`, `*`, `*/subresource`.
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
    pub namespace: Option<String>,
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

impl Rule {
    /// A cluster-wide rule.
    pub fn new(verbs: &[&str], api_groups: &[&str], resources: &[&str]) -> Rule {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        Rule {
            verbs: v(verbs),
            api_groups: v(api_groups),
            resources: v(resources),
            ..Rule::default()
        }
    }

    pub fn names(mut self, names: &[&str]) -> Rule {
        self.resource_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Bound in one namespace only (a RoleBinding).
    pub fn in_namespace(mut self, ns: &str) -> Rule {
        self.namespace = Some(ns.to_string());
        self
    }

    /// A rule object (`{apiGroups, resources, verbs, resourceNames, nonResourceURLs}`).
    pub fn from_value(r: &Value) -> Rule {
        Rule {
            verbs: strs(&r["verbs"]),
            api_groups: strs(&r["apiGroups"]),
            resources: strs(&r["resources"]),
            resource_names: strs(&r["resourceNames"]),
            non_resource_urls: strs(&r["nonResourceURLs"]),
            namespace: None,
        }
    }

    /// Whether this rule allows `a` (the RBAC authorizer's matching).
    pub fn allows(&self, a: &Attributes) -> bool {
        let verb = self.verbs.iter().any(|v| v == "*" || *v == a.verb);
        if let Some(path) = &a.non_resource_path {
            return verb
                && self.non_resource_urls.iter().any(|u| {
                    u == "*"
                        || u == path
                        || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
                });
        }
        if !verb {
            return false;
        }
        if let Some(ns) = &self.namespace
            && a.namespace.as_deref() != Some(ns.as_str())
        {
            return false;
        }
        let group = self.api_groups.iter().any(|g| g == "*" || *g == a.group);
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
        });
        let name = self.resource_names.is_empty()
            || (!a.name.is_empty() && self.resource_names.contains(&a.name));
        group && resource && name
    }
}

/// The rules of a ClusterRole object (bound cluster-wide, as by a ClusterRoleBinding).
pub fn rules_from_cluster_role(role: &Value) -> Vec<Rule> {
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Rule::from_value)
        .collect()
}

/// The rules of a Role or ClusterRole bound in one namespace (as by a RoleBinding).
pub fn rules_in_namespace(role: &Value, ns: &str) -> Vec<Rule> {
    rules_from_cluster_role(role)
        .into_iter()
        .map(|r| r.in_namespace(ns))
        .collect()
}

/// The rules of every ClusterRole in a YAML stream (e.g. a rendered chart).
pub fn rules_from_yaml(yaml: &str) -> Vec<Rule> {
    yaml.split("\n---")
        .filter_map(|d| serde_saphyr::from_str::<Value>(d).ok())
        .filter(|v| v["kind"] == "ClusterRole")
        .flat_map(|v| rules_from_cluster_role(&v))
        .collect()
}

/// What a request asks to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Set for non-resource requests (`/healthz`, `/metrics`).
    pub non_resource_path: Option<String>,
}

impl Attributes {
    pub fn new(verb: &str, group: &str, resource: &str) -> Attributes {
        let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            ..Attributes::default()
        }
    }
    pub fn namespace(mut self, ns: &str) -> Attributes {
        self.namespace = Some(ns.into());
        self
    }
    pub fn name(mut self, name: &str) -> Attributes {
        self.name = name.into();
        self
    }
}

/// Who may do what. Users with no rules registered are unrestricted (like
/// `system:masters`); a user with rules may do only what they allow, minus the deny list.
#[derive(Clone, Debug, Default)]
pub struct Authz {
    pub rules: BTreeMap<String, Vec<Rule>>,
    pub deny: Vec<(String, Rule)>,
}

impl Authz {
    pub fn allowed(&self, user: &str, a: &Attributes) -> bool {
        if self.deny.iter().any(|(u, r)| u == user && r.allows(a)) {
            return false;
        }
        match self.rules.get(user) {
            None => true,
            Some(rules) => rules.iter().any(|r| r.allows(a)),
        }
    }
}

/// The 403 Status a real server answers.
pub fn forbidden(user: &str, a: &Attributes) -> (u16, Value) {
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let q = qualified(&a.resource, &a.group);
    let head = if a.name.is_empty() {
        format!("{q} is forbidden")
    } else {
        format!("{q} \"{}\" is forbidden", a.name)
    };
    let scope = match &a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let msg = format!(
        "{head}: User \"{user}\" cannot {} resource \"{combined}\" in API group \"{}\" {scope}",
        a.verb, a.group
    );
    (
        403,
        status_body(
            403,
            "Forbidden",
            &msg,
            Some(details(&a.name, &a.group, &a.resource)),
        ),
    )
}

/// The answer to a SubjectAccessReview (or SelfSubjectAccessReview for `self_user`).
pub fn access_review(authz: &Authz, body: &Value, self_user: Option<&str>) -> Value {
    let spec = &body["spec"];
    let user = self_user
        .map(str::to_string)
        .or_else(|| spec["user"].as_str().map(str::to_string))
        .unwrap_or_default();
    let a = if let Some(r) = spec.get("resourceAttributes") {
        Attributes {
            verb: r["verb"].as_str().unwrap_or("").into(),
            group: r["group"].as_str().unwrap_or("").into(),
            resource: r["resource"].as_str().unwrap_or("").into(),
            subresource: r["subresource"].as_str().unwrap_or("").into(),
            namespace: r["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            name: r["name"].as_str().unwrap_or("").into(),
            non_resource_path: None,
        }
    } else {
        let n = &spec["nonResourceAttributes"];
        Attributes {
            verb: n["verb"].as_str().unwrap_or("").into(),
            non_resource_path: Some(n["path"].as_str().unwrap_or("").into()),
            ..Attributes::default()
        }
    };
    let allowed = authz.allowed(&user, &a);
    let mut out = body.clone();
    out["metadata"] = json!({"creationTimestamp": null});
    out["status"] = if allowed {
        json!({"allowed": true, "reason": "RBAC: allowed by the fake API server's rules"})
    } else {
        json!({"allowed": false})
    };
    out
}

/// A token a test registered: who it authenticates and for which audiences.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub audiences: Vec<String>,
    /// e.g. `authentication.kubernetes.io/pod-name` → [pod].
    pub extra: BTreeMap<String, Vec<String>>,
}

impl TokenInfo {
    /// A ServiceAccount token as `kubectl create token --audience ...` (bound to a pod when
    /// `pod` is `Some((name, uid))`) issues it.
    pub fn service_account(
        ns: &str,
        name: &str,
        uid: &str,
        audiences: &[&str],
        pod: Option<(&str, &str)>,
    ) -> TokenInfo {
        let mut extra = BTreeMap::new();
        if let Some((pn, pu)) = pod {
            extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![pn.to_string()],
            );
            extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![pu.to_string()],
            );
        }
        TokenInfo {
            username: format!("system:serviceaccount:{ns}:{name}"),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            audiences: audiences.iter().map(|s| s.to_string()).collect(),
            extra,
        }
    }
}

/// The audience a token is checked against when a review names none (the API server's own).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// The answer to a TokenReview.
pub fn token_review(tokens: &BTreeMap<String, TokenInfo>, body: &Value) -> Value {
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    let asked: Vec<String> = strs(&body["spec"]["audiences"]);
    let mut out = body.clone();
    out["metadata"] = json!({"creationTimestamp": null});
    let want = if asked.is_empty() {
        vec![API_AUDIENCE.to_string()]
    } else {
        asked.clone()
    };
    out["status"] = match tokens.get(token) {
        None => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
        Some(t) => {
            let common: Vec<&String> = t.audiences.iter().filter(|a| want.contains(a)).collect();
            if common.is_empty() {
                json!({"user": {}, "error": format!(
                    "[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]",
                    t.audiences, want)})
            } else {
                let mut user = json!({"username": t.username, "uid": t.uid, "groups": t.groups});
                if !t.extra.is_empty() {
                    user["extra"] = json!(t.extra);
                }
                json!({"authenticated": true, "user": user, "audiences": common})
            }
        }
    };
    out
}
