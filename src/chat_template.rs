//! Renders a model's own chat template (the GGUF's `tokenizer.chat_template`, Jinja) with
//! minijinja, the way Hugging Face transformers does, so messages and tools reach the model in
//! exactly the shape it was trained on. llama.cpp's built-in template matcher does not do tools.

use minijinja::{Environment, Error, ErrorKind, Value};
use serde_json::Value as Json;

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, Error> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_filter("tojson", python_tojson);
        env.add_template_owned("chat", source.to_string())?;
        Ok(ChatTemplate { env, bos_token: bos_token.into(), eos_token: eos_token.into() })
    }

    /// Renders OpenAI-shaped messages (and tools, if any) into the prompt text.
    pub fn render(&self, messages: &[Json], tools: Option<&[Json]>) -> Result<String, Error> {
        let messages: Vec<Json> = messages.iter().map(normalise_message).collect();
        let template = self.env.get_template("chat")?;
        template.render(minijinja::context! {
            messages => Value::from_serialize(&messages),
            tools => tools.map(Value::from_serialize),
            add_generation_prompt => true,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
    }
}

/// Stands for the model's free text while a continued conversation is rendered.
const FREE_TEXT_MARK: &str = "\u{2063}conform-free-text\u{2063}";

impl ChatTemplate {
    /// For decoupled decoding: the prompt, and the text that follows the model's free answer
    /// to it (its turn closed, then a user turn saying `follow_up`, then the assistant's turn
    /// opened again), both in the template's own words. `None` when the template does not
    /// write an assistant turn's content verbatim.
    pub fn render_continued(&self, messages: &[Json], follow_up: &str) -> Result<Option<(String, String)>, Error> {
        let mut continued = messages.to_vec();
        continued.push(serde_json::json!({"role": "assistant", "content": FREE_TEXT_MARK}));
        continued.push(serde_json::json!({"role": "user", "content": follow_up}));
        let text = self.render(&continued, None)?;
        Ok(text.split_once(FREE_TEXT_MARK).map(|(prompt, bridge)| (prompt.to_string(), bridge.to_string())))
    }
}

/// Templates expect `content` as a string and tool-call `arguments` as an object (as HF does),
/// while OpenAI clients send content parts and arguments as a JSON string. Arguments that are
/// not an object's JSON stay a string, so normalising twice changes nothing.
pub fn normalise_message(message: &Json) -> Json {
    let mut message = message.clone();
    if let Some(Json::Array(parts)) = message.get("content") {
        let text: String = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Json::as_str))
            .collect::<Vec<_>>()
            .join("");
        message["content"] = Json::String(text);
    }
    if let Some(Json::Array(calls)) = message.get_mut("tool_calls") {
        for call in calls {
            if let Some(function) = call.get_mut("function") {
                if let Some(Json::String(args)) = function.get("arguments") {
                    if let Ok(parsed @ Json::Object(_)) = serde_json::from_str::<Json>(args) {
                        function["arguments"] = parsed;
                    }
                }
            }
        }
    }
    message
}

/// Python's `json.dumps` as HF templates see it: `", "` and `": "` separators, no HTML escaping,
/// non-ASCII kept, optional `indent`. minijinja's own `tojson` escapes `<>&'`, which would
/// change what the model reads.
fn python_tojson(value: Value, kwargs: minijinja::value::Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json: Json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_python_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn write_python_json(value: &Json, indent: Option<usize>, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match value {
        Json::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_python_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Json::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&Json::String(key.clone()).to_string());
                out.push_str(": ");
                write_python_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tojson_matches_python_json_dumps() {
        let mut out = String::new();
        write_python_json(&json!({"b": [1, "<x>"], "a": {}}), None, 0, &mut out);
        assert_eq!(out, r#"{"b": [1, "<x>"], "a": {}}"#);
        let mut out = String::new();
        write_python_json(&json!({"a": [1]}), Some(2), 0, &mut out);
        assert_eq!(out, "{\n  \"a\": [\n    1\n  ]\n}");
    }

    #[test]
    fn renders_a_chatml_template_with_tool_call_arguments_as_objects() {
        let source = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\
            {% for c in m.tool_calls or [] %}{{ c.function.arguments | tojson }}{% endfor %}\
            {% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
        let t = ChatTemplate::new(source, "<s>", "</s>").unwrap();
        let messages = vec![
            json!({"role": "user", "content": [{"type": "text", "text": "hi"}]}),
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}),
        ];
        assert_eq!(t.render(&messages, None).unwrap(), "<|user|>hi<|assistant|>{\"x\": 1}<|assistant|>");
    }
}
