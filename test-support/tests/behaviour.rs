//! One test per behaviour in which the fake follows a real kube-apiserver (v1.28) where
//! the old mocks did not. Each would fail if that behaviour were removed.

mod common;

use common::*;
use meshbridge_test_support::auth::{Attributes, Rule, rules_from_cluster_role};
use meshbridge_test_support::{CONTROLLER_USER, FakeApi, TokenInfo};
use serde_json::{Value, json};

const TS4: &str = "/apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits";
const TS1: &str = "/apis/split.smi-spec.io/v1alpha1/namespaces/shop/trafficsplits";

fn cluster() -> FakeApi {
    let f = FakeApi::strict();
    f.load_project_crds();
    f.serve_builtin();
    f
}

fn split_v1alpha1(name: &str) -> Value {
    json!({"apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": "500m"},
                                                {"service": "web-v2", "weight": "500m"}]}})
}

fn split_v1alpha4(name: &str, w: i64) -> Value {
    json!({"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": w}]}})
}

#[tokio::test]
async fn list_items_carry_no_apiversion_or_kind_but_get_and_watch_do() {
    let f = cluster();
    let c = f.client("t");
    assert_eq!(post(&c, TS4, split_v1alpha4("a", 1)).await.0, 201);
    let (code, list) = get(&c, TS4).await;
    assert_eq!(code, 200);
    assert_eq!(list["apiVersion"], "split.smi-spec.io/v1alpha4");
    assert_eq!(list["kind"], "TrafficSplitList");
    let item = &list["items"][0];
    assert_eq!(item["metadata"]["name"], "a");
    assert!(
        item.get("apiVersion").is_none() && item.get("kind").is_none(),
        "{item}"
    );
    let (_, one) = get(&c, &format!("{TS4}/a")).await;
    assert_eq!(
        (one["apiVersion"].as_str(), one["kind"].as_str()),
        (Some("split.smi-spec.io/v1alpha4"), Some("TrafficSplit"))
    );
    // Read at another served version: the same object, that version's apiVersion.
    let (_, at1) = get(&c, &format!("{TS1}/a")).await;
    assert_eq!(at1["apiVersion"], "split.smi-spec.io/v1alpha1");
    let ev = watch_events(&c, &format!("{TS4}?watch=true"), 1).await;
    assert_eq!(ev[0]["type"], "ADDED");
    assert_eq!(ev[0]["object"]["apiVersion"], "split.smi-spec.io/v1alpha4");
    assert_eq!(ev[0]["object"]["kind"], "TrafficSplit");
}

