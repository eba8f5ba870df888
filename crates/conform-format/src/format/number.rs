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
/// Unbounded JSON integer (capped digits). Never `-0`: some parsers read it as the float -0.0,
/// which their validators then call no integer.
pub const INTEGER: &str = "(?:0|-?[1-9][0-9]{0,14})";
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
    let tail = |n: usize| {
        if n == 0 {
            String::new()
        } else if n == 1 {
            "[0-9]".into()
        } else {
            format!("[0-9]{{{n}}}")
        }
    };
    let dig = |a: u8, b: u8| if a == b { (a as char).to_string() } else { format!("[{}-{}]", a as char, b as char) };
    if lo[0] == hi[0] {
        return format!("{}{}", lo[0] as char, same_len(&lo[1..], &hi[1..]));
    }
    let lo_zero = lo[1..].iter().all(|&d| d == b'0');
    let hi_nine = hi[1..].iter().all(|&d| d == b'9');
    let mut alts = Vec::new();
    let mut mid_lo = lo[0] + 1;
    let mut mid_hi = hi[0] - 1;
    if lo_zero {
        mid_lo = lo[0];
    } else {
        let nines = vec![b'9'; n];
        alts.push(format!("{}{}", lo[0] as char, same_len(&lo[1..], &nines)));
    }
    if hi_nine {
        mid_hi = hi[0];
    }
    if mid_lo <= mid_hi {
        alts.push(format!("{}{}", dig(mid_lo, mid_hi), tail(n)));
    }
    if !hi_nine {
        let zeros = vec![b'0'; n];
        alts.push(format!("{}{}", hi[0] as char, same_len(&zeros, &hi[1..])));
    }
    if alts.len() == 1 {
        alts.pop().unwrap()
    } else {
        format!("(?:{})", alts.join("|"))
    }
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
        if a > b {
            continue;
        }
        alts.push(same_len(a.to_string().as_bytes(), b.to_string().as_bytes()));
    }
    if alts.len() == 1 {
        alts.pop().unwrap()
    } else {
        format!("(?:{})", alts.join("|"))
    }
}

/// Regex for the integers in `[lo, hi]` (inclusive); `None` when empty.
pub fn int_range(lo: i64, hi: i64) -> Option<String> {
    if lo > hi {
        return None;
    }
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
    pub fn is_empty(&self) -> bool {
        self.lo.is_none() && self.hi.is_none()
    }

    /// Integer interval implied by the bounds, clamped to the digit cap.
    pub fn int_interval(&self, cap: i64) -> (i64, i64) {
        let c = cap as f64;
        let lo = match self.lo {
            None => -cap,
            Some((v, ex)) => {
                let v = v.clamp(-c - 1.0, c + 1.0);
                (if ex { v.floor() + 1.0 } else { v.ceil() }) as i64
            }
        };
        let hi = match self.hi {
            None => cap,
            Some((v, ex)) => {
                let v = v.clamp(-c - 1.0, c + 1.0);
                (if ex { v.ceil() - 1.0 } else { v.floor() }) as i64
            }
        };
        (lo.max(-cap), hi.min(cap))
    }
}

/// Integers within bounds. `None` when no integer (within the digit cap) satisfies them.
pub fn integer_regex(b: &Bounds) -> Option<String> {
    if b.is_empty() {
        return Some(INTEGER.to_string());
    }
    let (lo, hi) = b.int_interval(INT_CAP);
    int_range(lo, hi)
}

/// Numbers within bounds: exact integers (optionally written `n.0`), plus every non-integral
/// value with at most 6 fraction digits (and at most 9 integer digits) that lies within them,
/// compared exactly in decimal.
pub fn number_regex(b: &Bounds) -> Option<String> {
    if b.is_empty() {
        return Some(NUMBER.to_string());
    }
    let mut alts = Vec::new();
    if let Some(i) = integer_regex(b) {
        alts.push(format!("{i}(?:\\.0)?"));
    }
    // Values as integers of millionths: n / 10^6.
    let cap = (FRAC_INT_CAP as i128 + 1) * SCALE - 1;
    let lo = b.lo.map_or(-cap, |(v, ex)| millionths(v, ex, true).max(-cap));
    let hi = b.hi.map_or(cap, |(v, ex)| millionths(v, ex, false).min(cap));
    if let Some(r) = fractions(lo.max(1), hi) {
        alts.push(r);
    }
    if let Some(r) = fractions((-hi).max(1), -lo) {
        alts.push(format!("-{r}"));
    }
    alternation(alts)
}

