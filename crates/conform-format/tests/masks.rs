mod mask_support;

use conform_format::mask::{ByteAutomaton, MaskError, MaskIndex, MaskStats, Matcher, TokenSet};
use conform_format::vocab::{TokenTrie, Vocab};
use mask_support::{greedy_tokenize, llama3, qwen3, Loaded, TableDfa};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

const JSON_RE: &str = r#"\{"name":"([^"\\\x00-\x1F]|\\["\\/bfnrt]){0,40}","age":-?(0|[1-9][0-9]{0,2}),"tags":\[("[a-z]{1,8}"(, ?"[a-z]{1,8}"){0,3})?\],"ok":(true|false)\}"#;
const CHOICE_RE: &str = r"(apple|banana|cherry pie|durian|elderberry|fig| fig newton|grape|grapefruit)";
const NUMBER_RE: &str = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?";
const TEXT_RE: &str = r"[A-Za-z ,.]{0,60}\.";

fn index(l: &Loaded, dfa: Arc<TableDfa>) -> Arc<MaskIndex> {
    Arc::new(MaskIndex::new(dfa, l.vocab.clone(), l.trie.clone()).unwrap())
}

// ---------------------------------------------------------------- vocab

fn check_vocab(v: &Vocab, the: u32, brace_quote: u32, colon: u32, eog: &[u32]) {
    assert!(v.has_all_bytes(), "every single byte must be a token");
    let singles = v.single_byte_tokens();
    for b in 0..256 {
        assert_eq!(v.token_bytes(singles[b].unwrap()), &[b as u8]);
    }
    assert_eq!(v.token_bytes(the), b" the");
    assert_eq!(v.token_bytes(brace_quote), b"{\"");
    assert_eq!(v.token_bytes(colon), b"\":\"");
    assert_eq!(v.token_bytes(198), b"\n");
    assert_eq!(v.token_bytes(262), b"   ");
    assert_eq!(v.eog_tokens(), eog);
    for &e in eog {
        assert!(v.is_eog(e));
        assert_eq!(v.token_bytes(e), b"");
    }
}

#[test]
fn qwen3_vocab() {
    let l = qwen3();
    assert_eq!(l.vocab.len(), 151669);
    check_vocab(&l.vocab, 279, 4913, 3252, &[151643, 151645]);
    assert_eq!(l.vocab.token_bytes(963), "é".as_bytes());
    assert_eq!(l.vocab.token_bytes(151657), b"<tool_call>"); // non-special added token = text
    assert_eq!(l.vocab.token_bytes(151644), b""); // <|im_start|> = control
}

#[test]
fn llama3_vocab() {
    let l = llama3();
    assert_eq!(l.vocab.len(), 128256);
    check_vocab(&l.vocab, 279, 5018, 3332, &[128001, 128009]);
    assert_eq!(l.vocab.token_bytes(128000), b""); // <|begin_of_text|>
    assert_eq!(l.vocab.n_text_tokens(), 128000);
}

#[test]
fn trie_matches_vocab() {
    for l in [qwen3(), llama3()] {
        let t = &l.trie;
        assert!(t.num_nodes() < 3 * l.vocab.len(), "nodes {}", t.num_nodes());
        // every text token is found at its node; every node token has the node's bytes
        let mut seen = 0usize;
        let mut path: Vec<u8> = Vec::new();
        for n in 1..t.num_nodes() {
            path.truncate(t.depth(n) - 1);
            path.push(t.byte(n));
            for &tok in t.tokens_at(n) {
                assert_eq!(l.vocab.token_bytes(tok), &path[..]);
                seen += 1;
            }
        }
        assert_eq!(seen, l.vocab.n_text_tokens());
        assert_eq!(t.tokens_at(t.find(b" the").unwrap()), &[279]);
    }
}

// ---------------------------------------------------------- brute force

/// Per token: Some(d(q')) if alive and can still accept, where `d` is the index's token
/// distance (its own soundness is checked in `token_distance_is_realised_by_a_token`).
fn brute(v: &Vocab, a: &dyn ByteAutomaton, idx: &MaskIndex, state: u32) -> Vec<Option<u32>> {
    (0..v.len() as u32)
        .map(|t| {
            let b = v.token_bytes(t);
            if b.is_empty() {
                return None;
            }
            let mut s = state;
            for &x in b {
                s = a.next(s, x)?;
            }
            (a.min_bytes_to_accept(s) != u32::MAX).then(|| idx.shortest_tokens(s))
        })
        .collect()
}

