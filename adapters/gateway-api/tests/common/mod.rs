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
        if let Err(e) = validate(&o.body) {
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
        if !CHECKED.contains(&r.as_str()) && !VACUOUS.iter().any(|p| r.starts_with(p)) {
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

/// Rules about fields meshbridge never writes (filters, timeouts): true for its output.
const VACUOUS: &[&str] = &[
    "RequestRedirect filter must not be used together with backendRefs",
    "When using RequestRedirect filter",
    "When using URLRewrite filter",
    "Within backendRefs, when using RequestRedirect",
    "Within backendRefs, When using URLRewrite",
    "backendRequest timeout cannot be longer than request timeout",
];

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
