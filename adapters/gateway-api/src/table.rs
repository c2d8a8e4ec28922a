//! GAMMA route tables ([`Split::rules`]) → Gateway API routes, rule for rule, in the IR's
//! order (Gateway API precedence is already applied, and the output keeps it: each rule's
//! matches are written as they came in). No catch-all rule is added: GAMMA answers a request
//! that no rule matches with 404 itself, which is what the IR says.
//!
//! - The route kind follows the input: a GRPCRoute parent gives a `GRPCRoute` when every
//!   match is a gRPC method match and no rule uses what GRPCRoute lacks (redirects,
//!   rewrites, timeouts, retries); otherwise an `HTTPRoute` (same requests). A TCPRoute
//!   parent gives a `TCPRoute` (one rule).
//! - Paths: segment prefixes → `PathPrefix`, exact → `Exact`, else `RegularExpression`
//!   with the full-match regex; header and query values that are an escaped literal →
//!   `Exact`, else `RegularExpression ^(?:R)$`.
//! - A rule that cannot be written ends the table there (reported): its requests and those
//!   of every later rule are then answered 404 — never sent to another rule's backends.

use crate::matches::{MAX_MATCHES_PER_ROUTE, MAX_MATCHES_PER_RULE, exact_path_ok};
use crate::{API_V1, Grants, MAX_BACKEND_REFS, MAX_WEIGHT, SplitTranslation};
use meshbridge_core::ir::{
    Filter, HeaderEdit, HeaderMatch, HttpRoute, PathKind, PathRegex, PathRewrite, Protocol,
    RouteRule, Split, SplitPort,
};
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_core::weights::fit_under;
use meshbridge_core::{Context, Feature, Level, OutputObject, Translation};
use serde_json::{Map, Value, json};

/// `rules` maxItems.
pub const MAX_RULES: usize = 16;
/// `headers` / `queryParams` maxItems per match.
const MAX_CONDITIONS: usize = 16;
/// `filters` maxItems per rule.
const MAX_FILTERS: usize = 16;

