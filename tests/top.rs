//! `meshbridge top` against a real TrafficMetrics server (`meshbridge_metrics::serve` on
//! 127.0.0.1:0) answering from a fixed window: the tables, `-o json`, a resource's edges,
//! refreshing without a terminal, and the errors (404, unreachable, usage).

use meshbridge_core::metrics::api::{PREFIX, answer};
use meshbridge_core::metrics::{EdgeSample, Histogram, Owner, Peer, Window};
use meshbridge_metrics::{BoxFuture, Numbers, State};
use serde_json::{Value, json};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Fixed(Window);

impl Numbers for Fixed {
    fn window(&self) -> BoxFuture<'_, Result<Window, String>> {
        let w = self.0.clone();
        Box::pin(async move { Ok(w) })
    }
}

fn deploy(ns: &str, pod: &str, name: &str) -> Peer {
    Peer::pod(
        ns,
        pod,
        Some(Owner {
            kind: "Deployment".into(),
            name: name.into(),
        }),
    )
}

fn edge(from: Peer, to: Peer, success: f64, failure: f64, buckets: &[(f64, f64)]) -> EdgeSample {
    EdgeSample {
        from,
        to,
        service: None,
        success,
        failure,
        denied: 0.0,
        latency: Histogram {
            buckets: buckets.to_vec(),
        },
        refused_by_caller: false,
    }
}

/// Over 30 s: a pod of no workload calls `web` 30 times (latencies 0.5–2 ms); `web` calls
/// `api` 60 times, 6 failing (1–50 ms); `api` calls `db` in namespace `db` 12 times (1–2 ms).
fn window() -> Window {
    let inf = f64::INFINITY;
    Window {
        timestamp: "2026-12-07T12:00:00Z".into(),
        seconds: 30,
        edges: vec![
            edge(
                Peer::pod("shop", "load-0", None),
                deploy("shop", "web-0", "web"),
                30.0,
                0.0,
                &[(0.5, 0.0), (1.0, 15.0), (2.0, 30.0), (inf, 30.0)],
            ),
            edge(
                deploy("shop", "web-0", "web"),
                deploy("shop", "api-0", "api"),
                54.0,
                6.0,
                &[
                    (1.0, 0.0),
                    (5.0, 30.0),
                    (10.0, 54.0),
                    (50.0, 60.0),
                    (inf, 60.0),
                ],
            ),
            edge(
                deploy("shop", "api-0", "api"),
                deploy("db", "db-0", "db"),
                12.0,
                0.0,
                &[(1.0, 0.0), (2.0, 12.0), (inf, 12.0)],
            ),
        ],
        inventory: vec![],
    }
}

/// Starts the server on its own thread and runtime; returns the API's base URL.
fn start() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            let state = State::new(Arc::new(Fixed(window())));
            meshbridge_metrics::serve(l, None, state)
                .await
                .expect("serve");
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).expect("server");
    format!("http://{addr}{PREFIX}")
}

