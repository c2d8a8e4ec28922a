//! Rediscovery: user fields survive, identities (not names) match, vanished meshes are
//! kept with `Ready=False NotFound`, and the merge is idempotent.

mod common;

use common::{cluster, condition as cond, discovered, echo_caps};
use meshbridge_core::api::common::Condition;
use meshbridge_core::api::meshbridge::{LinkerdSplitMode, Mesh, MeshSpec, MeshType};
use meshbridge_discovery::{Config, discover, find_control_planes, merge};
use serde_json::Value;

fn bump(objs: &[Value], from: &str, to: &str) -> Vec<Value> {
    let text = serde_json::to_string(objs).unwrap().replace(from, to);
    serde_json::from_str(&text).unwrap()
}

fn j<T: serde::Serialize>(x: &T) -> Value {
    serde_json::to_value(x).unwrap()
}

fn rediscover(existing: &[Mesh], objs: &[Value]) -> Vec<Mesh> {
    merge(
        existing,
        &find_control_planes(objs),
        &Config::default(),
        &echo_caps,
    )
}

#[test]
fn user_fields_and_names_survive_rediscovery() {
    let objs = cluster("istio-1.12");
    let mut m = discover(&objs, &Config::default(), &echo_caps);
    assert_eq!(m.len(), 1);
    // The user renames the Mesh, sets another trust domain, and the controller has added
    // its own condition.
    m[0].metadata.name = Some("prod-mesh".into());
    m[0].spec.trust_domain = Some("user.example".into());
    m[0].metadata.generation = Some(3);
    m[0].status.as_mut().unwrap().conditions.push(Condition {
        type_: "Supported".into(),
        status: "True".into(),
        reason: "AdapterAvailable".into(),
        message: "from the controller".into(),
        observed_generation: Some(3),
        last_transition_time: None,
    });
    // Istio is upgraded in place.
    let after = rediscover(&m, &bump(&objs, "1.12.9", "1.13.4"));
    assert_eq!(
        after.len(),
        1,
        "matched by identity, not name: no second Mesh"
    );
    let a = &after[0];
    assert_eq!(a.metadata.name.as_deref(), Some("prod-mesh"));
    assert_eq!(
        a.spec.trust_domain.as_deref(),
        Some("user.example"),
        "user value kept"
    );
    assert_eq!(
        a.spec.version.as_deref(),
        Some("1.13.4"),
        "discovery-owned value refreshed"
    );
    assert_eq!(discovered(a).trust_domain.as_deref(), Some("cluster.local"));
    assert_eq!(discovered(a).version.as_deref(), Some("1.13.4"));
    assert_eq!(
        a.status.as_ref().unwrap().capabilities[0].reason,
        "istio at 1.13.4"
    );
    assert_eq!(cond(a, "Supported").message, "from the controller");
    assert_eq!(cond(a, "Ready").observed_generation, Some(3));
    // Idempotent.
    assert_eq!(
        j(&rediscover(&after, &bump(&objs, "1.12.9", "1.13.4"))),
        j(&after)
    );
}

#[test]
fn pinned_version_and_split_mode_are_kept_and_drive_capabilities() {
    let objs = cluster("linkerd-edge");
    let mut m = discover(&objs, &Config::default(), &echo_caps);
    m[0].spec.version = Some("edge-24.7.5".into());
    m[0].spec.linkerd_split_mode = Some(LinkerdSplitMode::ServiceProfile);
    let after = rediscover(&m, &bump(&objs, "edge-24.8.2", "edge-24.9.1"));
    let a = &after[0];
    assert_eq!(a.spec.version.as_deref(), Some("edge-24.7.5"));
    assert_eq!(
        a.spec.linkerd_split_mode,
        Some(LinkerdSplitMode::ServiceProfile)
    );
    assert_eq!(
        a.status.as_ref().unwrap().capabilities[0].reason,
        "linkerd at edge-24.7.5, split mode ServiceProfile"
    );
    assert_eq!(discovered(a).version.as_deref(), Some("edge-24.9.1"));
}

