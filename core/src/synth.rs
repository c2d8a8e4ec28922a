//! The one synthetic-workload generator, for benchmarks and scale tests (core's pipeline
//! bench, the translate and Envoy benches, the controller's partition-equivalence test).
//!
//! [`Synth::new`]`(n_smi, n_services)` is shaped like a real cluster: Services `svc<i>`
//! (each with a workload running as ServiceAccount `sa<i>`) spread over namespaces `ns<k>`
//! of 100 services each, and `n_smi` SMI objects: TrafficSplits with 2 backends,
//! HTTPRouteGroups with three matches, TrafficTargets naming them and TCPRoutes with ports.
//! The options change where workloads run and who may call whom.

use crate::model::Object;
use std::fmt::Write;

/// What runs behind each Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workloads {
    /// A Deployment per Service (no addresses: pods are the cluster's business).
    Deployments,
    /// A Pod per Service with an address (`10.<i/65536>.<i/256%256>.<i%256>`).
    Pods,
    /// Services only.
    None,
}

/// A synthetic mesh. Split `i` has root `svc<i>` (in its namespace) and its two backends are
/// the next two services of that namespace; TrafficTarget `i` lets the first backend's
/// ServiceAccount call the root's over route group `i` and TCPRoute `i`.
#[derive(Clone, Debug)]
pub struct Synth {
    /// SMI objects: a quarter each TrafficSplits, HTTPRouteGroups, TrafficTargets and
    /// TCPRoutes (in that order when the count is not a multiple of four).
    pub smi: usize,
    /// Services (at least 3); at least a quarter of `smi` (one split per root).
    pub services: usize,
    /// Services per namespace.
    pub per_namespace: usize,
    pub workloads: Workloads,
    /// Namespace objects too.
    pub namespace_objects: bool,
    /// One client allowed everywhere: Pod `client` (ServiceAccount `client`, in `ns0`; at
    /// 10.255.0.1 with [`Workloads::Pods`]) and a TrafficTarget `client-to-svc<i>` from it
    /// to every service over route group `client-routes`.
    pub client: bool,
}

impl Synth {
    /// `n_smi` SMI objects over `n_services` Services; Deployments, no client.
    pub fn new(n_smi: usize, n_services: usize) -> Self {
        Synth {
            smi: n_smi,
            services: n_services.max(3),
            per_namespace: 100,
            workloads: Workloads::Deployments,
            namespace_objects: false,
            client: false,
        }
    }

    /// The namespace of service `i`.
    pub fn namespace_of(&self, i: usize) -> String {
        format!("ns{}", i / self.per_namespace)
    }

    fn namespaces(&self) -> usize {
        self.services.div_ceil(self.per_namespace)
    }

