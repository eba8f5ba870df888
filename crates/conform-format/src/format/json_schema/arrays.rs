//! Arrays: `items`, `prefixItems`, draft-07 tuple `items` + `additionalItems`,
//! `minItems`/`maxItems`, `uniqueItems` (arrays of at most one item).

use serde_json::{Map, Value};

use crate::format::FormatError;

use super::lower::{Gen, R};
use super::node::join_ptr;

impl<'a> Gen<'a> {
    pub(super) fn gen_array(&mut self, m: &Map<String, Value>, ptr: &str) -> R {
        if let Some(v) = m.get("contains") {
            let _ = v;
        }
        let w = self.ws.clone();
        let sep = format!("{w},{w}");
        let min = self.get_count(m, "minItems", ptr)?.unwrap_or(0);
        let mut max = self.narrow_upper(self.get_count(m, "maxItems", ptr)?);
        let max_from_kw = max;
        match m.get("uniqueItems") {
            // Arrays of at most one item are trivially unique (a narrowing).
            Some(Value::Bool(true)) if min <= 1 => max = Some(max.map_or(1, |x| x.min(1))),
            Some(Value::Bool(true)) => {
                self.unsupported(
                    "uniqueItems",
                    &join_ptr(ptr, "uniqueItems"),
                    "`uniqueItems: true` is only supported with `minItems` <= 1 (only arrays of at most one item are generated)",
                )?;
            }
            _ => {}
        }
        let (prefix, prefix_ptr, rest, rest_ptr): (Vec<Value>, String, Value, String) =
            match (m.get("prefixItems"), m.get("items")) {
                (Some(Value::Array(p)), items) => (
                    p.clone(),
                    join_ptr(ptr, "prefixItems"),
                    items.cloned().or_else(|| m.get("unevaluatedItems").cloned()).unwrap_or(Value::Bool(true)),
                    join_ptr(ptr, if items.is_some() { "items" } else { "unevaluatedItems" }),
                ),
                (Some(_), _) => {
                    return Err(FormatError::schema(&join_ptr(ptr, "prefixItems"), "`prefixItems` must be an array"))
                }
                (None, Some(Value::Array(p))) => (
                    p.clone(),
                    join_ptr(ptr, "items"),
                    m.get("additionalItems")
                        .or_else(|| m.get("unevaluatedItems"))
                        .cloned()
                        .unwrap_or(Value::Bool(true)),
                    join_ptr(ptr, "additionalItems"),
                ),
                (None, Some(i)) => (vec![], String::new(), i.clone(), join_ptr(ptr, "items")),
                (None, None) => (
                    vec![],
                    String::new(),
                    m.get("unevaluatedItems").cloned().unwrap_or(Value::Bool(true)),
                    join_ptr(ptr, "unevaluatedItems"),
                ),
            };
        let mut pre = Vec::new();
        for (i, p) in prefix.iter().enumerate() {
            match self.lower_part(p, &join_ptr(&prefix_ptr, &i.to_string()))? {
                Some(r) => pre.push(r),
                None => {
                    max = Some(max.map_or(i as u64, |x| x.min(i as u64)));
                    break;
                }
            }
        }
        let k = pre.len() as u64;
        let need_rest = max.is_none_or(|x| x > k);
        // The repeated item appears twice in the regex (first item, then `,item`), and the DFA
        // keeps both copies.
        let r = if need_rest { self.with_copies(2, |g| g.lower_part(&rest, &rest_ptr))? } else { None };
        if r.is_none() {
            max = Some(max.map_or(k, |x| x.min(k)));
        }
        if max.is_some_and(|x| x < min) {
            return Ok(None);
        }
        self.rep(min, "minItems", ptr)?;
        if let (Some(x), Some(kw)) = (max, max_from_kw) {
            if x == kw {
                self.rep(x, "maxItems", ptr)?;
            }
        }
        let quant = |lo: u64, hi: Option<u64>| match hi {
            Some(h) if h == lo => format!("{{{lo}}}"),
            Some(h) => format!("{{{lo},{h}}}"),
            None => format!("{{{lo},}}"),
        };
        let elems: String = if k == 0 {
            match (&r, max) {
                (None, _) | (_, Some(0)) => String::new(),
                (Some(r), _) => {
                    let lo = min.max(1) - 1;
                    let hi = max.map(|x| x - 1);
                    let tail = if hi == Some(0) { String::new() } else { format!("(?:{sep}{r}){}", quant(lo, hi)) };
                    let e = format!("{r}{tail}");
                    if min == 0 {
                        format!("(?:{e})?")
                    } else {
                        e
                    }
                }
            }
        } else {
            let upto = max.map_or(k, |x| x.min(k)) as usize;
            let tail = match &r {
                Some(r) if max.is_none_or(|x| x > k) => {
                    let lo = min.saturating_sub(k);
                    format!("(?:{sep}{r}){}", quant(lo, max.map(|x| x - k)))
                }
                _ => String::new(),
            };
            let mut cur = tail;
            for i in (0..upto).rev() {
                let s = if i > 0 { sep.as_str() } else { "" };
                let next = if cur.is_empty() {
                    String::new()
                } else if (i as u64 + 1) >= min {
                    format!("(?:{cur})?")
                } else {
                    cur
                };
                cur = format!("{s}{}{next}", pre[i]);
                self.check_len(&cur)?;
            }
            if min == 0 {
                format!("(?:{cur})?")
            } else {
                cur
            }
        };
        Ok(Some(format!("\\[{w}{elems}{w}\\]")))
    }
}