fn brute_set(v: &Vocab, a: &dyn ByteAutomaton, state: u32, per_tok: &[Option<u32>], budget: u32) -> TokenSet {
    let mut s = TokenSet::new(v.len());
    for (t, d) in per_tok.iter().enumerate() {
        if matches!(d, Some(d) if *d <= budget) {
            s.insert(t as u32);
        }
    }
    if a.is_accepting(state) {
        for &e in v.eog_tokens() {
            s.insert(e);
        }
    }
    s
}

const BUDGETS: &[u32] = &[0, 1, 2, 3, 5, 8, 13, 40, 1000, u32::MAX];

/// Random walks under a max_tokens budget; at every step compare every
/// budgeted mask with brute force, check closure (mask never empty, walk
/// ends accepting), and check `apply` on logits.
fn reference_walks(l: &Loaded, pattern: &str, seed: u64, walks: usize, max_tokens: u32) -> MaskStats {
    reference_walks_on(l, pattern, Arc::new(TableDfa::from_regex(pattern)), seed, walks, max_tokens)
}

/// [`reference_walks`] over any automaton (`pattern` names it in messages).
fn reference_walks_on(
    l: &Loaded,
    pattern: &str,
    dfa: Arc<dyn ByteAutomaton>,
    seed: u64,
    walks: usize,
    max_tokens: u32,
) -> MaskStats {
    let idx = Arc::new(MaskIndex::new(dfa.clone(), l.vocab.clone(), l.trie.clone()).unwrap());
    let v = &*l.vocab;
    let mut rng = StdRng::seed_from_u64(seed);
    let start = dfa.start();
    assert!(idx.shortest_tokens(start) <= max_tokens, "test budget too small for {pattern}");
    let mut checked_states = 0;
    let mut shaped = 0;
    let mut total_len = 0;
    for _ in 0..walks {
        let mut m = Matcher::new(idx.clone());
        let mut text = Vec::new();
        for i in 0..max_tokens {
            let rem_after = max_tokens - 1 - i;
            let st = m.state();
            let per_tok = brute(v, &*dfa, &idx, st);
            let sm = idx.exact_state_mask(st);
            let mut from_mask: Vec<(u32, u32)> = sm.tokens_with_d(&l.trie);
            from_mask.sort_by_key(|&(d, t)| (t, d));
            let from_brute: Vec<(u32, u32)> =
                per_tok.iter().enumerate().filter_map(|(t, d)| d.map(|d| (t as u32, d))).collect();
            let from_mask_td: Vec<(u32, u32)> = from_mask.iter().map(|&(d, t)| (t, d)).collect();
            assert_eq!(from_mask_td, from_brute, "tokens_with_d mismatch in state {st}");
            for &b in BUDGETS.iter().chain([rem_after].iter()) {
                if sm.budget_shapes(b) && sm.n_allowed_text(b) > 0 {
                    shaped += 1;
                }
                let got = m.allowed(b);
                let want = brute_set(v, &*dfa, st, &per_tok, b);
                if *got != want {
                    let extra: Vec<_> = got.iter().filter(|&t| !want.contains(t)).take(5).collect();
                    let missing: Vec<_> = want.iter().filter(|&t| !got.contains(t)).take(5).collect();
                    panic!("{pattern}: state {st} budget {b}: extra {extra:?} missing {missing:?}");
                }
                assert_eq!(
                    sm.n_allowed_text(b) + if dfa.is_accepting(st) { v.eog_tokens().len() } else { 0 },
                    want.count()
                );
            }
            checked_states += 1;
            // logits: extra ids beyond the vocab are disallowed
            let mut logits = vec![0.5f32; v.len() + 37];
            let n = m.apply(&mut logits, rem_after);
            let allowed = m.allowed(rem_after);
            assert_eq!(n, allowed.count());
            for (t, &x) in logits.iter().enumerate() {
                assert_eq!(x == 0.5, allowed.contains(t as u32), "logit {t}");
            }
            // closure: something is always allowed
            assert!(
                n > 0,
                "{pattern}: empty mask at step {i} (state {st}, rem_after {rem_after}), text {:?}",
                String::from_utf8_lossy(&text)
            );
            // pick: prefer text tokens, EOG with prob 0.2 when allowed
            let ids: Vec<u32> = allowed.iter().collect();
            let eogs: Vec<u32> = ids.iter().copied().filter(|&t| v.is_eog(t)).collect();
            let texts: Vec<u32> = ids.iter().copied().filter(|&t| !v.is_eog(t)).collect();
            let pick = if !eogs.is_empty() && (texts.is_empty() || rng.gen_bool(0.2)) {
                eogs[rng.gen_range(0..eogs.len())]
            } else {
                texts[rng.gen_range(0..texts.len())]
            };
            m.accept_within(pick, rem_after).unwrap();
            if v.is_eog(pick) {
                assert!(m.is_ended() && m.is_finished());
                break;
            }
            text.extend_from_slice(v.token_bytes(pick));
        }
        // generation stopped (EOG or budget): must be a full match
        assert!(dfa.accepts(&text), "{pattern}: walk ended with non-matching {:?}", String::from_utf8_lossy(&text));
        assert!(m.is_accepting());
        total_len += text.len();
    }
    assert!(checked_states >= walks);
    // the walks must exercise budget-shaped (partial) masks and real text
    assert!(shaped > 0, "{pattern}: no partially budget-shaped mask was checked");
    assert!(total_len >= walks, "{pattern}: walks too short");
    eprintln!("{pattern}: {checked_states} states, {shaped} shaped, avg len {}", total_len / walks);
    let st = idx.stats();
    // one walk per mask (bounded or exact), give or take a race
    assert!(st.walks as usize <= idx.cached_states() + idx.cached_exact_states() + 2);
    st
}

