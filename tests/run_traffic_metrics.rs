//! `meshbridge run` serves TrafficMetrics for real: the built binary watches a directory of SMI
//! input (a TrafficSplit `web` → `web-v1` 80 / `web-v2` 20 in `shop`, over the workloads of the
//! recorded Istio metrics) with `--backend istio` and `--prometheus-url` pointing at a real
//! Prometheus that scrapes `metrics/tests/fixtures/istio.prom` (the harness of
//! `meshbridge_test_support::prometheus`: exact counts are 6/5 of each true increase).
//!
//! - the aggregated API on `--traffic-metrics-addr` (HTTPS, its self-signed certificate for
//!   `meshbridge-traffic-metrics.meshbridge-system.svc`) answers a client certificate of the
//!   `--traffic-metrics-client-ca` with the counts the fixture implies, 401 without one, and
//!   no answer to a certificate of another CA;
//! - the dashboard on `--ui-addr` serves its page and `/api/dashboard`: the TrafficSplit with
//!   its declared weights beside the split Prometheus observed, and Istio's capability matrix;
//! - `--traffic-metrics-addr` without a CA and without a cluster is a usage error (exit 2);
//! - `--backend gateway-api` has no numbers: the API answers 503 with the reason.
//!
//! Every process and directory is a Drop guard; each test is bounded (Prometheus must have
//! scraped within 40 s, a `run` must say where it serves within 20 s).

use meshbridge_core::{Adapter, Context};
use meshbridge_test_support::pki::{Ca, ca, client_cert};
use meshbridge_test_support::prometheus::{
    self as recorded, Exposition, FACTOR, counts, expect, metric,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `meshbridge run`'s TrafficMetrics window (core's DEFAULT_WINDOW_S).
const WINDOW_S: u64 = meshbridge_core::metrics::DEFAULT_WINDOW_S;
const API: &str = "/apis/metrics.smi-spec.io/v1alpha1";
/// The name in `run`'s self-signed serving certificate: `--traffic-metrics-service` in the
/// controller namespace (both defaults).
const SERVER_NAME: &str = "meshbridge-traffic-metrics.meshbridge-system.svc";

// ---- guards -------------------------------------------------------------------------------

/// A temp directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "meshbridge-run-tm-{what}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `meshbridge run`: killed when dropped; its stderr lines are collected.
struct Run {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::Receiver<String>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The line without ANSI escape sequences (`ESC [ ... letter`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn meshbridge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meshbridge"));
    c.env_remove("RUST_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// The flags every `run` here shares: a directory in and out, nothing of a cluster.
fn run_args(input: &Path, out: &Path, backend: &str) -> Vec<String> {
    [
        "run".to_string(),
        format!("--source=dir:{}", input.display()),
        format!("--output=dir:{}", out.display()),
        format!("--backend={backend}"),
        "--discovery=false".into(),
        "--leader-elect=false".into(),
        "--metrics-addr=off".into(),
        "--poll-ms=200".into(),
    ]
    .into()
}

impl Run {
    fn start(args: &[String]) -> Run {
        let mut child = meshbridge()
            .args(args)
            .spawn()
            .expect("starting meshbridge");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let line = plain(&line);
                l.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Run { child, lines, rx }
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The `addr=` of the first stderr line containing `what` (within 20 s).
    fn serving(&mut self, what: &str) -> String {
        if let Some(a) = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(what))
            .and_then(|l| addr_of(l))
        {
            return a;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if l.contains(what) => {
                    return addr_of(&l).unwrap_or_else(|| panic!("no addr= in {l:?}"));
                }
                Ok(_) => {}
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "meshbridge run did not log {what:?} in 20 s (exit: {status:?}); stderr:\n{}",
                        self.log()
                    );
                }
            }
        }
    }
}

fn addr_of(line: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .map(str::to_string)
}

// ---- the SMI input ------------------------------------------------------------------------

fn deployment(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  selector:\n    matchLabels: {labels}\n  template:\n    metadata:\n      labels: {labels}\n    spec:\n      serviceAccountName: {name}\n      containers:\n      - name: app\n        image: example/app\n        ports:\n        - containerPort: 8080\n"
    )
}

fn service(name: &str, selector: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  selector: {selector}\n  ports:\n  - name: http\n    port: 8080\n    targetPort: 8080\n"
    )
}

