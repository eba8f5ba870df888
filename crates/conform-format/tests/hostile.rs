//! Hostile format inputs: catastrophic regexes, deep/self-referencing/huge schemas, bad syntax.
//!
//! Every case must end in either a clear [`FormatError`] or a compiled automaton whose memory
//! stays within the limits, and (when compiled) a first token mask over a small vocabulary must
//! be computable. Each case runs on its own thread with a 2 MiB stack (tokio's blocking-pool
//! default, where the server compiles formats), so a stack overflow in the compiler aborts the
//! test binary and a hang fails the case instead of blocking the run.
//!
//! Nothing here is timed: how much work a case may do is bounded by the compiler's limits (a
//! case that must be cheap asserts that the limit which bounds its work is the one that trips)
//! and by the mask index's work counters. The times printed are for reading only.
//!

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conform_format::format::instructions;
use conform_format::format::{
    compile_gbnf, compile_regex, compile_schema, Compiled, FormatError, Limits, SchemaOptions,
};
use conform_format::mask::{ByteAutomaton, MaskIndex, Matcher};
use conform_format::vocab::{TokenTrie, Vocab};
use serde_json::{json, Map, Value};

/// A case still running after this long is a hang (release builds take well under a second
/// per case; a loaded CI machine many times that). Only a hang guard, never a speed check.
const HANG_GUARD: Duration = Duration::from_secs(600);
/// Stack of the compiling thread: tokio's `spawn_blocking` default.
const STACK: usize = 2 << 20;

type Outcome = Result<Compiled, FormatError>;

/// Runs `f` on a 2 MiB-stack thread; fails the test if it runs past `HANG_GUARD` (the thread
/// is left behind) or panics. Returns the result and the time it took (for the log only).
fn bounded(name: &str, f: impl FnOnce() -> Outcome + Send + 'static) -> (Outcome, Duration) {
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(STACK)
        .spawn(move || {
            let r = f();
            let _ = tx.send((r, t0.elapsed()));
        })
        .unwrap();
    match rx.recv_timeout(HANG_GUARD) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: still compiling after {HANG_GUARD:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: the compiling thread panicked"),
    }
}

/// 256 single bytes plus a few multi-byte tokens and one EOG.
fn small_vocab() -> (Arc<Vocab>, Arc<TokenTrie>) {
    let mut toks: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
    for t in
        ["aa", "ab", "ba", "aaaa", "xx", "xxxx", "{\"", "\":", "\",\"", "[[", "]]", "null", "true", "\"a\"", "12", "é"]
    {
        toks.push(Some(t.as_bytes().to_vec()));
    }
    toks.push(None); // EOG
    let eog = toks.len() as u32 - 1;
    let v = Arc::new(Vocab::from_token_bytes(toks, vec![eog]));
    let trie = Arc::new(TokenTrie::new(&v));
    (v, trie)
}

fn peak_rss_mib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb / 1024)
}

/// What a hostile case is expected to give.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Either a compiled automaton or a clear error.
    Either,
    Compiles,
    TooComplex,
    /// Any error other than TooComplex (invalid schema, unsupported keyword, ...).
    Rejected,
}

