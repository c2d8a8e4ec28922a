//! A mocked Kubernetes API server on tower-test: every request a kube `Client` makes is
//! answered from in-memory state *and recorded*, so tests assert the exact calls (method,
//! path, query — `fieldManager`, `force`, `labelSelector` — and JSON body), including that
//! none were made. Serves: discovery (`/apis/G/V`), list/get/create/replace/server-side
//! apply/delete of any served resource, `/status` patches, Events and Leases.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Req {
    pub client: String,
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    pub body: Value,
}

impl Req {
    /// `METHOD path` (for compact assertions).
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A served kind: (kind, plural, namespaced, has status subresource).
pub type Served = (&'static str, &'static str, bool, bool);

type Frame = Result<http_body::Frame<Bytes>, std::io::Error>;
type RespBody = BoxBody<Bytes, std::io::Error>;

#[derive(Default)]
pub struct State {
    /// Open watch streams per (group/version, plural).
    pub watchers: BTreeMap<(String, String), Vec<tokio::sync::mpsc::UnboundedSender<Frame>>>,
    /// group/version ("v1" for core) → kinds.
    pub served: BTreeMap<String, Vec<Served>>,
    /// (group/version, plural, namespace, name) → object.
    pub objects: BTreeMap<(String, String, String, String), Value>,
    pub log: Vec<Req>,
    /// Watch requests (kept apart from `log`: they stay open).
    pub watch_log: Vec<Req>,
    pub counter: u64,
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

impl FakeApi {
    pub fn new() -> FakeApi {
        FakeApi::default()
    }

    pub fn serve(&self, gv: &str, kinds: Vec<Served>) -> &Self {
        self.lock().served.insert(gv.to_string(), kinds);
        self
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts an object into the store as if it existed before (fills uid/resourceVersion).
    pub fn insert(&self, mut v: Value) {
        let av = v["apiVersion"].as_str().unwrap().to_string();
        let kind = v["kind"].as_str().unwrap().to_string();
        let mut st = self.lock();
        let plural = st
            .served
            .get(&av)
            .and_then(|ks| ks.iter().find(|k| k.0 == kind))
            .map(|k| k.1)
            .expect("served kind");
        st.counter += 1;
        let n = st.counter;
        let md = v["metadata"].as_object_mut().unwrap();
        md.entry("uid").or_insert(json!(format!("uid-{n}")));
        md.insert("resourceVersion".into(), json!(n.to_string()));
        let ns = md
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = md["name"].as_str().unwrap().to_string();
        st.objects.insert((av, plural.to_string(), ns, name), v);
    }

    pub fn get(&self, av: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(av.into(), plural.into(), ns.into(), name.into()))
            .cloned()
    }

    /// (group/version, plural) of a collection path.
    fn resource_of(&self, path: &str) -> (String, String) {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (gv, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => (v.to_string(), rest.to_vec()),
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest.to_vec()),
            _ => (String::new(), vec![]),
        };
        let plural = match rest.as_slice() {
            ["namespaces", _, p, ..] => p.to_string(),
            [p, ..] => p.to_string(),
            _ => String::new(),
        };
        (gv, plural)
    }

    /// Applies a change to the store and sends it to every open watch of that resource:
    /// `kind` is ADDED, MODIFIED or DELETED.
    pub fn push_watch_event(&self, kind: &str, obj: Value) {
        let av = obj["apiVersion"].as_str().unwrap().to_string();
        let k = obj["kind"].as_str().unwrap().to_string();
        let plural = {
            let st = self.lock();
            st.served[&av]
                .iter()
                .find(|x| x.0 == k)
                .unwrap()
                .1
                .to_string()
        };
        let obj = if kind == "DELETED" {
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            self.lock()
                .objects
                .remove(&(av.clone(), plural.clone(), ns, name));
            obj
        } else {
            self.insert(obj.clone());
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            self.get(&av, &plural, &ns, &name).unwrap()
        };
        let line = format!("{}\n", serde_json::json!({"type": kind, "object": obj}));
        let mut st = self.lock();
        if let Some(ws) = st.watchers.get_mut(&(av, plural)) {
            ws.retain(|w| {
                w.send(Ok(http_body::Frame::data(Bytes::from(line.clone()))))
                    .is_ok()
            });
        }
    }

    /// Drains the request log.
    pub fn take_log(&self) -> Vec<Req> {
        std::mem::take(&mut self.lock().log)
    }

    /// A kube Client whose requests this fake answers (tagged `name` in the log).
    pub fn client(&self, name: &str) -> kube::Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<RespBody>>();
        let me = self.clone();
        let name = name.to_string();
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
                    client: name.clone(),
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
                    // A watch: a streaming body fed by `push_watch_event`.
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
                    let key = me.resource_of(&r.path);
                    me.lock().watchers.entry(key).or_default().push(tx);
                    me.lock().watch_log.push(r);
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

