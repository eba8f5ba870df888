//! The engines under comparison, each behind the same two traits so that the worker times them
//! identically. Every engine works on the same vocabulary (token ids and their byte strings)
//! and gets instances serialised the way its own grammar lays JSON out.

use std::path::Path;
use std::sync::Arc;

use conform::format::{compile_schema, KeyOrder, Limits, SchemaOptions};
use conform::mask::{MaskIndex, Matcher};
use conform::vocab::{TokenTrie, Vocab};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use serde_json::Value;

pub const ENGINES: &[&str] = &["conform", "conform-strict", "llguidance", "outlines", "llamacpp"];

/// A compiled format, ready for instances.
pub trait Grammar {
    /// Back to the start state, for the next instance (not timed).
    fn restart(&mut self);
    /// Work a server does each step whatever the constraint, such as building the candidate
    /// array (not timed).
    fn prepare(&mut self) {}
    /// One timed step: compute the mask, check `token` is in it, commit it. False when the
    /// mask excludes the token (or the commit fails).
    fn step(&mut self, token: u32) -> bool;
    /// Whether end of sequence is allowed here (not timed).
    fn accepts_end(&mut self) -> bool;
}

/// An engine: compiles a JSON Schema up to its first mask.
pub trait Engine {
    fn compile(&mut self, schema: &Value) -> Result<Box<dyn Grammar>, String>;
    /// The key order of the objects this engine's grammar generates.
    fn key_order(&self) -> KeyOrder {
        KeyOrder::Schema
    }
}

/// The vocabulary every engine shares, and the tokenizer that turns instances into tokens.
pub struct Vocabulary {
    pub vocab: Arc<Vocab>,
    tokenizer: Tokenizer,
}

enum Tokenizer {
    Hf(Box<tokenizers::Tokenizer>),
    Gguf { model: Arc<LlamaModel>, _backend: Arc<LlamaBackend> },
}

impl Vocabulary {
    /// A `tokenizer.json` (Hugging Face) or a GGUF file, of which only the vocabulary is read.
    pub fn load(path: &Path) -> Result<Vocabulary, String> {
        if Self::is_gguf(path) {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            let params = LlamaModelParams::default().with_vocab_only(true);
            let model = LlamaModel::load_from_file(&backend, path, &params).map_err(|e| format!("{}: {e}", path.display()))?;
            let vocab = Arc::new(Vocab::from_llama(&model));
            Ok(Vocabulary { vocab, tokenizer: Tokenizer::Gguf { model: Arc::new(model), _backend: Arc::new(backend) } })
        } else {
            let vocab = Arc::new(Vocab::from_tokenizer_json(path).map_err(|e| e.to_string())?);
            let tok = tokenizers::Tokenizer::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Vocabulary { vocab, tokenizer: Tokenizer::Hf(Box::new(tok)) })
        }
    }

    pub fn is_gguf(path: &Path) -> bool {
        path.extension().is_some_and(|e| e == "gguf")
    }

    /// The model's own tokenisation of `text`, without BOS.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, String> {
        match &self.tokenizer {
            Tokenizer::Hf(t) => t.encode(text, false).map(|e| e.get_ids().to_vec()).map_err(|e| e.to_string()),
            Tokenizer::Gguf { model, .. } => Ok(model.vocab().tokenize(text.as_bytes(), false, false).into_iter().map(|t| t.0 as u32).collect()),
        }
    }

    /// The end-of-sequence token the peers are told about (the first end-of-generation token).
    pub fn eos(&self) -> u32 {
        self.vocab.eog_tokens().first().copied().unwrap_or(0)
    }

    pub fn engine(&self, name: &str) -> Result<Box<dyn Engine>, String> {
        Ok(match name {
            "conform" => Box::new(Conform::new(self, false)),
            "conform-strict" => Box::new(Conform::new(self, true)),
            "llguidance" => Box::new(Llguidance::new(self)?),
            "outlines" => Box::new(Outlines::new(self)),
            "llamacpp" => match &self.tokenizer {
                Tokenizer::Gguf { model, .. } => Box::new(LlamaCpp { model: model.clone(), eos: self.vocab.eog_tokens().to_vec() }),
                Tokenizer::Hf(_) => return Err("llamacpp needs a GGUF vocabulary".into()),
            },
            other => return Err(format!("unknown engine `{other}` (known: {})", ENGINES.join(", "))),
        })
    }
}

/// Large enough that the closure-within-budget rule never shapes a mask here.
const BUDGET: u32 = 1 << 16;

