//! Summaries of a maskbench run: the JSON report, the stdout table and the SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Map, Value};

use crate::worker::{Answer, Outcome};

#[path = "../percentile.rs"]
mod percentile;
use percentile::pct;

/// Everything one engine answered, by schema index.
pub struct EngineResults {
    pub name: String,
    outcomes: BTreeMap<usize, (String, Outcome)>,
}

impl EngineResults {
    pub fn new(name: &str) -> EngineResults {
        EngineResults { name: name.into(), outcomes: BTreeMap::new() }
    }

    pub fn record(&mut self, index: usize, subset: &str, outcome: Outcome) {
        self.outcomes.insert(index, (subset.into(), outcome));
    }

    fn compiled(&self) -> impl Iterator<Item = (usize, &Answer)> {
        self.outcomes.iter().filter_map(|(&i, (_, o))| match o {
            Outcome::Done(a) if a.compile_us.is_some() => Some((i, a)),
            _ => None,
        })
    }

    /// All mask times, over the schemas `keep` lets through.
    fn mask_times(&self, keep: impl Fn(usize) -> bool) -> Vec<f64> {
        self.compiled().filter(|(i, _)| keep(*i)).flat_map(|(_, a)| a.mask_us.iter().copied()).collect()
    }

    fn compile_times(&self, keep: impl Fn(usize) -> bool) -> Vec<f64> {
        self.compiled().filter(|(i, _)| keep(*i)).filter_map(|(_, a)| a.compile_us).collect()
    }
}

/// A schema passes when it compiles, every valid instance is accepted and every invalid one
/// rejected (MaskBench's "schemas passing").
fn passes(a: &Answer) -> bool {
    a.compile_us.is_some() && a.valid.iter().all(|&v| v) && a.invalid.iter().all(|&v| !v)
}

fn summary(mut v: Vec<f64>, ps: &[(&str, f64)]) -> Value {
    v.sort_by(|a, b| a.total_cmp(b));
    let mut o = Map::new();
    o.insert("n".into(), json!(v.len()));
    for (name, p) in ps {
        o.insert((*name).into(), json!(pct(&v, *p)));
    }
    o.insert("max".into(), json!(v.last().copied().unwrap_or(f64::NAN)));
    Value::Object(o)
}

