//! proto3 JSON ⇄ protobuf for Envoy's v3 resources. The translation writes Envoy's JSON form
//! (what `meshbridge translate --mesh envoy` prints); the server encodes the same JSON to
//! protobuf with the descriptors in `descriptors/envoy.pb` (generated from the `xds-protos`
//! PyPI package by `descriptors/gen.py`). An unknown field or a wrong type is an error here,
//! not something Envoy silently ignores.

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;
use std::sync::OnceLock;

pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Scoped RDS: which route configuration serves a request, by its host (the outbound
/// listener's route configuration per service, so that one service's change is one small
/// RDS update).
pub const SCOPED_ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The xDS types served, in push order (make-before-break: secrets, clusters, endpoints,
/// then listeners, route scopes and routes).
pub const TYPES: [&str; 6] = [SECRET, CLUSTER, ENDPOINT, LISTENER, SCOPED_ROUTE, ROUTE];

static DESCRIPTORS: &[u8] = include_bytes!("../descriptors/envoy.pb");

pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The file is generated and checked by a test; failing to decode it is a build defect.
        DescriptorPool::decode(DESCRIPTORS).unwrap_or_else(|_| DescriptorPool::new())
    })
}

/// Encodes a resource given as proto3 JSON with `@type` into an `Any`.
pub fn encode(v: &Value) -> Result<Any, String> {
    let type_url = v
        .get("@type")
        .and_then(Value::as_str)
        .ok_or("resource without @type")?;
    let name = type_url
        .strip_prefix("type.googleapis.com/")
        .ok_or_else(|| format!("bad type URL {type_url}"))?;
    let desc = pool()
        .get_message_by_name(name)
        .ok_or_else(|| format!("unknown message type {name}"))?;
    let mut body = v.clone();
    if let Value::Object(m) = &mut body {
        m.remove("@type");
    }
    let msg = DynamicMessage::deserialize(desc, body).map_err(|e| format!("{name}: {e}"))?;
    Ok(Any {
        type_url: type_url.to_string(),
        value: msg.encode_to_vec(),
    })
}

/// Decodes an `Any` to canonical proto3 JSON with `@type` (nested `Any`s too).
/// Encodes one message of type `name` (e.g. `envoy.config.route.v3.VirtualHost`) from its
/// proto3 JSON (no `@type`).
pub fn encode_message(name: &str, v: &Value) -> Result<Vec<u8>, String> {
    let desc = pool()
        .get_message_by_name(name)
        .ok_or_else(|| format!("unknown message type {name}"))?;
    let msg = DynamicMessage::deserialize(desc, v.clone()).map_err(|e| format!("{name}: {e}"))?;
    Ok(msg.encode_to_vec())
}

/// A RouteConfiguration encoded from its parts: the configuration without `virtualHosts`,
/// then each virtual host's encoding as field 2 (`virtual_hosts`, repeated). Protobuf parsers
/// read fields in any order and append repeated ones, so this decodes to the same message as
/// encoding it whole — and lets unchanged virtual hosts keep their encoding across edits.
pub fn route_configuration(base: &Value, vhosts: &[&[u8]]) -> Result<Any, String> {
    let mut out = encode(base)?;
    for vh in vhosts {
        // Tag: field 2, wire type 2 (length-delimited).
        out.value.push(0x12);
        prost::encoding::encode_varint(vh.len() as u64, &mut out.value);
        out.value.extend_from_slice(vh);
    }
    Ok(out)
}

pub fn to_json(any: &Any) -> Result<Value, String> {
    let name = any
        .type_url
        .strip_prefix("type.googleapis.com/")
        .ok_or_else(|| format!("bad type URL {}", any.type_url))?;
    let desc = pool()
        .get_message_by_name(name)
        .ok_or_else(|| format!("unknown message type {name}"))?;
    let msg = DynamicMessage::decode(desc, any.value.as_slice()).map_err(|e| e.to_string())?;
    let opts = SerializeOptions::new().skip_default_fields(true);
    let mut ser = serde_json::Serializer::new(Vec::new());
    msg.serialize_with_options(&mut ser, &opts)
        .map_err(|e| e.to_string())?;
    let mut out: Value = serde_json::from_slice(&ser.into_inner()).map_err(|e| e.to_string())?;
    let mut with_type = serde_json::Map::new();
    with_type.insert("@type".into(), Value::String(any.type_url.clone()));
    if let Value::Object(m) = &mut out {
        for (k, v) in std::mem::take(m) {
            with_type.insert(k, v);
        }
    }
    Ok(Value::Object(with_type))
}

/// JSON → protobuf → canonical JSON (validates field names and types).
pub fn canonical(v: &Value) -> Result<Value, String> {
    to_json(&encode(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, ScopedRouteConfiguration};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    use prost::Name;

    #[test]
    fn type_urls_match_envoy_types() {
        assert_eq!(Listener::type_url(), LISTENER);
        assert_eq!(RouteConfiguration::type_url(), ROUTE);
        assert_eq!(ScopedRouteConfiguration::type_url(), SCOPED_ROUTE);
        assert_eq!(Cluster::type_url(), CLUSTER);
        assert_eq!(ClusterLoadAssignment::type_url(), ENDPOINT);
        assert_eq!(Secret::type_url(), SECRET);
        for t in TYPES {
            assert!(
                pool()
                    .get_message_by_name(t.trim_start_matches("type.googleapis.com/"))
                    .is_some(),
                "{t}"
            );
        }
    }

    #[test]
    fn a_route_configuration_from_parts_decodes_like_the_whole() {
        let vh = |n: &str| {
            serde_json::json!({"name": n, "domains": [n], "routes": [{"match": {"prefix": "/"},
                "route": {"cluster": format!("{n}|80")}}]})
        };
        let whole = serde_json::json!({"@type": ROUTE, "name": "outbound_http",
            "virtualHosts": [vh("a"), vh("b"), vh("c")], "validateClusters": false});
        let base = serde_json::json!({"@type": ROUTE, "name": "outbound_http",
            "validateClusters": false});
        let parts: Vec<Vec<u8>> = ["a", "b", "c"]
            .iter()
            .map(|n| encode_message("envoy.config.route.v3.VirtualHost", &vh(n)).unwrap())
            .collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let assembled = route_configuration(&base, &refs).unwrap();
        let a = RouteConfiguration::decode(assembled.value.as_slice()).unwrap();
        let b = RouteConfiguration::decode(encode(&whole).unwrap().value.as_slice()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.virtual_hosts.len(), 3);
        assert_eq!(a.virtual_hosts[2].name, "c");
        assert_eq!(
            to_json(&assembled).unwrap(),
            to_json(&encode(&whole).unwrap()).unwrap()
        );
    }

    #[test]
    fn round_trip_and_decode_with_envoy_types() {
        let v = serde_json::json!({
            "@type": CLUSTER, "name": "a/b|80", "type": "EDS", "connectTimeout": "1s",
            "edsClusterConfig": {"edsConfig": {"ads": {}, "resourceApiVersion": "V3"}}
        });
        let any = encode(&v).unwrap();
        let c = Cluster::decode(any.value.as_slice()).unwrap();
        assert_eq!(c.name, "a/b|80");
        assert_eq!(canonical(&v).unwrap(), v);
        let bad = serde_json::json!({"@type": CLUSTER, "nmae": "x"});
        assert!(encode(&bad).is_err());
    }
}
