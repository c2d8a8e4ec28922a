//! Helpers for the real-Envoy tests of `meshbridge local`: start the runtime on a private
//! loopback subnet, wait for `ready` / `synced`, edit its directory, send HTTP requests
//! through a pod's sidecar.
//!
//! Envoy is found like the runtime finds it (`MESHBRIDGE_ENVOY`, else `envoy` on PATH); when it
//! is missing the tests fail under `CI=true` and are skipped (with a message) otherwise.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

pub const NS: &str = "demo";

/// `None`: no Envoy here and not in CI — the caller returns (skips).
pub fn envoy_or_skip() -> Option<PathBuf> {
    match meshbridge_local::find_envoy(None) {
        Ok(p) => Some(p),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{e} (required in CI)");
            }
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

/// `$MESHBRIDGE_SHARED`, else `shared/` beside the checkout (one rule for every crate).
pub use meshbridge_conformance::shared_dir;

/// A learn-layer5 manifest with the namespace filled in and the image replaced by the echo
/// server.
pub fn suite_file(suite: &str, file: &str) -> String {
    let p = shared_dir()
        .join("smi/conformance/learn-layer5")
        .join(suite)
        .join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.replace("<NAMESPACE>", NS).replace(
        "image: layer5/learn-layer5:latest",
        "command: [\"meshbridge\", \"echo-server\"]",
    )
}

pub fn namespace_yaml() -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n")
}

pub struct Local {
    pub child: Child,
    pub dir: PathBuf,
    pub state: PathBuf,
    /// `--subnet` and the extra arguments (to start a successor).
    args: (u8, Vec<String>),
    lines: Receiver<String>,
    pub pods: Vec<Value>,
    pub generation: u64,
    pub events: Vec<Value>,
    /// The `{"ui": …, "metrics": …}` line (the dashboard and TrafficMetrics URLs).
    pub ui: Option<Value>,
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mb-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Local {
    /// Starts `meshbridge local up` on `files` (name → content) and waits for `ready`.
    pub fn start(name: &str, subnet: u8, files: &[(&str, String)], extra: &[&str]) -> Local {
        let dir = temp_dir(name);
        let state = temp_dir(&format!("{name}-state"));
        for (f, c) in files {
            std::fs::write(dir.join(f), c).unwrap();
        }
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, rx) = spawn(&dir, &state, subnet, &extra);
        let mut me = Local {
            child,
            dir,
            state,
            args: (subnet, extra),
            lines: rx,
            pods: vec![],
            generation: 0,
            events: vec![],
            ui: None,
        };
        me.wait_line(Duration::from_secs(90), |l| l == "ready");
        me.wait_synced(1);
        me
    }

    /// Kills `meshbridge local up` with SIGKILL (no cleanup: its sidecars and programs keep
    /// running), starts a new one on the same directories and waits for `ready`. Returns
    /// how long the control plane was down.
    pub fn kill_and_restart(&mut self, down: Duration) -> Duration {
        let t = Instant::now();
        self.signal("KILL");
        let _ = self.child.wait();
        std::thread::sleep(down);
        let (child, rx) = spawn(&self.dir, &self.state, self.args.0, &self.args.1);
        let elapsed = t.elapsed();
        self.child = child;
        self.lines = rx;
        self.generation = 0;
        self.wait_line(Duration::from_secs(90), |l| l == "ready");
        self.wait_synced(1);
        elapsed
    }

