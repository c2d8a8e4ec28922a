//! Snapshot → validated IR. Each object is checked on its own (field path + reason); only
//! objects without errors reach the IR. A pure function: no I/O, no clock.

use crate::ir::*;
use crate::model::{self, Kind, ObjectKey, RawWeight};
use crate::report::{Problem, Severity, reasons};
use crate::snapshot::Snapshot;
use std::collections::{BTreeMap, BTreeSet};

/// HTTP methods SMI allows (`*` = any).
pub const METHODS: &[&str] = &[
    "*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Builds the IR from a snapshot.
pub fn build(snap: &Snapshot) -> Ir {
    let mut ir = Ir::default();
    build_cluster_state(snap, &mut ir);
    let groups = validate_route_groups(snap, &mut ir);
    let l4 = validate_port_routes(snap, &mut ir);
    let routes = build_splits(snap, &groups, &mut ir);
    build_access(snap, &groups, &l4, &routes, &mut ir);
    ir
}

pub(crate) struct Ctx<'a> {
    pub key: ObjectKey,
    pub meta: &'a model::Meta,
    pub status: ObjectStatus,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(kind: Kind, meta: &'a model::Meta) -> Self {
        Ctx {
            key: ObjectKey::new(kind, &meta.namespace, &meta.name),
            meta,
            status: ObjectStatus {
                generation: meta.generation,
                accepted: true,
                resolved_refs: true,
                conflicted: false,
                problems: vec![],
            },
        }
    }

    /// Field path with the version's prefix (`spec.` or none).
    pub(crate) fn f(&self, field: &str) -> String {
        format!("{}{}", self.meta.prefix, field)
    }

    pub(crate) fn invalid(&mut self, field: String, cr: &'static str, reason: impl Into<String>) {
        self.status.accepted = false;
        self.push(Severity::Error, field, cr, reason);
    }

    pub(crate) fn unresolved(
        &mut self,
        sev: Severity,
        field: String,
        cr: &'static str,
        reason: impl Into<String>,
    ) {
        self.status.resolved_refs = false;
        self.push(sev, field, cr, reason);
    }

    pub(crate) fn push(
        &mut self,
        sev: Severity,
        field: String,
        cr: &'static str,
        reason: impl Into<String>,
    ) {
        self.status.problems.push(Problem::for_object(
            sev,
            &self.key,
            &self.meta.origin,
            field,
            cr,
            reason,
        ));
    }

    pub(crate) fn finish(self, ir: &mut Ir) -> bool {
        let ok = self.status.usable();
        ir.status.insert(self.key, self.status);
        ok
    }
}

// === cluster state ===

/// A Kubernetes Service as the IR sees it: its ports (target ports resolved to a number
/// where they are one, `targetPort` absent = the port), selector and cluster IP.
pub fn service_of(ns: &str, name: &str, svc: &k8s_openapi::api::core::v1::Service) -> Service {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut ports = Vec::new();
    for p in spec.ports.unwrap_or_default() {
        let Ok(port) = u16::try_from(p.port) else {
            continue;
        };
        if port == 0 {
            continue;
        }
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as K;
        let target_port = match p.target_port {
            Some(K::Int(i)) => u16::try_from(i)
                .ok()
                .filter(|i| *i > 0)
                .map(TargetPort::Number)
                .unwrap_or(TargetPort::Number(port)),
            Some(K::String(s)) => match s.parse::<u16>() {
                Ok(n) if n > 0 => TargetPort::Number(n),
                _ => TargetPort::Named(s),
            },
            None => TargetPort::Number(port),
        };
        let protocol = match p.protocol.as_deref() {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        };
        ports.push(ServicePort {
            name: p.name,
            port,
            target_port,
            protocol,
            app_protocol: p.app_protocol,
        });
    }
    ports.sort_by_key(|a| (a.port, a.protocol));
    Service {
        key: SvcKey::new(ns, name),
        ports,
        selector: spec.selector.unwrap_or_default(),
        cluster_ip: spec.cluster_ip.filter(|ip| ip != "None" && !ip.is_empty()),
    }
}

