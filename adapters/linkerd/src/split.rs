//! TrafficSplit → ServiceProfile `dstOverrides` or outbound HTTPRoute (never both for one
//! root Service).

use crate::matches::{self, MAX_BACKEND_REFS, MAX_MATCHES_PER_RULE, MAX_RULES, MAX_WEIGHT};
use crate::{Out, SP_API, SplitMode};
use meshbridge_core::ir::{
    Filter, HeaderEdit, Ir, PathRewrite, Protocol, Redirect, Retry, RouteRule, Split, SplitPort,
    SvcKey,
};
use meshbridge_core::model::ObjectKey;
use meshbridge_core::weights::{fit_under, largest_remainder};
use meshbridge_core::{Feature, Level};
use serde_json::{Value, json};

/// Total of the normalised ServiceProfile weights: `1000m` = one share, far below the
/// proxy's `uint32(milli * 10)` overflow at ~429,496.
pub const SP_TOTAL_MILLI: u64 = 1000;

pub fn translate(ir: &Ir, split: &Split, default_mode: SplitMode, out: &mut Out) {
    if !split.rules.is_empty() {
        return route_table(split, None, out);
    }
    let has_matches = !split.matches.is_empty();
    let mode = if has_matches {
        SplitMode::HttpRoute
    } else {
        default_mode
    };
    match mode {
        SplitMode::ServiceProfile => service_profile(ir, split, out),
        // Without the root's ports an HTTPRoute cannot be written, but a split without
        // matches is still exactly expressible as a ServiceProfile (it needs no ports).
        SplitMode::HttpRoute if !has_matches && split.ports.is_empty() => {
            service_profile(ir, split, out)
        }
        SplitMode::HttpRoute => http_routes(split, None, out),
    }
}

/// A consumer route ([`Ir::consumer_splits`]): HTTPRoutes in the client namespace `ns`
/// whose parentRef is the Service in its own namespace (Linkerd applies a route in the
/// client's namespace to that namespace's clients only, before the producer's routes).
pub fn translate_consumer(ns: &str, split: &Split, out: &mut Out) {
    if split.rules.is_empty() {
        http_routes(split, Some(ns), out);
    } else {
        route_table(split, Some(ns), out);
    }
}

fn service_profile(ir: &Ir, split: &Split, out: &mut Out) {
    let cd = out.cx.cluster_domain.clone();
    let weights = largest_remainder(&split.weights(), SP_TOTAL_MILLI);
    let overrides: Vec<Value> = split
        .backends
        .iter()
        .zip(&weights)
        .map(|(b, w)| json!({"authority": b.service.fqdn(&cd), "weight": format!("{w}m")}))
        .collect();
    // dstOverrides hold for every port of the root: a backend lacking one of the root's
    // ports still receives its share of that port's requests.
    for sp in &split.ports {
        unsupported_protocol(split, sp, out);
        for (i, b) in split.backends.iter().enumerate() {
            if b.weight == 0 || sp.backends.iter().any(|(j, _)| *j == i) {
                continue;
            }
            if ir.services.contains_key(&b.service) {
                out.finding(
                    Feature::TrafficSplit,
                    Level::Partial,
                    &split.parent,
                    &format!("{}backends[{i}].service", prefix(&split.parent, out)),
                    format!(
                        "Service {} has no port {}, but a ServiceProfile's dstOverrides apply to every port of {}: its share of requests on port {} will fail",
                        b.service, sp.port.port, split.root, sp.port.port
                    ),
                );
            }
        }
    }
    let name = split.root.fqdn(&cd);
    out.push(
        SP_API,
        "ServiceProfile",
        &split.root.namespace,
        name,
        vec![split.parent.clone()],
        json!({"spec": {"dstOverrides": overrides}}),
    );
}

/// Every TrafficSplit version keeps its fields under `spec`.
fn prefix(_parent: &ObjectKey, _out: &Out) -> String {
    "spec.".to_string()
}

fn unsupported_protocol(split: &Split, sp: &SplitPort, out: &mut Out) -> bool {
    let (feature, level, proto) = match sp.port.protocol {
        Protocol::Tcp => return false,
        Protocol::Udp => (Feature::UdpRoutes, Level::None, "UDP"),
        Protocol::Sctp => (Feature::TcpRoutes, Level::Partial, "SCTP"),
    };
    let p = prefix(&split.parent, out);
    out.finding(
        feature,
        level,
        &split.parent,
        &format!("{p}service"),
        format!(
            "port {}/{proto} of {}: Linkerd does not proxy {proto}, so it is not split",
            sp.port.port, split.root
        ),
    );
    true
}

