//! Gateway API routes in the GAMMA (mesh) profile → the IR. An HTTPRoute, GRPCRoute or
//! TCPRoute whose `parentRefs` name a Service (`group: ""`, `kind: Service`) routes the
//! traffic clients send to that Service, exactly as a TrafficSplit does; routes that name
//! only Gateways are north-south routes for a gateway controller and are not read.
//!
//! Each route object is validated on its own (field path + reason, like SMI objects), then
//! becomes one [`Split`] per parent Service and joins the TrafficSplits in the one conflict
//! rule of [`crate::build`]. What a route means:
//! - **Producer and consumer routes**: a route in the parent Service's namespace applies to
//!   every client; one in another namespace applies only to clients of its own namespace
//!   ([`Ir::consumer_splits`]) and wins over the producer's for them.
//! - **Order**: Gateway API's match precedence, not rule order: exact paths, then regular
//!   expressions, then path prefixes (longest first), then a method, then more headers,
//!   then more query parameters; ties keep rule and match order. The IR lists the rules in
//!   that order and the first match applies; a request no rule matches is answered 404.
//! - **Same IR as SMI**: a route that is exactly a split — one rule for every request, or
//!   rules with matches to one weighted set of backends followed by a catch-all to the parent
//!   Service itself, no filters, timeouts or retries — is built as an SMI split (`backends`,
//!   `matches`), so a TrafficSplit and its GAMMA equivalent give identical outputs.
//! - **backendRefs**: Services (`group: ""`), reached on the port the client called (a
//!   `port` other than the parent's is refused: the IR reaches backends on the called port,
//!   as SMI does); a backend in another namespace needs a ReferenceGrant there that allows
//!   this route's kind from its namespace; weight default 1.
//! - Routes labelled as meshbridge's own output (`app.kubernetes.io/managed-by: meshbridge`
//!   and `meshbridge.io/owner`, what the gateway-api backend writes) are not read as input.
//! - HTTPRoute/GRPCRoute apply to the parent's ports that can carry HTTP (not those declared
//!   opaque TCP); a TCPRoute to every TCP port; `parentRefs[].port` narrows to one port.

use crate::api::gateway::{self, BackendRef, ParentRef, RouteFilter, RouteSpec};
use crate::build::{Candidate, Ctx, METHODS, check_regex, is_token_byte, split_ports, ts_key};
use crate::ir::*;
use crate::model::{GammaRoute, Kind, ObjectKey};
use crate::report::{Severity, reasons};
use crate::snapshot::Snapshot;
use std::collections::{BTreeMap, BTreeSet};

/// Valid routes' matches per rule, for TrafficTargets that name a route:
/// `(kind, namespace, name)` → `(rule name, the rule's matches)` in rule order.
pub type Routes = BTreeMap<(Kind, String, String), Vec<(Option<String>, Vec<HttpRoute>)>>;

/// A backend as written: the Service, its weight and the field naming it.
struct RuleBackend {
    service: SvcKey,
    weight: u64,
    /// `port` as written.
    port: Option<u16>,
    field: String,
}

/// One rule before ordering: its matches (with precedence keys), its backends and actions.
struct RawRule {
    field: String,
    name: Option<String>,
    matches: Vec<(HttpRoute, Precedence)>,
    /// The rule has no `matches`: it matches every request.
    match_all: bool,
    backends: Vec<RuleBackend>,
    filters: Vec<Filter>,
    timeout_ms: Option<u64>,
    backend_timeout_ms: Option<u64>,
    retry: Option<Retry>,
}

/// Gateway API match precedence, as a sort key (smaller first).
type Precedence = (
    u8,
    std::cmp::Reverse<usize>,
    u8,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
);

pub(crate) fn candidates<'a>(
    snap: &'a Snapshot,
    svc_namespaces: &BTreeSet<&String>,
    ir: &mut Ir,
    out: &mut Vec<Candidate<'a>>,
) -> Routes {
    let mut routes = Routes::new();
    for ((kind, ns, name), r) in &snap.gamma_routes {
        // meshbridge's own output (the gateway-api backend's routes): not input.
        if r.meta
            .labels
            .get(crate::adapter::MANAGED_BY_LABEL)
            .map(String::as_str)
            == Some(crate::adapter::MANAGED_BY_VALUE)
            && r.meta.labels.contains_key(crate::adapter::OWNER_LABEL)
        {
            continue;
        }
        let parents: Vec<(usize, &ParentRef)> = r
            .spec
            .parent_refs()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_service())
            .collect();
        let mut cx = Ctx::new(*kind, &r.meta);
        let rules = read_rules(snap, r, &mut cx);
        if parents.is_empty() {
            // Not a mesh route (Gateway parents only): its matches may still be named by a
            // TrafficTarget.
            if cx.status.usable() {
                routes.insert((*kind, ns.clone(), name.clone()), rule_matches(&rules));
            }
            continue;
        }
        if let RouteSpec::Http(s) = &r.spec
            && !s.hostnames.is_empty()
        {
            cx.push(
                Severity::Warning,
                "spec.hostnames".into(),
                reasons::UNSUPPORTED_VALUE,
                "ignored for Service parents (GAMMA): the route applies to the Service's own names",
            );
        }
        let mut splits = Vec::new();
        for (pi, p) in parents {
            let field = format!("spec.parentRefs[{pi}]");
            if let Some(s) = parent_split(svc_namespaces, ir, &mut cx, *kind, &rules, p, &field) {
                let consumer = (s.root.namespace != *ns).then(|| ns.clone());
                splits.push((s, consumer, field));
            }
        }
        if cx.status.usable() {
            routes.insert((*kind, ns.clone(), name.clone()), rule_matches(&rules));
        }
        out.push(Candidate {
            order: ts_key(&r.meta, *kind),
            cx,
            splits,
            selects_nothing: false,
        });
    }
    routes
}

