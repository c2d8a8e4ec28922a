//! The pods `meshbridge local` runs, derived from the objects in use: Pods, and the pod
//! templates of every workload kind (Deployments, StatefulSets, DaemonSets, ReplicaSets,
//! Jobs: `<name>-<i>` for each of their replicas) — names, service account, labels, ports
//! (declared container ports and the target ports of the Services selecting the pod),
//! programs.

use meshbridge_core::Snapshot;
use meshbridge_core::build::service_of;
use meshbridge_core::ir::{Service, served_ports};
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
    /// The workload that runs it (`Deployment`, `StatefulSet`, ...; `None` for a Pod).
    pub(crate) owner: Option<(String, String)>,
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
        owner: None,
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
    for t in snap.pod_templates() {
        let Some(spec) = &t.template.spec else {
            continue;
        };
        let labels = t
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        // StatefulSets name their pods `<name>-<ordinal>`; the others get the same form.
        for i in 0..t.replicas.clamp(0, 50) {
            let mut p = pod_spec(
                t.namespace,
                &format!("{}-{i}", t.name),
                labels.clone(),
                spec,
            );
            p.owner = Some((t.kind.k8s_kind().to_string(), t.name.to_string()));
            out.push(p);
        }
    }
    let services: Vec<Service> = snap
        .services
        .iter()
        .map(|((ns, name), (s, _))| service_of(ns, name, s))
        .collect();
    for p in &mut out {
        p.ports = served_ports(&p.namespace, &p.labels, &p.ports, &services);
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out.dedup_by(|a, b| (&a.namespace, &a.name) == (&b.namespace, &b.name));
    out
}
