//! Route tables ([`Split::rules`], from GAMMA routes) → Envoy routes of one service port.
//!
//! One route per rule match, in the IR's order (Gateway API precedence; Envoy takes the first
//! route that matches), a rule without matches as one route with prefix `/`; no catch-all
//! after them, so a request no rule matches gets Envoy's 404 (`route_not_found`). Per route:
//! - match: `Exact` → `path`; `PathPrefix` → `path_separated_prefix` (whole segments, as
//!   Gateway API); any other path → `safe_regex` (full match); headers (`host` as
//!   `:authority`) and query parameters by `string_match.safe_regex` (whole value); a method
//!   as a `:method` header;
//! - action: `redirect` (RequestRedirect); else the rule's backends that serve the port as a
//!   cluster or weighted clusters (a cluster not found answers 500); with none of positive
//!   weight, `direct_response` 500;
//! - filters: header edits as `request_headers_to_add` (`set` overwrites, `add` appends) /
//!   `request_headers_to_remove`, likewise for responses; URLRewrite as `prefix_rewrite`
//!   (`regex_rewrite` when the replacement is `/`), `regex_rewrite` `^.*$` (full path) and
//!   `host_rewrite_literal`;
//! - `timeout` (`timeouts.request`, `0s` = none, the default) and `retry_policy` (retries,
//!   codes, `per_try_timeout` from `timeouts.backendRequest`, `retry_back_off`).

