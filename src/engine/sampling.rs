//! The sampling step: a pipeline of logit processors, then a sampler.
//!
//! Processors rewrite raw logits in place (penalties, logit bias, format masks); the sampler then
//! turns what is left into one token (greedy, or temperature + top-k / top-p / min-p with a seeded
//! RNG). We sample in Rust rather than through llama.cpp's sampler chain so that format masks see
//! exactly the distribution that is sampled, and so that logprobs describe it.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Per-request sampling settings, already validated by the API layer.
#[derive(Clone, Debug)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: u32,
    pub min_p: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: Option<u64>,
    /// How many alternatives to report per token; `None` reports no logprobs at all.
    pub top_logprobs: Option<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: None,
            top_logprobs: None,
        }
    }
}

/// One stage of the pipeline. `generated` counts how often each token was produced so far.
pub trait LogitProcessor: Send {
    fn process(&mut self, logits: &mut [f32], generated: &HashMap<u32, u32>);
}

/// OpenAI's presence and frequency penalties, applied to tokens already generated.
pub struct Penalties {
    pub presence: f32,
    pub frequency: f32,
}

impl LogitProcessor for Penalties {
    fn process(&mut self, logits: &mut [f32], generated: &HashMap<u32, u32>) {
        for (&token, &count) in generated {
            if let Some(logit) = logits.get_mut(token as usize) {
                *logit -= self.presence + self.frequency * count as f32;
            }
        }
    }
}

/// Additive per-token bias; -100 effectively bans a token, +100 effectively forces it.
pub struct LogitBias(pub Vec<(u32, f32)>);

impl LogitProcessor for LogitBias {
    fn process(&mut self, logits: &mut [f32], _: &HashMap<u32, u32>) {
        for &(token, bias) in &self.0 {
            if let Some(logit) = logits.get_mut(token as usize) {
                *logit += bias;
            }
        }
    }
}

/// The processors a request's parameters call for, in the order they apply.
pub fn pipeline(params: &SamplingParams) -> Vec<Box<dyn LogitProcessor>> {
    let mut stages: Vec<Box<dyn LogitProcessor>> = Vec::new();
    if params.presence_penalty != 0.0 || params.frequency_penalty != 0.0 {
        stages.push(Box::new(Penalties { presence: params.presence_penalty, frequency: params.frequency_penalty }));
    }
    if !params.logit_bias.is_empty() {
        stages.push(Box::new(LogitBias(params.logit_bias.clone())));
    }
    stages
}

/// A sampled token with the log-probabilities the client may ask for.
#[derive(Clone, Debug)]
pub struct Sampled {
    pub token: u32,
    /// Log-probability of `token` and the top alternatives, under the processed distribution
    /// (after penalties, bias and masks; before temperature). Empty unless requested.
    pub logprob: Option<f32>,
    pub top: Vec<(u32, f32)>,
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// Scratch buffer reused across steps: (token, probability).
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = match params.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        Sampler { params, rng, candidates: Vec::new() }
    }

    /// Picks a token from processed logits. Returns `None` when every token is masked out.
    pub fn sample(&mut self, logits: &[f32]) -> Option<Sampled> {
        let (max_token, max_logit) = argmax(logits)?;
        let (logprob, top) = match self.params.top_logprobs {
            None => (None, Vec::new()),
            Some(n) => {
                let log_z = log_sum_exp(logits, max_logit);
                (Some(log_z), top_n(logits, n as usize, log_z))
            }
        };
        let token = if self.params.temperature <= 0.0 { max_token } else { self.sample_tempered(logits, max_logit) };
        Some(Sampled { token, logprob: logprob.map(|log_z| logits[token as usize] - log_z), top })
    }

    fn sample_tempered(&mut self, logits: &[f32], max_logit: f32) -> u32 {
        let inv_t = 1.0 / self.params.temperature;
        let cands = &mut self.candidates;
        cands.clear();
        cands.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(i, &l)| (i as u32, ((l - max_logit) * inv_t).exp())),
        );
        // min_p: drop tokens far less likely than the best one (the best has weight 1).
        if self.params.min_p > 0.0 {
            cands.retain(|&(_, w)| w >= self.params.min_p);
        }
        let k = self.params.top_k as usize;
        if k > 0 && k < cands.len() {
            cands.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            cands.truncate(k);
        }
        if self.params.top_p < 1.0 {
            truncate_top_p(cands, self.params.top_p);
        }
        let total: f32 = cands.iter().map(|c| c.1).sum();
        let mut target = self.rng.gen::<f32>() * total;
        for &(token, w) in cands.iter() {
            if target < w {
                return token;
            }
            target -= w;
        }
        cands.last().map(|c| c.0).unwrap_or(0)
    }
}

