use std::time::Instant;
fn main() {
    let text = meshbridge_core::synth::cluster_yaml(10_000, 5_000);
    let docs = meshbridge_core::load::split_documents(&text);
    let t = Instant::now();
    let v: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(&text, serde_saphyr::options! { budget: None })
            .unwrap();
    println!("from_multiple {:?} {}", t.elapsed(), v.len());
    let t = Instant::now();
    for (_, d) in &docs {
        let _: serde_json::Value = serde_saphyr::from_str(d).unwrap();
    }
    println!("per-doc from_str {:?}", t.elapsed());
    let t = Instant::now();
    let opts = serde_saphyr::options! { budget: None };
    for (_, d) in &docs {
        let _: serde_json::Value = serde_saphyr::from_str_with_options(d, opts.clone()).unwrap();
    }
    println!("per-doc no budget {:?}", t.elapsed());
}
