//! A mocked Kubernetes API server on tower-test, after the controller's: every request a
//! kube `Client` makes is answered from in-memory state and recorded (method, path, query,
//! content type, body), so tests assert the exact calls. Supports list (label selector),
//! get, create, server-side apply, JSON merge patch (RFC 7386), `/status` merge patch and
//! delete with finalizers (a delete of an object with finalizers sets
//! `deletionTimestamp`; removing the last finalizer then removes it), and watches
//! (`?watch=true`: a streaming body; every successful write, and [`FakeApi::push_watch_event`],
//! is sent to the open watches of that collection).
#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    pub body: Value,
}

impl Req {
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

type Frame = Result<http_body::Frame<Bytes>, std::io::Error>;
type RespBody = BoxBody<Bytes, std::io::Error>;

#[derive(Default)]
pub struct State {
    /// Open watches: the watched path (a collection, possibly cluster-wide) → streams.
    pub watchers: Vec<(String, tokio::sync::mpsc::UnboundedSender<Frame>)>,
    /// Watch requests (kept apart from `log`: they stay open).
    pub watch_log: Vec<Req>,
    /// path of the collection ("/apis/batch/v1/namespaces/x/jobs") + name → object.
    pub objects: BTreeMap<(String, String), Value>,
    pub log: Vec<Req>,
    pub counter: u64,
    pub not_served: Vec<String>,
    /// API discovery documents: group/version ("v1" for core) → (kind, plural, namespaced).
    pub served: BTreeMap<String, Vec<(String, String, bool)>>,
}

/// Whether a cluster-wide list path (`/apis/apps/v1/deployments`) covers a namespaced
/// collection (`/apis/apps/v1/namespaces/x/deployments`).
fn cluster_wide(list: &str, coll: &str) -> bool {
    if list.contains("/namespaces/") {
        return false;
    }
    let Some((head, rest)) = coll.split_once("/namespaces/") else {
        return false;
    };
    let Some((_, plural)) = rest.split_once('/') else {
        return false;
    };
    format!("{head}/{plural}") == list
}

/// The collection path of an object from its apiVersion, kind and namespace.
pub fn collection_of(v: &Value) -> String {
    let av = v["apiVersion"].as_str().unwrap_or("v1");
    let kind = v["kind"].as_str().unwrap_or("").to_ascii_lowercase();
    let plural = if kind.ends_with('s') || kind.ends_with("sh") || kind.ends_with("ch") {
        format!("{kind}es")
    } else if let Some(stem) = kind.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{kind}s")
    };
    let base = if av.contains('/') {
        format!("/apis/{av}")
    } else {
        format!("/api/{av}")
    };
    match v.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}"),
        None => format!("{base}/{plural}"),
    }
}

#[derive(Clone, Default)]
pub struct FakeApi {
    pub state: Arc<Mutex<State>>,
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": reason, "code": code, "message": reason}),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Collection path and object name of a request path (`None` name for collections).
fn split_path(path: &str) -> (String, Option<String>, Option<String>) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/[namespaces/NS/]PLURAL[/NAME[/SUB]] or /apis/G/V/...
    let base = if segs.first() == Some(&"api") { 2 } else { 3 };
    let mut i = base;
    if segs.get(i) == Some(&"namespaces") && segs.len() > i + 2 {
        i += 2;
    }
    let coll = format!("/{}", segs[..(i + 1).min(segs.len())].join("/"));
    (
        coll,
        segs.get(i + 1).map(|s| s.to_string()),
        segs.get(i + 2).map(|s| s.to_string()),
    )
}

impl FakeApi {
    pub fn new() -> FakeApi {
        FakeApi::default()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores an object at `collection` (e.g. `/apis/meshbridge.io/v1alpha1/namespaces/ns/installs`).
    pub fn insert(&self, collection: &str, mut v: Value) {
        let mut st = self.lock();
        st.counter += 1;
        let n = st.counter;
        v["metadata"]["uid"] = json!(format!("uid-{n}"));
        v["metadata"]["resourceVersion"] = json!(n.to_string());
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        st.objects.insert((collection.to_string(), name), v);
    }

    pub fn get(&self, collection: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(collection.to_string(), name.to_string()))
            .cloned()
    }

