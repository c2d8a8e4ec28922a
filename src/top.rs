//! `meshbridge top`: the TrafficMetrics API (`metrics.smi-spec.io/v1alpha1`) as a live table,
//! like `linkerd viz stat` — success rate, requests per second and latency quantiles per
//! workload, and with a NAME, per edge (each peer that called it, each peer it called).
//!
//! Reads from `--server URL` (what `meshbridge local up` prints as `metrics`) or, without
//! it, from the cluster of the kubeconfig (the aggregated API `meshbridge run` registers).
//! Everything between the JSON documents and the printed table is pure and tested here.
//!
//! Exit codes: 0 done (or interrupted); 1 the API could not be read; 2 usage.

use clap::{Args, ValueEnum};
use meshbridge_core::metrics::api::{PREFIX, ResourceKind};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct TopArgs {
    /// What to show: `deploy` (default), `po`, `ds`, `sts`, `ns` (plurals and kinds too),
    /// or one of them by name: `deploy/NAME` (its own row and its edges).
    pub resource: Option<String>,
    /// The name, as in `meshbridge top deploy NAME` (same as `deploy/NAME`).
    pub name: Option<String>,
    /// Namespace (default: the kubeconfig context's, or `default` with --server).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace (adds a NAMESPACE column).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Base URL of the TrafficMetrics API, e.g. the `metrics` URL `meshbridge local up`
    /// prints (`http://127.0.0.1:PORT/apis/metrics.smi-spec.io/v1alpha1`; a bare
    /// `http://HOST:PORT` gets that path). Default: the cluster of the kubeconfig.
    #[arg(long)]
    pub server: Option<String>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Print one table and exit.
    #[arg(long)]
    pub once: bool,
    /// Output: a table, or the TrafficMetrics documents as JSON (printed once).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// What to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: ResourceKind,
    pub name: Option<String>,
}

/// `deploy`, `deploy/NAME`, or `deploy` + `NAME`; nothing means deployments.
pub fn parse_target(resource: Option<&str>, name: Option<&str>) -> Result<Target, String> {
    let (kind, inline) = match resource {
        None => ("deployments", None),
        Some(r) => match r.split_once('/') {
            Some((k, n)) => (k, Some(n)),
            None => (r, None),
        },
    };
    let k = ResourceKind::parse(kind).ok_or_else(|| {
        format!(
            "unknown resource `{kind}` (one of deploy, po, ds, sts, ns — or their plurals — optionally /NAME)"
        )
    })?;
    let name = match (inline, name) {
        (Some(_), Some(_)) => {
            return Err("give the name once: `deploy/NAME` or `deploy NAME`".into());
        }
        (Some(""), None) => return Err(format!("`{kind}/` needs a name")),
        (Some(n), None) | (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    };
    if let Some(n) = &name
        && (n.is_empty() || n.contains('/'))
    {
        return Err(format!("`{n}` is not a resource name"));
    }
    Ok(Target { kind: k, name })
}

/// The API paths (below [`PREFIX`]) to read: a list, or a resource and its edges.
/// `ns = None` is every namespace.
pub fn paths(t: &Target, ns: Option<&str>) -> Vec<String> {
    let one = match (t.kind, ns) {
        (ResourceKind::Namespace, _) => t.name.as_ref().map(|n| format!("/namespaces/{n}")),
        (k, Some(ns)) => t
            .name
            .as_ref()
            .map(|n| format!("/namespaces/{ns}/{}/{n}", k.plural())),
        (_, None) => None,
    };
    match one {
        Some(p) => vec![p.clone(), format!("{p}/edges")],
        None => match (t.kind, ns) {
            (ResourceKind::Namespace, _) => vec!["/namespaces".into()],
            (k, Some(ns)) => vec![format!("/namespaces/{ns}/{}", k.plural())],
            (k, None) => vec![format!("/{}", k.plural())],
        },
    }
}

/// A Kubernetes Quantity (`10m`, `1500u`, `2`, `1.5k`) as a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * mult)
}

