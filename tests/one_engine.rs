//! One engine, two runtimes: the same scenario (valid → invalid edit → unreadable field →
//! broken YAML → fixed → deleted) through `meshbridge run --source dir:IN` (the controller's
//! dir source and reconciler, istio backend, memory sink) and through `meshbridge local`'s
//! inputs (core's directory reader and engine, as `local up` drives them). Both must report
//! the same problems and `Accepted`/`ResolvedRefs` conditions, keep the same last good
//! version, and — through the same adapter — produce the same outputs.

use meshbridge_controller::engine::{Backends, Engine, EngineConfig, LAST_GOOD_NOTE};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::reconciler::Reconciler;
use meshbridge_controller::sink::memory::MemorySink;
use meshbridge_controller::source::dir::DirSource;
use meshbridge_controller::source::{Source, SyncTracker};
use meshbridge_controller::status::LogStatusSink;
use meshbridge_controller::{Msg, OutKey};
use meshbridge_core::api::common::Condition;
use meshbridge_core::model::{Kind, ObjectKey, RawWeight};
use meshbridge_core::status::{ACCEPTED, RESOLVED_REFS};
use meshbridge_core::{Adapter, Context};
use meshbridge_local::Inputs;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::mpsc;

const BASE: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec: {selector: {app: web, version: v1}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web, version: v2}, ports: [{name: http, port: 80}]}
";

fn split(w1: &str, w2: &str) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {{name: web, namespace: shop}}
spec:
  service: web
  backends:
  - {{service: web-v1, weight: {w1}}}
  - {{service: web-v2, weight: {w2}}}
"
    )
}

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshbridge-one-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What one runtime shows of the split after a step.
#[derive(Debug, PartialEq)]
struct Seen {
    /// `Accepted` and `ResolvedRefs`, without the mesh-specific `Programmed/<mesh>`.
    conditions: Vec<Condition>,
    problems: Vec<String>,
    using_last_good: bool,
    /// The version in use: its backends' weights.
    in_use: Option<Vec<i64>>,
}

