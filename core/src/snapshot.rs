//! One bundle of every input object. Sources (the Kubernetes API, a directory, memory) fill
//! it through [`Snapshot::apply`] and [`Snapshot::delete`]; the IR is a pure function of it.

use crate::model::*;
use std::collections::BTreeMap;

/// `(namespace, name)`.
pub type NsName = (String, String);

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub splits: BTreeMap<NsName, TrafficSplit>,
    pub targets: BTreeMap<NsName, TrafficTarget>,
    pub route_groups: BTreeMap<NsName, HttpRouteGroup>,
    pub tcp_routes: BTreeMap<NsName, PortRoute>,
    pub udp_routes: BTreeMap<NsName, PortRoute>,
    /// Gateway API routes, by kind (HTTPRoute, GRPCRoute, GatewayTCPRoute) then name.
    pub gamma_routes: BTreeMap<(Kind, String, String), GammaRoute>,
    pub reference_grants: BTreeMap<NsName, ReferenceGrant>,
    pub meshes: BTreeMap<NsName, (crate::api::meshbridge::Mesh, Meta)>,
    pub installs: BTreeMap<NsName, (crate::api::meshbridge::Install, Meta)>,
    pub namespaces: BTreeMap<String, (k8s_openapi::api::core::v1::Namespace, Meta)>,
    pub services: BTreeMap<NsName, (k8s_openapi::api::core::v1::Service, Meta)>,
    pub service_accounts: BTreeMap<NsName, (k8s_openapi::api::core::v1::ServiceAccount, Meta)>,
    pub pods: BTreeMap<NsName, (k8s_openapi::api::core::v1::Pod, Meta)>,
    pub deployments: BTreeMap<NsName, (k8s_openapi::api::apps::v1::Deployment, Meta)>,
    pub stateful_sets: BTreeMap<NsName, (k8s_openapi::api::apps::v1::StatefulSet, Meta)>,
    pub daemon_sets: BTreeMap<NsName, (k8s_openapi::api::apps::v1::DaemonSet, Meta)>,
    pub replica_sets: BTreeMap<NsName, (k8s_openapi::api::apps::v1::ReplicaSet, Meta)>,
    pub jobs: BTreeMap<NsName, (k8s_openapi::api::batch::v1::Job, Meta)>,
    pub endpoint_slices: BTreeMap<NsName, (k8s_openapi::api::discovery::v1::EndpointSlice, Meta)>,
}

impl Snapshot {
    /// The settings of the first Mesh object of type `mesh` (by name), if any.
    pub fn mesh_spec(
        &self,
        mesh: crate::api::meshbridge::MeshType,
    ) -> Option<crate::api::meshbridge::MeshSpec> {
        self.meshes
            .values()
            .map(|(m, _)| &m.spec)
            .find(|s| s.mesh_type == mesh)
            .cloned()
    }

    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Self {
        let mut s = Snapshot::default();
        for o in objects {
            s.apply(o);
        }
        s
    }

    /// Inserts or replaces one object. Returns true when an object with the same key was
    /// replaced.
    pub fn apply(&mut self, obj: Object) -> bool {
        let m = obj.meta();
        let k = (m.namespace.clone(), m.name.clone());
        match obj {
            Object::TrafficSplit(o) => self.splits.insert(k, o).is_some(),
            Object::TrafficTarget(o) => self.targets.insert(k, o).is_some(),
            Object::HttpRouteGroup(o) => self.route_groups.insert(k, o).is_some(),
            Object::TcpRoute(o) => self.tcp_routes.insert(k, o).is_some(),
            Object::UdpRoute(o) => self.udp_routes.insert(k, o).is_some(),
            Object::GammaRoute(o) => self.gamma_routes.insert((o.kind(), k.0, k.1), *o).is_some(),
            Object::ReferenceGrant(o) => self.reference_grants.insert(k, *o).is_some(),
            Object::Mesh(o, m) => self.meshes.insert(k, (*o, m)).is_some(),
            Object::Install(o, m) => self.installs.insert(k, (*o, m)).is_some(),
            Object::Namespace(o, m) => self.namespaces.insert(k.1, (*o, m)).is_some(),
            Object::Service(o, m) => self.services.insert(k, (*o, m)).is_some(),
            Object::ServiceAccount(o, m) => self.service_accounts.insert(k, (*o, m)).is_some(),
            Object::Pod(o, m) => self.pods.insert(k, (*o, m)).is_some(),
            Object::Deployment(o, m) => self.deployments.insert(k, (*o, m)).is_some(),
            Object::StatefulSet(o, m) => self.stateful_sets.insert(k, (*o, m)).is_some(),
            Object::DaemonSet(o, m) => self.daemon_sets.insert(k, (*o, m)).is_some(),
            Object::ReplicaSet(o, m) => self.replica_sets.insert(k, (*o, m)).is_some(),
            Object::Job(o, m) => self.jobs.insert(k, (*o, m)).is_some(),
            Object::EndpointSlice(o, m) => self.endpoint_slices.insert(k, (*o, m)).is_some(),
        }
    }

