//! Exact decimal range regexes for integer and bounded-number constraints.
//!
//! Integers are capped at 15 digits (|n| ≤ 999 999 999 999 999 < 2^53) so every generated value
//! is exactly representable as an f64 by any JSON parser. Bounded non-integral numbers use
//! at most 9 integer digits and 6 fraction digits (≤ 15 significant digits), so f64 rounding can
//! never move a generated value across a bound.

/// Largest generated integer magnitude.
pub const INT_CAP: i64 = 999_999_999_999_999;
/// Largest integer part used for fractional values in bounded numbers.
pub const FRAC_INT_CAP: i64 = 999_999_999;
/// Unbounded JSON integer (capped digits).
pub const INTEGER: &str = "-?(?:0|[1-9][0-9]{0,14})";
/// Unbounded JSON number (capped digits and exponent, always finite).
pub const NUMBER: &str = "-?(?:0|[1-9][0-9]{0,14})(?:\\.[0-9]{1,17})?(?:[eE][+-]?[0-9]{1,2})?";
const FRACTION: &str = "\\.[0-9]{0,5}[1-9]";

fn same_len(lo: &[u8], hi: &[u8]) -> String {
    if lo.is_empty() {
        return String::new();
    }
    if lo == hi {
        return String::from_utf8(lo.to_vec()).unwrap();
    }
    let n = lo.len() - 1;
    let tail = |n: usize| if n == 0 { String::new() } else if n == 1 { "[0-9]".into() } else { format!("[0-9]{{{n}}}") };
    let dig = |a: u8, b: u8| if a == b { (a as char).to_string() } else { format!("[{}-{}]", a as char, b as char) };
    if lo[0] == hi[0] {
        return format!("{}{}", lo[0] as char, same_len(&lo[1..], &hi[1..]));
    }
    let lo_zero = lo[1..].iter().all(|&d| d == b'0');
    let hi_nine = hi[1..].iter().all(|&d| d == b'9');
    let mut alts = Vec::new();
    let mut mid_lo = lo[0] + 1;
    let mut mid_hi = hi[0] - 1;
    if lo_zero { mid_lo = lo[0]; } else {
        let nines = vec![b'9'; n];
        alts.push(format!("{}{}", lo[0] as char, same_len(&lo[1..], &nines)));
    }
    if hi_nine { mid_hi = hi[0]; }
    if mid_lo <= mid_hi {
        alts.push(format!("{}{}", dig(mid_lo, mid_hi), tail(n)));
    }
    if !hi_nine {
        let zeros = vec![b'0'; n];
        alts.push(format!("{}{}", hi[0] as char, same_len(&zeros, &hi[1..])));
    }
    if alts.len() == 1 { alts.pop().unwrap() } else { format!("(?:{})", alts.join("|")) }
}

/// Regex for the non-negative integers in `[lo, hi]`, no leading zeros. `lo <= hi`.
pub fn nonneg_range(lo: u64, hi: u64) -> String {
    debug_assert!(lo <= hi);
    let mut alts = Vec::new();
    let lo_len = lo.to_string().len();
    let hi_len = hi.to_string().len();
    for len in lo_len..=hi_len {
        let min_l = if len == 1 { 0 } else { 10u64.pow(len as u32 - 1) };
        let max_l = 10u64.pow(len as u32) - 1;
        let a = lo.max(min_l);
        let b = hi.min(max_l);
        if a > b { continue; }
        alts.push(same_len(a.to_string().as_bytes(), b.to_string().as_bytes()));
    }
    if alts.len() == 1 { alts.pop().unwrap() } else { format!("(?:{})", alts.join("|")) }
}

/// Regex for the integers in `[lo, hi]` (inclusive); `None` when empty.
pub fn int_range(lo: i64, hi: i64) -> Option<String> {
    if lo > hi { return None; }
    let mut alts = Vec::new();
    if lo < 0 {
        let nh = (-lo) as u64;
        let nl = if hi < 0 { (-hi) as u64 } else { 1 };
        alts.push(format!("-{}", nonneg_range(nl, nh)));
    }
    if hi >= 0 {
        alts.push(nonneg_range(lo.max(0) as u64, hi as u64));
    }
    Some(if alts.len() == 1 { alts.pop().unwrap() } else { format!("(?:{})", alts.join("|")) })
}

/// Numeric bounds: (value, exclusive).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounds {
    pub lo: Option<(f64, bool)>,
    pub hi: Option<(f64, bool)>,
}

impl Bounds {
    pub fn is_empty(&self) -> bool { self.lo.is_none() && self.hi.is_none() }

    /// Integer interval implied by the bounds, clamped to the digit cap.
    pub fn int_interval(&self, cap: i64) -> (i64, i64) {
        let c = cap as f64;
        let lo = match self.lo {
            None => -cap,
            Some((v, ex)) => { let v = v.clamp(-c - 1.0, c + 1.0); (if ex { v.floor() + 1.0 } else { v.ceil() }) as i64 }
        };
        let hi = match self.hi {
            None => cap,
            Some((v, ex)) => { let v = v.clamp(-c - 1.0, c + 1.0); (if ex { v.ceil() - 1.0 } else { v.floor() }) as i64 }
        };
        (lo.max(-cap), hi.min(cap))
    }
}

