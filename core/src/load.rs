//! YAML/JSON text → version-neutral [`Object`]s. Every document is read on its own: an
//! invalid document yields a [`Problem`] naming the file, document, object and field, and
//! never stops the others. Nothing here panics on any input (see the fuzz/proptest target).

use crate::api::{access, gateway, meshbridge, specs, split};
use crate::model::*;
use crate::report::{Problem, Severity, reasons};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The outcome of loading one file.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<Object>,
    pub problems: Vec<Problem>,
    /// Documents of kinds meshbridge does not read (e.g. RBAC objects next to SMI ones).
    pub ignored: Vec<(Origin, String)>,
}

pub fn kind_from_str(s: &str) -> Option<Kind> {
    Some(match s {
        "TrafficSplit" => Kind::TrafficSplit,
        "TrafficTarget" => Kind::TrafficTarget,
        "HTTPRouteGroup" => Kind::HTTPRouteGroup,
        "TCPRoute" => Kind::TCPRoute,
        "UDPRoute" => Kind::UDPRoute,
        "HTTPRoute" => Kind::HTTPRoute,
        "GRPCRoute" => Kind::GRPCRoute,
        "TCPRoute.gateway.networking.k8s.io" => Kind::GatewayTCPRoute,
        "ReferenceGrant" => Kind::ReferenceGrant,
        "Mesh" => Kind::Mesh,
        "Install" => Kind::Install,
        "Namespace" => Kind::Namespace,
        "Service" => Kind::Service,
        "ServiceAccount" => Kind::ServiceAccount,
        "Pod" => Kind::Pod,
        "Deployment" => Kind::Deployment,
        "StatefulSet" => Kind::StatefulSet,
        "DaemonSet" => Kind::DaemonSet,
        "ReplicaSet" => Kind::ReplicaSet,
        "Job" => Kind::Job,
        "EndpointSlice" => Kind::EndpointSlice,
        _ => return None,
    })
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// One document of a YAML stream, with where it sits in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// 1-based index of the document in the stream.
    pub index: usize,
    /// 1-based file line of the document's first content (its first line that is not
    /// blank, a comment or a directive); the line of its start when it has none.
    pub line: usize,
    /// The document's text (without its `---` marker).
    pub text: String,
    /// 1-based file line of the first line of `text` (parser positions are relative to it).
    start: usize,
    /// Columns the first line of `text` is shifted by in the file (content after `--- `).
    shift: usize,
}

/// Splits a YAML stream into documents at `---` / `...` lines, keeping any content that
/// follows `--- ` on the marker line, with each document's index and lines in the file.
pub fn documents(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    // The document being read: its text, the file line its text starts at, its column
    // shift and its first content line.
    let mut cur = String::new();
    let mut start = 1;
    let mut shift = 0;
    let mut first: Option<usize> = None;
    let mut seen_marker = false;
    let push = |cur: &mut String, docs: &mut Vec<Document>, start, shift, first: Option<usize>| {
        docs.push(Document {
            index: docs.len() + 1,
            line: first.unwrap_or(start),
            text: std::mem::take(cur),
            start,
            shift,
        });
    };
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let n = n + 1;
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t") {
            if seen_marker || !is_blank_yaml(&cur) {
                push(&mut cur, &mut docs, start, shift, first);
            } else {
                cur.clear();
            }
            seen_marker = true;
            let rest = &trimmed[3..];
            if rest.trim().is_empty() {
                (start, shift, first) = (n + 1, 0, None);
            } else {
                (start, shift) = (n, 3);
                first = (!is_blank_yaml(rest)).then_some(n);
                cur.push_str(rest);
                cur.push('\n');
            }
        } else if trimmed == "..." {
            push(&mut cur, &mut docs, start, shift, first);
            (start, shift, first) = (n + 1, 0, None);
            seen_marker = false;
        } else {
            if first.is_none() && !is_blank_yaml(trimmed) {
                first = Some(n);
            }
            cur.push_str(line);
        }
    }
    if !is_blank_yaml(&cur) || docs.is_empty() {
        push(&mut cur, &mut docs, start, shift, first);
    }
    docs
}

/// [`documents`] as (1-based index, text).
pub fn split_documents(text: &str) -> Vec<(usize, String)> {
    documents(text)
        .into_iter()
        .map(|d| (d.index, d.text))
        .collect()
}

