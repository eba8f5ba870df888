//! JSON Schema → regex → [`Automaton`].
//!
//! Generation policy (every output is a valid instance; some valid instances are never
//! generated — a narrowing, never a widening):
//! * canonical compact JSON (`{"a":1,"b":[1,2]}`), or bounded whitespace between tokens with
//!   [`Whitespace::Flexible`];
//! * object members in `properties` order; optional members may be skipped; undeclared
//!   members (keys not in `properties` or `required`) come after the declared ones, and only
//!   where the schema asks for them: a map (an object declaring no property) gets any keys its
//!   `propertyNames` allow, valued by `additionalProperties`; an object with declared members
//!   gets more only when `additionalProperties` is given explicitly (`true` or a schema), with
//!   unescaped keys that spell no declared name; keys matching a `patternProperties` pattern
//!   are valued by every pattern's schema at once; `additionalProperties` left out of an
//!   object that declares members, `unevaluatedProperties`, and `minProperties`/`maxProperties`
//!   beside declared members mean no undeclared members (the model is not invited to invent keys);
//! * strings use only the canonical JSON escape of characters that need one (plus any escape in
//!   unconstrained strings); `minLength`/`maxLength` count characters (an escape is one char);
//!   with [`SchemaOptions::raw_strings`], strings without `pattern`/`format` may also hold raw
//!   tabs and newlines, escaped on the way out;
//! * numbers: no exponent in bounded numbers, integers up to 15 digits (exactly representable
//!   in f64), never `-0`; bounds are exact digit automata, compared in decimal (`minimum: 0.1`
//!   admits `0.1`), and bounded non-integral values have at most 9 integer and 6 fraction digits;
//! * where validators disagree, what every common one accepts: a pattern's `\s` generates only
//!   whitespace ECMA-262, Python's `re` and the `jsonschema` crate all count (see
//!   [`pattern::parse_ecma`]); an `email` has a local part of at most 64 characters;
//! * recursion: [`compile_schema`] makes a `$ref` back into a definition being lowered a call
//!   of that definition's rule in a [`Recursive`](super::Recursive) automaton, and `true` /
//!   unconstrained values one rule calling itself; both nest up to `limits.max_nesting` levels.
//!   Formats that embed a schema number its rules after their own ([`schema_rules`]: tool-call
//!   arguments). Past the network's rule codes, recursion is unrolled
//!   `limits.recursion_depth` times: at the limit a recursive reference matches nothing, so only
//!   non-recursive alternatives remain (if none exist the schema is rejected), and unconstrained
//!   values nest at most that deep;
//! * a schema whose DFA would be too large is lowered again with each long property value and
//!   array item as a rule of its own (see `Calls::Split`) before anything is narrowed;
//! * size levels: a `maxLength`/`maxItems` above `limits.max_repetition` is narrowed to it; when
//!   the unconstrained ("any JSON") values and such narrowed strings would make the DFA too
//!   large, the schema is lowered again with one nesting level less for any-JSON values and a
//!   quarter of the narrowed bounds (see [`schema_rules`], [`compile_schema`]);
//! * `uniqueItems: true`: only arrays of at most one item (needs `minItems` <= 1);
//! * `dependentRequired`/`dependentSchemas`/`dependencies`: a required trigger brings its
//!   dependency along; an optional trigger is never generated;
//! * `oneOf` branches that are not provably disjoint but differ in `required` names (and one of
//!   them accepts objects only): each branch never emits one property the other requires;
//! * `pattern` with `minLength`/`maxLength`: unbounded repetitions are bounded, an unanchored
//!   start is dropped and an unanchored end becomes a bounded tail (see
//!   [`pattern::bounded_pattern_body`]);
//! * `if`/`then`/`else`: `anyOf[allOf[if, then], allOf[not if, else]]`, the second branch only
//!   when `not if` has a supported form (else only instances satisfying `if` are generated);
//! * `not`: `not: {required}` (objects only, one name never emitted), `not: {type}`, `not` of
//!   `anyOf` / of an `allOf` of `required`s, a `not` whose kinds cannot overlap the node's
//!   `type` (always true); on `enum`/`const` nodes any keyword [`validate`] understands
//!   (`not`, `if`, `contains`, dependencies...) filters the values exactly.
//!
//! Supported: `type` (incl. lists, OpenAI `nullable`), `enum`, `const`, `anyOf`, `oneOf`
//! (provably disjoint or separable branches, above), `allOf` (merged), local `$ref` (`#`,
//! `#/$defs/x`, `#/definitions/x`, pointer escapes), `properties`, `required`,
//! `additionalProperties`, `patternProperties`/`propertyNames` (checked against declared names),
//! `min/maxProperties`, `items`, `prefixItems`, draft-07 tuple `items` + `additionalItems`,
//! `min/maxItems`, `uniqueItems`, `min/maxLength`, `pattern`, `format` (date-time, date, time,
//! email, uuid, uri, uri-reference, ipv4, ipv6, hostname, OpenAPI byte),
//! `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` (also draft-04 booleans),
//! `multipleOf: 1` (and small integer ones), dependencies, `if`/`then`/`else`, simple `not`,
//! boolean schemas. Annotations are ignored, and so are keywords of no draft (vendor keywords
//! such as `javaType` or `readonly`) and `format` names of no draft (`url`, `path`), reported in
//! `ignored`; [`SchemaOptions::refuse_unknown_keywords`] refuses them. Any other draft keyword is an [`FormatError::UnsupportedKeyword`] naming it
//! and its pointer, unless [`SchemaOptions::lenient`] is set, in which case it is skipped and
//! reported in `ignored`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::json::{any_json_level, any_json_regex, ws_regex};
use super::number::{integer_regex, number_regex, Bounds};
use super::pattern::{self, JSON_CHAR, RAW_JSON_CHAR};
use super::validate::validate;
use super::recursive;
use super::{error::pointer_display, Automaton, Compiled, FormatError, Limits};

/// Whitespace the generated JSON may contain between tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Whitespace {
    /// No whitespace at all (canonical).
    #[default]
    Compact,
    /// Up to `max` of space / tab / newline between any two tokens.
    Flexible { max: u8 },
    /// JSON laid out as people and models write it: between any two tokens nothing, one space,
    /// or a newline and up to `indent` spaces or tabs (`{"a": 1, "b": 2}` and pretty-printed
    /// JSON alike). Bounded, so the shortest path to acceptance is unchanged.
    Natural { indent: u8 },
}

impl Whitespace {
    /// `Natural`'s indentation bound: four levels of four spaces, eight of two.
    pub const NATURAL: Whitespace = Whitespace::Natural { indent: 16 };
}

/// How to lower a schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    pub whitespace: Whitespace,
    /// Skip unsupported keywords (reported in [`SchemaRegex::ignored`]) instead of failing.
    /// This WIDENS the language; only for callers that accept that explicitly.
    pub lenient: bool,
    /// Refuse keywords that belong to no JSON Schema draft (vendor annotations such as
    /// `javaType`, `_format`) instead of skipping them. By default they are skipped and reported
    /// in [`SchemaRegex::ignored`], as the specification treats them as annotations (this never
    /// widens); refusing catches typos of constraints ("maxLenght") for callers who want that.
    pub refuse_unknown_keywords: bool,
    /// Strings with no `pattern` or `format` may hold raw tabs and newlines, as models write
    /// long text: the automaton then accepts text that is JSON only once
    /// [`RawStringEscaper`](super::json::RawStringEscaper) has escaped them, and every output
    /// must pass through it.
    pub raw_strings: bool,
}

/// The regex a schema lowers to.
#[derive(Debug, Clone)]
pub struct SchemaRegex {
    pub regex: String,
    /// `"keyword at #/pointer"` for each keyword skipped in lenient mode.
    pub ignored: Vec<String>,
    /// Whether `regex` (rule 0) and `rules` (rules `1..`) form a recursive network: they call
    /// each other through [`recursive::call`] bytes. Else `regex` is a plain regex.
    pub recursive: bool,
    pub rules: Vec<String>,
}

impl SchemaRegex {
    /// The regex to embed where this schema's value goes inside a larger network whose rules
    /// are `rules` (lowered with `first_rule == rules.len()`): the plain regex itself, or, for a
    /// recursive network, a call of its rule 0 once its rules are appended to `rules`.
    pub fn embed(self, rules: &mut Vec<String>) -> String {
        if !self.recursive {
            return self.regex;
        }
        let call = recursive::call(rules.len());
        rules.push(self.regex);
        rules.extend(self.rules);
        call
    }
}

/// Set by [`Gen::merge`] on a merged object whose undeclared members it cannot describe
/// (see there); an `x-` key, so the keyword check passes it by.
const NO_UNDECLARED: &str = "x-conform-no-undeclared";

/// The lowering work one schema node costs, in regex bytes (see `Limits::max_lowering_work`):
/// at the default limit, about 130k nodes, three times what the largest JSONSchemaBench schema
/// that compiles lowers.
const NODE_WORK: usize = 128;

const ANNOTATIONS: &[&str] = &[
    "title", "description", "examples", "example", "default", "$comment", "$schema", "deprecated",
    "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "$defs", "definitions",
    "markdownDescription", "$id", "id",
];

const SUPPORTED: &[&str] = &[
    "type", "enum", "const", "nullable", "anyOf", "oneOf", "allOf", "$ref", "properties", "required",
    "additionalProperties", "patternProperties", "propertyNames", "minProperties", "maxProperties",
    "unevaluatedProperties", "unevaluatedItems", "items", "prefixItems", "additionalItems",
    "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "format", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "dependentRequired",
    "dependentSchemas", "dependencies", "if",
];

/// Assertion/applicator keywords of some JSON Schema draft that are not supported: always an
/// error (or skipped and reported in lenient mode). Keywords of no draft are annotations.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "not", "then", "else", "contains",
    "minContains", "maxContains", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor",
    "$anchor", "$vocabulary", "extends", "disallow", "divisibleBy", "requires", "contentSchema",
];

/// Every `format` name some JSON Schema draft defines (03 to 2020-12): one this engine does not
/// enforce is refused, since a validator may assert it. Other names (`url`, `path`, OpenAPI's
/// `password`, ...) assert nothing and are skipped, or refused with `refuse_unknown_keywords`.
const DRAFT_FORMATS: &[&str] = &[
    "date-time", "date", "time", "duration", "utc-millisec", "email", "idn-email", "hostname",
    "host-name", "idn-hostname", "ipv4", "ip-address", "ipv6", "uri", "uri-reference", "iri",
    "iri-reference", "uri-template", "uuid", "json-pointer", "relative-json-pointer", "regex",
    "color", "style", "phone",
];

/// Keywords not lowered to regexes but supported on `enum`/`const` nodes: each value is then
/// checked by [`validate`] and kept only when proven valid.
const CHECKED_ON_VALUES: &[&str] = &["not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "contains"];

type R = Result<Option<String>, FormatError>;

/// In split mode, a property value or array item whose regex is longer than this becomes a
/// rule of its own (a call is about 20 bytes of regex).
const SPLIT_MIN_LEN: usize = 64;

/// How a network rule's regex is made.
#[derive(Clone)]
enum RuleBody<'a> {
    /// The target of a recursive `$ref` (lowered after the root).
    Ref(String, &'a Value),
    /// An unconstrained ("any JSON") value, calling itself for nested values.
    AnyJson,
    /// A part lowered already (split mode).
    Lowered(String),
}

/// Network rules registered while lowering; rule 0 is the whole output.
struct Rules<'a> {
    /// `$ref` pointer, `"any"`, or `"="` + regex → rule index.
    index: HashMap<String, usize>,
    bodies: Vec<RuleBody<'a>>,
}

/// Lowers `schema` as rules of a recursive network that starts at rule `first_rule`: for
/// formats that embed a schema (tool-call arguments). When [`SchemaRegex::recursive`], `regex`
/// is rule `first_rule` and `rules` are the rules after it, else `regex` is a plain regex.
///
/// Strings whose `maxLength`/`maxItems` had to be narrowed dominate the DFA size. The schema is
/// lowered at the most generous level that is estimated to fit half of `dfa_size_bytes`
/// (levels: see `lower_at_level`).
pub fn schema_rules(schema: &Value, options: &SchemaOptions, limits: &Limits, first_rule: usize) -> Result<SchemaRegex, FormatError> {
    lower_fitting(schema, options, limits, 0, Calls::Recursive, first_rule).map(|(r, _)| r)
}

/// Lowers at the first level from `level` on whose estimated DFA size fits; returns the regex
/// and its level, or `None` as level when no narrower level exists.
fn lower_fitting(schema: &Value, options: &SchemaOptions, limits: &Limits, mut level: u32, calls: Calls, first_rule: usize) -> Result<(SchemaRegex, Option<u32>), FormatError> {
    let budget = (limits.dfa_size_bytes / 2) as u64;
    loop {
        let (lowered, estimated, narrowest) = lower_at_level(schema, options, limits, level, calls, first_rule);
        if estimated > budget && !narrowest {
            level += 1;
            continue;
        }
        let next = if narrowest || estimated == 0 { None } else { Some(level + 1) };
        return Ok((lowered?, next));
    }
}

