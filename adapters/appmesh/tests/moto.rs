//! Direct-API sync against a real local moto server (see `support` for the harness).
//!
//! moto implements meshes, virtual routers, routes and virtual nodes, but **not virtual
//! services**: those calls are answered by the harness's request-verifying mock (it checks
//! the request fields, that the providing router exists in moto, and refuses to delete a
//! router still providing a virtual service), and the tests below assert on the requests it
//! recorded.
//!
//! Needs `pip install "moto[server]"`; runs `python3 -m moto.server` (or
//! `$MESHBRIDGE_PYTHON -m moto.server`) on a free 127.0.0.1 port per test. Skipped when moto
//! is missing, except with `CI=true`, where missing moto fails the tests.

mod support;

use meshbridge_appmesh::model::{RouteDef, RouteKind};
use meshbridge_appmesh::sync::aws_sdk_appmesh::{Client, types as t};
use meshbridge_appmesh::sync::{ResourceId, SyncError, SyncReport, route_spec, sync};
use meshbridge_appmesh::{DesiredState, desired_state};
use meshbridge_core::Context;
use meshbridge_core::model::{Kind, ObjectKey};
use serde_json::json;
use support::{Env, create_node, fixture, ir_of};

const MESH: &str = "m";

async fn env() -> Option<Env> {
    Env::start(MESH).await
}

fn desired(yaml: &str) -> DesiredState {
    desired_state(&ir_of(yaml), &Context::default())
}

fn assert_ok(r: &SyncReport) {
    assert!(r.is_ok(), "{r:#?}");
}

fn route(router: &str, name: &str) -> ResourceId {
    ResourceId::Route {
        router: router.into(),
        name: name.into(),
    }
}

fn split(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::TrafficSplit, "shop", name)
}

/// The spec moto holds for a route.
async fn route_spec_of(c: &Client, router: &str, route: &str) -> t::RouteSpec {
    let out = c
        .describe_route()
        .mesh_name(MESH)
        .virtual_router_name(router)
        .route_name(route)
        .send()
        .await
        .expect("describe route");
    out.route()
        .and_then(|r| r.spec())
        .expect("route spec")
        .clone()
}

/// The HTTP match moto holds for a route.
async fn http_match_of(c: &Client, router: &str, route: &str) -> t::HttpRouteMatch {
    let spec = route_spec_of(c, router, route).await;
    let hr = spec.http_route().expect("an HTTP route");
    hr.r#match().expect("a match").clone()
}

