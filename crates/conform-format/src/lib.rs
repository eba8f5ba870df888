//! conform's format engine: output formats compiled into byte automata, and token masks that
//! hold a language model to them.
//!
//! * [`format`] — JSON Schema, regex, choices, GBNF grammars and writing instructions, each
//!   compiled into a [`mask::ByteAutomaton`].
//! * [`vocab`] — a tokenizer's vocabulary as the exact bytes of each token, and its trie.
//! * [`mask`] — per automaton state, the tokens that keep the output valid and able to finish
//!   within a token budget.
//! * [`tpm`] — the probabilistic format model behind lookahead decoding.
//!
//! No model runtime is linked: whoever samples (llama.cpp in the `conform` server, Python
//! through the `conform_format` package) hands this crate token ids and gets masks back.

pub mod format;
pub mod mask;
pub mod testdata;
pub mod tpm;
pub mod vocab;
