//! The HTTP side: kube `Client`s over tower-test, request parsing and recording, routing,
//! and each verb (list, get, create, update, patch, apply, delete, watch).

use crate::auth::{self, Attributes};
use crate::fields;
use crate::resources::{self, api_version};
use crate::schema;
use crate::util::{
    bad_request, conflict_modified, details, list_item, meta_str, no_such_resource, not_found, now,
    qualified, render, status_body, version_priority,
};
use crate::watch::{FieldSelector, Frame, LabelSelector, Watcher};
use crate::{FakeApi, Key, Req, Res, State};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type RespBody = BoxBody<Bytes, std::io::Error>;
type Answer = (u16, Value);

impl FakeApi {
    /// A kube Client whose requests this fake answers, tagged `name` in the log and
    /// authenticated as the user `name` (see [`FakeApi::client_as`]).
    pub fn client(&self, name: &str) -> kube::Client {
        self.client_as(name, name)
    }

    /// A kube Client tagged `name`, authenticated as `user` (RBAC rules apply to users).
    pub fn client_as(&self, name: &str, user: &str) -> kube::Client {
        self.lock().users.insert(name.to_string(), user.to_string());
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<RespBody>>();
        let me = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let user = me.lock().user_of(&name);
                let r = parse(&parts, &bytes, &name, &user);
                if r.method == "GET" && r.query.get("watch").map(String::as_str) == Some("true") {
                    let resp = match me.start_watch(&r) {
                        Ok(stream) => Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(BoxBody::new(StreamBody::new(stream)))
                            .expect("response"),
                        Err((code, v)) => json_response(code, &v),
                    };
                    send.send_response(resp);
                    continue;
                }
                let (code, resp) = {
                    let mut st = me.lock();
                    let a = handle_request(&mut st, &r);
                    st.log.push(r);
                    a
                };
                send.send_response(json_response(code, &resp));
            }
        });
        kube::Client::new(svc, "default")
    }

    fn start_watch(
        &self,
        r: &Req,
    ) -> Result<impl futures::Stream<Item = Frame> + Send + 'static, Answer> {
        let mut st = self.lock();
        st.watch_log.push(r.clone());
        let t = match route(&r.path) {
            Route::Target(t) if t.name.is_none() => t,
            _ => return Err(no_such_resource()),
        };
        if st.not_served.iter().any(|p| r.path.starts_with(p.as_str())) {
            return Err(no_such_resource());
        }
        let attrs = t.attributes("watch");
        if !st.authz.allowed(&r.user, &attrs) {
            return Err(auth::forbidden(&r.user, &attrs));
        }
        let res = st
            .resolve(&t.group, &t.version, &t.plural)
            .ok_or_else(no_such_resource)?;
        let labels = LabelSelector::parse(q(r, "labelSelector")).map_err(|e| bad_request(&e))?;
        let fields = FieldSelector::parse(q(r, "fieldSelector")).map_err(|e| bad_request(&e))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
        st.next_watch += 1;
        let w = Watcher {
            id: st.next_watch,
            path: r.path.clone(),
            client: r.client.clone(),
            group: res.group.clone(),
            plural: res.served.plural.clone(),
            api_version: res.api_version(),
            kind: kind_of(&st, &res),
            namespace: t.ns.clone(),
            labels,
            fields,
            bookmarks: q(r, "allowWatchBookmarks") == "true",
            tx,
        };
        let rv = q(r, "resourceVersion");
        let mut open = true;
        if rv.is_empty() || rv == "0" {
            // Synthetic ADDED events for what exists now.
            for (k, v) in &st.objects {
                if w.covers(&k.0, &k.1, &k.2)
                    && w.labels.matches(v)
                    && w.fields.matches(v)
                    && !w.send("ADDED", v)
                {
                    open = false;
                }
            }
        } else {
            let asked: u64 = rv
                .parse()
                .map_err(|_| bad_request(&format!("invalid resource version: {rv:?}")))?;
            if asked < st.compacted {
                w.gone(asked, st.compacted + 1);
                open = false;
            } else {
                for c in st.history.iter().filter(|c| c.rv > asked) {
                    if !w.deliver(c) {
                        open = false;
                    }
                }
            }
        }
        if open {
            let id = w.id;
            st.watchers.push(w);
            if let Ok(secs) = q(r, "timeoutSeconds").parse::<u64>() {
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                    me.lock().watchers.retain(|w| w.id != id);
                });
            }
        }
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (f, rx))
        }))
    }
}

