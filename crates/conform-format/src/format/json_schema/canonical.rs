//! The canonical serialisation of instances ([`canonical_json`]): compact, object keys in the
//! order the engine generates them.

use serde_json::Value;

use super::refs::percent_decode;

/// The canonical serialisation the engine generates for `value`: compact, object keys in the
/// order of the `properties` that apply to that object in `schema` (following local `$ref`,
/// `allOf`, and the first `anyOf`/`oneOf` branch declaring all the keys); unlisted keys after,
/// in their original order. Use it to re-serialise valid instances before checking acceptance.
pub fn canonical_json(value: &Value, schema: Option<&Value>) -> String {
    canonical_json_ordered(value, schema, KeyOrder::Schema)
}

/// How [`canonical_json_ordered`] orders the keys of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// `properties` order (what this engine and most others generate).
    Schema,
    /// Required properties first, each group in `properties` order (llama.cpp's
    /// `json_schema_to_grammar`), so peers in `maskbench` get instances their grammar can accept.
    RequiredFirst,
}

/// [`canonical_json`] with a choice of key order.
pub fn canonical_json_ordered(value: &Value, schema: Option<&Value>, order: KeyOrder) -> String {
    fn deref<'v>(root: &'v Value, s: &'v Value) -> &'v Value {
        let mut cur = s;
        for _ in 0..16 {
            let Some(r) = cur.get("$ref").and_then(|r| r.as_str()) else { break };
            let Some(frag) = r.strip_prefix('#') else { break };
            let frag = percent_decode(frag);
            let mut t = root;
            let mut ok = true;
            for tok in frag.split('/').skip(1) {
                let tok = tok.replace("~1", "/").replace("~0", "~");
                match t.get(tok.as_str()).or_else(|| tok.parse::<usize>().ok().and_then(|i| t.get(i))) {
                    Some(x) => t = x,
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                break;
            }
            cur = t;
        }
        cur
    }
    /// Ordered (name, subschema) pairs that apply to an object.
    fn props<'v>(root: &'v Value, s: &'v Value, keys: &[&String], out: &mut Vec<(String, &'v Value)>, d: u32) {
        if d > 16 {
            return;
        }
        let s = deref(root, s);
        let Some(m) = s.as_object() else { return };
        if let Some(Value::Object(p)) = m.get("properties") {
            for (k, v) in p {
                if !out.iter().any(|(n, _)| n == k) {
                    out.push((k.clone(), v));
                }
            }
        }
        if let Some(Value::Array(all)) = m.get("allOf") {
            for b in all {
                props(root, b, keys, out, d + 1);
            }
        }
        for kw in ["anyOf", "oneOf"] {
            if let Some(Value::Array(br)) = m.get(kw) {
                let mut best = None;
                for b in br {
                    let mut o = Vec::new();
                    props(root, b, keys, &mut o, d + 1);
                    if keys.iter().all(|k| o.iter().any(|(n, _)| n == *k) || out.iter().any(|(n, _)| n == *k)) {
                        best = Some(o);
                        break;
                    }
                }
                if let Some(o) = best {
                    for x in o {
                        if !out.iter().any(|(n, _)| *n == x.0) {
                            out.push(x);
                        }
                    }
                }
            }
        }
    }
    fn items<'v>(root: &'v Value, s: &'v Value, i: usize) -> Option<&'v Value> {
        let s = deref(root, s);
        let m = s.as_object()?;
        if let Some(Value::Array(p)) = m.get("prefixItems") {
            if i < p.len() {
                return Some(&p[i]);
            }
            return m.get("items");
        }
        match m.get("items") {
            Some(Value::Array(p)) => p.get(i).or(m.get("additionalItems")),
            Some(x) => Some(x),
            None => m.get("allOf").and_then(|a| a.as_array()).and_then(|a| a.iter().find_map(|b| items(root, b, i))),
        }
    }
    /// Names in `required` of `s` and of its `allOf` members.
    fn required(root: &Value, s: &Value, out: &mut Vec<String>, d: u32) {
        if d > 16 {
            return;
        }
        let s = deref(root, s);
        if let Some(Value::Array(r)) = s.get("required") {
            out.extend(r.iter().filter_map(|x| x.as_str().map(String::from)));
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for b in all {
                required(root, b, out, d + 1);
            }
        }
    }
    fn ser(root: &Value, v: &Value, s: Option<&Value>, order: KeyOrder, out: &mut String) {
        match v {
            Value::Object(m) => {
                let keys: Vec<&String> = m.keys().collect();
                let mut ps = Vec::new();
                if let Some(s) = s {
                    props(root, s, &keys, &mut ps, 0);
                    if order == KeyOrder::RequiredFirst {
                        let mut req = Vec::new();
                        required(root, s, &mut req, 0);
                        ps.sort_by_key(|(n, _)| !req.contains(n)); // stable
                    }
                }
                let mut sorted: Vec<(usize, usize, &String)> = m
                    .keys()
                    .enumerate()
                    .map(|(i, k)| (ps.iter().position(|(n, _)| n == k).unwrap_or(usize::MAX), i, k))
                    .collect();
                sorted.sort();
                out.push('{');
                for (j, (pi, _, k)) in sorted.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    let sub = if *pi != usize::MAX { Some(ps[*pi].1) } else { None };
                    ser(root, &m[*k], sub, order, out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (j, x) in a.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    ser(root, x, s.and_then(|s| items(root, s, j)), order, out);
                }
                out.push(']');
            }
            other => out.push_str(&serde_json::to_string(other).unwrap()),
        }
    }
    let mut out = String::new();
    let root = schema.cloned().unwrap_or(Value::Bool(true));
    ser(&root, value, Some(&root), order, &mut out);
    out
}