fn build_cluster_state(snap: &Snapshot, ir: &mut Ir) {
    for (name, (ns, _)) in &snap.namespaces {
        ir.namespaces.insert(
            name.clone(),
            NamespaceInfo {
                labels: ns.metadata.labels.clone().unwrap_or_default(),
                annotations: ns.metadata.annotations.clone().unwrap_or_default(),
            },
        );
    }
    for ((ns, name), (svc, _)) in &snap.services {
        let s = service_of(ns, name, svc);
        ir.services.insert(s.key.clone(), s);
    }
    let ports_of = |spec: &k8s_openapi::api::core::v1::PodSpec| -> Vec<(Option<String>, u16)> {
        spec.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| Some((p.name.clone(), u16::try_from(p.container_port).ok()?)))
            .collect()
    };
    // One pod (or a Deployment's pod template) of the workload of its ServiceAccount
    // (`default` when unset).
    let mut add = |ns: &String,
                   spec: &k8s_openapi::api::core::v1::PodSpec,
                   name: String,
                   labels: BTreeMap<String, String>,
                   ip: Option<String>| {
        let sa = spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        let id = Identity::new(ns, sa);
        let pod = PodInfo {
            namespace: ns.clone(),
            name,
            labels,
            ip,
            container_ports: ports_of(spec),
        };
        ir.workloads
            .entry(id.clone())
            .or_insert_with(|| Workload {
                identity: id,
                pods: vec![],
            })
            .pods
            .push(pod);
    };
    for ((ns, name), (pod, _)) in &snap.pods {
        let Some(spec) = &pod.spec else { continue };
        add(
            ns,
            spec,
            name.clone(),
            pod.metadata.labels.clone().unwrap_or_default(),
            pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
        );
    }
    // Every workload kind with a pod template: one template each (`<kind>/<name>`).
    for t in snap.pod_templates() {
        let Some(spec) = &t.template.spec else {
            continue;
        };
        add(
            &t.namespace.to_string(),
            spec,
            format!("{}/{}", t.kind.as_str().to_ascii_lowercase(), t.name),
            t.template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            None,
        );
    }
    // The ports each pod serves: declared container ports and the Services' target ports.
    for w in ir.workloads.values_mut() {
        for p in &mut w.pods {
            p.container_ports = served_ports(
                &p.namespace,
                &p.labels,
                &p.container_ports,
                ir.services.values(),
            );
        }
        w.pods.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

// === HTTPRouteGroup ===

/// Valid route groups: key → routes in order.
type Groups = BTreeMap<(String, String), Vec<HttpRoute>>;

fn validate_route_groups(snap: &Snapshot, ir: &mut Ir) -> Groups {
    let mut out = Groups::new();
    for (k, g) in &snap.route_groups {
        let mut cx = Ctx::new(Kind::HTTPRouteGroup, &g.meta);
        let mut routes = Vec::new();
        let mut names = BTreeSet::new();
        for (i, m) in g.matches.iter().enumerate() {
            let base = cx.f(&format!("matches[{i}]"));
            if m.name.is_empty() {
                cx.invalid(
                    format!("{base}.name"),
                    reasons::INVALID_FIELD,
                    "must not be empty",
                );
            } else if !names.insert(m.name.clone()) {
                cx.invalid(
                    format!("{base}.name"),
                    reasons::DUPLICATE_MATCH,
                    format!("duplicate match name `{}`", m.name),
                );
            }
            let path = match m.path_regex.as_deref() {
                None | Some("") => None,
                Some(p) => {
                    if let Err(e) = check_regex(p) {
                        cx.invalid(format!("{base}.pathRegex"), reasons::INVALID_REGEX, e);
                    }
                    Some(PathRegex(p.to_string()))
                }
            };
            let mut methods = Vec::new();
            for (j, meth) in m.methods.iter().enumerate() {
                if !METHODS.contains(&meth.as_str()) {
                    let hint = if METHODS.contains(&meth.to_ascii_uppercase().as_str()) {
                        format!(" (methods are upper-case: `{}`)", meth.to_ascii_uppercase())
                    } else {
                        String::new()
                    };
                    cx.invalid(
                        format!("{base}.methods[{j}]"),
                        reasons::INVALID_METHOD,
                        format!("`{meth}` is not an HTTP method SMI allows{hint}"),
                    );
                } else if !methods.contains(meth) {
                    methods.push(meth.clone());
                }
            }
            if methods.iter().any(|m| m == "*") {
                methods.clear();
            }
            let mut headers = Vec::new();
            for (h, re) in &m.headers.0 {
                let field = format!("{base}.headers.{h}");
                if h.is_empty() || !h.bytes().all(is_token_byte) {
                    cx.invalid(
                        field.clone(),
                        reasons::INVALID_FIELD,
                        format!("`{h}` is not a valid HTTP header name"),
                    );
                }
                if let Err(e) = check_regex(re) {
                    cx.invalid(field, reasons::INVALID_REGEX, e);
                } else if let Some(w) = crate::regex_hint::substring_header_regex(h, re) {
                    cx.push(Severity::Warning, field, reasons::SUBSTRING_REGEX, w);
                }
                headers.push(HeaderMatch {
                    name: h.to_ascii_lowercase(),
                    regex: re.clone(),
                });
            }
            routes.push(HttpRoute {
                group: cx.key.clone(),
                name: m.name.clone(),
                path,
                methods,
                headers,
                query: vec![],
            });
        }
        if cx.finish(ir) {
            out.insert(k.clone(), routes);
        }
    }
    out
}

pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RE2 syntax check with the `regex` crate (no look-around, no backreferences).
///
/// Compiling a regex is most of what validating a large input costs, and every rebuild of the
/// IR checks the same expressions again (real inputs repeat them too: `/api/.*` in every
/// route group), so each distinct expression's answer is kept (a bounded, process-wide memo).
pub fn check_regex(re: &str) -> Result<(), String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    const KEEP: usize = 16_384;
    static SEEN: OnceLock<Mutex<HashMap<String, Result<(), String>>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(r) = seen.lock().unwrap_or_else(|e| e.into_inner()).get(re) {
        return r.clone();
    }
    let r = compile_regex(re);
    let mut m = seen.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() >= KEEP {
        m.clear();
    }
    m.insert(re.to_owned(), r.clone());
    r
}