fn rule_matches(rules: &[RawRule]) -> Vec<(Option<String>, Vec<HttpRoute>)> {
    rules
        .iter()
        .map(|r| {
            let mut m: Vec<HttpRoute> = r.matches.iter().map(|(m, _)| m.clone()).collect();
            if r.match_all {
                m.clear();
            }
            (r.name.clone(), m)
        })
        .collect()
}

/// The Split a route gives one parent Service, or `None` when the parent is invalid.
#[allow(clippy::too_many_arguments)]
fn parent_split(
    svc_namespaces: &BTreeSet<&String>,
    ir: &Ir,
    cx: &mut Ctx,
    kind: Kind,
    rules: &[RawRule],
    p: &ParentRef,
    field: &str,
) -> Option<Split> {
    let ns = cx.meta.namespace.clone();
    let pns = p
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or(ns.clone());
    if !crate::load::is_dns_label(&p.name) {
        cx.invalid(
            format!("{field}.name"),
            reasons::INVALID_FIELD,
            format!("`{}` is not a Service name", p.name),
        );
        return None;
    }
    let root = SvcKey::new(pns.clone(), p.name.clone());
    let known_ns = svc_namespaces.contains(&pns);
    let root_svc = ir.services.get(&root);
    if known_ns && root_svc.is_none() {
        cx.unresolved(
            Severity::Warning,
            format!("{field}.name"),
            reasons::SERVICE_NOT_FOUND,
            format!("Service {root} not found"),
        );
    }
    let mut port: Option<u16> = None;
    if let Some(n) = p.port {
        match u16::try_from(n).ok().filter(|n| *n > 0) {
            Some(n) => port = Some(n),
            None => {
                cx.invalid(
                    format!("{field}.port"),
                    reasons::INVALID_PORT,
                    format!("{n} is not a port number (1–65535)"),
                );
                return None;
            }
        }
    }
    if let Some(sec) = &p.section_name {
        match root_svc.and_then(|s| s.ports.iter().find(|sp| sp.name.as_deref() == Some(sec))) {
            Some(sp) if port.is_none_or(|n| n == sp.port) => port = Some(sp.port),
            Some(sp) => {
                cx.invalid(
                    format!("{field}.sectionName"),
                    reasons::INVALID_FIELD,
                    format!(
                        "port `{sec}` is {}, not the `port` {}",
                        sp.port,
                        port.unwrap_or(0)
                    ),
                );
                return None;
            }
            None if root_svc.is_some() => {
                cx.unresolved(
                    Severity::Error,
                    format!("{field}.sectionName"),
                    reasons::SERVICE_NOT_FOUND,
                    format!("Service {root} has no port named `{sec}`"),
                );
                return None;
            }
            None => {}
        }
    }
    if let (Some(n), Some(s)) = (port, root_svc)
        && s.port(n).is_none()
    {
        cx.unresolved(
            Severity::Error,
            format!("{field}.port"),
            reasons::SERVICE_NOT_FOUND,
            format!("Service {root} has no port {n}"),
        );
        return None;
    }
    // The IR reaches backends on the port the client called: a backendRef `port` must be
    // that port (the parent's, or the root Service's only port).
    let called: Option<u16> = port.or_else(|| match root_svc.map(|s| s.ports.as_slice()) {
        Some([only]) => Some(only.port),
        _ => None,
    });
    for r in rules {
        for b in &r.backends {
            let refused = match (b.port, called) {
                (Some(bp), Some(c)) => bp != c,
                (Some(_), None) => root_svc.is_some(),
                (None, _) => false,
            };
            if refused {
                cx.invalid(
                    format!("{}.port", b.field),
                    reasons::UNSUPPORTED_VALUE,
                    format!(
                        "{}: meshbridge reaches backends on the port the client called ({}); set parentRefs[].port to the same port",
                        b.port.unwrap_or(0),
                        called.map(|c| c.to_string()).unwrap_or_else(|| "any port of the Service".into())
                    ),
                );
                return None;
            }
        }
    }
    // Backends: every rule's, each Service once (the weight of its first rule).
    let mut backends: Vec<Backend> = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    for r in rules {
        for b in &r.backends {
            if !backends.iter().any(|x| x.service == b.service) {
                backends.push(Backend {
                    service: b.service.clone(),
                    weight: b.weight,
                    is_root: b.service == root,
                });
                fields.push(b.field.clone());
            }
        }
    }
    let on_port = |sp: &ServicePort| -> bool {
        if port.is_some_and(|n| n != sp.port) || sp.protocol != Protocol::Tcp {
            return false;
        }
        kind == Kind::GatewayTCPRoute || sp.kind() != PortKind::Opaque
    };
    let mut split = as_split(cx.key.clone(), root.clone(), backends.clone(), rules);
    let fields: Vec<String> = split
        .backends
        .iter()
        .map(|b| {
            backends
                .iter()
                .position(|x| x.service == b.service)
                .map(|i| fields[i].clone())
                .unwrap_or_default()
        })
        .collect();
    split.ports = split_ports(ir, cx, &root, &split.backends, &fields, known_ns, on_port);
    Some(split)
}

