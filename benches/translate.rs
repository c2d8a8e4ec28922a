//! Benchmark (not a test): translate synthetic clusters to every target.
//! `cargo bench --bench translate` prints, for 1k and 10k SMI objects (over 500 and 5,000
//! Services; 100 and 1k with `MESHBRIDGE_BENCH_QUICK=1`), the time of IR → each adapter's
//! objects (best of 3) and the peak RSS of a process that did only that translation, plus
//! the 10k/1k ratios (linear = 10x). Record `cold_translate_s` (per backend): text → load +
//! validate + IR (once) + the best translation.
//!
//! Then `edit_to_desired_ms` (per backend; 10k SMI objects, 1k with `--quick`): the engine
//! every runtime drives, loaded with the whole input and rendered once, then one TrafficSplit's
//! weights edited 60 times (10 with `--quick`): the time of `apply` + `recompute` until the new desired
//! state is there (p50 and p99; the record is the p99). An edit that changes no output is a
//! failure of the benchmark, not a figure.

#[path = "common/record.rs"]
mod record;
#[path = "common/rss.rs"]
mod rss;

use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::engine::{Backends, Engine, EngineConfig, changes_of};
use meshbridge_core::{
    Adapter, Context,
    build::build,
    load::load_str,
    snapshot::Snapshot,
    synth::{Synth, cluster_yaml},
};
use std::time::{Duration, Instant};

fn adapter(name: &str) -> Box<dyn Adapter> {
    match name {
        "istio" => Box::new(meshbridge_istio::IstioAdapter),
        "linkerd" => Box::new(meshbridge_linkerd::LinkerdAdapter),
        "gateway-api" => Box::new(meshbridge_gateway_api::GatewayApiAdapter),
        "appmesh" => Box::new(meshbridge_appmesh::AppMeshAdapter),
        _ => Box::new(meshbridge_envoy::EnvoyAdapter),
    }
}

const MESHES: &[&str] = &["istio", "linkerd", "gateway-api", "appmesh"];

fn child(mesh: &str, n: usize, svc: usize) {
    let text = cluster_yaml(n, svc);
    let t0 = Instant::now();
    let l = load_str("bench.yaml", &text);
    let ir = build(&Snapshot::from_objects(l.objects));
    let load_ir = t0.elapsed();
    drop(text);
    let a = adapter(mesh);
    let cx = Context::default();
    let mut best = Duration::MAX;
    let mut objects = 0;
    let mut mem = 0;
    for _ in 0..3 {
        let before = rss::rss_kib(std::process::id());
        let t = Instant::now();
        let out = a.translate(&ir, &cx);
        best = best.min(t.elapsed());
        mem = mem.max(rss::rss_kib(std::process::id()).saturating_sub(before));
        objects = out.objects.len();
        std::hint::black_box(&out);
    }
    println!(
        "{} {} {} {}",
        best.as_secs_f64(),
        objects,
        mem,
        load_ir.as_secs_f64()
    );
}

/// Edits per backend (10 with `--quick`).
fn edits() -> usize {
    if record::quick() { 10 } else { 60 }
}

/// One backend's engine under edits: prints `p50_ms p99_ms cold_s partitions_per_edit`.
fn edit_child(mesh: &str, n: usize, svc: usize) {
    let synth = Synth::new(n, svc);
    let (changes, _) = changes_of(load_str("bench.yaml", &synth.yaml()));
    let m = MeshType::parse(mesh).expect("mesh type");
    let mut e = Engine::new(
        EngineConfig {
            backends: Backends::Every(m),
            ..EngineConfig::default()
        },
        vec![adapter(mesh)],
    );
    let t = Instant::now();
    for c in changes {
        e.apply(c);
    }
    let cold = e.recompute();
    let cold_s = t.elapsed().as_secs_f64();
    assert!(
        !cold.outputs.is_empty(),
        "{mesh}: the input renders nothing"
    );
    let mut times = Vec::new();
    let mut partitions = 0;
    for k in 0..edits() {
        // Split k (spread over the namespaces), its weights moved by one.
        let i = (k * 37) % n.div_ceil(4);
        let w = 50 + (k as u32 % 40);
        let (edit, _) = changes_of(load_str("edit.yaml", &synth.split_yaml(i, (w, 100 - w))));
        let t = Instant::now();
        for c in edit {
            e.apply(c);
        }
        let d = e.recompute();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if d.outputs.is_empty() {
            println!("FAILED: edit {k} of split{i} changed no output of {mesh}");
            std::process::exit(1);
        }
        partitions += d.partitions;
        std::hint::black_box(e.desired());
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "{} {} {} {}",
        q(0.5),
        q(0.99),
        cold_s,
        partitions as f64 / edits() as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--edit-child") {
        edit_child(
            &args[i + 1],
            args[i + 2].parse().unwrap(),
            args[i + 3].parse().unwrap(),
        );
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(
            &args[i + 1],
            args[i + 2].parse().unwrap(),
            args[i + 3].parse().unwrap(),
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    println!(
        "translate IR → objects, best of 3; memory = RSS growth holding the translation's output"
    );
    for mesh in MESHES {
        let mut rows = Vec::new();
        let sizes = if record::quick() {
            [(100usize, 50usize), (1_000, 500)]
        } else {
            [(1_000, 500), (10_000, 5_000)]
        };
        for (n, svc) in sizes {
            let out = std::process::Command::new(&exe)
                .args(["--child", mesh, &n.to_string(), &svc.to_string()])
                .output()
                .unwrap();
            let f: Vec<f64> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() < 4 {
                println!(
                    "{mesh:>12}: failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
            println!(
                "{mesh:>12} {n:>6} SMI / {svc:>5} svc: {:>8.1} ms, {:>6} objects, +{:>6.1} MiB",
                f[0] * 1e3,
                f[1],
                f[2] / 1024.0
            );
            record::record(
                "cold_translate_s",
                n,
                "s",
                f[3] + f[0],
                "meshbridge",
                Some(mesh),
            );
            rows.push(f);
        }
        if rows.len() == 2 {
            println!(
                "{mesh:>12} 10x the objects: time {:.1}x",
                rows[1][0] / rows[0][0]
            );
        }
    }
    println!(
        "edit → desired state (engine apply + recompute of one TrafficSplit edit, {} edits)",
        edits()
    );
    let (n, svc) = if record::quick() {
        (1_000usize, 500usize)
    } else {
        (10_000, 5_000)
    };
    for mesh in MESHES.iter().chain(&["envoy"]) {
        let out = std::process::Command::new(&exe)
            .args(["--edit-child", mesh, &n.to_string(), &svc.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if !out.status.success() || f.len() < 4 {
            println!(
                "{mesh:>12}: failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            println!("BENCH-SKIPPED edit_to_desired_ms size={n} impl=meshbridge backend={mesh}");
            continue;
        }
        println!(
            "{mesh:>12} {n:>6} SMI / {svc:>5} svc: p50 {:>6.2} ms, p99 {:>6.2} ms ({:.1} namespaces re-rendered per edit; cold render {:.2} s)",
            f[0], f[1], f[3], f[2]
        );
        record::record(
            "edit_to_desired_ms",
            n,
            "ms",
            f[1],
            "meshbridge",
            Some(mesh),
        );
    }
}