/// This engine, as the server runs it: keywords of no JSON Schema draft are the annotations the
/// specification says they are (peers do the same); `conform-strict` refuses them
/// (`format_options.unknown_keywords: "error"`).
struct Conform {
    vocab: Arc<Vocab>,
    trie: Arc<TokenTrie>,
    options: SchemaOptions,
}

impl Conform {
    fn new(v: &Vocabulary, refuse_unknown_keywords: bool) -> Conform {
        let options = SchemaOptions { refuse_unknown_keywords, ..SchemaOptions::default() };
        Conform { vocab: v.vocab.clone(), trie: Arc::new(TokenTrie::new(&v.vocab)), options }
    }
}

struct ConformGrammar {
    index: Arc<MaskIndex>,
    matcher: Matcher,
}

impl Engine for Conform {
    fn compile(&mut self, schema: &Value) -> Result<Box<dyn Grammar>, String> {
        let (automaton, _ignored) = compile_schema(schema, &self.options, &Limits::default()).map_err(|e| e.to_string())?;
        let index = Arc::new(MaskIndex::new(Arc::new(automaton), self.vocab.clone(), self.trie.clone()).map_err(|e| e.to_string())?);
        let mut matcher = Matcher::new(index.clone());
        matcher.allowed(BUDGET);
        Ok(Box::new(ConformGrammar { index, matcher }))
    }
}

impl Grammar for ConformGrammar {
    fn restart(&mut self) {
        self.matcher = Matcher::new(self.index.clone());
    }
    fn step(&mut self, token: u32) -> bool {
        self.matcher.allowed(BUDGET).contains(token) && self.matcher.accept(token).is_ok()
    }
    fn accepts_end(&mut self) -> bool {
        self.matcher.is_accepting()
    }
}

/// llguidance with its defaults (`ParserFactory` with the general slices, as llguidance's own
/// servers set it up), on a token trie built from the shared byte strings.
struct Llguidance {
    factory: llguidance::ParserFactory,
}

/// A `TokenizerEnv` over the byte strings; llguidance only tokenises grammar literals with it.
struct BytesEnv {
    trie: toktrie::TokTrie,
}

impl toktrie::TokenizerEnv for BytesEnv {
    fn tok_trie(&self) -> &toktrie::TokTrie {
        &self.trie
    }
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        self.trie.greedy_tokenize(s)
    }
}

impl Llguidance {
    fn new(v: &Vocabulary) -> Result<Llguidance, String> {
        let eos = v.eos();
        // Control tokens are "special" to toktrie: a 0xFF marker byte, then a name.
        let words: Vec<Vec<u8>> = (0..v.vocab.len() as u32)
            .map(|id| if v.vocab.is_text(id) { v.vocab.token_bytes(id).to_vec() } else { [&[0xFF][..], format!("<ctrl{id}>").as_bytes()].concat() })
            .collect();
        let info = toktrie::TokRxInfo::new(words.len() as u32, eos);
        let env: toktrie::TokEnv = Arc::new(BytesEnv { trie: toktrie::TokTrie::from(&info, &words) });
        let slices = llguidance::earley::SlicedBiasComputer::general_slices();
        let mut factory = llguidance::ParserFactory::new(&env, toktrie::InferenceCapabilities::default(), &slices).map_err(|e| e.to_string())?;
        factory.quiet();
        Ok(Llguidance { factory })
    }
}

struct LlguidanceGrammar {
    start: llguidance::Matcher,
    current: llguidance::Matcher,
}

impl Engine for Llguidance {
    fn compile(&mut self, schema: &Value) -> Result<Box<dyn Grammar>, String> {
        let grammar = llguidance::api::TopLevelGrammar::from_json_schema(schema.clone());
        let parser = self.factory.create_parser(grammar).map_err(|e| e.to_string())?;
        let mut start = llguidance::Matcher::new(Ok(parser));
        start.compute_mask().map_err(|e| e.to_string())?;
        let current = start.deep_clone();
        Ok(Box::new(LlguidanceGrammar { start, current }))
    }
}

impl Grammar for LlguidanceGrammar {
    fn restart(&mut self) {
        self.current = self.start.deep_clone();
    }
    fn step(&mut self, token: u32) -> bool {
        match self.current.compute_mask() {
            Ok(mask) => mask.is_allowed(token) && self.current.consume_token(token).is_ok(),
            Err(_) => false,
        }
    }
    fn accepts_end(&mut self) -> bool {
        self.current.is_accepting().unwrap_or(false)
    }
}