async fn route_targets(c: &Client, router: &str, route: &str) -> (Option<i32>, Vec<(String, i32)>) {
    let spec = route_spec_of(c, router, route).await;
    let action = spec
        .http_route()
        .or(spec.http2_route())
        .and_then(|h| h.action())
        .map(|a| a.weighted_targets().to_vec())
        .or_else(|| {
            spec.tcp_route()
                .and_then(|t| t.action())
                .map(|a| a.weighted_targets().to_vec())
        })
        .unwrap_or_default();
    (
        spec.priority(),
        action
            .iter()
            .map(|w| (w.virtual_node().to_string(), w.weight()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_nothing_to_do() {
    let Some(e) = env().await else { return };
    let want = desired(&fixture("shop.yaml"));
    assert_eq!(want.resource_count(), 19);
    let r = sync(&e.client, MESH, &want).await;
    assert_ok(&r);
    assert_eq!(r.created.len(), 19, "{r:#?}");
    assert_eq!(r.mutating_calls, 19);
    assert!(r.created.contains(&route("api_shop", "p9080-m1-post")));

    // What moto holds.
    assert_eq!(
        route_targets(&e.client, "web_shop", "p8080-split").await,
        (
            Some(1000),
            vec![("web-v1_shop".into(), 33), ("web-v2_shop".into(), 67)]
        )
    );
    let vn = e
        .client
        .describe_virtual_node()
        .mesh_name(MESH)
        .virtual_node_name("web-v1_shop")
        .send()
        .await
        .unwrap();
    let spec = vn.virtual_node().unwrap().spec().unwrap();
    assert_eq!(spec.listeners()[0].port_mapping().unwrap().port(), 8080);
    match spec.service_discovery() {
        Some(t::ServiceDiscovery::Dns(d)) => {
            assert_eq!(d.hostname(), "web-v1.shop.svc.cluster.local")
        }
        other => panic!("{other:?}"),
    }
    let tags = e
        .client
        .list_tags_for_resource()
        .resource_arn(vn.virtual_node().unwrap().metadata().unwrap().arn())
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert!(
        tags.contains(&("app.kubernetes.io/managed-by", "meshbridge")),
        "{tags:?}"
    );
    assert!(
        tags.contains(&("meshbridge.io/owner", "meshbridge-system")),
        "{tags:?}"
    );

    // The VirtualService requests (mock): three creates, each provided by its router, tagged.
    let seen = e.proxy.take_seen();
    let creates: Vec<_> = seen
        .iter()
        .filter(|s| s.mocked && s.method == "PUT")
        .collect();
    assert_eq!(creates.len(), 3);
    let web = creates
        .iter()
        .find(|s| s.body["virtualServiceName"] == "web.shop.svc.cluster.local")
        .expect("web VS created");
    assert_eq!(web.path, "/v20190125/meshes/m/virtualServices");
    assert_eq!(
        web.body["spec"],
        json!({"provider": {"virtualRouter": {"virtualRouterName": "web_shop"}}})
    );
    assert!(
        web.body["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "app.kubernetes.io/managed-by", "value": "meshbridge"}))
    );
    // Services were created after their routers existed (the mock checks it in moto) —
    // and after the routes: the last mutating calls are the three VS creates.
    let muts: Vec<_> = seen.iter().filter(|s| s.method != "GET").collect();
    assert!(muts[muts.len() - 3..].iter().all(|s| s.mocked));

    // Second sync: nothing changed, zero mutating calls.
    let r2 = sync(&e.client, MESH, &want).await;
    assert_ok(&r2);
    assert_eq!(r2.mutating_calls, 0, "{r2:#?}");
    assert_eq!(r2.unchanged, 19);
    assert!(e.proxy.take_seen().iter().all(|s| s.method == "GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_change_updates_only_that_route() {
    let Some(e) = env().await else { return };
    let yaml = fixture("shop.yaml");
    assert_ok(&sync(&e.client, MESH, &desired(&yaml)).await);
    let changed = yaml.replace(
        "{service: web-v2, weight: 2}",
        "{service: web-v2, weight: 3}",
    );
    assert_ne!(changed, yaml);
    let r = sync(&e.client, MESH, &desired(&changed)).await;
    assert_ok(&r);
    assert_eq!(r.updated, vec![route("web_shop", "p8080-split")], "{r:#?}");
    assert_eq!(r.mutating_calls, 1);
    assert!(r.created.is_empty() && r.deleted.is_empty());
    assert_eq!(
        route_targets(&e.client, "web_shop", "p8080-split").await.1,
        vec![("web-v1_shop".into(), 25), ("web-v2_shop".into(), 75)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_routes_have_priorities_and_follow_match_changes() {
    let Some(e) = env().await else { return };
    let yaml = fixture("shop.yaml");
    assert_ok(&sync(&e.client, MESH, &desired(&yaml)).await);
    let to_v2 = vec![("api-v2_shop".to_string(), 100)];
    assert_eq!(
        route_targets(&e.client, "api_shop", "p9080-m0").await,
        (Some(1), to_v2.clone())
    );
    assert_eq!(
        route_targets(&e.client, "api_shop", "p9080-m1-post").await,
        (Some(2), to_v2.clone())
    );
    assert_eq!(
        route_targets(&e.client, "api_shop", "p9080-m1-put").await,
        (Some(3), to_v2.clone())
    );
    assert_eq!(
        route_targets(&e.client, "api_shop", "p9080-m2").await,
        (Some(4), to_v2)
    );
    assert_eq!(
        route_targets(&e.client, "api_shop", "p9080-default").await,
        (Some(1000), vec![("api_shop".into(), 100)])
    );
    // Header and path matches as moto stored them.
    let m = http_match_of(&e.client, "api_shop", "p9080-m0").await;
    assert_eq!(m.prefix(), Some("/"));
    let hs: Vec<(&str, Option<&t::HeaderMatchMethod>)> = m
        .headers()
        .iter()
        .map(|h| (h.name(), h.r#match()))
        .collect();
    assert_eq!(
        hs,
        vec![
            (
                "user-agent",
                Some(&t::HeaderMatchMethod::Regex(".*Firefox.*".into()))
            ),
            ("x-canary", Some(&t::HeaderMatchMethod::Exact("1".into()))),
        ]
    );
    let m = http_match_of(&e.client, "api_shop", "p9080-m1-post").await;
    assert_eq!(
        m.path().and_then(|p| p.regex()),
        Some("(?:/v[0-9]+/orders).*")
    );
    assert_eq!(m.method(), Some(&t::HttpMethod::Post));

    // Dropping the `ping` match deletes exactly its route.
    let fewer = yaml.replace("  - name: ping\n    pathRegex: \"/ping$\"\n", "");
    assert_ne!(fewer, yaml);
    let r = sync(&e.client, MESH, &desired(&fewer)).await;
    assert_ok(&r);
    assert_eq!(r.deleted, vec![route("api_shop", "p9080-m2")], "{r:#?}");
    assert_eq!(r.mutating_calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_only_meshbridges_resources() {
    let Some(e) = env().await else { return };
    let c = &e.client;
    // Someone else's node holding a name meshbridge wants, an unrelated untagged node, and
    // a node tagged by another meshbridge controller (other owner).
    create_node(c, MESH, "web-v1_shop", "mine.example", &[]).await;
    create_node(c, MESH, "keep_shop", "keep.example", &[]).await;
    let other = [
        ("app.kubernetes.io/managed-by", "meshbridge"),
        ("meshbridge.io/owner", "another-namespace"),
    ];
    create_node(c, MESH, "other_shop", "other.example", &other).await;

    let want = desired(&fixture("shop.yaml"));
    let r = sync(c, MESH, &want).await;
    assert!(!r.is_ok());
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    let conflict = &r.conflicts[0];
    assert_eq!(
        conflict.resource,
        ResourceId::VirtualNode("web-v1_shop".into())
    );
    assert_eq!(conflict.parents, [split("web-canary")].into());
    assert!(
        conflict
            .to_string()
            .starts_with("VirtualNode/web-v1_shop: exists without meshbridge's tags (arn:"),
        "{conflict}"
    );
    // The route that would target the foreign node is not written; the rest is.
    assert_eq!(r.errors.len(), 1, "{r:#?}");
    let failure = &r.errors[0];
    assert_eq!(failure.resource, route("web_shop", "p8080-split"));
    assert_eq!(
        failure.error,
        SyncError::TargetsNotInPlace(vec!["web-v1_shop".into()])
    );
    assert_eq!(failure.parents, [split("web-canary")].into());
    assert!(
        failure
            .to_string()
            .starts_with("Route/web_shop/p8080-split: not written"),
        "{failure}"
    );
    assert_eq!(r.created.len(), 17, "{r:#?}");
    let foreign = c
        .describe_virtual_node()
        .mesh_name(MESH)
        .virtual_node_name("web-v1_shop")
        .send()
        .await
        .unwrap();
    match foreign
        .virtual_node()
        .unwrap()
        .spec()
        .unwrap()
        .service_discovery()
    {
        Some(t::ServiceDiscovery::Dns(d)) => assert_eq!(d.hostname(), "mine.example"),
        other => panic!("{other:?}"),
    }

    // Everything gone from the input: meshbridge deletes what it owns (services before
    // routers — the mock refuses the other order — routes before routers, nodes last).
    let empty = desired("");
    assert_eq!(empty.resource_count(), 0);
    let r = sync(c, MESH, &empty).await;
    assert_ok(&r);
    assert_eq!(r.deleted.len(), 17, "{r:#?}");
    let left: Vec<String> = c
        .list_virtual_nodes()
        .mesh_name(MESH)
        .send()
        .await
        .unwrap()
        .virtual_nodes()
        .iter()
        .map(|n| n.virtual_node_name().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(left, vec!["keep_shop", "other_shop", "web-v1_shop"]);
    assert!(
        c.list_virtual_routers()
            .mesh_name(MESH)
            .send()
            .await
            .unwrap()
            .virtual_routers()
            .is_empty()
    );
    assert!(e.proxy.state.lock().unwrap().services.is_empty());
    // And then there is nothing to do.
    let r = sync(c, MESH, &empty).await;
    assert_ok(&r);
    assert_eq!(r.mutating_calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_restored() {
    let Some(e) = env().await else { return };
    let want = desired(&fixture("shop.yaml"));
    assert_ok(&sync(&e.client, MESH, &want).await);

    // Behind meshbridge's back: a route's weights and priority, a route's retry policy, and
    // a virtual service's provider.
    let vr = &want.virtual_routers["web_shop"];
    let mut edited: RouteDef = vr.routes[0].clone();
    edited.priority = 5;
    if let RouteKind::Http { targets, .. } = &mut edited.kind {
        targets[0].weight = 90;
        targets[1].weight = 10;
    }
    e.client
        .update_route()
        .mesh_name(MESH)
        .virtual_router_name("web_shop")
        .route_name("p8080-split")
        .spec(route_spec(&edited).unwrap())
        .send()
        .await
        .unwrap();
    let mut spec = route_spec(&want.virtual_routers["api_shop"].routes[0]).unwrap();
    let hr = spec.http_route.take().unwrap();
    spec.http_route = Some(
        t::HttpRoute::builder()
            .set_match(hr.r#match().cloned())
            .set_action(hr.action().cloned())
            .retry_policy(
                t::HttpRetryPolicy::builder()
                    .max_retries(3)
                    .per_retry_timeout(
                        t::Duration::builder()
                            .value(1)
                            .unit(t::DurationUnit::S)
                            .build(),
                    )
                    .http_retry_events("server-error")
                    .build()
                    .unwrap(),
            )
            .build(),
    );
    let api_route = want.virtual_routers["api_shop"].routes[0].name.clone();
    e.client
        .update_route()
        .mesh_name(MESH)
        .virtual_router_name("api_shop")
        .route_name(&api_route)
        .spec(spec)
        .send()
        .await
        .unwrap();
    e.client
        .update_virtual_service()
        .mesh_name(MESH)
        .virtual_service_name("db.shop.svc.cluster.local")
        .spec(
            t::VirtualServiceSpec::builder()
                .provider(t::VirtualServiceProvider::VirtualNode(
                    t::VirtualNodeServiceProvider::builder()
                        .virtual_node_name("db_shop")
                        .build()
                        .unwrap(),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        route_targets(&e.client, "web_shop", "p8080-split").await,
        (
            Some(5),
            vec![("web-v1_shop".into(), 90), ("web-v2_shop".into(), 10)]
        )
    );

    let r = sync(&e.client, MESH, &want).await;
    assert_ok(&r);
    let mut expect = vec![
        route("web_shop", "p8080-split"),
        route("api_shop", &api_route),
        ResourceId::VirtualService("db.shop.svc.cluster.local".into()),
    ];
    expect.sort();
    assert_eq!(r.updated, expect, "{r:#?}");
    assert_eq!(r.mutating_calls, 3);
    assert_eq!(
        route_targets(&e.client, "web_shop", "p8080-split").await,
        (
            Some(1000),
            vec![("web-v1_shop".into(), 33), ("web-v2_shop".into(), 67)]
        )
    );
    let vs = e.proxy.state.lock().unwrap().services
        [&(MESH.to_string(), "db.shop.svc.cluster.local".to_string())]
        .clone();
    assert_eq!(
        vs.spec,
        json!({"provider": {"virtualRouter": {"virtualRouterName": "db_shop"}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_meshes_lists_every_mesh_of_the_account() {
    let Some(e) = env().await else { return };
    for m in ["zeta", "alpha"] {
        e.client.create_mesh().mesh_name(m).send().await.unwrap();
    }
    let got = meshbridge_appmesh::sync::list_meshes(&e.client)
        .await
        .unwrap();
    assert_eq!(got, ["alpha", MESH, "zeta"]);
    assert!(
        e.proxy
            .take_seen()
            .iter()
            .any(|s| s.method == "GET" && s.path == "/v20190125/meshes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_with_backoff() {
    let Some(e) = env().await else { return };
    e.proxy.state.lock().unwrap().throttle_next = 3;
    let r = sync(&e.client, MESH, &desired(&fixture("shop.yaml"))).await;
    assert_ok(&r);
    assert_eq!(r.created.len(), 19);
    assert_eq!(e.proxy.state.lock().unwrap().throttled, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_mesh_is_an_error_not_a_panic() {
    let Some(e) = env().await else { return };
    let r = sync(&e.client, "no-such-mesh", &desired(&fixture("shop.yaml"))).await;
    assert!(!r.is_ok());
    assert_eq!(r.mutating_calls, 0);
    // A mesh-wide failure, attributed to every input object of the plan.
    assert_eq!(r.errors.len(), 1, "{r:#?}");
    let failure = &r.errors[0];
    assert_eq!(failure.resource, ResourceId::Mesh("no-such-mesh".into()));
    assert!(matches!(failure.error, SyncError::Api(_)), "{failure:?}");
    let splits = ["api-ab", "db-move", "web-canary"].map(split);
    assert_eq!(failure.parents, splits.into());
    assert!(failure.to_string().starts_with("Mesh/no-such-mesh"));
}
