//! Benchmarks of the built-in Envoy backend (figures, not pass/fail; not run in CI).
//!
//! ```text
//! cargo bench -p meshbridge-envoy --bench envoy_xds -- build      # snapshot build, 1k and 10k services
//! cargo bench -p meshbridge-envoy --bench envoy_xds -- push       # ADS push to 1,000 and 5,000 synthetic clients
//! cargo build --release && MESHBRIDGE_ENVOY=... \
//!   cargo bench -p meshbridge-envoy --bench envoy_xds -- edit     # file edit → route applied by real Envoy
//! ```
//! `build`: DIR-shaped YAML with N services (`bench_mesh`: one pod each, the client allowed
//! to call each, N/10 splits) → load + validate (IR) → one client proxy's resources (JSON) → encoded
//! protobuf. `push`: a server process (this binary, `serve N`) holding an N-service snapshot;
//! K synthetic ADS clients (envoy-types' client, SotW, ACK at once) over K/100 HTTP/2
//! connections; time until all K have ACKed everything, then a route-only change until all
//! have ACKed it; server RSS before and after. `edit`: `meshbridge local up` (release binary,
//! `MESHBRIDGE_BIN` or target/release/meshbridge) with 1,000 services and one sidecar; the
//! split file is rewritten M times and the latency is Envoy's own RDS `update_time` of the
//! split's root service (`http.outbound_http.rds.outbound_http/<ns>/<svc>.update_time`: each
//! service has its own route configuration) minus the write time; the bytes the sidecar
//! received from the control plane per edit (`cluster.xds.upstream_cx_rx_bytes_total`) are
//! `edit_bytes_sent`, those it received from start to ready (the whole configuration)
//! `full_resend_bytes`.
//!
//! ```text
//! cargo bench -p meshbridge-envoy --bench envoy_xds -- mesh       # per-proxy resources, 1k-service mesh
//! ```
//! `mesh`: the synthetic cluster of `meshbridge_core::synth` (1,000 services, one identity
//! each, 250 TrafficTargets with one source each, 250 splits), every proxy translated: resource
//! counts per proxy (listeners, virtual hosts and how many are trimmed to the deny listener,
//! clusters, endpoints) and encoded bytes; then a server process (`serve-mesh N K`) holding the
//! per-proxy snapshots of K proxies, K synthetic clients each connected as its own node: server
//! RSS per proxy held and per proxy connected.
//!
//! Sizes: 1,000 services, K = 1,000 and 5,000 push clients, 1,000 per-proxy clients, 40 edits;
//! `MESHBRIDGE_BENCH_QUICK=1` (`scripts/bench.sh --quick`): 100 services, K = 10 and 100, 10
//! per-proxy clients, 5 edits. Each figure is also a `BENCH {…}` record (benches/common/record.rs).