/// Lowers with any-JSON values nesting `recursion_depth - level` levels and bounds narrowed to
/// `max_repetition / 4^level` (at least 16). Returns the result, the estimated DFA bytes of
/// those parts, and whether this is the narrowest level. Rules of a recursive network (see
/// [`SchemaRegex::rules`]) are made as `calls` says, while they fit; else recursion is
/// unrolled. The network's rules are numbered from `first_rule`.
fn lower_at_level(schema: &Value, options: &SchemaOptions, limits: &Limits, level: u32, calls: Calls, first_rule: usize) -> (Result<SchemaRegex, FormatError>, u64, bool) {
    let mut g = Gen {
        root: schema,
        opts: options,
        limits,
        ignored: Vec::new(),
        ref_counts: HashMap::new(),
        depth: 0,
        ws: ws_regex(options.whitespace),
        name_cache: HashMap::new(),
        any_depth: limits.recursion_depth.saturating_sub(level),
        narrow_cap: (limits.max_repetition >> (2 * level).min(31)).max(16),
        estimated_bytes: 0,
        work: 0,
        copies: 1,
        rules: (calls != Calls::Unrolled).then(|| Rules {
            index: HashMap::from([(String::new(), 0)]),
            bodies: vec![RuleBody::Ref(String::new(), schema)],
        }),
        split: calls == Calls::Split,
        first_rule,
        rules_overflow: false,
        called: false,
    };
    if calls != Calls::Unrolled {
        g.ref_counts.insert(String::new(), 1);
    }
    let mut lowered = g.lower(schema, "");
    // Each rule's body, in a context where only its own references are open; lowering one
    // may add more rules.
    let mut rules = Vec::new();
    let mut i = 1;
    while let (Ok(Some(_)), Some(body)) = (&lowered, g.rules.as_ref().and_then(|r| r.bodies.get(i)).cloned()) {
        let regex = match body {
            RuleBody::Ref(ptr, target) => {
                g.ref_counts = HashMap::from([(ptr.clone(), 1), (String::new(), 1)]);
                g.lower(target, &ptr)
            }
            RuleBody::AnyJson => Ok(Some(any_json_level(&recursive::call(first_rule + i), options.whitespace))),
            RuleBody::Lowered(r) => Ok(Some(r)),
        };
        match regex {
            Ok(Some(r)) => rules.push(r),
            Ok(None) => g.rules_overflow = true,
            Err(e) => lowered = Err(e),
        }
        i += 1;
    }
    if g.rules_overflow {
        return lower_at_level(schema, options, limits, level, Calls::Unrolled, first_rule);
    }
    let narrowest = g.any_depth == 0 && g.narrow_cap == 16;
    let result = match lowered {
        Err(e) => Err(e),
        Ok(Some(regex)) => {
            let mut ignored = g.ignored;
            ignored.dedup();
            Ok(SchemaRegex { regex, ignored, recursive: g.called, rules })
        }
        Ok(None) => Err(FormatError::schema("", "the schema admits no value that can be generated (unsatisfiable, or only instances beyond the recursion/number limits)")),
    };
    (result, g.estimated_bytes, narrowest)
}

/// Rough dense-DFA size, in bytes, of one "any JSON" value nesting `depth` levels (measured:
/// the state count grows about 4x per level).
fn any_json_bytes(depth: u32) -> u64 {
    25_000u64.saturating_mul(4u64.saturating_pow(depth))
}

/// Rough dense-DFA size, in bytes, of a string of at most `n` characters (~5 KB per counted
/// character: UTF-8 and escape states).
fn bounded_string_bytes(n: u64) -> u64 {
    n.saturating_mul(5_000)
}

/// Lowers and compiles `schema`; returns the automaton and the ignored keywords (lenient mode).
/// When the DFA is too large and a narrower level exists (see [`schema_rules`]), the schema
/// is lowered and compiled again at that level.
///
/// When it is too large as one DFA, large parts become rules of their own (see
/// `Calls::Split`) before anything is narrowed.
pub fn compile_schema(schema: &Value, options: &SchemaOptions, limits: &Limits) -> Result<(Compiled, Vec<String>), FormatError> {
    let mut level = 0;
    let mut calls = Calls::Recursive;
    loop {
        let (r, next) = match lower_fitting(schema, options, limits, level, calls, 0) {
            Err(e) if calls == Calls::Recursive && splitting_may_help(&e) => {
                calls = Calls::Split;
                continue;
            }
            other => other?,
        };
        match compile_lowered(&r, limits) {
            Ok(a) => return Ok((a, r.ignored)),
            Err(FormatError::TooComplex { .. }) if calls == Calls::Recursive => calls = Calls::Split,
            // One narrower level: a failed determinisation is slow (up to ~2 s).
            Err(FormatError::TooComplex { .. }) if level == 0 && next.is_some() => level = next.unwrap_or(level),
            Err(e) => return Err(e),
        }
    }
}

/// Whether a lowering error may go away with [`Calls::Split`]: a size limit may (parts become
/// short calls), the lowering-work limit does not (parts are still lowered at every use).
fn splitting_may_help(e: &FormatError) -> bool {
    matches!(e, FormatError::TooComplex { limit, .. } if !limit.starts_with("max_lowering_work"))
}

/// Which parts of a schema become rules of a recursive network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Calls {
    /// None: one plain regex, recursion unrolled `recursion_depth` times.
    Unrolled,
    /// Recursive `$ref` targets and any-JSON values.
    Recursive,
    /// Those, and every property value or array item with a long regex: many small DFAs
    /// instead of one too large.
    Split,
}

/// A plain DFA, or a recursive network when the schema has recursive references.
fn compile_lowered(r: &SchemaRegex, limits: &Limits) -> Result<Compiled, FormatError> {
    if !r.recursive {
        return Ok(Compiled::Dfa(Automaton::from_regex(&r.regex, limits)?));
    }
    let regexes: Vec<&str> = std::iter::once(r.regex.as_str()).chain(r.rules.iter().map(String::as_str)).collect();
    Ok(Compiled::Recursive(recursive::compile_network(&regexes, limits)?))
}

struct Gen<'a> {
    root: &'a Value,
    opts: &'a SchemaOptions,
    limits: &'a Limits,
    ignored: Vec<String>,
    ref_counts: HashMap<String, u32>,
    depth: u32,
    ws: String,
    name_cache: HashMap<String, Option<regex_automata::meta::Regex>>,
    /// Container nesting of unconstrained ("any JSON") values.
    any_depth: u32,
    /// Upper bound that narrows a `maxLength`/`maxItems` above `max_repetition`.
    narrow_cap: u32,
    /// Estimated DFA bytes of the any-JSON values and narrowed strings lowered so far.
    estimated_bytes: u64,
    /// Bytes of regex produced so far, over every node lowered (see `Limits::max_lowering_work`).
    work: usize,
    /// How many copies of the regex being lowered the DFA will hold (for `estimated_bytes`).
    copies: u64,
    /// Rules of the recursive network; a reference back into a `$ref` target that is open
    /// becomes a call of its rule. `None`: recursion is unrolled.
    rules: Option<Rules<'a>>,
    /// Long property values and array items become rules too ([`Calls::Split`]).
    split: bool,
    /// The network index of rule 0 (the schema's root).
    first_rule: usize,
    /// A recursive target could not become a rule (too many, or it admits no value): the
    /// schema is lowered again with recursion unrolled.
    rules_overflow: bool,
    /// Some reference became a call.
    called: bool,
}

fn join_ptr(p: &str, k: &str) -> String {
    format!("{p}/{}", k.replace('~', "~0").replace('/', "~1"))
}

fn is_trivial(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

fn contains_ref(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k == "$ref" || contains_ref(v)),
        Value::Array(a) => a.iter().any(contains_ref),
        _ => false,
    }
}

fn json_type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) { "integer" } else { "number" }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

const ALL_TYPES: &[&str] = &["null", "boolean", "object", "array", "string", "number"];

impl<'a> Gen<'a> {
    fn check_len(&self, s: &str) -> Result<(), FormatError> {
        if s.len() > self.limits.max_regex_len {
            return Err(FormatError::too_complex(
                format!("the schema expands to a regex of more than {} bytes", self.limits.max_regex_len),
                format!("max_regex_len = {}", self.limits.max_regex_len),
            ));
        }
        Ok(())
    }

    fn rep(&self, n: u64, kw: &str, ptr: &str) -> Result<u32, FormatError> {
        if n > self.limits.max_repetition as u64 {
            return Err(FormatError::too_complex(
                format!("`{kw}` = {n} at {} would be unrolled into the automaton", pointer_display(ptr)),
                format!("max_repetition = {}", self.limits.max_repetition),
            ));
        }
        Ok(n as u32)
    }

    /// An upper bound (`maxLength`, `maxItems`) lowered to at most `max_repetition`: longer
    /// strings/arrays are valid but never generated (a narrowing), and the unrolled counter
    /// stays bounded.
    fn narrow_upper(&self, n: Option<u64>) -> Option<u64> {
        n.map(|n| if n > self.limits.max_repetition as u64 { n.min(self.narrow_cap as u64) } else { n })
    }

    /// Runs `f` with the DFA-size estimate scaled by `factor` (copies of the lowered regex).
    fn with_copies<T>(&mut self, factor: u64, f: impl FnOnce(&mut Self) -> T) -> T {
        self.copies = self.copies.saturating_mul(factor);
        let out = f(self);
        self.copies /= factor;
        out
    }

    fn lower(&mut self, s: &Value, ptr: &str) -> R {
        self.depth += 1;
        if self.depth > self.limits.max_schema_depth {
            self.depth -= 1;
            return Err(FormatError::too_complex(
                format!("schema nesting at {} is too deep", pointer_display(ptr)),
                format!("max_schema_depth = {}", self.limits.max_schema_depth),
            ));
        }
        let r = self.lower_inner(s, ptr);
        self.depth -= 1;
        // Each node lowered costs work too (its map is cloned, merged, checked), also when
        // it yields no regex: a huge schema of many references would otherwise lower for
        // tens of seconds before any regex grows large.
        self.work += NODE_WORK;
        if let Ok(Some(s)) = &r {
            self.check_len(s)?;
            self.work += s.len();
        }
        if r.is_ok() && self.work > self.limits.max_lowering_work {
            return Err(FormatError::too_complex(
                "the schema expands too much while lowering (definitions used many times over)",
                format!("max_lowering_work = {}", self.limits.max_lowering_work),
            ));
        }
        r
    }

    /// The call of the network rule for `key` (registered with `body` on first use), or
    /// `None` when recursion is unrolled.
    fn call_rule(&mut self, key: String, body: impl FnOnce() -> RuleBody<'a>) -> Option<String> {
        let rules = self.rules.as_mut()?;
        let i = *rules.index.entry(key).or_insert_with(|| {
            rules.bodies.push(body());
            rules.bodies.len() - 1
        });
        if self.first_rule + i >= recursive::MAX_RULES {
            self.rules_overflow = true;
            return None;
        }
        self.called = true;
        Some(recursive::call(self.first_rule + i))
    }

    /// Lowers a property value or array item; in split mode a long one becomes a rule.
    fn lower_part(&mut self, s: &Value, ptr: &str) -> R {
        match self.lower(s, ptr)? {
            Some(r) if self.split && r.len() > SPLIT_MIN_LEN => {
                Ok(Some(self.call_rule(format!("={r}"), || RuleBody::Lowered(r.clone())).unwrap_or(r)))
            }
            other => Ok(other),
        }
    }

