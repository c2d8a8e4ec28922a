//! One fake Kubernetes API server (v1.28 behaviour) for kube-rs `Client`s in tests: every
//! request is answered from in-memory state and recorded ([`Req`]), so tests assert the
//! exact calls. What a real server does and the old mocks did not is done here too — list
//! items without apiVersion/kind, status writes validated against the URL version's
//! schema, RBAC 403s, server-side apply conflicts and managedFields, resourceVersion
//! conflicts, generation, watch resume/bookmarks/410, finalizers, garbage collection,
//! TokenReview and SubjectAccessReview. See README.md.
//!
//! Two modes: [`FakeApi::new`] serves any `/api/v1/...` or `/apis/G/V/...` collection
//! (kinds from the built-in catalog, from the objects stored, or guessed from the plural;
//! discovery documents only for what [`FakeApi::serve`] registered); [`FakeApi::strict`]
//! serves only what was registered (404 for the rest), as a real cluster does.

pub mod auth;
pub mod fields;
mod http;
pub mod pki;
pub mod prometheus;
pub mod resources;
pub mod schema;
pub mod util;
pub mod watch;

pub use auth::{Attributes, CONTROLLER_USER, Rule, TokenInfo};
pub use resources::Served;

use resources::{api_version, split_api_version};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use util::meta_str;
use watch::{Change, Watcher};

/// One recorded request.
#[derive(Clone, Debug, Default)]
pub struct Req {
    /// The tag given to [`FakeApi::client`].
    pub client: String,
    /// The user the request was authenticated as.
    pub user: String,
    pub method: String,
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    pub user_agent: String,
    /// JSON (or YAML for apply patches) body; `Null` when empty.
    pub body: Value,
}

impl Req {
    /// `METHOD path` (for compact assertions).
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// (group, plural, namespace, name): one stored object, whatever version it is read at.
pub type Key = (String, String, String, String);

#[derive(Default)]
pub struct State {
    /// Every answered request but watches, in order.
    pub log: Vec<Req>,
    /// Watch requests (kept apart from `log`: they stay open).
    pub watch_log: Vec<Req>,
    /// Path prefixes answered 404 (a group or version that is not installed).
    pub not_served: Vec<String>,
    /// The global resourceVersion counter.
    pub counter: u64,
    pub objects: BTreeMap<Key, Value>,
    pub authz: auth::Authz,
    pub tokens: BTreeMap<String, TokenInfo>,
    /// Creating a namespaced object in a namespace that does not exist answers 404.
    pub require_namespaces: bool,
    strict: bool,
    /// group/version ("v1" for core) → kinds, as registered.
    served: BTreeMap<String, Vec<Served>>,
    /// Open mode: (group, plural) → what objects stored there said.
    auto: BTreeMap<(String, String), Served>,
    watchers: Vec<Watcher>,
    history: Vec<Change>,
    compacted: u64,
    next_watch: u64,
    /// (group, version, kind) → openAPIV3Schema.
    schemas: BTreeMap<(String, String, String), Value>,
    /// client tag → user.
    users: BTreeMap<String, String>,
}

/// What a path names: a resource at a version (served or not).
#[derive(Clone, Debug)]
pub(crate) struct Res {
    pub group: String,
    pub version: String,
    pub served: Served,
    /// Only guessed (open mode, nothing known about it).
    pub guessed: bool,
}

impl Res {
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }
}

/// A collection path: (group, version, namespace, plural).
pub(crate) fn parse_collection(path: &str) -> Option<(String, String, Option<String>, String)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (g, v, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (ns, plural) = match rest {
        ["namespaces", ns, p] => (Some(ns.to_string()), p.to_string()),
        [p] => (None, p.to_string()),
        _ => return None,
    };
    Some((g.to_string(), v.to_string(), ns, plural))
}