fn compile_regex(re: &str) -> Result<(), String> {
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| {
            let msg = e.to_string();
            let last = msg
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .trim_start_matches("error: ");
            format!("`{re}` is not a valid RE2 regex: {last}")
        })
}

// === TCPRoute / UDPRoute ===

/// Valid L4 routes: (kind, ns, name) → ports.
type L4 = BTreeMap<(Kind, String, String), Ports>;

fn validate_port_routes(snap: &Snapshot, ir: &mut Ir) -> L4 {
    let mut out = L4::new();
    for (kind, map) in [
        (Kind::TCPRoute, &snap.tcp_routes),
        (Kind::UDPRoute, &snap.udp_routes),
    ] {
        for (k, r) in map {
            let mut cx = Ctx::new(kind, &r.meta);
            let mut set = BTreeSet::new();
            for (i, p) in r.ports.iter().flatten().enumerate() {
                match port_number(p) {
                    Ok(n) => {
                        set.insert(n);
                    }
                    Err(e) => cx.invalid(
                        cx.f(&format!("matches.ports[{i}]")),
                        reasons::INVALID_PORT,
                        e,
                    ),
                }
            }
            if cx.finish(ir) {
                let ports = if set.is_empty() {
                    Ports::All
                } else {
                    Ports::Only(set)
                };
                out.insert((kind, k.0.clone(), k.1.clone()), ports);
            }
        }
    }
    out
}

fn port_number(p: &crate::api::IntOrString) -> Result<u16, String> {
    use crate::api::IntOrString as I;
    match p {
        I::Int(i) if (1..=65535).contains(i) => Ok(*i as u16),
        I::Int(i) => Err(format!("{i} is not a port number (1–65535)")),
        I::String(s) => match s.parse::<i64>() {
            Ok(i) if (1..=65535).contains(&i) => Ok(i as u16),
            _ => Err(format!(
                "`{s}` is not a port number (named ports cannot be resolved for an identity)"
            )),
        },
    }
}

// === TrafficSplit ===

/// Parses the root service (`name`, `name.ns`, `name.ns.svc[.domain]`) into (ns, name).
pub fn parse_root(service: &str, split_ns: &str) -> Result<(String, String), String> {
    let s = service.trim_end_matches('.');
    let parts: Vec<&str> = s.split('.').collect();
    let ok_label = |l: &str| crate::load::is_dns_label(l);
    match parts.as_slice() {
        [name] if ok_label(name) => Ok((split_ns.into(), name.to_string())),
        [name, ns] if ok_label(name) && ok_label(ns) => Ok((ns.to_string(), name.to_string())),
        [name, ns, "svc", rest @ ..]
            if ok_label(name) && ok_label(ns) && rest.iter().all(|l| ok_label(l)) =>
        {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "`{service}` is not a service name, `name.namespace` or `name.namespace.svc.<cluster domain>`"
        )),
    }
}

fn weight_of(w: &RawWeight) -> Result<u64, String> {
    match w {
        RawWeight::Quantity(q) => {
            let m = q.to_milli()?;
            if m < 0 {
                return Err(format!("`{}` is negative", q.0));
            }
            u64::try_from(m).map_err(|_| format!("`{}` is too large", q.0))
        }
        RawWeight::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(u);
            }
            if let Some(i) = n.as_i64() {
                return Err(format!("{i} is negative"));
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f < 0.0 {
                Err(format!("{n} is negative"))
            } else if f.fract() != 0.0 || !f.is_finite() {
                Err(format!(
                    "{n} is not a whole number (weights are integers from v1alpha2)"
                ))
            } else if f > u64::MAX as f64 / 2.0 {
                Err(format!("{n} is too large"))
            } else {
                Ok(f as u64)
            }
        }
    }
}

