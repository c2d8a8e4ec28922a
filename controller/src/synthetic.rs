//! The synthetic-workload generator moved to [`meshbridge_core::synth`] (the one generator
//! benches and tests share); this module only re-exports it until its `pub mod` goes.

pub use meshbridge_core::synth::{Synth, Workloads};