fn is_blank_yaml(s: &str) -> bool {
    s.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

/// Parses one document's text into a JSON value (`Ok(None)` for an empty document).
pub fn parse_document(text: &str) -> Result<Option<Value>, String> {
    parse_at(text, 1, 0).map_err(|e| e.reason)
}

/// A YAML syntax error: its 1-based line in the file (when known) and the reason.
#[derive(Debug)]
struct SyntaxError {
    line: Option<usize>,
    reason: String,
}

/// Parses a document whose text starts at file line `start`, its first line shifted by
/// `shift` columns: error positions are the file's.
fn parse_at(text: &str, start: usize, shift: usize) -> Result<Option<Value>, SyntaxError> {
    if is_blank_yaml(text) {
        return Ok(None);
    }
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Null) => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let offset = start.saturating_sub(1) as u64;
            let plain = one_line(&e.render_with_options(serde_saphyr::render_options! {
                line_offset: offset,
                snippets: serde_saphyr::SnippetMode::Off,
            }));
            let Some(loc) = e.location().filter(|l| l.line() > 0) else {
                return Err(SyntaxError {
                    line: None,
                    reason: plain,
                });
            };
            let (line, col) = (loc.line() + offset, loc.column());
            let col = if loc.line() == 1 {
                col + shift as u64
            } else {
                col
            };
            // The message without the position it ends with, then the file's position.
            let suffix = format!(" at line {line}, column {}", loc.column());
            let msg = plain.strip_suffix(&suffix).unwrap_or(&plain);
            Err(SyntaxError {
                line: usize::try_from(line).ok(),
                reason: format!("{msg} at line {line}, column {col}"),
            })
        }
    }
}

fn one_line(s: &str) -> String {
    let mut out: String = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// How files are read: the one place for options every runtime passes through
/// (`translate`, `run --source dir`, `local`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The namespace of namespaced objects that state none (`-n NS`, as `kubectl apply -n`);
    /// `None`: `default`. An object that states another namespace keeps it, with a warning.
    pub default_namespace: Option<String>,
}

impl LoadOptions {
    /// The namespace of namespaced objects that state none.
    pub fn namespace(&self) -> &str {
        self.default_namespace.as_deref().unwrap_or("default")
    }
}

/// Files with at least this many documents are parsed on several threads.
const PARALLEL_MIN_DOCS: usize = 512;

/// Loads every document of one file. Large files are parsed on up to
/// `available_parallelism` threads (documents are independent; YAML scanning dominates the
/// load); the result is the same, in the same order, as a sequential load.
pub fn load_str(path: &str, text: &str) -> Loaded {
    load_str_with(path, text, &LoadOptions::default())
}