fn http_routes(split: &Split, consumer: Option<&str>, out: &mut Out) {
    let p = prefix(&split.parent, out);
    if split.ports.is_empty() {
        out.finding(
            Feature::TrafficSplitMatches,
            Level::None,
            &split.parent,
            &format!("{p}service"),
            format!(
                "Service {} is not in the input: an HTTPRoute needs its ports (parentRef and backendRef ports), so the split is not applied",
                split.root
            ),
        );
        return;
    }
    // Converted matches, in TrafficSplit order (then match order).
    let mut converted: Vec<Value> = Vec::new();
    let mut groups: Vec<ObjectKey> = Vec::new();
    for (i, r) in split.matches.iter().enumerate() {
        match matches::convert(r) {
            Ok(ms) => {
                converted.extend(ms);
                groups.push(r.group.clone());
            }
            Err(e) => out.finding(
                e.feature,
                Level::Partial,
                &split.parent,
                &format!("{p}matches"),
                format!(
                    "{} (HTTPRouteGroup {}, match {i}); requests it would select go to {} unsplit",
                    e.reason, r.group.name, split.root
                ),
            ),
        }
    }
    let has_matches = !split.matches.is_empty();
    if has_matches && converted.is_empty() {
        return; // nothing selectable: every request goes to the root, as with no route.
    }
    // Rules: chunks of at most 8 matches; with matches, one rule is kept for the catch-all.
    let max_chunks = if has_matches {
        MAX_RULES - 1
    } else {
        MAX_RULES
    };
    let max_matches = max_chunks * MAX_MATCHES_PER_RULE;
    if converted.len() > max_matches {
        out.finding(
            Feature::TrafficSplitMatches,
            Level::Partial,
            &split.parent,
            &format!("{p}matches"),
            format!(
                "{} HTTPRoute matches (one per method) exceed Linkerd's limit of {max_matches} ({} rules of {MAX_MATCHES_PER_RULE} plus the catch-all); requests selected only by the last {} go to {} unsplit",
                converted.len(),
                max_chunks,
                converted.len() - max_matches,
                split.root
            ),
        );
        converted.truncate(max_matches);
    }
    let mut parents = vec![split.parent.clone()];
    parents.extend(groups);
    for sp in &split.ports {
        if unsupported_protocol(split, sp, out) {
            continue;
        }
        if !sp.port.is_http() {
            out.finding(
                Feature::TcpRoutes,
                Level::Partial,
                &split.parent,
                &format!("{p}service"),
                format!(
                    "port {} of {} is not declared HTTP (name or appProtocol): if it carries other TCP traffic, those connections are not split (an HTTPRoute routes HTTP requests only)",
                    sp.port.port, split.root
                ),
            );
        }
        if sp.backends.len() > MAX_BACKEND_REFS {
            out.finding(
                if has_matches {
                    Feature::TrafficSplitMatches
                } else {
                    Feature::TrafficSplit
                },
                Level::None,
                &split.parent,
                &format!("{p}backends"),
                format!(
                    "{} backends on port {}: Linkerd's HTTPRoute allows at most {MAX_BACKEND_REFS} backendRefs per rule; the split is not applied on that port",
                    sp.backends.len(),
                    sp.port.port
                ),
            );
            continue;
        }
        let port = sp.port.port;
        let raw: Vec<u64> = sp
            .backends
            .iter()
            .map(|(i, _)| split.backends[*i].weight)
            .collect();
        let backend_refs: Vec<Value> = if raw.iter().all(|w| *w == 0) {
            // No backend with a positive weight serves this port: the root keeps it.
            vec![backend_ref_in(&split.root, consumer, port, 1)]
        } else {
            let ws = fit_under(&raw, MAX_WEIGHT);
            sp.backends
                .iter()
                .zip(ws)
                .map(|((i, _), w)| backend_ref_in(&split.backends[*i].service, consumer, port, w))
                .collect()
        };
        let mut rules: Vec<Value> = Vec::new();
        if has_matches {
            for chunk in converted.chunks(MAX_MATCHES_PER_RULE) {
                rules.push(json!({"matches": chunk, "backendRefs": backend_refs}));
            }
            rules.push(json!({
                "matches": [matches::catch_all()],
                "backendRefs": [backend_ref_in(&split.root, consumer, port, 1)],
            }));
        } else {
            rules.push(json!({"matches": [matches::catch_all()], "backendRefs": backend_refs}));
        }
        push_route(split, consumer, port, parents.clone(), rules, out);
    }
}

