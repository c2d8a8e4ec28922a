//! Errors of `meshbridge local` (typed; the binary prints them).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// Envoy could not be found (the message says where it was looked for).
    #[error("{0}")]
    EnvoyNotFound(String),
    #[error(transparent)]
    Ca(#[from] meshbridge_envoy::ca::CaError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An operating-system facility (a port, a signal, the process' own path).
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A proxy's configuration could not be encoded for xDS.
    #[error("xDS snapshot: {0}")]
    Encode(String),
    /// A pod could not be started.
    #[error("{0}")]
    Pod(&'static str),
    /// `meshbridge echo-server`'s configuration (`MESHBRIDGE_PORTS`).
    #[error("echo-server: {0}")]
    EchoConfig(String),
    #[error("echo-server: bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// `map_err` for an I/O error on `path`.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `map_err` for an I/O error of an operating-system facility.
pub(crate) fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Os { what, source }
}
