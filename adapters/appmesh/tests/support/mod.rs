//! Test harness: a real local moto server (`python3 -m moto.server`, from `moto[server]`)
//! behind a small recording HTTP proxy on 127.0.0.1 that
//! - serves the App Mesh **VirtualService** operations itself (moto implements meshes,
//!   virtual routers, routes, virtual nodes and gateways but not virtual services): an
//!   in-memory, request-verifying mock that checks required fields, that the providing
//!   router exists in moto, and refuses to delete a router a virtual service still uses
//!   (`ResourceInUseException`), as App Mesh does;
//! - forwards everything else to moto, rewriting moto's `createdAt`/`lastUpdatedAt`
//!   (`"23/11/2026, 00:15:21"` strings; the API model says epoch seconds, which the Rust
//!   SDK requires) to epoch seconds;
//! - can answer the next N requests with `429 TooManyRequestsException` (throttling).
//!
//! The Python interpreter is `$MESHBRIDGE_PYTHON` or `python3`. When moto cannot be
//! started, tests are skipped with a message — unless `CI=true`, where they fail.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use meshbridge_appmesh::sync::aws_sdk_appmesh::{self as sdk, Client};

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn unavailable(why: String) -> Option<Moto> {
    if in_ci() {
        panic!(
            "moto server unavailable and CI=true (install with: pip install \"moto[server]\"): {why}"
        );
    }
    eprintln!(
        "SKIPPED: moto server unavailable ({why}); install with: pip install \"moto[server]\""
    );
    None
}

impl Moto {
    /// Starts `python3 -m moto.server` on a free 127.0.0.1 port and waits until it answers.
    pub fn start() -> Option<Moto> {
        let python = std::env::var("MESHBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => return unavailable(format!("no free port: {e}")),
        };
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return unavailable(format!("cannot run {python}: {e}")),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut err);
                }
                return unavailable(format!(
                    "{python} -m moto.server exited with {status}: {}",
                    err.trim()
                ));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Drain stderr in the background so the server never blocks on a full pipe.
                if let Some(mut s) = child.stderr.take() {
                    std::thread::spawn(move || {
                        let mut sink = Vec::new();
                        use std::io::Read;
                        let _ = s.read_to_end(&mut sink);
                    });
                }
                return Some(Moto { child, port });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return unavailable("moto.server did not listen within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[derive(Clone, Debug)]
pub struct VsRecord {
    pub spec: Value,
    pub tags: Vec<Value>,
    pub arn: String,
    pub version: i64,
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: Value,
    /// Served by the VirtualService mock (not moto).
    pub mocked: bool,
}

#[derive(Default)]
pub struct ProxyState {
    pub services: BTreeMap<(String, String), VsRecord>,
    pub seen: Vec<Seen>,
    pub throttle_next: usize,
    pub throttled: usize,
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    pub async fn start(moto_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let _ = sock.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(sock, st, moto_port).await;
                });
            }
        });
        Proxy { addr, state }
    }

    pub fn client(&self) -> Client {
        let conf = sdk::Config::builder()
            .behavior_version(sdk::config::BehaviorVersion::latest())
            .region(sdk::config::Region::new("us-east-1"))
            .credentials_provider(sdk::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(format!("http://{}", self.addr))
            .http_client(meshbridge_appmesh::sync::http_client())
            .retry_config(meshbridge_appmesh::sync::retry_config())
            .build();
        Client::from_conf(conf)
    }

    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().seen)
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let start = head_end + 4;
    while buf.len() < start + len {
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[start..start + len].to_vec();
    buf.drain(..start + len);
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn json_response(status: u16, body: &Value) -> Response {
    Response {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

fn error(status: u16, code: &str, msg: &str) -> Response {
    let mut r = json_response(status, &json!({"message": msg}));
    r.headers.push(("x-amzn-ErrorType".into(), code.into()));
    r
}

async fn serve_conn(
    mut sock: TcpStream,
    st: Arc<Mutex<ProxyState>>,
    moto: u16,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut sock, &mut buf).await {
        let resp = handle(&req, &st, moto).await;
        let reason = match resp.status {
            200 => "OK",
            404 => "Not Found",
            409 => "Conflict",
            429 => "Too Many Requests",
            _ => "Status",
        };
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
        for (k, v) in &resp.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", resp.body.len()));
        // One write (with TCP_NODELAY): a separate small body write would wait for the
        // peer's delayed ACK (Nagle), ~40 ms per request.
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&resp.body);
        sock.write_all(&bytes).await?;
        sock.flush().await?;
    }
    Ok(())
}

fn query(target: &str) -> BTreeMap<String, String> {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                meshbridge_test_support::util::pct_decode(k),
                meshbridge_test_support::util::pct_decode(v),
            )
        })
        .collect()
}

