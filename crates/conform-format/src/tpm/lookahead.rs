//! The lookahead dynamic program: how likely the HMM is to finish a format from here.
//!
//! For an automaton state `q` and hidden state `z`, `β_r(z, q)` is the probability that the HMM,
//! with `z` about to emit, writes at most `r` more bytes that take `q` to an accepting state and
//! then ends. Sweeping `r` upwards from `β_0(z, q) = E[z][EOT]·[q accepting]`:
//!
//! `β_r(z, q) = E[z][EOT]·[q ∈ F] + Σ_c E_c[z] · Σ_z' T[z][z'] β_{r-1}(z', δ(q, c))`
//!
//! over the automaton's byte classes `c` (bytes a state cannot tell apart), so a sweep costs
//! `O(|Q|·H² + |δ|·H)`. A table keeps `G_r = T·β_r` at a few byte horizons `r`. A sequence keeps a
//! forward filter `a(z) = P(next hidden state | bytes so far)`; a candidate token's score is
//! `P(α | bytes so far + token) = Σ_z a'(z) β_r(z, q')`, where the last byte goes through `G`
//! so it costs `O(H)` instead of `O(H²)`.
//!
//! Bytes the format forces (a non-accepting state with one live byte) are not the model's
//! writing: the HMM pauses on them (`β_r(z, q) = β_{r-1}(z, δ(q, b))`, and the filter skips
//! them). Otherwise a structural suffix such as `","answer":` is charged as if the model had to
//! choose to write it, and the TPM learns nothing but "close the field as soon as possible".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::hmm::{Hmm, EOT};
use crate::mask::ByteAutomaton;

/// Byte horizons of the tables the server builds: doubling up to the longest output we plan for.
pub const HORIZONS: [u32; 8] = [8, 16, 32, 64, 128, 256, 512, 1024];

/// Past these a format gets no tables; the request falls back to the mask (and says so).
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub max_states: usize,
    /// Multiply-adds of all sweeps together.
    pub max_work: u64,
}

impl Default for Caps {
    fn default() -> Self {
        // About a second of one core for the largest allowed format (the GSM8K answer schema,
        // ~10⁹ by this count, builds in 0.3 s).
        Caps { max_states: 20_000, max_work: 3_000_000_000 }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TablesError {
    #[error("the format has more than {max} automaton states reachable; lookahead handles up to {max}")]
    TooManyStates { max: usize },
    #[error("lookahead tables for this format would take {work} steps of work; the cap is {cap}")]
    TooMuchWork { work: u64, cap: u64 },
}

/// The lookahead tables of one (HMM, format) pair. Built once per compiled format and shared.
pub struct Tables {
    hmm: Arc<Hmm>,
    automaton: Arc<dyn ByteAutomaton>,
    /// Row of each live automaton state (states that can still accept).
    row: HashMap<u32, u32>,
    horizons: Vec<u32>,
    /// Per horizon, `G_r[row * H + z] = Σ_z' T[z][z'] β_r(z', state)`.
    next_value: Vec<Vec<f64>>,
    /// Per horizon, `β_r[row * H + z]` (read after a forced byte, where the HMM pauses).
    value: Vec<Vec<f64>>,
    /// Automaton states whose next byte is forced.
    forced: std::collections::HashSet<u32>,
    pub build_time: Duration,
    pub states: usize,
}

impl Tables {
    /// Whether these tables were built over this very automaton (state ids are per automaton).
    pub fn built_for(&self, automaton: &Arc<dyn ByteAutomaton>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.automaton), Arc::as_ptr(automaton))
    }

