//! From a request's format fields to a per-choice token constraint.
//!
//! Accepted spellings: OpenAI's `response_format` (`json_object`, `json_schema`, and our
//! `grammar` with a GBNF `grammar` string and `instructions` with IFEval-style writing
//! instructions), and vLLM's `guided_json` / `guided_regex` / `guided_choice` /
//! `guided_grammar`. At most one may be given, except that `instructions` combine with one
//! `guided_*` format (the output must satisfy both). `format_mode`
//! picks `mask` (default: the output is guaranteed), `lookahead` (the mask, with each surviving
//! token reweighted by the TPM's probability that the format can still be completed; see
//! `tpm`), `decoupled` (free text first, then the mask; planned in `decoupled`) or `free`
//! (decode unconstrained, then only report whether the output complied).
//! Compiling and its cache are the format engine's ([`conform_format::Compiler`]); this module
//! reads the request's fields into a [`Spec`], and adds the modes and the lookahead.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use conform_format::{Compiled, Compiler, Constraint, Grammar, Spec, TokEnv};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::engine::{Summary, TokenConstraint};
use crate::format::{self, FormatError, Limits, SchemaOptions, Whitespace};
use crate::mask::{ByteAutomaton, Matcher};
use crate::metrics::metrics;
use crate::tpm::{Caps, Hmm, LookaheadConstraint, Tables, TablesError, DEFAULT_LOOKAHEAD_WEIGHT, HORIZONS};
use crate::vocab::Vocab;

/// The format fields of a chat or completion request.
#[derive(Deserialize, Debug, Default, Clone)]
pub struct FormatFields {
    pub response_format: Option<Value>,
    pub guided_json: Option<Value>,
    pub guided_regex: Option<String>,
    pub guided_choice: Option<Vec<String>>,
    pub guided_grammar: Option<String>,
    pub format_mode: Option<FormatMode>,
    pub format_options: Option<FormatOptions>,
}

impl FormatFields {
    /// Whether a field names an output format (`format_mode`/`format_options` only qualify one).
    pub fn names_a_format(&self) -> bool {
        let text =
            self.response_format.as_ref().is_some_and(|rf| rf.get("type").and_then(Value::as_str) == Some("text"));
        (self.response_format.is_some() && !text)
            || self.guided_json.is_some()
            || self.guided_regex.is_some()
            || self.guided_choice.is_some()
            || self.guided_grammar.is_some()
    }
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FormatOptions {
    /// Skip unsupported JSON Schema keywords (listed in the response) instead of failing.
    #[serde(default)]
    pub lenient: bool,
    /// Whitespace between JSON tokens: `"compact"` (default), `"natural"` (one space, or a
    /// newline and indentation, as the model writes JSON) or a number of bytes (up to n of
    /// space, tab, newline).
    #[serde(default, deserialize_with = "whitespace_option")]
    pub whitespace: Whitespace,
    /// `"ignore"` (default) or `"error"`: what to do with schema keywords of no JSON Schema
    /// draft (vendor annotations, which the specification treats as annotations); ignored ones
    /// are listed in the response.
    #[serde(default)]
    pub unknown_keywords: UnknownKeywords,
    /// `"escaped"` (default) or `"raw"`: whether a JSON Schema's strings without `pattern` or
    /// `format` may hold raw newlines and tabs as the model writes them; the server escapes
    /// them, so the delivered text is JSON either way.
    #[serde(default)]
    pub strings: Strings,
    /// Which TPM `lookahead` uses: the model's distilled one (default) or a uniform one (the
    /// ablation: a length prior and nothing else).
    #[serde(default)]
    pub tpm: TpmChoice,
    /// Exponent on the TPM's probability in lookahead (`p_LM · P_TPM^w`, default
    /// [`DEFAULT_LOOKAHEAD_WEIGHT`]): below 1 trusts the model more and the TPM less.
    pub lookahead_weight: Option<f32>,
    /// `decoupled`: the schema property the free text is written into (default: the first of
    /// `reasoning`, `rationale`, … that is an unrestricted string; see `decoupled`).
    pub free_text_field: Option<String>,
    /// `decoupled`: most tokens of free text (default: seven eighths of `max_tokens`, leaving the
    /// format at least twice its shortest output and 16).
    pub free_tokens: Option<u32>,
    /// `decoupled`: the user turn that asks for the formatted answer (default: built from the
    /// format).
    pub format_prompt: Option<String>,
}

fn whitespace_option<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Whitespace, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Bytes(u8),
        Named(String),
    }
    match Given::deserialize(deserializer) {
        Ok(Given::Bytes(0)) => Ok(Whitespace::Compact),
        Ok(Given::Bytes(max)) => Ok(Whitespace::Flexible { max }),
        Ok(Given::Named(name)) if name == "compact" => Ok(Whitespace::Compact),
        Ok(Given::Named(name)) if name == "natural" => Ok(Whitespace::NATURAL),
        _ => {
            Err(serde::de::Error::custom("`whitespace` must be \"compact\", \"natural\" or a number of bytes (0-255)"))
        }
    }
}

