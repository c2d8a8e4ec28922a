#![allow(dead_code)]

use meshbridge_core::{Adapter, Context, Feature, Finding, Level, Translation};
use meshbridge_istio::IstioAdapter;
use serde_json::Value;

pub use meshbridge_conformance::fixtures::ir_of;

pub fn translate(yaml: &str) -> Translation {
    translate_cx(yaml, &Context::default())
}

pub fn translate_cx(yaml: &str, cx: &Context) -> Translation {
    IstioAdapter.translate(&ir_of(yaml), cx)
}

/// The whole body of one output object (panics with the list of objects when missing).
pub fn body<'a>(t: &'a Translation, kind: &str, ns: &str, name: &str) -> &'a Value {
    match t
        .objects
        .iter()
        .find(|o| o.kind == kind && o.namespace.as_deref() == Some(ns) && o.name == name)
    {
        Some(o) => &o.body,
        None => panic!("no {kind} {ns}/{name} in {:?}", names(t)),
    }
}

pub fn spec<'a>(t: &'a Translation, kind: &str, ns: &str, name: &str) -> &'a Value {
    &body(t, kind, ns, name)["spec"]
}

/// `Kind ns/name` of every object, in output order.
pub fn names(t: &Translation) -> Vec<String> {
    t.objects
        .iter()
        .map(|o| {
            format!(
                "{} {}/{}",
                o.kind,
                o.namespace.as_deref().unwrap_or(""),
                o.name
            )
        })
        .collect()
}

/// Findings as `(feature, level, object, field)`, for compact assertions.
pub fn finding_keys(t: &Translation) -> Vec<(Feature, Level, String, String)> {
    t.findings
        .iter()
        .map(|f: &Finding| (f.feature, f.level, f.object.to_string(), f.field.clone()))
        .collect()
}

/// Every finding's feature row in the matrix is not `Full`, and `None` findings sit on rows
/// that admit gaps.
pub fn assert_findings_match_matrix(t: &Translation) {
    let m = IstioAdapter.capabilities(&Context::default());
    for f in &t.findings {
        assert_ne!(
            m.level(f.feature),
            Level::Full,
            "finding on a Full row: {f:?}"
        );
    }
}

/// The CEL rules of the Istio CRDs that apply to what the adapter emits (the conformance
/// schema check does not evaluate CEL), plus the route-weight invariant.
pub fn assert_istio_rules(t: &Translation) {
    for o in &t.objects {
        let spec = &o.body["spec"];
        assert!(o.name.len() <= 253 && !o.name.is_empty(), "{}", o.name);
        match o.kind.as_str() {
            "AuthorizationPolicy" => {
                let n = ["selector", "targetRef", "targetRefs"]
                    .iter()
                    .filter(|k| spec.get(**k).is_some())
                    .count();
                assert!(n <= 1, "{spec}");
                if let Some(ml) = spec["selector"]["matchLabels"].as_object() {
                    assert!(!ml.is_empty());
                    for (k, v) in ml {
                        assert!(!k.is_empty() && !k.contains('*'));
                        let v = v.as_str().unwrap();
                        assert!(!v.contains('*') && v.len() <= 63);
                    }
                }
                let rules = spec["rules"].as_array().map_or(0, |r| r.len());
                assert!(rules <= 512);
                for r in spec["rules"].as_array().into_iter().flatten() {
                    for src in r["from"].as_array().into_iter().flatten() {
                        let p = src["source"]["principals"].as_array().unwrap();
                        assert!(!p.is_empty(), "empty principals would allow anyone");
                        for p in p {
                            assert!(!p.as_str().unwrap().starts_with("spiffe://"));
                        }
                    }
                    for to in r["to"].as_array().into_iter().flatten() {
                        for port in to["operation"]["ports"].as_array().into_iter().flatten() {
                            assert!(port.is_string());
                        }
                    }
                }
            }
            "VirtualService" => {
                let routes = spec["http"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(spec["tcp"].as_array().into_iter().flatten());
                for r in routes {
                    let ws: Vec<u64> = r["route"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d["weight"].as_u64().unwrap())
                        .collect();
                    assert_eq!(ws.iter().sum::<u64>(), 100, "{r}");
                    assert!(ws.iter().all(|w| *w > 0 && *w <= 100), "{r}");
                }
                for h in spec["hosts"].as_array().unwrap() {
                    assert!(h.as_str().unwrap().contains(".svc."));
                }
            }
            "PeerAuthentication" => {
                assert!(spec.get("portLevelMtls").is_none());
            }
            other => panic!("unexpected kind {other}"),
        }
    }
}
