//! Where desired outputs go: the Kubernetes API (server-side apply), a directory (one file
//! per object) or memory (tests, benchmarks). The reconciler decides *what* to write by
//! comparing desired objects with its mirror of the live ones; a sink only executes.

pub mod dir;
pub mod kube;
pub mod memory;

use crate::types::OutKey;
use crate::{Error, Result};
use meshbridge_core::adapter::OWNER_LABEL;
use serde_json::Value;
use std::collections::BTreeMap;

/// Result of writing one object.
#[derive(Clone, Debug, PartialEq)]
pub enum PutOutcome {
    /// Written; the object as it now exists (the new live value).
    Written(Value),
    /// Not written: an object with that name exists and is not meshbridge's.
    Conflict(String),
}

#[async_trait::async_trait]
pub trait Sink: Send {
    /// A short name for logs (`kube`, `dir:PATH`, `memory`).
    fn name(&self) -> String;
    /// Whether written objects get ownerReferences to parents in the same namespace.
    fn owner_references(&self) -> bool {
        false
    }
    /// The objects carrying our owner label that exist now.
    async fn list_owned(&mut self) -> Result<BTreeMap<OutKey, Value>>;
    /// Whether `live` already matches `desired` (no write needed).
    /// (Default: equal values, for sinks that store exactly what they are given.)
    fn up_to_date(&self, desired: &Value, live: &Value) -> bool {
        desired == live
    }
    /// Creates or updates one object. `live` is the owned object as last seen, if any; when
    /// absent, the sink must refuse to overwrite an object that is not meshbridge's.
    async fn put(&mut self, k: &OutKey, want: &Value, live: Option<&Value>) -> Result<PutOutcome>;
    /// Deletes one owned object (`live` is what was seen: the sink deletes only that one).
    async fn delete(&mut self, key: &OutKey, live: &Value) -> Result<()>;
}

/// Whether a live object carries meshbridge's owner label for this controller namespace.
pub fn is_owned(v: &Value, controller_namespace: &str) -> bool {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(OWNER_LABEL))
        .and_then(Value::as_str)
        == Some(controller_namespace)
}

/// Guards a delete: never remove an object without our owner label.
pub fn ensure_owned(key: &OutKey, live: &Value, controller_namespace: &str) -> Result<()> {
    if is_owned(live, controller_namespace) {
        Ok(())
    } else {
        Err(Error::NotOwned(key.to_string()))
    }
}