    /// Changes a stored object in place (e.g. a Job's status, as the Job controller would).
    pub fn edit(&self, collection: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut st = self.lock();
        st.counter += 1;
        let c = st.counter;
        if let Some(v) = st
            .objects
            .get_mut(&(collection.to_string(), name.to_string()))
        {
            f(v);
            v["metadata"]["resourceVersion"] = json!(c.to_string());
        }
    }

    pub fn names(&self, collection: &str) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .filter(|(c, _)| c == collection)
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub fn take_log(&self) -> Vec<Req> {
        std::mem::take(&mut self.lock().log)
    }

    /// Sends `{"type": kind, "object": obj}` to every open watch covering `collection`.
    pub fn send_watch_event(&self, collection: &str, kind: &str, obj: &Value) {
        let line = format!("{}\n", json!({"type": kind, "object": obj}));
        let mut st = self.lock();
        st.watchers.retain(|(path, w)| {
            if path != collection && !cluster_wide(path, collection) {
                return true;
            }
            w.send(Ok(http_body::Frame::data(Bytes::from(line.clone()))))
                .is_ok()
        });
    }

    /// Stores (or replaces) an object as a client would and tells the open watches
    /// (`ADDED` or `MODIFIED`).
    pub fn push_watch_event(&self, v: Value) {
        let coll = collection_of(&v);
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        let existed = self.get(&coll, &name).is_some();
        self.insert(&coll, v);
        let stored = self.get(&coll, &name).unwrap();
        self.send_watch_event(&coll, if existed { "MODIFIED" } else { "ADDED" }, &stored);
    }

    /// Number of open watches whose path is `path`.
    pub fn watching(&self, path: &str) -> usize {
        self.lock()
            .watchers
            .iter()
            .filter(|(p, w)| p == path && !w.is_closed())
            .count()
    }

    pub fn take_watch_log(&self) -> Vec<Req> {
        std::mem::take(&mut self.lock().watch_log)
    }

