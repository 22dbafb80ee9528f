//! JSON values for the parsers that read response bodies: hostile keys and strings, huge
//! numbers, and nesting up to the depth serde_json accepts when it parses a body (128).

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use super::hostile;

/// Deepest nesting a fetched body can have: serde_json's recursion limit, which the worker
/// keeps when it parses a response.
pub const MAX_BODY_DEPTH: usize = 127;

/// A JSON number, huge ones included; text serde_json cannot hold (`1e400`) becomes
/// `null`, as the body parser would refuse it.
pub fn number() -> impl Strategy<Value = Value> {
    hostile::number_text().prop_map(|t| match serde_json::from_str::<Number>(&t) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::Null,
    })
}

/// A scalar: null, a boolean, a number or a hostile string.
pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        3 => hostile::string(24).prop_map(Value::String),
    ]
}

/// An object key: a short name from a small pool (so that records share keys with values
/// of different types) or a hostile string.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&["id", "name", "tags", "a", "b", "n", "ts"][..])
            .prop_map(str::to_string),
        1 => hostile::string(12),
    ]
}

/// Any JSON value of bounded size: up to four levels of arrays and objects.
pub fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `leaf` wrapped in `depth` arrays or one-key objects (as `shape` says, bit by bit).
pub fn nest(leaf: Value, depth: usize, shape: u64) -> Value {
    (0..depth).fold(leaf, |v, i| {
        if shape >> (i % 64) & 1 == 0 {
            Value::Array(vec![v])
        } else {
            Value::Object(Map::from_iter([("d".to_string(), v)]))
        }
    })
}

/// A value nested up to [`MAX_BODY_DEPTH`] levels deep.
pub fn deep() -> impl Strategy<Value = Value> {
    (scalar(), 0..=MAX_BODY_DEPTH, any::<u64>()).prop_map(|(leaf, d, shape)| nest(leaf, d, shape))
}

/// A value of bounded size, or a deep one.
pub fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![4 => value(), 1 => deep()]
}
