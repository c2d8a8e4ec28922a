//! Test helpers: build the IR from YAML, translate, and check every output against the
//! official Gateway API CRDs — the structural schema (unknown fields rejected, as a
//! pruning API server would silently drop them) and the intent of every CEL rule
//! (`x-kubernetes-validations`) on the schema nodes the output reaches.

#![allow(dead_code)]

use meshbridge_conformance::schema::Registry;
use meshbridge_core::adapter::Adapter;
use meshbridge_core::api::meshbridge::{MeshSpec, MeshType};
use meshbridge_core::{CapabilityMatrix, Context, Finding, Level, Translation};
use meshbridge_gateway_api::GatewayApiAdapter;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::OnceLock;

pub use meshbridge_conformance::fixtures::valid_ir_of as ir_of;

pub fn mesh_cx(tcp_route_version: Option<&str>) -> Context {
    Context {
        mesh: Some(MeshSpec {
            tcp_route_version: tcp_route_version.map(str::to_string),
            ..MeshSpec::of(MeshType::GatewayApi)
        }),
        ..Context::default()
    }
}

/// Translates, validates every object, and checks every finding against the matrix.
pub fn translate_cx(yaml: &str, cx: &Context) -> Translation {
    let ir = ir_of(yaml);
    let a = GatewayApiAdapter;
    let t = a.translate(&ir, cx);
    // Pure and deterministic.
    assert_eq!(t, a.translate(&ir, cx));
    for o in &t.objects {
        // Every object validates against the standard-channel CRDs as written.
        let body = o.body.clone();
        if let Err(e) = validate(&body) {
            panic!(
                "{} {} is invalid:\n{}\n{}",
                o.kind,
                o.name,
                e.join("\n"),
                serde_json::to_string_pretty(&o.body).unwrap()
            );
        }
    }
    check_findings(&t.findings, &a.capabilities(cx));
    t
}

pub fn translate(yaml: &str) -> Translation {
    translate_cx(yaml, &Context::default())
}

/// Every finding names a matrix row that admits it (not `Full`), at a level no better than
/// the row's.
pub fn check_findings(findings: &[Finding], m: &CapabilityMatrix) {
    for f in findings {
        let row = m.level(f.feature);
        assert_ne!(row, Level::Full, "finding on a Full row: {f:?}");
        assert_ne!(f.level, Level::Full, "{f:?}");
        if row == Level::None {
            assert_eq!(f.level, Level::None, "{f:?}");
        }
        assert!(!f.reason.is_empty() && !f.field.is_empty(), "{f:?}");
    }
}

pub fn spec<'a>(t: &'a Translation, kind: &str, name: &str) -> &'a Value {
    let o = t
        .objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} {name} in {:?}",
                t.objects
                    .iter()
                    .map(|o| format!("{} {}", o.kind, o.name))
                    .collect::<Vec<_>>()
            )
        });
    &o.body["spec"]
}

pub fn kinds(t: &Translation) -> Vec<String> {
    t.objects
        .iter()
        .map(|o| {
            format!(
                "{} {} {}/{}",
                o.api_version,
                o.kind,
                o.namespace.as_deref().unwrap_or(""),
                o.name
            )
        })
        .collect()
}

// === schema validation ===

/// The served versions of the official Gateway API CRDs (`shared/schemas/gateway-api/`),
/// through the conformance suite's structural-schema validator. Only served versions can be
/// applied (the v1.6.1 TCPRoute CRD no longer serves v1alpha2; the v1.1.1 experimental CRD
/// does).
fn schemas() -> &'static Registry {
    static S: OnceLock<Registry> = OnceLock::new();
    S.get_or_init(|| {
        let dir = meshbridge_conformance::shared_dir().join("schemas/gateway-api");
        let r = Registry::load_served(&[dir.as_path()])
            .unwrap_or_else(|e| panic!("{e} (set MESHBRIDGE_SHARED)"));
        assert!(
            r.len() >= 5,
            "{} served schemas in {}",
            r.len(),
            dir.display()
        );
        r
    })
}

