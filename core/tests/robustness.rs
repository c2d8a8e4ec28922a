//! No input may panic the YAML → snapshot → IR path, and invalid documents never stop valid
//! ones. Property tests over random text and over structurally plausible SMI objects with
//! random field values, plus the pathological inputs named in the issue.

use meshbridge_core::build::build;
use meshbridge_core::load::load_str;
use meshbridge_core::snapshot::Snapshot;
use proptest::prelude::*;
use serde_json::{Value, json};

fn pipeline(text: &str) -> (usize, usize) {
    let l = load_str("in.yaml", text);
    let n = l.objects.len();
    let p = l.problems.len();
    let snap = Snapshot::from_objects(l.objects);
    let ir = build(&snap);
    // Every problem renders in the contract format.
    for pr in ir.problems() {
        let s = pr.to_string();
        assert!(s.starts_with("in.yaml:"), "{s}");
    }
    (n, p)
}

/// Field names of the SMI kinds, for objects the loader's typed paths look into.
const FIELD_NAMES: &[&str] = &[
    "service",
    "backends",
    "weight",
    "matches",
    "name",
    "kind",
    "pathRegex",
    "methods",
    "headers",
    "ports",
    "destination",
    "sources",
    "rules",
];

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-zA-Z0-9./*^$()\\[\\]-]{0,12}".prop_map(Value::String),
        Just(json!("500m")),
        Just(json!("*")),
        Just(json!("GET")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                // A field name SMI kinds use (each as likely as the random one), or a random one.
                prop_oneof![
                    FIELD_NAMES.len() as u32 => prop::sample::select(FIELD_NAMES).prop_map(String::from),
                    1 => "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const KINDS: &[(&str, &str)] = &[
    ("split.smi-spec.io/v1alpha1", "TrafficSplit"),
    ("split.smi-spec.io/v1alpha2", "TrafficSplit"),
    ("split.smi-spec.io/v1alpha3", "TrafficSplit"),
    ("split.smi-spec.io/v1alpha4", "TrafficSplit"),
    ("access.smi-spec.io/v1alpha1", "TrafficTarget"),
    ("access.smi-spec.io/v1alpha2", "TrafficTarget"),
    ("access.smi-spec.io/v1alpha3", "TrafficTarget"),
    ("specs.smi-spec.io/v1alpha1", "HTTPRouteGroup"),
    ("specs.smi-spec.io/v1alpha2", "HTTPRouteGroup"),
    ("specs.smi-spec.io/v1alpha4", "HTTPRouteGroup"),
    ("specs.smi-spec.io/v1alpha4", "TCPRoute"),
    ("specs.smi-spec.io/v1alpha4", "UDPRoute"),
    ("v1", "Service"),
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("meshbridge.io/v1alpha1", "Mesh"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,300}") {
        pipeline(&s);
    }

    #[test]
    fn random_objects_never_panic(
        docs in prop::collection::vec((0..KINDS.len(), arb_value(), arb_value(), "[a-z]{1,5}"), 1..6)
    ) {
        let mut text = String::new();
        for (k, spec, top, name) in docs {
            let (av, kind) = KINDS[k];
            let mut o = json!({"apiVersion": av, "kind": kind, "metadata": {"name": name, "namespace": "ns"}, "spec": spec});
            if let Value::Object(extra) = top {
                for (k, v) in extra {
                    if k != "apiVersion" && k != "kind" && k != "metadata" {
                        o[k] = v;
                    }
                }
            }
            text.push_str(&meshbridge_core::yaml::to_yaml(&o));
            text.push_str("---\n");
        }
        pipeline(&text);
    }
}

const VALID: &str = "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ok, namespace: default}
spec:
  service: web
  backends: [{service: a, weight: 1}, {service: b, weight: 3}]
";

#[test]
fn truncated_documents_never_panic_and_valid_ones_survive() {
    let other = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: r}\nspec:\n  matches:\n  - name: m\n    pathRegex: /x\n    headers: [{a: b}]\n";
    for cut in 0..other.len() {
        let text = format!("{VALID}---\n{}", &other[..cut]);
        let (n, _) = pipeline(&text);
        assert!(
            n >= 1,
            "valid split lost when the next document is cut at {cut}"
        );
    }
}

#[test]
fn wrong_types_are_reported_with_the_field() {
    let text = format!(
        "{VALID}---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: bad}}\nspec:\n  service: [1]\n  backends: 3\n"
    );
    let l = load_str("in.yaml", &text);
    assert_eq!(l.objects.len(), 1);
    assert_eq!(l.problems.len(), 1);
    let p = l.problems[0].to_string();
    assert!(
        p.starts_with("in.yaml:8: TrafficSplit default/bad: spec."),
        "{p}"
    );
}

#[test]
fn huge_document_is_handled() {
    // ~10 MB: one HTTPRouteGroup with many matches, then a valid split.
    let mut s = String::from(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: big}\nspec:\n  matches:\n",
    );
    let mut i = 0;
    while s.len() < 10 * 1024 * 1024 {
        s.push_str(&format!(
            "  - name: m{i}\n    pathRegex: \"/p{i}/{}\"\n",
            "x".repeat(200)
        ));
        i += 1;
    }
    s.push_str("---\n");
    s.push_str(VALID);
    let (n, p) = pipeline(&s);
    // Either the big document loads or it is reported; the valid split always loads.
    assert!(n >= 1);
    assert!(n + p >= 2);
}

#[test]
fn deeply_nested_documents_are_rejected_not_overflowed() {
    let depth = 100_000;
    let flow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let (n, p) = pipeline(&format!("{flow}\n---\n{VALID}"));
    assert_eq!((n, p), (1, 1));
    let mut block = String::new();
    for d in 0..5_000 {
        block.push_str(&" ".repeat(d));
        block.push_str("a:\n");
    }
    let (n, p) = pipeline(&format!("{block}---\n{VALID}"));
    assert_eq!((n, p), (1, 1));
    let json = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let (n, p) = pipeline(&format!("{json}\n---\n{VALID}"));
    assert_eq!((n, p), (1, 1));
}

#[test]
fn binary_garbage_is_reported() {
    let garbage: String = (0..4096u32)
        .map(|i| char::from_u32((i * 7919) % 0xD7FF).unwrap_or('x'))
        .collect();
    pipeline(&garbage);
    pipeline("\u{0}\u{1}\u{2}: [}{");
    pipeline("- - - - -\n  : :\n");
    pipeline("*anchor\n");
    pipeline("a: &x [*x]\n");
    // Billion laughs: aliases must not expand exponentially.
    let mut lol = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut prev = "a";
    for n in names {
        lol.push_str(&format!(
            "{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = n;
    }
    pipeline(&lol);
}
