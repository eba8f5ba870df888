//! Token vocabulary: the exact byte string of every token id, plus the
//! end-of-generation (EOG) token ids.
//!
//! [`Vocab::from_token_bytes`] takes the bytes of each token from whoever has them (the server
//! reads a loaded llama.cpp model); [`Vocab::from_tokenizer_json`] (in `tokenizer_json.rs`)
//! builds the same thing from a HF `tokenizer.json`, for tests, tools and embedders.

pub mod tokenizer_json;
pub mod trie;

pub use tokenizer_json::VocabError;
pub use trie::TokenTrie;

/// Exact byte strings per token id.
///
/// Control tokens (those that never appear in text: BOS, chat-template
/// markers, …) have an empty byte string and are never part of a text mask.
/// EOG tokens are always treated as control tokens for the purpose of text
/// masks; they are allowed by the mask only in accepting states.
#[derive(Debug, Clone)]
pub struct Vocab {
    tokens: Vec<Vec<u8>>,
    eog: Vec<u32>,
    /// `is_eog_flags[id]` — O(1) EOG test.
    is_eog_flags: Vec<bool>,
    n_text: usize,
    max_token_len: usize,
    /// See [`Vocab::has_all_bytes`] (asked once per compiled format, so computed once here).
    all_bytes: bool,
}

impl Vocab {
    /// Build from per-id bytes. `None` (or an empty byte string) = control
    /// token, excluded from text masks. EOG ids out of range are ignored; EOG
    /// ids are forced to be control tokens (their bytes are dropped) so that
    /// they are only ever allowed through the "EOG iff accepting" rule.
    pub fn from_token_bytes(tokens: Vec<Option<Vec<u8>>>, eog: Vec<u32>) -> Vocab {
        let n = tokens.len();
        let mut is_eog_flags = vec![false; n];
        let mut eog_clean = Vec::new();
        for &e in &eog {
            if (e as usize) < n && !is_eog_flags[e as usize] {
                is_eog_flags[e as usize] = true;
                eog_clean.push(e);
            }
        }
        eog_clean.sort_unstable();
        let tokens: Vec<Vec<u8>> = tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| if is_eog_flags[i] { Vec::new() } else { t.unwrap_or_default() })
            .collect();
        let n_text = tokens.iter().filter(|t| !t.is_empty()).count();
        let max_token_len = tokens.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut v = Vocab { tokens, eog: eog_clean, is_eog_flags, n_text, max_token_len, all_bytes: false };
        v.all_bytes = v.single_byte_tokens().iter().all(Option::is_some);
        v
    }

    /// Number of token ids (including control tokens).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Exact bytes of a token; empty for control/EOG tokens and out-of-range ids.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.tokens.get(id as usize).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// True if this id is a text token (non-empty bytes).
    pub fn is_text(&self, id: u32) -> bool {
        !self.token_bytes(id).is_empty()
    }

    pub fn is_eog(&self, id: u32) -> bool {
        self.is_eog_flags.get(id as usize).copied().unwrap_or(false)
    }

    /// Sorted EOG token ids.
    pub fn eog_tokens(&self) -> &[u32] {
        &self.eog
    }

    /// Number of text tokens (non-empty bytes).
    pub fn n_text_tokens(&self) -> usize {
        self.n_text
    }

    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// Concatenate token bytes (control tokens contribute nothing).
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id));
        }
        out
    }

    /// For every byte value, the id of a single-byte text token (lowest id if
    /// several), or `None`. Closure within the budget (DESIGN §5) relies on all
    /// 256 being present.
    pub fn single_byte_tokens(&self) -> [Option<u32>; 256] {
        let mut out = [None; 256];
        for (i, t) in self.tokens.iter().enumerate() {
            if t.len() == 1 && out[t[0] as usize].is_none() {
                out[t[0] as usize] = Some(i as u32);
            }
        }
        out
    }

    /// True if every byte 0..=255 is a single-byte token, so that
    /// "bytes needed" bounds "tokens needed".
    pub fn has_all_bytes(&self) -> bool {
        self.all_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        let v = Vocab::from_token_bytes(
            vec![Some(b"a".to_vec()), None, Some(b"ab".to_vec()), Some(b"x".to_vec())],
            vec![1, 3, 99],
        );
        assert_eq!(v.len(), 4);
        assert_eq!(v.token_bytes(0), b"a");
        assert_eq!(v.token_bytes(1), b"");
        assert_eq!(v.token_bytes(3), b""); // EOG forced to control
        assert_eq!(v.token_bytes(100), b"");
        assert!(v.is_eog(1) && v.is_eog(3) && !v.is_eog(0) && !v.is_eog(99));
        assert_eq!(v.eog_tokens(), &[1, 3]);
        assert_eq!(v.n_text_tokens(), 2);
        assert_eq!(v.max_token_len(), 2);
        assert_eq!(v.decode(&[2, 1, 0]), b"aba");
        assert!(!v.has_all_bytes());
    }
}