    fn handle(&self, r: &Req) -> (u16, Value) {
        let segs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        let (gv, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => (v.to_string(), rest.to_vec()),
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest.to_vec()),
            _ => return status(404, "NotFound"),
        };
        let mut st = self.lock();
        let Some(kinds) = st.served.get(&gv).cloned() else {
            return status(404, "NotFound");
        };
        if rest.is_empty() {
            let mut resources = Vec::new();
            for (kind, plural, namespaced, has_status) in &kinds {
                resources.push(json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                    "verbs": ["get","list","watch","create","update","patch","delete"]}));
                if *has_status {
                    resources.push(json!({"name": format!("{plural}/status"), "singularName": "", "namespaced": namespaced,
                        "kind": kind, "verbs": ["get","patch","update"]}));
                }
            }
            return (
                200,
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            );
        }
        let (ns, rest) = match rest.as_slice() {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => {
                (Some(ns.to_string()), rest.to_vec())
            }
            _ => (None, rest),
        };
        let (plural, name, sub) = match rest.as_slice() {
            [p] => (p.to_string(), None, None),
            [p, n] => (p.to_string(), Some(n.to_string()), None),
            [p, n, s] => (p.to_string(), Some(n.to_string()), Some(s.to_string())),
            _ => return status(404, "NotFound"),
        };
        let Some(kind) = kinds.iter().find(|k| k.1 == plural) else {
            return status(404, "NotFound");
        };
        let nskey = ns.clone().unwrap_or_default();
        match (r.method.as_str(), name) {
            ("GET", None) => {
                let sel = r.query.get("labelSelector").cloned().unwrap_or_default();
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((g, p, n, _), _)| {
                        *g == gv && *p == plural && (ns.is_none() || *n == nskey)
                    })
                    .map(|(_, v)| v.clone())
                    .filter(|v| {
                        sel.split(',').filter(|s| !s.is_empty()).all(|term| {
                            let (k, want) = term.split_once('=').unwrap_or((term, ""));
                            v.pointer("/metadata/labels")
                                .and_then(|l| l.get(k))
                                .and_then(Value::as_str)
                                == Some(want)
                        })
                    })
                    .collect();
                (
                    200,
                    json!({"apiVersion": gv, "kind": format!("{}List", kind.0),
                              "metadata": {"resourceVersion": st.counter.to_string()}, "items": items}),
                )
            }
            ("GET", Some(n)) => match st.objects.get(&(gv.clone(), plural.clone(), nskey, n)) {
                Some(v) => (200, v.clone()),
                None => status(404, "NotFound"),
            },
            ("POST", None) => {
                let mut v = r.body.clone();
                let n = v
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let k = (gv.clone(), plural.clone(), nskey.clone(), n);
                if st.objects.contains_key(&k) {
                    return status(409, "AlreadyExists");
                }
                st.counter += 1;
                let c = st.counter;
                v["metadata"]["uid"] = json!(format!("uid-{c}"));
                v["metadata"]["resourceVersion"] = json!(c.to_string());
                if !nskey.is_empty() {
                    v["metadata"]["namespace"] = json!(nskey);
                }
                st.objects.insert(k, v.clone());
                (201, v)
            }
            ("PUT", Some(n)) => {
                let k = (gv.clone(), plural.clone(), nskey, n);
                let Some(cur) = st.objects.get(&k).cloned() else {
                    return status(404, "NotFound");
                };
                if r.body.pointer("/metadata/resourceVersion")
                    != cur.pointer("/metadata/resourceVersion")
                {
                    return status(409, "Conflict");
                }
                st.counter += 1;
                let c = st.counter;
                let mut v = r.body.clone();
                v["metadata"]["resourceVersion"] = json!(c.to_string());
                st.objects.insert(k, v.clone());
                (200, v)
            }
            ("PATCH", Some(n)) => {
                let k = (gv.clone(), plural.clone(), nskey.clone(), n.clone());
                st.counter += 1;
                let c = st.counter;
                if sub.as_deref() == Some("status") {
                    let Some(cur) = st.objects.get_mut(&k) else {
                        return status(404, "NotFound");
                    };
                    cur["status"] = r.body["status"].clone();
                    cur["metadata"]["resourceVersion"] = json!(c.to_string());
                    return (200, cur.clone());
                }
                if r.content_type.starts_with("application/apply-patch") {
                    let prev = st.objects.get(&k).cloned();
                    let mut v = r.body.clone();
                    let uid = prev
                        .as_ref()
                        .and_then(|p| p.pointer("/metadata/uid").cloned())
                        .unwrap_or(json!(format!("uid-{c}")));
                    v["metadata"]["uid"] = uid;
                    v["metadata"]["resourceVersion"] = json!(c.to_string());
                    if !nskey.is_empty() {
                        v["metadata"]["namespace"] = json!(nskey);
                    }
                    st.objects.insert(k, v.clone());
                    (200, v)
                } else {
                    // Merge patch (Events): shallow merge.
                    let Some(cur) = st.objects.get_mut(&k) else {
                        return status(404, "NotFound");
                    };
                    if let (Some(c), Some(b)) = (cur.as_object_mut(), r.body.as_object()) {
                        for (kk, vv) in b {
                            c.insert(kk.clone(), vv.clone());
                        }
                    }
                    (200, cur.clone())
                }
            }
            ("DELETE", Some(n)) => {
                let k = (gv.clone(), plural.clone(), nskey, n);
                let Some(cur) = st.objects.get(&k).cloned() else {
                    return status(404, "NotFound");
                };
                if let Some(uid) = r.body.pointer("/preconditions/uid")
                    && cur.pointer("/metadata/uid") != Some(uid)
                {
                    return status(409, "Conflict");
                }
                st.objects.remove(&k);
                (200, cur)
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }
}
