//! One sequence held to a [`Grammar`](crate::Grammar): mask the logits, commit the sampled
//! token, fast-forward what the format forces, all within the tokens the sequence has left.

use std::sync::Arc;

use crate::compiler::TokEnv;
use crate::mask::{MaskError, MaskIndex, Matcher, TokenSet};

/// Per-sequence state over a shared grammar. Cheap to create.
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    env: Arc<TokEnv>,
}

impl Constraint {
    pub(crate) fn new(index: Arc<MaskIndex>, env: Arc<TokEnv>) -> Constraint {
        Constraint { matcher: Matcher::new(index), env }
    }

    /// The underlying matcher (automaton state, masks).
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The tokens allowed next when `remaining_after` more may follow this one: every allowed
    /// token keeps the output valid and able to finish in time.
    pub fn allowed(&mut self, remaining_after: u32) -> Arc<TokenSet> {
        self.matcher.allowed(remaining_after)
    }

    /// Sets the logits of disallowed tokens to −∞; returns how many stay allowed.
    pub fn mask_logits(&mut self, logits: &mut [f32], remaining_after: u32) -> usize {
        self.matcher.apply(logits, remaining_after)
    }

    /// Advances past a sampled token; an error (nothing changed) when it was not allowed.
    pub fn commit(&mut self, token: u32) -> Result<(), MaskError> {
        self.matcher.accept(token)
    }

    /// Tokens the format forces next, committed already, to append without sampling. `room`
    /// is how many tokens the sequence may still produce: the tokenizer may spell forced bytes
    /// in more tokens than the budget's own path to acceptance, so forcing stops where the rest
    /// would no longer fit, and sampling goes on from there.
    pub fn fast_forward(&mut self, room: u32) -> Vec<u32> {
        let env = self.env.clone();
        let mut tokens = self.matcher.forced_tokens(|bytes| env.tokenize(bytes));
        let index = self.matcher.index().clone();
        let mut kept = 0;
        for (k, &t) in tokens.iter().enumerate() {
            let left_after = room.saturating_sub(k as u32 + 1);
            match index.step_token(self.matcher.state(), t) {
                Some(next) if index.finishes_within(next, left_after) => {
                    self.matcher.accept(t).expect("forced tokens step the automaton");
                    kept += 1;
                }
                _ => break,
            }
        }
        tokens.truncate(kept);
        tokens
    }

    /// Complete, and no byte may follow: the sequence ends here.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_finished()
    }

    /// Whether what was generated so far is a complete, valid output.
    pub fn is_accepting(&self) -> bool {
        self.matcher.is_accepting()
    }

    /// Back to the start of the format.
    pub fn reset(&mut self) {
        self.matcher.reset();
    }

    /// The fewest tokens still needed to finish (an upper bound).
    pub fn tokens_to_accept(&self) -> u32 {
        self.matcher.tokens_to_accept()
    }
}
