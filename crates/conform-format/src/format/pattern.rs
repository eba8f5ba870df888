//! ECMA-262 (JSON Schema `pattern`) → regex over the *JSON-encoded body* of a string.
//!
//! JSON Schema patterns are unanchored ECMA regexes evaluated on the decoded string, while the
//! automaton steps over the encoded JSON text. The translation:
//! 1. rewrites ECMA-only syntax into Rust `regex` syntax with the same (or a narrower) meaning
//!    (`\d`/`\w` are ASCII, `\s` is ECMA's exact set, `.` excludes ECMA line terminators,
//!    literal `{`, `[` inside classes...), rejecting look-around, `\b` and back-references;
//! 2. parses it (Unicode on) and re-emits every character as its canonical JSON encoding
//!    (`"` → `\"`, `\` → `\\`, control characters → `\n` / `\u001f`...); only the canonical
//!    encoding is allowed, which is a narrowing;
//! 3. adds `CHAR*` on an unanchored side.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// One JSON string character in encoded form (raw char or escape; one decoded code point).
/// Surrogate `\u` escapes are excluded so that each match counts exactly one character.
pub const JSON_CHAR: &str = r#"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt]|\\u(?:[0-9A-Ca-c][0-9A-Fa-f]{3}|[Dd][0-7][0-9A-Fa-f]{2}|[EFef][0-9A-Fa-f]{3}))"#;

/// [`JSON_CHAR`], or a raw tab or newline: a string in the model's own surface, which
/// [`super::json::RawStringEscaper`] turns into JSON on the way out (one character either way).
pub const RAW_JSON_CHAR: &str = r#"(?:[^"\\\x00-\x08\x0B-\x1F]|\\["\\/bfnrt]|\\u(?:[0-9A-Ca-c][0-9A-Fa-f]{3}|[Dd][0-7][0-9A-Fa-f]{2}|[EFef][0-9A-Fa-f]{3}))"#;

const ECMA_SPACE: &str =
    r"\t\n\x0B\x0C\r \xA0\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

/// Why an ECMA pattern has no [`search_regex`].
#[derive(Debug)]
pub enum PatternError {
    /// A construct [`ecma_to_rust`] does not translate.
    Unsupported(String),
    /// The translation does not compile.
    Invalid(String),
}

/// An ECMA `pattern` as a search regex (matches anywhere, as JSON Schema means it), compiled
/// once per thread: a schema tests the same patterns against many names and values, and a
/// definition used many times over would otherwise build its DFAs each time.
pub fn search_regex(p: &str) -> Result<regex_automata::meta::Regex, PatternError> {
    use std::{cell::RefCell, collections::HashMap};
    thread_local! {
        static BUILT: RefCell<HashMap<String, regex_automata::meta::Regex>> = RefCell::new(HashMap::new());
    }
    if let Some(re) = BUILT.with(|b| b.borrow().get(p).cloned()) {
        return Ok(re);
    }
    let rust = ecma_to_rust(p).map_err(PatternError::Unsupported)?;
    let re = regex_automata::meta::Regex::new(&rust).map_err(|e| PatternError::Invalid(e.to_string()))?;
    BUILT.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() >= 1024 {
            b.clear(); // bounded: a long-lived server thread sees many schemas
        }
        b.insert(p.to_string(), re.clone());
    });
    Ok(re)
}

/// Rewrites an ECMA regex into equivalent Rust regex syntax. Err = human message.
pub fn ecma_to_rust(p: &str) -> Result<String, String> {
    translate(p, false)
}

/// Whitespace every common validator counts as `\s`: ECMA-262's set, Python's `re` (no
/// U+FEFF) and the `jsonschema` crate's (only these) agree on it.
const AGREED_SPACE: &str = r"\t\n\x0B\x0C\r \xA0\x{2003}\x{2029}";
/// Everything any of them counts as `\s`: ECMA-262's set, plus Python's U+001C-U+001F and U+0085.
const ANY_SPACE: &str =
    r"\t\n\x0B\x0C\r \xA0\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}\x1C-\x1F\x{85}";

