//! The Prometheus path against a real Prometheus (Debian's `prometheus`, `/usr/bin/prometheus`
//! or `$MESHBRIDGE_PROMETHEUS`): Prometheus scrapes recorded Istio and Linkerd metrics
//! (`tests/fixtures/*.prom`, each mesh's exposition format, one section per pod and phase)
//! from a small HTTP server, and the TrafficMetrics API answered through [`Prometheus`] must
//! report the counts and latencies the fixtures imply.
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
use meshbridge_metrics::http;
use meshbridge_metrics::prometheus::Prometheus;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCRAPES: usize = 6;
const FACTOR: f64 = SCRAPES as f64 / (SCRAPES - 1) as f64;
const WINDOW_S: u64 = 60;

/// One scraped pod: the labels the scrape adds and its two phases.
struct Target {
    labels: Vec<(String, String)>,
    phases: [String; 2],
}

fn fixture(name: &str) -> Vec<Target> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut targets: Vec<Target> = vec![];
    let mut current: Option<usize> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# target: ") {
            let mut labels: Vec<(String, String)> = rest
                .split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("k=v");
                    (k.to_string(), v.to_string())
                })
                .collect();
            let phase: usize = labels
                .iter()
                .position(|(k, _)| k == "phase")
                .map(|i| labels.remove(i).1.parse().expect("phase"))
                .expect("a phase");
            let i = match targets.iter().position(|t| t.labels == labels) {
                Some(i) => i,
                None => {
                    targets.push(Target {
                        labels,
                        phases: Default::default(),
                    });
                    targets.len() - 1
                }
            };
            current = Some(i * 2 + phase - 1);
        } else if let Some(c) = current {
            let body = &mut targets[c / 2].phases[c % 2];
            body.push_str(line);
            body.push('\n');
        }
    }
    assert!(
        targets
            .iter()
            .all(|t| t.phases.iter().all(|p| !p.is_empty())),
        "{name}: every target needs both phases"
    );
    targets
}

/// Serves target `i` at `/t/i`: phase 1, then phase 2, then nothing, by scrape count.
async fn serve(targets: Arc<Vec<Target>>, scrapes: Arc<Vec<AtomicUsize>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (targets, scrapes) = (targets.clone(), scrapes.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let i = path
                    .strip_prefix("/t/")
                    .and_then(|i| i.parse::<usize>().ok());
                let (status, body) = match i.filter(|i| *i < targets.len()) {
                    Some(i) => {
                        let n = scrapes[i].fetch_add(1, Ordering::SeqCst) + 1;
                        let body = match n {
                            1..=3 => targets[i].phases[0].clone(),
                            4..=SCRAPES => targets[i].phases[1].clone(),
                            _ => String::new(),
                        };
                        ("200 OK", body)
                    }
                    None => ("404 Not Found", String::new()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

/// A running Prometheus and its temp directory: killed and removed when dropped (also when
/// the test fails).
struct PromGuard {
    child: Child,
    dir: PathBuf,
}

impl Drop for PromGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PromGuard {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

fn prometheus_binary() -> PathBuf {
    let bin = std::env::var_os("MESHBRIDGE_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        bin.is_file(),
        "Prometheus not found at {bin:?}: install Debian's package (`apt-get install -y prometheus`) or set MESHBRIDGE_PROMETHEUS"
    );
    bin
}

fn start_prometheus(mesh: &str, metrics_port: u16, targets: &[Target]) -> (PromGuard, String) {
    let bin = prometheus_binary();
    let dir = std::env::temp_dir().join(format!(
        "meshbridge-prom-{mesh}-{}-{}",
        std::process::id(),
        meshbridge_metrics::now_ms()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: mesh\n    static_configs:\n",
    );
    for (i, t) in targets.iter().enumerate() {
        config.push_str(&format!(
            "      - targets: ['127.0.0.1:{metrics_port}']\n        labels:\n          __metrics_path__: '/t/{i}'\n"
        ));
        for (k, v) in &t.labels {
            config.push_str(&format!("          {k}: '{v}'\n"));
        }
    }
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(&bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin:?}: {e}"));
    (PromGuard { child, dir }, format!("http://127.0.0.1:{port}"))
}

async fn query(base: &str, promql: &str) -> Result<Vec<Value>, String> {
    let url = format!("{base}/api/v1/query?query={}", http::encode(promql));
    let body = http::get(&url, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Runs Prometheus over `fixture` until every pod was scraped past its phases, and returns
/// the window [`Prometheus`] answers.
async fn observe(mesh: &str, file: &str, spec: PromSpec) -> meshbridge_core::metrics::Window {
    let targets = Arc::new(fixture(file));
    let scrapes: Arc<Vec<AtomicUsize>> =
        Arc::new(targets.iter().map(|_| AtomicUsize::new(0)).collect());
    let metrics_port = serve(targets.clone(), scrapes.clone()).await;
    let (mut guard, base) = start_prometheus(mesh, metrics_port, &targets);
    let deadline = Instant::now() + Duration::from_secs(40);
    // Two scrapes after the last real sample: the series are stale and the last sample is
    // more than 1.1 intervals old.
    while scrapes
        .iter()
        .any(|s| s.load(Ordering::SeqCst) < SCRAPES + 2)
    {
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!("Prometheus exited ({status}):\n{}", guard.log());
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape every target {} times in 40 s (scrapes: {:?}):\n{}",
            SCRAPES + 2,
            scrapes
                .iter()
                .map(|s| s.load(Ordering::SeqCst))
                .collect::<Vec<_>>(),
            guard.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every series has exactly SCRAPES samples in the window (what FACTOR rests on).
    let counts = query(
        &base,
        &format!("count_over_time({}[{WINDOW_S}s])", spec.requests),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", guard.log()));
    assert!(
        !counts.is_empty(),
        "no {} in Prometheus:\n{}",
        spec.requests,
        guard.log()
    );
    for c in &counts {
        assert_eq!(
            c["value"][1],
            SCRAPES.to_string(),
            "samples of {}",
            c["metric"]
        );
    }
    let p = Prometheus::new(&base, spec, WINDOW_S);
    let w = p
        .window()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", guard.log()));
    drop(guard);
    w
}

fn metric(doc: &Value, name: &str) -> String {
    doc["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .and_then(|m| m["value"].as_str())
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
        .to_string()
}

/// `(success_count, failure_count)` with the expected true increases scaled by FACTOR.
fn counts(doc: &Value) -> (String, String) {
    (metric(doc, "success_count"), metric(doc, "failure_count"))
}

fn expect(success: f64, failure: f64) -> (String, String) {
    let q = |n: f64| format!("{}", (n * FACTOR).round() as u64);
    (q(success), q(failure))
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
    assert_eq!(counts(db), expect(20.0, 0.0));

    // Destination pods come from the scrape's `pod` label; client pods are not known.
    assert_eq!(
        by_name(&get(&w, "pods")),
        vec![
            ("db-0".into(), expect(20.0, 0.0)),
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