/// The literal a whole-value regex stands for, when it is nothing but (escaped) literal
/// characters: `1\.0` → `1.0`.
pub fn literal_of(re: &str) -> Option<String> {
    if re.is_empty() {
        return None;
    }
    let mut out = String::new();
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let n = chars.next()?;
            if n.is_ascii_alphanumeric() {
                // `\d`, `\b`, `\n`...: a class or an escape, not a literal.
                return None;
            }
            out.push(n);
        } else if "()[]{}|*+?.^$".contains(c) {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A Gateway API Duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`): `5s`, `500ms`, `1h30m`; `0s`
/// for zero (Gateway API: no timeout).
pub fn duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    for (v, unit) in [(h, "h"), (m, "m"), (s, "s"), (milli, "ms")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    out
}

/// A header or query condition.
fn condition(h: &HeaderMatch) -> Value {
    match literal_of(&h.regex) {
        Some(lit) => json!({"name": h.name, "type": "Exact", "value": lit}),
        None => {
            json!({"name": h.name, "type": "RegularExpression", "value": format!("^(?:{})$", h.regex)})
        }
    }
}

fn conditions(hs: &[HeaderMatch], what: &str) -> Result<Vec<Value>, String> {
    if hs.len() > MAX_CONDITIONS {
        return Err(format!(
            "a match has {} {what} conditions; Gateway API allows {MAX_CONDITIONS}",
            hs.len()
        ));
    }
    Ok(hs.iter().map(condition).collect())
}

/// An `HTTPPathMatch`.
fn http_path(p: Option<&PathRegex>) -> Value {
    let Some(p) = p else {
        return json!({"type": "PathPrefix", "value": "/"});
    };
    if let Some(pre) = p.segment_prefix()
        && exact_path_ok(&pre)
    {
        return json!({"type": "PathPrefix", "value": pre});
    }
    match p.kind() {
        PathKind::Any => json!({"type": "PathPrefix", "value": "/"}),
        PathKind::Exact(lit) if exact_path_ok(&lit) => json!({"type": "Exact", "value": lit}),
        _ => json!({"type": "RegularExpression", "value": format!("^{}$", p.full_match_regex())}),
    }
}

/// `HTTPRouteMatch`es of one IR match (one per method).
fn http_matches(m: &HttpRoute) -> Result<Vec<Value>, String> {
    let mut base = Map::new();
    base.insert("path".into(), http_path(m.path.as_ref()));
    let headers = conditions(&m.headers, "header")?;
    if !headers.is_empty() {
        base.insert("headers".into(), Value::Array(headers));
    }
    let query = conditions(&m.query, "query parameter")?;
    if !query.is_empty() {
        base.insert("queryParams".into(), Value::Array(query));
    }
    if m.methods.is_empty() {
        return Ok(vec![Value::Object(base)]);
    }
    Ok(m.methods
        .iter()
        .map(|meth| {
            let mut o = base.clone();
            o.insert("method".into(), json!(meth));
            Value::Object(o)
        })
        .collect())
}

/// The part of a gRPC path regex (`^/<service>/<method>$`, as core builds it) that is one
/// service or method condition: `None` = any, `Some((exact?, value))`.
fn grpc_part(part: &str) -> Option<Option<(bool, String)>> {
    if part == "[^/]+" {
        return Some(None);
    }
    if let Some(lit) = literal_of(part) {
        return Some(Some((true, lit)));
    }
    let inner = part.strip_prefix("(?:")?.strip_suffix(')')?;
    Some(Some((false, inner.to_string())))
}

fn grpc_ident_ok(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A `GRPCRouteMatch` for an IR match built from one, or `None` when it is not one
/// GRPCRoute can write (then the route is an HTTPRoute).
fn grpc_match(m: &HttpRoute) -> Option<Value> {
    if !m.methods.is_empty() || !m.query.is_empty() {
        return None;
    }
    let mut o = Map::new();
    if let Some(p) = &m.path {
        let inner = p.0.strip_prefix("^/")?.strip_suffix('$')?;
        const ANY: &str = "[^/]+";
        let (svc, meth) = if let Some(s) = inner.strip_suffix(&format!("/{ANY}")) {
            (s, ANY)
        } else if let Some(m) = inner.strip_prefix(&format!("{ANY}/")) {
            (ANY, m)
        } else {
            let (s, m) = inner.split_once('/')?;
            if m.contains('/') {
                return None;
            }
            (s, m)
        };
        let (svc, meth) = (grpc_part(svc)?, grpc_part(meth)?);
        let exact = [&svc, &meth]
            .iter()
            .all(|x| x.as_ref().is_none_or(|(e, _)| *e));
        let mut mm = Map::new();
        mm.insert(
            "type".into(),
            json!(if exact { "Exact" } else { "RegularExpression" }),
        );
        for (k, v) in [("service", &svc), ("method", &meth)] {
            if let Some((e, v)) = v {
                let v = if exact || !*e {
                    v.clone()
                } else {
                    // A literal part next to a regex part: its regex form.
                    v.chars()
                        .map(|c| {
                            if "\\.+*?()|[]{}^$".contains(c) {
                                format!("\\{c}")
                            } else {
                                c.to_string()
                            }
                        })
                        .collect()
                };
                if exact {
                    let ok = if k == "service" {
                        v.split('.').all(grpc_ident_ok)
                    } else {
                        grpc_ident_ok(&v)
                    };
                    if !ok {
                        return None;
                    }
                }
                mm.insert(k.into(), json!(v));
            }
        }
        if mm.len() == 1 {
            return None;
        }
        o.insert("method".into(), Value::Object(mm));
    }
    let headers = conditions(&m.headers, "header").ok()?;
    if !headers.is_empty() {
        o.insert("headers".into(), Value::Array(headers));
    }
    Some(Value::Object(o))
}

fn header_edit(e: &HeaderEdit) -> Value {
    let pairs = |v: &[(String, String)]| -> Value {
        v.iter()
            .map(|(n, val)| json!({"name": n, "value": val}))
            .collect()
    };
    let mut o = Map::new();
    if !e.set.is_empty() {
        o.insert("set".into(), pairs(&e.set));
    }
    if !e.add.is_empty() {
        o.insert("add".into(), pairs(&e.add));
    }
    if !e.remove.is_empty() {
        o.insert("remove".into(), json!(e.remove));
    }
    Value::Object(o)
}

fn path_modifier(p: &PathRewrite) -> Value {
    match p {
        PathRewrite::Full(v) => json!({"type": "ReplaceFullPath", "replaceFullPath": v}),
        PathRewrite::Prefix(v) => json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": v}),
    }
}

fn filter_json(f: &Filter) -> Value {
    match f {
        Filter::RequestHeaders(e) => {
            json!({"type": "RequestHeaderModifier", "requestHeaderModifier": header_edit(e)})
        }
        Filter::ResponseHeaders(e) => {
            json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": header_edit(e)})
        }
        Filter::Redirect(r) => {
            let mut o = Map::new();
            if let Some(s) = &r.scheme {
                o.insert("scheme".into(), json!(s));
            }
            if let Some(h) = &r.hostname {
                o.insert("hostname".into(), json!(h));
            }
            if let Some(p) = &r.path {
                o.insert("path".into(), path_modifier(p));
            }
            if let Some(p) = r.port {
                o.insert("port".into(), json!(p));
            }
            o.insert("statusCode".into(), json!(r.status_code));
            json!({"type": "RequestRedirect", "requestRedirect": o})
        }
        Filter::Rewrite { hostname, path } => {
            let mut o = Map::new();
            if let Some(h) = hostname {
                o.insert("hostname".into(), json!(h));
            }
            if let Some(p) = path {
                o.insert("path".into(), path_modifier(p));
            }
            json!({"type": "URLRewrite", "urlRewrite": o})
        }
    }
}

/// Whether a rule needs HTTPRoute (GRPCRoute has no redirects, rewrites, timeouts or
/// retries).
fn http_only(r: &RouteRule) -> bool {
    r.timeout_ms.is_some()
        || r.backend_timeout_ms.is_some()
        || r.retry.is_some()
        || r.filters
            .iter()
            .any(|f| matches!(f, Filter::Redirect(_) | Filter::Rewrite { .. }))
}

impl SplitTranslation<'_> {
    /// A route table: one route per root port the table applies to.
    pub(crate) fn run_table(&mut self) {
        let split: &Split = self.split;
        let root = &split.root;
        for sp in &split.ports {
            let p = &sp.port;
            if p.protocol != Protocol::Tcp {
                let (feature, what) = match p.protocol {
                    Protocol::Udp => (Feature::UdpRoutes, "UDP"),
                    _ => (Feature::TrafficSplit, "SCTP"),
                };
                self.report(
                    feature,
                    Level::None,
                    "spec.parentRefs",
                    format!(
                        "port {}/{what} of Service {root}: Gateway API has no mesh route kind for {what}, so the route is not applied on this port",
                        p.port
                    ),
                );
                continue;
            }
            let (kind, rules) = if split.parent.kind == Kind::GatewayTCPRoute {
                ("TCPRoute", self.tcp_rules(sp))
            } else {
                let grpc =
                    if split.parent.kind == Kind::GRPCRoute && !split.rules.iter().any(http_only) {
                        self.grpc_rules(sp)
                    } else {
                        None
                    };
                match grpc {
                    Some(r) => ("GRPCRoute", r),
                    None => ("HTTPRoute", self.http_rules(sp)),
                }
            };
            let api = if kind == "TCPRoute" {
                self.tcp.api_version()
            } else {
                API_V1
            };
            let name = self.route_name(p.port);
            let parent_refs = self.parent_refs(p.port);
            let ns = self.route_ns().to_string();
            self.out.objects.push(OutputObject::new(
                self.cx,
                api,
                kind,
                Some(&ns),
                &name,
                vec![split.parent.clone()],
                json!({"spec": {"parentRefs": parent_refs, "rules": rules}}),
            ));
        }
    }

    /// `backendRefs` of one rule on one port: the rule's backends that serve the port.
    fn rule_refs(
        &mut self,
        kind: &'static str,
        r: &RouteRule,
        sp: &SplitPort,
    ) -> Result<Vec<Value>, String> {
        let split = self.split;
        let mut entries = Vec::new();
        for (i, w) in &r.backends {
            let Some(b) = split.backends.get(*i) else {
                continue;
            };
            if !sp.backends.iter().any(|(j, _)| j == i) {
                if *w > 0 {
                    self.report(
                        Feature::TrafficSplit,
                        Level::Partial,
                        &r.field,
                        format!(
                            "backend {} does not serve port {} of Service {}: it is left out of the rule on that port, so the other backends take its share",
                            b.service, sp.port.port, split.root
                        ),
                    );
                }
                continue;
            }
            entries.push((b, *w));
        }
        if entries.len() > MAX_BACKEND_REFS {
            return Err(format!(
                "{} backends; a Gateway API rule takes at most {MAX_BACKEND_REFS} backendRefs",
                entries.len()
            ));
        }
        let weights: Vec<u64> = entries.iter().map(|(_, w)| *w).collect();
        let mut scaled = fit_under(&weights, MAX_WEIGHT);
        for (s, w) in scaled.iter_mut().zip(&weights) {
            if *w > 0 && *s == 0 {
                *s = 1;
            }
        }
        if scaled != weights {
            self.report(
                Feature::TrafficSplit,
                Level::Partial,
                &r.field,
                format!("weights above the Gateway API maximum of {MAX_WEIGHT} are scaled down, which may round the shares"),
            );
        }
        Ok(entries
            .iter()
            .zip(scaled)
            .map(|((b, _), w)| self.backend_ref(kind, &b.service, sp.port.port, Some(w)))
            .collect())
    }

    /// Reports the rule that ends the table and every rule after it.
    fn cut(&mut self, i: usize, why: String) {
        let split = self.split;
        let r = &split.rules[i];
        let later = split.rules.len() - i - 1;
        self.report(
            Feature::RouteTables,
            Level::Partial,
            &r.field,
            format!(
                "{why}; the table ends before this rule, so its requests and those of the {later} rule(s) after it are answered 404 (no rule matches them) instead of being routed"
            ),
        );
    }

    fn http_rules(&mut self, sp: &SplitPort) -> Vec<Value> {
        let split = self.split;
        let mut out = Vec::new();
        let mut total = 0;
        for (i, r) in split.rules.iter().enumerate() {
            if out.len() == MAX_RULES {
                self.cut(
                    i,
                    format!("a Gateway API route holds at most {MAX_RULES} rules"),
                );
                break;
            }
            let rule = match self.http_rule(r, sp) {
                Ok(v) => v,
                Err(e) => {
                    self.cut(i, e);
                    break;
                }
            };
            let n = rule["matches"].as_array().map_or(0, Vec::len);
            if total + n > MAX_MATCHES_PER_ROUTE {
                self.cut(
                    i,
                    format!("a Gateway API route holds fewer than {MAX_MATCHES_PER_ROUTE} matches in all its rules"),
                );
                break;
            }
            total += n;
            out.push(rule);
        }
        self.fallback(out)
    }

    /// No rule could be written: one rule without backends (every request fails with 500)
    /// rather than no route (which would send every request to the root Service).
    fn fallback(&mut self, out: Vec<Value>) -> Vec<Value> {
        if !out.is_empty() {
            return out;
        }
        vec![json!({})]
    }

    fn http_rule(&mut self, r: &RouteRule, sp: &SplitPort) -> Result<Value, String> {
        let mut matches = Vec::new();
        for m in &r.matches {
            matches.extend(http_matches(m)?);
        }
        if matches.len() > MAX_MATCHES_PER_RULE {
            return Err(format!(
                "{} matches (one per method); a Gateway API rule holds {MAX_MATCHES_PER_RULE}",
                matches.len()
            ));
        }
        if matches.is_empty() {
            matches.push(json!({"path": {"type": "PathPrefix", "value": "/"}}));
        }
        if r.filters.len() > MAX_FILTERS {
            return Err(format!(
                "{} filters; a Gateway API rule holds {MAX_FILTERS}",
                r.filters.len()
            ));
        }
        let prefix_rewrite = r.filters.iter().any(|f| match f {
            Filter::Redirect(rd) => matches!(rd.path, Some(PathRewrite::Prefix(_))),
            Filter::Rewrite { path, .. } => matches!(path, Some(PathRewrite::Prefix(_))),
            _ => false,
        });
        if prefix_rewrite && (matches.len() != 1 || matches[0]["path"]["type"] != "PathPrefix") {
            return Err(
                "ReplacePrefixMatch needs exactly one PathPrefix match in the rule (Gateway API CEL), and this rule's matches are not one"
                    .into(),
            );
        }
        let mut o = Map::new();
        if let Some(n) = &r.name {
            o.insert("name".into(), json!(n));
        }
        o.insert("matches".into(), Value::Array(matches));
        if !r.filters.is_empty() {
            o.insert(
                "filters".into(),
                Value::Array(r.filters.iter().map(filter_json).collect()),
            );
        }
        if r.redirect().is_none() {
            let refs = self.rule_refs("HTTPRoute", r, sp)?;
            if !refs.is_empty() {
                o.insert("backendRefs".into(), Value::Array(refs));
            }
        }
        let mut t = Map::new();
        if let Some(ms) = r.timeout_ms {
            t.insert("request".into(), json!(duration(ms)));
        }
        if let Some(ms) = r.backend_timeout_ms {
            t.insert("backendRequest".into(), json!(duration(ms)));
        }
        if !t.is_empty() {
            o.insert("timeouts".into(), Value::Object(t));
        }
        if r.retry.is_some() {
            // Not written: a cluster with only the standard-channel CRDs would reject the
            // whole route (strict field validation) or prune the field.
            self.report(
                Feature::Retries,
                Level::None,
                &format!("{}.retry", r.field),
                "not written: `retry` is an experimental-channel HTTPRoute field (GEP-1731) and meshbridge writes the standard channel (v1.6.1), whose CRD has no `rules[].retry` (a cluster with only the standard CRDs would reject the whole route)".into(),
            );
        }
        Ok(Value::Object(o))
    }

    /// GRPCRoute rules, or `None` when some match is not a gRPC method match.
    fn grpc_rules(&mut self, sp: &SplitPort) -> Option<Vec<Value>> {
        let split = self.split;
        let mut rules: Vec<(RouteRule, Vec<Value>)> = Vec::new();
        for r in &split.rules {
            let ms: Option<Vec<Value>> = r.matches.iter().map(grpc_match).collect();
            rules.push((r.clone(), ms?));
        }
        let mut out = Vec::new();
        let mut total = 0;
        for (i, (r, mut ms)) in rules.into_iter().enumerate() {
            if out.len() == MAX_RULES {
                self.cut(
                    i,
                    format!("a Gateway API route holds at most {MAX_RULES} rules"),
                );
                break;
            }
            if ms.len() > MAX_MATCHES_PER_RULE || total + ms.len() > MAX_MATCHES_PER_ROUTE {
                self.cut(i, format!("a GRPCRoute rule holds {MAX_MATCHES_PER_RULE} matches and a route fewer than {MAX_MATCHES_PER_ROUTE}"));
                break;
            }
            if r.filters.len() > MAX_FILTERS {
                self.cut(i, format!("a GRPCRoute rule holds {MAX_FILTERS} filters"));
                break;
            }
            total += ms.len();
            let mut o = Map::new();
            if let Some(n) = &r.name {
                o.insert("name".into(), json!(n));
            }
            // An empty match matches every request (GRPCRoute has no path to write).
            ms.retain(|m| m.as_object().is_some_and(|o| !o.is_empty()));
            if !ms.is_empty() && ms.len() == r.matches.len() {
                o.insert("matches".into(), Value::Array(ms));
            }
            if !r.filters.is_empty() {
                o.insert(
                    "filters".into(),
                    Value::Array(r.filters.iter().map(filter_json).collect()),
                );
            }
            match self.rule_refs("GRPCRoute", &r, sp) {
                Ok(refs) if !refs.is_empty() => {
                    o.insert("backendRefs".into(), Value::Array(refs));
                }
                Ok(_) => {}
                Err(e) => {
                    self.cut(i, e);
                    break;
                }
            }
            out.push(Value::Object(o));
        }
        Some(self.fallback(out))
    }

    /// A TCPRoute holds one rule (v1): the first rule (TCP rules have no matches).
    fn tcp_rules(&mut self, sp: &SplitPort) -> Vec<Value> {
        let split = self.split;
        let mut out = Vec::new();
        if let Some(r) = split.rules.first() {
            match self.rule_refs("TCPRoute", r, sp) {
                Ok(refs) if !refs.is_empty() => out.push(json!({"backendRefs": refs})),
                Ok(_) => {}
                Err(e) => self.cut(0, e),
            }
            for r in &split.rules[1..] {
                self.report(
                    Feature::TcpRoutes,
                    Level::Partial,
                    &r.field,
                    "a TCPRoute applies its first rule to every connection; later rules are never used and are not written".into(),
                );
            }
        }
        self.fallback(out)
    }
}

/// ReferenceGrants for consumer routes' backendRefs to Services in other namespaces: one per
/// (backend namespace, route namespace, route kind), naming the Services (16 per grant).
pub(crate) fn reference_grants(cx: &Context, grants: Grants, out: &mut Translation) {
    for ((to_ns, from_ns, kind), (names, parents)) in grants {
        let names: Vec<String> = names.into_iter().collect();
        for (n, chunk) in names.chunks(16).enumerate() {
            let name = if n == 0 {
                format!("meshbridge-{}-{from_ns}", kind.to_ascii_lowercase())
            } else {
                format!("meshbridge-{}-{from_ns}-{n}", kind.to_ascii_lowercase())
            };
            let to: Vec<Value> = chunk
                .iter()
                .map(|s| json!({"group": "", "kind": "Service", "name": s}))
                .collect();
            out.objects.push(OutputObject::new(
                cx,
                "gateway.networking.k8s.io/v1beta1",
                "ReferenceGrant",
                Some(&to_ns),
                &name,
                parents.iter().cloned().collect::<Vec<ObjectKey>>(),
                json!({"spec": {
                    "from": [{"group": "gateway.networking.k8s.io", "kind": kind, "namespace": from_ns}],
                    "to": to,
                }}),
            ));
        }
    }
}