/// A length-limited JSON string (`maxLength`) is a chain of counting states that never loop;
/// its body tokens go by their length in characters (`trie::BodySplit`), so walks cover only
/// the other tokens, also below a `minLength`, where the distance bound falls with every
/// character. Masks must still equal brute force at every step and budget, and along a string
/// the walks must be far shorter than the trie.
#[test]
fn counted_strings_walk_in_bulk_and_stay_exact() {
    for (min, seeds) in [(0, [40, 41]), (40, [42, 43])] {
        let pattern = format!(r#""(?:[^"\\\x00-\x1F]|\\["\\/bfnrt]){{{min},300}}""#);
        for (l, seed) in [(qwen3(), seeds[0]), (llama3(), seeds[1])] {
            reference_walks(l, &pattern, seed, 3, 30);
            let idx = index(l, Arc::new(TableDfa::from_regex(&pattern)));
            let mut m = Matcher::new(idx.clone());
            let text = "\"Counting states: ünïcödé, 数字 and \\\"escapes\\\" walk in bulk too.";
            for t in greedy_tokenize(&l.vocab, &l.trie, text.as_bytes()) {
                assert!(m.allowed(u32::MAX).contains(t));
                m.accept(t).unwrap();
            }
            let st = idx.stats();
            let per_walk = st.nodes_visited / st.walks;
            assert!(
                per_walk < l.trie.num_nodes() as u64 / 8,
                "minLength {min}: {per_walk} nodes per walk of a {}-node trie",
                l.trie.num_nodes()
            );
            // inside the string, body tokens go by length: walks cover only the other tokens
            let rest = l.trie.body_split().unwrap().rest.num_nodes();
            eprintln!(
                "minLength {min}: {per_walk} nodes per walk; trie {} nodes, without body tokens {rest}",
                l.trie.num_nodes()
            );
            assert!(
                per_walk < rest as u64,
                "minLength {min}: {per_walk} nodes per walk, {rest} nodes without body tokens"
            );
        }
    }
}

#[test]
fn reference_qwen3_json() {
    reference_walks(qwen3(), JSON_RE, 1, 4, 60);
}
#[test]
fn reference_qwen3_choice_number_text() {
    reference_walks(qwen3(), CHOICE_RE, 2, 6, 6);
    reference_walks(qwen3(), NUMBER_RE, 3, 6, 12);
    reference_walks(qwen3(), TEXT_RE, 4, 4, 20);
}
#[test]
fn reference_llama3_json() {
    reference_walks(llama3(), JSON_RE, 5, 4, 60);
}
#[test]
fn reference_llama3_choice_number_text() {
    reference_walks(llama3(), CHOICE_RE, 6, 6, 6);
    reference_walks(llama3(), NUMBER_RE, 7, 6, 12);
    reference_walks(llama3(), TEXT_RE, 8, 4, 20);
}

/// A recursive network (undeclared members allowed: they call the any-JSON rule) with
/// counted strings, whose string positions a walk steps whole characters at a time
/// (`Recursive::body_char_step`) instead of byte by byte, and an unanchored pattern, whose body
/// closure runs on the rule DFA (`Recursive::body_closure_bound`): masks equal brute force.
#[test]
fn reference_recursive_counted_strings() {
    use conform_format::format::{compile_schema, Compiled, Limits, SchemaOptions};
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 7},
            "note": {"type": "string", "maxLength": 30},
            "code": {"type": "string", "pattern": "x[0-9]y"}
        },
        "required": ["name", "note", "code"],
        "additionalProperties": true
    });
    let (compiled, _) = compile_schema(&schema, &SchemaOptions::default(), &Limits::default()).unwrap();
    assert!(matches!(compiled, Compiled::Recursive(_)), "an open object is a recursive network");
    let net: Arc<dyn ByteAutomaton> = Arc::new(compiled);
    for (l, seed) in [(llama3(), 31), (qwen3(), 32)] {
        reference_walks_on(l, "recursive counted strings", net.clone(), seed, 3, 40);
    }
}

