//! The one stable hash of the workspace: 64-bit FNV-1a (no randomness, no dependency).
//!
//! Its values are written into goldens, annotations, object names and xDS versions, so the
//! same input must give the same hash across runs, builds and releases.

use serde_json::Value;

/// The FNV-1a 64 offset basis: the hash of no bytes, where [`fnv1a64_extend`] starts.
pub const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_extend(OFFSET_BASIS, bytes)
}

/// Continues an FNV-1a 64 hash `h` over `bytes` (hashing several pieces as one stream:
/// `fnv1a64_extend(fnv1a64(a), b) == fnv1a64(a ++ b)`).
pub fn fnv1a64_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// Eight hex digits (the low 32 bits) of [`fnv1a64`]: a short suffix for generated names.
pub fn short_hash(s: &str) -> String {
    format!("{:08x}", fnv1a64(s.as_bytes()) & 0xffff_ffff)
}

/// FNV-1a 64 of the canonical JSON text, as 16 hex digits (stable across runs and versions;
/// independent of object key order).
pub fn hash_value(v: &Value) -> String {
    format!("{:016x}", fnv1a64(canonical(v).as_bytes()))
}

/// JSON text with object keys sorted (independent of insertion order).
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64_extend(fnv1a64(b"foo"), b"bar"), fnv1a64(b"foobar"));
        assert_eq!(short_hash("foobar"), "f73967e8");
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[true,"x"]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":[true,"x"],"b":1}"#).unwrap();
        assert_eq!(hash_value(&a), hash_value(&b));
        assert_eq!(
            hash_value(&a),
            format!("{:016x}", fnv1a64(br#"{"a":[true,"x"],"b":1}"#))
        );
    }
}
