//! The regexes of the supported `format` names (and OpenAPI's `byte`).

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
    let uri = format!(
        "(?:https?|ftp)://{host}(?::[0-9]{{1,5}})?(?:/{pchar}*)*(?:\\?(?:{pchar}|[/?])*)?(?:#(?:{pchar}|[/?])*)?"
    );
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
