//! Strings: `minLength`/`maxLength`, `pattern` (bounded where lengths are given), `format`
//! (and `format` beside `pattern` where one implies the other), raw strings.

use serde_json::{Map, Value};

use crate::format::pattern::{self, JSON_CHAR, RAW_JSON_CHAR};
use crate::format::{error::pointer_display, Automaton, FormatError};

use super::bounded_string_bytes;
use super::formats::format_regex;
use super::keywords::DRAFT_FORMATS;
use super::lower::{Gen, R};
use super::node::join_ptr;

impl<'a> Gen<'a> {
    /// Which of a `format` (its regex `format`) and a `pattern` admits only strings the other
    /// admits too, so that it alone expresses both; `None` if neither (or it cannot tell).
    fn format_and_pattern(&self, format: &str, pattern: &str) -> Option<Narrower> {
        // Past this many state pairs the two are called incomparable (a ~0.1 s search at most).
        const MAX_PAIRS: usize = 1 << 14;
        let body = pattern::pattern_body(pattern).ok()?;
        let f = Automaton::from_regex(format, self.limits).ok()?;
        let p = Automaton::from_regex(&body, self.limits).ok()?;
        if f.language_within(&p, MAX_PAIRS)? {
            Some(Narrower::Format)
        } else if p.language_within(&f, MAX_PAIRS)? {
            Some(Narrower::Pattern)
        } else {
            None
        }
    }

    pub(super) fn gen_string(&mut self, m: &Map<String, Value>, ptr: &str) -> R {
        let min = self.get_count(m, "minLength", ptr)?;
        let max = self.narrow_upper(self.get_count(m, "maxLength", ptr)?);
        if let (Some(a), Some(b)) = (min, max) {
            if a > b {
                return Ok(None);
            }
        }
        let pat = match m.get("pattern") {
            None => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "pattern"), "`pattern` must be a string")),
        };
        if let Some(Value::String(f)) = m.get("format") {
            match format_regex(f) {
                Some(fr) => {
                    if let Some(p) = &pat {
                        match self.format_and_pattern(&fr, p) {
                            Some(Narrower::Format) => {}
                            // The pattern alone, as if no format were given.
                            Some(Narrower::Pattern) => return self.gen_string(&without(m, "format"), ptr),
                            None => self.unsupported(
                                "pattern",
                                &join_ptr(ptr, "pattern"),
                                "`pattern` combined with `format` (neither's strings all match the other)",
                            )?,
                        }
                    }
                    if min.is_some() || max.is_some() {
                        let h = regex_syntax::Parser::new().parse(&fr).unwrap();
                        let p = h.properties();
                        let ok = min.is_none_or(|a| p.minimum_len().unwrap_or(0) as u64 >= a)
                            && max.is_none_or(|b| p.maximum_len().is_some_and(|x| x as u64 <= b));
                        if !ok {
                            self.unsupported(
                                "format",
                                &join_ptr(ptr, "format"),
                                "`format` combined with `minLength`/`maxLength`",
                            )?;
                        }
                    }
                    return Ok(Some(format!("\"{fr}\"")));
                }
                None if DRAFT_FORMATS.contains(&f.as_str()) || self.opts.refuse_unknown_keywords => {
                    self.unsupported("format", &join_ptr(ptr, "format"), &format!("unknown format `{f}`"))?;
                }
                // A name no draft defines asserts nothing: validators pass every string, so
                // skipping it never widens (like a keyword of no draft).
                None => self.ignored.push(format!(
                    "format `{f}` at {} (not a format any draft defines)",
                    pointer_display(&join_ptr(ptr, "format"))
                )),
            }
        }
        let (lo, hi) = (min.unwrap_or(0), max);
        let pptr = join_ptr(ptr, "pattern");
        if let Some(p) = pat {
            let body = pattern::pattern_body(&p).map_err(|e| {
                if e.contains("not supported") {
                    FormatError::unsupported("pattern", &pptr, e)
                } else {
                    FormatError::InvalidRegex {
                        message: format!("`pattern` at {}: {e}", pointer_display(&pptr)),
                        position: None,
                    }
                }
            });
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    if self.opts.lenient {
                        self.ignored.push(format!("pattern at {}", pointer_display(&pptr)));
                        return self.plain_string(lo, hi, ptr);
                    }
                    return Err(e);
                }
            };
            if lo == 0 && hi.is_none() {
                return Ok(Some(format!("\"{body}\"")));
            }
            if let Some((plo, phi)) = pattern::anchored_char_len_bounds(&p) {
                if plo as u64 >= lo && hi.is_none_or(|h| phi.is_some_and(|x| x as u64 <= h)) {
                    return Ok(Some(format!("\"{body}\"")));
                }
            }
            if let Some((cls, a, b, s, e)) = pattern::single_class_repetition(&p) {
                let l = (a as u64).max(lo);
                let h = match (s && e, b, hi) {
                    (true, Some(b), Some(h)) => Some((b as u64).min(h)),
                    (true, Some(b), None) => Some(b as u64),
                    (_, _, h) => h,
                };
                if h.is_some_and(|h| h < l) {
                    return Ok(None);
                }
                let l = self.rep(l, "minLength", ptr)?;
                return Ok(Some(match h {
                    Some(h) => format!("\"{cls}{{{l},{}}}\"", self.rep(h, "maxLength", ptr)?),
                    None => format!("\"{cls}{{{l},}}\""),
                }));
            }
            if let Some((body, tail)) = hi.and_then(|h| pattern::bounded_pattern_body(&p, lo, h)) {
                self.estimated_bytes += bounded_string_bytes(tail).saturating_mul(self.copies);
                return Ok(Some(format!("\"{body}\"")));
            }
            self.unsupported(
                "pattern",
                &pptr,
                "`pattern` combined with `minLength`/`maxLength` (only single character-class patterns, or patterns that can be \
                 bounded to `maxLength`, can be combined)",
            )?;
            return Ok(Some(format!("\"{body}\"")));
        }
        self.plain_string(lo, hi, ptr)
    }

    fn plain_string(&mut self, lo: u64, hi: Option<u64>, ptr: &str) -> R {
        let l = self.rep(lo, "minLength", ptr)?;
        let char = if self.opts.raw_strings { RAW_JSON_CHAR } else { JSON_CHAR };
        Ok(Some(match hi {
            None => format!("\"{char}{{{l},}}\""),
            Some(h) => {
                self.estimated_bytes += bounded_string_bytes(h).saturating_mul(self.copies);
                format!("\"{char}{{{l},{}}}\"", self.rep(h, "maxLength", ptr)?)
            }
        }))
    }
}

/// Of two constraints on one string, the one whose strings all satisfy the other.
enum Narrower {
    Format,
    Pattern,
}

/// `m` without keyword `k`.
fn without(m: &Map<String, Value>, k: &str) -> Map<String, Value> {
    let mut m = m.clone();
    m.remove(k);
    m
}