/// The collection path of an object from its apiVersion, kind (plural guessed) and
/// namespace.
pub fn collection_of(v: &Value) -> String {
    let av = v["apiVersion"].as_str().unwrap_or("v1");
    let kind = v["kind"].as_str().unwrap_or("");
    let (g, _) = split_api_version(av);
    let plural = resources::builtin_by_kind(&g, kind)
        .map(|s| s.plural)
        .unwrap_or_else(|| resources::guess_plural(kind));
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

impl State {
    /// The resource a (group, version, plural) names, if served.
    pub(crate) fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Res> {
        let res = |served: Served, guessed| Res {
            group: group.into(),
            version: version.into(),
            served,
            guessed,
        };
        if let Some(s) = self
            .served
            .get(&api_version(group, version))
            .and_then(|ks| ks.iter().find(|k| k.plural == plural))
        {
            return Some(res(s.clone(), false));
        }
        if self.strict {
            return None;
        }
        if let Some(s) = self.auto.get(&(group.to_string(), plural.to_string())) {
            return Some(res(s.clone(), false));
        }
        if let Some(s) = resources::builtin_by_plural(group, plural) {
            return Some(res(s, false));
        }
        // Served at another version of the group: the same resource.
        if let Some(s) = self
            .served
            .iter()
            .filter(|(gv, _)| split_api_version(gv).0 == group)
            .flat_map(|(_, ks)| ks)
            .find(|k| k.plural == plural)
        {
            return Some(res(s.clone(), false));
        }
        Some(res(
            Served {
                kind: resources::guess_kind(plural),
                plural: plural.into(),
                namespaced: true,
                status: true,
            },
            true,
        ))
    }

    /// The served resource of an object's apiVersion and kind.
    pub(crate) fn resolve_kind(&self, av: &str, kind: &str, namespaced: bool) -> Res {
        let (group, version) = split_api_version(av);
        let found = self
            .served
            .get(av)
            .and_then(|ks| ks.iter().find(|k| k.kind == kind))
            .cloned()
            .or_else(|| {
                self.auto
                    .iter()
                    .find(|((g, _), s)| *g == group && s.kind == kind)
                    .map(|(_, s)| s.clone())
            })
            .or_else(|| resources::builtin_by_kind(&group, kind));
        let guessed = found.is_none();
        let served = found.unwrap_or_else(|| Served {
            kind: kind.into(),
            plural: resources::guess_plural(kind),
            namespaced,
            status: true,
        });
        Res {
            group,
            version,
            served,
            guessed,
        }
    }

    /// Remembers what an object written in open mode says about its resource.
    /// The resource of a whole object (by its apiVersion, kind and namespace, which it must
    /// have if namespaced; learned as [`State::learn`] does) and its namespace.
    pub(crate) fn resource_of(&mut self, v: &Value) -> (Res, Option<String>) {
        let av = v["apiVersion"].as_str().expect("apiVersion");
        let kind = v["kind"].as_str().expect("kind");
        let ns = meta_str(v, "namespace").map(str::to_string);
        let res = self.resolve_kind(av, kind, ns.is_some());
        self.learn(&res, kind, ns.is_some());
        (res, ns)
    }

    pub(crate) fn learn(&mut self, res: &Res, kind: &str, namespaced: bool) {
        if res.guessed && !self.strict {
            let s = Served {
                kind: kind.to_string(),
                plural: res.served.plural.clone(),
                namespaced,
                status: true,
            };
            self.auto
                .insert((res.group.clone(), res.served.plural.clone()), s);
        }
    }

    pub(crate) fn schema(&self, res: &Res) -> Option<&Value> {
        self.schemas.get(&(
            res.group.clone(),
            res.version.clone(),
            res.served.kind.clone(),
        ))
    }

    /// Stores (or with `None` deletes) an object under a new resourceVersion and tells the
    /// open watches (unless `silent`). Returns the stored object.
    pub(crate) fn commit(
        &mut self,
        key: &Key,
        new: Option<Value>,
        ty: &str,
        silent: bool,
    ) -> Value {
        self.counter += 1;
        let rv = self.counter;
        let old = self.objects.get(key).cloned();
        let last = match &new {
            Some(v) => {
                let mut v = v.clone();
                v["metadata"]["resourceVersion"] = json!(rv.to_string());
                self.objects.insert(key.clone(), v.clone());
                v
            }
            None => {
                self.objects.remove(key);
                let mut v = old.clone().unwrap_or(Value::Null);
                if v.is_object() {
                    v["metadata"]["resourceVersion"] = json!(rv.to_string());
                }
                v
            }
        };
        if silent {
            return last;
        }
        let c = Change {
            rv,
            group: key.0.clone(),
            plural: key.1.clone(),
            namespace: key.2.clone(),
            old,
            new: new.map(|_| last.clone()),
            last: last.clone(),
            ty: ty.to_string(),
        };
        self.watchers.retain(|w| w.deliver(&c));
        self.history.push(c);
        if self.history.len() > 50_000 {
            let drop = self.history.len() - 50_000;
            self.compacted = self.history[drop - 1].rv;
            self.history.drain(..drop);
        }
        last
    }

    pub(crate) fn user_of(&self, client: &str) -> String {
        self.users
            .get(client)
            .cloned()
            .unwrap_or_else(|| client.to_string())
    }

    pub(crate) fn kind_of_stored(&self, key: &Key) -> Option<String> {
        self.objects
            .get(key)
            .and_then(|v| v["kind"].as_str().map(str::to_string))
    }
}

/// The fake API server. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct FakeApi {
    pub state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// Open mode: any collection is served (see the crate docs).
    pub fn new() -> FakeApi {
        FakeApi::default()
    }

    /// Strict mode: only registered resources ([`FakeApi::serve`], [`FakeApi::load_crd`],
    /// [`FakeApi::serve_builtin`]) are served; everything else answers 404.
    pub fn strict() -> FakeApi {
        let f = FakeApi::default();
        f.lock().strict = true;
        f
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `kinds` at `gv` ("v1" for core): `(kind, plural, namespaced, has_status)` or
    /// `(kind, plural, namespaced)`. Replaces what `gv` served before.
    pub fn serve<I, T>(&self, gv: &str, kinds: I) -> &Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Served>,
    {
        self.lock()
            .served
            .insert(gv.to_string(), kinds.into_iter().map(Into::into).collect());
        self
    }

    /// Serves every built-in Kubernetes resource of [`resources::BUILTIN`] (added to what
    /// each group/version serves).
    pub fn serve_builtin(&self) -> &Self {
        let mut st = self.lock();
        for b in resources::BUILTIN {
            let list = st.served.entry(api_version(b.0, b.1)).or_default();
            if !list.iter().any(|s| s.plural == b.3) {
                list.push((b.2, b.3, b.4, b.5).into());
            }
        }
        drop(st);
        self
    }

    /// Answers 404 for every path under `prefix` (a group/version that is not served).
    pub fn not_served(&self, prefix: &str) {
        self.lock().not_served.push(prefix.to_string());
    }

    /// Registers the OpenAPI v3 schema of `kind` at `gv`: writes through that version are
    /// validated against it.
    pub fn register_schema(&self, gv: &str, kind: &str, schema: Value) -> &Self {
        let (g, v) = split_api_version(gv);
        self.lock().schemas.insert((g, v, kind.to_string()), schema);
        self
    }

    /// Installs a CustomResourceDefinition object: serves each served version (with its
    /// status subresource) and registers its schema.
    pub fn load_crd(&self, crd: &Value) -> &Self {
        for cv in schema::crd_versions(crd) {
            let gv = api_version(&cv.group, &cv.version);
            {
                let mut st = self.lock();
                let list = st.served.entry(gv.clone()).or_default();
                list.retain(|s| s.plural != cv.served.plural);
                list.push(cv.served.clone());
            }
            if let Some(s) = cv.schema {
                self.register_schema(&gv, &cv.served.kind, s);
            }
        }
        self
    }

    /// Registers the schemas of every version of the CRDs in `dir` (e.g. the project's
    /// `crds/`) without serving anything: for tests that choose what is served themselves.
    pub fn load_crd_schemas(&self, dir: impl AsRef<Path>) -> &Self {
        for f in yaml_files(dir.as_ref()) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for doc in text.split("\n---") {
                let Ok(v) = serde_saphyr::from_str::<Value>(doc) else {
                    continue;
                };
                for cv in schema::crd_versions(&v) {
                    if let Some(s) = cv.schema {
                        self.register_schema(
                            &api_version(&cv.group, &cv.version),
                            &cv.served.kind,
                            s,
                        );
                    }
                }
            }
        }
        self
    }

    /// [`FakeApi::load_crd_schemas`] of the project's `crds/`.
    pub fn load_project_crd_schemas(&self) -> &Self {
        self.load_crd_schemas(Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds"))
    }

    /// Every CRD in a YAML stream.
    pub fn load_crd_yaml(&self, yaml: &str) -> &Self {
        for doc in yaml.split("\n---") {
            if let Ok(v) = serde_saphyr::from_str::<Value>(doc)
                && v["kind"] == "CustomResourceDefinition"
            {
                self.load_crd(&v);
            }
        }
        self
    }

    pub fn load_crd_file(&self, path: impl AsRef<Path>) -> &Self {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        self.load_crd_yaml(&text)
    }

    /// Every `*.yaml` CRD in a directory (e.g. the project's `crds/`).
    pub fn load_crds_dir(&self, dir: impl AsRef<Path>) -> &Self {
        for f in yaml_files(dir.as_ref()) {
            self.load_crd_file(f);
        }
        self
    }

    /// The project's own CRDs (`crds/` at the workspace root).
    pub fn load_project_crds(&self) -> &Self {
        self.load_crds_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds"))
    }

    /// Creating a namespaced object in a namespace that does not exist answers 404
    /// `namespaces "x" not found` (off by default).
    pub fn require_namespaces(&self, on: bool) -> &Self {
        self.lock().require_namespaces = on;
        self
    }

    /// Restricts `user` to `rules` (added to the rules it has). Users without rules are
    /// unrestricted.
    pub fn grant(&self, user: &str, rules: impl IntoIterator<Item = Rule>) -> &Self {
        self.lock()
            .authz
            .rules
            .entry(user.to_string())
            .or_default()
            .extend(rules);
        self
    }

    /// Denies `user` what `rule` matches, whatever else it may do.
    pub fn deny(&self, user: &str, rule: Rule) -> &Self {
        self.lock().authz.deny.push((user.to_string(), rule));
        self
    }

    /// Whether `user` may do `a` (what a SubjectAccessReview answers).
    pub fn allowed(&self, user: &str, a: &Attributes) -> bool {
        self.lock().authz.allowed(user, a)
    }

    /// A token TokenReview accepts.
    pub fn add_token(&self, token: &str, info: TokenInfo) -> &Self {
        self.lock().tokens.insert(token.to_string(), info);
        self
    }

    /// Stores an object as if it existed before, at the collection its apiVersion, kind
    /// and namespace name (fills uid and resourceVersion; no watch event).
    pub fn insert(&self, v: Value) {
        let mut st = self.lock();
        let (res, ns) = st.resource_of(&v);
        insert_locked(&mut st, &res, ns, v, None);
    }

    /// [`FakeApi::insert`] (the name the discovery tests used).
    pub fn insert_object(&self, v: Value) {
        self.insert(v)
    }

    /// Stores an object at `collection` (e.g.
    /// `/apis/meshbridge.io/v1alpha1/namespaces/ns/installs`), no watch event.
    pub fn insert_at(&self, collection: &str, v: Value) {
        let mut st = self.lock();
        let (res, ns) = res_of_collection(&st, collection, &v);
        insert_locked(&mut st, &res, ns, v, None);
    }

    /// The object `name` as read through `av` (`group/version` or `v1`) and `plural`.
    pub fn get(&self, av: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let st = self.lock();
        let (g, v) = split_api_version(av);
        let key = (
            g.clone(),
            plural.to_string(),
            ns.to_string(),
            name.to_string(),
        );
        let obj = st.objects.get(&key)?;
        let kind = st
            .resolve(&g, &v, plural)
            .filter(|r| !r.guessed)
            .map(|r| r.served.kind)
            .or_else(|| st.kind_of_stored(&key))
            .unwrap_or_default();
        Some(util::render(obj, av, &kind))
    }

    /// The object `name` of `collection`.
    pub fn get_at(&self, collection: &str, name: &str) -> Option<Value> {
        let (g, v, ns, plural) = parse_collection(collection)?;
        self.get(&api_version(&g, &v), &plural, &ns.unwrap_or_default(), name)
    }

    /// Names of the objects of `collection` (a namespace's, or all for a cluster-wide
    /// path), sorted.
    pub fn names(&self, collection: &str) -> Vec<String> {
        let Some((g, _, ns, plural)) = parse_collection(collection) else {
            return vec![];
        };
        self.lock()
            .objects
            .keys()
            .filter(|k| k.0 == g && k.1 == plural && ns.as_ref().is_none_or(|n| *n == k.2))
            .map(|k| k.3.clone())
            .collect()
    }

    /// Every stored object, as stored (the apiVersion of its last write).
    pub fn objects(&self) -> Vec<Value> {
        self.lock().objects.values().cloned().collect()
    }

    /// Changes a stored object in place (e.g. a Job's status, as the Job controller would):
    /// a new resourceVersion, no watch event.
    pub fn edit(&self, collection: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let Some((g, _, ns, plural)) = parse_collection(collection) else {
            return;
        };
        let key = (g, plural, ns.unwrap_or_default(), name.to_string());
        let mut st = self.lock();
        if let Some(mut v) = st.objects.get(&key).cloned() {
            f(&mut v);
            st.commit(&key, Some(v), "", true);
        }
    }

    /// Removes an object without a watch event (as if it was never there).
    pub fn remove_at(&self, collection: &str, name: &str) -> Option<Value> {
        let (g, _, ns, plural) = parse_collection(collection)?;
        let key = (g, plural, ns.unwrap_or_default(), name.to_string());
        self.lock().objects.remove(&key)
    }

    /// Applies a change to the store and sends it to every open watch of that resource:
    /// `ty` is ADDED, MODIFIED or DELETED.
    pub fn push_watch_event(&self, ty: &str, obj: Value) {
        let mut st = self.lock();
        let (res, ns) = st.resource_of(&obj);
        let name = meta_str(&obj, "name").expect("name").to_string();
        let key = (
            res.group.clone(),
            res.served.plural.clone(),
            ns.clone().unwrap_or_default(),
            name,
        );
        if ty == "DELETED" {
            st.commit(&key, None, ty, false);
        } else {
            insert_locked(&mut st, &res, ns, obj, Some(ty));
        }
    }

    /// Stores (or replaces) an object as a client would and tells the open watches
    /// (`ADDED` or `MODIFIED`).
    pub fn upsert(&self, v: Value) {
        let ty = if self
            .get_at(&collection_of(&v), meta_str(&v, "name").unwrap_or(""))
            .is_some()
        {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.push_watch_event(ty, v);
    }

    /// Sends a raw `{"type": ty, "object": obj}` to every open watch covering `collection`
    /// (the store is not changed).
    pub fn send_watch_event(&self, collection: &str, ty: &str, obj: &Value) {
        let Some((g, _, ns, plural)) = parse_collection(collection) else {
            return;
        };
        let mut st = self.lock();
        st.watchers.retain(|w| {
            if !w.covers(&g, &plural, ns.as_deref().unwrap_or("")) {
                return true;
            }
            w.send(ty, obj)
        });
    }

    /// Number of open watches whose path is `path`.
    pub fn watching(&self, path: &str) -> usize {
        self.lock()
            .watchers
            .iter()
            .filter(|w| w.path == path && !w.tx.is_closed())
            .count()
    }

    pub fn take_watch_log(&self) -> Vec<Req> {
        std::mem::take(&mut self.lock().watch_log)
    }

    /// Drains the request log.
    pub fn take_log(&self) -> Vec<Req> {
        std::mem::take(&mut self.lock().log)
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().counter
    }

    /// Compaction: every open watch gets an ERROR event `410 Expired` ("too old resource
    /// version") and is closed, and watches resuming from any resourceVersion up to now get
    /// the same: clients must relist.
    pub fn expire_watches(&self) {
        let mut st = self.lock();
        let now = st.counter;
        for w in std::mem::take(&mut st.watchers) {
            w.gone(now, now + 1);
        }
        st.compacted = now;
        st.history.clear();
    }

    /// Ends every open watch (as the server does at `timeoutSeconds`); clients resume
    /// from their last resourceVersion.
    pub fn close_watches(&self) {
        self.lock().watchers.clear();
    }

    /// Sends a BOOKMARK at the current resourceVersion to every watch that allowed them.
    pub fn send_bookmarks(&self) {
        let mut st = self.lock();
        let rv = st.counter;
        st.watchers.retain(|w| !w.bookmarks || w.bookmark(rv));
    }

    /// The garbage collector's pass: objects whose every ownerReference names a uid that
    /// no longer exists are deleted (finalizers respected); dangling references of objects
    /// that keep another owner are dropped. Returns the deleted objects' `plural/ns/name`.
    pub fn collect_garbage(&self) -> Vec<String> {
        let mut st = self.lock();
        let uids: std::collections::BTreeSet<String> = st
            .objects
            .values()
            .filter_map(|v| meta_str(v, "uid").map(str::to_string))
            .collect();
        let mut deleted = Vec::new();
        let keys: Vec<Key> = st.objects.keys().cloned().collect();
        for key in keys {
            let Some(v) = st.objects.get(&key).cloned() else {
                continue;
            };
            let Some(refs) = v
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
            else {
                continue;
            };
            if refs.is_empty() {
                continue;
            }
            let live: Vec<Value> = refs
                .iter()
                .filter(|r| r["uid"].as_str().is_some_and(|u| uids.contains(u)))
                .cloned()
                .collect();
            if live.len() == refs.len() {
                continue;
            }
            if live.is_empty() {
                deleted.push(format!("{}/{}/{}", key.1, key.2, key.3));
                http::delete_object(&mut st, &key, v);
            } else {
                let mut v = v;
                v["metadata"]["ownerReferences"] = Value::Array(live);
                st.commit(&key, Some(v), "", false);
            }
        }
        deleted
    }
}

fn res_of_collection(st: &State, collection: &str, v: &Value) -> (Res, Option<String>) {
    let (g, ver, ns, plural) =
        parse_collection(collection).unwrap_or_else(|| panic!("not a collection: {collection}"));
    let mut res = st.resolve(&g, &ver, &plural).unwrap_or_else(|| Res {
        group: g.clone(),
        version: ver.clone(),
        served: Served {
            kind: String::new(),
            plural: plural.clone(),
            namespaced: ns.is_some(),
            status: true,
        },
        guessed: true,
    });
    if res.guessed
        && let Some(k) = v["kind"].as_str()
    {
        res.served.kind = k.to_string();
    }
    (res, ns)
}

/// Stores `v` (uid and resourceVersion filled); `notify`: tell the watches (with that
/// event type for a change the watch selects before and after).
fn insert_locked(
    st: &mut State,
    res: &Res,
    ns: Option<String>,
    mut v: Value,
    notify: Option<&str>,
) {
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    let next = st.counter + 1;
    let key = (
        res.group.clone(),
        res.served.plural.clone(),
        ns.clone().unwrap_or_default(),
        meta_str(&v, "name").expect("metadata.name").to_string(),
    );
    let kind = v["kind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| res.served.kind.clone());
    if res.guessed && !kind.is_empty() {
        st.learn(res, &kind, ns.is_some());
    }
    let prev_uid = st
        .objects
        .get(&key)
        .and_then(|p| meta_str(p, "uid").map(str::to_string));
    let md = v["metadata"].as_object_mut().expect("object");
    if !md.contains_key("uid") {
        md.insert(
            "uid".into(),
            json!(prev_uid.unwrap_or_else(|| format!("uid-{next}"))),
        );
    }
    if let Some(n) = &ns {
        md.insert("namespace".into(), json!(n));
    }
    if v.get("apiVersion").is_none() {
        v["apiVersion"] = json!(res.api_version());
    }
    if v.get("kind").is_none() {
        v["kind"] = json!(kind);
    }
    st.commit(&key, Some(v), notify.unwrap_or(""), notify.is_none());
}

/// The `*.yaml` and `*.yml` files in `dir`, sorted (panics if it cannot be read).
fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}
