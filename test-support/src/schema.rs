//! Structural-schema checks as a real API server makes them, per version:
//! * [`typecheck`]: the typed conversion server-side apply makes of the applied and the
//!   live object (structured-merge-diff); a mismatch fails the apply with HTTP 500
//!   (`expected numeric (int or float), got string`).
//! * [`validate`]: OpenAPI validation of the whole object on every create and update
//!   (HTTP 422 `Invalid`, with causes: type, required, enum).
//! * [`prune`]: unknown fields are dropped (no `x-kubernetes-preserve-unknown-fields`).
//!
//! And [`crd_versions`]: a CustomResourceDefinition's served versions and their schemas.

use crate::resources::Served;
use serde_json::{Value, json};

fn schema_type(s: &Value) -> Option<&str> {
    s.get("type").and_then(Value::as_str)
}

fn int_or_string(s: &Value) -> bool {
    s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true)
}

fn preserve_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Go's name for a JSON value's type, as validation messages print it.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `%T` of the unstructured value in structured-merge-diff's messages.
fn smd_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Structured-merge-diff's typed conversion errors (`.spec.x: expected ...`), root object
/// (apiVersion, kind, metadata are not checked).
pub fn typecheck(schema: &Value, obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    if let (Some(props), Some(o)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object(),
    ) {
        for (k, v) in o {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = props.get(k) {
                smd(s, v, &format!(".{k}"), &mut errs);
            }
        }
    }
    errs
}

fn smd(s: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    if int_or_string(s) {
        if !(v.is_i64() || v.is_u64() || v.is_f64() || v.is_string()) {
            errs.push(format!(
                "{path}: expected string or numeric, got {}",
                smd_type(v)
            ));
        }
        return;
    }
    match schema_type(s) {
        Some("object") => {
            let Some(o) = v.as_object() else {
                errs.push(format!("{path}: expected map, got {}", smd_type(v)));
                return;
            };
            for (sub_schema, x, sub) in members(s, o, path) {
                smd(sub_schema, x, &sub, errs);
            }
        }
        Some("array") => {
            let Some(a) = v.as_array() else {
                errs.push(format!("{path}: expected list, got {}", smd_type(v)));
                return;
            };
            for (items, x, sub) in items(s, a, path) {
                smd(items, x, &sub, errs);
            }
        }
        Some("integer") | Some("number") if !v.is_number() => errs.push(format!(
            "{path}: expected numeric (int or float), got {}",
            smd_type(v)
        )),
        Some("string") if !v.is_string() => errs.push(format!(
            "{path}: expected string, got &value.valueUnstructured{{Value:{v}}}"
        )),
        Some("boolean") if !v.is_boolean() => errs.push(format!(
            "{path}: expected boolean, got &value.valueUnstructured{{Value:{v}}}"
        )),
        _ => {}
    }
}

/// One OpenAPI validation failure: (`reason` of the cause, field, message after the field).
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

/// OpenAPI v3 validation of a whole object (metadata excepted): types, `required`,
/// `enum`, `nullable`.
pub fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(o) = obj.as_object() else {
        return out;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    for r in missing_required(schema, o) {
        out.push(required(r));
    }
    for (k, v) in o {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)) {
            openapi(s, v, k, &mut out);
        }
    }
    out
}

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        field: field.to_string(),
        message: "Required value".into(),
    }
}

fn type_error(path: &str, v: &Value, want: &str) -> Cause {
    let t = go_type(v);
    Cause {
        reason: "FieldValueTypeInvalid",
        field: path.to_string(),
        message: format!("Invalid value: \"{t}\": {path} in body must be of type {want}: \"{t}\""),
    }
}

