//! TrafficSplit → ServiceProfile `dstOverrides` or outbound HTTPRoute (never both for one
//! root Service).

use crate::matches::{self, MAX_BACKEND_REFS, MAX_MATCHES_PER_RULE, MAX_RULES, MAX_WEIGHT};
use crate::{Out, SP_API, SplitMode};
use meshbridge_core::ir::{Ir, Protocol, Split, SplitPort};
use meshbridge_core::model::ObjectKey;
use meshbridge_core::weights::{fit_under, largest_remainder};
use meshbridge_core::{Feature, Level};
use serde_json::{Value, json};

/// Total of the normalised ServiceProfile weights: `1000m` = one share, far below the
/// proxy's `uint32(milli * 10)` overflow at ~429,496.
pub const SP_TOTAL_MILLI: u64 = 1000;

pub fn translate(ir: &Ir, split: &Split, default_mode: SplitMode, out: &mut Out) {
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
        SplitMode::HttpRoute => http_routes(split, out),
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

fn http_routes(split: &Split, out: &mut Out) {
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
            vec![backend_ref(&split.root.name, port, 1)]
        } else {
            let ws = fit_under(&raw, MAX_WEIGHT);
            sp.backends
                .iter()
                .zip(ws)
                .map(|((i, _), w)| backend_ref(&split.backends[*i].service.name, port, w))
                .collect()
        };
        let mut rules: Vec<Value> = Vec::new();
        if has_matches {
            for chunk in converted.chunks(MAX_MATCHES_PER_RULE) {
                rules.push(json!({"matches": chunk, "backendRefs": backend_refs}));
            }
            rules.push(json!({
                "matches": [matches::catch_all()],
                "backendRefs": [backend_ref(&split.root.name, port, 1)],
            }));
        } else {
            rules.push(json!({"matches": [matches::catch_all()], "backendRefs": backend_refs}));
        }
        let base = crate::names::name(&[&split.root.name, "split", &port.to_string()]);
        let key = format!("{}/{}", split.root, port);
        let name = out
            .names
            .take("HTTPRoute", &split.root.namespace, base, &key);
        let api = out.apis.http_route;
        out.push(
            api,
            "HTTPRoute",
            &split.root.namespace,
            name,
            parents.clone(),
            json!({"spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": split.root.name, "port": port}],
                "rules": rules,
            }}),
        );
    }
}

fn backend_ref(name: &str, port: u16, weight: u64) -> Value {
    json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight})
}