#[test]
fn vanished_mesh_gets_not_found_and_is_kept() {
    let m = discover(
        &cluster("linkerd-stable-2.14"),
        &Config::default(),
        &echo_caps,
    );
    let mut existing = m.clone();
    let mut gw = Mesh::new("gamma", MeshSpec::of(MeshType::GatewayApi));
    gw.metadata.namespace = Some(common::NS.into());
    existing.push(gw.clone());
    let after = rediscover(&existing, &cluster("nothing"));
    assert_eq!(after.len(), 2, "nothing deleted");
    let l = after
        .iter()
        .find(|x| x.metadata.name.as_deref() == Some("linkerd"))
        .unwrap();
    let r = cond(l, "Ready");
    assert_eq!(
        (r.status.as_str(), r.reason.as_str()),
        ("False", "NotFound")
    );
    assert!(
        r.message
            .contains("linkerd control plane in namespace linkerd"),
        "{}",
        r.message
    );
    assert!(r.message.contains("stable-2.14.10"));
    assert_eq!(l.spec, m[0].spec);
    assert_eq!(discovered(l), discovered(&m[0]));
    let g = after
        .iter()
        .find(|x| x.metadata.name.as_deref() == Some("gamma"))
        .unwrap();
    assert_eq!(j(g), j(&gw), "gateway-api Meshes are not discovery's");
    // It comes back: Ready again, same object.
    let back = rediscover(&after, &cluster("linkerd-stable-2.14"));
    let l2 = back
        .iter()
        .find(|x| x.metadata.name.as_deref() == Some("linkerd"))
        .unwrap();
    assert_eq!(cond(l2, "Ready").status, "True");
}

#[test]
fn declared_mesh_adopts_its_control_plane() {
    let mut mine = Mesh::new(
        "my-linkerd",
        MeshSpec {
            linkerd_split_mode: Some(LinkerdSplitMode::HTTPRoute),
            ..MeshSpec::of(MeshType::Linkerd)
        },
    );
    mine.metadata.namespace = Some(common::NS.into());
    let after = rediscover(&[mine], &cluster("linkerd-edge"));
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].metadata.name.as_deref(), Some("my-linkerd"));
    assert_eq!(
        after[0].spec.control_plane_namespace.as_deref(),
        Some("l5d")
    );
    assert_eq!(after[0].spec.version.as_deref(), Some("edge-24.8.2"));
    assert_eq!(
        after[0].spec.linkerd_split_mode,
        Some(LinkerdSplitMode::HTTPRoute)
    );
}

#[test]
fn one_revision_known_other_new_and_name_clash() {
    let objs = cluster("istio-revisions");
    let all = discover(&objs, &Config::default(), &echo_caps);
    let only_20: Vec<Mesh> = all
        .iter()
        .filter(|m| m.metadata.name.as_deref() == Some("istio-1-20"))
        .cloned()
        .collect();
    let after = rediscover(&only_20, &objs);
    assert_eq!(j(&after), j(&all));
    // Two default-revision Istios in different namespaces: distinct names.
    let second = bump(&cluster("istio-1.22"), "istio-system", "istio-other");
    let mut both = cluster("istio-1.22");
    both.extend(second);
    let names: Vec<_> = discover(&both, &Config::default(), &echo_caps)
        .into_iter()
        .map(|m| m.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["istio", "istio-istio-system"]);
}

#[test]
fn arbitrary_values_never_panic() {
    // Every fixture document with its fields shuffled into wrong types.
    let mut objs = Vec::new();
    for case in [
        "istio-1.12",
        "istio-revisions",
        "linkerd-stable-2.14",
        "appmesh",
        "odd-tags",
    ] {
        objs.extend(cluster(case));
    }
    let mutate = |v: &Value, with: &Value| -> Value {
        fn walk(v: &Value, with: &Value, depth: usize, out: &mut Vec<Value>) {
            if let Value::Object(m) = v {
                for (k, child) in m {
                    let mut c = v.clone();
                    c[k] = with.clone();
                    out.push(c);
                    if depth < 3 {
                        let mut sub = Vec::new();
                        walk(child, with, depth + 1, &mut sub);
                        for s in sub {
                            let mut c = v.clone();
                            c[k] = s;
                            out.push(c);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(v, with, 0, &mut out);
        Value::Array(out)
    };
    for with in [
        Value::Null,
        Value::from(7),
        Value::from("x"),
        serde_json::json!([1]),
        serde_json::json!({}),
    ] {
        for o in &objs {
            if let Value::Array(vs) = mutate(o, &with) {
                let _ = discover(&vs, &Config::default(), &echo_caps);
            }
        }
    }
}
