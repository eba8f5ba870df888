//! "Any JSON value" and "any JSON object" as regexes.
//!
//! A regex cannot recurse, so container nesting is bounded by `limits.recursion_depth`:
//! deeper values are not generated. This is a narrowing (every output is valid JSON), never a
//! widening.

use super::json_schema::Whitespace;
use super::number::NUMBER;
use super::pattern::JSON_CHAR;
use super::{Automaton, FormatError, Limits};

pub(crate) fn string_regex() -> String {
    format!("\"{JSON_CHAR}*\"")
}

pub(crate) fn ws_regex(ws: Whitespace) -> String {
    match ws {
        Whitespace::Compact => String::new(),
        Whitespace::Flexible { max: 0 } => String::new(),
        Whitespace::Flexible { max } => format!("[ \\t\\n]{{0,{max}}}"),
    }
}

/// Any JSON value with at most `depth` levels of nested containers below the top one.
pub fn any_json_regex(depth: u32, ws: Whitespace) -> String {
    let w = ws_regex(ws);
    let s = string_regex();
    let scalar = format!("null|true|false|{NUMBER}|{s}");
    let mut v = format!("(?:{scalar}|\\[{w}\\]|\\{{{w}\\}})");
    for _ in 0..depth {
        v = format!(
            "(?:{scalar}|\\[{w}(?:{v}(?:{w},{w}{v})*)?{w}\\]|\\{{{w}(?:{s}{w}:{w}{v}(?:{w},{w}{s}{w}:{w}{v})*)?{w}\\}})"
        );
    }
    v
}

/// Any JSON object whose values nest at most `depth` levels.
pub fn json_object_regex(depth: u32, ws: Whitespace) -> String {
    let w = ws_regex(ws);
    let s = string_regex();
    let v = any_json_regex(depth.saturating_sub(1), ws);
    format!("\\{{{w}(?:{s}{w}:{w}{v}(?:{w},{w}{s}{w}:{w}{v})*)?{w}\\}}")
}

/// Compiles "any JSON value" (`recursion_depth` levels of nesting).
pub fn compile_any_json(ws: Whitespace, limits: &Limits) -> Result<Automaton, FormatError> {
    Automaton::from_regex(&any_json_regex(limits.recursion_depth, ws), limits)
}

/// Compiles "any JSON object" (OpenAI `response_format: json_object`).
pub fn compile_json_object(ws: Whitespace, limits: &Limits) -> Result<Automaton, FormatError> {
    Automaton::from_regex(&json_object_regex(limits.recursion_depth, ws), limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_json() {
        let a = compile_any_json(Whitespace::Compact, &Limits::default()).unwrap();
        for ok in ["1", "-0.5e3", "\"a\\\"b\"", "[1,[2,{\"x\":null}]]", "{}", "[]", "true"] {
            assert!(a.accepts(ok.as_bytes()), "{ok}");
        }
        for bad in ["01", "[1,]", "{\"a\"}", "\"\n\"", "[[[[[1]]]]]", "nul", "{'a':1}"] {
            assert!(!a.accepts(bad.as_bytes()), "{bad}");
        }
        let o = compile_json_object(Whitespace::Flexible { max: 2 }, &Limits::default()).unwrap();
        assert!(o.accepts(b"{ \"a\" : [1, 2] }"));
        assert!(!o.accepts(b"[1]"));
        assert_eq!(o.forced_bytes(o.start()), b"{".to_vec());
    }
}