/// `(?:a|b|…)`, the one regex itself, or `None` for none.
fn alternation(mut alts: Vec<String>) -> Option<String> {
    match alts.len() {
        0 => None,
        1 => alts.pop(),
        _ => Some(format!("(?:{})", alts.join("|"))),
    }
}

const SCALE: i128 = 1_000_000;

/// The first (`lower`) or last millionth within a bound `v` (exclusive or not), computed on
/// the bound's shortest decimal form, so that `0.1` means one tenth exactly.
fn millionths(v: f64, exclusive: bool, lower: bool) -> i128 {
    let text = format!("{}", v.clamp(-1e12, 1e12)); // Display never uses an exponent
    let (neg, digits) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text.as_str()),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let kept = &frac[..frac.len().min(6)];
    let mut n = int.parse::<i128>().unwrap_or(0) * SCALE + format!("{kept:0<6}").parse::<i128>().unwrap_or(0);
    let inexact = frac.len() > 6 && frac[6..].bytes().any(|d| d != b'0');
    if neg {
        n = -n;
    }
    // n is v truncated toward zero; `inexact` says v lies strictly beyond it (away from zero).
    match (lower, inexact) {
        (true, true) => {
            if neg {
                n
            } else {
                n + 1
            }
        }
        (false, true) => {
            if neg {
                n - 1
            } else {
                n
            }
        }
        (true, false) => n + exclusive as i128,
        (false, false) => n - exclusive as i128,
    }
}

/// Regex for the non-integral decimals `k.f` (1 to 6 fraction digits, the last non-zero) whose
/// value in millionths lies in `[lo, hi]` (positive); `None` when there are none.
fn fractions(lo: i128, hi: i128) -> Option<String> {
    if lo > hi {
        return None;
    }
    let (ka, kb) = ((lo / SCALE) as u64, (hi / SCALE) as u64);
    let digits = |n: i128| -> [u8; 6] { format!("{:06}", n % SCALE).into_bytes().try_into().unwrap() };
    let (fa, fb) = (digits(lo), digits(hi));
    let with_int = |k: u64, f: Option<String>| f.map(|f| format!("{k}\\.{f}"));
    let alts: Vec<String> = if ka == kb {
        with_int(ka, fraction_range(&fa, &fb, 0, true, true)).into_iter().collect()
    } else {
        let middle = (kb > ka + 1).then(|| format!("{}{FRACTION}", nonneg_range(ka + 1, kb - 1)));
        [
            with_int(ka, fraction_range(&fa, b"999999", 0, true, true)),
            middle,
            with_int(kb, fraction_range(b"000000", &fb, 0, true, true)),
        ]
        .into_iter()
        .flatten()
        .collect()
    };
    alternation(alts)
}

