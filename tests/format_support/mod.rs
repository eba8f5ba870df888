#![allow(dead_code)]
use conform::format::*;
use serde_json::Value;

/// Why a valid instance may legitimately never be generated. None = no policy reason.
pub fn policy_reason(inst: &Value, schema: &Value, _canon: &str, limits: &Limits) -> Option<&'static str> {
    fn declared(s: &Value, out: &mut Vec<String>) {
        match s {
            Value::Object(m) => {
                for k in ["properties"] {
                    if let Some(Value::Object(p)) = m.get(k) { out.extend(p.keys().cloned()); }
                }
                if let Some(Value::Array(r)) = m.get("required") { out.extend(r.iter().filter_map(|x| x.as_str().map(String::from))); }
                m.values().for_each(|v| declared(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| declared(v, out)),
            _ => {}
        }
    }
    fn walk(v: &Value, d: u32, names: &[String], r: &mut Option<&'static str>, maxd: u32) {
        match v {
            Value::Object(m) => {
                if d > maxd { *r = Some("nesting deeper than recursion_depth"); }
                if m.keys().any(|k| !names.contains(k)) { *r = Some("undeclared property"); }
                m.values().for_each(|x| walk(x, d + 1, names, r, maxd));
            }
            Value::Array(a) => {
                if d > maxd { *r = Some("nesting deeper than recursion_depth"); }
                a.iter().for_each(|x| walk(x, d + 1, names, r, maxd))
            }
            Value::Number(n) => {
                let s = n.to_string();
                let digits = s.trim_start_matches('-').split(['.', 'e', 'E']).next().unwrap().len();
                if s.contains('e') || s.contains('E') || s.ends_with(".0") || digits > 15 || s.split('.').nth(1).is_some_and(|f| f.len() > 6) {
                    *r = Some("number form/size beyond the canonical range");
                }
            }
            Value::String(s) => {
                if s.chars().any(|c| (c as u32) >= 0x10000) { *r = Some("string with astral chars (escape/length)"); }
            }
            _ => {}
        }
    }
    if serde_json::to_string(schema).unwrap().contains("\"format\"") {
        return Some("format is asserted (annotation-only by default in 2020-12)");
    }
    let mut names = Vec::new();
    declared(schema, &mut names);
    let mut r = None;
    walk(inst, 0, &names, &mut r, limits.recursion_depth + 2);
    r
}

