//! Fuzz target: compile an arbitrary format spec with the default limits, then walk a
//! `Matcher` over a small synthetic vocabulary, checking every mask against a brute-force
//! oracle computed from the automaton.
//!
//! Input layout: `[mode] spec \0 script`, or `[mode | 0x80] [factor] spec \0 script` to grow
//! the spec into a large input (see [`grow`]: rule chains, long word and choice lists, many
//! alternatives), so that small seeds reach the sizes where work and stack limits matter;
//! * `mode & 0x7f % 5`: 0 = regex, 1 = JSON Schema (text), 2 = choice list (one alternative per line),
//!   3 = writing instructions (the JSON list of `response_format: {"type": "instructions"}`),
//!   4 = GBNF grammar;
//! * `spec`: bytes up to the first NUL (lossily decoded as UTF-8);
//! * `script`: one byte per step, picking the `(byte % n_allowed)`-th allowed token.
//!
//! Checked: no panic; while not finished the mask is non-empty (with no budget, and with the
//! tightest budget that can still finish); the mask is exactly the oracle's allowed set; every
//! accepted token's bytes step the automaton to the matcher's state; forced bytes stay live;
//! when finished (or the EOG is accepted) the automaton accepts the output.
#![no_main]

use std::sync::{Arc, OnceLock};

use conform_format::format::{self, Limits, SchemaOptions};
use conform_format::mask::{ByteAutomaton, MaskIndex, Matcher};
use conform_format::vocab::{TokenTrie, Vocab};
use libfuzzer_sys::fuzz_target;

const MAX_STEPS: usize = 256;

struct SmallVocab {
    vocab: Arc<Vocab>,
    trie: Arc<TokenTrie>,
    eog: u32,
}

/// All 256 single bytes, multi-byte tokens (JSON punctuation, words, whole and partial UTF-8
/// sequences), one control token and one EOG token.
fn small_vocab() -> &'static SmallVocab {
    static V: OnceLock<SmallVocab> = OnceLock::new();
    V.get_or_init(|| {
        let mut toks: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
        let multi: &[&[u8]] = &[
            b"ab",
            b"abc",
            b"aa",
            b"aaaa",
            b"{\"",
            b"\":",
            b"\":\"",
            b"\",\"",
            b"\"}",
            b"\",",
            b"},{",
            b"[]",
            b"{}",
            b"[{",
            b"}]",
            b"null",
            b"true",
            b"false",
            b"12",
            b"0.",
            b".5",
            b"-1",
            b"e+",
            b"  ",
            b"\n",
            b"\\n",
            b"\\\"",
            b"\\u00",
            b"name",
            b" the",
            b"-0",
            b"00",
            "é".as_bytes(),
            "€".as_bytes(),
            b"\xE2\x82",
            b"\x82\xAC",
            "😀".as_bytes(),
            b"\xF0\x9F",
            b"T12:",
            b"Z\"",
        ];
        for t in multi {
            toks.push(Some(t.to_vec()));
        }
        toks.push(None); // control token
        toks.push(None); // EOG
        let eog = toks.len() as u32 - 1;
        let vocab = Arc::new(Vocab::from_token_bytes(toks, vec![eog]));
        let trie = Arc::new(TokenTrie::new(&vocab));
        SmallVocab { vocab, trie, eog }
    })
}