pub(crate) fn ts_key(meta: &model::Meta, kind: Kind) -> (String, String, String, Kind) {
    (
        normalise_time(meta.creation_timestamp.as_deref()),
        meta.namespace.clone(),
        meta.name.clone(),
        kind,
    )
}

/// RFC 3339 timestamps compare as text once normalised to `YYYY-MM-DDTHH:MM:SSZ`; objects
/// without one (files) sort after those with one, then by name.
fn normalise_time(t: Option<&str>) -> String {
    match t {
        Some(s) if !s.is_empty() => s.replace('z', "Z"),
        _ => "~".into(),
    }
}

fn build_splits(snap: &Snapshot, groups: &Groups, ir: &mut Ir) -> crate::gamma::Routes {
    // Namespaces in which the snapshot carries Services: only there is "not found" known.
    let svc_namespaces: BTreeSet<&String> = snap.services.keys().map(|(ns, _)| ns).collect();
    let mut candidates: Vec<Candidate> = Vec::new();
    for ts in snap.splits.values() {
        let mut cx = Ctx::new(Kind::TrafficSplit, &ts.meta);
        let ns = ts.meta.namespace.clone();
        let root = match parse_root(&ts.service, &ns) {
            Ok((rns, name)) if rns == ns => Some(SvcKey::new(ns.clone(), name)),
            Ok((rns, _)) => {
                cx.invalid(
                    cx.f("service"),
                    reasons::NAMESPACE_MISMATCH,
                    format!("root service is in namespace `{rns}`, but a TrafficSplit must be in its root service's namespace `{ns}`"),
                );
                None
            }
            Err(e) => {
                cx.invalid(cx.f("service"), reasons::INVALID_FIELD, e);
                None
            }
        };
        if ts.backends.is_empty() {
            cx.invalid(
                cx.f("backends"),
                reasons::INVALID_FIELD,
                "at least one backend is required",
            );
        }
        let mut backends = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, b) in ts.backends.iter().enumerate() {
            let base = cx.f(&format!("backends[{i}]"));
            let name = b.service.trim_end_matches('.');
            let bname = match parse_root(name, &ns) {
                Ok((bns, bname)) if bns == ns => bname,
                Ok((bns, _)) => {
                    cx.invalid(
                        format!("{base}.service"),
                        reasons::NAMESPACE_MISMATCH,
                        format!(
                            "backends must be in the TrafficSplit's namespace `{ns}`, not `{bns}`"
                        ),
                    );
                    continue;
                }
                Err(e) => {
                    cx.invalid(format!("{base}.service"), reasons::INVALID_FIELD, e);
                    continue;
                }
            };
            if !seen.insert(bname.clone()) {
                cx.invalid(
                    format!("{base}.service"),
                    reasons::INVALID_FIELD,
                    format!("backend `{bname}` is listed twice"),
                );
                continue;
            }
            match weight_of(&b.weight) {
                Ok(w) => {
                    let key = SvcKey::new(ns.clone(), bname);
                    let is_root = root.as_ref() == Some(&key);
                    backends.push(Backend {
                        service: key,
                        weight: w,
                        is_root,
                    })
                }
                Err(e) => cx.invalid(format!("{base}.weight"), reasons::INVALID_WEIGHT, e),
            }
        }
        if !backends.is_empty()
            && backends.len() == ts.backends.len()
            && backends.iter().all(|b| b.weight == 0)
        {
            cx.invalid(
                cx.f("backends"),
                reasons::INVALID_WEIGHT,
                "every weight is zero: at least one backend needs a positive weight",
            );
        }
        let mut matches = Vec::new();
        for (i, m) in ts.matches.iter().enumerate() {
            let field = cx.f(&format!("matches[{i}]"));
            if m.kind != "HTTPRouteGroup" {
                cx.invalid(
                    format!("{field}.kind"),
                    reasons::INVALID_FIELD,
                    format!(
                        "`{}`: only HTTPRouteGroup can select requests for a split",
                        m.kind
                    ),
                );
                continue;
            }
            match groups.get(&(ns.clone(), m.name.clone())) {
                Some(routes) => matches.extend(routes.iter().cloned()),
                None => {
                    let why = if snap
                        .route_groups
                        .contains_key(&(ns.clone(), m.name.clone()))
                    {
                        "is invalid (see its own errors)"
                    } else {
                        "does not exist"
                    };
                    cx.unresolved(
                        Severity::Error,
                        format!("{field}.name"),
                        reasons::ROUTE_GROUP_NOT_FOUND,
                        format!("HTTPRouteGroup {ns}/{} {why}; the split is not applied (it would otherwise catch every request)", m.name),
                    );
                }
            }
        }
        // An A/B split whose route groups have no matches selects no request: every request
        // keeps going to the root. It must not become an unconditional split.
        let selects_nothing = !ts.matches.is_empty() && matches.is_empty() && cx.status.usable();
        if selects_nothing {
            cx.push(
                Severity::Warning,
                cx.f("matches"),
                reasons::INVALID_FIELD,
                "the referenced HTTPRouteGroups have no matches: no request is split (all go to the root service)",
            );
        }
        // Reference checks against Services, where the snapshot has Services.
        let ports = match &root {
            Some(root_key) => {
                let known_ns = svc_namespaces.contains(&ns);
                if known_ns && !ir.services.contains_key(root_key) {
                    cx.unresolved(
                        Severity::Warning,
                        cx.f("service"),
                        reasons::SERVICE_NOT_FOUND,
                        format!("Service {root_key} not found"),
                    );
                }
                let field = |i: usize| cx.f(&format!("backends[{i}].service"));
                let fields: Vec<String> = (0..backends.len()).map(field).collect();
                split_ports(ir, &mut cx, root_key, &backends, &fields, known_ns, |_| {
                    true
                })
            }
            None => vec![],
        };
        let split = Split {
            parent: cx.key.clone(),
            root: root.clone().unwrap_or_else(|| SvcKey::new(ns.clone(), "")),
            backends,
            matches,
            ports,
            rules: vec![],
        };
        let field = cx.f("service");
        candidates.push(Candidate {
            order: ts_key(&ts.meta, Kind::TrafficSplit),
            cx,
            splits: vec![(split, None, field)],
            selects_nothing,
        });
    }
    let gamma = crate::gamma::candidates(snap, &svc_namespaces, ir, &mut candidates);
    resolve(candidates, ir);
    gamma
}

