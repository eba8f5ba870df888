//! Lookahead decoding as a per-sequence constraint: the format's mask, then each allowed token
//! that carries the model's probability mass reweighted by the TPM's
//! `P(format completed | output so far + token)`, so `p ∝ p_LM · P_TPM^w` (DESIGN §2).

use std::sync::Arc;

use super::{Filter, Tables};
use crate::mask::MaskError;
use crate::Constraint;

/// One sequence under lookahead.
pub struct LookaheadConstraint {
    format: Constraint,
    tables: Arc<Tables>,
    /// Exponent on the TPM's probability.
    weight: f32,
    filter: Filter,
    /// Scratch: (token, logit) of the candidates, and their TPM probabilities.
    candidates: Vec<(u32, f32)>,
    weights: Vec<f64>,
    scratch: Vec<f64>,
}

/// Chosen on 24 GSM8K *train* items (not the evaluation's) among 1, 0.5 and 0.25: at 1 the
/// small byte HMM's crude sense of where a text ends outweighs the model and closes the
/// reasoning field after a few words; at 0.25 it only stops the mask's rambles to `max_tokens`.
pub const DEFAULT_LOOKAHEAD_WEIGHT: f32 = 0.25;

/// Candidates scored per step: the allowed tokens at least this likely relative to the most
/// likely one (the rest, a tail the sampler would almost never reach, is dropped), at most this
/// many. A ratio, not a share of the mass, so finding them costs one comparison per token.
const LOOKAHEAD_MIN_RATIO: f32 = 1e-4;
const LOOKAHEAD_CANDIDATES: usize = 64;
/// Bytes per token assumed when turning the token budget into the tables' byte horizon.
const BYTES_PER_TOKEN: u32 = 3;

impl LookaheadConstraint {
    /// `format` held to the mask, reweighted by `tables` with exponent `weight`.
    pub fn new(format: Constraint, tables: Arc<Tables>, weight: f32) -> LookaheadConstraint {
        LookaheadConstraint {
            weight,
            filter: tables.filter(),
            tables,
            format,
            candidates: Vec::new(),
            weights: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The mask, then the reweighting of the likeliest allowed tokens (see the module comment).
    pub fn mask_logits(&mut self, logits: &mut [f32], remaining_after: u32) {
        self.format.mask_logits(logits, remaining_after);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return;
        }
        let floor = max + LOOKAHEAD_MIN_RATIO.ln();
        let cands = &mut self.candidates;
        cands.clear();
        cands.extend(logits.iter().enumerate().filter(|(_, &l)| l >= floor).map(|(t, &l)| (t as u32, l)));
        if cands.len() > LOOKAHEAD_CANDIDATES {
            cands.select_nth_unstable_by(LOOKAHEAD_CANDIDATES - 1, |a, b| b.1.total_cmp(&a.1));
            cands.truncate(LOOKAHEAD_CANDIDATES);
        }
        if cands.len() <= 1 {
            return;
        }

        let matcher = self.format.matcher();
        let vocab = matcher.index().vocab();
        let remaining_bytes = remaining_after.saturating_mul(BYTES_PER_TOKEN);
        let weights = &mut self.weights;
        weights.clear();
        for &(token, _) in cands.iter() {
            let w = if vocab.is_eog(token) {
                // Ending now: the output is complete (EOG is only allowed when accepting).
                1.0
            } else {
                self.tables.score(
                    &self.filter,
                    matcher.state(),
                    vocab.token_bytes(token),
                    remaining_bytes,
                    &mut self.scratch,
                )
            };
            weights.push(w);
        }
        if weights.iter().all(|&w| w <= 0.0) {
            // The TPM sees no way to finish within its horizon: leave the mask's distribution.
            return;
        }
        logits.fill(f32::NEG_INFINITY);
        for (&(t, l), &w) in cands.iter().zip(weights.iter()) {
            if w > 0.0 {
                logits[t as usize] = l + self.weight * w.ln() as f32;
            }
        }
    }
    /// Advances past a sampled token, and the TPM's filter with it.
    pub fn commit(&mut self, token: u32) -> Result<(), MaskError> {
        let before = self.format.matcher().state();
        self.format.commit(token)?;
        let vocab = self.format.matcher().index().vocab();
        self.tables.advance(&mut self.filter, before, vocab.token_bytes(token));
        Ok(())
    }
    pub fn is_finished(&self) -> bool {
        self.format.is_finished()
    }

    /// [`Constraint::fast_forward`], the TPM's filter following the forced bytes.
    pub fn fast_forward(&mut self, room: u32) -> Vec<u32> {
        let before = self.format.matcher().state();
        let tokens = self.format.fast_forward(room);
        let bytes = self.format.matcher().index().vocab().decode(&tokens);
        self.tables.advance(&mut self.filter, before, &bytes);
        tokens
    }
    pub fn is_accepting(&self) -> bool {
        self.format.is_accepting()
    }
}
