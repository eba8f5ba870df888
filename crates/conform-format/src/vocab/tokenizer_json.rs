//! Build a [`Vocab`] from a HuggingFace `tokenizer.json`.
//!
//! Choice: we parse the file ourselves with `serde_json` instead of pulling in
//! the `tokenizers` crate (not in the offline registry, heavy to build). We
//! only need the exact byte string of each token id, which is fully determined
//! by the vocab plus the decoding convention:
//!
//! * **byte-level BPE** (GPT-2 / Qwen / Llama-3): every char of a token maps
//!   back to one byte through GPT-2's `bytes_to_unicode` table.
//! * **SentencePiece style** (Llama-2 / Mistral / Gemma): `▁` (U+2581) is a
//!   space, `<0xNN>` is the raw byte `NN` (byte fallback), everything else is
//!   UTF-8.
//!
//! Added tokens with `special: true` are control tokens (`None`); added tokens
//! with `special: false` (e.g. Qwen's `<tool_call>`) are text, their bytes are
//! their content verbatim. Ids missing from the file are control tokens.

use super::Vocab;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("parsing tokenizer.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("tokenizer.json: {0}")]
    Format(String),
}

/// Token-string convention of a tokenizer.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStyle {
    ByteLevel,
    SentencePiece,
}

/// Token contents that mark end of generation, if present.
pub const EOG_NAMES: &[&str] = &[
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "</s>",
    "<end_of_turn>",
    "<eos>",
    "<|end|>",
];

/// GPT-2 `bytes_to_unicode`: byte -> char.
pub fn gpt2_byte_to_char() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        out[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            let c = char::from_u32(256 + n).unwrap();
            n += 1;
            c
        };
    }
    out
}

fn gpt2_char_to_byte() -> HashMap<char, u8> {
    gpt2_byte_to_char().iter().enumerate().map(|(b, &c)| (c, b as u8)).collect()
}

fn contains_type(v: &Value, ty: &str) -> bool {
    match v {
        Value::Object(m) => {
            if m.get("type").and_then(|t| t.as_str()) == Some(ty) {
                return true;
            }
            m.values().any(|x| contains_type(x, ty))
        }
        Value::Array(a) => a.iter().any(|x| contains_type(x, ty)),
        _ => false,
    }
}

/// Decide the token-string convention: ByteLevel if the decoder or
/// pre-tokenizer mentions `ByteLevel`, else SentencePiece style.
pub fn detect_style(root: &Value) -> TokenStyle {
    let dec = root.get("decoder").unwrap_or(&Value::Null);
    let pre = root.get("pre_tokenizer").unwrap_or(&Value::Null);
    if contains_type(dec, "ByteLevel") || contains_type(pre, "ByteLevel") {
        TokenStyle::ByteLevel
    } else {
        TokenStyle::SentencePiece
    }
}

fn parse_byte_fallback(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    if b.len() == 6 && s.starts_with("<0x") && s.ends_with('>') {
        u8::from_str_radix(&s[3..5], 16).ok()
    } else {
        None
    }
}

/// Decode one model-vocab token string into its exact bytes.
pub fn decode_token(style: TokenStyle, s: &str, c2b: &HashMap<char, u8>) -> Result<Vec<u8>, VocabError> {
    match style {
        TokenStyle::ByteLevel => s
            .chars()
            .map(|c| {
                c2b.get(&c)
                    .copied()
                    .ok_or_else(|| VocabError::Format(format!("token {s:?}: char {c:?} is not in the GPT-2 byte map")))
            })
            .collect(),
        TokenStyle::SentencePiece => {
            if let Some(b) = parse_byte_fallback(s) {
                return Ok(vec![b]);
            }
            Ok(s.replace('\u{2581}', " ").into_bytes())
        }
    }
}

