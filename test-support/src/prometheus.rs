//! A real Prometheus (Debian's `prometheus`, `/usr/bin/prometheus` or `$MESHBRIDGE_PROMETHEUS`)
//! scraping recorded metrics, for tests of what is read from a mesh's Prometheus.
//!
//! A fixture file holds one section per scraped pod and phase: a line
//! `# target: k=v ... phase=N` (the labels the scrape adds, e.g. `namespace` and `pod`, and the
//! phase, 1 or 2) followed by the pod's metrics in the exposition format. [`Exposition`] serves
//! target `i` at `/t/i`: phase 1 on scrapes 1–3, phase 2 on scrapes 4–[`SCRAPES`], and nothing
//! from then on (the pod is gone: Prometheus marks its series stale). [`Prometheus`] scrapes
//! every target each second.
//!
//! Exact counts: once every target was scraped twice more ([`Prometheus::wait_scraped`]), a
//! window of W seconds that begins before the first scrape holds exactly n = [`SCRAPES`]
//! samples of every series and ends more than 1.1 scrape intervals after the last, so
//! `increase()` extrapolates by half the average sample interval on both sides: it answers
//! `Δ · (S + S/(n-1)) / S = Δ · FACTOR` for a true increase Δ between the phases, whatever the
//! scrape timing. [`Prometheus::assert_samples`] checks the n; [`Exposition::valid_for`] says
//! whether a window of W seconds ending now still begins before the first scrape. Quantiles
//! do not change under a common factor.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Scrapes that return samples (3 of phase 1, then 3 of phase 2).
pub const SCRAPES: usize = 6;
/// What `increase()` over the window answers for a true increase of 1 (see the module doc).
pub const FACTOR: f64 = SCRAPES as f64 / (SCRAPES - 1) as f64;

/// One scraped pod: the labels the scrape adds and its two phases.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub labels: Vec<(String, String)>,
    pub phases: [String; 2],
}

/// The targets of a fixture's text (see the module doc).
pub fn parse_targets(text: &str) -> Result<Vec<Target>, String> {
    let mut targets: Vec<Target> = vec![];
    let mut current: Option<(usize, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("# target: ") {
            let mut labels = vec![];
            let mut phase = None;
            for kv in rest.split_whitespace() {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("line {}: `{kv}` is not k=v", n + 1))?;
                if k == "phase" {
                    phase = match v {
                        "1" => Some(0),
                        "2" => Some(1),
                        _ => return Err(format!("line {}: phase {v}: 1 or 2", n + 1)),
                    };
                } else {
                    labels.push((k.to_string(), v.to_string()));
                }
            }
            let phase = phase.ok_or_else(|| format!("line {}: a target needs a phase", n + 1))?;
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
            current = Some((i, phase));
        } else if let Some((i, phase)) = current {
            let body = &mut targets[i].phases[phase];
            body.push_str(line);
            body.push('\n');
        }
    }
    if targets.is_empty() {
        return Err("no `# target:` line".into());
    }
    if let Some(t) = targets
        .iter()
        .find(|t| t.phases.iter().any(|p| p.trim().is_empty()))
    {
        return Err(format!(
            "target {:?}: every target needs both phases",
            t.labels
        ));
    }
    Ok(targets)
}

