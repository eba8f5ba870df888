//! The vocabulary of a llama.cpp model, as the exact bytes each token adds to the text.
//!
//! `token_to_piece(special = false)` already undoes byte-level BPE's byte↔unicode mapping and
//! SentencePiece's `▁` and `<0xNN>` byte fallback; control and end-of-generation tokens render
//! as nothing and are kept out of text masks.

use llama_cpp_2::model::LlamaModel;

use crate::vocab::Vocab;

pub fn model_vocab(model: &LlamaModel) -> Vocab {
    let vocab = model.vocab();
    let mut tokens = Vec::with_capacity(vocab.n_tokens() as usize);
    let mut eog = Vec::new();
    for t in vocab.tokens() {
        if vocab.is_eog(t) {
            eog.push(t.0 as u32);
        }
        let bytes = vocab.token_to_piece(t, false, None);
        tokens.push((!vocab.is_control(t) && !bytes.is_empty()).then_some(bytes));
    }
    Vocab::from_token_bytes(tokens, eog)
}
