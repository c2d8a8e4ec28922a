//! The Prometheus path (Istio, Linkerd): which series a mesh's proxies export, the PromQL
//! that asks Prometheus for a window's increases, and the reading of Prometheus' query-API
//! answers into [`EdgeSample`]s. Pure: the HTTP GETs are the caller's
//! (`meshbridge-metrics`' `Prometheus`).
//!
//! Two instant queries per window, both `increase()` over `[{window}s]` summed by the labels
//! that name the two peers and the Service:
//! - requests, additionally by the response code (or classification), from the request
//!   counter;
//! - latency, additionally by `le`, from the latency histogram's `_bucket` series.
//!
//! `increase()` extrapolates to the window's edges, so counts are estimates that can be
//! fractional (the API rounds them); quantiles are unaffected by a common factor.

use super::{EdgeSample, Histogram, Owner, Peer};
use serde_json::Value;
use std::collections::BTreeMap;

/// The labels that name one end of an edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLabels {
    /// The peer's namespace. A series without it is not an edge between two namespaced
    /// peers (e.g. a call to an address outside the cluster) and is skipped.
    pub namespace: String,
    /// The peer's pod, where the series carries one.
    pub pod: Option<String>,
    /// Workload labels and the kind each one names, in order of preference: the first
    /// present and not a placeholder names the owner.
    pub workloads: Vec<(String, String)>,
}

impl PeerLabels {
    fn labels(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.namespace.as_str())
            .chain(self.pod.as_deref())
            .chain(self.workloads.iter().map(|w| w.0.as_str()))
    }
}

/// How a response's outcome is read from the request counter's labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status code label (Istio `response_code`): `5xx`, `0` (no response) or absent
    /// is a failure, anything else a success, `403` a denial. With a gRPC status label (Istio
    /// `grpc_response_status`), a gRPC status other than `0` (OK) is a failure too, as Linkerd
    /// classifies it: a gRPC error travels in an HTTP 200.
    StatusCode { label: String, grpc: Option<String> },
    /// The proxy's own classification (Linkerd `classification`: `success` | `failure`,
    /// failures being 5xx, gRPC errors and requests without a response), with the status
    /// code label for denials (`403`).
    Classification {
        label: String,
        success: String,
        status: String,
    },
}

impl Outcome {
    fn labels(&self) -> Vec<&str> {
        match self {
            Outcome::StatusCode { label, grpc } => std::iter::once(label)
                .chain(grpc.as_ref())
                .map(String::as_str)
                .collect(),
            Outcome::Classification { label, status, .. } => vec![label, status],
        }
    }

    /// `(success, denied)` for a series' labels.
    fn classify(&self, m: &BTreeMap<String, String>) -> (bool, bool) {
        match self {
            Outcome::StatusCode { label, grpc } => {
                let code = m.get(label).map(String::as_str).unwrap_or("");
                let grpc_failed = grpc
                    .as_ref()
                    .and_then(|g| m.get(g))
                    .is_some_and(|s| !s.is_empty() && s != "0");
                let failed = code.is_empty() || code == "0" || code.starts_with('5') || grpc_failed;
                (!failed, !failed && code == "403")
            }
            Outcome::Classification {
                label,
                success,
                status,
            } => {
                let ok = m.get(label) == Some(success);
                (ok, ok && m.get(status).map(String::as_str) == Some("403"))
            }
        }
    }
}

/// One mesh's series and labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromSpec {
    /// The mesh, for error messages (`istio`).
    pub mesh: String,
    /// The request counter (`istio_requests_total`).
    pub requests: String,
    /// The latency histogram's bucket series, in milliseconds
    /// (`istio_request_duration_milliseconds_bucket`).
    pub latency: String,
    /// Label matchers every query carries (`reporter="destination"`), without braces.
    pub selector: String,
    /// The client.
    pub from: PeerLabels,
    /// The server.
    pub to: PeerLabels,
    /// The Service called (in the server's namespace).
    pub service: Option<String>,
    pub outcome: Outcome,
    /// Label values meaning "not known" (Istio's `unknown`): read as absent.
    pub placeholders: Vec<String>,
}

impl PromSpec {
    fn peer_labels(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.from.labels().chain(self.to.labels()).collect();
        v.extend(self.service.as_deref());
        v
    }

    fn query(&self, metric: &str, extra: &[&str], window_s: u64) -> String {
        let mut by = self.peer_labels();
        by.extend(extra);
        format!(
            "sum by ({}) (increase({metric}{{{}}}[{window_s}s]))",
            by.join(", "),
            self.selector
        )
    }

