//! Two schemas merged into one whose instances are those valid against both (`allOf`, `$ref`
//! beside other keywords, `anyOf`/`oneOf` branches with their node), and a node's top-level
//! `$ref`/`allOf` inlined before merging.

use serde_json::{Map, Value};

use crate::format::{error::pointer_display, FormatError, Limit};

use super::keywords::{ANNOTATIONS, KNOWN_UNSUPPORTED, NO_UNDECLARED, SUPPORTED};
use super::lower::Gen;
use super::node::{is_trivial, join_ptr, type_set};

impl<'a> Gen<'a> {
    /// Merges two schemas into one whose instances are exactly those valid against both
    /// (or errors when that cannot be expressed). `node_side`: `a` is the schema node itself
    /// (so its `unevaluated*` keywords see `b`'s properties as evaluated).
    pub(super) fn merge(
        &mut self,
        a: &Value,
        b: &Value,
        ptr: &str,
        depth: u32,
        node_side: bool,
    ) -> Result<Value, FormatError> {
        if depth > self.limits.max_schema_depth {
            return Err(FormatError::too_complex(
                format!("merging schemas at {} nests too deeply", pointer_display(ptr)),
                Limit::MaxSchemaDepth(self.limits.max_schema_depth),
            ));
        }
        if is_trivial(a)
            && !matches!(b, Value::Object(o) if o.contains_key("unevaluatedProperties") || o.contains_key("unevaluatedItems"))
        {
            return Ok(b.clone());
        }
        if is_trivial(b) {
            return Ok(a.clone());
        }
        let (a, b) = match (a, b) {
            (Value::Bool(false), _) | (_, Value::Bool(false)) => return Ok(Value::Bool(false)),
            (Value::Object(a), Value::Object(b)) => (a, b),
            _ => return Err(FormatError::schema(ptr, "a schema must be an object or a boolean")),
        };
        let a = self.flatten(a, ptr, depth)?;
        let b = self.flatten(b, ptr, depth)?;
        for side in [&b].into_iter().chain(if node_side { None } else { Some(&a) }) {
            for k in ["unevaluatedProperties", "unevaluatedItems"] {
                if side.get(k).is_some_and(|v| v != &Value::Bool(true)) {
                    return Err(FormatError::unsupported(
                        k,
                        ptr,
                        "inside a subschema combined with other subschemas (allOf/anyOf/oneOf/$ref)",
                    ));
                }
            }
        }
        const ARR: [&str; 4] = ["prefixItems", "items", "additionalItems", "unevaluatedItems"];
        let ak: Vec<&str> = ARR.iter().copied().filter(|k| a.contains_key(*k)).collect();
        let bk: Vec<&str> = ARR.iter().copied().filter(|k| b.contains_key(*k)).collect();
        if !ak.is_empty()
            && !bk.is_empty()
            && (ak != bk || ak.iter().any(|k| a[*k].is_array() || a.contains_key("prefixItems")))
            && ak.iter().any(|k| a.get(*k) != b.get(*k))
        {
            return Err(FormatError::unsupported(
                bk[0],
                ptr,
                "array item keywords (items/prefixItems/additionalItems) from different subschemas cannot be combined",
            ));
        }
        let mut a = a;
        let mut b = b;
        for x in [&mut a, &mut b] {
            if let Some(c) = x.remove("const") {
                let e = match x.remove("enum") {
                    Some(Value::Array(e)) => e.into_iter().filter(|v| v == &c).collect(),
                    _ => vec![c],
                };
                x.insert("enum".into(), Value::Array(e));
            }
        }
        let mut out = Map::new();
        let mut keys: Vec<String> = a.keys().cloned().collect();
        keys.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
        for k in keys {
            if ANNOTATIONS.contains(&k.as_str()) {
                continue;
            }
            // Vendor keywords assert nothing (unless the caller refuses them): two different
            // values need no combining.
            let vendor = k.starts_with("x-")
                || !(SUPPORTED.contains(&k.as_str())
                    || KNOWN_UNSUPPORTED.contains(&k.as_str())
                    || self.opts.refuse_unknown_keywords);
            if vendor && a.get(&k).zip(b.get(&k)).is_some_and(|(x, y)| x != y) {
                self.ignored.push(format!("{k} at {} (not a JSON Schema keyword)", pointer_display(ptr)));
                continue;
            }
            let v = match (a.get(&k), b.get(&k)) {
                (Some(x), None) | (None, Some(x)) => x.clone(),
                (Some(x), Some(y)) if x == y => x.clone(),
                (Some(x), Some(y)) => match k.as_str() {
                    "type" => {
                        let tx = type_set(x);
                        let ty = type_set(y);
                        let mut t: Vec<Value> = Vec::new();
                        for s in &tx {
                            let s2 = if ty.contains(s) {
                                Some(*s)
                            } else if (*s == "integer" && ty.contains(&"number"))
                                || (*s == "number" && ty.contains(&"integer"))
                            {
                                Some("integer")
                            } else {
                                None
                            };
                            if let Some(s2) = s2 {
                                if !t.contains(&Value::from(s2)) {
                                    t.push(Value::from(s2));
                                }
                            }
                        }
                        if t.is_empty() {
                            return Ok(Value::Bool(false));
                        }
                        Value::Array(t)
                    }
                    "nullable" => Value::Bool(x.as_bool() == Some(true) && y.as_bool() == Some(true)),
                    "required" => {
                        let mut r = x.as_array().cloned().unwrap_or_default();
                        for v in y.as_array().cloned().unwrap_or_default() {
                            if !r.contains(&v) {
                                r.push(v);
                            }
                        }
                        Value::Array(r)
                    }
                    "enum" => {
                        let yv = y.as_array().cloned().unwrap_or_default();
                        Value::Array(
                            x.as_array().cloned().unwrap_or_default().into_iter().filter(|v| yv.contains(v)).collect(),
                        )
                    }
                    "minimum" | "minLength" | "minItems" | "minProperties" | "exclusiveMinimum"
                        if x.is_number() && y.is_number() =>
                    {
                        if x.as_f64() >= y.as_f64() {
                            x.clone()
                        } else {
                            y.clone()
                        }
                    }
                    "maximum" | "maxLength" | "maxItems" | "maxProperties" | "exclusiveMaximum"
                        if x.is_number() && y.is_number() =>
                    {
                        if x.as_f64() <= y.as_f64() {
                            x.clone()
                        } else {
                            y.clone()
                        }
                    }
                    "items" | "additionalProperties" | "propertyNames" if !x.is_array() && !y.is_array() => {
                        self.merge(x, y, &join_ptr(ptr, &k), depth + 1, false)?
                    }
                    // not A and not B = not (A or B)
                    "not" => serde_json::json!({ "anyOf": [x, y] }),
                    "uniqueItems" => Value::Bool(x.as_bool() == Some(true) || y.as_bool() == Some(true)),
                    "properties" => {
                        let (Some(px), Some(py)) = (x.as_object(), y.as_object()) else {
                            return Err(FormatError::schema(ptr, "`properties` must be an object"));
                        };
                        let mut p = Map::new();
                        for (n, s) in px {
                            let v = match py.get(n) {
                                Some(s2) => {
                                    self.merge(s, s2, &join_ptr(&join_ptr(ptr, "properties"), n), depth + 1, false)?
                                }
                                None => s.clone(),
                            };
                            p.insert(n.clone(), v);
                        }
                        for (n, s) in py {
                            if !px.contains_key(n) {
                                p.insert(n.clone(), s.clone());
                            }
                        }
                        Value::Object(p)
                    }
                    "anyOf" => {
                        let (Some(ax), Some(ay)) = (x.as_array(), y.as_array()) else {
                            return Err(FormatError::schema(ptr, "`anyOf` must be an array"));
                        };
                        if ax.len() * ay.len() > 64 {
                            return Err(FormatError::unsupported("anyOf", ptr, "combining two large anyOf lists"));
                        }
                        let mut v = Vec::new();
                        for p in ax {
                            for q in ay {
                                v.push(self.merge(p, q, ptr, depth + 1, false)?);
                            }
                        }
                        Value::Array(v)
                    }
                    _ => {
                        return Err(FormatError::unsupported(
                            &k,
                            ptr,
                            format!("cannot combine two different `{k}` values (allOf/$ref merge)"),
                        ))
                    }
                },
                (None, None) => unreachable!(),
            };
            out.insert(k, v);
        }
        // A key matching one side's `patternProperties` is "additional" for the other side, and
        // the merged map cannot say so: undeclared members are then not generated at all.
        for (x, y) in [(&a, &b), (&b, &a)] {
            if x.contains_key("patternProperties")
                && !y.contains_key("patternProperties")
                && y.get("additionalProperties").is_some_and(|v| !is_trivial(v))
            {
                out.insert(NO_UNDECLARED.into(), Value::Bool(true));
            }
        }
        // Declared properties of one side are "additional" for the other.
        for (x, y) in [(&a, &b), (&b, &a)] {
            let xp = x.get("properties").and_then(|v| v.as_object());
            let yp = y.get("properties").and_then(|v| v.as_object());
            if let Some(yp) = yp {
                let extra: Vec<&String> = yp.keys().filter(|n| !xp.is_some_and(|xp| xp.contains_key(*n))).collect();
                if extra.is_empty() {
                    continue;
                }
                if x.contains_key("patternProperties") {
                    return Err(FormatError::unsupported(
                        "patternProperties",
                        ptr,
                        "combined (allOf/$ref) with a schema declaring other properties",
                    ));
                }
                if let Some(addl) = x.get("additionalProperties") {
                    if !is_trivial(addl) {
                        let props = out.get_mut("properties").and_then(|v| v.as_object_mut()).unwrap();
                        for n in extra {
                            let cur = props.get(n).cloned().unwrap_or(Value::Bool(true));
                            let merged = self.merge(&cur, addl, ptr, depth + 1, false)?;
                            props.insert(n.clone(), merged);
                        }
                    }
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// Inlines top-level `$ref` and `allOf` of a schema object for merging.
    fn flatten(&mut self, m: &Map<String, Value>, ptr: &str, depth: u32) -> Result<Map<String, Value>, FormatError> {
        let mut m = m.clone();
        if let Some(r) = m.remove("$ref") {
            let r = r.as_str().ok_or_else(|| FormatError::schema(ptr, "`$ref` must be a string"))?;
            let (t, _) = self.resolve(r, ptr)?;
            let merged = self.merge(&Value::Object(m), t, ptr, depth + 1, true)?;
            return match merged {
                Value::Object(o) => Ok(o),
                Value::Bool(true) => Ok(Map::new()),
                _ => Ok(false_schema()),
            };
        }
        if let Some(all) = m.remove("allOf") {
            let mut acc = Value::Object(m);
            for b in all.as_array().cloned().unwrap_or_default() {
                acc = self.merge(&acc, &b, ptr, depth + 1, true)?;
            }
            return match acc {
                Value::Object(o) => Ok(o),
                Value::Bool(true) => Ok(Map::new()),
                _ => Ok(false_schema()),
            };
        }
        Ok(m)
    }

    /// The schema object with its top-level `$ref`/`allOf` inlined; `None` for boolean schemas.
    pub(super) fn flat_object(&mut self, v: &Value, ptr: &str) -> Result<Option<Map<String, Value>>, FormatError> {
        match v {
            Value::Object(m) => self.flatten(m, ptr, 0).map(Some),
            _ => Ok(None),
        }
    }
}

fn false_schema() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("not".into(), Value::Object(Map::new()));
    m
}