#[tokio::test]
async fn status_writes_are_validated_against_the_schema_of_the_url_version() {
    let f = cluster();
    let c = f.client("t");
    // Written at v1alpha1: weights are quantity strings, valid there.
    let (code, created) = post(&c, TS1, split_v1alpha1("old")).await;
    assert_eq!(code, 201, "{created}");
    let status = json!({"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
        "metadata": {"name": "old", "namespace": "shop"},
        "status": {"observedGeneration": 1, "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}]}});
    // Server-side apply of status through v1alpha4: the live object does not convert.
    let (code, body) = apply(
        &c,
        &format!("{TS4}/old/status?fieldManager=meshbridge&force=true"),
        status.clone(),
    )
    .await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["code"], 500);
    assert_eq!(
        body["message"],
        "failed to create typed live object (shop/old; split.smi-spec.io/v1alpha4, Kind=TrafficSplit): errors:\n  .spec.backends[0].weight: expected numeric (int or float), got string\n  .spec.backends[1].weight: expected numeric (int or float), got string"
    );
    // A merge patch of status through v1alpha4: the whole object is validated (422).
    let (code, body) = merge(
        &c,
        &format!("{TS4}/old/status"),
        json!({"status": {"observedGeneration": 1}}),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert!(body["message"].as_str().unwrap().starts_with(
        "TrafficSplit.split.smi-spec.io \"old\" is invalid: [spec.backends[0].weight: Invalid value: \"string\": spec.backends[0].weight in body must be of type number: \"string\""), "{body}");
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "spec.backends[0].weight"
    );
    // Through the version it was written in, the same status is accepted.
    let mut at1 = status.clone();
    at1["apiVersion"] = json!("split.smi-spec.io/v1alpha1");
    let (code, body) = apply(
        &c,
        &format!("{TS1}/old/status?fieldManager=meshbridge&force=true"),
        at1,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"]["observedGeneration"], 1);
    // Creates and applies of the main resource are validated too.
    let mut bad = split_v1alpha4("bad", 1);
    bad["spec"].as_object_mut().unwrap().remove("service");
    let (code, body) = post(&c, TS4, bad).await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "TrafficSplit.split.smi-spec.io \"bad\" is invalid: spec.service: Required value"
    );
    let mut bad = split_v1alpha4("bad", 1);
    bad["spec"]["backends"] = json!({"service": "x"});
    let (code, body) = apply(&c, &format!("{TS4}/bad?fieldManager=m"), bad).await;
    assert_eq!(code, 500);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with(".spec.backends: expected list, got map[string]interface {}"),
        "{body}"
    );
    // Unknown fields are pruned, as with a structural schema.
    let mut extra = split_v1alpha4("extra", 1);
    extra["spec"]["surprise"] = json!(true);
    let (_, body) = post(&c, TS4, extra).await;
    assert!(body["spec"].get("surprise").is_none(), "{body}");
}

#[tokio::test]
async fn rbac_denials_are_real_403_status_bodies() {
    let f = FakeApi::new();
    let role = json!({"kind": "ClusterRole", "rules": [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["get", "list", "watch"]}]});
    f.grant(CONTROLLER_USER, rules_from_cluster_role(&role));
    let c = f.client_as("ctl", CONTROLLER_USER);
    let vs = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices";
    assert_eq!(get(&c, vs).await.0, 200);
    let (code, body) = apply(
        &c,
        &format!("{vs}/web?fieldManager=meshbridge"),
        json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {}}),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "virtualservices.networking.istio.io \"web\" is forbidden: User \"system:serviceaccount:meshbridge-system:meshbridge\" cannot patch resource \"virtualservices\" in API group \"networking.istio.io\" in the namespace \"shop\"",
        "reason": "Forbidden",
        "details": {"name": "web", "group": "networking.istio.io", "kind": "virtualservices"},
        "code": 403})
    );
    let (_, body) = get(&c, "/api/v1/pods").await;
    assert_eq!(
        body["message"],
        "pods is forbidden: User \"system:serviceaccount:meshbridge-system:meshbridge\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
    // The request is recorded with who made it.
    let log = f.take_log();
    assert_eq!(
        (log[1].client.as_str(), log[1].user.as_str()),
        ("ctl", CONTROLLER_USER)
    );
    // A deny list on an otherwise unrestricted user.
    f.deny("admin", Rule::new(&["delete"], &["*"], &["*"]));
    let a = f.client("admin");
    assert_eq!(delete(&a, &format!("{vs}/web"), None).await.0, 403);
    assert_eq!(get(&a, &format!("{vs}/web")).await.0, 404);
}

#[tokio::test]
async fn subject_access_reviews_evaluate_cluster_role_rules_like_the_rbac_authorizer() {
    let yaml = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: meshbridge}
