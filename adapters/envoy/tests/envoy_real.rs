//! Per-proxy trimming against a real Envoy (found as `$MESHBRIDGE_ENVOY`, else `envoy` on
//! PATH; skipped with a message when missing, a failure under `CI=true`): a client whose
//! identity may not reach `web` or `db` holds no cluster of theirs, yet still sees what the
//! destinations would have answered (HTTP 403 `RBAC: access denied`; a TCP connection accepted
//! and closed on its first byte). A TrafficTarget added later brings the clusters with their
//! endpoints (no 15 s warming) and the route, over state of the world and delta.

use meshbridge_core::Context;
use meshbridge_core::build::build;
use meshbridge_core::load::load_str;
use meshbridge_core::pipeline::snapshot_of;
use meshbridge_envoy::bootstrap::Bootstrap;
use meshbridge_envoy::ca::Ca;
use meshbridge_envoy::proto::SECRET;
use meshbridge_envoy::server::{
    Cache, Connections, EncodeCache, ServerTls, serve, snapshot_from_json,
};
use meshbridge_envoy::sidecar::{
    ADMIN_PORT, OUTBOUND_PORT, ROOT_CA_SECRET, proxies_of, translate_all,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn envoy() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MESHBRIDGE_ENVOY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join("envoy"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Envoy not found (required in CI): set MESHBRIDGE_ENVOY"
        );
        eprintln!("SKIPPED: Envoy not found (set MESHBRIDGE_ENVOY or put envoy on PATH)");
    }
    found
}

/// `web` (HTTP, split over two versions) and `db` (TCP) with pods that need not run: the
/// client's sidecar decides alone while it may reach neither.
fn input(sub: u8, allow_web: bool) -> String {
    let mut s = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: demo}}
spec: {{selector: {{app: web}}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-v1, namespace: demo}}
spec: {{selector: {{app: web, v: "1"}}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: db, namespace: demo}}
spec: {{selector: {{app: db}}, ports: [{{name: pg, port: 5432}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web-1, namespace: demo, labels: {{app: web, v: "1"}}}}
spec: {{serviceAccountName: web, containers: [{{name: c, ports: [{{containerPort: 8080}}]}}]}}
status: {{podIP: 127.{sub}.0.3}}
---
apiVersion: v1
kind: Pod
metadata: {{name: db-0, namespace: demo, labels: {{app: db}}}}
spec: {{serviceAccountName: db, containers: [{{name: c, ports: [{{containerPort: 5432}}]}}]}}
status: {{podIP: 127.{sub}.0.4}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: demo, labels: {{app: client}}}}
spec: {{serviceAccountName: client, containers: [{{name: c}}]}}
status: {{podIP: 127.{sub}.0.2}}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: web, namespace: demo}}
spec:
  service: web
  backends: [{{service: web-v1, weight: 1}}]
"#
    );
    if allow_web {
        s.push_str(include_str!("fixtures/allow_client_to_web.yaml"));
    }
    s
}

const NODE: &str = "demo/client";

/// Translates `text` and publishes the client's snapshot.
fn publish(cache: &Cache, enc: &mut EncodeCache, ca: &Ca, cert: &(String, String), text: &str) {
    let (snap, _, _) = snapshot_of(vec![load_str("in.yaml", text)]);
    let ir = build(&snap);
    let proxies = proxies_of(&ir);
    let (configs, _) = translate_all(&ir, &Context::default(), &proxies);
    let c = configs.iter().find(|c| c.node_id == NODE).unwrap();
    let mut secrets = BTreeMap::new();
    secrets.insert(
        ROOT_CA_SECRET.to_string(),
        json!({"@type": SECRET, "name": ROOT_CA_SECRET, "validationContext": {"trustedCa": {"inlineString": ca.cert_pem}}}),
    );
    secrets.insert(
        c.spiffe.clone(),
        json!({"@type": SECRET, "name": c.spiffe, "tlsCertificate": {
            "certificateChain": {"inlineString": cert.0},
            "privateKey": {"inlineString": cert.1},
        }}),
    );
    let s = snapshot_from_json(&c.resources, &secrets, enc).unwrap();
    cache.set(NODE, &c.spiffe, Arc::new(s));
}

fn http(addr: &str, path: &str, host: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let mut b = String::new();
    let _ = s.read_to_string(&mut b);
    let status = b
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, b)
}

fn active_clusters(admin: &str) -> (String, String) {
    let (_, active) = http(admin, "/config_dump?resource=dynamic_active_clusters", "x");
    let (_, warming) = http(admin, "/config_dump?resource=dynamic_warming_clusters", "x");
    (active, warming)
}

