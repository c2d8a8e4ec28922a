//! Where input objects come from: the Kubernetes API (watches), a directory (polled), or
//! memory (tests). Every source turns what it reads into [`Msg`]s through core's loader,
//! so all three have the same semantics.

pub mod dir;
pub mod kube;
pub mod memory;

use crate::Result;
use crate::types::Msg;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Hands out stream ids; the reconciler is synced once every registered id has sent
/// [`Msg::Synced`].
#[derive(Clone, Debug, Default)]
pub struct SyncTracker {
    inner: Arc<Mutex<(usize, BTreeSet<usize>)>>,
}

impl SyncTracker {
    /// Registers a stream that will send `Msg::Synced(id)` after its initial listing.
    pub fn register(&self) -> usize {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = g.0;
        g.0 += 1;
        g.1.insert(id);
        id
    }

    /// Records that `id` is synced; returns whether every stream is.
    pub fn done(&self, id: usize) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.remove(&id);
        g.1.is_empty()
    }

    pub fn all_synced(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .is_empty()
    }
}

/// Where a source sends what it reads.
pub type Sender = mpsc::UnboundedSender<Msg>;

#[async_trait::async_trait]
pub trait Source: Send {
    /// Starts reading. Registers its streams with `sync` before returning, then sends
    /// messages to `tx` (from spawned tasks when `watch` is true; with `watch` false it
    /// sends the current state once and returns).
    async fn start(self: Box<Self>, tx: Sender, sync: SyncTracker, watch: bool) -> Result<()>;
}

pub use meshbridge_core::engine::changes_of;
