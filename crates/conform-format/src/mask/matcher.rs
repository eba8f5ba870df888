use super::{MaskError, MaskIndex, StateMask, TokenSet};
use std::sync::Arc;

/// Upper bound on fast-forward length (guards against automata with a long
/// or endless single-byte chain).
pub const MAX_FORCED_BYTES: usize = 1 << 16;

/// Per-sequence matcher: the current automaton state over a shared
/// [`MaskIndex`]. Cheap to create and clone.
#[derive(Clone)]
pub struct Matcher {
    index: Arc<MaskIndex>,
    state: u32,
    /// An EOG token was accepted: nothing more may be generated.
    ended: bool,
    /// Cached mask (avoids the cache mutex on every step), with the state it was fetched for.
    cur: Option<(u32, Arc<StateMask>)>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher").field("state", &self.state).field("ended", &self.ended).finish()
    }
}

impl Matcher {
    /// Start at the automaton's start state.
    pub fn new(index: Arc<MaskIndex>) -> Matcher {
        let s = index.automaton().start();
        Matcher::with_state(index, s)
    }

    pub fn with_state(index: Arc<MaskIndex>, state: u32) -> Matcher {
        Matcher { index, state, ended: false, cur: None }
    }

    pub fn index(&self) -> &Arc<MaskIndex> {
        &self.index
    }

    pub fn state(&self) -> u32 {
        self.state
    }

    /// Back to the start state.
    pub fn reset(&mut self) {
        self.state = self.index.automaton().start();
        self.ended = false;
        self.cur = None;
    }

    pub fn is_accepting(&self) -> bool {
        self.index.automaton().is_accepting(self.state)
    }

    /// True once an EOG token has been accepted.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Accepting and no byte can continue (or an EOG was accepted): the
    /// engine should stop (and may skip sampling the EOG).
    pub fn is_finished(&self) -> bool {
        if self.ended {
            return true;
        }
        let a = self.index.automaton();
        a.is_accepting(self.state) && (0..=255u8).all(|b| a.next(self.state, b).is_none())
    }

    /// Fewest bytes (≥ tokens) needed to finish from the current state.
    /// Tokens still needed to complete the output (see `MaskIndex::shortest_tokens`).
    pub fn tokens_to_accept(&self) -> u32 {
        self.index.shortest_tokens(self.state)
    }

    pub fn min_bytes_to_accept(&self) -> u32 {
        self.index.automaton().min_bytes_to_accept(self.state)
    }

    fn state_mask(&mut self) -> &Arc<StateMask> {
        if self.cur.as_ref().map(|c| c.0) != Some(self.state) {
            self.cur = Some((self.state, self.index.state_mask(self.state)));
        }
        &self.cur.as_ref().unwrap().1
    }

    /// Allowed tokens (text + EOG) when `remaining_after` tokens may follow
    /// the next one. Empty once ended.
    pub fn allowed(&mut self, remaining_after: u32) -> Arc<TokenSet> {
        if self.ended {
            return Arc::new(TokenSet::new(self.index.vocab().len()));
        }
        let index = self.index.clone();
        let m = self.state_mask().clone();
        index.allowed_in(self.state, &m, remaining_after)
    }

    /// True if the budget removes some otherwise-live token in this state
    /// (for "the budget shaped the output" reporting).
    pub fn budget_shapes(&mut self, remaining_after: u32) -> bool {
        if self.ended {
            return false;
        }
        let index = self.index.clone();
        let m = self.state_mask().clone();
        index.budget_shapes(self.state, &m, remaining_after)
    }

    /// Set every disallowed logit to `-inf`. `logits.len()` may exceed the
    /// vocabulary (extra ids are disallowed). Returns the number of allowed
    /// ids; 0 means nothing can be generated (only possible if the budget is
    /// already below `min_bytes_to_accept`, or after an EOG).
    pub fn apply(&mut self, logits: &mut [f32], remaining_after: u32) -> usize {
        if self.ended {
            logits.fill(f32::NEG_INFINITY);
            return 0;
        }
        let set = self.allowed(remaining_after);
        set.apply_to_logits(logits)
    }

    /// Advance by `token`. Errors (state unchanged) if the token is not live
    /// here: dead bytes, a state that can no longer accept, a control token,
    /// or an EOG in a non-accepting state. The budget is not checked; use
    /// [`Matcher::accept_within`] for that.
    pub fn accept(&mut self, token: u32) -> Result<(), MaskError> {
        self.accept_inner(token, u32::MAX)
    }