const COMPILE_PS: &[(&str, f64)] = &[("p50", 50.0), ("p90", 90.0), ("p99", 99.0)];
const MASK_PS: &[(&str, f64)] = &[("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)];

/// The first line of an error without the place it names and with numbers blurred, so that
/// alike errors count together.
fn error_kind(e: &str) -> String {
    let first = e.lines().next().unwrap_or("");
    // "... keyword `x` at #/a/b": keep the kind, not the place.
    let first = first.split(" at #").next().unwrap_or(first);
    let mut out = String::new();
    for c in first.chars().take(120) {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn build(results: &[EngineResults], ids: &[String], config: Value) -> Value {
    let common: Vec<usize> =
        (0..ids.len()).filter(|i| results.iter().all(|r| r.compiled().any(|(j, _)| j == *i))).collect();
    let in_common = |i: usize| common.binary_search(&i).is_ok();
    let mut engines = Map::new();
    for r in results {
        let (mut compiled, mut errors, mut timeouts, mut crashes, mut passing) = (0, 0, 0, 0, 0);
        let (mut v_acc, mut v_rej, mut i_rej, mut i_acc) = (0, 0, 0, 0);
        let mut error_kinds: BTreeMap<String, u32> = BTreeMap::new();
        let mut subsets: BTreeMap<String, [u32; 6]> = BTreeMap::new();
        let mut failing = Vec::new();
        for (&i, (subset, o)) in &r.outcomes {
            let s = subsets.entry(subset.clone()).or_default();
            s[0] += 1;
            match o {
                Outcome::Done(a) if a.compile_us.is_some() => {
                    compiled += 1;
                    s[1] += 1;
                    let va = a.valid.iter().filter(|&&v| v).count() as u32;
                    let ia = a.invalid.iter().filter(|&&v| v).count() as u32;
                    v_acc += va;
                    v_rej += a.valid.len() as u32 - va;
                    i_acc += ia;
                    i_rej += a.invalid.len() as u32 - ia;
                    s[3] += va;
                    s[4] += a.valid.len() as u32 - va;
                    s[5] += ia;
                    if passes(a) {
                        passing += 1;
                        s[2] += 1;
                    } else {
                        failing.push(ids[i].as_str());
                    }
                }
                Outcome::Done(a) => {
                    errors += 1;
                    *error_kinds.entry(error_kind(a.error.as_deref().unwrap_or(""))).or_default() += 1;
                }
                Outcome::Timeout => timeouts += 1,
                Outcome::Crash => crashes += 1,
            }
        }
        // The schemas behind the tail: each one's slowest step, slowest first.
        let mut slowest: Vec<(f64, &str)> = r
            .compiled()
            .filter_map(|(i, a)| a.mask_us.iter().copied().reduce(f64::max).map(|m| (m, ids[i].as_str())))
            .collect();
        slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut kinds: Vec<(String, u32)> = error_kinds.into_iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let subsets: Map<String, Value> = subsets
            .into_iter()
            .map(|(k, s)| {
                (k, json!({"total": s[0], "compiled": s[1], "passing": s[2], "valid_accepted": s[3], "valid_rejected": s[4], "invalid_accepted": s[5]}))
            })
            .collect();
        engines.insert(
            r.name.clone(),
            json!({
                "compile_us": summary(r.compile_times(|_| true), COMPILE_PS),
                "mask_us": summary(r.mask_times(|_| true), MASK_PS),
                "schemas": {"total": r.outcomes.len(), "compiled": compiled, "compile_errors": errors,
                            "timeouts": timeouts, "crashes": crashes, "passing": passing},
                "valid": {"accepted": v_acc, "rejected": v_rej},
                "invalid": {"rejected": i_rej, "accepted": i_acc},
                "common": {"compile_us": summary(r.compile_times(in_common), COMPILE_PS),
                           "mask_us": summary(r.mask_times(in_common), MASK_PS)},
                "subsets": subsets,
                "compiled_not_passing": failing,
                "slowest_masks": slowest.iter().take(20).map(|(us, id)| json!({"schema": id, "max_us": us})).collect::<Vec<_>>(),
                "top_compile_errors": kinds.iter().take(12).map(|(k, n)| json!({"error": k, "count": n})).collect::<Vec<_>>(),
            }),
        );
    }
    let ratios = ratios(&engines);
    json!({
        "config": config,
        "schemas": ids.len(),
        "common_schemas": common.len(),
        "engines": engines,
        "ratios_vs_conform": ratios,
    })
}

/// peer / conform for each time column (above 1: conform is faster), over all compiled
/// schemas and over the schemas every engine compiled.
fn ratios(engines: &Map<String, Value>) -> Value {
    let Some(base) = engines.get("conform") else { return json!({}) };
    let mut out = Map::new();
    for (name, e) in engines.iter().filter(|(n, _)| n.as_str() != "conform") {
        let mut o = Map::new();
        for (scope, prefix) in [("all", ""), ("common", "common.")] {
            for (col, keys) in
                [("compile_us", &["p50", "p99", "max"][..]), ("mask_us", &["p50", "p99", "p999", "max"][..])]
            {
                for k in keys {
                    let get =
                        |v: &Value| if scope == "all" { v[col][*k].as_f64() } else { v["common"][col][*k].as_f64() };
                    if let (Some(p), Some(c)) = (get(e), get(base)) {
                        if c > 0.0 && p.is_finite() && c.is_finite() {
                            o.insert(format!("{prefix}{col}.{k}"), json!((p / c * 100.0).round() / 100.0));
                        }
                    }
                }
            }
        }
        out.insert(name.clone(), Value::Object(o));
    }
    Value::Object(out)
}

fn fmt(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= 100.0 => format!("{x:.0}"),
        Some(x) if x.is_finite() => format!("{x:.1}"),
        _ => "-".into(),
    }
}

pub fn table(report: &Value) -> String {
    let mut s = String::new();
    let engines = report["engines"].as_object().unwrap();
    let _ = writeln!(
        s,
        "\n== maskbench: {} schemas, vocabulary {} ==",
        report["schemas"],
        report["config"]["vocab"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "{:<15} {:>8} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "engine", "compiled", "errors", "timeout", "crash", "passing", "valid ok", "valid no", "inval no", "inval OK!"
    );
    for (name, e) in engines {
        let _ = writeln!(
            s,
            "{:<15} {:>8} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}",
            name,
            e["schemas"]["compiled"].to_string(),
            e["schemas"]["compile_errors"].to_string(),
            e["schemas"]["timeouts"].to_string(),
            e["schemas"]["crashes"].to_string(),
            e["schemas"]["passing"].to_string(),
            e["valid"]["accepted"].to_string(),
            e["valid"]["rejected"].to_string(),
            e["invalid"]["rejected"].to_string(),
            e["invalid"]["accepted"].to_string()
        );
    }
    let common_title = format!("over the {} schemas every engine compiled", report["common_schemas"]);
    for (scope, title) in [("all", "over each engine's compiled schemas"), ("common", common_title.as_str())] {
        let _ = writeln!(s, "\ntimes {title}: compile in ms | mask + commit in µs");
        let _ = writeln!(
            s,
            "{:<15} {:>6} {:>7} {:>7} {:>7} {:>7} | {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "engine", "n", "p50", "p90", "p99", "max", "masks", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, e) in engines {
            let e = if scope == "all" { e } else { &e["common"] };
            let (c, m) = (&e["compile_us"], &e["mask_us"]);
            let ms = |k: &str| fmt(&json!(c[k].as_f64().map(|x| x / 1e3)));
            let _ = writeln!(
                s,
                "{:<15} {:>6} {:>7} {:>7} {:>7} {:>7} | {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}",
                name,
                c["n"].to_string(),
                ms("p50"),
                ms("p90"),
                ms("p99"),
                ms("max"),
                m["n"].to_string(),
                fmt(&m["p50"]),
                fmt(&m["p90"]),
                fmt(&m["p99"]),
                fmt(&m["p999"]),
                fmt(&m["max"]),
            );
        }
    }
    if let Some(r) = report["ratios_vs_conform"].as_object().filter(|r| !r.is_empty()) {
        let _ = writeln!(s, "\npeer time / conform time (above 1: conform faster)");
        for (name, o) in r {
            let cells: Vec<String> = o.as_object().unwrap().iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  {name}: {}", cells.join(", "));
        }
    }
    s
}

/// Cumulative distributions of the mask times, log-scale x axis, one line per engine.
pub fn svg(results: &[EngineResults]) -> String {
    const W: f64 = 760.0;
    const H: f64 = 420.0;
    const L: f64 = 60.0;
    const R: f64 = 20.0;
    const T: f64 = 30.0;
    const B: f64 = 50.0;
    const COLORS: &[&str] = &["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"];
    let series: Vec<(&str, Vec<f64>)> = results
        .iter()
        .map(|r| {
            let mut v = r.mask_times(|_| true);
            v.sort_by(|a, b| a.total_cmp(b));
            (r.name.as_str(), v)
        })
        .collect();
    let lo = series.iter().filter_map(|(_, v)| v.first()).fold(f64::INFINITY, |a, &b| a.min(b)).max(0.1);
    let hi = series.iter().filter_map(|(_, v)| v.last()).fold(1.0f64, |a, &b| a.max(b));
    let (lx0, lx1) = (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0));
    let x = |us: f64| L + (us.max(lo).log10() - lx0) / (lx1 - lx0) * (W - L - R);
    let y = |f: f64| T + (1.0 - f) * (H - T - B);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">Mask + commit time per token (cumulative fraction of masks)</text>"#,
        W / 2.0
    );
    for d in lx0 as i32..=lx1 as i32 {
        let px = x(10f64.powi(d));
        let _ = writeln!(s, r##"<line x1="{px:.1}" y1="{T}" x2="{px:.1}" y2="{}" stroke="#ddd"/>"##, H - B);
        let label = if d >= 6 {
            format!("{}s", 10f64.powi(d - 6))
        } else if d >= 3 {
            format!("{}ms", 10f64.powi(d - 3))
        } else {
            format!("{}µs", 10f64.powi(d))
        };
        let _ = writeln!(s, r#"<text x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"#, H - B + 16.0);
    }
    for f in [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] {
        let py = y(f);
        let _ = writeln!(s, r##"<line x1="{L}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/>"##, W - R);
        let _ = writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{f}</text>"#, L - 6.0, py + 4.0);
    }
    let _ =
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">µs per mask (log scale)</text>"#, W / 2.0, H - 12.0);
    for (k, (name, v)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        if !v.is_empty() {
            let n = v.len();
            let pts: Vec<String> = (0..=400)
                .map(|q| {
                    let i = ((q as f64 / 400.0) * (n - 1) as f64).round() as usize;
                    format!("{:.1},{:.1}", x(v[i]), y((i + 1) as f64 / n as f64))
                })
                .collect();
            let _ =
                writeln!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, pts.join(" "));
        }
        let ly = T + 14.0 + 18.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name} (n={})</text>"#,
            L + 10.0,
            L + 34.0,
            L + 40.0,
            ly + 4.0,
            v.len()
        );
    }
    s.push_str("</svg>\n");
    s
}