    /// The requests over the last `window_s` seconds, by peers, Service and outcome.
    pub fn requests_query(&self, window_s: u64) -> String {
        self.query(&self.requests, &self.outcome.labels(), window_s)
    }

    /// The latency buckets' increases over the last `window_s` seconds, by peers, Service
    /// and `le`.
    pub fn latency_query(&self, window_s: u64) -> String {
        self.query(&self.latency, &["le"], window_s)
    }

    fn value<'a>(&self, m: &'a BTreeMap<String, String>, label: &str) -> Option<&'a str> {
        m.get(label)
            .map(String::as_str)
            .filter(|v| !v.is_empty() && !self.placeholders.iter().any(|p| p == v))
    }

    fn peer(&self, l: &PeerLabels, m: &BTreeMap<String, String>) -> Option<Peer> {
        let namespace = self.value(m, &l.namespace)?;
        let owner = l.workloads.iter().find_map(|(label, kind)| {
            self.value(m, label).map(|name| Owner {
                kind: kind.clone(),
                name: name.to_string(),
            })
        });
        Some(Peer {
            namespace: namespace.to_string(),
            pod: l
                .pod
                .as_deref()
                .and_then(|p| self.value(m, p))
                .map(String::from),
            owner,
        })
    }

    fn key(&self, m: &BTreeMap<String, String>) -> Option<(Peer, Peer, Option<String>)> {
        Some((
            self.peer(&self.from, m)?,
            self.peer(&self.to, m)?,
            self.service
                .as_deref()
                .and_then(|s| self.value(m, s))
                .map(String::from),
        ))
    }

    /// Reads the answers to [`requests_query`](Self::requests_query) and
    /// [`latency_query`](Self::latency_query) (the query API's JSON bodies) into one sample
    /// per edge, and the newest evaluation time in the answers (Unix seconds).
    pub fn samples(
        &self,
        requests: &[u8],
        latency: &[u8],
    ) -> Result<(Vec<EdgeSample>, Option<f64>), String> {
        let requests =
            vector(requests).map_err(|e| format!("{} requests query: {e}", self.mesh))?;
        let latency = vector(latency).map_err(|e| format!("{} latency query: {e}", self.mesh))?;
        let newest = requests
            .iter()
            .chain(&latency)
            .map(|s| s.time)
            .reduce(f64::max);
        type Key = (Peer, Peer, Option<String>);
        let mut edges: BTreeMap<Key, EdgeSample> = BTreeMap::new();
        let mut buckets: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
        for s in requests {
            let Some(k) = self.key(&s.metric) else {
                continue;
            };
            let e = edges.entry(k.clone()).or_insert_with(|| EdgeSample {
                from: k.0,
                to: k.1,
                service: k.2,
                ..EdgeSample::default()
            });
            match self.outcome.classify(&s.metric) {
                (true, denied) => {
                    e.success += s.value;
                    if denied {
                        e.denied += s.value;
                    }
                }
                (false, _) => e.failure += s.value,
            }
        }
        for s in latency {
            let Some(k) = self.key(&s.metric) else {
                continue;
            };
            let le = s
                .metric
                .get("le")
                .ok_or_else(|| format!("{} latency query: a series without `le`", self.mesh))?;
            let le = parse_float(le).ok_or_else(|| {
                format!("{} latency query: `le` is not a number: {le:?}", self.mesh)
            })?;
            buckets.entry(k).or_default().push((le, s.value));
        }
        for (k, mut b) in buckets {
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            // Several series with the same peers and bound (`sum by` merged them already;
            // this only guards against a duplicated answer) add up.
            let mut merged: Vec<(f64, f64)> = Vec::with_capacity(b.len());
            for (le, c) in b {
                match merged.last_mut() {
                    Some(last) if last.0 == le => last.1 += c,
                    _ => merged.push((le, c)),
                }
            }
            if merged.last().is_none_or(|b| b.0 != f64::INFINITY) {
                return Err(format!(
                    "{} latency query: the histogram of {} → {} has no `+Inf` bucket",
                    self.mesh,
                    k.0.display(),
                    k.1.display()
                ));
            }
            // Counts are increases of cumulative buckets; extrapolation keeps them monotonic,
            // rounding may not: force it.
            let mut max = 0.0f64;
            for b in &mut merged {
                max = max.max(b.1);
                b.1 = max;
            }
            let e = edges.entry(k.clone()).or_insert_with(|| EdgeSample {
                from: k.0,
                to: k.1,
                service: k.2,
                ..EdgeSample::default()
            });
            e.latency = Histogram { buckets: merged };
        }
        Ok((edges.into_values().collect(), newest))
    }
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub metric: BTreeMap<String, String>,
    /// Evaluation time, Unix seconds.
    pub time: f64,
    pub value: f64,
}