#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TpmChoice {
    #[default]
    Distilled,
    Uniform,
}

impl TpmChoice {
    fn name(self) -> &'static str {
        match self {
            TpmChoice::Distilled => "distilled",
            TpmChoice::Uniform => "uniform",
        }
    }
}

#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Strings {
    #[default]
    Escaped,
    Raw,
}

#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum UnknownKeywords {
    Error,
    #[default]
    Ignore,
}

/// `format_mode` as requested; `decoupled` is planned in [`super::decoupled`] and runs as
/// [`Mode::Mask`] on its answer.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FormatMode {
    Mask,
    Lookahead,
    Decoupled,
    Free,
}

/// How a compiled format runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Mask,
    Lookahead,
    Free,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Mask => "mask",
            Mode::Lookahead => "lookahead",
            Mode::Free => "free",
        }
    }
}

/// The lookahead part of a format: its tables, or why the request runs on the mask alone.
#[derive(Clone)]
enum Lookahead {
    Ready {
        tpm: TpmChoice,
        tables: Arc<Tables>,
        weight: f32,
    },
    /// The format is past the lookahead caps: the mask runs, and the response says why.
    Fallback {
        tpm: TpmChoice,
        reason: String,
    },
}

/// A compiled format, ready to constrain or check generations.
pub struct Format {
    pub mode: Mode,
    grammar: Arc<Grammar>,
    lookahead: Option<Lookahead>,
    /// The model writes strings raw (`format_options.strings`): its text is JSON only once
    /// escaped ([`Format::escaper`]).
    raw_strings: bool,
}

/// Compiled formats shared across requests, plus what compiling needs.
pub struct Formats {
    compiler: Compiler,
    /// The model's distilled TPM, if it has one.
    tpm: Option<Arc<Hmm>>,
    uniform_tpm: Arc<Hmm>,
    /// Lookahead tables (or why a format has none), per format and TPM: a cold format pays once.
    tables: Mutex<HashMap<(Spec, TpmChoice), Result<Arc<Tables>, TablesError>>>,
}

/// Lookahead tables kept; past this the cache starts over.
const TABLE_ENTRIES: usize = 64;

impl Formats {
    pub fn limits(&self) -> &Limits {
        self.compiler.limits()
    }

    /// The request's response format as the rules of a recursive network starting at rule
    /// `first_rule`, to stand beside tool calls as the final answer (so only JSON formats).
    pub fn answer_rules(&self, fields: &FormatFields, first_rule: usize) -> Result<format::SchemaRegex, ApiError> {
        let options = fields.format_options.clone().unwrap_or_default();
        let plain = |regex| format::SchemaRegex { regex, ignored: Vec::new(), recursive: false, rules: Vec::new() };
        match source(fields, &options)? {
            Some((_, Spec::JsonSchema { raw_strings: true, .. })) => {
                Err(ApiError::invalid("format_options.strings", "raw strings do not combine with `tools`"))
            }
            Some((param, spec @ Spec::JsonSchema { .. })) => {
                let Spec::JsonSchema { schema, .. } = &spec else { unreachable!() };
                let schema: Value = serde_json::from_str(schema).expect("serialized by `source`");
                let options = spec.schema_options().expect("a JSON Schema spec");
                format::schema_rules(&schema, &options, self.limits(), first_rule).map_err(|e| format_error(param, e))
            }
            Some((_, Spec::JsonObject { whitespace })) => Ok(plain(format::json_object_regex(self.limits().recursion_depth, whitespace))),
            Some((param, _)) => Err(ApiError::invalid(
                param,
                "with `tools`, the response format (the final answer beside the calls) must be a JSON Schema or `json_object`",
            )),
            None => Err(ApiError::invalid("response_format", "no response format to combine with `tools`")),
        }
    }

