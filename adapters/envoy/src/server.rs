//! The ADS server: state of the world (`StreamAggregatedResources`) and delta
//! (`DeltaAggregatedResources`), over TLS with client certificates. It knows nothing of SMI:
//! it serves per-node snapshots of encoded resources from a [`SnapshotSource`].
//!
//! Rules (see `shared/reference/xds.md`): versions are content hashes (stable across
//! restarts, so the first request on a new stream is always answered by content); per stream
//! and per type it tracks the last nonce and version sent and acknowledged; a stale nonce is
//! ignored; a NACK is reported (log, counter, status) and the same config is not resent — the
//! proxy keeps its last good config; pushes go secrets → clusters → endpoints, and listeners
//! and routes only once clusters and endpoints are acknowledged and the endpoints of every
//! cluster requested (make before break); endpoints are resent after every cluster push and
//! routes after every listener push; nothing is sent for a named type when nothing the proxy
//! subscribed to is in its snapshot (Envoy unsubscribing acknowledges no answer).
//! A node must present a client certificate whose SPIFFE URI is the node's identity, so a
//! proxy can never obtain another identity's secret.

use crate::proto::{CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPES, fnv};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    Resource as DeltaResource,
};
use envoy_types::pb::google::protobuf::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// One encoded resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    /// Content hash (hex).
    pub version: String,
    pub any: Any,
}

impl Resource {
    pub fn new(name: impl Into<String>, any: Any) -> Self {
        let version = format!("{:016x}", fnv(&any.value));
        Resource {
            name: name.into(),
            version,
            any,
        }
    }
}

/// Everything one node is served, per type URL then resource name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeSnapshot {
    pub types: BTreeMap<String, BTreeMap<String, Arc<Resource>>>,
}

/// Version of a set of resources (hash of names and versions).
fn version_of<'a>(items: impl Iterator<Item = &'a Arc<Resource>>) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for r in items {
        for b in r.name.bytes().chain([0u8]).chain(r.version.bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

impl NodeSnapshot {
    pub fn get(&self, type_url: &str) -> Option<&BTreeMap<String, Arc<Resource>>> {
        self.types.get(type_url)
    }

    /// Version of every resource of a type (what a proxy subscribed to all of them ACKs).
    pub fn version(&self, type_url: &str) -> String {
        version_of(self.get(type_url).into_iter().flat_map(|m| m.values()))
    }
}

/// What happened on a stream (for logs, metrics and status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Connected {
        node: String,
        identity: Option<String>,
        delta: bool,
    },
    Rejected {
        node: String,
        reason: String,
    },
    Sent {
        node: String,
        type_url: String,
        version: String,
        count: usize,
    },
    Ack {
        node: String,
        type_url: String,
        version: String,
    },
    Nack {
        node: String,
        type_url: String,
        version: String,
        message: String,
    },
    /// A node's subscription to a type changed (`None`: every resource of the type). Shared
    /// with the stream's own state (a proxy subscribes to as many endpoints as it has
    /// clusters).
    Subscribed {
        node: String,
        type_url: String,
        names: Option<Arc<BTreeSet<String>>>,
    },
    /// A node asked for a resource it may not have (another identity's secret).
    Denied {
        node: String,
        type_url: String,
        name: String,
    },
    Disconnected {
        node: String,
    },
}

/// Where the server gets snapshots from.
pub trait SnapshotSource: Send + Sync + 'static {
    /// The node's current snapshot (`None`: unknown node).
    fn snapshot(&self, node: &str) -> Option<Arc<NodeSnapshot>>;
    /// The SPIFFE identity a node must prove with its client certificate.
    fn identity(&self, node: &str) -> Option<String>;
    /// Bumped on every snapshot change.
    fn changes(&self) -> watch::Receiver<u64>;
    /// Reports a stream event.
    fn event(&self, ev: Event);
}

/// Per-node xDS status, as seen by the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub connected: u32,
    /// Last acknowledged version per type.
    pub acked: BTreeMap<String, String>,
    pub nacks: u64,
    /// Last NACK message (truncated), per type.
    pub last_nack: BTreeMap<String, String>,
    pub denied: u64,
    /// What the node's current stream subscribed to, per type (`None`: every resource).
    pub subscribed: BTreeMap<String, Option<Arc<BTreeSet<String>>>>,
}

/// Counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub pushes: AtomicU64,
    pub acks: AtomicU64,
    pub nacks: AtomicU64,
    pub rejected: AtomicU64,
    pub denied: AtomicU64,
}

/// An in-memory [`SnapshotSource`]: set snapshots per node, read status.
pub struct Cache {
    nodes: RwLock<HashMap<String, (String, Arc<NodeSnapshot>)>>,
    tx: watch::Sender<u64>,
    status: Mutex<BTreeMap<String, NodeStatus>>,
    pub metrics: Metrics,
    status_tx: watch::Sender<u64>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            nodes: RwLock::new(HashMap::new()),
            tx: watch::channel(0).0,
            status: Mutex::new(BTreeMap::new()),
            metrics: Metrics::default(),
            status_tx: watch::channel(0).0,
        }
    }
}

impl Cache {
    pub fn new() -> Arc<Cache> {
        Arc::new(Cache::default())
    }

    /// Replaces every node's snapshot at once (nodes not listed are removed), then notifies.
    pub fn set_all(&self, nodes: HashMap<String, (String, Arc<NodeSnapshot>)>) {
        if let Ok(mut n) = self.nodes.write() {
            *n = nodes;
        }
        self.tx.send_modify(|v| *v += 1);
    }

    /// Sets one node's snapshot and identity, then notifies.
    pub fn set(&self, node: &str, identity: &str, snap: Arc<NodeSnapshot>) {
        if let Ok(mut n) = self.nodes.write() {
            n.insert(node.to_string(), (identity.to_string(), snap));
        }
        self.tx.send_modify(|v| *v += 1);
    }

    pub fn status(&self) -> BTreeMap<String, NodeStatus> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Bumped on every ACK/NACK.
    pub fn status_changes(&self) -> watch::Receiver<u64> {
        self.status_tx.subscribe()
    }

    /// Whether `node` has acknowledged the current version of everything it needs: every
    /// cluster and listener (even none: removals must land too), and of the named types
    /// (endpoints, routes, secrets) what it subscribed to — a proxy that references no
    /// endpoints (no EDS cluster, which per-proxy trimming makes common) or no secret never
    /// asks for them and has nothing to wait for.
    pub fn in_sync(&self, node: &str) -> bool {
        let Some(snap) = self.snapshot(node) else {
            return false;
        };
        let Ok(st) = self.status.lock() else {
            return false;
        };
        let Some(s) = st.get(node) else { return false };
        if s.connected == 0 {
            return false;
        }
        snap.types.iter().all(|(t, all)| {
            let acked = s.acked.get(t);
            if wildcard_type(t) {
                return acked == Some(&snap.version(t));
            }
            let wanted: Vec<&Arc<Resource>> = match s.subscribed.get(t) {
                None => vec![],
                Some(None) => all.values().collect(),
                Some(Some(names)) => names.iter().filter_map(|n| all.get(n)).collect(),
            };
            wanted.is_empty() || acked == Some(&version_of(wanted.into_iter()))
        })
    }
}

impl SnapshotSource for Cache {
    fn snapshot(&self, node: &str) -> Option<Arc<NodeSnapshot>> {
        self.nodes.read().ok()?.get(node).map(|(_, s)| s.clone())
    }