/// [`ecma_to_rust`], or (`generating`) narrowed where validators disagree: `\s` generates
/// only whitespace all of them accept, `\S` only characters none of them calls whitespace
/// (the other way round inside a negated class), so that generated text passes each.
fn translate(p: &str, generating: bool) -> Result<String, String> {
    let c: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 16);
    let mut i = 0;
    let mut in_class = false;
    let mut negated = false;
    let (narrow, wide) = if generating { (AGREED_SPACE, ANY_SPACE) } else { (ECMA_SPACE, ECMA_SPACE) };
    while i < c.len() {
        let ch = c[i];
        if ch == '\\' {
            let Some(&n) = c.get(i + 1) else { return Err("pattern ends with a lone backslash".into()) };
            i += 2;
            match n {
                'd' => out.push_str("[0-9]"),
                'D' => out.push_str("[^0-9]"),
                'w' => out.push_str("[A-Za-z0-9_]"),
                'W' => out.push_str("[^A-Za-z0-9_]"),
                's' => {
                    out.push('[');
                    out.push_str(if negated { wide } else { narrow });
                    out.push(']')
                }
                'S' => {
                    out.push_str("[^");
                    out.push_str(if negated { narrow } else { wide });
                    out.push(']')
                }
                'b' if in_class => out.push_str(r"\x08"),
                'b' | 'B' => return Err("word boundary assertions (\\b, \\B) are not supported in patterns".into()),
                '1'..='9' => return Err("back-references are not supported in patterns".into()),
                'k' => return Err("named back-references are not supported in patterns".into()),
                '0' => out.push_str(r"\x00"),
                'c' => {
                    let Some(&l) = c.get(i) else { return Err("incomplete \\c escape".into()) };
                    if !l.is_ascii_alphabetic() {
                        return Err("invalid \\c escape".into());
                    }
                    i += 1;
                    out.push_str(&format!(r"\x{:02X}", (l as u32) % 32));
                }
                'u' if c.get(i) == Some(&'{') => {
                    out.push_str(r"\u");
                }
                'x' | 'u' | 'n' | 'r' | 't' | 'f' | 'v' | 'p' | 'P' => {
                    out.push('\\');
                    out.push(n)
                }
                n if n.is_ascii_alphanumeric() => return Err(format!("unknown escape \\{n}")),
                n if n.is_ascii() => {
                    if regex_syntax::is_meta_character(n) {
                        out.push('\\');
                    }
                    out.push(n);
                }
                n => out.push(n),
            }
            continue;
        }
        if in_class {
            match ch {
                ']' => {
                    in_class = false;
                    negated = false;
                    out.push(']')
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(ch)
                }
                '-' if c.get(i + 1) == Some(&'-') => out.push_str(r"\-"),
                _ => out.push(ch),
            }
            i += 1;
            continue;
        }
        match ch {
            '[' => {
                if c.get(i + 1) == Some(&'^') && c.get(i + 2) == Some(&']') {
                    out.push_str("(?s:.)");
                    i += 3;
                    continue;
                }
                if c.get(i + 1) == Some(&']') {
                    out.push_str(r"[^\x00-\x{10FFFF}]");
                    i += 2;
                    continue;
                }
                in_class = true;
                out.push('[');
                i += 1;
                if c.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                    negated = true;
                }
                continue;
            }
            '.' => out.push_str(r"[^\n\r\x{2028}\x{2029}]"),
            '(' => {
                if c.get(i + 1) == Some(&'?') {
                    let rest: String = c[i + 2..].iter().take(2).collect();
                    if rest.starts_with('=') || rest.starts_with('!') || rest == "<=" || rest == "<!" {
                        return Err("look-around assertions are not supported in patterns".into());
                    }
                    if !(rest.starts_with(':') || rest.starts_with('<')) {
                        return Err("unsupported group syntax in pattern".into());
                    }
                }
                out.push('(');
            }
            '{' => {
                // A quantifier only if it has the ECMA shape {n}, {n,}, {n,m}.
                let mut j = i + 1;
                let mut digits = 0;
                while j < c.len() && c[j].is_ascii_digit() {
                    j += 1;
                    digits += 1;
                }
                let mut ok = digits > 0;
                if ok && c.get(j) == Some(&',') {
                    j += 1;
                    while j < c.len() && c[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                ok = ok && c.get(j) == Some(&'}');
                if ok {
                    out.extend(&c[i..=j]);
                    i = j + 1;
                    continue;
                }
                out.push_str(r"\{");
            }
            '}' => out.push_str(r"\}"),
            ' ' | '#' => {
                out.push('\\');
                out.push(ch)
            } // literal even if someone enables (?x)
            _ => out.push(ch),
        }
        i += 1;
    }
    if in_class {
        return Err("unterminated character class".into());
    }
    Ok(out)
}

