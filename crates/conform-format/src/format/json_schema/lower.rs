//! The lowering state ([`Gen`]) and its driver, one schema node to one regex: [`Gen::lower`]
//! keeps the depth and work limits; `lower_inner` checks keywords, has conditionals, `not` and
//! dependencies rewritten, follows `$ref` (a call of a network rule when recursive), merges
//! `allOf`, alternates `anyOf`/`oneOf` branches and hands each `type` to its own file. Also the
//! network rules registered while lowering and the size checks every kind shares.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::format::json::any_json_regex;
use crate::format::recursive;
use crate::format::{error::pointer_display, FormatError, Limit, Limits};

use super::keywords::{ANNOTATIONS, CHECKED_ON_VALUES, KNOWN_UNSUPPORTED, SUPPORTED};
use super::node::{contains_ref, is_trivial, join_ptr, ALL_TYPES};
use super::{any_json_bytes, SchemaOptions};

/// The lowering work one schema node costs, in regex bytes (see `Limits::max_lowering_work`):
/// at the default limit, about 130k nodes, three times what the largest JSONSchemaBench schema
/// that compiles lowers.
const NODE_WORK: usize = 128;

pub(super) type R = Result<Option<String>, FormatError>;

/// In split mode, a property value or array item whose regex is longer than this becomes a
/// rule of its own (a call is about 20 bytes of regex).
const SPLIT_MIN_LEN: usize = 64;

/// How a network rule's regex is made.
#[derive(Clone)]
pub(super) enum RuleBody<'a> {
    /// The target of a recursive `$ref` (lowered after the root).
    Ref(String, &'a Value),
    /// An unconstrained ("any JSON") value, calling itself for nested values.
    AnyJson,
    /// A part lowered already (split mode).
    Lowered(String),
}

/// Network rules registered while lowering; rule 0 is the whole output.
pub(super) struct Rules<'a> {
    /// `$ref` pointer, `"any"`, or `"="` + regex → rule index.
    pub(super) index: HashMap<String, usize>,
    pub(super) bodies: Vec<RuleBody<'a>>,
}

pub(super) struct Gen<'a> {
    pub(super) root: &'a Value,
    pub(super) opts: &'a SchemaOptions,
    pub(super) limits: &'a Limits,
    pub(super) ignored: Vec<String>,
    pub(super) ref_counts: HashMap<String, u32>,
    pub(super) depth: u32,
    pub(super) ws: String,
    pub(super) name_cache: HashMap<String, Option<regex_automata::meta::Regex>>,
    /// Container nesting of unconstrained ("any JSON") values.
    pub(super) any_depth: u32,
    /// Upper bound that narrows a `maxLength`/`maxItems` above `max_repetition`.
    pub(super) narrow_cap: u32,
    /// Estimated DFA bytes of the any-JSON values and narrowed strings lowered so far.
    pub(super) estimated_bytes: u64,
    /// Bytes of regex produced so far, over every node lowered (see `Limits::max_lowering_work`).
    pub(super) work: usize,
    /// How many copies of the regex being lowered the DFA will hold (for `estimated_bytes`).
    pub(super) copies: u64,
    /// Rules of the recursive network; a reference back into a `$ref` target that is open
    /// becomes a call of its rule. `None`: recursion is unrolled.
    pub(super) rules: Option<Rules<'a>>,
    /// Long property values and array items become rules too ([`Calls::Split`](super::Calls::Split)).
    pub(super) split: bool,
    /// The network index of rule 0 (the schema's root).
    pub(super) first_rule: usize,
    /// A recursive target could not become a rule (too many, or it admits no value): the
    /// schema is lowered again with recursion unrolled.
    pub(super) rules_overflow: bool,
    /// Some reference became a call.
    pub(super) called: bool,
}

impl<'a> Gen<'a> {
    pub(super) fn check_len(&self, s: &str) -> Result<(), FormatError> {
        if s.len() > self.limits.max_regex_len {
            return Err(FormatError::too_complex(
                format!("the schema expands to a regex of more than {} bytes", self.limits.max_regex_len),
                Limit::MaxRegexLen(self.limits.max_regex_len),
            ));
        }
        Ok(())
    }

