//! RBAC policies of an inbound port: one ALLOW policy per TrafficTarget rule, principals the
//! sources' SPIFFE URIs, permissions the rule's HTTP matches (or `any` for TCP rules).

use meshbridge_core::ir::{AccessRule, HttpRoute, Traffic};
use serde_json::{Value, json};

fn header_perm(name: &str, m: Value) -> Value {
    json!({"header": {"name": name, "stringMatch": m}})
}

fn route_permission(r: &HttpRoute) -> Value {
    if r.is_catch_all() {
        return json!({"any": true});
    }
    let mut and = Vec::new();
    if let Some(p) = &r.path
        && p.kind() != meshbridge_core::ir::PathKind::Any
    {
        and.push(json!({"urlPath": {"path": {"safeRegex": {"regex": p.full_match_regex()}}}}));
    }
    if !r.methods.is_empty() {
        let ors: Vec<Value> = r
            .methods
            .iter()
            .map(|m| header_perm(":method", json!({"exact": m})))
            .collect();
        and.push(json!({"orRules": {"rules": ors}}));
    }
    for h in &r.headers {
        let name = if h.name == "host" {
            ":authority"
        } else {
            &h.name
        };
        and.push(header_perm(name, json!({"safeRegex": {"regex": h.regex}})));
    }
    if and.is_empty() {
        json!({"any": true})
    } else {
        json!({"andRules": {"rules": and}})
    }
}

/// RBAC policies (ALLOW) for one destination port: one per rule with at least one source and
/// one permission. Rules are never widened: HTTP rules on a non-HTTP port allow nothing.
pub fn rbac_policies(rules: &[&AccessRule], http: bool, td: &str) -> Value {
    let mut out = serde_json::Map::new();
    for r in rules {
        let principals: Vec<Value> = r
            .sources
            .iter()
            .map(|s| json!({"authenticated": {"principalName": {"exact": s.spiffe(td)}}}))
            .collect();
        if principals.is_empty() {
            continue;
        }
        let permissions: Vec<Value> = match &r.traffic {
            Traffic::Tcp => vec![json!({"any": true})],
            Traffic::Udp => vec![],
            Traffic::Http(routes) if http => routes.iter().map(route_permission).collect(),
            Traffic::Http(_) => vec![],
        };
        if permissions.is_empty() {
            continue;
        }
        out.insert(
            format!("{}/{}#{}", r.parent.namespace, r.parent.name, r.rule_index),
            json!({"permissions": permissions, "principals": principals}),
        );
    }
    Value::Object(out)
}