    /// Runs `f` with recursion unrolled: for sub-regexes matched directly (no call bytes).
    fn unrolled<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let rules = self.rules.take();
        let out = f(self);
        self.rules = rules;
        out
    }

    fn any(&mut self) -> String {
        if let Some(call) = self.call_rule("any".into(), || RuleBody::AnyJson) {
            return call;
        }
        self.estimated_bytes += any_json_bytes(self.any_depth).saturating_mul(self.copies);
        any_json_regex(self.any_depth, self.opts.whitespace)
    }

    fn unsupported(&mut self, kw: &str, ptr: &str, reason: &str) -> Result<(), FormatError> {
        if self.opts.lenient {
            self.ignored.push(format!("{kw} at {}", pointer_display(ptr)));
            Ok(())
        } else {
            Err(FormatError::unsupported(kw, ptr, reason))
        }
    }

    fn lower_inner(&mut self, s: &Value, ptr: &str) -> R {
        let m = match s {
            Value::Bool(true) => return Ok(Some(self.any())),
            Value::Bool(false) => return Ok(None),
            Value::Object(m) => m,
            _ => return Err(FormatError::schema(ptr, "a schema must be an object or a boolean")),
        };
        // `not: {}` (or `not: true`) admits nothing.
        if m.get("not").is_some_and(is_trivial) {
            return Ok(None);
        }
        // Keyword check.
        let mut m = m.clone();
        let finite = m.contains_key("enum") || m.contains_key("const");
        if !finite && m.contains_key("if") {
            self.lower_conditional(&mut m, ptr)?;
        }
        if !finite {
            if let Some(not) = m.get("not").cloned() {
                if self.lower_not(&mut m, &not, &join_ptr(ptr, "not"))? {
                    m.remove("not");
                }
            }
        }
        let keys: Vec<String> = m.keys().cloned().collect();
        for k in keys {
            if finite && CHECKED_ON_VALUES.contains(&k.as_str()) {
                continue; // `gen_enum` checks each value against it (or errors)
            }
            if k.starts_with("x-") || ANNOTATIONS.contains(&k.as_str()) {
                if (k == "$id" || k == "id") && !ptr.is_empty() && m.get(&k).is_some_and(|v| v.is_string()) && contains_ref(s) {
                    self.unsupported(&k, &join_ptr(ptr, &k), "a nested `$id` changes how `$ref`s resolve")?;
                }
                continue;
            }
            if !SUPPORTED.contains(&k.as_str()) {
                if KNOWN_UNSUPPORTED.contains(&k.as_str()) {
                    self.unsupported(&k, &join_ptr(ptr, &k), "")?;
                } else if !self.opts.refuse_unknown_keywords {
                    self.ignored.push(format!("{k} at {} (not a JSON Schema keyword)", pointer_display(&join_ptr(ptr, &k))));
                } else {
                    // The caller asked: it may be a typo of a constraint ("maxLenght") or a
                    // vendor rule they rely on.
                    self.unsupported(&k, &join_ptr(ptr, &k), "not a keyword this engine knows")?;
                }
                m.remove(&k);
            }
        }
        if !finite {
            self.lower_dependencies(&mut m, ptr)?;
        }
        // $ref
        if let Some(r) = m.get("$ref").cloned() {
            let r = r.as_str().ok_or_else(|| FormatError::schema(ptr, "`$ref` must be a string"))?;
            let (target, tptr) = self.resolve(r, ptr)?;
            let mut siblings = m.clone();
            siblings.remove("$ref");
            let has_assert = siblings.keys().any(|k| !ANNOTATIONS.contains(&k.as_str()) && !k.starts_with("x-"));
            let count = self.ref_counts.get(&tptr).copied().unwrap_or(0);
            // A reference back into an open target, adding nothing: a call to its rule.
            if count >= 1 && !has_assert {
                if let Some(call) = self.call_rule(tptr.clone(), || RuleBody::Ref(tptr.clone(), target)) {
                    return Ok(Some(call));
                }
            }
            if count >= self.limits.recursion_depth {
                return Ok(None);
            }
            self.ref_counts.insert(tptr.clone(), count + 1);
            let res = if has_assert {
                let merged = self.merge(&Value::Object(siblings), target, ptr, 0, true);
                match merged {
                    Ok(v) => self.lower(&v, ptr),
                    Err(e) => Err(e),
                }
            } else {
                self.lower(target, &tptr)
            };
            *self.ref_counts.get_mut(&tptr).unwrap() -= 1;
            return res;
        }
        // allOf
        if let Some(all) = m.remove("allOf") {
            let arr = all.as_array().ok_or_else(|| FormatError::schema(&join_ptr(ptr, "allOf"), "`allOf` must be an array"))?;
            let mut acc = Value::Object(m);
            for (i, b) in arr.iter().enumerate() {
                acc = self.merge(&acc, b, &join_ptr(&join_ptr(ptr, "allOf"), &i.to_string()), 0, true)?;
            }
            return self.lower(&acc, ptr);
        }
        // anyOf / oneOf
        for kw in ["anyOf", "oneOf"] {
            if let Some(any) = m.get(kw).cloned() {
                let kptr = join_ptr(ptr, kw);
                let arr = any.as_array().ok_or_else(|| FormatError::schema(&kptr, &format!("`{kw}` must be an array")))?;
                let mut base = m.clone();
                base.remove(kw);
                let base = Value::Object(base);
                let mut branches = Vec::new();
                for (i, b) in arr.iter().enumerate() {
                    let bptr = join_ptr(&kptr, &i.to_string());
                    let merged = if is_trivial(&base) { b.clone() } else { self.merge(&base, b, &bptr, 0, true)? };
                    branches.push((merged, bptr));
                }
                if kw == "oneOf" {
                    // Disjointness is judged on the original branches; narrowing only changes
                    // what is generated.
                    let originals: Vec<Value> = branches.iter().map(|b| b.0.clone()).collect();
                    for i in 0..branches.len() {
                        for j in i + 1..branches.len() {
                            if self.disjoint(&originals[i], &originals[j]) {
                                continue;
                            }
                            if !self.separate_by_required(&mut branches, &originals, i, j, &kptr)? {
                                self.unsupported("oneOf", &kptr, &format!("branches {i} and {j} are not provably disjoint (an instance matching both would be invalid); use anyOf"))?;
                            }
                        }
                    }
                }
                let mut alts = Vec::new();
                for (b, bptr) in &branches {
                    // A branch that merged a trivial base keeps its own pointer.
                    if let Some(r) = self.lower(b, bptr)? {
                        if !alts.contains(&r) {
                            alts.push(r);
                        }
                    }
                }
                return Ok(match alts.len() {
                    0 => None,
                    1 => alts.pop(),
                    _ => Some(format!("(?:{})", alts.join("|"))),
                });
            }
        }
        // enum / const
        if m.contains_key("enum") || m.contains_key("const") {
            return self.gen_enum(&m, ptr);
        }
        let types = self.types(&m, ptr)?;
        let mut alts = Vec::new();
        for t in types {
            let r = match t {
                "null" => Some("null".to_string()),
                "boolean" => Some("(?:true|false)".to_string()),
                "integer" => self.gen_number(&m, ptr, true)?,
                "number" => self.gen_number(&m, ptr, false)?,
                "string" => self.gen_string(&m, ptr)?,
                "array" => self.gen_array(&m, ptr)?,
                "object" => self.gen_object(&m, ptr)?,
                _ => unreachable!(),
            };
            if let Some(r) = r {
                alts.push(r);
            }
        }
        Ok(match alts.len() {
            0 => None,
            1 => alts.pop(),
            _ => Some(format!("(?:{})", alts.join("|"))),
        })
    }

    fn types(&mut self, m: &Map<String, Value>, ptr: &str) -> Result<Vec<&'static str>, FormatError> {
        let mut out: Vec<&'static str> = Vec::new();
        let norm = |t: &str| -> Option<&'static str> {
            ["null", "boolean", "object", "array", "string", "number", "integer"].into_iter().find(|x| *x == t)
        };
        match m.get("type") {
            None => out.extend(ALL_TYPES),
            Some(Value::String(t)) => out.push(norm(t).ok_or_else(|| FormatError::schema(&join_ptr(ptr, "type"), format!("unknown type `{t}`")))?),
            Some(Value::Array(ts)) => {
                for t in ts {
                    let t = t.as_str().and_then(norm).ok_or_else(|| FormatError::schema(&join_ptr(ptr, "type"), format!("invalid type {t}")))?;
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "type"), "`type` must be a string or an array of strings")),
        }
        if m.get("nullable") == Some(&Value::Bool(true)) && !out.contains(&"null") {
            out.push("null");
        }
        if out.contains(&"number") {
            out.retain(|t| *t != "integer");
        }
        Ok(out)
    }

    fn resolve(&self, r: &str, ptr: &str) -> Result<(&'a Value, String), FormatError> {
        let frag = match r.find('#') {
            Some(0) => &r[1..],
            Some(i) => {
                let base = &r[..i];
                let root_id = self.root.get("$id").or_else(|| self.root.get("id")).and_then(|v| v.as_str()).unwrap_or("");
                if !root_id.is_empty() && root_id.trim_end_matches('#') == base {
                    &r[i + 1..]
                } else {
                    return Err(FormatError::unsupported("$ref", ptr, format!("only local references (`#...`) are supported, got `{r}`")));
                }
            }
            None => {
                let root_id = self.root.get("$id").and_then(|v| v.as_str()).unwrap_or("");
                if !r.is_empty() && root_id == r {
                    ""
                } else {
                    return Err(FormatError::unsupported("$ref", ptr, format!("only local references (`#...`) are supported, got `{r}`")));
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

    /// Merges two schemas into one whose instances are exactly those valid against both
    /// (or errors when that cannot be expressed). `node_side`: `a` is the schema node itself
    /// (so its `unevaluated*` keywords see `b`'s properties as evaluated).
    fn merge(&mut self, a: &Value, b: &Value, ptr: &str, depth: u32, node_side: bool) -> Result<Value, FormatError> {
        if depth > self.limits.max_schema_depth {
            return Err(FormatError::too_complex(format!("merging schemas at {} nests too deeply", pointer_display(ptr)), format!("max_schema_depth = {}", self.limits.max_schema_depth)));
        }
        if is_trivial(a) && !matches!(b, Value::Object(o) if o.contains_key("unevaluatedProperties") || o.contains_key("unevaluatedItems")) {
            return Ok(b.clone());
        }
        if is_trivial(b) {
            return Ok(a.clone());
        }
        let (a, b) = match (a, b) {
            (Value::Bool(false), _) | (_, Value::Bool(false)) => return Ok(Value::Bool(false)),
            (Value::Object(a), Value::Object(b)) => (a, b),
            _ => return Err(FormatError::schema(ptr, "a schema must be an object or a boolean")),
        };
        let a = self.flatten(a, ptr, depth)?;
        let b = self.flatten(b, ptr, depth)?;
        for side in [&b].into_iter().chain(if node_side { None } else { Some(&a) }) {
            for k in ["unevaluatedProperties", "unevaluatedItems"] {
                if side.get(k).is_some_and(|v| v != &Value::Bool(true)) {
                    return Err(FormatError::unsupported(k, ptr, "inside a subschema combined with other subschemas (allOf/anyOf/oneOf/$ref)"));
                }
            }
        }
        const ARR: [&str; 4] = ["prefixItems", "items", "additionalItems", "unevaluatedItems"];
        let ak: Vec<&str> = ARR.iter().copied().filter(|k| a.contains_key(*k)).collect();
        let bk: Vec<&str> = ARR.iter().copied().filter(|k| b.contains_key(*k)).collect();
        if !ak.is_empty() && !bk.is_empty() && (ak != bk || ak.iter().any(|k| a[*k].is_array() || a.contains_key("prefixItems"))) && ak.iter().any(|k| a.get(*k) != b.get(*k)) {
            return Err(FormatError::unsupported(bk[0], ptr, "array item keywords (items/prefixItems/additionalItems) from different subschemas cannot be combined"));
        }
        let mut a = a;
        let mut b = b;
        for x in [&mut a, &mut b] {
            if let Some(c) = x.remove("const") {
                let e = match x.remove("enum") {
                    Some(Value::Array(e)) => e.into_iter().filter(|v| v == &c).collect(),
                    _ => vec![c],
                };
                x.insert("enum".into(), Value::Array(e));
            }
        }
        let mut out = Map::new();
        let mut keys: Vec<String> = a.keys().cloned().collect();
        keys.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
        for k in keys {
            if ANNOTATIONS.contains(&k.as_str()) {
                continue;
            }
            // Vendor keywords assert nothing (unless the caller refuses them): two different
            // values need no combining.
            let vendor = k.starts_with("x-") || !(SUPPORTED.contains(&k.as_str()) || KNOWN_UNSUPPORTED.contains(&k.as_str()) || self.opts.refuse_unknown_keywords);
            if vendor && a.get(&k).zip(b.get(&k)).is_some_and(|(x, y)| x != y) {
                self.ignored.push(format!("{k} at {} (not a JSON Schema keyword)", pointer_display(ptr)));
                continue;
            }
            let v = match (a.get(&k), b.get(&k)) {
                (Some(x), None) | (None, Some(x)) => x.clone(),
                (Some(x), Some(y)) if x == y => x.clone(),
                (Some(x), Some(y)) => match k.as_str() {
                    "type" => {
                        let tx = type_set(x);
                        let ty = type_set(y);
                        let mut t: Vec<Value> = Vec::new();
                        for s in &tx {
                            let s2 = if ty.contains(s) { Some(*s) } else if *s == "integer" && ty.contains(&"number") { Some("integer") } else if *s == "number" && ty.contains(&"integer") { Some("integer") } else { None };
                            if let Some(s2) = s2 {
                                if !t.contains(&Value::from(s2)) {
                                    t.push(Value::from(s2));
                                }
                            }
                        }
                        if t.is_empty() {
                            return Ok(Value::Bool(false));
                        }
                        Value::Array(t)
                    }
                    "nullable" => Value::Bool(x.as_bool() == Some(true) && y.as_bool() == Some(true)),
                    "required" => {
                        let mut r = x.as_array().cloned().unwrap_or_default();
                        for v in y.as_array().cloned().unwrap_or_default() {
                            if !r.contains(&v) {
                                r.push(v);
                            }
                        }
                        Value::Array(r)
                    }
                    "enum" => {
                        let yv = y.as_array().cloned().unwrap_or_default();
                        Value::Array(x.as_array().cloned().unwrap_or_default().into_iter().filter(|v| yv.contains(v)).collect())
                    }
                    "minimum" | "minLength" | "minItems" | "minProperties" | "exclusiveMinimum" if x.is_number() && y.is_number() => {
                        if x.as_f64() >= y.as_f64() { x.clone() } else { y.clone() }
                    }
                    "maximum" | "maxLength" | "maxItems" | "maxProperties" | "exclusiveMaximum" if x.is_number() && y.is_number() => {
                        if x.as_f64() <= y.as_f64() { x.clone() } else { y.clone() }
                    }
                    "items" | "additionalProperties" | "propertyNames" if !x.is_array() && !y.is_array() => self.merge(x, y, &join_ptr(ptr, &k), depth + 1, false)?,
                    // not A and not B = not (A or B)
                    "not" => serde_json::json!({ "anyOf": [x, y] }),
                    "uniqueItems" => Value::Bool(x.as_bool() == Some(true) || y.as_bool() == Some(true)),
                    "properties" => {
                        let (Some(px), Some(py)) = (x.as_object(), y.as_object()) else {
                            return Err(FormatError::schema(ptr, "`properties` must be an object"));
                        };
                        let mut p = Map::new();
                        for (n, s) in px {
                            let v = match py.get(n) {
                                Some(s2) => self.merge(s, s2, &join_ptr(&join_ptr(ptr, "properties"), n), depth + 1, false)?,
                                None => s.clone(),
                            };
                            p.insert(n.clone(), v);
                        }
                        for (n, s) in py {
                            if !px.contains_key(n) {
                                p.insert(n.clone(), s.clone());
                            }
                        }
                        Value::Object(p)
                    }
                    "anyOf" => {
                        let (Some(ax), Some(ay)) = (x.as_array(), y.as_array()) else {
                            return Err(FormatError::schema(ptr, "`anyOf` must be an array"));
                        };
                        if ax.len() * ay.len() > 64 {
                            return Err(FormatError::unsupported("anyOf", ptr, "combining two large anyOf lists"));
                        }
                        let mut v = Vec::new();
                        for p in ax {
                            for q in ay {
                                v.push(self.merge(p, q, ptr, depth + 1, false)?);
                            }
                        }
                        Value::Array(v)
                    }
                    _ => return Err(FormatError::unsupported(&k, ptr, format!("cannot combine two different `{k}` values (allOf/$ref merge)"))),
                },
                (None, None) => unreachable!(),
            };
            out.insert(k, v);
        }
        // A key matching one side's `patternProperties` is "additional" for the other side, and
        // the merged map cannot say so: undeclared members are then not generated at all.
        for (x, y) in [(&a, &b), (&b, &a)] {
            if x.contains_key("patternProperties") && !y.contains_key("patternProperties") && y.get("additionalProperties").is_some_and(|v| !is_trivial(v)) {
                out.insert(NO_UNDECLARED.into(), Value::Bool(true));
            }
        }
        // Declared properties of one side are "additional" for the other.
        for (x, y) in [(&a, &b), (&b, &a)] {
            let xp = x.get("properties").and_then(|v| v.as_object());
            let yp = y.get("properties").and_then(|v| v.as_object());
            if let Some(yp) = yp {
                let extra: Vec<&String> = yp.keys().filter(|n| !xp.is_some_and(|xp| xp.contains_key(*n))).collect();
                if extra.is_empty() {
                    continue;
                }
                if x.contains_key("patternProperties") {
                    return Err(FormatError::unsupported("patternProperties", ptr, "combined (allOf/$ref) with a schema declaring other properties"));
                }
                if let Some(addl) = x.get("additionalProperties") {
                    if !is_trivial(addl) {
                        let props = out.get_mut("properties").and_then(|v| v.as_object_mut()).unwrap();
                        for n in extra {
                            let cur = props.get(n).cloned().unwrap_or(Value::Bool(true));
                            let merged = self.merge(&cur, addl, ptr, depth + 1, false)?;
                            props.insert(n.clone(), merged);
                        }
                    }
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// Inlines top-level `$ref` and `allOf` of a schema object for merging.
    fn flatten(&mut self, m: &Map<String, Value>, ptr: &str, depth: u32) -> Result<Map<String, Value>, FormatError> {
        let mut m = m.clone();
        if let Some(r) = m.remove("$ref") {
            let r = r.as_str().ok_or_else(|| FormatError::schema(ptr, "`$ref` must be a string"))?;
            let (t, _) = self.resolve(r, ptr)?;
            let merged = self.merge(&Value::Object(m), t, ptr, depth + 1, true)?;
            return match merged {
                Value::Object(o) => Ok(o),
                Value::Bool(true) => Ok(Map::new()),
                _ => Ok(false_schema()),
            };
        }
        if let Some(all) = m.remove("allOf") {
            let mut acc = Value::Object(m);
            for b in all.as_array().cloned().unwrap_or_default() {
                acc = self.merge(&acc, &b, ptr, depth + 1, true)?;
            }
            return match acc {
                Value::Object(o) => Ok(o),
                Value::Bool(true) => Ok(Map::new()),
                _ => Ok(false_schema()),
            };
        }
        Ok(m)
    }

    fn disjoint(&self, a: &Value, b: &Value) -> bool {
        let sa = self.value_kinds(a);
        let sb = self.value_kinds(b);
        if sa.iter().all(|t| !sb.iter().any(|u| t == u || (*t == "integer" && *u == "number") || (*t == "number" && *u == "integer"))) {
            return true;
        }
        let (Some(a), Some(b)) = (self.deref(a).as_object(), self.deref(b).as_object()) else { return false };
        if let (Some(ea), Some(eb)) = (enum_values(a), enum_values(b)) {
            return ea.iter().all(|v| !eb.contains(v));
        }
        // Under the generation policy an object generated from one branch contains all its
        // required properties; if the other branch forbids one of them, they are disjoint.
        let forbids = |m: &Map<String, Value>, p: &str| -> bool {
            m.get("additionalProperties") == Some(&Value::Bool(false))
                && !m.contains_key("patternProperties")
                && !m.get("properties").and_then(|x| x.as_object()).is_some_and(|x| x.contains_key(p))
                || m.get("properties").and_then(|x| x.get(p)) == Some(&Value::Bool(false))
        };
        let only_obj = |m: &Map<String, Value>| m.get("type").is_some_and(|t| type_set(t) == ["object"]) && m.get("nullable") != Some(&Value::Bool(true));
        for (x, y) in [(a, b), (b, a)] {
            if only_obj(x) {
                if let Some(Value::Array(r)) = x.get("required") {
                    if r.iter().filter_map(|p| p.as_str()).any(|p| forbids(y, p)) {
                        return true;
                    }
                }
            }
        }
        let req = |m: &Map<String, Value>| -> Vec<String> {
            m.get("required").and_then(|v| v.as_array()).map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        let (ra, rb) = (req(a), req(b));
        for p in ra.iter().filter(|p| rb.contains(p)) {
            let pa = a.get("properties").and_then(|v| v.get(p)).map(|v| self.deref(v));
            let pb = b.get("properties").and_then(|v| v.get(p)).map(|v| self.deref(v));
            if let (Some(Value::Object(pa)), Some(Value::Object(pb))) = (pa, pb) {
                if let (Some(ea), Some(eb)) = (enum_values(pa), enum_values(pb)) {
                    if ea.iter().all(|v| !eb.contains(v)) {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Rewrites `if`/`then`/`else` as `anyOf: [allOf[if, then], allOf[not if, else]]` (added to
    /// the node's `allOf`). The second branch is kept only when `not if` has a supported form
    /// (see [`Self::lower_not`]); without it only instances satisfying `if` are generated (a
    /// narrowing).
    fn lower_conditional(&mut self, m: &mut Map<String, Value>, ptr: &str) -> Result<(), FormatError> {
        let condition = m.remove("if").unwrap_or(Value::Bool(true));
        let then = m.remove("then").unwrap_or(Value::Bool(true));
        let otherwise = m.remove("else").unwrap_or(Value::Bool(true));
        let mut branches = vec![serde_json::json!({ "allOf": [condition.clone(), then] })];
        if self.lower_not(&mut Map::new(), &condition, &join_ptr(ptr, "if"))? {
            branches.push(serde_json::json!({ "allOf": [{ "not": condition }, otherwise] }));
        }
        let all = m.entry("allOf").or_insert_with(|| Value::Array(Vec::new()));
        all.as_array_mut().ok_or_else(|| FormatError::schema(&join_ptr(ptr, "allOf"), "`allOf` must be an array"))?.push(serde_json::json!({ "anyOf": branches }));
        Ok(())
    }

    /// Rewrites the simple forms of `not` into keywords the lowering supports; returns false
    /// (changing nothing) for other forms. Supported: `not: {required: [...]}` (objects only,
    /// one of the names never generated), `not: {type: ...}` (type removed from the node's
    /// types), `not` of `anyOf` (each negated) or of an `allOf` of `required`s, and any `not`
    /// whose value kinds are disjoint from the node's `type` (always satisfied).
    fn lower_not(&mut self, m: &mut Map<String, Value>, not: &Value, ptr: &str) -> Result<bool, FormatError> {
        let node_types: Vec<&'static str> = match m.get("type") {
            Some(t) => type_set(t),
            None => ALL_TYPES.iter().copied().chain(["integer"]).collect(),
        };
        let kinds = self.value_kinds(not);
        let overlaps = |t: &&str| kinds.iter().any(|k| k == t || (*k == "number" && *t == "integer") || (*k == "integer" && *t == "number"));
        if m.get("nullable") != Some(&Value::Bool(true)) && !node_types.iter().any(|t| overlaps(&t)) {
            return Ok(true);
        }
        let not = self.deref(not);
        let Some(n) = not.as_object() else {
            return Ok(false);
        };
        let keys: Vec<&str> = n.keys().map(|k| k.as_str()).filter(|k| !ANNOTATIONS.contains(k)).collect();
        match keys.as_slice() {
            ["required"] => {
                let names = required_names(n);
                let own = required_names(m);
                let Some(name) = names.iter().find(|p| !own.contains(p)) else {
                    return Ok(false);
                };
                // `required` holds for every non-object, so only objects can satisfy `not`.
                let types: Vec<Value> = node_types.iter().filter(|t| **t == "object").map(|t| Value::from(*t)).collect();
                m.insert("type".into(), Value::Array(types));
                m.remove("nullable");
                let props = m.entry("properties").or_insert_with(|| Value::Object(Map::new()));
                let Some(props) = props.as_object_mut() else { return Ok(false) };
                props.insert(name.clone(), Value::Bool(false));
                Ok(true)
            }
            ["type"] => {
                let excluded = type_set(&n["type"]);
                if node_types.contains(&"number") && excluded.contains(&"integer") && !excluded.contains(&"number") {
                    return Ok(false); // non-integral numbers only: not expressible
                }
                let types: Vec<Value> = node_types
                    .iter()
                    .filter(|t| !excluded.contains(t) && !(**t == "integer" && excluded.contains(&"number")))
                    .map(|t| Value::from(*t))
                    .collect();
                if excluded.contains(&"null") {
                    m.remove("nullable");
                }
                m.insert("type".into(), Value::Array(types));
                Ok(true)
            }
            ["anyOf"] => {
                let Some(branches) = n["anyOf"].as_array() else { return Ok(false) };
                let mut trial = m.clone();
                for (i, b) in branches.iter().enumerate() {
                    if !self.lower_not(&mut trial, b, &join_ptr(&join_ptr(ptr, "anyOf"), &i.to_string()))? {
                        return Ok(false);
                    }
                }
                *m = trial;
                Ok(true)
            }
            ["allOf"] => {
                // not (required A and required B) = not required (A ∪ B)
                let Some(parts) = n["allOf"].as_array() else { return Ok(false) };
                let mut names = Vec::new();
                for p in parts {
                    let Some(p) = self.deref(p).as_object() else { return Ok(false) };
                    if p.keys().any(|k| k != "required" && !ANNOTATIONS.contains(&k.as_str())) {
                        return Ok(false);
                    }
                    names.extend(required_names(p).into_iter().map(Value::from));
                }
                self.lower_not(m, &serde_json::json!({ "required": names }), ptr)
            }
            _ => Ok(false),
        }
    }

    /// Rewrites `dependentRequired`, `dependentSchemas` and `dependencies` into keywords the
    /// lowering supports: a trigger property that is required brings its dependency along
    /// (more `required`, or the dependent schema added to `allOf`); an optional trigger is never
    /// generated (a narrowing: objects without it satisfy the dependency trivially).
    fn lower_dependencies(&mut self, m: &mut Map<String, Value>, ptr: &str) -> Result<(), FormatError> {
        for kw in ["dependentRequired", "dependentSchemas", "dependencies"] {
            let Some(deps) = m.remove(kw) else { continue };
            let kptr = join_ptr(ptr, kw);
            let deps = deps.as_object().cloned().ok_or_else(|| FormatError::schema(&kptr, format!("`{kw}` must be an object")))?;
            let required = required_names(m);
            for (trigger, dependency) in deps {
                if !required.contains(&trigger) {
                    let props = m.entry("properties").or_insert_with(|| Value::Object(Map::new()));
                    let props = props.as_object_mut().ok_or_else(|| FormatError::schema(&join_ptr(ptr, "properties"), "`properties` must be an object"))?;
                    props.insert(trigger, Value::Bool(false));
                    continue;
                }
                match dependency {
                    Value::Array(names) if kw != "dependentSchemas" => {
                        let r = m.entry("required").or_insert_with(|| Value::Array(Vec::new()));
                        let r = r.as_array_mut().ok_or_else(|| FormatError::schema(&join_ptr(ptr, "required"), "`required` must be an array of strings"))?;
                        for n in names {
                            if !n.is_string() {
                                return Err(FormatError::schema(&join_ptr(&kptr, &trigger), "dependencies must be property names"));
                            }
                            if !r.contains(&n) {
                                r.push(n);
                            }
                        }
                    }
                    schema @ (Value::Object(_) | Value::Bool(_)) if kw != "dependentRequired" => {
                        let all = m.entry("allOf").or_insert_with(|| Value::Array(Vec::new()));
                        all.as_array_mut().ok_or_else(|| FormatError::schema(&join_ptr(ptr, "allOf"), "`allOf` must be an array"))?.push(schema);
                    }
                    _ => return Err(FormatError::schema(&join_ptr(&kptr, &trigger), format!("invalid `{kw}` value"))),
                }
            }
        }
        Ok(())
    }

    /// Makes `oneOf` branches `i` and `j` exclusive by narrowing what each generates: branch
    /// `i` never emits one property that `j` requires (and vice versa), so an object generated
    /// from one lacks a required property of the other. Sound only when at least one of the
    /// two accepts objects alone (a non-object satisfies `required` trivially). Returns false
    /// (changing nothing) when that is impossible.
    fn separate_by_required(&mut self, branches: &mut [(Value, String)], originals: &[Value], i: usize, j: usize, ptr: &str) -> Result<bool, FormatError> {
        let (Some(x), Some(y)) = (self.flat_object(&originals[i], ptr)?, self.flat_object(&originals[j], ptr)?) else { return Ok(false) };
        if !(objects_only(&x) || objects_only(&y)) {
            return Ok(false);
        }
        let (rx, ry) = (required_names(&x), required_names(&y));
        let (Some(only_x), Some(only_y)) = (rx.iter().find(|p| !ry.contains(p)), ry.iter().find(|p| !rx.contains(p))) else { return Ok(false) };
        for (k, forbidden) in [(i, only_y), (j, only_x)] {
            let Some(mut flat) = self.flat_object(&branches[k].0, ptr)? else { return Ok(false) };
            let props = flat.entry("properties").or_insert_with(|| Value::Object(Map::new()));
            let Some(props) = props.as_object_mut() else { return Ok(false) };
            props.insert(forbidden.clone(), Value::Bool(false));
            branches[k].0 = Value::Object(flat);
        }
        Ok(true)
    }

    /// The schema object with its top-level `$ref`/`allOf` inlined; `None` for boolean schemas.
    fn flat_object(&mut self, v: &Value, ptr: &str) -> Result<Option<Map<String, Value>>, FormatError> {
        match v {
            Value::Object(m) => self.flatten(m, ptr, 0).map(Some),
            _ => Ok(None),
        }
    }

    fn deref<'v>(&self, v: &'v Value) -> &'v Value
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

    /// Types an instance of this schema can have (over-approximation).
    fn value_kinds(&self, v: &Value) -> Vec<&'static str> {
        // Subschemas looked at per question: branches of recursive definitions multiply.
        let mut budget = 256;
        self.kinds_within(v, &mut budget)
    }

    /// The JSON kinds an instance of `v` can have: its `type` (all kinds without one), narrowed
    /// by the kinds of its `anyOf`/`oneOf` branches (their union) and of its `allOf` members.
    fn kinds_within(&self, v: &Value, budget: &mut u32) -> Vec<&'static str> {
        let all = || ALL_TYPES.iter().copied().chain(["integer"]).collect::<Vec<_>>();
        let v = self.deref(v);
        let Some(m) = v.as_object() else {
            return if v == &Value::Bool(false) { vec![] } else { all() };
        };
        if let Some(e) = enum_values(m) {
            let mut t: Vec<&'static str> = e.iter().map(json_type_of).collect();
            t.dedup();
            return t;
        }
        // Not beside `$ref` (draft-07 and older ignore the siblings of `$ref`).
        if m.contains_key("$ref") || *budget == 0 {
            return all();
        }
        *budget -= 1;
        let mut t = match m.get("type") {
            Some(t) => type_set(t),
            None => all(),
        };
        if m.contains_key("type") && m.get("nullable") == Some(&Value::Bool(true)) {
            t.push("null");
        }
        for kw in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = m.get(kw) {
                let mut union: Vec<&'static str> = Vec::new();
                for b in branches {
                    for k in self.kinds_within(b, budget) {
                        if !union.contains(&k) {
                            union.push(k);
                        }
                    }
                }
                t = kinds_in_both(&t, &union);
            }
        }
        if let Some(Value::Array(members)) = m.get("allOf") {
            for b in members {
                t = kinds_in_both(&t, &self.kinds_within(b, budget));
            }
        }
        t
    }

    fn gen_enum(&mut self, m: &Map<String, Value>, ptr: &str) -> R {
        let mut vals: Vec<Value> = match m.get("enum") {
            Some(Value::Array(e)) => e.clone(),
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "enum"), "`enum` must be an array")),
            None => vec![m["const"].clone()],
        };
        if let (Some(c), true) = (m.get("const"), m.contains_key("enum")) {
            vals.retain(|v| v == c);
        }
        let mut rest = m.clone();
        rest.remove("enum");
        rest.remove("const");
        let has_other = rest.keys().any(|k| !ANNOTATIONS.contains(&k.as_str()) && !k.starts_with("x-") && k != "type" && k != "nullable");
        if has_other {
            // Keep the values the validator proves valid; drop those it proves invalid.
            let node = Value::Object(m.clone());
            let mut unknown = Vec::new();
            vals.retain(|v| match validate(v, &node, self.root) {
                Some(ok) => ok,
                None => {
                    unknown.push(v.clone());
                    false
                }
            });
            if !unknown.is_empty() {
                vals.extend(self.enum_values_matching_regex(rest, unknown, ptr)?);
            }
        } else {
            let types = self.types(m, ptr)?;
            vals.retain(|v| {
                let t = json_type_of(v);
                types.contains(&t) || (t == "integer" && types.contains(&"number"))
            });
        }
        self.enum_regex(&vals)
    }

    /// The values (of an `enum`) that match the regex `rest` lowers to. Errors when `rest` has
    /// keywords that cannot be lowered.
    fn enum_values_matching_regex(&mut self, rest: Map<String, Value>, mut vals: Vec<Value>, ptr: &str) -> Result<Vec<Value>, FormatError> {
        {
            let r = self.unrolled(|g| g.lower(&Value::Object(rest), ptr))?;
            let Some(r) = r else { return Ok(Vec::new()) };
            let re = regex_automata::meta::Regex::new(&format!("^(?:{r})$")).map_err(|e| FormatError::too_complex(format!("checking enum values at {}: {e}", pointer_display(ptr)), "regex build"))?;
            vals.retain(|v| re.is_match(serde_json::to_string(v).unwrap().as_str()));
        }
        Ok(vals)
    }

    /// An alternation of the given JSON values.
    fn enum_regex(&self, vals: &[Value]) -> R {
        let mut alts: Vec<String> = Vec::new();
        for v in vals {
            alts.push(regex_syntax::escape(&serde_json::to_string(v).unwrap()));
            // An integral float like `2.0` may also be written `2`.
            if let Value::Number(n) = v {
                if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) {
                    alts.push(format!("{}", n.as_f64().unwrap() as i64));
                }
            }
        }
        alts.dedup();
        Ok(match alts.len() {
            0 => None,
            1 => alts.pop(),
            _ => Some(format!("(?:{})", alts.join("|"))),
        })
    }

    fn get_count(&self, m: &Map<String, Value>, k: &str, ptr: &str) -> Result<Option<u64>, FormatError> {
        match m.get(k) {
            None => Ok(None),
            Some(v) => {
                if let Some(u) = v.as_u64() {
                    return Ok(Some(u));
                }
                if let Some(f) = v.as_f64() {
                    if f >= 0.0 && f.fract() == 0.0 {
                        return Ok(Some(f as u64));
                    }
                }
                Err(FormatError::schema(&join_ptr(ptr, k), format!("`{k}` must be a non-negative integer")))
            }
        }
    }

    fn bounds(&self, m: &Map<String, Value>, ptr: &str) -> Result<Bounds, FormatError> {
        let num = |k: &str| -> Result<Option<f64>, FormatError> {
            match m.get(k) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(Value::Bool(_)) if k.starts_with("exclusive") => Ok(None),
                Some(_) => Err(FormatError::schema(&join_ptr(ptr, k), format!("`{k}` must be a number"))),
            }
        };
        let mut b = Bounds::default();
        let tighter_lo = |cur: Option<(f64, bool)>, new: (f64, bool)| match cur {
            None => Some(new),
            Some(c) => Some(if new.0 > c.0 || (new.0 == c.0 && new.1) { new } else { c }),
        };
        let tighter_hi = |cur: Option<(f64, bool)>, new: (f64, bool)| match cur {
            None => Some(new),
            Some(c) => Some(if new.0 < c.0 || (new.0 == c.0 && new.1) { new } else { c }),
        };
        let ex_min_bool = m.get("exclusiveMinimum") == Some(&Value::Bool(true));
        let ex_max_bool = m.get("exclusiveMaximum") == Some(&Value::Bool(true));
        if let Some(v) = num("minimum")? { b.lo = tighter_lo(b.lo, (v, ex_min_bool)); }
        if let Some(v) = num("maximum")? { b.hi = tighter_hi(b.hi, (v, ex_max_bool)); }
        if let Some(v) = num("exclusiveMinimum")? { b.lo = tighter_lo(b.lo, (v, true)); }
        if let Some(v) = num("exclusiveMaximum")? { b.hi = tighter_hi(b.hi, (v, true)); }
        Ok(b)
    }

    fn gen_number(&mut self, m: &Map<String, Value>, ptr: &str, integer: bool) -> R {
        let b = self.bounds(m, ptr)?;
        let mut integer = integer;
        if let Some(mo) = m.get("multipleOf") {
            match mo.as_f64() {
                Some(f) if f == 1.0 => integer = true,
                Some(f) if f > 0.0 && integer && f.fract() == 0.0 && f <= 1e15 => {
                    return self.gen_multiple(&b, f as i64, ptr);
                }
                Some(f) if f > 0.0 => {
                    self.unsupported("multipleOf", &join_ptr(ptr, "multipleOf"), "only `multipleOf: 1`, or small integer multipleOf on integers, is supported")?;
                }
                _ => return Err(FormatError::schema(&join_ptr(ptr, "multipleOf"), "`multipleOf` must be a positive number")),
            }
        }
        Ok(if integer { integer_regex(&b) } else { number_regex(&b) })
    }

    /// Integer multiples of `k`: enumerated when the bounded range holds few of them.
    fn gen_multiple(&mut self, b: &Bounds, k: i64, ptr: &str) -> R {
        let (lo, hi) = b.int_interval(super::number::INT_CAP);
        if b.lo.is_some() && b.hi.is_some() && lo <= hi {
            let first = lo.div_euclid(k) * k + if lo.rem_euclid(k) == 0 { 0 } else { k };
            let count = if first > hi { 0 } else { (hi - first) / k + 1 };
            if count <= 256 {
                let alts: Vec<String> = (0..count).map(|i| (first + i * k).to_string()).collect();
                return Ok(if alts.is_empty() { None } else { Some(format!("(?:{})", alts.join("|"))) });
            }
        }
        if b.is_empty() {
            let r = match k {
                2 => Some("(?:0|-?[2468]|-?[1-9][0-9]{0,13}[02468])"),
                5 => Some("(?:0|-?5|-?[1-9][0-9]{0,13}[05])"),
                10 => Some("(?:0|-?[1-9][0-9]{0,13}0)"),
                _ => None,
            };
            if let Some(r) = r {
                return Ok(Some(r.to_string()));
            }
        }
        self.unsupported("multipleOf", &join_ptr(ptr, "multipleOf"), "multipleOf on a wide or unbounded integer range is not supported")?;
        Ok(integer_regex(b))
    }

    /// Which of a `format` (its regex `format`) and a `pattern` admits only strings the other
    /// admits too, so that it alone expresses both; `None` if neither (or it cannot tell).
    fn format_and_pattern(&self, format: &str, pattern: &str) -> Option<Narrower> {
        // Past this many state pairs the two are called incomparable (a ~0.1 s search at most).
        const MAX_PAIRS: usize = 1 << 14;
        let body = pattern::pattern_body(pattern).ok()?;
        let f = Automaton::from_regex(format, self.limits).ok()?;
        let p = Automaton::from_regex(&body, self.limits).ok()?;
        if f.language_within(&p, MAX_PAIRS)? {
            Some(Narrower::Format)
        } else if p.language_within(&f, MAX_PAIRS)? {
            Some(Narrower::Pattern)
        } else {
            None
        }
    }

    fn gen_string(&mut self, m: &Map<String, Value>, ptr: &str) -> R {
        let min = self.get_count(m, "minLength", ptr)?;
        let max = self.narrow_upper(self.get_count(m, "maxLength", ptr)?);
        if let (Some(a), Some(b)) = (min, max) {
            if a > b {
                return Ok(None);
            }
        }
        let pat = match m.get("pattern") {
            None => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "pattern"), "`pattern` must be a string")),
        };
        if let Some(Value::String(f)) = m.get("format") {
            match format_regex(f) {
                Some(fr) => {
                    if let Some(p) = &pat {
                        match self.format_and_pattern(&fr, p) {
                            Some(Narrower::Format) => {}
                            // The pattern alone, as if no format were given.
                            Some(Narrower::Pattern) => return self.gen_string(&without(m, "format"), ptr),
                            None => self.unsupported("pattern", &join_ptr(ptr, "pattern"), "`pattern` combined with `format` (neither's strings all match the other)")?,
                        }
                    }
                    if min.is_some() || max.is_some() {
                        let h = regex_syntax::Parser::new().parse(&fr).unwrap();
                        let p = h.properties();
                        let ok = min.is_none_or(|a| p.minimum_len().unwrap_or(0) as u64 >= a) && max.is_none_or(|b| p.maximum_len().is_some_and(|x| x as u64 <= b));
                        if !ok {
                            self.unsupported("format", &join_ptr(ptr, "format"), "`format` combined with `minLength`/`maxLength`")?;
                        }
                    }
                    return Ok(Some(format!("\"{fr}\"")));
                }
                None if DRAFT_FORMATS.contains(&f.as_str()) || self.opts.refuse_unknown_keywords => {
                    self.unsupported("format", &join_ptr(ptr, "format"), &format!("unknown format `{f}`"))?;
                }
                // A name no draft defines asserts nothing: validators pass every string, so
                // skipping it never widens (like a keyword of no draft).
                None => self.ignored.push(format!("format `{f}` at {} (not a format any draft defines)", pointer_display(&join_ptr(ptr, "format")))),
            }
        }
        let (lo, hi) = (min.unwrap_or(0), max);
        let pptr = join_ptr(ptr, "pattern");
        if let Some(p) = pat {
            let body = pattern::pattern_body(&p).map_err(|e| {
                if e.contains("not supported") {
                    FormatError::unsupported("pattern", &pptr, e)
                } else {
                    FormatError::InvalidRegex { message: format!("`pattern` at {}: {e}", pointer_display(&pptr)), position: None }
                }
            });
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    if self.opts.lenient {
                        self.ignored.push(format!("pattern at {}", pointer_display(&pptr)));
                        return self.plain_string(lo, hi, ptr);
                    }
                    return Err(e);
                }
            };
            if lo == 0 && hi.is_none() {
                return Ok(Some(format!("\"{body}\"")));
            }
            if let Some((plo, phi)) = pattern::anchored_char_len_bounds(&p) {
                if plo as u64 >= lo && hi.is_none_or(|h| phi.is_some_and(|x| x as u64 <= h)) {
                    return Ok(Some(format!("\"{body}\"")));
                }
            }
            if let Some((cls, a, b, s, e)) = pattern::single_class_repetition(&p) {
                let l = (a as u64).max(lo);
                let h = match (s && e, b, hi) {
                    (true, Some(b), Some(h)) => Some((b as u64).min(h)),
                    (true, Some(b), None) => Some(b as u64),
                    (_, _, h) => h,
                };
                if h.is_some_and(|h| h < l) {
                    return Ok(None);
                }
                let l = self.rep(l, "minLength", ptr)?;
                return Ok(Some(match h {
                    Some(h) => format!("\"{cls}{{{l},{}}}\"", self.rep(h, "maxLength", ptr)?),
                    None => format!("\"{cls}{{{l},}}\""),
                }));
            }
            if let Some((body, tail)) = hi.and_then(|h| pattern::bounded_pattern_body(&p, lo, h)) {
                self.estimated_bytes += bounded_string_bytes(tail).saturating_mul(self.copies);
                return Ok(Some(format!("\"{body}\"")));
            }
            self.unsupported("pattern", &pptr, "`pattern` combined with `minLength`/`maxLength` (only single character-class patterns, or patterns that can be bounded to `maxLength`, can be combined)")?;
            return Ok(Some(format!("\"{body}\"")));
        }
        self.plain_string(lo, hi, ptr)
    }

    fn plain_string(&mut self, lo: u64, hi: Option<u64>, ptr: &str) -> R {
        let l = self.rep(lo, "minLength", ptr)?;
        let char = if self.opts.raw_strings { RAW_JSON_CHAR } else { JSON_CHAR };
        Ok(Some(match hi {
            None => format!("\"{char}{{{l},}}\""),
            Some(h) => {
                self.estimated_bytes += bounded_string_bytes(h).saturating_mul(self.copies);
                format!("\"{char}{{{l},{}}}\"", self.rep(h, "maxLength", ptr)?)
            }
        }))
    }

    fn gen_array(&mut self, m: &Map<String, Value>, ptr: &str) -> R {
        if let Some(v) = m.get("contains") {
            let _ = v;
        }
        let w = self.ws.clone();
        let sep = format!("{w},{w}");
        let min = self.get_count(m, "minItems", ptr)?.unwrap_or(0);
        let mut max = self.narrow_upper(self.get_count(m, "maxItems", ptr)?);
        let max_from_kw = max;
        match m.get("uniqueItems") {
            // Arrays of at most one item are trivially unique (a narrowing).
            Some(Value::Bool(true)) if min <= 1 => max = Some(max.map_or(1, |x| x.min(1))),
            Some(Value::Bool(true)) => {
                self.unsupported("uniqueItems", &join_ptr(ptr, "uniqueItems"), "`uniqueItems: true` is only supported with `minItems` <= 1 (only arrays of at most one item are generated)")?;
            }
            _ => {}
        }
        let (prefix, prefix_ptr, rest, rest_ptr): (Vec<Value>, String, Value, String) = match (m.get("prefixItems"), m.get("items")) {
            (Some(Value::Array(p)), items) => (
                p.clone(),
                join_ptr(ptr, "prefixItems"),
                items.cloned().or_else(|| m.get("unevaluatedItems").cloned()).unwrap_or(Value::Bool(true)),
                join_ptr(ptr, if items.is_some() { "items" } else { "unevaluatedItems" }),
            ),
            (Some(_), _) => return Err(FormatError::schema(&join_ptr(ptr, "prefixItems"), "`prefixItems` must be an array")),
            (None, Some(Value::Array(p))) => (
                p.clone(),
                join_ptr(ptr, "items"),
                m.get("additionalItems").or_else(|| m.get("unevaluatedItems")).cloned().unwrap_or(Value::Bool(true)),
                join_ptr(ptr, "additionalItems"),
            ),
            (None, Some(i)) => (vec![], String::new(), i.clone(), join_ptr(ptr, "items")),
            (None, None) => (vec![], String::new(), m.get("unevaluatedItems").cloned().unwrap_or(Value::Bool(true)), join_ptr(ptr, "unevaluatedItems")),
        };
        let mut pre = Vec::new();
        for (i, p) in prefix.iter().enumerate() {
            match self.lower_part(p, &join_ptr(&prefix_ptr, &i.to_string()))? {
                Some(r) => pre.push(r),
                None => {
                    max = Some(max.map_or(i as u64, |x| x.min(i as u64)));
                    break;
                }
            }
        }
        let k = pre.len() as u64;
        let need_rest = max.is_none_or(|x| x > k);
        // The repeated item appears twice in the regex (first item, then `,item`), and the DFA
        // keeps both copies.
        let r = if need_rest { self.with_copies(2, |g| g.lower_part(&rest, &rest_ptr))? } else { None };
        if r.is_none() {
            max = Some(max.map_or(k, |x| x.min(k)));
        }
        if max.is_some_and(|x| x < min) {
            return Ok(None);
        }
        self.rep(min, "minItems", ptr)?;
        if let (Some(x), Some(kw)) = (max, max_from_kw) {
            if x == kw {
                self.rep(x, "maxItems", ptr)?;
            }
        }
        let quant = |lo: u64, hi: Option<u64>| match hi {
            Some(h) if h == lo => format!("{{{lo}}}"),
            Some(h) => format!("{{{lo},{h}}}"),
            None => format!("{{{lo},}}"),
        };
        let elems: String = if k == 0 {
            match (&r, max) {
                (None, _) | (_, Some(0)) => String::new(),
                (Some(r), _) => {
                    let lo = min.max(1) - 1;
                    let hi = max.map(|x| x - 1);
                    let tail = if hi == Some(0) { String::new() } else { format!("(?:{sep}{r}){}", quant(lo, hi)) };
                    let e = format!("{r}{tail}");
                    if min == 0 { format!("(?:{e})?") } else { e }
                }
            }
        } else {
            let upto = max.map_or(k, |x| x.min(k)) as usize;
            let tail = match &r {
                Some(r) if max.is_none_or(|x| x > k) => {
                    let lo = min.saturating_sub(k);
                    format!("(?:{sep}{r}){}", quant(lo, max.map(|x| x - k)))
                }
                _ => String::new(),
            };
            let mut cur = tail;
            for i in (0..upto).rev() {
                let s = if i > 0 { sep.as_str() } else { "" };
                let next = if cur.is_empty() { String::new() } else if (i as u64 + 1) >= min { format!("(?:{cur})?") } else { cur };
                cur = format!("{s}{}{next}", pre[i]);
                self.check_len(&cur)?;
            }
            if min == 0 { format!("(?:{cur})?") } else { cur }
        };
        Ok(Some(format!("\\[{w}{elems}{w}\\]")))
    }

    fn name_ok(&mut self, schema: &Value, ptr: &str, name: &str) -> Result<bool, FormatError> {
        let key = format!("{ptr}\u{0}{}", serde_json::to_string(schema).unwrap());
        if !self.name_cache.contains_key(&key) {
            let r = self.unrolled(|g| g.lower(schema, ptr))?;
            let re = match r {
                None => None,
                Some(r) => Some(regex_automata::meta::Regex::new(&format!("^(?:{r})$")).map_err(|e| FormatError::too_complex(format!("property name check at {}: {e}", pointer_display(ptr)), "regex build"))?),
            };
            self.name_cache.insert(key.clone(), re);
        }
        Ok(match &self.name_cache[&key] {
            None => false,
            Some(re) => re.is_match(serde_json::to_string(name).unwrap().as_str()),
        })
    }

    /// The members in order, each optional one skippable: the regex (empty when there are
    /// none) and whether it may match nothing at all (no member required).
    fn members_in_order(&self, members: &[(String, bool)], sep: &str) -> Result<(String, bool), FormatError> {
        let mut acc: Option<String> = None;
        let mut empty_ok = true;
        for (mr, req) in members {
            acc = Some(match (acc.take(), empty_ok, req) {
                (Some(a), true, true) => format!("(?:{a}{sep})?{mr}"),
                (Some(a), false, true) => format!("{a}{sep}{mr}"),
                (Some(a), true, false) => format!("(?:{a}(?:{sep}{mr})?|{mr})"),
                (Some(a), false, false) => format!("{a}(?:{sep}{mr})?"),
                (None, _, _) => mr.clone(),
            });
            if *req {
                empty_ok = false;
            }
            self.check_len(acc.as_ref().unwrap())?;
        }
        Ok((acc.unwrap_or_default(), empty_ok))
    }

    /// One member the object does not declare (`"key": value`), or `None` when the policy
    /// generates none. Generated: in a map (an object declaring no property and requiring none)
    /// any key its `propertyNames` allow, valued by `additionalProperties`; after declared
    /// members, keys spelling no declared name when `additionalProperties` is given explicitly
    /// (`true` or a schema); keys matching a `patternProperties` pattern that no declared name
    /// matches, valued by every pattern's schema at once. Never with `unevaluatedProperties`
    /// or when a merge could not describe them (`NO_UNDECLARED`). Other keys a schema allows
    /// are not generated (the model is not invited to invent keys).
    fn undeclared_member(&mut self, m: &Map<String, Value>, names: &[String], pattern_props: &[(String, Value)], ptr: &str) -> R {
        if m.contains_key("unevaluatedProperties") || m.contains_key(NO_UNDECLARED) {
            return Ok(None);
        }
        let w = self.ws.clone();
        let a_map = required_names(m).is_empty() && m.get("properties").and_then(|p| p.as_object()).is_none_or(|p| p.values().all(|v| v == &Value::Bool(false)));
        let names_ptr = join_ptr(ptr, "propertyNames");
        // A key of string schema `key` that `propertyNames` allows; `None` if none.
        let key_for = |g: &mut Self, key: Value| -> R {
            let key = match m.get("propertyNames") {
                Some(pn) => g.merge(&key, pn, &names_ptr, 0, false)?,
                None => key,
            };
            g.unrolled(|g| g.lower(&key, &names_ptr))
        };
        // What the engine cannot generate here (an unsupported keyword in a value schema, a
        // limit) only means no undeclared members: a narrowing, never an error.
        let skip_unsupported = |r: R| match r {
            Err(FormatError::UnsupportedKeyword { .. } | FormatError::TooComplex { .. }) => Ok(None),
            r => r,
        };
        if !pattern_props.is_empty() {
            let all = pattern_props.iter().try_fold(Value::Bool(true), |acc, (pat, ps)| self.merge(&acc, ps, &join_ptr(&join_ptr(ptr, "patternProperties"), pat), 0, false));
            let Ok(all) = all else { return Ok(None) };
            let mut keys = Vec::new();
            for (pat, _) in pattern_props {
                // A pattern this engine cannot hold a key to only means no such keys are generated.
                let Ok(re) = pattern::search_regex(pat) else { continue };
                if names.iter().any(|n| re.is_match(n)) {
                    continue;
                }
                if let Ok(Some(k)) = key_for(self, serde_json::json!({"type": "string", "pattern": pat})) {
                    keys.push(k);
                }
            }
            if keys.is_empty() {
                return Ok(None);
            }
            let v = skip_unsupported(self.lower_part(&all, &join_ptr(ptr, "patternProperties")))?;
            Ok(v.map(|v| format!("(?:{}){w}:{w}{v}", keys.join("|"))))
        } else if a_map || m.get("additionalProperties").is_some() {
            let addl = m.get("additionalProperties").cloned().unwrap_or(Value::Bool(true));
            let key = if names.is_empty() {
                skip_unsupported(key_for(self, serde_json::json!({"type": "string"})))?
            } else if m.contains_key("propertyNames") {
                None // keys that are both allowed and undeclared: not worth a product here
            } else {
                Some(key_except(names))
            };
            let Some(k) = key else { return Ok(None) };
            let v = skip_unsupported(self.lower_part(&addl, &join_ptr(ptr, "additionalProperties")))?;
            Ok(v.map(|v| format!("{k}{w}:{w}{v}")))
        } else {
            Ok(None)
        }
    }

    fn gen_object(&mut self, m: &Map<String, Value>, ptr: &str) -> R {
        let w = self.ws.clone();
        let props = match m.get("properties") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "properties"), "`properties` must be an object")),
        };
        let required: Vec<String> = match m.get("required") {
            None => vec![],
            Some(Value::Array(r)) => r.iter().map(|v| v.as_str().map(String::from).ok_or_else(|| FormatError::schema(&join_ptr(ptr, "required"), "`required` must be an array of strings"))).collect::<Result<_, _>>()?,
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "required"), "`required` must be an array of strings")),
        };
        let pattern_props: Vec<(String, Value)> = match m.get("patternProperties") {
            None => vec![],
            Some(Value::Object(p)) => p.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(_) => return Err(FormatError::schema(&join_ptr(ptr, "patternProperties"), "`patternProperties` must be an object")),
        };
        let addl = m.get("additionalProperties").cloned().unwrap_or(Value::Bool(true));
        // Members: declared properties in order, then required-but-undeclared ones.
        let mut members: Vec<(String, Value, String)> = props.iter().map(|(k, v)| (k.clone(), v.clone(), join_ptr(&join_ptr(ptr, "properties"), k))).collect();
        for r in &required {
            if !props.contains_key(r) {
                members.push((r.clone(), Value::Bool(true), join_ptr(ptr, "required")));
            }
        }
        let mut out: Vec<(String, bool)> = Vec::new();
        for (name, schema, sptr) in members {
            let is_req = required.contains(&name);
            let mut schema = schema;
            let mut matched_pattern = false;
            for (pat, ps) in &pattern_props {
                let pp = join_ptr(&join_ptr(ptr, "patternProperties"), pat);
                let re = pattern::search_regex(pat).map_err(|e| match e {
                    pattern::PatternError::Unsupported(e) => FormatError::unsupported("patternProperties", &pp, e),
                    pattern::PatternError::Invalid(e) => FormatError::InvalidRegex { message: format!("patternProperties at {}: {e}", pointer_display(&pp)), position: None },
                })?;
                if re.is_match(&name) {
                    matched_pattern = true;
                    schema = self.merge(&schema, ps, &pp, 0, false)?;
                }
            }
            if !props.contains_key(&name) && !matched_pattern {
                schema = self.merge(&schema, &addl, &join_ptr(ptr, "additionalProperties"), 0, false)?;
            }
            if let Some(pn) = m.get("propertyNames") {
                if !self.name_ok(&pn.clone(), &join_ptr(ptr, "propertyNames"), &name)? {
                    schema = Value::Bool(false);
                }
            }
            match self.lower_part(&schema, &sptr)? {
                Some(v) => {
                    let key = regex_syntax::escape(&serde_json::to_string(&name).unwrap());
                    out.push((format!("{key}{w}:{w}{v}"), is_req));
                }
                None if is_req => return Ok(None),
                None => {}
            }
        }
        let nreq = out.iter().filter(|x| x.1).count() as u64;
        let minp = self.get_count(m, "minProperties", ptr)?.unwrap_or(0);
        let maxp = self.get_count(m, "maxProperties", ptr)?;
        let sep = format!("{w},{w}");
        let n = out.len() as u64;
        let names: Vec<String> = props.keys().chain(&required).cloned().collect();
        let counted = m.contains_key("minProperties") || m.contains_key("maxProperties");
        let undeclared = if counted && !out.is_empty() { None } else { self.undeclared_member(m, &names, &pattern_props, ptr)? };
        if let Some(x) = undeclared {
            let tail = format!("(?:{sep}{x})*");
            let body = if out.is_empty() {
                // Only undeclared members (a map): as many as the counts allow.
                let max = match maxp {
                    Some(n) => Some(self.rep(n, "maxProperties", ptr)? as u64),
                    None => None,
                };
                if max.is_some_and(|x| x < minp) {
                    return Ok(None);
                }
                let more = |lo: u64| match max {
                    None if lo == 0 => tail.clone(),
                    None => format!("(?:{sep}{x}){{{lo},}}"),
                    Some(hi) => format!("(?:{sep}{x}){{{lo},{}}}", hi.saturating_sub(1)),
                };
                self.rep(minp, "minProperties", ptr)?;
                match (minp, max) {
                    (_, Some(0)) => String::new(),
                    (0, _) => format!("(?:{x}{})?", more(0)),
                    (lo, _) => format!("{x}{}", more(lo - 1)),
                }
            } else {
                let (first, empty_ok) = self.members_in_order(&out, &sep)?;
                if empty_ok { format!("(?:{first}{tail}|{x}{tail})?") } else { format!("{first}{tail}") }
            };
            self.check_len(&body)?;
            return Ok(Some(format!("\\{{{w}{body}{w}\\}}")));
        }
        if minp > n || maxp.is_some_and(|x| x < nreq || x < minp) {
            return Ok(None);
        }
        let body = if minp <= nreq && maxp.is_none_or(|x| x >= n) {
            match self.members_in_order(&out, &sep)? {
                (a, _) if a.is_empty() => a,
                (a, true) => format!("(?:{a})?"),
                (a, false) => a,
            }
        } else {
            // Counted selection: sel[c] = non-empty selections (so far) with c members.
            let maxc = maxp.unwrap_or(n).min(n) as usize;
            self.rep(maxc as u64, "maxProperties", ptr)?;
            let mut sel: Vec<Option<String>> = vec![None; maxc + 1];
            let mut empty_ok = true;
            for (mr, req) in &out {
                let mut next: Vec<Option<String>> = vec![None; maxc + 1];
                for c in 1..=maxc {
                    let mut alts = Vec::new();
                    if !req {
                        if let Some(s) = &sel[c] {
                            alts.push(s.clone());
                        }
                    }
                    if c >= 2 {
                        if let Some(s) = &sel[c - 1] {
                            alts.push(format!("{s}{sep}{mr}"));
                        }
                    }
                    if c == 1 && empty_ok {
                        alts.push(mr.clone());
                    }
                    next[c] = match alts.len() {
                        0 => None,
                        1 => alts.pop(),
                        _ => Some(format!("(?:{})", alts.join("|"))),
                    };
                    if let Some(s) = &next[c] {
                        self.check_len(s)?;
                    }
                }
                if *req {
                    empty_ok = false;
                }
                sel = next;
            }
            let mut alts: Vec<String> = (minp.max(1) as usize..=maxc).filter_map(|c| sel[c].clone()).collect();
            let allow_empty = empty_ok && minp == 0;
            if alts.is_empty() && !allow_empty {
                return Ok(None);
            }
            let a = format!("(?:{})", alts.drain(..).collect::<Vec<_>>().join("|"));
            if allow_empty { if a == "(?:)" { String::new() } else { format!("{a}?") } } else { a }
        };
        Ok(Some(format!("\\{{{w}{body}{w}\\}}")))
    }
}