/// Regex for fraction digits from position `i` on (at most 6 in all, the last non-zero) such
/// that, padded with zeros to 6 digits, they lie in `[lo, hi]` given that the digits before
/// `i` equal `lo`'s (`lo_tight`) or `hi`'s (`hi_tight`) so far. `None` when there are none.
fn fraction_range(lo: &[u8], hi: &[u8], i: usize, lo_tight: bool, hi_tight: bool) -> Option<String> {
    if i == 6 {
        return None;
    }
    if !lo_tight && !hi_tight {
        return Some(format!("[0-9]{{0,{}}}[1-9]", 5 - i));
    }
    // Digits after position i, free of both bounds: none, or any ending in a non-zero digit.
    let free_after = if i == 5 { String::new() } else { format!("(?:[0-9]{{0,{}}}[1-9])?", 4 - i) };
    let first = if lo_tight { lo[i] } else { b'0' };
    let last = if hi_tight { hi[i] } else { b'9' };
    let mut alts = Vec::new();
    for d in first..=last {
        let (t_lo, t_hi) = (lo_tight && d == lo[i], hi_tight && d == hi[i]);
        if !t_lo && !t_hi && d != first && d != last {
            continue;
        } // the middle, below
        let rest = fraction_range(lo, hi, i + 1, t_lo, t_hi);
        // Ending after `d`: the zeros that pad it must not fall below `lo`.
        let can_end = d != b'0' && (!t_lo || lo[i + 1..].iter().all(|&z| z == b'0'));
        let d = d as char;
        match (rest, can_end) {
            (Some(r), true) => alts.push(format!("{d}(?:{r})?")),
            (Some(r), false) => alts.push(format!("{d}{r}")),
            (None, true) => alts.push(d.to_string()),
            (None, false) => {}
        }
    }
    if last > first + 1 {
        // Digits strictly between the first and last: nothing further constrains them.
        let (a, b) = ((first + 1) as char, (last - 1) as char);
        alts.push(format!("[{a}-{b}]{free_after}"));
    }
    alternation(alts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> regex_automata::meta::Regex {
        regex_automata::meta::Regex::new(&format!("^(?:{p})$")).unwrap()
    }

    #[test]
    fn int_ranges_exhaustive() {
        let cases = [
            (0, 0),
            (0, 9),
            (3, 7),
            (0, 100),
            (7, 1234),
            (-55, 13),
            (-300, -17),
            (99, 1000),
            (-1, 0),
            (10, 19),
            (101, 999),
            (-1000, -1000),
        ];
        for (lo, hi) in cases {
            let r = re(&int_range(lo, hi).unwrap());
            for n in -1500i64..=1500 {
                assert_eq!(r.is_match(&n.to_string()), n >= lo && n <= hi, "[{lo},{hi}] {n}");
            }
            assert!(!r.is_match("-0"));
            assert!(!r.is_match("007"));
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
        for ok in ["1", "0.5", "-3.25", "1.0", "-100"] {
            assert!(r.is_match(ok), "{ok}");
        }
        for bad in ["2", "1.6", "1.5000001", "2.0"] {
            assert!(!r.is_match(bad), "{bad}");
        }
        let b = Bounds { lo: Some((-1.0, true)), hi: Some((0.0, true)) };
        let r = re(&number_regex(&b).unwrap());
        assert!(r.is_match("-0.5") && !r.is_match("-1") && !r.is_match("0") && !r.is_match("0.5"));
        // Fractional bounds are exact: 0.1 is one tenth, not the f64 nearest to it.
        let b = Bounds { lo: Some((0.1, false)), hi: Some((0.25, true)) };
        let r = re(&number_regex(&b).unwrap());
        for ok in ["0.1", "0.2", "0.249999", "0.11", "0.100001"] {
            assert!(r.is_match(ok), "{ok}");
        }
        for bad in ["0.25", "0.099999", "0", "0.3", "0.10", "0.2500001"] {
            assert!(!r.is_match(bad), "{bad}");
        }
        // sweep: every accepted value is within bounds
        for (lo, hi) in [
            (Some((0.5, false)), Some((3.0, true))),
            (Some((-2.5, true)), None),
            (None, Some((-0.5, false))),
            (Some((-1.37, true)), Some((2.05, false))),
            (Some((0.1, false)), Some((0.1, false))),
            (Some((-0.013, false)), Some((0.0, true))),
        ] {
            let b = Bounds { lo, hi };
            let r = re(&number_regex(&b).unwrap());
            // Exact on canonical forms: accepted iff within bounds.
            for i in -5000..5000 {
                for s in [format!("{}", i as f64 / 1000.0), format!("{i}")] {
                    let v: f64 = s.parse().unwrap();
                    let within = lo.is_none_or(|(l, ex)| if ex { v > l } else { v >= l })
                        && hi.is_none_or(|(h, ex)| if ex { v < h } else { v <= h });
                    assert_eq!(r.is_match(&s), within, "{s} in {lo:?}..{hi:?}");
                }
            }
        }
    }
}
