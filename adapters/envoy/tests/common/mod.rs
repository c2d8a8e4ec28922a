//! Helpers shared by the adapter's test binaries.

use serde_json::Value;

/// The proxy configuration of node `node` (`ns/name`).
pub fn proxy<'a>(docs: &'a [Value], node: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["node"]["id"] == node)
        .unwrap_or_else(|| panic!("no proxy {node}"))
}

/// Every xDS resource of every proxy encodes with Envoy's descriptors.
pub fn assert_every_resource_encodes(docs: &[Value]) {
    for d in docs {
        for (k, list) in d["resources"].as_object().unwrap() {
            if k == "secrets" {
                continue;
            }
            for r in list.as_array().unwrap() {
                meshbridge_envoy::proto::encode(r).unwrap_or_else(|e| panic!("{k}: {e}\n{r:#}"));
            }
        }
    }
}