/// outlines-core: schema -> regex -> token index (its whole design); the mask is written as a
/// bitmask the way its `Guide.write_mask_into` does.
struct Outlines {
    vocabulary: outlines_core::vocabulary::Vocabulary,
    n_vocab: usize,
}

impl Outlines {
    fn new(v: &Vocabulary) -> Outlines {
        let eos = v.eos();
        let mut vocabulary = outlines_core::vocabulary::Vocabulary::new(eos);
        for id in 0..v.vocab.len() as u32 {
            if id != eos && v.vocab.is_text(id) {
                vocabulary.try_insert(v.vocab.token_bytes(id).to_vec(), id).expect("not EOS");
            }
        }
        Outlines { vocabulary, n_vocab: v.vocab.len() }
    }
}

struct OutlinesGrammar {
    index: outlines_core::index::Index,
    state: u32,
    mask: Vec<u32>,
}

impl OutlinesGrammar {
    fn write_mask(&mut self) {
        self.mask.fill(0);
        if let Some(tokens) = self.index.allowed_tokens_iter(&self.state) {
            for &t in tokens {
                self.mask[t as usize / 32] |= 1 << (t % 32);
            }
        }
    }
}

impl Engine for Outlines {
    fn compile(&mut self, schema: &Value) -> Result<Box<dyn Grammar>, String> {
        let regex = outlines_core::json_schema::regex_from_value(schema, None, None).map_err(|e| e.to_string())?;
        let index = outlines_core::index::Index::new(&regex, &self.vocabulary).map_err(|e| e.to_string())?;
        let state = index.initial_state();
        let mut g = OutlinesGrammar { index, state, mask: vec![0; self.n_vocab.div_ceil(32)] };
        g.write_mask();
        Ok(Box::new(g))
    }
}

impl Grammar for OutlinesGrammar {
    fn restart(&mut self) {
        self.state = self.index.initial_state();
    }
    fn step(&mut self, token: u32) -> bool {
        self.write_mask();
        if self.mask[token as usize / 32] & (1 << (token % 32)) == 0 {
            return false;
        }
        match self.index.next_state(&self.state, &token) {
            Some(s) => {
                self.state = s;
                true
            }
            None => false,
        }
    }
    fn accepts_end(&mut self) -> bool {
        self.index.is_final_state(&self.state)
    }
}

/// llama.cpp: `json_schema_to_grammar`, then its grammar sampler over the full candidate
/// array, as llama-server applies it when a request has a schema.
struct LlamaCpp {
    model: Arc<LlamaModel>,
    eos: Vec<u32>,
}

struct LlamaCppGrammar {
    sampler: LlamaSampler,
    template: Vec<LlamaTokenData>,
    candidates: LlamaTokenDataArray,
    eos: Vec<u32>,
}

impl LlamaCppGrammar {
    fn refill(&mut self) {
        self.candidates.data.clear();
        self.candidates.data.extend_from_slice(&self.template);
        self.candidates.selected = None;
        self.candidates.sorted = false;
    }
}

impl Engine for LlamaCpp {
    fn compile(&mut self, schema: &Value) -> Result<Box<dyn Grammar>, String> {
        let gbnf = llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| e.to_string())?;
        let sampler = LlamaSampler::grammar(&self.model, &gbnf, "root").map_err(|e| e.to_string())?;
        let n = self.model.vocab().n_tokens() as usize;
        let template: Vec<LlamaTokenData> = (0..n).map(|i| LlamaTokenData::new(LlamaToken(i as i32), 0.0, 0.0)).collect();
        let candidates = LlamaTokenDataArray::new(template.clone(), false);
        let mut g = LlamaCppGrammar { sampler, template, candidates, eos: self.eos.clone() };
        g.sampler.apply(&mut g.candidates);
        Ok(Box::new(g))
    }
    fn key_order(&self) -> KeyOrder {
        KeyOrder::RequiredFirst
    }
}

impl Grammar for LlamaCppGrammar {
    fn restart(&mut self) {
        self.sampler.reset();
    }
    fn prepare(&mut self) {
        self.refill();
    }
    fn step(&mut self, token: u32) -> bool {
        self.sampler.apply(&mut self.candidates);
        self.candidates.data[token as usize].logit().is_finite() && self.sampler.try_accept(LlamaToken(token as i32)).is_ok()
    }
    fn accepts_end(&mut self) -> bool {
        self.refill();
        self.sampler.apply(&mut self.candidates);
        self.eos.iter().any(|&t| self.candidates.data[t as usize].logit().is_finite())
    }
}
