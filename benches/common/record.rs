//! The machine-readable side of the benchmarks: each figure is also printed as one line
//! `BENCH {"figure", "size", "unit", "value", "impl"[, "backend"]}` that `scripts/bench.sh`
//! collects into `target/bench-results.json` (pairing meshbridge's figures with the peers'
//! measured in the same run). `impl` is `meshbridge` or the peer's name.

/// Whether `scripts/bench.sh --quick` asked for tiny sizes (`MESHBRIDGE_BENCH_QUICK=1`).
#[allow(dead_code)] // each benchmark uses what it needs
pub fn quick() -> bool {
    std::env::var("MESHBRIDGE_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// Prints one figure's record.
#[allow(dead_code)]
pub fn record(figure: &str, size: usize, unit: &str, value: f64, imp: &str, backend: Option<&str>) {
    if !value.is_finite() {
        println!("BENCH-SKIPPED {figure} size={size} impl={imp}: no value");
        return;
    }
    let mut r = serde_json::json!({
        "figure": figure, "size": size, "unit": unit, "value": value, "impl": imp,
    });
    if let Some(b) = backend {
        r["backend"] = serde_json::json!(b);
    }
    println!("BENCH {r}");
}