/// The targets of the fixture file at `path` (panics, naming it, if it is not one).
pub fn fixture(path: impl AsRef<Path>) -> Vec<Target> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    parse_targets(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The HTTP server Prometheus scrapes the targets from (stopped when dropped).
pub struct Exposition {
    port: u16,
    targets: Arc<Vec<Target>>,
    scrapes: Arc<Vec<AtomicUsize>>,
    first_scrape: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Exposition {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Exposition {
    /// Serves `targets` on 127.0.0.1 (a free port). Call inside a tokio runtime.
    pub async fn serve(targets: Vec<Target>) -> Exposition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let targets = Arc::new(targets);
        let scrapes: Arc<Vec<AtomicUsize>> =
            Arc::new(targets.iter().map(|_| AtomicUsize::new(0)).collect());
        let first_scrape = Arc::new(Mutex::new(None));
        let (t, s, f) = (targets.clone(), scrapes.clone(), first_scrape.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(answer(stream, t.clone(), s.clone(), f.clone()));
            }
        });
        Exposition {
            port,
            targets,
            scrapes,
            first_scrape,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// How often each target was scraped so far.
    pub fn scrapes(&self) -> Vec<usize> {
        self.scrapes
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .collect()
    }

    /// When the first sample was handed out (`None`: not scraped yet).
    pub fn first_scrape(&self) -> Option<Instant> {
        *self.first_scrape.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a window of `seconds` ending now still begins (with a 1 s margin) before the
    /// first sample, as [`FACTOR`] needs.
    pub fn valid_for(&self, seconds: u64) -> bool {
        self.first_scrape()
            .is_some_and(|t| t.elapsed() + Duration::from_secs(1) < Duration::from_secs(seconds))
    }
}

async fn answer(
    mut s: tokio::net::TcpStream,
    targets: Arc<Vec<Target>>,
    scrapes: Arc<Vec<AtomicUsize>>,
    first_scrape: Arc<Mutex<Option<Instant>>>,
) {
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
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|i| *i < targets.len());
    let (status, body) = match i {
        Some(i) => {
            let n = scrapes[i].fetch_add(1, Ordering::SeqCst) + 1;
            let body = match n {
                1..=3 => targets[i].phases[0].clone(),
                4..=SCRAPES => targets[i].phases[1].clone(),
                _ => String::new(),
            };
            if n == 1 {
                first_scrape
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(Instant::now);
            }
            ("200 OK", body)
        }
        None => ("404 Not Found", String::new()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
}

/// The Prometheus binary: `$MESHBRIDGE_PROMETHEUS`, else Debian's `/usr/bin/prometheus`
/// (panics saying how to install it when it is missing).
pub fn binary() -> PathBuf {
    let bin = std::env::var_os("MESHBRIDGE_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        bin.is_file(),
        "Prometheus not found at {bin:?}: install Debian's package (`apt-get install -y prometheus`) or set MESHBRIDGE_PROMETHEUS"
    );
    bin
}

/// A running Prometheus and its temp directory: killed and removed when dropped (also when
/// the test fails).
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping every target of `exposition` each second (job `name`, the
    /// target's labels added to its series).
    pub fn start(name: &str, exposition: &Exposition) -> Prometheus {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let bin = binary();
        let dir = std::env::temp_dir().join(format!(
            "meshbridge-prom-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: {name}\n    static_configs:\n"
        );
        for (i, t) in exposition.targets().iter().enumerate() {
            config.push_str(&format!(
                "      - targets: ['127.0.0.1:{}']\n        labels:\n          __metrics_path__: '/t/{i}'\n",
                exposition.port()
            ));
            for (k, v) in &t.labels {
                config.push_str(&format!("          {k}: '{v}'\n"));
            }
        }
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus.log");
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
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                panic!("starting {bin:?}: {e}");
            }
        };
        Prometheus {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Panics with the log if Prometheus exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("Prometheus exited ({status}):\n{}", self.log());
        }
    }

    /// Waits until every target of `exposition` was scraped past its phases: two scrapes
    /// after the last real sample, so the series are stale and the last sample is more than
    /// 1.1 intervals old.
    pub async fn wait_scraped(&mut self, exposition: &Exposition, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while exposition.scrapes().iter().any(|n| *n < SCRAPES + 2) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape every target {} times in {timeout:?} (scrapes: {:?}):\n{}",
                SCRAPES + 2,
                exposition.scrapes(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The result vector of an instant query (`data.result`).
    pub async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let url = format!("{}/api/v1/query?query={}", self.url, encode(promql));
        let (status, body) = http_get(&url, Duration::from_secs(5)).await?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{url}: {e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("{url}: {status} {body}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Checks that every series of `selector` has exactly [`SCRAPES`] samples in the last
    /// `window_s` seconds (what [`FACTOR`] rests on); panics with the log otherwise.
    pub async fn assert_samples(&self, selector: &str, window_s: u64) {
        let counts = self
            .query(&format!("count_over_time({selector}[{window_s}s])"))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
        assert!(
            !counts.is_empty(),
            "no {selector} in Prometheus:\n{}",
            self.log()
        );
        for c in &counts {
            assert_eq!(
                c["value"][1],
                SCRAPES.to_string(),
                "samples of {} in {window_s}s",
                c["metric"]
            );
        }
    }
}

/// Percent-encodes a query parameter value (unreserved characters kept).
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A plain-HTTP GET of `http://HOST:PORT/PATH` (HTTP/1.1, `Connection: close`, bodies with a
/// content-length or read to the end): the status and the body.
async fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: not http://"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| format!("{url}: {e}"))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok::<_, String>(buf)
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{url}: no answer in {timeout:?}"))??;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "{url}: not an HTTP answer: {:?}",
                String::from_utf8_lossy(&buf)
            )
        })?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let body = &buf[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url}: no status: {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| {
            format!(
                "{url}: a broken chunked body: {:?}",
                String::from_utf8_lossy(body)
            )
        })?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The body of a `Transfer-Encoding: chunked` answer (`None` when it is cut short).
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&rest[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        let after = &rest[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// The value of metric `name` of a TrafficMetrics document (a Quantity string).
pub fn metric(doc: &Value, name: &str) -> String {
    doc["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .and_then(|m| m["value"].as_str())
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
        .to_string()
}

/// `(success_count, failure_count)` of a TrafficMetrics document.
pub fn counts(doc: &Value) -> (String, String) {
    (metric(doc, "success_count"), metric(doc, "failure_count"))
}

/// What Prometheus answers for true increases of `success` and `failure` (× [`FACTOR`]).
pub fn expect(success: f64, failure: f64) -> (String, String) {
    let q = |n: f64| format!("{}", (n * FACTOR).round() as u64);
    (q(success), q(failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_by_labels_and_phase() {
        let t = parse_targets(
            "# comment\n# target: namespace=a pod=p phase=1\nm 1\n# target: namespace=a pod=q phase=1\nm 5\n# target: namespace=a pod=p phase=2\nm 2\n# target: namespace=a pod=q phase=2\nm 6\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0].labels,
            vec![("namespace".into(), "a".into()), ("pod".into(), "p".into())]
        );
        assert_eq!(t[0].phases, ["m 1\n".to_string(), "m 2\n".to_string()]);
        assert_eq!(t[1].phases, ["m 5\n".to_string(), "m 6\n".to_string()]);
    }

    #[test]
    fn a_target_without_both_phases_is_refused() {
        assert!(
            parse_targets("# target: pod=p phase=1\nm 1\n")
                .unwrap_err()
                .contains("both phases")
        );
        assert!(
            parse_targets("# target: pod=p\nm 1\n")
                .unwrap_err()
                .contains("phase")
        );
        assert!(
            parse_targets("# target: pod=p phase=3\n")
                .unwrap_err()
                .contains("1 or 2")
        );
        assert!(parse_targets("m 1\n").is_err());
    }

    #[test]
    fn reads_chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n").as_deref(),
            Some(&b"hello, world"[..])
        );
        assert_eq!(dechunk(b"5\r\nhel"), None);
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(encode(r#"a{b="c"}[30s]"#), "a%7Bb%3D%22c%22%7D%5B30s%5D");
    }

    #[tokio::test]
    async fn serves_phases_by_scrape_count() {
        let e = Exposition::serve(
            parse_targets("# target: pod=p phase=1\nm 1\n# target: pod=p phase=2\nm 2\n").unwrap(),
        )
        .await;
        let url = format!("http://127.0.0.1:{}/t/0", e.port());
        let mut bodies = vec![];
        for _ in 0..SCRAPES + 1 {
            let (status, body) = http_get(&url, Duration::from_secs(5)).await.unwrap();
            assert_eq!(status, 200);
            bodies.push(body);
        }
        assert_eq!(
            bodies,
            ["m 1\n", "m 1\n", "m 1\n", "m 2\n", "m 2\n", "m 2\n", ""]
        );
        assert_eq!(e.scrapes(), vec![SCRAPES + 1]);
        assert!(e.valid_for(60));
        let (status, _) = http_get(
            &format!("http://127.0.0.1:{}/t/1", e.port()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(status, 404);
    }
}
