//! Swap without app change, end to end through the controller (memory sink): discover Istio
//! and Linkerd, program a namespace with Istio, flip the namespace's `meshbridge.io/mesh`
//! label to Linkerd: every Istio output is removed, every Linkerd output created, and no
//! application object (Deployment, Service, Pod, ...) is written. Then Istio is
//! uninstalled: its Mesh stays with `Ready=False NotFound` and nothing else changes.

use meshbridge_controller::engine::{Backends, Engine, EngineConfig};
use meshbridge_controller::metrics::Metrics;
use meshbridge_controller::reconciler::Reconciler;
use meshbridge_controller::sink::memory::{MemorySink, Write};
use meshbridge_controller::status::LogStatusSink;
use meshbridge_controller::{Change, Msg, OutKey};
use meshbridge_core::api::meshbridge::{Install, InstallSpec, Mesh, MeshSpec, MeshType};
use meshbridge_core::capability::Capability;
use meshbridge_core::{Adapter, Context};
use meshbridge_discovery::install::{self, Action};
use meshbridge_discovery::{Config, find_control_planes, merge, read_objects};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

const NS: &str = "meshbridge-system";

fn adapter(t: MeshType) -> Option<Box<dyn Adapter>> {
    match t {
        MeshType::Istio => Some(Box::new(meshbridge_istio::IstioAdapter)),
        MeshType::Linkerd => Some(Box::new(meshbridge_linkerd::LinkerdAdapter)),
        _ => None,
    }
}

fn caps(spec: &MeshSpec) -> Option<Vec<Capability>> {
    let cx = Context {
        mesh: Some(spec.clone()),
        ..Context::default()
    };
    Some(adapter(spec.mesh_type)?.capabilities(&cx).rows().to_vec())
}

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("discovery/tests/fixtures")
        .join(case)
        .join("cluster.yaml")
}

/// The application both swap tests run (Services, ServiceAccounts, Deployments, SMI).
const APP: &str = include_str!("../discovery/tests/swap-app.yaml");

fn namespace(mesh: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {{meshbridge.io/mesh: {mesh}}}\n"
    )
}

fn msgs(yaml: &str) -> Vec<Msg> {
    let l = meshbridge_core::load::load_str("swap.yaml", yaml);
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    l.objects
        .into_iter()
        .map(|o| {
            Msg::Input(Change::Upsert {
                object: Box::new(o),
                live_status: None,
            })
        })
        .collect()
}

fn mesh_yaml(meshes: &[Mesh]) -> String {
    let vs: Vec<serde_json::Value> = meshes
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    meshbridge_core::yaml::to_yaml_stream(&vs)
}

fn groups(keys: impl IntoIterator<Item = OutKey>) -> BTreeSet<String> {
    keys.into_iter().map(|k| k.group).collect()
}

const APP_KINDS: [&str; 8] = [
    "Deployment",
    "Service",
    "Pod",
    "ServiceAccount",
    "Namespace",
    "EndpointSlice",
    "ReplicaSet",
    "StatefulSet",
];