/// A window like `30s`, `1m30s`, `500ms` in seconds.
pub fn parse_window(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..split].parse().ok()?;
        rest = &rest[split..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Up to three significant digits, trailing zeros dropped (`1.98`, `12.3`, `460`).
fn sig3(v: f64) -> String {
    let decimals = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A duration in seconds as people read it: `12ms`, `1.5ms`, `250µs`, `1.2s`.
pub fn format_seconds(secs: f64) -> String {
    let ms = secs * 1000.0;
    if ms >= 999.5 {
        format!("{}s", sig3(secs))
    } else if ms >= 1.0 {
        format!("{}ms", sig3(ms))
    } else {
        format!("{}µs", sig3(ms * 1000.0))
    }
}

/// A latency Quantity of seconds (`10m`, `1500u`) formatted; an unreadable value as given.
pub fn format_latency(q: &str) -> String {
    match parse_quantity(q) {
        Some(s) => format_seconds(s),
        None => q.to_string(),
    }
}

/// One item's numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub success: f64,
    pub failure: f64,
    /// Window in seconds (`None`: not stated or unreadable).
    pub window: Option<f64>,
    /// Quantities of seconds, as served.
    pub p50: Option<String>,
    pub p90: Option<String>,
    pub p99: Option<String>,
}

impl Stats {
    /// Reads a TrafficMetrics document's `window` and `metrics`.
    pub fn of(item: &Value) -> Stats {
        let mut s = Stats {
            window: item["window"].as_str().and_then(parse_window),
            ..Stats::default()
        };
        for m in item["metrics"].as_array().into_iter().flatten() {
            let text = match &m["value"] {
                Value::String(v) => v.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            let num = || parse_quantity(&text).unwrap_or(0.0);
            match m["name"].as_str().unwrap_or_default() {
                "success_count" => s.success = num(),
                "failure_count" => s.failure = num(),
                "p50_response_latency" => s.p50 = Some(text),
                "p90_response_latency" => s.p90 = Some(text),
                "p99_response_latency" => s.p99 = Some(text),
                _ => {}
            }
        }
        s
    }

    /// SUCCESS, RPS, LATENCY_P50, LATENCY_P90, LATENCY_P99 (`-` where there is nothing).
    pub fn cells(&self) -> [String; 5] {
        let total = self.success + self.failure;
        let dash = || "-".to_string();
        let success = if total > 0.0 {
            format!("{:.2}%", 100.0 * self.success / total)
        } else {
            dash()
        };
        let rps = match self.window {
            Some(w) if w > 0.0 => format!("{:.1}rps", total / w),
            _ => dash(),
        };
        let lat = |q: &Option<String>| q.as_deref().map(format_latency).unwrap_or_else(dash);
        [success, rps, lat(&self.p50), lat(&self.p90), lat(&self.p99)]
    }
}

/// A workload's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub namespace: Option<String>,
    pub name: String,
    pub stats: Stats,
}

/// An edge's row: the peer that called the resource (`FROM`) or that it called (`TO`).
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeRow {
    /// `FROM` or `TO`.
    pub direction: String,
    /// `-` when the peer is not known.
    pub namespace: String,
    /// The peer's name; `pod/NAME` when it is a pod of no workload of the resource's kind.
    pub peer: String,
    pub stats: Stats,
}

fn kind_of(v: &Value) -> Result<&str, String> {
    v["kind"]
        .as_str()
        .ok_or_else(|| "the answer has no `kind`: not a TrafficMetrics document".to_string())
}

fn items(list: &Value) -> Result<&Vec<Value>, String> {
    match kind_of(list)? {
        "TrafficMetricsList" => list["items"]
            .as_array()
            .ok_or_else(|| "a TrafficMetricsList without `items`".to_string()),
        k => Err(format!("expected a TrafficMetricsList, got a {k}")),
    }
}

/// One row per resource of a TrafficMetricsList (or of one TrafficMetrics), sorted by
/// namespace and name.
pub fn rows(doc: &Value) -> Result<Vec<Row>, String> {
    let one = [doc.clone()];
    let list: &[Value] = if kind_of(doc)? == "TrafficMetrics" {
        &one
    } else {
        items(doc)?
    };
    let mut out: Vec<Row> = list
        .iter()
        .map(|i| Row {
            namespace: i["resource"]["namespace"].as_str().map(str::to_string),
            name: i["resource"]["name"].as_str().unwrap_or("-").to_string(),
            stats: Stats::of(i),
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// One row per edge of an edges TrafficMetricsList: `FROM` peers first, then `TO`, each
/// by namespace and name.
pub fn edge_rows(doc: &Value) -> Result<Vec<EdgeRow>, String> {
    let mut out = Vec::new();
    for i in items(doc)? {
        let own_kind = i["resource"]["kind"].as_str().unwrap_or_default();
        let peer = &i["edge"]["resource"];
        let direction = i["edge"]["direction"]
            .as_str()
            .unwrap_or("-")
            .to_ascii_uppercase();
        let (namespace, name) = match peer["name"].as_str() {
            None => ("-".to_string(), "(unknown)".to_string()),
            Some(n) => {
                let ns = peer["namespace"].as_str().unwrap_or(n).to_string();
                match peer["kind"].as_str() {
                    Some(k) if k != own_kind => (ns, format!("{}/{n}", k.to_ascii_lowercase())),
                    _ => (ns, n.to_string()),
                }
            }
        };
        out.push(EdgeRow {
            direction,
            namespace,
            peer: name,
            stats: Stats::of(i),
        });
    }
    out.sort_by(|a, b| {
        (&a.direction, &a.namespace, &a.peer).cmp(&(&b.direction, &b.namespace, &b.peer))
    });
    Ok(out)
}

/// Left-aligned columns, three spaces apart, no trailing blanks.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let all = std::iter::once(header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned());
    for r in all {
        let mut line = String::new();
        for (c, w) in r.iter().zip(&widths) {
            line.push_str(c);
            line.push_str(&" ".repeat(w - c.chars().count() + 3));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

const STAT_COLUMNS: [&str; 5] = [
    "SUCCESS",
    "RPS",
    "LATENCY_P50",
    "LATENCY_P90",
    "LATENCY_P99",
];

/// The workloads table (`NAMESPACE` first when `namespaces`).
pub fn workload_table(rows: &[Row], namespaces: bool) -> String {
    let mut header = Vec::new();
    if namespaces {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    header.extend(STAT_COLUMNS);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = Vec::new();
            if namespaces {
                v.push(r.namespace.clone().unwrap_or_else(|| "-".into()));
            }
            v.push(r.name.clone());
            v.extend(r.stats.cells());
            v
        })
        .collect();
    render(&header, &cells)
}

/// The edges table.
pub fn edge_table(rows: &[EdgeRow]) -> String {
    let mut header = vec!["DIRECTION", "NAMESPACE", "PEER"];
    header.extend(STAT_COLUMNS);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.direction.clone(), r.namespace.clone(), r.peer.clone()];
            v.extend(r.stats.cells());
            v
        })
        .collect();
    render(&header, &cells)
}

/// What is printed for the fetched documents (one per path of [`paths`]).
pub fn screen(docs: &[Value], namespaces: bool) -> Result<String, String> {
    match docs {
        [list] => Ok(workload_table(&rows(list)?, namespaces)),
        [one, edges] => {
            let mut s = workload_table(&rows(one)?, false);
            s.push('\n');
            let e = edge_rows(edges)?;
            if e.is_empty() {
                s.push_str("no edges in the window\n");
            } else {
                s.push_str(&edge_table(&e));
            }
            Ok(s)
        }
        _ => Err(format!("{} documents, expected 1 or 2", docs.len())),
    }
}

/// The documents as JSON: the one document, or a `List` of the resource and its edges.
pub fn json_output(docs: Vec<Value>) -> Value {
    if docs.len() == 1 {
        docs.into_iter().next().unwrap_or(Value::Null)
    } else {
        json!({"apiVersion": "v1", "kind": "List", "items": docs})
    }
}

/// The reason of an error answer: `404 NotFound: message` from a Kubernetes `Status`
/// document, else the start of the body.
pub fn error_reason(code: u16, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["kind"] == "Status" => {
            let reason = v["reason"].as_str().unwrap_or_default();
            let message = v["message"].as_str().unwrap_or_default();
            match (reason.is_empty(), message.is_empty()) {
                (false, false) => format!("HTTP {code} {reason}: {message}"),
                (false, true) => format!("HTTP {code} {reason}"),
                (true, false) => format!("HTTP {code}: {message}"),
                (true, true) => format!("HTTP {code}"),
            }
        }
        _ => {
            let b: String = body.trim().chars().take(200).collect();
            let b = b.replace('\n', " ");
            if b.is_empty() {
                format!("HTTP {code}")
            } else {
                format!("HTTP {code}: {b}")
            }
        }
    }
}

/// The base URL of `--server`: a bare `http://HOST:PORT` gets the API's path.
pub fn server_base(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    if after_scheme.contains('/') {
        url.to_string()
    } else {
        format!("{url}{PREFIX}")
    }
}

/// An error and its causes, `: `-separated, each said once (kube's own Display stops at
/// "client error (Connect)").
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut next = e.source();
    while let Some(c) = next {
        let t = c.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        next = c.source();
    }
    parts.join(": ")
}

