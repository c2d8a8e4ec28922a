//! The stream engine: one ADS stream's state and rules, whatever its encoding.
//!
//! Written once for both encodings ([`super::sotw`], [`super::delta`]), which only read
//! requests into this state ([`Wire::read`]) and say what a response carries
//! ([`Wire::diff`], [`Wire::encode`]):
//! - per type: the subscription (wildcard or names), the last nonce and version sent, the
//!   pending response, the rejected version, and whether the type must be resent in full
//!   (endpoints after a cluster push, route scopes and routes after a listener push);
//! - ACK and NACK: the events (a NACK message truncated to 2,000 bytes), what a NACK undoes;
//! - secrets of another identity are refused (`Denied`), not served;
//! - pushes in make-before-break order ([`TYPES`]): listeners and routes wait until clusters
//!   and endpoints are acknowledged and the endpoints of every cluster requested, routes
//!   until listeners are acknowledged;
//! - no answer for a named type when nothing it subscribed to is in the snapshot;
//! - the loop: first request and node binding, snapshot changes, disconnection.

use super::auth::{authorize, first_node};
use super::{Event, NodeSnapshot, Resource, SnapshotSource, version_of, wildcard_type};
use crate::proto::{CLUSTER, ENDPOINT, LISTENER, ROUTE, SCOPED_ROUTE, SECRET, TYPES};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// Longest NACK message kept (events, status).
const NACK_MESSAGE_MAX: usize = 2000;

/// The types resent in full after a push of `t` (re-created clusters warm until they get
/// their endpoints again; re-created listeners until they get their route scopes and routes).
fn followers(t: &str) -> &'static [&'static str] {
    match t {
        CLUSTER => &[ENDPOINT],
        LISTENER => &[SCOPED_ROUTE, ROUTE],
        _ => &[],
    }
}

/// What a stream asked for of one type.
#[derive(Default)]
pub(super) struct Subscription {
    pub subscribed: bool,
    /// Every resource of the type (beside `names`).
    pub wildcard: bool,
    pub names: Arc<BTreeSet<String>>,
}

impl Subscription {
    /// What [`Event::Subscribed`] reports (`None`: wildcard).
    fn announced(&self) -> Option<Arc<BTreeSet<String>>> {
        (!self.wildcard).then(|| self.names.clone())
    }
}

/// One type's state on one stream. `H`: what the encoding tracks of what the proxy holds.
#[derive(Default)]
pub(super) struct TypeState<H> {
    pub sub: Subscription,
    /// Nonce of the last response ("": none yet).
    pub nonce: String,
    /// The last response is not acknowledged (nor rejected) yet.
    pub pending: bool,
    /// Version of the last response.
    pub sent: Option<String>,
    /// Version of the last rejected response.
    pub nacked: Option<String>,
    /// Send everything in scope again (endpoints after clusters, routes after listeners).
    pub resend: bool,
    /// Version of what is in scope now (cleared when the snapshot or the scope changes).
    cur: Option<String>,
    pub held: H,
}

impl<H> TypeState<H> {
    /// The last response was rejected.
    fn rejected(&self) -> bool {
        self.nacked.is_some() && self.nacked == self.sent
    }
}

/// What a request leads to.
pub(super) enum Next {
    /// Nothing (a stale request).
    Nothing,
    /// Send whatever changed, in order.
    Push,
    /// Send this type whatever the proxy has, then push.
    Resend(String),
}

/// What one response carries.
pub(super) struct Payload {
    pub resources: Vec<Arc<Resource>>,
    /// Names the proxy must drop (delta only).
    pub removed: Vec<String>,
}

/// An encoding of ADS (state of the world or delta): requests in, responses out.
pub(super) trait Wire: Sized + Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    /// What the encoding tracks, per type, of what the proxy holds.
    type Held: Default + Send + 'static;
    const DELTA: bool;

    fn node_id(req: &Self::Request) -> Option<&str>;
    fn type_url(req: &Self::Request) -> &str;
    /// Applies a request of a served type to the stream's state (through the engine's
    /// [`Stream::subscribe`], [`Stream::acknowledged`], [`Stream::rejected`]).
    fn read<S: SnapshotSource>(s: &mut Stream<S, Self>, req: Self::Request) -> Next;
    /// What to send for type `t` whose in-scope resources are `selected` (sorted by name) at
    /// `version`; `None`: nothing. `forced`: even what the proxy already has.
    fn diff(
        t: &str,
        st: &TypeState<Self::Held>,
        selected: Vec<Arc<Resource>>,
        version: &str,
        forced: bool,
    ) -> Option<Payload>;
    /// Notes what the proxy holds once `p` is sent (`resend`: in full).
    fn record(t: &str, held: &mut Self::Held, p: &Payload, resend: bool);
    fn encode(type_url: &str, version: &str, nonce: &str, p: Payload) -> Self::Response;
}

