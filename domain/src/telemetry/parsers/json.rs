//! Generic JSON records from producers without a dedicated parser. Owns the field-name
//! conventions: each field is looked up under a few common aliases, first match wins.
//! The event type is taken verbatim; event type and timestamp are mandatory.

use serde_json::Value;

use super::common::{
    opt_ip, opt_nonempty, opt_port, opt_secs, opt_string, parse_json_object, required_str, required_timestamp,
};
use super::ParseContext;
use crate::telemetry::{ParseError, SecurityEvent, SourceType};

/// Parse one generic JSON object.
pub(crate) fn parse(record: &str, ctx: &ParseContext) -> Result<SecurityEvent, ParseError> {
    let value = parse_json_object(record)?;
    let Some(obj) = value.as_object() else {
        return Err(ParseError::new("expected a JSON object"));
    };
    let event_type = required_str(obj, &["eventid", "event_type"])?;
    // Epoch seconds are common in home-grown producers (`time.time()`).
    let timestamp = required_timestamp(obj, &["timestamp", "@timestamp", "time"], true)?;
    let mut ev = SecurityEvent::new(timestamp, SourceType::Json, event_type, Value::Null);
    ev.src_ip = opt_ip(obj, &["src_ip", "source_ip", "ip"])?;
    ev.src_port = opt_port(obj, &["src_port", "source_port"])?;
    ev.dst_ip = opt_ip(obj, &["dst_ip", "dest_ip", "destination_ip"])?;
    ev.dst_port = opt_port(obj, &["dst_port", "dest_port", "destination_port"])?;
    ev.protocol = opt_nonempty(obj, &["protocol", "proto"]);
    ev.username = opt_string(obj, &["username", "user"]);
    ev.password = opt_string(obj, &["password"]);
    ev.command = opt_string(obj, &["command", "input"]);
    ev.url = opt_nonempty(obj, &["url"]);
    ev.file_hash = opt_nonempty(obj, &["file_hash", "sha256", "shasum"]);
    ev.session_id = opt_nonempty(obj, &["session", "session_id"]);
    ev.hostname = ctx.hostname.clone().or_else(|| opt_nonempty(obj, &["hostname", "host", "sensor"]));
    ev.message = opt_nonempty(obj, &["message", "msg"]);
    ev.duration_secs = match opt_secs(obj, "duration_secs")? {
        Some(d) => Some(d),
        None => opt_secs(obj, "duration")?,
    };
    ev.raw = value;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ctx() -> ParseContext {
        crate::telemetry::parsers::test_context()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn full_record() {
        let line = r#"{"eventid":"webapp.login_failed","timestamp":"2026-11-26T21:17:45.5Z",
            "src_ip":"203.0.113.5","src_port":40022,"dst_ip":"10.0.0.5","dst_port":"443",
            "username":"admin","password":"hunter2","command":"id","url":"/login",
            "session":"abc","hostname":"web-1","message":"bad password","protocol":"https",
            "extra":{"nested":[1,2,3]}}"#;
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.event_type, "webapp.login_failed");
        assert_eq!(ev.timestamp.to_rfc3339(), "2026-11-26T21:17:45.500+00:00");
        assert_eq!((ev.src_ip, ev.src_port), (ip("203.0.113.5"), Some(40022)));
        assert_eq!((ev.dst_ip, ev.dst_port), (ip("10.0.0.5"), Some(443)));
        assert_eq!(ev.username.as_deref(), Some("admin"));
        assert_eq!(ev.password.as_deref(), Some("hunter2"));
        assert_eq!(ev.command.as_deref(), Some("id"));
        assert_eq!(ev.url.as_deref(), Some("/login"));
        assert_eq!(ev.session_id.as_deref(), Some("abc"));
        assert_eq!(ev.hostname.as_deref(), Some("web-1"));
        assert_eq!(ev.message.as_deref(), Some("bad password"));
        assert_eq!(ev.protocol.as_deref(), Some("https"));
        assert_eq!(ev.raw["extra"]["nested"][2], 3);
        let ev = parse(line, &ctx().with_hostname("producer")).unwrap();
        assert_eq!(ev.hostname.as_deref(), Some("producer"));
    }

    #[test]
    fn aliases_and_timestamp_variants() {
        let cases = [
            (r#"{"event_type":"a","@timestamp":"2026-11-26T21:17:45+00:00","source_ip":"10.1.1.1"}"#, "a", "10.1.1.1"),
            (r#"{"event_type":"b","time":1795727865,"ip":"10.1.1.2"}"#, "b", "10.1.1.2"),
            (r#"{"eventid":"c","timestamp":1795727865.0,"src_ip":"10.1.1.3","ip":"10.9.9.9"}"#, "c", "10.1.1.3"),
            (
                r#"{"eventid":"d","event_type":"ignored","timestamp":"2026-11-26T21:17:45+0000","ip":"::ffff:10.1.1.4"}"#,
                "d",
                "10.1.1.4",
            ),
            (
                r#"{"eventid":null,"event_type":"e","timestamp":"2026-11-26T21:17:45","src_ip":null,"ip":"10.1.1.5"}"#,
                "e",
                "10.1.1.5",
            ),
        ];
        for (line, event_type, src) in cases {
            let ev = parse(line, &ctx()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(ev.event_type, event_type);
            assert_eq!(ev.src_ip, ip(src), "{line}");
            assert_eq!(ev.timestamp.to_rfc3339(), "2026-11-26T21:17:45+00:00", "{line}");
        }
        // Event type is kept verbatim, not sanitized: it is the producer's vocabulary.
        let ev = parse(r#"{"eventid":"My Event/1","timestamp":0}"#, &ctx()).unwrap();
        assert_eq!(ev.event_type, "My Event/1");
        assert_eq!(ev.src_ip, None);
    }

    #[test]
    fn malformed_records() {
        let cases = [
            ("{", "invalid JSON"),
            ("[{\"eventid\":\"x\",\"timestamp\":0}]", "expected a JSON object, got an array"),
            ("\"x\"", "expected a JSON object, got a string"),
            (r#"{"timestamp":0}"#, "missing field eventid"),
            (r#"{"eventid":"x"}"#, "missing field timestamp"),
            (r#"{"eventid":"x","timestamp":"nope"}"#, "invalid timestamp in field timestamp"),
            (r#"{"eventid":"x","time":true}"#, "invalid timestamp in field time"),
            (r#"{"eventid":"x","timestamp":1e300}"#, "invalid timestamp"),
            (r#"{"eventid":"x","timestamp":0,"source_ip":"1.2.3.4.5"}"#, "field source_ip"),
            (r#"{"eventid":"x","timestamp":0,"ip":"localhost"}"#, "field ip"),
            (r#"{"eventid":"x","timestamp":0,"dst_ip":"::1::"}"#, "field dst_ip"),
            (r#"{"eventid":"x","timestamp":0,"src_port":1.5}"#, "field src_port"),
            (r#"{"eventid":"x","timestamp":0,"duration":"long"}"#, "duration"),
            (r#"{"eventid":["x"],"timestamp":0}"#, "field eventid must be a string"),
        ];
        for (input, reason) in cases {
            let e = parse(input, &ctx()).unwrap_err();
            assert!(e.0.contains(reason), "{input}: got {e:?}, want {reason:?}");
        }
    }
}
