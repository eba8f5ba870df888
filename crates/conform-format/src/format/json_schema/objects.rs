//! Objects: declared members in `properties` order, `required`, `patternProperties` and
//! `propertyNames` applied to declared names, undeclared members (maps, explicit
//! `additionalProperties`, pattern keys), `minProperties`/`maxProperties`.

use serde_json::{Map, Value};

use crate::format::pattern;
use crate::format::{error::pointer_display, FormatError, Limit};

use super::keywords::NO_UNDECLARED;
use super::lower::{Gen, R};
use super::node::{join_ptr, required_names};

impl<'a> Gen<'a> {
    fn name_ok(&mut self, schema: &Value, ptr: &str, name: &str) -> Result<bool, FormatError> {
        let key = format!("{ptr}\u{0}{}", serde_json::to_string(schema).unwrap());
        if !self.name_cache.contains_key(&key) {
            let r = self.unrolled(|g| g.lower(schema, ptr))?;
            let re = match r {
                None => None,
                Some(r) => Some(regex_automata::meta::Regex::new(&format!("^(?:{r})$")).map_err(|e| {
                    FormatError::too_complex(
                        format!("property name check at {}: {e}", pointer_display(ptr)),
                        Limit::RegexBuild,
                    )
                })?),
            };
            self.name_cache.insert(key.clone(), re);
        }
        Ok(match &self.name_cache[&key] {
            None => false,
            Some(re) => re.is_match(serde_json::to_string(name).unwrap().as_str()),
        })
    }

    /// The members in order, each optional one skippable: the regex (empty when there are
    /// none) and whether it may match nothing at all (no member required).
    fn members_in_order(&self, members: &[(String, bool)], sep: &str) -> Result<(String, bool), FormatError> {
        let mut acc: Option<String> = None;
        let mut empty_ok = true;
        for (mr, req) in members {
            acc = Some(match (acc.take(), empty_ok, req) {
                (Some(a), true, true) => format!("(?:{a}{sep})?{mr}"),
                (Some(a), false, true) => format!("{a}{sep}{mr}"),
                (Some(a), true, false) => format!("(?:{a}(?:{sep}{mr})?|{mr})"),
                (Some(a), false, false) => format!("{a}(?:{sep}{mr})?"),
                (None, _, _) => mr.clone(),
            });
            if *req {
                empty_ok = false;
            }
            self.check_len(acc.as_ref().unwrap())?;
        }
        Ok((acc.unwrap_or_default(), empty_ok))
    }

    /// One member the object does not declare (`"key": value`), or `None` when the policy
    /// generates none. Generated: in a map (an object declaring no property and requiring none)
    /// any key its `propertyNames` allow, valued by `additionalProperties`; after declared
    /// members, keys spelling no declared name when `additionalProperties` is given explicitly
    /// (`true` or a schema); keys matching a `patternProperties` pattern that no declared name
    /// matches, valued by every pattern's schema at once. Never with `unevaluatedProperties`
    /// or when a merge could not describe them (`NO_UNDECLARED`). Other keys a schema allows
    /// are not generated (the model is not invited to invent keys).
    fn undeclared_member(
        &mut self,
        m: &Map<String, Value>,
        names: &[String],
        pattern_props: &[(String, Value)],
        ptr: &str,
    ) -> R {
        if m.contains_key("unevaluatedProperties") || m.contains_key(NO_UNDECLARED) {
            return Ok(None);
        }
        let w = self.ws.clone();
        let a_map = required_names(m).is_empty()
            && m.get("properties")
                .and_then(|p| p.as_object())
                .is_none_or(|p| p.values().all(|v| v == &Value::Bool(false)));
        let names_ptr = join_ptr(ptr, "propertyNames");
        // A key of string schema `key` that `propertyNames` allows; `None` if none.
        let key_for = |g: &mut Self, key: Value| -> R {
            let key = match m.get("propertyNames") {
                Some(pn) => g.merge(&key, pn, &names_ptr, 0, false)?,
                None => key,
            };
            g.unrolled(|g| g.lower(&key, &names_ptr))
        };
        // What the engine cannot generate here (an unsupported keyword in a value schema, a
        // limit) only means no undeclared members: a narrowing, never an error.
        let skip_unsupported = |r: R| match r {
            Err(FormatError::UnsupportedKeyword { .. } | FormatError::TooComplex { .. }) => Ok(None),
            r => r,
        };
        if !pattern_props.is_empty() {
            let all = pattern_props.iter().try_fold(Value::Bool(true), |acc, (pat, ps)| {
                self.merge(&acc, ps, &join_ptr(&join_ptr(ptr, "patternProperties"), pat), 0, false)
            });
            let Ok(all) = all else { return Ok(None) };
            let mut keys = Vec::new();
            for (pat, _) in pattern_props {
                // A pattern this engine cannot hold a key to only means no such keys are generated.
                let Ok(re) = pattern::search_regex(pat) else { continue };
                if names.iter().any(|n| re.is_match(n)) {
                    continue;
                }
                if let Ok(Some(k)) = key_for(self, serde_json::json!({"type": "string", "pattern": pat})) {
                    keys.push(k);
                }
            }
            if keys.is_empty() {
                return Ok(None);
            }
            let v = skip_unsupported(self.lower_part(&all, &join_ptr(ptr, "patternProperties")))?;
            Ok(v.map(|v| format!("(?:{}){w}:{w}{v}", keys.join("|"))))
        } else if a_map || m.get("additionalProperties").is_some() {
            let addl = m.get("additionalProperties").cloned().unwrap_or(Value::Bool(true));
            let key = if names.is_empty() {
                skip_unsupported(key_for(self, serde_json::json!({"type": "string"})))?
            } else if m.contains_key("propertyNames") {
                None // keys that are both allowed and undeclared: not worth a product here
            } else {
                Some(key_except(names))
            };
            let Some(k) = key else { return Ok(None) };
            let v = skip_unsupported(self.lower_part(&addl, &join_ptr(ptr, "additionalProperties")))?;
            Ok(v.map(|v| format!("{k}{w}:{w}{v}")))
        } else {
            Ok(None)
        }
    }

