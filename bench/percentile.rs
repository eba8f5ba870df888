//! Shared by the benchmarks (`#[path]`-included): nearest-rank percentiles.

/// Nearest-rank percentile `p` (0–100) of sorted `v`, in whatever unit `v` is; NaN if empty.
pub fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}
