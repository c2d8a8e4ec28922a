//! `meshbridge local up DIR`: the control plane (ADS over mTLS + the CA), every pod's program
//! and one real Envoy per pod, all on loopback addresses, with live reload of DIR.

use crate::envoy_bin::find_envoy;
use crate::error::{Error, io, os};
use crate::inputs::Inputs;
use crate::metrics::Ui;
use crate::pods::{PodSpec, pods_of};
use crate::procs::{PidFile, Proc};
use meshbridge_core::Context;
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::ir::Identity;
use meshbridge_envoy::bootstrap::Bootstrap;
use meshbridge_envoy::ca::{Ca, Issued, write_private};
use meshbridge_envoy::proto::SECRET;
use meshbridge_envoy::server::{
    Cache, Connections, EncodeCache, NodeSnapshot, ServerTls, snapshot_from_json,
};
use meshbridge_envoy::sidecar::{
    ADMIN_PORT, OUTBOUND_PORT, Proxy, ProxyConfig, ROOT_CA_SECRET, Translator,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::process::Command;

/// Options of `meshbridge local up`.
#[derive(Clone, Debug)]
pub struct UpOptions {
    pub dir: PathBuf,
    /// Where the CA key, certificates, bootstraps and logs go (default: a directory under the
    /// system temp dir derived from DIR, so the CA survives restarts).
    pub state_dir: Option<PathBuf>,
    /// xDS port on 127.0.0.1 (0 = any free port).
    pub xds_port: u16,
    /// Second octet of the loopback addresses: pods get 127.S.0.N, their programs 127.S.1.N.
    pub subnet: u8,
    /// Delta xDS instead of state of the world.
    pub delta: bool,
    /// Lifetime of workload certificates (rotated at two thirds of it).
    pub cert_ttl: Duration,
    /// Lifetime of each sidecar's xDS client certificate (rotated at two thirds of it,
    /// through a file-based SDS secret Envoy watches).
    pub xds_cert_ttl: Duration,
    pub envoy: Option<PathBuf>,
    /// Explicit trust domain (`--trust-domain`): wins over the Mesh object's.
    pub trust_domain: Option<String>,
    /// Namespace of DIR's namespaced objects that state none (`-n`; default `default`).
    pub namespace: Option<String>,
    /// Where the dashboard and the TrafficMetrics API are served (port 0: any free port).
    pub ui_addr: String,
    /// How often every sidecar's statistics are read.
    pub scrape_interval: Duration,
    /// The window of the TrafficMetrics answers.
    pub metrics_window: Duration,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            dir: PathBuf::from("."),
            state_dir: None,
            xds_port: 0,
            subnet: 0,
            delta: false,
            cert_ttl: Duration::from_secs(3600),
            xds_cert_ttl: Duration::from_secs(30 * 86400),
            envoy: None,
            trust_domain: None,
            namespace: None,
            ui_addr: "127.0.0.1:0".into(),
            scrape_interval: Duration::from_secs(1),
            metrics_window: Duration::from_secs(meshbridge_core::metrics::DEFAULT_WINDOW_S),
        }
    }
}

struct RunningPod {
    spec: PodSpec,
    ip: String,
    app_ip: String,
    dir: PathBuf,
    envoy: Proc,
    envoy_dead: bool,
    programs: Vec<Proc>,
    /// Expiry of the sidecar's xDS client certificate (`UNIX_EPOCH`: unknown, rotate now).
    xds_not_after: SystemTime,
}

/// One event line on stdout. Output to a closed pipe (`meshbridge local up DIR | head -1`)
/// never stops the mesh: write errors are ignored, and said once on stderr.
fn emit(v: Value) {
    use std::io::Write;
    static CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{v}").and_then(|()| out.flush()).is_err()
        && !CLOSED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        let _ = writeln!(
            std::io::stderr(),
            "meshbridge local: standard output is closed; events are no longer printed (the mesh keeps running)"
        );
    }
}