async fn handle(req: &Request, st: &Arc<Mutex<ProxyState>>, moto: u16) -> Response {
    let path = req.target.split('?').next().unwrap_or("").to_string();
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(meshbridge_test_support::util::pct_decode)
        .collect();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let q = query(&req.target);
    let is_vs = segs.len() >= 4
        && segs[0] == "v20190125"
        && segs[1] == "meshes"
        && segs[3] == "virtualServices";
    let is_vs_tags = segs == ["v20190125", "tags"]
        && q.get("resourceArn")
            .is_some_and(|a| a.contains("/virtualService/"));
    {
        let mut s = st.lock().unwrap();
        s.seen.push(Seen {
            method: req.method.clone(),
            path: path.clone(),
            body: body.clone(),
            mocked: is_vs || is_vs_tags,
        });
        if s.throttle_next > 0 {
            s.throttle_next -= 1;
            s.throttled += 1;
            return error(429, "TooManyRequestsException", "Rate exceeded");
        }
    }
    if is_vs_tags {
        let arn = &q["resourceArn"];
        let s = st.lock().unwrap();
        return match s.services.values().find(|r| &r.arn == arn) {
            Some(r) => json_response(200, &json!({"tags": r.tags})),
            None => error(404, "NotFoundException", "no such resource"),
        };
    }
    if is_vs {
        return virtual_service(req, &segs, body, st, moto).await;
    }
    // App Mesh refuses to delete a router that provides a virtual service.
    if req.method == "DELETE" && segs.len() == 5 && segs[3] == "virtualRouters" {
        let s = st.lock().unwrap();
        if s.services.iter().any(|((m, _), r)| {
            *m == segs[2]
                && r.spec["provider"]["virtualRouter"]["virtualRouterName"] == segs[4].as_str()
        }) {
            return error(
                409,
                "ResourceInUseException",
                "virtual router is in use by a virtual service",
            );
        }
    }
    forward(req, moto).await
}

fn vs_data(mesh: &str, name: &str, r: &VsRecord) -> Value {
    json!({
        "meshName": mesh,
        "virtualServiceName": name,
        "spec": r.spec,
        "metadata": {"arn": r.arn, "createdAt": 1.7e9, "lastUpdatedAt": 1.7e9, "meshOwner": "123456789012",
                     "resourceOwner": "123456789012", "uid": format!("uid-{name}"), "version": r.version},
        "status": {"status": "ACTIVE"},
    })
}

/// Verifies a VirtualService spec as App Mesh would: exactly one provider, and the
/// provider exists (asked of moto for routers and nodes).
async fn check_spec(mesh: &str, spec: &Value, moto: u16) -> Result<(), Response> {
    let p = &spec["provider"];
    let (kind, name) = match (p.get("virtualRouter"), p.get("virtualNode")) {
        (Some(r), None) => ("virtualRouters", r["virtualRouterName"].as_str()),
        (None, Some(n)) => ("virtualNodes", n["virtualNodeName"].as_str()),
        _ => {
            return Err(error(
                400,
                "BadRequestException",
                "spec.provider needs exactly one of virtualRouter/virtualNode",
            ));
        }
    };
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(error(400, "BadRequestException", "provider name missing"));
    };
    let probe = Request {
        method: "GET".into(),
        target: format!("/v20190125/meshes/{mesh}/{kind}/{name}"),
        headers: vec![(
            "Authorization".into(),
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/appmesh/aws4_request, SignedHeaders=host, Signature=0".into(),
        )],
        body: vec![],
    };
    let r = forward(&probe, moto).await;
    if r.status != 200 {
        return Err(error(
            404,
            "NotFoundException",
            &format!("provider {kind}/{name} not found"),
        ));
    }
    Ok(())
}

