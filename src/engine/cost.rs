//! The format's cost to the model: at each sampled step, how much of the model's probability the
//! constraint took away. A format the model would have followed on its own costs 0; one that
//! fights it (masking the spaces it writes, forcing a call where it wants to stop) shows here.

/// Logits this far below the largest carry under e^-40 of its mass each: skipped.
const NEGLIGIBLE: f32 = 40.0;

/// The cost of one constrained sequence, summed over its sampled steps (forced tokens are not
/// sampled: the model is not asked, so they cost nothing here).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct FormatCost {
    /// Sampled steps under the constraint.
    pub steps: u32,
    /// Σ −ln(probability mass the constraint left), in nats.
    pub nats: f64,
    /// Steps at which the model's most likely token was not allowed.
    pub overridden: u32,
}

impl FormatCost {
    /// One step: `before` are the logits the model gave (after the request's own processors),
    /// `after` the same logits once the constraint ran; a token it ruled out is `-inf` there.
    pub fn observe(&mut self, before: &[f32], after: &[f32]) {
        let max = lanes_max(before);
        if !max.is_finite() {
            return;
        }
        let Masses { total, allowed, allowed_max } = masses(before, after, max);
        self.steps += 1;
        // The model's most likely token (every one, when several tie) was masked.
        self.overridden += (allowed_max < max) as u32;
        self.nats += if allowed > 0.0 {
            total.ln() - allowed.ln()
        } else if allowed_max.is_finite() {
            // Every allowed token lies in the skipped tail (rare): sum it relative to its best.
            total.ln() - (allowed_max - max) as f64 - masses(before, after, allowed_max).allowed.ln()
        } else {
            0.0 // nothing allowed: the step fails, no token is sampled
        };
    }

    /// Nats per sampled step (0 without steps).
    pub fn per_step(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.nats / self.steps as f64
        }
    }
}

/// Lanes of independent accumulators, so the loops below vectorise (a single float sum may not
/// be reordered, lanes may): one pass over a 152k vocabulary takes tens of microseconds.
const LANES: usize = 16;

fn lanes_max(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        for k in 0..LANES {
            lanes[k] = lanes[k].max(chunk[k]);
        }
    }
    lanes.iter().copied().fold(rest, f32::max)
}

/// One pass over a step's logits, relative to `top`.
struct Masses {
    /// Σ e^(l − top) over all tokens, and over the tokens the constraint kept (the negligible
    /// skipped).
    total: f64,
    allowed: f64,
    /// The largest logit the constraint kept.
    allowed_max: f32,
}

/// f32 lanes within a block of 1024 tokens (64 terms a lane), f64 across blocks.
fn masses(before: &[f32], after: &[f32], top: f32) -> Masses {
    let cutoff = top - NEGLIGIBLE;
    let mut out = Masses { total: 0.0, allowed: 0.0, allowed_max: f32::NEG_INFINITY };
    let mut best = [f32::NEG_INFINITY; LANES];
    for (b, a) in before.chunks(1024).zip(after.chunks(1024)) {
        let (mut t, mut w) = ([0f32; LANES], [0f32; LANES]);
        let (b_chunks, a_chunks) = (b.chunks_exact(LANES), a.chunks_exact(LANES));
        let (b_rest, a_rest) = (b_chunks.remainder(), a_chunks.remainder());
        for (b, a) in b_chunks.zip(a_chunks) {
            for k in 0..LANES {
                let kept = a[k] != f32::NEG_INFINITY;
                let e = exp_neg((b[k] - top).max(-NEGLIGIBLE));
                let e = if b[k] > cutoff { e } else { 0.0 };
                t[k] += e;
                w[k] += if kept { e } else { 0.0 };
                best[k] = best[k].max(if kept { b[k] } else { f32::NEG_INFINITY });
            }
        }
        for (&b, &a) in b_rest.iter().zip(a_rest) {
            let kept = a != f32::NEG_INFINITY;
            let e = if b > cutoff { exp_neg((b - top).max(-NEGLIGIBLE)) } else { 0.0 };
            t[0] += e;
            w[0] += if kept { e } else { 0.0 };
            best[0] = best[0].max(if kept { b } else { f32::NEG_INFINITY });
        }
        out.total += t.iter().map(|&x| x as f64).sum::<f64>();
        out.allowed += w.iter().map(|&x| x as f64).sum::<f64>();
    }
    out.allowed_max = best.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    out
}

