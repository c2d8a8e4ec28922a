//! Swap without app change, end to end through the controller (memory sink): discover Istio
//! and Linkerd, program a namespace with Istio, flip the namespace's `meshbridge.io/mesh`
//! label to Linkerd: every Istio output is removed, every Linkerd output created, and no
//! application object (Deployment, Service, Pod, ...) is written. Then Istio is
//! uninstalled: its Mesh stays with `Ready=False NotFound` and nothing else changes.

#[path = "../discovery/tests/common/mod.rs"]
mod common;

use common::swap::{self, namespace};
use common::{NS, condition, yaml_of};
use meshbridge_controller::OutKey;
use meshbridge_controller::sink::memory::{MemorySink, Write};
use meshbridge_core::api::meshbridge::{Install, InstallSpec, MeshType};
use meshbridge_discovery::find_control_planes;
use meshbridge_discovery::install::{self, Action};
use std::collections::BTreeSet;

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
        let (mut cluster, meshes) = swap::discovered();
        let names: Vec<_> = meshes
            .iter()
            .map(|m| m.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["istio", "linkerd"]);

        let sink = MemorySink::new(NS);
        let mut rec = swap::reconciler(Box::new(sink.clone()));
        swap::start(&mut rec, &meshes);
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
        swap::feed(&mut rec, &namespace("linkerd"));
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
                version: Some("1.22.3".into()),
                ..install::spec_of(MeshType::Istio)
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
        let after = meshbridge_discovery::merge(
            &meshes,
            &find_control_planes(&cluster),
            &swap::config(),
            &swap::caps,
        );
        let istio = after
            .iter()
            .find(|m| m.metadata.name.as_deref() == Some("istio"))
            .unwrap();
        let ready = condition(istio, "Ready");
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
        swap::feed(&mut rec, &yaml_of(&after));
        let r = rec.reconcile().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(
            sink.take_writes().is_empty(),
            "outputs unchanged by Istio's removal"
        );
        assert_eq!(sink.objects().keys().cloned().collect::<BTreeSet<_>>(), now);
    }
}
