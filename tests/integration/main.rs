//! conform's integration tests, one binary (each test binary links llama.cpp, so one binary
//! links it once). Most start the real `conform` binary on the real default model
//! ([`common::Server`]); some load a model's vocabulary or chat template in-process. The
//! format engine's own tests live with it, in `crates/conform-format/tests`.

#![allow(dead_code)]

mod common;
#[path = "../../crates/conform-format/tests/mask_support/mod.rs"]
mod mask_support;

mod ab;
mod api;
mod chat_formats;
mod chat_template;
mod closure;
mod formats;
mod grammars;
mod hostile_server;
mod instructions;
mod isolation;
mod lookahead;
mod playground;
mod vocab_gguf;