#[path = "common/record.rs"]
mod record;
#[path = "common/rss.rs"]
mod rss;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::route::v3::ScopedRouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use meshbridge_core::load::load_str;
use meshbridge_core::synth::{Synth, Workloads};
use meshbridge_core::{Context, build::build, pipeline::snapshot_of};
use meshbridge_envoy::proto::{CLUSTER, ENDPOINT, LISTENER, ROUTE, SCOPED_ROUTE};
use meshbridge_envoy::server::{
    Cache, Connections, EncodeCache, NodeSnapshot, serve, snapshot_from_json,
};
use meshbridge_envoy::sidecar::{Proxy, translate_all};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The bench mesh (`meshbridge_core::synth`): N services in namespaces of 100, a tenth of
/// them split (with the split's route group, TrafficTarget and TCPRoute), and one client
/// (`ns0/client`, the proxy measured) allowed to call every service.
fn bench_mesh(n: usize, workloads: Workloads) -> Synth {
    Synth {
        workloads,
        namespace_objects: true,
        client: true,
        ..Synth::new(4 * (n / 10), n)
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn client_proxy() -> Proxy {
    Proxy {
        namespace: "ns0".into(),
        name: "client".into(),
        identity: meshbridge_core::ir::Identity::new("ns0", "client"),
        ip: Some("10.255.0.1".into()),
        app_ip: "127.0.0.1".into(),
        labels: [("app".to_string(), "client".to_string())].into(),
        container_ports: vec![],
    }
}

/// The client proxy's snapshot for N services (and timings).
fn build_snapshot(n: usize, report: bool) -> NodeSnapshot {
    let text = bench_mesh(n, Workloads::Pods).yaml();
    let mut t = vec![];
    let mut snap_out = NodeSnapshot::default();
    for _ in 0..if report { 5 } else { 1 } {
        let t0 = Instant::now();
        let (snap, _, _) = snapshot_of(vec![load_str("bench.yaml", &text)]);
        let ir = build(&snap);
        let t1 = Instant::now();
        let cx = Context::default();
        let (configs, _) = translate_all(&ir, &cx, &[client_proxy()]);
        let t2 = Instant::now();
        let mut enc = EncodeCache::default();
        let ns = snapshot_from_json(&configs[0].resources, &BTreeMap::new(), &mut enc).unwrap();
        let t3 = Instant::now();
        // Re-encode after a one-split edit with the cache (what an edit costs).
        let _ = snapshot_from_json(&configs[0].resources, &BTreeMap::new(), &mut enc).unwrap();
        let t4 = Instant::now();
        t.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3]);
        snap_out = ns;
    }
    if report {
        let ms = |i: usize| {
            let mut v: Vec<f64> = t.iter().map(|x| x[i].as_secs_f64() * 1e3).collect();
            (pct(&mut v, 0.5), pct(&mut v, 1.0))
        };
        let (l50, lmax) = ms(0);
        let (x50, _) = ms(1);
        let (e50, emax) = ms(2);
        let (c50, cmax) = ms(3);
        let bytes: BTreeMap<&str, usize> = [CLUSTER, ENDPOINT, LISTENER, SCOPED_ROUTE, ROUTE]
            .iter()
            .map(|ty| {
                (
                    ty.rsplit('.').next().unwrap(),
                    snap_out
                        .get(ty)
                        .map(|m| m.values().map(|r| r.any.value.len()).sum())
                        .unwrap_or(0),
                )
            })
            .collect();
        println!(
            "build n={n:>6}: load+IR p50 {l50:8.1} ms (max {lmax:.1}) | translate (1 proxy) p50 {x50:7.1} ms = {:.1} µs/service | encode p50 {e50:7.1} ms = {:.1} µs/service (max {emax:.1}) | cached re-encode {c50:.1} ms (max {cmax:.1}) | bytes {bytes:?}",
            x50 * 1e3 / n as f64,
            e50 * 1e3 / n as f64
        );
    }
    snap_out
}

/// The route configuration a route-only change edits: the first service's outbound one.
fn flip_target(snap: &NodeSnapshot) -> String {
    snap.get(ROUTE)
        .and_then(|m| m.keys().find(|k| k.starts_with("outbound_http/")).cloned())
        .expect("an outbound route configuration")
}

/// A route configuration with its first virtual host renamed `flip-N` (a route-only change).
fn flipped_route(
    r: &meshbridge_envoy::server::Resource,
    n: u32,
) -> envoy_types::pb::google::protobuf::Any {
    let mut json = meshbridge_envoy::proto::to_json(&r.any).unwrap();
    json["virtualHosts"][0]["name"] = serde_json::json!(format!("flip-{n}"));
    meshbridge_envoy::proto::encode(&json).unwrap()
}

/// `snap` after the `n`th route-only change (see [`flipped_route`]).
fn flipped(snap: &NodeSnapshot, n: u32) -> NodeSnapshot {
    let mut s = snap.clone();
    let name = flip_target(snap);
    if let Some(routes) = s.types.get_mut(ROUTE)
        && let Some(r) = routes.get(&name).cloned()
    {
        let any = flipped_route(&r, n);
        routes.insert(
            name.clone(),
            Arc::new(meshbridge_envoy::server::Resource::new(name, any)),
        );
    }
    s
}

/// Serves `cache` (ADS, plain text) on a fresh loopback port until the process ends.
async fn serve_on_loopback(cache: &Arc<Cache>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(serve(
        cache.clone(),
        l,
        None,
        Connections::default(),
        std::future::pending(),
    ));
    port
}

/// One message per line the parent writes on stdin ("flip"), until stdin closes.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for l in std::io::stdin().lock().lines() {
            if l.is_err() || tx.send(()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Child process: serves N services to any node id `n-*`; reads "flip" lines on stdin.
/// The meshbridge push server: one shared snapshot for node ids `n-0` … `n-{nodes - 1}`
/// (every client of every size of the run has its own node id).
fn serve_child(n: usize, nodes: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let before = rss::rss_kib(std::process::id());
        let snap = Arc::new(build_snapshot(n, false));
        let after = rss::rss_kib(std::process::id());
        let cache = Cache::new();
        let set = |snap: &Arc<NodeSnapshot>| {
            let mut m = HashMap::new();
            for k in 0..nodes {
                m.insert(format!("n-{k}"), ("spiffe://x".to_string(), snap.clone()));
            }
            cache.set_all(m);
        };
        set(&snap);
        let port = serve_on_loopback(&cache).await;
        println!(
            "port {} rss_before_kb {before} rss_snapshot_kb {after}",
            port
        );
        let mut flips = 0u32;
        let mut lines = stdin_lines();
        while lines.recv().await.is_some() {
            flips += 1;
            // A route-only change: new weights on the client's outbound route.
            let s = flipped(&snap, flips);
            set(&Arc::new(s));
            println!("flipped");
        }
    });
}