fn seen(e: &Engine, key: &ObjectKey) -> Option<Seen> {
    let st = e.state(key)?;
    let in_use = e.in_use(key).map(|o| match o {
        meshbridge_core::model::Object::TrafficSplit(s) => s
            .backends
            .iter()
            .map(|b| match &b.weight {
                RawWeight::Number(n) => n.as_i64().unwrap(),
                RawWeight::Quantity(q) => panic!("{q:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    });
    Some(Seen {
        conditions: st
            .conditions
            .iter()
            .filter(|c| c.type_ == ACCEPTED || c.type_ == RESOLVED_REFS)
            .cloned()
            .collect(),
        problems: st.problems.iter().map(|p| p.to_string()).collect(),
        using_last_good: st.using_last_good,
        in_use,
    })
}

/// `run --source dir:IN --backend istio`: the controller's dir source (watching) and
/// reconciler.
struct Run {
    rx: mpsc::UnboundedReceiver<Msg>,
    rec: Reconciler,
    sink: MemorySink,
}

impl Run {
    async fn start(dir: &Path) -> Run {
        let engine = Engine::new(
            EngineConfig {
                backends: Backends::List(vec![meshbridge_core::api::meshbridge::MeshType::Istio]),
                ..EngineConfig::default()
            },
            vec![Box::new(meshbridge_istio::IstioAdapter)],
        );
        let sink = MemorySink::new("meshbridge-system");
        let rec = Reconciler::new(
            engine,
            Box::new(sink.clone()),
            Box::new(LogStatusSink::default()),
            Arc::new(Metrics::default()),
            Arc::new(AtomicBool::new(true)),
        );
        let (tx, rx) = mpsc::unbounded_channel();
        Box::new(DirSource {
            root: dir.to_path_buf(),
            opts: Default::default(),
            problems: Default::default(),
            poll: Duration::from_millis(5),
            debounce: Duration::from_millis(5),
        })
        .start(tx, SyncTracker::default(), true)
        .await
        .unwrap();
        let mut r = Run { rx, rec, sink };
        r.settle().await;
        r
    }

    /// Takes the messages of one directory change (waits for the first), then reconciles.
    async fn settle(&mut self) {
        let first = tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("the dir source saw the change")
            .unwrap();
        self.rec.handle(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(m) = self.rx.try_recv() {
            self.rec.handle(m);
        }
        self.rec.reconcile().await;
    }

    /// What was written (bodies without the hash annotation the sink adds).
    fn outputs(&self) -> BTreeMap<OutKey, Value> {
        let desired: BTreeMap<OutKey, Value> = self
            .rec
            .engine
            .desired()
            .iter()
            .map(|(k, d)| (k.clone(), d.object.body.clone()))
            .collect();
        let written: Vec<OutKey> = self.sink.objects().into_keys().collect();
        assert_eq!(
            written,
            desired.keys().cloned().collect::<Vec<_>>(),
            "the sink holds what the engine desires"
        );
        desired
    }
}

/// `meshbridge local`'s view translated with the same (istio) adapter.
fn local_outputs(ir: &meshbridge_core::Ir) -> BTreeMap<OutKey, Value> {
    let cx = Context::for_mesh(&Context::default(), None, None);
    meshbridge_istio::IstioAdapter
        .translate(ir, &cx)
        .objects
        .into_iter()
        .map(|o| (OutKey::of(&o), o.body))
        .collect()
}

fn weights_in(outputs: &BTreeMap<OutKey, Value>) -> Vec<i64> {
    let mut w: Vec<i64> = outputs
        .iter()
        .filter(|(k, _)| k.kind == "VirtualService")
        .flat_map(|(_, v)| {
            v["spec"]["http"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["route"].as_array().into_iter().flatten())
                .filter_map(|d| d["weight"].as_i64())
                .collect::<Vec<_>>()
        })
        .collect();
    w.sort();
    w
}

async fn write(dir: &Path, file: &str, text: &str) {
    // Different modification times for successive writes of the same file.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(dir.join(file), text).unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn run_and_local_agree_on_problems_conditions_and_last_known_good() {
    let dir = tmpdir();
    std::fs::write(dir.join("00-base.yaml"), BASE).unwrap();
    std::fs::write(dir.join("10-split.yaml"), split("90", "10")).unwrap();
    let key = ObjectKey::new(Kind::TrafficSplit, "shop", "web");

    let mut run = Run::start(&dir).await;
    let mut local = Inputs::new(None);

    struct Step {
        name: &'static str,
        text: Option<String>,
        using_last_good: bool,
        in_use: Option<Vec<i64>>,
        /// Text every problem line of the split contains (None: no problem).
        problem: Option<&'static str>,
        weights: Vec<i64>,
    }
    let steps = [
        Step {
            name: "valid",
            text: None,
            using_last_good: false,
            in_use: Some(vec![90, 10]),
            problem: None,
            weights: vec![10, 90],
        },
        Step {
            name: "invalid edit",
            text: Some(split("-5", "10")),
            using_last_good: true,
            in_use: Some(vec![90, 10]),
            problem: Some("negative"),
            weights: vec![10, 90],
        },
        Step {
            // A field of the wrong type: the object cannot be read at all
            // (`meshbridge local` used to drop the object; it keeps its last good one).
            name: "unreadable field",
            text: Some(split("heavy", "10")),
            using_last_good: true,
            in_use: Some(vec![90, 10]),
            problem: Some("weight"),
            weights: vec![10, 90],
        },
        Step {
            // Broken YAML: the file keeps what it held (the unreadable version above).
            name: "broken YAML",
            text: Some("spec: [unclosed\n".into()),
            using_last_good: true,
            in_use: Some(vec![90, 10]),
            problem: Some("weight"),
            weights: vec![10, 90],
        },
        Step {
            name: "fixed",
            text: Some(split("50", "50")),
            using_last_good: false,
            in_use: Some(vec![50, 50]),
            problem: None,
            weights: vec![50, 50],
        },
    ];
    for s in &steps {
        if let Some(t) = &s.text {
            write(&dir, "10-split.yaml", t).await;
            run.settle().await;
        }
        let (_, ir, diags) = local.reload(&dir);
        let lines = diags.lines();
        let r = seen(&run.rec.engine, &key).unwrap_or_else(|| panic!("{}: run", s.name));
        let l = seen(local.engine(), &key).unwrap_or_else(|| panic!("{}: local", s.name));
        assert_eq!(r, l, "{}: run and local disagree", s.name);
        assert_eq!(r.using_last_good, s.using_last_good, "{}: {r:?}", s.name);
        assert_eq!(r.in_use, s.in_use, "{}: {r:?}", s.name);
        let accepted = &r.conditions[0];
        assert_eq!(accepted.type_, ACCEPTED);
        match s.problem {
            None => {
                assert!(r.problems.is_empty(), "{}: {r:?}", s.name);
                assert_eq!(accepted.status, "True", "{}", s.name);
                assert!(
                    !lines.iter().any(|l| l.contains("shop/web")),
                    "{}: {lines:?}",
                    s.name
                );
            }
            Some(text) => {
                assert!(
                    !r.problems.is_empty() && r.problems.iter().all(|p| p.contains(text)),
                    "{}: {r:?}",
                    s.name
                );
                assert_eq!(accepted.status, "False", "{}", s.name);
                assert!(
                    accepted.message.contains(LAST_GOOD_NOTE),
                    "{}: {accepted:?}",
                    s.name
                );
                // local prints the same problems (in the one format: errors as they are,
                // warnings after `warning: `), and says the last good version stays.
                for p in &r.problems {
                    assert!(
                        lines
                            .iter()
                            .any(|l| l == p || *l == format!("warning: {p}")),
                        "{}: {p} not in {lines:?}",
                        s.name
                    );
                }
                assert!(
                    lines.iter().any(|l| l.starts_with("warning: ")
                        && l.contains("TrafficSplit shop/web")
                        && l.contains(LAST_GOOD_NOTE)),
                    "{}: {lines:?}",
                    s.name
                );
            }
        }
        if s.name == "broken YAML" {
            assert!(
                lines.iter().any(|l| l.contains("10-split.yaml")
                    && l.contains("keeping the last readable version")),
                "{lines:?}"
            );
        }
        let outs = run.outputs();
        assert_eq!(outs, local_outputs(&ir), "{}: outputs", s.name);
        assert_eq!(weights_in(&outs), s.weights, "{}: {outs:#?}", s.name);
    }

    // Deleted: the split's status and outputs go, in both.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::remove_file(dir.join("10-split.yaml")).unwrap();
    run.settle().await;
    let (_, ir, diags) = local.reload(&dir);
    let lines = diags.lines();
    assert!(seen(&run.rec.engine, &key).is_none());
    assert!(seen(local.engine(), &key).is_none());
    assert!(run.rec.engine.in_use(&key).is_none() && local.engine().in_use(&key).is_none());
    assert!(lines.is_empty(), "{lines:?}");
    let outs = run.outputs();
    assert_eq!(outs, local_outputs(&ir), "deleted: outputs");
    assert!(weights_in(&outs).is_empty(), "{outs:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
