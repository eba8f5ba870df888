//! JSONSchemaBench: compile real-world schemas, accept valid / reject invalid instances.
use conform_format::format::*;
use conform_format::testdata::data_dir;
use serde_json::Value;
use std::collections::BTreeMap;
mod format_support;
use std::time::{Duration, Instant};

fn reason_key(e: &FormatError) -> String {
    match e {
        FormatError::UnsupportedKeyword { keyword, reason, .. } => {
            let r: String = reason.chars().take(60).collect();
            format!("unsupported `{keyword}` {r}")
        }
        FormatError::TooComplex { what, .. } => {
            let w = what.split(" at ").next().unwrap_or(what);
            format!("too complex: {}", w.chars().take(70).collect::<String>())
        }
        FormatError::InvalidSchema { message, .. } => {
            format!("invalid schema: {}", message.chars().take(70).collect::<String>())
        }
        other => other.to_string().chars().take(80).collect(),
    }
}

#[test]
fn jsonschemabench() {
    let dir = data_dir().join("jsonschemabench").display().to_string();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("SKIP: no data at {dir}");
        return;
    };
    let mut files: Vec<_> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect();
    files.sort();
    let lenient = std::env::var("CONFORM_LENIENT").is_ok();
    // CONFORM_REFUSE_UNKNOWN=1: refuse keywords of no JSON Schema draft
    // (format_options.unknown_keywords: "error"); by default they are skipped as annotations.
    let refuse_unknown_keywords = std::env::var("CONFORM_REFUSE_UNKNOWN").is_ok();
    let opts = SchemaOptions { lenient, refuse_unknown_keywords, ..Default::default() };
    let limits = Limits::default();
    let sample: usize = std::env::var("CONFORM_BENCH_EVERY").ok().and_then(|s| s.parse().ok()).unwrap_or(1); // every schema by default; CONFORM_BENCH_EVERY=k samples every k-th for quick runs
    let mut v_pol = 0u32;
    let (mut total, mut compiled, mut v_ok, mut v_bad, mut i_ok, mut i_bad) = (0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
    let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
    let mut ignored: BTreeMap<String, u32> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut rejected = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    let mut times: Vec<Duration> = Vec::new();
    let start = Instant::now();
    let mut per_subset: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (li, line) in text.lines().enumerate() {
            if li % sample != 0 {
                continue;
            }
            let rec: Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let id = rec["id"].as_str().unwrap_or("?").to_string();
            let subset = rec["subset"].as_str().unwrap_or("?").to_string();
            total += 1;
            let schema = &rec["schema"];
            let t0 = Instant::now();
            let res = compile_schema(schema, &opts, &limits);
            let dt = t0.elapsed();
            times.push(dt);
            if dt > slowest.0 {
                slowest = (dt, id.clone());
            }
            let e = per_subset.entry(subset).or_default();
            e.0 += 1;
            match res {
                Err(err) => {
                    let key = reason_key(&err);
                    if let Ok(show) = std::env::var("CONFORM_BENCH_SHOW") {
                        if key.contains(&show) {
                            println!("SHOW {id} {dt:?}: {err}");
                        }
                    }
                    *reasons.entry(key).or_default() += 1;
                }
                Ok((a, ign)) => {
                    compiled += 1;
                    e.1 += 1;
                    for i in ign {
                        *ignored.entry(i.split(" at ").next().unwrap().to_string()).or_default() += 1;
                    }
                    for t in rec["tests"].as_array().into_iter().flatten() {
                        let canon = canonical_json(&t["data"], Some(schema));
                        let acc = a.accepts(canon.as_bytes());
                        match (t["valid"].as_bool().unwrap_or(false), acc) {
                            (true, true) => v_ok += 1,
                            (true, false)
                                if format_support::policy_reason(&t["data"], schema, &canon, &limits).is_some() =>
                            {
                                v_pol += 1
                            }
                            (true, false) => {
                                v_bad += 1;
                                rejected.push(format!("{id}: {}", canon.chars().take(200).collect::<String>()));
                            }
                            (false, false) => i_ok += 1,
                            (false, true) => {
                                i_bad += 1;
                                bad.push(format!(
                                    "{id}: {} | {}",
                                    t["description"],
                                    canon.chars().take(300).collect::<String>()
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    println!("== JSONSchemaBench (lenient={lenient}, every {sample}th schema) ==");
    for (s, (n, c)) in &per_subset {
        println!("{s:<26} {c:>5}/{n:<5} compiled");
    }
    println!("schemas: {total}, compiled: {compiled} ({:.1}%)", 100.0 * compiled as f64 / total.max(1) as f64);
    println!(
        "valid instances: accepted {v_ok}, policy-excluded {v_pol}, wrongly rejected {v_bad} ({:.2}% of valid)",
        100.0 * v_bad as f64 / (v_ok + v_bad + v_pol).max(1) as f64
    );
    println!("invalid instances: rejected {i_ok}, ACCEPTED {i_bad}");
    times.sort();
    let pct = |q: f64| times.get(((times.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    println!("compile time p50 {:?}, p90 {:?}, p99 {:?}", pct(0.5), pct(0.9), pct(0.99));
    println!("slowest compile: {:?} ({}); total time {:?}", slowest.0, slowest.1, start.elapsed());
    let mut rs: Vec<_> = reasons.into_iter().collect();
    rs.sort_by_key(|r| std::cmp::Reverse(r.1));
    println!("top failure reasons:");
    for (r, n) in rs.iter().take(30) {
        println!("  {n:>5}  {r}");
    }
    if lenient {
        let mut is: Vec<_> = ignored.into_iter().collect();
        is.sort_by_key(|r| std::cmp::Reverse(r.1));
        for (r, n) in is.iter().take(20) {
            println!("  ignored {n:>5}  {r}");
        }
    }
    for r in rejected.iter().take(25) {
        println!("valid rejected: {r}");
    }
    for b in bad.iter().take(50) {
        println!("INVALID ACCEPTED: {b}");
    }
    if !lenient {
        assert_eq!(i_bad, 0, "invalid instances accepted");
    }
}

/// Random outputs of compiled schemas validate (an independent validator, the `jsonschema`
/// crate, with formats asserted): the generated language is a narrowing of the schema's, maps,
/// undeclared members and decimal bounds included. Walks pick random live bytes, then close by
/// the shortest way; every 20th schema, 4 walks each.
#[test]
fn sampled_outputs_validate() {
    use conform_format::mask::ByteAutomaton;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let dir = data_dir().join("jsonschemabench");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("SKIP: no data at {}", dir.display());
        return;
    };
    let mut files: Vec<_> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect();
    files.sort();
    let mut rng = StdRng::seed_from_u64(7);
    let (mut walks, mut failures) = (0u32, Vec::new());
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines().step_by(20) {
            let Ok(rec) = serde_json::from_str::<Value>(line) else { continue };
            let schema = &rec["schema"];
            let Ok((a, _)) = compile_schema(schema, &SchemaOptions::default(), &Limits::default()) else { continue };
            let Ok(validator) = jsonschema::options().should_validate_formats(true).build(schema) else { continue };
            for _ in 0..4 {
                let (mut s, mut out) = (a.start(), Vec::new());
                let wander = rng.gen_range(0..300);
                // Closing takes the shortest way, so the walk ends (its length is bounded by the
                // wandering plus the largest distance to acceptance).
                while !(a.is_accepting(s) && (out.len() >= wander || rng.gen_bool(0.05))) {
                    let next: Vec<(u8, u32, u32)> = (0..=255u8)
                        .filter_map(|b| a.next(s, b).map(|t| (b, t, a.min_bytes_to_accept(t))))
                        .filter(|x| x.2 != u32::MAX)
                        .collect();
                    if next.is_empty() {
                        break; // an accepting state nothing follows (or a dead end, caught below)
                    }
                    let (b, t, _) = if out.len() < wander {
                        next[rng.gen_range(0..next.len())]
                    } else {
                        *next.iter().min_by_key(|x| x.2).unwrap()
                    };
                    out.push(b);
                    s = t;
                }
                walks += 1;
                let text = String::from_utf8_lossy(&out).into_owned();
                match serde_json::from_str::<Value>(&text) {
                    Ok(v) => {
                        if let Some(e) = validator.iter_errors(&v).next() {
                            failures.push(format!("{}: {e} at {}: {text}", rec["id"], e.instance_path));
                        }
                    }
                    Err(e) => failures.push(format!("{}: not JSON ({e}): {text}", rec["id"])),
                }
            }
        }
    }
    println!("{walks} sampled outputs, {} invalid", failures.len());
    assert!(walks > 500, "too few walks: {walks}");
    assert!(
        failures.is_empty(),
        "{} of {walks} sampled outputs are invalid:\n{}",
        failures.len(),
        failures.iter().take(10).map(|f| f.chars().take(400).collect::<String>()).collect::<Vec<_>>().join("\n")
    );
}
