//! Unknown fields: every field of an input object that its kind's schema does not have, as
//! `kubectl`'s field validation warns (`unknown field "spec.foo"`). A real API server drops
//! them (pruning), so users would think they took effect; the loader warns and ignores them.
//!
//! The schemas are the CRDs meshbridge serves ([`crate::crd::all`], generated from the same
//! Rust types the loader reads into), for the SMI kinds and `Mesh`/`Install` in every
//! version, to any depth; a node marked `x-kubernetes-preserve-unknown-fields` (e.g.
//! `headers`) or without `properties` is open. Kubernetes built-ins (Service, Pod, ...) are
//! checked at the top level only. `metadata` is checked against `ObjectMeta`'s fields.

use crate::model::Kind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One unknown field: its path as written (`spec.rules[0].foo`) and the warning's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    pub path: String,
    pub reason: String,
}

/// `ObjectMeta`'s fields.
const META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Top-level fields of the Kubernetes built-ins meshbridge reads.
fn builtin_fields(kind: Kind) -> Option<&'static [&'static str]> {
    const OBJ: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
    Some(match kind {
        Kind::Namespace | Kind::Service | Kind::Pod | Kind::Deployment => OBJ,
        Kind::ServiceAccount => &[
            "apiVersion",
            "kind",
            "metadata",
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        Kind::EndpointSlice => &[
            "apiVersion",
            "kind",
            "metadata",
            "addressType",
            "endpoints",
            "ports",
        ],
        _ => return None,
    })
}

/// (group, kind) → version → openAPIV3Schema, from the CRDs meshbridge serves.
type Schemas = BTreeMap<(String, String), BTreeMap<String, Value>>;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut out = Schemas::new();
        for crd in crate::crd::all() {
            let entry = out
                .entry((crd.spec.group.clone(), crd.spec.names.kind.clone()))
                .or_default();
            for v in &crd.spec.versions {
                let schema = v
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok());
                if let Some(schema) = schema {
                    entry.insert(v.name.clone(), schema);
                }
            }
        }
        out
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn props(schema: &Value) -> Option<&serde_json::Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn open(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

/// Collects the paths of `v` that `schema` does not have.
fn walk(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    if open(schema) {
        return;
    }
    match v {
        Value::Object(m) => {
            let known = props(schema);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                let p = join(path, k);
                if path.is_empty() && (k == "apiVersion" || k == "kind") {
                } else if path.is_empty() && k == "metadata" {
                    if let Value::Object(meta) = child {
                        out.extend(
                            (meta.keys())
                                .filter(|f| !META.contains(&f.as_str()))
                                .map(|f| join(&p, f)),
                        );
                    }
                } else if let Some(s) = known.and_then(|known| known.get(k)) {
                    walk(s, child, &p, out);
                } else if let Some(a) = additional {
                    walk(a, child, &p, out);
                } else if known.is_some() {
                    out.push(p);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(s, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Whether `schema` has the field at `path` (`a.b[0].c`; list indexes are ignored).
fn has_path(schema: &Value, path: &str) -> bool {
    let mut s = schema;
    for seg in path.split('.') {
        let name = seg.split('[').next().unwrap_or(seg);
        if open(s) {
            return true;
        }
        let Some(next) = props(s).and_then(|p| p.get(name)) else {
            return false;
        };
        s = next;
        if seg.contains('[') {
            match s.get("items") {
                Some(items) => s = items,
                None => return false,
            }
        }
    }
    true
}

/// Every unknown field of an object of `kind` in `group`/`version`, in document order.
/// Versions meshbridge does not read have no schema here (the loader reports them).
pub fn unknown_fields(kind: Kind, group: &str, version: &str, v: &Value) -> Vec<Unknown> {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let reason = |path: &str, hint: Option<String>| {
        let mut r = format!("unknown field \"{path}\" in {kind} {api_version}; ignored");
        if let Some(h) = hint {
            r.push_str(&format!(" ({h})"));
        }
        r
    };
    if let Some(fields) = builtin_fields(kind) {
        let Value::Object(m) = v else {
            return vec![];
        };
        let mut out = Vec::new();
        for (k, child) in m {
            if !fields.contains(&k.as_str()) {
                out.push(Unknown {
                    path: k.clone(),
                    reason: reason(k, None),
                });
            } else if k == "metadata"
                && let Value::Object(meta) = child
            {
                for f in meta.keys().filter(|f| !META.contains(&f.as_str())) {
                    let p = format!("metadata.{f}");
                    out.push(Unknown {
                        reason: reason(&p, None),
                        path: p,
                    });
                }
            }
        }
        return out;
    }
    let Some(versions) = schemas().get(&(group.to_string(), kind.as_str().to_string())) else {
        return vec![];
    };
    let Some(schema) = versions.get(version) else {
        return vec![];
    };
    let mut paths = Vec::new();
    walk(schema, v, "", &mut paths);
    paths
        .into_iter()
        .map(|path| {
            // Misplaced: under `spec` in a top-level version, or the other way round.
            let hint = if let Some(rest) = path.strip_prefix("spec.")
                && has_path(schema, rest)
            {
                Some(format!(
                    "{kind} {version} has it at the top level: \"{rest}\""
                ))
            } else if !path.contains('.')
                && !path.contains('[')
                && has_path(schema, &format!("spec.{path}"))
            {
                Some(format!("did you mean \"spec.{path}\"?"))
            } else {
                let others: Vec<&str> = (versions.iter())
                    .filter(|(other, s)| *other != version && has_path(s, &path))
                    .map(|(other, _)| other.as_str())
                    .collect();
                (!others.is_empty())
                    .then(|| format!("a field of {kind} {}, not {version}", others.join(", ")))
            };
            Unknown {
                reason: reason(&path, hint),
                path,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(kind: Kind, api_version: &str, yaml: &str) -> Vec<String> {
        let v: Value = serde_saphyr::from_str(yaml).unwrap();
        let (g, ver) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        unknown_fields(kind, g, ver, &v)
            .into_iter()
            .map(|u| format!("{}: {}", u.path, u.reason))
            .collect()
    }

    #[test]
    fn misplaced_and_unknown_fields_are_named_with_their_path() {
        let got = paths(
            Kind::HTTPRouteGroup,
            "specs.smi-spec.io/v1alpha4",
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: r, labelz: {}}\nmatches: [{name: a}]\nspec:\n  matches:\n  - {name: b, pathRegex: /x, headers: {any: thing}, foo: 1}\n",
        );
        assert_eq!(
            got,
            [
                "metadata.labelz: unknown field \"metadata.labelz\" in HTTPRouteGroup specs.smi-spec.io/v1alpha4; ignored",
                "matches: unknown field \"matches\" in HTTPRouteGroup specs.smi-spec.io/v1alpha4; ignored (did you mean \"spec.matches\"?)",
                "spec.matches[0].foo: unknown field \"spec.matches[0].foo\" in HTTPRouteGroup specs.smi-spec.io/v1alpha4; ignored",
            ]
        );
        // A field of another version.
        let got = paths(
            Kind::TrafficTarget,
            "access.smi-spec.io/v1alpha3",
            "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t}\nspec:\n  destination: {kind: ServiceAccount, name: a, port: 8080}\n  rules: []\n",
        );
        assert_eq!(
            got,
            [
                "spec.destination.port: unknown field \"spec.destination.port\" in TrafficTarget access.smi-spec.io/v1alpha3; ignored (a field of TrafficTarget v1alpha2, not v1alpha3)"
            ]
        );
        // A top-level version with `spec`.
        let got = paths(
            Kind::TrafficTarget,
            "access.smi-spec.io/v1alpha1",
            "apiVersion: access.smi-spec.io/v1alpha1\nkind: TrafficTarget\nmetadata: {name: t}\ndestination: {kind: ServiceAccount, name: a, port: 8080}\nspec: {sources: []}\n",
        );
        assert_eq!(
            got,
            [
                "spec: unknown field \"spec\" in TrafficTarget access.smi-spec.io/v1alpha1; ignored (a field of TrafficTarget v1alpha2, v1alpha3, not v1alpha1)"
            ]
        );
        // Built-ins: the top level and metadata only.
        let got = paths(
            Kind::Service,
            "v1",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nports: []\nspec: {portz: []}\n",
        );
        assert_eq!(
            got,
            ["ports: unknown field \"ports\" in Service v1; ignored"]
        );
    }

    #[test]
    fn every_served_kind_and_version_has_a_schema() {
        let s = schemas();
        for (kind, versions) in [
            ("TrafficSplit", 4),
            ("TrafficTarget", 3),
            ("HTTPRouteGroup", 4),
            ("TCPRoute", 4),
            ("UDPRoute", 1),
            ("Mesh", 1),
            ("Install", 1),
        ] {
            let n = s
                .iter()
                .find(|((_, k), _)| k == kind)
                .map_or(0, |(_, v)| v.len());
            assert_eq!(n, versions, "{kind}");
        }
    }
}