/// Pushes the HTTPRoute of `split` on `port` (in the client namespace for a consumer
/// route) and returns its index in `out.objects`.
fn push_route(
    split: &Split,
    consumer: Option<&str>,
    port: u16,
    parents: Vec<ObjectKey>,
    rules: Vec<Value>,
    out: &mut Out,
) -> usize {
    let (ns, base) = match consumer {
        None => (
            split.root.namespace.clone(),
            crate::names::name(&[&split.root.name, "split", &port.to_string()]),
        ),
        Some(ns) => (
            ns.to_string(),
            crate::names::name(&[
                &split.root.name,
                &split.root.namespace,
                "route",
                &port.to_string(),
            ]),
        ),
    };
    let key = format!("{}/{}", split.root, port);
    let name = out.names.take("HTTPRoute", &ns, base, &key);
    let api = out.apis.http_route;
    let mut parent = json!({"group": "", "kind": "Service", "name": split.root.name, "port": port});
    if consumer.is_some() {
        parent["namespace"] = json!(split.root.namespace);
    }
    out.push(
        api,
        "HTTPRoute",
        &ns,
        name,
        parents,
        json!({"spec": {
            "parentRefs": [parent],
            "rules": rules,
        }}),
    );
    out.objects.len() - 1
}

/// A backendRef to `svc`, naming its namespace when the route lives elsewhere.
fn backend_ref_in(svc: &SvcKey, consumer: Option<&str>, port: u16, weight: u64) -> Value {
    let mut r = backend_ref(&svc.name, port, weight);
    if consumer.is_some_and(|ns| ns != svc.namespace) {
        r["namespace"] = json!(svc.namespace);
    }
    r
}

fn backend_ref(name: &str, port: u16, weight: u64) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight})
}

/// The name of a Service that cannot exist (Service names are DNS labels, without dots):
/// Linkerd answers requests routed to an unresolvable backend with 500, which is what
/// Gateway API requires of a rule without backends.
pub const NO_BACKEND: &str = "no-backend.meshbridge.io";

/// A Gateway API duration: `5s`, `1500ms`.
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn header_modifier(e: &HeaderEdit) -> Value {
    let pairs = |v: &[(String, String)]| -> Vec<Value> {
        v.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect()
    };
    let mut m = serde_json::Map::new();
    if !e.set.is_empty() {
        m.insert("set".into(), json!(pairs(&e.set)));
    }
    if !e.add.is_empty() {
        m.insert("add".into(), json!(pairs(&e.add)));
    }
    if !e.remove.is_empty() {
        m.insert("remove".into(), json!(e.remove));
    }
    Value::Object(m)
}

fn path_modifier(p: &PathRewrite) -> Value {
    match p {
        PathRewrite::Full(v) => json!({"type": "ReplaceFullPath", "replaceFullPath": v}),
        PathRewrite::Prefix(v) => json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": v}),
    }
}

fn redirect_filter(r: &Redirect) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(s) = &r.scheme {
        m.insert("scheme".into(), json!(s));
    }
    if let Some(h) = &r.hostname {
        m.insert("hostname".into(), json!(h));
    }
    if let Some(p) = &r.path {
        m.insert("path".into(), path_modifier(p));
    }
    if let Some(p) = r.port {
        m.insert("port".into(), json!(p));
    }
    m.insert("statusCode".into(), json!(r.status_code));
    json!({"type": "RequestRedirect", "requestRedirect": Value::Object(m)})
}

/// The retry annotations of one HTTPRoute (Linkerd 2.16+: `retry.linkerd.io/*` apply to
/// every rule of the route).
fn retry_annotations(r: &Retry) -> Vec<(&'static str, String)> {
    let codes: Vec<String> = r.codes.iter().map(u16::to_string).collect();
    vec![
        ("retry.linkerd.io/http", codes.join(",")),
        ("retry.linkerd.io/limit", r.attempts.to_string()),
    ]
}

