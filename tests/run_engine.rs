//! The controller's incremental, per-namespace rendering with the real adapters equals
//! translating the whole snapshot at once (what `meshbridge translate` does), before and
//! after edits; and the benchmark (ignored by default).

use meshbridge_controller::engine::{Backends, Engine, EngineConfig};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::reconciler::Reconciler;
use meshbridge_controller::sink::memory::MemorySink;
use meshbridge_controller::status::LogStatusSink;
use meshbridge_controller::{Change, Msg};
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::model::Object;
use meshbridge_core::synth::Synth;
use meshbridge_core::{Adapter, Context};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn adapter(m: MeshType) -> Box<dyn Adapter> {
    match m {
        MeshType::Istio => Box::new(meshbridge_istio::IstioAdapter),
        MeshType::Linkerd => Box::new(meshbridge_linkerd::LinkerdAdapter),
        _ => Box::new(meshbridge_gateway_api::GatewayApiAdapter),
    }
}

const MESHES: [MeshType; 3] = [MeshType::Istio, MeshType::Linkerd, MeshType::GatewayApi];

fn engine(m: MeshType) -> Engine {
    Engine::new(
        EngineConfig {
            backends: Backends::List(vec![m]),
            ..EngineConfig::default()
        },
        vec![adapter(m)],
    )
}

fn whole(objects: &[Object], m: MeshType) -> BTreeMap<String, Value> {
    let snap = meshbridge_core::Snapshot::from_objects(objects.iter().cloned());
    let ir = meshbridge_core::build::build(&snap);
    let cx = meshbridge_core::pipeline::context_for(&snap, m, &Context::default(), None);
    adapter(m)
        .translate(&ir, &cx)
        .objects
        .into_iter()
        .map(|o| (format!("{:?}", o.sort_key()), o.body))
        .collect()
}

fn partitioned(e: &Engine) -> BTreeMap<String, Value> {
    e.desired()
        .values()
        .map(|d| (format!("{:?}", d.object.sort_key()), d.object.body.clone()))
        .collect()
}

fn upsert(o: Object) -> Change {
    Change::Upsert {
        object: Box::new(o),
        live_status: None,
    }
}

#[test]
fn partitions_equal_whole_world_translation() {
    // 60 splits (and as many route groups, targets and TCPRoutes) over 7 namespaces.
    let synth = Synth {
        per_namespace: 18,
        namespace_objects: true,
        ..Synth::new(240, 120)
    };
    let mut objects = synth.objects();
    // Cross-namespace sources too.
    objects.extend(
        meshbridge_core::load::load_str(
            "x.yaml",
            "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: cross, namespace: ns1}\nspec:\n  destination: {kind: ServiceAccount, name: sa18, namespace: ns1}\n  sources:\n  - {kind: ServiceAccount, name: sa36, namespace: ns2}\n  rules:\n  - {kind: TCPRoute, name: tcp18}\n",
        )
        .objects,
    );
    for m in MESHES {
        let mut e = engine(m);
        for o in objects.clone() {
            e.apply(upsert(o));
        }
        e.recompute();
        let expected = whole(&objects, m);
        assert!(!expected.is_empty(), "{m}: adapter produced nothing");
        assert_eq!(partitioned(&e), expected, "{m}");
        // Edits, a delete, a new split: still equal, and only one namespace re-rendered.
        let mut current = objects.clone();
        for (k, w) in [(3usize, (1u32, 1u32)), (10, (0, 5)), (3, (7, 3))] {
            let edit = synth.split(k, w);
            let key = edit.key();
            current.retain(|o| o.key() != key);
            current.push(edit.clone());
            e.apply(upsert(edit));
            let d = e.recompute();
            assert_eq!(d.partitions, 1);
            assert_eq!(
                partitioned(&e),
                whole(&current, m),
                "{m} after editing split{k}"
            );
        }
        let gone = current
            .iter()
            .position(|o| o.key().name == "split5")
            .unwrap();
        let key = current.remove(gone).key();
        e.apply(Change::Delete(key));
        e.recompute();
        assert_eq!(partitioned(&e), whole(&current, m), "{m} after a delete");
    }
}

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// 10,000 SMI objects over 5,000 Services (50 namespaces), then 1,000 single-object edits. Run with
/// `cargo test --release --test run_engine -- --ignored --nocapture bench`.
#[tokio::test(flavor = "current_thread")]
#[ignore]
async fn bench_edit_to_applied() {
    bench().await
}

