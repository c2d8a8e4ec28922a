//! Where Istio's TrafficMetrics come from: the standard metrics every Istio sidecar exports
//! (`istio_requests_total`, `istio_request_duration_milliseconds`), read from the user's
//! Prometheus.
//!
//! Decisions:
//! - `reporter="destination"`: the server's sidecar is the truth of what was served — it
//!   sees the authorization policy's 403s and requests from every meshed client; the client
//!   sidecar's (`reporter="source"`) copy of the same request would count it twice. What a
//!   destination never saw (a client sidecar's 503 "no healthy upstream") is therefore not
//!   counted.
//! - Istio's labels do not say what kind of workload `source_workload` /
//!   `destination_workload` is (the injector derives the name from the pod's controller), so
//!   both are read as Deployments; a StatefulSet's or DaemonSet's traffic shows under
//!   `deployments/NAME`.
//! - The destination pod is the `pod` label that Prometheus' scrape configuration adds to
//!   the target (Istio's sample Prometheus, the `kubernetes-pods` job, maps
//!   `__meta_kubernetes_pod_name` to it); with `reporter="destination"` the scraped pod is
//!   the server. The client's pod is not known.
//! - `unknown` (a client outside the mesh, a destination without a sidecar) is read as not
//!   known: such series are no edge and are skipped.

use meshbridge_core::metrics::prom::{Outcome, PeerLabels, PromSpec};

/// Istio's series and labels.
pub fn prom_spec() -> PromSpec {
    let s = |v: &str| v.to_string();
    PromSpec {
        mesh: s("istio"),
        requests: s("istio_requests_total"),
        latency: s("istio_request_duration_milliseconds_bucket"),
        selector: s(r#"reporter="destination""#),
        from: PeerLabels {
            namespace: s("source_workload_namespace"),
            pod: None,
            workloads: vec![(s("source_workload"), s("Deployment"))],
        },
        to: PeerLabels {
            namespace: s("destination_workload_namespace"),
            pod: Some(s("pod")),
            workloads: vec![(s("destination_workload"), s("Deployment"))],
        },
        service: Some(s("destination_service_name")),
        outcome: Outcome::StatusCode {
            label: s("response_code"),
            grpc: Some(s("grpc_response_status")),
        },
        placeholders: vec![s("unknown")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_istio_series() {
        assert_eq!(
            prom_spec().requests_query(30),
            r#"sum by (source_workload_namespace, source_workload, destination_workload_namespace, pod, destination_workload, destination_service_name, response_code, grpc_response_status) (increase(istio_requests_total{reporter="destination"}[30s]))"#
        );
        assert_eq!(
            prom_spec().latency_query(30),
            r#"sum by (source_workload_namespace, source_workload, destination_workload_namespace, pod, destination_workload, destination_service_name, le) (increase(istio_request_duration_milliseconds_bucket{reporter="destination"}[30s]))"#
        );
    }
}
