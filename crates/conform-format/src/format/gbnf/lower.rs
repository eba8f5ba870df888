//! Grammar rules lowered to regexes: the whole grammar to one regex with recursion unrolled
//! `limits.recursion_depth` deep ([`grammar_regex`]), or, for the recursive network, each
//! recursive rule's body with its references to recursive rules as calls. Bounded by the
//! regex nesting limit, `limits.max_repetition` and `limits.max_regex_len`.

use crate::format::automaton::MAX_REGEX_NESTING;
use crate::format::grammar::{Expr, Grammar};
use crate::format::recursive;
use crate::format::{FormatError, Limit, Limits};

/// A regex for the grammar's language, recursive rules unrolled `limits.recursion_depth` deep.
pub fn grammar_regex(g: &Grammar, limits: &Limits) -> Result<String, FormatError> {
    let mut lower = Lower { g, limits, active: vec![0; g.rules.len()], calls: vec![None; g.rules.len()], depth: 0 };
    let mut out = String::new();
    lower.expr(&Expr::Ref(g.root), &mut out)?;
    Ok(out)
}

pub(super) struct Lower<'a> {
    pub(super) g: &'a Grammar,
    pub(super) limits: &'a Limits,
    /// How many times each rule is open on the current expansion path.
    pub(super) active: Vec<u32>,
    /// The network rule that a reference to each grammar rule calls (`None`: inlined).
    pub(super) calls: Vec<Option<usize>>,
    /// How many `expr` calls are open: inlining a chain of rules nests one call per reference,
    /// so this bounds the native stack (a 5,000-rule chain overflowed it).
    pub(super) depth: u32,
}

/// Matches nothing: the branch past the recursion bound.
const NOTHING: &str = r"[^\x00-\x{10FFFF}]";

impl Lower<'_> {
    pub(super) fn expr(&mut self, e: &Expr, out: &mut String) -> Result<(), FormatError> {
        if self.depth >= MAX_REGEX_NESTING {
            return Err(FormatError::too_complex(
                format!("rule references and groups nest more than {MAX_REGEX_NESTING} deep"),
                Limit::GrammarNesting(MAX_REGEX_NESTING),
            ));
        }
        self.depth += 1;
        let result = self.lower(e, out);
        self.depth -= 1;
        result
    }

    fn lower(&mut self, e: &Expr, out: &mut String) -> Result<(), FormatError> {
        match e {
            Expr::Literal(s) => out.push_str(&format!("(?:{})", regex_syntax::escape(s))),
            Expr::Class { ranges, negated } => {
                if ranges.is_empty() {
                    // `.` / `[^]`: any character, newline included.
                    out.push_str(if *negated { r"[\x00-\x{10FFFF}]" } else { NOTHING });
                } else {
                    out.push('[');
                    if *negated {
                        out.push('^');
                    }
                    for &(lo, hi) in ranges {
                        out.push_str(&format!(r"\x{{{:X}}}-\x{{{:X}}}", lo as u32, hi as u32));
                    }
                    out.push(']');
                }
            }
            Expr::Ref(r) => {
                if let Some(rule) = self.calls[*r] {
                    out.push_str(&recursive::call(rule));
                } else if self.active[*r] > self.limits.recursion_depth {
                    out.push_str(NOTHING);
                } else {
                    self.active[*r] += 1;
                    let body = &self.g.rules[*r].body;
                    let result = self.expr(body, out);
                    self.active[*r] -= 1;
                    result?;
                }
            }
            Expr::Seq(items) => {
                out.push_str("(?:");
                for i in items {
                    self.expr(i, out)?;
                }
                out.push(')');
            }
            Expr::Alt(alts) => {
                out.push_str("(?:");
                for (k, a) in alts.iter().enumerate() {
                    if k > 0 {
                        out.push('|');
                    }
                    self.expr(a, out)?;
                }
                out.push(')');
            }
            Expr::Repeat { expr, min, max } => {
                let cap = self.limits.max_repetition;
                if *min > cap || max.is_some_and(|m| m > cap) {
                    return Err(FormatError::too_complex(
                        format!("repetition {{{min},{}}}", max.map(|m| m.to_string()).unwrap_or_default()),
                        Limit::MaxRepetition(cap),
                    ));
                }
                out.push_str("(?:");
                self.expr(expr, out)?;
                out.push(')');
                match max {
                    Some(m) => out.push_str(&format!("{{{min},{m}}}")),
                    None => out.push_str(&format!("{{{min},}}")),
                }
            }
        }
        // Every byte of lowering work is output, so the regex length bounds it.
        if out.len() > self.limits.max_regex_len {
            return Err(FormatError::too_complex(
                "the grammar expands to too large an automaton (recursive rules are unrolled)",
                Limit::MaxRegexLen(self.limits.max_regex_len),
            ));
        }
        Ok(())
    }
}