async fn client(
    ch: tonic::transport::Channel,
    node: String,
    done: tokio::sync::mpsc::UnboundedSender<(String, String)>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut c = AggregatedDiscoveryServiceClient::new(ch).max_decoding_message_size(256 << 20);
    let first = DiscoveryRequest {
        node: Some(Node {
            id: node.clone(),
            ..Default::default()
        }),
        type_url: CLUSTER.into(),
        ..Default::default()
    };
    tx.send(first).await.unwrap();
    tx.send(DiscoveryRequest {
        type_url: LISTENER.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut stream = c
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // As Envoy does: endpoints of every cluster after CDS, route scopes (wildcard) after
    // LDS, the route configurations the scopes name after SRDS.
    let mut names: HashMap<String, Vec<String>> = HashMap::new();
    let mut eds_subscribed = false;
    while let Ok(Some(r)) = stream.message().await {
        let DiscoveryResponse {
            version_info,
            type_url,
            nonce,
            resources,
            ..
        } = r;
        if type_url == CLUSTER && !eds_subscribed {
            let cl: Vec<String> = resources
                .iter()
                .filter_map(|a| Cluster::decode(a.value.as_slice()).ok())
                .map(|c| c.name)
                .collect();
            names.insert(ENDPOINT.into(), cl.clone());
            eds_subscribed = true;
            tx.send(DiscoveryRequest {
                type_url: ENDPOINT.into(),
                resource_names: cl,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        if type_url == LISTENER && !names.contains_key(SCOPED_ROUTE) {
            names.insert(SCOPED_ROUTE.into(), vec![]);
            tx.send(DiscoveryRequest {
                type_url: SCOPED_ROUTE.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        if type_url == SCOPED_ROUTE && !names.contains_key(ROUTE) {
            let mut rc: Vec<String> = resources
                .iter()
                .filter_map(|a| ScopedRouteConfiguration::decode(a.value.as_slice()).ok())
                .map(|s| s.route_configuration_name)
                .collect();
            rc.sort();
            rc.dedup();
            names.insert(ROUTE.into(), rc.clone());
            tx.send(DiscoveryRequest {
                type_url: ROUTE.into(),
                resource_names: rc,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let ack = DiscoveryRequest {
            type_url: type_url.clone(),
            version_info: version_info.clone(),
            response_nonce: nonce,
            resource_names: names.get(&type_url).cloned().unwrap_or_default(),
            ..Default::default()
        };
        if tx.send(ack).await.is_err() {
            break;
        }
        let _ = done.send((type_url, version_info));
    }
}

struct Peer {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: std::io::BufReader<std::process::ChildStdout>,
    port: u16,
}

fn spawn_peer(mut cmd: std::process::Command) -> (Peer, String) {
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        Peer {
            child,
            stdin,
            out,
            port,
        },
        line.trim().to_string(),
    )
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes the snapshot (and the route-change variant) for the Python peer.
fn dump_for_peer(
    snap: &NodeSnapshot,
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (dir.join("snapshot.jsonl"), dir.join("flip.jsonl"));
    let mut f = std::fs::File::create(&a).unwrap();
    for ty in [CLUSTER, ENDPOINT, LISTENER, SCOPED_ROUTE, ROUTE] {
        for r in snap.get(ty).into_iter().flat_map(|m| m.values()) {
            writeln!(
                f,
                "{}",
                serde_json::json!({"type": ty, "name": r.name, "value": to_hex(&r.any.value)})
            )
            .unwrap();
        }
    }
    let name = flip_target(snap);
    let any = flipped_route(&snap.get(ROUTE).unwrap()[&name], 1);
    let mut f = std::fs::File::create(&b).unwrap();
    writeln!(
        f,
        "{}",
        serde_json::json!({"type": ROUTE, "name": name, "value": to_hex(&any.value)})
    )
    .unwrap();
    (a, b)
}

fn push_clients(label: &str, n: usize, peer: &mut Peer, ks: &[usize]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut offset = 0;
    let port = peer.port;
    for &k in ks {
        let rss0 = rss::rss_kib(peer.child.id());
        let measured: Result<_, String> = rt.block_on(async {
            let conns = k.div_ceil(100);
            let mut chans = vec![];
            for _ in 0..conns {
                chans.push(
                    tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                        .unwrap()
                        .connect()
                        .await
                        .unwrap(),
                );
            }
            let (dtx, mut drx) = tokio::sync::mpsc::unbounded_channel();
            let t0 = Instant::now();
            for i in 0..k {
                tokio::spawn(client(
                    chans[i % conns].clone(),
                    format!("n-{}", offset + i),
                    dtx.clone(),
                ));
            }
            // Initial sync: every client ACKed RDS.
            let mut rds = 0;
            while rds < k {
                let Ok(Some((t, _))) =
                    tokio::time::timeout(Duration::from_secs(300), drx.recv()).await
                else {
                    return Err(format!(
                        "initial sync incomplete: {rds} of {k} clients had ACKed RDS after {:.0} s",
                        t0.elapsed().as_secs_f64()
                    ));
                };
                if t == ROUTE {
                    rds += 1;
                }
            }
            let t_all = t0.elapsed();
            tokio::time::sleep(Duration::from_millis(200)).await;
            while drx.try_recv().is_ok() {}
            let rss1 = rss::rss_kib(peer.child.id());
            // Route-only change.
            let t1 = Instant::now();
            peer.stdin.write_all(b"flip\n").unwrap();
            peer.stdin.flush().unwrap();
            let (mut rds, mut extra) = (0, 0);
            while rds < k {
                let Ok(Some((t, _))) =
                    tokio::time::timeout(Duration::from_secs(300), drx.recv()).await
                else {
                    return Err(format!(
                        "route change incomplete: {rds} of {k} clients had ACKed it after 300 s"
                    ));
                };
                if t == ROUTE {
                    rds += 1;
                } else {
                    extra += 1;
                }
            }
            Ok((t_all, t1.elapsed(), rss1, extra))
        });
        let (t_all, t_flip, rss1, extra) = match measured {
            Ok(m) => m,
            Err(e) => {
                // No figure for this size (and the server's state is unknown: stop here).
                println!("push {label} n={n} k={k:>5}: FAILED: {e}");
                println!("BENCH-SKIPPED push_initial_s size={k} impl={label}: {e}");
                break;
            }
        };
        let mut l = String::new();
        peer.out.read_line(&mut l).unwrap();
        offset += k;
        let per_proxy_kb = rss1.saturating_sub(rss0) as f64 / k as f64;
        println!(
            "push {label} n={n} k={k:>5}: initial sync of all clients {:8.1} ms | route change → all ACKed {:7.1} ms (other types re-sent: {extra}) | server RSS +{} KB = {per_proxy_kb:.1} KB per connected proxy",
            t_all.as_secs_f64() * 1e3,
            t_flip.as_secs_f64() * 1e3,
            rss1.saturating_sub(rss0),
        );
        if label == "mesh-per-proxy" {
            // Each client its own node with its own per-proxy snapshot: the real shape.
            record::record(
                "xds_rss_kb_per_proxy",
                k,
                "KB",
                per_proxy_kb,
                "meshbridge",
                None,
            );
        } else {
            record::record("push_initial_s", k, "s", t_all.as_secs_f64(), label, None);
            record::record("push_change_s", k, "s", t_flip.as_secs_f64(), label, None);
        }
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    }
}

fn push_bench(n: usize, ks: &[usize]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    // Client node ids run on across the sizes (n-0 … n-{sum - 1}): the server knows them all.
    let nodes: usize = ks.iter().sum();
    cmd.args(["serve", &n.to_string(), &nodes.to_string()]);
    let (mut peer, hello) = spawn_peer(cmd);
    println!("push meshbridge n={n}: {hello}");
    push_clients("meshbridge", n, &mut peer, ks);
    let _ = peer.child.kill();
    let _ = peer.child.wait();
    // Baseline: the Python grpcio peer, same resources, same clients.
    let Ok(py) = std::env::var("PYADS_PYTHON") else {
        println!(
            "push baseline: skipped (set PYADS_PYTHON to a python with grpcio==1.85.1 and xds-protos==1.85.0)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("mb-bench-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = dump_for_peer(&build_snapshot(n, false), &dir);
    let mut cmd = std::process::Command::new(py);
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../benches/envoy_peer/pyads.py"
    ))
    .arg(&a)
    .arg(&b);
    let (mut peer, hello) = spawn_peer(cmd);
    println!("push python-grpcio n={n}: {hello}");
    push_clients("python-grpcio", n, &mut peer, ks);
    let _ = peer.child.kill();
    let _ = peer.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One counter or gauge of an Envoy admin (0 when absent).
fn admin_stat(admin: &str, name: &str) -> f64 {
    let filter: String = format!("^{}$", name.replace('.', "\\."))
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (_, b) = http_req(admin, "x", &format!("/stats?filter={filter}"));
    let prefix = format!("{name}: ");
    b.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

/// One HTTP/1.1 request to `addr` with `Host: host`: (status, body); (0, "") when it fails.
fn http_req(addr: &str, host: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
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
    let body = b
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Pods the edit bench runs besides the client (8 sidecars in all): the two backends of the
/// split it edits, the service whose access it edits, and four more services' pods.
fn edit_pods(mesh: &Synth, root: usize, bin: &str) -> (String, (usize, usize)) {
    // Each pod runs meshbridge's echo server (it answers with its pod's name).
    let c =
        format!("{{name: c, command: [\"{bin}\", echo-server], ports: [{{containerPort: 8080}}]}}");
    let (a, b) = mesh.backends(root);
    let mut idx = vec![a, b];
    let mut i = root;
    while idx.len() < 6 {
        if i != a && i != b {
            idx.push(i);
        }
        i -= 1;
    }
    let mut y = String::new();
    for i in idx {
        let ns = mesh.namespace_of(i);
        y += &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: pod{i}, namespace: {ns}, labels: {{app: svc{i}}}}}\nspec: {{serviceAccountName: sa{i}, containers: [{c}]}}\n---\n"
        );
    }
    y += "apiVersion: v1\nkind: Service\nmetadata: {name: guarded, namespace: ns0}\nspec:\n  selector: {app: guarded}\n  ports: [{name: http, port: 8080, targetPort: 8080}]\n---\n";
    y += &format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: guarded, namespace: ns0, labels: {{app: guarded}}}}\nspec: {{serviceAccountName: guarded, containers: [{c}]}}\n"
    );
    (y, (a, b))
}

/// The access the edit bench toggles: the client may call `guarded`, or only `nobody` may.
fn guarded_access(allowed: bool) -> String {
    let who = if allowed { "client" } else { "nobody" };
    format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: guarded-all, namespace: ns0}}\nspec:\n  matches:\n  - {{name: all, pathRegex: \".*\"}}\n---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: guarded, namespace: ns0}}\nspec:\n  destination: {{kind: ServiceAccount, name: guarded, namespace: ns0}}\n  rules:\n  - {{kind: HTTPRouteGroup, name: guarded-all, matches: [all]}}\n  sources:\n  - {{kind: ServiceAccount, name: {who}, namespace: ns0}}\n"
    )
}

/// Replaces `path` at once (write + rename) and returns the time of the rename (ms since
/// the epoch).
fn replace_file(path: &std::path::Path, text: &str) -> f64 {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    let t = now_ms();
    std::fs::rename(&tmp, path).unwrap();
    t
}

/// Sends requests through the client's sidecar (`outbound`, `Host: host`) until `seen` holds
/// for the answer; its time (ms since the epoch), or `None` after 10 s.
fn first_request_that(outbound: &str, host: &str, seen: impl Fn(u16, &str) -> bool) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        let (st, body) = http_req(outbound, host, "/api");
        if seen(st, &body) {
            return Some(now_ms());
        }
        last = (st, body);
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "edit: no awaited answer for {host} within 10 s; the last: {} {}",
        last.0,
        &last.1[..last.1.len().min(300)]
    );
    None
}

/// Stops a `meshbridge local up` child with SIGTERM (it stops its sidecars and apps on the
/// way out) and waits for it.
fn stop_local(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// `meshbridge local up` with N services and 8 sidecars (the client, the edited split's two
/// backends, the guarded service and four more): M TrafficSplit edits (all traffic to one
/// backend, then to the other) and M access edits (the client allowed to call `guarded`, or
/// not). Per split edit: the write → Envoy's RDS `update_time` of the service's route
/// configuration, and → the first request through the client's sidecar answered by the new
/// backend; the bytes the client's sidecar received. Per access edit: the write → the first
/// request whose answer changed (200 ↔ 403).
fn edit_bench(n: usize, edits: usize) {
    let bin = std::env::var("MESHBRIDGE_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/release/meshbridge"
        )
        .into()
    });
    let dir = std::env::temp_dir().join(format!("mb-bench-edit-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The split the bench rewrites is rooted at the last service (no other split's root).
    let mesh = bench_mesh(n, Workloads::None);
    let root = n - 1;
    let root_ns = mesh.namespace_of(root);
    let (pods, (a, b)) = edit_pods(&mesh, root, &bin);
    let split_file = |to_a: bool| mesh.split_yaml(root, if to_a { (100, 0) } else { (0, 100) });
    std::fs::write(dir.join("services.yaml"), mesh.yaml()).unwrap();
    std::fs::write(dir.join("pods.yaml"), pods).unwrap();
    std::fs::write(dir.join("split.yaml"), split_file(true)).unwrap();
    std::fs::write(dir.join("access.yaml"), guarded_access(true)).unwrap();
    let mut child = std::process::Command::new(&bin)
        .args(["local", "up"])
        .arg(&dir)
        .args(["--subnet", "40"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.with_extension("err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    // Its output lines, read on their own thread (which keeps draining them), so that the
    // wait for `ready` is bounded.
    let (line_tx, lines) = std::sync::mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if line_tx.send(l).is_err() {
                break;
            }
        }
    });
    let (mut admin, mut outbound, mut sidecars) = (String::new(), String::new(), 0);
    let t0 = Instant::now();
    let ready_by = t0 + Duration::from_secs(600);
    loop {
        let left = ready_by.saturating_duration_since(Instant::now());
        let l = match lines.recv_timeout(left) {
            Ok(l) => l,
            Err(e) => {
                let err = std::fs::read_to_string(dir.with_extension("err")).unwrap_or_default();
                let why = match e {
                    std::sync::mpsc::RecvTimeoutError::Timeout => "not ready within 600 s",
                    std::sync::mpsc::RecvTimeoutError::Disconnected => "meshbridge local exited",
                };
                println!(
                    "edit n={n}: FAILED: {why}: {}",
                    &err[err.len().saturating_sub(2000)..]
                );
                println!("BENCH-SKIPPED edit_to_served_p99_ms size={n}: {why}");
                stop_local(&mut child);
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_file(dir.with_extension("err"));
                return;
            }
        };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l)
            && let Some(a) = v["admin"].as_str()
        {
            sidecars += 1;
            if v["pod"] == "ns0/client" {
                admin = a.to_string();
                outbound = v["outbound"].as_str().unwrap_or_default().to_string();
            }
        }
        if l.trim() == "ready" {
            break;
        }
    }
    println!(
        "edit n={n}: `local up` → ready {:.0} ms with {sidecars} sidecars; runtime RSS {} KB",
        t0.elapsed().as_secs_f64() * 1e3,
        rss::rss_kib(child.id())
    );
    let rc = format!("outbound_http/{root_ns}/svc{root}");
    let stat_name = format!("http.outbound_http.rds.{rc}.update_time");
    // Bytes the sidecar received from the control plane (its `xds` cluster): from start to
    // ready is the whole configuration sent once; per edit, what the edit sent.
    let rx = |admin: &str| admin_stat(admin, "cluster.xds.upstream_cx_rx_bytes_total");
    let full_bytes = rx(&admin);
    let host = format!("svc{root}.{root_ns}");
    let served_by = |i: usize| {
        let pod = format!("pod{i}");
        move |st: u16, body: &str| {
            st == 200
                && serde_json::from_str::<serde_json::Value>(body)
                    .is_ok_and(|v| v["pod"] == pod.as_str())
        }
    };
    if first_request_that(&outbound, &host, served_by(a)).is_none() {
        println!("edit n={n}: FAILED: no request through the client's sidecar reached pod{a}");
        println!(
            "BENCH-SKIPPED edit_to_served_p99_ms size={n}: the split's first backend never answered"
        );
    }
    let (mut applied, mut served, mut bytes, mut access) = (vec![], vec![], vec![], vec![]);
    for e in 0..edits {
        // Split: every request to the other backend.
        let to_a = e % 2 == 1;
        let rx_before = rx(&admin);
        let t = replace_file(&dir.join("split.yaml"), &split_file(to_a));
        if let Some(seen) =
            first_request_that(&outbound, &host, served_by(if to_a { a } else { b }))
        {
            served.push(seen - t);
            applied.push(admin_stat(&admin, &stat_name) - t);
            std::thread::sleep(Duration::from_millis(50));
            bytes.push(rx(&admin) - rx_before);
        }
        // Access: the client allowed to call `guarded`, or not.
        let allowed = e % 2 == 1;
        let t = replace_file(&dir.join("access.yaml"), &guarded_access(allowed));
        let want = if allowed { 200 } else { 403 };
        if let Some(seen) = first_request_that(&outbound, "guarded.ns0", |st, _| st == want) {
            access.push(seen - t);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss = rss::rss_kib(child.id());
    stop_local(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
    // The runtime's own per-reload timings (last edits).
    let err = std::fs::read_to_string(dir.with_extension("err")).unwrap_or_default();
    let phases: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(": generation "))
        .collect();
    for l in &phases[phases.len().saturating_sub(3)..] {
        println!("edit n={n}: {l}");
    }
    let _ = std::fs::remove_file(dir.with_extension("err"));
    if !served.is_empty() {
        for (f, v) in [
            ("edit_to_served_p50_ms", pct(&mut served, 0.5)),
            ("edit_to_served_p99_ms", pct(&mut served, 0.99)),
            ("edit_to_applied_p99_ms", pct(&mut applied, 0.99)),
        ] {
            record::record(f, n, "ms", v, "meshbridge", None);
        }
    }
    if !access.is_empty() {
        let v = pct(&mut access, 0.99);
        record::record(
            "access_edit_to_served_p99_ms",
            n,
            "ms",
            v,
            "meshbridge",
            None,
        );
    }
    if !bytes.is_empty() && full_bytes > 0.0 {
        let per_edit = pct(&mut bytes, 0.5);
        record::record("edit_bytes_sent", n, "bytes", per_edit, "meshbridge", None);
        record::record(
            "full_resend_bytes",
            n,
            "bytes",
            full_bytes,
            "meshbridge",
            None,
        );
        println!(
            "edit n={n}: bytes the client's sidecar received per split edit p50 {per_edit:.0} (max {:.0}) vs the whole configuration {full_bytes:.0} ({:.0}x less)",
            pct(&mut bytes, 1.0),
            full_bytes / per_edit.max(1.0)
        );
    }
    println!(
        "edit n={n}: {}/{edits} split edits served: write → first request answered by the new backend p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (Envoy's RDS update_time p50 {:.0} ms, p99 {:.0} ms); {}/{edits} access edits: write → first request with the new answer p50 {:.0} ms, p99 {:.0} ms; runtime RSS after {rss} KB",
        served.len(),
        pct(&mut served, 0.5),
        pct(&mut served, 0.99),
        pct(&mut served, 1.0),
        pct(&mut applied, 0.5),
        pct(&mut applied, 0.99),
        access.len(),
        pct(&mut access, 0.5),
        pct(&mut access, 0.99),
    );
}

/// The synthetic 1k-service mesh: IR and every proxy, with pod addresses assigned (the
/// synthetic input has Deployments only).
fn mesh_input(n: usize) -> (meshbridge_core::Ir, Vec<Proxy>) {
    let text = meshbridge_core::synth::cluster_yaml(n, n);
    let (snap, _, _) = snapshot_of(vec![load_str("synth.yaml", &text)]);
    let ir = build(&snap);
    let mut proxies = meshbridge_envoy::sidecar::proxies_of(&ir);
    for (i, p) in proxies.iter_mut().enumerate() {
        p.ip = Some(format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256));
    }
    (ir, proxies)
}

/// (virtual hosts, trimmed ones: routed to the proxy's own deny listener).
fn count_trimmed(rc: &serde_json::Value) -> (usize, usize) {
    let vh = rc["virtualHosts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let trimmed = vh
        .iter()
        .filter(|v| v["routes"][0]["route"]["cluster"] == meshbridge_envoy::sidecar::DENY_CLUSTER)
        .count();
    (vh.len(), trimmed)
}

fn mesh_bench(n: usize, k: usize) {
    let (ir, proxies) = mesh_input(n);
    let cx = Context::default();
    let mut rows: Vec<[f64; 7]> = vec![];
    let t0 = Instant::now();
    // Every proxy in one translation (as a runtime does: views share what they see alike).
    let (configs, _) = meshbridge_envoy::sidecar::translate_all(&ir, &cx, &proxies);
    let us = t0.elapsed().as_secs_f64() * 1e6 / proxies.len().max(1) as f64;
    let mut enc = EncodeCache::default();
    for (i, c) in configs.iter().enumerate() {
        let len = |ty: &str| c.resources.get(ty).map_or(0, |m| m.len()) as f64;
        let (vh, trimmed) = c.resources[ROUTE]
            .iter()
            .filter(|(k, _)| k.starts_with("outbound_http/"))
            .map(|(_, rc)| count_trimmed(rc))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        // Encoded bytes for every tenth proxy (encoding all of them costs minutes).
        let bytes = if i % 10 == 0 {
            let s = snapshot_from_json(&c.resources, &BTreeMap::new(), &mut enc).unwrap();
            s.types
                .values()
                .flat_map(|m| m.values())
                .map(|r| r.any.value.len())
                .sum::<usize>() as f64
        } else {
            f64::NAN
        };
        rows.push([
            len(LISTENER),
            vh as f64,
            trimmed as f64,
            len(CLUSTER),
            len(ENDPOINT),
            bytes,
            us,
        ]);
    }
    let total = t0.elapsed();
    let col = |j: usize| -> String {
        let mut v: Vec<f64> = rows.iter().map(|r| r[j]).filter(|x| !x.is_nan()).collect();
        let sum: f64 = v.iter().sum();
        format!(
            "min {:.0} p50 {:.0} max {:.0} (sum {:.0})",
            pct(&mut v, 0.0),
            pct(&mut v, 0.5),
            pct(&mut v, 1.0),
            sum
        )
    };
    println!(
        "mesh n={n}: {} proxies, {} access policies, {} splits; translate+encode all {:.1} s",
        proxies.len(),
        ir.access.len(),
        ir.splits.len(),
        total.as_secs_f64()
    );
    for (j, what) in [
        "listeners",
        "virtual hosts",
        "trimmed (denied) vhosts",
        "clusters",
        "endpoints (CLAs)",
        "encoded bytes (every 10th proxy)",
        "translate µs (mean)",
    ]
    .iter()
    .enumerate()
    {
        println!("mesh n={n}: per proxy {what:<34} {}", col(j));
    }
    drop(enc);
    // Server memory with K per-proxy snapshots, K clients connected as those nodes.
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["serve-mesh", &n.to_string(), &k.to_string()]);
    let (mut peer, hello) = spawn_peer(cmd);
    println!("mesh n={n}: server holding {k} per-proxy snapshots: {hello}");
    push_clients("mesh-per-proxy", n, &mut peer, &[k]);
    let _ = peer.child.kill();
    let _ = peer.child.wait();
}

/// Child process: serves the per-proxy snapshots of the first K proxies of the synthetic mesh
/// as nodes `n-0`…`n-{K-1}`; each stdin line renames one virtual host of every node's
/// outbound route (a route change) and prints `flipped`.
fn serve_mesh_child(n: usize, k: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let before = rss::rss_kib(std::process::id());
        let (ir, proxies) = mesh_input(n);
        let cx = Context::default();
        // One encode cache kept alive, as the runtime does.
        let mut enc = EncodeCache::default();
        let step = (proxies.len() / k.max(1)).max(1);
        let (configs, _) = meshbridge_envoy::sidecar::translate_all(&ir, &cx, &proxies);
        let mut snaps = vec![];
        for c in configs.iter().step_by(step).take(k) {
            snaps.push(Arc::new(
                snapshot_from_json(&c.resources, &BTreeMap::new(), &mut enc).unwrap(),
            ));
        }
        drop(configs);
        let after = rss::rss_kib(std::process::id());
        let cache = Cache::new();
        let set = |snaps: &[Arc<NodeSnapshot>]| {
            let mut m = HashMap::new();
            for (i, s) in snaps.iter().enumerate() {
                m.insert(format!("n-{i}"), ("spiffe://x".to_string(), s.clone()));
            }
            cache.set_all(m);
        };
        set(&snaps);
        let port = serve_on_loopback(&cache).await;
        println!(
            "port {} rss_before_kb {before} rss_snapshots_kb {after} = {:.1} KB per proxy held",
            port,
            after.saturating_sub(before) as f64 / snaps.len().max(1) as f64
        );
        let mut lines = stdin_lines();
        let mut flips = 0u32;
        while lines.recv().await.is_some() {
            flips += 1;
            for s in snaps.iter_mut() {
                *s = Arc::new(flipped(s, flips));
            }
            set(&snaps);
            println!("flipped");
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("serve") {
        let num = |i: usize| args.get(i).and_then(|n| n.parse().ok());
        serve_child(num(1).unwrap_or(1000), num(2).unwrap_or(5000));
        return;
    }
    if args.first().map(String::as_str) == Some("serve-mesh") {
        let num = |i: usize| args.get(i).and_then(|n| n.parse().ok());
        serve_mesh_child(num(1).unwrap_or(1000), num(2).unwrap_or(100));
        return;
    }
    let what = args.first().cloned().unwrap_or_else(|| "build".into());
    // Sizes: the issue's (1,000 services; 1,000 and 5,000 clients), or tiny ones for
    // `scripts/bench.sh --quick`.
    let q = record::quick();
    let (n, clients, mesh_k, edits) = if q {
        (100, [10, 100], 10, 5)
    } else {
        (1_000, [1_000, 5_000], 1_000, 40)
    };
    if what == "build" || what == "all" {
        for n in [n, 10 * n] {
            build_snapshot(n, true);
        }
    }
    if what == "push" || what == "all" {
        push_bench(n, &clients);
    }
    if what == "mesh" || what == "all" {
        mesh_bench(n, mesh_k);
    }
    if what == "edit" || what == "all" {
        // Edit → served at N and 10 N services (N only with --quick).
        let sizes = if q { vec![n] } else { vec![n, 10 * n] };
        for n in sizes {
            edit_bench(n, edits);
        }
    }
}