    pub(super) fn rep(&self, n: u64, kw: &str, ptr: &str) -> Result<u32, FormatError> {
        if n > self.limits.max_repetition as u64 {
            return Err(FormatError::too_complex(
                format!("`{kw}` = {n} at {} would be unrolled into the automaton", pointer_display(ptr)),
                Limit::MaxRepetition(self.limits.max_repetition),
            ));
        }
        Ok(n as u32)
    }

    /// An upper bound (`maxLength`, `maxItems`) lowered to at most `max_repetition`: longer
    /// strings/arrays are valid but never generated (a narrowing), and the unrolled counter
    /// stays bounded.
    pub(super) fn narrow_upper(&self, n: Option<u64>) -> Option<u64> {
        n.map(|n| if n > self.limits.max_repetition as u64 { n.min(self.narrow_cap as u64) } else { n })
    }

    /// Runs `f` with the DFA-size estimate scaled by `factor` (copies of the lowered regex).
    pub(super) fn with_copies<T>(&mut self, factor: u64, f: impl FnOnce(&mut Self) -> T) -> T {
        self.copies = self.copies.saturating_mul(factor);
        let out = f(self);
        self.copies /= factor;
        out
    }

    pub(super) fn lower(&mut self, s: &Value, ptr: &str) -> R {
        self.depth += 1;
        if self.depth > self.limits.max_schema_depth {
            self.depth -= 1;
            return Err(FormatError::too_complex(
                format!("schema nesting at {} is too deep", pointer_display(ptr)),
                Limit::MaxSchemaDepth(self.limits.max_schema_depth),
            ));
        }
        let r = self.lower_inner(s, ptr);
        self.depth -= 1;
        // Each node lowered costs work too (its map is cloned, merged, checked), also when
        // it yields no regex: a huge schema of many references would otherwise lower for
        // tens of seconds before any regex grows large.
        self.work += NODE_WORK;
        if let Ok(Some(s)) = &r {
            self.check_len(s)?;
            self.work += s.len();
        }
        if r.is_ok() && self.work > self.limits.max_lowering_work {
            return Err(FormatError::too_complex(
                "the schema expands too much while lowering (definitions used many times over)",
                Limit::MaxLoweringWork(self.limits.max_lowering_work),
            ));
        }
        r
    }

    /// The call of the network rule for `key` (registered with `body` on first use), or
    /// `None` when recursion is unrolled.
    fn call_rule(&mut self, key: String, body: impl FnOnce() -> RuleBody<'a>) -> Option<String> {
        let rules = self.rules.as_mut()?;
        let i = *rules.index.entry(key).or_insert_with(|| {
            rules.bodies.push(body());
            rules.bodies.len() - 1
        });
        if self.first_rule + i >= recursive::MAX_RULES {
            self.rules_overflow = true;
            return None;
        }
        self.called = true;
        Some(recursive::call(self.first_rule + i))
    }

    /// Lowers a property value or array item; in split mode a long one becomes a rule.
    pub(super) fn lower_part(&mut self, s: &Value, ptr: &str) -> R {
        match self.lower(s, ptr)? {
            Some(r) if self.split && r.len() > SPLIT_MIN_LEN => {
                Ok(Some(self.call_rule(format!("={r}"), || RuleBody::Lowered(r.clone())).unwrap_or(r)))
            }
            other => Ok(other),
        }
    }

