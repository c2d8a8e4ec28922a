//! Problems found while loading and validating input, in the one format the CLI prints:
//! `PATH:LINE: Kind namespace/name: field.path: reason`, where LINE is the 1-based file line
//! where the object's document starts (for a syntax error, the error's line; the reason then
//! ends with `at line L, column C`), and `api` replaces `PATH:LINE` for objects from the
//! Kubernetes API. Warnings are printed with a `warning: ` prefix (`core::engine::diagnostics`).

use crate::model::{ObjectKey, Origin};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object is invalid (`Accepted=False`) or a reference cannot be resolved in a way
    /// that makes translating it unsafe; it is not translated.
    Error,
    /// Translated, but something is worth the user's attention (e.g. a missing Service).
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    pub severity: Severity,
    pub origin: Origin,
    /// Kind as written (may be unknown to meshbridge, or `Document` when unparsable).
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Field path as the user wrote it (`spec.backends[1].weight`), or `(document)`.
    pub field: String,
    pub reason: String,
    /// Condition reason (`InvalidWeight`, `BackendNotFound`, ...).
    pub condition_reason: &'static str,
}

impl Problem {
    pub fn object_key(&self) -> Option<ObjectKey> {
        let kind = crate::load::kind_from_str(&self.kind)?;
        Some(ObjectKey::new(kind, &self.namespace, &self.name))
    }

    pub fn for_object(
        severity: Severity,
        key: &ObjectKey,
        origin: &Origin,
        field: impl Into<String>,
        condition_reason: &'static str,
        reason: impl Into<String>,
    ) -> Problem {
        Problem {
            severity,
            origin: origin.clone(),
            kind: key.kind.as_str().to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            field: field.into(),
            reason: reason.into(),
            condition_reason,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// A reference problem (`ResolvedRefs`), as opposed to an invalid object (`Accepted`).
    pub fn is_ref(&self) -> bool {
        matches!(
            self.condition_reason,
            reasons::ROUTE_GROUP_NOT_FOUND
                | reasons::SERVICE_NOT_FOUND
                | reasons::SERVICE_ACCOUNT_NOT_FOUND
                | reasons::UNKNOWN_MATCH
                | reasons::BACKEND_PORT_MISMATCH
                | reasons::REF_NOT_PERMITTED
                | reasons::INVALID_KIND
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = if self.namespace.is_empty() {
            "-"
        } else {
            &self.namespace
        };
        let name = if self.name.is_empty() {
            "-"
        } else {
            &self.name
        };
        write!(
            f,
            "{}: {} {}/{}: {}: {}",
            self.origin, self.kind, ns, name, self.field, self.reason
        )
    }
}

/// Condition reasons used in problems and status (kept in one place so tests and docs agree).
pub mod reasons {
    pub const INVALID_YAML: &str = "InvalidYAML";
    pub const INVALID_FIELD: &str = "InvalidField";
    pub const UNSUPPORTED_VERSION: &str = "UnsupportedVersion";
    pub const INVALID_WEIGHT: &str = "InvalidWeight";
    pub const INVALID_REGEX: &str = "InvalidRegex";
    pub const INVALID_METHOD: &str = "InvalidMethod";
    pub const INVALID_PORT: &str = "InvalidPort";
    pub const DUPLICATE_MATCH: &str = "DuplicateMatchName";
    pub const UNKNOWN_MATCH: &str = "UnknownMatchName";
    pub const UNKNOWN_KIND: &str = "UnsupportedKind";
    pub const ROUTE_GROUP_NOT_FOUND: &str = "RouteNotFound";
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    pub const SERVICE_ACCOUNT_NOT_FOUND: &str = "ServiceAccountNotFound";
    pub const BACKEND_PORT_MISMATCH: &str = "BackendPortMismatch";
    pub const CONFLICTED: &str = "Conflicted";
    pub const NAMESPACE_MISMATCH: &str = "NamespaceMismatch";
    /// A field the kind's schema does not have (a warning: it is ignored, as an API server
    /// drops it).
    pub const UNKNOWN_FIELD: &str = "UnknownField";
    /// A TrafficTarget (v1alpha1/v1alpha2) without rules: accepted, allows nothing.
    pub const NO_RULES: &str = "NoRules";
    /// A header regex that looks like it expects a substring match (a warning: header
    /// regexes match the whole value; see [`crate::regex_hint`]).
    pub const SUBSTRING_REGEX: &str = "SubstringRegex";
    /// A cross-namespace backendRef no ReferenceGrant allows (Gateway API's reason).
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// A backendRef of a kind other than Service (Gateway API's reason).
    pub const INVALID_KIND: &str = "InvalidKind";
    /// A Gateway API field value meshbridge does not support (Gateway API's reason).
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
}
