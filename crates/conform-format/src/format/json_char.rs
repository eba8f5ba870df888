//! The JSON string character, parsed once. [`JSON_CHAR`] (and [`RAW_JSON_CHAR`]) is most of
//! the text a JSON Schema lowers to: once per string value, three quarters of a median
//! schema's regex. Parsing it anew at each use was a fifth of a median compile, so before a
//! regex is parsed each use in plain context is swapped for a marker, and after it the
//! marker is swapped back for the character's syntax tree, parsed once per thread.
//!
//! A marker is a named capture group, `(?P<json_char_0_7>a)` for the 7th use of `MARKED[0]`:
//! the lowering writes no names, names must differ, and it matches one character, so a
//! repetition of it is kept as written (one of an empty match would be cut to `{0,1}`).

use regex_syntax::hir::{Capture, Hir, HirKind, Repetition};

use super::pattern::{JSON_CHAR, RAW_JSON_CHAR};

const MARKED: [&str; 2] = [JSON_CHAR, RAW_JSON_CHAR];

/// What every marker's name starts with.
const NAME: &str = "json_char_";

/// `pattern` with each use of a marked character in plain context (not escaped, outside
/// classes, under no flags) replaced by its marker; `None` when there is none, or when
/// `pattern` may write a marker's name itself or sets `x` (where whitespace and `#` change
/// meaning).
pub fn mark(pattern: &str) -> Option<String> {
    if !MARKED.iter().any(|text| pattern.contains(text)) || pattern.contains(NAME) {
        return None;
    }
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len());
    // Per open group: whether it (or a bare flag group inside it) sets flags.
    let mut groups: Vec<bool> = vec![false];
    let (mut class_depth, mut class_opened_at, mut i, mut copied, mut marked) = (0usize, usize::MAX, 0, 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1, // the rest of an escape holds no `[`, `]`, `(` or `)`
            b'[' => {
                class_depth += 1;
                class_opened_at = if bytes.get(i + 1) == Some(&b'^') { i + 1 } else { i };
            }
            b']' if class_depth > 0 && class_opened_at + 1 != i => class_depth -= 1,
            _ if class_depth > 0 => {}
            // every marked text is a group: `(?:…)`
            b'(' if !groups.iter().any(|&f| f) && MARKED.iter().any(|text| pattern[i..].starts_with(text)) => {
                let which = MARKED.iter().position(|text| pattern[i..].starts_with(text))?;
                out.push_str(&pattern[copied..i]);
                out.push_str(&format!("(?P<{NAME}{which}_{marked}>a)"));
                i += MARKED[which].len();
                copied = i;
                marked += 1;
                continue;
            }
            b'(' if bytes.get(i + 1) == Some(&b'?') => {
                let flags_end = i + 2 + bytes[i + 2..].iter().position(|b| !(b.is_ascii_alphabetic() || *b == b'-'))?;
                let flags = &pattern[i + 2..flags_end];
                if flags.contains('x') {
                    return None;
                }
                let set = !flags.is_empty() && !flags.starts_with('P');
                match bytes.get(flags_end) {
                    Some(b')') => *groups.last_mut()? |= set,
                    _ => groups.push(set),
                }
                i = flags_end; // past the flags: a bare flag group's `)` closes no group
            }
            b'(' => groups.push(false),
            b')' => {
                groups.pop();
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&pattern[copied.min(pattern.len())..]);
    (marked > 0).then_some(out)
}

/// `hir` with each marker replaced by the character it stands for.
pub fn unmark(hir: Hir) -> Hir {
    if hir.properties().explicit_captures_len() == 0 {
        return hir;
    }
    match hir.into_kind() {
        HirKind::Capture(Capture { name: Some(name), .. }) if name.starts_with(NAME) => {
            parsed(name[NAME.len()..].starts_with('1') as usize)
        }
        HirKind::Capture(mut c) => {
            c.sub = Box::new(unmark(*c.sub));
            Hir::capture(c)
        }
        HirKind::Repetition(r) => Hir::repetition(Repetition { sub: Box::new(unmark(*r.sub)), ..r }),
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(unmark).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(unmark).collect()),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => unreachable!("holds no group"),
    }
}

/// The syntax tree of `MARKED[i]`.
fn parsed(i: usize) -> Hir {
    thread_local! {
        static PARSED: [Hir; 2] = MARKED.map(|text| regex_syntax::parse(text).expect("a fixed, valid regex"));
    }
    PARSED.with(|p| p[i].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hir(p: &str) -> Hir {
        regex_syntax::ParserBuilder::new().utf8(false).build().parse(p).unwrap()
    }

    #[test]
    fn marked_regexes_parse_to_the_same_language() {
        let cases = [
            format!(r#""{JSON_CHAR}{{0,8}}""#),
            format!(r#"\{{"a":"{JSON_CHAR}*"(?:,"b":"{RAW_JSON_CHAR}+")?\}}|(?-u:\xC0\x01){JSON_CHAR}"#),
            format!("(?:x|{JSON_CHAR})+{JSON_CHAR}"),
        ];
        for p in &cases {
            let marked = mark(p).expect("has uses in plain context");
            assert!(!marked.contains(JSON_CHAR), "{marked}");
            assert_eq!(unmark(hir(&marked)), hir(p), "{p}");
        }
    }

    #[test]
    fn uses_that_are_not_plain_are_left_alone() {
        for p in [
            format!(r"\{JSON_CHAR}"),                   // escaped: `\(` then `?:…`
            format!("[a{JSON_CHAR}]"),                  // inside a class
            format!("[]{JSON_CHAR}]"),                  // `]` first in a class is a literal
            format!("(?i:{JSON_CHAR})"),                // under a flag
            format!("(?i){JSON_CHAR}"),                 // under a bare flag
            format!("(?P<json_char_0_0>a){JSON_CHAR}"), // writes a marker's name itself
            format!("(?x){JSON_CHAR}"),
        ] {
            match mark(&p) {
                None => {}
                Some(m) => assert!(m.contains(JSON_CHAR), "{p} -> {m}"),
            }
        }
        // After a flag group closes, plain context resumes.
        let after = format!("(?i:a){JSON_CHAR}");
        assert_eq!(unmark(hir(&mark(&after).unwrap())), hir(&after));
    }
}
