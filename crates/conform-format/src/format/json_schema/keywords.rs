//! Keyword tables: which keywords are annotations, which are lowered, which belong to some
//! draft but are refused, which are only checked on `enum`/`const` values, which `format` names
//! some draft defines; and how a refused keyword is reported ([`Gen::unsupported`]: an error,
//! or skipped and reported in lenient mode). Keywords of no draft are skipped (or refused) where
//! a node is lowered (`lower.rs`).

use crate::format::{error::pointer_display, FormatError};

use super::lower::Gen;

/// Set by [`Gen::merge`] on a merged object whose undeclared members it cannot describe
/// (see there); an `x-` key, so the keyword check passes it by.
pub(super) const NO_UNDECLARED: &str = "x-conform-no-undeclared";

pub(super) const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "example",
    "default",
    "$comment",
    "$schema",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
    "contentEncoding",
    "$defs",
    "definitions",
    "markdownDescription",
    "$id",
    "id",
];

pub(super) const SUPPORTED: &[&str] = &[
    "type",
    "enum",
    "const",
    "nullable",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "if",
];

/// Assertion/applicator keywords of some JSON Schema draft that are not supported: always an
/// error (or skipped and reported in lenient mode). Keywords of no draft are annotations.
pub(super) const KNOWN_UNSUPPORTED: &[&str] = &[
    "not",
    "then",
    "else",
    "contains",
    "minContains",
    "maxContains",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "$anchor",
    "$vocabulary",
    "extends",
    "disallow",
    "divisibleBy",
    "requires",
    "contentSchema",
];

/// Every `format` name some JSON Schema draft defines (03 to 2020-12): one this engine does not
/// enforce is refused, since a validator may assert it. Other names (`url`, `path`, OpenAPI's
/// `password`, ...) assert nothing and are skipped, or refused with `refuse_unknown_keywords`.
pub(super) const DRAFT_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "utc-millisec",
    "email",
    "idn-email",
    "hostname",
    "host-name",
    "idn-hostname",
    "ipv4",
    "ip-address",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "json-pointer",
    "relative-json-pointer",
    "regex",
    "color",
    "style",
    "phone",
];

/// Keywords not lowered to regexes but supported on `enum`/`const` nodes: each value is then
/// checked by [`validate`](crate::format::validate::validate) and kept only when proven valid.
pub(super) const CHECKED_ON_VALUES: &[&str] =
    &["not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "contains"];

impl<'a> Gen<'a> {
    pub(super) fn unsupported(&mut self, kw: &str, ptr: &str, reason: &str) -> Result<(), FormatError> {
        if self.opts.lenient {
            self.ignored.push(format!("{kw} at {}", pointer_display(ptr)));
            Ok(())
        } else {
            Err(FormatError::unsupported(kw, ptr, reason))
        }
    }
}
