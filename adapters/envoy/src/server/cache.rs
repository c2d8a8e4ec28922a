//! [`Cache`]: the in-memory [`SnapshotSource`] — snapshots set per node, and each node's
//! xDS status (what it acknowledged, rejected, subscribed to) kept from the stream events.

use super::{Event, NodeSnapshot, Resource, SnapshotSource, version_of, wildcard_type};
use crate::proto::SCOPED_ROUTE;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

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
    /// cluster and listener (even none: removals must land too), every route scope once it
    /// has any, and of the named types
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
                // Route scopes are asked for only by a listener that has them: a proxy
                // without any has nothing to wait for.
                if t == SCOPED_ROUTE && all.is_empty() && !s.subscribed.contains_key(t) {
                    return true;
                }
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
