//! Deterministic synthetic clusters for the benchmark and the partition-equivalence test.
//!
//! `apps` applications spread over `namespaces` namespaces. Each app `a<k>` has two Services
//! (`a<k>` and `a<k>-v2`), a ServiceAccount and a Pod per Service, and four SMI objects: a
//! TrafficSplit (`a<k>` → 90/10), an HTTPRouteGroup, a TCPRoute and a TrafficTarget
//! allowing the previous app of the namespace to call it. 2,500 apps = 5,000 Services and
//! 10,000 SMI objects.

use meshbridge_core::model::Object;

fn load(text: &str) -> Vec<Object> {
    let l = meshbridge_core::load::load_str("synthetic.yaml", text);
    l.objects
}

/// YAML of one app.
pub fn app_yaml(ns: &str, k: usize, prev: usize, weights: (u32, u32)) -> String {
    let a = format!("a{k}");
    let p = format!("a{prev}");
    let mut s = String::new();
    for (svc, ver) in [(a.clone(), "v1"), (format!("{a}-v2"), "v2")] {
        s.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}, namespace: {ns}}}\nspec: {{selector: {{app: {a}, version: {ver}}}, ports: [{{name: http, port: 8080, targetPort: 8080}}]}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: {svc}-0, namespace: {ns}, labels: {{app: {a}, version: {ver}}}}}\nspec: {{serviceAccountName: {a}, containers: [{{name: app, image: app, ports: [{{containerPort: 8080}}]}}]}}\n---\n"
        ));
    }
    // The root selects both versions' pods.
    s = s.replacen(
        &format!("selector: {{app: {a}, version: v1}}"),
        &format!("selector: {{app: {a}}}"),
        1,
    );
    s.push_str(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {a}, namespace: {ns}}}\n---\n\
         apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: {a}, namespace: {ns}, generation: 1}}\nspec:\n  service: {a}\n  backends:\n  - {{service: {a}, weight: {w1}}}\n  - {{service: {a}-v2, weight: {w2}}}\n---\n\
         apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: {a}-routes, namespace: {ns}}}\nspec:\n  matches:\n  - {{name: api, pathRegex: /api, methods: [GET, POST]}}\n---\n\
         apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: {a}-tcp, namespace: {ns}}}\nspec: {{}}\n---\n\
         apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: {p}-to-{a}, namespace: {ns}, generation: 1}}\nspec:\n  destination: {{kind: ServiceAccount, name: {a}, namespace: {ns}}}\n  sources:\n  - {{kind: ServiceAccount, name: {p}, namespace: {ns}}}\n  rules:\n  - {{kind: HTTPRouteGroup, name: {a}-routes, matches: [api]}}\n---\n",
        w1 = weights.0,
        w2 = weights.1,
    ));
    s
}

/// Namespace of app `k`.
pub fn namespace_of(k: usize, namespaces: usize) -> String {
    format!("ns{}", k % namespaces.max(1))
}

/// The previous app in the same namespace (wraps around).
pub fn prev_of(k: usize, apps: usize, namespaces: usize) -> usize {
    let n = namespaces.max(1);
    if k >= n {
        k - n
    } else {
        k + (apps.saturating_sub(1).saturating_sub(k)) / n * n
    }
}

/// The whole cluster as YAML.
pub fn cluster_yaml(apps: usize, namespaces: usize) -> String {
    let mut s = String::new();
    for n in 0..namespaces {
        s.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n---\n"
        ));
    }
    for k in 0..apps {
        s.push_str(&app_yaml(
            &namespace_of(k, namespaces),
            k,
            prev_of(k, apps, namespaces),
            (90, 10),
        ));
    }
    s
}

/// The whole cluster as objects.
pub fn cluster(apps: usize, namespaces: usize) -> Vec<Object> {
    load(&cluster_yaml(apps, namespaces))
}

/// A new version of app `k`'s TrafficSplit.
pub fn split_edit(k: usize, namespaces: usize, weights: (u32, u32)) -> Object {
    let ns = namespace_of(k, namespaces);
    let a = format!("a{k}");
    let text = format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: {a}, namespace: {ns}, generation: 2}}\nspec:\n  service: {a}\n  backends:\n  - {{service: {a}, weight: {}}}\n  - {{service: {a}-v2, weight: {}}}\n",
        weights.0, weights.1
    );
    load(&text).remove(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        let objs = super::cluster(20, 4);
        let smi = objs.iter().filter(|o| o.kind().is_smi()).count();
        let svcs = objs
            .iter()
            .filter(|o| o.kind() == meshbridge_core::model::Kind::Service)
            .count();
        assert_eq!((smi, svcs), (80, 40));
        let snap = meshbridge_core::Snapshot::from_objects(objs);
        let ir = meshbridge_core::build::build(&snap);
        assert!(ir.problems().is_empty(), "{:?}", ir.problems());
        assert_eq!(ir.splits.len(), 20);
        assert_eq!(ir.access.len(), 20);
    }
}
