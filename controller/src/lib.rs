//! meshbridge's controller: sources (the Kubernetes API, a directory, memory) feed one
//! reconciler, which renders each namespace with the backend it selects
//! (`meshbridge.io/mesh` namespace label → Mesh → adapter, or `--backend`) and brings a sink
//! (Kubernetes server-side apply, a directory) and the inputs' status to the desired state,
//! writing only differences.
//!
//! This crate depends on `meshbridge-core` and on no adapter crate: the binary passes the
//! adapters in. Layout: [`engine`] (core's sans-IO engine, re-exported: store, partitions,
//! last-known-good), [`reconciler`] (diff and write), [`source`], [`sink`], [`status`], [`leader`],
//! [`metrics`], [`api`] (backends programmed through an API), [`run`] (flags, the event
//! loop, background tasks).

pub mod api;
pub mod discovery;
pub mod engine;
pub mod identity;
pub mod leader;
pub mod metrics;
pub mod reconciler;
pub mod run;
pub mod sink;
pub mod source;
pub mod status;
pub mod traffic;
pub mod types;
mod watch;

pub use api::{ApiBackend, ApiReport};
pub use engine::{Backends, Engine, EngineConfig};
pub use reconciler::{Reconciler, Report};
pub use run::{Extensions, RunArgs, Task, TaskContext, adapters_for, exit_code, run_with};
pub use source::SyncTracker;
pub use types::{Change, Msg, OutKey};

/// Errors of the controller (one variant per failure class; the metric label is the
/// variant name).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("I/O: {0}")]
    Io(String),
    #[error("Kubernetes API: {0}")]
    Kube(String),
    /// The API server answered with a Status (403 Forbidden, 422 Invalid, 409 Conflict...).
    #[error("{reason} ({code}): {message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{0} is not owned by meshbridge; not touched")]
    NotOwned(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<kube::Error> for Error {
    /// A server's answer keeps its code, reason and message (they reach conditions as they
    /// are); other failures (transport, decoding) are `Kube`.
    fn from(e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) => Error::Api {
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            e => Error::Kube(e.to_string()),
        }
    }
}