#[tokio::test(flavor = "current_thread")]
async fn istio_to_linkerd_swap() {
    {
        // 1. Both meshes run (Istio 1.22 and Linkerd stable-2.14): discovery writes two Meshes.
        let (mut cluster, problems) =
            read_objects(&[fixture("istio-1.22"), fixture("linkerd-stable-2.14")]);
        assert!(problems.is_empty(), "{problems:?}");
        let cfg = Config {
            namespace: NS.into(),
            ..Config::default()
        };
        let meshes = merge(&[], &find_control_planes(&cluster), &cfg, &caps);
        let names: Vec<_> = meshes
            .iter()
            .map(|m| m.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["istio", "linkerd"]);

        let sink = MemorySink::new(NS);
        let engine = Engine::new(
            EngineConfig {
                base: Context {
                    controller_namespace: NS.into(),
                    ..Context::default()
                },
                trust_domain: None,
                backends: Backends::Auto,
            },
            vec![
                adapter(MeshType::Istio).unwrap(),
                adapter(MeshType::Linkerd).unwrap(),
            ],
        );
        let mut rec = Reconciler::new(
            engine,
            Box::new(sink.clone()),
            Box::new(LogStatusSink::default()),
            Arc::new(Metrics::default()),
            Arc::new(AtomicBool::new(true)),
        );
        for m in msgs(&mesh_yaml(&meshes))
            .into_iter()
            .chain(msgs(APP))
            .chain(msgs(&namespace("istio")))
        {
            rec.handle(m);
        }
        let r = rec.reconcile().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let istio_keys: BTreeSet<OutKey> = sink.objects().keys().cloned().collect();
        assert!(!istio_keys.is_empty());
        let g = groups(istio_keys.clone());
        assert!(g.iter().all(|g| g.ends_with("istio.io")), "{g:?}");
        assert!(
            g.contains("networking.istio.io") && g.contains("security.istio.io"),
            "{g:?}"
        );
        sink.take_writes();

        // 2. Flip the namespace label: Istio's outputs go, Linkerd's come.
        for m in msgs(&namespace("linkerd")) {
            rec.handle(m);
        }
        let r = rec.reconcile().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let writes = sink.take_writes();
        let deleted: BTreeSet<OutKey> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        let put: BTreeSet<OutKey> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Put(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, istio_keys, "every Istio output removed");
        let now: BTreeSet<OutKey> = sink.objects().keys().cloned().collect();
        assert_eq!(put, now, "every Linkerd output created");
        let g = groups(now.clone());
        assert!(g.iter().all(|g| g.ends_with("linkerd.io")), "{g:?}");
        assert!(g.contains("policy.linkerd.io"), "{g:?}");
        for w in &writes {
            let k = match w {
                Write::Put(k) | Write::Delete(k) => k,
            };
            assert!(
                !(APP_KINDS.contains(&k.kind.as_str())
                    && (k.group.is_empty() || k.group == "apps")),
                "application object written: {k}"
            );
        }
        // Linkerd outputs equal what the Linkerd adapter renders for the namespace alone.
        let want: BTreeSet<OutKey> = rec
            .engine
            .desired()
            .iter()
            .filter(|(_, d)| d.mesh == MeshType::Linkerd)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(now, want);

        // 3. Uninstall Istio: its Install is disabled → the uninstall Job for its revision.
        let mut inst: Install = install::new_install(
            "istio",
            NS,
            InstallSpec {
                mesh_type: MeshType::Istio,
                version: Some("1.22.3".into()),
                install_namespace: None,
                revision: None,
                disabled: false,
            },
        );
        inst.spec.disabled = true;
        let job = install::job(&inst, Action::Uninstall).unwrap();
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["args"],
            serde_json::json!(["uninstall", "-y", "--revision", "default"])
        );
        // Istio is gone from the cluster: rediscovery keeps its Mesh with Ready=False NotFound.
        cluster.retain(|o| {
            o.pointer("/metadata/namespace").and_then(|v| v.as_str()) != Some("istio-system")
        });
        let after = merge(&meshes, &find_control_planes(&cluster), &cfg, &caps);
        let istio = after
            .iter()
            .find(|m| m.metadata.name.as_deref() == Some("istio"))
            .unwrap();
        let ready = istio
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NotFound")
        );
        let linkerd = after
            .iter()
            .find(|m| m.metadata.name.as_deref() == Some("linkerd"))
            .unwrap();
        assert_eq!(
            serde_json::to_value(linkerd).unwrap(),
            serde_json::to_value(
                meshes
                    .iter()
                    .find(|m| m.metadata.name.as_deref() == Some("linkerd"))
                    .unwrap()
            )
            .unwrap()
        );
        for m in msgs(&mesh_yaml(&after)) {
            rec.handle(m);
        }
        let r = rec.reconcile().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(
            sink.take_writes().is_empty(),
            "outputs unchanged by Istio's removal"
        );
        assert_eq!(sink.objects().keys().cloned().collect::<BTreeSet<_>>(), now);
    }
}