/// The IR form of a route's rules for one parent: an SMI-shaped split when the rules are
/// exactly one, else the route table.
fn as_split(parent: ObjectKey, root: SvcKey, backends: Vec<Backend>, rules: &[RawRule]) -> Split {
    let index = |s: &SvcKey| backends.iter().position(|b| b.service == *s).unwrap_or(0);
    let weights = |r: &RawRule| -> Vec<(usize, u64)> {
        r.backends
            .iter()
            .map(|b| (index(&b.service), b.weight))
            .collect()
    };
    let plain = |r: &RawRule| {
        r.filters.is_empty()
            && r.timeout_ms.is_none()
            && r.backend_timeout_ms.is_none()
            && r.retry.is_none()
    };
    let catch_all = |r: &RawRule| r.match_all || r.matches.iter().any(|(m, _)| m.is_catch_all());
    let mut split = Split {
        parent,
        root: root.clone(),
        backends: vec![],
        matches: vec![],
        ports: vec![],
        rules: vec![],
    };
    let with_weights = |backends: &[Backend], w: &[(usize, u64)]| -> Vec<Backend> {
        w.iter()
            .map(|(i, wt)| Backend {
                weight: *wt,
                ..backends[*i].clone()
            })
            .collect()
    };
    // One rule for every request: a split.
    if let [r] = rules
        && plain(r)
        && catch_all(r)
        && !r.backends.is_empty()
    {
        split.backends = with_weights(&backends, &weights(r));
        return split;
    }
    // Matched rules with one weighted set, then everything else to the root: an A/B split.
    let ordered = order(rules);
    if let Some((last, head)) = ordered.split_last()
        && !head.is_empty()
        && head.iter().all(|(r, _)| plain(r) && !r.backends.is_empty())
        && plain(last.0)
        && catch_all(last.0)
        && last.0.backends.len() == 1
        && last.0.backends[0].service == root
        && last.0.backends[0].weight > 0
        && head.iter().all(|(r, _)| weights(r) == weights(head[0].0))
        && head
            .iter()
            .all(|(_, ms)| ms.iter().all(|m| !m.is_catch_all()))
    {
        split.backends = with_weights(&backends, &weights(head[0].0));
        split.matches = head.iter().flat_map(|(_, ms)| ms.iter().cloned()).collect();
        return split;
    }
    split.rules = ordered
        .iter()
        .map(|(r, ms)| RouteRule {
            field: r.field.clone(),
            name: r.name.clone(),
            matches: ms.clone(),
            backends: weights(r),
            filters: r.filters.clone(),
            timeout_ms: r.timeout_ms,
            backend_timeout_ms: r.backend_timeout_ms,
            retry: r.retry.clone(),
        })
        .collect();
    split.backends = backends;
    split
}

/// The rules in Gateway API precedence order: each match sorted by its precedence (ties keep
/// rule then match order), consecutive matches of one rule merged back into one entry.
fn order(rules: &[RawRule]) -> Vec<(&RawRule, Vec<HttpRoute>)> {
    let mut flat: Vec<(Precedence, usize, usize, &RawRule, Option<&HttpRoute>)> = Vec::new();
    for (ri, r) in rules.iter().enumerate() {
        if r.match_all {
            flat.push((catch_all_precedence(), ri, 0, r, None));
        } else {
            for (mi, (m, p)) in r.matches.iter().enumerate() {
                flat.push((*p, ri, mi, r, Some(m)));
            }
        }
    }
    flat.sort_by_key(|a| (a.0, a.1, a.2));
    let mut out: Vec<(usize, &RawRule, Vec<HttpRoute>)> = Vec::new();
    for (_, ri, _, r, m) in flat {
        match out.last_mut() {
            Some((last, _, ms)) if *last == ri => ms.extend(m.cloned()),
            _ => out.push((ri, r, m.cloned().into_iter().collect())),
        }
    }
    out.into_iter().map(|(_, r, ms)| (r, ms)).collect()
}

fn catch_all_precedence() -> Precedence {
    use std::cmp::Reverse;
    (2, Reverse(1), 1, Reverse(0), Reverse(0))
}

/// A match reader: the match, its field path and its IR name → the IR match with its
/// precedence (None when invalid, with the problem pushed).
type MatchReader<M> = fn(&mut Ctx, &M, &str, String) -> Option<(HttpRoute, Precedence)>;