rules:
- apiGroups: ["split.smi-spec.io"]
  resources: ["trafficsplits"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["*"]
  resources: ["*/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["istio"]
  verbs: ["get"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["*"]
  verbs: ["*"]
"#;
    let rules = meshbridge_test_support::auth::rules_from_yaml(yaml);
    let f = FakeApi::new();
    f.grant("sa", rules);
    let can = |verb: &str, group: &str, res: &str, name: &str| {
        f.allowed(
            "sa",
            &Attributes::new(verb, group, res)
                .namespace("shop")
                .name(name),
        )
    };
    assert!(can("list", "split.smi-spec.io", "trafficsplits", ""));
    assert!(!can("patch", "split.smi-spec.io", "trafficsplits", "a"));
    assert!(can(
        "patch",
        "split.smi-spec.io",
        "trafficsplits/status",
        "a"
    ));
    assert!(can("patch", "meshbridge.io", "meshes/status", "a"));
    assert!(can("get", "", "configmaps", "istio"));
    assert!(!can("get", "", "configmaps", "other"));
    assert!(
        !can("list", "", "configmaps", ""),
        "resourceNames never allow a list"
    );
    assert!(can("update", "coordination.k8s.io", "leases", "x"));
    // The same answers through the API.
    let c = f.client("admin");
    let sar = |verb: &str, res: &str, name: &str| {
        json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "sa", "resourceAttributes": {"namespace": "shop", "verb": verb, "group": "", "resource": res, "name": name}}})
    };
    let (code, body) = post(
        &c,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        sar("get", "configmaps", "istio"),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(body["status"]["allowed"], true);
    let (_, body) = post(
        &c,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        sar("delete", "configmaps", "istio"),
    )
    .await;
    assert_eq!(body["status"]["allowed"], false);
    // RoleBinding scope: a namespaced rule allows nothing elsewhere.
    let r = Rule::new(&["get"], &[""], &["secrets"]).in_namespace("a");
    assert!(
        r.allows(
            &Attributes::new("get", "", "secrets")
                .namespace("a")
                .name("x")
        )
    );
    assert!(
        !r.allows(
            &Attributes::new("get", "", "secrets")
                .namespace("b")
                .name("x")
        )
    );
}

#[tokio::test]
async fn server_side_apply_tracks_managers_and_reports_conflicts() {
    let f = cluster();
    let c = f.client("t");
    let obj = |w: i64| split_v1alpha4("s", w);
    let (code, _) = apply(&c, &format!("{TS4}/s?fieldManager=a"), obj(1)).await;
    assert_eq!(code, 201);
    // No fieldManager: the server's 422.
    let (code, body) = apply(&c, &format!("{TS4}/s"), obj(2)).await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    // Another manager changing a's field: 409 naming a and the field.
    let (code, body) = apply(&c, &format!("{TS4}/s?fieldManager=b"), obj(2)).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["reason"], "Conflict");
    assert_eq!(
        body["message"],
        "Apply failed with 1 conflict: conflict with \"a\": .spec.backends"
    );
    assert_eq!(
        body["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".spec.backends"})
    );
    // The same value is shared ownership, no conflict.
    assert_eq!(
        apply(&c, &format!("{TS4}/s?fieldManager=b"), obj(1))
            .await
            .0,
        200
    );
    // force: b takes the field.
    let (code, body) = apply(&c, &format!("{TS4}/s?fieldManager=b&force=true"), obj(2)).await;
    assert_eq!(code, 200);
    assert_eq!(body["spec"]["backends"][0]["weight"], 2);
    let mf = body["metadata"]["managedFields"].as_array().unwrap();
    let a = mf.iter().find(|e| e["manager"] == "a").unwrap();
    let b = mf.iter().find(|e| e["manager"] == "b").unwrap();
    assert!(a["fieldsV1"]["f:spec"].get("f:backends").is_none(), "{a}");
    assert_eq!(b["fieldsV1"]["f:spec"]["f:backends"], json!({}));
    for e in [a, b] {
        assert_eq!(e["operation"], "Apply");
        assert_eq!(e["apiVersion"], "split.smi-spec.io/v1alpha4");
        assert_eq!(e["fieldsType"], "FieldsV1");
        assert!(e["time"].is_string());
    }
    // The entry records the apiVersion of the URL it was written through.
    let mut at1 = split_v1alpha1("s");
    at1["spec"]["backends"] = json!([{"service": "web-v1", "weight": "2"}]);
    let (code, body) = apply(&c, &format!("{TS1}/s?fieldManager=kubectl&force=true"), at1).await;
    assert_eq!(code, 200, "{body}");
    let k = body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl")
        .cloned()
        .unwrap();
    assert_eq!(k["apiVersion"], "split.smi-spec.io/v1alpha1");
    // An update (merge patch) records an Update entry with its subresource.
    let (_, body) = merge(
        &c,
        &format!("{TS1}/s/status?fieldManager=st"),
        json!({"status": {"observedGeneration": 3}}),
    )
    .await;
    let st = body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "st")
        .cloned()
        .unwrap();
    assert_eq!(
        (st["operation"].as_str(), st["subresource"].as_str()),
        (Some("Update"), Some("status"))
    );
}

