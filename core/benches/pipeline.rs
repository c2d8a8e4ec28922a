//! Benchmark (not a test): parse + validate + build IR for synthetic clusters.
//! `cargo bench -p meshbridge-core --bench pipeline` prints, for 1k and 10k SMI objects
//! (over 500 and 5,000 Services), the time of each stage (best of 5), the peak RSS of a
//! process that did only that work, and the 10k/1k ratios (linear growth = ~10x).

#[path = "../../benches/common/rss.rs"]
mod rss;

use meshbridge_core::{build::build, load::load_str, snapshot::Snapshot, synth::cluster_yaml};
use std::time::{Duration, Instant};

fn one(n_smi: usize, n_svc: usize) -> (Duration, Duration, Duration, u64, u64) {
    let text = cluster_yaml(n_smi, n_svc);
    let before = rss::peak_rss_kib(std::process::id());
    let (mut tp, mut ts, mut tb) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let t = Instant::now();
        let l = load_str("bench.yaml", &text);
        let p = t.elapsed();
        assert!(l.problems.is_empty());
        let t = Instant::now();
        let snap = Snapshot::from_objects(l.objects);
        let s = t.elapsed();
        let t = Instant::now();
        let ir = build(&snap);
        let b = t.elapsed();
        assert_eq!(snap.smi_len(), n_smi);
        assert!(ir.problems().is_empty());
        std::hint::black_box(&ir);
        tp = tp.min(p);
        ts = ts.min(s);
        tb = tb.min(b);
    }
    (tp, ts, tb, before, rss::peak_rss_kib(std::process::id()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n: usize = args[i + 1].parse().unwrap();
        let svc: usize = args[i + 2].parse().unwrap();
        let (p, s, b, before, after) = one(n, svc);
        println!(
            "{} {} {} {} {}",
            p.as_secs_f64(),
            s.as_secs_f64(),
            b.as_secs_f64(),
            before,
            after
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    for (n, svc) in [(1_000usize, 500usize), (10_000, 5_000)] {
        let out = std::process::Command::new(&exe)
            .args(["--child", &n.to_string(), &svc.to_string()])
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        println!(
            "{n:>6} SMI objects / {svc:>5} services: parse {:>7.1} ms, snapshot {:>6.1} ms, validate+IR {:>6.1} ms, total {:>7.1} ms; peak RSS {:>6.1} MiB (input text + objects: {:.1} MiB)",
            f[0] * 1e3,
            f[1] * 1e3,
            f[2] * 1e3,
            (f[0] + f[1] + f[2]) * 1e3,
            f[4] / 1024.0,
            (f[4] - f[3]) / 1024.0
        );
        rows.push(f);
    }
    let r = |i: usize| rows[1][i] / rows[0][i];
    println!(
        "10k/1k ratio: parse {:.1}x, snapshot {:.1}x, validate+IR {:.1}x, total {:.1}x (linear = 10x); memory {:.1}x",
        r(0),
        r(1),
        r(2),
        (rows[1][0] + rows[1][1] + rows[1][2]) / (rows[0][0] + rows[0][1] + rows[0][2]),
        (rows[1][4] - rows[1][3]) / (rows[0][4] - rows[0][3]).max(1.0)
    );
}