struct Runtime {
    opts: UpOptions,
    envoy_bin: PathBuf,
    state: PathBuf,
    ca: Arc<Ca>,
    cache: Arc<Cache>,
    enc: EncodeCache,
    /// Translates per proxy again on every reload, reusing what did not change.
    translator: Translator,
    inputs: Inputs,
    pods: BTreeMap<String, RunningPod>,
    /// Stable address index per pod (node id).
    index: BTreeMap<String, u8>,
    certs: HashMap<Identity, Issued>,
    configs: Vec<ProxyConfig>,
    xds_port: u16,
    generation: u64,
    self_exe: PathBuf,
    /// The content of `runtime.json` as last written.
    saved_state: String,
    /// The translation context of the last reload (trust domain: flag > Mesh > default).
    cx: Context,
    /// The served metrics and dashboard.
    ui: Ui,
}

impl Runtime {
    fn ip(&self, idx: u8, app: bool) -> String {
        format!(
            "127.{}.{}.{}",
            self.opts.subnet,
            if app { 1 } else { 0 },
            idx
        )
    }

    fn alloc(&mut self, node: &str) -> Option<u8> {
        if let Some(i) = self.index.get(node) {
            return Some(*i);
        }
        let used: BTreeSet<u8> = self.index.values().copied().collect();
        let i = (2u8..=254).find(|i| !used.contains(i))?;
        self.index.insert(node.to_string(), i);
        Some(i)
    }

    fn spiffe(&self, id: &Identity) -> String {
        id.spiffe(&self.cx.trust_domain)
    }

    /// Issues or rotates workload certificates; returns whether any changed.
    fn refresh_certs(&mut self) -> Result<bool, Error> {
        let ids: BTreeSet<Identity> = self
            .pods
            .values()
            .map(|p| Identity::new(&p.spec.namespace, &p.spec.service_account))
            .collect();
        let ttl = self.opts.cert_ttl;
        let now = SystemTime::now();
        let mut changed = false;
        for id in &ids {
            let due = match self.certs.get(id) {
                None => true,
                Some(c) => c
                    .not_after
                    .duration_since(now)
                    .map(|left| left < ttl / 3)
                    .unwrap_or(true),
            };
            if due {
                let c = self.ca.issue_workload(&self.spiffe(id), ttl)?;
                self.certs.insert(id.clone(), c);
                changed = true;
            }
        }
        self.certs.retain(|k, _| ids.contains(k));
        Ok(changed)
    }

    /// Encodes every proxy's snapshot and publishes them.
    fn publish(&mut self) -> Result<(), Error> {
        let mut nodes = HashMap::new();
        for c in &self.configs {
            let mut secrets = BTreeMap::new();
            secrets.insert(
                ROOT_CA_SECRET.to_string(),
                json!({"@type": SECRET, "name": ROOT_CA_SECRET, "validationContext": {"trustedCa": {"inlineString": self.ca.cert_pem}}}),
            );
            if let Some(cert) = self.certs.get(&c.identity) {
                secrets.insert(
                    c.spiffe.clone(),
                    json!({"@type": SECRET, "name": c.spiffe, "tlsCertificate": {
                        "certificateChain": {"inlineString": cert.cert_pem},
                        "privateKey": {"inlineString": cert.key_pem},
                    }}),
                );
            }
            let snap: NodeSnapshot =
                snapshot_from_json(&c.resources, &secrets, &mut self.enc).map_err(Error::Encode)?;
            nodes.insert(c.node_id.clone(), (c.spiffe.clone(), Arc::new(snap)));
        }
        self.enc.sweep();
        self.cache.set_all(nodes);
        Ok(())
    }

