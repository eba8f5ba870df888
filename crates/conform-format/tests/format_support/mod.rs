#![allow(dead_code)]
use conform_format::format::*;
use serde_json::Value;

/// Why a valid instance may legitimately never be generated. None = no policy reason.
pub fn policy_reason(inst: &Value, schema: &Value, _canon: &str, limits: &Limits) -> Option<&'static str> {
    fn declared(s: &Value, out: &mut Vec<String>) {
        match s {
            Value::Object(m) => {
                for k in ["properties"] {
                    if let Some(Value::Object(p)) = m.get(k) {
                        out.extend(p.keys().cloned());
                    }
                }
                if let Some(Value::Array(r)) = m.get("required") {
                    out.extend(r.iter().filter_map(|x| x.as_str().map(String::from)));
                }
                m.values().for_each(|v| declared(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| declared(v, out)),
            _ => {}
        }
    }
    fn walk(v: &Value, d: u32, names: &[String], r: &mut Option<&'static str>, maxd: u32) {
        match v {
            Value::Object(m) => {
                if d > maxd {
                    *r = Some("nesting deeper than recursion_depth");
                }
                if m.keys().any(|k| !names.contains(k)) {
                    *r = Some("undeclared property");
                }
                m.values().for_each(|x| walk(x, d + 1, names, r, maxd));
            }
            Value::Array(a) => {
                if d > maxd {
                    *r = Some("nesting deeper than recursion_depth");
                }
                if a.len() > 1024 {
                    *r = Some("array longer than max_repetition");
                }
                a.iter().for_each(|x| walk(x, d + 1, names, r, maxd))
            }
            Value::Number(n) => {
                let s = n.to_string();
                let digits = s.trim_start_matches('-').split(['.', 'e', 'E']).next().unwrap().len();
                if s.contains('e')
                    || s.contains('E')
                    || s.ends_with(".0")
                    || digits > 15
                    || s.split('.').nth(1).is_some_and(|f| f.len() > 6)
                {
                    *r = Some("number form/size beyond the canonical range");
                }
            }
            Value::String(s) if s.chars().count() > 1024 => *r = Some("string longer than max_repetition"),
            Value::String(s) if s.chars().any(|c| (c as u32) >= 0x10000) => {
                *r = Some("string with astral chars (escape/length)")
            }
            _ => {}
        }
    }
    if serde_json::to_string(schema).unwrap().contains("\"format\"") {
        return Some("format is asserted (annotation-only by default in 2020-12)");
    }
    fn has_long_array(v: &Value) -> bool {
        match v {
            Value::Array(a) => a.len() > 1 || a.iter().any(has_long_array),
            Value::Object(m) => m.values().any(has_long_array),
            _ => false,
        }
    }
    if serde_json::to_string(schema).unwrap().contains("\"uniqueItems\":true") && has_long_array(inst) {
        return Some("uniqueItems: only arrays of at most one item are generated");
    }
    fn triggers(s: &Value, out: &mut Vec<String>) {
        match s {
            Value::Object(m) => {
                for k in ["dependencies", "dependentRequired", "dependentSchemas"] {
                    if let Some(Value::Object(d)) = m.get(k) {
                        out.extend(d.keys().cloned());
                    }
                }
                m.values().for_each(|v| triggers(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| triggers(v, out)),
            _ => {}
        }
    }
    fn has_key(v: &Value, names: &[String]) -> bool {
        match v {
            Value::Object(m) => m.keys().any(|k| names.contains(k)) || m.values().any(|x| has_key(x, names)),
            Value::Array(a) => a.iter().any(|x| has_key(x, names)),
            _ => false,
        }
    }
    let mut trig = Vec::new();
    triggers(schema, &mut trig);
    if !trig.is_empty() && has_key(inst, &trig) {
        return Some("optional dependency triggers are not generated");
    }
    let mut names = Vec::new();
    declared(schema, &mut names);
    let mut r = None;
    walk(inst, 0, &names, &mut r, limits.recursion_depth + 2);
    r
}