    /// The whole mesh as a multi-document YAML stream.
    pub fn yaml(&self) -> String {
        let mut s = String::with_capacity(self.smi * 600 + self.services * 400);
        assert!(
            self.smi.div_ceil(4) <= self.services,
            "one split per root: need services >= smi / 4"
        );
        if self.namespace_objects {
            for k in 0..self.namespaces() {
                let _ = write!(
                    s,
                    "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{k}}}\n---\n"
                );
            }
        }
        if self.client {
            let ip = match self.workloads {
                Workloads::Pods => "\nstatus: {podIP: 10.255.0.1}",
                _ => "",
            };
            let _ = write!(
                s,
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: ns0, labels: {{app: client}}}}\nspec: {{serviceAccountName: client, containers: [{{name: c}}]}}{ip}\n---\n"
            );
        }
        for i in 0..self.services {
            self.service(&mut s, i);
        }
        // Objects j of split i (0 split, 1 route group, 2 target, 3 TCPRoute) while
        // 4 i + j < smi.
        for i in 0..self.smi.div_ceil(4) {
            let r = i % self.services;
            let ns = self.namespace_of(r);
            let a = self.backends(r).0;
            let objects = [
                self.split_yaml(i, (90, 10)),
                format!(
                    "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: routes{i}, namespace: {ns}}}\nspec:\n  matches:\n  - {{name: metrics, pathRegex: /metrics, methods: [GET]}}\n  - {{name: api, pathRegex: \"/api/.*\", methods: [GET, POST], headers: {{x-tenant: \"^t[0-9]+$\"}}}}\n  - {{name: health, pathRegex: /healthz$}}\n"
                ),
                format!(
                    "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: tt{i}, namespace: {ns}}}\nspec:\n  destination: {{kind: ServiceAccount, name: sa{r}, namespace: {ns}}}\n  rules:\n  - {{kind: HTTPRouteGroup, name: routes{i}, matches: [metrics, api]}}\n  - {{kind: TCPRoute, name: tcp{i}}}\n  sources:\n  - {{kind: ServiceAccount, name: sa{a}, namespace: {ns}}}\n"
                ),
                format!(
                    "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: tcp{i}, namespace: {ns}}}\nspec:\n  matches: {{ports: [8080]}}\n"
                ),
            ];
            for body in objects.into_iter().take(self.smi - 4 * i) {
                s.push_str(&body);
                s.push_str("---\n");
            }
        }
        s
    }

    /// Service `i`, its workload and (with [`Synth::client`]) the client's access to it.
    fn service(&self, s: &mut String, i: usize) {
        let ns = self.namespace_of(i);
        let _ = write!(
            s,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: {ns}}}\nspec:\n  selector: {{app: svc{i}}}\n  ports: [{{name: http, port: 8080, targetPort: 8080}}]\n---\n"
        );
        match self.workloads {
            Workloads::Deployments => {
                let _ = write!(
                    s,
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: svc{i}, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{app: svc{i}}}}}\n  template:\n    metadata: {{labels: {{app: svc{i}}}}}\n    spec:\n      serviceAccountName: sa{i}\n      containers: [{{name: app, image: x, ports: [{{containerPort: 8080}}]}}]\n---\n"
                );
            }
            Workloads::Pods => {
                let _ = write!(
                    s,
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: svc{i}-0, namespace: {ns}, labels: {{app: svc{i}}}}}\nspec: {{serviceAccountName: sa{i}, containers: [{{name: app, image: x, ports: [{{containerPort: 8080}}]}}]}}\nstatus: {{podIP: 10.{}.{}.{}}}\n---\n",
                    i / 65536,
                    (i / 256) % 256,
                    i % 256
                );
            }
            Workloads::None => {}
        }
        if self.client {
            if i.is_multiple_of(self.per_namespace) {
                let _ = write!(
                    s,
                    "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: client-routes, namespace: {ns}}}\nspec:\n  matches:\n  - {{name: api, pathRegex: /api, methods: [GET, POST]}}\n  - {{name: health, pathRegex: /healthz$}}\n---\n"
                );
            }
            let _ = write!(
                s,
                "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: client-to-svc{i}, namespace: {ns}}}\nspec:\n  destination: {{kind: ServiceAccount, name: sa{i}, namespace: {ns}}}\n  sources: [{{kind: ServiceAccount, name: client, namespace: ns0}}]\n  rules: [{{kind: HTTPRouteGroup, name: client-routes}}]\n---\n"
            );
        }
    }

    /// The two backends of a split rooted at service `r`: the next two of its namespace.
    pub fn backends(&self, r: usize) -> (usize, usize) {
        let ns_base = r - r % self.per_namespace;
        let ns_size = (self.services - ns_base).min(self.per_namespace);
        (
            ns_base + (r - ns_base + 1) % ns_size,
            ns_base + (r - ns_base + 2) % ns_size,
        )
    }

    /// TrafficSplit `split<i>` (root `svc<i % services>`) with these weights: the mesh's
    /// own split `i` at (90, 10), an edit of it otherwise; one past the mesh's splits, a
    /// new one.
    pub fn split_yaml(&self, i: usize, (w1, w2): (u32, u32)) -> String {
        let r = i % self.services;
        let ns = self.namespace_of(r);
        let (a, b) = self.backends(r);
        format!(
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: split{i}, namespace: {ns}}}\nspec:\n  service: svc{r}\n  backends:\n  - {{service: svc{a}, weight: {w1}}}\n  - {{service: svc{b}, weight: {w2}}}\n"
        )
    }

    /// The whole mesh as objects.
    pub fn objects(&self) -> Vec<Object> {
        load(&self.yaml())
    }

    /// [`Synth::split_yaml`] as an object.
    pub fn split(&self, i: usize, weights: (u32, u32)) -> Object {
        load(&self.split_yaml(i, weights)).remove(0)
    }
}

