//! The Prometheus path against a real Prometheus (Debian's `prometheus`, `/usr/bin/prometheus`
//! or `$MESHBRIDGE_PROMETHEUS`): Prometheus scrapes recorded Istio and Linkerd metrics
//! (`tests/fixtures/*.prom`, each mesh's exposition format, one section per pod and phase)
//! from a small HTTP server (the harness is `meshbridge_test_support::prometheus`), and the
//! TrafficMetrics API answered through [`Prometheus`] must report the counts and latencies the
//! fixtures imply.
//!
//! Exact counts: each pod's server hands Prometheus phase 1 on scrapes 1–3, phase 2 on
//! scrapes 4–6 and nothing from scrape 7 on (the pod is gone: Prometheus marks its series
//! stale). The 60 s window then holds exactly n = 6 samples of every series, and begins before
//! the first and ends more than 1.1 scrape intervals after the last, so `increase()`
//! extrapolates by half the average sample interval on both sides: it answers
//! `Δ · (S + S/(n-1)) / S = Δ · 6/5` for a true increase Δ, whatever the scrape timing. The
//! test checks that Prometheus holds 6 samples per series, then expects 1.2 × each phase-2
//! increase (the deltas are multiples of 5, so the counts are whole). Quantiles do not change
//! under a common factor: they are checked exactly against the fixture's observations.

use meshbridge_core::metrics::api::answer;
use meshbridge_core::metrics::prom::PromSpec;
use meshbridge_metrics::Numbers;
use meshbridge_metrics::prometheus::Prometheus;
use meshbridge_test_support::prometheus::{
    self as recorded, Exposition, FACTOR, counts, expect, metric,
};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const WINDOW_S: u64 = 60;

/// Runs Prometheus over `fixture` until every pod was scraped past its phases, and returns
/// the window [`Prometheus`] answers.
async fn observe(mesh: &str, file: &str, spec: PromSpec) -> meshbridge_core::metrics::Window {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let exposition = Exposition::serve(recorded::fixture(path)).await;
    let mut prom = recorded::Prometheus::start(mesh, &exposition);
    prom.wait_scraped(&exposition, Duration::from_secs(40))
        .await;
    // Every series has exactly SCRAPES samples in the window (what FACTOR rests on).
    prom.assert_samples(&spec.requests, WINDOW_S).await;
    let p = Prometheus::new(prom.url(), spec, WINDOW_S);
    let w = p
        .window()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", prom.log()));
    assert!(
        exposition.valid_for(WINDOW_S),
        "the {WINDOW_S}s window no longer holds every sample"
    );
    w
}

fn get(w: &meshbridge_core::metrics::Window, path: &str) -> Value {
    answer(path, w).unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

/// The item of an edges list whose edge has `direction` and peer `name`.
fn edge<'a>(list: &'a Value, direction: &str, name: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["edge"]["direction"] == direction && i["edge"]["resource"]["name"] == name)
        .unwrap_or_else(|| panic!("no {direction} {name} edge in {list}"))
}

/// `name → (success, failure)` of a list.
fn by_name(list: &Value) -> Vec<(String, (String, String))> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["metadata"]["name"].as_str().unwrap().to_string(),
                counts(i),
            )
        })
        .collect()
}

