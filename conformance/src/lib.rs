//! The conformance suite's machinery: golden cases (`cases/<area>/<case>/`), the runner
//! used by `cargo test` (see the root `tests/conformance.rs`), and validation of generated
//! objects against official CRD schemas (OpenAPI v3 structural schemas, with Kubernetes'
//! extensions) — see `docs/conformance.md`.

pub mod cases;
pub mod fixtures;
pub mod schema;

use std::path::PathBuf;

/// `conformance/` in the source tree.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the repository (the CI layout), overridable with `MESHBRIDGE_SHARED`.
pub fn shared_dir() -> PathBuf {
    if let Ok(p) = std::env::var("MESHBRIDGE_SHARED") {
        return PathBuf::from(p);
    }
    root().join("..").join("..").join("shared")
}
