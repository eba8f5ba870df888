//! Baum–Welch EM for the byte HMM, on sequences of bytes each followed by end of text.
//!
//! Scaled forward–backward (one normaliser per symbol) keeps probabilities in range; sequences
//! are split across threads, each with its own expected counts, summed before the M-step. A
//! pseudocount on every count keeps all bytes possible in every state: the lookahead divides by
//! nothing, but a zero emission would make a format's required byte impossible.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::hmm::{Hmm, EOT, SYMBOLS};

/// Expected counts of one E-step.
struct Counts {
    init: Vec<f64>,
    /// `trans[z][z']`, still to be multiplied by the current `T[z][z']`.
    trans: Vec<f64>,
    /// `emit[z][s]`.
    emit: Vec<f64>,
    log_likelihood: f64,
}

impl Counts {
    fn new(h: usize) -> Counts {
        Counts { init: vec![0.0; h], trans: vec![0.0; h * h], emit: vec![0.0; h * SYMBOLS], log_likelihood: 0.0 }
    }
    fn add(&mut self, other: &Counts) {
        let add = |a: &mut [f64], b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.init, &other.init);
        add(&mut self.trans, &other.trans);
        add(&mut self.emit, &other.emit);
        self.log_likelihood += other.log_likelihood;
    }
}

/// A random start: transitions near uniform, emissions near the data's symbol frequencies.
pub fn initial(hidden: usize, data: &[Vec<u8>], seed: u64) -> Hmm {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut freq = vec![1.0; SYMBOLS];
    for seq in data {
        for &b in seq {
            freq[b as usize] += 1.0;
        }
        freq[EOT] += 1.0;
    }
    let init: Vec<f64> = (0..hidden).map(|_| rng.gen_range(0.5..1.5)).collect();
    let trans: Vec<f64> = (0..hidden * hidden).map(|_| rng.gen_range(0.5..1.5)).collect();
    let emit: Vec<Vec<f64>> = (0..hidden).map(|_| freq.iter().map(|f| f * rng.gen_range(0.2..1.8)).collect()).collect();
    Hmm::new(hidden, init, trans, &emit).expect("positive random tables")
}

/// One EM iteration over `data` on `threads` threads; returns the new model and the
/// log-likelihood of `data` under the old one.
pub fn step(hmm: &Hmm, data: &[Vec<u8>], threads: usize, pseudocount: f64) -> (Hmm, f64) {
    let h = hmm.hidden();
    let chunk = data.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<Counts> = std::thread::scope(|scope| {
        let handles: Vec<_> = data
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut counts = Counts::new(h);
                    let mut work = Work::default();
                    for seq in part {
                        expect(hmm, seq, &mut counts, &mut work);
                    }
                    counts
                })
            })
            .collect();
        handles.into_iter().map(|t| t.join().expect("EM worker")).collect()
    });
    let mut total = Counts::new(h);
    for part in &parts {
        total.add(part);
    }
    let init: Vec<f64> = total.init.iter().map(|c| c + pseudocount).collect();
    let trans: Vec<f64> = (0..h * h).map(|i| total.trans[i] * hmm.trans[i] + pseudocount).collect();
    let emit: Vec<Vec<f64>> =
        (0..h).map(|z| total.emit[z * SYMBOLS..(z + 1) * SYMBOLS].iter().map(|c| c + pseudocount).collect()).collect();
    (Hmm::new(h, init, trans, &emit).expect("counts are positive"), total.log_likelihood)
}

#[derive(Default)]
struct Work {
    alpha: Vec<f64>,
    beta: Vec<f64>,
    scale: Vec<f64>,
}