    async fn start_pod(&mut self, spec: PodSpec) -> Result<(), Error> {
        let node = format!("{}/{}", spec.namespace, spec.name);
        let idx = self.alloc(&node).ok_or(Error::Pod("more than 253 pods"))?;
        let (ip, app_ip) = (self.ip(idx, false), self.ip(idx, true));
        let dir = self
            .state
            .join("pods")
            .join(format!("{}.{}", spec.namespace, spec.name));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let id = Identity::new(&spec.namespace, &spec.service_account);
        let ca_file = self.state.join("ca.pem");
        let xds_dir = dir.join("xds");
        std::fs::create_dir_all(&xds_dir).map_err(io(&xds_dir))?;
        let (sds_path, cert_path, key_path) = xds_files(&dir);
        let bootstrap = Bootstrap {
            node_id: &node,
            cluster: &id.to_string(),
            admin_ip: &ip,
            admin_port: ADMIN_PORT,
            xds_ip: "127.0.0.1",
            xds_port: self.xds_port,
            cert: &cert_path,
            key: &key_path,
            ca: &ca_file,
            delta: self.opts.delta,
            sds: Some(&sds_path),
        };
        let bs = bootstrap.to_json().to_string();
        let sds_secret = bootstrap.sds_secret().to_string();
        let bs_path = dir.join("bootstrap.json");
        let envoy_argv: Vec<String> = [
            self.envoy_bin.to_string_lossy().into_owned(),
            "-c".into(),
            bs_path.to_string_lossy().into_owned(),
            "--concurrency".into(),
            "1".into(),
            "--disable-hot-restart".into(),
            "--drain-time-s".into(),
            "1".into(),
            "--drain-strategy".into(),
            "immediate".into(),
            "-l".into(),
            "warning".into(),
            "--log-path".into(),
            dir.join("envoy.log").to_string_lossy().into_owned(),
        ]
        .into();
        let ports: Vec<String> = spec.ports.iter().map(|(_, p)| p.to_string()).collect();
        let program_argvs: Vec<Vec<String>> = spec
            .programs
            .iter()
            .map(|(argv, _)| {
                let mut a = argv.clone();
                if a[0] == "meshbridge" {
                    a[0] = self.self_exe.to_string_lossy().into_owned();
                }
                a
            })
            .collect();
        let spec_key = format!(
            "{:016x}",
            meshbridge_core::hash::fnv1a64(format!("{spec:?}|{ip}|{app_ip}").as_bytes())
        );

        // A sidecar and programs left running by a control plane that was killed: adopt them
        // when they are exactly what would be started now (same spec, addresses, bootstrap
        // and command lines); otherwise stop them before starting afresh.
        let pid_file = PidFile::read(&dir);
        let same_bootstrap = std::fs::read_to_string(&bs_path).is_ok_and(|b| b == bs);
        let adopted = match &pid_file {
            Some(f)
                if same_bootstrap
                    && f.spec == spec_key
                    && f.procs.len() == 1 + program_argvs.len()
                    && f.procs.first().is_some_and(|(_, a)| *a == envoy_argv)
                    && f.procs
                        .iter()
                        .all(|(pid, argv)| crate::procs::runs(*pid, argv)) =>
            {
                Some(f.procs.iter().map(|(pid, _)| *pid).collect::<Vec<u32>>())
            }
            Some(f) => {
                f.stop_all().await;
                None
            }
            None => None,
        };
        let mut xds_not_after = SystemTime::UNIX_EPOCH;
        let (envoy, programs) = match adopted {
            Some(pids) => {
                emit(json!({"event": "adopted", "pod": node, "pids": pids}));
                let mut procs = pids.into_iter().map(Proc::Adopted);
                let envoy = procs.next().ok_or(Error::Pod("empty pid list"))?;
                (envoy, procs.collect())
            }
            None => {
                xds_not_after = self.write_xds_cert(&dir, &id)?;
                std::fs::write(&sds_path, &sds_secret).map_err(io(&sds_path))?;
                std::fs::write(&bs_path, &bs).map_err(io(&bs_path))?;
                let log = |name: &str| -> Result<std::fs::File, Error> {
                    let path = dir.join(name);
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(io(&path))
                };
                let envoy = Command::new(&envoy_argv[0])
                    .args(&envoy_argv[1..])
                    .stdin(std::process::Stdio::null())
                    .stdout(log("envoy.out")?)
                    .stderr(log("envoy.out")?)
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(io(&self.envoy_bin))?;
                let mut recorded = vec![(envoy.id().unwrap_or(0), envoy_argv.clone())];
                let mut programs = Vec::new();
                for ((_, env), argv) in spec.programs.iter().zip(&program_argvs) {
                    let mut cmd = Command::new(&argv[0]);
                    cmd.args(&argv[1..])
                        .envs(env.iter().cloned())
                        .env("MESHBRIDGE_POD", &spec.name)
                        .env("MESHBRIDGE_NAMESPACE", &spec.namespace)
                        .env("MESHBRIDGE_SERVICE_ACCOUNT", &spec.service_account)
                        .env("MESHBRIDGE_LISTEN", &app_ip)
                        .env("MESHBRIDGE_PORTS", ports.join(","))
                        .env("MESHBRIDGE_POD_IP", &ip)
                        .env(
                            "MESHBRIDGE_OUTBOUND",
                            format!("http://{ip}:{OUTBOUND_PORT}"),
                        )
                        .stdin(std::process::Stdio::null())
                        .stdout(log("app.log")?)
                        .stderr(log("app.log")?)
                        .kill_on_drop(true);
                    match cmd.spawn() {
                        Ok(c) => {
                            recorded.push((c.id().unwrap_or(0), argv.clone()));
                            programs.push(Proc::Child(c));
                        }
                        Err(e) => eprintln!(
                            "meshbridge local: pod {node}: cannot start {:?}: {e}",
                            argv[0]
                        ),
                    }
                }
                // Recorded only when every program started (a partial set is never adopted).
                if recorded.len() == 1 + program_argvs.len() {
                    PidFile {
                        spec: spec_key,
                        procs: recorded,
                    }
                    .write(&dir)?;
                } else {
                    let _ = std::fs::remove_file(dir.join("pids.json"));
                }
                (Proc::Child(envoy), programs)
            }
        };
        emit(json!({
            "pod": node,
            "ip": ip,
            "outbound": format!("{ip}:{OUTBOUND_PORT}"),
            "admin": format!("{ip}:{ADMIN_PORT}"),
            "app": app_ip,
            "identity": self.spiffe(&id),
        }));
        self.pods.insert(
            node,
            RunningPod {
                spec,
                ip,
                app_ip,
                dir,
                envoy,
                envoy_dead: false,
                programs,
                xds_not_after,
            },
        );
        Ok(())
    }

