//! Whether two schemas share no instance (`oneOf`): the JSON kinds a schema's values can have,
//! disjoint `enum`s, `required` names the other branch forbids; and branches that are not
//! provably disjoint separated by their `required` names.

use serde_json::{Map, Value};

use crate::format::FormatError;

use super::lower::Gen;
use super::node::{enum_values, json_type_of, required_names, type_set, ALL_TYPES};

impl<'a> Gen<'a> {
    pub(super) fn disjoint(&self, a: &Value, b: &Value) -> bool {
        let sa = self.value_kinds(a);
        let sb = self.value_kinds(b);
        if sa.iter().all(|t| {
            !sb.iter().any(|u| t == u || (*t == "integer" && *u == "number") || (*t == "number" && *u == "integer"))
        }) {
            return true;
        }
        let (Some(a), Some(b)) = (self.deref(a).as_object(), self.deref(b).as_object()) else { return false };
        if let (Some(ea), Some(eb)) = (enum_values(a), enum_values(b)) {
            return ea.iter().all(|v| !eb.contains(v));
        }
        // Under the generation policy an object generated from one branch contains all its
        // required properties; if the other branch forbids one of them, they are disjoint.
        let forbids = |m: &Map<String, Value>, p: &str| -> bool {
            m.get("additionalProperties") == Some(&Value::Bool(false))
                && !m.contains_key("patternProperties")
                && !m.get("properties").and_then(|x| x.as_object()).is_some_and(|x| x.contains_key(p))
                || m.get("properties").and_then(|x| x.get(p)) == Some(&Value::Bool(false))
        };
        let only_obj = |m: &Map<String, Value>| {
            m.get("type").is_some_and(|t| type_set(t) == ["object"]) && m.get("nullable") != Some(&Value::Bool(true))
        };
        for (x, y) in [(a, b), (b, a)] {
            if only_obj(x) {
                if let Some(Value::Array(r)) = x.get("required") {
                    if r.iter().filter_map(|p| p.as_str()).any(|p| forbids(y, p)) {
                        return true;
                    }
                }
            }
        }
        let req = |m: &Map<String, Value>| -> Vec<String> {
            m.get("required")
                .and_then(|v| v.as_array())
                .map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        let (ra, rb) = (req(a), req(b));
        for p in ra.iter().filter(|p| rb.contains(p)) {
            let pa = a.get("properties").and_then(|v| v.get(p)).map(|v| self.deref(v));
            let pb = b.get("properties").and_then(|v| v.get(p)).map(|v| self.deref(v));
            if let (Some(Value::Object(pa)), Some(Value::Object(pb))) = (pa, pb) {
                if let (Some(ea), Some(eb)) = (enum_values(pa), enum_values(pb)) {
                    if ea.iter().all(|v| !eb.contains(v)) {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Makes `oneOf` branches `i` and `j` exclusive by narrowing what each generates: branch
    /// `i` never emits one property that `j` requires (and vice versa), so an object generated
    /// from one lacks a required property of the other. Sound only when at least one of the
    /// two accepts objects alone (a non-object satisfies `required` trivially). Returns false
    /// (changing nothing) when that is impossible.
    pub(super) fn separate_by_required(
        &mut self,
        branches: &mut [(Value, String)],
        originals: &[Value],
        i: usize,
        j: usize,
        ptr: &str,
    ) -> Result<bool, FormatError> {
        let (Some(x), Some(y)) = (self.flat_object(&originals[i], ptr)?, self.flat_object(&originals[j], ptr)?) else {
            return Ok(false);
        };
        if !(objects_only(&x) || objects_only(&y)) {
            return Ok(false);
        }
        let (rx, ry) = (required_names(&x), required_names(&y));
        let (Some(only_x), Some(only_y)) = (rx.iter().find(|p| !ry.contains(p)), ry.iter().find(|p| !rx.contains(p)))
        else {
            return Ok(false);
        };
        for (k, forbidden) in [(i, only_y), (j, only_x)] {
            let Some(mut flat) = self.flat_object(&branches[k].0, ptr)? else { return Ok(false) };
            let props = flat.entry("properties").or_insert_with(|| Value::Object(Map::new()));
            let Some(props) = props.as_object_mut() else { return Ok(false) };
            props.insert(forbidden.clone(), Value::Bool(false));
            branches[k].0 = Value::Object(flat);
        }
        Ok(true)
    }

    /// Types an instance of this schema can have (over-approximation).
    pub(super) fn value_kinds(&self, v: &Value) -> Vec<&'static str> {
        // Subschemas looked at per question: branches of recursive definitions multiply.
        let mut budget = 256;
        self.kinds_within(v, &mut budget)
    }

    /// The JSON kinds an instance of `v` can have: its `type` (all kinds without one), narrowed
    /// by the kinds of its `anyOf`/`oneOf` branches (their union) and of its `allOf` members.
    fn kinds_within(&self, v: &Value, budget: &mut u32) -> Vec<&'static str> {
        let all = || ALL_TYPES.iter().copied().chain(["integer"]).collect::<Vec<_>>();
        let v = self.deref(v);
        let Some(m) = v.as_object() else {
            return if v == &Value::Bool(false) { vec![] } else { all() };
        };
        if let Some(e) = enum_values(m) {
            let mut t: Vec<&'static str> = e.iter().map(json_type_of).collect();
            t.dedup();
            return t;
        }
        // Not beside `$ref` (draft-07 and older ignore the siblings of `$ref`).
        if m.contains_key("$ref") || *budget == 0 {
            return all();
        }
        *budget -= 1;
        let mut t = match m.get("type") {
            Some(t) => type_set(t),
            None => all(),
        };
        if m.contains_key("type") && m.get("nullable") == Some(&Value::Bool(true)) {
            t.push("null");
        }
        for kw in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = m.get(kw) {
                let mut union: Vec<&'static str> = Vec::new();
                for b in branches {
                    for k in self.kinds_within(b, budget) {
                        if !union.contains(&k) {
                            union.push(k);
                        }
                    }
                }
                t = kinds_in_both(&t, &union);
            }
        }
        if let Some(Value::Array(members)) = m.get("allOf") {
            for b in members {
                t = kinds_in_both(&t, &self.kinds_within(b, budget));
            }
        }
        t
    }
}

/// The kinds in both lists, where `number` includes `integer`.
fn kinds_in_both(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for &k in a {
        let kept = if b.contains(&k) {
            Some(k)
        } else if (k == "number" && b.contains(&"integer")) || (k == "integer" && b.contains(&"number")) {
            Some("integer")
        } else {
            None
        };
        if let Some(k) = kept.filter(|k| !out.contains(k)) {
            out.push(k);
        }
    }
    out
}

/// Whether every instance of the schema is an object.
fn objects_only(m: &Map<String, Value>) -> bool {
    m.get("type").is_some_and(|t| type_set(t) == ["object"]) && m.get("nullable") != Some(&Value::Bool(true))
}
