//! Synthetic inputs for benchmarks and scale tests: `n_smi` SMI objects over `n_services`
//! Services, shaped like a real cluster (splits with 2 backends, route groups with three
//! matches, TrafficTargets naming them, TCPRoutes with ports), spread over namespaces of
//! 100 services each.

use std::fmt::Write;

/// Generates a multi-document YAML stream. Roughly a quarter of the SMI objects each are
/// TrafficSplits, HTTPRouteGroups, TrafficTargets and TCPRoutes.
pub fn cluster_yaml(n_smi: usize, n_services: usize) -> String {
    let mut s = String::with_capacity(n_smi * 600 + n_services * 400);
    let n_services = n_services.max(3);
    assert!(
        n_smi.div_ceil(4) <= n_services,
        "one split per root: need n_services >= n_smi / 4"
    );
    let ns_of = |i: usize| format!("ns{}", i / 100);
    for i in 0..n_services {
        let ns = ns_of(i);
        let _ = write!(
            s,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: {ns}}}\nspec:\n  selector: {{app: svc{i}}}\n  ports: [{{name: http, port: 8080, targetPort: 8080}}]\n---\n"
        );
        let _ = write!(
            s,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: svc{i}, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{app: svc{i}}}}}\n  template:\n    metadata: {{labels: {{app: svc{i}}}}}\n    spec:\n      serviceAccountName: sa{i}\n      containers: [{{name: app, image: x, ports: [{{containerPort: 8080}}]}}]\n---\n"
        );
    }
    let quarter = n_smi.div_ceil(4);
    let mut made = 0;
    for i in 0..quarter {
        // Unique roots; the two backends are the next services of the same namespace.
        let r = i % n_services;
        let ns_base = r - r % 100;
        let ns_size = (n_services - ns_base).min(100);
        let (a, b) = (
            ns_base + (r - ns_base + 1) % ns_size,
            ns_base + (r - ns_base + 2) % ns_size,
        );
        let ns = ns_of(r);
        for (kind, body) in [
            (
                "split",
                format!(
                    "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: split{i}, namespace: {ns}}}\nspec:\n  service: svc{r}\n  backends:\n  - {{service: svc{a}, weight: 90}}\n  - {{service: svc{b}, weight: 10}}\n"
                ),
            ),
            (
                "hrg",
                format!(
                    "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: routes{i}, namespace: {ns}}}\nspec:\n  matches:\n  - {{name: metrics, pathRegex: /metrics, methods: [GET]}}\n  - {{name: api, pathRegex: \"/api/.*\", methods: [GET, POST], headers: {{x-tenant: \"^t[0-9]+$\"}}}}\n  - {{name: health, pathRegex: /healthz$}}\n"
                ),
            ),
            (
                "tt",
                format!(
                    "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: tt{i}, namespace: {ns}}}\nspec:\n  destination: {{kind: ServiceAccount, name: sa{r}, namespace: {ns}}}\n  rules:\n  - {{kind: HTTPRouteGroup, name: routes{i}, matches: [metrics, api]}}\n  - {{kind: TCPRoute, name: tcp{i}}}\n  sources:\n  - {{kind: ServiceAccount, name: sa{a}, namespace: {ns}}}\n"
                ),
            ),
            (
                "tcp",
                format!(
                    "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {{name: tcp{i}, namespace: {ns}}}\nspec:\n  matches: {{ports: [8080]}}\n"
                ),
            ),
        ] {
            if made >= n_smi {
                break;
            }
            let _ = kind;
            s.push_str(&body);
            s.push_str("---\n");
            made += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
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
}
