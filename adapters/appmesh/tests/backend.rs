//! The App Mesh API backend (`backend::Backend`, what `meshbridge run --backend appmesh`
//! uses) against a real local moto server (harness: `support`): plans merged per App Mesh
//! mesh, every failure and conflict attributed to exactly the input objects behind the
//! resource, unchanged plans not synced again, a mesh no namespace uses any more cleaned up
//! once. Skipped without moto, except with `CI=true`.

mod support;

use meshbridge_appmesh::backend::{Action, Backend, BackendError, ObjectProblem, Part};
use meshbridge_appmesh::sync::{ResourceId, SyncError};
use meshbridge_core::api::meshbridge::MeshSpec;
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_core::{Context, Ir};
use std::sync::Arc;
use support::{Env, create_node, fixture, ir_of};

const MESH: &str = "m";
const OWNER: &str = "meshbridge-system";

/// Namespace `ns` with one canary split `<ns>-canary` (3 nodes, router, route, service).
fn canary(ns: &str) -> Arc<Ir> {
    let svc = |name: &str, version: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {ns}{version}}}\n  ports: [{{name: http, port: 80, targetPort: 80}}]\n---\n"
        )
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n{}{}{}apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: {ns}-canary, namespace: {ns}}}\nspec:\n  service: {ns}\n  backends:\n  - {{service: {ns}-v1, weight: 9}}\n  - {{service: {ns}-v2, weight: 1}}\n",
        svc(ns, ""),
        svc(&format!("{ns}-v1"), ", version: v1"),
        svc(&format!("{ns}-v2"), ", version: v2"),
    );
    Arc::new(ir_of(&yaml))
}

fn shop() -> Arc<Ir> {
    Arc::new(ir_of(&fixture("shop.yaml")))
}

/// The context of a namespace whose Mesh object names App Mesh mesh `name`.
fn in_mesh(name: &str) -> Context {
    let spec: MeshSpec =
        serde_json::from_value(serde_json::json!({"type": "appmesh", "appMeshName": name}))
            .expect("Mesh spec");
    Context {
        mesh: Some(spec),
        ..Context::default()
    }
}

fn split(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(Kind::TrafficSplit, ns, name)
}

