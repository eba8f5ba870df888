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
        // As transformers renders templates: a block tag's own line leaves no blank line behind.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // Python's None is not iterable (`tools is iterable and tools | length > 0`).
        env.add_test("iterable", |v: Value| !v.is_none() && !v.is_undefined() && v.try_iter().is_ok());
        env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_filter("tojson", python_tojson);
        env.set_formatter(python_formatter);
        env.add_filter("string", |value: Value| python_str(&value));
        // Llama 3.x, Granite and others date their system prompt, as transformers lets them.
        env.add_function("strftime_now", |format: String| strftime(&format, unix_now()));
        env.add_template_owned("chat", source.to_string())?;
        Ok(ChatTemplate { env, bos_token: bos_token.into(), eos_token: eos_token.into() })
    }

    /// Renders OpenAI-shaped messages (and tools, if any) into the prompt text.
    pub fn render(&self, messages: &[Json], tools: Option<&[Json]>) -> Result<String, Error> {
        self.render_with(messages, tools, &serde_json::Map::new())
    }

    /// [`render`](Self::render) with the request's own template variables (`chat_template_kwargs`,
    /// such as `enable_thinking`); they cannot replace the messages, tools or special tokens.
    pub fn render_with(
        &self,
        messages: &[Json],
        tools: Option<&[Json]>,
        kwargs: &serde_json::Map<String, Json>,
    ) -> Result<String, Error> {
        let messages: Vec<Json> = messages.iter().map(normalise_message).collect();
        let template = self.env.get_template("chat")?;
        template.render(minijinja::context! {
            messages => Value::from_serialize(&messages),
            tools => tools.map(Value::from_serialize),
            add_generation_prompt => true,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
            ..Value::from_serialize(kwargs)
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
        let text: String =
            parts.iter().filter_map(|p| p.get("text").and_then(Json::as_str)).collect::<Vec<_>>().join("");
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

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Python's `strftime` for the date fields templates use (`%Y %m %d %B %b %H %M %S %%`), UTC.
fn strftime(format: &str, unix: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    // Days to a civil date (Howard Hinnant's algorithm).
    let days = (unix / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let secs = unix % 86_400;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('B') => out.push_str(MONTHS[month as usize - 1]),
            Some('b') => out.push_str(&MONTHS[month as usize - 1][..3]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Python's `json.dumps` as HF templates see it: `", "` and `": "` separators, no HTML escaping,
/// non-ASCII kept, optional `indent`, and the keywords templates pass (`ensure_ascii`,
/// `sort_keys`; `separators` only as the default). minijinja's own `tojson` escapes `<>&'`,
/// which would change what the model reads.
fn python_tojson(value: Value, kwargs: minijinja::value::Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let mut json: Json =
        serde_json::to_value(&value).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    if sort_keys == Some(true) {
        sort_json_keys(&mut json);
    }
    let mut out = String::new();
    write_python_json(&json, indent, 0, &mut out);
    if ensure_ascii == Some(true) {
        out = ascii_escaped(&out);
    }
    Ok(Value::from_safe_string(out))
}

/// Values print as Python prints them (`{{ tool }}` shows a dict's repr, `{{ flag }}` shows
/// `True`), since templates were written against Python's Jinja2.
fn python_formatter(out: &mut minijinja::Output, state: &minijinja::State, value: &Value) -> Result<(), Error> {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::Map | ValueKind::Seq | ValueKind::Bool | ValueKind::None => {
            out.write_str(&python_str(value)).map_err(Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Python's `str` of a template value (the `string` filter, and what `{{ }}` prints).
fn python_str(value: &Value) -> String {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::Map | ValueKind::Seq => {
            serde_json::to_value(value).map_or_else(|_| value.to_string(), |json| python_repr(&json))
        }
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.to_string(),
        ValueKind::None => "None".to_string(),
        ValueKind::Undefined => String::new(),
        _ => value.to_string(),
    }
}

/// Python's `repr` of a JSON value (dicts, lists, strings in Python's quotes).
fn python_repr(value: &Json) -> String {
    match value {
        Json::Null => "None".into(),
        Json::Bool(b) => if *b { "True" } else { "False" }.into(),
        Json::Number(n) => n.to_string(),
        Json::String(text) => {
            let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
            let mut out = String::from(quote);
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Json::Array(items) => format!("[{}]", items.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        Json::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_repr(&Json::String(k.clone())), python_repr(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// Non-ASCII characters as `\uXXXX` escapes (UTF-16 units), as `json.dumps(ensure_ascii=True)`.
fn ascii_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn sort_json_keys(value: &mut Json) {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(String, Json)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut item) in entries {
                sort_json_keys(&mut item);
                map.insert(key, item);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(sort_json_keys),
        _ => {}
    }
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
    fn tojson_takes_python_keywords() {
        let t = ChatTemplate::new(
            "{{ x | tojson(ensure_ascii=True, sort_keys=True) }}|{{ x | tojson(ensure_ascii=False) }}",
            "",
            "",
        )
        .unwrap();
        let out = t
            .env
            .get_template("chat")
            .unwrap()
            .render(minijinja::context! { x => Value::from_serialize(json!({"b": "é😀", "a": 1})) })
            .unwrap();
        assert_eq!(out, r#"{"a": 1, "b": "\u00e9\ud83d\ude00"}|{"b": "é😀", "a": 1}"#);
    }

    #[test]
    fn values_print_as_python_prints_them() {
        let t = ChatTemplate::new("{{ x }} {{ flag }} {{ nothing }} {{ 3 }} {{ \"it's\" }}", "", "").unwrap();
        let out = t.env.get_template("chat").unwrap().render(minijinja::context! {
            x => Value::from_serialize(json!({"a": [1, true, null, "it's"], "b": "q\n"})), flag => false, nothing => ()
        }).unwrap();
        assert_eq!(out, r#"{'a': [1, True, None, "it's"], 'b': 'q\n'} False None 3 it's"#);
    }

    #[test]
    fn strftime_writes_dates_as_python_does() {
        // 2024-07-23 13:05:09 UTC
        assert_eq!(
            strftime("%d %b %Y, %B %d, %Y-%m-%d %H:%M:%S %%", 1_721_739_909),
            "23 Jul 2024, July 23, 2024-07-23 13:05:09 %"
        );
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
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
