//! The whole offline pipeline in one pure function: documents → snapshot → IR → one
//! adapter → YAML and diagnostics. `meshbridge translate` and the conformance runner both
//! call it, so what the tests check is what users run.

use crate::adapter::{Adapter, Context};
use crate::api::meshbridge::MeshType;
use crate::load::Loaded;
use crate::model::Origin;
use crate::report::Severity;
use crate::snapshot::Snapshot;
use crate::{Ir, Translation};

/// Result of translating a set of inputs.
pub struct Output {
    pub snapshot: Snapshot,
    pub ir: Ir,
    pub translation: Translation,
    /// Multi-document YAML of the generated objects (what goes to stdout).
    pub yaml: String,
    /// Diagnostic lines (what goes to stderr): errors, then `warning:` lines, each sorted.
    pub diagnostics: Vec<String>,
    /// Whether any input was invalid (exit code 1).
    pub failed: bool,
}

/// Loads `files` (already read: `(path, loaded)` in order) into a snapshot. Returns the
/// snapshot, diagnostics and whether any document was invalid.
pub fn snapshot_of(files: Vec<Loaded>) -> (Snapshot, Vec<String>, bool) {
    let mut snap = Snapshot::default();
    let mut lines = Vec::new();
    let mut failed = false;
    for loaded in files {
        for p in &loaded.problems {
            failed = true;
            lines.push(p.to_string());
        }
        for o in loaded.objects {
            let key = o.key();
            if let Some(prev) = snap.origin(&key).cloned() {
                lines.push(format!(
                    "warning: {}: {} {}/{}: (document): also defined at {prev}; the later definition wins",
                    o.meta().origin,
                    key.kind,
                    key.namespace,
                    key.name
                ));
            }
            snap.apply(o);
        }
    }
    (snap, lines, failed)
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

/// Translates loaded files with one adapter.
pub fn translate(
    files: Vec<Loaded>,
    adapter: &dyn Adapter,
    base: &Context,
    trust_domain: Option<&str>,
) -> Output {
    let (snapshot, mut lines, mut failed) = snapshot_of(files);
    let ir = crate::build::build(&snapshot);
    let mut warnings = Vec::new();
    for p in ir.problems() {
        match p.severity {
            Severity::Error => {
                failed = true;
                lines.push(p.to_string());
            }
            Severity::Warning => warnings.push(format!("warning: {p}")),
        }
    }
    let cx = context_for(&snapshot, adapter.mesh_type(), base, trust_domain);
    let translation = adapter.translate(&ir, &cx);
    for f in &translation.findings {
        let origin = snapshot.origin(&f.object).cloned().unwrap_or(Origin::Api);
        warnings.push(format!(
            "warning: {origin}: {} {}/{}: {}: {} [{}: {}]",
            f.object.kind, f.object.namespace, f.object.name, f.field, f.reason, f.feature, f.level
        ));
    }
    let (mut errs, mut warns): (Vec<String>, Vec<String>) =
        lines.into_iter().partition(|l| !l.starts_with("warning: "));
    warns.extend(warnings);
    errs.sort();
    warns.sort();
    errs.extend(warns);
    let yaml = crate::yaml::to_yaml_stream(translation.objects.iter().map(|o| &o.body));
    Output {
        snapshot,
        ir,
        translation,
        yaml,
        diagnostics: errs,
        failed,
    }
}
