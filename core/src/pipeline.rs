//! The offline composition of the one engine: loaded files (a memory source) → the
//! engine ([`crate::engine`], with one backend for every namespace) → YAML (the stdout
//! sink) and [`Diagnostics`] lines. `meshbridge translate` and the conformance runner both
//! call it, so what the tests check is what users run — and what `run` and `local` do with
//! the same objects.

use crate::adapter::{Adapter, Context};
use crate::api::meshbridge::MeshType;
use crate::engine::{Backends, Change, Diagnostics, Engine, EngineConfig, changes_of};
use crate::load::Loaded;
use crate::model::{ObjectKey, Origin};
use crate::snapshot::Snapshot;
use crate::{Finding, OutputObject, Translation};
use std::collections::BTreeMap;

/// Result of translating a set of inputs.
pub struct Output {
    /// The generated objects (sorted by [`OutputObject::sort_key`]) and every finding.
    pub translation: Translation,
    /// Multi-document YAML of the generated objects (what goes to stdout).
    pub yaml: String,
    /// Diagnostic lines (what goes to stderr): errors, then `warning:` lines, each sorted.
    pub diagnostics: Vec<String>,
    /// Whether any input was invalid (exit code 1).
    pub failed: bool,
}

/// The warning for an object defined twice in the inputs.
fn duplicate_line(origin: &Origin, key: &ObjectKey, prev: &Origin) -> String {
    format!(
        "{origin}: {} {}/{}: (document): also defined at {prev}; the later definition wins",
        key.kind, key.namespace, key.name
    )
}

/// Loads `files` (already read: `(path, loaded)` in order) into a snapshot. Returns the
/// snapshot, the reading diagnostics (as [`Diagnostics::lines`]) and whether any document
/// could not be read. (For tests and benchmarks that need the whole snapshot at once.)
pub fn snapshot_of(files: Vec<Loaded>) -> (Snapshot, Vec<String>, bool) {
    let mut snap = Snapshot::default();
    let mut diags = Diagnostics::default();
    for loaded in files {
        for p in &loaded.problems {
            diags.problem(p);
        }
        for o in loaded.objects {
            let key = o.key();
            if let Some(prev) = snap.origin(&key).cloned() {
                diags.warning(duplicate_line(&o.meta().origin, &key, &prev));
            }
            snap.apply(o);
        }
    }
    (snap, diags.lines(), diags.failed())
}

/// The Context for translating `snap` to `mesh` ([`Context::for_mesh`] with the first Mesh
/// object of that type in the snapshot).
pub fn context_for(
    snap: &Snapshot,
    mesh: MeshType,
    base: &Context,
    trust_domain: Option<&str>,
) -> Context {
    Context::for_mesh(base, trust_domain, snap.mesh_spec(mesh))
}

/// Translates loaded files with one adapter: every namespace is programmed by it (namespace
/// labels are ignored), with the settings of the first Mesh object of its type, if any.
pub fn translate(
    files: Vec<Loaded>,
    adapter: Box<dyn Adapter>,
    base: &Context,
    trust_domain: Option<&str>,
) -> Output {
    let mesh = adapter.mesh_type();
    let mut engine = Engine::new(
        EngineConfig {
            base: base.clone(),
            trust_domain: trust_domain.map(str::to_string),
            backends: Backends::Every(mesh),
        },
        vec![adapter],
    );
    let mut diags = Diagnostics::default();
    let mut defined: BTreeMap<ObjectKey, Origin> = BTreeMap::new();
    for loaded in files {
        let (changes, other) = changes_of(loaded);
        for p in &other {
            diags.problem(p);
        }
        for c in changes {
            if let Change::Upsert { object, .. } = &c {
                let origin = &object.meta().origin;
                if let Some(prev) = defined.insert(object.key(), origin.clone()) {
                    diags.warning(duplicate_line(origin, &object.key(), &prev));
                }
            }
            engine.apply(c);
        }
    }
    let delta = engine.recompute();
    diags.engine(&engine);
    for (k, namespaces) in &delta.shared {
        diags.warning(format!(
            "{k}: generated for several namespaces ({}); the one of its own namespace is used",
            namespaces.join(", ")
        ));
    }
    let mut objects: Vec<OutputObject> = (engine.desired().values())
        .map(|d| (*d.object).clone())
        .collect();
    objects.sort_by_key(OutputObject::sort_key);
    let mut findings: Vec<Finding> = engine.findings().into_iter().map(|(_, f)| f).collect();
    findings.dedup();
    let yaml = crate::yaml::to_yaml_stream(objects.iter().map(|o| &o.body));
    Output {
        translation: Translation { objects, findings },
        yaml,
        diagnostics: diags.lines(),
        failed: diags.failed(),
    }
}
