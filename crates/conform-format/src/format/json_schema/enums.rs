//! `enum`/`const` nodes: an alternation of the values the rest of the node admits (proven by
//! [`validate`], or matched against the regex the rest lowers to).

use serde_json::{Map, Value};

use crate::format::validate::validate;
use crate::format::{error::pointer_display, FormatError, Limit};

use super::keywords::ANNOTATIONS;
use super::lower::{Gen, R};
use super::node::{join_ptr, json_type_of};

impl<'a> Gen<'a> {
    pub(super) fn gen_enum(&mut self, m: &Map<String, Value>, ptr: &str) -> R {
        let mut vals: Vec<Value> = match m.get("enum") {
            Some(Value::Array(e)) => e.clone(),
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "enum"), "`enum` must be an array")),
            None => vec![m["const"].clone()],
        };
        if let (Some(c), true) = (m.get("const"), m.contains_key("enum")) {
            vals.retain(|v| v == c);
        }
        let mut rest = m.clone();
        rest.remove("enum");
        rest.remove("const");
        let has_other = rest
            .keys()
            .any(|k| !ANNOTATIONS.contains(&k.as_str()) && !k.starts_with("x-") && k != "type" && k != "nullable");
        if has_other {
            // Keep the values the validator proves valid; drop those it proves invalid.
            let node = Value::Object(m.clone());
            let mut unknown = Vec::new();
            vals.retain(|v| match validate(v, &node, self.root) {
                Some(ok) => ok,
                None => {
                    unknown.push(v.clone());
                    false
                }
            });
            if !unknown.is_empty() {
                vals.extend(self.enum_values_matching_regex(rest, unknown, ptr)?);
            }
        } else {
            let types = self.types(m, ptr)?;
            vals.retain(|v| {
                let t = json_type_of(v);
                types.contains(&t) || (t == "integer" && types.contains(&"number"))
            });
        }
        self.enum_regex(&vals)
    }

    /// The values (of an `enum`) that match the regex `rest` lowers to. Errors when `rest` has
    /// keywords that cannot be lowered.
    fn enum_values_matching_regex(
        &mut self,
        rest: Map<String, Value>,
        mut vals: Vec<Value>,
        ptr: &str,
    ) -> Result<Vec<Value>, FormatError> {
        {
            let r = self.unrolled(|g| g.lower(&Value::Object(rest), ptr))?;
            let Some(r) = r else { return Ok(Vec::new()) };
            let re = regex_automata::meta::Regex::new(&format!("^(?:{r})$")).map_err(|e| {
                FormatError::too_complex(
                    format!("checking enum values at {}: {e}", pointer_display(ptr)),
                    Limit::RegexBuild,
                )
            })?;
            vals.retain(|v| re.is_match(serde_json::to_string(v).unwrap().as_str()));
        }
        Ok(vals)
    }

    /// An alternation of the given JSON values.
    fn enum_regex(&self, vals: &[Value]) -> R {
        let mut alts: Vec<String> = Vec::new();
        for v in vals {
            alts.push(regex_syntax::escape(&serde_json::to_string(v).unwrap()));
            // An integral float like `2.0` may also be written `2`.
            if let Value::Number(n) = v {
                if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) {
                    alts.push(format!("{}", n.as_f64().unwrap() as i64));
                }
            }
        }
        alts.dedup();
        Ok(match alts.len() {
            0 => None,
            1 => alts.pop(),
            _ => Some(format!("(?:{})", alts.join("|"))),
        })
    }
}
