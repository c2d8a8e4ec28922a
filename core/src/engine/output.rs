//! What the engine renders: desired output objects, and the IR kept for meshes programmed
//! outside it.

use crate::api::meshbridge::MeshType;
use crate::ir::Ir;
use crate::{Context, OutputObject};
use std::sync::Arc;

/// A desired output object and where it came from.
#[derive(Clone, Debug)]
pub struct Desired {
    pub object: Arc<OutputObject>,
    pub mesh: MeshType,
    /// The partition (namespace) that produced it.
    pub partition: String,
}

/// What a mesh programmed outside the engine (an API backend, or the built-in Envoy mesh)
/// gets for one namespace: the namespace's IR and the adapter context of its mesh.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiPart {
    pub mesh: MeshType,
    pub ir: Arc<Ir>,
    pub cx: Context,
}
