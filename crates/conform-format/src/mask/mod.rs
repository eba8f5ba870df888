//! Token masks over a byte automaton (DESIGN §4–§5).
//!
//! * [`ByteAutomaton`] — the seam the format module implements.
//! * [`TokenSet`] — compact bitset over token ids.
//! * [`MaskIndex`] — shared per (automaton, vocab); caches, per automaton
//!   state, the allowed tokens and the `min_bytes_to_accept` of the state each
//!   one leads to, so a budgeted mask is a cached bitset lookup.
//! * [`Matcher`] — per sequence: current state, `apply` to logits, `accept`,
//!   fast-forward (`forced_bytes` / `forced_tokens`).

mod distance;
mod index;
mod matcher;
mod tokenset;
mod walk;

pub use index::{MaskIndex, MaskStats, StateMask};
pub use matcher::Matcher;
pub use tokenset::TokenSet;
pub(crate) use walk::{body_closure, uniform_body_step, utf8_chars_lead_to, Classes, FastU32};

/// A deterministic byte automaton with stable `u32` state ids.
pub trait ByteAutomaton: Send + Sync {
    fn start(&self) -> u32;
    /// `None` = dead.
    fn next(&self, state: u32, byte: u8) -> Option<u32>;
    fn is_accepting(&self, state: u32) -> bool;
    /// Fewest bytes from `state` to an accepting state; `u32::MAX` = cannot accept.
    fn min_bytes_to_accept(&self, state: u32) -> u32;
    /// [`ByteAutomaton::next`] for each of `bytes`, into `out` (cleared first): one call per
    /// row for a walk that fills whole rows, so an automaton that shares work between the bytes
    /// of one state (a lazily built one) can do it once.
    fn next_many(&self, state: u32, bytes: &[u8], out: &mut Vec<Option<u32>>) {
        out.clear();
        out.extend(bytes.iter().map(|&b| self.next(state, b)));
    }
    /// Byte equivalence classes: `byte_classes()[b]` is the class of byte `b`, and bytes of
    /// one class must step every state to the same result. Walks use it to step each state
    /// once per class instead of once per byte. Default: every byte is its own class.
    fn byte_classes(&self) -> [u8; 256] {
        std::array::from_fn(|b| b as u8)
    }
    /// Whether the automaton has built so many states lazily that its owner should start a
    /// fresh one for new work (ids stay valid for those holding this one). Default: never.
    fn saturated(&self) -> bool {
        false
    }
    /// The state every body character (printable ASCII but `"` and `\`, every multi-byte
    /// character but U+2028 and U+2029) leads `state` to, every byte on the way live, when the
    /// automaton can tell without building the states inside characters; `None` when it
    /// cannot or they go different ways. A lazily built automaton pays for each state a walk
    /// steps through, and a counted string's walk looks a token's length of characters ahead.
    /// Default: `None` (the walk steps the characters itself).
    fn body_char_step(&self, _state: u32) -> Option<u32> {
        None
    }
    /// The counting step of `state` (see [`CountingStep`]) when the automaton can tell without
    /// building the states inside characters; `None` when it cannot (the walk then fills the
    /// rows). A lazily built automaton pays for each state a row holds, and a walk resolves a
    /// counted string's chain a whole token's length ahead. Default: `None`.
    fn counting_step(&self, _state: u32) -> Option<CountingStep> {
        None
    }
    /// The highest [`ByteAutomaton::min_bytes_to_accept`] over the states that strings of body
    /// characters lead `state` to (itself included), when every body character steps each of
    /// them to a live state, there are at most `cap`, and the automaton can tell without
    /// building them; `None` otherwise. Default: `None` (the walk follows the characters).
    fn body_closure_bound(&self, _state: u32, _cap: usize) -> Option<u32> {
        None
    }
    /// Whether the whole byte string is a complete, valid output.
    fn accepts(&self, bytes: &[u8]) -> bool {
        let mut s = self.start();
        for &b in bytes {
            match self.next(s, b) {
                Some(t) => s = t,
                None => return false,
            }
        }
        self.is_accepting(s)
    }
}

impl<T: ByteAutomaton + ?Sized> ByteAutomaton for std::sync::Arc<T> {
    fn start(&self) -> u32 {
        (**self).start()
    }
    fn next(&self, state: u32, byte: u8) -> Option<u32> {
        (**self).next(state, byte)
    }
    fn next_many(&self, state: u32, bytes: &[u8], out: &mut Vec<Option<u32>>) {
        (**self).next_many(state, bytes, out)
    }
    fn is_accepting(&self, state: u32) -> bool {
        (**self).is_accepting(state)
    }
    fn min_bytes_to_accept(&self, state: u32) -> u32 {
        (**self).min_bytes_to_accept(state)
    }
    fn byte_classes(&self) -> [u8; 256] {
        (**self).byte_classes()
    }
    fn saturated(&self) -> bool {
        (**self).saturated()
    }
    fn body_char_step(&self, state: u32) -> Option<u32> {
        (**self).body_char_step(state)
    }
    fn counting_step(&self, state: u32) -> Option<CountingStep> {
        (**self).counting_step(state)
    }
    fn body_closure_bound(&self, state: u32, cap: usize) -> Option<u32> {
        (**self).body_closure_bound(state, cap)
    }
}

/// One step of a counted repetition (a `maxLength` string): the ASCII bytes below 0x7F, at
/// least 32 of them, that all step a state to one other live state, `next`; whether 0x7F and
/// every multi-byte UTF-8 character step it to `next` too, every byte on the way live. No
/// such step: `bytes == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountingStep {
    pub bytes: u128,
    pub next: u32,
    pub chars: bool,
}

impl CountingStep {
    pub const NONE: CountingStep = CountingStep { bytes: 0, next: u32::MAX, chars: false };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("token {token} is not allowed in state {state}")]
    NotAllowed { token: u32, state: u32 },
    #[error("token {token} would need {needed} more tokens to finish, only {remaining} remain (state {state})")]
    OverBudget { token: u32, state: u32, needed: u32, remaining: u32 },
    #[error("end-of-generation token {token} is not allowed: state {state} is not accepting")]
    EogNotAccepting { token: u32, state: u32 },
    #[error("token {token} is a control token and never allowed in constrained text")]
    ControlToken { token: u32 },
    #[error("token {token} is out of the vocabulary (size {n_vocab})")]
    OutOfVocab { token: u32, n_vocab: usize },
    #[error("generation already ended (an end-of-generation token was accepted)")]
    Finished,
    #[error("vocabulary size {vocab} does not match trie size {trie}")]
    VocabMismatch { vocab: usize, trie: usize },
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_types_are_send_sync() {
        fn ok<T: Send + Sync>() {}
        ok::<super::MaskIndex>();
        ok::<super::Matcher>();
        ok::<super::TokenSet>();
        ok::<crate::vocab::Vocab>();
        ok::<crate::vocab::TokenTrie>();
    }
}
