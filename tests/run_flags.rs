//! `meshbridge run` refuses at start what would otherwise fail silently later: a
//! `--metrics-addr` already in use is a usage error naming the flag (exit 2), before any
//! work. (A missing controller namespace is covered in controller/tests/real_server.rs.)

use std::process::Command;

#[test]
fn a_taken_metrics_address_is_a_usage_error_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("meshbridge-run-flags-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshbridge"))
        .args(["run", "--backend", "istio", "--metrics-addr", &addr])
        .arg(format!("--source=dir:{}", dir.join("in").display()))
        .arg(format!("--output=dir:{}", dir.join("out").display()))
        .output()
        .unwrap();
    let rendered = dir.join("out").exists();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--metrics-addr {addr}: cannot listen")),
        "{stderr}"
    );
    assert!(!rendered, "nothing was rendered");
    drop(taken);
}
