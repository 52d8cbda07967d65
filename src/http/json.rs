//! Strict JSON for request bodies: nesting is capped before parsing (so a deeply nested body
//! costs one linear scan, not a deep recursion), and an object with the same key twice is an
//! error instead of silently keeping the last value.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Objects and arrays nest deeper than allowed.
    #[error("JSON nests deeper than {0} levels")]
    TooDeep(usize),
    /// Not JSON, or a key appears twice in one object.
    #[error("invalid JSON: {0}")]
    Syntax(String),
}

/// The deepest nesting of `[` and `{` outside strings.
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses `bytes` as one JSON value, refusing nesting deeper than `max_depth` and duplicate
/// object keys.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    if nesting(bytes) > max_depth {
        return Err(JsonError::TooDeep(max_depth));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue
        .deserialize(&mut de)
        .map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(40).collect();
                return Err(de::Error::custom(format!("duplicate key `{shown}`")));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_json_parses() {
        let v = parse_strict(br#"{"a":[1,2,{"b":"]}"}],"c":null}"#, 8).unwrap();
        assert_eq!(v["a"][2]["b"], "]}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = parse_strict(br#"{"userName":"a","userName":"b"}"#, 8).unwrap_err();
        assert!(e.to_string().contains("duplicate key `userName`"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = "[".repeat(100_000);
        assert_eq!(
            parse_strict(deep.as_bytes(), 32),
            Err(JsonError::TooDeep(32))
        );
        let braces_in_strings = format!("{{\"a\":\"{}\"}}", "[".repeat(1000));
        assert!(parse_strict(braces_in_strings.as_bytes(), 2).is_ok());
    }

    #[test]
    fn trailing_garbage_and_bad_syntax_are_errors() {
        assert!(parse_strict(b"{} x", 8).is_err());
        assert!(parse_strict(b"{\"a\":}", 8).is_err());
        assert!(parse_strict(b"", 8).is_err());
    }
}