    /// Issues the sidecar's xDS client certificate and moves it into place (key first,
    /// then certificate; each move makes Envoy reload the pair, and a half-updated pair is
    /// refused by Envoy, which keeps the previous one). Returns its expiry.
    fn write_xds_cert(&self, dir: &Path, id: &Identity) -> Result<SystemTime, Error> {
        let c = self
            .ca
            .issue_workload(&self.spiffe(id), self.opts.xds_cert_ttl)?;
        let (_, cert_path, key_path) = xds_files(dir);
        let tmp_key = dir.join("xds").join(".key.pem.tmp");
        let tmp_cert = dir.join("xds").join(".cert.pem.tmp");
        write_private(&tmp_key, &c.key_pem)?;
        std::fs::write(&tmp_cert, &c.cert_pem).map_err(io(&tmp_cert))?;
        std::fs::rename(&tmp_key, &key_path).map_err(io(&key_path))?;
        std::fs::rename(&tmp_cert, &cert_path).map_err(io(&cert_path))?;
        Ok(c.not_after)
    }

    /// Rotates every sidecar's xDS client certificate that is past two thirds of its life
    /// (or of unknown age: adopted sidecars). Returns the pods rotated.
    fn refresh_xds_certs(&mut self) -> Vec<String> {
        let now = SystemTime::now();
        let ttl = self.opts.xds_cert_ttl;
        let due: Vec<(String, PathBuf, Identity)> = self
            .pods
            .iter()
            .filter(|(_, p)| {
                p.xds_not_after
                    .duration_since(now)
                    .map(|left| left < ttl / 3)
                    .unwrap_or(true)
            })
            .map(|(n, p)| {
                (
                    n.clone(),
                    p.dir.clone(),
                    Identity::new(&p.spec.namespace, &p.spec.service_account),
                )
            })
            .collect();
        let mut rotated = Vec::new();
        for (node, dir, id) in due {
            match self.write_xds_cert(&dir, &id) {
                Ok(t) => {
                    if let Some(p) = self.pods.get_mut(&node) {
                        p.xds_not_after = t;
                    }
                    rotated.push(node);
                }
                Err(e) => eprintln!("meshbridge local: pod {node}: xDS certificate: {e}"),
            }
        }
        rotated
    }

