//! The TrafficMetrics API of `meshbridge local`, through real Envoy traffic: the counts are the
//! requests this test sent (per backend pod, as the echo servers say who answered), the
//! latencies fall in the Envoy histogram bucket the requests' delay puts them in, 5xx are
//! failures, the window forgets old traffic, and unknown objects are 404 Status documents.

mod local_common;

use local_common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const SVC: &str = "app-svc.demo:9091";

/// GET `path` below the metrics URL `local` printed. Returns (status, document).
fn get(local: &Local, path: &str) -> (u16, Value) {
    let base = local.ui.as_ref().expect("the ui line")["metrics"]
        .as_str()
        .unwrap()
        .to_string();
    let rest = base.strip_prefix("http://").unwrap();
    let (addr, prefix) = rest.split_at(rest.find('/').unwrap());
    let (st, body) = http(addr, "GET", "127.0.0.1", &format!("{prefix}{path}"), &[]);
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (st, v)
}

fn metric(item: &Value, name: &str) -> Option<String> {
    item["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_str().map(str::to_string))
}

fn count(item: &Value, name: &str) -> u64 {
    metric(item, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A latency Quantity in seconds (`10m`, `1500u`) in ms.
fn ms(q: &str) -> f64 {
    if let Some(v) = q.strip_suffix('u') {
        v.parse::<f64>().unwrap() / 1000.0
    } else if let Some(v) = q.strip_suffix('m') {
        v.parse::<f64>().unwrap()
    } else {
        q.parse::<f64>().unwrap() * 1000.0
    }
}

/// Polls `path` until `f` holds (the sidecars are read once a second; histograms reach
/// Envoy's admin interface at each one-second stats flush).
fn until(local: &Local, path: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (st, v) = get(local, path);
        if st == 200 && f(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: never as expected; last answer {st}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn edge_to<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["items"]
        .as_array()?
        .iter()
        .find(|i| i["edge"]["direction"] == "to" && i["edge"]["resource"]["name"] == name)
}

#[test]
fn counts_latencies_failures_and_windows_from_real_envoy_traffic() {
    if envoy_or_skip().is_none() {
        return;
    }
    let local = split_app(
        "metrics",
        52,
        &["--metrics-window", "6", "--scrape-interval-ms", "250"],
    );
    let (st, v) = get(&local, "");
    assert_eq!((st, v["kind"].as_str()), (200, Some("APIResourceList")));

    // 40 requests, each delayed 30 ms: Envoy's bucket (25, 50] ms.
    let tally = local.tally("app-a", SVC, "/?delay_ms=30", &[], 40);
    let (b, c) = (
        tally.get("app-b-deployment-0").copied().unwrap_or(0) as u64,
        tally.get("app-c-deployment-0").copied().unwrap_or(0) as u64,
    );
    assert_eq!(b + c, 40, "every request answered: {tally:?}");
    let edges = until(
        &local,
        "/namespaces/demo/deployments/app-a-deployment/edges",
        |v| {
            let n = |name| {
                edge_to(v, name)
                    .map(|e| count(e, "success_count"))
                    .unwrap_or(0)
            };
            let lat =
                |name| edge_to(v, name).is_none_or(|e| metric(e, "p99_response_latency").is_some());
            n("app-b-deployment") + n("app-c-deployment") == 40
                && lat("app-b-deployment")
                && lat("app-c-deployment")
        },
    );
    for (name, want) in [("app-b-deployment", b), ("app-c-deployment", c)] {
        if want == 0 {
            assert!(edge_to(&edges, name).is_none());
            continue;
        }
        let e = edge_to(&edges, name).unwrap();
        assert_eq!(e["edge"]["side"], "client");
        assert_eq!(count(e, "success_count"), want, "{name}: {e:#}");
        assert_eq!(count(e, "failure_count"), 0);
        let (p50, p90, p99) = (
            ms(&metric(e, "p50_response_latency").unwrap()),
            ms(&metric(e, "p90_response_latency").unwrap()),
            ms(&metric(e, "p99_response_latency").unwrap()),
        );
        assert!(p50 <= p90 && p90 <= p99, "{p50} {p90} {p99}");
        assert!(
            (25.0..=50.0).contains(&p50) && (25.0..=50.0).contains(&p99),
            "{name}: {e:#}"
        );
    }
    // The server side: what app-b served, per pod and for its deployment, from app-a.
    let served = until(
        &local,
        "/namespaces/demo/deployments/app-b-deployment",
        |v| count(v, "success_count") == b,
    );
    assert_eq!(served["edge"]["direction"], "from");
    assert_eq!(served["edge"]["side"], "server");
    let (_, pod) = get(&local, "/namespaces/demo/pods/app-b-deployment-0");
    assert_eq!(count(&pod, "success_count"), b);
    let (_, ns) = get(&local, "/namespaces/demo");
    assert_eq!(count(&ns, "success_count"), 40);
    let (_, list) = get(&local, "/namespaces/demo/deployments");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["resource"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["app-a-deployment", "app-b-deployment", "app-c-deployment"]
    );

    // 5xx answers are failures.
    for _ in 0..7 {
        let (st, _) = local.call("app-a", "GET", SVC, "/?status=503", &[]);
        assert_eq!(st, 503);
    }
    until(&local, "/namespaces/demo", |v| {
        count(v, "failure_count") == 7
    });

    // The window (6 s) forgets traffic older than it.
    std::thread::sleep(Duration::from_secs(7));
    let (_, ns) = get(&local, "/namespaces/demo");
    assert_eq!(
        (count(&ns, "success_count"), count(&ns, "failure_count")),
        (0, 0),
        "{ns:#}"
    );
    assert_eq!(ns["window"], "6s");

    // Unknown objects and kinds: Status documents.
    let (st, v) = get(&local, "/namespaces/demo/deployments/nope");
    assert_eq!(
        (st, v["kind"].as_str(), v["reason"].as_str()),
        (404, Some("Status"), Some("NotFound"))
    );
    let (st, _) = get(&local, "/namespaces/demo/services");
    assert_eq!(st, 404);
}