/// One split-producing object (a TrafficSplit or a Gateway API route) before the conflict
/// rule: its splits (one per parent Service: the split, the consumer namespace of a consumer
/// route, and the field naming that parent).
pub(crate) struct Candidate<'a> {
    pub order: (String, String, String, Kind),
    pub cx: Ctx<'a>,
    pub splits: Vec<(Split, Option<String>, String)>,
    pub selects_nothing: bool,
}

/// The one conflict rule of both languages: per root Service (per consumer namespace for
/// consumer routes), the oldest object (creationTimestamp, then namespace, name and kind)
/// wins; every later one is reported as conflicting (an error on it), and the winner carries
/// a warning naming each object it won over.
fn resolve(mut candidates: Vec<Candidate>, ir: &mut Ir) {
    candidates.sort_by(|a, b| a.order.cmp(&b.order));
    type Slot = (Option<String>, SvcKey);
    let mut winners: BTreeMap<Slot, (usize, ObjectKey)> = BTreeMap::new();
    let mut lost: BTreeMap<usize, Vec<(String, ObjectKey, SvcKey)>> = BTreeMap::new();
    let usable: Vec<bool> = candidates.iter().map(|c| c.cx.status.usable()).collect();
    for (i, c) in candidates.iter_mut().enumerate() {
        if !usable[i] {
            continue;
        }
        for (split, consumer, field) in &c.splits {
            let slot = (consumer.clone(), split.root.clone());
            match winners.get(&slot) {
                Some((w, wkey)) => {
                    c.cx.status.conflicted = true;
                    let what = match consumer {
                        Some(ns) => format!("{} for clients in {ns}", split.root),
                        None => split.root.to_string(),
                    };
                    let reason = if wkey.kind == Kind::TrafficSplit
                        && c.cx.key.kind == Kind::TrafficSplit
                    {
                        format!(
                            "TrafficSplit {}/{} already splits {what} (the oldest split on a root wins)",
                            wkey.namespace, wkey.name
                        )
                    } else {
                        format!(
                            "{} {}/{} already routes {what} (one TrafficSplit or route per Service: the oldest wins)",
                            wkey.kind, wkey.namespace, wkey.name
                        )
                    };
                    c.cx.push(Severity::Error, field.clone(), reasons::CONFLICTED, reason);
                    lost.entry(*w).or_default().push((
                        field.clone(),
                        c.cx.key.clone(),
                        split.root.clone(),
                    ));
                }
                None => {
                    winners.insert(slot, (i, c.cx.key.clone()));
                }
            }
        }
    }
    for (i, mut c) in candidates.into_iter().enumerate() {
        for (_, loser, root) in lost.remove(&i).unwrap_or_default() {
            let field = c
                .splits
                .iter()
                .find(|(s, _, _)| s.root == root)
                .map(|(_, _, f)| f.clone())
                .unwrap_or_default();
            c.cx.push(
                Severity::Warning,
                field,
                reasons::CONFLICTED,
                format!(
                    "{} {}/{} also routes {root} and is not applied (the oldest wins)",
                    loser.kind, loser.namespace, loser.name
                ),
            );
        }
        let splits = std::mem::take(&mut c.splits);
        if c.cx.finish(ir) && !c.selects_nothing {
            for (split, consumer, _) in splits {
                match consumer {
                    Some(ns) => {
                        ir.consumer_splits
                            .entry(ns)
                            .or_default()
                            .insert(split.root.clone(), split);
                    }
                    None => {
                        ir.splits.insert(split.root.clone(), split);
                    }
                }
            }
        }
    }
}