    /// A format the server builds itself (tool calls): one regex, or the rules of a recursive
    /// network (see [`format::recursive`]).
    pub fn compile_internal(&self, param: &str, rules: Vec<String>) -> Result<Format, ApiError> {
        self.compiled(param, Spec::rules(rules), Mode::Mask)
    }

    pub fn new(vocab: Arc<Vocab>, tokenize: conform_format::Tokenize) -> Self {
        Formats::with_limits(vocab, tokenize, Limits::default())
    }

    pub fn with_limits(vocab: Arc<Vocab>, tokenize: conform_format::Tokenize, limits: Limits) -> Self {
        Formats {
            compiler: Compiler::new(TokEnv::new(vocab, tokenize), limits),
            tpm: None,
            uniform_tpm: Arc::new(Hmm::uniform()),
            tables: Mutex::default(),
        }
    }

    /// The TPM that `format_mode: "lookahead"` uses.
    pub fn with_tpm(self, tpm: Option<Arc<Hmm>>) -> Self {
        Formats { tpm, ..self }
    }

    /// Reads the format fields; `None` when the request has no format.
    /// Compiling can take a while for big schemas: call from a blocking task.
    pub fn compile(&self, fields: &FormatFields) -> Result<Option<Format>, ApiError> {
        let mode = match fields.format_mode {
            None | Some(FormatMode::Mask) => Mode::Mask,
            Some(FormatMode::Lookahead) => Mode::Lookahead,
            Some(FormatMode::Free) => Mode::Free,
            Some(FormatMode::Decoupled) => {
                return Err(ApiError::invalid(
                    "format_mode",
                    "`format_mode: \"decoupled\"` needs chat messages: use /v1/chat/completions",
                ))
            }
        };
        let options = fields.format_options.clone().unwrap_or_default();
        let weight = options.lookahead_weight.unwrap_or(DEFAULT_LOOKAHEAD_WEIGHT);
        if !(0.0..=4.0).contains(&weight) {
            return Err(ApiError::invalid(
                "format_options.lookahead_weight",
                "`lookahead_weight` must be between 0 and 4",
            ));
        }
        if mode == Mode::Lookahead && options.tpm == TpmChoice::Distilled && self.tpm.is_none() {
            return Err(ApiError::invalid(
                "format_mode",
                "`format_mode: \"lookahead\"` needs the model's TPM, and this server has none: distil one with `conform distill` \
                 (serve loads it from next to the model, or from --tpm), or ask for `format_options: {\"tpm\": \"uniform\"}`",
            )
            .with_code("lookahead_unavailable"));
        }
        let Some((param, spec)) = source(fields, &options)? else {
            if fields.format_mode.is_some() || fields.format_options.is_some() {
                return Err(ApiError::invalid(
                    "format_mode",
                    "`format_mode` and `format_options` need a format (response_format or guided_*)",
                ));
            }
            return Ok(None);
        };
        let mut format = self.compiled(param, spec.clone(), mode)?;
        if mode == Mode::Lookahead {
            format.lookahead = Some(self.lookahead(spec, options.tpm, weight, format.grammar.automaton()));
        }
        Ok(Some(format))
    }