fn openapi(s: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        if s.get("nullable").and_then(Value::as_bool) != Some(true)
            && let Some(t) = schema_type(s)
        {
            out.push(type_error(path, v, t));
        }
        return;
    }
    if int_or_string(s) {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            out.push(type_error(path, v, "integer,string"));
        }
    } else {
        match schema_type(s) {
            Some("object") => {
                let Some(o) = v.as_object() else {
                    out.push(type_error(path, v, "object"));
                    return;
                };
                for r in missing_required(s, o) {
                    out.push(required(&format!("{path}.{r}")));
                }
                for (sub_schema, x, sub) in members(s, o, path) {
                    openapi(sub_schema, x, &sub, out);
                }
            }
            Some("array") => {
                let Some(a) = v.as_array() else {
                    out.push(type_error(path, v, "array"));
                    return;
                };
                for (items, x, sub) in items(s, a, path) {
                    openapi(items, x, &sub, out);
                }
            }
            Some("integer") if !(v.is_i64() || v.is_u64()) => {
                out.push(type_error(path, v, "integer"))
            }
            Some("number") if !v.is_number() => out.push(type_error(path, v, "number")),
            Some("string") if !v.is_string() => out.push(type_error(path, v, "string")),
            Some("boolean") if !v.is_boolean() => out.push(type_error(path, v, "boolean")),
            _ => {}
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        out.push(Cause {
            reason: "FieldValueNotSupported",
            field: path.to_string(),
            message: format!(
                "Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ),
        });
    }
}

/// Drops fields the schema does not know (metadata, apiVersion and kind are kept).
pub fn prune(schema: &Value, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    o.retain(|k, _| {
        matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
            || props.is_none_or(|p| p.contains_key(k))
            || preserve_unknown(schema)
    });
    for (k, v) in o.iter_mut() {
        if let Some(s) = props.and_then(|p| p.get(k))
            && k != "metadata"
        {
            prune_value(s, v);
        }
    }
}

fn prune_value(s: &Value, v: &mut Value) {
    if preserve_unknown(s) && s.get("properties").is_none() {
        return;
    }
    match v {
        Value::Object(o) if schema_type(s) == Some("object") => {
            let props = s.get("properties").and_then(Value::as_object);
            let addl = s.get("additionalProperties").filter(|a| a.is_object());
            if props.is_some() && addl.is_none() && !preserve_unknown(s) {
                o.retain(|k, _| props.is_some_and(|p| p.contains_key(k)));
            }
            for (k, x) in o.iter_mut() {
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    prune_value(ps, x);
                } else if let Some(a) = addl {
                    prune_value(a, x);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                for x in a {
                    prune_value(items, x);
                }
            }
        }
        _ => {}
    }
}

/// One served version of a CRD.
#[derive(Clone, Debug)]
pub struct CrdVersion {
    pub group: String,
    pub version: String,
    pub served: Served,
    pub schema: Option<Value>,
}

/// The served versions of a CustomResourceDefinition object (JSON or parsed YAML).
pub fn crd_versions(crd: &Value) -> Vec<CrdVersion> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let kind = spec["names"]["kind"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool() != Some(false))
        .map(|v| CrdVersion {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or("").to_string(),
            served: Served {
                kind: kind.to_string(),
                plural: plural.to_string(),
                namespaced,
                status: v.pointer("/subresources/status").is_some(),
            },
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
        })
        .collect()
}

/// The 422 `Invalid` Status for `causes`.
pub fn invalid(kind: &str, group: &str, name: &str, causes: &[Cause]) -> (u16, Value) {
    let each: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let joined = if each.len() == 1 {
        each[0].clone()
    } else {
        format!("[{}]", each.join(", "))
    };
    let msg = format!(
        "{} \"{name}\" is invalid: {joined}",
        crate::util::qualified(kind, group)
    );
    let causes: Vec<Value> = causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect();
    (
        422,
        crate::util::status_body(
            422,
            "Invalid",
            &msg,
            Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
        ),
    )
}

/// Each member of the map `o` with the schema that checks it (its property's, else an
/// `additionalProperties` schema; none: not checked) and its path.
fn members<'a>(
    s: &'a Value,
    o: &'a serde_json::Map<String, Value>,
    path: &'a str,
) -> impl Iterator<Item = (&'a Value, &'a Value, String)> {
    let props = s.get("properties").and_then(Value::as_object);
    let addl = s.get("additionalProperties").filter(|a| a.is_object());
    o.iter().filter_map(move |(k, x)| {
        let sub_schema = props.and_then(|p| p.get(k)).or(addl)?;
        Some((sub_schema, x, format!("{path}.{k}")))
    })
}

/// Each item of the list `a` with the `items` schema (none: not checked) and its path.
fn items<'a>(
    s: &'a Value,
    a: &'a [Value],
    path: &'a str,
) -> impl Iterator<Item = (&'a Value, &'a Value, String)> {
    let schema = s.get("items");
    a.iter()
        .enumerate()
        .filter_map(move |(i, x)| Some((schema?, x, format!("{path}[{i}]"))))
}

/// The `required` properties of `s` that the map `o` lacks, in the schema's order.
fn missing_required<'a>(
    s: &'a Value,
    o: &'a serde_json::Map<String, Value>,
) -> impl Iterator<Item = &'a str> {
    s.get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|r| !o.contains_key(*r))
}
