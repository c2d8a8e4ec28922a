//! API types: every released SMI version, and meshbridge's own `meshbridge.io/v1alpha1` kinds.
//! One module per group; one submodule per version.

pub mod access;
pub mod common;
pub mod meshbridge;
pub mod metrics;
pub mod specs;
pub mod split;

pub use common::{Condition, Headers, IntOrString, Quantity, SmiStatus};