    /// The lookahead tables of a format (built on first use, then cached).
    fn lookahead(&self, spec: Spec, tpm: TpmChoice, weight: f32, automaton: &Arc<dyn ByteAutomaton>) -> Lookahead {
        let key = (spec, tpm);
        // Tables of an automaton that was since rebuilt (see `saturated`) do not fit this one.
        let cached = self
            .tables
            .lock()
            .unwrap()
            .get(&key)
            .filter(|t| t.as_ref().map_or(true, |t| t.built_for(automaton)))
            .cloned();
        let built = cached.unwrap_or_else(|| {
            let hmm = match tpm {
                TpmChoice::Distilled => self.tpm.clone().expect("checked when the request was read"),
                TpmChoice::Uniform => self.uniform_tpm.clone(),
            };
            let built = Tables::build(hmm, automaton.clone(), &HORIZONS, Caps::default()).map(Arc::new);
            if let Ok(tables) = &built {
                tracing::info!(
                    states = tables.states,
                    ms = tables.build_time.as_millis() as u64,
                    "lookahead tables built"
                );
            }
            let mut cache = self.tables.lock().unwrap();
            if cache.len() >= TABLE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, built.clone());
            built
        });
        match built {
            Ok(tables) => Lookahead::Ready { tpm, tables, weight },
            Err(e) => Lookahead::Fallback { tpm, reason: e.to_string() },
        }
    }

    fn compiled(&self, param: &str, spec: Spec, mode: Mode) -> Result<Format, ApiError> {
        let raw_strings = spec.raw_strings();
        let (grammar, how) = self.compiler.compile(&spec).map_err(|e| format_error(param, e))?;
        match how {
            Compiled::Cached => metrics().format_cache_hits.fetch_add(1, Relaxed),
            Compiled::Fresh(took) => {
                metrics().format_compile.observe(took);
                metrics().format_compiles.fetch_add(1, Relaxed)
            }
        };
        Ok(Format { mode, grammar, lookahead: None, raw_strings })
    }
}

/// Which field holds the format, and what it says.
fn source(fields: &FormatFields, options: &FormatOptions) -> Result<Option<(&'static str, Spec)>, ApiError> {
    let mut found: Vec<(&'static str, Spec)> = Vec::new();
    let mut instruction_list: Option<String> = None;
    let schema_source = |param: &'static str, schema: &Value| -> Result<Spec, ApiError> {
        let schema = match schema {
            // vLLM accepts the schema as a JSON string too.
            Value::String(text) => serde_json::from_str(text)
                .map_err(|e| ApiError::invalid(param, format!("the schema is not valid JSON: {e}")))?,
            other => other.clone(),
        };
        if !schema.is_object() && !schema.is_boolean() {
            return Err(ApiError::invalid(param, "a JSON Schema must be an object or a boolean"));
        }
        Ok(Spec::json_schema(
            &schema,
            &SchemaOptions {
                whitespace: options.whitespace,
                lenient: options.lenient,
                refuse_unknown_keywords: options.unknown_keywords == UnknownKeywords::Error,
                raw_strings: options.strings == Strings::Raw,
            },
        ))
    };
    if let Some(rf) = &fields.response_format {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => found.push(("response_format", Spec::JsonObject { whitespace: options.whitespace })),
            Some("json_schema") => {
                let schema = rf
                    .get("json_schema")
                    .and_then(|j| j.get("schema"))
                    .ok_or_else(|| ApiError::invalid("response_format.json_schema.schema", "`json_schema` needs a `schema`"))?;
                found.push(("response_format.json_schema.schema", schema_source("response_format.json_schema.schema", schema)?));
            }
            Some("grammar") => {
                let text = rf
                    .get("grammar")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::invalid("response_format.grammar", "`grammar` needs a `grammar` string (GBNF)").with_code("invalid_format"))?;
                found.push(("response_format.grammar", Spec::Grammar(text.to_string())));
            }
            Some("instructions") => {
                let list = rf.get("instructions").ok_or_else(|| {
                    ApiError::invalid("response_format.instructions", "`instructions` needs an `instructions` array").with_code("invalid_format")
                })?;
                instruction_list = Some(list.to_string());
            }
            _ => {
                return Err(ApiError::invalid(
                    "response_format.type",
                    "`response_format.type` must be \"text\", \"json_object\", \"json_schema\", \"grammar\" or \"instructions\"",
                ))
            }
        }
    }
    if let Some(schema) = &fields.guided_json {
        found.push(("guided_json", schema_source("guided_json", schema)?));
    }
    if let Some(pattern) = &fields.guided_regex {
        found.push(("guided_regex", Spec::Regex(pattern.clone())));
    }
    if let Some(choices) = &fields.guided_choice {
        found.push(("guided_choice", Spec::Choice(choices.clone())));
    }
    if let Some(text) = &fields.guided_grammar {
        found.push(("guided_grammar", Spec::Grammar(text.clone())));
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|f| f.0).collect();
        return Err(ApiError::invalid(found[1].0, format!("give one format, not several: {}", names.join(", "))));
    }
    let found = match instruction_list {
        Some(list) => {
            Some(("response_format", Spec::Instructions { list, base: found.pop().map(|(_, s)| Box::new(s)) }))
        }
        None => found.pop(),
    };
    // Instructions count the characters of the text as written, and other formats have no
    // strings the server knows how to escape.
    if options.strings == Strings::Raw && !matches!(found, Some((_, Spec::JsonSchema { .. }))) {
        return Err(ApiError::invalid(
            "format_options.strings",
            "`strings: \"raw\"` needs a JSON Schema format, without instructions",
        ));
    }
    Ok(found)
}

