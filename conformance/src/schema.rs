//! Validates Kubernetes objects against CRD `openAPIV3Schema`s.
//!
//! The OpenAPI v3 structural schema is converted to JSON Schema: `nullable` adds `null` to
//! the type, `x-kubernetes-int-or-string` becomes integer-or-string, and every object
//! schema that lists `properties` without `additionalProperties` or
//! `x-kubernetes-preserve-unknown-fields` rejects unknown fields — stricter than the API
//! server, which would silently prune them (pruning a field meshbridge wrote is a bug).
//! CEL rules (`x-kubernetes-validations`) are not evaluated here: [`Registry::cel_rules`]
//! names the rules an object reaches, and the adapters' own tests check the rules that apply
//! to what they emit (docs/conformance.md lists them).

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Schemas by (group, version, kind).
#[derive(Default)]
pub struct Registry {
    schemas: BTreeMap<(String, String, String), Value>,
    /// Keep only versions the CRD serves (`served: true`): only those can be applied.
    served_only: bool,
    compiled:
        std::sync::Mutex<BTreeMap<(String, String, String), std::sync::Arc<jsonschema::Validator>>>,
}

impl Registry {
    /// Loads every CRD (`apiextensions.k8s.io/v1` or `v1beta1`) in the given files or
    /// directories (recursively).
    pub fn load(paths: &[&Path]) -> Result<Registry, String> {
        let mut r = Registry::default();
        for p in paths {
            r.add_path(p)?;
        }
        Ok(r)
    }

    /// Like [`Registry::load`], keeping only served versions (a later file's served
    /// version of a kind replaces an earlier one; an unserved one never does).
    pub fn load_served(paths: &[&Path]) -> Result<Registry, String> {
        let mut r = Registry {
            served_only: true,
            ..Registry::default()
        };
        for p in paths {
            r.add_path(p)?;
        }
        Ok(r)
    }

    /// How many (group, version, kind) schemas are loaded.
    pub fn len(&self) -> usize {
        self.schemas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty()
    }

    fn add_path(&mut self, p: &Path) -> Result<(), String> {
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                self.add_path(&e)?;
            }
            return Ok(());
        }
        if !matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            return Ok(());
        }
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        for (_, doc) in meshbridge_core::load::split_documents(&text) {
            let Some(v) = meshbridge_core::load::parse_document(&doc)
                .map_err(|e| format!("{}: {e}", p.display()))?
            else {
                continue;
            };
            self.add_crd(&v);
        }
        Ok(())
    }

    /// Adds one CRD (ignores other documents).
    pub fn add_crd(&mut self, crd: &Value) {
        if crd["kind"] != "CustomResourceDefinition" {
            return;
        }
        let group = crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let common = crd["spec"]["validation"]["openAPIV3Schema"].clone();
        let mut versions: Vec<String> = Vec::new();
        if let Some(vs) = crd["spec"]["versions"].as_array() {
            for v in vs {
                let name = v["name"].as_str().unwrap_or_default().to_string();
                if self.served_only && v["served"] != json!(true) {
                    versions.push(name);
                    continue;
                }
                let schema = if v["schema"]["openAPIV3Schema"].is_object() {
                    v["schema"]["openAPIV3Schema"].clone()
                } else {
                    common.clone()
                };
                if schema.is_object() {
                    self.schemas
                        .insert((group.clone(), name.clone(), kind.clone()), schema);
                }
                versions.push(name);
            }
        }
        if let Some(v) = crd["spec"]["version"].as_str()
            && !self.served_only
            && !versions.iter().any(|x| x == v)
            && common.is_object()
        {
            self.schemas
                .insert((group.clone(), v.to_string(), kind.clone()), common.clone());
        }
    }

    pub fn has(&self, api_version: &str, kind: &str) -> bool {
        self.schemas.contains_key(&gvk(api_version, kind))
    }

    /// The raw OpenAPI schema for a kind at a version.
    pub fn openapi(&self, api_version: &str, kind: &str) -> Option<&Value> {
        self.schemas.get(&gvk(api_version, kind))
    }

    /// The messages of the CEL rules (`x-kubernetes-validations`) on every schema node `obj`
    /// reaches (empty when its kind has no schema here).
    pub fn cel_rules(&self, obj: &Value) -> BTreeSet<String> {
        let mut rules = BTreeSet::new();
        if let Some(schema) = self.openapi(
            obj["apiVersion"].as_str().unwrap_or_default(),
            obj["kind"].as_str().unwrap_or_default(),
        ) {
            collect_cel(schema, obj, &mut rules);
        }
        rules
    }

    /// Validates an object; errors are `field.path: message` lines.
    pub fn validate(&self, obj: &Value) -> Result<(), Vec<String>> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let key = gvk(api_version, kind);
        let validator = {
            let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let Some(schema) = self.schemas.get(&key) else {
                        return Err(vec![format!(
                            "no schema for {kind} {api_version} (not a served version of a known CRD)"
                        )]);
                    };
                    let mut js = to_json_schema(schema);
                    // The API server handles these at the root; CRD schemas may omit them.
                    if let Some(props) = js.get_mut("properties").and_then(Value::as_object_mut) {
                        props
                            .entry("apiVersion")
                            .or_insert(json!({"type": "string"}));
                        props.entry("kind").or_insert(json!({"type": "string"}));
                        props.entry("metadata").or_insert(json!({"type": "object"}));
                    }
                    let v = jsonschema::options()
                        .with_draft(jsonschema::Draft::Draft202012)
                        .build(&js)
                        .map_err(|e| {
                            vec![format!(
                                "schema for {kind} {api_version} does not compile: {e}"
                            )]
                        })?;
                    let v = std::sync::Arc::new(v);
                    cache.insert(key.clone(), v.clone());
                    v
                }
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(obj)
            .map(|e| format!("{}: {}", pointer_to_path(&e.instance_path().to_string()), e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn collect_cel(schema: &Value, v: &Value, out: &mut BTreeSet<String>) {
    if let Some(rs) = schema["x-kubernetes-validations"].as_array() {
        for r in rs {
            out.insert(r["message"].as_str().unwrap_or("").to_string());
        }
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if let Some(s) = schema["properties"].get(k) {
                    collect_cel(s, child, out);
                }
            }
        }
        Value::Array(a) => {
            for child in a {
                collect_cel(&schema["items"], child, out);
            }
        }
        _ => {}
    }
}

