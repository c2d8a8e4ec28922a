//! `metadata.managedFields`: field sets per manager (leaf paths; lists are atomic), kept in
//! the object in the real `FieldsV1` encoding, server-side apply conflicts and ownership.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

pub type Path = Vec<String>;

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: BTreeSet<Path>,
}

impl Entry {
    /// Whether `self` is the entry of this write (apply entries are one per manager and
    /// subresource; update entries also per apiVersion).
    pub fn same(&self, manager: &str, op: &str, sub: &str, av: &str) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource == sub
            && (op == "Apply" || self.api_version == av)
    }

    /// The manager as conflict messages print it.
    pub fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

/// The entries of an object (unparseable ones are dropped).
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                decode(f, &mut Vec::new(), &mut fields);
            }
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e.get("operation")?.as_str()?.to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                fields,
            })
        })
        .collect()
}

fn decode(f: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(m) = f.as_object() else {
        return;
    };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() || m.contains_key(".") {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        if children.is_empty() {
            return;
        }
    }
    for (k, v) in children {
        match k.strip_prefix("f:") {
            Some(name) => {
                prefix.push(name.to_string());
                decode(v, prefix, out);
                prefix.pop();
            }
            // A list element (k:, v:, i:): the list is owned as a whole here.
            None => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
}

/// The `FieldsV1` form of a set of paths.
pub fn encode(fields: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in fields {
        let mut node = &mut root;
        for seg in p {
            node = node
                .entry(format!("f:{seg}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("object");
        }
    }
    Value::Object(root)
}

/// Writes `entries` into the object, sorted as the API server sorts them (operation,
/// time, manager, apiVersion, subresource); entries owning nothing are dropped.
pub fn store(obj: &mut Value, mut list: Vec<Entry>) {
    list.retain(|e| !e.fields.is_empty());
    list.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let v: Vec<Value> = list
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation));
            m.insert("apiVersion".into(), json!(e.api_version));
            m.insert("time".into(), json!(e.time));
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), encode(&e.fields));
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), json!(e.subresource));
            }
            Value::Object(m)
        })
        .collect();
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if v.is_empty() {
            md.remove("managedFields");
        } else {
            md.insert("managedFields".into(), Value::Array(v));
        }
    }
}

/// Metadata fields that are tracked (the rest — name, uid, resourceVersion... — are not).
const TRACKED_META: &[&str] = &["labels", "annotations", "ownerReferences", "finalizers"];

/// Leaf paths of the part of `obj` a write through `sub` ("" or "status") sets
/// (`status_sub`: the kind has a status subresource, so the main resource has no status).
pub fn leaves(obj: &Value, sub: &str, status_sub: bool) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(o) = obj.as_object() else {
        return out;
    };
    for (k, v) in o {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" if sub.is_empty() => {
                if let Some(md) = v.as_object() {
                    for t in TRACKED_META {
                        if let Some(x) = md.get(*t) {
                            walk(x, &mut vec!["metadata".into(), t.to_string()], &mut out);
                        }
                    }
                }
            }
            "metadata" => {}
            "status" if sub == "status" => walk(v, &mut vec![k.clone()], &mut out),
            _ if sub.is_empty() && (k != "status" || !status_sub) => {
                walk(v, &mut vec![k.clone()], &mut out)
            }
            _ => {}
        }
    }
    out
}

fn walk(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, x) in m {
                prefix.push(k.clone());
                walk(x, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

pub fn get<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for s in p {
        cur = cur.get(s)?;
    }
    Some(cur)
}

pub fn remove(v: &mut Value, p: &[String]) {
    let Some((last, parent)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for s in parent {
        match cur.get_mut(s) {
            Some(x) => cur = x,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Deep merge of an applied configuration: maps merge, lists and scalars replace, null
/// removes.
pub fn merge(target: &mut Value, cfg: &Value) {
    match (target.as_object_mut(), cfg.as_object()) {
        (Some(t), Some(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    t.remove(k);
                } else if v.is_object() && t.get(k).is_some_and(Value::is_object) {
                    merge(t.get_mut(k).expect("present"), v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        _ => *target = cfg.clone(),
    }
}

/// A conflict: the other manager and the field (`.spec.x`).
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

/// Conflicts of applying `cfg` (its leaf paths `mine`) by `manager` onto `live`: fields
/// another manager owns whose value the apply would change.
pub fn conflicts(
    entries: &[Entry],
    me: (&str, &str),
    mine: &BTreeSet<Path>,
    live: &Value,
    cfg: &Value,
) -> Vec<(usize, Path, Conflict)> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.manager == me.0 && e.operation == "Apply" && e.subresource == me.1 {
            continue;
        }
        for q in &e.fields {
            let Some(p) = mine.iter().find(|p| overlaps(p, q)) else {
                continue;
            };
            let at = if p.len() <= q.len() { p } else { q };
            if get(live, at) != get(cfg, at) {
                out.push((
                    i,
                    q.clone(),
                    Conflict {
                        manager: e.printed(),
                        field: format!(".{}", q.join(".")),
                    },
                ));
            }
        }
    }
    out
}

/// The 409 Status of an apply conflict, in the API server's words.
pub fn conflict_status(cs: &[Conflict]) -> (u16, Value) {
    let msg = if cs.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            cs[0].manager, cs[0].field
        )
    } else {
        let mut managers: Vec<&String> = cs.iter().map(|c| &c.manager).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for c in cs.iter().filter(|c| &c.manager == m) {
                lines.push(format!("- {}", c.field));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            cs.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = cs
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": c.field})
        })
        .collect();
    (
        409,
        crate::util::status_body(409, "Conflict", &msg, Some(json!({"causes": causes}))),
    )
}