fn format_error(param: &str, error: FormatError) -> ApiError {
    let code = match error {
        FormatError::UnsupportedKeyword { .. } => "unsupported_schema_keyword",
        FormatError::TooComplex { .. } => "format_too_complex",
        FormatError::Contradictory { .. } => "contradictory_instructions",
        _ => "invalid_format",
    };
    let param = match &error {
        FormatError::InvalidInstruction { path, .. } => format!("response_format.{path}"),
        FormatError::Contradictory { .. } => "response_format.instructions".to_string(),
        _ => param.to_string(),
    };
    ApiError::invalid(&param, error.to_string()).with_code(code)
}

impl Format {
    /// What turns this format's output into the delivered text: `Some` when strings are
    /// written raw and must be escaped on the way out.
    pub fn escaper(&self) -> Option<format::RawStringEscaper> {
        self.raw_strings.then(format::RawStringEscaper::default)
    }

    /// A whole output as delivered (see [`Format::escaper`]).
    pub fn delivered(&self, text: &str) -> String {
        match self.escaper() {
            Some(mut escaper) => escaper.push(text),
            None => text.to_string(),
        }
    }

    /// The fewest tokens any complete output needs (an upper bound: bytes count as tokens).
    pub fn shortest_tokens(&self) -> u32 {
        self.grammar.shortest_tokens()
    }

    /// Schema keywords skipped as annotations (or, in lenient mode, as unsupported).
    pub fn ignored(&self) -> &[String] {
        self.grammar.ignored()
    }

    /// A fresh constraint for one choice, or `None` in free mode.
    pub fn constraint(&self) -> Option<Box<dyn TokenConstraint>> {
        match (self.mode, &self.lookahead) {
            (Mode::Free, _) => None,
            (Mode::Lookahead, Some(Lookahead::Ready { tables, weight, .. })) => {
                Some(Box::new(LookaheadConstraint::new(self.constraint_always(), tables.clone(), *weight)))
            }
            _ => Some(Box::new(self.constraint_always())),
        }
    }

    /// The constraint of tool calls under `tool_choice: "auto"`: the model is free unless it
    /// calls. While the output so far is a live prefix of a call (a JSON call or fence opening,
    /// see [`tools`](super::tools)) it is watched; once it holds a `{`, `[` or the opener it is
    /// held to the format, and once it leaves the format it is prose, free until the model
    /// samples `opener` (the template's one-token call opener), which engages the format anew.
    /// The opener is banned whenever the rest of a call could no longer fit the budget, and a
    /// watched call that could not close in the budget left is let go as prose.
    pub fn auto_calls_constraint(&self, opener: Option<u32>) -> Box<dyn TokenConstraint> {
        let needed_after_opener = opener.map_or(u32::MAX, |t| {
            let mut after = Matcher::new(self.grammar.index().clone());
            match after.accept(t) {
                Ok(()) => after.tokens_to_accept(),
                Err(_) => u32::MAX,
            }
        });
        Box::new(AutoCallsConstraint {
            opener,
            needed_after_opener,
            format: self.constraint_always(),
            phase: CallPhase::Watching,
            remaining: u32::MAX,
        })
    }

    fn constraint_always(&self) -> Constraint {
        self.grammar.constraint()
    }