    async fn stop_pod(&mut self, node: &str) {
        if let Some(mut p) = self.pods.remove(node) {
            for c in p.programs.iter_mut().chain(std::iter::once(&mut p.envoy)) {
                c.stop().await;
            }
            let _ = std::fs::remove_file(p.dir.join("pids.json"));
            emit(json!({"event": "stopped", "pod": node}));
        }
    }

    /// Reads DIR and applies it: pods started/stopped, configuration pushed.
    async fn reload(&mut self) -> Result<(), Error> {
        self.generation += 1;
        let t0 = Instant::now();
        let (snap, ir, mut diags) = self.inputs.reload(&self.opts.dir);
        let t_read = t0.elapsed();
        let want: BTreeMap<String, PodSpec> = pods_of(&snap)
            .into_iter()
            .map(|p| (format!("{}/{}", p.namespace, p.name), p))
            .collect();
        let cx = self
            .inputs
            .engine()
            .context(snap.mesh_spec(MeshType::Envoy));
        // A new trust domain changes every identity: every pod restarts with certificates
        // (workload and xDS client) of the new domain, as a mesh's trust domain change does.
        let new_domain = cx.trust_domain != self.cx.trust_domain;
        if new_domain {
            self.certs.clear();
        }
        self.cx = cx;
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(k, p)| new_domain || want.get(*k) != Some(&p.spec))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.stop_pod(&k).await;
        }
        self.index.retain(|k, _| want.contains_key(k));
        for (k, spec) in want {
            if !self.pods.contains_key(&k)
                && let Err(e) = self.start_pod(spec).await
            {
                eprintln!("meshbridge local: pod {k}: {e}");
            }
        }
        let proxies: Vec<Proxy> = self
            .pods
            .values()
            .map(|p| Proxy {
                namespace: p.spec.namespace.clone(),
                name: p.spec.name.clone(),
                identity: Identity::new(&p.spec.namespace, &p.spec.service_account),
                ip: Some(p.ip.clone()),
                app_ip: p.app_ip.clone(),
                labels: p.spec.labels.clone(),
                container_ports: p.spec.ports.clone(),
            })
            .collect();
        let t1 = Instant::now();
        let ir = Arc::new(ir);
        let (configs, findings) = self.translator.translate(ir.clone(), &self.cx, &proxies);
        let t_translate = t1.elapsed();
        for f in &findings {
            let origin = snap.origin(&f.object).cloned().unwrap_or_default();
            diags.finding(&origin, MeshType::Envoy, f);
        }
        // Every line on stderr; errors (objects not accepted) also as an `invalid` event,
        // warnings as a `warnings` event: the same rule as `translate` and `run --once`.
        for l in diags.lines() {
            eprintln!("{l}");
        }
        if diags.failed() {
            let problems: Vec<&String> = diags.errors().collect();
            emit(json!({"event": "invalid", "generation": self.generation, "problems": problems}));
        }
        let warnings: Vec<&String> = diags.warnings().collect();
        if !warnings.is_empty() {
            emit(json!({"event": "warnings", "generation": self.generation, "warnings": warnings}));
        }
        self.configs = configs;
        let mut model = meshbridge_core::metrics::dashboard::model(
            self.inputs.engine(),
            &ir,
            &[(MeshType::Envoy, meshbridge_envoy::capabilities())],
        );
        model.generation = self.generation;
        self.ui.update(
            self.pods.iter().map(|(n, p)| (n, p.ip.as_str(), &p.spec)),
            &ir,
            model,
        );
        self.save_state();
        self.refresh_certs()?;
        let t2 = Instant::now();
        self.publish()?;
        eprintln!(
            "meshbridge local: generation {}: read+validate {:.1} ms, translate {:.1} ms, encode+publish {:.1} ms",
            self.generation,
            t_read.as_secs_f64() * 1e3,
            t_translate.as_secs_f64() * 1e3,
            t2.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    }

    /// Records what a successor needs to adopt the running sidecars: the xDS port their
    /// bootstraps dial and each pod's address index.
    /// (Written only when it changed: not on every edit.)
    fn save_state(&mut self) {
        let v = json!({"xdsPort": self.xds_port, "index": self.index}).to_string();
        if v != self.saved_state && std::fs::write(self.state.join("runtime.json"), &v).is_ok() {
            self.saved_state = v;
        }
    }

    /// Stops the processes of pods a killed predecessor left running that are not wanted
    /// (or were not adoptable) now.
    async fn reap_orphans(&self) {
        let Ok(rd) = std::fs::read_dir(self.state.join("pods")) else {
            return;
        };
        let ours: BTreeSet<&Path> = self.pods.values().map(|p| p.dir.as_path()).collect();
        for e in rd.flatten() {
            let dir = e.path();
            if ours.contains(dir.as_path()) {
                continue;
            }
            if let Some(f) = PidFile::read(&dir) {
                f.stop_all().await;
                let _ = std::fs::remove_file(dir.join("pids.json"));
            }
        }
    }

    fn all_synced(&self) -> bool {
        self.pods.keys().all(|n| self.cache.in_sync(n))
    }

    async fn apps_listening(&self) -> bool {
        for p in self.pods.values() {
            if p.spec.programs.is_empty() {
                continue;
            }
            for (_, port) in &p.spec.ports {
                let addr = format!("{}:{port}", p.app_ip);
                if tokio::time::timeout(
                    Duration::from_millis(200),
                    tokio::net::TcpStream::connect(&addr),
                )
                .await
                .map(|r| r.is_err())
                .unwrap_or(true)
                {
                    return false;
                }
            }
        }
        true
    }

    async fn shutdown(&mut self) {
        let nodes: Vec<String> = self.pods.keys().cloned().collect();
        for n in nodes {
            self.stop_pod(&n).await;
        }
    }
}

