//! `rbac::required()` is exactly what the code uses: discovery (first pass and
//! rediscovery), the loop's watches, and the Install lifecycles (Istio install → upgrade →
//! uninstall by `disabled`, then delete; the built-in mesh in another namespace, installed
//! and uninstalled) run against a mocked API server; every recorded request must be
//! granted by `required()`, and every entry of `required()` must have been used.
//! `tests/run_deploy.rs` checks the chart's ClusterRole against `required()`.

mod common;

use common::{
    ALL_INSTALLS, DEPLOYS, INSTALLS, JOBS, MESHES, NS, complete_jobs, install, load, no_caps,
    run_once, served_cluster, service_account, shared, target, until,
};
use meshbridge_discovery::rbac::{Grants, Options, required_for, required_in_namespace};
use meshbridge_discovery::runner::{self, RunnerConfig};
use meshbridge_test_support::Req;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// (group, resource, verb, name) of a request (`name` None for collections).
fn access(r: &Req) -> Vec<(String, String, String, Option<String>)> {
    let t = target(&r.path);
    let (group, resource, name) = (t.group, t.resource, t.name);
    let verbs: Vec<&str> = match (r.method.as_str(), &name) {
        ("GET", None) if r.query.get("watch").map(String::as_str) == Some("true") => {
            vec!["watch"]
        }
        ("GET", None) => vec!["list"],
        ("GET", Some(_)) => vec!["get"],
        ("POST", _) => vec!["create"],
        // A server-side apply creates a missing object: authorised as `create` by name.
        ("PATCH", _) if r.content_type.starts_with("application/apply-patch") => {
            vec!["patch", "create"]
        }
        ("PATCH", _) => vec!["patch"],
        ("DELETE", _) => vec!["delete"],
        (m, _) => panic!("unexpected method {m}"),
    };
    // A POST names no object in its path (and cannot be limited by name).
    let name = if r.method == "POST" { None } else { name };
    verbs
        .into_iter()
        .map(|v| (group.clone(), resource.clone(), v.to_string(), name.clone()))
        .collect()
}

/// What creating the RBAC objects in the requests needs beyond the requests themselves:
/// `escalate` for a Role holding permissions the controller lacks in that namespace (the
/// controller's own lease Role exists only in its namespace; a ClusterRole applied here is a
/// copy of the controller's), `bind` for a binding to a role the controller does not hold.
fn rbac_checks(reqs: &[Req]) -> Vec<(String, String, String, Option<String>)> {
    let rbac = "rbac.authorization.k8s.io".to_string();
    let applied: Vec<&Value> = reqs
        .iter()
        .filter(|r| r.content_type.starts_with("application/apply-patch"))
        .map(|r| &r.body)
        .collect();
    let held_role = |kind: &str, name: &str, ns: Option<&str>| {
        applied.iter().any(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && (kind == "ClusterRole" || ns == Some(NS))
        })
    };
    let mut out = Vec::new();
    for o in &applied {
        let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
        let ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
        match o["kind"].as_str() {
            Some("Role") if ns != Some(NS) => {
                out.push((rbac.clone(), "roles".into(), "escalate".into(), Some(name)))
            }
            Some(k @ ("RoleBinding" | "ClusterRoleBinding")) => {
                let role_kind = o["roleRef"]["kind"].as_str().unwrap_or("");
                let role = o["roleRef"]["name"].as_str().unwrap_or("").to_string();
                let role_ns = if k == "RoleBinding" { ns } else { None };
                if !held_role(role_kind, &role, role_ns) {
                    let res = if role_kind == "Role" {
                        "roles"
                    } else {
                        "clusterroles"
                    };
                    out.push((rbac.clone(), res.into(), "bind".into(), Some(role)));
                }
            }
            _ => {}
        }
    }
    out
}

fn granted(g: &Grants, a: &(String, String, String, Option<String>)) -> bool {
    match g.get(&(a.0.clone(), a.1.clone(), a.2.clone())) {
        Some(None) => true,
        Some(Some(names)) => a.3.as_ref().is_some_and(|n| names.contains(n)),
        None => false,
    }
}