    /// Like [`Matcher::accept`], and also requires
    /// `min_bytes_to_accept(next) <= remaining_after`.
    pub fn accept_within(&mut self, token: u32, remaining_after: u32) -> Result<(), MaskError> {
        self.accept_inner(token, remaining_after)
    }

    fn accept_inner(&mut self, token: u32, remaining_after: u32) -> Result<(), MaskError> {
        if self.ended {
            return Err(MaskError::Finished);
        }
        let vocab = self.index.vocab();
        if token as usize >= vocab.len() {
            return Err(MaskError::OutOfVocab { token, n_vocab: vocab.len() });
        }
        if vocab.is_eog(token) {
            if self.is_accepting() {
                self.ended = true;
                return Ok(());
            }
            return Err(MaskError::EogNotAccepting { token, state: self.state });
        }
        if !vocab.is_text(token) {
            return Err(MaskError::ControlToken { token });
        }
        let next =
            self.index.step_token(self.state, token).ok_or(MaskError::NotAllowed { token, state: self.state })?;
        if !self.index.finishes_within(next, remaining_after) {
            let needed = self.index.shortest_tokens(next);
            if needed == u32::MAX {
                return Err(MaskError::NotAllowed { token, state: self.state });
            }
            return Err(MaskError::OverBudget { token, state: self.state, needed, remaining: remaining_after });
        }
        self.state = next;
        Ok(())
    }

    /// The unique continuation: follow bytes while the state is not
    /// accepting and exactly one byte keeps it alive.
    pub fn forced_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let a = self.index.automaton();
        let mut s = self.state;
        while out.len() < MAX_FORCED_BYTES && !a.is_accepting(s) {
            let mut only: Option<(u8, u32)> = None;
            let mut many = false;
            for b in 0..=255u8 {
                if let Some(n) = a.next(s, b) {
                    if a.min_bytes_to_accept(n) == u32::MAX {
                        continue; // leads nowhere: not a real choice
                    }
                    if only.is_some() {
                        many = true;
                        break;
                    }
                    only = Some((b, n));
                }
            }
            match (many, only) {
                (false, Some((b, n))) => {
                    out.push(b);
                    s = n;
                }
                _ => break,
            }
        }
        out
    }

    /// Fast-forward tokens: tokenize [`Matcher::forced_bytes`] with the
    /// model's tokenizer, keep the longest prefix of tokens that the matcher
    /// accepts in sequence, and drop the last kept token if a strictly longer
    /// vocabulary token extending its bytes is live from the state before it
    /// (a longer token could still be chosen — don't commit). Does not change
    /// the matcher; the engine calls `accept` on each returned token.
    pub fn forced_tokens(&self, tokenize: impl Fn(&[u8]) -> Vec<u32>) -> Vec<u32> {
        let bytes = self.forced_bytes();
        if bytes.is_empty() {
            return Vec::new();
        }
        let toks = tokenize(&bytes);
        let a = self.index.automaton();
        let mut out = Vec::new();
        let mut s = self.state;
        let mut prev_states = Vec::new();
        for &t in &toks {
            match self.index.step_token(s, t) {
                Some(n) if a.min_bytes_to_accept(n) != u32::MAX => {
                    prev_states.push(s);
                    out.push(t);
                    s = n;
                }
                _ => break,
            }
        }
        if let Some(&last) = out.last() {
            let before = *prev_states.last().unwrap();
            if self.has_live_extension(before, last) {
                out.pop();
            }
        }
        out
    }

    /// Is some text token whose bytes strictly extend `token`'s live from `state`?
    fn has_live_extension(&self, state: u32, token: u32) -> bool {
        let trie = self.index.trie();
        let a = self.index.automaton();
        let bytes = self.index.vocab().token_bytes(token);
        let Some(node) = trie.find(bytes) else { return false };
        let Some(after) = self.index.step_token(state, token) else { return false };
        let mut found = false;
        trie.walk(
            node,
            after,
            |&s, b| a.next(s, b),
            |n, &s| {
                if !trie.tokens_at(n).is_empty() && a.min_bytes_to_accept(s) != u32::MAX {
                    found = true;
                    return false;
                }
                true
            },
        );
        found
    }
}
