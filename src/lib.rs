//! conform: an OpenAI-compatible LLM server on llama.cpp whose outputs follow a requested format.

pub mod ab;
pub mod chat_format;
pub mod chat_template;
pub mod engine;
pub mod format;
pub mod manifest;
pub mod mask;
pub mod metrics;
pub mod server;
pub mod tpm;
pub mod testdata;
pub mod vocab;