    fn identity(&self, node: &str) -> Option<String> {
        self.nodes.read().ok()?.get(node).map(|(i, _)| i.clone())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    fn event(&self, ev: Event) {
        let Ok(mut st) = self.status.lock() else {
            return;
        };
        match ev {
            Event::Connected {
                node,
                identity,
                delta,
            } => {
                tracing::info!(%node, ?identity, delta, "xds: proxy connected");
                let s = st.entry(node).or_default();
                s.connected += 1;
                // A new stream subscribes afresh.
                s.subscribed.clear();
            }
            Event::Disconnected { node } => {
                tracing::info!(%node, "xds: proxy disconnected");
                let s = st.entry(node).or_default();
                s.connected = s.connected.saturating_sub(1);
            }
            Event::Rejected { node, reason } => {
                tracing::warn!(%node, %reason, "xds: stream rejected");
                self.metrics.rejected.fetch_add(1, Ordering::Relaxed);
            }
            Event::Sent { .. } => {
                self.metrics.pushes.fetch_add(1, Ordering::Relaxed);
            }
            Event::Ack {
                node,
                type_url,
                version,
            } => {
                self.metrics.acks.fetch_add(1, Ordering::Relaxed);
                st.entry(node).or_default().acked.insert(type_url, version);
            }
            Event::Nack {
                node,
                type_url,
                version,
                message,
            } => {
                tracing::warn!(%node, %type_url, %version, %message, "xds: proxy rejected config (NACK); it keeps its last good config");
                self.metrics.nacks.fetch_add(1, Ordering::Relaxed);
                let s = st.entry(node).or_default();
                s.nacks += 1;
                s.last_nack.insert(type_url, message);
            }
            Event::Subscribed {
                node,
                type_url,
                names,
            } => {
                st.entry(node)
                    .or_default()
                    .subscribed
                    .insert(type_url, names);
            }
            Event::Denied {
                node,
                type_url,
                name,
            } => {
                tracing::warn!(%node, %type_url, %name, "xds: resource denied to proxy");
                self.metrics.denied.fetch_add(1, Ordering::Relaxed);
                st.entry(node).or_default().denied += 1;
            }
        }
        drop(st);
        self.status_tx.send_modify(|v| *v += 1);
    }
}

/// The ADS service.
pub struct Ads<S: SnapshotSource> {
    source: Arc<S>,
    /// Require a client certificate naming the node's identity (off only in tests of the
    /// protocol itself).
    require_identity: bool,
}

impl<S: SnapshotSource> Ads<S> {
    pub fn new(source: Arc<S>) -> Self {
        Ads {
            source,
            require_identity: true,
        }
    }

    /// Without TLS identity binding (plaintext tests and benchmarks only).
    pub fn insecure(source: Arc<S>) -> Self {
        Ads {
            source,
            require_identity: false,
        }
    }

    /// The tonic service, with message limits raised (NACKs carry whole resources).
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(usize::MAX)
    }
}

