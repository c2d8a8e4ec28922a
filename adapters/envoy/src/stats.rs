//! A sidecar's own statistics as traffic edges: what the sidecar of one pod (the caller)
//! sent to each destination, read from its admin interface.
//!
//! Every outbound cluster is one destination Service port (`<ns>/<svc>|<port>`,
//! [`cluster_name`](crate::sidecar::cluster_name)), so the caller's cluster statistics are
//! per (caller pod, destination Service). Two admin documents are read:
//! - `/stats?format=json&histogram_buckets=cumulative` — per cluster: `upstream_rq_5xx`, `upstream_rq_403` (refused by the destination's RBAC) and the
//!   `upstream_rq_time` histogram (Envoy's buckets, in ms);
//! - `/clusters?format=json` — per cluster and endpoint: `rq_success` and `rq_error` (5xx).
//!
//! - the same document, per trimmed virtual host (a Service port the caller may not reach at
//!   all, whose refusal its own sidecar answers: [`crate::sidecar::DENY_PORT`]):
//!   `vhost.<ns>/<svc>|<port>.vcluster.denied.upstream_rq_403` and its `upstream_rq_time`.
//!
//! One [`EdgeSample`] per (cluster, destination pod) with traffic: counts are the endpoint's
//! own; the 403s and the latency histogram are the cluster's, shared among its endpoints in
//! proportion to their requests (exact when a Service has one pod, and summed per Service or
//! workload always exact). Refusals of a trimmed port are edges to the pods behind the
//! Service (shared evenly: the caller's sidecar answered for all of them). Failures that reached no endpoint (no healthy upstream,
//! connection failures) are an edge to the Service's namespace without a pod. Inbound
//! (`inbound|…`) and control-plane clusters are not edges.
//!
//! The numbers are cumulative since the sidecar started: [`meshbridge_core::metrics::Recorder`]
//! turns them into windows.

use meshbridge_core::metrics::{EdgeSample, Histogram, Peer};
use serde_json::Value;
use std::collections::BTreeMap;

/// The admin paths to read (append to `http://<admin address>`). The statistics are the
/// clusters' and the virtual hosts' (`filter=^(cluster|vhost)\.`).
pub const STATS_PATH: &str =
    "/stats?format=json&usedonly&histogram_buckets=cumulative&filter=%5E%28cluster%7Cvhost%29%5C.";
pub const CLUSTERS_PATH: &str = "/clusters?format=json";

/// The Service of an outbound cluster name (`ns/svc|port` → `(ns, svc)`).
pub fn service_of_cluster(name: &str) -> Option<(&str, &str)> {
    let (svc, port) = name.rsplit_once('|')?;
    port.parse::<u16>().ok()?;
    let (ns, svc) = svc.split_once('/')?;
    (!ns.is_empty() && !svc.is_empty() && !svc.contains('/')).then_some((ns, svc))
}

#[derive(Default)]
struct ClusterStats {
    /// Refusals counted by a trimmed virtual host (`vhost.X.vcluster.denied.*`).
    refused: f64,
    errors_5xx: f64,
    forbidden: f64,
    latency: Histogram,
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The virtual host of a trimmed port's refusal statistic (`vhost.<vh>.vcluster.denied<suffix>`).
fn denied_vhost<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    name.strip_prefix("vhost.")?
        .strip_suffix(suffix)?
        .strip_suffix(crate::sidecar::DENIED_VCLUSTER)?
        .strip_suffix(".vcluster.")
}