/// [`load_str`] with options.
pub fn load_str_with(path: &str, text: &str, opts: &LoadOptions) -> Loaded {
    let docs = documents(text);
    let threads = if docs.len() >= PARALLEL_MIN_DOCS {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    } else {
        1
    };
    if threads <= 1 {
        return load_docs(path, &docs, opts);
    }
    let chunk = docs.len().div_ceil(threads);
    let parts: Vec<Loaded> = std::thread::scope(|s| {
        let handles: Vec<_> = docs
            .chunks(chunk)
            .map(|c| s.spawn(move || load_docs(path, c, opts)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out = Loaded::default();
    for p in parts {
        out.objects.extend(p.objects);
        out.problems.extend(p.problems);
        out.ignored.extend(p.ignored);
    }
    out
}

fn load_docs(path: &str, docs: &[Document], opts: &LoadOptions) -> Loaded {
    let mut out = Loaded::default();
    for d in docs {
        let origin = Origin::File {
            path: path.to_string(),
            doc: d.index,
            line: d.line,
        };
        match parse_at(&d.text, d.start, d.shift) {
            Ok(None) => {}
            Ok(Some(v)) => load_value_with(v, &origin, opts, &mut out),
            Err(SyntaxError { line, reason }) => out.problems.push(Problem {
                severity: Severity::Error,
                origin: Origin::File {
                    path: path.to_string(),
                    doc: d.index,
                    line: line.unwrap_or(d.line),
                },
                kind: "Document".into(),
                namespace: String::new(),
                name: String::new(),
                field: "(document)".into(),
                reason: format!("not valid YAML: {reason}"),
                condition_reason: reasons::INVALID_YAML,
            }),
        }
    }
    out
}

/// A document of a kind meshbridge does not read: recorded in `ignored` and said as a
/// warning naming it (`PATH:LINE: Kind ns/name: (document): ... ignored`), so nothing is
/// dropped without a word.
fn ignore(
    out: &mut Loaded,
    origin: &Origin,
    kind: &str,
    api_version: &str,
    ns: Option<&str>,
    name: &str,
) {
    out.ignored.push((origin.clone(), kind.to_string()));
    out.problems.push(Problem {
        severity: Severity::Warning,
        origin: origin.clone(),
        kind: kind.to_string(),
        namespace: ns.unwrap_or("").to_string(),
        name: name.to_string(),
        field: "(document)".into(),
        reason: format!("{kind} ({api_version}) is not a kind meshbridge reads: ignored"),
        condition_reason: reasons::UNKNOWN_KIND,
    });
}

/// Loads one already-parsed object (a `List` is expanded).
pub fn load_value(v: Value, origin: &Origin, out: &mut Loaded) {
    load_value_with(v, origin, &LoadOptions::default(), out)
}

/// [`load_value`] with options.
pub fn load_value_with(v: Value, origin: &Origin, opts: &LoadOptions, out: &mut Loaded) {
    load_value_depth(v, origin, opts, out, 0)
}

fn load_value_depth(v: Value, origin: &Origin, opts: &LoadOptions, out: &mut Loaded, depth: usize) {
    let problem = |kind: String, ns: &str, name: &str, field: &str, cr, reason: String| Problem {
        severity: Severity::Error,
        origin: origin.clone(),
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
        field: field.to_string(),
        reason,
        condition_reason: cr,
    };
    let Value::Object(map) = v else {
        out.problems.push(problem(
            "Document".into(),
            "",
            "",
            "(document)",
            reasons::INVALID_FIELD,
            format!(
                "expected a mapping (a Kubernetes object), found {}",
                type_name(&v)
            ),
        ));
        return;
    };
    let raw_kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ns_raw = map
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind_label = if raw_kind.is_empty() {
        "Document".to_string()
    } else {
        raw_kind.to_string()
    };
    let ns_for_msg = ns_raw.clone().unwrap_or_else(|| opts.namespace().into());

    // `kind: List` (and `FooList`) from kubectl: expand items.
    if raw_kind.ends_with("List")
        && let Some(Value::Array(items)) = map.get("items")
    {
        if depth > 4 {
            out.problems.push(problem(
                kind_label,
                "",
                "",
                "items",
                reasons::INVALID_FIELD,
                "lists nested too deeply".into(),
            ));
            return;
        }
        for item in items.clone() {
            load_value_depth(item, origin, opts, out, depth + 1);
        }
        return;
    }

    let api_version = match map.get("apiVersion") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => {
            out.problems.push(problem(
                kind_label,
                &ns_for_msg,
                &name,
                "apiVersion",
                reasons::INVALID_FIELD,
                format!("expected a string, found {}", type_name(other)),
            ));
            return;
        }
        None => {
            out.problems.push(problem(
                kind_label,
                &ns_for_msg,
                &name,
                "apiVersion",
                reasons::INVALID_FIELD,
                "required field is missing".into(),
            ));
            return;
        }
    };
    if raw_kind.is_empty() {
        out.problems.push(problem(
            kind_label,
            &ns_for_msg,
            &name,
            "kind",
            reasons::INVALID_FIELD,
            "required field is missing or not a string".into(),
        ));
        return;
    }
    let in_gateway_group = api_version
        .rsplit_once('/')
        .is_some_and(|(g, _)| g == gateway::GROUP);
    let kind = match raw_kind {
        "TCPRoute" if in_gateway_group => Some(Kind::GatewayTCPRoute),
        _ => kind_from_str(raw_kind),
    };
    let Some(kind) = kind else {
        // SMI groups: every kind there must be one we know.
        if is_smi_group(&api_version) && !api_version.starts_with("metrics.smi-spec.io/") {
            out.problems.push(problem(
                kind_label,
                &ns_for_msg,
                &name,
                "kind",
                reasons::UNKNOWN_KIND,
                format!("{raw_kind} in {api_version} is not a released SMI kind"),
            ));
        } else {
            ignore(
                out,
                origin,
                raw_kind,
                &api_version,
                ns_raw.as_deref(),
                &name,
            );
        }
        return;
    };
    // Kinds we read only from the core/apps/discovery groups or our own.
    let expected_group = match kind {
        Kind::TrafficSplit => split::GROUP,
        Kind::TrafficTarget => access::GROUP,
        Kind::HTTPRouteGroup | Kind::TCPRoute | Kind::UDPRoute => specs::GROUP,
        Kind::HTTPRoute | Kind::GRPCRoute | Kind::GatewayTCPRoute | Kind::ReferenceGrant => {
            gateway::GROUP
        }
        Kind::Mesh | Kind::Install => meshbridge::GROUP,
        Kind::Namespace | Kind::Service | Kind::ServiceAccount | Kind::Pod => "",
        Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet | Kind::ReplicaSet => "apps",
        Kind::Job => "batch",
        Kind::EndpointSlice => "discovery.k8s.io",
    };
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version.as_str()),
    };
    if group != expected_group {
        if kind.is_smi() || matches!(kind, Kind::Mesh | Kind::Install) {
            let smi_legacy = group == "spec.smi-spec.io" && expected_group == specs::GROUP;
            let reason = if smi_legacy {
                "group spec.smi-spec.io (smi-sdk-go v0.1/v0.2 CRDs) is not SMI; use specs.smi-spec.io".to_string()
            } else {
                format!("{kind} belongs to group {expected_group}, not {group}")
            };
            out.problems.push(problem(
                kind_label,
                &ns_for_msg,
                &name,
                "apiVersion",
                reasons::UNSUPPORTED_VERSION,
                reason,
            ));
        } else {
            // Same kind name in another group (e.g. Gateway API TCPRoute is handled above;
            // Istio `Service`? none) — not ours.
            ignore(
                out,
                origin,
                raw_kind,
                &api_version,
                ns_raw.as_deref(),
                &name,
            );
        }
        return;
    }

    // Metadata.
    let meta_v = map.get("metadata").cloned().unwrap_or(Value::Null);
    let mut meta = match read_meta(&meta_v) {
        Ok(m) => m,
        Err((field, reason)) => {
            out.problems.push(problem(
                kind_label,
                &ns_for_msg,
                &name,
                &field,
                reasons::INVALID_FIELD,
                reason,
            ));
            return;
        }
    };
    meta.api_version = api_version.clone();
    meta.origin = origin.clone();
    if kind == Kind::Namespace {
        meta.namespace = String::new();
    } else if meta.namespace.is_empty() {
        meta.namespace = opts.namespace().into();
    }
    let value = Value::Object(map);
    let key_ns = meta.namespace.clone();
    let key_name = meta.name.clone();
    let warning = |field: String, cr, reason: String| Problem {
        severity: Severity::Warning,
        ..problem(kind.as_str().into(), &key_ns, &key_name, &field, cr, reason)
    };
    if let Some(ns) = &opts.default_namespace
        && kind != Kind::Namespace
        && *ns != meta.namespace
    {
        out.problems.push(warning(
            "metadata.namespace".into(),
            reasons::NAMESPACE_MISMATCH,
            format!(
                "`{}` differs from -n {ns}; the object keeps its own namespace (`kubectl apply -n {ns}` would refuse it)",
                meta.namespace
            ),
        ));
    }
    for u in crate::fields::unknown_fields(kind, group, version, &value) {
        out.problems
            .push(warning(u.path, reasons::UNKNOWN_FIELD, u.reason));
    }
    match build(kind, version, value, meta) {
        Ok(obj) => out.objects.push(obj),
        Err((field, cr, reason)) => out.problems.push(problem(
            kind.as_str().into(),
            &key_ns,
            &key_name,
            &field,
            cr,
            reason,
        )),
    }
}

fn is_smi_group(api_version: &str) -> bool {
    api_version
        .split('/')
        .next()
        .is_some_and(|g| g.ends_with("smi-spec.io"))
}

type BuildErr = (String, &'static str, String);

fn read_meta(v: &Value) -> Result<Meta, (String, String)> {
    let mut meta = Meta::default();
    let m = match v {
        Value::Object(m) => m,
        Value::Null => return Err(("metadata".into(), "required field is missing".into())),
        other => {
            return Err((
                "metadata".into(),
                format!("expected a mapping, found {}", type_name(other)),
            ));
        }
    };
    let s = |field: &str| -> Result<Option<String>, (String, String)> {
        match m.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err((
                format!("metadata.{field}"),
                format!("expected a string, found {}", type_name(other)),
            )),
        }
    };
    meta.name = s("name")?.unwrap_or_default();
    if meta.name.is_empty() {
        return Err(("metadata.name".into(), "required field is missing".into()));
    }
    if !is_dns_subdomain(&meta.name) {
        return Err((
            "metadata.name".into(),
            format!(
                "`{}` is not a valid Kubernetes object name (lowercase RFC 1123 subdomain)",
                meta.name
            ),
        ));
    }
    meta.namespace = s("namespace")?.unwrap_or_default();
    if !meta.namespace.is_empty() && !is_dns_label(&meta.namespace) {
        return Err((
            "metadata.namespace".into(),
            format!("`{}` is not a valid namespace name", meta.namespace),
        ));
    }
    meta.creation_timestamp = s("creationTimestamp")?;
    meta.uid = s("uid")?;
    meta.resource_version = s("resourceVersion")?;
    meta.generation = match m.get("generation") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(other) => {
            return Err((
                "metadata.generation".into(),
                format!("expected an integer, found {}", type_name(other)),
            ));
        }
    };
    for (field, target) in [
        ("labels", &mut meta.labels),
        ("annotations", &mut meta.annotations),
    ] {
        match m.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                for (k, v) in o {
                    match v {
                        Value::String(s) => {
                            target.insert(k.clone(), s.clone());
                        }
                        other => {
                            return Err((
                                format!("metadata.{field}.{k}"),
                                format!("expected a string, found {}", type_name(other)),
                            ));
                        }
                    }
                }
            }
            Some(other) => {
                return Err((
                    format!("metadata.{field}"),
                    format!("expected a mapping, found {}", type_name(other)),
                ));
            }
        }
    }
    Ok(meta)
}

pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn typed<T: DeserializeOwned>(v: Value) -> Result<T, BuildErr> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(root)".to_string()
        } else {
            path
        };
        (
            path,
            reasons::INVALID_FIELD,
            one_line(&e.into_inner().to_string()),
        )
    })
}

/// [`typed`] for the value of `spec`: field paths start with `spec`.
fn typed_spec<T: DeserializeOwned>(v: Value) -> Result<T, BuildErr> {
    typed(v).map_err(|(f, cr, r)| {
        let f = if f == "(root)" {
            "spec".into()
        } else {
            format!("spec.{f}")
        };
        (f, cr, r)
    })
}

fn unsupported(kind: Kind, version: &str, known: &str) -> BuildErr {
    let draft = if kind == Kind::TrafficTarget && version == "v1alpha4" {
        " (access v1alpha4 is an unreleased draft)"
    } else {
        ""
    };
    (
        "apiVersion".into(),
        reasons::UNSUPPORTED_VERSION,
        format!("{kind} {version} is not a released version{draft}; supported: {known}"),
    )
}

fn build(kind: Kind, version: &str, v: Value, mut meta: Meta) -> Result<Object, BuildErr> {
    // A Kubernetes built-in kind: typed by k8s-openapi, in its one served version.
    macro_rules! built_in {
        ($variant:ident) => {
            core_v1(kind, version, v, meta, |o, m| {
                Object::$variant(Box::new(o), m)
            })?
        };
    }
    Ok(match kind {
        Kind::TrafficSplit => {
            meta.prefix = "spec.";
            let (service, backends, matches) = match version {
                "v1alpha1" => {
                    let o: split::v1alpha1::TrafficSplit = typed(v)?;
                    let b = o.spec.backends.into_iter().map(Into::into).collect();
                    (o.spec.service, b, vec![])
                }
                "v1alpha2" => {
                    let o: split::v1alpha2::TrafficSplit = typed(v)?;
                    let b = o.spec.backends.into_iter().map(Into::into).collect();
                    (o.spec.service, b, vec![])
                }
                "v1alpha3" | "v1alpha4" => {
                    // v1alpha3 and v1alpha4 have identical schemas.
                    let o: split::v1alpha4::TrafficSplit = typed(v)?;
                    let b = o.spec.backends.into_iter().map(Into::into).collect();
                    let m = o.spec.matches.into_iter().map(Into::into).collect();
                    (o.spec.service, b, m)
                }
                other => return Err(unsupported(kind, other, "v1alpha1–v1alpha4")),
            };
            Object::TrafficSplit(TrafficSplit {
                meta,
                service,
                backends,
                matches,
            })
        }
        Kind::TrafficTarget => {
            let (prefix, (destination, port), rules_field, rules, sources) = match version {
                "v1alpha1" => {
                    let o: access::v1alpha1::TrafficTarget = typed(v)?;
                    let d = o.destination.into_subject_and_port();
                    ("", d, "specs", o.specs, o.sources)
                }
                "v1alpha2" => {
                    let s = typed::<access::v1alpha2::TrafficTarget>(v)?.spec;
                    let d = s.destination.into_subject_and_port();
                    ("spec.", d, "rules", s.rules, s.sources)
                }
                "v1alpha3" => {
                    let s = typed::<access::v1alpha3::TrafficTarget>(v)?.spec;
                    let d = (s.destination.into(), None);
                    ("spec.", d, "rules", s.rules, s.sources)
                }
                other => return Err(unsupported(kind, other, "v1alpha1–v1alpha3")),
            };
            meta.prefix = prefix;
            Object::TrafficTarget(TrafficTarget {
                meta,
                destination,
                port,
                rules_field,
                rules: rules.into_iter().map(Into::into).collect(),
                sources: sources.into_iter().map(Into::into).collect(),
            })
        }
        Kind::HTTPRouteGroup => {
            let (matches, prefix) = match version {
                // v1alpha1 and v1alpha2 have identical schemas, as have v1alpha3 and v1alpha4.
                "v1alpha1" | "v1alpha2" => {
                    (typed::<specs::v1alpha2::HTTPRouteGroup>(v)?.matches, "")
                }
                "v1alpha3" | "v1alpha4" => (
                    typed::<specs::v1alpha4::HTTPRouteGroup>(v)?.spec.matches,
                    "spec.",
                ),
                other => return Err(unsupported(kind, other, "v1alpha1–v1alpha4")),
            };
            meta.prefix = prefix;
            Object::HttpRouteGroup(HttpRouteGroup {
                meta,
                matches: matches
                    .into_iter()
                    .map(|m| HttpMatch {
                        name: m.name,
                        path_regex: m.path_regex,
                        methods: m.methods,
                        headers: m.headers.unwrap_or_default(),
                    })
                    .collect(),
            })
        }
        Kind::TCPRoute => {
            let (match_name, ports, prefix) = match version {
                // v1alpha1 and v1alpha2 have identical schemas.
                "v1alpha1" | "v1alpha2" => {
                    typed::<specs::v1alpha2::TCPRoute>(v)?;
                    (None, None, "")
                }
                "v1alpha3" => {
                    typed::<specs::v1alpha3::TCPRoute>(v)?;
                    (None, None, "spec.")
                }
                "v1alpha4" => {
                    let o: specs::v1alpha4::TCPRoute = typed(v)?;
                    let m = o.spec.matches.unwrap_or_default();
                    (m.name, m.ports, "spec.")
                }
                other => return Err(unsupported(kind, other, "v1alpha1–v1alpha4")),
            };
            meta.prefix = prefix;
            Object::TcpRoute(PortRoute {
                meta,
                match_name,
                ports,
            })
        }
        Kind::UDPRoute => match version {
            "v1alpha4" => {
                let o: specs::v1alpha4::UDPRoute = typed(v)?;
                let m = o.spec.matches.unwrap_or_default();
                meta.prefix = "spec.";
                Object::UdpRoute(PortRoute {
                    meta,
                    match_name: m.name,
                    ports: m.ports,
                })
            }
            other => return Err(unsupported(kind, other, "v1alpha4")),
        },
        Kind::Mesh => match version {
            "v1alpha1" => Object::Mesh(Box::new(typed(v)?), meta),
            other => return Err(unsupported(kind, other, "v1alpha1")),
        },
        Kind::Install => match version {
            "v1alpha1" => Object::Install(Box::new(typed(v)?), meta),
            other => return Err(unsupported(kind, other, "v1alpha1")),
        },
        Kind::HTTPRoute | Kind::GRPCRoute | Kind::GatewayTCPRoute => {
            meta.prefix = "spec.";
            let known = match kind {
                Kind::HTTPRoute => &["v1", "v1beta1"][..],
                Kind::GRPCRoute => &["v1", "v1alpha2"][..],
                _ => &["v1alpha2", "v1"][..],
            };
            if !known.contains(&version) {
                return Err(unsupported(kind, version, &known.join(", ")));
            }
            let spec = v.get("spec").cloned().unwrap_or(Value::Null);
            if !spec.is_object() {
                return Err((
                    "spec".into(),
                    reasons::INVALID_FIELD,
                    "required field is missing or not a mapping".into(),
                ));
            }
            let spec = match kind {
                Kind::HTTPRoute => gateway::RouteSpec::Http(typed_spec(spec)?),
                Kind::GRPCRoute => gateway::RouteSpec::Grpc(typed_spec(spec)?),
                _ => gateway::RouteSpec::Tcp(typed_spec(spec)?),
            };
            Object::GammaRoute(Box::new(GammaRoute { meta, spec }))
        }
        Kind::ReferenceGrant => {
            meta.prefix = "spec.";
            if !["v1beta1", "v1alpha2", "v1"].contains(&version) {
                return Err(unsupported(kind, version, "v1beta1, v1"));
            }
            let spec = v.get("spec").cloned().unwrap_or(Value::Null);
            let spec = typed_spec(spec)?;
            Object::ReferenceGrant(Box::new(ReferenceGrant { meta, spec }))
        }
        Kind::Namespace => built_in!(Namespace),
        Kind::Service => built_in!(Service),
        Kind::ServiceAccount => built_in!(ServiceAccount),
        Kind::Pod => built_in!(Pod),
        Kind::Deployment => built_in!(Deployment),
        Kind::StatefulSet => built_in!(StatefulSet),
        Kind::DaemonSet => built_in!(DaemonSet),
        Kind::ReplicaSet => built_in!(ReplicaSet),
        Kind::Job => built_in!(Job),
        Kind::EndpointSlice => built_in!(EndpointSlice),
    })
}