/// Keys where declared names and an undeclared member's key are all possible (a network, the
/// undeclared members holding any JSON): few body bytes loop there, yet every body string is a
/// live key, so a bounded mask takes each first letter's body tokens by the bound the rule DFA
/// gives (`Recursive::body_closure_bound`): masks equal brute force, at every budget.
#[test]
fn reference_keys_among_declared_names() {
    use conform_format::format::{compile_schema, Compiled, Limits, SchemaOptions};
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 5},
            "nickname": {"type": "integer"},
            "note": {"type": "boolean"},
            "code": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}
        },
        "additionalProperties": true
    });
    let (compiled, _) = compile_schema(&schema, &SchemaOptions::default(), &Limits::default()).unwrap();
    assert!(matches!(compiled, Compiled::Recursive(_)), "undeclared members hold any JSON: a network");
    let net: Arc<dyn ByteAutomaton> = Arc::new(compiled);
    for (l, seed) in [(llama3(), 41), (qwen3(), 42), (llama3(), 43)] {
        reference_walks_on(l, "keys among declared names", net.clone(), seed, 3, 30);
    }
}

/// Strings whose characters loop in the automaton (bulk accept of whole UTF-8 characters), and
/// variants whose Unicode classes split lead bytes, leave out 0x7F, or stop at 2-byte chars;
/// then the shapes body tokens go by length in (`trie::BodySplit`) or in bulk past 0x7F, U+2028
/// and U+2029 (`packed::UTF8_TEXT`): ECMA's `.` (no line separators), a first character of its
/// own then a count, and unanchored patterns: every character loops but one, or a bounded mask
/// takes every body token at once because the states they lead to keep them all live
/// (`LazyTable::body_bound`), or cannot because one character dies after the match.
const UNICODE_RES: [&str; 12] = [
    r#""([^"\\\x00-\x1F]|\\["\\/bfnrt])*""#,
    r#""[^"\\\x00-\x1F\u00E9\u4E2D]*""#,
    r#""[^"\\\x00-\x1F\x7F]*""#,
    r#""[\x20-\x21\x23-\x5B\x5D-\u07FF]*""#,
    r"[a-z \u0400-\u04FF\u4E00-\u9FFF]*\.",
    r#""[^"\\\x00-\x1F\x7F\u2028\u2029]{0,40}""#,
    r#""[a-z][^"\\\x00-\x1F]{0,6}""#,
    r#""[^"\\\x00-\x1F\u2028\u2029]*x[^"\\\x00-\x1F\u2028\u2029]*""#,
    r#""[^"\\\x00-\x1F]*(qzxjvkwpq|zzqq)[^"\\\x00-\x1F]*""#,
    r#""[^"\\\x00-\x1F]*(qzxjv|éaéaé)[^"\\\x00-\x1F]*""#,
    r#""[^"\\\x00-\x1Fx]*x[^"\\\x00-\x1Fy]*""#,
    // `\S` leaves out a few characters (U+00A0, U+3000) of lead bytes whose others loop
    r#""[^"\\\x00-\x20:\u00A0\u3000]+:[^"\\\x00-\x20\u00A0\u3000]+""#,
];
/// Tokens holding the characters some string automata leave out of a body they otherwise take
/// whole (0x7F; U+2028 and U+2029, which ECMA's `.` leaves out), among body text: masks that take
/// body tokens by length or subtrees in bulk must still equal the direct check of every token,
/// in every state and under tight budgets. (The real vocabularies hold no such tokens.)
#[test]
fn separators_and_del_stay_exact() {
    let mut toks: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
    for t in [
        "a\u{2028}",
        "\u{2028}",
        "\u{2029}b",
        "é\u{2029}",
        "x\u{7F}",
        "\u{7F}",
        "ab",
        "abc",
        "éé",
        "中文",
        "xa",
        "ax",
        "a\"",
        "\",",
        "ab\u{2028}cd",
        "zzzz",
        "é\u{7F}é",
    ] {
        toks.push(Some(t.as_bytes().to_vec()));
    }
    toks.push(None);
    let eog = toks.len() as u32 - 1;
    let v = Arc::new(Vocab::from_token_bytes(toks, vec![eog]));
    let trie = Arc::new(TokenTrie::new(&v));
    let patterns = [
        r#""[^"\\\x00-\x1F\u2028\u2029]*""#,
        r#""[^"\\\x00-\x1F\x7F]*""#,
        UNICODE_RES[5],
        UNICODE_RES[6],
        UNICODE_RES[7],
        UNICODE_RES[8],
        UNICODE_RES[9],
        UNICODE_RES[10],
    ];
    for pattern in patterns {
        let dfa = Arc::new(TableDfa::from_regex(pattern));
        let idx = MaskIndex::new(dfa.clone(), v.clone(), trie.clone()).unwrap();
        let mut seen = std::collections::HashSet::from([dfa.start()]);
        let mut todo = vec![dfa.start()];
        while let Some(s) = todo.pop() {
            for budget in [u32::MAX, 4, 1, 0] {
                let got = idx.allowed(s, budget);
                for t in 0..v.len() as u32 {
                    assert_eq!(
                        got.contains(t),
                        idx.is_allowed(s, t, budget),
                        "{pattern}: state {s}, budget {budget}, token {:?}",
                        String::from_utf8_lossy(v.token_bytes(t))
                    );
                }
            }
            for b in 0..=255u8 {
                if let Some(n) = dfa.next(s, b) {
                    if seen.len() < 300 && seen.insert(n) {
                        todo.push(n);
                    }
                }
            }
        }
    }
}

