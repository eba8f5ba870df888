//! The compiler and what it compiles for: a [`TokEnv`] (a vocabulary's bytes, its trie, its
//! end-of-generation tokens and its tokenizer, which travel together), a [`Compiler`] that turns
//! a [`Spec`] into a [`Grammar`] under its [`Limits`] and keeps what it compiled, and the
//! [`Grammar`] itself: the automaton, its token masks, and the keywords it skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::format::{FormatError, Limits};
use crate::mask::{ByteAutomaton, MaskIndex};
use crate::vocab::{TokenTrie, Vocab};
use crate::{Constraint, Spec};

/// Spells bytes as token ids, the way the model's own tokenizer would (fast-forward feeds the
/// bytes a format forces as these tokens).
pub type Tokenize = Arc<dyn Fn(&[u8]) -> Vec<u32> + Send + Sync>;

/// A vocabulary as the engine needs it: each token's bytes and the end-of-generation tokens
/// ([`Vocab`]), their trie, and the tokenizer. Cloning is cheap: the clones share all three.
#[derive(Clone)]
pub struct TokEnv {
    vocab: Arc<Vocab>,
    trie: Arc<TokenTrie>,
    tokenize: Tokenize,
}

impl TokEnv {
    /// Builds the trie of `vocab`.
    pub fn new(vocab: Arc<Vocab>, tokenize: Tokenize) -> TokEnv {
        let trie = Arc::new(TokenTrie::new(&vocab));
        TokEnv { vocab, trie, tokenize }
    }

    /// A vocabulary whose forced bytes are spelled by greedy longest match over its own tokens
    /// (for embedders without the model's tokenizer at hand: fast-forward then takes tokens the
    /// model's tokenizer might split differently, which are still valid).
    pub fn with_greedy_tokenizer(vocab: Arc<Vocab>) -> TokEnv {
        let trie = Arc::new(TokenTrie::new(&vocab));
        let (v, t) = (vocab.clone(), trie.clone());
        let tokenize: Tokenize = Arc::new(move |bytes: &[u8]| greedy_tokens(&v, &t, bytes));
        TokEnv { vocab, trie, tokenize }
    }

    pub fn vocab(&self) -> &Arc<Vocab> {
        &self.vocab
    }

    pub fn trie(&self) -> &Arc<TokenTrie> {
        &self.trie
    }

    pub fn tokenize(&self, bytes: &[u8]) -> Vec<u32> {
        (self.tokenize)(bytes)
    }
}

/// The longest text token at each position; stops where no token spells the next byte.
fn greedy_tokens(vocab: &Vocab, trie: &TokenTrie, bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let longest = (at + 1..=bytes.len().min(at + vocab.max_token_len()))
            .rev()
            .find_map(|end| trie.find(&bytes[at..end]).and_then(|n| trie.tokens_at(n).first().map(|&t| (t, end))));
        match longest {
            Some((token, end)) => {
                out.push(token);
                at = end;
            }
            None => break,
        }
    }
    out
}

/// A format compiled for one vocabulary: shared by every sequence that uses it.
pub struct Grammar {
    automaton: Arc<dyn ByteAutomaton>,
    index: Arc<MaskIndex>,
    env: Arc<TokEnv>,
    ignored: Vec<String>,
}

impl Grammar {
    /// Per-state token masks (computed on first use, then cached).
    pub fn index(&self) -> &Arc<MaskIndex> {
        &self.index
    }

    pub fn automaton(&self) -> &Arc<dyn ByteAutomaton> {
        &self.automaton
    }

    /// Schema keywords skipped as annotations (or, in lenient mode, as unsupported).
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// Whether `bytes` is a complete output of this format.
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        self.automaton.accepts(bytes)
    }

    /// The fewest tokens any complete output needs (an upper bound: bytes count as tokens).
    pub fn shortest_tokens(&self) -> u32 {
        self.index.shortest_tokens(self.automaton.start())
    }

    /// A fresh per-sequence constraint at the start of the format.
    pub fn constraint(&self) -> Constraint {
        Constraint::new(self.index.clone(), self.env.clone())
    }
}

/// Whether [`Compiler::compile`] found the grammar in its cache or compiled it, and how long
/// that took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiled {
    Cached,
    Fresh(Duration),
}