/// Keeps the smallest set of most likely candidates whose mass reaches `top_p`.
/// Sorts only a growing head of the list: the nucleus is almost always small.
fn truncate_top_p(cands: &mut Vec<(u32, f32)>, top_p: f32) {
    let total: f32 = cands.iter().map(|c| c.1).sum();
    let goal = top_p * total;
    let mut head = 64.min(cands.len());
    loop {
        if head < cands.len() {
            cands.select_nth_unstable_by(head - 1, |a, b| b.1.total_cmp(&a.1));
        }
        cands[..head].sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let mut mass = 0.0;
        for i in 0..head {
            mass += cands[i].1;
            if mass >= goal {
                cands.truncate(i + 1);
                return;
            }
        }
        if head == cands.len() {
            return;
        }
        head = (head * 4).min(cands.len());
    }
}

fn argmax(logits: &[f32]) -> Option<(u32, f32)> {
    let mut best: Option<(u32, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_finite() && best.is_none_or(|(_, b)| l > b) {
            best = Some((i as u32, l));
        }
    }
    best
}

fn log_sum_exp(logits: &[f32], max_logit: f32) -> f32 {
    let sum: f32 = logits.iter().filter(|l| l.is_finite()).map(|l| (l - max_logit).exp()).sum();
    max_logit + sum.ln()
}

/// The `n` most likely tokens with their log-probabilities, most likely first.
fn top_n(logits: &[f32], n: usize, log_z: f32) -> Vec<(u32, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut all: Vec<(u32, f32)> =
        logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as u32, l)).collect();
    let n = n.min(all.len());
    if n < all.len() {
        all.select_nth_unstable_by(n - 1, |a, b| b.1.total_cmp(&a.1));
        all.truncate(n);
    }
    all.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    all.into_iter().map(|(t, l)| (t, l - log_z)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SamplingParams {
        SamplingParams { seed: Some(7), ..SamplingParams::default() }
    }

    #[test]
    fn greedy_takes_the_argmax_and_reports_logprobs() {
        let mut s = Sampler::new(SamplingParams { temperature: 0.0, top_logprobs: Some(2), ..params() });
        let out = s.sample(&[0.0, 2.0, 1.0, f32::NEG_INFINITY]).unwrap();
        assert_eq!(out.token, 1);
        assert_eq!(out.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        let p: f32 = [0.0f32, 2.0, 1.0].iter().map(|l| l.exp()).sum();
        assert!((out.logprob.unwrap() - (2.0 - p.ln())).abs() < 1e-5);
    }

    #[test]
    fn masked_tokens_are_never_sampled() {
        let mut s = Sampler::new(params());
        let logits = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
        for _ in 0..200 {
            let t = s.sample(&logits).unwrap().token;
            assert!(t == 1 || t == 3);
        }
        assert!(s.sample(&[f32::NEG_INFINITY; 3]).is_none());
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let logits = [3.0, 2.9, 0.0, -1.0, -2.0];
        let mut k = Sampler::new(SamplingParams { top_k: 2, ..params() });
        let mut p = Sampler::new(SamplingParams { top_p: 0.5, ..params() });
        for _ in 0..200 {
            assert!(k.sample(&logits).unwrap().token <= 1);
            assert_eq!(p.sample(&logits).unwrap().token, 0);
        }
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 20.0).collect();
        let run = || {
            let mut s = Sampler::new(params());
            (0..50).map(|_| s.sample(&logits).unwrap().token).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn penalties_and_bias_shift_logits() {
        let mut logits = vec![1.0, 1.0, 1.0];
        let generated = HashMap::from([(0u32, 3u32)]);
        let p = SamplingParams {
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            logit_bias: vec![(2, -100.0)],
            ..params()
        };
        for mut stage in pipeline(&p) {
            stage.process(&mut logits, &generated);
        }
        assert_eq!(logits, vec![1.0 - 0.5 - 0.75, 1.0, -99.0]);
    }
}
