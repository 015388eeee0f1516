//! Field-level helpers shared by every parser: IP/port/timestamp validation, JSON field
//! lookup with aliases, and error-message snippets. Everything here treats its input as
//! untrusted: no indexing, no unwrap, no slicing except at ASCII delimiters.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use std::net::IpAddr;

use crate::telemetry::ParseError;

/// Longest piece of untrusted input quoted in an error message: reasons end up in
/// dead-letter headers, which must stay small.
const SNIPPET_CHARS: usize = 64;

/// A short, escaped excerpt of untrusted text for error messages.
pub(crate) fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(SNIPPET_CHARS).collect();
    if s.chars().nth(SNIPPET_CHARS).is_some() {
        out.push('…');
    }
    format!("{out:?}")
}

/// The record without its line terminator (`\n`, `\r\n`, and the `\r` that `sshd -E` writes).
pub(crate) fn strip_eol(record: &str) -> &str {
    record.trim_end_matches(['\n', '\r'])
}

/// Parse an IP address; `field` names the source of the value in the error.
/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what dual-stack listeners log) is folded to IPv4 so
/// the same attacker has one address across producers.
pub(crate) fn parse_ip(field: &str, s: &str) -> Result<IpAddr, ParseError> {
    s.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| ParseError::new(format!("invalid IP address in {field}: {}", snippet(s))))
}

/// Parse a port given as text (digits only: `str::parse` would also accept `+22`).
pub(crate) fn parse_port(field: &str, s: &str) -> Result<u16, ParseError> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(p) = t.parse::<u16>() {
            return Ok(p);
        }
    }
    Err(ParseError::new(format!("invalid port in {field}: {}", snippet(s))))
}

/// Timestamps with a date: RFC 3339 (`Z` or `+00:00`), the colon-less `+0000` offset that
/// Suricata writes, and zone-less ISO 8601, which is taken as UTC (producers that omit the
/// zone log in UTC in practice, and the alternative is rejecting the record).
pub(crate) fn parse_timestamp_str(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt.and_utc());
        }
    }
    None
}

/// Epoch seconds (possibly fractional) to a timestamp; `None` when out of range.
pub(crate) fn from_epoch_secs(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    let whole = secs.floor();
    // `as` saturates, and from_timestamp rejects out-of-range values, so nothing can panic.
    let nanos = (((secs - whole) * 1e9) as u32).min(999_999_999);
    DateTime::from_timestamp(whole as i64, nanos)
}