/// `+Inf`, `-Inf`, `NaN` and decimal numbers, as Prometheus writes them.
fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse::<f64>().ok(),
    }
}

/// Reads a query-API answer that must be an instant vector. Samples whose value is not a
/// finite number (`NaN` from a division, say) are dropped.
pub fn vector(body: &[u8]) -> Result<Vec<Series>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
        format!("not a Prometheus query answer ({e}): {text:?}")
    })?;
    match v.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            return Err(format!(
                "Prometheus answered an error: {}: {}",
                v.get("errorType").and_then(Value::as_str).unwrap_or("?"),
                v.get("error").and_then(Value::as_str).unwrap_or("?")
            ));
        }
        other => return Err(format!("no `status: success` in the answer ({other:?})")),
    }
    let data = v.get("data").ok_or("no `data` in the answer")?;
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {}
        other => {
            return Err(format!(
                "expected an instant vector, got resultType {other:?}"
            ));
        }
    }
    let result = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or("`data.result` is not a list")?;
    let mut out = Vec::with_capacity(result.len());
    for (i, r) in result.iter().enumerate() {
        let metric = r
            .get("metric")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("result {i}: no `metric` object"))?
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| format!("result {i}: label {k} is not a string"))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let pair = r
            .get("value")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| format!("result {i}: `value` is not [time, \"number\"]"))?;
        let time = pair[0]
            .as_f64()
            .ok_or_else(|| format!("result {i}: the time {} is not a number", pair[0]))?;
        let value = pair[1]
            .as_str()
            .and_then(parse_float)
            .ok_or_else(|| format!("result {i}: the value {} is not a number string", pair[1]))?;
        if value.is_finite() {
            out.push(Series {
                metric,
                time,
                value,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PromSpec {
        PromSpec {
            mesh: "test".into(),
            requests: "req_total".into(),
            latency: "lat_ms_bucket".into(),
            selector: r#"reporter="destination""#.into(),
            from: PeerLabels {
                namespace: "src_ns".into(),
                pod: None,
                workloads: vec![("src_wl".into(), "Deployment".into())],
            },
            to: PeerLabels {
                namespace: "dst_ns".into(),
                pod: Some("pod".into()),
                workloads: vec![
                    ("dst_deploy".into(), "Deployment".into()),
                    ("dst_sts".into(), "StatefulSet".into()),
                ],
            },
            service: Some("svc".into()),
            outcome: Outcome::StatusCode {
                label: "code".into(),
                grpc: Some("grpc".into()),
            },
            placeholders: vec!["unknown".into()],
        }
    }

    fn answer(result: &str) -> Vec<u8> {
        format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{result}]}}}}"#)
            .into_bytes()
    }

    #[test]
    fn queries_sum_increases_by_peer_and_outcome_labels() {
        let s = spec();
        assert_eq!(
            s.requests_query(30),
            r#"sum by (src_ns, src_wl, dst_ns, pod, dst_deploy, dst_sts, svc, code, grpc) (increase(req_total{reporter="destination"}[30s]))"#
        );
        assert_eq!(
            s.latency_query(60),
            r#"sum by (src_ns, src_wl, dst_ns, pod, dst_deploy, dst_sts, svc, le) (increase(lat_ms_bucket{reporter="destination"}[60s]))"#
        );
    }

    #[test]
    fn answers_become_edges() {
        let s = spec();
        let peers = r#""src_ns":"a","src_wl":"front","dst_ns":"b","pod":"web-1","dst_sts":"web","svc":"web""#;
        let req = answer(&format!(
            r#"{{"metric":{{{peers},"code":"200"}},"value":[100.5,"10"]}},
               {{"metric":{{{peers},"code":"403"}},"value":[100.5,"2.5"]}},
               {{"metric":{{{peers},"code":"503"}},"value":[100.5,"3"]}},
               {{"metric":{{{peers},"code":"0"}},"value":[100.5,"1"]}},
               {{"metric":{{"src_ns":"unknown","dst_ns":"b","code":"200"}},"value":[100.5,"4"]}},
               {{"metric":{{"src_ns":"a","code":"200"}},"value":[100.5,"9"]}},
               {{"metric":{{{peers},"code":"500"}},"value":[100.5,"NaN"]}},
               {{"metric":{{{peers},"code":"200","grpc":"0"}},"value":[100.5,"6"]}},
               {{"metric":{{{peers},"code":"200","grpc":""}},"value":[100.5,"1"]}},
               {{"metric":{{{peers},"code":"200","grpc":"14"}},"value":[100.5,"2"]}}"#
        ));
        let lat = answer(&format!(
            r#"{{"metric":{{{peers},"le":"+Inf"}},"value":[101,"16.5"]}},
               {{"metric":{{{peers},"le":"5"}},"value":[101,"10"]}},
               {{"metric":{{{peers},"le":"10"}},"value":[101,"9.99"]}}"#
        ));
        let (edges, newest) = s.samples(&req, &lat).unwrap();
        assert_eq!(newest, Some(101.0));
        // `unknown` namespaces and series without the destination namespace are no edge.
        assert_eq!(edges.len(), 1, "{edges:?}");
        let e = &edges[0];
        assert_eq!(
            e.from,
            Peer::workload("a", "Deployment", "front"),
            "source workload"
        );
        assert_eq!(
            e.to,
            Peer::pod(
                "b",
                "web-1",
                Some(Owner {
                    kind: "StatefulSet".into(),
                    name: "web".into()
                })
            )
        );
        assert_eq!(e.service.as_deref(), Some("web"));
        // gRPC: status 0 (or none) is a success, any other a failure, whatever the HTTP code.
        assert_eq!((e.success, e.failure, e.denied), (19.5, 6.0, 2.5));
        // Sorted by bound, kept monotonic.
        assert_eq!(
            e.latency.buckets,
            vec![(5.0, 10.0), (10.0, 10.0), (f64::INFINITY, 16.5)]
        );
    }

    #[test]
    fn classification_decides_success_for_linkerd_style_labels() {
        let mut s = spec();
        s.outcome = Outcome::Classification {
            label: "classification".into(),
            success: "success".into(),
            status: "status_code".into(),
        };
        let p = r#""src_ns":"a","dst_ns":"b""#;
        let req = answer(&format!(
            r#"{{"metric":{{{p},"classification":"success","status_code":"403"}},"value":[1,"2"]}},
               {{"metric":{{{p},"classification":"success","status_code":"200"}},"value":[1,"5"]}},
               {{"metric":{{{p},"classification":"failure","status_code":"200"}},"value":[1,"1"]}},
               {{"metric":{{{p},"classification":"failure"}},"value":[1,"1"]}}"#
        ));
        let (edges, _) = s.samples(&req, &answer("")).unwrap();
        assert_eq!(
            (edges[0].success, edges[0].failure, edges[0].denied),
            (7.0, 2.0, 2.0)
        );
        assert_eq!(
            edges[0].from,
            Peer {
                namespace: "a".into(),
                pod: None,
                owner: None
            }
        );
        assert!(edges[0].latency.buckets.is_empty());
    }

    #[test]
    fn bad_answers_are_clear_errors() {
        let s = spec();
        let ok = answer("");
        for (body, want) in [
            (&b"<html>"[..], "not a Prometheus query answer"),
            (
                br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
                "bad_data: parse error at char 3",
            ),
            (br#"{"status":"success"}"#, "no `data`"),
            (
                br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                "resultType Some(\"matrix\")",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}}"#,
                "result 0: `value` is not [time",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
                "result 0: the value \"x\" is not a number",
            ),
            (
                br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]}]}}"#,
                "result 0: no `metric`",
            ),
        ] {
            let err = s.samples(body, &ok).unwrap_err();
            assert!(err.starts_with("test requests query: "), "{err}");
            assert!(err.contains(want), "{err} lacks {want}");
        }
        let p = r#""src_ns":"a","dst_ns":"b""#;
        let no_inf = answer(&format!(r#"{{"metric":{{{p},"le":"5"}},"value":[1,"1"]}}"#));
        let err = s.samples(&ok, &no_inf).unwrap_err();
        assert!(err.contains("a → b has no `+Inf` bucket"), "{err}");
        let bad_le = answer(&format!(
            r#"{{"metric":{{{p},"le":"five"}},"value":[1,"1"]}}"#
        ));
        let err = s.samples(&ok, &bad_le).unwrap_err();
        assert!(err.contains("`le` is not a number: \"five\""), "{err}");
        let no_le = answer(&format!(r#"{{"metric":{{{p}}},"value":[1,"1"]}}"#));
        assert!(s.samples(&ok, &no_le).unwrap_err().contains("without `le`"));
    }
}