#[test]
fn reference_qwen3_unicode_strings() {
    for (i, p) in UNICODE_RES.iter().enumerate() {
        reference_walks(qwen3(), p, 20 + i as u64, 4, 16);
    }
}
#[test]
fn reference_llama3_unicode_strings() {
    for (i, p) in UNICODE_RES.iter().enumerate() {
        reference_walks(llama3(), p, 30 + i as u64, 4, 16);
    }
}

/// Tight budget: exactly the minimum. The walk must still end accepting.
#[test]
fn closure_with_minimal_budget() {
    let l = qwen3();
    for pat in [JSON_RE, NUMBER_RE, CHOICE_RE] {
        let dfa = Arc::new(TableDfa::from_regex(pat));
        let idx = index(l, dfa.clone());
        let min = idx.shortest_tokens(dfa.start());
        reference_walks(l, pat, 9, 2, min);
    }
}

// ---------------------------------------------------------- accept

#[test]
fn accept_rejects_disallowed() {
    let l = qwen3();
    let v = &l.vocab;
    let dfa = Arc::new(TableDfa::from_regex(NUMBER_RE));
    let idx = index(l, dfa);
    let mut m = Matcher::new(idx.clone());
    let the = 279;
    assert_eq!(m.accept(the), Err(MaskError::NotAllowed { token: the, state: 0 }));
    assert!(matches!(m.accept(151643), Err(MaskError::EogNotAccepting { .. })));
    assert!(matches!(m.accept(151644), Err(MaskError::ControlToken { .. })));
    assert!(matches!(m.accept(999_999), Err(MaskError::OutOfVocab { .. })));
    assert_eq!(m.state(), 0, "failed accepts leave the state unchanged");
    let one = v.single_byte_tokens()[b'1' as usize].unwrap();
    let minus = v.single_byte_tokens()[b'-' as usize].unwrap();
    // "-" needs one more byte: over budget with 0 remaining
    assert!(matches!(m.accept_within(minus, 0), Err(MaskError::OverBudget { needed: 1, remaining: 0, .. })));
    m.accept(one).unwrap();
    assert!(m.is_accepting());
    assert!(!m.is_finished(), "more digits may follow");
    assert!(!m.allowed(0).contains(minus));
    assert!(m.allowed(0).contains(151645));
    m.accept(151645).unwrap();
    assert!(m.is_ended() && m.is_finished());
    assert_eq!(m.accept(one), Err(MaskError::Finished));
    let mut logits = vec![1.0f32; 10];
    assert_eq!(m.apply(&mut logits, 5), 0);
}

#[test]
fn finished_when_no_continuation() {
    let l = qwen3();
    let dfa = Arc::new(TableDfa::from_regex("(yes|no)"));
    let idx = index(l, dfa);
    let mut m = Matcher::new(idx);
    let yes = l.trie.tokens_at(l.trie.find(b"yes").unwrap())[0];
    m.accept(yes).unwrap();
    assert!(m.is_accepting() && m.is_finished());
    let allowed = m.allowed(100);
    assert_eq!(allowed.iter().collect::<Vec<_>>(), vec![151643, 151645]);
}

