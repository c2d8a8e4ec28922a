//! Backends programmed through an API rather than through Kubernetes objects (AWS App Mesh's
//! direct API). The engine keeps, for each namespace such a mesh programs, the namespace's
//! IR and adapter context ([`crate::engine::ApiPart`]); after each reconcile in which those
//! changed (and on every resync, to restore drift), the reconciler hands all of them to the
//! backend, which makes the remote side hold exactly that. The backend lives in the binary
//! (this crate depends on no adapter).

use crate::engine::ApiPart;
use meshbridge_core::api::meshbridge::MeshType;
use meshbridge_core::model::ObjectKey;
use std::collections::BTreeMap;

/// Why an input object is not (fully) programmed through the API.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiProblem {
    /// A remote resource it needs could not be written (after retries).
    Failed(String),
    /// A remote resource it needs exists under the same name and is not meshbridge's.
    Conflict(String),
}

/// What one [`ApiBackend::sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiReport {
    /// `Kind/name` of each remote resource created, updated or deleted.
    pub changes: Vec<String>,
    /// Remote resources that exist with a desired name but are not meshbridge's (left alone).
    pub conflicts: Vec<String>,
    /// Failures (after the backend's own retries); the reconciler retries with backoff.
    pub errors: Vec<String>,
    /// Calls that changed something remotely (created, updated or deleted).
    pub mutating_calls: usize,
    /// Calls that only read.
    pub read_calls: usize,
    /// The input objects (TrafficSplits, ...) each error or conflict affects: they get
    /// `Programmed/<mesh>=False` with the message until a sync succeeds for them.
    pub objects: BTreeMap<ObjectKey, Vec<ApiProblem>>,
}

#[async_trait::async_trait]
pub trait ApiBackend: Send {
    /// The mesh this backend programs; namespaces whose backend is this mesh are handed to it.
    fn mesh_type(&self) -> MeshType;

    /// Makes the remote side hold exactly what `parts` (one per namespace, sorted by
    /// namespace) describe, creating, updating and deleting only what differs; everything it
    /// created before and that no part wants any more is deleted. `force` is set on resyncs
    /// and retries: compare with the remote side even if the parts did not change since the
    /// last successful sync (drift). Never panics; failures go in the report.
    async fn sync(&mut self, parts: &[(&str, &ApiPart)], force: bool) -> ApiReport;
}
