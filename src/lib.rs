//! conform: an OpenAI-compatible LLM server on llama.cpp whose outputs follow a requested format.
//!
//! The format engine is the `conform-format` crate (no llama.cpp); its modules are re-exported
//! here under their own names, so `conform::format` is `conform_format::format`.

pub mod ab;
pub mod allocator;
pub mod chat_format;
pub mod chat_template;
pub mod distill;
pub mod engine;
pub mod manifest;
pub mod metrics;
pub mod server;

pub use conform_format::{format, mask, testdata, tpm, vocab};