// ---------------------------------------------------------- fast-forward

fn tiny_vocab(words: &[&str]) -> (Arc<Vocab>, Arc<TokenTrie>) {
    let mut toks: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
    toks.push(None); // 256: control (BOS-like)
    toks.push(None); // 257: EOG
    for w in words {
        toks.push(Some(w.as_bytes().to_vec()));
    }
    let v = Arc::new(Vocab::from_token_bytes(toks, vec![257]));
    let t = Arc::new(TokenTrie::new(&v));
    (v, t)
}

fn ids_of(v: &Vocab, toks: &[u32]) -> Vec<String> {
    toks.iter().map(|&t| String::from_utf8_lossy(v.token_bytes(t)).into_owned()).collect()
}

#[test]
fn forced_tokens_tiny() {
    let re = r#"\{"name":"[a-z]+"\}"#;
    // with a live extension of the last token: drop it
    let (v, t) = tiny_vocab(&["{\"", "name", "\":\"", "\":\"a", "\"}"]);
    let dfa = Arc::new(TableDfa::from_regex(re));
    let idx = Arc::new(MaskIndex::new(dfa.clone(), v.clone(), t.clone()).unwrap());
    let m = Matcher::new(idx.clone());
    assert_eq!(m.forced_bytes(), b"{\"name\":\"");
    let tok = |b: &[u8]| greedy_tokenize(&v, &t, b);
    let ff = m.forced_tokens(tok);
    assert_eq!(ids_of(&v, &ff), vec!["{\"", "name"]);
    // applying them leaves the rest forced
    let mut m2 = m.clone();
    for &x in &ff {
        m2.accept(x).unwrap();
    }
    assert_eq!(m2.forced_bytes(), b"\":\"");
    assert!(m2.forced_tokens(tok).is_empty(), "the dropped token stays dropped");

    // without the extension token: keep all three
    let (v, t) = tiny_vocab(&["{\"", "name", "\":\"", "\":\"{", "\"}"]);
    let idx = Arc::new(MaskIndex::new(dfa.clone(), v.clone(), t.clone()).unwrap());
    let m = Matcher::new(idx);
    let ff = m.forced_tokens(|b: &[u8]| greedy_tokenize(&v, &t, b));
    assert_eq!(ids_of(&v, &ff), vec!["{\"", "name", "\":\""]);

    // a tokenizer that emits a control token midway: keep the accepted prefix
    let ff = m.forced_tokens(|b: &[u8]| {
        let mut x = greedy_tokenize(&v, &t, b);
        x.insert(1, 256);
        x
    });
    assert_eq!(ids_of(&v, &ff), vec!["{\""]);
    // a tokenizer returning bytes that don't fit: nothing
    let ff = m.forced_tokens(|_b: &[u8]| vec![b'x' as u32]);
    assert!(ff.is_empty());

    // nothing forced in an accepting state or at a real choice
    let dfa = Arc::new(TableDfa::from_regex("(ab|ac)d"));
    let idx = Arc::new(MaskIndex::new(dfa, v.clone(), t.clone()).unwrap());
    let mut m = Matcher::new(idx);
    assert_eq!(m.forced_bytes(), b"a");
    m.accept(b'a' as u32).unwrap();
    assert_eq!(m.forced_bytes(), b"");
    m.accept(b'b' as u32).unwrap();
    assert_eq!(m.forced_bytes(), b"d");
    m.accept(b'd' as u32).unwrap();
    assert_eq!(m.forced_bytes(), b"");
}