impl Vocab {
    /// Load a vocabulary from a HF `tokenizer.json` file.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Vocab, VocabError> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|e| VocabError::Io { path: path.display().to_string(), source: e })?;
        Self::from_tokenizer_json_bytes(&data)
    }

    /// Same as [`Vocab::from_tokenizer_json`] from the file's contents.
    pub fn from_tokenizer_json_bytes(data: &[u8]) -> Result<Vocab, VocabError> {
        let root: Value = serde_json::from_slice(data)?;
        let style = detect_style(&root);
        let c2b = gpt2_char_to_byte();
        let model = root.get("model").ok_or_else(|| VocabError::Format("no `model`".into()))?;
        let vocab = model.get("vocab").ok_or_else(|| VocabError::Format("no `model.vocab`".into()))?;

        // (id, token string) from the model vocab.
        let mut entries: Vec<(u32, String)> = Vec::new();
        match vocab {
            // BPE / WordPiece / WordLevel: {"token": id}
            Value::Object(m) => {
                for (k, v) in m {
                    let id =
                        v.as_u64().ok_or_else(|| VocabError::Format(format!("vocab id of {k:?} is not an integer")))?;
                    entries.push((id as u32, k.clone()));
                }
            }
            // Unigram: [["piece", score], ...], id = index
            Value::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    let s = e
                        .get(0)
                        .and_then(|x| x.as_str())
                        .ok_or_else(|| VocabError::Format(format!("unigram vocab entry {i} malformed")))?;
                    entries.push((i as u32, s.to_string()));
                }
            }
            _ => return Err(VocabError::Format("`model.vocab` is neither a map nor a list".into())),
        }

        // Added tokens: (id, content, special)
        let mut added: Vec<(u32, String, bool)> = Vec::new();
        if let Some(Value::Array(a)) = root.get("added_tokens") {
            for t in a {
                let id = t.get("id").and_then(|x| x.as_u64());
                let content = t.get("content").and_then(|x| x.as_str());
                let special = t.get("special").and_then(|x| x.as_bool()).unwrap_or(false);
                match (id, content) {
                    (Some(id), Some(c)) => added.push((id as u32, c.to_string(), special)),
                    _ => return Err(VocabError::Format("malformed added_tokens entry".into())),
                }
            }
        }

        let n =
            entries.iter().map(|e| e.0 as usize + 1).chain(added.iter().map(|e| e.0 as usize + 1)).max().unwrap_or(0);
        let mut tokens: Vec<Option<Vec<u8>>> = vec![None; n];
        for (id, s) in &entries {
            tokens[*id as usize] = Some(decode_token(style, s, &c2b)?);
        }
        let mut eog = Vec::new();
        for (id, content, special) in &added {
            // Added tokens override the model vocab entry of the same id.
            tokens[*id as usize] = if *special { None } else { Some(content.as_bytes().to_vec()) };
        }
        // EOG: by content, among added tokens first, then the model vocab
        // (SentencePiece models keep `</s>` in the vocab).
        for (id, content, _) in &added {
            if EOG_NAMES.contains(&content.as_str()) {
                eog.push(*id);
            }
        }
        if eog.is_empty() {
            for (id, s) in &entries {
                if EOG_NAMES.contains(&s.as_str()) {
                    eog.push(*id);
                }
            }
        }
        // `<unk>`-like and empty strings are control.
        for t in tokens.iter_mut() {
            if matches!(t, Some(b) if b.is_empty()) {
                *t = None;
            }
        }
        Ok(Vocab::from_token_bytes(tokens, eog))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_map_is_bijective() {
        let m = gpt2_byte_to_char();
        let inv = gpt2_char_to_byte();
        assert_eq!(inv.len(), 256);
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
        assert_eq!(m[b'a' as usize], 'a');
        for b in 0..256 {
            assert_eq!(inv[&m[b]] as usize, b);
        }
    }

    #[test]
    fn sentencepiece_tiny() {
        let json = r#"{
          "added_tokens": [
            {"id":0,"content":"<unk>","special":true},
            {"id":1,"content":"<s>","special":true},
            {"id":2,"content":"</s>","special":true}
          ],
          "normalizer": {"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
          "pre_tokenizer": null,
          "decoder": {"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
          "model": {"type":"BPE","byte_fallback":true,"vocab":{
             "<unk>":0,"<s>":1,"</s>":2,"<0x00>":3,"<0x0A>":4,"<0xFF>":5,
             "▁the":6,"▁":7,"é":8,"ab▁c":9,"<0x4G>":10
          }}
        }"#;
        let v = Vocab::from_tokenizer_json_bytes(json.as_bytes()).unwrap();
        assert_eq!(v.len(), 11);
        assert_eq!(v.token_bytes(0), b"");
        assert_eq!(v.token_bytes(1), b"");
        assert_eq!(v.token_bytes(2), b"");
        assert_eq!(v.token_bytes(3), &[0u8]);
        assert_eq!(v.token_bytes(4), b"\n");
        assert_eq!(v.token_bytes(5), &[0xFFu8]);
        assert_eq!(v.token_bytes(6), b" the");
        assert_eq!(v.token_bytes(7), b" ");
        assert_eq!(v.token_bytes(8), "é".as_bytes());
        assert_eq!(v.token_bytes(9), b"ab c");
        assert_eq!(v.token_bytes(10), b"<0x4G>"); // not valid hex: literal text
        assert_eq!(v.eog_tokens(), &[2]);
    }

    #[test]
    fn bytelevel_tiny() {
        let json = r#"{
          "added_tokens": [
            {"id":5,"content":"<|endoftext|>","special":true},
            {"id":6,"content":"<tool_call>","special":false}
          ],
          "pre_tokenizer": {"type":"ByteLevel","add_prefix_space":false},
          "decoder": {"type":"ByteLevel"},
          "model": {"type":"BPE","vocab":{"Ġthe":0,"Ċ":1,"a":2,"Ã©":3,"ĠĠ":4}}
        }"#;
        let v = Vocab::from_tokenizer_json_bytes(json.as_bytes()).unwrap();
        assert_eq!(v.len(), 7);
        assert_eq!(v.token_bytes(0), b" the");
        assert_eq!(v.token_bytes(1), b"\n");
        assert_eq!(v.token_bytes(2), b"a");
        assert_eq!(v.token_bytes(3), "é".as_bytes());
        assert_eq!(v.token_bytes(4), b"  ");
        assert_eq!(v.token_bytes(5), b"");
        assert_eq!(v.token_bytes(6), b"<tool_call>");
        assert_eq!(v.eog_tokens(), &[5]);
    }

    #[test]
    fn bytelevel_bad_char_is_error() {
        let json = r#"{"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"a\u0000":0}}}"#;
        assert!(Vocab::from_tokenizer_json_bytes(json.as_bytes()).is_err());
    }
}
