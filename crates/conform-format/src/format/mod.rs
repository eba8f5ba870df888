//! The format compiler: turns output constraints — a regex, a choice list, "any JSON", a JSON
//! Schema or a grammar — into a byte-level automaton with stable state ids (an eagerly built
//! dense [`Automaton`], or a lazily determinised [`Recursive`] network of them), so the mask module can step token bytes through it and the closure logic
//! can read, for every state, the fewest bytes still needed to finish.
//!
//! Everything is lowered to a regex first (JSON Schema included: see [`json_schema`]), parsed
//! into an NFA by `regex-automata`, then determinised by our subset construction
//! (`determinize`) under explicit [`Limits`]: a constraint too big to compile
//! fails with [`FormatError::TooComplex`] instead of exhausting memory. Recursive formats
//! (`$ref` cycles, recursive grammar rules, any-JSON values) lower to several regexes that call
//! each other and compile to a [`Recursive`] automaton instead ([`Compiled`] is either). The
//! lowering is allowed to *narrow* the language (e.g. only canonical compact JSON, bounded
//! nesting, long strings capped) but never to widen it: an unsupported keyword is an error
//! naming the keyword and its JSON pointer.

pub mod accept_distance;
pub mod automaton;
pub mod choice;
pub mod compiled;
mod determinize;
pub mod error;
pub mod gbnf;
pub mod grammar;
pub mod instructions;
pub mod json;
mod json_char;
pub mod json_schema;
pub mod limits;
pub mod number;
pub mod pattern;
pub mod product;
pub mod recursive;
pub mod regex;
mod rule_cache;
pub mod validate;

pub use automaton::{Automaton, StateId};
pub use choice::{choice_regex, compile_choice};
pub use compiled::Compiled;
pub use error::{FormatError, Limit};
pub use gbnf::compile_gbnf;
pub use json::{any_json_regex, compile_any_json, compile_json_object, json_object_regex, RawStringEscaper};
pub use json_schema::{
    canonical_json, canonical_json_ordered, compile_schema, schema_rules, KeyOrder, SchemaOptions, SchemaRegex,
    Whitespace,
};
pub use limits::Limits;
pub use recursive::Recursive;
pub use regex::compile_regex;
