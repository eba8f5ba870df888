//! `format_mode: "decoupled"`: the model solves the task first, then the format takes over.
//!
//! The model answers the request's own messages freely (no mask), as it would without any
//! format. When it ends its turn (or its share of `max_tokens` runs out), the chat template
//! closes that turn and adds a user turn asking for the final answer in the format
//! ([`follow_up`]); the format's mask then holds the rest, which is what makes the output
//! comply. The free text is kept: where the schema has a free-text field for it (`reasoning`,
//! … or `format_options.free_text_field`), the server writes it into that field, JSON-escaped
//! ([`Splice`]); otherwise it is returned beside the answer as `reasoning_content`, as
//! reasoning models do. Both parts run in one engine job on one KV slot, so the prompt is
//! prefilled once and closure within `max_tokens` holds for the whole response.

use serde_json::{json, Value};

use super::constrain::{FormatFields, FormatMode};
use super::error::ApiError;
use crate::engine::FreeFirst;
use llama_cpp_2::token::LlamaToken;

/// Property names taken to be meant for free text when the request names none.
const FREE_TEXT_FIELDS: [&str; 8] =
    ["reasoning", "rationale", "thoughts", "thinking", "chain_of_thought", "explanation", "analysis", "steps"];

/// Top-level schema keywords a split leaves intact (others, such as `minProperties`, could be
/// broken by moving a property out of the generated part, so such schemas are not split).
const SPLITTABLE_KEYWORDS: [&str; 10] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "title",
    "description",
    "$schema",
    "$id",
    "$defs",
    "definitions",
];

/// A decoupled request, read from its format fields.
pub struct Plan {
    /// Compiled for the formatted part: the request's format, less the free-text field.
    pub answer: FormatFields,
    /// The request's own format, to check the delivered text against (when split).
    pub delivered: Option<FormatFields>,
    /// The schema property the free text is written into.
    pub field: Option<String>,
    /// The user turn that asks for the formatted answer.
    pub follow_up: String,
    /// The request's cap on the free part, if any.
    pub max_free_tokens: Option<u32>,
}

impl Plan {
    /// `None` unless `format_mode` is "decoupled".
    pub fn read(fields: &FormatFields) -> Result<Option<Plan>, ApiError> {
        if fields.format_mode != Some(FormatMode::Decoupled) {
            return Ok(None);
        }
        if !fields.names_a_format() {
            return Err(ApiError::invalid(
                "format_mode",
                "`format_mode: \"decoupled\"` needs a format (response_format or guided_*)",
            ));
        }
        let options = fields.format_options.clone().unwrap_or_default();
        let mut answer = fields.clone();
        answer.format_mode = Some(FormatMode::Mask);
        let mut delivered = None;
        let mut field = None;
        if let Some((param, schema)) = schema_of(fields) {
            if let Some((name, rest)) = split(schema, options.free_text_field.as_deref())? {
                delivered = Some(answer.clone());
                set_schema(&mut answer, param, rest);
                field = Some(name);
            }
        } else if options.free_text_field.is_some() {
            return Err(ApiError::invalid(
                "format_options.free_text_field",
                "`free_text_field` needs a JSON Schema format",
            ));
        }
        let follow_up = options.format_prompt.clone().unwrap_or_else(|| follow_up(&answer));
        Ok(Some(Plan { answer, delivered, field, follow_up, max_free_tokens: options.free_tokens }))
    }

    /// The engine's part of the plan, once the request's budget is known. The free part may
    /// use all but the format's reserve: an eighth of the budget, and at least twice the
    /// format's shortest output and 16 tokens (or all there is). Most free answers end well
    /// before that; the reserve matters only for one that runs on, which is then cut.
    pub fn free_first(&self, bridge: Vec<LlamaToken>, max_tokens: u32, shortest: u32) -> FreeFirst {
        let reserve = (shortest.saturating_mul(2) + 16).max(max_tokens / 8).min(max_tokens);
        let mut budget = max_tokens - reserve;
        if let Some(cap) = self.max_free_tokens {
            budget = cap.min(max_tokens.saturating_sub(shortest));
        }
        FreeFirst { budget, bridge }
    }
}

