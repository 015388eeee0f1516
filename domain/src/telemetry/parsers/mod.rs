//! Parsers from raw producer records to [`SecurityEvent`]: one module per log format,
//! plus the record splitter and the entry point that dispatches on [`SourceType`].
//!
//! Every parser is pure and total: any input (bad JSON, truncated lines, odd Unicode,
//! megabytes of garbage) yields `Ok` or a [`ParseError`] whose reason is fit for a
//! dead-letter header; nothing panics.

use chrono::{DateTime, Datelike, SecondsFormat, TimeDelta, Utc};

use super::{ParseError, SecurityEvent, SourceType};

pub mod cef;
mod common;
pub mod cowrie;
pub mod json;
pub mod sshd;
pub mod suricata;
mod syslog;

pub use sshd::SshdPidTracker;

/// Records longer than this are rejected unparsed: no producer we accept writes them, and
/// the bound keeps one hostile record from costing unbounded work downstream.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// JSON records nested deeper than this are rejected: the log stores a record inside its
/// event, and every stored value must stay within what every reader parses (no producer we
/// accept nests beyond a handful of levels).
pub const MAX_RECORD_DEPTH: usize = 64;

/// What the producer knows that the record itself may not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseContext {
    /// Year to assume for syslog lines without a year (RFC 3164): the year of receipt, or
    /// the one before when that would put the line in the future (a December line read in
    /// January).
    pub default_year: i32,
    /// Hostname override from the producer, e.g. `/ingest/multi`'s `hostname`.
    pub hostname: Option<String>,
    /// When the record reached us, from the caller's clock (the domain has none): the HTTP
    /// request's arrival, or the JetStream message's publish time (so a redelivered message
    /// is judged the same way). Bounds the newest record time accepted.
    pub received_at: DateTime<Utc>,
}

/// The oldest record time accepted: the Unix epoch. Nothing we ingest logged earlier, and
/// the bound keeps every accepted time inside what `timestamptz`, RFC 3339 and our
/// time-ordered event ids (unsigned milliseconds since the epoch) all represent.
pub const EARLIEST_RECORD_TIME: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH;

/// How far after its receipt a record may say it happened: one day covers clock skew and a
/// producer that writes local time without a zone (at most UTC+14) with room to spare.
/// Anything later is not an observation of the past, and would sit at the top of every
/// newest-first view forever.
pub const MAX_FUTURE_SKEW_SECS: i64 = 24 * 60 * 60;

impl ParseContext {
    /// A context for records received at `received_at` (no hostname override).
    pub fn received_at(received_at: DateTime<Utc>) -> Self {
        ParseContext { default_year: received_at.year(), hostname: None, received_at }
    }