/// Checks the outcome; for a compiled automaton also checks memory and a first mask.
fn check(name: &str, outcome: Outcome, took: Duration, expect: Expect) -> Option<Arc<Compiled>> {
    let limits = Limits::default();
    let rss = peak_rss_mib().map(|m| format!(", peak RSS {m} MiB")).unwrap_or_default();
    match outcome {
        Ok(a) => {
            eprintln!("{name}: compiled in {took:.2?}: {} states, {} bytes{rss}", a.state_count(), a.memory_usage());
            assert!(
                matches!(expect, Expect::Either | Expect::Compiles),
                "{name}: expected {expect:?}, but it compiled ({} states)",
                a.state_count()
            );
            // The dense DFA is capped by dfa_size_bytes; `dist` adds 4 bytes per state (fewer
            // states than DFA bytes), so twice the limit is a loose cap.
            let cap = 2 * limits.dfa_size_bytes;
            assert!(a.memory_usage() <= cap, "{name}: automaton uses {} bytes > {cap}", a.memory_usage());
            let (vocab, trie) = small_vocab();
            let a = Arc::new(a);
            let idx = Arc::new(MaskIndex::new(a.clone(), vocab.clone(), trie).unwrap());
            let mut m = Matcher::new(idx.clone());
            let mut logits = vec![0f32; vocab.len()];
            let n = m.apply(&mut logits, u32::MAX);
            let _ = m.forced_bytes();
            assert!(n > 0, "{name}: empty first mask on a compiled automaton");
            assert_mask_work_bounded(name, &a, &idx, 4);
            Some(a)
        }
        Err(e) => {
            let msg = e.to_string();
            eprintln!("{name}: error in {took:.2?}: {msg}{rss}");
            assert!(!msg.is_empty());
            match expect {
                Expect::Compiles => panic!("{name}: expected to compile, got: {msg}"),
                Expect::TooComplex => {
                    assert!(matches!(e, FormatError::TooComplex { .. }), "{name}: expected TooComplex, got: {msg}")
                }
                Expect::Rejected => assert!(
                    !matches!(e, FormatError::TooComplex { .. }),
                    "{name}: expected a schema/regex error, got: {msg}"
                ),
                Expect::Either => {}
            }
            None
        }
    }
}

/// The work of masking so far, through the index's counters: at most `max_walks` trie walks
/// (one per state masked), each visiting every trie node at most once, and the states the
/// automaton built lazily along the way within the same memory cap as a compiled one.
fn assert_mask_work_bounded(name: &str, a: &Compiled, idx: &MaskIndex, max_walks: u64) {
    let st = idx.stats();
    let nodes = idx.trie().num_nodes() as u64;
    eprintln!(
        "{name}: {} walks, {} trie nodes visited ({nodes} in the trie), {} states built, {} bytes",
        st.walks,
        st.nodes_visited,
        a.state_count(),
        a.memory_usage()
    );
    assert!(st.walks <= max_walks, "{name}: {} trie walks, expected at most {max_walks}", st.walks);
    assert!(
        st.nodes_visited <= st.walks * nodes,
        "{name}: {} trie nodes visited in {} walks of a {nodes}-node trie",
        st.nodes_visited,
        st.walks
    );
    let cap = 2 * Limits::default().dfa_size_bytes;
    assert!(a.memory_usage() <= cap, "{name}: after masking, the automaton uses {} bytes > {cap}", a.memory_usage());
}

fn regex_case(name: &str, pattern: String, expect: Expect) -> Option<Arc<Compiled>> {
    let (r, took) = bounded(name, move || compile_regex(&pattern, &Limits::default()).map(Compiled::Dfa));
    check(name, r, took, expect)
}

fn schema_case(name: &str, schema: Value, expect: Expect) -> Option<Arc<Compiled>> {
    let (r, took) = bounded(name, move || {
        let r = compile_schema(&schema, &SchemaOptions::default(), &Limits::default()).map(|(a, _)| a);
        // Dropping a deeply nested Value recurses too: keep it on this thread.
        drop(schema);
        r
    });
    check(name, r, took, expect)
}

fn err_of(r: Outcome) -> FormatError {
    match r {
        Ok(a) => panic!("expected an error, compiled {} states", a.state_count()),
        Err(e) => e,
    }
}

// ------------------------------------------------------------------ regexes

#[test]
fn exponential_dfa_regex() {
    regex_case("(a|b)*a(a|b){30}", "(a|b)*a(a|b){30}".into(), Expect::TooComplex);
}

#[test]
fn nested_star_regex() {
    let a = regex_case("(a*)*b", "(a*)*b".into(), Expect::Compiles).unwrap();
    assert!(a.accepts(b"aaaab") && a.accepts(b"b") && !a.accepts(b"aaaa"));
}

