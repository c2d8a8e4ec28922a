//! TrafficTarget → Server (one per destination port) + HTTPRoute (per set of allowed
//! sources) + AuthorizationPolicy + MeshTLSAuthentication.
//!
//! Linkerd facts this relies on (linkerd2-proxy `app/inbound/src/policy/http.rs`,
//! `proxy/server-policy`): a request is matched to exactly one inbound HTTPRoute of the
//! Server (best match; ties go to the older route) and is authorized by that route's
//! AuthorizationPolicies plus the Server's; once any HTTPRoute is attached to a Server,
//! requests matching none get 404; non-HTTP connections are authorized by the Server's
//! policies only.

use crate::matches::{self, MAX_MATCHES_PER_RULE, MAX_RULES};
use crate::names::{name, short_hash};
use crate::{Out, POLICY_GROUP, POLICY_V1ALPHA1};
use meshbridge_core::ir::{
    AccessPolicy, AccessRule, Identity, Ir, Ports, Protocol, TargetPort, Traffic,
};
use meshbridge_core::model::{Kind, ObjectKey};
use meshbridge_core::{Feature, Level};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Namespace (or workload) annotation selecting Linkerd's default inbound policy.
pub const DEFAULT_INBOUND_POLICY: &str = "config.linkerd.io/default-inbound-policy";

/// A Server port: a number, or a container-port name Linkerd resolves per pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl PortRef {
    fn label(&self) -> String {
        match self {
            PortRef::Number(n) => n.to_string(),
            PortRef::Name(s) => s.clone(),
        }
    }

    fn json(&self) -> Value {
        match self {
            PortRef::Number(n) => json!(n),
            PortRef::Name(s) => json!(s),
        }
    }
}

/// Resolves a named target port through the destination's container ports: a number when
/// every declaring container agrees, else the name itself (Linkerd resolves it per pod).
fn resolve_named(ir: &Ir, dest: &Identity, port_name: &str) -> PortRef {
    let numbers: BTreeSet<u16> = ir
        .workloads
        .get(dest)
        .into_iter()
        .flat_map(|w| &w.pods)
        .flat_map(|p| &p.container_ports)
        .filter(|(n, _)| n.as_deref() == Some(port_name))
        .map(|(_, p)| *p)
        .collect();
    match numbers.len() {
        1 => PortRef::Number(*numbers.iter().next().unwrap_or(&0)),
        _ => PortRef::Name(port_name.to_string()),
    }
}

/// Every known port of the destination: the target ports of the Services selecting its
/// pods (TCP only) and the ports its containers declare.
pub fn all_ports(ir: &Ir, dest: &Identity) -> BTreeSet<PortRef> {
    let mut out = BTreeSet::new();
    for svc in ir.services_of(dest) {
        for p in svc.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
            out.insert(match &p.target_port {
                TargetPort::Number(n) => PortRef::Number(*n),
                TargetPort::Named(s) => resolve_named(ir, dest, s),
            });
        }
    }
    if let Some(w) = ir.workloads.get(dest) {
        for p in &w.pods {
            for (_, n) in &p.container_ports {
                out.insert(PortRef::Number(*n));
            }
        }
    }
    out
}

/// Linkerd's mesh identity of a ServiceAccount.
pub fn linkerd_identity(id: &Identity, control_plane_ns: &str, trust_domain: &str) -> String {
    format!(
        "{}.{}.serviceaccount.identity.{}.{}",
        id.service_account, id.namespace, control_plane_ns, trust_domain
    )
}

fn field_prefix(rule: &AccessRule) -> &'static str {
    if rule.field.starts_with("spec.") {
        "spec."
    } else {
        ""
    }
}

fn feature_of(t: &Traffic) -> Feature {
    match t {
        Traffic::Http(_) => Feature::HttpAccess,
        Traffic::Tcp => Feature::TcpAccess,
        Traffic::Udp => Feature::UdpAccess,
    }
}

/// One allowed Linkerd match on one port.
struct Entry {
    m: Value,
    sources: BTreeSet<Identity>,
    /// Input objects (TrafficTargets and HTTPRouteGroups).
    parents: BTreeSet<ObjectKey>,
    /// (TrafficTarget, rule field) pairs, for findings.
    origins: BTreeSet<(ObjectKey, String)>,
}

#[derive(Default)]
struct PortPlan {
    parents: BTreeSet<ObjectKey>,
    tcp: BTreeSet<Identity>,
    tcp_parents: BTreeSet<ObjectKey>,
    http: Vec<Entry>,
}