    /// Runs `f` with recursion unrolled: for sub-regexes matched directly (no call bytes).
    pub(super) fn unrolled<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let rules = self.rules.take();
        let out = f(self);
        self.rules = rules;
        out
    }

    fn any(&mut self) -> String {
        if let Some(call) = self.call_rule("any".into(), || RuleBody::AnyJson) {
            return call;
        }
        self.estimated_bytes += any_json_bytes(self.any_depth).saturating_mul(self.copies);
        any_json_regex(self.any_depth, self.opts.whitespace)
    }

    fn lower_inner(&mut self, s: &Value, ptr: &str) -> R {
        let m = match s {
            Value::Bool(true) => return Ok(Some(self.any())),
            Value::Bool(false) => return Ok(None),
            Value::Object(m) => m,
            _ => return Err(FormatError::schema(ptr, "a schema must be an object or a boolean")),
        };
        // `not: {}` (or `not: true`) admits nothing.
        if m.get("not").is_some_and(is_trivial) {
            return Ok(None);
        }
        // Keyword check.
        let mut m = m.clone();
        let finite = m.contains_key("enum") || m.contains_key("const");
        if !finite && m.contains_key("if") {
            self.lower_conditional(&mut m, ptr)?;
        }
        if !finite {
            if let Some(not) = m.get("not").cloned() {
                if self.lower_not(&mut m, &not, &join_ptr(ptr, "not"))? {
                    m.remove("not");
                }
            }
        }
        let keys: Vec<String> = m.keys().cloned().collect();
        for k in keys {
            if finite && CHECKED_ON_VALUES.contains(&k.as_str()) {
                continue; // `gen_enum` checks each value against it (or errors)
            }
            if k.starts_with("x-") || ANNOTATIONS.contains(&k.as_str()) {
                if (k == "$id" || k == "id")
                    && !ptr.is_empty()
                    && m.get(&k).is_some_and(|v| v.is_string())
                    && contains_ref(s)
                {
                    self.unsupported(&k, &join_ptr(ptr, &k), "a nested `$id` changes how `$ref`s resolve")?;
                }
                continue;
            }
            if !SUPPORTED.contains(&k.as_str()) {
                if KNOWN_UNSUPPORTED.contains(&k.as_str()) {
                    self.unsupported(&k, &join_ptr(ptr, &k), "")?;
                } else if !self.opts.refuse_unknown_keywords {
                    self.ignored
                        .push(format!("{k} at {} (not a JSON Schema keyword)", pointer_display(&join_ptr(ptr, &k))));
                } else {
                    // The caller asked: it may be a typo of a constraint ("maxLenght") or a
                    // vendor rule they rely on.
                    self.unsupported(&k, &join_ptr(ptr, &k), "not a keyword this engine knows")?;
                }
                m.remove(&k);
            }
        }
        if !finite {
            self.lower_dependencies(&mut m, ptr)?;
        }
        // $ref
        if let Some(r) = m.get("$ref").cloned() {
            let r = r.as_str().ok_or_else(|| FormatError::schema(ptr, "`$ref` must be a string"))?;
            let (target, tptr) = self.resolve(r, ptr)?;
            let mut siblings = m.clone();
            siblings.remove("$ref");
            let has_assert = siblings.keys().any(|k| !ANNOTATIONS.contains(&k.as_str()) && !k.starts_with("x-"));
            let count = self.ref_counts.get(&tptr).copied().unwrap_or(0);
            // A reference back into an open target, adding nothing: a call to its rule.
            if count >= 1 && !has_assert {
                if let Some(call) = self.call_rule(tptr.clone(), || RuleBody::Ref(tptr.clone(), target)) {
                    return Ok(Some(call));
                }
            }
            if count >= self.limits.recursion_depth {
                return Ok(None);
            }
            self.ref_counts.insert(tptr.clone(), count + 1);
            let res = if has_assert {
                let merged = self.merge(&Value::Object(siblings), target, ptr, 0, true);
                match merged {
                    Ok(v) => self.lower(&v, ptr),
                    Err(e) => Err(e),
                }
            } else {
                self.lower(target, &tptr)
            };
            *self.ref_counts.get_mut(&tptr).unwrap() -= 1;
            return res;
        }
        // allOf
        if let Some(all) = m.remove("allOf") {
            let arr = all
                .as_array()
                .ok_or_else(|| FormatError::schema(&join_ptr(ptr, "allOf"), "`allOf` must be an array"))?;
            let mut acc = Value::Object(m);
            for (i, b) in arr.iter().enumerate() {
                acc = self.merge(&acc, b, &join_ptr(&join_ptr(ptr, "allOf"), &i.to_string()), 0, true)?;
            }
            return self.lower(&acc, ptr);
        }
        // anyOf / oneOf
        for kw in ["anyOf", "oneOf"] {
            if let Some(any) = m.get(kw).cloned() {
                let kptr = join_ptr(ptr, kw);
                let arr =
                    any.as_array().ok_or_else(|| FormatError::schema(&kptr, format!("`{kw}` must be an array")))?;
                let mut base = m.clone();
                base.remove(kw);
                let base = Value::Object(base);
                let mut branches = Vec::new();
                for (i, b) in arr.iter().enumerate() {
                    let bptr = join_ptr(&kptr, &i.to_string());
                    let merged = if is_trivial(&base) { b.clone() } else { self.merge(&base, b, &bptr, 0, true)? };
                    branches.push((merged, bptr));
                }
                if kw == "oneOf" {
                    // Disjointness is judged on the original branches; narrowing only changes
                    // what is generated.
                    let originals: Vec<Value> = branches.iter().map(|b| b.0.clone()).collect();
                    for i in 0..branches.len() {
                        for j in i + 1..branches.len() {
                            if self.disjoint(&originals[i], &originals[j]) {
                                continue;
                            }
                            if !self.separate_by_required(&mut branches, &originals, i, j, &kptr)? {
                                self.unsupported(
                                    "oneOf",
                                    &kptr,
                                    &format!(
                                        "branches {i} and {j} are not provably disjoint (an instance matching both would be invalid); use anyOf"
                                    ),
                                )?;
                            }
                        }
                    }
                }
                let mut alts = Vec::new();
                for (b, bptr) in &branches {
                    // A branch that merged a trivial base keeps its own pointer.
                    if let Some(r) = self.lower(b, bptr)? {
                        if !alts.contains(&r) {
                            alts.push(r);
                        }
                    }
                }
                return Ok(match alts.len() {
                    0 => None,
                    1 => alts.pop(),
                    _ => Some(format!("(?:{})", alts.join("|"))),
                });
            }
        }
        // enum / const
        if m.contains_key("enum") || m.contains_key("const") {
            return self.gen_enum(&m, ptr);
        }
        let types = self.types(&m, ptr)?;
        let mut alts = Vec::new();
        for t in types {
            let r = match t {
                "null" => Some("null".to_string()),
                "boolean" => Some("(?:true|false)".to_string()),
                "integer" => self.gen_number(&m, ptr, true)?,
                "number" => self.gen_number(&m, ptr, false)?,
                "string" => self.gen_string(&m, ptr)?,
                "array" => self.gen_array(&m, ptr)?,
                "object" => self.gen_object(&m, ptr)?,
                _ => unreachable!(),
            };
            if let Some(r) = r {
                alts.push(r);
            }
        }
        Ok(match alts.len() {
            0 => None,
            1 => alts.pop(),
            _ => Some(format!("(?:{})", alts.join("|"))),
        })
    }

    pub(super) fn types(&mut self, m: &Map<String, Value>, ptr: &str) -> Result<Vec<&'static str>, FormatError> {
        let mut out: Vec<&'static str> = Vec::new();
        let norm = |t: &str| -> Option<&'static str> {
            ["null", "boolean", "object", "array", "string", "number", "integer"].into_iter().find(|x| *x == t)
        };
        match m.get("type") {
            None => out.extend(ALL_TYPES),
            Some(Value::String(t)) => out.push(
                norm(t).ok_or_else(|| FormatError::schema(&join_ptr(ptr, "type"), format!("unknown type `{t}`")))?,
            ),
            Some(Value::Array(ts)) => {
                for t in ts {
                    let t = t
                        .as_str()
                        .and_then(norm)
                        .ok_or_else(|| FormatError::schema(&join_ptr(ptr, "type"), format!("invalid type {t}")))?;
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
            Some(_) => {
                return Err(FormatError::schema(
                    &join_ptr(ptr, "type"),
                    "`type` must be a string or an array of strings",
                ))
            }
        }
        if m.get("nullable") == Some(&Value::Bool(true)) && !out.contains(&"null") {
            out.push("null");
        }
        if out.contains(&"number") {
            out.retain(|t| *t != "integer");
        }
        Ok(out)
    }

    pub(super) fn get_count(&self, m: &Map<String, Value>, k: &str, ptr: &str) -> Result<Option<u64>, FormatError> {
        match m.get(k) {
            None => Ok(None),
            Some(v) => {
                if let Some(u) = v.as_u64() {
                    return Ok(Some(u));
                }
                if let Some(f) = v.as_f64() {
                    if f >= 0.0 && f.fract() == 0.0 {
                        return Ok(Some(f as u64));
                    }
                }
                Err(FormatError::schema(&join_ptr(ptr, k), format!("`{k}` must be a non-negative integer")))
            }
        }
    }
}