/// The request's JSON Schema and where it sits, if its format is one.
fn schema_of(fields: &FormatFields) -> Option<(&'static str, &Value)> {
    if let Some(rf) = &fields.response_format {
        return (rf.get("type").and_then(Value::as_str) == Some("json_schema"))
            .then(|| rf.get("json_schema").and_then(|j| j.get("schema")))
            .flatten()
            .map(|s| ("response_format", s));
    }
    fields.guided_json.as_ref().map(|s| ("guided_json", s))
}

fn set_schema(fields: &mut FormatFields, param: &str, schema: Value) {
    match param {
        "response_format" => {
            if let Some(rf) = fields.response_format.as_mut() {
                rf["json_schema"]["schema"] = schema;
            }
        }
        _ => fields.guided_json = Some(schema),
    }
}

/// The free-text field of an object schema and the schema without it. A field qualifies when
/// its schema restricts nothing but the type string (any text is valid there), so writing the
/// free text into it can never break the schema. A field the request names must qualify.
fn split(schema: &Value, named: Option<&str>) -> Result<Option<(String, Value)>, ApiError> {
    let param = "format_options.free_text_field";
    // vLLM's string form of a schema.
    let parsed;
    let schema = match schema {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
            &parsed
        }
        other => other,
    };
    let Some(object) = schema.as_object() else {
        return match named {
            Some(_) => Err(ApiError::invalid(param, "`free_text_field` needs an object schema")),
            None => Ok(None),
        };
    };
    let properties = object.get("properties").and_then(Value::as_object);
    let is_free_text = |name: &str| properties.and_then(|p| p.get(name)).is_some_and(unrestricted_string);
    let splittable = object.keys().all(|k| SPLITTABLE_KEYWORDS.contains(&k.as_str()))
        && object.get("type").is_none_or(|t| t == "object");
    let name = match named {
        Some(name) if !is_free_text(name) => {
            return Err(ApiError::invalid(
                param,
                format!("`{name}` is not a property of the schema whose schema is an unrestricted string"),
            ))
        }
        Some(_) if !splittable => {
            return Err(ApiError::invalid(
                param,
                format!(
                    "the schema has keywords besides {} at its top level; it cannot be split",
                    SPLITTABLE_KEYWORDS.join(", ")
                ),
            ))
        }
        Some(name) => name.to_string(),
        None if !splittable => return Ok(None),
        None => match FREE_TEXT_FIELDS.iter().find(|n| is_free_text(n)) {
            Some(name) => name.to_string(),
            None => return Ok(None),
        },
    };
    let mut rest = object.clone();
    if let Some(Value::Object(p)) = rest.get_mut("properties") {
        p.remove(&name);
    }
    if let Some(Value::Array(required)) = rest.get_mut("required") {
        required.retain(|r| r.as_str() != Some(name.as_str()));
    }
    Ok(Some((name, Value::Object(rest))))
}

/// `{"type": "string"}`, with nothing but annotations beside it.
fn unrestricted_string(schema: &Value) -> bool {
    let Some(object) = schema.as_object() else { return false };
    object.get("type").and_then(Value::as_str) == Some("string")
        && object.keys().all(|k| matches!(k.as_str(), "type" | "title" | "description" | "examples" | "$comment"))
}

