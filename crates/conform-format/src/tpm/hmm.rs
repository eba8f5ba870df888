//! The byte-level hidden Markov model and its versioned file.
//!
//! Symbols are the 256 byte values plus [`EOT`], the end of the text. Hidden state `z` emits one
//! symbol from `emit[z]`, then moves to `z'` with `trans[z][z']`; the first state is drawn from
//! `init`. A byte alphabet keeps the model small (`H × 257` emissions instead of `H × V` over a
//! 151k-token vocabulary) and lets one model serve any automaton, whose byte classes collapse the
//! emissions at run time.

use std::path::Path;

use anyhow::{bail, ensure, Context as _};
use serde::{Deserialize, Serialize};

/// The end-of-text symbol.
pub const EOT: usize = 256;
/// 256 bytes + end of text.
pub const SYMBOLS: usize = 257;

const MAGIC: &[u8; 12] = b"conform-tpm\n";
const VERSION: u32 = 1;

#[derive(Clone, Debug)]
pub struct Hmm {
    hidden: usize,
    /// `init[z]`.
    pub(crate) init: Vec<f64>,
    /// Row-major `trans[z * H + z']`.
    pub(crate) trans: Vec<f64>,
    /// Symbol-major `emit[s * H + z]`: the filter multiplies by one symbol's column at a time.
    pub(crate) emit: Vec<f64>,
}

/// What a TPM file says about itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TpmInfo {
    /// Fingerprint of the model it was distilled from (see `engine::model_fingerprint`).
    pub model: String,
    /// Free-form notes: samples, bytes, held-out log-likelihood, iterations.
    #[serde(default)]
    pub notes: serde_json::Value,
}

impl Hmm {
    /// A model from its three tables (rows are renormalised; negative or non-finite entries
    /// are refused).
    pub fn new(hidden: usize, init: Vec<f64>, trans: Vec<f64>, emit_rows: &[Vec<f64>]) -> anyhow::Result<Hmm> {
        ensure!(hidden >= 1, "an HMM needs at least one hidden state");
        ensure!(
            init.len() == hidden && trans.len() == hidden * hidden && emit_rows.len() == hidden,
            "HMM table sizes do not match {hidden} hidden states"
        );
        let mut emit = vec![0.0; SYMBOLS * hidden];
        for (z, row) in emit_rows.iter().enumerate() {
            ensure!(row.len() == SYMBOLS, "an emission row needs {SYMBOLS} symbols");
            for (s, &p) in row.iter().enumerate() {
                emit[s * hidden + z] = p;
            }
        }
        let mut hmm = Hmm { hidden, init, trans, emit };
        hmm.normalize()?;
        Ok(hmm)
    }