/// The SDS secret file, certificate and key of a pod's xDS client certificate.
fn xds_files(pod_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let d = pod_dir.join("xds");
    (d.join("sds.json"), d.join("cert.pem"), d.join("key.pem"))
}

fn start_xds(
    cache: Arc<Cache>,
    listener: tokio::net::TcpListener,
    tls: ServerTls,
    conns: Connections,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = meshbridge_envoy::server::serve(
            cache,
            listener,
            Some(tls),
            conns,
            std::future::pending(),
        )
        .await
        {
            eprintln!("meshbridge local: xDS server: {e}");
        }
    })
}

fn default_state_dir(dir: &Path) -> PathBuf {
    let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let h = meshbridge_core::hash::fnv1a64(canon.to_string_lossy().as_bytes());
    std::env::temp_dir().join(format!("meshbridge-local-{h:016x}"))
}

/// What the process asks of a running mesh (the binary turns signals into these: SIGINT or
/// SIGTERM → `stop`, SIGUSR1 → `restart`).
pub struct Controls {
    /// Completes when the mesh must stop (sidecars and programs are stopped).
    pub stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// Each message restarts the control plane: drops every xDS stream and all server
    /// state, then serves again on the same port, while sidecars keep running.
    pub restart: tokio::sync::mpsc::UnboundedReceiver<()>,
}