impl PortPlan {
    fn add_http(
        &mut self,
        m: &Value,
        sources: &[Identity],
        parents: &[ObjectKey],
        origin: (ObjectKey, String),
    ) {
        let e = match self.http.iter_mut().position(|e| e.m == *m) {
            Some(i) => &mut self.http[i],
            None => {
                self.http.push(Entry {
                    m: m.clone(),
                    sources: BTreeSet::new(),
                    parents: BTreeSet::new(),
                    origins: BTreeSet::new(),
                });
                let last = self.http.len() - 1;
                &mut self.http[last]
            }
        };
        e.sources.extend(sources.iter().cloned());
        e.parents.extend(parents.iter().cloned());
        e.origins.insert(origin);
    }
}

pub fn translate(ir: &Ir, policy: &AccessPolicy, out: &mut Out) {
    let dest = &policy.destination;
    let ns = dest.namespace.clone();
    let selector = ir.isolating_selector(dest);
    let mut plans: BTreeMap<PortRef, PortPlan> = BTreeMap::new();
    let known_ports = all_ports(ir, dest);
    for rule in &policy.rules {
        let pfx = field_prefix(rule);
        if rule.traffic == Traffic::Udp {
            out.finding(
                Feature::UdpAccess,
                Level::None,
                &rule.parent,
                &rule.field,
                "Linkerd does not proxy UDP: the UDP allow cannot be expressed (UDP to the destination is not governed by Linkerd policy)".into(),
            );
            continue;
        }
        let feature = feature_of(&rule.traffic);
        if selector.is_none() {
            out.finding(
                feature,
                Level::None,
                &rule.parent,
                &format!("{pfx}destination"),
                if ir.workloads.contains_key(dest) {
                    format!(
                        "no label set selects exactly the pods of ServiceAccount {dest} (Linkerd Servers select pods by labels, not by service account): no Server is emitted, so neither this allow nor deny-by-default is enforced for it"
                    )
                } else {
                    format!(
                        "no Pod or Deployment running as ServiceAccount {dest} is in the input, so no label selector for its pods is known (Linkerd Servers select pods by labels, not by service account): no Server is emitted, so neither this allow nor deny-by-default is enforced for it"
                    )
                },
            );
            continue;
        }
        let ports: Vec<PortRef> = match &rule.ports {
            Ports::Only(set) => set.iter().map(|p| PortRef::Number(*p)).collect(),
            Ports::All => known_ports.iter().cloned().collect(),
        };
        if ports.is_empty() && matches!(rule.ports, Ports::Only(_)) {
            // The rule's ports and the destination port exclude each other: it allows
            // nothing, which deny-by-default already expresses.
            continue;
        }
        if ports.is_empty() {
            out.finding(
                feature,
                Level::None,
                &rule.parent,
                &rule.field,
                format!(
                    "the rule covers all ports, but no port of {dest} is known (no Service selects its pods and no container declares a port); a Linkerd Server needs a port, so nothing is emitted"
                ),
            );
            continue;
        }
        let origin = (rule.parent.clone(), rule.field.clone());
        match &rule.traffic {
            Traffic::Tcp => {
                for p in &ports {
                    let plan = plans.entry(p.clone()).or_default();
                    plan.parents.insert(rule.parent.clone());
                    plan.tcp.extend(rule.sources.iter().cloned());
                    plan.tcp_parents.insert(rule.parent.clone());
                }
            }
            Traffic::Http(routes) => {
                for r in routes {
                    match matches::convert(r) {
                        Ok(ms) => {
                            let parents = [rule.parent.clone(), r.group.clone()];
                            for p in &ports {
                                let plan = plans.entry(p.clone()).or_default();
                                plan.parents.insert(rule.parent.clone());
                                for m in &ms {
                                    plan.add_http(m, &rule.sources, &parents, origin.clone());
                                }
                            }
                        }
                        Err(e) => out.finding(
                            Feature::HttpAccess,
                            Level::Partial,
                            &rule.parent,
                            &rule.field,
                            format!(
                                "{} (HTTPRouteGroup {}): that route is not allowed (fail closed)",
                                e.reason, r.group.name
                            ),
                        ),
                    }
                }
            }
            Traffic::Udp => {}
        }
    }
    let Some(selector) = selector else {
        return;
    };
    // Deny by default on every known port of the destination, including ports no rule
    // allows (or whose allows could not be expressed): a port without a Server would fall
    // back to Linkerd's default inbound policy, which may allow everything.
    let all_parents: BTreeSet<ObjectKey> = policy.rules.iter().map(|r| r.parent.clone()).collect();
    for p in &known_ports {
        let plan = plans.entry(p.clone()).or_default();
        if plan.parents.is_empty() {
            plan.parents = all_parents.clone();
        }
    }
    // Deny-by-default beyond the Servers needs the namespace's default inbound policy.
    let ns_policy = ir
        .namespaces
        .get(&ns)
        .and_then(|n| n.annotations.get(DEFAULT_INBOUND_POLICY))
        .map(String::as_str);
    if ns_policy != Some("deny") && !plans.is_empty() {
        for rule in policy.rules.iter().filter(|r| r.traffic != Traffic::Udp) {
            out.finding(
                feature_of(&rule.traffic),
                Level::Partial,
                &rule.parent,
                &format!("{}destination", field_prefix(rule)),
                format!(
                    "Linkerd denies by default only on ports that have a Server; for the other ports of {dest} to be denied too, annotate Namespace {ns} with `{DEFAULT_INBOUND_POLICY}: deny` (meshbridge does not modify Namespaces; current value: {})",
                    ns_policy.map(|v| format!("`{v}`")).unwrap_or_else(|| "unset".into())
                ),
            );
        }
    }
    let cx = out.cx;
    let cp_ns = cx
        .mesh
        .as_ref()
        .and_then(|m| m.control_plane_namespace.clone())
        .unwrap_or_else(|| "linkerd".into());
    let td = cx.trust_domain.clone();
    let id_of = |i: &Identity| linkerd_identity(i, &cp_ns, &td);
    for (port, plan) in plans {
        emit_port(out, dest, &selector, &port, plan, &id_of);
    }
}