/// Where the documents come from.
enum Source {
    Server(String),
    Kube {
        client: kube::Client,
        cluster_url: String,
    },
}

impl Source {
    async fn get(&self, path: &str) -> Result<Value, String> {
        let (url, body) = match self {
            Source::Server(base) => {
                let url = format!("{base}{path}");
                let body = match meshbridge_metrics::http::get(&url, TIMEOUT).await {
                    Ok(b) => b.to_vec(),
                    Err(meshbridge_metrics::http::GetError::Status { status, body, .. }) => {
                        return Err(format!("{url}: {}", error_reason(status, &body)));
                    }
                    Err(e) => return Err(e.to_string()),
                };
                (url, body)
            }
            Source::Kube {
                client,
                cluster_url,
            } => {
                let full = format!("{PREFIX}{path}");
                let url = format!("{}{full}", cluster_url.trim_end_matches('/'));
                // kube's request builder takes a directory and a last segment.
                let (dir, last) = full.rsplit_once('/').unwrap_or(("", &full));
                let req = kube::core::Request::new(dir)
                    .get(last, &kube::core::params::GetParams::default())
                    .map_err(|e| format!("{url}: {e}"))?;
                let text = match tokio::time::timeout(TIMEOUT, client.request_text(req)).await {
                    Err(_) => {
                        return Err(format!("{url}: timed out after {} s", TIMEOUT.as_secs()));
                    }
                    Ok(Err(kube::Error::Api(s))) => {
                        let body = serde_json::json!({"kind": "Status", "reason": s.reason,
                            "message": s.message})
                        .to_string();
                        return Err(format!("{url}: {}", error_reason(s.code, &body)));
                    }
                    Ok(Err(e)) => return Err(format!("{url}: {}", causes(&e))),
                    Ok(Ok(t)) => t,
                };
                (url, text.into_bytes())
            }
        };
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    async fn fetch(&self, paths: &[String]) -> Result<Vec<Value>, String> {
        let mut docs = Vec::new();
        for p in paths {
            docs.push(self.get(p).await?);
        }
        Ok(docs)
    }
}

async fn source(args: &TopArgs) -> Result<(Source, String), String> {
    if let Some(s) = &args.server {
        let ns = args.namespace.clone().unwrap_or_else(|| "default".into());
        return Ok((Source::Server(server_base(s)), ns));
    }
    let cfg = kube::Config::infer()
        .await
        .map_err(|e| format!("no --server and no usable kubeconfig: {e}"))?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| cfg.default_namespace.clone());
    let cluster_url = cfg.cluster_url.to_string();
    let client = kube::Client::try_from(cfg)
        .map_err(|e| format!("{cluster_url}: cannot build a client: {e}"))?;
    Ok((
        Source::Kube {
            client,
            cluster_url,
        },
        ns,
    ))
}

