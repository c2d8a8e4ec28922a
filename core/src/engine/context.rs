//! Settings of the engine and the one backend/context rule: which meshes program a namespace
//! (its `meshbridge.io/mesh` label → that Mesh; otherwise `--backend`) and the adapter
//! [`Context`] of each (explicit flag > the Mesh object's settings > defaults,
//! [`Context::for_mesh`]).

use super::store::Store;
use crate::Context;
use crate::adapter::MESH_LABEL;
use crate::api::meshbridge::{MeshSpec, MeshType};
use crate::model::{Kind, Object, ObjectKey};

/// Which backends program a namespace that has no `meshbridge.io/mesh` label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backends {
    /// The single Mesh object's type if exactly one Mesh exists; otherwise unlabelled
    /// namespaces are not programmed (and their objects say so).
    Auto,
    /// These backends, in this order.
    List(Vec<MeshType>),
    /// This backend for every namespace, labelled or not (`meshbridge translate --mesh`):
    /// its settings are those of the first Mesh object of that type, if any.
    Every(MeshType),
}

impl Backends {
    /// `auto` or a comma-separated list of mesh types.
    pub fn parse(s: &str) -> Result<Backends, String> {
        if s == "auto" {
            return Ok(Backends::Auto);
        }
        let mut v = Vec::new();
        for part in s.split(',').map(str::trim) {
            let m = MeshType::parse(part).ok_or_else(|| {
                format!("unknown backend `{part}` (expected auto or a comma-separated list of: istio, linkerd, gateway-api, appmesh, envoy)")
            })?;
            if !v.contains(&m) {
                v.push(m);
            }
        }
        if v.is_empty() {
            return Err("empty --backend".into());
        }
        Ok(Backends::List(v))
    }
}

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Controller namespace, trust domain and cluster domain for adapters.
    pub base: Context,
    /// `--trust-domain` (wins over a Mesh's).
    pub trust_domain: Option<String>,
    pub backends: Backends,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            base: Context::default(),
            trust_domain: None,
            backends: Backends::Auto,
        }
    }
}

impl EngineConfig {
    /// The adapter context for a mesh with these settings.
    pub fn context(&self, spec: Option<MeshSpec>) -> Context {
        Context::for_mesh(&self.base, self.trust_domain.as_deref(), spec)
    }

    /// Which meshes program namespace `ns`, with their settings; or why none does.
    pub(crate) fn meshes_for(
        &self,
        store: &Store,
        ns: &str,
    ) -> Result<Vec<(MeshType, Option<MeshSpec>)>, String> {
        let label = store
            .fact(&ObjectKey::new(Kind::Namespace, "", ns))
            .and_then(|o| o.meta().labels.get(MESH_LABEL).cloned());
        let meshes: Vec<(&ObjectKey, &MeshSpec)> = store
            .meshes
            .iter()
            .filter_map(|k| match store.entries.get(k)?.readable()? {
                Object::Mesh(m, _) => Some((&k.object, &m.spec)),
                _ => None,
            })
            .collect();
        // `Every` ignores namespace labels.
        let label = label.filter(|_| !matches!(self.backends, Backends::Every(_)));
        if let Some(name) = label {
            let named: Vec<_> = meshes.iter().filter(|(k, _)| k.name == name).collect();
            let pick = named
                .iter()
                .find(|(k, _)| k.namespace == self.base.controller_namespace)
                .or(if named.len() == 1 {
                    named.first()
                } else {
                    None
                });
            return match pick {
                Some((_, spec)) => Ok(vec![(spec.mesh_type, Some((*spec).clone()))]),
                None if named.is_empty() => Err(format!(
                    "namespace label {MESH_LABEL}={name} names a Mesh that does not exist"
                )),
                None => Err(format!(
                    "namespace label {MESH_LABEL}={name} is ambiguous: Meshes named `{name}` exist in several namespaces and none in the controller namespace `{}`",
                    self.base.controller_namespace
                )),
            };
        }
        match &self.backends {
            Backends::List(v) => Ok(v
                .iter()
                .map(|t| {
                    let spec = meshes
                        .iter()
                        .find(|(_, s)| s.mesh_type == *t)
                        .map(|(_, s)| (*s).clone());
                    (*t, spec)
                })
                .collect()),
            Backends::Every(t) => {
                let spec = meshes.iter().find(|(_, s)| s.mesh_type == *t);
                Ok(vec![(*t, spec.map(|(_, s)| (*s).clone()))])
            }
            Backends::Auto => match meshes.as_slice() {
                [(_, spec)] => Ok(vec![(spec.mesh_type, Some((*spec).clone()))]),
                [] => Err(format!(
                    "no backend: no Mesh exists; label the namespace with {MESH_LABEL} or run with --backend"
                )),
                _ => Err(format!(
                    "no backend: several Meshes exist; label the namespace with {MESH_LABEL}: <Mesh name>"
                )),
            },
        }
    }
}
