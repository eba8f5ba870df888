//! Unit tests of the generation policy (what is narrowed, what is refused), of canonical
//! serialisation and of `$ref` decoding.

use super::refs::percent_decode;
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
    accepts(
        json!({"type": "object"}),
        &["{}", r#"{"a":1,"b":[{"c":null}]}"#, r#"{"\u00e9":"x"}"#],
        &["[]", r#"{"a"}"#],
    );
    let labels =
        json!({"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1, "maxProperties": 2});
    accepts(
        labels,
        &[r#"{"app":"x"}"#, r#"{"app":"x","env":"y"}"#],
        &["{}", r#"{"app":1}"#, r#"{"a":"x","b":"y","c":"z"}"#],
    );
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
    let s = json!({"oneOf": [
        {"oneOf": [{"enum": ["A", "B"]}, {"type": "string", "enum": ["NONE"]}]},
        {"type": "object", "properties": {"t": {"type": "string"}}}]});
    accepts(s, &[r#""A""#, r#""NONE""#, r#"{"t":"x"}"#], &["1"]);
    let s = json!({"oneOf": [{"anyOf": [{"type": "string"}, {"type": "integer"}]}, {"type": "number"}]});
    assert!(compile_schema(&s, &SchemaOptions::default(), &Limits::default()).is_err(), "integers are in both");
}

#[test]
fn undeclared_members_never_spell_a_declared_name() {
    // After declared members only when `additionalProperties` is explicit; a key that is a
    // declared name (in any spelling) would carry the declared schema, so it is never one.
    let s = json!({"properties": {"ab": {"type": "integer"}, "b": {"type": "integer"}}, "additionalProperties": {"type": "string"}});
    accepts(
        s,
        &[r#"{"ab":1,"a":"x","abc":"y","c":"z"}"#, r#"{"x":"y"}"#],
        &[r#"{"ab":1,"ab":"x"}"#, r#"{"b":"x"}"#, r#"{"\u0062":"x"}"#, r#"{"ab":"x"}"#],
    );
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
    assert!(
        a.accepts(b"\"not a url\"") && ignored == ["format `url` at #/format (not a format any draft defines)"],
        "{ignored:?}"
    );
    let refuse = SchemaOptions { refuse_unknown_keywords: true, ..Default::default() };
    assert!(compile_schema(&schema, &refuse, &Limits::default()).is_err());
    // A draft format this engine does not enforce stays refused: a validator may assert it.
    assert!(compile_schema(
        &json!({"type": "string", "format": "duration"}),
        &SchemaOptions::default(),
        &Limits::default()
    )
    .is_err());
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
