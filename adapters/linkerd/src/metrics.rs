//! Where Linkerd's TrafficMetrics come from: the proxies' `response_total` and
//! `response_latency_ms` series, read from the user's Prometheus (linkerd-viz's, or any
//! scraping the proxies the way it does).
//!
//! Decisions:
//! - `direction="outbound"`: only the client's proxy knows both ends — its series carry the
//!   destination's `dst_namespace`, `dst_pod`, `dst_deployment|dst_statefulset|…` and
//!   `dst_service`, while the client is named by the labels Prometheus adds to the scraped
//!   proxy (linkerd-viz maps the pod's `linkerd.io/proxy-<kind>` label to `deployment`,
//!   `statefulset`, …, and adds `namespace` and `pod`). Inbound series name no client
//!   workload, so requests from clients without a proxy are not counted.
//! - success/failure is the proxy's own `classification` (failure: 5xx, gRPC errors, no
//!   response); denied is a success with `status_code="403"` (what the server's policy
//!   answers an HTTP request it refuses).
//! - A destination outside the cluster (no `dst_namespace`) is no edge and is skipped.

use meshbridge_core::metrics::prom::{Outcome, PeerLabels, PromSpec};

const KINDS: [(&str, &str); 5] = [
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("job", "Job"),
    ("replicaset", "ReplicaSet"),
];

/// Linkerd's series and labels.
pub fn prom_spec() -> PromSpec {
    let s = |v: &str| v.to_string();
    let workloads = |prefix: &str| {
        KINDS
            .iter()
            .map(|(label, kind)| (format!("{prefix}{label}"), s(kind)))
            .collect()
    };
    PromSpec {
        mesh: s("linkerd"),
        requests: s("response_total"),
        latency: s("response_latency_ms_bucket"),
        selector: s(r#"direction="outbound""#),
        from: PeerLabels {
            namespace: s("namespace"),
            pod: Some(s("pod")),
            workloads: workloads(""),
        },
        to: PeerLabels {
            namespace: s("dst_namespace"),
            pod: Some(s("dst_pod")),
            workloads: workloads("dst_"),
        },
        service: Some(s("dst_service")),
        outcome: Outcome::Classification {
            label: s("classification"),
            success: s("success"),
            status: s("status_code"),
        },
        placeholders: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_linkerd_series() {
        assert_eq!(
            prom_spec().requests_query(30),
            r#"sum by (namespace, pod, deployment, statefulset, daemonset, job, replicaset, dst_namespace, dst_pod, dst_deployment, dst_statefulset, dst_daemonset, dst_job, dst_replicaset, dst_service, classification, status_code) (increase(response_total{direction="outbound"}[30s]))"#
        );
        assert_eq!(
            prom_spec().latency_query(30),
            r#"sum by (namespace, pod, deployment, statefulset, daemonset, job, replicaset, dst_namespace, dst_pod, dst_deployment, dst_statefulset, dst_daemonset, dst_job, dst_replicaset, dst_service, le) (increase(response_latency_ms_bucket{direction="outbound"}[30s]))"#
        );
    }
}