fn json_response(code: u16, v: &Value) -> Response<RespBody> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(serde_json::to_vec(v).expect("json")))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("response")
}

fn parse(parts: &http::request::Parts, bytes: &[u8], client: &str, user: &str) -> Req {
    let header = |h: &str| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .ok()
            .or_else(|| {
                std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|t| serde_saphyr::from_str::<Value>(t).ok())
            })
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(bytes).into()))
    };
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (crate::util::decode(k), crate::util::decode(v))
        })
        .collect();
    Req {
        client: client.to_string(),
        user: user.to_string(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query,
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        body,
    }
}

fn q<'a>(r: &'a Req, k: &str) -> &'a str {
    r.query.get(k).map(String::as_str).unwrap_or("")
}

/// A resource path.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub group: String,
    pub version: String,
    pub ns: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Target {
    pub fn attributes(&self, verb: &str) -> Attributes {
        let name = self.name.clone().unwrap_or_default();
        // Requests on a Namespace object are in that namespace.
        let namespace = if self.group.is_empty() && self.plural == "namespaces" && !name.is_empty()
        {
            Some(name.clone())
        } else {
            self.ns.clone()
        };
        Attributes {
            verb: verb.into(),
            group: self.group.clone(),
            resource: self.plural.clone(),
            subresource: self.sub.clone().unwrap_or_default(),
            namespace,
            name,
            non_resource_path: None,
        }
    }
}