    /// The same context with a hostname override.
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// The newest record time accepted: receipt plus [`MAX_FUTURE_SKEW_SECS`].
    pub fn latest_record_time(&self) -> DateTime<Utc> {
        self.received_at
            .checked_add_signed(TimeDelta::seconds(MAX_FUTURE_SKEW_SECS))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// A year-less timestamp placed in [`Self::default_year`], or in the year before when
    /// that is beyond [`Self::latest_record_time`] (`at_year` builds the time in a year).
    pub(crate) fn place_yearless(&self, at_year: impl Fn(i32) -> Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let t = at_year(self.default_year)?;
        if t > self.latest_record_time() {
            return at_year(self.default_year - 1).or(Some(t));
        }
        Some(t)
    }

    /// Refuse a record time outside `[EARLIEST_RECORD_TIME, latest_record_time()]`.
    pub fn check_record_time(&self, t: DateTime<Utc>) -> Result<(), ParseError> {
        let shown = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        if t < EARLIEST_RECORD_TIME {
            return Err(ParseError::new(format!(
                "timestamp out of range: {} is before {}",
                shown(t),
                shown(EARLIEST_RECORD_TIME)
            )));
        }
        let latest = self.latest_record_time();
        if t > latest {
            return Err(ParseError::new(format!(
                "timestamp out of range: {} is more than a day after receipt ({})",
                shown(t),
                shown(self.received_at)
            )));
        }
        Ok(())
    }
}

/// Parse one record (one JSON object as text, or one log line) of the given source type.
/// The record's time must lie in the accepted range ([`ParseContext::check_record_time`]):
/// a time PostgreSQL or the read models cannot hold is refused here, with a reason, rather
/// than stored in the append-only log.
pub fn parse_record(source: SourceType, record: &str, ctx: &ParseContext) -> Result<SecurityEvent, ParseError> {
    if record.len() > MAX_RECORD_BYTES {
        return Err(ParseError::new(format!("record too long: {} bytes (limit {MAX_RECORD_BYTES})", record.len())));
    }
    if record.trim().is_empty() {
        return Err(ParseError::new("empty record"));
    }
    let event = match source {
        SourceType::Cowrie => cowrie::parse(record, ctx),
        SourceType::Sshd => sshd::parse(record, ctx),
        SourceType::Suricata => suricata::parse(record, ctx),
        SourceType::Cef => cef::parse(record, ctx),
        SourceType::Json => json::parse(record, ctx),
    }?;
    ctx.check_record_time(event.timestamp)?;
    Ok(event)
}

/// A context for records received at the very end of `year` (tests: every line of that year
/// is in the past).
#[cfg(test)]
pub(crate) fn context_in_year(year: i32) -> ParseContext {
    use chrono::TimeZone;
    ParseContext::received_at(Utc.with_ymd_and_hms(year, 12, 31, 23, 59, 59).single().expect("valid date"))
}

/// The context of the parsers' unit tests: records received at the end of 2026.
#[cfg(test)]
pub(crate) fn test_context() -> ParseContext {
    context_in_year(2026)
}

/// Split a message body into records: newline-delimited records; for JSON formats a body
/// that is a JSON array yields one record per element (re-serialized); blank lines skipped.
///
/// A JSON body that is one (possibly pretty-printed, multi-line) object is one record. A
/// body that is not valid JSON as a whole falls back to lines, so each bad line is
/// reported on its own by [`parse_record`] instead of sinking the whole body.
pub fn split_records(source: SourceType, body: &str) -> Vec<String> {
    let is_json = matches!(source, SourceType::Cowrie | SourceType::Suricata | SourceType::Json);
    let trimmed = body.trim();
    if is_json && (trimmed.starts_with('[') || trimmed.starts_with('{')) {
        match serde_json::from_str::<serde_json::Value>(trimmed) {
            Ok(serde_json::Value::Array(items)) => {
                return items.iter().map(|v| v.to_string()).collect();
            }
            Ok(serde_json::Value::Object(_)) => return vec![trimmed.to_owned()],
            _ => {}
        }
    }
    body.split('\n').map(common::strip_eol).filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        test_context()
    }

