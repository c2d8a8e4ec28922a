//! Sync of N TrafficSplits (default 1,000) against a local moto server (same harness as the
//! tests: moto + VirtualService mock). Prints calls per split and timings; a second sync
//! with nothing changed must make zero mutating calls. Not run in CI:
//!
//!     cargo bench -p meshbridge-appmesh --bench sync [-- SPLITS]
//!
//! Needs `pip install "moto[server]"` (`python3 -m moto.server`, or `$MESHBRIDGE_PYTHON`).

#[path = "../tests/support/mod.rs"]
mod support;

use meshbridge_appmesh::desired_state;
use meshbridge_appmesh::sync::sync;
use meshbridge_core::Context;
use std::fmt::Write as _;
use std::time::Instant;

fn input(n: usize) -> String {
    let mut y = String::new();
    for i in 0..n {
        for (svc, sel) in [
            (format!("s{i}"), format!("app: s{i}")),
            (format!("s{i}-v1"), format!("app: s{i}, version: v1")),
            (format!("s{i}-v2"), format!("app: s{i}, version: v2")),
        ] {
            let _ = write!(
                y,
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}, namespace: bench}}\nspec:\n  selector: {{{sel}}}\n  ports: [{{name: http, port: 8080, targetPort: 8080}}]\n---\n"
            );
        }
        let _ = write!(
            y,
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: s{i}, namespace: bench}}\nspec:\n  service: s{i}\n  backends:\n  - {{service: s{i}-v1, weight: 90}}\n  - {{service: s{i}-v2, weight: 10}}\n---\n"
        );
    }
    y
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let Some(env) = support::Env::start("bench").await else {
            eprintln!("moto is not available; nothing measured");
            return;
        };
        let client = env.client.clone();
        let t = Instant::now();
        let ir = support::ir_of(&input(n));
        let want = desired_state(&ir, &Context::default());
        let plan = t.elapsed();
        println!(
            "splits: {n}; App Mesh resources: {} (translate {:.1} ms)",
            want.resource_count(),
            plan.as_secs_f64() * 1e3
        );
        let mut runs = Vec::new();
        for label in ["first sync (create)", "second sync (no change)"] {
            let t = Instant::now();
            let r = sync(&client, "bench", &want).await;
            let dt = t.elapsed().as_secs_f64();
            assert!(r.is_ok(), "{:?}", &r.errors[..r.errors.len().min(5)]);
            println!(
                "{label}: {dt:.2} s; calls: {} read + {} mutating = {:.2} per split ({:.2} mutating per split); created {}, updated {}, unchanged {}",
                r.read_calls,
                r.mutating_calls,
                (r.read_calls + r.mutating_calls) as f64 / n as f64,
                r.mutating_calls as f64 / n as f64,
                r.created.len(),
                r.updated.len(),
                r.unchanged
            );
            runs.push(r);
        }
        assert_eq!(runs[1].mutating_calls, 0, "a no-change sync must not write");
        println!("second sync mutating calls: 0 (as required)");
        drop(env);
    });
}