/// Parses an ECMA pattern into a HIR (Unicode mode) for generating: `\s` and `\S` narrowed
/// to what every common validator agrees on (see `translate`).
pub fn parse_ecma(p: &str) -> Result<Hir, String> {
    let rust = translate(p, true)?;
    regex_syntax::ParserBuilder::new().nest_limit(200).build().parse(&rust).map_err(|e| match e {
        regex_syntax::Error::Parse(e) => e.kind().to_string(),
        regex_syntax::Error::Translate(e) => e.kind().to_string(),
        e => e.to_string(),
    })
}

/// Canonical JSON encoding of one char, as a regex.
pub fn json_char_regex(c: char) -> String {
    match c {
        '"' => r#"\\""#.to_string(),
        '\\' => r"\\\\".to_string(),
        '\u{8}' => r"\\b".into(),
        '\t' => r"\\t".into(),
        '\n' => r"\\n".into(),
        '\u{c}' => r"\\f".into(),
        '\r' => r"\\r".into(),
        c if (c as u32) < 0x20 => format!(r"\\u00{:02x}", c as u32),
        c => regex_syntax::escape(c.encode_utf8(&mut [0; 4])),
    }
}

fn class_regex(ranges: &[(char, char)]) -> String {
    let mut safe = String::new();
    let mut specials: Vec<String> = Vec::new();
    let push_range = |safe: &mut String, a: u32, b: u32| {
        if a > b {
            return;
        }
        if a == b {
            safe.push_str(&format!(r"\x{{{a:X}}}"))
        } else {
            safe.push_str(&format!(r"\x{{{a:X}}}-\x{{{b:X}}}"))
        }
    };
    for &(lo, hi) in ranges {
        let (lo, hi) = (lo as u32, hi as u32);
        // specials inside [lo, hi]
        for sp in (0u32..0x20).chain([0x22u32, 0x5C]) {
            if sp >= lo && sp <= hi {
                specials.push(json_char_regex(char::from_u32(sp).unwrap()));
            }
        }
        // safe parts: [lo,hi] minus [0,0x1F], 0x22, 0x5C
        let mut start = lo.max(0x20);
        for cut in [0x22u32, 0x5C] {
            if start > hi {
                break;
            }
            if cut >= start && cut <= hi {
                if cut > start {
                    push_range(&mut safe, start, cut - 1);
                }
                start = cut + 1;
            }
        }
        if start <= hi {
            push_range(&mut safe, start, hi);
        }
    }
    let mut alts = Vec::new();
    if !safe.is_empty() {
        alts.push(format!("[{safe}]"));
    }
    alts.extend(specials);
    match alts.len() {
        0 => r"[^\x00-\x{10FFFF}]".to_string(),
        1 => alts.pop().unwrap(),
        _ => format!("(?:{})", alts.join("|")),
    }
}

