//! The web dashboard in headless Chromium, driving a live `meshbridge local` with real Envoy:
//! the demo (a client and two versions of `web` split 90/10, a TrafficTarget, and an
//! `intruder` no TrafficTarget allows) gets real traffic; the page shows the workloads, the
//! edges and the split with exactly the requests this test sent; a weight edit in the
//! directory shows up in the page within 2 s, in place; an API error (a 503 injected by the
//! driver) is reported and recovered from; the intruder's refused calls (answered 403 by its
//! own sidecar, counted per trimmed virtual host) are a refused edge, drawn red dashed and
//! listed. Screenshots go to `target/test-artifacts/dashboard/`
//! (`MESHBRIDGE_UPDATE_SCREENSHOT=1` also copies the first to `docs/dashboard.png`).
//!
//! Needs Debian's `chromium` (`/usr/bin/chromium`, or `$MESHBRIDGE_CHROMIUM`), Node and
//! `playwright-core` in `.tools/node` (`scripts/test.sh` installs both); fails when they are
//! missing. Skipped without Envoy like the other real-Envoy tests.

mod local_common;

use local_common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const APP: &str = include_str!("../local/examples/demo/app.yaml");
const ALLOW: &str = include_str!("../local/examples/allow-client.yaml");
const INTRUDER: &str = include_str!("fixtures/dashboard/intruder.yaml");
const WEIGHTS_90_10: &str = "{service: web-v1, weight: 90}, {service: web-v2, weight: 10}";
/// Weights that do not sum to 100: the page must show percentages, not weights.
const WEIGHTS_1_3: &str = "{service: web-v1, weight: 1}, {service: web-v2, weight: 3}";
const CALLS: usize = 200;
const DENIED_CALLS: usize = 20;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Chromium, Node and playwright-core, or a panic saying which is missing and how to get it.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("MESHBRIDGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "the dashboard test needs Chromium at {} (apt-get install chromium, or set MESHBRIDGE_CHROMIUM)",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the dashboard test needs Node (`node` on PATH): {node:?}"
    );
    let pw = root().join(".tools/node/node_modules/playwright-core");
    assert!(
        pw.join("index.mjs").is_file(),
        "the dashboard test needs playwright-core in {} (scripts/test.sh installs it; or npm install --prefix .tools/node playwright-core@1)",
        pw.display()
    );
    (chromium, pw)
}

/// GET `/api/dashboard` of the running dashboard at `ui` (`http://ADDR/`).
fn api(ui: &str) -> (u16, Value) {
    let addr = ui
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix('/'))
        .unwrap_or_else(|| panic!("ui URL {ui}"));
    let (st, body) = http(addr, "GET", addr, "/api/dashboard", &[]);
    (st, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn split_requests(d: &Value, svc: &str) -> f64 {
    d["splits"][0]["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["service"] == svc))
        .and_then(|b| b["requests"].as_f64())
        .unwrap_or(-1.0)
}

/// Runs the driver with a bounded wait (killed after `limit`). Returns (success, stdout).
fn drive(cfg: &Value, limit: Duration) -> (bool, String) {
    let out_path =
        std::env::temp_dir().join(format!("mb-dashboard-drive-{}.out", std::process::id()));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("node")
        .arg(root().join("tests/dashboard/drive.mjs"))
        .env("DASHBOARD_DRIVE", cfg.to_string())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node tests/dashboard/drive.mjs");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let Some(status) = status else {
        panic!("the dashboard driver did not finish within {limit:?}; its output: {stdout}");
    };
    (status.success(), stdout)
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|x| x[key] == value))
        .unwrap_or_else(|| panic!("no {key}={value} in {list:#}"))
}