/// The workloads of `istio.prom` in `shop` (frontend calls `web`, served by web-v1 and
/// web-v2) and the TrafficSplit of `web`.
fn write_input(dir: &Path) {
    let docs = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n".to_string(),
        deployment("frontend", "{app: frontend}"),
        deployment("web-v1", "{app: web, version: v1}"),
        deployment("web-v2", "{app: web, version: v2}"),
        service("frontend", "{app: frontend}"),
        service("web", "{app: web}"),
        service("web-v1", "{app: web, version: v1}"),
        service("web-v2", "{app: web, version: v2}"),
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata:\n  name: web-split\n  namespace: shop\nspec:\n  service: web\n  backends:\n  - service: web-v1\n    weight: 80\n  - service: web-v2\n    weight: 20\n".to_string(),
    ];
    std::fs::write(dir.join("shop.yaml"), docs.join("---\n")).unwrap();
}

// ---- certificates and HTTP(S) -------------------------------------------------------------

/// Trusts the certificate the server presents as its own root (it is self-signed, as the
/// APIService's `caBundle` would), then verifies it as usual: valid, and for the name asked.
#[derive(Debug)]
struct PinPresented(Arc<CryptoProvider>);

impl ServerCertVerifier for PinPresented {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(end_entity.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.0.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// One `GET path` over `s` (HTTP/1.1, `Connection: close`; the servers answer with a
/// content-length).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    host: &str,
    path: &str,
) -> Result<Answer, String> {
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    // A TLS peer may close without close_notify: what was read is the answer.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))?;
    let len = header(head, "content-length").and_then(|v| v.parse::<usize>().ok());
    if len != Some(body.len()) {
        return Err(format!(
            "a cut answer to {path} (content-length {len:?}): {text:?}"
        ));
    }
    Ok(Answer {
        status,
        content_type: header(head, "content-type").unwrap_or_default(),
        body: body.to_string(),
    })
}

/// `GET path` at `addr` over HTTPS (client certificate `client`, if any).
async fn https_get(
    addr: &str,
    client: Option<&(String, String)>,
    path: &str,
) -> Result<Answer, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinPresented(provider)));
    let cfg = match client {
        Some((c, k)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await
        .map_err(|e| format!("TLS to {addr}: {e}"))?;
    exchange(tls, SERVER_NAME, path).await
}

/// `GET path` at `addr` over plain HTTP.
async fn http_get(addr: &str, path: &str) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    exchange(tcp, addr, path)
        .await
        .unwrap_or_else(|e| panic!("{addr}{path}: {e}"))
}

// ---- the Istio setup ----------------------------------------------------------------------

/// Prometheus over the Istio fixture, scraped past its phases, and `meshbridge run` reading
/// it. Fields drop in reverse order of need: the run first, then Prometheus, the server, the
/// directories.
struct Istio {
    run: Run,
    prom: recorded::Prometheus,
    exposition: Exposition,
    api: String,
    ui: String,
    front_proxy: Ca,
    _dirs: TempDir,
}

impl Istio {
    async fn start() -> Istio {
        let dirs = TempDir::new("istio");
        let input = dirs.sub("in");
        let out = dirs.sub("out");
        write_input(&input);
        let front_proxy = ca("front-proxy-ca");
        let ca_file = dirs.path().join("front-proxy-ca.pem");
        std::fs::write(&ca_file, &front_proxy.pem).unwrap();

        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics/tests/fixtures/istio.prom");
        let exposition = Exposition::serve(recorded::fixture(fixture)).await;
        let mut prom = recorded::Prometheus::start("istio", &exposition);

        let mut args = run_args(&input, &out, "istio");
        args.extend([
            format!("--prometheus-url={}", prom.url()),
            "--traffic-metrics-addr=127.0.0.1:0".into(),
            format!("--traffic-metrics-client-ca={}", ca_file.display()),
            "--ui-addr=127.0.0.1:0".into(),
        ]);
        let mut run = Run::start(&args);
        let api = run.serving("serving the TrafficMetrics API");
        let ui = run.serving("serving the dashboard");

        prom.wait_scraped(&exposition, Duration::from_secs(40))
            .await;
        prom.assert_samples(&meshbridge_istio::metrics::prom_spec().requests, WINDOW_S)
            .await;
        Istio {
            run,
            prom,
            exposition,
            api,
            ui,
            front_proxy,
            _dirs: dirs,
        }
    }