/// One ADS stream.
pub(super) struct Stream<S: SnapshotSource, W: Wire> {
    source: Arc<S>,
    node: String,
    snap: Arc<NodeSnapshot>,
    types: HashMap<String, TypeState<W::Held>>,
    nonce: u64,
    tx: mpsc::Sender<Result<W::Response, Status>>,
}

/// Serves one stream until either side ends it.
pub(super) async fn run<S: SnapshotSource, W: Wire>(
    source: Arc<S>,
    peer: Option<String>,
    require: bool,
    mut inbound: Streaming<W::Request>,
    tx: mpsc::Sender<Result<W::Response, Status>>,
) {
    let (node, req) = match first_node(&mut inbound, W::node_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    if let Err(e) = authorize(&*source, &node, &peer, require) {
        let _ = tx.send(Err(e)).await;
        return;
    }
    let mut changes = source.changes();
    let snap = source.snapshot(&node).unwrap_or_default();
    source.event(Event::Connected {
        node: node.clone(),
        identity: peer,
        delta: W::DELTA,
    });
    let mut s = Stream::<S, W> {
        source: source.clone(),
        node: node.clone(),
        snap,
        types: HashMap::new(),
        nonce: 0,
        tx,
    };
    let mut ok = s.request(req).await;
    while ok {
        tokio::select! {
            m = inbound.message() => match m {
                Ok(Some(req)) => ok = s.request(req).await,
                _ => break,
            },
            c = changes.changed() => {
                if c.is_err() { break; }
                match source.snapshot(&node) {
                    Some(snap) => {
                        if !Arc::ptr_eq(&snap, &s.snap) {
                            s.snapshot_changed(snap);
                            ok = s.push().await;
                        }
                    }
                    None => break,
                }
            }
        }
    }
    source.event(Event::Disconnected { node });
}

// === impl Stream ===

impl<S: SnapshotSource, W: Wire> Stream<S, W> {
    /// One request; `false`: the stream is gone.
    async fn request(&mut self, req: W::Request) -> bool {
        if !TYPES.contains(&W::type_url(&req)) {
            return true;
        }
        match W::read(self, req) {
            Next::Nothing => true,
            Next::Push => self.push().await,
            Next::Resend(t) => self.send(&t, true).await && self.push().await,
        }
    }

    fn snapshot_changed(&mut self, snap: Arc<NodeSnapshot>) {
        self.snap = snap;
        for st in self.types.values_mut() {
            st.cur = None;
        }
    }

    /// The state of type `t` (created unsubscribed).
    pub(super) fn state(&mut self, t: &str) -> &mut TypeState<W::Held> {
        self.types.entry(t.to_string()).or_default()
    }

    /// Reports every name asked for of the secrets that this node is not served (another
    /// identity's): they are refused, not served.
    pub(super) fn check_secrets<'a>(&self, t: &str, names: impl IntoIterator<Item = &'a String>) {
        if t != SECRET {
            return;
        }
        let have = self.snap.get(SECRET);
        for n in names {
            if have.is_none_or(|h| !h.contains_key(n)) {
                self.source.event(Event::Denied {
                    node: self.node.clone(),
                    type_url: t.to_string(),
                    name: n.clone(),
                });
            }
        }
    }

    /// Updates the subscription to `t` with `change` (which says whether the scope — wildcard
    /// or names — changed) and reports it when new or changed. Returns (new, changed).
    pub(super) fn subscribe(
        &mut self,
        t: &str,
        change: impl FnOnce(&mut TypeState<W::Held>) -> bool,
    ) -> (bool, bool) {
        let st = self.types.entry(t.to_string()).or_default();
        let first = !st.sub.subscribed;
        let changed = change(st);
        st.sub.subscribed = true;
        if first || changed {
            st.cur = None;
            let names = st.sub.announced();
            self.source.event(Event::Subscribed {
                node: self.node.clone(),
                type_url: t.to_string(),
                names,
            });
        }
        (first, changed)
    }

    /// The proxy acknowledged the response at `version` (an ACK event only if that is the
    /// last one sent).
    pub(super) fn acknowledged(&mut self, t: &str, version: &str) {
        let st = self.state(t);
        st.pending = false;
        if st.sent.as_deref() == Some(version) {
            self.source.event(Event::Ack {
                node: self.node.clone(),
                type_url: t.to_string(),
                version: version.to_string(),
            });
        }
    }

    /// The proxy rejected the last response (it keeps `version`, its last good one): that
    /// content is not resent, and nothing is resent after it (rejected clusters or listeners
    /// were not re-created).
    pub(super) fn rejected(&mut self, t: &str, version: String, message: &str) {
        let st = self.state(t);
        st.pending = false;
        st.nacked = st.sent.clone();
        for f in followers(t) {
            if let Some(f) = self.types.get_mut(*f) {
                f.resend = false;
            }
        }
        self.source.event(Event::Nack {
            node: self.node.clone(),
            type_url: t.to_string(),
            version,
            message: truncate(message, NACK_MESSAGE_MAX),
        });
    }

    /// What the snapshot has of `t` in the subscription's scope, sorted by name.
    fn selected(&self, t: &str) -> Vec<Arc<Resource>> {
        let Some(all) = self.snap.get(t) else {
            return vec![];
        };
        match self.types.get(t) {
            Some(st) if !st.sub.wildcard => st
                .sub
                .names
                .iter()
                .filter_map(|n| all.get(n).cloned())
                .collect(),
            _ => all.values().cloned().collect(),
        }
    }

    /// Version of what is in scope of `t` now (cached until the snapshot or scope changes).
    fn current(&mut self, t: &str) -> String {
        if let Some(v) = self.types.get(t).and_then(|s| s.cur.clone()) {
            return v;
        }
        let v = version_of(self.selected(t).iter());
        if let Some(st) = self.types.get_mut(t) {
            st.cur = Some(v.clone());
        }
        v
    }

    fn pending(&self, t: &str) -> bool {
        self.types.get(t).is_some_and(|s| s.pending)
    }

    /// Nothing of a named type to send: Envoy unsubscribed (an empty subscription: its last
    /// cluster with endpoints, say, is gone), or it still watches only resources the
    /// snapshot dropped (clusters a CDS update in flight removes; every cluster served has
    /// its endpoints). Envoy acknowledges no answer for a type it no longer watches, and
    /// needs none for resources on their way out, so none is sent: a pending one would hold
    /// listeners and routes back for good.
    pub(super) fn wants_nothing(&self, t: &str) -> bool {
        !wildcard_type(t) && self.selected(t).is_empty()
    }

    /// See [`endpoints_unrequested`].
    fn endpoints_unrequested(&self) -> bool {
        let clusters = self.types.get(CLUSTER).map(TypeState::rejected);
        let eds = match self.types.get(ENDPOINT) {
            Some(e) if e.sub.subscribed => Some((!e.sub.wildcard).then_some(&*e.sub.names)),
            _ => None,
        };
        endpoints_unrequested(self.snap.get(ENDPOINT), clusters, eds)
    }

    /// Make before break: listeners, route scopes and routes wait for clusters and endpoints
    /// (acknowledged, and the endpoints of every cluster requested), route scopes and routes
    /// for listeners. Routes do not wait for route scopes: Envoy acknowledges new scopes only
    /// once it has their route configurations.
    fn held_back(&self, t: &str) -> bool {
        ((t == LISTENER || t == SCOPED_ROUTE || t == ROUTE)
            && (self.pending(CLUSTER) || self.pending(ENDPOINT) || self.endpoints_unrequested()))
            || ((t == SCOPED_ROUTE || t == ROUTE) && self.pending(LISTENER))
    }

    /// Sends every subscribed type whose content changed, in make-before-break order.
    async fn push(&mut self) -> bool {
        for t in TYPES {
            let Some(st) = self.types.get(t) else {
                continue;
            };
            if !st.sub.subscribed || st.pending || self.wants_nothing(t) || self.held_back(t) {
                continue;
            }
            if !self.send(t, false).await {
                return false;
            }
        }
        true
    }

    /// Sends what [`Wire::diff`] says for `t`, if anything; `false`: the stream is gone.
    async fn send(&mut self, t: &str, forced: bool) -> bool {
        let selected = self.selected(t);
        let version = self.current(t);
        let st = self.state(t);
        let Some(p) = W::diff(t, st, selected, &version, forced) else {
            return true;
        };
        W::record(t, &mut st.held, &p, st.resend);
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let st = self.state(t);
        st.nonce = nonce.clone();
        st.sent = Some(version.clone());
        st.pending = true;
        st.resend = false;
        let count = p.resources.len();
        if count > 0 {
            for f in followers(t) {
                if let Some(f) = self.types.get_mut(*f) {
                    f.resend = true;
                }
            }
        }
        let ok = self
            .tx
            .send(Ok(W::encode(t, &version, &nonce, p)))
            .await
            .is_ok();
        self.source.event(Event::Sent {
            node: self.node.clone(),
            type_url: t.into(),
            version,
            count,
        });
        ok
    }
}

/// Clusters are served but Envoy has not asked yet for the endpoints of all of them (it does
/// right after the CDS ACK): listeners and routes wait, so that no route points at a cluster
/// still warming. `endpoints`: the snapshot's endpoints; `clusters`: `None` when the stream
/// has no cluster state yet, else whether the last cluster update was rejected (then the
/// endpoints will never be asked for); `eds`: the endpoint subscription (`None`: not
/// subscribed; `Some(None)`: wildcard).
fn endpoints_unrequested(
    endpoints: Option<&BTreeMap<String, Arc<Resource>>>,
    clusters: Option<bool>,
    eds: Option<Option<&BTreeSet<String>>>,
) -> bool {
    let Some(eps) = endpoints.filter(|m| !m.is_empty()) else {
        return false;
    };
    match clusters {
        None | Some(true) => false,
        Some(false) => match eds {
            None => true,
            Some(None) => false,
            Some(Some(names)) => !eps.keys().all(|k| names.contains(k)),
        },
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