#[test]
fn forced_tokens_qwen3() {
    let l = qwen3();
    let dfa = Arc::new(TableDfa::from_regex(r#"\{"name":"[a-z]+"\}"#));
    let idx = index(l, dfa.clone());
    let m = Matcher::new(idx.clone());
    let forced = m.forced_bytes();
    assert_eq!(forced, b"{\"name\":\"");
    let full = greedy_tokenize(&l.vocab, &l.trie, &forced);
    assert_eq!(ids_of(&l.vocab, &full), vec!["{\"", "name", "\":\""]);
    let ff = m.forced_tokens(|b: &[u8]| greedy_tokenize(&l.vocab, &l.trie, b));
    // the rule, checked by brute force: drop `":"` iff some token extending
    // it is live from the state before it
    let mut before = dfa.start();
    for &x in &full[..2] {
        before = idx.step_token(before, x).unwrap();
    }
    let colon = full[2];
    let cb = l.vocab.token_bytes(colon);
    let ext_live = (0..l.vocab.len() as u32).any(|t| {
        let b = l.vocab.token_bytes(t);
        b.len() > cb.len() && b.starts_with(cb) && idx.is_allowed(before, t, u32::MAX)
    });
    eprintln!("ext_live {ext_live}");
    if ext_live {
        assert_eq!(ff, full[..2].to_vec());
    } else {
        assert_eq!(ff, full);
    }
    // and the accepted tokens decode to a prefix of the forced bytes
    assert!(forced.starts_with(&l.vocab.decode(&ff)));
}

// ---------------------------------------------------------- misc

#[test]
fn vocab_mismatch_is_error() {
    let l = qwen3();
    let (v, _) = tiny_vocab(&[]);
    let dfa = Arc::new(TableDfa::from_regex("a"));
    assert!(matches!(MaskIndex::new(dfa, v, l.trie.clone()), Err(MaskError::VocabMismatch { .. })));
}

#[test]
fn cache_is_used() {
    let l = llama3();
    let dfa = Arc::new(TableDfa::from_regex(NUMBER_RE));
    let idx = index(l, dfa);
    let a = idx.allowed(0, 100);
    let b = idx.allowed(0, 100);
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(idx.stats().walks, 1);
    assert_eq!(idx.cached_states(), 1);
    // digits/minus only, from start
    assert!(a.iter().all(|t| {
        let b = l.vocab.token_bytes(t);
        b[0] == b'-' || b[0].is_ascii_digit()
    }));
}

/// The token distance is what makes closure a guarantee: every finite `T(q)` must be realised
/// by a real token to a state with `T - 1` (or `q` accepting with `T = 0`), and never exceed the
/// byte distance.
#[test]
fn token_distance_is_realised_by_a_token() {
    for l in [qwen3(), llama3()] {
        for pattern in [JSON_RE, NUMBER_RE, CHOICE_RE, TEXT_RE] {
            let dfa = Arc::new(TableDfa::from_regex(pattern));
            let idx = index(l, dfa.clone());
            let mut seen = vec![dfa.start()];
            let mut k = 0;
            while k < seen.len() && k < 300 {
                let q = seen[k];
                k += 1;
                let t = idx.shortest_tokens(q);
                let bytes = dfa.min_bytes_to_accept(q);
                assert!(t <= bytes, "{pattern}: T {t} > bytes {bytes}");
                if bytes == 0 {
                    assert_eq!(t, 0);
                } else {
                    let realised = (0..l.vocab.len() as u32)
                        .filter_map(|tok| idx.step_token(q, tok))
                        .any(|next| idx.shortest_tokens(next) + 1 == t);
                    assert!(realised, "{pattern}: T({q}) = {t} has no token to a state with {}", t - 1);
                }
                for b in 0..=255u8 {
                    if let Some(n) = dfa.next(q, b) {
                        if !seen.contains(&n) {
                            seen.push(n);
                        }
                    }
                }
            }
        }
    }
}

/// JSON laid out as the model writes it (`Whitespace::NATURAL`: a space, or a newline and
/// indentation, between tokens): masks equal brute force at every step and budget, and the
/// shortest closure is the compact one's.
#[test]
fn reference_natural_whitespace_json() {
    use conform_format::format::{schema_rules, Limits, SchemaOptions, Whitespace};
    let schema = serde_json::json!({"type": "object", "required": ["name", "tags", "ok"], "properties": {
        "name": {"type": "string", "maxLength": 20},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
        "ok": {"type": "boolean"}}});
    let lower = |whitespace| {
        schema_rules(&schema, &SchemaOptions { whitespace, ..SchemaOptions::default() }, &Limits::default(), 0).unwrap()
    };
    let natural = lower(Whitespace::NATURAL);
    assert!(!natural.recursive);
    for (l, seed) in [(qwen3(), 50), (llama3(), 51)] {
        reference_walks(l, &natural.regex, seed, 4, 60);
        let natural = index(l, Arc::new(TableDfa::from_regex(&natural.regex)));
        let compact = index(l, Arc::new(TableDfa::from_regex(&lower(Whitespace::Compact).regex)));
        let (n, c) = (Matcher::new(natural), Matcher::new(compact));
        assert_eq!(n.tokens_to_accept(), c.tokens_to_accept(), "whitespace is optional: closure costs no more tokens");
        assert_eq!(n.min_bytes_to_accept(), c.min_bytes_to_accept());
        let pretty = "{\n  \"name\": \"Ann\",\n  \"tags\": [\n    \"a\",\n    \"b\"\n  ],\n  \"ok\": true\n}";
        let mut m = Matcher::new(index(l, Arc::new(TableDfa::from_regex(&lower(Whitespace::NATURAL).regex))));
        for t in greedy_tokenize(&l.vocab, &l.trie, pretty.as_bytes()) {
            m.accept(t).unwrap();
        }
        assert!(m.is_accepting());
    }
}

/// Strings in the model's own surface (`SchemaOptions::raw_strings`: raw newlines and tabs in
/// unrestricted strings): masks equal brute force, closure costs no more than with escaped
/// strings, a pattern-restricted string stays strict, and a raw text the mask accepts becomes
/// JSON valid against its schema once escaped.
#[test]
fn reference_raw_strings_json() {
    use conform_format::format::{
        schema_rules, validate::validate, Limits, RawStringEscaper, SchemaOptions, Whitespace,
    };
    let schema = serde_json::json!({"type": "object", "required": ["why", "code", "n"], "properties": {
        "why": {"type": "string", "maxLength": 30},
        "code": {"type": "string", "pattern": "^[a-z]{1,4}$"},
        "n": {"type": "integer"}}});
    let lower = |raw_strings| {
        let options = SchemaOptions { whitespace: Whitespace::NATURAL, raw_strings, ..SchemaOptions::default() };
        schema_rules(&schema, &options, &Limits::default(), 0).unwrap()
    };
    let raw = lower(true);
    assert!(!raw.recursive);
    for (l, seed) in [(qwen3(), 60), (llama3(), 61)] {
        reference_walks(l, &raw.regex, seed, 4, 60);
        let accepts = |regex: &str, text: &str| {
            let mut m = Matcher::new(index(l, Arc::new(TableDfa::from_regex(regex))));
            greedy_tokenize(&l.vocab, &l.trie, text.as_bytes()).into_iter().all(|t| m.accept(t).is_ok())
                && m.is_accepting()
        };
        let written = "{\"why\": \"two lines:\n\tthen \\\"this\\\"\", \"code\": \"ab\", \"n\": 3}";
        assert!(accepts(&raw.regex, written));
        assert!(!accepts(&lower(false).regex, written), "escaped strings take no raw newline");
        assert!(
            !accepts(&raw.regex, "{\"why\": \"x\", \"code\": \"a\nb\", \"n\": 3}"),
            "a pattern string stays strict"
        );
        let delivered: serde_json::Value = serde_json::from_str(&RawStringEscaper::escape(written)).unwrap();
        assert_eq!(validate(&delivered, &schema, &schema), Some(true), "{delivered}");
        assert_eq!(delivered["why"], "two lines:\n\tthen \"this\"");
        let (r, e) = (
            index(l, Arc::new(TableDfa::from_regex(&raw.regex))),
            index(l, Arc::new(TableDfa::from_regex(&lower(false).regex))),
        );
        assert_eq!(Matcher::new(r).tokens_to_accept(), Matcher::new(e).tokens_to_accept());
    }
}

/// Maps (undeclared members valued by `additionalProperties`), undeclared members after
/// declared ones (keys that spell no declared name) and exact decimal bounds: masks equal
/// brute force at every step and budget, and texts are accepted or refused as the schema says.
#[test]
fn reference_maps_and_decimal_bounds_json() {
    use conform_format::format::{schema_rules, Limits, SchemaOptions};
    let schema = serde_json::json!({"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer", "minimum": 1},
        "scores": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0.1, "exclusiveMaximum": 0.75}, "maxProperties": 3}},
        "additionalProperties": {"type": "string", "maxLength": 6}});
    let lowered = schema_rules(&schema, &SchemaOptions::default(), &Limits::default(), 0).unwrap();
    assert!(!lowered.recursive);
    for (l, seed) in [(qwen3(), 70), (llama3(), 71)] {
        reference_walks(l, &lowered.regex, seed, 4, 60);
        let accepts = |text: &str| {
            let mut m = Matcher::new(index(l, Arc::new(TableDfa::from_regex(&lowered.regex))));
            greedy_tokenize(&l.vocab, &l.trie, text.as_bytes()).into_iter().all(|t| m.accept(t).is_ok())
                && m.is_accepting()
        };
        assert!(accepts(r#"{"id":2,"scores":{"math":0.1,"art":0.749999},"note":"hi"}"#));
        for refused in [
            r#"{"id":2,"scores":{"math":0.75}}"#,
            r#"{"id":2,"scores":{"a":0.2,"b":0.2,"c":0.2,"d":0.2}}"#,
            r#"{"id":2,"id":"x"}"#,
            r#"{"id":2,"note":"too long"}"#,
        ] {
            assert!(!accepts(refused), "{refused}");
        }
    }
}