    pub(super) fn gen_object(&mut self, m: &Map<String, Value>, ptr: &str) -> R {
        let w = self.ws.clone();
        let props = match m.get("properties") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "properties"), "`properties` must be an object")),
        };
        let required: Vec<String> = match m.get("required") {
            None => vec![],
            Some(Value::Array(r)) => r
                .iter()
                .map(|v| {
                    v.as_str().map(String::from).ok_or_else(|| {
                        FormatError::schema(&join_ptr(ptr, "required"), "`required` must be an array of strings")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(FormatError::schema(&join_ptr(ptr, "required"), "`required` must be an array of strings"))
            }
        };
        let pattern_props: Vec<(String, Value)> = match m.get("patternProperties") {
            None => vec![],
            Some(Value::Object(p)) => p.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(_) => {
                return Err(FormatError::schema(
                    &join_ptr(ptr, "patternProperties"),
                    "`patternProperties` must be an object",
                ))
            }
        };
        let addl = m.get("additionalProperties").cloned().unwrap_or(Value::Bool(true));
        // Members: declared properties in order, then required-but-undeclared ones.
        let mut members: Vec<(String, Value, String)> =
            props.iter().map(|(k, v)| (k.clone(), v.clone(), join_ptr(&join_ptr(ptr, "properties"), k))).collect();
        for r in &required {
            if !props.contains_key(r) {
                members.push((r.clone(), Value::Bool(true), join_ptr(ptr, "required")));
            }
        }
        let mut out: Vec<(String, bool)> = Vec::new();
        for (name, schema, sptr) in members {
            let is_req = required.contains(&name);
            let mut schema = schema;
            let mut matched_pattern = false;
            for (pat, ps) in &pattern_props {
                let pp = join_ptr(&join_ptr(ptr, "patternProperties"), pat);
                let re = pattern::search_regex(pat).map_err(|e| match e {
                    pattern::PatternError::Unsupported(e) => FormatError::unsupported("patternProperties", &pp, e),
                    pattern::PatternError::Invalid(e) => FormatError::InvalidRegex {
                        message: format!("patternProperties at {}: {e}", pointer_display(&pp)),
                        position: None,
                    },
                })?;
                if re.is_match(&name) {
                    matched_pattern = true;
                    schema = self.merge(&schema, ps, &pp, 0, false)?;
                }
            }
            if !props.contains_key(&name) && !matched_pattern {
                schema = self.merge(&schema, &addl, &join_ptr(ptr, "additionalProperties"), 0, false)?;
            }
            if let Some(pn) = m.get("propertyNames") {
                if !self.name_ok(&pn.clone(), &join_ptr(ptr, "propertyNames"), &name)? {
                    schema = Value::Bool(false);
                }
            }
            match self.lower_part(&schema, &sptr)? {
                Some(v) => {
                    let key = regex_syntax::escape(&serde_json::to_string(&name).unwrap());
                    out.push((format!("{key}{w}:{w}{v}"), is_req));
                }
                None if is_req => return Ok(None),
                None => {}
            }
        }
        let nreq = out.iter().filter(|x| x.1).count() as u64;
        let minp = self.get_count(m, "minProperties", ptr)?.unwrap_or(0);
        let maxp = self.get_count(m, "maxProperties", ptr)?;
        let sep = format!("{w},{w}");
        let n = out.len() as u64;
        let names: Vec<String> = props.keys().chain(&required).cloned().collect();
        let counted = m.contains_key("minProperties") || m.contains_key("maxProperties");
        let undeclared =
            if counted && !out.is_empty() { None } else { self.undeclared_member(m, &names, &pattern_props, ptr)? };
        if let Some(x) = undeclared {
            let tail = format!("(?:{sep}{x})*");
            let body = if out.is_empty() {
                // Only undeclared members (a map): as many as the counts allow.
                let max = match maxp {
                    Some(n) => Some(self.rep(n, "maxProperties", ptr)? as u64),
                    None => None,
                };
                if max.is_some_and(|x| x < minp) {
                    return Ok(None);
                }
                let more = |lo: u64| match max {
                    None if lo == 0 => tail.clone(),
                    None => format!("(?:{sep}{x}){{{lo},}}"),
                    Some(hi) => format!("(?:{sep}{x}){{{lo},{}}}", hi.saturating_sub(1)),
                };
                self.rep(minp, "minProperties", ptr)?;
                match (minp, max) {
                    (_, Some(0)) => String::new(),
                    (0, _) => format!("(?:{x}{})?", more(0)),
                    (lo, _) => format!("{x}{}", more(lo - 1)),
                }
            } else {
                let (first, empty_ok) = self.members_in_order(&out, &sep)?;
                if empty_ok {
                    format!("(?:{first}{tail}|{x}{tail})?")
                } else {
                    format!("{first}{tail}")
                }
            };
            self.check_len(&body)?;
            return Ok(Some(format!("\\{{{w}{body}{w}\\}}")));
        }
        if minp > n || maxp.is_some_and(|x| x < nreq || x < minp) {
            return Ok(None);
        }
        let body = if minp <= nreq && maxp.is_none_or(|x| x >= n) {
            match self.members_in_order(&out, &sep)? {
                (a, _) if a.is_empty() => a,
                (a, true) => format!("(?:{a})?"),
                (a, false) => a,
            }
        } else {
            // Counted selection: sel[c] = non-empty selections (so far) with c members.
            let maxc = maxp.unwrap_or(n).min(n) as usize;
            self.rep(maxc as u64, "maxProperties", ptr)?;
            let mut sel: Vec<Option<String>> = vec![None; maxc + 1];
            let mut empty_ok = true;
            for (mr, req) in &out {
                let mut next: Vec<Option<String>> = vec![None; maxc + 1];
                for c in 1..=maxc {
                    let mut alts = Vec::new();
                    if !req {
                        if let Some(s) = &sel[c] {
                            alts.push(s.clone());
                        }
                    }
                    if c >= 2 {
                        if let Some(s) = &sel[c - 1] {
                            alts.push(format!("{s}{sep}{mr}"));
                        }
                    }
                    if c == 1 && empty_ok {
                        alts.push(mr.clone());
                    }
                    next[c] = match alts.len() {
                        0 => None,
                        1 => alts.pop(),
                        _ => Some(format!("(?:{})", alts.join("|"))),
                    };
                    if let Some(s) = &next[c] {
                        self.check_len(s)?;
                    }
                }
                if *req {
                    empty_ok = false;
                }
                sel = next;
            }
            let mut alts: Vec<String> = (minp.max(1) as usize..=maxc).filter_map(|c| sel[c].clone()).collect();
            let allow_empty = empty_ok && minp == 0;
            if alts.is_empty() && !allow_empty {
                return Ok(None);
            }
            let a = format!("(?:{})", std::mem::take(&mut alts).join("|"));
            if allow_empty {
                if a == "(?:)" {
                    String::new()
                } else {
                    format!("{a}?")
                }
            } else {
                a
            }
        };
        Ok(Some(format!("\\{{{w}{body}{w}\\}}")))
    }
}

/// A JSON string (quotes included) of unescaped characters that spells none of `names`: the
/// key of an undeclared member, which must not repeat a declared one under another schema (with
/// escapes left out, no other spelling of a declared name gets through either).
fn key_except(names: &[String]) -> String {
    const CHAR: &str = r#"[^"\\\x00-\x1F]"#;
    #[derive(Default)]
    struct Node {
        children: std::collections::BTreeMap<char, Node>,
        end: bool,
    }
    // Written into one buffer: objects with many names call this once per lowering.
    fn body(node: &Node, out: &mut String) {
        out.push_str("(?:");
        if node.children.is_empty() {
            out.push_str(CHAR);
        } else {
            out.push('[');
            out.push_str(CHAR);
            out.push_str("--[");
            for c in node.children.keys() {
                regex_syntax::escape_into(c.encode_utf8(&mut [0; 4]), out);
            }
            out.push_str("]]");
        }
        out.push_str(CHAR);
        out.push('*');
        for (c, child) in &node.children {
            out.push('|');
            regex_syntax::escape_into(c.encode_utf8(&mut [0; 4]), out);
            body(child, out);
        }
        out.push(')');
        if !node.end {
            out.push('?');
        }
    }
    let mut root = Node::default();
    for name in names.iter().filter(|n| !n.chars().any(|c| c == '"' || c == '\\' || c < ' ')) {
        let mut node = &mut root;
        for c in name.chars() {
            node = node.children.entry(c).or_default();
        }
        node.end = true;
    }
    let mut out = String::from("\"");
    body(&root, &mut out);
    out.push('"');
    out
}