const WEB_V1_POD: &str = "web-v1-7c9d8f6b5-k2x4p";
const WEB_V2_POD: &str = "web-v2-5f6d7c8b9-q8r7t";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_metrics_through_a_real_prometheus() {
    let w = observe(
        "istio",
        "istio.prom",
        meshbridge_istio::metrics::prom_spec(),
    )
    .await;
    assert_eq!(w.seconds, WINDOW_S);

    // frontend → web-v1: 40 × 200, 5 × 403, 5 × 503 (reporter=destination). The 10 calls
    // from outside the mesh (source `unknown`) and web-v1's own reporter=source copy of its
    // calls to db are not counted.
    let web = get(&w, "namespaces/shop/deployments/web-v1");
    assert_eq!(counts(&web), expect(45.0, 5.0), "{web}");
    assert_eq!(web["window"], "60s");
    // 5 ≤ 1 ms, 30 in (5, 10], 10 in (10, 25], 5 in (25, 50] (Istio's bounds).
    assert_eq!(metric(&web, "p50_response_latency"), "8333u");
    assert_eq!(metric(&web, "p90_response_latency"), "25m");
    assert_eq!(metric(&web, "p99_response_latency"), "47500u");

    let front = get(&w, "namespaces/shop/deployments/frontend/edges");
    assert_eq!(front["items"].as_array().unwrap().len(), 2, "{front}");
    assert_eq!(counts(edge(&front, "to", "web-v1")), expect(45.0, 5.0));
    let to_v2 = edge(&front, "to", "web-v2");
    assert_eq!(counts(to_v2), expect(10.0, 5.0));
    // 10 in (50, 100], 5 in (100, 250].
    assert_eq!(metric(to_v2, "p50_response_latency"), "87500u");
    assert_eq!(metric(to_v2, "p99_response_latency"), "245500u");
    // Nothing in the mesh calls frontend.
    assert_eq!(
        counts(&get(&w, "namespaces/shop/deployments/frontend")),
        expect(0.0, 0.0)
    );

    let web_edges = get(&w, "namespaces/shop/deployments/web-v1/edges");
    assert_eq!(
        counts(edge(&web_edges, "from", "frontend")),
        expect(45.0, 5.0)
    );
    // db is a StatefulSet, but Istio's labels do not say so: a Deployment.
    let db = edge(&web_edges, "to", "db");
    assert_eq!(db["edge"]["resource"]["kind"], "Deployment");
    assert_eq!(db["edge"]["resource"]["namespace"], "data");
    // 20 HTTP 200s, and 6 gRPC calls answered HTTP 200 with grpc-status 14 (UNAVAILABLE):
    // failures, as Linkerd classifies them.
    assert_eq!(counts(db), expect(20.0, 6.0));

    // Destination pods come from the scrape's `pod` label; client pods are not known.
    assert_eq!(
        by_name(&get(&w, "pods")),
        vec![
            ("db-0".into(), expect(20.0, 6.0)),
            (WEB_V1_POD.into(), expect(45.0, 5.0)),
            (WEB_V2_POD.into(), expect(10.0, 5.0)),
        ]
    );
    assert_eq!(
        by_name(&get(&w, "namespaces")),
        vec![
            ("data".into(), expect(20.0, 6.0)),
            ("shop".into(), expect(55.0, 10.0)),
        ]
    );
    // The 403s are successes, and denied.
    let denied: f64 = w.edges.iter().map(|e| e.denied).sum();
    assert_eq!((denied).round(), (5.0 * FACTOR).round());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkerd_metrics_through_a_real_prometheus() {
    let w = observe(
        "linkerd",
        "linkerd.prom",
        meshbridge_linkerd::metrics::prom_spec(),
    )
    .await;

    // frontend's proxy, outbound to web-v1: 40 × 200, 5 × 403, 5 × 503. Its inbound series
    // and web-v1's call outside the cluster are not edges.
    let web = get(&w, "namespaces/shop/deployments/web-v1");
    assert_eq!(counts(&web), expect(45.0, 5.0), "{web}");
    // 5 ≤ 1 ms, 30 in (5, 10], 10 in (10, 20], 5 in (40, 50] (Linkerd's bounds).
    assert_eq!(metric(&web, "p50_response_latency"), "8333u");
    assert_eq!(metric(&web, "p90_response_latency"), "20m");
    assert_eq!(metric(&web, "p99_response_latency"), "49m");

    let front = get(&w, "namespaces/shop/deployments/frontend/edges");
    assert_eq!(front["items"].as_array().unwrap().len(), 2, "{front}");
    assert_eq!(counts(edge(&front, "to", "web-v1")), expect(45.0, 5.0));
    assert_eq!(counts(edge(&front, "to", "web-v2")), expect(10.0, 5.0));
    assert_eq!(
        counts(&get(&w, "namespaces/shop/deployments/frontend")),
        expect(0.0, 0.0)
    );

    // Linkerd's labels name the kind: db is a StatefulSet.
    let db = get(&w, "namespaces/data/statefulsets/db");
    assert_eq!(counts(&db), expect(20.0, 0.0));
    // 20 × 2 ms: all in (1, 2].
    assert_eq!(metric(&db, "p50_response_latency"), "1500u");
    let web_edges = get(&w, "namespaces/shop/deployments/web-v1/edges");
    assert_eq!(
        web_edges["items"].as_array().unwrap().len(),
        2,
        "{web_edges}"
    );
    assert_eq!(
        counts(edge(&web_edges, "from", "frontend")),
        expect(45.0, 5.0)
    );
    // A peer of another kind is shown as its pod.
    let to_db = edge(&web_edges, "to", "db-0");
    assert_eq!(to_db["edge"]["resource"]["kind"], "Pod");
    assert_eq!(counts(to_db), expect(20.0, 0.0));

    // Both ends' pods are known.
    assert_eq!(
        by_name(&get(&w, "pods")),
        vec![
            ("db-0".into(), expect(20.0, 0.0)),
            ("frontend-6b8f9d7c4-t5wzx".into(), expect(0.0, 0.0)),
            (WEB_V1_POD.into(), expect(45.0, 5.0)),
            (WEB_V2_POD.into(), expect(10.0, 5.0)),
        ]
    );
    assert_eq!(
        by_name(&get(&w, "namespaces")),
        vec![
            ("data".into(), expect(20.0, 0.0)),
            ("shop".into(), expect(55.0, 10.0)),
        ]
    );
    let denied: f64 = w.edges.iter().map(|e| e.denied).sum();
    assert_eq!(denied.round(), (5.0 * FACTOR).round());
}