/// Integers within bounds. `None` when no integer (within the digit cap) satisfies them.
pub fn integer_regex(b: &Bounds) -> Option<String> {
    if b.is_empty() { return Some(INTEGER.to_string()); }
    let (lo, hi) = b.int_interval(INT_CAP);
    int_range(lo, hi)
}

/// Numbers within bounds: exact integers (optionally written `n.0`), plus fractional values
/// `k.f` / `-k.f` whose whole open unit interval lies within the bounds (a narrowing).
pub fn number_regex(b: &Bounds) -> Option<String> {
    if b.is_empty() { return Some(NUMBER.to_string()); }
    let mut alts = Vec::new();
    if let Some(i) = integer_regex(b) { alts.push(format!("{i}(?:\\.0)?")); }
    let cap = FRAC_INT_CAP as f64;
    let l = b.lo.map(|x| x.0.clamp(-cap - 2.0, cap + 2.0));
    let u = b.hi.map(|x| x.0.clamp(-cap - 2.0, cap + 2.0));
    // positive k.f in (k, k+1): need k >= L and k + 1 <= U
    let pk_lo = l.map(|l| l.ceil().max(0.0)).unwrap_or(0.0) as i64;
    let pk_hi = (u.map(|u| u.floor() - 1.0).unwrap_or(cap)).min(cap) as i64;
    if pk_lo <= pk_hi { alts.push(format!("{}{FRACTION}", nonneg_range(pk_lo as u64, pk_hi as u64))); }
    // negative -k.f in (-(k+1), -k): need -(k+1) >= L and -k <= U
    let nk_lo = u.map(|u| (-u).ceil().max(0.0)).unwrap_or(0.0) as i64;
    let nk_hi = (l.map(|l| (-l).floor() - 1.0).unwrap_or(cap)).min(cap) as i64;
    if nk_lo <= nk_hi { alts.push(format!("-{}{FRACTION}", nonneg_range(nk_lo as u64, nk_hi as u64))); }
    match alts.len() {
        0 => None,
        1 => alts.pop(),
        _ => Some(format!("(?:{})", alts.join("|"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> regex_automata::meta::Regex {
        regex_automata::meta::Regex::new(&format!("^(?:{p})$")).unwrap()
    }

    #[test]
    fn int_ranges_exhaustive() {
        let cases = [(0, 0), (0, 9), (3, 7), (0, 100), (7, 1234), (-55, 13), (-300, -17), (99, 1000), (-1, 0), (10, 19), (101, 999), (-1000, -1000)];
        for (lo, hi) in cases {
            let r = re(&int_range(lo, hi).unwrap());
            for n in -1500i64..=1500 {
                assert_eq!(r.is_match(&n.to_string()), n >= lo && n <= hi, "[{lo},{hi}] {n}");
            }
            assert!(!r.is_match("-0"));
            assert!(!r.is_match("007") || (lo..=hi).contains(&7) && false);
        }
        // brute force sweep of small ranges
        for lo in -30..30 {
            for hi in lo..40 {
                let r = re(&int_range(lo, hi).unwrap());
                for n in -60i64..60 {
                    assert_eq!(r.is_match(&n.to_string()), n >= lo && n <= hi);
                }
            }
        }
        assert!(int_range(5, 4).is_none());
    }

    #[test]
    fn bounds() {
        let b = Bounds { lo: Some((0.0, true)), hi: Some((10.0, false)) };
        let r = re(&integer_regex(&b).unwrap());
        assert!(!r.is_match("0") && r.is_match("1") && r.is_match("10") && !r.is_match("11"));
        let b = Bounds { lo: None, hi: Some((1.5, false)) };
        let r = re(&number_regex(&b).unwrap());
        for ok in ["1", "0.5", "-3.25", "1.0", "-100"] { assert!(r.is_match(ok), "{ok}"); }
        for bad in ["2", "1.6", "1.5000001", "2.0"] { assert!(!r.is_match(bad), "{bad}"); }
        let b = Bounds { lo: Some((-1.0, true)), hi: Some((0.0, true)) };
        let r = re(&number_regex(&b).unwrap());
        assert!(r.is_match("-0.5") && !r.is_match("-1") && !r.is_match("0") && !r.is_match("0.5"));
        // sweep: every accepted value is within bounds
        for (lo, hi) in [(Some((0.5, false)), Some((3.0, true))), (Some((-2.5, true)), None), (None, Some((-0.5, false)))] {
            let b = Bounds { lo, hi };
            let r = re(&number_regex(&b).unwrap());
            for i in -500..500 {
                for s in [format!("{}", i as f64 / 100.0), format!("{i}")] {
                    let v: f64 = s.parse().unwrap();
                    if r.is_match(&s) {
                        if let Some((l, ex)) = lo { assert!(if ex { v > l } else { v >= l }, "{s}"); }
                        if let Some((h, ex)) = hi { assert!(if ex { v < h } else { v <= h }, "{s}"); }
                    }
                }
            }
        }
    }
}