    /// The `format` object reported with each choice.
    /// The `format` object of a choice: the mode that ran, compliance of the delivered text,
    /// and what the constraint cost the model (`cost_nats`: Σ −ln(allowed probability mass)
    /// over the sampled steps; `overridden_steps`: steps whose most likely token was masked).
    pub fn report(&self, text: &str, summary: &Summary) -> Value {
        let mut report = self.cost_report(summary);
        report["compliant"] = json!(self.grammar.accepts(text.as_bytes()));
        match &self.lookahead {
            Some(Lookahead::Ready { tpm, tables, weight }) => {
                report["lookahead"] =
                    json!({"tpm": tpm.name(), "hidden_states": tables.hmm().hidden(), "weight": weight});
            }
            Some(Lookahead::Fallback { tpm, reason }) => {
                // What actually ran: the mask alone.
                report["mode"] = json!("mask");
                report["lookahead"] = json!({"tpm": tpm.name(), "fallback": reason});
            }
            None => {}
        }
        if !self.ignored().is_empty() {
            report["ignored"] = json!(self.ignored());
        }
        report
    }

    /// The mode that ran and what it cost the model; for tool calls, whose text also holds prose
    /// the format did not govern (`tool_choice: "auto"`), this is the whole report.
    pub fn cost_report(&self, summary: &Summary) -> Value {
        let cost = summary.format_cost.unwrap_or_default();
        json!({
            "mode": self.mode.name(),
            "forced_tokens": summary.forced_tokens,
            "sampled_steps": cost.steps,
            "cost_nats": (cost.nats * 1e4).round() / 1e4,
            "overridden_steps": cost.overridden,
        })
    }
}

/// When a format starts to hold the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Onset {
    /// From the first token.
    Start,
    /// Tool calls under `"auto"`: when the model starts a call; the value is the template's
    /// one-token call opener, where the vocabulary has one.
    WhenCalled(Option<u32>),
}

/// Where an `"auto"` output stands (see [`Format::auto_calls_constraint`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum CallPhase {
    /// So far a live prefix of a call without its first `{` / `[`: may still be either.
    Watching,
    /// Prose: free, until the opener token.
    Prose,
    /// A call: held to the format.
    Calling,
}

struct AutoCallsConstraint {
    opener: Option<u32>,
    needed_after_opener: u32,
    format: Constraint,
    phase: CallPhase,
    /// The budget after the token being sampled, as the last mask saw it.
    remaining: u32,
}

impl TokenConstraint for AutoCallsConstraint {
    fn mask(&mut self, logits: &mut [f32], remaining_after: u32) {
        self.remaining = remaining_after;
        match self.phase {
            CallPhase::Calling => self.format.mask(logits, remaining_after),
            _ if self.needed_after_opener > remaining_after => {
                if let Some(l) = self.opener.and_then(|t| logits.get_mut(t as usize)) {
                    *l = f32::NEG_INFINITY;
                }
            }
            _ => {}
        }
    }
    fn accept(&mut self, token: u32) -> anyhow::Result<()> {
        match self.phase {
            CallPhase::Calling => return self.format.accept(token),
            CallPhase::Watching => {
                let bytes = self.format.matcher().index().vocab().token_bytes(token).to_vec();
                let opens = Some(token) == self.opener || bytes.iter().any(|&b| b == b'{' || b == b'[');
                self.phase = match self.format.accept(token) {
                    // A call must still be able to close within what is left.
                    Ok(()) if opens && self.format.tokens_to_accept() <= self.remaining => CallPhase::Calling,
                    Ok(()) if !opens => CallPhase::Watching,
                    _ => CallPhase::Prose,
                };
                if self.phase == CallPhase::Prose {
                    self.format.reset();
                }
            }
            CallPhase::Prose => {}
        }
        if self.phase == CallPhase::Prose && Some(token) == self.opener {
            self.phase = CallPhase::Calling;
            self.format.accept(token)?;
        }
        Ok(())
    }
    fn is_finished(&self) -> bool {
        self.phase == CallPhase::Calling && self.format.is_finished()
    }
    fn forced_tokens(&mut self, room: u32) -> Vec<u32> {
        if self.phase == CallPhase::Calling {
            self.format.forced_tokens(room)
        } else {
            Vec::new()
        }
    }
    fn is_accepting(&self) -> bool {
        self.phase != CallPhase::Calling || self.format.is_accepting()
    }
}