    /// Sweeps the dynamic program up to the last horizon (ascending), within `caps`.
    pub fn build(
        hmm: Arc<Hmm>,
        automaton: Arc<dyn ByteAutomaton>,
        horizons: &[u32],
        caps: Caps,
    ) -> Result<Tables, TablesError> {
        let start = Instant::now();
        let h = hmm.hidden();
        let classes = automaton.byte_classes();
        let n_classes = classes.iter().map(|&c| c as usize).max().unwrap_or(0) + 1;
        let mut members: Vec<Vec<u8>> = vec![Vec::new(); n_classes];
        for b in 0..=255u8 {
            members[classes[b as usize] as usize].push(b);
        }
        // Emission of each class: the class's bytes together.
        let class_emit: Vec<Vec<f64>> = members
            .iter()
            .map(|bytes| (0..h).map(|z| bytes.iter().map(|&b| hmm.emission(z, b as usize)).sum()).collect())
            .collect();

        // Live states reachable from the start, and their live moves (class, target row).
        let live = |s: u32| automaton.min_bytes_to_accept(s) != u32::MAX;
        let mut row: HashMap<u32, u32> = HashMap::new();
        let mut states = Vec::new();
        let mut moves: Vec<Vec<(u32, u32)>> = Vec::new();
        let s0 = automaton.start();
        if live(s0) {
            row.insert(s0, 0);
            states.push(s0);
        }
        let mut i = 0;
        while i < states.len() {
            let s = states[i];
            let mut out = Vec::new();
            for (c, bytes) in members.iter().enumerate() {
                let Some(t) = bytes.first().and_then(|&b| automaton.next(s, b)) else { continue };
                if !live(t) {
                    continue;
                }
                let next_row = match row.get(&t) {
                    Some(&r) => r,
                    None => {
                        if states.len() >= caps.max_states {
                            return Err(TablesError::TooManyStates { max: caps.max_states });
                        }
                        row.insert(t, states.len() as u32);
                        states.push(t);
                        states.len() as u32 - 1
                    }
                };
                out.push((c as u32, next_row));
            }
            moves.push(out);
            i += 1;
        }
        let q = states.len();
        // Forced: not accepting, one live move, on a class of one byte.
        let is_forced: Vec<bool> = (0..q)
            .map(|k| {
                !automaton.is_accepting(states[k]) && moves[k].len() == 1 && members[moves[k][0].0 as usize].len() == 1
            })
            .collect();
        let n_moves: usize = moves.iter().map(Vec::len).sum();
        let sweeps = horizons.last().copied().unwrap_or(0) as u64;
        let work = sweeps.saturating_mul((q * h * h + n_moves * h) as u64);
        if work > caps.max_work {
            return Err(TablesError::TooMuchWork { work, cap: caps.max_work });
        }

        let eot = hmm.emission_column(EOT).to_vec();
        let base: Vec<f64> = states
            .iter()
            .flat_map(|&s| {
                let accepting = automaton.is_accepting(s);
                eot.iter().map(move |&e| if accepting { e } else { 0.0 })
            })
            .collect();
        let mut beta = base.clone();
        let mut g = vec![0.0; q * h];
        let mut fresh = vec![0.0; h];
        let mut next_value = Vec::with_capacity(horizons.len());
        let mut value = Vec::with_capacity(horizons.len());
        let mut prev = beta.clone();
        let mut converged = false;
        let mut r = 0u32;
        for &horizon in horizons {
            while r < horizon && !converged {
                apply_transitions(&hmm, &beta, &mut g);
                prev.copy_from_slice(&beta);
                let mut change: f64 = 0.0;
                for (k, out) in moves.iter().enumerate() {
                    if is_forced[k] {
                        let t = out[0].1 as usize;
                        fresh.copy_from_slice(&prev[t * h..(t + 1) * h]);
                    } else {
                        fresh.copy_from_slice(&base[k * h..(k + 1) * h]);
                    }
                    for &(c, t) in out.iter().filter(|_| !is_forced[k]) {
                        let e = &class_emit[c as usize];
                        let gt = &g[t as usize * h..(t as usize + 1) * h];
                        for z in 0..h {
                            fresh[z] += e[z] * gt[z];
                        }
                    }
                    let cur = &mut beta[k * h..(k + 1) * h];
                    for z in 0..h {
                        change = change.max((fresh[z] - cur[z]).abs() / fresh[z].max(f64::MIN_POSITIVE));
                    }
                    cur.copy_from_slice(&fresh);
                }
                r += 1;
                // β only grows with r; once it stops moving every later horizon is the same.
                converged = change < 1e-12;
            }
            apply_transitions(&hmm, &beta, &mut g);
            next_value.push(g.clone());
            value.push(beta.clone());
        }
        let forced = states.iter().zip(&is_forced).filter(|(_, &f)| f).map(|(&s, _)| s).collect();
        Ok(Tables {
            hmm,
            automaton,
            row,
            horizons: horizons.to_vec(),
            next_value,
            value,
            forced,
            build_time: start.elapsed(),
            states: q,
        })
    }

    pub fn hmm(&self) -> &Arc<Hmm> {
        &self.hmm
    }

    /// The table for `remaining_bytes`: the longest horizon within it (the shortest if none).
    fn table(&self, remaining_bytes: u32) -> usize {
        self.horizons.partition_point(|&r| r <= remaining_bytes).saturating_sub(1)
    }

    /// Moves `filter` past `bytes` written from automaton state `state`, skipping forced bytes.
    pub fn advance(&self, filter: &mut Filter, state: u32, bytes: &[u8]) {
        let mut s = Some(state);
        for &b in bytes {
            let Some(cur) = s else { return };
            if !self.forced.contains(&cur) && !step_belief(&self.hmm, &mut filter.belief, b) {
                // Impossible under the model (cannot happen with smoothed emissions): start
                // over rather than carry a zero belief.
                filter.belief.copy_from_slice(&self.hmm.init);
            }
            s = self.automaton.next(cur, b);
        }
    }