/// One rule of an HTTPRoute or GRPCRoute (`(index, name)`): its name, matches (read by
/// `read`), filters and backendRefs; timeouts and retries are the caller's.
fn http_like_rule<M>(
    snap: &Snapshot,
    cx: &mut Ctx,
    names: &mut BTreeSet<String>,
    (i, name): (usize, Option<&str>),
    ms: &[M],
    read: MatchReader<M>,
    (fs, refs): (&[RouteFilter], &[BackendRef]),
) -> RawRule {
    let field = format!("spec.rules[{i}]");
    check_rule_name(cx, names, name, &field);
    let mut matches = Vec::new();
    for (j, m) in ms.iter().enumerate() {
        let label = rule_label(name, i, j, ms.len());
        if let Some(hm) = read(cx, m, &format!("{field}.matches[{j}]"), label) {
            matches.push(hm);
        }
    }
    let filters = filters(cx, fs, &format!("{field}.filters"), &matches);
    let backends = backend_refs(snap, cx, refs, &field);
    RawRule {
        field,
        name: name.map(str::to_string),
        match_all: ms.is_empty(),
        matches,
        backends,
        filters,
        timeout_ms: None,
        backend_timeout_ms: None,
        retry: None,
    }
}

/// Reads and validates every rule of a route.
fn read_rules(snap: &Snapshot, r: &GammaRoute, cx: &mut Ctx) -> Vec<RawRule> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    let no_rules = |cx: &mut Ctx| {
        cx.invalid(
            "spec.rules".into(),
            reasons::INVALID_FIELD,
            "at least one rule is required",
        )
    };
    match &r.spec {
        RouteSpec::Http(s) => {
            if s.rules.is_empty() {
                no_rules(cx);
            }
            for (i, rule) in s.rules.iter().enumerate() {
                let mut raw = http_like_rule(
                    snap,
                    cx,
                    &mut names,
                    (i, rule.name.as_deref()),
                    &rule.matches,
                    http_match,
                    (&rule.filters, &rule.backend_refs),
                );
                (raw.timeout_ms, raw.backend_timeout_ms) =
                    timeouts(cx, rule.timeouts.as_ref(), &raw.field);
                raw.retry = retry(cx, rule.retry.as_ref(), &raw.field);
                out.push(raw);
            }
        }
        RouteSpec::Grpc(s) => {
            if s.rules.is_empty() {
                no_rules(cx);
            }
            for (i, rule) in s.rules.iter().enumerate() {
                out.push(http_like_rule(
                    snap,
                    cx,
                    &mut names,
                    (i, rule.name.as_deref()),
                    &rule.matches,
                    grpc_match,
                    (&rule.filters, &rule.backend_refs),
                ));
            }
        }
        RouteSpec::Tcp(s) => {
            match s.rules.len() {
                0 => cx.invalid("spec.rules".into(), reasons::INVALID_FIELD, "at least one rule is required"),
                1 => {}
                n => cx.invalid(
                    "spec.rules".into(),
                    reasons::UNSUPPORTED_VALUE,
                    format!("{n} rules: a TCPRoute has nothing to choose a rule by, so it takes exactly one (v1 allows one)"),
                ),
            }
            for (i, rule) in s.rules.iter().enumerate().take(1) {
                let field = format!("spec.rules[{i}]");
                let backends = backend_refs(snap, cx, &rule.backend_refs, &field);
                if backends.is_empty() && rule.backend_refs.is_empty() {
                    cx.invalid(
                        format!("{field}.backendRefs"),
                        reasons::INVALID_FIELD,
                        "at least one backendRef is required",
                    );
                }
                out.push(RawRule {
                    field,
                    name: rule.name.clone(),
                    match_all: true,
                    matches: vec![],
                    backends,
                    filters: vec![],
                    timeout_ms: None,
                    backend_timeout_ms: None,
                    retry: None,
                });
            }
        }
    }
    out
}

/// The IR name of match `j` of rule `i`: the rule's name (`rule<i>` if unnamed), with `-<j>`
/// when the rule has more than one match.
fn rule_label(name: Option<&str>, i: usize, j: usize, count: usize) -> String {
    let base = name
        .map(str::to_string)
        .unwrap_or_else(|| format!("rule{i}"));
    if count == 1 {
        base
    } else {
        format!("{base}-{j}")
    }
}

fn check_rule_name(cx: &mut Ctx, names: &mut BTreeSet<String>, name: Option<&str>, field: &str) {
    if let Some(n) = name
        && !names.insert(n.to_string())
    {
        cx.invalid(
            format!("{field}.name"),
            reasons::DUPLICATE_MATCH,
            format!("duplicate rule name `{n}`"),
        );
    }
}

fn value_regex(cx: &mut Ctx, m: &gateway::ValueMatch, field: &str) -> Option<String> {
    match m.type_.as_deref().unwrap_or("Exact") {
        "Exact" => Some(regex_syntax::escape(&m.value)),
        "RegularExpression" => match check_regex(&m.value) {
            Ok(()) => Some(unwrap_anchors(&m.value)),
            Err(e) => {
                cx.invalid(format!("{field}.value"), reasons::INVALID_REGEX, e);
                None
            }
        },
        other => {
            cx.invalid(
                format!("{field}.type"),
                reasons::UNSUPPORTED_VALUE,
                format!("`{other}`: the match types are Exact and RegularExpression"),
            );
            None
        }
    }
}