    fn stderr_tail(&self) -> String {
        let s = std::fs::read_to_string(self.state.join("runtime.err")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Reads stdout lines until `f` matches one (pod lines and events are recorded).
    pub fn wait_line(&mut self, timeout: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&l) {
                        if v.get("pod").is_some() && v.get("ip").is_some() {
                            self.pods.push(v.clone());
                        } else if v.get("ui").is_some() {
                            self.ui = Some(v.clone());
                        } else if v.get("event").is_some() {
                            if v["event"] == "synced" {
                                self.generation =
                                    self.generation.max(v["generation"].as_u64().unwrap_or(0));
                            }
                            self.events.push(v.clone());
                        }
                    }
                    if f(&l) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "timed out waiting for meshbridge local; stderr:\n{}",
                        self.stderr_tail()
                    )
                }
            }
        }
    }

    /// Waits until generation `g` (or later) is acknowledged by every sidecar.
    pub fn wait_synced(&mut self, g: u64) {
        if self.generation >= g {
            return;
        }
        self.wait_line(Duration::from_secs(60), |l| {
            serde_json::from_str::<Value>(l).ok().is_some_and(|v| {
                v["event"] == "synced" && v["generation"].as_u64().unwrap_or(0) >= g
            })
        });
    }

    /// Writes (or replaces) a file in DIR atomically and waits until it is served.
    pub fn write(&mut self, name: &str, content: &str) {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
        let g = self.generation + 1;
        self.wait_synced(g);
    }

    /// Like `write` but does not wait for a sync (the edit may be invalid or NACKed): waits
    /// for the next event matching `f` instead.
    pub fn write_expect(&mut self, name: &str, content: &str, f: impl Fn(&Value) -> bool) -> Value {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
        let l = self.wait_line(Duration::from_secs(60), |l| {
            serde_json::from_str::<Value>(l).ok().is_some_and(|v| f(&v))
        });
        serde_json::from_str(&l).unwrap()
    }

    pub fn remove(&mut self, name: &str) {
        std::fs::remove_file(self.dir.join(name)).unwrap();
        let g = self.generation + 1;
        self.wait_synced(g);
    }

    /// The pod line of the first pod whose name starts with `prefix`.
    pub fn pod(&self, prefix: &str) -> &Value {
        self.pods
            .iter()
            .find(|p| {
                p["pod"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{NS}/{prefix}")))
            })
            .unwrap_or_else(|| panic!("no pod {prefix} in {:?}", self.pods))
    }

    /// A request from pod `from` (through its sidecar) to `host`.
    pub fn call(
        &self,
        from: &str,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let out = self.pod(from)["outbound"].as_str().unwrap().to_string();
        http(&out, method, host, path, headers)
    }

    /// Sends `n` GETs and counts responses per answering pod (`status:<code>` for non-200).
    pub fn tally(
        &self,
        from: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        n: usize,
    ) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for _ in 0..n {
            let (st, body) = self.call(from, "GET", host, path, headers);
            let k = if st == 200 {
                serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["pod"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "?".into())
            } else {
                format!("status:{st}")
            };
            *m.entry(k).or_default() += 1;
        }
        m
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Processes a killed runtime left behind (a test that failed between a kill and
        // the restart): never leak them.
        if let Ok(rd) = std::fs::read_dir(self.state.join("pods")) {
            for e in rd.flatten() {
                let Some(f) = meshbridge_local::procs::PidFile::read(&e.path()) else {
                    continue;
                };
                for (pid, argv) in &f.procs {
                    if meshbridge_local::procs::runs(*pid, argv) {
                        let _ = Command::new("kill")
                            .arg("-KILL")
                            .arg(pid.to_string())
                            .status();
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // Keep the state (Envoy and program logs) of a failed test for inspection.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

fn spawn(dir: &Path, state: &Path, subnet: u8, extra: &[String]) -> (Child, Receiver<String>) {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("runtime.err"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .args(["local", "up"])
        .arg(dir)
        .arg("--state-dir")
        .arg(state)
        .args(["--subnet", &subnet.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("start meshbridge local up");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// One HTTP/1.1 request (Connection: close). Returns (status, body); status 0 = connection
/// failure.
pub fn http(
    addr: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Two-sided binomial check: |k - n p| <= z * sqrt(n p (1-p)).
pub fn within_binomial(k: usize, n: usize, p: f64, z: f64) -> bool {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (k as f64 - mean).abs() <= z * sd
}

/// Every pod of the demo namespace may call every other (the TrafficSplit suites' base).
pub const ALLOW_DEFAULT: &str = include_str!("../fixtures/allow_default.yaml");

/// The traffic-split suite's app (`app-a` calling `app-svc`, backed by `app-b` / `app-c`),
/// everything allowed, plus `extra` flags.
pub fn split_app(name: &str, subnet: u8, extra: &[&str]) -> Local {
    Local::start(
        name,
        subnet,
        &[
            ("00-ns.yaml", namespace_yaml()),
            ("01-allow.yaml", ALLOW_DEFAULT.to_string()),
            (
                "02-install.yaml",
                suite_file("traffic-split", "02-install.yaml"),
            ),
        ],
        extra,
    )
}