enum Route {
    Versions,
    Groups,
    Resources(String, String),
    Target(Target),
    Other,
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (g, v, rest) = match segs.as_slice() {
        ["api"] => return Route::Versions,
        ["apis"] => return Route::Groups,
        ["api", v] => return Route::Resources(String::new(), v.to_string()),
        ["apis", g, v] => return Route::Resources(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::Other,
    };
    let s = |x: &&str| x.to_string();
    let (ns, rest): (Option<String>, &[&str]) = match rest {
        // namespaces/NAME/status|finalize is the Namespace object's subresource.
        ["namespaces", _, "status" | "finalize"] if g.is_empty() => (None, rest),
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (s(p), None, None),
        [p, n] => (s(p), Some(s(n)), None),
        [p, n, sub] => (s(p), Some(s(n)), Some(s(sub))),
        _ => return Route::Other,
    };
    Route::Target(Target {
        group: g.into(),
        version: v.into(),
        ns,
        plural,
        name,
        sub,
    })
}

fn kind_of(st: &State, res: &Res) -> String {
    if !res.guessed {
        return res.served.kind.clone();
    }
    st.objects
        .iter()
        .find(|(k, _)| k.0 == res.group && k.1 == res.served.plural)
        .and_then(|(_, v)| v["kind"].as_str().map(str::to_string))
        .unwrap_or_else(|| res.served.kind.clone())
}

fn group_list(st: &State) -> Value {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for gv in st.served.keys() {
        if let Some((g, v)) = gv.rsplit_once('/') {
            if !groups.contains_key(g) {
                order.push(g.to_string());
            }
            groups.entry(g.to_string()).or_default().push(v.to_string());
        }
    }
    let list: Vec<Value> = order
        .iter()
        .map(|g| {
            let mut vs = groups[g].clone();
            vs.sort_by(|a, b| version_priority(a, b));
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list})
}

fn resource_list(st: &State, group: &str, version: &str) -> Option<Value> {
    let gv = api_version(group, version);
    let kinds = st.served.get(&gv)?;
    let mut resources = Vec::new();
    for k in kinds {
        resources.push(json!({"name": k.plural, "singularName": k.kind.to_ascii_lowercase(),
            "namespaced": k.namespaced, "kind": k.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}));
        if k.status {
            resources.push(
                json!({"name": format!("{}/status", k.plural), "singularName": "",
                "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

pub(crate) fn handle_request(st: &mut State, r: &Req) -> Answer {
    if st.not_served.iter().any(|p| r.path.starts_with(p.as_str())) {
        return no_such_resource();
    }
    match route(&r.path) {
        Route::Versions => (
            200,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
                [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        ),
        Route::Groups => (200, group_list(st)),
        Route::Resources(g, v) => match resource_list(st, &g, &v) {
            Some(d) => (200, d),
            None => no_such_resource(),
        },
        Route::Target(t) => resource_request(st, r, &t),
        Route::Other => no_such_resource(),
    }
}

fn verb_of(r: &Req, t: &Target) -> &'static str {
    match (r.method.as_str(), t.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "",
    }
}

fn resource_request(st: &mut State, r: &Req, t: &Target) -> Answer {
    let verb = verb_of(r, t);
    let attrs = t.attributes(verb);
    let self_review = t.group == "authorization.k8s.io" && t.plural == "selfsubjectaccessreviews";
    if !self_review && !st.authz.allowed(&r.user, &attrs) {
        return auth::forbidden(&r.user, &attrs);
    }
    // Reviews: created, never stored.
    if r.method == "POST" && t.name.is_none() {
        match (t.group.as_str(), t.plural.as_str()) {
            ("authentication.k8s.io", "tokenreviews") => {
                return (201, auth::token_review(&st.tokens, &r.body));
            }
            ("authorization.k8s.io", "subjectaccessreviews") => {
                return (201, auth::access_review(&st.authz, &r.body, None));
            }
            ("authorization.k8s.io", "localsubjectaccessreviews") => {
                let mut b = r.body.clone();
                b["spec"]["resourceAttributes"]["namespace"] =
                    json!(t.ns.clone().unwrap_or_default());
                return (201, auth::access_review(&st.authz, &b, None));
            }
            ("authorization.k8s.io", "selfsubjectaccessreviews") => {
                return (201, auth::access_review(&st.authz, &r.body, Some(&r.user)));
            }
            _ => {}
        }
    }
    let Some(res) = st.resolve(&t.group, &t.version, &t.plural) else {
        return no_such_resource();
    };
    // Scope: a cluster-scoped resource has no namespace; a namespaced one is written in one.
    if !res.guessed {
        let cluster_wide_read = t.name.is_none() && matches!(verb, "list" | "deletecollection");
        if (t.ns.is_some() && !res.served.namespaced)
            || (t.ns.is_none() && res.served.namespaced && !cluster_wide_read)
        {
            return no_such_resource();
        }
    }
    match t.sub.as_deref() {
        None => {}
        Some("status") if res.served.status => {}
        Some(_) => return no_such_resource(),
    }
    let ns = t.ns.clone().unwrap_or_default();
    match (r.method.as_str(), &t.name) {
        ("GET", None) => list(st, r, &res, t.ns.as_deref()),
        ("GET", Some(n)) => {
            let key = key(&res, &ns, n);
            match st.objects.get(&key) {
                Some(v) => (200, render(v, &res.api_version(), &kind_of(st, &res))),
                None => not_found(&res.group, &res.served.plural, n),
            }
        }
        ("POST", None) => create(st, r, &res, t.ns.as_deref()),
        ("PUT", Some(n)) => update(st, r, &res, &ns, n, t.sub.as_deref().unwrap_or("")),
        ("PATCH", Some(n)) => patch(st, r, &res, &ns, n, t.sub.as_deref().unwrap_or("")),
        ("DELETE", Some(n)) if t.sub.is_none() => delete(st, r, &res, &ns, n),
        ("DELETE", None) => delete_collection(st, r, &res, t.ns.as_deref()),
        _ => (
            405,
            status_body(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                None,
            ),
        ),
    }
}

fn key(res: &Res, ns: &str, name: &str) -> Key {
    (
        res.group.clone(),
        res.served.plural.clone(),
        ns.to_string(),
        name.to_string(),
    )
}

fn list(st: &State, r: &Req, res: &Res, ns: Option<&str>) -> Answer {
    let labels = match LabelSelector::parse(q(r, "labelSelector")) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let fields = match FieldSelector::parse(q(r, "fieldSelector")) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let after = q(r, "continue");
    let mut items: Vec<(String, Value)> = st
        .objects
        .iter()
        .filter(|(k, _)| {
            k.0 == res.group && k.1 == res.served.plural && ns.is_none_or(|n| n == k.2)
        })
        .filter(|(_, v)| labels.matches(v) && fields.matches(v))
        .map(|(k, v)| (format!("{}/{}", k.2, k.3), v.clone()))
        .filter(|(pos, _)| after.is_empty() || pos.as_str() > after)
        .collect();
    let mut meta = json!({"resourceVersion": st.counter.to_string()});
    if let Ok(limit) = q(r, "limit").parse::<usize>()
        && limit > 0
        && items.len() > limit
    {
        let rest = items.len() - limit;
        items.truncate(limit);
        meta["continue"] = json!(items[limit - 1].0);
        meta["remainingItemCount"] = json!(rest);
    }
    let items: Vec<Value> = items.iter().map(|(_, v)| list_item(v)).collect();
    (
        200,
        json!({"apiVersion": res.api_version(), "kind": format!("{}List", kind_of(st, res)),
               "metadata": meta, "items": items}),
    )
}

/// The manager of a non-apply write.
fn manager_of(r: &Req) -> String {
    let m = q(r, "fieldManager");
    if !m.is_empty() {
        return m.to_string();
    }
    match r.user_agent.split('/').next() {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => "unknown".to_string(),
    }
}

fn namespace_missing(st: &State, ns: Option<&str>) -> Option<Answer> {
    let ns = ns?;
    if !st.require_namespaces {
        return None;
    }
    let k = (
        String::new(),
        "namespaces".to_string(),
        String::new(),
        ns.to_string(),
    );
    if st.objects.contains_key(&k) {
        None
    } else {
        Some(not_found("", "namespaces", ns))
    }
}

fn dry_run(r: &Req) -> bool {
    q(r, "dryRun") == "All"
}

/// Server-owned metadata of a new object.
fn init_meta(st: &State, res: &Res, v: &mut Value, ns: Option<&str>) {
    let md = v["metadata"].as_object_mut().expect("metadata");
    md.insert("uid".into(), json!(format!("uid-{}", st.counter + 1)));
    md.insert("creationTimestamp".into(), json!(now()));
    if let Some(ns) = ns {
        md.insert("namespace".into(), json!(ns));
    }
    if resources::tracks_generation(&res.group) {
        md.insert("generation".into(), json!(1));
    } else {
        md.remove("generation");
    }
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
    ] {
        md.remove(k);
    }
}

fn generate_name(prefix: &str, n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = n.wrapping_mul(2_654_435_761).wrapping_add(0x9e37_79b9);
    let mut s = String::from(prefix);
    for _ in 0..5 {
        s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        x /= ALPHABET.len() as u64;
    }
    s
}

fn check_body_identity(res: &Res, body: &Value, ns: Option<&str>) -> Option<Answer> {
    let av = res.api_version();
    if let Some(a) = body.get("apiVersion").and_then(Value::as_str)
        && a != av
    {
        return Some(bad_request(&format!(
            "the API version in the data ({a}) does not match the expected API version ({av})"
        )));
    }
    if !res.guessed
        && let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != res.served.kind
    {
        return Some(bad_request(&format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            res.served.kind
        )));
    }
    if let (Some(want), Some(have)) = (ns, meta_str(body, "namespace"))
        && want != have
    {
        return Some(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    None
}

fn create(st: &mut State, r: &Req, res: &Res, ns: Option<&str>) -> Answer {
    let mut v = r.body.clone();
    if !v.is_object() {
        return bad_request("the object provided is unrecognized (must be an object)");
    }
    if let Some(e) = check_body_identity(res, &v, ns) {
        return e;
    }
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    let kind = v["kind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| res.served.kind.clone());
    let mut name = meta_str(&v, "name").unwrap_or("").to_string();
    if name.is_empty()
        && let Some(g) = meta_str(&v, "generateName")
    {
        name = generate_name(g, st.counter + 1);
        v["metadata"]["name"] = json!(name);
    }
    if name.is_empty() {
        return schema::invalid(
            &kind,
            &res.group,
            "",
            &[schema::Cause {
                reason: "FieldValueRequired",
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            }],
        );
    }
    if let Some(e) = namespace_missing(st, ns) {
        return e;
    }
    let k = key(res, ns.unwrap_or(""), &name);
    if st.objects.contains_key(&k) {
        return (
            409,
            status_body(
                409,
                "AlreadyExists",
                &format!(
                    "{} \"{name}\" already exists",
                    qualified(&res.served.plural, &res.group)
                ),
                Some(details(&name, &res.group, &res.served.plural)),
            ),
        );
    }
    init_meta(st, res, &mut v, ns);
    v["apiVersion"] = json!(res.api_version());
    v["kind"] = json!(kind);
    if res.served.status
        && let Some(o) = v.as_object_mut()
    {
        o.remove("status");
    }
    let mine = fields::leaves(&v, "", res.served.status);
    let entry = fields::Entry {
        manager: manager_of(r),
        operation: "Update".into(),
        api_version: res.api_version(),
        time: now(),
        subresource: String::new(),
        fields: mine,
    };
    fields::store(&mut v, vec![entry]);
    store_new(st, r, res, &k, v, &name, &kind, ns.is_some())
}

/// The end of a create (POST, or an apply of an object that does not exist): pruned and
/// validated, the kind learned, then stored unless a dry run; 201 with the object.
#[allow(clippy::too_many_arguments)]
fn store_new(
    st: &mut State,
    r: &Req,
    res: &Res,
    k: &Key,
    mut v: Value,
    name: &str,
    kind: &str,
    namespaced: bool,
) -> Answer {
    if let Some(e) = prune_and_validate(st, res, &mut v, name) {
        return e;
    }
    st.learn(res, kind, namespaced);
    if dry_run(r) {
        return (201, render(&v, &res.api_version(), kind));
    }
    let stored = st.commit(k, Some(v), "", false);
    (201, render(&stored, &res.api_version(), kind))
}

fn prune_and_validate(st: &State, res: &Res, v: &mut Value, name: &str) -> Option<Answer> {
    let s = st.schema(res)?;
    schema::prune(s, v);
    let causes = schema::validate(s, v);
    if causes.is_empty() {
        None
    } else {
        Some(schema::invalid(&res.served.kind, &res.group, name, &causes))
    }
}

/// Keeps what the server owns from `old`, and for a status write only the status of `new`
/// (for a main-resource write of a kind with a status subresource, the old status).
fn carry_over(res: &Res, old: &Value, new: &mut Value, sub: &str) {
    if sub == "status" {
        let status = new.get("status").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        return;
    }
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    for k in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "name",
        "namespace",
    ] {
        match old["metadata"].get(k) {
            Some(x) => new["metadata"][k] = x.clone(),
            None => {
                if let Some(md) = new["metadata"].as_object_mut() {
                    md.remove(k);
                }
            }
        }
    }
    new["apiVersion"] = json!(res.api_version());
    new["kind"] = old["kind"].clone();
    if res.served.status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
}

/// What generation counts: everything but metadata (and status when it is a subresource).
fn spec_part(res: &Res, v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["metadata", "apiVersion", "kind"] {
            o.remove(k);
        }
        if res.served.status {
            o.remove("status");
        }
    }
    v
}

/// Common end of every update: generation, pruning and validation, no-op detection,
/// removal once the last finalizer of a deleted object is gone, the write.
fn finish(st: &mut State, r: &Req, res: &Res, k: &Key, old: &Value, mut new: Value) -> Answer {
    let kind = old["kind"].as_str().unwrap_or(&res.served.kind).to_string();
    if resources::tracks_generation(&res.group) && spec_part(res, old) != spec_part(res, &new) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    if let Some(e) = prune_and_validate(st, res, &mut new, &k.3) {
        return e;
    }
    // A deleted object may lose finalizers, not gain them.
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let fins = |v: &Value| -> Vec<String> {
            v.pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        };
        let before = fins(old);
        let added: Vec<String> = fins(&new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return schema::invalid(
                &kind,
                &res.group,
                &k.3,
                &[schema::Cause {
                    reason: "FieldValueForbidden",
                    field: "metadata.finalizers".into(),
                    message: format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    ),
                }],
            );
        }
    }
    let mut cmp_old = old.clone();
    let mut cmp_new = new.clone();
    for v in [&mut cmp_old, &mut cmp_new] {
        if let Some(md) = v["metadata"].as_object_mut() {
            md.remove("resourceVersion");
        }
        v["apiVersion"] = Value::Null;
    }
    if cmp_old == cmp_new {
        // A no-op: nothing written, no new resourceVersion.
        return (200, render(old, &res.api_version(), &kind));
    }
    if dry_run(r) {
        return (200, render(&new, &res.api_version(), &kind));
    }
    let gone = new.pointer("/metadata/deletionTimestamp").is_some()
        && new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
    if gone {
        st.commit(k, Some(new.clone()), "", false);
        let last = st.commit(k, None, "", false);
        return (200, render(&last, &res.api_version(), &kind));
    }
    let stored = st.commit(k, Some(new), "", false);
    (200, render(&stored, &res.api_version(), &kind))
}

/// Update-operation managed fields: the changed fields move to `manager`.
fn track_update(res: &Res, old: &Value, new: &mut Value, manager: &str, sub: &str) {
    let before = fields::leaves(old, sub, res.served.status);
    let after = fields::leaves(new, sub, res.served.status);
    let changed: Vec<fields::Path> = after
        .iter()
        .filter(|p| !before.contains(*p) || fields::get(old, p) != fields::get(new, p))
        .cloned()
        .collect();
    let removed: Vec<fields::Path> = before.difference(&after).cloned().collect();
    let mut entries = fields::entries(old);
    if changed.is_empty() && removed.is_empty() {
        fields::store(new, entries);
        return;
    }
    let av = res.api_version();
    for e in &mut entries {
        e.fields.retain(|q| {
            !changed
                .iter()
                .chain(removed.iter())
                .any(|p| p.starts_with(q) || q.starts_with(p))
        });
    }
    match entries
        .iter_mut()
        .find(|e| e.same(manager, "Update", sub, &av))
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now();
        }
        None => entries.push(fields::Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version: av,
            time: now(),
            subresource: sub.into(),
            fields: changed.into_iter().collect(),
        }),
    }
    fields::store(new, entries);
}

fn update(st: &mut State, r: &Req, res: &Res, ns: &str, name: &str, sub: &str) -> Answer {
    let k = key(res, ns, name);
    let Some(old) = st.objects.get(&k).cloned() else {
        return not_found(&res.group, &res.served.plural, name);
    };
    let mut new = r.body.clone();
    if !new.is_object() {
        return bad_request("the object provided is unrecognized (must be an object)");
    }
    if let Some(e) = check_body_identity(res, &new, (!ns.is_empty()).then_some(ns)) {
        return e;
    }
    if meta_str(&new, "name").is_some_and(|n| n != name) {
        return bad_request(&format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&new, "name").unwrap_or("")
        ));
    }
    match meta_str(&new, "resourceVersion").filter(|s| !s.is_empty()) {
        Some(rv) if Some(rv) != meta_str(&old, "resourceVersion") => {
            return conflict_modified(&res.group, &res.served.plural, name);
        }
        Some(_) => {}
        None if !resources::is_builtin_group(&res.group) => {
            return schema::invalid(
                &res.served.kind,
                &res.group,
                name,
                &[schema::Cause {
                    reason: "FieldValueInvalid",
                    field: "metadata.resourceVersion".into(),
                    message: "Invalid value: 0x0: must be specified for an update".into(),
                }],
            );
        }
        None => {}
    }
    carry_over(res, &old, &mut new, sub);
    track_update(res, &old, &mut new, &manager_of(r), sub);
    finish(st, r, res, &k, &old, new)
}