    #[test]
    fn split_json_array_into_elements() {
        let body = r#" [ {"a": 1}, {"b": [1, 2]}, 3 ] "#;
        assert_eq!(split_records(SourceType::Json, body), vec![r#"{"a":1}"#, r#"{"b":[1,2]}"#, "3"]);
        assert!(split_records(SourceType::Cowrie, "[]").is_empty());
    }

    #[test]
    fn split_json_lines_skips_blanks_and_crlf() {
        let body = "{\"a\":1}\r\n\r\n  \n{\"b\":2}\n";
        assert_eq!(split_records(SourceType::Suricata, body), vec!["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn split_pretty_printed_object_is_one_record() {
        let body = "{\n  \"eventid\": \"x\",\n  \"n\": 1\n}\n";
        assert_eq!(split_records(SourceType::Json, body).len(), 1);
    }

    #[test]
    fn split_invalid_json_body_falls_back_to_lines() {
        let body = "[1,\n{\"a\":1}\n";
        assert_eq!(split_records(SourceType::Json, body), vec!["[1,", "{\"a\":1}"]);
    }

    #[test]
    fn split_line_formats_never_treat_brackets_as_json() {
        let body = "[1, 2]\nNov 26 21:17:22 h sshd[1]: x  \n\n";
        assert_eq!(split_records(SourceType::Sshd, body), vec!["[1, 2]", "Nov 26 21:17:22 h sshd[1]: x  "]);
        assert!(split_records(SourceType::Cef, "\n \r\n").is_empty());
    }

    #[test]
    fn dispatch_by_source_type() {
        let c = ctx();
        let cowrie = r#"{"eventid":"cowrie.session.connect","timestamp":"2026-11-26T21:17:25Z"}"#;
        assert_eq!(parse_record(SourceType::Cowrie, cowrie, &c).map(|e| e.source_type), Ok(SourceType::Cowrie));
        let line = "Nov 26 21:17:22 h sshd[1]: Received signal 15; terminating.";
        assert_eq!(parse_record(SourceType::Sshd, line, &c).map(|e| e.event_type), Ok("sshd.terminating".to_owned()));
        // A record of one format sent as another is an error, not a guess.
        assert!(parse_record(SourceType::Sshd, cowrie, &c).is_err());
        assert!(parse_record(SourceType::Cowrie, line, &c).is_err());
    }

    /// Inputs every parser must reject with an error, and never panic on.
    #[test]
    fn malformed_inputs_are_errors_for_every_format() {
        let long_garbage = "x".repeat(200_000);
        let too_long = format!(
            "{{\"eventid\":\"cowrie.x\",\"timestamp\":\"2026-11-26T21:17:25Z\",\"p\":\"{}\"}}",
            "a".repeat(MAX_RECORD_BYTES)
        );
        let deep = "[".repeat(10_000);
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("whitespace", " \t\r\n".into()),
            ("open brace", "{".into()),
            ("empty array", "[]".into()),
            ("number", "42".into()),
            ("string", "\"cowrie.login.failed\"".into()),
            ("null", "null".into()),
            ("weird unicode", "\u{feff}\u{202e}💥\u{0}\u{fffd}é\u{301}𝕏".into()),
            ("nul bytes", "\0\0\0".into()),
            ("long garbage", long_garbage),
            ("too long", too_long),
            ("deep nesting", deep),
            ("truncated syslog", "Nov 26 21:1".into()),
            ("syslog without message", "Nov 26 21:17:45 bastion-01".into()),
            ("pri only", "<34>".into()),
            ("cef without fields", "CEF:0|".into()),
        ];
        for source in SourceType::ALL {
            for (name, input) in &cases {
                let r = parse_record(source, input, &ctx());
                assert!(r.is_err(), "{source} accepted {name}: {r:?}");
                assert!(!r.unwrap_err().0.is_empty());
            }
        }
    }

    /// The accepted range is [1970-01-01, receipt + 1 day], the same for every format, and a
    /// refusal says why.
    #[test]
    fn record_times_outside_the_accepted_range_are_refused_with_a_reason() {
        use chrono::TimeZone;
        let received = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let c = ParseContext::received_at(received);
        let cowrie = |ts: &str| format!(r#"{{"eventid":"cowrie.session.connect","timestamp":"{ts}"}}"#);
        let sshd = |ts: &str| format!("{ts} h sshd[1]: Received signal 15; terminating.");
        let cef = |rt: &str| format!("CEF:0|A|B|1|x|y|1|rt={rt}");
        let json = |ts: &str| format!(r#"{{"eventid":"x","timestamp":{ts}}}"#);
        let cases: [(SourceType, String, bool); 14] = [
            (SourceType::Cowrie, cowrie("0000-01-01T00:00:00Z"), false),
            (SourceType::Cowrie, cowrie("1969-12-31T23:59:59.999999Z"), false),
            (SourceType::Cowrie, cowrie("1970-01-01T00:00:00Z"), true),
            (SourceType::Cowrie, cowrie("2026-11-28T12:00:00Z"), true),
            (SourceType::Cowrie, cowrie("2026-11-28T12:00:00.000001Z"), false),
            (SourceType::Suricata, cowrie("9999-12-31T23:59:59Z").replace("eventid", "event_type"), false),
            (SourceType::Sshd, sshd("0000-01-01T00:00:00Z"), false),
            (SourceType::Sshd, "Jan 01 0000 00:00:00 h sshd[1]: Received signal 15; terminating.".into(), false),
            (SourceType::Sshd, sshd("2026-11-27T11:00:00Z"), true),
            (SourceType::Cef, cef("253402300800000"), false),
            (SourceType::Cef, cef("0"), true),
            (SourceType::Json, json("-1"), false),
            (SourceType::Json, json("8639977881599"), false),
            (SourceType::Json, json("\"+275759-01-01T00:00:00Z\""), false),
        ];
        for (source, record, ok) in cases {
            let r = parse_record(source, &record, &c);
            assert_eq!(r.is_ok(), ok, "{source} {record}: {r:?}");
            if let Err(e) = r {
                assert!(e.0.contains("timestamp"), "{record}: {e}");
            }
        }
        let e = parse_record(SourceType::Cowrie, &cowrie("2026-11-30T00:00:00Z"), &c).unwrap_err();
        assert_eq!(
            e.0,
            "timestamp out of range: 2026-11-30T00:00:00Z is more than a day after receipt (2026-11-27T12:00:00Z)"
        );
        let e = parse_record(SourceType::Cowrie, &cowrie("0000-01-01T00:00:00Z"), &c).unwrap_err();
        assert_eq!(e.0, "timestamp out of range: 0000-01-01T00:00:00Z is before 1970-01-01T00:00:00Z");
    }

    /// A year-less syslog line from late December read early in January belongs to the year
    /// before, not to next December (which the future bound would refuse).
    #[test]
    fn year_less_times_are_placed_in_the_past() {
        use chrono::TimeZone;
        let c = ParseContext::received_at(Utc.with_ymd_and_hms(2027, 1, 1, 0, 5, 0).unwrap());
        let line = "Dec 31 23:59:58 h sshd[1]: Received signal 15; terminating.";
        let at = |r: Result<SecurityEvent, ParseError>| r.map(|e| e.timestamp.to_rfc3339());
        assert_eq!(at(parse_record(SourceType::Sshd, line, &c)), Ok("2026-12-31T23:59:58+00:00".to_owned()));
        let jan = "Jan  1 00:04:00 h sshd[1]: Received signal 15; terminating.";
        assert_eq!(at(parse_record(SourceType::Sshd, jan, &c)), Ok("2027-01-01T00:04:00+00:00".to_owned()));
        let cef = "CEF:0|A|B|1|x|y|1|rt=Dec 31 23:59:58";
        assert_eq!(at(parse_record(SourceType::Cef, cef, &c)), Ok("2026-12-31T23:59:58+00:00".to_owned()));
    }

    #[test]
    fn error_reasons_are_bounded_in_size() {
        let huge_ip =
            format!(r#"{{"eventid":"x","timestamp":"2026-11-26T21:17:25Z","src_ip":"{}"}}"#, "9".repeat(100_000));
        let e = parse_record(SourceType::Json, &huge_ip, &ctx()).unwrap_err();
        assert!(e.0.contains("src_ip"), "{e}");
        assert!(e.0.len() < 200, "{}", e.0.len());
    }

    /// A tiny deterministic generator (no dev-dependencies allowed): random strings over an
    /// alphabet of delimiters and multi-byte characters that the parsers slice around.
    #[test]
    fn random_inputs_never_panic() {
        const ALPHABET: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            ",",
            "|",
            "\\",
            "=",
            " ",
            "<",
            ">",
            "1",
            "34",
            "-",
            "CEF:",
            "0",
            "Nov",
            "26",
            "21:17:45",
            "2026-11-26T21:17:45Z",
            "sshd[1]:",
            "from",
            "port",
            "127.0.0.1",
            "é",
            "💥",
            "\u{feff}",
            "\n",
            "eventid",
            "timestamp",
            "rt=",
            "src=",
            "\\|",
            "\\=",
            ".",
            "+0000",
            "Failed password for",
            "rhost=",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect();
            for source in SourceType::ALL {
                let _ = parse_record(source, &s, &ctx());
                let _ = split_records(source, &s);
            }
        }
    }
}
