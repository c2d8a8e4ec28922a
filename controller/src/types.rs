//! Messages from sources and sinks to the reconciler. The input [`Change`] and the output
//! key [`OutKey`] are core's (the engine's), re-exported here.

pub use meshbridge_core::engine::{Change, OutKey, group_of};
use meshbridge_core::model::Kind;
use serde_json::Value;

/// Everything the reconciler reacts to.
#[derive(Clone, Debug)]
pub enum Msg {
    Input(Change),
    /// A full relist of the given input kinds (objects of those kinds not listed are gone).
    Replace {
        kinds: Vec<Kind>,
        changes: Vec<Change>,
    },
    /// A live output object owned by meshbridge changed (from a watch on outputs).
    LiveUpsert(OutKey, Box<Value>),
    /// A live output object is gone.
    LiveDelete(OutKey),
    /// Full relist of the owned live objects of one group/kind.
    LiveReplace {
        group: String,
        kind: String,
        objects: Vec<(OutKey, Value)>,
    },
    /// A source or sink stream finished its initial listing (id from [`crate::SyncTracker`]).
    Synced(usize),
}