#[tokio::test]
async fn resource_version_preconditions_and_generation() {
    let f = cluster();
    let c = f.client("t");
    let (_, v) = post(&c, TS4, split_v1alpha4("g", 1)).await;
    assert_eq!(v["metadata"]["generation"], 1);
    let rv1: u64 = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // A replace with the current resourceVersion; then the same (now stale) one again.
    let mut next = v.clone();
    next["spec"]["backends"][0]["weight"] = json!(5);
    let (code, v2) = put(&c, &format!("{TS4}/g"), next.clone()).await;
    assert_eq!(code, 200);
    assert_eq!(v2["metadata"]["generation"], 2);
    assert!(
        v2["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > rv1
    );
    let (code, body) = put(&c, &format!("{TS4}/g"), next).await;
    assert_eq!(code, 409);
    assert_eq!(
        body["message"],
        "Operation cannot be fulfilled on trafficsplits.split.smi-spec.io \"g\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // A stale resourceVersion in a merge patch: the same conflict.
    assert_eq!(
        merge(
            &c,
            &format!("{TS4}/g"),
            json!({"metadata": {"resourceVersion": rv1.to_string()}, "spec": {"service": "x"}})
        )
        .await
        .0,
        409
    );
    // Metadata-only and status changes never bump generation; spec changes do.
    let (_, v3) = merge(
        &c,
        &format!("{TS4}/g"),
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(v3["metadata"]["generation"], 2);
    let (_, v4) = merge(
        &c,
        &format!("{TS4}/g/status"),
        json!({"status": {"observedGeneration": 2}}),
    )
    .await;
    assert_eq!(v4["metadata"]["generation"], 2);
    assert_eq!(v4["status"]["observedGeneration"], 2);
    // A status write cannot change spec; a main write cannot change status.
    let (_, v5) = merge(
        &c,
        &format!("{TS4}/g/status"),
        json!({"spec": {"service": "changed"}}),
    )
    .await;
    assert_eq!(v5["spec"]["service"], "web");
    let (_, v6) = merge(
        &c,
        &format!("{TS4}/g"),
        json!({"status": {"observedGeneration": 9}}),
    )
    .await;
    assert_eq!(v6["status"]["observedGeneration"], 2);
    // A no-op write keeps the resourceVersion.
    let (_, v7) = merge(
        &c,
        &format!("{TS4}/g"),
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(
        v7["metadata"]["resourceVersion"],
        v6["metadata"]["resourceVersion"]
    );
    // Delete preconditions.
    let (code, body) = delete(
        &c,
        &format!("{TS4}/g"),
        Some(json!({"preconditions": {"uid": "nope"}})),
    )
    .await;
    assert_eq!(code, 409);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("Precondition failed: UID in precondition: nope, UID in object meta: uid-1"),
        "{body}"
    );
    let (code, _) = delete(
        &c,
        &format!("{TS4}/g"),
        Some(json!({"preconditions": {"resourceVersion": "1"}})),
    )
    .await;
    assert_eq!(code, 409);
    let uid = v["metadata"]["uid"].clone();
    assert_eq!(
        delete(
            &c,
            &format!("{TS4}/g"),
            Some(json!({"preconditions": {"uid": uid}}))
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn watches_resume_from_a_resource_version_and_send_bookmarks() {
    let f = cluster();
    let c = f.client("t");
    post(&c, TS4, split_v1alpha4("a", 1)).await;
    let (_, list) = get(&c, TS4).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    post(&c, TS4, split_v1alpha4("b", 1)).await;
    let watcher = {
        let c = c.clone();
        let path = format!("{TS4}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true");
        tokio::spawn(async move { watch_events(&c, &path, 2).await })
    };
    while f.watching(TS4) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    f.send_bookmarks();
    let ev = watcher.await.unwrap();
    // Only what happened after the listed resourceVersion, then the bookmark.
    assert_eq!(ev[0]["type"], "ADDED");
    assert_eq!(ev[0]["object"]["metadata"]["name"], "b");
    assert_eq!(
        ev[1],
        json!({"type": "BOOKMARK", "object": {"kind": "TrafficSplit",
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "metadata": {"resourceVersion": f.resource_version().to_string()}}})
    );
    // After compaction an old resourceVersion answers an ERROR 410 event.
    f.expire_watches();
    let ev = watch_events(&c, &format!("{TS4}?watch=true&resourceVersion={rv}"), 1).await;
    assert_eq!(ev[0]["type"], "ERROR");
    assert_eq!(ev[0]["object"]["code"], 410);
    assert_eq!(ev[0]["object"]["reason"], "Expired");
    assert!(
        ev[0]["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version")
    );
}

#[tokio::test]
async fn kube_watcher_relists_through_410_and_sees_objects_created_meanwhile() {
    use futures::StreamExt;
    use kube::api::{Api, DynamicObject};
    use kube::core::{ApiResource, GroupVersionKind};
    use kube::runtime::watcher;
    let f = cluster();
    let c = f.client("t");
    post(&c, TS4, split_v1alpha4("first", 1)).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("split.smi-spec.io", "v1alpha4", "TrafficSplit"),
        "trafficsplits",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "shop", &ar);
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        while let Some(ev) = stream.next().await {
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut seen, mut inits, mut errors) = (Vec::new(), 0, 0);
    let mut next = async || {
        tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("in time")
            .expect("watcher runs")
    };
    loop {
        match next().await {
            Ok(watcher::Event::Init) => inits += 1,
            Ok(watcher::Event::InitApply(o)) => seen.push(o.metadata.name.unwrap()),
            Ok(watcher::Event::InitDone) => break,
            other => panic!("{other:?}"),
        }
    }
    while f.watching(TS4) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "watch opened");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Compaction, and an object stored while the watch is gone (no event for it).
    f.expire_watches();
    f.insert(split_v1alpha4("meanwhile", 1));
    loop {
        match next().await {
            Ok(watcher::Event::Init) => inits += 1,
            Ok(watcher::Event::InitApply(o)) => seen.push(o.metadata.name.unwrap()),
            Ok(watcher::Event::InitDone) => break,
            Ok(watcher::Event::Apply(o)) => seen.push(o.metadata.name.unwrap()),
            Ok(watcher::Event::Delete(_)) => {}
            Err(_) => errors += 1,
        }
    }
    pump.abort();
    assert_eq!(errors, 1, "the 410 surfaced once");
    assert_eq!(inits, 2, "relisted once");
    assert_eq!(seen, ["first", "first", "meanwhile"]);
    let watches = f.take_watch_log();
    assert_eq!(
        watches[0]
            .query
            .get("allowWatchBookmarks")
            .map(String::as_str),
        Some("true")
    );
}

#[tokio::test]
async fn label_and_field_selectors_on_list_and_watch() {
    let f = FakeApi::new();
    let c = f.client("t");
    let cms = "/api/v1/namespaces/shop/configmaps";
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "x"})),
        ("b", json!({"app": "api", "f": "1"})),
        ("c", json!({"app": "db"})),
    ] {
        post(&c, cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}})).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let sel = |s: &str| {
        format!(
            "{cms}?labelSelector={}",
            s.replace(' ', "%20").replace('!', "%21")
        )
    };
    assert_eq!(names(&get(&c, &sel("app in (web,api),!f")).await.1), ["a"]);
    assert_eq!(
        names(&get(&c, &sel("app!=web,app notin (db)")).await.1),
        ["b"]
    );
    assert_eq!(names(&get(&c, &sel("tier")).await.1), ["a"]);
    assert_eq!(
        names(
            &get(&c, "/api/v1/configmaps?fieldSelector=metadata.name%3Dc")
                .await
                .1
        ),
        ["c"]
    );
    assert_eq!(
        names(
            &get(
                &c,
                "/api/v1/configmaps?fieldSelector=metadata.namespace%3Dother"
            )
            .await
            .1
        ),
        Vec::<String>::new()
    );
    let (code, body) = get(&c, &format!("{cms}?fieldSelector=spec.x%3D1")).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (400, Some("field label not supported: spec.x"))
    );
    // Watches: an object leaving the selector is DELETED for that watch.
    let w = {
        let c = c.clone();
        tokio::spawn(async move {
            watch_events(&c, &format!("{cms}?watch=true&labelSelector=app%3Dweb"), 2).await
        })
    };
    while f.watching(cms) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    merge(
        &c,
        &format!("{cms}/a"),
        json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await;
    let ev = w.await.unwrap();
    assert_eq!(
        (ev[0]["type"].as_str(), ev[1]["type"].as_str()),
        (Some("ADDED"), Some("DELETED"))
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_and_garbage_collection_follows_owner_references() {
    let f = FakeApi::new();
    let c = f.client("t");
    let inst = "/apis/meshbridge.io/v1alpha1/namespaces/ns/installs";
    let (_, owner) = post(
        &c,
        inst,
        json!({"apiVersion": "meshbridge.io/v1alpha1", "kind": "Install",
        "metadata": {"name": "i", "finalizers": ["meshbridge.io/install"]}, "spec": {}}),
    )
    .await;
    let jobs = "/apis/batch/v1/namespaces/ns/jobs";
    post(&c, jobs, json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j",
        "ownerReferences": [{"apiVersion": "meshbridge.io/v1alpha1", "kind": "Install", "name": "i", "uid": owner["metadata"]["uid"]}]}})).await;
    let (code, body) = delete(&c, &format!("{inst}/i"), None).await;
    assert_eq!(code, 200);
    assert!(body["metadata"]["deletionTimestamp"].is_string());
    assert!(f.get_at(inst, "i").is_some(), "held by its finalizer");
    assert!(f.collect_garbage().is_empty(), "the owner still exists");
    // Removing the finalizer lets it go.
    let (code, _) = merge(
        &c,
        &format!("{inst}/i"),
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(code, 200);
    assert!(f.get_at(inst, "i").is_none());
    assert_eq!(f.collect_garbage(), ["jobs/ns/j"]);
    assert!(f.names(jobs).is_empty());
    // Opt-in: no object in a namespace that does not exist.
    f.require_namespaces(true);
    let (code, body) = post(
        &c,
        "/api/v1/namespaces/nowhere/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
    )
    .await;
    assert_eq!(
        (code, body["message"].as_str()),
        (404, Some("namespaces \"nowhere\" not found"))
    );
}