fn part<'a>(namespace: &'a str, ir: &'a Arc<Ir>, cx: &'a Context) -> Part<'a> {
    Part { namespace, ir, cx }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_conflicts_reach_exactly_their_input_objects() {
    let Some(e) = Env::start(MESH).await else {
        return;
    };
    // Someone else's node holds a name the web-canary split needs.
    create_node(&e.client, MESH, "web-v1_shop", "mine.example", &[]).await;
    // shop → the default mesh; blog → a mesh that does not exist.
    let (shop, blog) = (shop(), canary("blog"));
    let (default_cx, missing_cx) = (Context::default(), in_mesh("no-such-mesh"));
    let mut b = Backend::new(Some(MESH.into()), OWNER.into()).with_client(e.client.clone());
    let parts = [
        part("blog", &blog, &missing_cx),
        part("shop", &shop, &default_cx),
    ];
    let r = b.sync(&parts, false).await;

    // Per input object: web-canary has the conflict on its node and the route not written
    // because of it; blog-canary the mesh-wide failure of its mesh; nothing else.
    let (web, blog_split) = (split("shop", "web-canary"), split("blog", "blog-canary"));
    assert_eq!(
        r.objects.keys().collect::<Vec<_>>(),
        [&blog_split, &web],
        "{r:#?}"
    );
    match &r.objects[&web][..] {
        [ObjectProblem::Failed(f), ObjectProblem::Conflict(c)] => {
            assert_eq!(
                f,
                "App Mesh m: Route/web_shop/p8080-split: not written: its target virtual nodes are not in place (web-v1_shop)"
            );
            assert!(
                c.starts_with(
                    "App Mesh m: VirtualNode/web-v1_shop: exists without meshbridge's tags (arn:"
                ),
                "{c}"
            );
        }
        other => panic!("{other:#?}"),
    }
    match &r.objects[&blog_split][..] {
        [ObjectProblem::Failed(f)] => assert!(
            f.starts_with("App Mesh no-such-mesh: Mesh/no-such-mesh: "),
            "{f}"
        ),
        other => panic!("{other:#?}"),
    }

    // The typed errors and conflicts behind them.
    match &r.errors[..] {
        [
            BackendError::Sync {
                mesh: m1,
                failure: f1,
            },
            BackendError::Sync {
                mesh: m2,
                failure: f2,
            },
        ] => {
            assert_eq!((m1.as_str(), m2.as_str()), (MESH, "no-such-mesh"));
            assert_eq!(
                f1.resource,
                ResourceId::Route {
                    router: "web_shop".into(),
                    name: "p8080-split".into()
                }
            );
            assert_eq!(
                f1.error,
                SyncError::TargetsNotInPlace(vec!["web-v1_shop".into()])
            );
            assert_eq!(f2.resource, ResourceId::Mesh("no-such-mesh".into()));
            assert_eq!(f2.parents, [blog_split.clone()].into());
        }
        other => panic!("{other:#?}"),
    }
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    assert_eq!(r.conflicts[0].mesh, MESH);
    assert_eq!(
        r.conflicts[0].conflict.resource,
        ResourceId::VirtualNode("web-v1_shop".into())
    );
    assert_eq!(r.conflicts[0].conflict.parents, [web.clone()].into());
    // Everything else of shop is in place; nothing was written to the missing mesh.
    assert_eq!(r.changes.len(), 17, "{r:#?}");
    assert!(
        r.changes
            .iter()
            .all(|c| c.mesh == MESH && c.action == Action::Created)
    );
    assert_eq!(r.mutating_calls, 17);
    assert!(
        r.changes
            .iter()
            .any(|c| c.to_string() == "m: created VirtualRouter/api_shop")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_plans_are_not_synced_again_and_an_unused_mesh_is_cleaned_up_once() {
    let Some(e) = Env::start(MESH).await else {
        return;
    };
    // No default mesh: shop names its mesh, blog names none.
    let (shop, blog) = (shop(), canary("blog"));
    let (shop_cx, blog_cx) = (in_mesh(MESH), Context::default());
    let mut b = Backend::new(None, OWNER.into()).with_client(e.client.clone());
    let both = [part("blog", &blog, &blog_cx), part("shop", &shop, &shop_cx)];
    let no_mesh = BackendError::NoMesh {
        namespace: "blog".into(),
    };
    let blog_failed = |r: &meshbridge_appmesh::backend::BackendReport| {
        assert_eq!(r.errors, std::slice::from_ref(&no_mesh), "{r:#?}");
        assert_eq!(r.objects.len(), 1, "{r:#?}");
        assert_eq!(
            r.objects[&split("blog", "blog-canary")],
            [ObjectProblem::Failed(no_mesh.to_string())]
        );
        assert!(
            no_mesh
                .to_string()
                .starts_with("namespace blog: no App Mesh mesh to program")
        );
    };

    let r = b.sync(&both, false).await;
    blog_failed(&r);
    assert_eq!((r.changes.len(), r.mutating_calls), (19, 19), "{r:#?}");

    // Same plans: App Mesh is not asked at all; forced: compared, nothing written.
    let r = b.sync(&both, false).await;
    blog_failed(&r);
    assert_eq!((r.read_calls, r.mutating_calls), (0, 0), "{r:#?}");
    let r = b.sync(&both, true).await;
    blog_failed(&r);
    assert!(r.read_calls > 0 && r.mutating_calls == 0, "{r:#?}");
    assert!(r.changes.is_empty());

    // shop leaves: its mesh is synced once with an empty plan, then left alone.
    let r = b.sync(&both[..1], false).await;
    blog_failed(&r);
    assert_eq!(r.changes.len(), 19, "{r:#?}");
    assert!(r.changes.iter().all(|c| c.action == Action::Deleted));
    let r = b.sync(&both[..1], true).await;
    blog_failed(&r);
    assert_eq!((r.read_calls, r.mutating_calls), (0, 0), "{r:#?}");
}
