//! Traffic metrics, mesh-neutral: what was observed between two peers over a window, and the
//! rules every backend's numbers go through — windowing of cumulative counters, latency
//! quantiles from histogram buckets, aggregation to SMI resources ([`api`]) and the
//! dashboard's view ([`dashboard`]).
//!
//! Backends differ only in where the numbers come from: the built-in mesh's sidecars report
//! cumulative counters ([`Recorder`] turns them into a [`Window`]); Istio's and Linkerd's
//! Prometheus answers windowed increases directly. Either way the result is a list of
//! [`EdgeSample`]s, and everything after that is the same code.
//!
//! Pure: the caller passes the clock (`now_ms`) in.

pub mod api;
pub mod dashboard;
pub mod prom;

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// The window of every TrafficMetrics answer unless the caller asks for another.
pub const DEFAULT_WINDOW_S: u64 = 30;

/// The workload a pod belongs to (`Deployment`, `DaemonSet`, `StatefulSet`, `ReplicaSet`,
/// `Job`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

/// One end of an edge: a namespace, and where known the pod and its workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Peer {
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

impl Peer {
    pub fn pod(namespace: &str, pod: &str, owner: Option<Owner>) -> Peer {
        Peer {
            namespace: namespace.into(),
            pod: Some(pod.into()),
            owner,
        }
    }

    /// A workload seen without its pod (Istio's `destination_workload`).
    pub fn workload(namespace: &str, kind: &str, name: &str) -> Peer {
        Peer {
            namespace: namespace.into(),
            pod: None,
            owner: Some(Owner {
                kind: kind.into(),
                name: name.into(),
            }),
        }
    }

    /// The name shown for it: the workload's, else the pod's, else the namespace.
    pub fn display(&self) -> String {
        match (&self.owner, &self.pod) {
            (Some(o), _) => format!("{}/{}", self.namespace, o.name),
            (None, Some(p)) => format!("{}/{p}", self.namespace),
            (None, None) => self.namespace.clone(),
        }
    }
}

/// A latency histogram: `(upper bound in ms, cumulative count)`, bounds ascending, the last
/// `f64::INFINITY` (Prometheus `le` buckets and Envoy's cumulative buckets have this shape).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
}

impl Histogram {
    pub fn count(&self) -> f64 {
        self.buckets.last().map(|b| b.1).unwrap_or(0.0)
    }

    /// Bucket-wise sum; bounds present in only one side are merged in order (a missing
    /// bound on one side counts that side's cumulative value below it).
    pub fn add(&mut self, other: &Histogram) {
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
            return;
        }
        let mut bounds: Vec<f64> = self
            .buckets
            .iter()
            .chain(&other.buckets)
            .map(|b| b.0)
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        self.buckets = bounds
            .into_iter()
            .map(|le| {
                (
                    le,
                    cumulative_at(&self.buckets, le) + cumulative_at(&other.buckets, le),
                )
            })
            .collect();
    }

    /// `self - base`, bucket by bucket (counters since `base`).
    fn minus(&self, base: &Histogram) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, c)| (le, (c - cumulative_at(&base.buckets, le)).max(0.0)))
                .collect(),
        }
    }

    /// The `q` quantile (0..=1) in ms, interpolated linearly inside the bucket it falls in
    /// (Prometheus `histogram_quantile`): `None` with no observations; the highest finite
    /// bound when it falls in the `+Inf` bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 || self.buckets.is_empty() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &self.buckets {
            if c >= rank && c > 0.0 {
                if le.is_infinite() {
                    return Some(prev.0);
                }
                let in_bucket = c - prev.1;
                if in_bucket <= 0.0 {
                    return Some(le);
                }
                return Some(prev.0 + (le - prev.0) * ((rank - prev.1) / in_bucket));
            }
            prev = (le, c);
        }
        Some(prev.0)
    }
}

/// The cumulative count at `le`: the value of the largest bound ≤ `le`.
fn cumulative_at(buckets: &[(f64, f64)], le: f64) -> f64 {
    buckets
        .iter()
        .take_while(|b| b.0 <= le)
        .last()
        .map(|b| b.1)
        .unwrap_or(0.0)
}