fn load(text: &str) -> Vec<Object> {
    let l = crate::load::load_str("synth.yaml", text);
    assert!(l.problems.is_empty(), "{:?}", l.problems.first());
    l.objects
}

/// [`Synth::new`]`(n_smi, n_services)` as YAML.
pub fn cluster_yaml(n_smi: usize, n_services: usize) -> String {
    Synth::new(n_smi, n_services).yaml()
}

#[cfg(test)]
mod tests {
    use super::{Synth, Workloads};
    use crate::model::Kind;

    fn ir_of(objects: Vec<crate::model::Object>) -> crate::ir::Ir {
        let snap = crate::snapshot::Snapshot::from_objects(objects);
        let ir = crate::build::build(&snap);
        assert!(ir.problems().is_empty(), "{:?}", ir.problems().first());
        ir
    }

    #[test]
    fn synthetic_cluster_is_valid() {
        let text = super::cluster_yaml(400, 300);
        let l = crate::load::load_str("synth.yaml", &text);
        assert!(l.problems.is_empty(), "{:?}", l.problems.first());
        let snap = crate::snapshot::Snapshot::from_objects(l.objects);
        assert_eq!(snap.smi_len(), 400);
        assert_eq!(snap.services.len(), 300);
        let ir = crate::build::build(&snap);
        assert!(ir.problems().is_empty(), "{:?}", ir.problems().first());
        assert_eq!(ir.splits.len(), 100);
        assert_eq!(ir.access.len(), 100);
    }

    #[test]
    fn smi_count_need_not_be_a_multiple_of_four() {
        let objects = Synth::new(10, 5).objects();
        let count = |k: Kind| objects.iter().filter(|o| o.kind() == k).count();
        assert_eq!(count(Kind::TrafficSplit), 3);
        assert_eq!(count(Kind::HTTPRouteGroup), 3);
        assert_eq!(count(Kind::TrafficTarget), 2);
        assert_eq!(count(Kind::TCPRoute), 2);
        ir_of(objects);
    }

    #[test]
    fn pods_namespaces_and_one_client_allowed_everywhere() {
        let synth = Synth {
            per_namespace: 10,
            workloads: Workloads::Pods,
            namespace_objects: true,
            client: true,
            ..Synth::new(8, 25)
        };
        let objects = synth.objects();
        let count = |k: Kind| objects.iter().filter(|o| o.kind() == k).count();
        assert_eq!(count(Kind::Namespace), 3);
        assert_eq!(count(Kind::Pod), 26);
        assert_eq!(count(Kind::Deployment), 0);
        assert_eq!(count(Kind::TrafficTarget), 2 + 25);
        assert_eq!(count(Kind::HTTPRouteGroup), 2 + 3);
        assert!(synth.yaml().contains("name: svc24-0, namespace: ns2"));
        assert!(synth.yaml().contains("status: {podIP: 10.0.0.24}"));
        assert!(synth.yaml().contains("status: {podIP: 10.255.0.1}"));
        let ir = ir_of(objects);
        assert_eq!(ir.splits.len(), 2);
        // One access policy per destination: sa0 and sa1 have two sources.
        assert_eq!(ir.access.len(), 25);
    }

    #[test]
    fn split_edit_replaces_the_meshs_split() {
        let synth = Synth::new(40, 30);
        let edit = synth.split(3, (1, 2));
        let objects = synth.objects();
        let old = objects.iter().find(|o| o.key() == edit.key()).unwrap();
        assert_ne!(format!("{old:?}"), format!("{edit:?}"));
        assert!(synth.split_yaml(3, (90, 10)).contains("weight: 90"));
        assert!(synth.yaml().contains(&synth.split_yaml(3, (90, 10))));
    }
}
