//! The engines under comparison, each behind the same two traits so that the worker times them
//! identically. Every engine works on the same vocabulary (token ids and their byte strings)
//! and gets instances serialised the way its own grammar lays JSON out.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
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

use crate::worker::Answer;

pub const ENGINES: &[&str] = &["conform", "conform-strict", "llguidance", "outlines", "llamacpp", "xgrammar"];

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
    /// Whether this engine runs and times whole jobs itself (XGrammar, in a process of its
    /// own): the worker then hands it each job's schema and instance tokens (`run_job`)
    /// instead of timing `compile` and `Grammar::step` in its own loop.
    fn runs_jobs(&self) -> bool {
        false
    }
    /// One job, answered as the worker's loop would. An `Err` ends the worker, which the
    /// parent counts as a crash of this schema and replaces.
    fn run_job(&mut self, _schema: &Value, _valid: &[Vec<u32>], _invalid: &[Vec<u32>]) -> Result<Answer, String> {
        Err("this engine is timed by the worker's loop".into())
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
            let model =
                LlamaModel::load_from_file(&backend, path, &params).map_err(|e| format!("{}: {e}", path.display()))?;
            let vocab = Arc::new(conform::engine::model_vocab(&model));
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
            Tokenizer::Gguf { model, .. } => {
                Ok(model.vocab().tokenize(text.as_bytes(), false, false).into_iter().map(|t| t.0 as u32).collect())
            }
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
            "xgrammar" => Box::new(XGrammar::new(self)?),
            "llamacpp" => match &self.tokenizer {
                Tokenizer::Gguf { model, .. } => {
                    Box::new(LlamaCpp { model: model.clone(), eos: self.vocab.eog_tokens().to_vec() })
                }
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
        let (automaton, _ignored) =
            compile_schema(schema, &self.options, &Limits::default()).map_err(|e| e.to_string())?;
        let index = Arc::new(
            MaskIndex::new(Arc::new(automaton), self.vocab.clone(), self.trie.clone()).map_err(|e| e.to_string())?,
        );
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
            .map(|id| {
                if v.vocab.is_text(id) {
                    v.vocab.token_bytes(id).to_vec()
                } else {
                    [&[0xFF][..], format!("<ctrl{id}>").as_bytes()].concat()
                }
            })
            .collect();
        let info = toktrie::TokRxInfo::new(words.len() as u32, eos);
        let env: toktrie::TokEnv = Arc::new(BytesEnv { trie: toktrie::TokTrie::from(&info, &words) });
        let slices = llguidance::earley::SlicedBiasComputer::general_slices();
        let mut factory = llguidance::ParserFactory::new(&env, toktrie::InferenceCapabilities::default(), &slices)
            .map_err(|e| e.to_string())?;
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
        let template: Vec<LlamaTokenData> =
            (0..n).map(|i| LlamaTokenData::new(LlamaToken(i as i32), 0.0, 0.0)).collect();
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
        self.candidates.data[token as usize].logit().is_finite()
            && self.sampler.try_accept(LlamaToken(token as i32)).is_ok()
    }
    fn accepts_end(&mut self) -> bool {
        self.refill();
        self.sampler.apply(&mut self.candidates);
        self.eos.iter().any(|&t| self.candidates.data[t as usize].logit().is_finite())
    }
}

/// XGrammar (PyPI `xgrammar`, pinned in bench/maskbench/requirements.txt), which is a Python
/// package: `xgrammar_peer.py` runs it in a Python process of its own, started once per worker,
/// and times its calls there, so neither the pipe nor JSON is counted. Configured as vLLM's
/// xgrammar backend runs it for a JSON Schema; the script says which options and why. Its
/// interpreter: `$MASKBENCH_PYTHON`, else the venv `make bench-peers` makes in
/// ~/.cache/conform/peers-venv.
struct XGrammar {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl XGrammar {
    const SCRIPT: &'static str = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/maskbench/xgrammar_peer.py");

    fn python() -> PathBuf {
        match std::env::var_os("MASKBENCH_PYTHON") {
            Some(p) => p.into(),
            None => {
                Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/conform/peers-venv/bin/python")
            }
        }
    }

    fn new(v: &Vocabulary) -> Result<XGrammar, String> {
        let python = Self::python();
        let mut child = Command::new(&python)
            .arg(Self::SCRIPT)
            .arg(std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("{}: {e} (make bench-peers installs XGrammar there; or set MASKBENCH_PYTHON)", python.display())
            })?;
        let mut x = XGrammar {
            stdin: BufWriter::new(child.stdin.take().unwrap()),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        };
        // The vocabulary once: each token's bytes in hex, control tokens empty (never allowed).
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(v.vocab.len() * 12);
        hex.push('[');
        for id in 0..v.vocab.len() as u32 {
            hex.push_str(if id == 0 { "\"" } else { ",\"" });
            if v.vocab.is_text(id) {
                for &b in v.vocab.token_bytes(id) {
                    hex.push(HEX[(b >> 4) as usize] as char);
                    hex.push(HEX[(b & 15) as usize] as char);
                }
            }
            hex.push('"');
        }
        hex.push(']');
        let setup = format!("{{\"vocab\":{hex},\"eos\":{},\"max_threads\":1}}", v.eos());
        let ready = x
            .exchange(&setup)
            .map_err(|e| format!("the XGrammar helper ({} {}) did not start: {e}", python.display(), Self::SCRIPT))?;
        if ready != "ready" {
            return Err(format!("the XGrammar helper said `{ready}` instead of `ready`"));
        }
        Ok(x)
    }

    /// One line out, one line back.
    fn exchange(&mut self, line: &str) -> Result<String, String> {
        writeln!(self.stdin, "{line}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("writing to the XGrammar helper: {e}"))?;
        let mut answer = String::new();
        match self.stdout.read_line(&mut answer) {
            Ok(0) => Err("the XGrammar helper exited".into()),
            Ok(_) => Ok(answer.trim_end().to_string()),
            Err(e) => Err(format!("reading from the XGrammar helper: {e}")),
        }
    }
}

impl Engine for XGrammar {
    fn compile(&mut self, _schema: &Value) -> Result<Box<dyn Grammar>, String> {
        Err("xgrammar runs whole jobs (run_job)".into())
    }
    fn runs_jobs(&self) -> bool {
        true
    }
    fn run_job(&mut self, schema: &Value, valid: &[Vec<u32>], invalid: &[Vec<u32>]) -> Result<Answer, String> {
        // The schema as text, its keys in their order (XGrammar lays properties out in it).
        let job = serde_json::json!({"schema": schema.to_string(), "valid": valid, "invalid": invalid});
        let line = self.exchange(&job.to_string())?;
        serde_json::from_str(&line).map_err(|e| format!("the XGrammar helper's answer: {e}"))
    }
}

impl Drop for XGrammar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