/// The user turn asking for the final answer in the format, built from the format itself.
fn follow_up(fields: &FormatFields) -> String {
    const ASK: &str = "Now give only your final answer";
    if let Some(rf) = &fields.response_format {
        match rf.get("type").and_then(Value::as_str) {
            Some("json_object") => return format!("{ASK}, as a JSON object."),
            Some("json_schema") => {
                let schema = rf.get("json_schema").and_then(|j| j.get("schema")).cloned().unwrap_or(Value::Null);
                return format!("{ASK}, as JSON that follows this JSON Schema:\n{}", schema_text(&schema));
            }
            Some("grammar") => {
                let grammar = rf.get("grammar").and_then(Value::as_str).unwrap_or_default();
                return format!("{ASK}, in the form this grammar (GBNF) describes:\n{grammar}");
            }
            Some("instructions") => {
                let list = rf.get("instructions").cloned().unwrap_or(Value::Null);
                return format!("Now write your final response, following these writing instructions:\n{list}");
            }
            _ => {}
        }
    }
    if let Some(schema) = &fields.guided_json {
        return format!("{ASK}, as JSON that follows this JSON Schema:\n{}", schema_text(schema));
    }
    if let Some(pattern) = &fields.guided_regex {
        return format!("{ASK}, in a form that matches this regular expression:\n{pattern}");
    }
    if let Some(choices) = &fields.guided_choice {
        return format!("{ASK}: exactly one of {}.", Value::from(choices.clone()));
    }
    if let Some(grammar) = &fields.guided_grammar {
        return format!("{ASK}, in the form this grammar (GBNF) describes:\n{grammar}");
    }
    format!("{ASK}.")
}