/// Grows `spec` by `factor`: a regex into `factor * 16` alternatives of it; a schema into an
/// object of `factor * 16` properties with it as their schema; a choice list repeated
/// `factor * 16` times (lines numbered apart); an instruction into `factor` copies of it with
/// its first word list extended by `factor * 32` words; a GBNF rule body into a chain of
/// `factor * 40` rules that each use it once and call the next.
fn grow(mode: u8, spec: &str, factor: usize) -> String {
    match mode % 5 {
        0 => vec![format!("(?:{spec})"); factor * 16].join("|"),
        1 => {
            let Ok(schema) = serde_json::from_str::<serde_json::Value>(spec) else { return spec.to_string() };
            let properties: serde_json::Map<String, serde_json::Value> =
                (0..factor * 16).map(|i| (format!("p{i}"), schema.clone())).collect();
            serde_json::json!({"type": "object", "properties": properties}).to_string()
        }
        2 => (0..factor * 16)
            .flat_map(|i| spec.split('\n').map(move |line| format!("{line}{i}")))
            .collect::<Vec<_>>()
            .join("\n"),
        3 => {
            let Ok(mut instruction) = serde_json::from_str::<serde_json::Value>(spec) else { return spec.to_string() };
            if let Some(list) = instruction.as_object_mut().and_then(|o| o.values_mut().find_map(|v| v.as_array_mut()))
            {
                list.extend((0..factor * 32).map(|i| serde_json::Value::String(format!("w{i}x"))));
            }
            serde_json::Value::Array(vec![instruction; factor.max(1)]).to_string()
        }
        _ => {
            let n = factor * 40;
            let mut g = String::from("root ::= r0\n");
            for i in 0..n {
                g.push_str(&format!("r{i} ::= {spec} r{}\n", i + 1));
            }
            g.push_str(&format!("r{n} ::= {spec}\n"));
            g
        }
    }
}

fn compile(mode: u8, spec: &str) -> Option<Arc<dyn ByteAutomaton>> {
    let limits = Limits::default();
    fn dyn_ok<A: ByteAutomaton + 'static>(
        r: Result<A, format::FormatError>,
    ) -> Result<Arc<dyn ByteAutomaton>, format::FormatError> {
        r.map(|a| Arc::new(a) as Arc<dyn ByteAutomaton>)
    }
    let r = match mode % 5 {
        0 => dyn_ok(format::compile_regex(spec, &limits)),
        1 => {
            let schema: serde_json::Value = serde_json::from_str(spec).ok()?;
            // The mode byte's other values pick the whitespace between JSON tokens.
            let whitespace =
                [format::Whitespace::Compact, format::Whitespace::NATURAL, format::Whitespace::Flexible { max: 2 }]
                    [(mode / 5 % 3) as usize];
            let options = SchemaOptions { whitespace, ..SchemaOptions::default() };
            dyn_ok(format::compile_schema(&schema, &options, &limits).map(|(a, _)| a))
        }
        2 => {
            let choices: Vec<&str> = spec.split('\n').collect();
            dyn_ok(format::compile_choice(&choices, &limits))
        }
        4 => dyn_ok(format::compile_gbnf(spec, &limits)),
        _ => {
            let list: serde_json::Value = serde_json::from_str(spec).ok()?;
            format::instructions::parse_list(&list)
                .and_then(|list| format::instructions::compile(&list, None, &limits))
                .map(|a| Arc::new(a) as Arc<dyn ByteAutomaton>)
        }
    };
    match r {
        Ok(a) => Some(a),
        Err(e) => {
            // Errors must render (they are shown to API users as-is).
            assert!(!e.to_string().is_empty());
            None
        }
    }
}

/// The oracle: is `tok` allowed in `s` when `remaining_after` tokens may follow it? The budget
/// is the index's token distance, whose own invariants the walk checks at every state.
fn oracle(a: &dyn ByteAutomaton, index: &MaskIndex, v: &Vocab, s: u32, tok: u32, remaining_after: u32) -> bool {
    if v.is_eog(tok) {
        return a.is_accepting(s);
    }
    let bytes = v.token_bytes(tok);
    if bytes.is_empty() {
        return false;
    }
    let mut q = s;
    for &b in bytes {
        match a.next(q, b) {
            Some(n) => q = n,
            None => return false,
        }
    }
    a.min_bytes_to_accept(q) != u32::MAX && index.shortest_tokens(q) <= remaining_after
}

