//! "Any JSON value" and "any JSON object" as regexes.
//!
//! Compiled, they are recursive networks nesting up to `limits.max_nesting` levels. As plain
//! regexes (inside formats that cannot call, e.g. tool-call arguments), container nesting is
//! unrolled `limits.recursion_depth` levels. Deeper values are not generated: a narrowing
//! (every output is valid JSON), never a widening.

use super::json_schema::Whitespace;
use super::number::NUMBER;
use super::pattern::JSON_CHAR;
use super::recursive;
use super::{Compiled, FormatError, Limits};

pub(crate) fn string_regex() -> String {
    format!("\"{JSON_CHAR}*\"")
}

pub fn ws_regex(ws: Whitespace) -> String {
    match ws {
        Whitespace::Compact => String::new(),
        Whitespace::Flexible { max: 0 } => String::new(),
        Whitespace::Flexible { max } => format!("[ \\t\\n]{{0,{max}}}"),
        Whitespace::Natural { indent } => format!("(?: |\\n[ \\t]{{0,{indent}}})?"),
    }
}

/// Escapes the raw control characters that [`SchemaOptions::raw_strings`] lets a string hold,
/// turning the model's text into JSON piece by piece (a stream may split anywhere). Text that
/// is already JSON passes through unchanged.
///
/// [`SchemaOptions::raw_strings`]: super::SchemaOptions::raw_strings
#[derive(Debug, Default, Clone)]
pub struct RawStringEscaper {
    in_string: bool,
    /// The previous character was the backslash of an escape inside a string.
    escaping: bool,
}

impl RawStringEscaper {
    pub fn push(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                _ if self.escaping => {
                    self.escaping = false;
                    out.push(c);
                }
                '\\' if self.in_string => {
                    self.escaping = true;
                    out.push(c);
                }
                '"' => {
                    self.in_string = !self.in_string;
                    out.push(c);
                }
                '\n' if self.in_string => out.push_str("\\n"),
                '\t' if self.in_string => out.push_str("\\t"),
                '\r' if self.in_string => out.push_str("\\r"),
                c if self.in_string && (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }

    /// A whole text at once.
    pub fn escape(text: &str) -> String {
        RawStringEscaper::default().push(text)
    }
}

/// Any JSON value with at most `depth` levels of nested containers below the top one.
pub fn any_json_regex(depth: u32, ws: Whitespace) -> String {
    let w = ws_regex(ws);
    let mut v = format!("(?:{}|\\[{w}\\]|\\{{{w}\\}})", scalar_regex());
    for _ in 0..depth {
        v = any_json_level(&v, ws);
    }
    v
}

fn scalar_regex() -> String {
    format!("null|true|false|{NUMBER}|{}", string_regex())
}

/// One JSON value whose array items and member values match `v`.
pub(crate) fn any_json_level(v: &str, ws: Whitespace) -> String {
    let w = ws_regex(ws);
    format!("(?:{}|\\[{w}(?:{v}(?:{w},{w}{v})*)?{w}\\]|{})", scalar_regex(), object_regex(v, ws))
}

/// A JSON object whose member values match `v`.
fn object_regex(v: &str, ws: Whitespace) -> String {
    let w = ws_regex(ws);
    let s = string_regex();
    format!("\\{{{w}(?:{s}{w}:{w}{v}(?:{w},{w}{s}{w}:{w}{v})*)?{w}\\}}")
}

/// Any JSON object whose values nest at most `depth` levels.
pub fn json_object_regex(depth: u32, ws: Whitespace) -> String {
    object_regex(&any_json_regex(depth.saturating_sub(1), ws), ws)
}

/// Compiles "any JSON value", nesting up to `limits.max_nesting` levels (a recursive network:
/// one rule, a value whose items and members call it again).
pub fn compile_any_json(ws: Whitespace, limits: &Limits) -> Result<Compiled, FormatError> {
    let value = any_json_level(&recursive::call(0), ws);
    Ok(Compiled::Recursive(recursive::compile_network(&[&value], limits)?))
}

/// Compiles "any JSON object" (OpenAI `response_format: json_object`), nesting up to
/// `limits.max_nesting` levels, the object included.
pub fn compile_json_object(ws: Whitespace, limits: &Limits) -> Result<Compiled, FormatError> {
    let object = object_regex(&recursive::call(1), ws);
    let value = any_json_level(&recursive::call(1), ws);
    Ok(Compiled::Recursive(recursive::compile_network(&[&object, &value], limits)?))
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
        for bad in ["01", "[1,]", "{\"a\"}", "\"\n\"", "nul", "{'a':1}"] {
            assert!(!a.accepts(bad.as_bytes()), "{bad}");
        }
        // Values nest up to `max_nesting` levels, the top one and the innermost scalar included.
        let n = Limits::default().max_nesting as usize - 1;
        assert!(a.accepts(format!("{}1{}", "[".repeat(n), "]".repeat(n)).as_bytes()));
        assert!(!a.accepts(format!("{}1{}", "[".repeat(n + 1), "]".repeat(n + 1)).as_bytes()));
        let unrolled =
            crate::format::Automaton::from_regex(&any_json_regex(3, Whitespace::Compact), &Limits::default()).unwrap();
        assert!(unrolled.accepts(b"[[[1]]]"));
        assert!(!unrolled.accepts(b"[[[[1]]]]"));
        let o = compile_json_object(Whitespace::Flexible { max: 2 }, &Limits::default()).unwrap();
        assert!(o.accepts(b"{ \"a\" : [1, 2] }"));
        assert!(!o.accepts(b"[1]"));
        assert!(o.accepts(b"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":[]}}}}}"));
    }

    #[test]
    fn raw_strings_are_escaped_into_json_piece_by_piece() {
        let raw = "{\"why\": \"a\n\tb \\\"q\\\" \\n\",\n  \"n\": [\"x\\\\\", 1]}";
        let json = RawStringEscaper::escape(raw);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["why"], "a\n\tb \"q\" \n");
        assert_eq!(value["n"][0], "x\\");
        // Newlines between tokens stay as they are; JSON passes through unchanged.
        assert!(json.contains(",\n  \"n\""), "{json}");
        assert_eq!(RawStringEscaper::escape(&json), json);
        // Split anywhere, even between a backslash and what it escapes.
        for cut in 0..raw.len() {
            if raw.is_char_boundary(cut) {
                let mut escaper = RawStringEscaper::default();
                let (a, b) = raw.split_at(cut);
                assert_eq!(escaper.push(a) + &escaper.push(b), json, "cut at {cut}");
            }
        }
    }
}
