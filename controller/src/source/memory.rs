//! A source fed from memory: an initial set of objects, then whatever the test sends on
//! the channel it keeps.

use super::{Sender, Source, SyncTracker};
use crate::Result;
use crate::types::{Change, Msg};
use meshbridge_core::model::{Kind, Object};

pub struct MemorySource {
    pub initial: Vec<Object>,
}

/// Every input kind (a memory or directory source lists them all at once).
pub const ALL_KINDS: [Kind; 17] = [
    Kind::TrafficSplit,
    Kind::TrafficTarget,
    Kind::HTTPRouteGroup,
    Kind::TCPRoute,
    Kind::UDPRoute,
    Kind::Mesh,
    Kind::Install,
    Kind::Namespace,
    Kind::Service,
    Kind::ServiceAccount,
    Kind::Pod,
    Kind::Deployment,
    Kind::StatefulSet,
    Kind::DaemonSet,
    Kind::ReplicaSet,
    Kind::Job,
    Kind::EndpointSlice,
];

#[async_trait::async_trait]
impl Source for MemorySource {
    async fn start(self: Box<Self>, tx: Sender, sync: SyncTracker, _watch: bool) -> Result<()> {
        let id = sync.register();
        let changes = self
            .initial
            .into_iter()
            .map(|o| Change::Upsert {
                object: Box::new(o),
                live_status: None,
            })
            .collect();
        let _ = tx.send(Msg::Replace {
            kinds: ALL_KINDS.to_vec(),
            changes,
        });
        let _ = tx.send(Msg::Synced(id));
        Ok(())
    }
}