/// Header and query regexes match the whole value, so `^(?:X)$` (what meshbridge's
/// gateway-api backend writes) is `X`: unwrapped when `X` is a regex on its own (its groups
/// balanced: then the outer group spans all of it).
fn unwrap_anchors(re: &str) -> String {
    match re.strip_prefix("^(?:").and_then(|r| r.strip_suffix(")$")) {
        Some(inner) if !inner.ends_with('\\') && check_regex(inner).is_ok() => inner.to_string(),
        _ => re.to_string(),
    }
}

fn header_matches(cx: &mut Ctx, hs: &[gateway::ValueMatch], field: &str) -> Vec<HeaderMatch> {
    let mut out: Vec<HeaderMatch> = Vec::new();
    for (k, h) in hs.iter().enumerate() {
        let f = format!("{field}.headers[{k}]");
        if h.name.is_empty() || !h.name.bytes().all(is_token_byte) {
            cx.invalid(
                format!("{f}.name"),
                reasons::INVALID_FIELD,
                format!("`{}` is not a valid HTTP header name", h.name),
            );
            continue;
        }
        let name = h.name.to_ascii_lowercase();
        if out.iter().any(|x| x.name == name) {
            // Gateway API: the first match of a header name wins; later ones are ignored.
            cx.push(
                Severity::Warning,
                format!("{f}.name"),
                reasons::DUPLICATE_MATCH,
                format!(
                    "header `{}` is matched twice; the first one applies (Gateway API)",
                    h.name
                ),
            );
            continue;
        }
        if let Some(regex) = value_regex(cx, h, &f) {
            out.push(HeaderMatch { name, regex });
        }
    }
    out
}

/// One HTTPRoute match → an IR match with its precedence key.
fn http_match(
    cx: &mut Ctx,
    m: &gateway::HttpRouteMatch,
    field: &str,
    name: String,
) -> Option<(HttpRoute, Precedence)> {
    use std::cmp::Reverse;
    let before = cx.status.problems.len();
    let (path, rank, len) = match &m.path {
        None => (None, 2, 1),
        Some(p) => {
            let value = p.value.clone().unwrap_or_else(|| "/".into());
            let pf = format!("{field}.path");
            match p.type_.as_deref().unwrap_or("PathPrefix") {
                "Exact" | "PathPrefix" if !value.starts_with('/') => {
                    cx.invalid(
                        format!("{pf}.value"),
                        reasons::INVALID_FIELD,
                        format!("`{value}` must start with `/`"),
                    );
                    (None, 2, 1)
                }
                "Exact" | "PathPrefix"
                    if value.contains("//")
                        || value.contains("/./")
                        || value.contains("/../")
                        || value.contains('?')
                        || value.contains('#') =>
                {
                    cx.invalid(format!("{pf}.value"), reasons::INVALID_FIELD, format!("`{value}` is not a normalised path (no `//`, `/./`, `/../`, `?` or `#`)"));
                    (None, 2, 1)
                }
                "Exact" => (Some(PathRegex::exact(&value)), 0, value.len()),
                "PathPrefix" => (
                    PathRegex::segment_prefix_of(&value),
                    2,
                    value.trim_end_matches('/').len().max(1),
                ),
                "RegularExpression" => match check_regex(&value) {
                    Ok(()) => (Some(PathRegex(format!("^(?:{value})$"))), 1, value.len()),
                    Err(e) => {
                        cx.invalid(format!("{pf}.value"), reasons::INVALID_REGEX, e);
                        (None, 2, 1)
                    }
                },
                other => {
                    cx.invalid(
                        format!("{pf}.type"),
                        reasons::UNSUPPORTED_VALUE,
                        format!(
                            "`{other}`: path types are Exact, PathPrefix and RegularExpression"
                        ),
                    );
                    (None, 2, 1)
                }
            }
        }
    };
    let mut methods = vec![];
    if let Some(meth) = &m.method {
        if meth == "*" || !METHODS.contains(&meth.as_str()) {
            cx.invalid(
                format!("{field}.method"),
                reasons::INVALID_METHOD,
                format!("`{meth}` is not an HTTP method"),
            );
        } else {
            methods.push(meth.clone());
        }
    }
    let headers = header_matches(cx, &m.headers, field);
    let mut query: Vec<HeaderMatch> = Vec::new();
    for (k, q) in m.query_params.iter().enumerate() {
        let f = format!("{field}.queryParams[{k}]");
        if q.name.is_empty() {
            cx.invalid(
                format!("{f}.name"),
                reasons::INVALID_FIELD,
                "must not be empty",
            );
            continue;
        }
        if query.iter().any(|x| x.name == q.name) {
            cx.push(
                Severity::Warning,
                format!("{f}.name"),
                reasons::DUPLICATE_MATCH,
                format!(
                    "query parameter `{}` is matched twice; the first one applies (Gateway API)",
                    q.name
                ),
            );
            continue;
        }
        if let Some(regex) = value_regex(cx, q, &f) {
            query.push(HeaderMatch {
                name: q.name.clone(),
                regex,
            });
        }
    }
    if cx.status.problems[before..].iter().any(|p| p.is_error()) {
        return None;
    }
    let prec = (
        rank,
        Reverse(len),
        u8::from(methods.is_empty()),
        Reverse(headers.len()),
        Reverse(query.len()),
    );
    Some((
        HttpRoute {
            group: cx.key.clone(),
            name,
            path,
            methods,
            headers,
            query,
        },
        prec,
    ))
}