#[test]
fn nested_plus_regex() {
    let a = regex_case("((a+)+)+", "((a+)+)+".into(), Expect::Compiles).unwrap();
    assert!(a.accepts(b"a") && a.accepts(&[b'a'; 1000]) && !a.accepts(b""));
}

#[test]
fn huge_bounded_dot_regex() {
    regex_case(".{0,100000}", ".{0,100000}".into(), Expect::Either);
}

#[test]
fn million_state_repetition_regex() {
    regex_case("(x{1000}){1000}", "(x{1000}){1000}".into(), Expect::Either);
}

#[test]
fn hundred_thousand_alternatives_regex() {
    let alts: Vec<String> = (0..100_000).map(|i| format!("w{i}")).collect();
    regex_case("100k alternatives", alts.join("|"), Expect::Either);
}

#[test]
fn invalid_regex_has_position() {
    for (pattern, at) in [
        ("ab(c", 2usize),
        ("abc[", 3),
        ("a{2,1}", 1),
        ("ab)", 2),
        ("[z-a]", 1),
        (r"\p{Nope}", 0),
        ("a{99999999999}", 1),
    ] {
        let (r, took) = bounded(pattern, move || compile_regex(pattern, &Limits::default()).map(Compiled::Dfa));
        let e = err_of(r);
        eprintln!("{pattern}: {e} ({took:.2?})");
        match &e {
            FormatError::InvalidRegex { position: Some(p), .. } => {
                assert!(*p <= pattern.len(), "{pattern}: position {p} out of range");
                let _ = at; // the exact offset is regex-syntax's choice; it must exist and be in range
                assert!(e.to_string().contains(&format!("at byte {p}")), "{e}");
            }
            other => panic!("{pattern}: expected InvalidRegex with a position, got {other:?}"),
        }
    }
}

#[test]
fn invalid_pattern_in_schema_is_an_error() {
    let schema =
        json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "ab(c"}}, "required": ["a"]});
    let (r, _) = bounded("bad pattern", move || {
        compile_schema(&schema, &SchemaOptions::default(), &Limits::default()).map(|(a, _)| a)
    });
    let e = err_of(r);
    eprintln!("bad pattern in schema: {e}");
    assert!(!matches!(e, FormatError::TooComplex { .. }), "{e}");
}

// ------------------------------------------------------------------ schemas

fn nest(depth: usize, leaf: Value, wrap: impl Fn(Value) -> Value) -> Value {
    let mut v = leaf;
    for _ in 0..depth {
        v = wrap(v);
    }
    v
}

#[test]
fn deeply_nested_arrays() {
    let s = nest(500, json!({"type": "integer"}), |v| json!({"type": "array", "items": v}));
    schema_case("500 nested arrays", s, Expect::TooComplex);
}

#[test]
fn deeply_nested_properties() {
    let s =
        nest(500, json!({"type": "string"}), |v| json!({"type": "object", "properties": {"p": v}, "required": ["p"]}));
    schema_case("500 nested properties", s, Expect::TooComplex);
    let s = nest(500, json!({"type": "string"}), |v| json!({"type": "object", "properties": {"p": v}}));
    schema_case("500 nested optional properties", s, Expect::TooComplex);
}

#[test]
fn deeply_nested_combinators() {
    let s = nest(500, json!({"type": "string"}), |v| json!({"anyOf": [v, {"type": "null"}]}));
    schema_case("500 nested anyOf", s, Expect::Either);
    let s = nest(500, json!({"type": "string"}), |v| json!({"allOf": [v]}));
    schema_case("500 nested allOf", s, Expect::Either);
}

