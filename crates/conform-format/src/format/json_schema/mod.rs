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
//!   [`pattern::parse_ecma`](super::pattern::parse_ecma)); an `email` has a local part of at
//!   most 64 characters;
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
//!   [`pattern::bounded_pattern_body`](super::pattern::bounded_pattern_body));
//! * `if`/`then`/`else`: `anyOf[allOf[if, then], allOf[not if, else]]`, the second branch only
//!   when `not if` has a supported form (else only instances satisfying `if` are generated);
//! * `not`: `not: {required}` (objects only, one name never emitted), `not: {type}`, `not` of
//!   `anyOf` / of an `allOf` of `required`s, a `not` whose kinds cannot overlap the node's
//!   `type` (always true); on `enum`/`const` nodes any keyword
//!   [`validate`](super::validate::validate) understands (`not`, `if`, `contains`,
//!   dependencies...) filters the values exactly.
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
//!
//! Files: this one holds the public types ([`Whitespace`], [`SchemaOptions`], [`SchemaRegex`]),
//! the entry points ([`compile_schema`], [`schema_rules`]) and the size levels they lower at;
//! the lowering itself is split by concept:
//! * `lower.rs`: the lowering state (`Gen`) and the per-node driver (keyword check, `$ref`,
//!   `allOf`, `anyOf`/`oneOf`, `type` dispatch), network rules, the shared size checks;
//! * `keywords.rs`: keyword tables (annotations, lowered, refused, checked on values only,
//!   draft `format` names) and how a refused keyword is reported;
//! * `node.rs`: small readers of one schema node (pointers, `type` sets, `required`, `enum`);
//! * `refs.rs`: local `$ref` resolution (JSON pointers, percent-decoding, the root's `$id`);
//! * `merge.rs`: two schemas merged into one (`allOf`, `$ref` beside other keywords);
//! * `rewrite.rs`: `if`/`then`/`else`, `not` and dependencies rewritten into lowered keywords;
//! * `disjoint.rs`: the kinds a schema's values can have, `oneOf` branches proven disjoint or
//!   separated by `required`;
//! * `enums.rs`: `enum`/`const` nodes;
//! * `numbers.rs`: numbers and integers (bounds, `multipleOf`);
//! * `strings.rs`: strings (lengths, `pattern`, `format`, `format` beside `pattern`);
//! * `formats.rs`: the regexes of the supported `format` names;
//! * `arrays.rs`: arrays (`items`, `prefixItems`, counts, `uniqueItems`);
//! * `objects.rs`: objects (declared and undeclared members, `min/maxProperties`);
//! * `canonical.rs`: the canonical serialisation of instances ([`canonical_json`]);
//! * `tests.rs`: unit tests of the generation policy.

use std::collections::HashMap;

use serde_json::Value;

use super::json::{any_json_level, ws_regex};
use super::recursive;
use super::{Automaton, Compiled, FormatError, Limit, Limits};

mod arrays;
mod canonical;
mod disjoint;
mod enums;
mod formats;
mod keywords;
mod lower;
mod merge;
mod node;
mod numbers;
mod objects;
mod refs;
mod rewrite;
mod strings;
#[cfg(test)]
mod tests;

pub use canonical::{canonical_json, canonical_json_ordered, KeyOrder};
pub use formats::format_regex;
use lower::{Gen, RuleBody, Rules};

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

/// Lowers `schema` as rules of a recursive network that starts at rule `first_rule`: for
/// formats that embed a schema (tool-call arguments). When [`SchemaRegex::recursive`], `regex`
/// is rule `first_rule` and `rules` are the rules after it, else `regex` is a plain regex.
///
/// Strings whose `maxLength`/`maxItems` had to be narrowed dominate the DFA size. The schema is
/// lowered at the most generous level that is estimated to fit half of `dfa_size_bytes`
/// (levels: see `lower_at_level`).
pub fn schema_rules(
    schema: &Value,
    options: &SchemaOptions,
    limits: &Limits,
    first_rule: usize,
) -> Result<SchemaRegex, FormatError> {
    lower_fitting(schema, options, limits, 0, Calls::Recursive, first_rule).map(|(r, _)| r)
}

/// Lowers at the first level from `level` on whose estimated DFA size fits; returns the regex
/// and its level, or `None` as level when no narrower level exists.
fn lower_fitting(
    schema: &Value,
    options: &SchemaOptions,
    limits: &Limits,
    mut level: u32,
    calls: Calls,
    first_rule: usize,
) -> Result<(SchemaRegex, Option<u32>), FormatError> {
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
fn lower_at_level(
    schema: &Value,
    options: &SchemaOptions,
    limits: &Limits,
    level: u32,
    calls: Calls,
    first_rule: usize,
) -> (Result<SchemaRegex, FormatError>, u64, bool) {
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
        Ok(None) => Err(FormatError::schema(
            "",
            "the schema admits no value that can be generated (unsatisfiable, or only instances beyond the recursion/number limits)",
        )),
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
pub fn compile_schema(
    schema: &Value,
    options: &SchemaOptions,
    limits: &Limits,
) -> Result<(Compiled, Vec<String>), FormatError> {
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
    matches!(e, FormatError::TooComplex { limit, .. } if !matches!(limit, Limit::MaxLoweringWork(_)))
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