/// A JSON string (quotes included) of unescaped characters that spells none of `names`: the
/// key of an undeclared member, which must not repeat a declared one under another schema (with
/// escapes left out, no other spelling of a declared name gets through either).
fn key_except(names: &[String]) -> String {
    const CHAR: &str = r#"[^"\\\x00-\x1F]"#;
    #[derive(Default)]
    struct Node {
        children: std::collections::BTreeMap<char, Node>,
        end: bool,
    }
    // Written into one buffer: objects with many names call this once per lowering.
    fn body(node: &Node, out: &mut String) {
        out.push_str("(?:");
        if node.children.is_empty() {
            out.push_str(CHAR);
        } else {
            out.push_str("[");
            out.push_str(CHAR);
            out.push_str("--[");
            for c in node.children.keys() {
                regex_syntax::escape_into(c.encode_utf8(&mut [0; 4]), out);
            }
            out.push_str("]]");
        }
        out.push_str(CHAR);
        out.push('*');
        for (c, child) in &node.children {
            out.push('|');
            regex_syntax::escape_into(c.encode_utf8(&mut [0; 4]), out);
            body(child, out);
        }
        out.push(')');
        if !node.end {
            out.push('?');
        }
    }
    let mut root = Node::default();
    for name in names.iter().filter(|n| !n.chars().any(|c| c == '"' || c == '\\' || c < ' ')) {
        let mut node = &mut root;
        for c in name.chars() {
            node = node.children.entry(c).or_default();
        }
        node.end = true;
    }
    let mut out = String::from("\"");
    body(&root, &mut out);
    out.push('"');
    out
}

