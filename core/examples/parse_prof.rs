use std::time::Instant;
fn main() {
    let text = meshbridge_core::synth::cluster_yaml(10_000, 5_000);
    println!("bytes {}", text.len());
    let t = Instant::now();
    let docs = meshbridge_core::load::split_documents(&text);
    println!("split {:?} docs {}", t.elapsed(), docs.len());
    let t = Instant::now();
    let vals: Vec<_> = docs
        .iter()
        .map(|(_, d)| meshbridge_core::load::parse_document(d).unwrap().unwrap())
        .collect();
    println!("yaml->value {:?}", t.elapsed());
    let t = Instant::now();
    let mut l = meshbridge_core::load::Loaded::default();
    for v in vals {
        meshbridge_core::load::load_value(v, &meshbridge_core::model::Origin::Api, &mut l);
    }
    println!("value->typed {:?}", t.elapsed());
}