    /// A filter at the start of an output.
    pub fn filter(&self) -> Filter {
        Filter { belief: self.hmm.init.clone() }
    }

    /// `P(α | bytes so far, then `bytes`)` within `remaining_bytes` bytes after them, where
    /// `state` is the automaton state and `filter` the belief after the bytes so far. 0 when
    /// `bytes` lead to a dead state (or there are none).
    pub fn score(
        &self,
        filter: &Filter,
        state: u32,
        bytes: &[u8],
        remaining_bytes: u32,
        scratch: &mut Vec<f64>,
    ) -> f64 {
        let Some((&last, head)) = bytes.split_last() else { return 0.0 };
        let mut s = state;
        scratch.clear();
        scratch.extend_from_slice(&filter.belief);
        for &b in head {
            let forced = self.forced.contains(&s);
            match self.automaton.next(s, b) {
                Some(t) => s = t,
                None => return 0.0,
            }
            if !forced && !step_belief(&self.hmm, scratch, b) {
                return 0.0;
            }
        }
        let forced = self.forced.contains(&s);
        let Some(t) = self.automaton.next(s, last) else { return 0.0 };
        let Some(&row) = self.row.get(&t) else { return 0.0 };
        let h = self.hmm.hidden();
        let k = self.table(remaining_bytes);
        let rows = row as usize * h..(row as usize + 1) * h;
        if forced {
            // The HMM pauses on a forced byte: the belief carries over unchanged.
            return scratch.iter().zip(&self.value[k][rows]).map(|(a, v)| a * v).sum();
        }
        let g = &self.next_value[k][rows];
        let e = self.hmm.emission_column(last as usize);
        let (mut num, mut den) = (0.0, 0.0);
        for z in 0..h {
            let w = scratch[z] * e[z];
            num += w * g[z];
            den += w;
        }
        if den > 0.0 {
            num / den
        } else {
            0.0
        }
    }
}

/// `g[q] = T · beta[q]` for every row `q`.
fn apply_transitions(hmm: &Hmm, beta: &[f64], g: &mut [f64]) {
    let h = hmm.hidden();
    for (b, out) in beta.chunks_exact(h).zip(g.chunks_exact_mut(h)) {
        for (z, o) in out.iter_mut().enumerate() {
            *o = hmm.trans_row(z).iter().zip(b).map(|(t, v)| t * v).sum();
        }
    }
}

/// Moves a belief over the hidden state that emits next past one emitted byte. False when the
/// byte is impossible under the belief.
fn step_belief(hmm: &Hmm, belief: &mut [f64], byte: u8) -> bool {
    let e = hmm.emission_column(byte as usize);
    let total: f64 = belief.iter().zip(e).map(|(b, e)| b * e).sum();
    if total <= 0.0 || !total.is_finite() {
        return false;
    }
    // Weighted belief in `belief` itself, then its image under T accumulated into a stack row
    // for small H (the common case) or a heap one.
    let mut on_stack = [0.0f64; 256];
    let mut on_heap = Vec::new();
    let next: &mut [f64] = if belief.len() <= on_stack.len() {
        &mut on_stack[..belief.len()]
    } else {
        on_heap.resize(belief.len(), 0.0);
        &mut on_heap
    };
    for (z, (b, e)) in belief.iter().zip(e).enumerate() {
        let w = b * e / total;
        if w != 0.0 {
            for (n, t) in next.iter_mut().zip(hmm.trans_row(z)) {
                *n += w * t;
            }
        }
    }
    belief.copy_from_slice(next);
    true
}

/// One sequence's belief about the HMM's hidden state after the bytes generated so far.
#[derive(Clone, Debug)]
pub struct Filter {
    belief: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{compile_regex, Limits};
    use crate::tpm::hmm::SYMBOLS;

    /// An HMM that puts most of its mass on `a`, `b`, `c` and end of text, a little elsewhere.
    fn hmm() -> Arc<Hmm> {
        let row = |weights: [f64; 4]| {
            let mut r = vec![0.001; SYMBOLS];
            r[b'a' as usize] = weights[0];
            r[b'b' as usize] = weights[1];
            r[b'c' as usize] = weights[2];
            r[EOT] = weights[3];
            r
        };
        Arc::new(
            Hmm::new(
                3,
                vec![0.5, 0.3, 0.2],
                vec![0.6, 0.3, 0.1, 0.2, 0.5, 0.3, 0.3, 0.3, 0.4],
                &[row([3.0, 1.0, 0.5, 0.2]), row([0.5, 2.0, 1.0, 0.5]), row([1.0, 1.0, 1.0, 2.0])],
            )
            .unwrap(),
        )
    }

