#![allow(dead_code)]
//! Test helpers: a `ByteAutomaton` adapter over regex-automata's dense DFA
//! (flattened to an explicit table), vocab loaders, a greedy tokenizer.

use conform_format::format::accept_distance::bytes_to_accept;
use conform_format::mask::ByteAutomaton;
use conform_format::testdata::data_dir;
use conform_format::vocab::{TokenTrie, Vocab};
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

const NONE: u32 = u32::MAX;

/// Explicit DFA built from a regex (full-match semantics). States that can
/// never accept are pruned (their transitions become `None`).
pub struct TableDfa {
    trans: Vec<[u32; 256]>,
    accept: Vec<bool>,
    dist: Vec<u32>,
}

impl TableDfa {
    pub fn from_regex(pattern: &str) -> TableDfa {
        let dfa = dense::Builder::new()
            .configure(dense::Config::new().start_kind(StartKind::Anchored).match_kind(MatchKind::All))
            .build(pattern)
            .unwrap();
        let s0 = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)).unwrap();
        let mut ids: HashMap<StateID, u32> = HashMap::new();
        let mut order: Vec<StateID> = Vec::new();
        let mut queue = VecDeque::new();
        ids.insert(s0, 0);
        order.push(s0);
        queue.push_back(s0);
        let mut trans: Vec<[u32; 256]> = Vec::new();
        let mut accept = Vec::new();
        while let Some(s) = queue.pop_front() {
            let mut row = [NONE; 256];
            for b in 0..=255u8 {
                let n = dfa.next_state(s, b);
                if dfa.is_dead_state(n) || dfa.is_quit_state(n) {
                    continue;
                }
                let id = *ids.entry(n).or_insert_with(|| {
                    order.push(n);
                    queue.push_back(n);
                    (order.len() - 1) as u32
                });
                row[b as usize] = id;
            }
            trans.push(row);
            accept.push(dfa.is_match_state(dfa.next_eoi_state(s)));
        }
        let dist = bytes_to_accept(trans.len(), |s| &trans[s][..], NONE, |s| accept[s]);
        for row in trans.iter_mut() {
            for t in row.iter_mut() {
                if *t != NONE && dist[*t as usize] == NONE {
                    *t = NONE;
                }
            }
        }
        TableDfa { trans, accept, dist }
    }

    pub fn num_states(&self) -> usize {
        self.trans.len()
    }

    /// Full-match test of a byte string.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut s = 0u32;
        for &b in bytes {
            match self.next(s, b) {
                Some(n) => s = n,
                None => return false,
            }
        }
        self.is_accepting(s)
    }
}

impl ByteAutomaton for TableDfa {
    fn start(&self) -> u32 {
        0
    }
    #[inline]
    fn next(&self, state: u32, byte: u8) -> Option<u32> {
        let t = self.trans[state as usize][byte as usize];
        (t != NONE).then_some(t)
    }
    fn is_accepting(&self, state: u32) -> bool {
        self.accept[state as usize]
    }
    fn min_bytes_to_accept(&self, state: u32) -> u32 {
        self.dist[state as usize]
    }
}

pub struct Loaded {
    pub vocab: Arc<Vocab>,
    pub trie: Arc<TokenTrie>,
}

fn load(name: &str) -> Loaded {
    let path = data_dir().join(format!("tokenizers/{name}-tokenizer.json"));
    let vocab = Arc::new(Vocab::from_tokenizer_json(&path).unwrap());
    let trie = Arc::new(TokenTrie::new(&vocab));
    Loaded { vocab, trie }
}

pub fn qwen3() -> &'static Loaded {
    static V: OnceLock<Loaded> = OnceLock::new();
    V.get_or_init(|| load("qwen3"))
}

pub fn llama3() -> &'static Loaded {
    static V: OnceLock<Loaded> = OnceLock::new();
    V.get_or_init(|| load("llama3"))
}

/// Greedy longest-match tokenization over the trie (not BPE-canonical, but
/// a sensible stand-in for the engine's tokenizer in tests).
pub fn greedy_tokenize(vocab: &Vocab, trie: &TokenTrie, bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let mut node = 0usize;
        let mut best: Option<(usize, u32)> = None;
        let mut j = i;
        while j < bytes.len() {
            match trie.children(node).find(|&c| trie.byte(c) == bytes[j]) {
                Some(c) => {
                    node = c;
                    j += 1;
                    if let Some(&t) = trie.tokens_at(node).first() {
                        best = Some((j, t));
                    }
                }
                None => break,
            }
        }
        let (end, t) = best.unwrap_or_else(|| panic!("byte {} has no token", bytes[i]));
        let _ = vocab;
        out.push(t);
        i = end;
    }
    out
}
