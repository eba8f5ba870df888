//! Keywords rewritten into ones the lowering supports before a node is lowered: `if`/`then`/
//! `else` (an `anyOf` of `allOf`s), the simple forms of `not`, and `dependentRequired`/
//! `dependentSchemas`/`dependencies`.

use serde_json::{Map, Value};

use crate::format::FormatError;

use super::keywords::ANNOTATIONS;
use super::lower::Gen;
use super::node::{join_ptr, required_names, type_set, ALL_TYPES};

impl<'a> Gen<'a> {
    /// Rewrites `if`/`then`/`else` as `anyOf: [allOf[if, then], allOf[not if, else]]` (added to
    /// the node's `allOf`). The second branch is kept only when `not if` has a supported form
    /// (see [`Self::lower_not`]); without it only instances satisfying `if` are generated (a
    /// narrowing).
    pub(super) fn lower_conditional(&mut self, m: &mut Map<String, Value>, ptr: &str) -> Result<(), FormatError> {
        let condition = m.remove("if").unwrap_or(Value::Bool(true));
        let then = m.remove("then").unwrap_or(Value::Bool(true));
        let otherwise = m.remove("else").unwrap_or(Value::Bool(true));
        let mut branches = vec![serde_json::json!({ "allOf": [condition.clone(), then] })];
        if self.lower_not(&mut Map::new(), &condition, &join_ptr(ptr, "if"))? {
            branches.push(serde_json::json!({ "allOf": [{ "not": condition }, otherwise] }));
        }
        let all = m.entry("allOf").or_insert_with(|| Value::Array(Vec::new()));
        all.as_array_mut()
            .ok_or_else(|| FormatError::schema(&join_ptr(ptr, "allOf"), "`allOf` must be an array"))?
            .push(serde_json::json!({ "anyOf": branches }));
        Ok(())
    }