/// The split's backends on each port of the root Service that `on_port` keeps: per port,
/// each backend with the target port it is reached on (a backend lacking the port is left
/// out, with a warning at `fields[i]` when its weight is positive). Empty when the root
/// Service is unknown. Backends whose Service is unknown are warned about (when
/// `known_ns`: the snapshot carries Services of the namespace) and kept on the root's port.
pub(crate) fn split_ports(
    ir: &Ir,
    cx: &mut Ctx,
    root_key: &SvcKey,
    backends: &[Backend],
    fields: &[String],
    known_ns: bool,
    on_port: impl Fn(&ServicePort) -> bool,
) -> Vec<SplitPort> {
    let mut ports = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        if b.is_root || !known_ns || b.weight == 0 {
            continue;
        }
        if !ir.services.contains_key(&b.service) {
            cx.unresolved(
                Severity::Warning,
                fields[i].clone(),
                reasons::SERVICE_NOT_FOUND,
                format!(
                    "Service {} not found: its share of requests will fail",
                    b.service
                ),
            );
        }
    }
    let Some(rs) = ir.services.get(root_key) else {
        return ports;
    };
    for rp in rs.ports.iter().filter(|p| on_port(p)) {
        let mut list = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            let tp = if b.is_root {
                Some(rp.target_port.clone())
            } else {
                match ir.services.get(&b.service) {
                    Some(bs) => bs
                        .ports
                        .iter()
                        .find(|p| p.port == rp.port && p.protocol == rp.protocol)
                        .map(|p| p.target_port.clone()),
                    // Unknown backend Service: keep it (already warned) with the root's port.
                    None => Some(TargetPort::Number(rp.port)),
                }
            };
            match tp {
                Some(tp) => list.push((i, tp)),
                None => {
                    if b.weight > 0 {
                        cx.push(
                            Severity::Warning,
                            fields[i].clone(),
                            reasons::BACKEND_PORT_MISMATCH,
                            format!(
                                "Service {} has no port {}: it is left out of the split on that port",
                                b.service, rp.port
                            ),
                        );
                    }
                }
            }
        }
        ports.push(SplitPort {
            port: rp.clone(),
            backends: list,
        });
    }
    ports
}

// === TrafficTarget ===

/// An allow of the HTTP requests `selected` matches (sources are filled in later).
fn http_rule(
    parent: &ObjectKey,
    rule_index: usize,
    field: &str,
    ports: Ports,
    selected: Vec<HttpRoute>,
) -> AccessRule {
    AccessRule {
        parent: parent.clone(),
        rule_index,
        field: field.to_string(),
        sources: vec![],
        ports,
        traffic: Traffic::Http(selected),
    }
}