/// Adds one sequence's expected counts (forward–backward with per-step scaling).
fn expect(hmm: &Hmm, seq: &[u8], counts: &mut Counts, work: &mut Work) {
    let h = hmm.hidden();
    let symbols: Vec<usize> = seq.iter().map(|&b| b as usize).chain([EOT]).collect();
    let n = symbols.len();
    work.alpha.resize(n * h, 0.0);
    work.beta.resize(n * h, 0.0);
    work.scale.resize(n, 0.0);
    let (alpha, beta, scale) = (&mut work.alpha, &mut work.beta, &mut work.scale);

    // Forward: alpha[t][z] = P(z_t = z | x_1..x_t), scale[t] = P(x_t | x_<t).
    for t in 0..n {
        let e = hmm.emission_column(symbols[t]);
        let (done, rest) = alpha.split_at_mut(t * h);
        let cur = &mut rest[..h];
        if t == 0 {
            cur.copy_from_slice(&hmm.init);
        } else {
            cur.fill(0.0);
            let prev = &done[(t - 1) * h..];
            for z in 0..h {
                let w = prev[z];
                if w != 0.0 {
                    for (c, tr) in cur.iter_mut().zip(hmm.trans_row(z)) {
                        *c += w * tr;
                    }
                }
            }
        }
        let mut total = 0.0;
        for z in 0..h {
            cur[z] *= e[z];
            total += cur[z];
        }
        let total = total.max(f64::MIN_POSITIVE);
        cur.iter_mut().for_each(|c| *c /= total);
        scale[t] = total;
        counts.log_likelihood += total.ln();
    }

    // Backward, with the same scales; accumulate transitions as we go.
    beta[(n - 1) * h..].fill(1.0);
    let mut w = vec![0.0; h];
    for t in (0..n - 1).rev() {
        let e = hmm.emission_column(symbols[t + 1]);
        let next = &beta[(t + 1) * h..(t + 2) * h];
        for z in 0..h {
            w[z] = e[z] * next[z] / scale[t + 1];
        }
        // Expected transitions z -> z' at t: alpha[t][z] * T[z][z'] * w[z'] (T applied in the
        // M-step).
        let a = &alpha[t * h..(t + 1) * h];
        for z in 0..h {
            let az = a[z];
            if az != 0.0 {
                let row = &mut counts.trans[z * h..(z + 1) * h];
                for (r, wz) in row.iter_mut().zip(&w) {
                    *r += az * wz;
                }
            }
        }
        let cur = &mut beta[t * h..(t + 1) * h];
        for z in 0..h {
            cur[z] = hmm.trans_row(z).iter().zip(&w).map(|(t, w)| t * w).sum();
        }
    }

    // Posteriors of each hidden state: alpha * beta (already normalised by the scales).
    for t in 0..n {
        let s = symbols[t];
        for z in 0..h {
            let g = alpha[t * h + z] * beta[t * h + z];
            counts.emit[z * SYMBOLS + s] += g;
            if t == 0 {
                counts.init[z] += g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn em_never_lowers_the_likelihood_and_learns_structure() {
        // Text with a strong two-phase structure: letters, then digits.
        let data: Vec<Vec<u8>> = (0..40).map(|i| format!("abab{}", 1000 + i * 7).into_bytes()).collect();
        let mut hmm = initial(4, &data, 1);
        let mut last = f64::NEG_INFINITY;
        for _ in 0..15 {
            let (next, ll) = step(&hmm, &data, 2, 1e-6);
            assert!(ll >= last - 1e-6, "EM lowered the likelihood: {last} -> {ll}");
            last = ll;
            hmm = next;
        }
        let direct: f64 = data.iter().map(|s| hmm.log_likelihood(s)).sum();
        let unigram = initial(1, &data, 1);
        let base: f64 = data.iter().map(|s| unigram.log_likelihood(s)).sum();
        assert!(direct > base + 50.0, "4 states should beat a unigram model: {direct} vs {base}");
    }

    #[test]
    fn counts_match_the_likelihood() {
        let data = vec![b"hello".to_vec(), b"".to_vec()];
        let hmm = initial(3, &data, 2);
        let (_, ll) = step(&hmm, &data, 1, 0.0);
        let direct: f64 = data.iter().map(|s| hmm.log_likelihood(s)).sum();
        assert!((ll - direct).abs() < 1e-9);
    }
}