/// e^x for x in [−NEGLIGIBLE, 0], within 3e-6 relative: 2^(x·log2 e) split into a power of
/// two (rounded by adding 1.5·2^23, whose low mantissa bits then hold it, moved into the
/// exponent) and 2^f for f in [−½, ½] (Taylor, degree 6). Only float adds and bit operations, so
/// the loops above vectorise, where `f32::exp` is a call per token.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E;
    let r = t + SHIFT;
    let f = t - (r - SHIFT);
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5
                + f * (0.055_504_11 + f * (0.009_618_129 + f * (0.001_333_355_8 + f * 0.000_154_035_3)))));
    f32::from_bits(r.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127) << 23) * p
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO: f32 = f32::NEG_INFINITY;

    #[test]
    fn the_fast_exp_is_close() {
        for i in 0..=4000 {
            let x = -(i as f32) / 100.0;
            let (fast, exact) = (exp_neg(x) as f64, (x as f64).exp());
            assert!((fast - exact).abs() <= 3e-6 * exact, "{x}: {fast} vs {exact}");
        }
    }

    #[test]
    fn a_format_the_model_follows_costs_nothing() {
        let before = [2.0, 1.0, -3.0, 0.5];
        let mut cost = FormatCost::default();
        cost.observe(&before, &before);
        cost.observe(&before, &[2.0, NO, NO, NO]);
        assert_eq!(cost.steps, 2);
        assert_eq!(cost.overridden, 0);
        let p0 = 2f64.exp() / [2.0f64, 1.0, -3.0, 0.5].iter().map(|l| l.exp()).sum::<f64>();
        assert!((cost.nats + p0.ln()).abs() < 1e-4, "{cost:?}");
    }

    #[test]
    fn masking_the_favourite_counts_as_an_override() {
        let before = [0.5, 0.0];
        let expected = (1.0 + (-0.5f64).exp()).ln() + 0.5; // −ln p(second token)
        let mut cost = FormatCost::default();
        cost.observe(&before, &[NO, 0.0]);
        assert_eq!(cost.overridden, 1);
        assert!((cost.nats - expected).abs() < 1e-4, "{cost:?}");
        // Lookahead reweights the allowed logits: the cost is still measured on the model's own.
        cost.observe(&before, &[NO, -5.0]);
        assert!((cost.nats - 2.0 * expected).abs() < 1e-4);
        assert!((cost.per_step() - expected).abs() < 1e-4);
        // A tie for the top with an allowed token is no override.
        cost.observe(&[0.0, 0.0], &[NO, 0.0]);
        assert_eq!(cost.overridden, 2);
    }

    /// Lanes, blocks and the remainder agree with a plain f64 sum over a vocabulary-like vector.
    #[test]
    fn the_vectorised_sums_match_a_plain_one() {
        let n = 3 * 1024 + 37;
        let before: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 * 60.0 - 50.0).collect();
        let after: Vec<f32> = before.iter().enumerate().map(|(i, &l)| if i % 5 == 0 { l } else { NO }).collect();
        let max = before.iter().copied().fold(NO, f32::max) as f64;
        let mass = |keep: &dyn Fn(usize) -> bool| -> f64 {
            before.iter().enumerate().filter(|&(i, _)| keep(i)).map(|(_, &l)| (l as f64 - max).exp()).sum()
        };
        let exact = mass(&|_| true).ln() - mass(&|i| i % 5 == 0).ln();
        let mut cost = FormatCost::default();
        cost.observe(&before, &after);
        assert!((cost.nats - exact).abs() < 1e-4, "{} vs {exact}", cost.nats);
    }

    #[test]
    fn an_allowed_token_far_in_the_tail_is_still_costed() {
        let before = [0.0, -100.0];
        let mut cost = FormatCost::default();
        cost.observe(&before, &[NO, -100.0]);
        assert!((cost.nats - 100.0).abs() < 1e-4, "{cost:?}");
    }
}
