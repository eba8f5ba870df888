//! The format's cost to the model: at each sampled step, how much of the model's probability the
//! constraint took away. A format the model would have followed on its own costs 0; one that
//! fights it (masking the spaces it writes, forcing a call where it wants to stop) shows here.

/// Logits this far below the largest carry under e^-40 of its mass each: skipped, so a step costs
/// a comparison per token and an `exp` only for the plausible ones.
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
        // The first most likely token, as greedy sampling picks it.
        let (argmax, max) = before.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &l)| if l > best.1 { (i, l) } else { best });
        if !max.is_finite() {
            return;
        }
        let (mut total, mut allowed) = (0f64, 0f64);
        let mut allowed_max = f32::NEG_INFINITY;
        for (&b, &a) in before.iter().zip(after) {
            let kept = a != f32::NEG_INFINITY;
            if kept {
                allowed_max = allowed_max.max(b);
            }
            if b > max - NEGLIGIBLE {
                let e = ((b - max) as f64).exp();
                total += e;
                if kept {
                    allowed += e;
                }
            }
        }
        self.steps += 1;
        self.overridden += (after[argmax] == f32::NEG_INFINITY) as u32;
        self.nats += if allowed > 0.0 {
            total.ln() - allowed.ln()
        } else if allowed_max.is_finite() {
            // Every allowed token lies in the skipped tail (rare): sum it relative to its best.
            let tail: f64 = before.iter().zip(after).filter(|(_, &a)| a != f32::NEG_INFINITY).map(|(&b, _)| ((b - allowed_max) as f64).exp()).sum();
            total.ln() - (allowed_max - max) as f64 - tail.ln()
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

#[cfg(test)]
mod tests {
    use super::*;

    const NO: f32 = f32::NEG_INFINITY;

    #[test]
    fn a_format_the_model_follows_costs_nothing() {
        let before = [2.0, 1.0, -3.0, 0.5];
        let mut cost = FormatCost::default();
        cost.observe(&before, &before);
        cost.observe(&before, &[2.0, NO, NO, NO]);
        assert_eq!(cost.steps, 2);
        assert_eq!(cost.overridden, 0);
        let p0 = 2f64.exp() / [2.0f64, 1.0, -3.0, 0.5].iter().map(|l| l.exp()).sum::<f64>();
        assert!((cost.nats + p0.ln()).abs() < 1e-9, "{cost:?}");
    }

    #[test]
    fn masking_the_favourite_counts_as_an_override() {
        let before = [0.0, 0.0];
        let mut cost = FormatCost::default();
        cost.observe(&before, &[NO, 0.0]);
        assert_eq!(cost.overridden, 1);
        assert!((cost.nats - 2f64.ln()).abs() < 1e-9);
        // Lookahead reweights the allowed logits: the cost is still measured on the model's own.
        cost.observe(&before, &[NO, -5.0]);
        assert!((cost.nats - 2.0 * 2f64.ln()).abs() < 1e-9);
        assert!((cost.per_step() - 2f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn an_allowed_token_far_in_the_tail_is_still_costed() {
        let before = [0.0, -100.0];
        let mut cost = FormatCost::default();
        cost.observe(&before, &[NO, -100.0]);
        assert!((cost.nats - 100.0).abs() < 1e-6, "{cost:?}");
    }
}