/// Event-type suffixes become part of stable rule-matching strings: lowercase them and
/// replace anything outside `[a-z0-9._-]` so a producer cannot inject spaces or separators.
pub(crate) fn sanitize_type(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Parse a record that must be one JSON object. Returns the value (kept verbatim as `raw`).
pub(crate) fn parse_json_object(record: &str) -> Result<Value, ParseError> {
    let value: Value =
        serde_json::from_str(record.trim()).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let depth = crate::json::depth(&value);
    if depth > super::MAX_RECORD_DEPTH {
        return Err(ParseError::new(format!(
            "JSON nested too deeply: {depth} levels (limit {})",
            super::MAX_RECORD_DEPTH
        )));
    }
    if value.is_object() {
        Ok(value)
    } else {
        Err(ParseError::new(format!("expected a JSON object, got {}", json_kind(&value))))
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first of `keys` present with a non-null value, with the key it was found under.
/// Null counts as absent: producers write `"field": null` for "not known".
pub(crate) fn field<'a>(obj: &'a Map<String, Value>, keys: &[&'static str]) -> Option<(&'static str, &'a Value)> {
    keys.iter().find_map(|k| obj.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
}

/// A mandatory, non-empty string field; `keys` are aliases, the first names the error.
pub(crate) fn required_str<'a>(obj: &'a Map<String, Value>, keys: &[&'static str]) -> Result<&'a str, ParseError> {
    let primary = keys.first().copied().unwrap_or("?");
    match field(obj, keys) {
        None => Err(ParseError::new(format!("missing field {primary}"))),
        Some((_, Value::String(s))) if !s.trim().is_empty() => Ok(s),
        Some((k, Value::String(_))) => Err(ParseError::new(format!("empty field {k}"))),
        Some((k, v)) => Err(ParseError::new(format!("field {k} must be a string, got {}", json_kind(v)))),
    }
}

/// An optional text field. Numbers and booleans are stringified (a username of `1234`
/// is still a username); objects and arrays are not text and are ignored. Empty strings
/// are kept: an empty password is a real observation.
pub(crate) fn opt_string(obj: &Map<String, Value>, keys: &[&'static str]) -> Option<String> {
    match field(obj, keys)?.1 {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Like [`opt_string`] but empty text counts as absent (messages, hostnames, ids).
pub(crate) fn opt_nonempty(obj: &Map<String, Value>, keys: &[&'static str]) -> Option<String> {
    opt_string(obj, keys).filter(|s| !s.trim().is_empty())
}

/// An optional IP field: absent/null/empty is `None`, anything else must be a valid address.
pub(crate) fn opt_ip(obj: &Map<String, Value>, keys: &[&'static str]) -> Result<Option<IpAddr>, ParseError> {
    match field(obj, keys) {
        None => Ok(None),
        Some((_, Value::String(s))) if s.trim().is_empty() => Ok(None),
        Some((k, Value::String(s))) => parse_ip(&format!("field {k}"), s).map(Some),
        Some((k, v)) => {
            Err(ParseError::new(format!("invalid IP address in field {k}: expected a string, got {}", json_kind(v))))
        }
    }
}

/// An optional port field: an integer 0..=65535 or a string of digits.
pub(crate) fn opt_port(obj: &Map<String, Value>, keys: &[&'static str]) -> Result<Option<u16>, ParseError> {
    match field(obj, keys) {
        None => Ok(None),
        Some((k, Value::Number(n))) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| ParseError::new(format!("invalid port in field {k}: {n}"))),
        Some((k, Value::String(s))) => parse_port(&format!("field {k}"), s).map(Some),
        Some((k, v)) => {
            Err(ParseError::new(format!("invalid port in field {k}: expected a number, got {}", json_kind(v))))
        }
    }
}

/// A mandatory timestamp field: an RFC 3339 string, or (when `allow_epoch`) a number of
/// seconds since the epoch.
pub(crate) fn required_timestamp(
    obj: &Map<String, Value>,
    keys: &[&'static str],
    allow_epoch: bool,
) -> Result<DateTime<Utc>, ParseError> {
    let primary = keys.first().copied().unwrap_or("?");
    match field(obj, keys) {
        None => Err(ParseError::new(format!("missing field {primary}"))),
        Some((k, Value::String(s))) => parse_timestamp_str(s)
            .ok_or_else(|| ParseError::new(format!("invalid timestamp in field {k}: {}", snippet(s)))),
        Some((k, Value::Number(n))) if allow_epoch => n
            .as_f64()
            .and_then(from_epoch_secs)
            .ok_or_else(|| ParseError::new(format!("invalid timestamp in field {k}: {n}"))),
        Some((k, v)) => {
            Err(ParseError::new(format!("invalid timestamp in field {k}: expected a string, got {}", json_kind(v))))
        }
    }
}

/// An optional duration in seconds: a number or numeric string, finite and non-negative.
pub(crate) fn opt_secs(obj: &Map<String, Value>, key: &'static str) -> Result<Option<f64>, ParseError> {
    let v = match field(obj, &[key]) {
        None => return Ok(None),
        Some((_, Value::Number(n))) => n.as_f64(),
        Some((_, Value::String(s))) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match v {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
        _ => Err(ParseError::new(format!("invalid duration in field {key}: expected a non-negative number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_accepted_shape() {
        let want = "2026-11-26T21:17:25.529043Z";
        for s in [
            "2026-11-26T21:17:25.529043Z",
            "2026-11-26T21:17:25.529043+00:00",
            "2026-11-26T21:17:25.529043+0000",
            "2026-11-26T22:17:25.529043+0100",
            "2026-11-26T21:17:25.529043",
            "2026-11-26 21:17:25.529043",
        ] {
            let got = parse_timestamp_str(s).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            assert_eq!(got.as_deref(), Some(want), "{s}");
        }
        for s in ["", "42", "2026-13-01T00:00:00Z", "Nov 26 21:17:45", "2026-11-26T21:17"] {
            assert_eq!(parse_timestamp_str(s), None, "{s}");
        }
    }

    #[test]
    fn epoch_conversion_is_total() {
        assert_eq!(from_epoch_secs(1.5).map(|t| t.timestamp_millis()), Some(1500));
        for x in [f64::NAN, f64::INFINITY, -f64::INFINITY, 1e300, -1e300] {
            assert_eq!(from_epoch_secs(x), None);
        }
    }

    #[test]
    fn ips_are_canonical_and_ports_strict() {
        assert_eq!(parse_ip("f", "::ffff:127.0.0.2").ok(), "127.0.0.2".parse().ok());
        assert!(parse_ip("f", "fe80::1%eth0").is_err());
        assert!(parse_ip("field src_ip", "999.1.1.1").unwrap_err().0.contains("src_ip"));
        assert_eq!(parse_port("p", "22").ok(), Some(22));
        for p in ["", "+22", "-1", "65536", "2 2", "22a"] {
            assert!(parse_port("p", p).is_err(), "{p}");
        }
    }

    #[test]
    fn snippets_are_short_and_char_safe() {
        let long = "é".repeat(1000);
        let s = snippet(&long);
        assert!(s.chars().count() < 80);
        assert!(s.ends_with("…\""));
    }

    #[test]
    fn type_suffixes_are_sanitized() {
        assert_eq!(sanitize_type(" Worm Detected|x "), "worm_detected_x");
        assert_eq!(sanitize_type("ET.SCAN-1_2"), "et.scan-1_2");
    }
}