#[tokio::test]
async fn required_is_exactly_what_discovery_and_install_use() {
    // Only what a cluster serves: every path below is a real one.
    let f = served_cluster();
    // Istio with two revisions (their ConfigMaps are granted through the Helm value
    // discovery.istioRevisions) and Linkerd (linkerd-config).
    for case in ["istio-revisions", "linkerd-stable-2.14"] {
        load(&f, case);
    }
    // The opt-in ServiceAccounts the chart creates (installer.enabled, builtinMesh.enabled).
    for sa in ["meshbridge-installer", "meshbridge-mesh"] {
        f.insert(service_account(sa));
    }
    f.insert_at(
        INSTALLS,
        install("istio", json!({"type": "istio", "version": "1.22.3"})),
    );
    f.insert_at(INSTALLS, install("builtin", json!({"type": "envoy"})));

    // The loop's watches (list + watch of Installs and labelled Jobs).
    let (stop, rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(runner::run(
        f.client("meshbridge"),
        Arc::new(AtomicBool::new(true)),
        rx,
        RunnerConfig::new(NS, Duration::from_secs(60), false),
        shared(no_caps),
    ));
    until(5, "watches", || {
        f.watching(JOBS) > 0 && f.watching(ALL_INSTALLS) > 0
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), h)
        .await
        .unwrap()
        .unwrap();

    // Install, then the Jobs complete and the built-in mesh's Deployment is available.
    run_once(&f, shared(no_caps)).await;
    complete_jobs(&f);
    f.edit(DEPLOYS, "meshbridge-mesh", |d| {
        d["status"] = json!({"observedGeneration": 1, "availableReplicas": 2})
    });
    run_once(&f, shared(no_caps)).await;
    assert_eq!(
        f.get_at(INSTALLS, "istio").unwrap()["status"]["phase"],
        "Installed"
    );
    assert_eq!(
        f.get_at(INSTALLS, "builtin").unwrap()["status"]["phase"],
        "Installed"
    );
    // Rediscovery patches a Mesh whose discovered spec was lost.
    f.edit(MESHES, "istio-1-20", |m| {
        m["metadata"]["annotations"] = json!({});
        m["spec"]["version"] = Value::Null;
    });
    // Upgrade (a new Job), then uninstall by `disabled`, then delete.
    f.edit(INSTALLS, "istio", |i| {
        i["spec"]["version"] = json!("1.23.0")
    });
    run_once(&f, shared(no_caps)).await;
    f.edit(INSTALLS, "istio", |i| i["spec"]["disabled"] = json!(true));
    f.edit(INSTALLS, "builtin", |i| i["spec"]["disabled"] = json!(true));
    run_once(&f, shared(no_caps)).await;
    complete_jobs(&f);
    run_once(&f, shared(no_caps)).await;
    assert_eq!(
        f.get_at(INSTALLS, "istio").unwrap()["status"]["phase"],
        "Uninstalled"
    );
    assert_eq!(
        f.get_at(INSTALLS, "builtin").unwrap()["status"]["phase"],
        "Uninstalled"
    );
    assert!(f.names(JOBS).is_empty(), "Jobs cleaned up");

    let mut reqs = f.take_log();
    reqs.extend(f.take_watch_log());
    let mut used: Vec<_> = reqs.iter().flat_map(access).collect();
    used.extend(rbac_checks(&reqs));
    let opts = Options {
        istio_revisions: vec!["1-20".into(), "1-21".into()],
        ..Options::default()
    };
    let req = required_for(&opts);

    let missing: BTreeSet<_> = used.iter().filter(|a| !granted(&req, a)).collect();
    assert!(
        missing.is_empty(),
        "used but not in rbac::required(): {missing:#?}"
    );

    let mut unused = Vec::new();
    for ((g, r, v), names) in &req {
        let hits: Vec<&Option<String>> = used
            .iter()
            .filter(|a| (&a.0, &a.1, &a.2) == (g, r, v))
            .map(|a| &a.3)
            .collect();
        match names {
            None if hits.is_empty() => unused.push(format!("{g}/{r} {v}")),
            Some(ns) => {
                for n in ns {
                    if !hits.iter().any(|h| h.as_deref() == Some(n.as_str())) {
                        unused.push(format!("{g}/{r} {v} {n}"));
                    }
                }
            }
            None => {}
        }
    }
    assert!(
        unused.is_empty(),
        "in rbac::required() but never used: {unused:#?}"
    );
    // No bind or escalate, nothing on RBAC objects.
    assert!(
        !req.keys()
            .any(|(g, _, v)| g == "rbac.authorization.k8s.io" || v == "bind" || v == "escalate"),
        "{req:#?}"
    );
    // What is granted only in the controller namespace is used only there.
    let ns_only = required_in_namespace(&opts);
    for r in &reqs {
        for a in access(r) {
            let cluster = meshbridge_discovery::rbac::required_cluster(&opts);
            if granted(&ns_only, &a) && !granted(&cluster, &a) {
                assert!(
                    r.path.contains(&format!("/namespaces/{NS}/")),
                    "{} outside the controller namespace",
                    r.line()
                );
            }
        }
    }
}
