//! Label and field selectors, open watches and the change history they resume from.

use bytes::Bytes;
use serde_json::{Value, json};

pub type Frame = Result<http_body::Frame<Bytes>, std::io::Error>;

/// One label selector requirement.
#[derive(Clone, Debug, PartialEq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector` (`a=b,c!=d,e in (x,y),!f`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

/// Splits on commas outside parentheses.
fn terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_of(s: &str) -> Result<Vec<String>, String> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: expected a set, found {s:?}"))?;
    Ok(inner
        .split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut out = Vec::new();
        for t in terms(s) {
            let r = if let Some(k) = t.strip_prefix('!') {
                Req::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = t.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set_of(v)?)
            } else if let Some((k, v)) = t.split_once(" in ") {
                Req::In(k.trim().into(), set_of(v)?)
            } else if let Some((k, v)) = t.split_once("!=") {
                Req::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if t.contains(' ') || t.contains('(') {
                return Err(format!("unable to parse requirement: {t:?}"));
            } else {
                Req::Exists(t)
            };
            out.push(r);
        }
        Ok(LabelSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v),
            Req::Ne(k, v) => get(k) != Some(v),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector`: `metadata.name` and `metadata.namespace` (`=`, `==`, `!=`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut out = Vec::new();
        for t in terms(s) {
            let (k, eq, v) = if let Some((k, v)) = t.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                (k, true, v)
            } else {
                return Err(format!("invalid selector: '{t}'; can't understand '{t}'"));
            };
            let k = k.trim();
            if k != "metadata.name" && k != "metadata.namespace" {
                return Err(format!("field label not supported: {k}"));
            }
            out.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let field = k.strip_prefix("metadata.").unwrap_or(k);
            let have = obj
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or("");
            (have == v) == *eq
        })
    }
}

/// An open watch.
pub struct Watcher {
    pub id: u64,
    pub path: String,
    pub client: String,
    pub group: String,
    pub plural: String,
    /// apiVersion and kind the events carry (the version in the URL).
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub bookmarks: bool,
    pub tx: tokio::sync::mpsc::UnboundedSender<Frame>,
}

impl Watcher {
    pub fn covers(&self, group: &str, plural: &str, ns: &str) -> bool {
        self.group == group
            && self.plural == plural
            && self.namespace.as_deref().is_none_or(|n| n == ns)
    }

    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// Sends one event line; false when the client went away.
    pub fn send_raw(&self, ev: &Value) -> bool {
        self.tx
            .send(Ok(http_body::Frame::data(Bytes::from(format!("{ev}\n")))))
            .is_ok()
    }

    pub fn send(&self, ty: &str, obj: &Value) -> bool {
        let o = crate::util::render(obj, &self.api_version, &self.kind);
        self.send_raw(&json!({"type": ty, "object": o}))
    }

    /// Sends what `c` means to this watch (selector transitions become ADDED/DELETED).
    pub fn deliver(&self, c: &Change) -> bool {
        if !self.covers(&c.group, &c.plural, &c.namespace) {
            return true;
        }
        let was = c.old.as_ref().is_some_and(|o| self.selects(o));
        match &c.new {
            None => !was || self.send("DELETED", &c.last),
            Some(n) => match (was, self.selects(n)) {
                (false, true) => self.send("ADDED", n),
                (true, true) => self.send(if c.ty.is_empty() { "MODIFIED" } else { &c.ty }, n),
                (true, false) => self.send("DELETED", n),
                (false, false) => true,
            },
        }
    }

    pub fn bookmark(&self, rv: u64) -> bool {
        self.send_raw(&json!({"type": "BOOKMARK", "object": {
            "kind": self.kind, "apiVersion": self.api_version,
            "metadata": {"resourceVersion": rv.to_string()}}}))
    }

    /// An ERROR event with a 410 `Expired` Status (the client must relist).
    pub fn gone(&self, asked: u64, oldest: u64) -> bool {
        self.send_raw(&json!({"type": "ERROR", "object": crate::util::status_body(
            410, "Expired", &format!("too old resource version: {asked} ({oldest})"), None)}))
    }
}

/// One change to the store, kept for watches resuming from a resourceVersion.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub old: Option<Value>,
    /// `None`: deleted.
    pub new: Option<Value>,
    /// The object as last stored (the final state of a deleted object).
    pub last: Value,
    /// Event type forced by a test (`push_watch_event`), "" otherwise.
    pub ty: String,
}
