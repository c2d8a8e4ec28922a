//! The one severity rule and line format every runtime prints (`meshbridge translate`'s
//! stderr, `meshbridge run --once`, `meshbridge local`'s stderr and events):
//!
//! - an **error** is a [`Problem`] of [`Severity::Error`]: the object is not accepted (or a
//!   document cannot be read). Any error makes the run "failed" (exit 1; `local`'s `invalid`
//!   event);
//! - a **warning** is everything else worth the user's attention: a problem of
//!   [`Severity::Warning`] (e.g. a missing ServiceAccount or Service: translated anyway), a
//!   [`Finding`] (what a backend cannot express), an object programmed from its last
//!   accepted version, a file kept at its last readable version;
//! - lines: `PATH:LINE: Kind ns/name: field: reason` for problems and
//!   `warning: PATH:LINE: Kind ns/name: field: reason [mesh: feature: level]` for findings;
//!   errors first, then warnings, each sorted, no duplicates.

use super::Engine;
use crate::Finding;
use crate::api::meshbridge::MeshType;
use crate::model::Origin;
use crate::report::{Problem, Severity};
use std::collections::BTreeSet;

/// Errors and warnings of one run, already formatted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    errors: BTreeSet<String>,
    warnings: BTreeSet<String>,
}

impl Diagnostics {
    /// A problem, by its severity.
    pub fn problem(&mut self, p: &Problem) {
        match p.severity {
            Severity::Error => {
                self.errors.insert(p.to_string());
            }
            Severity::Warning => {
                self.warnings.insert(format!("warning: {p}"));
            }
        }
    }

    /// What `mesh` cannot express about an object (from `origin`).
    pub fn finding(&mut self, origin: &Origin, mesh: MeshType, f: &Finding) {
        self.warnings.insert(format!(
            "warning: {origin}: {} {}/{}: {}: {} [{mesh}: {}: {}]",
            f.object.kind, f.object.namespace, f.object.name, f.field, f.reason, f.feature, f.level
        ));
    }

    /// An error not tied to an input object (a conflict with an object meshbridge does not
    /// own, an unreadable directory).
    pub fn error(&mut self, line: impl Into<String>) {
        self.errors.insert(line.into());
    }

    /// A warning not tied to one problem (`warning: ` is prepended).
    pub fn warning(&mut self, line: impl AsRef<str>) {
        self.warnings.insert(format!("warning: {}", line.as_ref()));
    }

    /// Everything the engine knows after its last recompute: every input object's problems,
    /// every backend's findings (with the object's file and line), and the objects
    /// programmed from their last accepted version.
    pub fn engine(&mut self, engine: &Engine) {
        for p in engine.problems() {
            self.problem(&p);
        }
        for (mesh, f) in engine.findings() {
            let origin = engine
                .object(&f.object)
                .map(|o| o.meta().origin.clone())
                .unwrap_or(Origin::Api);
            self.finding(&origin, mesh, &f);
        }
        for k in engine.using_last_good() {
            let origin = engine
                .object(k)
                .map(|o| o.meta().origin.clone())
                .unwrap_or(Origin::Api);
            self.warning(format!(
                "{origin}: {} {}/{}: (object): invalid; {}",
                k.kind,
                k.namespace,
                k.name,
                super::LAST_GOOD_NOTE
            ));
        }
    }

    /// Whether any error was reported.
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
    }

    pub fn errors(&self) -> impl Iterator<Item = &String> {
        self.errors.iter()
    }

    pub fn warnings(&self) -> impl Iterator<Item = &String> {
        self.warnings.iter()
    }

    /// Errors, then warnings, each sorted.
    pub fn lines(&self) -> Vec<String> {
        self.errors.iter().chain(&self.warnings).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, ObjectKey};

    #[test]
    fn errors_come_first_and_only_errors_fail() {
        let key = ObjectKey::new(Kind::TrafficTarget, "shop", "t");
        let origin = crate::load::load_str(
            "a.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, namespace: shop}\n",
        )
        .objects[0]
            .meta()
            .origin
            .clone();
        let mut d = Diagnostics::default();
        d.problem(&Problem::for_object(
            Severity::Warning,
            &key,
            &origin,
            "spec.sources[0]",
            crate::report::reasons::SERVICE_ACCOUNT_NOT_FOUND,
            "ServiceAccount shop/x not found",
        ));
        assert!(!d.failed());
        // Reported twice (e.g. by two partitions): printed once.
        for _ in 0..2 {
            d.problem(&Problem::for_object(
                Severity::Error,
                &key,
                &origin,
                "spec.destination.kind",
                crate::report::reasons::INVALID_FIELD,
                "must be ServiceAccount",
            ));
        }
        assert!(d.failed());
        let lines = d.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "{origin}: TrafficTarget shop/t: spec.destination.kind"
            )),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with(&format!(
                "warning: {origin}: TrafficTarget shop/t: spec.sources[0]"
            )),
            "{lines:?}"
        );
    }
}