/// Runs until `controls.stop` completes. When the process is killed instead, the sidecars
/// and programs keep running with their last configuration; the next `local up` with the
/// same state directory takes the same xDS port and addresses and adopts them (see
/// [`crate::procs`]).
pub async fn up(opts: UpOptions, controls: Controls) -> Result<(), Error> {
    let Controls {
        mut stop,
        mut restart,
    } = controls;
    if !opts.dir.is_dir() {
        return Err(Error::NotADirectory(opts.dir.clone()));
    }
    let envoy_bin = find_envoy(opts.envoy.as_deref()).map_err(Error::EnvoyNotFound)?;
    let state = opts
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(&opts.dir));
    std::fs::create_dir_all(&state).map_err(io(&state))?;
    let ca = Arc::new(Ca::load_or_create(&state)?);
    let server_cert = ca.issue_server(Duration::from_secs(30 * 86400))?;
    let ca_pem = ca.cert_pem.clone();
    let tls = || ServerTls {
        cert_pem: server_cert.cert_pem.clone(),
        key_pem: server_cert.key_pem.clone(),
        client_ca_pem: ca_pem.clone(),
    };
    // A predecessor's sidecars (if it was killed) dial its xDS port: take the same one.
    let saved: Value = std::fs::read(state.join("runtime.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let saved_port = saved["xdsPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0 && opts.xds_port == 0);
    let saved_index: BTreeMap<String, u8> =
        serde_json::from_value(saved["index"].clone()).unwrap_or_default();
    let listener = match saved_port {
        Some(p) => match tokio::net::TcpListener::bind(("127.0.0.1", p)).await {
            Ok(l) => Ok(l),
            Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0)).await,
        },
        None => tokio::net::TcpListener::bind(("127.0.0.1", opts.xds_port)).await,
    }
    .map_err(os("xDS port"))?;
    let xds_port = listener.local_addr().map_err(os("xDS port"))?.port();
    eprintln!(
        "meshbridge local: xDS (mTLS) on 127.0.0.1:{xds_port}, Envoy {}, state in {}",
        envoy_bin.display(),
        state.display()
    );
    let ui = Ui::start(&opts.ui_addr, opts.scrape_interval, opts.metrics_window).await?;
    emit(json!({
        "ui": format!("http://{}/", ui.addr),
        "metrics": format!("http://{}{}", ui.addr, meshbridge_core::metrics::api::PREFIX),
    }));
    let cache = Cache::new();
    let conns = Connections::default();
    let mut server = start_xds(cache.clone(), listener, tls(), conns.clone());
    let mut rt = Runtime {
        opts: opts.clone(),
        envoy_bin,
        state,
        ca,
        cache,
        enc: EncodeCache::default(),
        translator: Translator::default(),
        inputs: Inputs::with_options(
            opts.trust_domain.clone(),
            meshbridge_core::load::LoadOptions {
                default_namespace: opts.namespace.clone(),
            },
        ),
        pods: BTreeMap::new(),
        index: saved_index,
        certs: HashMap::new(),
        configs: vec![],
        xds_port,
        generation: 0,
        self_exe: std::env::current_exe().map_err(os("the path of this executable"))?,
        saved_state: String::new(),
        cx: Context::for_mesh(&Context::default(), opts.trust_domain.as_deref(), None),
        ui,
    };
    if let Err(e) = rt.reload().await {
        rt.shutdown().await;
        return Err(e);
    }
    rt.reap_orphans().await;
    let mut ready = false;
    let mut synced_gen: Option<u64> = Some(rt.generation);
    let mut last_nacks: BTreeMap<String, u64> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_poll = Instant::now();
    let mut changed_at: Option<Instant> = None;
    let mut seen = rt.inputs.stamp.clone();
    let mut last_cert_check = Instant::now();
    let started = Instant::now();
    let mut warned = false;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(()) = restart.recv() => {
                eprintln!("meshbridge local: restarting the control plane");
                server.abort();
                let _ = (&mut server).await;
                conns.kill_all();
                rt.cache = Cache::new();
                rt.enc = EncodeCache::default();
                if let Err(e) = rt.publish() { eprintln!("meshbridge local: {e}"); }
                tokio::time::sleep(Duration::from_millis(300)).await;
                match tokio::net::TcpListener::bind(("127.0.0.1", xds_port)).await {
                    Ok(l) => server = start_xds(rt.cache.clone(), l, tls(), conns.clone()),
                    Err(e) => { eprintln!("meshbridge local: xDS port: {e}"); break; }
                }
                last_nacks.clear();
                synced_gen = Some(rt.generation);
                emit(json!({"event": "control-plane-restarted"}));
            }
            _ = tick.tick() => {
                // NACKs
                for (node, st) in rt.cache.status() {
                    let prev = last_nacks.insert(node.clone(), st.nacks).unwrap_or(0);
                    if st.nacks > prev {
                        emit(json!({"event": "nack", "pod": node, "count": st.nacks, "messages": st.last_nack}));
                    }
                }
                // Children that died.
                for (node, p) in rt.pods.iter_mut() {
                    if p.envoy_dead {
                        continue;
                    }
                    if let Some(s) = p.envoy.exited() {
                        p.envoy_dead = true;
                        eprintln!("meshbridge local: Envoy of {node} exited ({s}); see {}", p.dir.join("envoy.log").display());
                        emit(json!({"event": "envoy-exited", "pod": node, "status": s.to_string()}));
                    }
                }
                if let Some(g) = synced_gen {
                    if rt.all_synced() && rt.apps_listening().await {
                        if !ready {
                            ready = true;
                            println!("ready");
                        }
                        emit(json!({"event": "synced", "generation": g}));
                        synced_gen = None;
                    } else if !warned && started.elapsed() > Duration::from_secs(30) {
                        warned = true;
                        eprintln!("meshbridge local: still waiting for every sidecar to acknowledge its config (see the Envoy logs under {})", rt.state.display());
                    }
                }
                // Poll DIR; reload once it has been quiet for 10 ms (editors write in steps).
                if last_poll.elapsed() >= Duration::from_millis(10) {
                    last_poll = Instant::now();
                    let now = rt.inputs.scan(&rt.opts.dir);
                    if now == rt.inputs.stamp {
                        changed_at = None;
                    } else if now != seen {
                        seen = now;
                        changed_at = Some(Instant::now());
                    } else if changed_at.is_some_and(|t| t.elapsed() >= Duration::from_millis(10)) {
                        changed_at = None;
                        match rt.reload().await {
                            Ok(()) => synced_gen = Some(rt.generation),
                            Err(e) => eprintln!("meshbridge local: {e}"),
                        }
                    }
                }
                if last_cert_check.elapsed() >= Duration::from_secs(1) {
                    last_cert_check = Instant::now();
                    match rt.refresh_certs() {
                        Ok(true) => {
                            if let Err(e) = rt.publish() { eprintln!("meshbridge local: {e}"); }
                            emit(json!({"event": "certificates-rotated"}));
                        }
                        Ok(false) => {}
                        Err(e) => eprintln!("meshbridge local: certificates: {e}"),
                    }
                    let rotated = rt.refresh_xds_certs();
                    if !rotated.is_empty() {
                        emit(json!({"event": "xds-certificates-rotated", "pods": rotated}));
                    }
                }
            }
        }
    }
    server.abort();
    rt.shutdown().await;
    Ok(())
}
