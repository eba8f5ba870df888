//! Small readers of one schema node: JSON pointers, whether a schema asserts nothing, its
//! `type` set, its `required` names and `enum`/`const` values, and the JSON type of a value.

use serde_json::{Map, Value};

use super::keywords::ANNOTATIONS;

pub(super) fn join_ptr(p: &str, k: &str) -> String {
    format!("{p}/{}", k.replace('~', "~0").replace('/', "~1"))
}

pub(super) fn is_trivial(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

pub(super) fn contains_ref(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k == "$ref" || contains_ref(v)),
        Value::Array(a) => a.iter().any(contains_ref),
        _ => false,
    }
}

pub(super) fn json_type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(super) const ALL_TYPES: &[&str] = &["null", "boolean", "object", "array", "string", "number"];

pub(super) fn required_names(m: &Map<String, Value>) -> Vec<String> {
    m.get("required")
        .and_then(|v| v.as_array())
        .map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

pub(super) fn type_set(v: &Value) -> Vec<&'static str> {
    let all = ["null", "boolean", "object", "array", "string", "number", "integer"];
    let mut out = Vec::new();
    let mut add = |s: &str| {
        if let Some(t) = all.iter().find(|x| **x == s) {
            out.push(*t);
        }
    };
    match v {
        Value::String(s) => add(s),
        Value::Array(a) => a.iter().filter_map(|x| x.as_str()).for_each(add),
        _ => {}
    }
    out
}

pub(super) fn enum_values(m: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(c) = m.get("const") {
        return Some(vec![c.clone()]);
    }
    m.get("enum").and_then(|e| e.as_array()).cloned()
}
