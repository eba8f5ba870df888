//! `conform_format`: conform's format engine from Python (PyO3, abi3).
//!
//! A thin layer over the engine's front door (`conform_format::{TokEnv, Compiler, Spec,
//! Grammar, Constraint}`):
//!
//! * [`Tokenizer`]: a vocabulary as the exact bytes of each token id, plus its trie (a
//!   [`TokEnv`]).
//! * [`Compiler`]: JSON Schema, regex, choice lists and GBNF grammars (each a [`Spec`]) into a
//!   [`Grammar`], under the engine's [`Limits`]; it keeps what it compiled, so the same format
//!   compiled again is the same grammar.
//! * [`Grammar`]: the compiled automaton and its shared mask index (masks are cached per state
//!   and shared by every matcher of the grammar).
//! * [`Matcher`]: one sequence (a [`Constraint`]); fills XGrammar/llguidance-layout bitmasks
//!   (little-endian int32 words, bit `i` of the whole = token `i` allowed), accepts tokens,
//!   reports the bytes the format forces next.
//!
//! The GIL is released while compiling and while a mask is built.

use std::sync::Arc;

use conform_format::format::{Limits, SchemaOptions, Whitespace};
use conform_format::mask::TokenSet;
use conform_format::vocab::Vocab;
use conform_format::{Constraint, Spec, TokEnv};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PySlice, PyString};

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// `remaining_tokens` (tokens that may still be generated, the one sampled now included; `None`
/// = no limit) as the engine's `remaining_after` (tokens that may follow the one sampled now);
/// `None` when nothing may be generated.
fn remaining_after(remaining_tokens: Option<u64>) -> Option<u32> {
    match remaining_tokens {
        None => Some(u32::MAX),
        Some(0) => None,
        Some(n) => Some(u32::try_from(n - 1).unwrap_or(u32::MAX)),
    }
}

/// The `whitespace` argument of the JSON formats.
fn parse_whitespace(name: &str) -> PyResult<Whitespace> {
    match name {
        "compact" => Ok(Whitespace::Compact),
        "natural" => Ok(Whitespace::NATURAL),
        "flexible" => Ok(Whitespace::Flexible { max: 2 }),
        other => Err(PyValueError::new_err(format!(
            "whitespace={other:?}: expected \"compact\", \"natural\" or \"flexible\""
        ))),
    }
}

/// A tokenizer's vocabulary: the exact bytes of every token id, and the end-of-sequence ids.
#[pyclass(frozen, module = "conform_format")]
struct Tokenizer {
    /// Forced bytes would be spelled by greedy longest match (the package exposes them only as
    /// bytes, `Matcher.forced_bytes`, for the caller's own tokenizer).
    env: TokEnv,
}

impl Tokenizer {
    fn build(vocab: Vocab) -> Tokenizer {
        Tokenizer { env: TokEnv::with_greedy_tokenizer(Arc::new(vocab)) }
    }

    fn vocab(&self) -> &Vocab {
        self.env.vocab()
    }
}