#[test]
fn dashboard_shows_live_topology_and_split_and_a_weight_edit_within_2s() {
    if envoy_or_skip().is_none() {
        return;
    }
    let (chromium, playwright) = browser_tools();
    let mut m = Local::start(
        "dashboard",
        61,
        &[
            ("app.yaml", APP.to_string()),
            ("allow-client.yaml", ALLOW.to_string()),
            ("intruder.yaml", INTRUDER.to_string()),
        ],
        // Every request of the test stays in the window until the end.
        &["--metrics-window", "600"],
    );
    let ui = m.ui.as_ref().expect("the {\"ui\": …} line before ready")["ui"]
        .as_str()
        .expect("ui URL")
        .to_string();
    assert!(
        APP.contains(WEIGHTS_90_10),
        "the demo's split changed: {APP}"
    );

    // Real traffic: the client through its sidecar (allowed, split 90/10); the intruder
    // (no TrafficTarget: refused).
    let t = m.tally("client", "web.demo", "/", &[], CALLS);
    let v1 = t.get("web-v1-0").copied().unwrap_or(0);
    let v2 = t.get("web-v2-0").copied().unwrap_or(0);
    assert_eq!(v1 + v2, CALLS, "client → web: {t:?}");
    assert!(within_binomial(v1, CALLS, 0.9, 5.0), "not 90/10: {t:?}");
    let denied = m.tally("intruder", "web.demo", "/", &[], DENIED_CALLS);
    assert_eq!(
        denied.get("status:403").copied(),
        Some(DENIED_CALLS),
        "intruder → web: {denied:?}"
    );
    // Until the API has read every request from the sidecars.
    let deadline = Instant::now() + Duration::from_secs(15);
    let doc = loop {
        let (st, d) = api(&ui);
        // The intruder's calls: refused by its own sidecar (it may reach no pod of web),
        // counted per trimmed virtual host and shared between web's two pods.
        let refused = |to: &str| {
            d["edges"].as_array().into_iter().flatten().any(|e| {
                e["from"] == "Deployment/demo/intruder"
                    && e["to"] == format!("Deployment/demo/{to}")
                    && e["refused"] == true
                    && e["stats"]["denied"] == (DENIED_CALLS / 2) as f64
            })
        };
        if st == 200
            && split_requests(&d, "web-v1") == v1 as f64
            && split_requests(&d, "web-v2") == v2 as f64
            && refused("web-v1")
            && refused("web-v2")
        {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the API never counted {t:?}; last: {st} {d:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    // The edit the driver puts in place (rename: atomic, and the moment it measures from).
    let staged = m.dir.join(".app.yaml.tmp");
    std::fs::write(&staged, APP.replace(WEIGHTS_90_10, WEIGHTS_1_3)).unwrap();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts/dashboard");
    let _ = std::fs::remove_dir_all(&artifacts);
    let user_data = temp_dir("dashboard-chromium");
    let nodes = ["client", "web-v1", "web-v2", "intruder"].map(|n| format!("Deployment/demo/{n}"));
    let cfg = json!({
        "url": ui,
        "artifacts": artifacts,
        "chromium": chromium,
        "playwright": playwright,
        "userDataDir": user_data,
        "expect": {
            "nodes": nodes,
            "edges": [[&nodes[0], &nodes[1]], [&nodes[0], &nodes[2]]],
            "split": "demo/web",
            "backends": {"web-v1": 90, "web-v2": 10},
        },
        "edit": {
            "staged": staged,
            "target": m.dir.join("app.yaml"),
            "backends": {"web-v1": 25, "web-v2": 75},
        },
        "refused": [&nodes[3], &nodes[1]],
    });
    let gen_before = m.generation;
    let (ok, stdout) = drive(&cfg, Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(&user_data);
    let r: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert!(ok, "the dashboard driver failed: {}", r["error"]);
    // The edit was really applied (and acknowledged by every sidecar).
    m.wait_synced(gen_before + 1);

    // What the page showed before the edit: every workload with what it served, the edges
    // with their numbers, the split with exactly the requests sent.
    let before = &r["before"];
    for n in &nodes {
        find(&before["nodes"], "node", n);
    }
    let web_v1 = find(&before["nodes"], "node", &nodes[1]);
    assert_eq!(web_v1["requests"], v1.to_string(), "{web_v1:#}");
    assert_eq!(web_v1["successRate"], "1", "{web_v1:#}");
    let e1 = find(
        &before["edges"],
        "edge",
        &format!("{} -> {}", nodes[0], nodes[1]),
    );
    assert_eq!(e1["requests"], v1.to_string(), "{e1:#}");
    assert_eq!(e1["refused"], "false");
    assert!(
        e1["label"].as_str().unwrap().contains("rps · 100% · p99 "),
        "edge label: {e1:#}"
    );
    let rps_shown: f64 = e1["rps"].as_str().unwrap().parse().unwrap();
    let rps_api = doc["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == nodes[1].as_str())
        .unwrap()["stats"]["rps"]
        .as_f64()
        .unwrap();
    assert!(
        rps_shown > 0.0 && rps_api > 0.0,
        "rps: page {rps_shown}, API {rps_api}"
    );
    let split = find(&before["splits"], "split", "demo/web");
    assert_eq!(split["object"], "TrafficSplit/demo/web");
    for (svc, n, declared) in [("web-v1", v1, "90"), ("web-v2", v2, "10")] {
        let b = find(&split["backends"], "backend", svc);
        assert_eq!(b["declared"], declared, "{b:#}");
        assert_eq!(b["requests"], n.to_string(), "{b:#}");
        let observed: f64 = b["observed"].as_str().unwrap().parse().unwrap();
        let want = n as f64 * 100.0 / CALLS as f64;
        assert!(
            (observed - want).abs() <= 0.1,
            "{svc}: observed {observed}%, sent {want}%"
        );
    }
    // The capability matrix of the built-in mesh, and every object's conditions.
    let caps = before["capabilities"].as_array().unwrap();
    assert!(caps.len() >= 10, "capability cells: {caps:?}");
    let ts = caps
        .iter()
        .find(|c| c["feature"] == "trafficSplit")
        .unwrap();
    assert_eq!(ts["level"], "Full");
    for o in [
        "TrafficSplit/demo/web",
        "TrafficTarget/demo/client-to-web",
        "HTTPRouteGroup/demo/web-api",
    ] {
        let obj = find(&before["objects"], "object", o);
        let accepted = find(&obj["conditions"], "condition", "Accepted");
        assert_eq!(accepted["status"], "True", "{obj:#}");
    }

    // The edit: within 2 s, in place, generation advanced.
    let latency = r["editLatencyMs"].as_u64().unwrap();
    eprintln!("dashboard: edit → page showed the new weights in {latency} ms");
    assert!(latency <= 2000, "the weight edit took {latency} ms to show");
    assert_eq!(
        r["sameElements"], true,
        "the split was re-created, not updated in place"
    );
    assert_eq!(r["navigationsDuringEdit"], 0);
    let after = find(&r["after"]["splits"], "split", "demo/web");
    let (a1, a2) = (
        find(&after["backends"], "backend", "web-v1"),
        find(&after["backends"], "backend", "web-v2"),
    );
    assert_eq!(
        (&a1["declared"], &a1["weight"]),
        (&json!("25"), &json!("1")),
        "{a1:#}"
    );
    assert_eq!(
        (&a2["declared"], &a2["weight"]),
        (&json!("75"), &json!("3")),
        "{a2:#}"
    );
    assert!(a2["text"].as_str().unwrap().contains("75%"), "{a2:#}");

    // An API error is said clearly, the last data kept; then it recovers.
    let err = r["errorStatus"].as_str().unwrap();
    assert!(
        err.contains("/api/dashboard failed: HTTP 503: injected by the dashboard test"),
        "{err}"
    );
    assert_eq!(r["errorStale"], true);
    assert_eq!(r["errorKeepsData"], nodes.len());
    assert!(
        r["recoveredStatus"].as_str().unwrap().starts_with("live"),
        "{r:#}"
    );

    // A refused edge: red, dashed, its own arrowhead, listed with the pair.
    let refused = &r["refused"];
    assert_ne!(refused["dash"], "none", "{refused:#}");
    assert_eq!(refused["stroke"], "rgb(208, 74, 74)", "{refused:#}");
    assert_eq!(refused["marker"], "url(#arrow-refused)");
    assert_eq!(refused["listVisible"], true);
    // The intruder's refused calls to `web`, shared between its two pods.
    assert!(
        refused["listed"][0].as_str().unwrap().starts_with(&format!(
            "intruder → web-v1: {} requests denied",
            DENIED_CALLS / 2
        )),
        "{refused:#}"
    );
    assert_eq!(r["pageErrors"], json!([]), "JavaScript errors in the page");

    for f in [
        "dashboard.png",
        "dashboard-edited.png",
        "dashboard-error.png",
        "dashboard-refused.png",
    ] {
        let p = artifacts.join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "screenshot {} ({len} bytes)", p.display());
    }
    if std::env::var("MESHBRIDGE_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        std::fs::copy(
            artifacts.join("dashboard.png"),
            root().join("docs/dashboard.png"),
        )
        .unwrap();
    }
}
