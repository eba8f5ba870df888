//! GBNF (llama.cpp's grammar format) parsed into a [`Grammar`](super::grammar::Grammar) and
//! lowered to a regex.
//!
//! Supported: `name ::= ...` rules (the start rule is `root`), `|` alternation, `( )` groups,
//! `"literals"` and `[character classes]` (ranges, `^` negation) with `\n \r \t \\ \" \] \-
//! \xHH \uHHHH \UHHHHHHHH` escapes, `.` (any character), `? * +` and `{m}`, `{m,}`, `{m,n}`
//! repetition, `#` comments; rules may continue over several lines. Errors carry the line and
//! column.
//!
//! Recursion: each recursive rule becomes a rule of a [`Recursive`](super::Recursive) automaton
//! (non-recursive rules are inlined), so nesting goes `limits.max_nesting` levels deep; past
//! that, and for grammars with more recursive rules than call codes (where recursion is
//! unrolled `limits.recursion_depth` levels), deeper nesting is simply not generated (a
//! narrowing, never a widening). Left recursion is an error.
//!
//! Files:
//! * `mod.rs`: the entry point [`compile_gbnf`]: one DFA, or a [`Recursive`](super::Recursive)
//!   network with a rule per recursive grammar rule;
//! * `parse.rs`: the GBNF parser ([`parse_gbnf`]): rules, alternatives, atoms, repetition,
//!   escapes, errors with their line and column;
//! * `recursion.rs`: the rule graph's recursion: which rules are recursive (Tarjan's strongly
//!   connected components), and left recursion refused (through nullable rules);
//! * `lower.rs`: grammar rules lowered to regexes ([`grammar_regex`], and the rule regexes of
//!   the recursive network), with the nesting, repetition and size limits;
//! * `tests.rs`: unit tests (syntax, escapes, recursion, errors, the shipped grammars).

mod lower;
mod parse;
mod recursion;
#[cfg(test)]
mod tests;

pub use lower::grammar_regex;
pub use parse::parse_gbnf;

use super::recursive;
use super::{Automaton, Compiled, FormatError, Limit, Limits};
use lower::Lower;
use recursion::recursive_rules;

/// Parses `text` and compiles it into an automaton: a DFA when no rule is recursive, else a
/// [`Recursive`](super::Recursive) network with one rule DFA per recursive rule (nesting up to
/// `limits.max_nesting`). Past [`recursive::MAX_RULES`] recursive rules, recursion is unrolled
/// `limits.recursion_depth` levels instead.
pub fn compile_gbnf(text: &str, limits: &Limits) -> Result<Compiled, FormatError> {
    if text.len() > limits.max_regex_len {
        return Err(FormatError::too_complex(
            format!("grammar is {} bytes long", text.len()),
            Limit::MaxRegexLen(limits.max_regex_len),
        ));
    }
    let grammar = parse_gbnf(text)?;
    let recursive = recursive_rules(&grammar);
    if recursive.is_empty() || recursive.len() + 1 > recursive::MAX_RULES {
        let regex = grammar_regex(&grammar, limits)?;
        return Ok(Compiled::Dfa(Automaton::from_regex(&regex, limits)?));
    }
    // Network rule 0 is the whole output: the root's body when the root is recursive itself
    // (so that it does not spend a nesting level on a frame that only calls it).
    let mut order = vec![grammar.root];
    order.extend(recursive.iter().filter(|&&r| r != grammar.root));
    let mut calls = vec![None; grammar.rules.len()];
    for (i, &r) in order.iter().enumerate() {
        if recursive.contains(&r) {
            calls[r] = Some(i);
        }
    }
    let mut lower = Lower { g: &grammar, limits, active: vec![0; grammar.rules.len()], calls, depth: 0 };
    let mut regexes = Vec::new();
    for &r in &order {
        let mut out = String::new();
        lower.expr(&grammar.rules[r].body, &mut out)?;
        regexes.push(out);
    }
    let regexes: Vec<&str> = regexes.iter().map(String::as_str).collect();
    Ok(Compiled::Recursive(recursive::compile_network(&regexes, limits)?))
}
