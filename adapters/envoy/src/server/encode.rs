//! Encoding a proxy's proto3 JSON resources into a [`NodeSnapshot`], with a memo
//! ([`EncodeCache`]) so that unchanged resources (and unchanged virtual hosts of large route
//! configurations) are not encoded again on every edit. A resource value shared with the
//! last call (the same `Arc`, as the incremental translator hands out for everything it
//! reused) is known by its address: not encoded, hashed or even read again.

use super::{NodeSnapshot, Resource};
use crate::proto::{SECRET, TYPES};
use meshbridge_core::hash::fnv1a64;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Encodes a proxy's JSON resources (plus its secrets) into a snapshot. `previous` lets
/// unchanged resources keep their encoding (skips re-encoding on every edit).
pub fn snapshot_from_json(
    resources: &BTreeMap<&'static str, BTreeMap<String, Arc<serde_json::Value>>>,
    secrets: &BTreeMap<String, serde_json::Value>,
    cache: &mut EncodeCache,
) -> Result<NodeSnapshot, String> {
    let mut snap = NodeSnapshot::default();
    for t in TYPES {
        snap.types.entry(t.to_string()).or_default();
    }
    for (t, m) in resources {
        let out = snap.types.entry(t.to_string()).or_default();
        for (name, v) in m {
            out.insert(name.clone(), cache.encode_shared(name, v)?);
        }
    }
    let out = snap.types.entry(SECRET.to_string()).or_default();
    for (name, v) in secrets {
        out.insert(name.clone(), cache.encode(name, v)?);
    }
    Ok(snap)
}

/// Memo of encoded resources by JSON content: the same JSON is encoded once across proxies
/// and edits.
#[derive(Default)]
pub struct EncodeCache {
    /// By the address of a shared value (held here, so the address is not reused).
    shared: HashMap<usize, (Arc<serde_json::Value>, Arc<Resource>)>,
    shared_used: HashSet<usize>,
    map: HashMap<String, (serde_json::Value, Arc<Resource>)>,
    used: BTreeSet<String>,
    /// Route configurations are encoded per virtual host (an edit to one split re-encodes
    /// one virtual host of the thousand in an outbound route configuration).
    vhosts: HashMap<u64, (serde_json::Value, Arc<Vec<u8>>)>,
    vhosts_used: HashSet<u64>,
}

/// Route configurations with at least this many virtual hosts are encoded per virtual host.
const PER_VHOST_MIN: usize = 16;

impl EncodeCache {
    fn encode_shared(
        &mut self,
        name: &str,
        v: &Arc<serde_json::Value>,
    ) -> Result<Arc<Resource>, String> {
        let key = Arc::as_ptr(v) as usize;
        self.shared_used.insert(key);
        if let Some((held, r)) = self.shared.get(&key)
            && Arc::ptr_eq(held, v)
            && r.name == name
        {
            return Ok(r.clone());
        }
        let r = self.encode(name, v)?;
        self.shared.insert(key, (v.clone(), r.clone()));
        Ok(r)
    }

    fn encode(&mut self, name: &str, v: &serde_json::Value) -> Result<Arc<Resource>, String> {
        if v.get("@type").and_then(serde_json::Value::as_str) == Some(crate::proto::ROUTE)
            && let Some(vhs) = v.get("virtualHosts").and_then(serde_json::Value::as_array)
            && vhs.len() >= PER_VHOST_MIN
        {
            return self.encode_route(name, v, vhs);
        }
        self.encode_whole(name, v)
    }

    fn encode_route(
        &mut self,
        name: &str,
        v: &serde_json::Value,
        vhs: &[serde_json::Value],
    ) -> Result<Arc<Resource>, String> {
        let mut parts: Vec<Arc<Vec<u8>>> = Vec::with_capacity(vhs.len());
        for vh in vhs {
            let key = fnv1a64(vh.to_string().as_bytes());
            self.vhosts_used.insert(key);
            match self.vhosts.get(&key) {
                Some((old, bytes)) if old == vh => parts.push(bytes.clone()),
                _ => {
                    let bytes = Arc::new(crate::proto::encode_message(
                        "envoy.config.route.v3.VirtualHost",
                        vh,
                    )?);
                    self.vhosts.insert(key, (vh.clone(), bytes.clone()));
                    parts.push(bytes);
                }
            }
        }
        let mut base = v.clone();
        if let Some(m) = base.as_object_mut() {
            m.remove("virtualHosts");
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        Ok(Arc::new(Resource::new(
            name,
            crate::proto::route_configuration(&base, &refs)?,
        )))
    }

    fn encode_whole(&mut self, name: &str, v: &serde_json::Value) -> Result<Arc<Resource>, String> {
        // Key: name + compact JSON text (identical content shares one encoding).
        let text = v.to_string();
        let key = format!("{name}\u{0}{:016x}", fnv1a64(text.as_bytes()));
        self.used.insert(key.clone());
        if let Some((old, r)) = self.map.get(&key)
            && old == v
        {
            return Ok(r.clone());
        }
        let r = Arc::new(Resource::new(name, crate::proto::encode(v)?));
        self.map.insert(key, (v.clone(), r.clone()));
        Ok(r)
    }

    /// Drops encodings not used since the last call.
    pub fn sweep(&mut self) {
        let used = std::mem::take(&mut self.shared_used);
        self.shared.retain(|k, _| used.contains(k));
        let used = std::mem::take(&mut self.used);
        self.map.retain(|k, _| used.contains(k));
        let used = std::mem::take(&mut self.vhosts_used);
        self.vhosts.retain(|k, _| used.contains(k));
    }
}