fn core_v1<T: DeserializeOwned>(
    kind: Kind,
    version: &str,
    v: Value,
    meta: Meta,
    wrap: impl FnOnce(T, Meta) -> Object,
) -> Result<Object, BuildErr> {
    if version != "v1" {
        return Err(unsupported(kind, version, "v1"));
    }
    Ok(wrap(typed(v)?, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents() {
        let d = split_documents("a: 1\n---\nb: 2\n--- {c: 3}\n...\n");
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].1, "a: 1\n");
        assert_eq!(d[2].1.trim(), "{c: 3}");
        let d = split_documents("---\n# comment\na: 1\n");
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn bad_documents_do_not_stop_good_ones() {
        let text = "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: a}\nspec: {service: s, backends: [{service: b, weight: 1}]}\n---\n: : :\n---\n[1,2]\n---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: c}\nspec: {service: s, backends: [{service: b, weight: {x: 1}}]}\n";
        let l = load_str("f.yaml", text);
        assert_eq!(l.objects.len(), 1);
        assert_eq!(l.problems.len(), 3, "{:#?}", l.problems);
        let p = l.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert!(
            p[2].starts_with("f.yaml:10: TrafficSplit default/c: spec.backends[0].weight: "),
            "{}",
            p[2]
        );
        assert!(
            p[1].starts_with("f.yaml:8: Document -/-: (document): expected a mapping"),
            "{}",
            p[1]
        );
    }

    const TS: &str = "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n";

    #[test]
    fn objects_carry_the_file_line_of_their_first_content() {
        // A leading `---`, comments and blank lines before and inside documents.
        let text = format!(
            "# header\n---\n# first\n\n{TS}metadata: {{name: a}}\nspec: {{service: s, backends: []}}\n---\n# second: an empty document\n---\n\n# third\n{TS}metadata: {{name: c}}\nspec: {{service: s, backends: [{{service: b, weight: x}}]}}\n--- {{apiVersion: v1, kind: Service, metadata: {{name: s}}}}\n"
        );
        let l = load_str("f.yaml", &text);
        let lines: Vec<(String, String)> = l
            .objects
            .iter()
            .map(|o| (o.key().name, o.meta().origin.to_string()))
            .collect();
        assert_eq!(
            lines,
            [
                ("a".into(), "f.yaml:5".into()),
                ("s".into(), "f.yaml:18".into())
            ]
        );
        assert_eq!(
            l.problems[0].origin,
            Origin::File {
                path: "f.yaml".into(),
                doc: 3,
                line: 14
            }
        );
        assert!(
            l.problems[0]
                .to_string()
                .starts_with("f.yaml:14: TrafficSplit default/c: spec.backends[0].weight")
        );
    }

    #[test]
    fn syntax_errors_are_placed_in_the_file() {
        let text = format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: a}}\n---\n# comment\n{TS}metadata: {{name: b}}\nspec: {{service: [s}}\n--- {{a: [1}}\n"
        );
        let l = load_str("f.yaml", &text);
        let p: Vec<String> = l.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(l.objects.len(), 1);
        assert_eq!(
            p,
            [
                "f.yaml:10: Document -/-: (document): not valid YAML: mismatched bracket '[' closed by '}' at line 10, column 17",
                "f.yaml:11: Document -/-: (document): not valid YAML: mismatched bracket '[' closed by '}' at line 11, column 9",
            ]
        );
    }

    #[test]
    fn default_namespace_applies_to_objects_without_one() {
        let text = format!(
            "{TS}metadata: {{name: a}}\nspec: {{service: s, backends: []}}\n---\n{TS}metadata: {{name: b, namespace: other}}\nspec: {{service: s, backends: []}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n"
        );
        let keys = |l: &Loaded| {
            l.objects
                .iter()
                .map(|o| o.key().to_string())
                .collect::<Vec<_>>()
        };
        let l = load_str("f.yaml", &text);
        assert_eq!(
            keys(&l),
            [
                "TrafficSplit/default/a",
                "TrafficSplit/other/b",
                "Namespace//shop"
            ]
        );
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        let opts = LoadOptions {
            default_namespace: Some("shop".into()),
        };
        let l = load_str_with("f.yaml", &text, &opts);
        assert_eq!(
            keys(&l),
            [
                "TrafficSplit/shop/a",
                "TrafficSplit/other/b",
                "Namespace//shop"
            ]
        );
        let p: Vec<String> = l.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            p,
            [
                "f.yaml:6: TrafficSplit other/b: metadata.namespace: `other` differs from -n shop; the object keeps its own namespace (`kubectl apply -n shop` would refuse it)"
            ]
        );
        assert!(!l.problems[0].is_error());
    }

    #[test]
    fn unknown_fields_are_warnings_with_their_path() {
        let text = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: r}\nmatches: [{name: a}]\nspec: {matches: []}\n---\n# a port on a version without one\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t}\nspec:\n  destination: {kind: ServiceAccount, name: a, port: 8080}\n  rules: []\n  sources: []\n";
        let l = load_str("f.yaml", text);
        assert_eq!(
            l.objects.len(),
            2,
            "unknown fields do not make objects invalid: {:?}",
            l.problems
        );
        let p: Vec<String> = l.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            p,
            [
                "f.yaml:1: HTTPRouteGroup default/r: matches: unknown field \"matches\" in HTTPRouteGroup specs.smi-spec.io/v1alpha4; ignored (did you mean \"spec.matches\"?)",
                "f.yaml:8: TrafficTarget default/t: spec.destination.port: unknown field \"spec.destination.port\" in TrafficTarget access.smi-spec.io/v1alpha3; ignored (a field of TrafficTarget v1alpha2, not v1alpha3)",
            ]
        );
        assert!(
            l.problems
                .iter()
                .all(|p| !p.is_error() && p.condition_reason == reasons::UNKNOWN_FIELD)
        );
    }

    #[test]
    fn missing_api_version() {
        let l = load_str(
            "x.yaml",
            "kind: HTTPRouteGroup\nmetadata: {name: r}\nmatches: []\n",
        );
        assert_eq!(
            l.problems[0].to_string(),
            "x.yaml:1: HTTPRouteGroup default/r: apiVersion: required field is missing"
        );
    }
}