fn patch(st: &mut State, r: &Req, res: &Res, ns: &str, name: &str, sub: &str) -> Answer {
    let ct = r.content_type.split(';').next().unwrap_or("").trim();
    if ct == "application/apply-patch+yaml" {
        return apply(st, r, res, ns, name, sub);
    }
    if r.query.contains_key("force") {
        return (
            422,
            status_body(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
                Some(
                    json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                    {"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch", "field": "force"}]}),
                ),
            ),
        );
    }
    let k = key(res, ns, name);
    let Some(old) = st.objects.get(&k).cloned() else {
        return not_found(&res.group, &res.served.plural, name);
    };
    let mut new = old.clone();
    match ct {
        "application/merge-patch+json" => crate::util::merge_patch(&mut new, &r.body),
        "application/strategic-merge-patch+json" if resources::is_builtin_group(&res.group) => {
            crate::util::merge_patch(&mut new, &r.body)
        }
        "application/json-patch+json" => {
            if let Err(e) = crate::util::json_patch(&mut new, &r.body) {
                return (
                    422,
                    status_body(
                        422,
                        "Invalid",
                        &format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                        None,
                    ),
                );
            }
        }
        _ => {
            return (
                415,
                status_body(
                    415,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}",
                        if resources::is_builtin_group(&res.group) {
                            ", application/strategic-merge-patch+json"
                        } else {
                            ""
                        }
                    ),
                    None,
                ),
            );
        }
    }
    if let Some(rv) = r
        .body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && Some(rv) != meta_str(&old, "resourceVersion")
    {
        return conflict_modified(&res.group, &res.served.plural, name);
    }
    carry_over(res, &old, &mut new, sub);
    track_update(res, &old, &mut new, &manager_of(r), sub);
    finish(st, r, res, &k, &old, new)
}

