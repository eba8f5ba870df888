//! One input type for every format the engine compiles. A [`Spec`] is also the key under which
//! a [`Compiler`](crate::Compiler) caches what it compiled, so it holds schemas and instruction
//! lists as serialised JSON text (an embedder building one by hand gets a format error, not a
//! panic, when that text is not JSON).

use std::sync::Arc;

use serde_json::Value;

use crate::format::{self, instructions, FormatError, Limits, SchemaOptions, Whitespace};
use crate::mask::ByteAutomaton;

/// What a format compiles from.
#[derive(Debug, Hash, PartialEq, Eq, Clone)]
pub enum Spec {
    /// A regex the whole output must match.
    Regex(String),
    /// One of these strings, exactly.
    Choice(Vec<String>),
    /// A GBNF grammar (llama.cpp's dialect).
    Grammar(String),
    /// Any JSON object.
    JsonObject { whitespace: Whitespace },
    /// A JSON Schema, serialised (`serde_json::Value::to_string`), and how to lower it.
    JsonSchema { schema: String, lenient: bool, whitespace: Whitespace, refuse_unknown: bool, raw_strings: bool },
    /// Writing instructions (the JSON list of IFEval-style instructions), intersected with
    /// another format if any.
    Instructions { list: String, base: Option<Box<Spec>> },
    /// The rule regexes of a recursive network (see [`format::recursive`]): formats a caller
    /// builds itself, such as tool calls.
    Rules(Vec<String>),
}

impl Spec {
    /// A JSON Schema under `options`.
    pub fn json_schema(schema: &Value, options: &SchemaOptions) -> Spec {
        Spec::JsonSchema {
            schema: schema.to_string(),
            lenient: options.lenient,
            whitespace: options.whitespace,
            refuse_unknown: options.refuse_unknown_keywords,
            raw_strings: options.raw_strings,
        }
    }

    /// Any JSON value, nesting up to the compiler's `limits.max_nesting` levels: the network
    /// [`format::compile_any_json`] builds (one rule, a value whose array items and member
    /// values call it again), as a [`Spec::Rules`].
    pub fn any_json(whitespace: Whitespace) -> Spec {
        Spec::Rules(vec![format::json::any_json_level(&format::recursive::call(0), whitespace)])
    }

    /// One regex, or the rules of a recursive network when there are several.
    pub fn rules(mut rules: Vec<String>) -> Spec {
        if rules.len() == 1 {
            Spec::Regex(rules.remove(0))
        } else {
            Spec::Rules(rules)
        }
    }

    /// The options a [`Spec::JsonSchema`] lowers under; `None` for other formats.
    pub fn schema_options(&self) -> Option<SchemaOptions> {
        match *self {
            Spec::JsonSchema { lenient, whitespace, refuse_unknown, raw_strings, .. } => {
                Some(SchemaOptions { whitespace, lenient, refuse_unknown_keywords: refuse_unknown, raw_strings })
            }
            _ => None,
        }
    }

    /// Whether the model writes this format's strings raw: its output is JSON only once
    /// escaped by a [`format::RawStringEscaper`].
    pub fn raw_strings(&self) -> bool {
        matches!(self, Spec::JsonSchema { raw_strings: true, .. })
    }

    /// Compiles the automaton, with the schema keywords skipped as annotations (or, leniently,
    /// as unsupported).
    pub fn build(&self, limits: &Limits) -> Result<(Arc<dyn ByteAutomaton>, Vec<String>), FormatError> {
        let plain = |a: format::Automaton| (Arc::new(a) as Arc<dyn ByteAutomaton>, Vec::new());
        match self {
            Spec::Regex(pattern) => Ok(plain(format::compile_regex(pattern, limits)?)),
            Spec::Choice(choices) => Ok(plain(format::compile_choice(choices, limits)?)),
            Spec::Grammar(text) => Ok((Arc::new(format::compile_gbnf(text, limits)?), Vec::new())),
            Spec::Rules(rules) => {
                let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
                Ok((Arc::new(format::recursive::compile_network(&rules, limits)?), Vec::new()))
            }
            Spec::JsonObject { whitespace } => {
                Ok((Arc::new(format::compile_json_object(*whitespace, limits)?), Vec::new()))
            }
            Spec::Instructions { list, base } => {
                let list: Value = serde_json::from_str(list).map_err(|e| FormatError::InvalidInstruction {
                    path: "instructions".to_string(),
                    message: format!("not valid JSON: {e}"),
                })?;
                let list = instructions::parse_list(&list)?;
                let (base, ignored) = match base {
                    Some(base) => {
                        let (a, ignored) = base.build(limits)?;
                        (Some(a), ignored)
                    }
                    None => (None, Vec::new()),
                };
                Ok((Arc::new(instructions::compile(&list, base, limits)?), ignored))
            }
            Spec::JsonSchema { schema, .. } => {
                let schema: Value = serde_json::from_str(schema).map_err(|e| FormatError::InvalidSchema {
                    pointer: "#".to_string(),
                    message: format!("not valid JSON: {e}"),
                })?;
                let options = self.schema_options().expect("a JSON Schema spec");
                let (compiled, ignored) = format::compile_schema(&schema, &options, limits)?;
                Ok((Arc::new(compiled), ignored))
            }
        }
    }
}