/// Requests from one peer to another (through one destination Service where known), over a
/// window or — from a [`Recorder`]'s input — since the reporter started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EdgeSample {
    pub from: Peer,
    pub to: Peer,
    /// The Service called, in `to.namespace` (a TrafficSplit's backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Responses that are not 5xx (SMI: success).
    pub success: f64,
    /// 5xx responses and requests that got no response.
    pub failure: f64,
    /// Of `success`: requests the destination's access policy refused (403).
    pub denied: f64,
    pub latency: Histogram,
    /// Refused by the caller's own proxy (it may reach no pod of the Service): the
    /// destination never saw these requests, so they count for the caller's edges only, not
    /// for what `to` served.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused_by_caller: bool,
}

type EdgeKey = (Peer, Peer, Option<String>, bool);

impl EdgeSample {
    fn key(&self) -> EdgeKey {
        (
            self.from.clone(),
            self.to.clone(),
            self.service.clone(),
            self.refused_by_caller,
        )
    }

    pub fn requests(&self) -> f64 {
        self.success + self.failure
    }

    /// Adds `other`'s counts and buckets to this one's.
    pub fn add(&mut self, other: &EdgeSample) {
        self.success += other.success;
        self.failure += other.failure;
        self.denied += other.denied;
        self.latency.add(&other.latency);
    }

    fn minus(&self, base: &EdgeSample) -> EdgeSample {
        EdgeSample {
            from: self.from.clone(),
            to: self.to.clone(),
            service: self.service.clone(),
            success: (self.success - base.success).max(0.0),
            failure: (self.failure - base.failure).max(0.0),
            denied: (self.denied - base.denied).max(0.0),
            latency: self.latency.minus(&base.latency),
            refused_by_caller: self.refused_by_caller,
        }
    }
}

/// What was observed over one window, and every pod known to exist (so that a workload
/// without traffic is listed too, with zero counts).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Window {
    /// RFC 3339 time of the newest sample.
    pub timestamp: String,
    pub seconds: u64,
    pub edges: Vec<EdgeSample>,
    pub inventory: Vec<Peer>,
}

/// Keeps each reporter's cumulative samples over time and answers windows from them (what
/// Prometheus' `increase()` does for the Prometheus backends). A reporter that restarted
/// (counters went down) counts from zero again.
#[derive(Debug)]
pub struct Recorder {
    keep_ms: u64,
    history: BTreeMap<String, VecDeque<(u64, Vec<EdgeSample>)>>,
}

impl Recorder {
    /// Keeps samples for `keep_ms` (the longest window it will be asked for).
    pub fn new(keep_ms: u64) -> Recorder {
        Recorder {
            keep_ms,
            history: BTreeMap::new(),
        }
    }

    /// Records `reporter`'s cumulative samples at `now_ms`.
    pub fn record(&mut self, reporter: &str, now_ms: u64, samples: Vec<EdgeSample>) {
        let h = self.history.entry(reporter.to_string()).or_default();
        h.push_back((now_ms, samples));
        // Keep one sample older than the window (the baseline of the longest window).
        while h.len() > 2 && h[1].0 + self.keep_ms < now_ms {
            h.pop_front();
        }
    }

    /// Forgets reporters not in `alive` (pods that are gone).
    pub fn retain(&mut self, alive: impl Fn(&str) -> bool) {
        self.history.retain(|k, _| alive(k));
    }

    /// Every edge's increase over the `window_ms` before `now_ms`: its newest sample minus the
    /// newest one at least `window_ms` old (none yet: everything since the reporter
    /// started). An edge whose counters vanished within the window (Envoy drops the
    /// statistics of a cluster or virtual host the configuration no longer has) keeps the
    /// increase it had until its last sample.
    pub fn window(&self, now_ms: u64) -> Vec<EdgeSample> {
        self.window_of(now_ms, self.keep_ms)
    }