fn schema_text(schema: &Value) -> String {
    match schema {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Writes the free text into its field of the formatted answer, as the answer streams: the
/// output is `{"field":"<free text, escaped>",` followed by the answer's own members (or `}`
/// when it has none). The free text is trimmed; its pieces are escaped as they arrive.
pub struct Splice {
    field: String,
    state: SpliceState,
    /// Whitespace held back until more text shows it is not trailing.
    held: String,
}

#[derive(PartialEq)]
enum SpliceState {
    /// Nothing written yet.
    Start,
    /// Inside the field's string.
    Free,
    /// The string is closed; the answer's `{` and leading whitespace are being skipped.
    AnswerOpening,
    /// Past the answer's `{`: skipping whitespace up to its first member or its `}`.
    AnswerFirst,
    Answer,
}

impl Splice {
    pub fn new(field: String) -> Self {
        Splice { field, state: SpliceState::Start, held: String::new() }
    }

    /// Output for a piece of the free text.
    pub fn free(&mut self, piece: &str) -> String {
        let mut out = String::new();
        if self.state == SpliceState::Start {
            let piece = piece.trim_start();
            if piece.is_empty() {
                return out;
            }
            out.push_str(&format!("{{{}:\"", json!(self.field)));
            self.state = SpliceState::Free;
            self.push_free(piece, &mut out);
            return out;
        }
        self.push_free(piece, &mut out);
        out
    }

    fn push_free(&mut self, piece: &str, out: &mut String) {
        let body = piece.trim_end();
        if !body.is_empty() {
            out.push_str(&escaped(&std::mem::take(&mut self.held)));
            out.push_str(&escaped(body));
        }
        self.held.push_str(&piece[body.len()..]);
    }

    /// Output once the free text is complete.
    pub fn free_ends(&mut self) -> String {
        self.held.clear();
        let out = match self.state {
            SpliceState::Start => format!("{{{}:\"\"", json!(self.field)),
            _ => "\"".to_string(),
        };
        self.state = SpliceState::AnswerOpening;
        out
    }

    /// Output for a piece of the formatted answer (an object, by the format).
    pub fn answer(&mut self, piece: &str) -> String {
        let mut out = String::new();
        for (i, c) in piece.char_indices() {
            match self.state {
                SpliceState::Start | SpliceState::Free => {
                    out.push_str(&self.free_ends());
                    return out + &self.answer(&piece[i..]);
                }
                SpliceState::AnswerOpening if c == '{' => self.state = SpliceState::AnswerFirst,
                SpliceState::AnswerOpening | SpliceState::AnswerFirst if c.is_whitespace() => {}
                SpliceState::AnswerOpening => {
                    // Not an object after all (the format guarantees one): pass it through.
                    self.state = SpliceState::Answer;
                    out.push_str(&piece[i..]);
                    return out;
                }
                SpliceState::AnswerFirst => {
                    self.state = SpliceState::Answer;
                    if c != '}' {
                        out.push(',');
                    }
                    out.push_str(&piece[i..]);
                    return out;
                }
                SpliceState::Answer => {
                    out.push_str(&piece[i..]);
                    return out;
                }
            }
        }
        out
    }

    /// The whole delivered text, for a response that is not streamed.
    pub fn whole(field: &str, free_text: &str, answer: &str) -> String {
        let mut splice = Splice::new(field.to_string());
        let mut out = splice.free(free_text);
        out.push_str(&splice.free_ends());
        out.push_str(&splice.answer(answer));
        out
    }
}

/// A string's JSON escaping, without the quotes.
fn escaped(text: &str) -> String {
    let quoted = Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// For reports: the free part's share, beside the format's own numbers.
pub fn report(report: &mut Value, free_tokens: u32, field: Option<&str>) {
    report["mode"] = json!("decoupled");
    report["free_tokens"] = json!(free_tokens);
    report["free_text_field"] = field.map_or(Value::Null, |f| json!(f));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: Value) -> FormatFields {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn the_reasoning_field_is_split_off_and_spliced_back() {
        let schema = json!({"type": "object", "properties": {"reasoning": {"type": "string"}, "answer": {"type": "integer"}},
                            "required": ["reasoning", "answer"], "additionalProperties": false});
        let plan = Plan::read(&fields(json!({"guided_json": schema, "format_mode": "decoupled"}))).unwrap().unwrap();
        assert_eq!(plan.field.as_deref(), Some("reasoning"));
        let answer = plan.answer.guided_json.unwrap();
        assert_eq!(answer["required"], json!(["answer"]));
        assert!(answer["properties"].get("reasoning").is_none());
        assert!(plan.follow_up.contains("\"answer\""), "{}", plan.follow_up);
        let text = Splice::whole("reasoning", "\n  2 + 2 = 4.\n\"So\" 4\n\n", "{\"answer\": 4}");
        assert_eq!(text, r#"{"reasoning":"2 + 2 = 4.\n\"So\" 4","answer": 4}"#);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["answer"], 4);
    }

    #[test]
    fn splicing_streams_piece_by_piece() {
        let mut splice = Splice::new("why".into());
        let mut out = String::new();
        for piece in ["  ", "Be", "cause ", " ", "\n", "x", "  "] {
            out.push_str(&splice.free(piece));
        }
        out.push_str(&splice.free_ends());
        for piece in ["\n", "{", " ", "}"] {
            out.push_str(&splice.answer(piece));
        }
        assert_eq!(out, r#"{"why":"Because  \nx"}"#);
        assert_eq!(Splice::whole("why", "", "{\"a\":1}"), r#"{"why":"","a":1}"#);
    }

    #[test]
    fn restricted_or_unsplittable_schemas_keep_the_free_text_beside() {
        for schema in [
            json!({"type": "object", "properties": {"reasoning": {"type": "string", "maxLength": 10}}}),
            json!({"type": "object", "properties": {"reasoning": {"type": "string"}}, "minProperties": 1}),
            json!({"type": "array"}),
        ] {
            let plan =
                Plan::read(&fields(json!({"guided_json": schema, "format_mode": "decoupled"}))).unwrap().unwrap();
            assert!(plan.field.is_none() && plan.delivered.is_none());
        }
        let named = fields(json!({"guided_json": {"type": "object", "properties": {"a": {"type": "integer"}}},
                                  "format_mode": "decoupled", "format_options": {"free_text_field": "a"}}));
        assert_eq!(Plan::read(&named).err().unwrap().param.as_deref(), Some("format_options.free_text_field"));
        let regex =
            Plan::read(&fields(json!({"guided_regex": "[0-9]+", "format_mode": "decoupled"}))).unwrap().unwrap();
        assert!(regex.follow_up.contains("[0-9]+"));
    }

    #[test]
    fn the_free_part_leaves_the_format_room() {
        let plan = Plan::read(&fields(json!({"guided_regex": "[0-9]+", "format_mode": "decoupled"}))).unwrap().unwrap();
        assert_eq!(plan.free_first(Vec::new(), 400, 2).budget, 350);
        assert_eq!(plan.free_first(Vec::new(), 30, 5).budget, 4);
        assert_eq!(plan.free_first(Vec::new(), 10, 5).budget, 0);
        let capped = Plan { max_free_tokens: Some(1000), ..plan };
        assert_eq!(capped.free_first(Vec::new(), 400, 2).budget, 398);
    }
}
