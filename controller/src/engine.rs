//! The controller's engine is core's ([`meshbridge_core::engine`]): the sans-IO store,
//! per-namespace partitions, last-known-good and per-object status every runtime drives.
//! Re-exported here so `meshbridge_controller::engine::*` keeps working.

pub use meshbridge_core::engine::*;