    pub fn window_of(&self, now_ms: u64, window_ms: u64) -> Vec<EdgeSample> {
        let start = now_ms.saturating_sub(window_ms);
        let mut out: BTreeMap<EdgeKey, EdgeSample> = BTreeMap::new();
        for h in self.history.values() {
            // Each edge's newest sample: the latest reading, then those of the window.
            let mut latest: BTreeMap<EdgeKey, &EdgeSample> = BTreeMap::new();
            for (i, (t, samples)) in h.iter().rev().enumerate() {
                if i > 0 && *t <= start {
                    break;
                }
                for e in samples {
                    latest.entry(e.key()).or_insert(e);
                }
            }
            let base: BTreeMap<EdgeKey, &EdgeSample> = h
                .iter()
                .rev()
                .find(|(t, _)| *t <= start)
                .map(|(_, s)| s.iter().map(|e| (e.key(), e)).collect())
                .unwrap_or_default();
            for e in latest.into_values() {
                let d = match base.get(&e.key()) {
                    // A restarted reporter: its counters start again from zero.
                    Some(b) if e.requests() >= b.requests() => e.minus(b),
                    _ => e.clone(),
                };
                out.entry(e.key()).and_modify(|x| x.add(&d)).or_insert(d);
            }
        }
        out.into_values().collect()
    }
}

/// Unix milliseconds → RFC 3339 (`2019-04-08T22:25:55Z`).
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: &[(f64, f64)]) -> Histogram {
        Histogram {
            buckets: b.to_vec(),
        }
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        // 10 requests ≤ 5 ms, 10 more ≤ 10 ms.
        let x = h(&[(1.0, 0.0), (5.0, 10.0), (10.0, 20.0), (f64::INFINITY, 20.0)]);
        assert_eq!(x.quantile(0.5), Some(5.0));
        assert_eq!(x.quantile(0.25), Some(3.0));
        assert_eq!(x.quantile(0.99), Some(9.9));
        assert_eq!(h(&[(1.0, 0.0), (f64::INFINITY, 0.0)]).quantile(0.5), None);
        // Beyond the last finite bound: that bound.
        assert_eq!(
            h(&[(1.0, 0.0), (f64::INFINITY, 4.0)]).quantile(0.5),
            Some(1.0)
        );
    }

    #[test]
    fn histograms_add_across_bounds() {
        let mut a = h(&[(1.0, 1.0), (f64::INFINITY, 2.0)]);
        a.add(&h(&[(5.0, 3.0), (f64::INFINITY, 3.0)]));
        assert_eq!(
            a.buckets,
            vec![(1.0, 1.0), (5.0, 4.0), (f64::INFINITY, 5.0)]
        );
    }

    fn sample(success: f64) -> EdgeSample {
        EdgeSample {
            from: Peer::pod("ns", "a-0", None),
            to: Peer::pod("ns", "b-0", None),
            service: Some("b".into()),
            success,
            failure: 1.0,
            denied: 0.0,
            latency: h(&[(5.0, success), (f64::INFINITY, success + 1.0)]),
            refused_by_caller: false,
        }
    }

    #[test]
    fn windows_are_increases_and_survive_restarts() {
        let mut r = Recorder::new(30_000);
        r.record("ns/a-0", 1_000, vec![sample(10.0)]);
        // Younger than the window: everything since the start.
        assert_eq!(r.window(2_000)[0].success, 10.0);
        r.record("ns/a-0", 40_000, vec![sample(25.0)]);
        let w = r.window(40_000);
        assert_eq!((w[0].success, w[0].failure), (15.0, 0.0));
        assert_eq!(w[0].latency.count(), 15.0);
        // The reporter restarted: its counters count from zero again.
        r.record("ns/a-0", 80_000, vec![sample(3.0)]);
        assert_eq!(r.window(80_000)[0].success, 3.0);
        r.retain(|_| false);
        assert!(r.window(80_000).is_empty());
    }

    #[test]
    fn an_edge_whose_counters_vanish_keeps_its_increase_for_the_window() {
        let mut r = Recorder::new(30_000);
        r.record("ns/a-0", 0, vec![sample(10.0)]);
        r.record("ns/a-0", 10_000, vec![sample(15.0)]);
        // The cluster is gone from the configuration, and with it its statistics.
        r.record("ns/a-0", 20_000, vec![]);
        let w = r.window(30_000);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].success, 5.0);
        // Once the window no longer holds its last sample, it is gone.
        r.record("ns/a-0", 45_000, vec![]);
        assert!(r.window(45_000).is_empty());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(1_554_762_355_000), "2019-04-08T22:25:55Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
