//! The contract between core and every backend: a pure translation from the IR to the
//! target's objects, plus a static capability matrix. Adapters do no I/O, read no clock and
//! use no randomness; pushing results (apply, API calls, xDS) is the caller's job.

use crate::api::meshbridge::{MeshSpec, MeshType};
use crate::capability::{CapabilityMatrix, Feature, Level};
use crate::ir::Ir;
use crate::model::ObjectKey;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Label every generated object carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "meshbridge";
/// Label naming the controller namespace that owns an object.
pub const OWNER_LABEL: &str = "meshbridge.io/owner";
/// Annotation: JSON list of the input objects (`Kind/namespace/name`) that produced it.
pub const PARENTS_ANNOTATION: &str = "meshbridge.io/parents";
/// Namespace label selecting the Mesh (by name) that programs the namespace.
pub const MESH_LABEL: &str = "meshbridge.io/mesh";
/// Audience of the projected ServiceAccount token a built-in-mesh sidecar proves its
/// identity with (the injector asks the kubelet for it; the control plane reviews it).
pub const WORKLOAD_TOKEN_AUDIENCE: &str = "meshbridge";

/// Per-run settings an adapter may depend on.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// Namespace of the controller (value of the owner label).
    pub controller_namespace: String,
    /// SPIFFE trust domain (`cluster.local` by default).
    pub trust_domain: String,
    /// Kubernetes cluster domain for FQDNs (`cluster.local`).
    pub cluster_domain: String,
    /// Settings of the Mesh being programmed, when there is one.
    pub mesh: Option<MeshSpec>,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            controller_namespace: "meshbridge-system".into(),
            trust_domain: "cluster.local".into(),
            cluster_domain: "cluster.local".into(),
            mesh: None,
        }
    }
}

impl Context {
    /// The one rule for the context a mesh is translated with, used by every runtime
    /// (`translate`, `run`, `local`, discovery): an explicit value (a flag) wins, then the
    /// Mesh object's setting, then `base` (the defaults). The Mesh's settings become
    /// `mesh` (else `base.mesh` stays).
    pub fn for_mesh(base: &Context, trust_domain: Option<&str>, spec: Option<MeshSpec>) -> Context {
        let trust_domain = trust_domain
            .map(str::to_string)
            .or_else(|| spec.as_ref().and_then(|s| s.trust_domain.clone()))
            .unwrap_or_else(|| base.trust_domain.clone());
        Context {
            trust_domain,
            mesh: spec.or_else(|| base.mesh.clone()),
            ..base.clone()
        }
    }
}

/// One generated object.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The complete object (apiVersion, kind, metadata, spec...).
    pub body: Value,
    pub parents: Vec<ObjectKey>,
}

impl OutputObject {
    /// Builds an object with meshbridge's ownership labels and parents annotation.
    /// `content` holds the fields besides apiVersion/kind/metadata (usually `{"spec": ...}`).
    pub fn new(
        cx: &Context,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        mut parents: Vec<ObjectKey>,
        content: Value,
    ) -> Self {
        parents.sort();
        parents.dedup();
        let parents_json: Vec<String> = parents.iter().map(|p| p.to_string()).collect();
        let mut metadata = json!({
            "name": name,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                OWNER_LABEL: cx.controller_namespace,
            },
            "annotations": {
                PARENTS_ANNOTATION: serde_json::to_string(&parents_json).unwrap_or_default(),
            },
        });
        if let Some(ns) = namespace {
            metadata["namespace"] = json!(ns);
        }
        let mut body = json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": metadata,
        });
        if let (Value::Object(b), Value::Object(c)) = (&mut body, content) {
            for (k, v) in c {
                b.insert(k, v);
            }
        }
        OutputObject {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
            body,
            parents,
        }
    }

    /// Adds labels to the object's metadata (e.g. selectors the target needs).
    pub fn with_label(mut self, k: &str, v: &str) -> Self {
        self.body["metadata"]["labels"][k] = json!(v);
        self
    }

    pub fn sort_key(&self) -> (String, String, String, String) {
        (
            self.kind.clone(),
            self.api_version.clone(),
            self.namespace.clone().unwrap_or_default(),
            self.name.clone(),
        )
    }
}

/// Something the target cannot express (or can only approximate). Every finding names a
/// capability-matrix row, so each `warning:` is traceable to the matrix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub feature: Feature,
    /// `Partial` (approximated safely) or `None` (not emitted).
    pub level: Level,
    pub object: ObjectKey,
    pub field: String,
    pub reason: String,
}

/// An adapter's result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    /// Sorted by [`OutputObject::sort_key`].
    pub objects: Vec<OutputObject>,
    pub findings: Vec<Finding>,
}

impl Translation {
    /// Sorts objects and findings deterministically (adapters call this last).
    pub fn finish(mut self) -> Self {
        self.objects.sort_by_key(|o| o.sort_key());
        self.findings.sort();
        self.findings.dedup();
        self
    }

    /// Per input object: the findings about it.
    pub fn findings_by_object(&self) -> BTreeMap<&ObjectKey, Vec<&Finding>> {
        let mut m: BTreeMap<&ObjectKey, Vec<&Finding>> = BTreeMap::new();
        for f in &self.findings {
            m.entry(&f.object).or_default().push(f);
        }
        m
    }
}

/// A backend.
pub trait Adapter: Send + Sync {
    fn mesh_type(&self) -> MeshType;
    /// What the adapter can express (for the mesh version in `cx`, when it matters).
    fn capabilities(&self, cx: &Context) -> CapabilityMatrix;
    /// IR → the target's objects. Pure.
    fn translate(&self, ir: &Ir, cx: &Context) -> Translation;
}
