//! Small helpers: time, query decoding, JSON paths, merge patches, Status bodies.

use serde_json::{Map, Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Now as RFC 3339 with second precision (what the API server writes).
pub fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Percent-decoding of a query component (`+` is a space).
pub fn decode(s: &str) -> String {
    pct_decode(&s.replace('+', " "))
}

/// Percent-decoding (`%XX`), e.g. of a path segment (`+` stays).
pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch (add, remove, replace, move, copy, test).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch is an array")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("missing path")?;
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match op["op"].as_str().unwrap_or("") {
            "add" => ptr_add(target, path, value)?,
            "remove" => {
                ptr_remove(target, path)?;
            }
            "replace" => {
                ptr_remove(target, path)?;
                ptr_add(target, path, value)?;
            }
            "move" | "copy" => {
                let from = op["from"].as_str().ok_or("missing from")?;
                let v = target
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| format!("missing value at {from}"))?;
                if op["op"] == "move" {
                    ptr_remove(target, from)?;
                }
                ptr_add(target, path, v)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unknown op {other:?}")),
        }
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// The parent path of JSON pointer `path`, the value there and the last (unescaped) token.
fn parent_of<'a, 'p>(
    target: &'a mut Value,
    path: &'p str,
) -> Result<(&'p str, &'a mut Value, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or("bad path")?;
    let p = target
        .pointer_mut(parent)
        .ok_or_else(|| format!("missing parent of {path}"))?;
    Ok((parent, p, unescape(last)))
}

fn ptr_add(target: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = v;
        return Ok(());
    }
    let (parent, p, last) = parent_of(target, path)?;
    match p {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(v);
            } else {
                let i: usize = last.parse().map_err(|_| "bad index")?;
                if i > a.len() {
                    return Err("index out of range".into());
                }
                a.insert(i, v);
            }
        }
        _ => return Err(format!("cannot add to {parent}")),
    }
    Ok(())
}

fn ptr_remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, p, last) = parent_of(target, path)?;
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(|| format!("missing {path}")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| "bad index")?;
            if i >= a.len() {
                return Err("index out of range".into());
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("cannot remove from {parent}")),
    }
}

/// A failure `Status` body, in the API server's field order.
pub fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Status"));
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("metadata".into(), json!({}));
    m.insert("status".into(), json!("Failure"));
    m.insert("message".into(), json!(message));
    if !reason.is_empty() {
        m.insert("reason".into(), json!(reason));
    }
    if let Some(d) = details {
        m.insert("details".into(), d);
    }
    m.insert("code".into(), json!(code));
    Value::Object(m)
}

/// `resource.group` (just `resource` for the core group).
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// `details` of an error about one object (`kind` is the resource, as the server writes it).
pub fn details(name: &str, group: &str, resource: &str) -> Value {
    let mut m = Map::new();
    if !name.is_empty() {
        m.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        m.insert("group".into(), json!(group));
    }
    m.insert("kind".into(), json!(resource));
    Value::Object(m)
}

pub fn not_found(group: &str, resource: &str, name: &str) -> (u16, Value) {
    (
        404,
        status_body(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", qualified(resource, group)),
            Some(details(name, group, resource)),
        ),
    )
}

/// What a real server answers for a path it does not serve.
pub fn no_such_resource() -> (u16, Value) {
    (
        404,
        status_body(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        ),
    )
}

pub fn bad_request(message: &str) -> (u16, Value) {
    (400, status_body(400, "BadRequest", message, None))
}

pub fn conflict_modified(group: &str, resource: &str, name: &str) -> (u16, Value) {
    (
        409,
        status_body(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(resource, group)
            ),
            Some(details(name, group, resource)),
        ),
    )
}

/// Renders an object as served at `api_version` (apiVersion and kind first).
pub fn render(v: &Value, api_version: &str, kind: &str) -> Value {
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(api_version));
    m.insert("kind".into(), json!(kind));
    if let Some(o) = v.as_object() {
        for (k, x) in o {
            if k != "apiVersion" && k != "kind" {
                m.insert(k.clone(), x.clone());
            }
        }
    }
    Value::Object(m)
}

/// A list item: the object without apiVersion and kind (as a real server lists them).
pub fn list_item(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
    }
    v
}

pub fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

/// Sorts Kubernetes versions by the API server's priority: GA, then beta, then alpha,
/// higher numbers first; non-Kubernetes versions last, alphabetically.
pub fn version_priority(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (u8, i64, i64, String) {
        let parse = |s: &str| -> Option<(i64, u8, i64)> {
            let s = s.strip_prefix('v')?;
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let major: i64 = s[..end].parse().ok()?;
            let rest = &s[end..];
            if rest.is_empty() {
                return Some((major, 0, 0));
            }
            for (tag, rank) in [("beta", 1u8), ("alpha", 2u8)] {
                if let Some(n) = rest.strip_prefix(tag) {
                    return Some((major, rank, n.parse().ok()?));
                }
            }
            None
        };
        match parse(v) {
            Some((major, rank, minor)) => (rank, -major, -minor, String::new()),
            None => (3, 0, 0, v.to_string()),
        }
    }
    key(a).cmp(&key(b))
}
