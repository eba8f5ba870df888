//! conform's format engine: output formats compiled into byte automata, and token masks that
//! hold a language model to them.
//!
//! The front door is five types: a format as a [`Spec`]; a vocabulary as a [`TokEnv`]; a
//! [`Compiler`] (with its cache and [`Limits`]) that turns specs into [`Grammar`]s for that
//! vocabulary; and per sequence a [`Constraint`] that masks, commits and fast-forwards.
//!
//! ```
//! use std::sync::Arc;
//! use conform_format::{Compiler, Limits, Spec, TokEnv};
//! use conform_format::vocab::Vocab;
//!
//! // A toy vocabulary: the ten digits, "12" and an end-of-generation token (id 11, no bytes).
//! let mut tokens: Vec<Option<Vec<u8>>> = (b'0'..=b'9').map(|d| Some(vec![d])).collect();
//! tokens.push(Some(b"12".to_vec()));
//! tokens.push(None);
//! let env = TokEnv::with_greedy_tokenizer(Arc::new(Vocab::from_token_bytes(tokens, vec![11])));
//!
//! let compiler = Compiler::new(env, Limits::default());
//! let (grammar, _) = compiler.compile(&Spec::Regex("1[0-9]{2}".into())).unwrap();
//! let mut sequence = grammar.constraint();
//! let allowed = sequence.allowed(u32::MAX);
//! assert!(allowed.contains(1) && allowed.contains(10) && !allowed.contains(2));
//! sequence.commit(10).unwrap(); // "12"
//! assert!(!sequence.is_accepting());
//! sequence.commit(3).unwrap(); // "123"
//! assert!(sequence.is_accepting());
//! assert!(sequence.commit(4).is_err()); // a fourth digit is not allowed, and changes nothing
//! ```
//!
//! Below the front door:
//! * [`format`] — JSON Schema, regex, choices, GBNF grammars and writing instructions, each
//!   compiled into a [`mask::ByteAutomaton`].
//! * [`vocab`] — a tokenizer's vocabulary as the exact bytes of each token, and its trie.
//! * [`mask`] — per automaton state, the tokens that keep the output valid and able to finish
//!   within a token budget.
//! * [`tpm`] — the probabilistic format model behind lookahead decoding.
//!
//! No model runtime is linked: whoever samples (llama.cpp in the `conform` server, Python
//! through the `conform_format` package) hands this crate token ids and gets masks back.

mod compiler;
mod constraint;
mod spec;

pub mod format;
pub mod mask;
pub mod testdata;
pub mod tpm;
pub mod vocab;

pub use compiler::{Compiled, Compiler, Grammar, TokEnv, Tokenize};
pub use constraint::Constraint;
pub use format::{FormatError, Limits, SchemaOptions, Whitespace};
pub use spec::Spec;