    pub fn client(&self) -> kube::Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<RespBody>>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes)
                        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
                };
                let query: BTreeMap<String, String> = parts
                    .uri
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .filter(|s| !s.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (decode(k), decode(v))
                    })
                    .collect();
                let r = Req {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query,
                    content_type: parts
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                    body,
                };
                if r.query.get("watch").map(String::as_str) == Some("true") {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
                    {
                        let mut st = me.lock();
                        st.watchers.push((r.path.clone(), tx));
                        st.watch_log.push(r);
                    }
                    let stream = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|f| (f, rx))
                    });
                    send.send_response(
                        Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(BoxBody::new(StreamBody::new(stream)))
                            .unwrap(),
                    );
                    continue;
                }
                let (code, resp) = me.handle(&r);
                let (coll, name, _) = split_path(&r.path);
                if code < 300 && resp.get("metadata").is_some() {
                    let ev = match r.method.as_str() {
                        "POST" => Some("ADDED"),
                        "PATCH" => Some("MODIFIED"),
                        "DELETE" => Some(match name {
                            Some(n) if me.get(&coll, &n).is_some() => "MODIFIED",
                            _ => "DELETED",
                        }),
                        _ => None,
                    };
                    if let Some(ev) = ev {
                        me.send_watch_event(&coll, ev, &resp);
                    }
                }
                me.lock().log.push(r);
                send.send_response(
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(
                            Full::new(Bytes::from(serde_json::to_vec(&resp).unwrap()))
                                .map_err(|never| match never {})
                                .boxed(),
                        )
                        .unwrap(),
                );
            }
        });
        kube::Client::new(svc, "default")
    }

    /// Answers 404 for every path under `prefix` (a group/version that is not served).
    pub fn not_served(&self, prefix: &str) {
        self.lock().not_served.push(prefix.to_string());
    }

    /// Serves an API discovery document for `gv` (kinds: (kind, plural, namespaced)).
    pub fn serve(&self, gv: &str, kinds: &[(&str, &str, bool)]) {
        self.lock().served.insert(
            gv.to_string(),
            kinds
                .iter()
                .map(|(k, p, n)| (k.to_string(), p.to_string(), *n))
                .collect(),
        );
    }

    /// Stores a Kubernetes object at the collection its apiVersion/kind/namespace name.
    pub fn insert_object(&self, v: Value) {
        self.insert(&collection_of(&v), v);
    }

    fn handle(&self, r: &Req) -> (u16, Value) {
        let (coll, name, sub) = split_path(&r.path);
        let mut st = self.lock();
        if st.not_served.iter().any(|p| r.path.starts_with(p.as_str())) {
            return status(404, "NotFound");
        }
        // API discovery: GET /api/v1, GET /apis/G/V.
        let segs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        let gv = match segs.as_slice() {
            ["api", v] => Some(v.to_string()),
            ["apis", g, v] => Some(format!("{g}/{v}")),
            _ => None,
        };
        if let Some(gv) = gv {
            let Some(kinds) = st.served.get(&gv) else {
                return status(404, "NotFound");
            };
            let resources: Vec<Value> = kinds
                .iter()
                .map(|(k, p, n)| {
                    json!({"name": p, "singularName": "", "namespaced": n, "kind": k,
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]})
                })
                .collect();
            return (
                200,
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            );
        }
        st.counter += 1;
        let c = st.counter;
        match (r.method.as_str(), name) {
            ("GET", None) => {
                let sel = r.query.get("labelSelector").cloned().unwrap_or_default();
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((cc, _), _)| *cc == coll || cluster_wide(&coll, cc))
                    .map(|(_, v)| v.clone())
                    .filter(|v| {
                        sel.split(',').filter(|s| !s.is_empty()).all(|term| {
                            let labels = v.pointer("/metadata/labels");
                            match term.split_once('=') {
                                Some((k, want)) => {
                                    labels.and_then(|l| l.get(k)).and_then(Value::as_str)
                                        == Some(want)
                                }
                                // `key`: the label exists.
                                None => labels.and_then(|l| l.get(term)).is_some(),
                            }
                        })
                    })
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": c.to_string()}, "items": items}),
                )
            }
            ("GET", Some(n)) => match st.objects.get(&(coll, n)) {
                Some(v) => (200, v.clone()),
                None => status(404, "NotFound"),
            },
            ("POST", None) => {
                let mut v = r.body.clone();
                let n = v["metadata"]["name"].as_str().unwrap_or("").to_string();
                if st.objects.contains_key(&(coll.clone(), n.clone())) {
                    return status(409, "AlreadyExists");
                }
                v["metadata"]["uid"] = json!(format!("uid-{c}"));
                v["metadata"]["resourceVersion"] = json!(c.to_string());
                st.objects.insert((coll, n), v.clone());
                (201, v)
            }
            ("PATCH", Some(n)) => {
                let k = (coll, n);
                if r.content_type.starts_with("application/apply-patch") {
                    let prev = st.objects.get(&k).cloned();
                    let mut v = r.body.clone();
                    v["metadata"]["uid"] = prev
                        .as_ref()
                        .and_then(|p| p.pointer("/metadata/uid").cloned())
                        .unwrap_or(json!(format!("uid-{c}")));
                    v["metadata"]["resourceVersion"] = json!(c.to_string());
                    st.objects.insert(k, v.clone());
                    return (200, v);
                }
                let Some(cur) = st.objects.get_mut(&k) else {
                    return status(404, "NotFound");
                };
                if sub.as_deref() == Some("status") {
                    let mut s = cur.get("status").cloned().unwrap_or(Value::Null);
                    merge_patch(&mut s, &r.body["status"]);
                    cur["status"] = s;
                } else {
                    if let Some(rv) = r.body.pointer("/metadata/resourceVersion")
                        && !rv.is_null()
                        && Some(rv) != cur.pointer("/metadata/resourceVersion")
                    {
                        return status(409, "Conflict");
                    }
                    let mut p = r.body.clone();
                    if let Some(md) = p.get_mut("metadata").and_then(Value::as_object_mut) {
                        md.remove("resourceVersion");
                    }
                    merge_patch(cur, &p);
                }
                cur["metadata"]["resourceVersion"] = json!(c.to_string());
                let out = cur.clone();
                let gone = out.pointer("/metadata/deletionTimestamp").is_some()
                    && out
                        .pointer("/metadata/finalizers")
                        .and_then(Value::as_array)
                        .is_none_or(|f| f.is_empty());
                if gone {
                    st.objects.remove(&k);
                }
                (200, out)
            }
            ("DELETE", Some(n)) => {
                let k = (coll, n);
                let Some(cur) = st.objects.get_mut(&k) else {
                    return status(404, "NotFound");
                };
                let has_fin = cur
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty());
                if has_fin {
                    cur["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                    return (200, cur.clone());
                }
                let v = st.objects.remove(&k).unwrap();
                (200, v)
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }
}