/// The kinds in both lists, where `number` includes `integer`.
fn kinds_in_both(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for &k in a {
        let kept = if b.contains(&k) {
            Some(k)
        } else if (k == "number" && b.contains(&"integer")) || (k == "integer" && b.contains(&"number")) {
            Some("integer")
        } else {
            None
        };
        if let Some(k) = kept.filter(|k| !out.contains(k)) {
            out.push(k);
        }
    }
    out
}

/// Of two constraints on one string, the one whose strings all satisfy the other.
enum Narrower {
    Format,
    Pattern,
}

/// `m` without keyword `k`.
fn without(m: &Map<String, Value>, k: &str) -> Map<String, Value> {
    let mut m = m.clone();
    m.remove(k);
    m
}

/// Whether every instance of the schema is an object.
fn objects_only(m: &Map<String, Value>) -> bool {
    m.get("type").is_some_and(|t| type_set(t) == ["object"]) && m.get("nullable") != Some(&Value::Bool(true))
}

fn required_names(m: &Map<String, Value>) -> Vec<String> {
    m.get("required").and_then(|v| v.as_array()).map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

fn false_schema() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("not".into(), Value::Object(Map::new()));
    m
}

fn type_set(v: &Value) -> Vec<&'static str> {
    let all = ["null", "boolean", "object", "array", "string", "number", "integer"];
    let mut out = Vec::new();
    let mut add = |s: &str| {
        if let Some(t) = all.iter().find(|x| **x == s) {
            out.push(*t);
        }
    };
    match v {
        Value::String(s) => add(s),
        Value::Array(a) => a.iter().filter_map(|x| x.as_str()).for_each(add),
        _ => {}
    }
    out
}