fn emit_port(
    out: &mut Out,
    dest: &Identity,
    selector: &BTreeMap<String, String>,
    port: &PortRef,
    mut plan: PortPlan,
    id_of: &dyn Fn(&Identity) -> String,
) {
    let ns = dest.namespace.as_str();
    let server = out.names.take(
        "Server",
        ns,
        name(&[&dest.service_account, &port.label()]),
        &format!("{dest}/{}", port.label()),
    );
    let mut spec = json!({"podSelector": {"matchLabels": selector}, "port": port.json()});
    if out.apis.server_access_policy {
        spec["accessPolicy"] = json!("deny");
    }
    let server_api = out.apis.server;
    out.push(
        server_api,
        "Server",
        ns,
        server.clone(),
        plan.parents.iter().cloned().collect(),
        json!({ "spec": spec }),
    );
    if !plan.tcp.is_empty() {
        authorize(
            out,
            ns,
            "Server",
            &server,
            &plan.tcp,
            &plan.tcp_parents,
            id_of,
        );
    }
    if plan.http.is_empty() {
        return;
    }
    // Sources allowed every HTTP request on this port: they may use every route.
    let everything: BTreeSet<Identity> = plan
        .http
        .iter()
        .filter(|e| matches::is_catch_all(&e.m))
        .flat_map(|e| e.sources.iter().cloned())
        .collect();
    // With HTTPRoutes attached, unmatched requests get 404: sources allowed all TCP keep
    // every request through a catch-all route (they are authorized on the Server).
    if !plan.tcp.is_empty() && !plan.http.iter().any(|e| matches::is_catch_all(&e.m)) {
        plan.http.push(Entry {
            m: matches::catch_all(),
            sources: BTreeSet::new(),
            parents: plan.tcp_parents.clone(),
            origins: BTreeSet::new(),
        });
    }
    for e in &mut plan.http {
        e.sources.extend(everything.iter().cloned());
    }
    // One HTTPRoute (or more, past the CRD's limits) per distinct set of sources.
    let mut groups: BTreeMap<BTreeSet<Identity>, Vec<usize>> = BTreeMap::new();
    for (i, e) in plan.http.iter().enumerate() {
        groups.entry(e.sources.clone()).or_default().push(i);
    }
    let per_route = MAX_RULES * MAX_MATCHES_PER_RULE;
    for (sources, idxs) in &groups {
        let key: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let key = key.join(",");
        for (k, chunk) in idxs.chunks(per_route).enumerate() {
            let mut base = name(&[&server, &short_hash(&key)]);
            if k > 0 {
                base = name(&[&base, &(k + 1).to_string()]);
            }
            let route = out
                .names
                .take("HTTPRoute", ns, base, &format!("{server}/{key}/{k}"));
            let ms: Vec<&Value> = chunk.iter().map(|i| &plan.http[*i].m).collect();
            let rules: Vec<Value> = ms
                .chunks(MAX_MATCHES_PER_RULE)
                .map(|c| json!({"matches": c}))
                .collect();
            let parents: BTreeSet<ObjectKey> = chunk
                .iter()
                .flat_map(|i| plan.http[*i].parents.iter().cloned())
                .collect();
            let route_api = out.apis.http_route;
            out.push(
                route_api,
                "HTTPRoute",
                ns,
                route.clone(),
                parents.iter().cloned().collect(),
                json!({"spec": {
                    "parentRefs": [{"group": POLICY_GROUP, "kind": "Server", "name": server}],
                    "rules": rules,
                }}),
            );
            if !sources.is_empty() {
                let tt_parents: BTreeSet<ObjectKey> = parents
                    .iter()
                    .filter(|p| p.kind == Kind::TrafficTarget)
                    .cloned()
                    .collect();
                authorize(out, ns, "HTTPRoute", &route, sources, &tt_parents, id_of);
            }
        }
    }
    // Linkerd authorizes a request against the single route it selects: overlapping
    // matches with different sources may deny some allowed requests (never allow more).
    let sets: Vec<(&BTreeSet<Identity>, &Vec<usize>)> = groups.iter().collect();
    let mut reported: BTreeSet<(ObjectKey, String)> = BTreeSet::new();
    for (a, (_, ia)) in sets.iter().enumerate() {
        for (_, ib) in sets.iter().skip(a + 1) {
            for &x in ia.iter() {
                for &y in ib.iter() {
                    let (ex, ey) = (&plan.http[x], &plan.http[y]);
                    if matches::is_catch_all(&ex.m)
                        || matches::is_catch_all(&ey.m)
                        || matches::disjoint(&ex.m, &ey.m)
                    {
                        continue;
                    }
                    for o in ex.origins.iter().chain(&ey.origins) {
                        if reported.insert(o.clone()) {
                            out.finding(
                                Feature::HttpAccess,
                                Level::Partial,
                                &o.0,
                                &o.1,
                                format!(
                                    "on port {} of {dest}, routes allowed to different sources may match the same request ({} and {}); Linkerd authorizes a request only against the one HTTPRoute it selects, so such requests may be denied to some allowed sources (never allowed to others)",
                                    port.label(),
                                    summary(&ex.m),
                                    summary(&ey.m)
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}

fn summary(m: &Value) -> String {
    let mut s = String::new();
    if let Some(meth) = m["method"].as_str() {
        s.push_str(meth);
        s.push(' ');
    }
    s.push_str(&format!(
        "{} {}",
        m["path"]["type"].as_str().unwrap_or(""),
        m["path"]["value"].as_str().unwrap_or("")
    ));
    if let Some(hs) = m["headers"].as_array() {
        for h in hs {
            s.push_str(&format!(
                " {}={}",
                h["name"].as_str().unwrap_or(""),
                h["value"].as_str().unwrap_or("")
            ));
        }
    }
    format!("`{s}`")
}

/// One MeshTLSAuthentication holding every source (Linkerd admits at most one per
/// AuthorizationPolicy) and the AuthorizationPolicy that requires it for `target`.
fn authorize(
    out: &mut Out,
    ns: &str,
    target_kind: &str,
    target: &str,
    sources: &BTreeSet<Identity>,
    parents: &BTreeSet<ObjectKey>,
    id_of: &dyn Fn(&Identity) -> String,
) {
    let key = format!("{target_kind}/{ns}/{target}");
    let authn = out
        .names
        .take("MeshTLSAuthentication", ns, target.to_string(), &key);
    let identities: Vec<String> = sources.iter().map(id_of).collect();
    out.push(
        POLICY_V1ALPHA1,
        "MeshTLSAuthentication",
        ns,
        authn.clone(),
        parents.iter().cloned().collect(),
        json!({"spec": {"identities": identities}}),
    );
    let ap = out
        .names
        .take("AuthorizationPolicy", ns, target.to_string(), &key);
    out.push(
        POLICY_V1ALPHA1,
        "AuthorizationPolicy",
        ns,
        ap,
        parents.iter().cloned().collect(),
        json!({"spec": {
            "targetRef": {"group": POLICY_GROUP, "kind": target_kind, "name": target},
            "requiredAuthenticationRefs": [
                {"group": POLICY_GROUP, "kind": "MeshTLSAuthentication", "name": authn}
            ],
        }}),
    );
}