/// `meshbridge top`.
pub async fn run(args: TopArgs) -> ExitCode {
    let target = match parse_target(args.resource.as_deref(), args.name.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meshbridge top: {e}");
            return ExitCode::from(2);
        }
    };
    if args.all_namespaces && target.name.is_some() && target.kind != ResourceKind::Namespace {
        eprintln!("meshbridge top: a NAME needs one namespace: use -n NS, not -A");
        return ExitCode::from(2);
    }
    if !(args.interval.is_finite() && args.interval > 0.0) {
        eprintln!(
            "meshbridge top: --interval must be a positive number of seconds, not {}",
            args.interval
        );
        return ExitCode::from(2);
    }
    let (src, ns) = match source(&args).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("meshbridge top: {e}");
            return ExitCode::from(1);
        }
    };
    let ns = (!args.all_namespaces).then_some(ns);
    let paths = paths(&target, ns.as_deref());
    let namespaces = ns.is_none() && target.kind != ResourceKind::Namespace;
    let tty = std::io::stdout().is_terminal();
    let shutdown = crate::runtime::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let out = src.fetch(&paths).await.and_then(|docs| match args.output {
            Output::Json => serde_json::to_string_pretty(&json_output(docs))
                .map(|s| s + "\n")
                .map_err(|e| e.to_string()),
            Output::Table => screen(&docs, namespaces),
        });
        let text = match out {
            Ok(t) => t,
            Err(e) => {
                eprintln!("meshbridge top: {e}");
                return ExitCode::from(1);
            }
        };
        let once = args.once || args.output == Output::Json;
        let mut stdout = std::io::stdout().lock();
        let written = if tty && !once {
            // Clear the screen and go home, then the table: refreshed in place.
            write!(stdout, "\x1b[2J\x1b[H{text}")
        } else if once {
            write!(stdout, "{text}")
        } else {
            writeln!(stdout, "{text}")
        };
        if written.and_then(|_| stdout.flush()).is_err() {
            // stdout closed (`| head`): nothing more to show.
            return ExitCode::SUCCESS;
        }
        drop(stdout);
        if once {
            return ExitCode::SUCCESS;
        }
        tokio::select! {
            _ = &mut shutdown => return ExitCode::SUCCESS,
            _ = tokio::time::sleep(Duration::from_secs_f64(args.interval)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &str, ns: &str, name: &str, edge: Value, metrics: Value) -> Value {
        json!({"kind": "TrafficMetrics", "apiVersion": "metrics.smi-spec.io/v1alpha1",
            "window": "30s", "resource": {"kind": kind, "namespace": ns, "name": name},
            "edge": edge, "metrics": metrics})
    }

    fn metrics(s: &str, f: &str, lat: Option<[&str; 3]>) -> Value {
        let mut v = vec![];
        if let Some([p99, p90, p50]) = lat {
            v.push(json!({"name": "p99_response_latency", "unit": "seconds", "value": p99}));
            v.push(json!({"name": "p90_response_latency", "unit": "seconds", "value": p90}));
            v.push(json!({"name": "p50_response_latency", "unit": "seconds", "value": p50}));
        }
        v.push(json!({"name": "success_count", "value": s}));
        v.push(json!({"name": "failure_count", "value": f}));
        Value::Array(v)
    }

    fn server_edge() -> Value {
        json!({"direction": "from", "side": "server", "resource": {}})
    }

    #[test]
    fn top_quantities_and_durations() {
        assert_eq!(parse_quantity("10m"), Some(0.01));
        assert_eq!(parse_quantity("1500u"), Some(0.0015));
        assert_eq!(parse_quantity("18"), Some(18.0));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity("5x"), None);
        assert_eq!(format_latency("12m"), "12ms");
        assert_eq!(format_latency("1500u"), "1.5ms");
        assert_eq!(format_latency("1980u"), "1.98ms");
        assert_eq!(format_latency("46m"), "46ms");
        assert_eq!(format_latency("123456u"), "123ms");
        assert_eq!(format_latency("250u"), "250µs");
        assert_eq!(format_latency("1500m"), "1.5s");
        assert_eq!(format_latency("0m"), "0µs");
        assert_eq!(format_latency("weird"), "weird");
        assert_eq!(parse_window("30s"), Some(30.0));
        assert_eq!(parse_window("1m30s"), Some(90.0));
        assert_eq!(parse_window("500ms"), Some(0.5));
        assert_eq!(parse_window("30"), None);
        assert_eq!(parse_window(""), None);
    }

    #[test]
    fn top_targets_and_paths() {
        let t = |r: Option<&str>, n: Option<&str>| parse_target(r, n).unwrap();
        assert_eq!(t(None, None).kind, ResourceKind::Deployment);
        assert_eq!(
            t(Some("deploy/web"), None),
            Target {
                kind: ResourceKind::Deployment,
                name: Some("web".into())
            }
        );
        assert_eq!(t(Some("po"), Some("web-0")).name.as_deref(), Some("web-0"));
        assert_eq!(t(Some("sts"), None).kind, ResourceKind::StatefulSet);
        assert!(parse_target(Some("svc"), None).unwrap_err().contains("svc"));
        assert!(parse_target(Some("deploy/"), None).is_err());
        assert!(parse_target(Some("deploy/a"), Some("b")).is_err());
        assert!(parse_target(Some("deploy/a/b"), None).is_err());

        let p = |r: &str, ns: Option<&str>| paths(&t(Some(r), None), ns);
        assert_eq!(p("deploy", Some("shop")), ["/namespaces/shop/deployments"]);
        assert_eq!(p("ds", None), ["/daemonsets"]);
        assert_eq!(
            p("deploy/web", Some("shop")),
            [
                "/namespaces/shop/deployments/web",
                "/namespaces/shop/deployments/web/edges"
            ]
        );
        assert_eq!(p("ns", Some("shop")), ["/namespaces"]);
        assert_eq!(p("ns/db", None), ["/namespaces/db", "/namespaces/db/edges"]);
    }

    #[test]
    fn top_rows_of_a_list() {
        let list = json!({"kind": "TrafficMetricsList", "items": [
            item("Deployment", "shop", "web", server_edge(), metrics("30", "0", Some(["1980u", "1800u", "1m"]))),
            item("Deployment", "shop", "api", server_edge(), metrics("54", "6", Some(["46m", "10m", "5m"]))),
            item("Deployment", "shop", "idle", server_edge(), metrics("0", "0", None)),
        ]});
        let r = rows(&list).unwrap();
        assert_eq!(
            r.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["api", "idle", "web"]
        );
        assert_eq!(
            r[0].stats.cells(),
            ["90.00%", "2.0rps", "5ms", "10ms", "46ms"]
        );
        assert_eq!(r[1].stats.cells(), ["-", "0.0rps", "-", "-", "-"]);
        assert_eq!(
            workload_table(&r, false),
            "NAME   SUCCESS   RPS      LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
             api    90.00%    2.0rps   5ms           10ms          46ms\n\
             idle   -         0.0rps   -             -             -\n\
             web    100.00%   1.0rps   1ms           1.8ms         1.98ms\n"
        );
        assert!(workload_table(&r, true).starts_with("NAMESPACE   NAME   SUCCESS"));
        assert!(
            workload_table(&r, true)
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("shop        api    90.00%")
        );
        assert!(rows(&json!({"kind": "Status"})).is_err());
        assert!(rows(&json!({"items": []})).is_err());
    }

    #[test]
    fn top_edges_per_direction() {
        let edge = |dir: &str, side: &str, peer: Value| json!({"direction": dir, "side": side, "resource": peer});
        let list = json!({"kind": "TrafficMetricsList", "items": [
            item("Deployment", "shop", "web", edge("to", "client",
                json!({"kind": "Deployment", "namespace": "shop", "name": "api"})), metrics("54", "6", Some(["46m", "10m", "5m"]))),
            item("Deployment", "shop", "web", edge("from", "server",
                json!({"kind": "Pod", "namespace": "shop", "name": "load-0"})), metrics("30", "0", Some(["1980u", "1800u", "1m"]))),
            item("Deployment", "shop", "web", edge("from", "server", json!({})), metrics("3", "0", None)),
        ]});
        let e = edge_rows(&list).unwrap();
        assert_eq!(
            edge_table(&e),
            "DIRECTION   NAMESPACE   PEER         SUCCESS   RPS      LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
             FROM        -           (unknown)    100.00%   0.1rps   -             -             -\n\
             FROM        shop        pod/load-0   100.00%   1.0rps   1ms           1.8ms         1.98ms\n\
             TO          shop        api          90.00%    2.0rps   5ms           10ms          46ms\n"
        );
        let one = item(
            "Deployment",
            "shop",
            "web",
            server_edge(),
            metrics("30", "0", None),
        );
        let s = screen(&[one.clone(), list], false).unwrap();
        assert!(s.starts_with("NAME   SUCCESS   RPS"), "{s}");
        assert!(s.contains("\n\nDIRECTION   NAMESPACE"), "{s}");
        let empty = json!({"kind": "TrafficMetricsList", "items": []});
        assert!(
            screen(&[one, empty], false)
                .unwrap()
                .ends_with("\nno edges in the window\n")
        );
    }

    #[test]
    fn top_errors_and_urls() {
        let status = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"deployments \"nope\" not found","reason":"NotFound","code":404}"#;
        assert_eq!(
            error_reason(404, status),
            "HTTP 404 NotFound: deployments \"nope\" not found"
        );
        assert_eq!(error_reason(502, "bad\ngateway\n"), "HTTP 502: bad gateway");
        assert_eq!(error_reason(500, ""), "HTTP 500");
        assert_eq!(
            server_base("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/apis/metrics.smi-spec.io/v1alpha1"
        );
        assert_eq!(
            server_base("http://h:1/apis/metrics.smi-spec.io/v1alpha1/"),
            "http://h:1/apis/metrics.smi-spec.io/v1alpha1"
        );
        let two = json_output(vec![json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(two["kind"], "List");
        assert_eq!(two["items"][1]["b"], 2);
        assert_eq!(json_output(vec![json!({"a": 1})]), json!({"a": 1}));
    }
}