fn enum_values(m: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(c) = m.get("const") {
        return Some(vec![c.clone()]);
    }
    m.get("enum").and_then(|e| e.as_array()).cloned()
}

fn percent_decode(s: &str) -> String {
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

const LABEL: &str = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

/// Strict regexes for the supported `format` values (ASCII only; narrower than the RFCs where
/// that keeps them simple: no leap seconds, February ≤ 28 days, hostnames ≤ 3 labels...), plus
/// OpenAPI's `byte` (base64).
pub fn format_regex(name: &str) -> Option<String> {
    let date = "[1-9][0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))";
    let time = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
    let h = "[0-9a-fA-F]{1,4}";
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    let pchar = "(?:[A-Za-z0-9\\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})";
    let host = format!("{LABEL}(?:\\.{LABEL}){{0,2}}");
    let uri = format!("(?:https?|ftp)://{host}(?::[0-9]{{1,5}})?(?:/{pchar}*)*(?:\\?(?:{pchar}|[/?])*)?(?:#(?:{pchar}|[/?])*)?");
    Some(match name {
        "date-time" => format!("{date}T{time}"),
        "date" => date.to_string(),
        "time" => time.to_string(),
        // A local part of at most 64 characters and an address of at most 254 (RFC 5321).
        "email" => format!("[A-Za-z0-9_+-]{{1,20}}(?:\\.[A-Za-z0-9_+-]{{1,20}}){{0,2}}@{LABEL}(?:\\.{LABEL}){{1,2}}"),
        "uuid" => "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}".to_string(),
        "uri" => uri,
        "uri-reference" => format!("(?:{uri}|/?[A-Za-z0-9\\-._~]+(?:/[A-Za-z0-9\\-._~]+)*)"),
        "ipv4" => format!("{octet}(?:\\.{octet}){{3}}"),
        "ipv6" => format!(
            "(?:(?:{h}:){{7}}{h}|(?:{h}:){{1,7}}:|(?:{h}:){{1,6}}:{h}|(?:{h}:){{1,5}}(?::{h}){{1,2}}|(?:{h}:){{1,4}}(?::{h}){{1,3}}|(?:{h}:){{1,3}}(?::{h}){{1,4}}|(?:{h}:){{1,2}}(?::{h}){{1,5}}|{h}:(?::{h}){{1,6}}|:(?:(?::{h}){{1,7}}|:))"
        ),
        "hostname" => host,
        // OpenAPI `byte`: base64 (RFC 4648, padded, standard alphabet).
        "byte" => "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?".to_string(),
        _ => return None,
    })
}

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
                    None => { ok = false; break; }
                }
            }
            if !ok { break; }
            cur = t;
        }
        cur
    }
    /// Ordered (name, subschema) pairs that apply to an object.
    fn props<'v>(root: &'v Value, s: &'v Value, keys: &[&String], out: &mut Vec<(String, &'v Value)>, d: u32) {
        if d > 16 { return; }
        let s = deref(root, s);
        let Some(m) = s.as_object() else { return };
        if let Some(Value::Object(p)) = m.get("properties") {
            for (k, v) in p {
                if !out.iter().any(|(n, _)| n == k) { out.push((k.clone(), v)); }
            }
        }
        if let Some(Value::Array(all)) = m.get("allOf") {
            for b in all { props(root, b, keys, out, d + 1); }
        }
        for kw in ["anyOf", "oneOf"] {
            if let Some(Value::Array(br)) = m.get(kw) {
                let mut best = None;
                for b in br {
                    let mut o = Vec::new();
                    props(root, b, keys, &mut o, d + 1);
                    if keys.iter().all(|k| o.iter().any(|(n, _)| n == *k) || out.iter().any(|(n, _)| n == *k)) { best = Some(o); break; }
                }
                if let Some(o) = best { for x in o { if !out.iter().any(|(n, _)| *n == x.0) { out.push(x); } } }
            }
        }
    }
    fn items<'v>(root: &'v Value, s: &'v Value, i: usize) -> Option<&'v Value> {
        let s = deref(root, s);
        let m = s.as_object()?;
        if let Some(Value::Array(p)) = m.get("prefixItems") { if i < p.len() { return Some(&p[i]); } return m.get("items"); }
        match m.get("items") {
            Some(Value::Array(p)) => p.get(i).or(m.get("additionalItems")),
            Some(x) => Some(x),
            None => m.get("allOf").and_then(|a| a.as_array()).and_then(|a| a.iter().find_map(|b| items(root, b, i))),
        }
    }
    /// Names in `required` of `s` and of its `allOf` members.
    fn required(root: &Value, s: &Value, out: &mut Vec<String>, d: u32) {
        if d > 16 { return; }
        let s = deref(root, s);
        if let Some(Value::Array(r)) = s.get("required") {
            out.extend(r.iter().filter_map(|x| x.as_str().map(String::from)));
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for b in all { required(root, b, out, d + 1); }
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
                let mut sorted: Vec<(usize, usize, &String)> = m.keys().enumerate().map(|(i, k)| (ps.iter().position(|(n, _)| n == k).unwrap_or(usize::MAX), i, k)).collect();
                sorted.sort();
                out.push('{');
                for (j, (pi, _, k)) in sorted.iter().enumerate() {
                    if j > 0 { out.push(','); }
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
                    if j > 0 { out.push(','); }
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

#[cfg(test)]
mod narrowing_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_key_orders() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "integer"},
            "b": {"type": "object", "properties": {"x": {}, "y": {}}, "required": ["y"]},
            "c": {"type": "string"}}, "required": ["c", "b"]});
        let value = json!({"c": "s", "extra": 1, "b": {"y": 2, "x": 1}, "a": 0});
        assert_eq!(canonical_json(&value, Some(&schema)), r#"{"a":0,"b":{"x":1,"y":2},"c":"s","extra":1}"#);
        assert_eq!(
            canonical_json_ordered(&value, Some(&schema), KeyOrder::RequiredFirst),
            r#"{"b":{"y":2,"x":1},"c":"s","a":0,"extra":1}"#
        );
    }

    fn accepts(schema: Value, yes: &[&str], no: &[&str]) {
        let (a, _) = compile_schema(&schema, &SchemaOptions::default(), &Limits::default()).unwrap();
        for s in yes {
            assert!(a.accepts(s.as_bytes()), "{schema} should accept {s}");
        }
        for s in no {
            assert!(!a.accepts(s.as_bytes()), "{schema} should reject {s}");
        }
    }

    #[test]
    fn maps_are_generated() {
        accepts(json!({"type": "object"}), &["{}", r#"{"a":1,"b":[{"c":null}]}"#, r#"{"\u00e9":"x"}"#], &["[]", r#"{"a"}"#]);
        let labels = json!({"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1, "maxProperties": 2});
        accepts(labels, &[r#"{"app":"x"}"#, r#"{"app":"x","env":"y"}"#], &["{}", r#"{"app":1}"#, r#"{"a":"x","b":"y","c":"z"}"#]);
        let names = json!({"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}, "additionalProperties": {"type": "integer"}});
        accepts(names, &[r#"{"ab":1,"c":2}"#], &[r#"{"Ab":1}"#, r#"{"ab":"1"}"#]);
        let patterned = json!({"type": "object", "patternProperties": {"^x-": {"type": "integer"}, "y$": {"minimum": 0}}, "additionalProperties": false});
        accepts(patterned, &[r#"{"x-a":1}"#, r#"{"x-y":2}"#], &[r#"{"x-y":-2}"#, r#"{"x-a":"s"}"#, r#"{"b":1}"#]);
    }

    #[test]
    fn a_format_and_a_pattern_where_one_implies_the_other() {
        // Every date-time ends in `Z` or an offset: the pattern adds nothing.
        let s = json!({"type": "string", "format": "date-time", "pattern": ".+(Z|[+\\-]\\d{2}:\\d{2})"});
        accepts(s, &[r#""2010-12-31T11:55:00Z""#, r#""2010-12-31T11:55:00+06:00""#], &[r#""2010-12-31""#, r#""x+06:00""#]);
        // Every string of the pattern is an email: the format adds nothing.
        let s = json!({"type": "string", "format": "email", "pattern": "^[a-z]{1,8}@example\\.com$"});
        accepts(s, &[r#""ab@example.com""#], &[r#""ab@example.org""#, r#""AB@example.com""#]);
        let s = json!({"type": "string", "format": "date", "pattern": "^2020-"});
        assert!(compile_schema(&s, &SchemaOptions::default(), &Limits::default()).is_err(), "neither implies the other");
        accepts(json!({"properties": {"a": {"not": {}}}}), &["{}"], &[r#"{"a":1}"#]);
    }

    #[test]
    fn one_of_branches_disjoint_by_the_kinds_of_their_own_branches() {
        let s = json!({"oneOf": [{"oneOf": [{"enum": ["A", "B"]}, {"type": "string", "enum": ["NONE"]}]}, {"type": "object", "properties": {"t": {"type": "string"}}}]});
        accepts(s, &[r#""A""#, r#""NONE""#, r#"{"t":"x"}"#], &["1"]);
        let s = json!({"oneOf": [{"anyOf": [{"type": "string"}, {"type": "integer"}]}, {"type": "number"}]});
        assert!(compile_schema(&s, &SchemaOptions::default(), &Limits::default()).is_err(), "integers are in both");
    }

    #[test]
    fn undeclared_members_never_spell_a_declared_name() {
        // After declared members only when `additionalProperties` is explicit; a key that is a
        // declared name (in any spelling) would carry the declared schema, so it is never one.
        let s = json!({"properties": {"ab": {"type": "integer"}, "b": {"type": "integer"}}, "additionalProperties": {"type": "string"}});
        accepts(s, &[r#"{"ab":1,"a":"x","abc":"y","c":"z"}"#, r#"{"x":"y"}"#], &[r#"{"ab":1,"ab":"x"}"#, r#"{"b":"x"}"#, r#"{"\u0062":"x"}"#, r#"{"ab":"x"}"#]);
        accepts(json!({"properties": {"a": {"type": "integer"}}}), &[r#"{"a":1}"#], &[r#"{"a":1,"b":2}"#]);
        // Names forbidden by `not`/dependencies are declared `false`: never written as extras.
        let s = json!({"type": "object", "additionalProperties": true, "not": {"required": ["k"]}, "dependentRequired": {"t": ["u"]}});
        accepts(s, &[r#"{"a":1}"#], &[r#"{"k":1}"#, r#"{"t":1}"#]);
        // A pattern one side of a merge declares is additional for the other side: no extras.
        let s = json!({"allOf": [{"patternProperties": {"^x": {"type": "integer"}}}, {"additionalProperties": {"type": "string"}}]});
        accepts(s, &["{}"], &[r#"{"xa":1}"#, r#"{"xa":"s"}"#, r#"{"b":"s"}"#]);
        let s = json!({"type": "object", "unevaluatedProperties": false, "additionalProperties": true});
        accepts(s, &["{}"], &[r#"{"a":1}"#]);
    }

    #[test]
    fn ref_fragments_are_percent_decoded_bytewise() {
        accepts(json!({"$defs": {"a b": {"const": 1}}, "$ref": "#/$defs/a%20b"}), &["1"], &["2"]);
        // A `%` before a multi-byte character (the fuzzer's find): an unknown reference, no panic.
        let schema = json!({"$defs": {"n": {}}, "$ref": "#/$de%\u{df}fs/n"});
        assert!(compile_schema(&schema, &SchemaOptions::default(), &Limits::default()).is_err());
        assert_eq!(percent_decode("%é%4"), "%é%4");
    }

    #[test]
    fn formats_of_no_draft_are_annotations() {
        let schema = json!({"type": "string", "format": "url"});
        let (a, ignored) = compile_schema(&schema, &SchemaOptions::default(), &Limits::default()).unwrap();
        assert!(a.accepts(b"\"not a url\"") && ignored == ["format `url` at #/format (not a format any draft defines)"], "{ignored:?}");
        let refuse = SchemaOptions { refuse_unknown_keywords: true, ..Default::default() };
        assert!(compile_schema(&schema, &refuse, &Limits::default()).is_err());
        // A draft format this engine does not enforce stays refused: a validator may assert it.
        assert!(compile_schema(&json!({"type": "string", "format": "duration"}), &SchemaOptions::default(), &Limits::default()).is_err());
    }

    #[test]
    fn enum_filtered_by_not() {
        accepts(json!({"allOf": [{"enum": [1, "a", [1]]}, {"not": {"type": "string"}}]}), &["1", "[1]"], &["\"a\""]);
    }

    #[test]
    fn simple_not() {
        let s = json!({"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "not": {"required": ["a"]}});
        accepts(s, &["{}", "{\"b\":1}"], &["{\"a\":1}", "1", "null"]);
        accepts(json!({"type": ["string", "null"], "not": {"type": "null"}}), &["\"x\""], &["null"]);
    }

    #[test]
    fn one_of_separated_by_required() {
        let s = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
        accepts(s, &["{\"a\":1}", "{\"b\":1}"], &["{\"a\":1,\"b\":2}", "{}"]);
    }

    #[test]
    fn dependencies_narrowed() {
        let s = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "dependentRequired": {"a": ["b"]}});
        accepts(s, &["{}", "{\"b\":1}"], &["{\"a\":1}", "{\"a\":1,\"b\":1}"]);
        let s = json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "dependencies": {"a": ["b"]}});
        accepts(s, &["{\"a\":1,\"b\":1}"], &["{\"a\":1}"]);
    }

    #[test]
    fn bounds_narrowed() {
        accepts(json!({"type": "array", "uniqueItems": true, "items": {"type": "integer"}}), &["[]", "[1]"], &["[1,2]"]);
        let long = format!("\"{}\"", "x".repeat(2000));
        accepts(json!({"type": "string", "maxLength": 65535}), &["\"abc\""], &[long.as_str()]);
    }

    #[test]
    fn conditional() {
        let s = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "if": {"required": ["a"]}, "then": {"required": ["b"]}});
        accepts(s, &["{\"a\":1,\"b\":2}", "{}", "{\"b\":2}"], &["{\"a\":1}"]);
    }
}
