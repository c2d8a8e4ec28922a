//! Messages from sources and sinks to the reconciler, and the key of an output object.

use meshbridge_core::OutputObject;
use meshbridge_core::api::common::Condition;
use meshbridge_core::model::{Kind, Object, ObjectKey};
use meshbridge_core::report::Problem;
use serde_json::Value;
use std::fmt;

/// Identity of a generated object: group (not version: a version bump is the same object),
/// kind, namespace (empty for cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl OutKey {
    pub fn of(o: &OutputObject) -> OutKey {
        OutKey {
            group: group_of(&o.api_version).to_string(),
            kind: o.kind.clone(),
            namespace: o.namespace.clone().unwrap_or_default(),
            name: o.name.clone(),
        }
    }

    /// Key of a live object (`apiVersion`, `kind`, `metadata`); `None` when incomplete.
    pub fn of_value(v: &Value) -> Option<OutKey> {
        let api_version = v.get("apiVersion")?.as_str()?;
        let kind = v.get("kind")?.as_str()?;
        let md = v.get("metadata")?;
        Some(OutKey {
            group: group_of(api_version).to_string(),
            kind: kind.to_string(),
            namespace: md
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name: md.get("name")?.as_str()?.to_string(),
        })
    }
}

impl fmt::Display for OutKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        if self.namespace.is_empty() {
            write!(f, "{}{g} {}", self.kind, self.name)
        } else {
            write!(f, "{}{g} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// `networking.istio.io/v1` → `networking.istio.io`; `v1` → ``.
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// One input change.
#[derive(Clone, Debug)]
pub enum Change {
    /// An object was added or modified. `live_status` is the object's current
    /// `status.conditions` in the cluster (to compare before writing status).
    Upsert {
        object: Box<Object>,
        live_status: Option<Vec<Condition>>,
    },
    /// An object is gone.
    Delete(ObjectKey),
    /// A new version of an object could not be read at all (e.g. a field of the wrong type):
    /// the previous good version stays in use; `problems` explain why.
    Invalid {
        key: ObjectKey,
        generation: Option<i64>,
        problems: Vec<Problem>,
    },
}

impl Change {
    pub fn key(&self) -> ObjectKey {
        match self {
            Change::Upsert { object, .. } => object.key(),
            Change::Delete(k) => k.clone(),
            Change::Invalid { key, .. } => key.clone(),
        }
    }
}

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
