//! Runs the official JSON-Schema-Test-Suite (draft 2020-12) against the schema compiler.
use conform_format::format::*;
use conform_format::testdata::data_dir;
use serde_json::Value;
use std::collections::BTreeMap;

mod format_support;
use format_support::policy_reason;

#[derive(Default)]
struct Row {
    compiled: u32,
    unsupported: u32,
    other_err: u32,
    v_ok: u32,
    v_policy: u32,
    v_bad: u32,
    i_ok: u32,
    i_bad: u32,
}

#[test]
fn json_schema_test_suite() {
    let dir = data_dir().join("json-schema-test-suite/draft2020-12").display().to_string();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("SKIP: no data at {dir}");
        return;
    };
    let mut files: Vec<_> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    files.sort();
    let limits = Limits::default();
    let opts = SchemaOptions::default();
    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut wrongly_rejected = Vec::new();
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let groups: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let row = table.entry(name.clone()).or_default();
        for g in groups {
            let schema = &g["schema"];
            match compile_schema(schema, &opts, &limits) {
                Err(FormatError::UnsupportedKeyword { keyword, pointer, .. }) => {
                    assert!(!keyword.is_empty() && pointer.starts_with('#'));
                    row.unsupported += 1;
                }
                Err(e) => {
                    println!("error: {name}: {}: {e}", g["description"]);
                    row.other_err += 1;
                }
                Ok((a, _)) => {
                    row.compiled += 1;
                    for t in g["tests"].as_array().unwrap() {
                        let canon = canonical_json(&t["data"], Some(schema));
                        let acc = a.accepts(canon.as_bytes());
                        let valid = t["valid"].as_bool().unwrap();
                        match (valid, acc) {
                            (true, true) => row.v_ok += 1,
                            (true, false) => {
                                if policy_reason(&t["data"], schema, &canon, &limits).is_some() {
                                    row.v_policy += 1
                                } else {
                                    row.v_bad += 1;
                                    wrongly_rejected
                                        .push(format!("{name}: {} / {}: {canon}", g["description"], t["description"]));
                                }
                            }
                            (false, false) => row.i_ok += 1,
                            (false, true) => {
                                row.i_bad += 1;
                                failures.push(format!(
                                    "{name}: {} / {}: schema {} instance {canon}",
                                    g["description"], t["description"], schema
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    println!(
        "{:<28} {:>5} {:>5} {:>5} | {:>5} {:>6} {:>5} | {:>5} {:>5}",
        "file", "comp", "unsup", "err", "v_ok", "v_pol", "v_BAD", "i_ok", "i_BAD"
    );
    let mut tot = Row::default();
    for (k, r) in &table {
        println!(
            "{:<28} {:>5} {:>5} {:>5} | {:>5} {:>6} {:>5} | {:>5} {:>5}",
            k, r.compiled, r.unsupported, r.other_err, r.v_ok, r.v_policy, r.v_bad, r.i_ok, r.i_bad
        );
        tot.compiled += r.compiled;
        tot.unsupported += r.unsupported;
        tot.other_err += r.other_err;
        tot.v_ok += r.v_ok;
        tot.v_policy += r.v_policy;
        tot.v_bad += r.v_bad;
        tot.i_ok += r.i_ok;
        tot.i_bad += r.i_bad;
    }
    println!(
        "{:<28} {:>5} {:>5} {:>5} | {:>5} {:>6} {:>5} | {:>5} {:>5}",
        "TOTAL", tot.compiled, tot.unsupported, tot.other_err, tot.v_ok, tot.v_policy, tot.v_bad, tot.i_ok, tot.i_bad
    );
    for w in wrongly_rejected.iter().take(40) {
        println!("valid rejected: {w}");
    }
    for f in &failures {
        println!("INVALID ACCEPTED: {f}");
    }
    assert!(failures.is_empty(), "{} invalid instances accepted", failures.len());
}