async fn wait_sync(cache: &Cache, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cache.in_sync(NODE) {
        assert!(
            Instant::now() < deadline,
            "{what}: Envoy never acknowledged: {:?}",
            cache.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn trimmed_client(sub: u8, delta: bool) {
    let Some(bin) = envoy() else { return };
    let dir = std::env::temp_dir().join(format!("mb-envoy-trim-{sub}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::generate().unwrap();
    let server = ca.issue_server(Duration::from_secs(600)).unwrap();
    let id = "spiffe://cluster.local/ns/demo/sa/client";
    let xds = ca.issue_workload(id, Duration::from_secs(600)).unwrap();
    let wl = ca.issue_workload(id, Duration::from_secs(600)).unwrap();
    let cert = (wl.cert_pem.clone(), wl.key_pem.clone());
    std::fs::write(dir.join("cert.pem"), &xds.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &xds.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.cert_pem).unwrap();

    let cache = Cache::new();
    let mut enc = EncodeCache::default();
    publish(&cache, &mut enc, &ca, &cert, &input(sub, false));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(serve(
        cache.clone(),
        l,
        Some(ServerTls {
            cert_pem: server.cert_pem.clone(),
            key_pem: server.key_pem.clone(),
            client_ca_pem: ca.cert_pem.clone(),
        }),
        Connections::default(),
        std::future::pending(),
    ));
    let ip = format!("127.{sub}.0.2");
    let bs = Bootstrap {
        node_id: NODE,
        cluster: "demo/client",
        admin_ip: &ip,
        admin_port: ADMIN_PORT,
        xds_ip: "127.0.0.1",
        xds_port: port,
        cert: &dir.join("cert.pem"),
        key: &dir.join("key.pem"),
        ca: &dir.join("ca.pem"),
        delta,
        sds: None,
    }
    .to_json();
    std::fs::write(dir.join("bootstrap.json"), bs.to_string()).unwrap();
    let mut child = tokio::process::Command::new(&bin)
        .arg("-c")
        .arg(dir.join("bootstrap.json"))
        .args([
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "warning",
        ])
        .arg("--log-path")
        .arg(dir.join("envoy.log"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_sync(&cache, "initial").await;
    let admin = format!("{ip}:{ADMIN_PORT}");
    let out = format!("{ip}:{OUTBOUND_PORT}");

    let tcp = format!("{ip}:5432");
    let (admin, out) = tokio::task::spawn_blocking(move || {
        // No cluster of web or db on the client…
        let (active, _) = active_clusters(&admin);
        assert!(
            !active.contains("demo/web"),
            "a web cluster on a trimmed client: {active}"
        );
        assert!(
            !active.contains("demo/db"),
            "a db cluster on a trimmed client: {active}"
        );
        // …yet web answers as its RBAC filter would.
        let (st, resp) = http(&out, "/x", "web.demo");
        assert_eq!(st, 403, "{resp}");
        assert!(resp.ends_with("\r\n\r\nRBAC: access denied"), "{resp}");
        assert!(
            resp.to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{resp}"
        );
        // …and db's port accepts, waits for the client, and closes on its first byte.
        let mut s = TcpStream::connect(&tcp).expect("the TCP listener stays");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("closed before the client spoke: {other:?}"),
        }
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"hello");
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("{n} bytes came back from a denied port"),
        }
        (admin, out)
    })
    .await
    .unwrap();

    // Allow client → web: the clusters arrive with their endpoints and the route follows.
    let t0 = Instant::now();
    publish(&cache, &mut enc, &ca, &cert, &input(sub, true));
    wait_sync(&cache, "after the TrafficTarget").await;
    let synced = t0.elapsed();
    let (active, warming, st, resp) = tokio::task::spawn_blocking(move || {
        let (active, warming) = active_clusters(&admin);
        let (st, resp) = http(&out, "/x", "web.demo");
        (active, warming, st, resp)
    })
    .await
    .unwrap();
    assert!(active.contains("demo/web-v1|80"), "{active}");
    assert!(!active.contains("demo/db"), "{active}");
    assert!(
        !warming.contains("demo/web"),
        "clusters left warming: {warming}"
    );
    assert!(
        synced < Duration::from_secs(5),
        "TrafficTarget → acknowledged took {synced:?}"
    );
    // Routed to web-v1 now: its pod is not running, so the upstream connection fails (503),
    // where the client was answered 403 locally before.
    assert_eq!(st, 503, "{resp}");

    // Remove it again: the clusters go, Envoy unsubscribes from their endpoints (and
    // acknowledges nothing more for them), and the proxy still converges.
    publish(&cache, &mut enc, &ca, &cert, &input(sub, false));
    wait_sync(&cache, "after removing the TrafficTarget").await;
    let (admin, out) = (
        format!("{ip}:{ADMIN_PORT}"),
        format!("{ip}:{OUTBOUND_PORT}"),
    );
    let (active, st, resp) = tokio::task::spawn_blocking(move || {
        let (active, _) = active_clusters(&admin);
        let (st, resp) = http(&out, "/x", "web.demo");
        (active, st, resp)
    })
    .await
    .unwrap();
    assert!(!active.contains("demo/web"), "{active}");
    assert_eq!(st, 403, "{resp}");
    let _ = child.start_kill();
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn trimmed_client_sotw() {
    trimmed_client(62, false).await;
}

#[tokio::test]
async fn trimmed_client_delta() {
    trimmed_client(63, true).await;
}