/// URI SANs of the peer's client certificate.
fn peer_identity<T>(req: &Request<T>) -> Option<String> {
    let certs = req.peer_certs()?;
    let leaf = certs.first()?;
    crate::ca::uri_sans(leaf.as_ref())
        .into_iter()
        .find(|u| u.starts_with("spiffe://"))
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

/// Checks the node against the peer certificate. Err = status to close the stream with.
fn authorize<S: SnapshotSource>(
    source: &S,
    node: &str,
    peer: &Option<String>,
    require: bool,
) -> Result<(), Status> {
    let Some(expected) = source.identity(node) else {
        let reason = format!("unknown node `{node}`");
        source.event(Event::Rejected {
            node: node.into(),
            reason: reason.clone(),
        });
        return Err(Status::not_found(reason));
    };
    if require && peer.as_deref() != Some(expected.as_str()) {
        let reason = format!(
            "node `{node}` runs as {expected} but the client certificate says {}",
            peer.as_deref().unwrap_or("nothing")
        );
        source.event(Event::Rejected {
            node: node.into(),
            reason: reason.clone(),
        });
        return Err(Status::permission_denied(reason));
    }
    Ok(())
}

fn wildcard_type(t: &str) -> bool {
    t == LISTENER || t == CLUSTER
}

// ---------- state of the world ----------

#[derive(Default)]
struct SotwType {
    subscribed: bool,
    /// None = wildcard.
    names: Option<Arc<BTreeSet<String>>>,
    nonce: String,
    sent: Option<String>,
    pending: bool,
    nacked: Option<String>,
    /// Resend on the next request even if it looks like an ACK (EDS after CDS, RDS after LDS).
    force: bool,
    /// Version of what would be sent now (cleared when the snapshot or the names change).
    cur: Option<String>,
}

struct Sotw<S: SnapshotSource> {
    source: Arc<S>,
    node: String,
    snap: Arc<NodeSnapshot>,
    types: HashMap<String, SotwType>,
    nonce: u64,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
}

impl<S: SnapshotSource> Sotw<S> {
    fn selected(&self, t: &str) -> Vec<Arc<Resource>> {
        let Some(all) = self.snap.get(t) else {
            return vec![];
        };
        match self.types.get(t).and_then(|s| s.names.as_ref()) {
            None => all.values().cloned().collect(),
            Some(names) => names.iter().filter_map(|n| all.get(n).cloned()).collect(),
        }
    }

    /// Version of what would be sent now for `t` (cached until the snapshot or names change).
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

    fn snapshot_changed(&mut self, snap: Arc<NodeSnapshot>) {
        self.snap = snap;
        for st in self.types.values_mut() {
            st.cur = None;
        }
    }

    async fn send(&mut self, t: &str) -> bool {
        let res = self.selected(t);
        let version = self.current(t);
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let resp = DiscoveryResponse {
            version_info: version.clone(),
            resources: res.iter().map(|r| r.any.clone()).collect(),
            type_url: t.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        let ok = self.tx.send(Ok(resp)).await.is_ok();
        self.source.event(Event::Sent {
            node: self.node.clone(),
            type_url: t.into(),
            version: version.clone(),
            count: res.len(),
        });
        let st = self.types.entry(t.to_string()).or_default();
        st.nonce = nonce;
        st.sent = Some(version);
        st.pending = true;
        st.force = false;
        if t == CLUSTER
            && let Some(e) = self.types.get_mut(ENDPOINT)
        {
            e.force = true;
        }
        if t == LISTENER
            && let Some(r) = self.types.get_mut(ROUTE)
        {
            r.force = true;
        }
        ok
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
    fn wants_nothing(&self, t: &str) -> bool {
        !wildcard_type(t) && self.selected(t).is_empty()
    }

    /// See [`endpoints_unrequested`].
    fn endpoints_unrequested(&self) -> bool {
        let clusters = self
            .types
            .get(CLUSTER)
            .map(|c| c.nacked.is_some() && c.nacked == c.sent);
        let eds = match self.types.get(ENDPOINT) {
            Some(e) if e.subscribed => Some(e.names.as_deref()),
            _ => None,
        };
        endpoints_unrequested(self.snap.get(ENDPOINT), clusters, eds)
    }

    /// Sends every subscribed type whose content changed, in make-before-break order.
    async fn push(&mut self) -> bool {
        for t in TYPES {
            let Some(st) = self.types.get(t) else {
                continue;
            };
            if !st.subscribed || st.pending || self.wants_nothing(t) {
                continue;
            }
            if (t == LISTENER || t == ROUTE)
                && (self.pending(CLUSTER) || self.pending(ENDPOINT) || self.endpoints_unrequested())
            {
                continue;
            }
            if t == ROUTE && self.pending(LISTENER) {
                continue;
            }
            let cur = self.current(t);
            let st = &self.types[t];
            if st.sent.as_ref() == Some(&cur) || st.nacked.as_ref() == Some(&cur) {
                continue;
            }
            if !self.send(t).await {
                return false;
            }
        }
        true
    }

    async fn request(&mut self, req: DiscoveryRequest) -> bool {
        let t = req.type_url.clone();
        if !TYPES.contains(&t.as_str()) {
            return true;
        }
        let names: Option<BTreeSet<String>> = if wildcard_type(&t) && req.resource_names.is_empty()
        {
            None
        } else {
            Some(req.resource_names.iter().cloned().collect())
        };
        if t == SECRET
            && let Some(ns) = &names
        {
            let have = self.snap.get(SECRET);
            for n in ns {
                if have.is_none_or(|h| !h.contains_key(n)) {
                    self.source.event(Event::Denied {
                        node: self.node.clone(),
                        type_url: t.clone(),
                        name: n.clone(),
                    });
                }
            }
        }
        let st = self.types.entry(t.clone()).or_default();
        if !req.response_nonce.is_empty() && req.response_nonce != st.nonce {
            return true; // stale
        }
        if let Some(err) = &req.error_detail {
            st.pending = false;
            st.nacked = st.sent.clone();
            // Rejected clusters (listeners) were not re-created: nothing to resend after them.
            let follower = match t.as_str() {
                CLUSTER => Some(ENDPOINT),
                LISTENER => Some(ROUTE),
                _ => None,
            };
            if let Some(f) = follower.and_then(|f| self.types.get_mut(f)) {
                f.force = false;
            }
            let (node, version) = (self.node.clone(), req.version_info.clone());
            self.source.event(Event::Nack {
                node,
                type_url: t,
                version,
                message: truncate(&err.message, 2000),
            });
            return self.push().await;
        }
        let differ = st.names.as_deref() != names.as_ref();
        let names_changed = st.subscribed && differ;
        let is_ack = !req.response_nonce.is_empty() && !names_changed;
        let announce = !st.subscribed || names_changed;
        st.subscribed = true;
        if differ {
            st.cur = None;
            st.names = names.map(Arc::new);
        }
        if announce {
            let names = st.names.clone();
            self.source.event(Event::Subscribed {
                node: self.node.clone(),
                type_url: t.clone(),
                names,
            });
        }
        let Some(st) = self.types.get_mut(&t) else {
            return true;
        };
        if is_ack {
            st.pending = false;
            if st.sent.as_deref() == Some(req.version_info.as_str()) {
                let (node, version) = (self.node.clone(), req.version_info.clone());
                self.source.event(Event::Ack {
                    node,
                    type_url: t.clone(),
                    version,
                });
            }
            if st.force && !self.wants_nothing(&t) {
                return self.send(&t).await && self.push().await;
            }
            return self.push().await;
        }
        // A new subscription (or changed names): always answer (in make-before-break order),
        // unless what we would send is exactly what was rejected.
        st.pending = false;
        st.sent = None;
        self.push().await
    }
}

async fn first_node<T>(
    inbound: &mut Streaming<T>,
    node_of: impl Fn(&T) -> Option<String>,
) -> Result<Option<(String, T)>, Status> {
    match inbound.message().await? {
        None => Ok(None),
        Some(req) => match node_of(&req) {
            Some(n) if !n.is_empty() => Ok(Some((n, req))),
            _ => Err(Status::invalid_argument(
                "the first request must carry node.id",
            )),
        },
    }
}

async fn sotw_loop<S: SnapshotSource>(
    source: Arc<S>,
    peer: Option<String>,
    require: bool,
    mut inbound: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let first = match first_node(&mut inbound, |r: &DiscoveryRequest| {
        r.node.as_ref().map(|n| n.id.clone())
    })
    .await
    {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    let (node, req) = first;
    if let Err(e) = authorize(&*source, &node, &peer, require) {
        let _ = tx.send(Err(e)).await;
        return;
    }
    let mut changes = source.changes();
    let snap = source.snapshot(&node).unwrap_or_default();
    source.event(Event::Connected {
        node: node.clone(),
        identity: peer,
        delta: false,
    });
    let mut s = Sotw {
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

// ---------- delta ----------

/// Clusters are served but Envoy has not asked yet for the endpoints of all of them (it does
/// right after the CDS ACK): listeners and routes wait, so that no route points at a cluster
/// still warming. `endpoints`: the snapshot's endpoints; `clusters`: `None` when the stream
/// has no cluster state yet, else whether the last cluster update was rejected (then the
/// endpoints will never be asked for); `eds`: the endpoint subscription (`None`: not
/// subscribed; `Some(None)`: wildcard). The same rule for SotW and delta streams.
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

#[derive(Default)]
struct DeltaType {
    subscribed: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// name → version the proxy has (or was sent).
    sent: BTreeMap<String, String>,
    nonce: String,
    pending: bool,
    /// system_version_info of the pending response.
    pending_version: String,
    answered: bool,
    /// The last response was rejected.
    nacked: bool,
}

struct Delta<S: SnapshotSource> {
    source: Arc<S>,
    node: String,
    snap: Arc<NodeSnapshot>,
    types: HashMap<String, DeltaType>,
    nonce: u64,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
}

impl<S: SnapshotSource> Delta<S> {
    fn pending(&self, t: &str) -> bool {
        self.types.get(t).is_some_and(|s| s.pending)
    }

    /// See [`endpoints_unrequested`].
    fn endpoints_unrequested(&self) -> bool {
        let clusters = self.types.get(CLUSTER).map(|c| c.nacked);
        let eds = match self.types.get(ENDPOINT) {
            Some(e) if e.subscribed => Some((!e.wildcard).then_some(&e.names)),
            _ => None,
        };
        endpoints_unrequested(self.snap.get(ENDPOINT), clusters, eds)
    }

    async fn send_diff(&mut self, t: &str, always: bool) -> bool {
        let empty = BTreeMap::new();
        let all = self.snap.get(t).unwrap_or(&empty);
        let Some(st) = self.types.get(t) else {
            return true;
        };
        let in_scope = |n: &String| st.wildcard || st.names.contains(n);
        let mut resources = Vec::new();
        for (n, r) in all.iter().filter(|(n, _)| in_scope(n)) {
            if st.sent.get(n) != Some(&r.version) {
                resources.push(r.clone());
            }
        }
        let removed: Vec<String> = st
            .sent
            .keys()
            .filter(|n| !all.contains_key(*n) || !in_scope(n))
            .cloned()
            .collect();
        if resources.is_empty() && removed.is_empty() && (!always || st.answered) {
            return true;
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        // The version of what is in scope (what `Cache::in_sync` expects acknowledged).
        let version = version_of(all.iter().filter(|(n, _)| in_scope(n)).map(|(_, r)| r));
        let resp = DeltaDiscoveryResponse {
            system_version_info: version.clone(),
            resources: resources
                .iter()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.any.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: t.to_string(),
            removed_resources: removed.clone(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        let ok = self.tx.send(Ok(resp)).await.is_ok();
        self.source.event(Event::Sent {
            node: self.node.clone(),
            type_url: t.into(),
            version: version.clone(),
            count: resources.len(),
        });
        if let Some(st) = self.types.get_mut(t) {
            for r in &resources {
                st.sent.insert(r.name.clone(), r.version.clone());
            }
            for n in &removed {
                st.sent.remove(n);
            }
            st.nonce = nonce;
            st.pending = true;
            st.pending_version = version;
            st.answered = true;
        }
        if t == CLUSTER && !resources.is_empty() {
            // Re-created clusters warm until they get endpoints again: resend all of them.
            if let Some(e) = self.types.get_mut(ENDPOINT) {
                e.sent.clear();
            }
        }
        if t == LISTENER
            && !resources.is_empty()
            && let Some(r) = self.types.get_mut(ROUTE)
        {
            r.sent.clear();
        }
        ok
    }

    async fn push(&mut self) -> bool {
        for t in TYPES {
            let Some(st) = self.types.get(t) else {
                continue;
            };
            if !st.subscribed || st.pending {
                continue;
            }
            if (t == LISTENER || t == ROUTE)
                && (self.pending(CLUSTER) || self.pending(ENDPOINT) || self.endpoints_unrequested())
            {
                continue;
            }
            if t == ROUTE && self.pending(LISTENER) {
                continue;
            }
            if !self.send_diff(t, true).await {
                return false;
            }
        }
        true
    }

    async fn request(&mut self, req: DeltaDiscoveryRequest) -> bool {
        let t = req.type_url.clone();
        if !TYPES.contains(&t.as_str()) {
            return true;
        }
        if t == SECRET {
            let have = self.snap.get(SECRET);
            for n in &req.resource_names_subscribe {
                if have.is_none_or(|h| !h.contains_key(n)) {
                    self.source.event(Event::Denied {
                        node: self.node.clone(),
                        type_url: t.clone(),
                        name: n.clone(),
                    });
                }
            }
        }
        let node = self.node.clone();
        let st = self.types.entry(t.clone()).or_default();
        let mut changed = !st.subscribed;
        let was_wildcard = st.wildcard;
        if !st.subscribed {
            st.subscribed = true;
            st.wildcard = wildcard_type(&t) && req.resource_names_subscribe.is_empty();
            for (n, v) in &req.initial_resource_versions {
                st.sent.insert(n.clone(), v.clone());
            }
        }
        for n in &req.resource_names_subscribe {
            if n == "*" {
                st.wildcard = true;
            } else {
                changed |= st.names.insert(n.clone());
                // A (re-)subscription wants the resource even if it was sent before.
                st.sent.remove(n);
            }
        }
        for n in &req.resource_names_unsubscribe {
            if n == "*" {
                st.wildcard = false;
            } else {
                changed |= st.names.remove(n);
                st.sent.remove(n);
            }
        }
        if changed || was_wildcard != st.wildcard {
            let names = (!st.wildcard).then(|| Arc::new(st.names.clone()));
            self.source.event(Event::Subscribed {
                node: node.clone(),
                type_url: t.clone(),
                names,
            });
        }
        let Some(st) = self.types.get_mut(&t) else {
            return true;
        };
        if !req.response_nonce.is_empty() && req.response_nonce == st.nonce {
            st.pending = false;
            st.nacked = req.error_detail.is_some();
            let version = st.pending_version.clone();
            if let Some(err) = &req.error_detail {
                self.source.event(Event::Nack {
                    node,
                    type_url: t.clone(),
                    version,
                    message: truncate(&err.message, 2000),
                });
            } else {
                self.source.event(Event::Ack {
                    node,
                    type_url: t.clone(),
                    version,
                });
            }
        }
        self.push().await
    }
}

async fn delta_loop<S: SnapshotSource>(
    source: Arc<S>,
    peer: Option<String>,
    require: bool,
    mut inbound: Streaming<DeltaDiscoveryRequest>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
) {
    let (node, req) = match first_node(&mut inbound, |r: &DeltaDiscoveryRequest| {
        r.node.as_ref().map(|n| n.id.clone())
    })
    .await
    {
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
        delta: true,
    });
    let mut s = Delta {
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
                            s.snap = snap;
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

#[tonic::async_trait]
impl<S: SnapshotSource> AggregatedDiscoveryService for Ads<S> {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = peer_identity(&request);
        if self.require_identity && peer.is_none() {
            return Err(Status::unauthenticated(
                "a client certificate with a SPIFFE URI is required",
            ));
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(sotw_loop(
            self.source.clone(),
            peer,
            self.require_identity,
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let peer = peer_identity(&request);
        if self.require_identity && peer.is_none() {
            return Err(Status::unauthenticated(
                "a client certificate with a SPIFFE URI is required",
            ));
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(delta_loop(
            self.source.clone(),
            peer,
            self.require_identity,
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// TLS material of the xDS endpoint.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// Client certificates must chain to this CA.
    pub client_ca_pem: String,
}

/// Accepted connections of a running server, so that they can be cut all at once (a
/// control-plane crash, as the proxies see it).
#[derive(Clone, Default)]
pub struct Connections(Arc<Mutex<Vec<std::net::TcpStream>>>);

impl Connections {
    /// Shuts down every accepted connection (both directions).
    pub fn kill_all(&self) {
        if let Ok(mut v) = self.0.lock() {
            for c in v.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn add(&self, s: &tokio::net::TcpStream) {
        use std::os::fd::AsFd;
        if let Ok(fd) = s.as_fd().try_clone_to_owned()
            && let Ok(mut v) = self.0.lock()
        {
            v.push(std::net::TcpStream::from(fd));
        }
    }
}

/// Serves ADS on `listener` until `shutdown` resolves. With `tls`, clients must present a
/// certificate from the CA and the node/identity binding is enforced. Accepted connections
/// are recorded in `conns`.
pub async fn serve<S: SnapshotSource>(
    source: Arc<S>,
    listener: tokio::net::TcpListener,
    tls: Option<ServerTls>,
    conns: Connections,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), String> {
    use tokio_stream::StreamExt;
    use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
    let mut b = Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .initial_connection_window_size(Some(16 << 20))
        .initial_stream_window_size(Some(4 << 20))
        .tcp_nodelay(true);
    let ads = match tls {
        Some(t) => {
            b = b
                .tls_config(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(t.cert_pem, t.key_pem))
                        .client_ca_root(Certificate::from_pem(t.client_ca_pem)),
                )
                .map_err(|e| e.to_string())?;
            Ads::new(source)
        }
        None => Ads::insecure(source),
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |r| {
        if let Ok(s) = &r {
            let _ = s.set_nodelay(true);
            conns.add(s);
        }
        r
    });
    b.add_service(ads.into_service())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// Encodes a proxy's JSON resources (plus its secrets) into a snapshot. `previous` lets
/// unchanged resources keep their encoding (skips re-encoding on every edit).
pub fn snapshot_from_json(
    resources: &BTreeMap<&'static str, BTreeMap<String, serde_json::Value>>,
    secrets: &BTreeMap<String, serde_json::Value>,
    cache: &mut EncodeCache,
) -> Result<NodeSnapshot, String> {
    let mut snap = NodeSnapshot::default();
    for t in TYPES {
        snap.types.entry(t.to_string()).or_default();
    }
    for (t, m) in resources
        .iter()
        .map(|(t, m)| (*t, m))
        .chain([(SECRET, secrets)])
    {
        let out = snap.types.entry(t.to_string()).or_default();
        for (name, v) in m {
            out.insert(name.clone(), cache.encode(name, v)?);
        }
    }
    Ok(snap)
}

/// Memo of encoded resources by JSON content: the same JSON is encoded once across proxies
/// and edits.
#[derive(Default)]
pub struct EncodeCache {
    map: HashMap<String, (serde_json::Value, Arc<Resource>)>,
    used: BTreeSet<String>,
    /// Route configurations are encoded per virtual host (an edit to one split re-encodes
    /// one virtual host of the thousand in an outbound route configuration).
    vhosts: HashMap<u64, (serde_json::Value, Arc<Vec<u8>>)>,
    vhosts_used: HashSet<u64>,
}

/// Route configurations with at least this many virtual hosts are encoded per virtual host.
const PER_VHOST_MIN: usize = 16;

impl EncodeCache {
    fn encode(&mut self, name: &str, v: &serde_json::Value) -> Result<Arc<Resource>, String> {
        if v.get("@type").and_then(serde_json::Value::as_str) == Some(crate::proto::ROUTE)
            && let Some(vhs) = v.get("virtualHosts").and_then(serde_json::Value::as_array)
            && vhs.len() >= PER_VHOST_MIN
        {
            return self.encode_route(name, v, vhs);
        }
        self.encode_whole(name, v)
    }

    fn encode_route(
        &mut self,
        name: &str,
        v: &serde_json::Value,
        vhs: &[serde_json::Value],
    ) -> Result<Arc<Resource>, String> {
        let mut parts: Vec<Arc<Vec<u8>>> = Vec::with_capacity(vhs.len());
        for vh in vhs {
            let key = fnv(vh.to_string().as_bytes());
            self.vhosts_used.insert(key);
            match self.vhosts.get(&key) {
                Some((old, bytes)) if old == vh => parts.push(bytes.clone()),
                _ => {
                    let bytes = Arc::new(crate::proto::encode_message(
                        "envoy.config.route.v3.VirtualHost",
                        vh,
                    )?);
                    self.vhosts.insert(key, (vh.clone(), bytes.clone()));
                    parts.push(bytes);
                }
            }
        }
        let mut base = v.clone();
        if let Some(m) = base.as_object_mut() {
            m.remove("virtualHosts");
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        Ok(Arc::new(Resource::new(
            name,
            crate::proto::route_configuration(&base, &refs)?,
        )))
    }

    fn encode_whole(&mut self, name: &str, v: &serde_json::Value) -> Result<Arc<Resource>, String> {
        // Key: name + compact JSON text (identical content shares one encoding).
        let text = v.to_string();
        let key = format!("{name}\u{0}{:016x}", fnv(text.as_bytes()));
        self.used.insert(key.clone());
        if let Some((old, r)) = self.map.get(&key)
            && old == v
        {
            return Ok(r.clone());
        }
        let r = Arc::new(Resource::new(name, crate::proto::encode(v)?));
        self.map.insert(key, (v.clone(), r.clone()));
        Ok(r)
    }

    /// Drops encodings not used since the last call.
    pub fn sweep(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.map.retain(|k, _| used.contains(k));
        let used = std::mem::take(&mut self.vhosts_used);
        self.vhosts.retain(|k, _| used.contains(k));
    }
}