async fn bench() {
    let synth = Synth {
        namespace_objects: true,
        ..Synth::new(10_000, 5_000)
    };
    let splits = synth.smi / 4;
    // RSS growth is only meaningful for the first mesh measured in a process (the
    // allocator keeps freed memory): pick one with BENCH_MESH=istio|linkerd|gateway-api.
    let only = std::env::var("BENCH_MESH").ok();
    for (i, m) in MESHES
        .into_iter()
        .filter(|m| only.as_deref().is_none_or(|o| o == m.as_str()))
        .enumerate()
    {
        let rss0 = rss_kib().unwrap_or(0);
        let objects = synth.objects();
        let n_objects = objects.len();
        let smi = objects.iter().filter(|o| o.kind().is_smi()).count();
        let sink = MemorySink::new("meshbridge-system");
        let mut rec = Reconciler::new(
            engine(m),
            Box::new(sink.clone()),
            Box::new(LogStatusSink::default()),
            Arc::new(Metrics::default()),
            Arc::new(AtomicBool::new(true)),
        );
        let t0 = Instant::now();
        rec.handle(Msg::Replace {
            kinds: meshbridge_controller::source::memory::ALL_KINDS.to_vec(),
            changes: objects.into_iter().map(upsert).collect(),
        });
        let first = rec.reconcile().await;
        let load = t0.elapsed();
        let rss1 = rss_kib().unwrap_or(0);
        let mut lat = Vec::new();
        let mut writes = Vec::new();
        let mut seed: u64 = 42;
        for i in 0..1000u32 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (seed >> 33) as usize % splits;
            let edit = synth.split(k, (50 + i % 40, 10));
            let t = Instant::now();
            rec.handle(Msg::Input(upsert(edit)));
            let r = rec.reconcile().await;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            writes.push(r.writes());
        }
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
        let wsum: usize = writes.iter().sum();
        println!(
            "bench {m}: {smi} SMI objects, {n_objects} inputs, {} outputs; initial load+reconcile {:.0} ms ({} writes); \
             edit→applied p50 {:.2} ms p99 {:.2} ms max {:.2} ms; writes/edit mean {:.2} max {}; \
             RSS +{} KiB ({:.2} KiB/input object{})",
            rec.engine.desired().len(),
            load.as_secs_f64() * 1000.0,
            first.writes(),
            p(0.5),
            p(0.99),
            lat[lat.len() - 1],
            wsum as f64 / writes.len() as f64,
            writes.iter().max().unwrap(),
            rss1.saturating_sub(rss0),
            rss1.saturating_sub(rss0) as f64 / n_objects as f64,
            if i == 0 {
                ""
            } else {
                "; not first in process: not meaningful"
            },
        );
        drop(rec);
        drop(sink);
    }
}

#[test]
fn programmed_lists_the_backends_in_use_not_every_adapter() {
    let all = || {
        vec![
            adapter(MeshType::Istio),
            adapter(MeshType::Linkerd),
            adapter(MeshType::GatewayApi),
        ]
    };
    let auto = |objects: &str| {
        let mut e = Engine::new(
            EngineConfig {
                backends: Backends::Auto,
                ..EngineConfig::default()
            },
            all(),
        );
        let (changes, problems) = meshbridge_core::engine::changes_of(
            meshbridge_core::load::load_str("in.yaml", objects),
        );
        assert!(problems.is_empty(), "{problems:?}");
        for c in changes {
            e.apply(c);
        }
        e.recompute();
        e.programmed()
            .into_iter()
            .map(|(m, _)| m)
            .collect::<Vec<_>>()
    };
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n";
    // `auto` and no Mesh: nothing programs `shop`.
    assert_eq!(auto(svc), Vec::<MeshType>::new());
    // The single Mesh programs it: that one, not the other two adapters.
    let mesh = "---\napiVersion: meshbridge.io/v1alpha1\nkind: Mesh\nmetadata: {name: prod, namespace: meshbridge-system}\nspec: {type: linkerd}\n";
    assert_eq!(auto(&format!("{svc}{mesh}")), [MeshType::Linkerd]);
    // --backend LIST: those, namespaces or not.
    let e = Engine::new(
        EngineConfig {
            backends: Backends::List(vec![MeshType::GatewayApi]),
            ..EngineConfig::default()
        },
        all(),
    );
    let got: Vec<MeshType> = e.programmed().into_iter().map(|(m, _)| m).collect();
    assert_eq!(got, [MeshType::GatewayApi]);
    assert_eq!(e.capabilities().len(), 3);
}