/// One GRPCRoute match → an IR match on the gRPC path `/<service>/<method>`.
fn grpc_match(
    cx: &mut Ctx,
    m: &gateway::GrpcRouteMatch,
    field: &str,
    name: String,
) -> Option<(HttpRoute, Precedence)> {
    use std::cmp::Reverse;
    let before = cx.status.problems.len();
    let mut rank = 2;
    let mut path = None;
    if let Some(mm) = &m.method {
        let f = format!("{field}.method");
        let svc = mm.service.as_deref().filter(|s| !s.is_empty());
        let meth = mm.method.as_deref().filter(|s| !s.is_empty());
        if svc.is_none() && meth.is_none() {
            cx.invalid(
                f.clone(),
                reasons::INVALID_FIELD,
                "one of service and method is required",
            );
        }
        match mm.type_.as_deref().unwrap_or("Exact") {
            "Exact" => {
                for (part, v) in [("service", svc), ("method", meth)] {
                    if let Some(v) = v
                        && v.contains('/')
                    {
                        cx.invalid(
                            format!("{f}.{part}"),
                            reasons::INVALID_FIELD,
                            format!("`{v}` must not contain `/`"),
                        );
                    }
                }
                let s = svc
                    .map(regex_syntax::escape)
                    .unwrap_or_else(|| "[^/]+".into());
                let me = meth
                    .map(regex_syntax::escape)
                    .unwrap_or_else(|| "[^/]+".into());
                rank = if svc.is_some() && meth.is_some() {
                    0
                } else {
                    1
                };
                path = Some(PathRegex(format!("^/{s}/{me}$")));
            }
            "RegularExpression" => {
                for (part, v) in [("service", svc), ("method", meth)] {
                    if let Some(v) = v
                        && let Err(e) = check_regex(v)
                    {
                        cx.invalid(format!("{f}.{part}"), reasons::INVALID_REGEX, e);
                    }
                }
                let s = svc
                    .map(|v| format!("(?:{v})"))
                    .unwrap_or_else(|| "[^/]+".into());
                let me = meth
                    .map(|v| format!("(?:{v})"))
                    .unwrap_or_else(|| "[^/]+".into());
                rank = 1;
                path = Some(PathRegex(format!("^/{s}/{me}$")));
            }
            other => cx.invalid(
                format!("{f}.type"),
                reasons::UNSUPPORTED_VALUE,
                format!("`{other}`: the method match types are Exact and RegularExpression"),
            ),
        }
    }
    let headers = header_matches(cx, &m.headers, field);
    if cx.status.problems[before..].iter().any(|p| p.is_error()) {
        return None;
    }
    let len = path.as_ref().map(|p| p.0.len()).unwrap_or(1);
    let prec = (rank, Reverse(len), 1, Reverse(headers.len()), Reverse(0));
    Some((
        HttpRoute {
            group: cx.key.clone(),
            name,
            path,
            methods: vec![],
            headers,
            query: vec![],
        },
        prec,
    ))
}

fn header_edit(
    cx: &mut Ctx,
    m: Option<&gateway::HeaderModifier>,
    field: &str,
) -> Option<HeaderEdit> {
    let Some(m) = m else {
        cx.invalid(
            field.into(),
            reasons::INVALID_FIELD,
            "required for this filter type",
        );
        return None;
    };
    let mut bad = false;
    let mut check = |cx: &mut Ctx, name: &str, f: String| {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            cx.invalid(
                f,
                reasons::INVALID_FIELD,
                format!("`{name}` is not a valid HTTP header name"),
            );
            bad = true;
        }
    };
    for (k, h) in m.set.iter().enumerate() {
        check(cx, &h.name, format!("{field}.set[{k}].name"));
    }
    for (k, h) in m.add.iter().enumerate() {
        check(cx, &h.name, format!("{field}.add[{k}].name"));
    }
    for (k, h) in m.remove.iter().enumerate() {
        check(cx, h, format!("{field}.remove[{k}]"));
    }
    if bad {
        return None;
    }
    let pairs = |v: &[gateway::HeaderValue]| {
        v.iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
            .collect()
    };
    Some(HeaderEdit {
        set: pairs(&m.set),
        add: pairs(&m.add),
        remove: m.remove.iter().map(|h| h.to_ascii_lowercase()).collect(),
    })
}

fn path_rewrite(
    cx: &mut Ctx,
    p: &gateway::PathModifier,
    field: &str,
    matches: &[(HttpRoute, Precedence)],
) -> Option<PathRewrite> {
    match p.type_.as_str() {
        "ReplaceFullPath" => match &p.replace_full_path {
            Some(v) if v.starts_with('/') => Some(PathRewrite::Full(v.clone())),
            _ => {
                cx.invalid(
                    format!("{field}.replaceFullPath"),
                    reasons::INVALID_FIELD,
                    "required, and must start with `/`",
                );
                None
            }
        },
        "ReplacePrefixMatch" => {
            let Some(v) = p
                .replace_prefix_match
                .clone()
                .filter(|v| v.starts_with('/'))
            else {
                cx.invalid(
                    format!("{field}.replacePrefixMatch"),
                    reasons::INVALID_FIELD,
                    "required, and must start with `/`",
                );
                return None;
            };
            let all_prefix = !matches.is_empty()
                && matches.iter().all(|(m, _)| {
                    m.path
                        .as_ref()
                        .is_some_and(|p| p.segment_prefix().is_some())
                });
            if !all_prefix {
                cx.invalid(field.into(), reasons::UNSUPPORTED_VALUE, "ReplacePrefixMatch needs every match of the rule to be a PathPrefix (other than `/`)");
                return None;
            }
            Some(PathRewrite::Prefix(v))
        }
        other => {
            cx.invalid(
                format!("{field}.type"),
                reasons::UNSUPPORTED_VALUE,
                format!("`{other}`: path modifiers are ReplaceFullPath and ReplacePrefixMatch"),
            );
            None
        }
    }
}

