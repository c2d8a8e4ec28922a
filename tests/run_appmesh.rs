//! `meshbridge run --backend appmesh` programs AWS App Mesh through its API: the binary, run
//! against a real local moto server (behind the App Mesh test harness of
//! `adapters/appmesh/tests/support`, which also serves the VirtualService operations moto
//! lacks, with a request-verifying mock). Covered: create, a second run that makes no
//! mutating call, a weight edit that updates one route, drift restored, a deleted
//! TrafficSplit cleaned up, the long-running mode following a file edit, a namespace with no
//! App Mesh mesh to program reported, and `--appmesh-mode crd` writing App Mesh controller
//! objects instead.

#[path = "../adapters/appmesh/tests/support/mod.rs"]
mod support;

use meshbridge_appmesh::sync::aws_sdk_appmesh::{Client, types::RouteSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Env, Proxy};

const BIN: &str = env!("CARGO_BIN_EXE_meshbridge");
const MESH: &str = "shop-mesh";

fn tmpdir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "meshbridge-appmesh-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh test directory with `in/shop.yaml` (the fixture) and an `out` path:
/// (dir, in, out).
fn workdir(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = tmpdir(tag);
    let (input, out) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("shop.yaml"), fixture()).unwrap();
    (dir, input, out)
}

fn fixture() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/appmesh/tests/fixtures/shop.yaml"),
    )
    .unwrap()
}

/// The fixture with the `web-canary` split's weights replaced.
fn with_web_weights(yaml: &str, v1: u32, v2: u32) -> String {
    let old = "  - {service: web-v1, weight: 1}\n  - {service: web-v2, weight: 2}";
    assert!(yaml.contains(old), "fixture changed: update this test");
    yaml.replace(
        old,
        &format!("  - {{service: web-v1, weight: {v1}}}\n  - {{service: web-v2, weight: {v2}}}"),
    )
}