    /// One hidden state emitting every symbol alike: the lookahead ablation's "uniform TPM".
    pub fn uniform() -> Hmm {
        Hmm { hidden: 1, init: vec![1.0], trans: vec![1.0], emit: vec![1.0 / SYMBOLS as f64; SYMBOLS] }
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    #[inline]
    pub fn emission(&self, z: usize, symbol: usize) -> f64 {
        self.emit[symbol * self.hidden + z]
    }

    /// `emit[symbol][·]` over hidden states.
    #[inline]
    pub fn emission_column(&self, symbol: usize) -> &[f64] {
        &self.emit[symbol * self.hidden..(symbol + 1) * self.hidden]
    }

    #[inline]
    pub fn trans_row(&self, z: usize) -> &[f64] {
        &self.trans[z * self.hidden..(z + 1) * self.hidden]
    }

    /// Makes every distribution sum to 1.
    fn normalize(&mut self) -> anyhow::Result<()> {
        let h = self.hidden;
        let bad = |v: &[f64]| v.iter().any(|p| !p.is_finite() || *p < 0.0);
        ensure!(
            !bad(&self.init) && !bad(&self.trans) && !bad(&self.emit),
            "HMM probabilities must be finite and non-negative"
        );
        normalize(&mut self.init).context("the initial distribution is all zero")?;
        for row in self.trans.chunks_mut(h) {
            normalize(row).context("a transition row is all zero")?;
        }
        for z in 0..h {
            let total: f64 = (0..SYMBOLS).map(|s| self.emit[s * h + z]).sum();
            ensure!(total > 0.0, "an emission row is all zero");
            for s in 0..SYMBOLS {
                self.emit[s * h + z] /= total;
            }
        }
        Ok(())
    }

    /// Log-likelihood (natural log) of `bytes` followed by end of text.
    pub fn log_likelihood(&self, bytes: &[u8]) -> f64 {
        let h = self.hidden;
        let mut a = self.init.clone();
        let mut next = vec![0.0; h];
        let mut ll = 0.0;
        for s in bytes.iter().map(|&b| b as usize).chain([EOT]) {
            let e = self.emission_column(s);
            let mut total = 0.0;
            for z in 0..h {
                a[z] *= e[z];
                total += a[z];
            }
            if total <= 0.0 {
                return f64::NEG_INFINITY;
            }
            ll += total.ln();
            if s == EOT {
                break;
            }
            next.fill(0.0);
            for z in 0..h {
                let w = a[z] / total;
                if w != 0.0 {
                    for (n, t) in next.iter_mut().zip(self.trans_row(z)) {
                        *n += w * t;
                    }
                }
            }
            std::mem::swap(&mut a, &mut next);
        }
        ll
    }

    /// Writes the versioned file: magic, version, info (JSON), tables as little-endian f32,
    /// and an FNV-1a checksum of everything before it.
    pub fn save(&self, path: &Path, info: &TpmInfo) -> anyhow::Result<()> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let meta = serde_json::to_vec(info)?;
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&(self.hidden as u32).to_le_bytes());
        for v in self.init.iter().chain(&self.trans).chain(&self.emit) {
            out.extend_from_slice(&(*v as f32).to_le_bytes());
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &out).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Reads a file written by [`Hmm::save`]; any damage is an error that says what is wrong.
    pub fn load(path: &Path) -> anyhow::Result<(Hmm, TpmInfo)> {
        let bytes = std::fs::read(path).with_context(|| format!("reading the TPM {}", path.display()))?;
        Hmm::from_bytes(&bytes).with_context(|| format!("{} is not a usable TPM file", path.display()))
    }

    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<(Hmm, TpmInfo)> {
        ensure!(
            bytes.len() >= MAGIC.len() + 8 && &bytes[..MAGIC.len()] == MAGIC,
            "it does not start with the conform TPM magic"
        );
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        ensure!(fnv1a(body).to_le_bytes() == sum, "its checksum does not match (the file is corrupt or truncated)");
        let mut r = Reader { bytes: body, at: MAGIC.len() };
        let version = r.u32()?;
        if version != VERSION {
            bail!("it has format version {version}; this build reads version {VERSION}");
        }
        let meta_len = r.u32()? as usize;
        let info: TpmInfo = serde_json::from_slice(r.take(meta_len)?).context("its header is not valid JSON")?;
        let hidden = r.u32()? as usize;
        ensure!((1..=4096).contains(&hidden), "it claims {hidden} hidden states");
        let mut floats = |n: usize| -> anyhow::Result<Vec<f64>> {
            Ok(r.take(n * 4)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect())
        };
        let init = floats(hidden)?;
        let trans = floats(hidden * hidden)?;
        let emit = floats(SYMBOLS * hidden)?;
        ensure!(r.at == body.len(), "it has {} bytes after the tables", body.len() - r.at);
        let mut hmm = Hmm { hidden, init, trans, emit };
        hmm.normalize()?;
        Ok((hmm, info))
    }
}

fn normalize(v: &mut [f64]) -> Option<()> {
    let total: f64 = v.iter().sum();
    if total <= 0.0 {
        return None;
    }
    v.iter_mut().for_each(|p| *p /= total);
    Some(())
}

/// 64-bit FNV-1a: enough to catch a damaged or truncated file (not an adversary).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        ensure!(self.bytes.len() - self.at >= n, "it ends early");
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }
    fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn tiny() -> Hmm {
        let row = |bias: usize| (0..SYMBOLS).map(|s| if s == bias { 5.0 } else { 1.0 }).collect::<Vec<f64>>();
        Hmm::new(2, vec![0.6, 0.4], vec![0.7, 0.3, 0.2, 0.8], &[row(b'a' as usize), row(EOT)]).unwrap()
    }

    #[test]
    fn save_load_round_trip_and_damage_is_refused() {
        let dir = std::env::temp_dir().join(format!("conform-tpm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.tpm");
        let hmm = tiny();
        let info = TpmInfo { model: "m1".into(), notes: serde_json::json!({"k": 1}) };
        hmm.save(&path, &info).unwrap();
        let (back, back_info) = Hmm::load(&path).unwrap();
        assert_eq!(back_info, info);
        assert!((back.log_likelihood(b"ab") - hmm.log_likelihood(b"ab")).abs() < 1e-5);

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 1;
        assert!(Hmm::from_bytes(&bytes).unwrap_err().to_string().contains("checksum"));
        bytes.truncate(30);
        assert!(Hmm::from_bytes(&bytes).is_err());
        assert!(Hmm::from_bytes(b"GGUF....................").unwrap_err().to_string().contains("magic"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn likelihoods_sum_to_one_over_short_strings() {
        // Over all strings on a 1-symbol sub-alphabet the mass is geometric; check the exact
        // value for the empty string and one byte against hand computation.
        let hmm = tiny();
        let p_empty: f64 = (0..2).map(|z| hmm.init[z] * hmm.emission(z, EOT)).sum();
        assert!((hmm.log_likelihood(b"").exp() - p_empty).abs() < 1e-12);
        let mut p_a = 0.0;
        for z in 0..2 {
            for z2 in 0..2 {
                p_a += hmm.init[z] * hmm.emission(z, b'a' as usize) * hmm.trans[z * 2 + z2] * hmm.emission(z2, EOT);
            }
        }
        assert!((hmm.log_likelihood(b"a").exp() - p_a).abs() < 1e-12);
    }
}