#[tokio::test]
async fn token_reviews_answer_from_registered_tokens_and_check_audiences() {
    let f = FakeApi::new();
    f.add_token(
        "tok",
        TokenInfo::service_account(
            "shop",
            "web",
            "sa-uid",
            &["meshbridge-xds"],
            Some(("web-1", "pod-uid")),
        ),
    );
    let c = f.client("t");
    let review = |token: &str, aud: &[&str]| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": aud}})
    };
    let path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let (code, body) = post(&c, path, review("tok", &["meshbridge-xds"])).await;
    assert_eq!(code, 201);
    let st = &body["status"];
    assert_eq!(st["authenticated"], true);
    assert_eq!(st["user"]["username"], "system:serviceaccount:shop:web");
    assert_eq!(st["user"]["uid"], "sa-uid");
    assert_eq!(
        st["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["web-1"])
    );
    assert_eq!(
        st["user"]["extra"]["authentication.kubernetes.io/pod-uid"],
        json!(["pod-uid"])
    );
    assert_eq!(st["audiences"], json!(["meshbridge-xds"]));
    let (_, body) = post(&c, path, review("tok", &["other"])).await;
    assert!(body["status"].get("authenticated").is_none(), "{body}");
    let (_, body) = post(&c, path, review("tok", &[])).await;
    assert!(
        body["status"].get("authenticated").is_none(),
        "the API server's audience only"
    );
    let (_, body) = post(&c, path, review("unknown", &["meshbridge-xds"])).await;
    assert!(body["status"].get("authenticated").is_none());
    // A restricted user needs `create tokenreviews`.
    f.grant("nobody", []);
    assert_eq!(
        post(&f.client("nobody"), path, review("tok", &[])).await.0,
        403
    );
}