#[pymethods]
impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json` (byte-level BPE or SentencePiece style).
    #[staticmethod]
    fn from_tokenizer_json(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Tokenizer> {
        py.detach(|| Vocab::from_tokenizer_json(&path).map(Tokenizer::build)).map_err(value_error)
    }

    /// Same as `from_tokenizer_json`, from the file's text.
    #[staticmethod]
    fn from_tokenizer_json_str(py: Python<'_>, text: &str) -> PyResult<Tokenizer> {
        let text = text.to_owned();
        py.detach(|| Vocab::from_tokenizer_json_bytes(text.as_bytes()).map(Tokenizer::build)).map_err(value_error)
    }

    /// From the bytes of each token id (`None` or `b""`: a control token, never allowed in
    /// text) and the end-of-sequence ids (allowed exactly where the output may end).
    #[staticmethod]
    fn from_token_bytes(py: Python<'_>, tokens: Vec<Option<Bound<'_, PyBytes>>>, eos: Vec<u32>) -> PyResult<Tokenizer> {
        let tokens: Vec<Option<Vec<u8>>> = tokens.iter().map(|t| t.as_ref().map(|b| b.as_bytes().to_vec())).collect();
        Ok(py.detach(|| Tokenizer::build(Vocab::from_token_bytes(tokens, eos))))
    }

    /// Number of token ids (control tokens included).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.vocab().len()
    }

    /// Sorted end-of-sequence token ids.
    #[getter]
    fn eos_tokens(&self) -> Vec<u32> {
        self.vocab().eog_tokens().to_vec()
    }

    /// Int32 words of one bitmask row: `ceil(vocab_size / 32)`.
    #[getter]
    fn bitmask_words(&self) -> usize {
        self.vocab().len().div_ceil(32)
    }

    /// The exact bytes of a token (`b""` for control and end-of-sequence tokens).
    fn token_bytes<'py>(&self, py: Python<'py>, token: u32) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.vocab().token_bytes(token))
    }

    fn __repr__(&self) -> String {
        format!("Tokenizer(vocab_size={}, eos_tokens={:?})", self.vocab().len(), self.vocab().eog_tokens())
    }
}

/// Compiles formats for one tokenizer, under the engine's limits (keyword arguments override
/// the defaults; see `conform_format::format::Limits`), and keeps what it compiled: the same
/// format compiled again by this compiler is the same grammar (`==`), at the cost of a lookup.
#[pyclass(frozen, module = "conform_format")]
struct Compiler {
    inner: conform_format::Compiler,
}

impl Compiler {
    fn finish(&self, py: Python<'_>, kind: &'static str, spec: Spec) -> PyResult<Grammar> {
        let inner = &self.inner;
        let (grammar, _compiled) = py.detach(|| inner.compile(&spec)).map_err(value_error)?;
        Ok(Grammar { inner: grammar, kind })
    }
}

#[pymethods]
impl Compiler {
    #[new]
    #[pyo3(signature = (tokenizer, *, dfa_size_bytes=None, determinize_size_bytes=None, max_schema_depth=None,
        max_repetition=None, max_regex_len=None, recursion_depth=None, max_nesting=None, max_lowering_work=None,
        mask_cache_bytes=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        tokenizer: &Tokenizer,
        dfa_size_bytes: Option<usize>,
        determinize_size_bytes: Option<usize>,
        max_schema_depth: Option<u32>,
        max_repetition: Option<u32>,
        max_regex_len: Option<usize>,
        recursion_depth: Option<u32>,
        max_nesting: Option<u32>,
        max_lowering_work: Option<usize>,
        mask_cache_bytes: Option<usize>,
    ) -> Compiler {
        let d = Limits::default();
        let limits = Limits {
            dfa_size_bytes: dfa_size_bytes.unwrap_or(d.dfa_size_bytes),
            determinize_size_bytes: determinize_size_bytes.unwrap_or(d.determinize_size_bytes),
            max_schema_depth: max_schema_depth.unwrap_or(d.max_schema_depth),
            max_repetition: max_repetition.unwrap_or(d.max_repetition),
            max_regex_len: max_regex_len.unwrap_or(d.max_regex_len),
            recursion_depth: recursion_depth.unwrap_or(d.recursion_depth),
            max_nesting: max_nesting.unwrap_or(d.max_nesting),
            max_lowering_work: max_lowering_work.unwrap_or(d.max_lowering_work),
            mask_cache_bytes: mask_cache_bytes.unwrap_or(d.mask_cache_bytes),
            ..d
        };
        Compiler { inner: conform_format::Compiler::new(tokenizer.env.clone(), limits) }
    }

    /// A JSON Schema (its JSON text, or a dict/bool that `json.dumps` accepts). `whitespace`:
    /// "compact" (none, the default), "natural" (nothing, one space, or a newline and
    /// indentation between tokens) or "flexible" (up to 2 of space/tab/newline).
    #[pyo3(signature = (schema, whitespace="compact"))]
    fn json_schema(&self, py: Python<'_>, schema: &Bound<'_, PyAny>, whitespace: &str) -> PyResult<Grammar> {
        let text: String = if let Ok(s) = schema.cast::<PyString>() {
            s.to_cow()?.into_owned()
        } else {
            py.import("json")?.call_method1("dumps", (schema,))?.extract()?
        };
        let schema: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| PyValueError::new_err(format!("the schema is not valid JSON: {e}")))?;
        let options = SchemaOptions { whitespace: parse_whitespace(whitespace)?, ..SchemaOptions::default() };
        self.finish(py, "json_schema", Spec::json_schema(&schema, &options))
    }

    /// Any JSON value (`object_only=True`: any JSON object, OpenAI's `json_object` mode).
    #[pyo3(signature = (whitespace="compact", object_only=false))]
    fn any_json(&self, py: Python<'_>, whitespace: &str, object_only: bool) -> PyResult<Grammar> {
        let whitespace = parse_whitespace(whitespace)?;
        let spec = if object_only { Spec::JsonObject { whitespace } } else { Spec::any_json(whitespace) };
        self.finish(py, "any_json", spec)
    }

    /// A regex (Rust `regex` syntax), matched against the whole output.
    fn regex(&self, py: Python<'_>, pattern: String) -> PyResult<Grammar> {
        self.finish(py, "regex", Spec::Regex(pattern))
    }

    /// Exactly one of the given strings.
    fn choice(&self, py: Python<'_>, choices: Vec<String>) -> PyResult<Grammar> {
        self.finish(py, "choice", Spec::Choice(choices))
    }

    /// A GBNF grammar (llama.cpp's syntax; the rule `root` is the output).
    fn grammar(&self, py: Python<'_>, gbnf: String) -> PyResult<Grammar> {
        self.finish(py, "grammar", Spec::Grammar(gbnf))
    }

    fn __repr__(&self) -> String {
        format!("Compiler(vocab_size={})", self.inner.env().vocab().len())
    }
}

/// A compiled format over one tokenizer. Immutable and thread-safe; masks computed for it are
/// cached and shared by all its matchers. Two grammars are equal (`==`, same hash) when they are
/// the same compiled grammar: what one compiler returns for the same format while it keeps it.
#[pyclass(frozen, module = "conform_format")]
struct Grammar {
    inner: Arc<conform_format::Grammar>,
    kind: &'static str,
}

#[pymethods]
impl Grammar {
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.index().vocab().len()
    }

    fn __eq__(&self, other: &Grammar) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn __hash__(&self) -> u64 {
        Arc::as_ptr(&self.inner) as usize as u64
    }

    /// Whether `text` (str or bytes) is a complete output of this format.
    fn accepts(&self, text: &Bound<'_, PyAny>) -> PyResult<bool> {
        let bytes: Vec<u8> = if let Ok(s) = text.cast::<PyString>() {
            s.to_cow()?.as_bytes().to_vec()
        } else if let Ok(b) = text.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            return Err(PyTypeError::new_err("accepts() takes str or bytes"));
        };
        Ok(self.inner.accepts(&bytes))
    }

    fn __repr__(&self) -> String {
        format!("Grammar(kind={:?}, vocab_size={})", self.kind, self.vocab_size())
    }
}

/// One sequence's position in a grammar.
#[pyclass(module = "conform_format")]
struct Matcher {
    inner: Constraint,
}

impl Matcher {
    fn allowed_set(&mut self, py: Python<'_>, remaining_tokens: Option<u64>) -> Option<Arc<TokenSet>> {
        let r = remaining_after(remaining_tokens)?;
        let inner = &mut self.inner;
        Some(py.detach(|| inner.allowed(r)))
    }
}

#[pymethods]
impl Matcher {
    #[new]
    fn new(grammar: &Grammar) -> Matcher {
        Matcher { inner: grammar.inner.constraint() }
    }

    /// Writes the allowed-token bitmask into `buf` (a writable, C-contiguous buffer: a
    /// `bytearray`, a `memoryview`, a numpy int32 array row) of at least
    /// `ceil(vocab_size / 32) * 4` bytes: little-endian int32 words, bit `i % 32` of word
    /// `i // 32` set = token `i` allowed. Bytes past the vocabulary are zeroed (a model's
    /// padded logits stay masked). `remaining_tokens`: how many tokens may still be generated,
    /// this one included (tokens whose output could not be finished within it are masked).
    /// Returns the number of allowed tokens.
    #[pyo3(signature = (buf, remaining_tokens=None))]
    fn fill_bitmask(
        &mut self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        remaining_tokens: Option<u64>,
    ) -> PyResult<usize> {
        let view = PyMemoryView::from(buf)?;
        if view.getattr("readonly")?.extract::<bool>()? {
            return Err(PyTypeError::new_err("fill_bitmask() needs a writable buffer (bytearray, numpy array)"));
        }
        let view = view.call_method1("cast", ("B",))?;
        let n_bytes = view.len()?;
        let need = self.inner.matcher().index().vocab().len().div_ceil(32) * 4;
        if n_bytes < need {
            return Err(PyValueError::new_err(format!(
                "bitmask buffer has {n_bytes} bytes; the vocabulary needs {need}"
            )));
        }
        let mut out = vec![0u8; n_bytes];
        let count = match self.allowed_set(py, remaining_tokens) {
            Some(set) => {
                for (chunk, word) in out[..need].chunks_mut(8).zip(set.words()) {
                    chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
                }
                set.count()
            }
            None => 0,
        };
        view.set_item(PySlice::new(py, 0, n_bytes as isize, 1), PyBytes::new(py, &out))?;
        Ok(count)
    }

    /// The allowed token ids, sorted (`remaining_tokens` as in `fill_bitmask`).
    #[pyo3(signature = (remaining_tokens=None))]
    fn allowed_tokens(&mut self, py: Python<'_>, remaining_tokens: Option<u64>) -> Vec<u32> {
        self.allowed_set(py, remaining_tokens).map(|s| s.iter().collect()).unwrap_or_default()
    }

    /// `logits` with every disallowed entry set to `-inf` (entries past the vocabulary too).
    #[pyo3(signature = (logits, remaining_tokens=None))]
    fn mask_logits(&mut self, py: Python<'_>, mut logits: Vec<f32>, remaining_tokens: Option<u64>) -> Vec<f32> {
        match remaining_after(remaining_tokens) {
            Some(r) => {
                let inner = &mut self.inner;
                py.detach(|| inner.mask_logits(&mut logits, r));
            }
            None => logits.fill(f32::NEG_INFINITY),
        }
        logits
    }

    /// Advances by `token`. Raises ValueError (the matcher unchanged) when the token is not
    /// allowed here; an end-of-sequence token is allowed where the output may end, and ends it.
    fn accept(&mut self, token: u32) -> PyResult<()> {
        self.inner.commit(token).map_err(value_error)
    }

    /// The bytes every valid continuation starts with (until the output could end or branch):
    /// the caller may tokenize and append them without sampling.
    fn forced_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.matcher().forced_bytes())
    }

    /// Whether the output so far is complete (an end-of-sequence token is allowed now).
    fn is_accepting(&self) -> bool {
        self.inner.is_accepting()
    }

    /// Whether generation should stop: an end-of-sequence token was accepted, or the output is
    /// complete and nothing can follow it.
    fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Back to the start of the output.
    fn reset(&mut self) {
        self.inner.reset()
    }

    /// An independent copy at the same position (beam search, speculative branches).
    fn copy(&self) -> Matcher {
        Matcher { inner: self.inner.clone() }
    }

    fn __copy__(&self) -> Matcher {
        self.copy()
    }

    fn __repr__(&self) -> String {
        format!("Matcher(accepting={}, finished={})", self.inner.is_accepting(), self.inner.is_finished())
    }
}

#[pymodule]
#[pyo3(name = "conform_format")]
fn conform_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tokenizer>()?;
    m.add_class::<Compiler>()?;
    m.add_class::<Grammar>()?;
    m.add_class::<Matcher>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