fn filters(
    cx: &mut Ctx,
    fs: &[RouteFilter],
    field: &str,
    matches: &[(HttpRoute, Precedence)],
) -> Vec<Filter> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (k, f) in fs.iter().enumerate() {
        let ff = format!("{field}[{k}]");
        if f.type_ != "RequestHeaderModifier"
            && f.type_ != "ResponseHeaderModifier"
            && !seen.insert(f.type_.clone())
        {
            cx.invalid(
                format!("{ff}.type"),
                reasons::INVALID_FIELD,
                format!("{} appears twice in one rule", f.type_),
            );
            continue;
        }
        match f.type_.as_str() {
            "RequestHeaderModifier" => {
                if let Some(e) = header_edit(cx, f.request_header_modifier.as_ref(), &format!("{ff}.requestHeaderModifier")) {
                    out.push(Filter::RequestHeaders(e));
                }
            }
            "ResponseHeaderModifier" => {
                if let Some(e) = header_edit(cx, f.response_header_modifier.as_ref(), &format!("{ff}.responseHeaderModifier")) {
                    out.push(Filter::ResponseHeaders(e));
                }
            }
            "RequestRedirect" => {
                let Some(r) = &f.request_redirect else {
                    cx.invalid(format!("{ff}.requestRedirect"), reasons::INVALID_FIELD, "required for this filter type");
                    continue;
                };
                let rf = format!("{ff}.requestRedirect");
                let status_code = match r.status_code.unwrap_or(302) {
                    c @ (301 | 302 | 303 | 307 | 308) => c as u16,
                    c => {
                        cx.invalid(format!("{rf}.statusCode"), reasons::UNSUPPORTED_VALUE, format!("{c}: redirects use 301, 302, 303, 307 or 308"));
                        continue;
                    }
                };
                if let Some(s) = &r.scheme
                    && s != "http"
                    && s != "https"
                {
                    cx.invalid(format!("{rf}.scheme"), reasons::UNSUPPORTED_VALUE, format!("`{s}`: the scheme is http or https"));
                    continue;
                }
                let port = match r.port {
                    None => None,
                    Some(p) => match u16::try_from(p).ok().filter(|p| *p > 0) {
                        Some(p) => Some(p),
                        None => {
                            cx.invalid(format!("{rf}.port"), reasons::INVALID_PORT, format!("{p} is not a port number"));
                            continue;
                        }
                    },
                };
                let path = match &r.path {
                    None => None,
                    Some(p) => match path_rewrite(cx, p, &format!("{rf}.path"), matches) {
                        Some(p) => Some(p),
                        None => continue,
                    },
                };
                out.push(Filter::Redirect(Redirect { scheme: r.scheme.clone(), hostname: r.hostname.clone(), path, port, status_code }));
            }
            "URLRewrite" => {
                let Some(r) = &f.url_rewrite else {
                    cx.invalid(format!("{ff}.urlRewrite"), reasons::INVALID_FIELD, "required for this filter type");
                    continue;
                };
                let path = match &r.path {
                    None => None,
                    Some(p) => match path_rewrite(cx, p, &format!("{ff}.urlRewrite.path"), matches) {
                        Some(p) => Some(p),
                        None => continue,
                    },
                };
                out.push(Filter::Rewrite { hostname: r.hostname.clone(), path });
            }
            other => cx.invalid(
                format!("{ff}.type"),
                reasons::UNSUPPORTED_VALUE,
                format!("`{other}` is not supported (meshbridge reads RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect and URLRewrite)"),
            ),
        }
    }
    if seen.contains("RequestRedirect") && seen.contains("URLRewrite") {
        cx.invalid(
            field.into(),
            reasons::INVALID_FIELD,
            "RequestRedirect and URLRewrite cannot both be in one rule",
        );
    }
    out
}

fn timeouts(
    cx: &mut Ctx,
    t: Option<&gateway::Timeouts>,
    field: &str,
) -> (Option<u64>, Option<u64>) {
    let Some(t) = t else { return (None, None) };
    let read = |cx: &mut Ctx, v: &Option<String>, name: &str| -> Option<u64> {
        let v = v.as_ref()?;
        match gateway::parse_duration_ms(v) {
            Ok(ms) => Some(ms),
            Err(e) => {
                cx.invalid(
                    format!("{field}.timeouts.{name}"),
                    reasons::INVALID_FIELD,
                    e,
                );
                None
            }
        }
    };
    let request = read(cx, &t.request, "request");
    let backend = read(cx, &t.backend_request, "backendRequest");
    if let (Some(r), Some(b)) = (request, backend)
        && r != 0
        && (b > r || b == 0)
    {
        cx.invalid(
            format!("{field}.timeouts.backendRequest"),
            reasons::INVALID_FIELD,
            "must not be longer than `request`",
        );
    }
    (request, backend)
}

