//! Unit tests of GBNF: literals, classes, repetition, escapes and multi-line rules, recursion
//! (nested up to `max_nesting`, unrolled past the call bytes), error positions, left recursion,
//! and the grammars shipped in `grammars/` (read from the repository root).

use super::*;

fn compile(text: &str) -> Compiled {
    compile_gbnf(text, &Limits::default()).unwrap()
}

fn err(text: &str) -> (String, usize, usize) {
    match parse_gbnf(text).and_then(|g| grammar_regex(&g, &Limits::default()).map(|_| ())) {
        Err(FormatError::InvalidGrammar { message, line, column }) => (message, line, column),
        other => panic!("expected a grammar error, got {other:?}"),
    }
}

#[test]
fn literals_classes_repetition() {
    let a = compile("root ::= \"ab\" [0-9]{2,3} [^x]? (\"-\" | \"+\")*  # comment\n");
    assert!(a.accepts(b"ab12"));
    assert!(a.accepts(b"ab123y-+-"));
    assert!(a.accepts("ab12é".as_bytes()));
    assert!(!a.accepts(b"ab1"));
    assert!(!a.accepts(b"ab1234x"));
    assert!(!a.accepts(b"ab12x"));
}

#[test]
fn multi_line_rules_and_escapes() {
    let a = compile("root ::= item (\n  \",\" item\n)*\nitem ::= \"\\x41\" | [\\n\\]]\n");
    assert!(a.accepts(b"A,\n,]"));
    assert!(!a.accepts(b"A,"));
}

#[test]
fn recursion_nests_up_to_max_nesting() {
    let a = compile("root ::= \"(\" root \")\" | \"x\"");
    assert!(a.accepts(b"x"));
    assert!(a.accepts(b"((x))"));
    assert!(!a.accepts(b"((x)"));
    let depth = Limits::default().max_nesting as usize;
    // The root frame counts as one level.
    let nested = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
    assert!(a.accepts(nested(depth - 1).as_bytes()));
    assert!(!a.accepts(nested(depth).as_bytes()));
}

#[test]
fn recursion_is_unrolled_past_the_call_bytes() {
    // 13 mutually recursive rules: more than the network has call bytes.
    let mut text = String::from("root ::= r0\n");
    for i in 0..13 {
        text.push_str(&format!("r{i} ::= \"(\" r{} \")\" | \"x\"\n", (i + 1) % 13));
    }
    let a = compile(&text);
    assert!(a.accepts(b"((x))"));
    // Each rule is unrolled `recursion_depth` times, so 13 * 4 levels at most.
    let nested = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
    assert!(a.accepts(nested(20).as_bytes()));
    assert!(!a.accepts(nested(60).as_bytes()));
}

#[test]
fn arithmetic() {
    let a = compile(
        "root ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\nterm ::= factor ((\"*\" | \"/\") factor)*\nfactor ::= [0-9]+ | \"(\" expr \")\"\n",
    );
    assert!(a.accepts(b"1+2*(3-4)/5"));
    assert!(!a.accepts(b"1+"));
    assert!(!a.accepts(b"(1"));
}

#[test]
fn errors_have_positions() {
    assert_eq!(err("root ::= \"a\"\nfoo ::= bar\n").1, 2);
    let (m, line, col) = err("root ::= \"a\"\nfoo ::= bar\n");
    assert!(m.contains("`bar`"), "{m}");
    assert_eq!((line, col), (2, 9));
    let (m, line, col) = err("root ::= [ab\n");
    assert!(m.contains("unterminated"), "{m}");
    assert_eq!((line, col), (1, 10));
    let (m, _, _) = err("item ::= \"a\"");
    assert!(m.contains("root"), "{m}");
    let (m, line, col) = err("root ::= \"a\" @");
    assert!(m.contains("'@'"), "{m}");
    assert_eq!((line, col), (1, 14));
    let (m, _, _) = err("root ::= (\"a\"");
    assert!(m.contains("unclosed"), "{m}");
    let (m, _, _) = err("root ::= \"a\"{3,1}");
    assert!(m.contains("max < min"), "{m}");
    let (m, _, _) = err("root ::= \"a\"\nroot ::= \"b\"");
    assert!(m.contains("twice"), "{m}");
}

#[test]
fn left_recursion_is_an_error() {
    let (m, _, _) = err("root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"");
    assert!(m.contains("left recursion") && m.contains("expr -> expr"), "{m}");
    let (m, _, _) = err("root ::= a\na ::= b? \"x\"\nb ::= a \"y\"");
    assert!(m.contains("left recursion"), "{m}");
}

#[test]
fn shipped_grammars_compile() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grammars");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gbnf") {
            let text = std::fs::read_to_string(&path).unwrap();
            compile_gbnf(&text, &Limits::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 3);
}
