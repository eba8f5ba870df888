//! Numbers and integers: `minimum`/`maximum` and the exclusive bounds (also draft-04
//! booleans), `multipleOf` (1, or small integer multiples).

use serde_json::{Map, Value};

use crate::format::number::{integer_regex, number_regex, Bounds};
use crate::format::FormatError;

use super::lower::{Gen, R};
use super::node::join_ptr;

impl<'a> Gen<'a> {
    fn bounds(&self, m: &Map<String, Value>, ptr: &str) -> Result<Bounds, FormatError> {
        let num = |k: &str| -> Result<Option<f64>, FormatError> {
            match m.get(k) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(Value::Bool(_)) if k.starts_with("exclusive") => Ok(None),
                Some(_) => Err(FormatError::schema(&join_ptr(ptr, k), format!("`{k}` must be a number"))),
            }
        };
        let mut b = Bounds::default();
        let tighter_lo = |cur: Option<(f64, bool)>, new: (f64, bool)| match cur {
            None => Some(new),
            Some(c) => Some(if new.0 > c.0 || (new.0 == c.0 && new.1) { new } else { c }),
        };
        let tighter_hi = |cur: Option<(f64, bool)>, new: (f64, bool)| match cur {
            None => Some(new),
            Some(c) => Some(if new.0 < c.0 || (new.0 == c.0 && new.1) { new } else { c }),
        };
        let ex_min_bool = m.get("exclusiveMinimum") == Some(&Value::Bool(true));
        let ex_max_bool = m.get("exclusiveMaximum") == Some(&Value::Bool(true));
        if let Some(v) = num("minimum")? {
            b.lo = tighter_lo(b.lo, (v, ex_min_bool));
        }
        if let Some(v) = num("maximum")? {
            b.hi = tighter_hi(b.hi, (v, ex_max_bool));
        }
        if let Some(v) = num("exclusiveMinimum")? {
            b.lo = tighter_lo(b.lo, (v, true));
        }
        if let Some(v) = num("exclusiveMaximum")? {
            b.hi = tighter_hi(b.hi, (v, true));
        }
        Ok(b)
    }

    pub(super) fn gen_number(&mut self, m: &Map<String, Value>, ptr: &str, integer: bool) -> R {
        let b = self.bounds(m, ptr)?;
        let mut integer = integer;
        if let Some(mo) = m.get("multipleOf") {
            match mo.as_f64() {
                Some(1.0) => integer = true,
                Some(f) if f > 0.0 && integer && f.fract() == 0.0 && f <= 1e15 => {
                    return self.gen_multiple(&b, f as i64, ptr);
                }
                Some(f) if f > 0.0 => {
                    self.unsupported(
                        "multipleOf",
                        &join_ptr(ptr, "multipleOf"),
                        "only `multipleOf: 1`, or small integer multipleOf on integers, is supported",
                    )?;
                }
                _ => {
                    return Err(FormatError::schema(
                        &join_ptr(ptr, "multipleOf"),
                        "`multipleOf` must be a positive number",
                    ))
                }
            }
        }
        Ok(if integer { integer_regex(&b) } else { number_regex(&b) })
    }

    /// Integer multiples of `k`: enumerated when the bounded range holds few of them.
    fn gen_multiple(&mut self, b: &Bounds, k: i64, ptr: &str) -> R {
        let (lo, hi) = b.int_interval(crate::format::number::INT_CAP);
        if b.lo.is_some() && b.hi.is_some() && lo <= hi {
            let first = lo.div_euclid(k) * k + if lo.rem_euclid(k) == 0 { 0 } else { k };
            let count = if first > hi { 0 } else { (hi - first) / k + 1 };
            if count <= 256 {
                let alts: Vec<String> = (0..count).map(|i| (first + i * k).to_string()).collect();
                return Ok(if alts.is_empty() { None } else { Some(format!("(?:{})", alts.join("|"))) });
            }
        }
        if b.is_empty() {
            let r = match k {
                2 => Some("(?:0|-?[2468]|-?[1-9][0-9]{0,13}[02468])"),
                5 => Some("(?:0|-?5|-?[1-9][0-9]{0,13}[05])"),
                10 => Some("(?:0|-?[1-9][0-9]{0,13}0)"),
                _ => None,
            };
            if let Some(r) = r {
                return Ok(Some(r.to_string()));
            }
        }
        self.unsupported(
            "multipleOf",
            &join_ptr(ptr, "multipleOf"),
            "multipleOf on a wide or unbounded integer range is not supported",
        )?;
        Ok(integer_regex(b))
    }
}