/// Per-cluster counters and histograms of a `/stats?format=json` document.
fn cluster_stats(stats: &Value) -> Result<BTreeMap<String, ClusterStats>, String> {
    let list = stats["stats"]
        .as_array()
        .ok_or("stats: no `stats` list in the admin answer")?;
    let mut out: BTreeMap<String, ClusterStats> = BTreeMap::new();
    for s in list {
        if let Some(hs) = s["histograms"].as_array() {
            for h in hs {
                let Some(name) = h["name"].as_str() else {
                    continue;
                };
                let Some(cluster) = name
                    .strip_prefix("cluster.")
                    .and_then(|n| n.strip_suffix(".upstream_rq_time"))
                    .or_else(|| denied_vhost(name, ".upstream_rq_time"))
                else {
                    continue;
                };
                // `cluster.X.external.upstream_rq_time` is a subset of the total; skip it.
                if cluster.ends_with(".external") || cluster.ends_with(".internal") {
                    continue;
                }
                let buckets = h["buckets"]
                    .as_array()
                    .map(|b| {
                        b.iter()
                            .map(|b| (num(&b["upper_bound"]), num(&b["cumulative"])))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                out.entry(cluster.to_string()).or_default().latency = Histogram { buckets };
            }
            continue;
        }
        let Some(full) = s["name"].as_str() else {
            continue;
        };
        if let Some(vh) = denied_vhost(full, ".upstream_rq_403") {
            out.entry(vh.to_string()).or_default().refused = num(&s["value"]);
            continue;
        }
        let Some(name) = full.strip_prefix("cluster.") else {
            continue;
        };
        for (suffix, field) in [(".upstream_rq_5xx", 1), (".upstream_rq_403", 2)] {
            if let Some(c) = name.strip_suffix(suffix)
                && !c.ends_with(".external")
                && !c.ends_with(".internal")
            {
                let e = out.entry(c.to_string()).or_default();
                let v = num(&s["value"]);
                if field == 1 {
                    e.errors_5xx = v;
                } else {
                    e.forbidden = v;
                }
            }
        }
    }
    Ok(out)
}

/// Per cluster: each endpoint's address, rq_success and rq_error.
type HostStats = BTreeMap<String, Vec<(String, f64, f64)>>;

/// Per cluster, per endpoint address: (rq_success, rq_error) of a `/clusters?format=json`
/// document.
fn host_stats(clusters: &Value) -> Result<HostStats, String> {
    let list = clusters["cluster_statuses"]
        .as_array()
        .ok_or("clusters: no `cluster_statuses` list in the admin answer")?;
    let mut out = BTreeMap::new();
    for c in list {
        let Some(name) = c["name"].as_str() else {
            continue;
        };
        let mut hosts = Vec::new();
        for h in c["host_statuses"].as_array().into_iter().flatten() {
            let Some(ip) = h["address"]["socket_address"]["address"].as_str() else {
                continue;
            };
            let stat = |n: &str| {
                h["stats"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|s| s["name"] == n)
                    .map(|s| num(&s["value"]))
                    .unwrap_or(0.0)
            };
            hosts.push((ip.to_string(), stat("rq_success"), stat("rq_error")));
        }
        out.insert(name.to_string(), hosts);
    }
    Ok(out)
}

/// `h` scaled by `f` (a share of a cluster's histogram for one of its endpoints).
fn scaled(h: &Histogram, f: f64) -> Histogram {
    Histogram {
        buckets: h.buckets.iter().map(|&(le, c)| (le, c * f)).collect(),
    }
}

/// How the caller's edges find their destinations: the pod at an address, and the pods
/// behind a Service (`namespace`, `name`).
pub struct Resolve<'a> {
    pub pod_at: &'a dyn Fn(&str) -> Option<Peer>,
    pub service_pods: &'a dyn Fn(&str, &str) -> Vec<Peer>,
}

/// The edges of the sidecar of `caller`: its admin `/stats` and `/clusters` documents
/// ([`STATS_PATH`], [`CLUSTERS_PATH`]).
pub fn edges_of(
    caller: &Peer,
    stats: &Value,
    clusters: &Value,
    resolve: &Resolve,
) -> Result<Vec<EdgeSample>, String> {
    let pod_at = resolve.pod_at;
    let per_cluster = cluster_stats(stats)?;
    let hosts = host_stats(clusters)?;
    let mut out = Vec::new();
    for (name, cs) in &per_cluster {
        let Some((ns, svc)) = service_of_cluster(name) else {
            continue;
        };
        if cs.refused > 0.0 {
            let mut latency = cs.latency.clone();
            latency.buckets.push((f64::INFINITY, latency.count()));
            let mut pods = (resolve.service_pods)(ns, svc);
            if pods.is_empty() {
                pods.push(Peer {
                    namespace: ns.to_string(),
                    pod: None,
                    owner: None,
                });
            }
            let share = 1.0 / pods.len() as f64;
            for to in pods {
                out.push(EdgeSample {
                    from: caller.clone(),
                    to,
                    service: Some(svc.to_string()),
                    success: cs.refused * share,
                    failure: 0.0,
                    denied: cs.refused * share,
                    latency: scaled(&latency, share),
                    refused_by_caller: true,
                });
            }
            continue;
        }
        let mut latency = cs.latency.clone();
        // Envoy's buckets stop at 1 h: +Inf holds what the last one does. (Histograms
        // reach the admin interface at each stats flush, counters at once: for up to one
        // flush interval the histogram holds fewer requests than the counters.)
        let inf = latency.count();
        latency.buckets.push((f64::INFINITY, inf));
        let eps = hosts.get(name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let total_host: f64 = eps.iter().map(|(_, s, e)| s + e).sum();
        let mut host_errors = 0.0;
        for (ip, ok, err) in eps {
            let n = ok + err;
            if n <= 0.0 {
                continue;
            }
            host_errors += err;
            let share = n / total_host;
            let to = pod_at(ip).unwrap_or_else(|| Peer {
                namespace: ns.to_string(),
                pod: None,
                owner: None,
            });
            out.push(EdgeSample {
                from: caller.clone(),
                to,
                service: Some(svc.to_string()),
                success: *ok,
                failure: *err,
                denied: (cs.forbidden * share).min(*ok),
                latency: scaled(&latency, share),
                refused_by_caller: false,
            });
        }
        let unattributed = (cs.errors_5xx - host_errors).max(0.0);
        if unattributed > 0.0 {
            out.push(EdgeSample {
                from: caller.clone(),
                to: Peer {
                    namespace: ns.to_string(),
                    pod: None,
                    owner: None,
                },
                service: Some(svc.to_string()),
                success: 0.0,
                failure: unattributed,
                denied: 0.0,
                latency: Histogram::default(),
                refused_by_caller: false,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_names_give_services() {
        assert_eq!(
            service_of_cluster("demo/web-v1|80"),
            Some(("demo", "web-v1"))
        );
        assert_eq!(service_of_cluster("inbound|8080"), None);
        assert_eq!(service_of_cluster("xds"), None);
    }

    #[test]
    fn endpoints_split_counts_and_share_latency() {
        let stats = json!({"stats": [
            {"name": "cluster.demo/web|80.upstream_rq_completed", "value": 30},
            {"name": "cluster.demo/web|80.upstream_rq_5xx", "value": 5},
            {"name": "cluster.demo/web|80.upstream_rq_403", "value": 4},
            {"name": "cluster.demo/web|80.external.upstream_rq_5xx", "value": 5},
            {"name": "cluster.inbound|8080.upstream_rq_completed", "value": 9},
            {"histograms": [{"name": "cluster.demo/web|80.upstream_rq_time", "buckets": [
                {"upper_bound": 1, "cumulative": 10}, {"upper_bound": 5, "cumulative": 28}]}]}
        ]});
        let clusters = json!({"cluster_statuses": [
            {"name": "demo/web|80", "host_statuses": [
                {"address": {"socket_address": {"address": "127.1.0.3", "port_value": 8080}},
                 "stats": [{"name": "rq_success", "value": "15"}, {"name": "rq_error", "value": "0"}]},
                {"address": {"socket_address": {"address": "127.1.0.4", "port_value": 8080}},
                 "stats": [{"name": "rq_success", "value": "10"}, {"name": "rq_error", "value": "3"}]}]},
            {"name": "inbound|8080", "host_statuses": []}]});
        let caller = Peer::pod("demo", "client-0", None);
        let at = |ip: &str| match ip {
            "127.1.0.3" => Some(Peer::pod("demo", "web-0", None)),
            _ => None,
        };
        let none = |_: &str, _: &str| vec![];
        let e = edges_of(
            &caller,
            &stats,
            &clusters,
            &Resolve {
                pod_at: &at,
                service_pods: &none,
            },
        )
        .unwrap();
        assert_eq!(e.len(), 3, "{e:#?}");
        assert_eq!(
            (e[0].to.pod.as_deref(), e[0].success, e[0].failure),
            (Some("web-0"), 15.0, 0.0)
        );
        // An address that is no known pod: the Service's namespace.
        assert_eq!(
            (e[1].to.pod.as_deref(), e[1].success, e[1].failure),
            (None, 10.0, 3.0)
        );
        // 5 failures in all, 3 reached an endpoint: 2 reached none.
        assert_eq!((e[2].failure, e[2].success), (2.0, 0.0));
        // Latency: the cluster's, shared 15:13.
        let total: f64 = e.iter().map(|x| x.latency.count()).sum();
        assert!((total - 28.0).abs() < 1e-9);
        let (q0, q1) = (
            e[0].latency.quantile(0.5).unwrap(),
            e[1].latency.quantile(0.5).unwrap(),
        );
        assert!(
            (q0 - q1).abs() < 1e-9 && (1.0..=5.0).contains(&q0),
            "{q0} {q1}"
        );
        assert!((e[0].denied + e[1].denied - 4.0).abs() < 1e-9);
    }

    #[test]
    fn bad_documents_are_errors() {
        let caller = Peer::default();
        let r = Resolve {
            pod_at: &|_| None,
            service_pods: &|_, _| vec![],
        };
        assert!(edges_of(&caller, &json!({}), &json!({"cluster_statuses": []}), &r).is_err());
        assert!(edges_of(&caller, &json!({"stats": []}), &json!([]), &r).is_err());
    }

    #[test]
    fn refusals_of_trimmed_ports_are_edges_to_the_service_pods() {
        let stats = json!({"stats": [
            {"name": "vhost.demo/web|80.vcluster.denied.upstream_rq_403", "value": 10},
            {"name": "vhost.demo/web|80.vcluster.other.upstream_rq_total", "value": 0},
            {"histograms": [{"name": "vhost.demo/web|80.vcluster.denied.upstream_rq_time", "buckets": [
                {"upper_bound": 1, "cumulative": 10}]}]}
        ]});
        let caller = Peer::pod("demo", "intruder-0", None);
        let pods = |ns: &str, svc: &str| {
            assert_eq!((ns, svc), ("demo", "web"));
            vec![
                Peer::pod("demo", "web-0", None),
                Peer::pod("demo", "web-1", None),
            ]
        };
        let r = Resolve {
            pod_at: &|_| None,
            service_pods: &pods,
        };
        let e = edges_of(&caller, &stats, &json!({"cluster_statuses": []}), &r).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].success, e[0].denied, e[0].failure), (5.0, 5.0, 0.0));
        assert!(e.iter().all(|e| e.refused_by_caller));
        assert_eq!(e[1].to.pod.as_deref(), Some("web-1"));
        assert!(e[0].latency.quantile(0.5).is_some());
    }
}
