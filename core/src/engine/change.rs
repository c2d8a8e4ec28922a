//! What flows into the engine (input [`Change`]s) and the key of what flows out ([`OutKey`]).

use crate::OutputObject;
use crate::api::common::Condition;
use crate::load::Loaded;
use crate::model::{Object, ObjectKey};
use crate::report::Problem;
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

    pub fn upsert(object: Object) -> Change {
        Change::Upsert {
            object: Box::new(object),
            live_status: None,
        }
    }
}

/// Loaded objects → changes. Errors that name an object become [`Change::Invalid`] (the
/// object's last good version stays); the rest — a document that cannot be read at all, and
/// warnings (which never make an object unreadable) — are returned.
pub fn changes_of(loaded: Loaded) -> (Vec<Change>, Vec<Problem>) {
    let mut changes: Vec<Change> = loaded.objects.into_iter().map(Change::upsert).collect();
    let mut other = Vec::new();
    for p in loaded.problems {
        match p.object_key() {
            Some(key) if !key.name.is_empty() && p.is_error() => changes.push(Change::Invalid {
                key,
                generation: None,
                problems: vec![p],
            }),
            _ => other.push(p),
        }
    }
    (changes, other)
}