/// A route table ([`Split::rules`]) → one HTTPRoute per root port with the rules in the
/// IR's order (Gateway API precedence, which Linkerd applies itself, ties in rule order),
/// no catch-all: Linkerd answers a request that matches no rule of a Service's routes 404.
fn route_table(split: &Split, consumer: Option<&str>, out: &mut Out) {
    let p = "spec.rules";
    if split.ports.is_empty() {
        out.finding(
            Feature::RouteTables,
            Level::None,
            &split.parent,
            p,
            format!(
                "Service {} is not in the input: an HTTPRoute needs its ports (parentRef and backendRef ports), so the route is not applied",
                split.root
            ),
        );
        return;
    }
    let v1beta3 = out.apis.http_route == crate::POLICY_V1BETA3;
    // Retries: annotations hold for the whole HTTPRoute, so only one retry policy shared by
    // every rule that forwards requests can be expressed.
    let forwarding: Vec<&RouteRule> = split
        .rules
        .iter()
        .filter(|r| r.redirect().is_none() && !r.backends.is_empty())
        .collect();
    let shared_retry = match forwarding.first().and_then(|r| r.retry.as_ref()) {
        Some(first)
            if !first.codes.is_empty()
                && forwarding.iter().all(|r| r.retry.as_ref() == Some(first)) =>
        {
            Some(first.clone())
        }
        _ => None,
    };
    let retries_ok = shared_retry.is_some() && v1beta3;
    for r in &split.rules {
        let Some(retry) = &r.retry else { continue };
        let field = format!("{}.retry", r.field);
        if !v1beta3 {
            out.finding(
                Feature::Retries,
                Level::Partial,
                &split.parent,
                &field,
                "the retry.linkerd.io annotations need Linkerd 2.16 or later; the rule is not retried".into(),
            );
        } else if !retries_ok {
            out.finding(
                Feature::Retries,
                Level::Partial,
                &split.parent,
                &field,
                if retry.codes.is_empty() {
                    "a retry without status codes (connection failures only) has no Linkerd annotation; the rule is not retried".into()
                } else {
                    "Linkerd's retry annotations apply to every rule of an HTTPRoute, and the rules forwarding requests do not share one retry policy; the rule is not retried".into()
                },
            );
        } else if retry.backoff_ms.is_some() {
            out.finding(
                Feature::Retries,
                Level::Partial,
                &split.parent,
                &format!("{field}.backoff"),
                "Linkerd has no retry backoff setting; its own backoff applies".into(),
            );
        }
    }
    let mut parents = vec![split.parent.clone()];
    parents.sort();
    for sp in &split.ports {
        if unsupported_protocol(split, sp, out) {
            continue;
        }
        let port = sp.port.port;
        let no_backend = || {
            let mut r = backend_ref(NO_BACKEND, port, 1);
            if let Some(obj) = r.as_object_mut() {
                obj.remove("weight");
            }
            r
        };
        let mut rules: Vec<Value> = Vec::new();
        for rule in &split.rules {
            let mut ms: Vec<Value> = Vec::new();
            for (j, m) in rule.matches.iter().enumerate() {
                match matches::gamma_convert(m) {
                    Ok(v) => ms.extend(v),
                    Err(e) => out.finding(
                        e.feature,
                        Level::Partial,
                        &split.parent,
                        &format!("{}.matches[{j}]", rule.field),
                        format!("{}; the match is not emitted (its requests are not routed by this rule)", e.reason),
                    ),
                }
            }
            if !rule.matches.is_empty() && ms.is_empty() {
                continue;
            }
            if ms.is_empty() {
                ms.push(matches::catch_all());
            }
            let mut filters: Vec<Value> = Vec::new();
            let mut backend_filters: Vec<Value> = Vec::new();
            let mut fail = false;
            for (k, f) in rule.filters.iter().enumerate() {
                let field = format!("{}.filters[{k}]", rule.field);
                match f {
                    Filter::RequestHeaders(e) => filters.push(json!({
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": header_modifier(e),
                    })),
                    Filter::ResponseHeaders(e) => backend_filters.push(json!({
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": header_modifier(e),
                    })),
                    Filter::Redirect(r) => filters.push(redirect_filter(r)),
                    Filter::Rewrite { .. } => {
                        out.finding(
                            Feature::UrlRewrite,
                            Level::None,
                            &split.parent,
                            &field,
                            "Linkerd's HTTPRoute has no URLRewrite filter; the rule answers 500 instead of forwarding unrewritten requests".into(),
                        );
                        fail = true;
                    }
                }
            }
            let mut r = serde_json::Map::new();
            let redirect = rule.redirect().is_some();
            if !redirect {
                let bs: Vec<(usize, u64)> = rule
                    .backends
                    .iter()
                    .filter(|(i, _)| sp.backends.iter().any(|(j, _)| j == i))
                    .copied()
                    .collect();
                let raw: Vec<u64> = bs.iter().map(|(_, w)| *w).collect();
                if !fail && bs.len() > MAX_BACKEND_REFS {
                    out.finding(
                        Feature::RouteTables,
                        Level::Partial,
                        &split.parent,
                        &format!("{}.backendRefs", rule.field),
                        format!("{} backends: Linkerd's HTTPRoute allows at most {MAX_BACKEND_REFS} backendRefs per rule; the rule answers 500", bs.len()),
                    );
                    fail = true;
                }
                let refs: Vec<Value> = if fail || raw.iter().all(|w| *w == 0) {
                    vec![no_backend()]
                } else {
                    let ws = fit_under(&raw, MAX_WEIGHT);
                    bs.iter()
                        .zip(ws)
                        .map(|((i, _), w)| {
                            let mut b =
                                backend_ref_in(&split.backends[*i].service, consumer, port, w);
                            if !backend_filters.is_empty() {
                                b["filters"] = json!(backend_filters);
                            }
                            b
                        })
                        .collect()
                };
                if (fail || raw.iter().all(|w| *w == 0)) && !backend_filters.is_empty() {
                    out.finding(
                        Feature::HeaderModifiers,
                        Level::Partial,
                        &split.parent,
                        &format!("{}.filters", rule.field),
                        "the rule answers 500 (no backend): its response header edits are not applied".into(),
                    );
                }
                r.insert("backendRefs".into(), json!(refs));
            } else if !backend_filters.is_empty() {
                out.finding(
                    Feature::HeaderModifiers,
                    Level::Partial,
                    &split.parent,
                    &format!("{}.filters", rule.field),
                    "Linkerd's HTTPRoute takes ResponseHeaderModifier on backendRefs only: the redirect's response headers are not edited".into(),
                );
            }
            if fail {
                filters.retain(|f| f["type"] != "RequestHeaderModifier");
            }
            if !filters.is_empty() {
                r.insert("filters".into(), json!(filters));
            }
            let mut timeouts = serde_json::Map::new();
            if !redirect && !fail {
                if let Some(t) = rule.timeout_ms {
                    timeouts.insert("request".into(), json!(duration(t)));
                }
                if let Some(t) = rule.backend_timeout_ms {
                    timeouts.insert("backendRequest".into(), json!(duration(t)));
                }
            }
            if !timeouts.is_empty() {
                if v1beta3 {
                    r.insert("timeouts".into(), Value::Object(timeouts));
                } else {
                    out.finding(
                        Feature::Timeouts,
                        Level::Partial,
                        &split.parent,
                        &format!("{}.timeouts", rule.field),
                        "HTTPRoute timeouts need policy.linkerd.io/v1beta3 (Linkerd 2.16 or later); not applied".into(),
                    );
                }
            }
            for chunk in ms.chunks(MAX_MATCHES_PER_RULE) {
                let mut rr = r.clone();
                rr.insert("matches".into(), json!(chunk));
                rules.push(Value::Object(rr));
            }
        }
        if rules.len() > MAX_RULES {
            out.finding(
                Feature::RouteTables,
                Level::Partial,
                &split.parent,
                p,
                format!(
                    "{} HTTPRoute rules (8 matches each) exceed Linkerd's limit of {MAX_RULES}; requests matching only the last {} are answered 404",
                    rules.len(),
                    rules.len() - MAX_RULES
                ),
            );
            rules.truncate(MAX_RULES);
        }
        if rules.is_empty() {
            continue;
        }
        let i = push_route(split, consumer, port, parents.clone(), rules, out);
        if retries_ok && let Some(retry) = &shared_retry {
            let ann = &mut out.objects[i].body["metadata"]["annotations"];
            for (k, v) in retry_annotations(retry) {
                ann[k] = json!(v);
            }
        }
    }
}