fn check_mask(
    m: &mut Matcher,
    a: &dyn ByteAutomaton,
    index: &MaskIndex,
    v: &Vocab,
    s: u32,
    remaining_after: u32,
    logits: &mut [f32],
) -> usize {
    logits.fill(0.0);
    let n = m.apply(logits, remaining_after);
    let mut count = 0;
    for tok in 0..v.len() as u32 {
        let want = oracle(a, index, v, s, tok, remaining_after);
        let got = logits[tok as usize].is_finite();
        assert_eq!(
            got,
            want,
            "token {tok} ({:?}) in state {} with budget {remaining_after}: mask {got}, oracle {want}",
            String::from_utf8_lossy(v.token_bytes(tok)),
            s
        );
        count += want as usize;
    }
    assert_eq!(n, count, "apply's count");
    n
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let factor = match (mode & 0x80 != 0, rest.split_first()) {
        (true, Some((&f, tail))) => {
            rest = tail;
            Some(f as usize)
        }
        (true, None) => return,
        (false, _) => None,
    };
    let mode = mode & 0x7f;
    let (spec, script) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let spec = String::from_utf8_lossy(spec);
    let spec = match factor {
        Some(f) => std::borrow::Cow::Owned(grow(mode, &spec, f)),
        None => spec,
    };
    let Some(a) = compile(mode, &spec) else { return };
    let sv = small_vocab();
    let v = &sv.vocab;
    let index = Arc::new(MaskIndex::new(a.clone(), v.clone(), sv.trie.clone()).unwrap());
    let mut m = Matcher::new(index.clone());
    let mut logits = vec![0f32; v.len() + 3]; // longer than the vocab: extra ids are masked
    let mut s = a.start();
    let mut out: Vec<u8> = Vec::new();
    let mut script = script.iter();

    for _ in 0..MAX_STEPS {
        assert_eq!(m.state(), s, "matcher state");
        let d = a.min_bytes_to_accept(s);
        assert_ne!(d, u32::MAX, "the walk reached a state that cannot finish");
        // The token distance: never above the byte distance, and realised by a real token.
        let t = index.shortest_tokens(s);
        assert!(t <= d, "token distance {t} above byte distance {d} in state {}", s);
        if d > 0 {
            let realised = (0..v.len() as u32)
                .filter_map(|tok| index.step_token(s, tok))
                .any(|next| index.shortest_tokens(next).saturating_add(1) == t);
            assert!(realised, "token distance {t} of state {} has no token to a state with {}", s, t - 1);
        }
        if m.is_finished() {
            assert!(a.accepts(&out), "finished but the automaton rejects {:?}", String::from_utf8_lossy(&out));
            return;
        }
        // Forced bytes stay live.
        let mut q = s;
        for &b in &m.forced_bytes() {
            q = a.next(q, b).expect("forced byte is dead");
            assert_ne!(a.min_bytes_to_accept(q), u32::MAX, "forced byte leads nowhere");
        }
        // The tightest budget that can still finish.
        let n_tight = check_mask(&mut m, &*a, &index, v, s, t.saturating_sub(1), &mut logits);
        assert!(n_tight > 0, "empty mask at budget {} in state {} (token distance {t})", t.saturating_sub(1), s);
        for x in &logits[v.len()..] {
            assert!(!x.is_finite(), "ids beyond the vocabulary must be masked");
        }
        let n = check_mask(&mut m, &*a, &index, v, s, u32::MAX, &mut logits);
        assert!(n > 0, "empty mask while not finished in state {}", s);
        let Some(&c) = script.next() else { break };
        let pick = c as usize % n;
        let tok = logits.iter().enumerate().filter(|(_, l)| l.is_finite()).nth(pick).map(|(i, _)| i as u32).unwrap();
        m.accept(tok).unwrap_or_else(|e| panic!("allowed token {tok} rejected: {e}"));
        if tok == sv.eog {
            assert!(m.is_ended() && m.is_finished());
            assert!(a.accepts(&out), "EOG accepted but the automaton rejects {:?}", String::from_utf8_lossy(&out));
            assert!(m.accept(0).is_err(), "tokens after the EOG");
            return;
        }
        for &b in v.token_bytes(tok) {
            s = a.next(s, b).unwrap_or_else(|| panic!("accepted token {tok} has a dead byte {b:#x}"));
        }
        out.extend_from_slice(v.token_bytes(tok));
    }
    if a.is_accepting(s) {
        assert!(a.accepts(&out));
    }
});
