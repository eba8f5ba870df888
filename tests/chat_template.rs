//! The default model's own chat template, rendered by minijinja, against the layout the model
//! was trained on (Qwen2.5's ChatML with `<tools>` and `<tool_call>` blocks).

use conform::chat_template::ChatTemplate;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use serde_json::json;

/// llama.cpp's backend initialises once per process, so the template is loaded once too.
fn qwen_template() -> &'static ChatTemplate {
    static TEMPLATE: std::sync::OnceLock<ChatTemplate> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(load_qwen_template)
}

fn load_qwen_template() -> ChatTemplate {
    let mut backend = LlamaBackend::init().unwrap();
    backend.void_logs();
    let (_, path) = conform::manifest::resolve(None).unwrap();
    let params = LlamaModelParams::default().with_vocab_only(true);
    let model = LlamaModel::load_from_file(&backend, path, &params).unwrap();
    let source = model.chat_template(None).unwrap().to_string().unwrap();
    ChatTemplate::new(&source, "", "<|im_end|>").unwrap()
}

#[test]
fn renders_system_user_tools_tool_calls_and_results_as_qwen_expects() {
    let template = qwen_template();
    let tools = vec![json!({"type": "function", "function": {"name": "get_weather",
        "description": "Weather <today>", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}})];
    let messages = vec![
        json!({"role": "system", "content": "Be brief."}),
        json!({"role": "user", "content": "Weather in Paris?"}),
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}),
        json!({"role": "tool", "tool_call_id": "c1", "content": "18 C"}),
    ];
    let text = template.render(&messages, Some(&tools)).unwrap();
    assert!(text.starts_with("<|im_start|>system\nBe brief.\n\n# Tools\n"), "{text}");
    // Tools are listed as Python's json.dumps writes them: ", " / ": " and no HTML escaping.
    assert!(text.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather <today>\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n</tools>"), "{text}");
    assert!(text.contains("<|im_start|>user\nWeather in Paris?<|im_end|>\n"), "{text}");
    assert!(text.contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"), "{text}");
    assert!(text.contains("<|im_start|>user\n<tool_response>\n18 C\n</tool_response><|im_end|>\n"), "{text}");
    assert!(text.ends_with("<|im_start|>assistant\n"), "{text}");
}

#[test]
fn without_a_system_message_the_default_one_is_used() {
    let text = qwen_template().render(&[json!({"role": "user", "content": [{"type": "text", "text": "Hi"}]})], None).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}
