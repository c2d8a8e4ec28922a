//! meshbridge core: SMI (every released version) and meshbridge.io API types, loading,
//! validation, the mesh-neutral IR and the [`adapter::Adapter`] contract.
//!
//! Data flows one way: text or API objects → [`load`] → [`snapshot::Snapshot`] →
//! [`build::build`] (validation) → [`ir::Ir`] → adapters. Everything here is pure: no I/O
//! beyond reading the strings it is given, no clock, no randomness.

pub mod adapter;
pub mod api;
pub mod build;
pub mod capability;
pub mod crd;
pub mod engine;
mod fields;
mod gamma;
pub mod hash;
pub mod ir;
pub mod load;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod regex_hint;
pub mod report;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod synth;
pub mod weights;
pub mod yaml;

pub use adapter::{Adapter, Context, Finding, OutputObject, Translation};
pub use capability::{Capability, CapabilityMatrix, Feature, Level};
pub use ir::Ir;
pub use snapshot::Snapshot;