async fn virtual_service(
    req: &Request,
    segs: &[String],
    body: Value,
    st: &Arc<Mutex<ProxyState>>,
    moto: u16,
) -> Response {
    let mesh = segs[2].clone();
    match (req.method.as_str(), segs.get(4)) {
        ("PUT", None) => {
            let Some(name) = body["virtualServiceName"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(str::to_string)
            else {
                return error(400, "BadRequestException", "virtualServiceName missing");
            };
            if let Err(r) = check_spec(&mesh, &body["spec"], moto).await {
                return r;
            }
            let mut s = st.lock().unwrap();
            if s.services.contains_key(&(mesh.clone(), name.clone())) {
                return error(409, "ConflictException", "virtual service exists");
            }
            let rec = VsRecord {
                spec: body["spec"].clone(),
                tags: body["tags"].as_array().cloned().unwrap_or_default(),
                arn: format!(
                    "arn:aws:appmesh:us-east-1:123456789012:mesh/{mesh}/virtualService/{name}"
                ),
                version: 1,
            };
            let out = vs_data(&mesh, &name, &rec);
            s.services.insert((mesh, name), rec);
            json_response(200, &out)
        }
        ("PUT", Some(name)) => {
            if let Err(r) = check_spec(&mesh, &body["spec"], moto).await {
                return r;
            }
            let mut s = st.lock().unwrap();
            match s.services.get_mut(&(mesh.clone(), name.clone())) {
                Some(rec) => {
                    rec.spec = body["spec"].clone();
                    rec.version += 1;
                    let out = vs_data(&mesh, name, rec);
                    json_response(200, &out)
                }
                None => error(404, "NotFoundException", "no such virtual service"),
            }
        }
        ("GET", Some(name)) => {
            let s = st.lock().unwrap();
            match s.services.get(&(mesh.clone(), name.clone())) {
                Some(rec) => json_response(200, &vs_data(&mesh, name, rec)),
                None => error(404, "NotFoundException", "no such virtual service"),
            }
        }
        ("DELETE", Some(name)) => {
            let mut s = st.lock().unwrap();
            match s.services.remove(&(mesh.clone(), name.clone())) {
                Some(rec) => json_response(200, &vs_data(&mesh, name, &rec)),
                None => error(404, "NotFoundException", "no such virtual service"),
            }
        }
        ("GET", None) => {
            let s = st.lock().unwrap();
            let list: Vec<Value> = s
                .services
                .iter()
                .filter(|((m, _), _)| *m == mesh)
                .map(|((m, n), r)| {
                    json!({"arn": r.arn, "createdAt": 1.7e9, "lastUpdatedAt": 1.7e9, "meshName": m,
                           "meshOwner": "123456789012", "resourceOwner": "123456789012",
                           "version": r.version, "virtualServiceName": n})
                })
                .collect();
            json_response(200, &json!({"virtualServices": list}))
        }
        _ => error(
            400,
            "BadRequestException",
            "unsupported virtual service operation",
        ),
    }
}

async fn forward(req: &Request, moto: u16) -> Response {
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        let lk = k.to_ascii_lowercase();
        if lk == "connection" || lk == "content-length" || lk == "host" {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Host: 127.0.0.1:{moto}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        req.body.len()
    ));
    let mut raw = Vec::new();
    let io = async {
        let mut s = TcpStream::connect(("127.0.0.1", moto)).await?;
        s.set_nodelay(true)?;
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&req.body);
        s.write_all(&bytes).await?;
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(())
    };
    if let Err(e) = io.await {
        return error(502, "InternalServerErrorException", &format!("moto: {e}"));
    }
    let Some(head_end) = find(&raw, b"\r\n\r\n") else {
        return error(502, "InternalServerErrorException", "moto: bad response");
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let mut headers = Vec::new();
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            let lk = k.to_ascii_lowercase();
            if lk == "transfer-encoding" {
                chunked = v.eq_ignore_ascii_case("chunked");
                continue;
            }
            if matches!(lk.as_str(), "content-length" | "connection" | "status") {
                continue;
            }
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let mut body = raw[head_end + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(&body) {
        fix_timestamps(&mut v);
        body = v.to_string().into_bytes();
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(e) = find(&b[i..], b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[i..i + e]).trim(), 16).unwrap_or(0);
        i += e + 2;
        if size == 0 || i + size > b.len() {
            break;
        }
        out.extend_from_slice(&b[i..i + size]);
        i += size + 2;
    }
    out
}

