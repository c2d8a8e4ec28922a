//! The pods `meshbridge local` runs, derived from the objects in use: Pods, and the pod
//! templates of Deployments (names, service account, labels, ports, programs).

use meshbridge_core::Snapshot;
use std::collections::BTreeMap;

/// A pod to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodSpec {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) service_account: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) ports: Vec<(Option<String>, u16)>,
    /// One program per container that has a command: argv and env.
    pub(crate) programs: Vec<Program>,
}

/// A program of a pod: argv and environment.
pub(crate) type Program = (Vec<String>, Vec<(String, String)>);

fn pod_spec(
    ns: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    spec: &k8s_openapi::api::core::v1::PodSpec,
) -> PodSpec {
    let mut ports = Vec::new();
    let mut programs = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            if let Ok(n) = u16::try_from(p.container_port)
                && n > 0
                && !ports.iter().any(|(_, q)| *q == n)
            {
                ports.push((p.name.clone(), n));
            }
        }
        let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
        argv.extend(c.args.clone().unwrap_or_default());
        if !argv.is_empty() {
            let env = c
                .env
                .iter()
                .flatten()
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect();
            programs.push((argv, env));
        }
    }
    ports.sort_by_key(|(_, p)| *p);
    PodSpec {
        namespace: ns.into(),
        name: name.into(),
        service_account: spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into()),
        labels,
        ports,
        programs,
    }
}

pub(crate) fn pods_of(snap: &Snapshot) -> Vec<PodSpec> {
    let mut out = Vec::new();
    for ((ns, name), (pod, _)) in &snap.pods {
        if let Some(spec) = &pod.spec {
            out.push(pod_spec(
                ns,
                name,
                pod.metadata.labels.clone().unwrap_or_default(),
                spec,
            ));
        }
    }
    for ((ns, name), (dep, _)) in &snap.deployments {
        let Some(spec) = &dep.spec.template.spec else {
            continue;
        };
        let labels = dep
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let replicas = dep.spec.replicas.unwrap_or(1).clamp(0, 50);
        for i in 0..replicas {
            out.push(pod_spec(ns, &format!("{name}-{i}"), labels.clone(), spec));
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}