fn retry(cx: &mut Ctx, r: Option<&gateway::Retry>, field: &str) -> Option<Retry> {
    let r = r?;
    let f = format!("{field}.retry");
    let attempts = match r.attempts {
        None => 1,
        Some(a) if (0..=100).contains(&a) => a as u32,
        Some(a) => {
            cx.invalid(
                format!("{f}.attempts"),
                reasons::INVALID_FIELD,
                format!("{a}: attempts are 0–100"),
            );
            return None;
        }
    };
    let mut codes = Vec::new();
    for (k, c) in r.codes.iter().enumerate() {
        match u16::try_from(*c).ok().filter(|c| (400..=599).contains(c)) {
            Some(c) => codes.push(c),
            None => cx.invalid(
                format!("{f}.codes[{k}]"),
                reasons::INVALID_FIELD,
                format!("{c}: retried codes are 400–599"),
            ),
        }
    }
    let backoff_ms = match &r.backoff {
        None => None,
        Some(b) => match gateway::parse_duration_ms(b) {
            Ok(ms) => Some(ms),
            Err(e) => {
                cx.invalid(format!("{f}.backoff"), reasons::INVALID_FIELD, e);
                None
            }
        },
    };
    Some(Retry {
        attempts,
        codes,
        backoff_ms,
    })
}

/// A rule's backendRefs: Services, weights, and cross-namespace grants.
fn backend_refs(
    snap: &Snapshot,
    cx: &mut Ctx,
    refs: &[BackendRef],
    field: &str,
) -> Vec<RuleBackend> {
    let ns = cx.meta.namespace.clone();
    let route_kind = cx.key.kind.k8s_kind();
    let mut out: Vec<RuleBackend> = Vec::new();
    for (k, b) in refs.iter().enumerate() {
        let f = format!("{field}.backendRefs[{k}]");
        let group = b.group.as_deref().unwrap_or("");
        let kind = b.kind.as_deref().unwrap_or("Service");
        if !group.is_empty() || kind != "Service" {
            cx.unresolved(
                Severity::Error,
                format!("{f}.kind"),
                reasons::INVALID_KIND,
                format!(
                    "`{}{kind}`: backendRefs name Services (group \"\")",
                    if group.is_empty() {
                        String::new()
                    } else {
                        format!("{group}/")
                    }
                ),
            );
            continue;
        }
        if !crate::load::is_dns_label(&b.name) {
            cx.invalid(
                format!("{f}.name"),
                reasons::INVALID_FIELD,
                format!("`{}` is not a Service name", b.name),
            );
            continue;
        }
        if !b.filters.is_empty() {
            cx.invalid(
                format!("{f}.filters"),
                reasons::UNSUPPORTED_VALUE,
                "per-backend filters are not supported; put the filter on the rule",
            );
            continue;
        }
        let weight = match b.weight.unwrap_or(1) {
            w @ 0..=1_000_000 => w as u64,
            w => {
                cx.invalid(
                    format!("{f}.weight"),
                    reasons::INVALID_WEIGHT,
                    format!("{w}: weights are 0–1000000"),
                );
                continue;
            }
        };
        if let Some(p) = b.port
            && !(1..=65535).contains(&p)
        {
            cx.invalid(
                format!("{f}.port"),
                reasons::INVALID_PORT,
                format!("{p} is not a port number"),
            );
            continue;
        }
        let bns = b
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or(ns.clone());
        if bns != ns && !granted(snap, &ns, route_kind, &bns, &b.name) {
            cx.unresolved(
                Severity::Error,
                format!("{f}.namespace"),
                reasons::REF_NOT_PERMITTED,
                format!("no ReferenceGrant in namespace {bns} allows {route_kind}s of namespace {ns} to reach Service {}", b.name),
            );
            continue;
        }
        let service = SvcKey::new(bns, b.name.clone());
        if out.iter().any(|x| x.service == service) {
            cx.invalid(
                format!("{f}.name"),
                reasons::INVALID_FIELD,
                format!("backend {service} is listed twice in the rule"),
            );
            continue;
        }
        out.push(RuleBackend {
            service,
            weight,
            port: b.port.map(|p| p as u16),
            field: f,
        });
    }
    out
}

/// Whether a ReferenceGrant in `to_ns` lets `kind` objects of `from_ns` reference the
/// Service `name`.
fn granted(snap: &Snapshot, from_ns: &str, kind: &str, to_ns: &str, name: &str) -> bool {
    snap.reference_grants
        .range((to_ns.to_string(), String::new())..)
        .take_while(|((ns, _), _)| ns == to_ns)
        .any(|(_, g)| {
            g.spec
                .from
                .iter()
                .any(|f| f.group == gateway::GROUP && f.kind == kind && f.namespace == from_ns)
                && g.spec.to.iter().any(|t| {
                    t.group.is_empty()
                        && t.kind == "Service"
                        && t.name.as_deref().is_none_or(|n| n.is_empty() || n == name)
                })
        })
}