/// moto writes timestamps as `"%d/%m/%Y, %H:%M:%S"`; the API (and the SDK) use epoch seconds.
fn fix_timestamps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if (k == "createdAt" || k == "lastUpdatedAt")
                    && let Some(e) = x.as_str().and_then(parse_moto_time)
                {
                    *x = json!(e);
                } else {
                    fix_timestamps(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(fix_timestamps),
        _ => {}
    }
}

fn parse_moto_time(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(", ")?;
    let d: Vec<i64> = date
        .split('/')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let (day, month, year) = (d[0], d[1], d[2]);
    // Days from civil (Howard Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + t[0] * 3600 + t[1] * 60 + t[2])
}

/// A moto server, the harness proxy in front of it, an SDK client through the proxy, and one
/// App Mesh mesh created in moto (its CreateMesh request is left out of the proxy's log).
pub struct Env {
    pub moto: Moto,
    pub proxy: Proxy,
    pub client: Client,
}

impl Env {
    /// `None` (the test skips) when moto cannot be started outside CI.
    pub async fn start(mesh: &str) -> Option<Env> {
        let moto = Moto::start()?;
        let proxy = Proxy::start(moto.port).await;
        let client = proxy.client();
        client
            .create_mesh()
            .mesh_name(mesh)
            .send()
            .await
            .expect("create mesh in moto");
        proxy.take_seen();
        Some(Env {
            moto,
            proxy,
            client,
        })
    }
}

/// Creates virtual node `name` (DNS discovery `hostname`, these tags) in `mesh` directly,
/// not through meshbridge: someone else's resource.
pub async fn create_node(
    client: &Client,
    mesh: &str,
    name: &str,
    hostname: &str,
    tags: &[(&str, &str)],
) {
    use sdk::types as t;
    let dns = t::DnsServiceDiscovery::builder()
        .hostname(hostname)
        .build()
        .expect("DNS discovery");
    let spec = t::VirtualNodeSpec::builder()
        .service_discovery(t::ServiceDiscovery::Dns(dns))
        .build();
    let tags: Vec<t::TagRef> = tags
        .iter()
        .map(|(k, v)| t::TagRef::builder().key(*k).value(*v).build().expect("tag"))
        .collect();
    client
        .create_virtual_node()
        .mesh_name(mesh)
        .virtual_node_name(name)
        .spec(spec)
        .set_tags((!tags.is_empty()).then_some(tags))
        .send()
        .await
        .expect("create virtual node");
}

/// Loads YAML inputs and builds the IR the way `meshbridge translate` does.
pub fn ir_of(yaml: &str) -> meshbridge_core::Ir {
    let loaded = meshbridge_core::load::load_str("input.yaml", yaml);
    let (snap, lines, failed) = meshbridge_core::pipeline::snapshot_of(vec![loaded]);
    assert!(!failed, "{lines:?}");
    meshbridge_core::build::build(&snap)
}

pub fn fixture(name: &str) -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(p).expect("fixture")
}

#[test]
fn moto_time_parses() {
    assert_eq!(parse_moto_time("01/01/1970, 00:00:10"), Some(10));
    assert_eq!(parse_moto_time("23/11/2026, 00:15:21"), Some(1_795_392_921));
}