    /// After the queries: the window still held every sample (else the counts are not 6/5 of
    /// the fixture's).
    fn assert_in_window(&self) {
        assert!(
            self.exposition.valid_for(WINDOW_S),
            "the test took too long: `run`'s {WINDOW_S}s window no longer begins before the first scrape"
        );
    }

    fn context(&self) -> String {
        format!(
            "meshbridge run stderr:\n{}\nPrometheus log:\n{}",
            self.run.log(),
            self.prom.log()
        )
    }
}

fn edge<'a>(list: &'a Value, direction: &str, name: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|i| i["edge"]["direction"] == direction && i["edge"]["resource"]["name"] == name)
        .unwrap_or_else(|| panic!("no {direction} {name} edge in {list}"))
}

// ---- the tests ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_api_answers_the_front_proxy_with_prometheus_counts() {
    let s = Istio::start().await;
    let proxy = client_cert(&s.front_proxy);

    let path = format!("{API}/namespaces/shop/deployments/frontend/edges");
    let a = https_get(&s.api, Some(&proxy), &path)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.context()));
    assert_eq!(a.status, 200, "{}\n{}", a.body, s.context());
    assert!(
        a.content_type.starts_with("application/json"),
        "{}",
        a.content_type
    );
    let front = a.json();
    assert_eq!(front["kind"], "TrafficMetricsList", "{front}");
    assert_eq!(front["apiVersion"], "metrics.smi-spec.io/v1alpha1");
    assert_eq!(front["items"].as_array().unwrap().len(), 2, "{front}");
    // frontend → web-v1: 40 × 200, 5 × 403, 5 × 503; → web-v2: 10 × 200, 5 × 503.
    let to_v1 = edge(&front, "to", "web-v1");
    assert_eq!(counts(to_v1), expect(45.0, 5.0), "{front}");
    assert_eq!(to_v1["edge"]["resource"]["kind"], "Deployment");
    assert_eq!(to_v1["edge"]["resource"]["namespace"], "shop");
    assert_eq!(to_v1["window"], format!("{WINDOW_S}s"));
    assert_eq!(metric(to_v1, "p90_response_latency"), "25m");
    let to_v2 = edge(&front, "to", "web-v2");
    assert_eq!(counts(to_v2), expect(10.0, 5.0), "{front}");
    assert_eq!(metric(to_v2, "p50_response_latency"), "87500u");

    // web-v1 itself: what frontend sent it (the 10 calls from outside the mesh are not counted).
    let web = https_get(
        &s.api,
        Some(&proxy),
        &format!("{API}/namespaces/shop/deployments/web-v1"),
    )
    .await
    .unwrap();
    assert_eq!(web.status, 200, "{}", web.body);
    let web = web.json();
    assert_eq!(web["kind"], "TrafficMetrics", "{web}");
    assert_eq!(counts(&web), expect(45.0, 5.0), "{web}");
    s.assert_in_window();

    // Without a client certificate: 401, with the reason, for every API path; probes answer.
    let anon = https_get(&s.api, None, &path).await.unwrap();
    assert_eq!(anon.status, 401, "{}", anon.body);
    let status = anon.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(https_get(&s.api, None, API).await.unwrap().status, 401);
    assert_eq!(
        https_get(&s.api, None, "/healthz").await.unwrap().status,
        200
    );

    // A certificate of another CA does not get an answer.
    let stranger = client_cert(&ca("someone-else"));
    let r = https_get(&s.api, Some(&stranger), &path).await;
    assert!(
        r.is_err(),
        "a certificate of another CA got an answer: {}",
        r.map(|a| a.status.to_string()).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_split_declared_and_observed_and_istio_capabilities() {
    let s = Istio::start().await;

    let page = http_get(&s.ui, "/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.body.contains("dashboard.js"), "{}", page.body);

    // The model is set after the reconciler's first pass (generation ≥ 1).
    let deadline = Instant::now() + Duration::from_secs(10);
    let d = loop {
        let a = http_get(&s.ui, "/api/dashboard").await;
        assert_eq!(a.status, 200, "{}\n{}", a.body, s.context());
        let d = a.json();
        if d["generation"].as_u64().unwrap_or(0) > 0 {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "no model in 10 s: {d}\n{}",
            s.context()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    s.assert_in_window();

    let splits = d["splits"].as_array().expect("splits");
    assert_eq!(splits.len(), 1, "{d}");
    let split = &splits[0];
    assert_eq!(split["object"], "TrafficSplit/shop/web-split", "{split}");
    assert_eq!(split["namespace"], "shop");
    assert_eq!(split["apex"], "web");
    let backends = split["backends"].as_array().expect("backends");
    let row = |svc: &str| {
        backends
            .iter()
            .find(|b| b["service"] == svc)
            .unwrap_or_else(|| panic!("no backend {svc} in {split}"))
            .clone()
    };
    let (v1, v2) = (row("web-v1"), row("web-v2"));
    assert_eq!(
        (&v1["weight"], &v1["declaredPercent"]),
        (&80.into(), &80.0.into())
    );
    assert_eq!(
        (&v2["weight"], &v2["declaredPercent"]),
        (&20.into(), &20.0.into())
    );
    let istio = d["meshes"]
        .as_array()
        .expect("meshes")
        .iter()
        .find(|m| m["type"] == "istio")
        .unwrap_or_else(|| panic!("no istio mesh in {}", d["meshes"]));
    let want = serde_json::to_value(
        meshbridge_istio::IstioAdapter
            .capabilities(&Context::default())
            .rows(),
    )
    .unwrap();
    assert_eq!(istio["capabilities"], want);
    let metrics_row = istio["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["feature"] == "metrics")
        .expect("a metrics row");
    assert_eq!(metrics_row["level"], "Partial", "{metrics_row}");

    // Observed: Istio names the Service called (`web`, the apex), so each request counts for
    // the backend whose Service selects the server's workload. web-v1 served frontend 45
    // requests (40 × 200, 5 × 503; its 5 × 403 were refused, not served), web-v2 15 (× 6/5
    // from Prometheus).
    assert_eq!(
        (&v1["requests"], &v2["requests"]),
        (
            &(45.0 * FACTOR).round().into(),
            &(15.0 * FACTOR).round().into()
        ),
        "{split}"
    );
    assert_eq!(
        (&v1["observedPercent"], &v2["observedPercent"]),
        (&75.0.into(), &25.0.into()),
        "{split}"
    );
}

#[test]
fn traffic_metrics_without_a_client_ca_or_cluster_is_a_usage_error() {
    let dirs = TempDir::new("no-ca");
    let input = dirs.sub("in");
    write_input(&input);
    let mut args = run_args(&input, &dirs.sub("out"), "istio");
    args.push("--traffic-metrics-addr=127.0.0.1:0".into());
    let mut run = Run::start(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = run.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "still running after 20 s:\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The reader thread ends with the pipe: give it the last lines.
    let until = Instant::now() + Duration::from_secs(2);
    while !run.log().contains("--traffic-metrics-client-ca") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status.code(), Some(2), "{}", run.log());
    assert!(
        run.log().contains(
            "--traffic-metrics-addr needs the request-header client CA of the API server: give --traffic-metrics-client-ca FILE"
        ),
        "{}",
        run.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_has_no_numbers_and_says_why() {
    let dirs = TempDir::new("gateway-api");
    let input = dirs.sub("in");
    write_input(&input);
    let mut args = run_args(&input, &dirs.sub("out"), "gateway-api");
    args.push("--ui-addr=127.0.0.1:0".into());
    let mut run = Run::start(&args);
    let ui = run.serving("serving the dashboard");
    for path in [
        format!("{API}/namespaces/shop/deployments/web-v1"),
        format!("{API}/namespaces"),
    ] {
        let a = http_get(&ui, &path).await;
        assert_eq!(a.status, 503, "{path}: {}", a.body);
        let status = a.json();
        assert_eq!(status["kind"], "Status", "{status}");
        assert_eq!(status["reason"], "ServiceUnavailable");
        let msg = status["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("no TrafficMetrics for --backend gateway-api")
                && msg.contains("Gateway API and App Mesh define no traffic metrics"),
            "{msg}"
        );
    }
}