/// Compiled grammars kept; past this the cache starts over (grammars are cheap to rebuild).
const CACHE_ENTRIES: usize = 64;

/// Compiles [`Spec`]s for one vocabulary under one set of [`Limits`], and keeps what it
/// compiled: a format used again costs a lookup.
pub struct Compiler {
    env: Arc<TokEnv>,
    limits: Limits,
    cache: Mutex<HashMap<Spec, Arc<Grammar>>>,
}

impl Compiler {
    pub fn new(env: TokEnv, limits: Limits) -> Compiler {
        Compiler { env: Arc::new(env), limits, cache: Mutex::default() }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn env(&self) -> &Arc<TokEnv> {
        &self.env
    }

    /// The grammar of `spec`, from the cache or compiled now. Compiling a big schema can take
    /// a while (bounded by the limits): servers call this off their async threads.
    pub fn compile(&self, spec: &Spec) -> Result<(Arc<Grammar>, Compiled), FormatError> {
        let cached = {
            let mut cache = self.cache.lock().unwrap();
            // Masks grow while grammars are in use: past the byte budget over all of them, the
            // cache starts over (sequences holding a grammar keep it until they finish).
            let mask_bytes: usize = cache.values().map(|g| g.index.cached_bytes()).sum();
            if mask_bytes > self.limits.mask_cache_bytes {
                cache.clear();
            }
            // A recursive automaton that has interned many states is rebuilt for new work, so
            // its state and mask caches stop growing.
            cache.get(spec).filter(|g| !g.automaton().saturated()).cloned()
        };
        if let Some(grammar) = cached {
            return Ok((grammar, Compiled::Cached));
        }
        let start = Instant::now();
        let (automaton, ignored) = spec.build(&self.limits)?;
        let index = MaskIndex::new(automaton.clone(), self.env.vocab.clone(), self.env.trie.clone())
            .expect("the trie is built from this vocabulary")
            .with_cache_budget(self.limits.mask_cache_bytes / 8);
        let grammar = Arc::new(Grammar { automaton, index: Arc::new(index), env: self.env.clone(), ignored });
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(spec.clone(), grammar.clone());
        Ok((grammar, Compiled::Fresh(start.elapsed())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Whitespace;

    /// Every ASCII byte as a token, and an end-of-generation token (id 128, no bytes).
    fn ascii_env() -> TokEnv {
        let mut tokens: Vec<Option<Vec<u8>>> = (0u8..128).map(|b| Some(vec![b])).collect();
        tokens.push(None);
        TokEnv::with_greedy_tokenizer(Arc::new(Vocab::from_token_bytes(tokens, vec![128])))
    }

    #[test]
    fn the_same_spec_compiles_once() {
        let compiler = Compiler::new(ascii_env(), Limits::default());
        let spec = Spec::Regex("[0-9]+".into());
        let (first, how) = compiler.compile(&spec).unwrap();
        assert!(matches!(how, Compiled::Fresh(_)));
        let (again, how) = compiler.compile(&spec).unwrap();
        assert_eq!(how, Compiled::Cached);
        assert!(Arc::ptr_eq(&first, &again));
        let (other, _) = compiler.compile(&Spec::Regex("[0-9]*".into())).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
    }

    #[test]
    fn any_json_is_the_compile_any_json_network() {
        let limits = Limits::default();
        let compiler = Compiler::new(ascii_env(), limits.clone());
        for ws in [Whitespace::Compact, Whitespace::NATURAL] {
            let (grammar, _) = compiler.compile(&Spec::any_json(ws)).unwrap();
            let reference = crate::format::compile_any_json(ws, &limits).unwrap();
            for text in
                ["1", "-0.5e3", "\"a\\\"b\"", "[1,[2,{\"x\":null}]]", "{}", "[]", "true", "{", "[1,]", "nul", ""]
            {
                assert_eq!(grammar.accepts(text.as_bytes()), reference.accepts(text.as_bytes()), "{text:?}");
            }
        }
        let (grammar, _) = compiler.compile(&Spec::any_json(Whitespace::Compact)).unwrap();
        assert!(grammar.accepts(b"[1,{\"a\":\"b\"}]") && !grammar.accepts(b"[1,"));
    }
}
