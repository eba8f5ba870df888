//! Local `$ref` resolution: `#` fragments (JSON pointers, percent-decoded), references to the
//! root's `$id`, and following a chain of bare `$ref`s.

use serde_json::Value;

use crate::format::FormatError;

use super::lower::Gen;
use super::node::join_ptr;

impl<'a> Gen<'a> {
    pub(super) fn resolve(&self, r: &str, ptr: &str) -> Result<(&'a Value, String), FormatError> {
        let frag = match r.find('#') {
            Some(0) => &r[1..],
            Some(i) => {
                let base = &r[..i];
                let root_id =
                    self.root.get("$id").or_else(|| self.root.get("id")).and_then(|v| v.as_str()).unwrap_or("");
                if !root_id.is_empty() && root_id.trim_end_matches('#') == base {
                    &r[i + 1..]
                } else {
                    return Err(FormatError::unsupported(
                        "$ref",
                        ptr,
                        format!("only local references (`#...`) are supported, got `{r}`"),
                    ));
                }
            }
            None => {
                let root_id = self.root.get("$id").and_then(|v| v.as_str()).unwrap_or("");
                if !r.is_empty() && root_id == r {
                    ""
                } else {
                    return Err(FormatError::unsupported(
                        "$ref",
                        ptr,
                        format!("only local references (`#...`) are supported, got `{r}`"),
                    ));
                }
            }
        };
        let frag = percent_decode(frag);
        if !frag.is_empty() && !frag.starts_with('/') {
            return Err(FormatError::unsupported("$ref", ptr, format!("anchor references (`{r}`) are not supported")));
        }
        let mut cur = self.root;
        let mut norm = String::new();
        if !frag.is_empty() {
            for tok in frag[1..].split('/') {
                let tok = tok.replace("~1", "/").replace("~0", "~");
                cur = match cur {
                    Value::Object(o) => o.get(&tok),
                    Value::Array(a) => tok.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                }
                .ok_or_else(|| FormatError::schema(ptr, format!("`$ref` `{r}` does not resolve")))?;
                norm = join_ptr(&norm, &tok);
            }
        }
        Ok((cur, norm))
    }

    pub(super) fn deref<'v>(&self, v: &'v Value) -> &'v Value
    where
        'a: 'v,
    {
        let mut cur = v;
        for _ in 0..8 {
            match cur.get("$ref").and_then(|r| r.as_str()) {
                Some(r) if cur.as_object().is_some_and(|o| o.len() == 1) => match self.resolve(r, "") {
                    Ok((t, _)) => cur = t,
                    Err(_) => return cur,
                },
                _ => return cur,
            }
        }
        cur
    }
}

pub(super) fn percent_decode(s: &str) -> String {
    // Bytes, not `str` slices: the two bytes after a `%` may sit inside a multi-byte character.
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
