//! Field types shared by several SMI kinds and versions, written to be lenient where
//! real-world manifests are messy (quantities, header encodings, int-or-string ports).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// A Kubernetes quantity as used by `split.smi-spec.io/v1alpha1` weights (`1`, `500m`, `1.5`).
///
/// The raw text is kept; [`Quantity::to_milli`] parses it (validation reports the field
/// when it does not parse). Numbers in YAML (`weight: 1`) are accepted and kept as text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quantity(pub String);

impl Quantity {
    /// Value in milli-units (`1` = `1000m`). Errors name the reason.
    ///
    /// Accepted: plain decimals (`1`, `0.5`, `-3`), the `m` suffix, and the SI/binary
    /// suffixes Kubernetes accepts (`k`, `M`, `G`, `Ki`, `Mi`, `Gi`), exponents (`1e3`).
    /// Anything below one milli-unit that is not zero is rejected (it cannot be represented).
    pub fn to_milli(&self) -> Result<i128, String> {
        parse_quantity_milli(self.0.trim())
    }
}

fn parse_quantity_milli(s: &str) -> Result<i128, String> {
    if s.is_empty() {
        return Err("empty quantity".into());
    }
    let (sign, rest) = match s.as_bytes()[0] {
        b'-' => (-1i128, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (num, suffix) = rest.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(format!(
            "`{s}` is not a quantity (expected e.g. `1`, `500m`)"
        ));
    }
    // exponent of ten relative to milli-units, or a binary multiplier
    let (pow10, binary): (i32, i128) = match suffix {
        "" => (3, 1),
        "m" => (0, 1),
        "k" => (6, 1),
        "M" => (9, 1),
        "G" => (12, 1),
        "T" => (15, 1),
        "Ki" => (3, 1 << 10),
        "Mi" => (3, 1 << 20),
        "Gi" => (3, 1 << 30),
        "Ti" => (3, 1 << 40),
        e if e.starts_with(['e', 'E']) => match e[1..].parse::<i32>() {
            Ok(x) if (-30..=30).contains(&x) => (3 + x, 1),
            _ => return Err(format!("`{s}` has an invalid exponent")),
        },
        "n" | "u" => {
            return Err(format!(
                "`{s}`: weights below 1m cannot be represented (use whole milli-units)"
            ));
        }
        other => return Err(format!("`{s}` has an unknown quantity suffix `{other}`")),
    };
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    if int_part.len() + frac_part.len() > 30 {
        return Err(format!("`{s}` is too large"));
    }
    let digits: String = format!("{int_part}{frac_part}");
    let mut value: i128 = digits.parse::<i128>().unwrap_or(0);
    let mut exp = pow10 - frac_part.len() as i32;
    while exp > 0 {
        value = value
            .checked_mul(10)
            .ok_or_else(|| format!("`{s}` is too large"))?;
        exp -= 1;
    }
    while exp < 0 {
        if value % 10 != 0 {
            return Err(format!(
                "`{s}` is finer than 1m and cannot be represented as a weight"
            ));
        }
        value /= 10;
        exp += 1;
    }
    let value = value
        .checked_mul(binary)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if value > i64::MAX as i128 {
        return Err(format!("`{s}` is too large"));
    }
    Ok(sign * value)
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a quantity (number or string such as `500m`)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                if v.is_finite() {
                    Ok(Quantity(v.to_string()))
                } else {
                    Err(E::custom("quantity must be finite"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Kubernetes quantity: `1` = `1000m`.",
            "x-kubernetes-int-or-string": true
        })
    }
}

/// An integer-or-string value (ports in access v1alpha1/v1alpha2, which real manifests
/// write either way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<IntOrString, E> {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    Ok(IntOrString::Int(v as i64))
                } else {
                    Err(E::custom(format!("{v} is not an integer")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i64(*i),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl JsonSchema for IntOrString {
    fn schema_name() -> Cow<'static, str> {
        "IntOrString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-int-or-string": true })
    }
}

/// HTTPRouteGroup `headers`: accepted as a map (`{user-agent: ".*Android.*"}`, the spec
/// text since smi-spec#233) and as a list of one-key maps (the smi-sdk-go / OSM CRD wire
/// format). Order is kept. Serialised as the list form, which every shipped CRD accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Map(serde_json::Map<String, serde_json::Value>),
            List(Vec<serde_json::Map<String, serde_json::Value>>),
        }
        fn value<E: serde::de::Error>(k: &str, v: serde_json::Value) -> Result<String, E> {
            match v {
                serde_json::Value::String(s) => Ok(s),
                other => Err(E::custom(format!(
                    "header `{k}`: expected a regex string, found {}",
                    crate::load::type_name(&other)
                ))),
            }
        }
        let raw = Option::<Raw>::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a map of header name to regex, or a list of one-key maps",
            )
        })?;
        let mut out = Vec::new();
        match raw {
            None => {}
            Some(Raw::Map(m)) => {
                for (k, v) in m {
                    let v = value(&k, v)?;
                    out.push((k, v));
                }
            }
            Some(Raw::List(items)) => {
                for m in items {
                    for (k, v) in m {
                        let v = value(&k, v)?;
                        out.push((k, v));
                    }
                }
            }
        }
        Ok(Headers(out))
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            let mut m = std::collections::BTreeMap::new();
            m.insert(k, v);
            seq.serialize_element(&m)?;
        }
        seq.end()
    }
}

impl JsonSchema for Headers {
    fn schema_name() -> Cow<'static, str> {
        "Headers".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Header name to RE2 regex. Either a map or a list of one-key maps.",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

/// A condition on an input object's status (list-map keyed by `type`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Status meshbridge writes on SMI objects where the installed CRD has a status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmiStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let q = |s: &str| Quantity(s.into()).to_milli();
        assert_eq!(q("1"), Ok(1000));
        assert_eq!(q("500m"), Ok(500));
        assert_eq!(q("0m"), Ok(0));
        assert_eq!(q("1500m"), Ok(1500));
        assert_eq!(q("1.5"), Ok(1500));
        assert_eq!(q("0.001"), Ok(1));
        assert_eq!(q("1k"), Ok(1_000_000));
        assert_eq!(q("1Ki"), Ok(1_024_000));
        assert_eq!(q("1e2"), Ok(100_000));
        assert_eq!(q("-1"), Ok(-1000));
        assert!(q("0.0001").is_err());
        assert!(q("abc").is_err());
        assert!(q("").is_err());
        assert!(q("1x").is_err());
        assert!(q("99999999999999999999999999999999999").is_err());
    }

    #[test]
    fn headers_both_encodings() {
        let m: Headers = serde_json::from_str(r#"{"a":"x","b":"y"}"#).unwrap();
        let l: Headers = serde_json::from_str(r#"[{"a":"x"},{"b":"y"}]"#).unwrap();
        assert_eq!(m, l);
        assert!(serde_json::from_str::<Headers>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<Headers>(r#"3"#).is_err());
    }
}