fn gvk(api_version: &str, kind: &str) -> (String, String, String) {
    let (g, v) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    (g.to_string(), v.to_string(), kind.to_string())
}

fn pointer_to_path(p: &str) -> String {
    if p.is_empty() {
        return "(root)".into();
    }
    let mut out = String::new();
    for seg in p.trim_start_matches('/').split('/') {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

/// OpenAPI v3 (Kubernetes structural schema) → JSON Schema 2020-12.
pub fn to_json_schema(s: &Value) -> Value {
    let Value::Object(m) = s else {
        return s.clone();
    };
    let mut out = Map::new();
    let int_or_string = m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let nullable = m.get("nullable") == Some(&Value::Bool(true));
    for (k, v) in m {
        match k.as_str() {
            "properties" | "patternProperties" => {
                let Value::Object(props) = v else { continue };
                let conv: Map<String, Value> = props
                    .iter()
                    .map(|(pk, pv)| (pk.clone(), to_json_schema(pv)))
                    .collect();
                out.insert(k.clone(), Value::Object(conv));
            }
            "items" | "not" => {
                out.insert(k.clone(), to_json_schema(v));
            }
            "additionalProperties" => {
                out.insert(
                    k.clone(),
                    if v.is_object() {
                        to_json_schema(v)
                    } else {
                        v.clone()
                    },
                );
            }
            "allOf" | "anyOf" | "oneOf" => {
                let arr = v
                    .as_array()
                    .map(|a| a.iter().map(to_json_schema).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Array(arr));
            }
            "nullable" | "format" | "example" | "externalDocs" | "discriminator" | "readOnly"
            | "writeOnly" | "xml" | "deprecated" => {}
            k2 if k2.starts_with("x-kubernetes-") => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if int_or_string {
        out.remove("type");
        out.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if out.contains_key("properties") && !out.contains_key("additionalProperties") && !preserve {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if nullable {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// The official target schemas in `shared/schemas` (Istio, Linkerd, Gateway API, App Mesh).
pub fn target_registry() -> Result<Registry, String> {
    let base = crate::shared_dir().join("schemas");
    Registry::load(&[base.as_path()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_unknown_fields_and_int_or_string() {
        let mut r = Registry::default();
        r.add_crd(&json!({
            "kind": "CustomResourceDefinition",
            "spec": {"group": "g.io", "names": {"kind": "K"}, "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                    "spec": {"type": "object", "properties": {
                        "port": {"x-kubernetes-int-or-string": true},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "opt": {"type": "string", "nullable": true}
                    }}
                }
            }}}]}
        }));
        let ok = json!({"apiVersion": "g.io/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"port": "http", "free": {"x": 1}, "opt": null}});
        assert_eq!(r.validate(&ok), Ok(()));
        let ok2 = json!({"apiVersion": "g.io/v1", "kind": "K", "spec": {"port": 80}});
        assert_eq!(r.validate(&ok2), Ok(()));
        let bad = json!({"apiVersion": "g.io/v1", "kind": "K", "spec": {"port": 1.5, "typo": 1}});
        let errs = r.validate(&bad).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec:") && e.contains("typo")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.starts_with("spec.port:")), "{errs:?}");
        assert!(
            r.validate(&json!({"apiVersion": "g.io/v2", "kind": "K"}))
                .is_err()
        );
    }
}
