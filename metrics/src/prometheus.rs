//! Numbers from a mesh's Prometheus (Istio, Linkerd): the two instant queries of the mesh's
//! [`PromSpec`] through the query API, read by core into a [`Window`].

use crate::{BoxFuture, Numbers, http};
use meshbridge_core::metrics::prom::PromSpec;
use meshbridge_core::metrics::{Peer, Window, rfc3339};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A Prometheus server and the mesh series it holds.
#[derive(Clone, Debug)]
pub struct Prometheus {
    /// `http://host:port` (a path prefix is kept: `http://host/prometheus`).
    pub base_url: String,
    pub spec: PromSpec,
    /// The window every answer covers, in seconds.
    pub window_s: u64,
}

impl Prometheus {
    pub fn new(base_url: &str, spec: PromSpec, window_s: u64) -> Prometheus {
        Prometheus {
            base_url: base_url.trim_end_matches('/').to_string(),
            spec,
            window_s,
        }
    }

    /// The query-API URL of `promql`.
    pub fn query_url(&self, promql: &str) -> String {
        format!(
            "{}/api/v1/query?query={}",
            self.base_url,
            http::encode(promql)
        )
    }

    async fn query(&self, promql: &str) -> Result<Vec<u8>, String> {
        let url = self.query_url(promql);
        http::get(&url, QUERY_TIMEOUT)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| format!("Prometheus query failed: {e}"))
    }

    /// The window, from both queries.
    pub async fn fetch(&self) -> Result<Window, String> {
        let rq = self.spec.requests_query(self.window_s);
        let lq = self.spec.latency_query(self.window_s);
        let (requests, latency) = tokio::try_join!(self.query(&rq), self.query(&lq))?;
        let (edges, newest) = self
            .spec
            .samples(&requests, &latency)
            .map_err(|e| format!("{}: {e}", self.base_url))?;
        let inventory: BTreeSet<Peer> = edges
            .iter()
            .flat_map(|e| [e.from.clone(), e.to.clone()])
            .collect();
        let ms = newest
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| (t * 1000.0) as u64)
            .unwrap_or_else(crate::now_ms);
        Ok(Window {
            timestamp: rfc3339(ms),
            seconds: self.window_s,
            edges,
            inventory: inventory.into_iter().collect(),
        })
    }
}

impl Numbers for Prometheus {
    fn window(&self) -> BoxFuture<'_, Result<Window, String>> {
        Box::pin(self.fetch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshbridge_core::metrics::prom::{Outcome, PeerLabels};

    fn spec() -> PromSpec {
        PromSpec {
            mesh: "m".into(),
            requests: "r_total".into(),
            latency: "l_bucket".into(),
            selector: String::new(),
            from: PeerLabels {
                namespace: "ns".into(),
                pod: None,
                workloads: vec![],
            },
            to: PeerLabels {
                namespace: "dst_ns".into(),
                pod: None,
                workloads: vec![],
            },
            service: None,
            outcome: Outcome::StatusCode {
                label: "code".into(),
                grpc: None,
            },
            placeholders: vec![],
        }
    }

    #[test]
    fn urls_encode_the_query() {
        let p = Prometheus::new("http://prom:9090/", spec(), 30);
        assert_eq!(
            p.query_url(r#"up{a="b"}[1m]"#),
            "http://prom:9090/api/v1/query?query=up%7Ba%3D%22b%22%7D%5B1m%5D"
        );
    }

    #[tokio::test]
    async fn errors_name_the_url_and_reason() {
        // A port nothing listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let p = Prometheus::new(&format!("http://{addr}"), spec(), 30);
        let err = p.window().await.unwrap_err();
        assert!(
            err.starts_with(&format!(
                "Prometheus query failed: http://{addr}/api/v1/query?query=sum"
            )),
            "{err}"
        );
    }
}