fn typed_error(what: &str, res: &Res, ns: &str, name: &str, errs: &[String]) -> Answer {
    let joined = if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("errors:\n  {}", errs.join("\n  "))
    };
    let gvk = format!("{}, Kind={}", res.api_version(), res.served.kind);
    let ns = if ns.is_empty() { "" } else { ns };
    (
        500,
        status_body(
            500,
            "",
            &format!("failed to create typed {what} object ({ns}/{name}; {gvk}): {joined}"),
            None,
        ),
    )
}

fn apply(st: &mut State, r: &Req, res: &Res, ns: &str, name: &str, sub: &str) -> Answer {
    let manager = q(r, "fieldManager").to_string();
    if manager.is_empty() {
        return (
            422,
            status_body(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                Some(
                    json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                    {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]}),
                ),
            ),
        );
    }
    let force = q(r, "force") == "true";
    let cfg = r.body.clone();
    if !cfg.is_object() {
        return bad_request("the object provided is unrecognized (must be of type Patch)");
    }
    if cfg.get("apiVersion").is_none() || cfg.get("kind").is_none() {
        return bad_request("invalid object type: /, Kind=");
    }
    let nsopt = (!ns.is_empty()).then_some(ns);
    if let Some(e) = check_body_identity(res, &cfg, nsopt) {
        return e;
    }
    if meta_str(&cfg, "name").is_some_and(|n| n != name) {
        return bad_request(&format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&cfg, "name").unwrap_or("")
        ));
    }
    let k = key(res, ns, name);
    let live = st.objects.get(&k).cloned();
    if let Some(s) = st.schema(res) {
        let errs = schema::typecheck(s, &cfg);
        if !errs.is_empty() {
            return typed_error("patch", res, ns, name, &errs);
        }
        if let Some(l) = &live {
            let errs = schema::typecheck(s, l);
            if !errs.is_empty() {
                return typed_error("live", res, ns, name, &errs);
            }
        }
    }
    let kind = cfg["kind"].as_str().unwrap_or(&res.served.kind).to_string();
    let old = match &live {
        Some(l) => l.clone(),
        None => {
            if sub == "status" {
                return not_found(&res.group, &res.served.plural, name);
            }
            // Apply creates: authorised as `create` of that name too.
            let t = Target {
                group: res.group.clone(),
                version: res.version.clone(),
                ns: nsopt.map(str::to_string),
                plural: res.served.plural.clone(),
                name: Some(name.into()),
                sub: None,
            };
            let a = t.attributes("create");
            if !st.authz.allowed(&r.user, &a) {
                return auth::forbidden(&r.user, &a);
            }
            if let Some(e) = namespace_missing(st, nsopt) {
                return e;
            }
            Value::Null
        }
    };
    if let Some(rv) = meta_str(&cfg, "resourceVersion")
        && live.as_ref().and_then(|l| meta_str(l, "resourceVersion")) != Some(rv)
    {
        return conflict_modified(&res.group, &res.served.plural, name);
    }
    let mine = fields::leaves(&cfg, sub, res.served.status);
    let mut entries = fields::entries(&old);
    let cs = fields::conflicts(&entries, (&manager, sub), &mine, &old, &cfg);
    if !cs.is_empty() {
        if !force {
            let list: Vec<fields::Conflict> = cs.into_iter().map(|(_, _, c)| c).collect();
            return fields::conflict_status(&list);
        }
        for (i, p, _) in &cs {
            entries[*i].fields.remove(p);
        }
    }
    // The object before: a skeleton when the apply creates it.
    let mut new = if live.is_some() {
        old.clone()
    } else {
        let mut v =
            json!({"apiVersion": res.api_version(), "kind": kind, "metadata": {"name": name}});
        init_meta(st, res, &mut v, nsopt);
        v
    };
    // Fields this manager applied before and no longer does are removed (unless someone
    // else owns them too).
    let prev = entries
        .iter()
        .position(|e| e.same(&manager, "Apply", sub, ""));
    if let Some(i) = prev {
        let dropped: Vec<fields::Path> = entries[i].fields.difference(&mine).cloned().collect();
        for p in dropped {
            let shared = entries.iter().enumerate().any(|(j, e)| {
                j != i
                    && e.fields
                        .iter()
                        .any(|q| q.starts_with(&p) || p.starts_with(q))
            });
            if !shared {
                fields::remove(&mut new, &p);
            }
        }
    }
    // Merge the applied configuration (only the part this endpoint writes).
    let mut part = cfg.clone();
    if let Some(o) = part.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
        if sub == "status" {
            o.retain(|k, _| k == "status");
        } else {
            if res.served.status {
                o.remove("status");
            }
            if let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                md.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "labels" | "annotations" | "ownerReferences" | "finalizers"
                    )
                });
            }
        }
    }
    fields::merge(&mut new, &part);
    let av = res.api_version();
    let changed_obj = live.as_ref() != Some(&new);
    match prev {
        Some(i) => {
            let e = &mut entries[i];
            if changed_obj || e.fields != mine || e.api_version != av {
                e.time = now();
            }
            e.fields = mine;
            e.api_version = av;
        }
        None => entries.push(fields::Entry {
            manager: manager.clone(),
            operation: "Apply".into(),
            api_version: av,
            time: now(),
            subresource: sub.into(),
            fields: mine,
        }),
    }
    fields::store(&mut new, entries);
    match live {
        Some(old) => finish(st, r, res, &k, &old, new),
        None => store_new(st, r, res, &k, new, name, &kind, nsopt.is_some()),
    }
}