    /// A non-accepting state with exactly one live byte: the HMM pauses there.
    fn forced(automaton: &dyn ByteAutomaton, s: u32) -> bool {
        let live = (0..=255u8)
            .filter(|&b| automaton.next(s, b).is_some_and(|t| automaton.min_bytes_to_accept(t) != u32::MAX))
            .count();
        !automaton.is_accepting(s) && live == 1
    }

    /// Probability of `text` under the HMM paused on forced bytes; with the end of text when
    /// `end`, else as a prefix.
    fn probability(hmm: &Hmm, automaton: &dyn ByteAutomaton, text: &[u8], end: bool) -> f64 {
        let mut belief = hmm.init.clone();
        let mut p = 1.0;
        let mut s = automaton.start();
        for &b in text {
            if !forced(automaton, s) {
                let e = hmm.emission_column(b as usize);
                p *= belief.iter().zip(e).map(|(a, e)| a * e).sum::<f64>();
                assert!(step_belief(hmm, &mut belief, b));
            }
            s = automaton.next(s, b).unwrap();
        }
        if end {
            p *= belief.iter().zip(hmm.emission_column(EOT)).map(|(a, e)| a * e).sum::<f64>();
        }
        p
    }

    /// `P(α within r | prefix)` by enumerating every continuation over the live alphabet.
    fn brute_force(hmm: &Hmm, automaton: &dyn ByteAutomaton, prefix: &[u8], r: usize) -> f64 {
        let mut total = 0.0;
        let mut frontier: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 0..=r {
            for w in &frontier {
                let text: Vec<u8> = prefix.iter().chain(w.iter()).copied().collect();
                if automaton.accepts(&text) {
                    total += probability(hmm, automaton, &text, true);
                }
            }
            if len < r {
                frontier =
                    frontier.iter().flat_map(|w| b"abc".iter().map(move |&c| [w.as_slice(), &[c]].concat())).collect();
            }
        }
        total / probability(hmm, automaton, prefix, false)
    }

    #[test]
    fn the_dynamic_program_equals_brute_force_enumeration() {
        let limits = Limits::default();
        let automaton: Arc<dyn ByteAutomaton> = Arc::new(compile_regex("(ab|b)*c(a|bc)?", &limits).unwrap());
        let hmm = hmm();
        let horizons = [0, 1, 2, 5, 8];
        let tables = Tables::build(hmm.clone(), automaton.clone(), &horizons, Caps::default()).unwrap();
        let mut scratch = Vec::new();
        for prefix in [&b""[..], b"b", b"ab", b"abb", b"bc"] {
            let mut state = automaton.start();
            for &b in prefix {
                state = automaton.next(state, b).unwrap();
            }
            let mut filter = tables.filter();
            tables.advance(&mut filter, automaton.start(), prefix);
            for candidate in [&b"a"[..], b"b", b"c", b"ab", b"bc", b"cbc", b"x"] {
                for &r in &horizons {
                    let got = tables.score(&filter, state, candidate, r, &mut scratch);
                    let text: Vec<u8> = prefix.iter().chain(candidate).copied().collect();
                    let dead = {
                        let mut s = Some(automaton.start());
                        for &b in &text {
                            s = s.and_then(|s| automaton.next(s, b));
                        }
                        s.is_none()
                    };
                    let want = if dead { 0.0 } else { brute_force(&hmm, automaton.as_ref(), &text, r as usize) };
                    assert!(
                        (got - want).abs() <= 1e-9 * want.max(1e-30) + 1e-15,
                        "prefix {:?} + {:?}, r = {r}: dp {got} vs brute force {want}",
                        String::from_utf8_lossy(prefix),
                        String::from_utf8_lossy(candidate)
                    );
                }
            }
        }
    }

    #[test]
    fn caps_refuse_large_formats() {
        let limits = Limits::default();
        let automaton: Arc<dyn ByteAutomaton> = Arc::new(compile_regex("[a-z]{0,300}", &limits).unwrap());
        let small = Caps { max_states: 50, max_work: u64::MAX };
        assert_eq!(
            Tables::build(hmm(), automaton.clone(), &HORIZONS, small).err(),
            Some(TablesError::TooManyStates { max: 50 })
        );
        let cheap = Caps { max_states: 100_000, max_work: 1000 };
        assert!(matches!(Tables::build(hmm(), automaton, &HORIZONS, cheap), Err(TablesError::TooMuchWork { .. })));
    }
}
