//! `meshbridge local up DIR | head -1`: output to a closed pipe never stops the mesh (it used
//! to panic with "failed printing to stdout: Broken pipe" and take every pod down).

mod local_common;

use local_common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_closed_stdout_never_stops_the_mesh() {
    if envoy_or_skip().is_none() {
        return;
    }
    let dir = temp_dir("pipe");
    let state = temp_dir("pipe-state");
    std::fs::write(dir.join("00-ns.yaml"), namespace_yaml()).unwrap();
    std::fs::write(
        dir.join("02-install.yaml"),
        suite_file("traffic-access", "02-install.yaml"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .args(["local", "up"])
        .arg(&dir)
        .arg("--state-dir")
        .arg(&state)
        .args(["--subnet", "40"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read up to `ready`, keeping the client pod's outbound listener, then close the pipe.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut outbound = None;
    for l in lines.by_ref() {
        let l = l.unwrap();
        if l == "ready" {
            break;
        }
        if let Ok(v) = serde_json::from_str::<Value>(&l)
            && v["pod"]
                .as_str()
                .is_some_and(|p| p.starts_with("demo/app-a"))
        {
            outbound = v["outbound"].as_str().map(str::to_string);
        }
    }
    drop(lines);
    let outbound = outbound.expect("app-a's outbound listener");
    // An edit that makes the runtime print (an invalid document): the write hits the
    // closed pipe.
    std::fs::write(dir.join("03-bad.yaml"), "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: bad, namespace: demo}\nspec: {service: app-svc, backends: [{service: app-b, weight: -1}]}\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert!(
            child.try_wait().unwrap().is_none(),
            "meshbridge local exited after its stdout closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The mesh still answers: default deny from app-b's sidecar (403), not a dead proxy (0).
    let (st, body) = http(&outbound, "GET", "app-b.demo:9091", "/", &[]);
    assert_eq!(st, 403, "{body}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("standard output is closed").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&state);
}