/// Deletes a stored object as the API server does: with finalizers it is only marked
/// (`deletionTimestamp`), otherwise removed. Returns the object as last stored.
pub(crate) fn delete_object(st: &mut State, k: &Key, cur: Value) -> Value {
    let has_fin = cur
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if has_fin {
        if cur.pointer("/metadata/deletionTimestamp").is_some() {
            return cur;
        }
        let mut v = cur;
        v["metadata"]["deletionTimestamp"] = json!(now());
        v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        return st.commit(k, Some(v), "", false);
    }
    st.commit(k, None, "", false)
}

fn delete(st: &mut State, r: &Req, res: &Res, ns: &str, name: &str) -> Answer {
    let k = key(res, ns, name);
    let Some(cur) = st.objects.get(&k).cloned() else {
        return not_found(&res.group, &res.served.plural, name);
    };
    let precondition = |field: &str, what: &str| -> Option<Answer> {
        let want = r
            .body
            .pointer(&format!("/preconditions/{field}"))?
            .as_str()?;
        let have = meta_str(&cur, field).unwrap_or("");
        (want != have).then(|| {
            (
                409,
                status_body(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}",
                        qualified(&res.served.plural, &res.group)
                    ),
                    Some(details(name, &res.group, &res.served.plural)),
                ),
            )
        })
    };
    if let Some(e) =
        precondition("uid", "UID").or_else(|| precondition("resourceVersion", "ResourceVersion"))
    {
        return e;
    }
    let kind = kind_of(st, res);
    if dry_run(r) {
        return (200, render(&cur, &res.api_version(), &kind));
    }
    let last = delete_object(st, &k, cur);
    (200, render(&last, &res.api_version(), &kind))
}

fn delete_collection(st: &mut State, r: &Req, res: &Res, ns: Option<&str>) -> Answer {
    let labels = match LabelSelector::parse(q(r, "labelSelector")) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let keys: Vec<Key> = st
        .objects
        .iter()
        .filter(|(k, v)| {
            k.0 == res.group
                && k.1 == res.served.plural
                && ns.is_none_or(|n| n == k.2)
                && labels.matches(v)
        })
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for k in keys {
        let cur = st.objects[&k].clone();
        items.push(list_item(&delete_object(st, &k, cur)));
    }
    (
        200,
        json!({"apiVersion": res.api_version(), "kind": format!("{}List", kind_of(st, res)),
               "metadata": {"resourceVersion": st.counter.to_string()}, "items": items}),
    )
}