fn top(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .arg("top")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run meshbridge")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

#[test]
fn top_table_of_a_namespace() {
    let url = start();
    let out = ok(&top(&["--server", &url, "-n", "shop", "--once"]));
    assert_eq!(
        out,
        "NAME   SUCCESS   RPS      LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
         api    90.00%    2.0rps   5ms           10ms          46ms\n\
         web    100.00%   1.0rps   1ms           1.8ms         1.98ms\n"
    );
    // The same with the short form and the explicit resource.
    assert_eq!(
        ok(&top(&["--server", &url, "-n", "shop", "deploy", "--once"])),
        out
    );
}

#[test]
fn top_every_namespace_and_namespaces() {
    let url = start();
    let out = ok(&top(&["--server", &url, "-A", "--once"]));
    assert_eq!(
        out,
        "NAMESPACE   NAME   SUCCESS   RPS      LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
         db          db     100.00%   0.4rps   1.5ms         1.9ms         1.99ms\n\
         shop        api    90.00%    2.0rps   5ms           10ms          46ms\n\
         shop        web    100.00%   1.0rps   1ms           1.8ms         1.98ms\n"
    );
    // Namespaces: `shop` served 90 requests (30 to web, 60 to api), 6 failing.
    let ns = ok(&top(&["--server", &url, "ns", "--once"]));
    let lines: Vec<&str> = ns.lines().collect();
    assert_eq!(
        lines[0],
        "NAME   SUCCESS   RPS      LATENCY_P50   LATENCY_P90   LATENCY_P99"
    );
    assert_eq!(
        lines[1],
        "db     100.00%   0.4rps   1.5ms         1.9ms         1.99ms"
    );
    assert!(lines[2].starts_with("shop   93.33%    3.0rps   "), "{ns}");
    assert_eq!(lines.len(), 3, "{ns}");
}

#[test]
fn top_a_deployment_and_its_edges() {
    let url = start();
    let out = ok(&top(&[
        "--server",
        &url,
        "-n",
        "shop",
        "deploy/web",
        "--once",
    ]));
    assert_eq!(
        out,
        "NAME   SUCCESS   RPS      LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
         web    100.00%   1.0rps   1ms           1.8ms         1.98ms\n\
         \n\
         DIRECTION   NAMESPACE   PEER         SUCCESS   RPS      LATENCY_P50   LATENCY_P90   LATENCY_P99\n\
         FROM        shop        pod/load-0   100.00%   1.0rps   1ms           1.8ms         1.98ms\n\
         TO          shop        api          90.00%    2.0rps   5ms           10ms          46ms\n"
    );
    // An edge to another namespace, and `deploy NAME` as two words.
    let api = ok(&top(&[
        "--server", &url, "-n", "shop", "deploy", "api", "--once",
    ]));
    assert!(
        api.ends_with(
            "FROM        shop        web    90.00%    2.0rps   5ms           10ms          46ms\n\
             TO          db          db     100.00%   0.4rps   1.5ms         1.9ms         1.99ms\n"
        ),
        "{api}"
    );
}

#[test]
fn top_json_is_the_served_documents() {
    let url = start();
    let w = window();
    let out = ok(&top(&["--server", &url, "-n", "shop", "-o", "json"]));
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v, answer("/namespaces/shop/deployments", &w).unwrap());
    assert_eq!(v["kind"], "TrafficMetricsList");

    let out = ok(&top(&[
        "--server",
        &url,
        "-n",
        "shop",
        "deploy/web",
        "-o",
        "json",
    ]));
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "List", "items": [
            answer("/namespaces/shop/deployments/web", &w).unwrap(),
            answer("/namespaces/shop/deployments/web/edges", &w).unwrap(),
        ]})
    );
}

#[test]
fn top_refreshes_without_escape_codes_when_not_a_terminal() {
    let url = start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .args(["top", "--server", &url, "-n", "shop", "--interval", "0.2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run meshbridge");
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let o = child.wait_with_output().expect("wait");
    let out = stdout(&o);
    assert!(
        out.matches("NAME   SUCCESS").count() >= 2,
        "refreshed at least twice:\n{out}\n{}",
        stderr(&o)
    );
    assert!(!out.contains('\x1b'), "no ANSI codes into a pipe: {out:?}");
    assert!(
        out.contains("\nweb    100.00%   1.0rps   1ms           1.8ms         1.98ms\n\nNAME"),
        "tables separated by a blank line: {out}"
    );
}

#[test]
fn top_unknown_deployment_is_a_one_line_error() {
    let url = start();
    let o = top(&["--server", &url, "-n", "shop", "deploy/nope", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!(
            "meshbridge top: {url}/namespaces/shop/deployments/nope: HTTP 404 NotFound: deployments \"nope\" not found\n"
        )
    );
    // -o json fails the same way.
    let o = top(&["--server", &url, "-n", "shop", "deploy/nope", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("HTTP 404 NotFound"), "{}", stderr(&o));
}

#[test]
fn top_unreachable_server_and_usage_errors() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = top(&["--server", &url, "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "meshbridge top: http://127.0.0.1:{port}{PREFIX}/namespaces/default/deployments: "
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let o = top(&["--server", &url, "svc", "--once"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown resource `svc`"),
        "{}",
        stderr(&o)
    );
    let o = top(&["--server", &url, "-A", "deploy/web", "--once"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("-A"), "{}", stderr(&o));
}

/// A kubeconfig whose cluster is `server` (plain HTTP, a bearer token), context namespace
/// `shop`.
fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let p = dir.join("kubeconfig");
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             contexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: shop}}\n\
             current-context: x\nusers:\n- name: u\n  user: {{token: t}}\n"
        ),
    )
    .expect("write kubeconfig");
    p
}

#[test]
fn top_without_server_reads_the_cluster_of_the_kubeconfig() {
    let url = start();
    let root = url.trim_end_matches(PREFIX).to_string();
    let dir = std::env::temp_dir().join(format!("meshbridge-top-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let kc = kubeconfig(&dir, &root);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meshbridge"))
            .arg("top")
            .args(args)
            .env("KUBECONFIG", &kc)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run meshbridge")
    };
    // The context's namespace (`shop`) is the default.
    assert_eq!(
        ok(&run(&["--once"])),
        ok(&top(&["--server", &url, "-n", "shop", "--once"]))
    );
    let o = run(&["deploy/nope", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "meshbridge top: {url}/namespaces/shop/deployments/nope: HTTP 404 NotFound: deployments \"nope\" not found\n"
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}