#[test]
fn self_reference_without_base_case() {
    schema_case("{$ref: #}", json!({"$ref": "#"}), Expect::Rejected);
    let s = json!({"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]});
    schema_case("required self-reference", s, Expect::Rejected);
    let s = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
    schema_case("a -> b -> a", s, Expect::Rejected);
    let s = json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
    schema_case("a -> a", s, Expect::Rejected);
    let s = json!({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"});
    schema_case("a -> allOf[a]", s, Expect::Either);
}

#[test]
fn recursion_with_base_case_compiles() {
    let s =
        json!({"type": "object", "properties": {"v": {"type": "integer"}, "next": {"$ref": "#"}}, "required": ["v"]});
    let a = schema_case("linked list", s, Expect::Compiles).unwrap();
    assert!(a.accepts(br#"{"v":1,"next":{"v":2}}"#));
    let s = json!({
        "$defs": {
            "tree": {"type": "object", "properties": {"kids": {"$ref": "#/$defs/forest"}}, "required": ["kids"]},
            "forest": {"type": "array", "items": {"$ref": "#/$defs/tree"}, "maxItems": 3}
        },
        "$ref": "#/$defs/tree"
    });
    let a = schema_case("tree <-> forest", s, Expect::Compiles).unwrap();
    assert!(a.accepts(br#"{"kids":[{"kids":[]}]}"#));
}

/// Found by fuzzing: an ambiguous recursive grammar keeps many call stacks per state (it took
/// over 10 s per fuzz execution); stacks per state and frames overall are bounded, so compiling
/// and masking stay cheap, and deep prefixes keep a live mask. The work is checked through the
/// automaton's size and the index's counters, not timed.
#[test]
fn ambiguous_recursive_grammar_stays_bounded() {
    let grammar = "root ::= \"(\" root \"!\" | \"[\" root*";
    let (r, took) = bounded("ambiguous grammar", move || compile_gbnf(grammar, &Limits::default()));
    let a = check("ambiguous grammar", r, took, Expect::Compiles).unwrap();
    let (vocab, trie) = small_vocab();
    let idx = Arc::new(MaskIndex::new(a.clone(), vocab.clone(), trie).unwrap());
    let mut m = Matcher::new(idx.clone());
    let prefix = b"[[[[[[[[[[[[[[[[[[[[(((";
    for &b in prefix {
        let token = (0..vocab.len() as u32).find(|&t| vocab.token_bytes(t) == [b]).unwrap();
        m.accept(token).unwrap();
    }
    let mut logits = vec![0f32; vocab.len()];
    assert!(m.apply(&mut logits, u32::MAX) > 0, "a deep prefix still has a mask");
    // At most one mask per state along the prefix and its start, each walk over the trie at
    // most once, and the stacks interned for those states within the memory cap.
    assert_mask_work_bounded("ambiguous grammar, 23 steps", &a, &idx, prefix.len() as u64 + 2);
    // Memory grows with the states visited, not with the ambiguity: each state keeps at most
    // 64 stacks (`MAX_STACKS` in recursive.rs) of at most `max_nesting` frames, 16 bytes a
    // frame, plus its transition row (at most 256 byte classes of 4 bytes) and node.
    let per_state = 64 * Limits::default().max_nesting as usize * 16 + 256 * 4 + 256;
    assert!(
        a.memory_usage() <= a.state_count() * per_state,
        "{} bytes for {} states: more than {per_state} a state",
        a.memory_usage(),
        a.state_count()
    );
}

#[test]
fn ref_fan_out() {
    // "Billion laughs": d_i = [d_{i-1}, d_{i-1}], 2^40 copies of d_0 if expanded naively.
    let mut defs = Map::new();
    defs.insert("d0".into(), json!({"type": "string", "maxLength": 8}));
    for i in 1..=40 {
        let prev = format!("#/$defs/d{}", i - 1);
        defs.insert(
            format!("d{i}"),
            json!({"type": "array", "prefixItems": [{"$ref": prev}, {"$ref": prev}], "minItems": 2, "maxItems": 2}),
        );
    }
    schema_case("$ref fan-out 2^40", json!({"$defs": defs, "$ref": "#/$defs/d40"}), Expect::TooComplex);
}

#[test]
fn nested_bounded_repetitions() {
    // Each level is a small regex, the product is 1000^3 string slots.
    let s = nest(
        3,
        json!({"type": "string", "maxLength": 1000}),
        |v| json!({"type": "array", "items": v, "maxItems": 1000}),
    );
    schema_case("1000^3 nested maxItems", s, Expect::TooComplex);
}

fn many_properties(n: usize, required: bool) -> Value {
    let mut props = Map::new();
    for i in 0..n {
        props.insert(format!("p{i}"), json!({"type": "integer"}));
    }
    let req: Vec<String> = if required { (0..n).map(|i| format!("p{i}")).collect() } else { Vec::new() };
    json!({"type": "object", "properties": props, "required": req, "additionalProperties": false})
}

#[test]
fn ten_thousand_required_properties() {
    schema_case("10k required properties", many_properties(10_000, true), Expect::Either);
}

#[test]
fn ten_thousand_optional_properties() {
    schema_case("10k optional properties", many_properties(10_000, false), Expect::Either);
}

#[test]
fn huge_max_length() {
    // Upper bounds past `max_repetition` are narrowed (never widened): a bounded automaton.
    schema_case("maxLength 1e7", json!({"type": "string", "maxLength": 10_000_000}), Expect::Compiles);
    schema_case("minLength 1e7", json!({"type": "string", "minLength": 10_000_000}), Expect::TooComplex);
    schema_case("maxItems 1e7", json!({"type": "array", "maxItems": 10_000_000}), Expect::Either);
    schema_case("maxLength 2^64", json!({"type": "string", "maxLength": 18446744073709551615u64}), Expect::Compiles);
    schema_case("maxLength 1e300", json!({"type": "string", "maxLength": 1e300}), Expect::Either);
    schema_case("maxLength -1", json!({"type": "string", "maxLength": -1}), Expect::Rejected);
}

#[test]
fn hundred_thousand_enum_values() {
    let vals: Vec<Value> = (0..100_000).map(|i| json!(format!("value-{i}"))).collect();
    schema_case("enum 100k strings", json!({"enum": vals}), Expect::Either);
    let vals: Vec<Value> = (0..100_000).map(|i| json!(i)).collect();
    schema_case("enum 100k integers", json!({"type": "integer", "enum": vals}), Expect::Either);
}

#[test]
fn huge_numeric_bounds() {
    schema_case(
        "integer in [-1e300, 1e300]",
        json!({"type": "integer", "minimum": -1e300, "maximum": 1e300}),
        Expect::Either,
    );
    schema_case(
        "number in (0, 1e-300)",
        json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e-300}),
        Expect::Either,
    );
    schema_case("integer min > max", json!({"type": "integer", "minimum": 10, "maximum": 1}), Expect::Rejected);
}

#[test]
fn unknown_keyword_names_keyword_and_pointer() {
    let s = json!({"type": "object", "properties": {"a/b": {"type": "array", "items": {"type": "string", "frobnicate": 3}}}});
    // Skipped by default (an annotation), refused on request, naming keyword and pointer.
    assert!(compile_schema(&s, &SchemaOptions::default(), &Limits::default()).is_ok());
    let refuse = SchemaOptions { refuse_unknown_keywords: true, ..SchemaOptions::default() };
    let (r, _) = bounded("unknown keyword", move || compile_schema(&s, &refuse, &Limits::default()).map(|(a, _)| a));
    let e = err_of(r);
    let msg = e.to_string();
    eprintln!("unknown keyword: {msg}");
    match &e {
        FormatError::UnsupportedKeyword { keyword, pointer, .. } => {
            assert_eq!(keyword, "frobnicate");
            assert_eq!(pointer, "#/properties/a~1b/items/frobnicate");
        }
        other => panic!("expected UnsupportedKeyword, got {other:?}"),
    }
    assert!(msg.contains("frobnicate") && msg.contains("#/properties/a~1b/items"), "{msg}");

    // A keyword of some draft that is not supported: same shape.
    let s = json!({"type": "object", "properties": {"a": {"type": "string", "not": {"const": "x"}}}});
    let (r, _) =
        bounded("not", move || compile_schema(&s, &SchemaOptions::default(), &Limits::default()).map(|(a, _)| a));
    let msg = err_of(r).to_string();
    assert!(msg.contains("`not`") && msg.contains("#/properties/a"), "{msg}");

    // Lenient mode skips it and reports it instead.
    let s = json!({"type": "string", "frobnicate": 3});
    let (a, ignored) =
        compile_schema(&s, &SchemaOptions { lenient: true, ..Default::default() }, &Limits::default()).unwrap();
    assert!(a.accepts(br#""x""#));
    assert!(ignored.iter().any(|i| i.contains("frobnicate")), "{ignored:?}");
}

#[test]
fn malformed_schema_values() {
    for (name, s) in [
        ("type 42", json!({"type": 42})),
        ("type unknown", json!({"type": "strnig"})),
        ("items string", json!({"type": "array", "items": "x"})),
        ("required object", json!({"type": "object", "required": {"a": 1}})),
        ("enum object", json!({"enum": {"a": 1}})),
        ("empty enum", json!({"enum": []})),
        ("dangling ref", json!({"$ref": "#/$defs/missing"})),
        ("remote ref", json!({"$ref": "https://example.com/s.json"})),
        ("anyOf empty", json!({"anyOf": []})),
        ("schema is number", json!(3)),
        ("false", json!(false)),
    ] {
        schema_case(name, s, Expect::Rejected);
    }
}

/// `d_i` = an array of `fan` references to `d_{i-1}`; `d_0` = null.
fn fan_out(fan: usize, levels: usize) -> Value {
    let mut defs = Map::new();
    defs.insert("d0".into(), json!({"type": "null"}));
    for i in 1..=levels {
        let prev = format!("#/$defs/d{}", i - 1);
        let items: Vec<Value> = (0..fan).map(|_| json!({"$ref": prev})).collect();
        defs.insert(format!("d{i}"), json!({"type": "array", "prefixItems": items, "minItems": fan, "maxItems": fan}));
    }
    json!({"$defs": defs, "$ref": format!("#/$defs/d{levels}")})
}

#[test]
fn ref_fan_out_wide() {
    // 64^4 nulls: rejected as too complex by a size or lowering-work limit.
    schema_case("$ref fan-out 64^4", fan_out(64, 4), Expect::TooComplex);
}

/// `$ref` targets are lowered at every use, so a ~10 kB schema can expand enormously; the
/// lowering-work limit stops it early (before that limit: 15 s and a 40 MB string for 200^3).
/// Cheap means bounded work, not a time: the limit that trips must be `max_lowering_work` (so
/// at most that many bytes of regex were built), not a size check that fires only after the
/// whole expansion, and it trips at whatever value it is given.
#[test]
fn ref_fan_out_is_cheap_to_reject() {
    for max_lowering_work in [Limits::default().max_lowering_work, 1 << 20, 64 << 10] {
        let limits = Limits { max_lowering_work, ..Limits::default() };
        let name = format!("$ref fan-out 200^3, max_lowering_work {max_lowering_work}");
        let (r, took) = bounded(&name, move || {
            compile_schema(&fan_out(200, 3), &SchemaOptions::default(), &limits).map(|(a, _)| a)
        });
        eprintln!("{name}: rejected in {took:.2?}");
        match r {
            Err(FormatError::TooComplex { limit, .. }) => {
                assert_eq!(
                    limit,
                    conform_format::format::Limit::MaxLoweringWork(max_lowering_work),
                    "{name}: another limit tripped first"
                );
            }
            other => panic!("{name}: expected TooComplex, got {other:?}"),
        }
    }
}

/// Hundreds of optional properties nest past the regex parser's 1000 groups: a limit, reported
/// as `TooComplex`, not as a syntax error at a position in a regex the user never wrote.
#[test]
fn many_optional_properties_error_is_too_complex() {
    let (r, _) = bounded("400 optional properties", || {
        compile_schema(&many_properties(400, false), &SchemaOptions::default(), &Limits::default()).map(|(a, _)| a)
    });
    if let Err(e) = r {
        assert!(matches!(e, FormatError::TooComplex { .. }), "{e}");
    }
}

// ------------------------------------------------------------------ grammars

fn grammar_case(name: &str, grammar: String, expect: Expect) -> Option<Arc<Compiled>> {
    let (r, took) = bounded(name, move || compile_gbnf(&grammar, &Limits::default()));
    check(name, r, took, expect)
}

/// `root ::= r0`, `r{i} ::= "x" r{i+1}`: each reference was one native frame of the lowering,
/// and 4,046 rules overflowed the compile thread's stack (the process aborted).
#[test]
fn long_rule_chains_do_not_overflow_the_stack() {
    for n in [100, 5_000, 20_000] {
        let mut g = String::from("root ::= r0\n");
        for i in 0..n {
            g.push_str(&format!("r{i} ::= \"x\" r{}\n", i + 1));
        }
        g.push_str(&format!("r{n} ::= \"y\"\n"));
        let expect = if n <= 100 { Expect::Compiles } else { Expect::TooComplex };
        grammar_case(&format!("rule chain of {n}"), g, expect);
    }
    // A chain of plain aliases adds no regex groups, only references.
    let mut g = String::from("root ::= a0\n");
    for i in 0..20_000 {
        g.push_str(&format!("a{i} ::= a{}\n", i + 1));
    }
    g.push_str("a20000 ::= \"z\"\n");
    grammar_case("alias chain of 20000", g, Expect::TooComplex);
}

/// Thousands of mutually recursive rules: recursion is unrolled (more recursive rules than call
/// codes), and the left-recursion check walks them all; neither may recurse natively per rule.
#[test]
fn thousands_of_mutually_recursive_rules_stay_bounded() {
    let n = 5_000;
    let mut g = String::from("root ::= m0\n");
    for i in 0..n {
        g.push_str(&format!("m{i} ::= \"(\" m{} \")\" | \"x\"\n", (i + 1) % n));
    }
    grammar_case("mutual recursion of 5000", g, Expect::Either);
    // Left recursion through a long chain is found without deep native recursion.
    let mut g = String::from("root ::= l0\n");
    for i in 0..n {
        g.push_str(&format!("l{i} ::= l{} \"x\" | \"y\"\n", (i + 1) % n));
    }
    let (r, _) = bounded("left recursion through 5000 rules", move || compile_gbnf(&g, &Limits::default()));
    let msg = err_of(r).to_string();
    assert!(msg.contains("left recursion"), "{msg}");
}

// ------------------------------------------------------------------ writing instructions

/// Compiles an instruction list on a compile-sized stack; returns the product's state count.
fn instructions_case(name: &str, list: Value) -> Result<usize, FormatError> {
    let name = name.to_string();
    let (tx, rx) = mpsc::channel();
    let thread_name = name.clone();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let started = Instant::now();
            let r = instructions::parse_list(&list).and_then(|l| instructions::compile(&l, None, &Limits::default()));
            let _ = tx.send((r.map(|p| p.state_count()), started.elapsed()));
        })
        .unwrap();
    let (r, took) = rx.recv_timeout(HANG_GUARD).unwrap_or_else(|_| panic!("{thread_name}: no result (hang or panic)"));
    let rss = peak_rss_mib().map(|m| format!(", peak RSS {m} MiB")).unwrap_or_default();
    eprintln!("{name}: {:?} in {took:.2?}{rss}", r.as_ref().map_err(ToString::to_string));
    r
}

/// `n` distinct pseudo-random lowercase words of 4 to 9 letters (little shared structure).
fn words(n: usize) -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = std::collections::BTreeSet::new();
    while out.len() < n {
        let len = 4 + next() % 6;
        out.insert((0..len).map(|_| (b'a' + (next() % 26) as u8) as char).collect::<String>());
    }
    out.into_iter().collect()
}

/// A forbidden-word list is one automaton (a component per word made the product's tuples as
/// long as the list: 5,000 words took minutes and gigabytes), and its length is capped.
#[test]
fn long_forbidden_word_lists_are_one_automaton_and_capped() {
    let cap = Limits::default().max_listed_words;
    let states = instructions_case(
        &format!("{cap} forbidden words"),
        json!([{"id": "keywords:forbidden_words", "forbidden_words": words(cap)}]),
    );
    assert!(states.is_ok_and(|s| s > 1));
    let e = instructions_case(
        "5000 forbidden words",
        json!([{"id": "keywords:forbidden_words", "forbidden_words": words(5_000)}]),
    )
    .unwrap_err();
    assert!(
        matches!(&e, FormatError::TooComplex { limit: conform_format::format::Limit::MaxListedWords(_), .. }),
        "{e}"
    );
}

/// Words that must all appear are one automaton each, and their product can have 2^n states:
/// their number is capped before any is compiled, and the cap is the limit the error names.
#[test]
fn long_keyword_lists_hit_the_component_limit() {
    let e =
        instructions_case("200 keywords", json!([{"id": "keywords:existence", "keywords": words(200)}])).unwrap_err();
    assert!(
        matches!(&e, FormatError::TooComplex { limit: conform_format::format::Limit::MaxProductComponents(_), .. }),
        "{e}"
    );
    // Under the cap, the state bound (with the tuples' memory counted) decides.
    let r = instructions_case("40 keywords", json!([{"id": "keywords:existence", "keywords": words(40)}]));
    assert!(matches!(&r, Err(FormatError::TooComplex { .. })), "{r:?}");
}

/// A long list with one contradictory pair: the list is capped, and naming the culprits builds
/// a bounded number of products (their pairs were searched exhaustively: 29 s of CPU).
#[test]
fn contradiction_search_is_bounded() {
    let mut list: Vec<Value> = (0..1_000).map(|_| json!({"id": "punctuation:no_comma"})).collect();
    list.push(json!({"id": "change_case:english_lowercase"}));
    list.push(json!({"id": "change_case:english_capital"}));
    let e = instructions_case("1000 instructions and a contradiction", Value::Array(list)).unwrap_err();
    assert!(
        matches!(&e, FormatError::TooComplex { limit: conform_format::format::Limit::MaxProductComponents(_), .. }),
        "{e}"
    );
    let mut list: Vec<Value> = (0..60).map(|i| json!({"id": "keywords:letter_frequency", "letter": "e", "let_frequency": i % 3 + 1, "let_relation": "at least"})).collect();
    list.push(json!({"id": "change_case:english_lowercase"}));
    list.push(json!({"id": "change_case:english_capital"}));
    let e = instructions_case("62 instructions and a contradiction", Value::Array(list)).unwrap_err();
    assert!(matches!(e, FormatError::Contradictory { .. } | FormatError::TooComplex { .. }), "{e}");
}

// ------------------------------------------------------------------ mask caches

/// A counting regex visits a new state at every byte, and each state's mask is cached: the
/// caches stay within their byte budget by starting over (about 100 KB per state was kept
/// without bound with a 150k-token vocabulary).
#[test]
fn mask_caches_stay_within_their_byte_budget() {
    let a = Arc::new(compile_regex("(?:[^a]*a){300}", &Limits::default()).unwrap());
    let (vocab, trie) = small_vocab();
    let budget = 16 << 10;
    let idx = Arc::new(MaskIndex::new(a.clone(), vocab.clone(), trie).unwrap().with_cache_budget(budget));
    let mut state = a.start();
    for _ in 0..300 {
        idx.state_mask(state);
        assert!(idx.cached_bytes() <= budget, "{} cached bytes > budget {budget}", idx.cached_bytes());
        state = a.next(state, b'a').expect("the regex takes 300 `a`s");
    }
    let stats = idx.stats();
    assert!(stats.cache_resets > 0, "300 states never reached the budget: {stats:?}");
    assert_eq!(stats.walks, 300, "every state is walked once: {stats:?}");
}