    /// Rewrites the simple forms of `not` into keywords the lowering supports; returns false
    /// (changing nothing) for other forms. Supported: `not: {required: [...]}` (objects only,
    /// one of the names never generated), `not: {type: ...}` (type removed from the node's
    /// types), `not` of `anyOf` (each negated) or of an `allOf` of `required`s, and any `not`
    /// whose value kinds are disjoint from the node's `type` (always satisfied).
    pub(super) fn lower_not(
        &mut self,
        m: &mut Map<String, Value>,
        not: &Value,
        ptr: &str,
    ) -> Result<bool, FormatError> {
        let node_types: Vec<&'static str> = match m.get("type") {
            Some(t) => type_set(t),
            None => ALL_TYPES.iter().copied().chain(["integer"]).collect(),
        };
        let kinds = self.value_kinds(not);
        let overlaps = |t: &&str| {
            kinds.iter().any(|k| k == t || (*k == "number" && *t == "integer") || (*k == "integer" && *t == "number"))
        };
        if m.get("nullable") != Some(&Value::Bool(true)) && !node_types.iter().any(overlaps) {
            return Ok(true);
        }
        let not = self.deref(not);
        let Some(n) = not.as_object() else {
            return Ok(false);
        };
        let keys: Vec<&str> = n.keys().map(|k| k.as_str()).filter(|k| !ANNOTATIONS.contains(k)).collect();
        match keys.as_slice() {
            ["required"] => {
                let names = required_names(n);
                let own = required_names(m);
                let Some(name) = names.iter().find(|p| !own.contains(p)) else {
                    return Ok(false);
                };
                // `required` holds for every non-object, so only objects can satisfy `not`.
                let types: Vec<Value> =
                    node_types.iter().filter(|t| **t == "object").map(|t| Value::from(*t)).collect();
                m.insert("type".into(), Value::Array(types));
                m.remove("nullable");
                let props = m.entry("properties").or_insert_with(|| Value::Object(Map::new()));
                let Some(props) = props.as_object_mut() else { return Ok(false) };
                props.insert(name.clone(), Value::Bool(false));
                Ok(true)
            }
            ["type"] => {
                let excluded = type_set(&n["type"]);
                if node_types.contains(&"number") && excluded.contains(&"integer") && !excluded.contains(&"number") {
                    return Ok(false); // non-integral numbers only: not expressible
                }
                let types: Vec<Value> = node_types
                    .iter()
                    .filter(|t| !(excluded.contains(t) || **t == "integer" && excluded.contains(&"number")))
                    .map(|t| Value::from(*t))
                    .collect();
                if excluded.contains(&"null") {
                    m.remove("nullable");
                }
                m.insert("type".into(), Value::Array(types));
                Ok(true)
            }
            ["anyOf"] => {
                let Some(branches) = n["anyOf"].as_array() else { return Ok(false) };
                let mut trial = m.clone();
                for (i, b) in branches.iter().enumerate() {
                    if !self.lower_not(&mut trial, b, &join_ptr(&join_ptr(ptr, "anyOf"), &i.to_string()))? {
                        return Ok(false);
                    }
                }
                *m = trial;
                Ok(true)
            }
            ["allOf"] => {
                // not (required A and required B) = not required (A ∪ B)
                let Some(parts) = n["allOf"].as_array() else { return Ok(false) };
                let mut names = Vec::new();
                for p in parts {
                    let Some(p) = self.deref(p).as_object() else { return Ok(false) };
                    if p.keys().any(|k| k != "required" && !ANNOTATIONS.contains(&k.as_str())) {
                        return Ok(false);
                    }
                    names.extend(required_names(p).into_iter().map(Value::from));
                }
                self.lower_not(m, &serde_json::json!({ "required": names }), ptr)
            }
            _ => Ok(false),
        }
    }

    /// Rewrites `dependentRequired`, `dependentSchemas` and `dependencies` into keywords the
    /// lowering supports: a trigger property that is required brings its dependency along
    /// (more `required`, or the dependent schema added to `allOf`); an optional trigger is never
    /// generated (a narrowing: objects without it satisfy the dependency trivially).
    pub(super) fn lower_dependencies(&mut self, m: &mut Map<String, Value>, ptr: &str) -> Result<(), FormatError> {
        for kw in ["dependentRequired", "dependentSchemas", "dependencies"] {
            let Some(deps) = m.remove(kw) else { continue };
            let kptr = join_ptr(ptr, kw);
            let deps = deps
                .as_object()
                .cloned()
                .ok_or_else(|| FormatError::schema(&kptr, format!("`{kw}` must be an object")))?;
            let required = required_names(m);
            for (trigger, dependency) in deps {
                if !required.contains(&trigger) {
                    let props = m.entry("properties").or_insert_with(|| Value::Object(Map::new()));
                    let props = props.as_object_mut().ok_or_else(|| {
                        FormatError::schema(&join_ptr(ptr, "properties"), "`properties` must be an object")
                    })?;
                    props.insert(trigger, Value::Bool(false));
                    continue;
                }
                match dependency {
                    Value::Array(names) if kw != "dependentSchemas" => {
                        let r = m.entry("required").or_insert_with(|| Value::Array(Vec::new()));
                        let r = r.as_array_mut().ok_or_else(|| {
                            FormatError::schema(&join_ptr(ptr, "required"), "`required` must be an array of strings")
                        })?;
                        for n in names {
                            if !n.is_string() {
                                return Err(FormatError::schema(
                                    &join_ptr(&kptr, &trigger),
                                    "dependencies must be property names",
                                ));
                            }
                            if !r.contains(&n) {
                                r.push(n);
                            }
                        }
                    }
                    schema @ (Value::Object(_) | Value::Bool(_)) if kw != "dependentRequired" => {
                        let all = m.entry("allOf").or_insert_with(|| Value::Array(Vec::new()));
                        all.as_array_mut()
                            .ok_or_else(|| FormatError::schema(&join_ptr(ptr, "allOf"), "`allOf` must be an array"))?
                            .push(schema);
                    }
                    _ => return Err(FormatError::schema(&join_ptr(&kptr, &trigger), format!("invalid `{kw}` value"))),
                }
            }
        }
        Ok(())
    }
}