    /// Removes one object; returns whether it existed.
    pub fn delete(&mut self, key: &ObjectKey) -> bool {
        let k = (key.namespace.clone(), key.name.clone());
        match key.kind {
            Kind::TrafficSplit => self.splits.remove(&k).is_some(),
            Kind::TrafficTarget => self.targets.remove(&k).is_some(),
            Kind::HTTPRouteGroup => self.route_groups.remove(&k).is_some(),
            Kind::TCPRoute => self.tcp_routes.remove(&k).is_some(),
            Kind::UDPRoute => self.udp_routes.remove(&k).is_some(),
            Kind::HTTPRoute | Kind::GRPCRoute | Kind::GatewayTCPRoute => {
                self.gamma_routes.remove(&(key.kind, k.0, k.1)).is_some()
            }
            Kind::ReferenceGrant => self.reference_grants.remove(&k).is_some(),
            Kind::Mesh => self.meshes.remove(&k).is_some(),
            Kind::Install => self.installs.remove(&k).is_some(),
            Kind::Namespace => self.namespaces.remove(&key.name).is_some(),
            Kind::Service => self.services.remove(&k).is_some(),
            Kind::ServiceAccount => self.service_accounts.remove(&k).is_some(),
            Kind::Pod => self.pods.remove(&k).is_some(),
            Kind::Deployment => self.deployments.remove(&k).is_some(),
            Kind::StatefulSet => self.stateful_sets.remove(&k).is_some(),
            Kind::DaemonSet => self.daemon_sets.remove(&k).is_some(),
            Kind::ReplicaSet => self.replica_sets.remove(&k).is_some(),
            Kind::Job => self.jobs.remove(&k).is_some(),
            Kind::EndpointSlice => self.endpoint_slices.remove(&k).is_some(),
        }
    }

    /// Origin of an object, if present.
    pub fn origin(&self, key: &ObjectKey) -> Option<&Origin> {
        let k = (key.namespace.clone(), key.name.clone());
        Some(match key.kind {
            Kind::TrafficSplit => &self.splits.get(&k)?.meta.origin,
            Kind::TrafficTarget => &self.targets.get(&k)?.meta.origin,
            Kind::HTTPRouteGroup => &self.route_groups.get(&k)?.meta.origin,
            Kind::TCPRoute => &self.tcp_routes.get(&k)?.meta.origin,
            Kind::UDPRoute => &self.udp_routes.get(&k)?.meta.origin,
            Kind::HTTPRoute | Kind::GRPCRoute | Kind::GatewayTCPRoute => {
                &self.gamma_routes.get(&(key.kind, k.0, k.1))?.meta.origin
            }
            Kind::ReferenceGrant => &self.reference_grants.get(&k)?.meta.origin,
            Kind::Mesh => &self.meshes.get(&k)?.1.origin,
            Kind::Install => &self.installs.get(&k)?.1.origin,
            Kind::Namespace => &self.namespaces.get(&key.name)?.1.origin,
            Kind::Service => &self.services.get(&k)?.1.origin,
            Kind::ServiceAccount => &self.service_accounts.get(&k)?.1.origin,
            Kind::Pod => &self.pods.get(&k)?.1.origin,
            Kind::Deployment => &self.deployments.get(&k)?.1.origin,
            Kind::StatefulSet => &self.stateful_sets.get(&k)?.1.origin,
            Kind::DaemonSet => &self.daemon_sets.get(&k)?.1.origin,
            Kind::ReplicaSet => &self.replica_sets.get(&k)?.1.origin,
            Kind::Job => &self.jobs.get(&k)?.1.origin,
            Kind::EndpointSlice => &self.endpoint_slices.get(&k)?.1.origin,
        })
    }

    /// The pod templates of every workload kind that has one (Deployment, StatefulSet,
    /// DaemonSet, ReplicaSet, Job), sorted by kind, namespace and name.
    pub fn pod_templates(&self) -> Vec<PodTemplate<'_>> {
        let mut out = Vec::new();
        fn add<'a>(
            out: &mut Vec<PodTemplate<'a>>,
            k: &'a NsName,
            kind: Kind,
            replicas: Option<i32>,
            template: &'a k8s_openapi::api::core::v1::PodTemplateSpec,
        ) {
            out.push(PodTemplate {
                namespace: &k.0,
                name: &k.1,
                kind,
                replicas: replicas.unwrap_or(1),
                template,
            })
        }
        for (k, (o, _)) in &self.deployments {
            add(
                &mut out,
                k,
                Kind::Deployment,
                o.spec.replicas,
                &o.spec.template,
            );
        }
        for (k, (o, _)) in &self.stateful_sets {
            add(
                &mut out,
                k,
                Kind::StatefulSet,
                o.spec.replicas,
                &o.spec.template,
            );
        }
        for (k, (o, _)) in &self.daemon_sets {
            // One pod per node; meshbridge local has one node.
            add(&mut out, k, Kind::DaemonSet, None, &o.spec.template);
        }
        for (k, (o, _)) in &self.replica_sets {
            if let Some(t) = &o.spec.template {
                add(&mut out, k, Kind::ReplicaSet, o.spec.replicas, t);
            }
        }
        for (k, (o, _)) in &self.jobs {
            if let Some(spec) = &o.spec {
                add(&mut out, k, Kind::Job, spec.parallelism, &spec.template);
            }
        }
        out
    }

    /// Number of SMI input objects.
    pub fn smi_len(&self) -> usize {
        self.splits.len()
            + self.targets.len()
            + self.route_groups.len()
            + self.tcp_routes.len()
            + self.udp_routes.len()
    }
}

/// A workload's pod template (see [`Snapshot::pod_templates`]).
#[derive(Clone, Copy, Debug)]
pub struct PodTemplate<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub kind: Kind,
    /// Pods it runs (`replicas`, a Job's `parallelism`; default 1; a DaemonSet: 1).
    pub replicas: i32,
    pub template: &'a k8s_openapi::api::core::v1::PodTemplateSpec,
}