fn build_access(
    snap: &Snapshot,
    groups: &Groups,
    l4: &L4,
    routes: &crate::gamma::Routes,
    ir: &mut Ir,
) {
    let sa_namespaces: BTreeSet<&String> = snap.service_accounts.keys().map(|(ns, _)| ns).collect();
    for tt in snap.targets.values() {
        let mut cx = Ctx::new(Kind::TrafficTarget, &tt.meta);
        let ns = tt.meta.namespace.clone();
        let v1alpha3 = tt.meta.api_version.ends_with("/v1alpha3");
        let subject = |cx: &mut Ctx, s: &model::Subject, field: String| -> Option<Identity> {
            if s.kind != "ServiceAccount" {
                cx.invalid(
                    format!("{field}.kind"),
                    reasons::INVALID_FIELD,
                    format!("`{}`: only ServiceAccount identities are supported", s.kind),
                );
                return None;
            }
            if !crate::load::is_dns_subdomain(&s.name) {
                cx.invalid(
                    format!("{field}.name"),
                    reasons::INVALID_FIELD,
                    format!("`{}` is not a valid ServiceAccount name", s.name),
                );
                return None;
            }
            let sns = s
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or(ns.clone());
            let id = Identity::new(sns.clone(), s.name.clone());
            if sa_namespaces.contains(&sns)
                && !snap
                    .service_accounts
                    .contains_key(&(sns.clone(), s.name.clone()))
            {
                cx.unresolved(
                    Severity::Warning,
                    format!("{field}.name"),
                    reasons::SERVICE_ACCOUNT_NOT_FOUND,
                    format!("ServiceAccount {id} not found"),
                );
            }
            Some(id)
        };
        let dfield = cx.f("destination");
        let dest = subject(&mut cx, &tt.destination, dfield);
        if let Some(d) = &dest
            && d.namespace != ns
        {
            cx.invalid(
                    cx.f("destination.namespace"),
                    reasons::NAMESPACE_MISMATCH,
                    format!(
                        "the destination must be in the TrafficTarget's namespace `{ns}` (a TrafficTarget grants access only to its own namespace)"
                    ),
                );
        }
        let mut sources = Vec::new();
        for (i, s) in tt.sources.iter().enumerate() {
            let sfield = cx.f(&format!("sources[{i}]"));
            if let Some(id) = subject(&mut cx, s, sfield)
                && !sources.contains(&id)
            {
                sources.push(id);
            }
        }
        if v1alpha3 && tt.sources.is_empty() {
            cx.invalid(
                cx.f("sources"),
                reasons::INVALID_FIELD,
                "at least one source is required",
            );
        }
        if v1alpha3 && tt.rules.is_empty() {
            cx.invalid(
                cx.f(tt.rules_field),
                reasons::INVALID_FIELD,
                "at least one rule is required",
            );
        }
        // v1alpha1/v1alpha2 allow a TrafficTarget without rules (the schema does not require
        // them). SMI allows only traffic "on one of the defined routes" and denies everything
        // else by default, so such a TrafficTarget allows nothing: it is accepted, adds no
        // allow rule to the IR (its destination stays denied), and is always reported.
        if !v1alpha3 && tt.rules.is_empty() {
            cx.push(
                Severity::Warning,
                cx.f(tt.rules_field),
                reasons::NO_RULES,
                "no rules, so this TrafficTarget allows nothing (SMI allows only traffic \"on one of the defined routes\" and denies the rest by default); to allow all traffic from its sources, add a TCPRoute rule (some meshes, e.g. Traefik Mesh, read a TrafficTarget without rules as allow-all)",
            );
        }
        let dest_port = match &tt.port {
            None => None,
            Some(p) => match port_number(p) {
                Ok(n) => Some(n),
                Err(e) => {
                    cx.invalid(cx.f("destination.port"), reasons::INVALID_PORT, e);
                    None
                }
            },
        };
        let scope = |ports: Ports| -> Ports {
            match (dest_port, ports) {
                (None, p) => p,
                (Some(d), Ports::All) => Ports::Only([d].into()),
                (Some(d), Ports::Only(s)) => {
                    Ports::Only(s.into_iter().filter(|p| *p == d).collect())
                }
            }
        };
        let mut rules = Vec::new();
        for (i, r) in tt.rules.iter().enumerate() {
            let field = cx.f(&format!("{}[{i}]", tt.rules_field));
            let gk = (ns.clone(), r.name.clone());
            let (exists, valid) = match r.kind.as_str() {
                "HTTPRouteGroup" => (
                    snap.route_groups.contains_key(&gk),
                    groups.contains_key(&gk),
                ),
                "TCPRoute" => (
                    snap.tcp_routes.contains_key(&gk),
                    l4.contains_key(&(Kind::TCPRoute, gk.0.clone(), gk.1.clone())),
                ),
                "UDPRoute" => (
                    snap.udp_routes.contains_key(&gk),
                    l4.contains_key(&(Kind::UDPRoute, gk.0.clone(), gk.1.clone())),
                ),
                "HTTPRoute" | "GRPCRoute" => {
                    let kind = if r.kind == "HTTPRoute" {
                        Kind::HTTPRoute
                    } else {
                        Kind::GRPCRoute
                    };
                    let rk = (kind, ns.clone(), r.name.clone());
                    (
                        snap.gamma_routes.contains_key(&rk),
                        routes.contains_key(&rk),
                    )
                }
                other => {
                    cx.invalid(
                        format!("{field}.kind"),
                        reasons::INVALID_FIELD,
                        format!(
                            "`{other}`: rules name an HTTPRouteGroup, TCPRoute or UDPRoute (or, meshbridge's extension, an HTTPRoute or GRPCRoute)"
                        ),
                    );
                    continue;
                }
            };
            if !valid {
                cx.unresolved(
                    Severity::Error,
                    format!("{field}.name"),
                    reasons::ROUTE_GROUP_NOT_FOUND,
                    format!(
                        "{} {}/{} {}",
                        r.kind,
                        ns,
                        r.name,
                        if exists {
                            "is invalid (see its own errors)"
                        } else {
                            "does not exist"
                        }
                    ),
                );
                continue;
            }
            let traffic = match r.kind.as_str() {
                "HTTPRouteGroup" => {
                    let all = &groups[&gk];
                    let selected: Vec<HttpRoute> = match &r.matches {
                        None => all.clone(),
                        Some(names) if names.is_empty() => all.clone(),
                        Some(names) => {
                            let mut sel = Vec::new();
                            for (j, n) in names.iter().enumerate() {
                                match all.iter().find(|m| &m.name == n) {
                                    Some(m) => sel.push(m.clone()),
                                    None => cx.unresolved(
                                        Severity::Error,
                                        format!("{field}.matches[{j}]"),
                                        reasons::UNKNOWN_MATCH,
                                        format!(
                                            "HTTPRouteGroup {ns}/{} has no match named `{n}`",
                                            r.name
                                        ),
                                    ),
                                }
                            }
                            sel
                        }
                    };
                    rules.push(http_rule(&cx.key, i, &field, scope(Ports::All), selected));
                    continue;
                }
                "HTTPRoute" | "GRPCRoute" => {
                    let kind = if r.kind == "HTTPRoute" {
                        Kind::HTTPRoute
                    } else {
                        Kind::GRPCRoute
                    };
                    let all = &routes[&(kind, ns.clone(), r.name.clone())];
                    let mut selected: Vec<HttpRoute> = Vec::new();
                    let mut every = false;
                    match &r.matches {
                        None => {
                            for (_, ms) in all {
                                every |= ms.is_empty();
                                selected.extend(ms.iter().cloned());
                            }
                        }
                        Some(names) if names.is_empty() => {
                            for (_, ms) in all {
                                every |= ms.is_empty();
                                selected.extend(ms.iter().cloned());
                            }
                        }
                        Some(names) => {
                            for (j, n) in names.iter().enumerate() {
                                match all.iter().find(|(rn, _)| rn.as_deref() == Some(n)) {
                                    Some((_, ms)) => {
                                        every |= ms.is_empty();
                                        selected.extend(ms.iter().cloned());
                                    }
                                    None => cx.unresolved(
                                        Severity::Error,
                                        format!("{field}.matches[{j}]"),
                                        reasons::UNKNOWN_MATCH,
                                        format!(
                                            "{} {ns}/{} has no rule named `{n}` (matches name rules by `rules[].name`)",
                                            r.kind, r.name
                                        ),
                                    ),
                                }
                            }
                        }
                    }
                    // A rule without matches matches every request: allow every request.
                    if every {
                        selected = vec![HttpRoute::new(
                            ObjectKey::new(kind, ns.clone(), r.name.clone()),
                            "all",
                            None,
                            &[],
                            &[],
                        )];
                    }
                    rules.push(http_rule(&cx.key, i, &field, scope(Ports::All), selected));
                    continue;
                }
                "TCPRoute" => (Traffic::Tcp, Kind::TCPRoute),
                _ => (Traffic::Udp, Kind::UDPRoute),
            };
            let ports = l4[&(traffic.1, gk.0.clone(), gk.1.clone())].clone();
            rules.push(AccessRule {
                parent: cx.key.clone(),
                rule_index: i,
                field,
                sources: vec![],
                ports: scope(ports),
                traffic: traffic.0,
            });
        }
        let dest = dest.clone();
        if cx.finish(ir)
            && let Some(dest) = dest
        {
            let policy = ir
                .access
                .entry(dest.clone())
                .or_insert_with(|| AccessPolicy {
                    destination: dest,
                    rules: vec![],
                });
            for mut r in rules {
                r.sources = sources.clone();
                policy.rules.push(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_regex;

    #[test]
    fn check_regex_answers_the_same_from_its_memo() {
        for _ in 0..2 {
            assert_eq!(check_regex("/api/.*"), Ok(()));
            let e = check_regex("/a(?=b)").unwrap_err();
            assert!(e.starts_with("`/a(?=b)` is not a valid RE2 regex: "), "{e}");
            assert!(e.contains("look-around"), "{e}");
        }
        // Too large for the compiled size limit: refused however often it is asked.
        let big = "(?:a{1000}){1000}";
        assert!(check_regex(big).is_err());
        assert!(check_regex(big).is_err());
    }
}