#[tokio::test]
async fn discovery_documents_and_status_only_where_registered() {
    let f = FakeApi::strict();
    f.serve(
        "meshbridge.io/v1alpha1",
        vec![("Mesh", "meshes", true, true)],
    );
    f.serve("example.io/v1", vec![("Thing", "things", true, false)]);
    f.serve("example.io/v1beta1", vec![("Thing", "things", true, false)]);
    f.serve("v1", vec![("Namespace", "namespaces", false, true)]);
    let c = f.client("t");
    let (_, groups) = get(&c, "/apis").await;
    let ex = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "example.io")
        .unwrap();
    assert_eq!(ex["preferredVersion"]["version"], "v1");
    let (_, doc) = get(&c, "/apis/meshbridge.io/v1alpha1").await;
    assert_eq!(doc["resources"][0]["singularName"], "mesh");
    assert_eq!(doc["resources"][1]["name"], "meshes/status");
    assert_eq!(get(&c, "/apis/other.io/v1").await.0, 404);
    let d = kube::discovery::Discovery::new(c.clone())
        .run()
        .await
        .unwrap();
    assert!(d.has_group("meshbridge.io") && d.has_group("example.io"));
    // /status only for kinds registered with it.
    let things = "/apis/example.io/v1/namespaces/a/things";
    post(
        &c,
        things,
        json!({"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t"}}),
    )
    .await;
    assert_eq!(
        merge(&c, &format!("{things}/t/status"), json!({"status": {}}))
            .await
            .0,
        404
    );
    assert_eq!(
        get(&c, "/apis/example.io/v1/namespaces/a/unknown").await.0,
        404
    );
}

#[tokio::test]
async fn every_request_is_recorded_with_decoded_query_and_body() {
    let f = FakeApi::new();
    let c = f.client("rec");
    apply(
        &c,
        "/api/v1/namespaces/a/configmaps/x?fieldManager=m&force=true",
        json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"k": "v"}}}),
    )
    .await;
    get(
        &c,
        "/api/v1/namespaces/a/configmaps?labelSelector=k%3Dv%2Cz%20in%20%28a%29",
    )
    .await;
    let log = f.take_log();
    assert_eq!(
        log.iter().map(|r| r.line()).collect::<Vec<_>>(),
        [
            "PATCH /api/v1/namespaces/a/configmaps/x",
            "GET /api/v1/namespaces/a/configmaps"
        ]
    );
    assert_eq!(log[0].content_type, "application/apply-patch+yaml");
    assert_eq!(log[0].query["fieldManager"], "m");
    assert_eq!(log[0].body["metadata"]["labels"]["k"], "v");
    assert_eq!(log[1].query["labelSelector"], "k=v,z in (a)");
    assert_eq!(log[0].client, "rec");
    assert!(f.take_log().is_empty());
}
