//! A small three-valued JSON Schema validator for concrete values.
//!
//! Used where the compiler must decide whether one known value is valid against a subschema —
//! e.g. which `enum` values survive a `not`. It answers `Some(true)` / `Some(false)` only when
//! certain, and `None` ("unknown") for anything it does not fully understand (unknown keywords,
//! `format`, remote `$ref`s, too deep). Callers must treat `None` conservatively: a value whose
//! status is unknown is never generated (a narrowing).

use serde_json::{Map, Value};

use super::pattern;

/// Checks `value` against `schema`; `root` resolves local `$ref`s.
pub fn validate(value: &Value, schema: &Value, root: &Value) -> Option<bool> {
    Validator { root }.check(value, schema, 0)
}

struct Validator<'a> {
    root: &'a Value,
}

/// Keywords that never affect validity.
const IGNORED: &[&str] = &[
    "title",
    "description",
    "examples",
    "example",
    "default",
    "$comment",
    "$schema",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
    "$id",
    "id",
    "contentMediaType",
    "contentEncoding",
];

/// Three-valued AND over an iterator of results.
fn all(results: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for r in results {
        match r {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown {
        None
    } else {
        Some(true)
    }
}

/// JSON equality, with numbers compared by value (`1 == 1.0`).
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn has_type(value: &Value, t: &str) -> Option<bool> {
    Some(match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => return None,
    })
}

fn pattern_matches(p: &str, s: &str) -> Option<bool> {
    Some(pattern::search_regex(p).ok()?.is_match(s))
}

impl<'a> Validator<'a> {
    fn resolve(&self, r: &str) -> Option<&'a Value> {
        let frag = r.strip_prefix('#')?;
        let mut cur = self.root;
        if frag.is_empty() {
            return Some(cur);
        }
        for tok in frag.strip_prefix('/')?.split('/') {
            let tok = tok.replace("~1", "/").replace("~0", "~");
            cur = match cur {
                Value::Object(o) => o.get(&tok)?,
                Value::Array(a) => a.get(tok.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    fn check(&self, value: &Value, schema: &Value, depth: u32) -> Option<bool> {
        if depth > 32 {
            return None;
        }
        let m = match schema {
            Value::Bool(b) => return Some(*b),
            Value::Object(m) => m,
            _ => return None,
        };
        all(m.iter().map(|(k, v)| self.keyword(value, m, k, v, depth)))
    }

    fn keyword(&self, value: &Value, m: &Map<String, Value>, k: &str, v: &Value, depth: u32) -> Option<bool> {
        if IGNORED.contains(&k) || k.starts_with("x-") {
            return Some(true);
        }
        let d = depth + 1;
        let num = value.as_f64();
        let bound = |f: fn(f64, f64) -> bool| -> Option<bool> {
            match (num, v.as_f64()) {
                (Some(x), Some(b)) => Some(f(x, b)),
                (None, _) => Some(true),
                _ => None,
            }
        };
        let count = |n: Option<usize>, f: fn(u64, u64) -> bool| -> Option<bool> {
            match (n, v.as_u64()) {
                (Some(n), Some(b)) => Some(f(n as u64, b)),
                (None, _) => Some(true),
                _ => None,
            }
        };
        let chars = value.as_str().map(|s| s.chars().count());
        let items = value.as_array();
        let object = value.as_object();
        match k {
            "$ref" => self.check(value, self.resolve(v.as_str()?)?, d),
            "type" => match v {
                Value::String(t) => has_type(value, t),
                Value::Array(ts) => {
                    let rs: Vec<Option<bool>> =
                        ts.iter().map(|t| t.as_str().and_then(|t| has_type(value, t))).collect();
                    if rs.contains(&Some(true)) {
                        Some(true)
                    } else {
                        all(rs)
                    }
                }
                _ => None,
            },
            "nullable" => Some(true), // only widens `type`, handled there
            "enum" => Some(v.as_array()?.iter().any(|e| json_equal(e, value))),
            "const" => Some(json_equal(v, value)),
            "not" => self.check(value, v, d).map(|b| !b),
            "allOf" => all(v.as_array()?.iter().map(|s| self.check(value, s, d))),
            "anyOf" => {
                let rs: Vec<Option<bool>> = v.as_array()?.iter().map(|s| self.check(value, s, d)).collect();
                if rs.contains(&Some(true)) {
                    Some(true)
                } else {
                    all(rs)
                }
            }
            "oneOf" => {
                let rs: Vec<Option<bool>> = v.as_array()?.iter().map(|s| self.check(value, s, d)).collect();
                let yes = rs.iter().filter(|r| **r == Some(true)).count();
                if yes >= 2 {
                    Some(false)
                } else if rs.contains(&None) {
                    None
                } else {
                    Some(yes == 1)
                }
            }
            "if" => {
                let branch = match self.check(value, v, d)? {
                    true => m.get("then"),
                    false => m.get("else"),
                };
                branch.map_or(Some(true), |s| self.check(value, s, d))
            }
            "then" | "else" => Some(true), // evaluated with `if`
            "minimum" if m.get("exclusiveMinimum") == Some(&Value::Bool(true)) => bound(|x, b| x > b),
            "maximum" if m.get("exclusiveMaximum") == Some(&Value::Bool(true)) => bound(|x, b| x < b),
            "minimum" => bound(|x, b| x >= b),
            "maximum" => bound(|x, b| x <= b),
            "exclusiveMinimum" if v.is_boolean() => Some(true), // draft-04 flag, see minimum
            "exclusiveMaximum" if v.is_boolean() => Some(true),
            "exclusiveMinimum" => bound(|x, b| x > b),
            "exclusiveMaximum" => bound(|x, b| x < b),
            "multipleOf" => match (num, v.as_f64()) {
                (None, _) => Some(true),
                (Some(x), Some(b)) if b > 0.0 => {
                    let q = x / b;
                    if q.fract() == 0.0 {
                        Some(true)
                    } else if (q - q.round()).abs() < 1e-9 {
                        None
                    } else {
                        Some(false)
                    }
                }
                _ => None,
            },
            "minLength" => count(chars, |n, b| n >= b),
            "maxLength" => count(chars, |n, b| n <= b),
            "pattern" => match value.as_str() {
                None => Some(true),
                Some(s) => pattern_matches(v.as_str()?, s),
            },
            "minItems" => count(items.map(|a| a.len()), |n, b| n >= b),
            "maxItems" => count(items.map(|a| a.len()), |n, b| n <= b),
            "uniqueItems" => match items {
                Some(a) if v == &Value::Bool(true) => {
                    Some(a.iter().enumerate().all(|(i, x)| a[..i].iter().all(|y| !json_equal(x, y))))
                }
                _ => Some(true),
            },
            "items" | "prefixItems" | "additionalItems" => self.array_items(value, m, d),
            "contains" => match items {
                None => Some(true),
                Some(a) => {
                    let rs: Vec<Option<bool>> = a.iter().map(|x| self.check(x, v, d)).collect();
                    if rs.contains(&Some(true)) {
                        Some(true)
                    } else if rs.contains(&None) {
                        None
                    } else {
                        Some(false)
                    }
                }
            },
            "minProperties" => count(object.map(|o| o.len()), |n, b| n >= b),
            "maxProperties" => count(object.map(|o| o.len()), |n, b| n <= b),
            "required" => match object {
                None => Some(true),
                Some(o) => Some(v.as_array()?.iter().all(|r| r.as_str().is_some_and(|r| o.contains_key(r)))),
            },
            "properties" | "patternProperties" | "additionalProperties" => self.object_members(value, m, d),
            "propertyNames" => match object {
                None => Some(true),
                Some(o) => all(o.keys().map(|n| self.check(&Value::String(n.clone()), v, d))),
            },
            "dependentRequired" | "dependencies" | "dependentSchemas" => match object {
                None => Some(true),
                Some(o) => all(v.as_object()?.iter().filter(|(t, _)| o.contains_key(*t)).map(|(_, dep)| match dep {
                    Value::Array(names) => Some(names.iter().all(|n| n.as_str().is_some_and(|n| o.contains_key(n)))),
                    schema => self.check(value, schema, d),
                })),
            },
            _ => None,
        }
    }

    /// `items` / `prefixItems` / `additionalItems` together.
    fn array_items(&self, value: &Value, m: &Map<String, Value>, d: u32) -> Option<bool> {
        let Some(a) = value.as_array() else { return Some(true) };
        let (prefix, rest): (&[Value], Option<&Value>) = match (m.get("prefixItems"), m.get("items")) {
            (Some(Value::Array(p)), items) => (p, items),
            (None, Some(Value::Array(p))) => (p, m.get("additionalItems")),
            (None, items) => (&[], items),
            _ => return None,
        };
        all(a.iter().enumerate().map(|(i, x)| match prefix.get(i) {
            Some(s) => self.check(x, s, d),
            None => rest.map_or(Some(true), |s| self.check(x, s, d)),
        }))
    }

    /// `properties` / `patternProperties` / `additionalProperties` together.
    fn object_members(&self, value: &Value, m: &Map<String, Value>, d: u32) -> Option<bool> {
        let Some(o) = value.as_object() else { return Some(true) };
        let props = m.get("properties").and_then(|p| p.as_object());
        let patterns = m.get("patternProperties").and_then(|p| p.as_object());
        all(o.iter().map(|(name, x)| {
            let mut results = Vec::new();
            let mut matched = false;
            if let Some(s) = props.and_then(|p| p.get(name)) {
                matched = true;
                results.push(self.check(x, s, d));
            }
            for (p, s) in patterns.into_iter().flatten() {
                match pattern_matches(p, name) {
                    Some(true) => {
                        matched = true;
                        results.push(self.check(x, s, d));
                    }
                    Some(false) => {}
                    None => return None,
                }
            }
            if !matched {
                if let Some(s) = m.get("additionalProperties") {
                    results.push(self.check(x, s, d));
                }
            }
            all(results)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn three_valued() {
        let root = json!({});
        assert_eq!(validate(&json!(3), &json!({"type": "integer", "minimum": 2}), &root), Some(true));
        assert_eq!(validate(&json!(1.0), &json!({"enum": [1]}), &root), Some(true));
        assert_eq!(validate(&json!("ab"), &json!({"not": {"pattern": "^a"}}), &root), Some(false));
        assert_eq!(
            validate(&json!({"a": 1}), &json!({"additionalProperties": {"type": "string"}}), &root),
            Some(false)
        );
        assert_eq!(validate(&json!("x"), &json!({"format": "email"}), &root), None);
        assert_eq!(validate(&json!([1, 1]), &json!({"uniqueItems": true}), &root), Some(false));
    }
}
