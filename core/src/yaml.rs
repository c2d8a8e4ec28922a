//! YAML output: one place that renders values, so every command prints the same style.

use serde_json::Value;

/// Renders a value as a YAML document (block style, keys in the value's order).
pub fn to_yaml(v: &Value) -> String {
    let mut s =
        serde_saphyr::to_string(v).unwrap_or_else(|e| format!("# error rendering YAML: {e}\n"));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Renders values as a multi-document YAML stream (`---` between documents).
pub fn to_yaml_stream<'a>(vs: impl IntoIterator<Item = &'a Value>) -> String {
    vs.into_iter()
        .map(to_yaml)
        .collect::<Vec<_>>()
        .join("---\n")
}