/// The structural schema, then the intent of every CEL rule the object reaches: each must be
/// one [`check_cel`] implements or one that is vacuous for meshbridge's output.
pub fn validate(obj: &Value) -> Result<(), Vec<String>> {
    let mut errors = schemas().validate(obj).err().unwrap_or_default();
    if !schemas().has(
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default(),
    ) {
        return Err(errors);
    }
    for r in &schemas().cel_rules(obj) {
        if !CHECKED.contains(&r.as_str())
            && !CHECKED_PREFIXES.iter().any(|p| r.starts_with(p))
            && !VACUOUS.iter().any(|p| r.starts_with(p))
        {
            errors.push(format!("CEL rule not covered by the test checker: {r}"));
        }
    }
    errors.extend(check_cel(obj));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Messages of the CEL rules on every schema node `obj` reaches.
pub fn cel_rules_reached(obj: &Value) -> BTreeSet<String> {
    schemas().cel_rules(obj)
}

/// CEL rules `check_cel` implements.
const CHECKED: &[&str] = &[
    "sectionName must be specified when parentRefs includes 2 or more references to the same parent",
    "sectionName must be unique when parentRefs includes 2 or more references to the same parent",
    "sectionName or port must be specified when parentRefs includes 2 or more references to the same parent",
    "sectionName or port must be unique when parentRefs includes 2 or more references to the same parent",
    "While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128",
    "Must have port for Service reference",
    "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
    "must not contain '//' when type one of ['Exact', 'PathPrefix']",
    "must not contain '/./' when type one of ['Exact', 'PathPrefix']",
    "must not contain '/../' when type one of ['Exact', 'PathPrefix']",
    "must not contain '%2f' when type one of ['Exact', 'PathPrefix']",
    "must not contain '%2F' when type one of ['Exact', 'PathPrefix']",
    "must not contain '#' when type one of ['Exact', 'PathPrefix']",
    "must not end with '/..' when type one of ['Exact', 'PathPrefix']",
    "must not end with '/.' when type one of ['Exact', 'PathPrefix']",
    "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']",
    "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']",
    "One or both of 'service' or 'method' must be specified",
    "service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)",
    "method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)",
];

/// Families of CEL rules (filters and timeouts of route tables) `check_filters` implements.
const CHECKED_PREFIXES: &[&str] = &[
    "RequestRedirect filter must not be used together with backendRefs",
    "When using RequestRedirect filter",
    "When using URLRewrite filter",
    "backendRequest timeout cannot be longer than request timeout",
    "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite",
    "CORS filter cannot be repeated",
    "RequestHeaderModifier filter cannot be repeated",
    "ResponseHeaderModifier filter cannot be repeated",
    "RequestRedirect filter cannot be repeated",
    "URLRewrite filter cannot be repeated",
    "filter.",
    "replaceFullPath must be specified",
    "replacePrefixMatch must be specified",
    "type must be 'ReplaceFullPath'",
    "type must be 'ReplacePrefixMatch'",
];

/// Rules about fields meshbridge never writes (backendRef-level filters): true for its
/// output.
const VACUOUS: &[&str] = &[
    "Within backendRefs, when using RequestRedirect",
    "Within backendRefs, When using URLRewrite",
];

/// A Gateway API Duration in ms.
fn duration_ms(d: &str) -> Option<u64> {
    let re = regex::Regex::new(r"([0-9]{1,5})(h|ms|m|s)").unwrap();
    if !regex::Regex::new(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
        .unwrap()
        .is_match(d)
    {
        return None;
    }
    Some(
        re.captures_iter(d)
            .map(|c| {
                let v: u64 = c[1].parse().unwrap();
                v * match &c[2] {
                    "h" => 3_600_000,
                    "m" => 60_000,
                    "s" => 1000,
                    _ => 1,
                }
            })
            .sum(),
    )
}

/// The filter and timeout CEL rules of one rule.
fn check_filters(at: &str, r: &Value, errs: &mut Vec<String>) {
    let filters = r["filters"].as_array().cloned().unwrap_or_default();
    let fields = [
        ("RequestHeaderModifier", "requestHeaderModifier"),
        ("ResponseHeaderModifier", "responseHeaderModifier"),
        ("RequestRedirect", "requestRedirect"),
        ("URLRewrite", "urlRewrite"),
        ("RequestMirror", "requestMirror"),
        ("CORS", "cors"),
        ("ExtensionRef", "extensionRef"),
    ];
    let mut seen = BTreeSet::new();
    for (j, f) in filters.iter().enumerate() {
        let ty = f["type"].as_str().unwrap_or("");
        if ty != "RequestMirror" && ty != "ExtensionRef" && !seen.insert(ty.to_string()) {
            errs.push(format!("{at}.filters[{j}]: {ty} repeated"));
        }
        for (t, field) in fields {
            if (t == ty) != f.get(field).is_some() {
                errs.push(format!("{at}.filters[{j}]: type {ty} with field {field}"));
            }
        }
        for field in ["requestRedirect", "urlRewrite"] {
            if let Some(p) = f.get(field).and_then(|x| x.get("path")) {
                let pt = p["type"].as_str().unwrap_or("");
                for (t, k) in [
                    ("ReplaceFullPath", "replaceFullPath"),
                    ("ReplacePrefixMatch", "replacePrefixMatch"),
                ] {
                    if (pt == t) != p.get(k).is_some() {
                        errs.push(format!(
                            "{at}.filters[{j}].{field}.path: type {pt} with {k}"
                        ));
                    }
                }
                if pt == "ReplacePrefixMatch" {
                    let ms = r["matches"].as_array().cloned().unwrap_or_default();
                    if ms.len() != 1 || ms[0]["path"]["type"] != "PathPrefix" {
                        errs.push(format!(
                            "{at}: ReplacePrefixMatch needs exactly one PathPrefix match"
                        ));
                    }
                }
            }
        }
    }
    if seen.contains("RequestRedirect") && seen.contains("URLRewrite") {
        errs.push(format!("{at}: RequestRedirect and URLRewrite together"));
    }
    if seen.contains("RequestRedirect")
        && r["backendRefs"].as_array().is_some_and(|b| !b.is_empty())
    {
        errs.push(format!("{at}: RequestRedirect with backendRefs"));
    }
    let t = &r["timeouts"];
    for k in ["request", "backendRequest"] {
        if let Some(d) = t.get(k)
            && duration_ms(d.as_str().unwrap_or("")).is_none()
        {
            errs.push(format!("{at}.timeouts.{k}: `{d}` is not a Duration"));
        }
    }
    if let (Some(req), Some(be)) = (
        t["request"].as_str().and_then(duration_ms),
        t["backendRequest"].as_str().and_then(duration_ms),
    ) && req != 0
        && be > req
    {
        errs.push(format!("{at}.timeouts: backendRequest longer than request"));
    }
}

fn check_cel(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    // parentRefs: several refs to one parent need distinct sectionName (and port for v1alpha2).
    let prs = spec["parentRefs"].as_array().cloned().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for p in &prs {
        let key = (
            p["group"]
                .as_str()
                .unwrap_or("gateway.networking.k8s.io")
                .to_string(),
            p["kind"].as_str().unwrap_or("Gateway").to_string(),
            p["name"].to_string(),
            p["namespace"].to_string(),
            p["sectionName"].to_string(),
            if obj["apiVersion"] == "gateway.networking.k8s.io/v1alpha2" {
                p["port"].to_string()
            } else {
                String::new()
            },
        );
        if !seen.insert(key) {
            errs.push(format!("parentRefs: duplicate parent {p}"));
        }
    }
    let rules = spec["rules"].as_array().cloned().unwrap_or_default();
    let total: usize = rules
        .iter()
        .map(|r| r["matches"].as_array().map_or(0, |m| m.len()))
        .sum();
    if total > 128 {
        errs.push(format!("rules: {total} matches in total (max 128)"));
    }
    let seg_re =
        regex::Regex::new(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$").unwrap();
    let svc_re = regex::Regex::new(r"^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$").unwrap();
    let meth_re = regex::Regex::new(r"^[A-Za-z_][A-Za-z_0-9]*$").unwrap();
    for (i, r) in rules.iter().enumerate() {
        check_filters(&format!("rules[{i}]"), r, &mut errs);
        for (j, b) in r["backendRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let group = b["group"].as_str().unwrap_or("");
            let kind = b["kind"].as_str().unwrap_or("Service");
            if group.is_empty() && kind == "Service" && b.get("port").is_none() {
                errs.push(format!(
                    "rules[{i}].backendRefs[{j}]: Must have port for Service reference"
                ));
            }
        }
        for (j, m) in r["matches"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = format!("rules[{i}].matches[{j}]");
            if let Some(p) = m.get("path") {
                let ty = p["type"].as_str().unwrap_or("PathPrefix");
                let v = p["value"].as_str().unwrap_or("/");
                match ty {
                    "Exact" | "PathPrefix" => {
                        let bad = !v.starts_with('/')
                            || ["//", "/./", "/../", "%2f", "%2F", "#"]
                                .iter()
                                .any(|x| v.contains(x))
                            || v.ends_with("/..")
                            || v.ends_with("/.")
                            || !seg_re.is_match(v);
                        if bad {
                            errs.push(format!("{at}.path: `{v}` breaks the {ty} CEL rules"));
                        }
                    }
                    "RegularExpression" => {
                        if let Err(e) = regex::Regex::new(v) {
                            errs.push(format!("{at}.path: `{v}` is not RE2: {e}"));
                        }
                    }
                    other => errs.push(format!("{at}.path: type {other}")),
                }
            }
            let mut names = BTreeSet::new();
            for h in m["headers"].as_array().cloned().unwrap_or_default() {
                let n = h["name"].as_str().unwrap_or("").to_ascii_lowercase();
                if !names.insert(n.clone()) {
                    errs.push(format!("{at}.headers: `{n}` twice (list-map key)"));
                }
                if h["type"] == "RegularExpression"
                    && let Err(e) = regex::Regex::new(h["value"].as_str().unwrap_or(""))
                {
                    errs.push(format!("{at}.headers: not RE2: {e}"));
                }
            }
            if let Some(gm) = m.get("method").filter(|v| v.is_object()) {
                let svc = gm["service"].as_str();
                let meth = gm["method"].as_str();
                if gm.get("type").is_some() && svc.is_none() && meth.is_none() {
                    errs.push(format!("{at}.method: needs service or method"));
                }
                let exact = gm["type"].as_str().unwrap_or("Exact") == "Exact";
                if exact && svc.is_some_and(|s| !svc_re.is_match(s)) {
                    errs.push(format!("{at}.method.service: invalid"));
                }
                if exact && meth.is_some_and(|s| !meth_re.is_match(s)) {
                    errs.push(format!("{at}.method.method: invalid"));
                }
            }
        }
    }
    errs
}