use super::{cluster_name, denied_action, fit_weights};
use meshbridge_core::Finding;
use meshbridge_core::capability::{Feature, Level};
use meshbridge_core::ir::{
    Filter, HeaderEdit, HttpRoute, PathKind, PathRewrite, Redirect, RouteRule, Split,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Retried on every retry policy (connection failures; gRPC `unavailable`/`cancelled`).
const RETRY_ON: &str = "connect-failure,refused-stream,unavailable,cancelled";

/// What a route table asks that Envoy cannot do exactly (said once per rule and field).
pub(super) fn findings(split: &Split, out: &mut Vec<Finding>) {
    for r in &split.rules {
        let mut push = |feature, field: String, reason: String| {
            out.push(Finding {
                feature,
                level: Level::Partial,
                object: split.parent.clone(),
                field,
                reason,
            })
        };
        if let Some(b) = r
            .retry
            .as_ref()
            .and_then(|t| t.backoff_ms)
            .filter(|b| *b > 0)
        {
            push(
                Feature::Retries,
                format!("{}.retry.backoff", r.field),
                format!(
                    "Envoy backs off with full jitter from a base interval of {}: a retry may come sooner than the backoff",
                    duration(b)
                ),
            );
        }
        for (k, f) in r.filters.iter().enumerate() {
            let (edit, what) = match f {
                Filter::RequestHeaders(e) => (e, "requestHeaderModifier"),
                Filter::ResponseHeaders(e) => (e, "responseHeaderModifier"),
                _ => continue,
            };
            if edit_names(edit).any(is_host) {
                push(
                    Feature::HeaderModifiers,
                    format!("{}.filters[{k}].{what}", r.field),
                    "Envoy cannot edit the `host` header through header edits: that edit is not applied (use URLRewrite's hostname)".into(),
                );
            }
        }
    }
}

fn edit_names(e: &HeaderEdit) -> impl Iterator<Item = &str> {
    e.set
        .iter()
        .chain(&e.add)
        .map(|(n, _)| n.as_str())
        .chain(e.remove.iter().map(String::as_str))
}

fn is_host(name: &str) -> bool {
    name.eq_ignore_ascii_case("host")
}

/// The backends of `rule` that serve `port`, as weighted clusters (zero weights dropped).
fn targets(split: &Split, rule: &RouteRule, port: u16) -> Vec<(String, u64)> {
    let Some(sp) = split.ports.iter().find(|p| p.port.port == port) else {
        return vec![];
    };
    fit_weights(
        rule.backends
            .iter()
            .filter(|(i, _)| sp.backends.iter().any(|(j, _)| j == i))
            .filter_map(|(i, w)| {
                split
                    .backends
                    .get(*i)
                    .map(|b| (cluster_name(&b.service, port), *w))
            })
            .collect(),
    )
}

/// Every cluster a rule of the table sends requests to on `port`.
pub(super) fn routed(split: &Split, port: u16) -> BTreeSet<String> {
    split
        .rules
        .iter()
        .filter(|r| r.redirect().is_none())
        .flat_map(|r| targets(split, r, port))
        .map(|(c, _)| c)
        .collect()
}

/// The routes of a route table on service port `port`. `trimmed`: the proxy may reach no
/// destination of the port, so the routes that would send a request answer the
/// destinations' RBAC refusal themselves (redirects, 500s and 404s stay as they are).
pub(super) fn routes(split: &Split, port: u16, trimmed: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for r in &split.rules {
        let targets = targets(split, r, port);
        if r.matches.is_empty() {
            let name = format!("{}/{}", split.parent.name, rule_name(r));
            out.push(route(
                r,
                name,
                json!({"prefix": "/"}),
                None,
                port,
                &targets,
                trimmed,
            ));
        }
        for m in &r.matches {
            let name = format!("{}/{}", m.group.name, m.name);
            let (path, prefix) = path_match(m);
            for rm in super::Mesh::with_headers(m, path) {
                out.push(route(
                    r,
                    name.clone(),
                    rm,
                    prefix.as_deref(),
                    port,
                    &targets,
                    trimmed,
                ));
            }
        }
    }
    out
}

/// The rule's name, or `rule<i>` from its field (`spec.rules[i]`).
fn rule_name(r: &RouteRule) -> String {
    r.name.clone().unwrap_or_else(|| {
        let i = r
            .field
            .trim_start_matches("spec.rules[")
            .trim_end_matches(']');
        format!("rule{i}")
    })
}

/// A match's path part, and its segment prefix when it is one.
fn path_match(m: &HttpRoute) -> (Value, Option<String>) {
    let Some(p) = &m.path else {
        return (json!({"prefix": "/"}), None);
    };
    if let Some(pre) = p.segment_prefix() {
        return (json!({"pathSeparatedPrefix": pre}), Some(pre));
    }
    match p.kind() {
        PathKind::Any => (json!({"prefix": "/"}), None),
        PathKind::Exact(lit) => (json!({"path": lit}), None),
        _ => (json!({"safeRegex": {"regex": p.full_match_regex()}}), None),
    }
}

/// One Envoy route of rule `r` for one match (`prefix`: the match's segment prefix).
fn route(
    r: &RouteRule,
    name: String,
    m: Value,
    prefix: Option<&str>,
    port: u16,
    targets: &[(String, u64)],
    trimmed: bool,
) -> Value {
    let mut out = json!({"name": name, "match": m});
    let mut rewrite: Option<(Option<&String>, Option<&PathRewrite>)> = None;
    for f in &r.filters {
        match f {
            Filter::RequestHeaders(e) => edit(&mut out, "request", e),
            Filter::ResponseHeaders(e) => edit(&mut out, "response", e),
            Filter::Rewrite { hostname, path } => {
                rewrite = Some((hostname.as_ref(), path.as_ref()))
            }
            Filter::Redirect(_) => {}
        }
    }
    if let Some(red) = r.redirect() {
        match redirect(red, prefix, port) {
            Some(v) => out["redirect"] = v,
            None => out["directResponse"] = json!({"status": 500}),
        }
        return out;
    }
    if targets.is_empty() {
        // Gateway API: a rule without usable backends fails its requests with 500.
        out["directResponse"] = json!({"status": 500});
        return out;
    }
    if trimmed {
        out["route"] = denied_action();
        return out;
    }
    let mut action = if let [(c, _)] = targets {
        json!({"cluster": c})
    } else {
        let cs: Vec<Value> = targets
            .iter()
            .map(|(c, w)| json!({"name": c, "weight": w}))
            .collect();
        json!({"weightedClusters": {"clusters": cs}})
    };
    action["clusterNotFoundResponseCode"] = json!("INTERNAL_SERVER_ERROR");
    action["timeout"] = json!(duration(r.timeout_ms.unwrap_or(0)));
    if let Some((host, path)) = rewrite {
        if let Some(h) = host {
            action["hostRewriteLiteral"] = json!(h);
        }
        match path {
            Some(PathRewrite::Full(p)) => {
                action["regexRewrite"] =
                    json!({"pattern": {"regex": "^.*$"}, "substitution": substitution(p)});
            }
            Some(PathRewrite::Prefix(p)) => match prefix {
                Some(pre) => {
                    let (k, v) = prefix_rewrite(pre, p);
                    action[k] = v;
                }
                // The IR allows a prefix rewrite only on segment-prefix matches.
                None => {
                    return json!({"name": out["name"], "match": out["match"], "directResponse": {"status": 500}});
                }
            },
            None => {}
        }
    }
    let per_try = r.backend_timeout_ms.filter(|t| *t > 0);
    if r.retry.is_some() || per_try.is_some() {
        let mut rp = json!({"numRetries": r.retry.as_ref().map(|t| t.attempts).unwrap_or(0)});
        if let Some(t) = &r.retry {
            if t.codes.is_empty() {
                rp["retryOn"] = json!(RETRY_ON);
            } else {
                rp["retryOn"] = json!(format!("{RETRY_ON},retriable-status-codes"));
                rp["retriableStatusCodes"] = json!(t.codes);
            }
            if let Some(b) = t.backoff_ms.filter(|b| *b > 0) {
                rp["retryBackOff"] = json!({"baseInterval": duration(b)});
            }
        }
        if let Some(t) = per_try {
            rp["perTryTimeout"] = json!(duration(t));
        }
        action["retryPolicy"] = rp;
    }
    out["route"] = action;
    out
}

/// Header edits on a route (`dir`: `request` or `response`); `host` cannot be edited this
/// way in Envoy (a finding says so) and is left out.
fn edit(route: &mut Value, dir: &str, e: &HeaderEdit) {
    let add_key = format!("{dir}HeadersToAdd");
    let remove_key = format!("{dir}HeadersToRemove");
    let mut adds: Vec<Value> = route[&add_key].as_array().cloned().unwrap_or_default();
    let mut removes: Vec<Value> = route[&remove_key].as_array().cloned().unwrap_or_default();
    for (list, action) in [
        (&e.set, "OVERWRITE_IF_EXISTS_OR_ADD"),
        (&e.add, "APPEND_IF_EXISTS_OR_ADD"),
    ] {
        for (k, v) in list.iter().filter(|(k, _)| !is_host(k)) {
            adds.push(json!({"header": {"key": k, "value": v}, "appendAction": action}));
        }
    }
    removes.extend(e.remove.iter().filter(|k| !is_host(k)).map(|k| json!(k)));
    if !adds.is_empty() {
        route[&add_key] = json!(adds);
    }
    if !removes.is_empty() {
        route[&remove_key] = json!(removes);
    }
}

/// A RequestRedirect as Envoy's `RedirectAction`. The port is Gateway API's: the one given,
/// else the new scheme's (80/443), else the port the client called — given explicitly
/// (Envoy would otherwise keep the request's), except with a new hostname on the scheme's
/// default port (Envoy then writes no port). `None` when a prefix rewrite has no prefix.
fn redirect(r: &Redirect, prefix: Option<&str>, called: u16) -> Option<Value> {
    let mut v = json!({});
    if let Some(s) = &r.scheme {
        v["schemeRedirect"] = json!(s);
    }
    if let Some(h) = &r.hostname {
        v["hostRedirect"] = json!(h);
    }
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let port = r.port.unwrap_or(match r.scheme.as_deref() {
        Some("https") => 443,
        Some(_) => 80,
        None => called,
    });
    let default = if scheme == "https" { 443 } else { 80 };
    if !(r.hostname.is_some() && port == default) {
        v["portRedirect"] = json!(port);
    }
    match &r.path {
        Some(PathRewrite::Full(p)) => v["pathRedirect"] = json!(p),
        Some(PathRewrite::Prefix(p)) => {
            let (k, val) = prefix_rewrite(prefix?, p);
            v[k] = val;
        }
        None => {}
    }
    v["responseCode"] = json!(match r.status_code {
        301 => "MOVED_PERMANENTLY",
        303 => "SEE_OTHER",
        307 => "TEMPORARY_REDIRECT",
        308 => "PERMANENT_REDIRECT",
        _ => "FOUND",
    });
    Some(v)
}

/// Gateway API's ReplacePrefixMatch of segment prefix `prefix` by `to`: `prefix_rewrite`
/// (trailing `/` of `to` dropped: `/foo/bar` → `/to/bar`), or for `to` = `/` a
/// `regex_rewrite` of the prefix and the slashes after it (`/foo/bar` → `/bar`, `/foo` → `/`).
fn prefix_rewrite(prefix: &str, to: &str) -> (&'static str, Value) {
    let to = to.trim_end_matches('/');
    if to.is_empty() {
        (
            "regexRewrite",
            json!({"pattern": {"regex": format!("^{}/*", escape(prefix))}, "substitution": "/"}),
        )
    } else {
        ("prefixRewrite", json!(to))
    }
}

/// `s` as an RE2 literal.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` as a literal RE2 substitution (`\` is its escape).
fn substitution(s: &str) -> String {
    s.replace('\\', "\\\\")
}

/// Milliseconds as a proto3 JSON Duration.
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}