/// The fixture without the `web-canary` split.
fn without_web_split(yaml: &str) -> String {
    yaml.split("\n---\n")
        .filter(|d| !d.contains("name: web-canary"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

async fn env() -> Option<Env> {
    Env::start(MESH).await
}

/// `meshbridge run` with the AWS chain pointed at the harness (and nothing else: no
/// profile, no instance metadata).
fn command(proxy: &Proxy, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("HOME", home)
        .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL_APP_MESH")
        .env("RUST_LOG", "info");
    c
}

async fn run_once(e: &Env, input: &Path, out: &Path, extra: &[&str]) -> Output {
    let home = input.parent().unwrap().to_path_buf();
    let mut args = vec![
        "run".to_string(),
        format!("--source=dir:{}", input.display()),
        format!("--output=dir:{}", out.display()),
        "--backend=appmesh".into(),
        "--once".into(),
        "--metrics-addr=off".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = command(&e.proxy, &home, &args);
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Requests that changed something (App Mesh creates with PUT, updates with PUT, deletes
/// with DELETE; lists, describes and tag reads are GET).
fn mutating(proxy: &Proxy) -> Vec<String> {
    proxy
        .take_seen()
        .into_iter()
        .filter(|s| s.method != "GET")
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

/// The spec App Mesh holds for the web-canary split's route.
async fn web_route(c: &Client) -> Option<RouteSpec> {
    let out = c
        .describe_route()
        .mesh_name(MESH)
        .virtual_router_name("web_shop")
        .route_name("p8080-split")
        .send()
        .await
        .ok()?;
    out.route()?.spec().cloned()
}

async fn web_weights(c: &Client) -> Option<Vec<(String, i32)>> {
    let spec = web_route(c).await?;
    let action = spec.http_route()?.action()?.clone();
    Some(
        action
            .weighted_targets()
            .iter()
            .map(|w| (w.virtual_node().to_string(), w.weight()))
            .collect(),
    )
}

fn w(v1: i32, v2: i32) -> Option<Vec<(String, i32)>> {
    Some(vec![("web-v1_shop".into(), v1), ("web-v2_shop".into(), v2)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_creates_then_only_changes_then_cleans_up() {
    let Some(e) = env().await else { return };
    let (dir, input, out) = workdir("once");
    let mesh_flag = format!("--appmesh-mesh={MESH}");

    // 1. Create.
    let o = run_once(&e, &input, &out, &[&mesh_flag]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(web_weights(&e.client).await, w(33, 67));
    let created = mutating(&e.proxy);
    assert!(
        created.iter().any(|r| r.contains("/virtualRouters")) && created.len() > 5,
        "{created:#?}"
    );
    let vs = e.proxy.state.lock().unwrap().services.clone();
    assert!(
        vs.contains_key(&(MESH.to_string(), "web.shop.svc.cluster.local".to_string())),
        "{vs:#?}"
    );
    // API mode: nothing of App Mesh's goes to --output.
    for f in walk(&out) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("appmesh.k8s.aws"), "{f}: {text}");
    }

    // 2. Nothing changed: reads only.
    let o = run_once(&e, &input, &out, &[&mesh_flag]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(mutating(&e.proxy), Vec::<String>::new());

    // 3. A weight edit updates that one route.
    std::fs::write(input.join("shop.yaml"), with_web_weights(&fixture(), 1, 3)).unwrap();
    let o = run_once(&e, &input, &out, &[&mesh_flag]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(web_weights(&e.client).await, w(25, 75));
    let m = mutating(&e.proxy);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(
        m[0].contains("/virtualRouter/web_shop/routes/p8080-split"),
        "{m:#?}"
    );

    // 4. Drift behind meshbridge's back is restored.
    let mut spec = web_route(&e.client).await.expect("the web route");
    let hr = spec.http_route.take().unwrap();
    let action = hr.action().unwrap().clone();
    let targets: Vec<_> = action
        .weighted_targets()
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.weight = 50;
            t
        })
        .collect();
    let mut action = action;
    action.weighted_targets = targets;
    let mut hr = hr;
    hr.action = Some(action);
    spec.http_route = Some(hr);
    e.client
        .update_route()
        .mesh_name(MESH)
        .virtual_router_name("web_shop")
        .route_name("p8080-split")
        .spec(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(web_weights(&e.client).await, w(50, 50));
    e.proxy.take_seen();
    let o = run_once(&e, &input, &out, &[&mesh_flag]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(web_weights(&e.client).await, w(25, 75));
    assert_eq!(mutating(&e.proxy).len(), 1);

    // 5. The split deleted: its router, route, nodes and service go; the rest stays.
    std::fs::write(input.join("shop.yaml"), without_web_split(&fixture())).unwrap();
    let o = run_once(&e, &input, &out, &[&mesh_flag]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(web_weights(&e.client).await, None);
    let m = mutating(&e.proxy);
    assert!(
        m.iter().all(|r| r.starts_with("DELETE")) && !m.is_empty(),
        "{m:#?}"
    );
    let routers = e
        .client
        .list_virtual_routers()
        .mesh_name(MESH)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = routers
        .virtual_routers()
        .iter()
        .map(|r| r.virtual_router_name())
        .collect();
    assert!(!names.contains(&"web_shop"), "{names:?}");
    assert!(names.contains(&"api_shop"), "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_mode_follows_a_file_edit() {
    let Some(e) = env().await else { return };
    let (dir, input, out) = workdir("watch");
    let mut child = command(
        &e.proxy,
        &dir,
        &[
            "run",
            &format!("--source=dir:{}", input.display()),
            &format!("--output=dir:{}", out.display()),
            "--backend=appmesh",
            &format!("--appmesh-mesh={MESH}"),
            "--metrics-addr=off",
            "--poll-ms=50",
            "--debounce-ms=20",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let wait_for = |want: Option<Vec<(String, i32)>>| {
        let c = e.client.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let got = web_weights(&c).await;
                if got == want {
                    return true;
                }
                if Instant::now() > deadline {
                    eprintln!("last seen: {got:?}");
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let first = wait_for(w(33, 67)).await;
    std::fs::write(input.join("shop.yaml"), with_web_weights(&fixture(), 3, 1)).unwrap();
    let second = first && wait_for(w(75, 25)).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(first, "the initial split was not programmed within 30 s");
    assert!(second, "the edit was not programmed within 30 s");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_without_an_app_mesh_mesh_is_reported() {
    let Some(e) = env().await else { return };
    let (dir, input, out) = workdir("nomesh");
    let o = run_once(&e, &input, &out, &[]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("namespace shop: no App Mesh mesh to program"),
        "{}",
        stderr(&o)
    );
    assert_eq!(mutating(&e.proxy), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crd_mode_writes_app_mesh_controller_objects() {
    let (dir, input, out) = workdir("crd");
    let o = Command::new(BIN)
        .args([
            "run",
            &format!("--source=dir:{}", input.display()),
            &format!("--output=dir:{}", out.display()),
            "--backend=appmesh",
            "--appmesh-mode=crd",
            "--once",
            "--metrics-addr=off",
        ])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    // The TrafficTarget in the fixture cannot be expressed: a warning, exit 0.
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let files = walk(&out);
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        text.contains("apiVersion: appmesh.k8s.aws/v1beta2"),
        "{files:#?}"
    );
    assert!(text.contains("kind: VirtualRouter"), "{files:#?}");
    assert!(
        stderr(&o).contains("App Mesh has no request-level authorization"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}