/// Emits the encoded-body regex for a HIR. Err = message.
pub fn emit_body(h: &Hir, out: &mut String) -> Result<(), String> {
    match h.kind() {
        HirKind::Empty => {}
        HirKind::Literal(l) => {
            let s = std::str::from_utf8(&l.0).map_err(|_| "pattern matches invalid UTF-8".to_string())?;
            for c in s.chars() {
                out.push_str(&json_char_regex(c));
            }
        }
        HirKind::Class(Class::Unicode(c)) => {
            let r: Vec<(char, char)> = c.ranges().iter().map(|r| (r.start(), r.end())).collect();
            out.push_str(&class_regex(&r));
        }
        HirKind::Class(Class::Bytes(_)) => return Err("byte classes are not supported in patterns".into()),
        HirKind::Look(_) => {
            return Err(
                "anchors or assertions inside a pattern (other than a leading ^ and trailing $) are not supported"
                    .into(),
            )
        }
        HirKind::Repetition(r) => {
            out.push_str("(?:");
            emit_body(&r.sub, out)?;
            out.push(')');
            match r.max {
                Some(m) if m == r.min => out.push_str(&format!("{{{}}}", r.min)),
                Some(m) => out.push_str(&format!("{{{},{}}}", r.min, m)),
                None => out.push_str(&format!("{{{},}}", r.min)),
            }
        }
        HirKind::Capture(c) => {
            out.push_str("(?:");
            emit_body(&c.sub, out)?;
            out.push(')');
        }
        HirKind::Concat(v) => {
            for x in v {
                emit_body(x, out)?;
            }
        }
        HirKind::Alternation(v) => {
            out.push_str("(?:");
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                emit_body(x, out)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

/// A top-level branch of a pattern: whether it is anchored at start/end, and its core.
pub struct Branch {
    pub start: bool,
    pub end: bool,
    pub core: Hir,
}

fn is_start(h: &Hir) -> bool {
    matches!(h.kind(), HirKind::Look(Look::Start))
}
fn is_end(h: &Hir) -> bool {
    matches!(h.kind(), HirKind::Look(Look::End))
}

pub fn branches(h: &Hir) -> Vec<Branch> {
    match h.kind() {
        HirKind::Capture(c) => branches(&c.sub),
        HirKind::Alternation(v) => v.iter().flat_map(branches).collect(),
        HirKind::Concat(v) => {
            let mut s = 0;
            let mut e = v.len();
            while s < e && is_start(&v[s]) {
                s += 1;
            }
            while e > s && is_end(&v[e - 1]) {
                e -= 1;
            }
            let core = Hir::concat(v[s..e].to_vec());
            // `^(a|b)$`: push anchors into the inner alternation.
            if let HirKind::Capture(c) = core.kind() {
                if matches!(c.sub.kind(), HirKind::Alternation(_)) {
                    return branches(&c.sub)
                        .into_iter()
                        .map(|b| Branch { start: b.start || s > 0, end: b.end || e < v.len(), core: b.core })
                        .collect();
                }
            }
            vec![Branch { start: s > 0, end: e < v.len(), core }]
        }
        _ if is_start(h) => vec![Branch { start: true, end: false, core: Hir::empty() }],
        _ if is_end(h) => vec![Branch { start: false, end: true, core: Hir::empty() }],
        _ => vec![Branch { start: false, end: false, core: h.clone() }],
    }
}

/// Full encoded-body regex (without the quotes) for an unanchored ECMA pattern.
///
/// Branches are grouped by their anchoring so that each group shares one `CHAR*` prefix /
/// suffix: `CHAR*(?:a|b)CHAR*` rather than `CHAR*aCHAR*|CHAR*bCHAR*`, whose DFA would track
/// every branch's own suffix loop (2^branches states).
pub fn pattern_body(p: &str) -> Result<String, String> {
    let h = parse_ecma(p)?;
    let mut groups: Vec<((bool, bool), Vec<String>)> = Vec::new();
    for b in branches(&h) {
        let mut core = String::new();
        emit_body(&b.core, &mut core)?;
        match groups.iter_mut().find(|g| g.0 == (b.start, b.end)) {
            Some(g) => g.1.push(core),
            None => groups.push(((b.start, b.end), vec![core])),
        }
    }
    let mut alts = Vec::new();
    for ((start, end), cores) in groups {
        let mut s = String::new();
        if !start {
            s.push_str(JSON_CHAR);
            s.push('*');
        }
        if cores.len() == 1 {
            s.push_str(&cores[0])
        } else {
            s.push_str(&format!("(?:{})", cores.join("|")))
        }
        if !end {
            s.push_str(JSON_CHAR);
            s.push('*');
        }
        alts.push(s);
    }
    Ok(if alts.len() == 1 { alts.pop().unwrap() } else { format!("(?:{})", alts.join("|")) })
}

/// Fewest and most characters a pattern core can match (`None` = unbounded).
fn char_len(h: &Hir) -> (u64, Option<u64>) {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => (0, Some(0)),
        HirKind::Literal(l) => {
            let n = String::from_utf8_lossy(&l.0).chars().count() as u64;
            (n, Some(n))
        }
        HirKind::Class(_) => (1, Some(1)),
        HirKind::Repetition(r) => {
            let (lo, hi) = char_len(&r.sub);
            let max = match (r.max, hi) {
                (_, Some(0)) => Some(0),
                (Some(m), Some(h)) => Some(m as u64 * h),
                _ => None,
            };
            (r.min as u64 * lo, max)
        }
        HirKind::Capture(c) => char_len(&c.sub),
        HirKind::Concat(v) => {
            v.iter().map(char_len).fold((0, Some(0)), |(a, b), (c, d)| (a + c, b.zip(d).map(|(x, y)| x + y)))
        }
        HirKind::Alternation(v) => {
            let parts: Vec<_> = v.iter().map(char_len).collect();
            let lo = parts.iter().map(|p| p.0).min().unwrap_or(0);
            let hi = parts.iter().try_fold(0, |m, p| p.1.map(|x| m.max(x)));
            (lo, hi)
        }
    }
}

/// `h` with every unbounded repetition `{n,}` bounded to `{n,n+extra}`.
fn bound_repetitions(h: &Hir, extra: u32) -> Hir {
    match h.kind() {
        HirKind::Repetition(r) => Hir::repetition(regex_syntax::hir::Repetition {
            min: r.min,
            max: Some(r.max.unwrap_or(r.min.saturating_add(extra))),
            greedy: r.greedy,
            sub: Box::new(bound_repetitions(&r.sub, extra)),
        }),
        HirKind::Capture(c) => bound_repetitions(&c.sub, extra),
        HirKind::Concat(v) => Hir::concat(v.iter().map(|x| bound_repetitions(x, extra)).collect()),
        HirKind::Alternation(v) => Hir::alternation(v.iter().map(|x| bound_repetitions(x, extra)).collect()),
        _ => h.clone(),
    }
}

/// A narrowed encoded-body regex for an ECMA pattern combined with `minLength` = `lo` and
/// `maxLength` = `hi` characters: every string it matches satisfies all three. Unbounded
/// repetitions are bounded, an unanchored start is dropped (the match starts the string) and
/// an unanchored end becomes a bounded `CHAR{a,b}` tail (which also pads up to `lo`).
/// Branches that cannot fit are dropped; `None` when none fits. Also returns the longest tail.
pub fn bounded_pattern_body(p: &str, lo: u64, hi: u64) -> Option<(String, u64)> {
    let h = parse_ecma(p).ok()?;
    let mut alts = Vec::new();
    let mut longest_tail = 0;
    for b in branches(&h) {
        // Length of the branch with repetitions bounded by `extra` and a tail of `extra`.
        let shape = |extra: u64| -> Option<(Hir, u64, u64, u64)> {
            let core = bound_repetitions(&b.core, extra as u32);
            let (min, max) = char_len(&core);
            let tail_max = if b.end { 0 } else { extra };
            let tail_min = if b.end { 0 } else { lo.saturating_sub(min).min(tail_max) };
            (max? + tail_max <= hi).then_some((core, min + tail_min, tail_min, tail_max))
        };
        // Largest `extra` within `hi` (the length grows with it), then check `lo`.
        if shape(0).is_none() {
            continue;
        }
        let (mut low, mut bad) = (0, hi + 1);
        while low + 1 < bad {
            let mid = (low + bad) / 2;
            if shape(mid).is_some() {
                low = mid
            } else {
                bad = mid
            }
        }
        let Some((core, shortest, tail_min, tail_max)) = shape(low) else { continue };
        if shortest < lo {
            continue;
        }
        let mut s = String::new();
        emit_body(&core, &mut s).ok()?;
        if !b.end && tail_max > 0 {
            s.push_str(&format!("{JSON_CHAR}{{{tail_min},{tail_max}}}"));
            longest_tail = longest_tail.max(tail_max);
        }
        alts.push(s);
    }
    match alts.len() {
        0 => None,
        1 => Some((alts.pop().unwrap(), longest_tail)),
        _ => Some((format!("(?:{})", alts.join("|")), longest_tail)),
    }
}

/// If the pattern is a single branch whose core is one character class repeated
/// `{min,max}` times, returns (class body regex, min, max, anchored both sides).
pub fn single_class_repetition(p: &str) -> Option<(String, u32, Option<u32>, bool, bool)> {
    let h = parse_ecma(p).ok()?;
    let mut bs = branches(&h);
    if bs.len() != 1 {
        return None;
    }
    let b = bs.pop().unwrap();
    let mut core = &b.core;
    while let HirKind::Capture(c) = core.kind() {
        core = &c.sub;
    }
    let (cls, min, max) = match core.kind() {
        HirKind::Class(Class::Unicode(c)) => (c, 1, Some(1)),
        HirKind::Repetition(r) => match r.sub.kind() {
            HirKind::Class(Class::Unicode(c)) => (c, r.min, r.max),
            _ => return None,
        },
        _ => return None,
    };
    let ranges: Vec<(char, char)> = cls.ranges().iter().map(|r| (r.start(), r.end())).collect();
    Some((class_regex(&ranges), min, max, b.start, b.end))
}

/// Bounds (in chars) of the strings a pattern's core can match, when cheaply known:
/// (min chars lower bound, max chars upper bound), fully anchored single branch only.
pub fn anchored_char_len_bounds(p: &str) -> Option<(usize, Option<usize>)> {
    let h = parse_ecma(p).ok()?;
    let bs = branches(&h);
    if bs.iter().any(|b| !b.start || !b.end) {
        return None;
    }
    let mut lo = usize::MAX;
    let mut hi = Some(0usize);
    for b in &bs {
        let pr = b.core.properties();
        lo = lo.min(pr.minimum_len().unwrap_or(0).div_ceil(4));
        hi = match (hi, pr.maximum_len()) {
            (Some(a), Some(m)) => Some(a.max(m)),
            _ => None,
        };
    }
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(p: &str, s: &str) -> bool {
        let body = pattern_body(p).unwrap();
        let re = regex_automata::meta::Regex::new(&format!("^\"(?:{body})\"$")).unwrap();
        re.is_match(serde_json::to_string(s).unwrap().as_str())
    }

    #[test]
    fn unanchored_and_anchored() {
        assert!(matches("a", "xax"));
        assert!(!matches("a", "xyz"));
        assert!(matches("^a", "abc"));
        assert!(!matches("^a", "ba"));
        assert!(matches("c$", "abc"));
        assert!(!matches("^abc$", "abcd"));
        assert!(matches("^(a|b)$", "b"));
        assert!(!matches("^(a|b)$", "ab"));
        assert!(matches("^\\d+$", "123"));
        assert!(!matches("^\\d+$", "١٢٣"));
        assert!(matches("^[\"\\\\]+$", "\"\\"));
        assert!(matches("^.$", "é"));
        assert!(!matches("^.$", "\r"));
        assert!(matches("^a{2}$", "aa"));
        assert!(matches("^a{$", "a{"));
        assert!(matches("^[^a]$", "\n"));
        assert!(matches("^\\/$", "/"));
    }

    #[test]
    fn bounded_patterns() {
        let check = |p: &str, lo: u64, hi: u64, yes: &[&str], no: &[&str]| {
            let (body, _) = bounded_pattern_body(p, lo, hi).unwrap();
            let re = regex_automata::meta::Regex::new(&format!("^\"(?:{body})\"$")).unwrap();
            for s in yes {
                assert!(re.is_match(serde_json::to_string(s).unwrap().as_str()), "{p} {s}");
            }
            for s in no {
                assert!(!re.is_match(serde_json::to_string(s).unwrap().as_str()), "{p} {s}");
            }
        };
        check("^[a-z]+:[0-9]*$", 1, 6, &["ab:12", "a:"], &["abcd:12", ":1"]);
        check("^x", 3, 4, &["xab", "xabc"], &["x", "xabcd", "ax"]);
        check("y$", 0, 2, &["y"], &["aay", "ay"]); // an unanchored start is dropped
        assert!(bounded_pattern_body("^abc$", 0, 2).is_none());
    }

    #[test]
    fn rejects_unsupported() {
        assert!(pattern_body("(?=a)").is_err());
        assert!(pattern_body("(a)\\1").is_err());
        assert!(pattern_body("\\bfoo").is_err());
        assert!(pattern_body("a^b").is_err());
    }
}
