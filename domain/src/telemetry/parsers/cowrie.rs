//! Cowrie honeypot JSON-lines events (`output_jsonlog`). Owns the mapping from Cowrie's
//! field names to [`SecurityEvent`]. Every `cowrie.*` eventid is accepted and kept
//! verbatim as the event type (new Cowrie versions add ids; dropping them would lose data).

use serde_json::{Map, Value};

use super::common::{
    opt_ip, opt_nonempty, opt_port, opt_secs, opt_string, parse_json_object, required_str, required_timestamp, snippet,
};
use super::ParseContext;
use crate::telemetry::{ParseError, SecurityEvent, SourceType};

/// The eventids Cowrie 2.x/3.x emits. Informational: any other `cowrie.*` id is accepted too.
pub const KNOWN_EVENT_IDS: [&str; 22] = [
    "cowrie.session.connect",
    "cowrie.session.closed",
    "cowrie.session.params",
    "cowrie.session.file_download",
    "cowrie.session.file_download.failed",
    "cowrie.session.file_upload",
    "cowrie.login.success",
    "cowrie.login.failed",
    "cowrie.command.input",
    "cowrie.command.failed",
    "cowrie.command.success",
    "cowrie.client.version",
    "cowrie.client.kex",
    "cowrie.client.size",
    "cowrie.client.var",
    "cowrie.client.fingerprint",
    "cowrie.direct-tcpip.request",
    "cowrie.direct-tcpip.data",
    "cowrie.log.open",
    "cowrie.log.closed",
    "cowrie.telnet.option",
    "cowrie.virustotal.scanfile",
];

/// Parse one Cowrie JSON object.
pub(crate) fn parse(record: &str, ctx: &ParseContext) -> Result<SecurityEvent, ParseError> {
    let value = parse_json_object(record)?;
    let Some(obj) = value.as_object() else {
        return Err(ParseError::new("expected a JSON object"));
    };
    let eventid = required_str(obj, &["eventid"])?;
    // The cowrie. prefix is what tells a Cowrie record from another producer's JSON sent
    // to the wrong subject; such records belong in the dead-letter queue.
    if !eventid.starts_with("cowrie.") {
        return Err(ParseError::new(format!("eventid is not a Cowrie event id: {}", snippet(eventid))));
    }
    let timestamp = required_timestamp(obj, &["timestamp"], false)?;
    let mut ev = SecurityEvent::new(timestamp, SourceType::Cowrie, eventid, Value::Null);
    fill(&mut ev, obj, ctx)?;
    ev.raw = value;
    Ok(ev)
}

fn fill(ev: &mut SecurityEvent, obj: &Map<String, Value>, ctx: &ParseContext) -> Result<(), ParseError> {
    ev.src_ip = opt_ip(obj, &["src_ip"])?;
    ev.src_port = opt_port(obj, &["src_port"])?;
    ev.dst_ip = opt_ip(obj, &["dst_ip"])?;
    ev.dst_port = opt_port(obj, &["dst_port"])?;
    ev.protocol = opt_nonempty(obj, &["protocol"]);
    ev.username = opt_string(obj, &["username"]);
    ev.password = opt_string(obj, &["password"]);
    ev.session_id = opt_nonempty(obj, &["session"]);
    ev.hostname = ctx.hostname.clone().or_else(|| opt_nonempty(obj, &["sensor"]));
    // `input` is the attacker's command line. Cowrie's `command` field is something else
    // (the telnet verb in cowrie.telnet.option, e.g. "WONT"), so it is not mapped.
    ev.command = opt_string(obj, &["input"]);
    ev.url = opt_nonempty(obj, &["url"]);
    ev.file_hash = opt_nonempty(obj, &["shasum"]);
    ev.message = message(obj).or_else(|| opt_nonempty(obj, &["destfile"]));
    // Cowrie 2.x wrote `duration` in seconds (float, sometimes a string); 3.x writes
    // integer `duration_ms`.
    ev.duration_secs = match opt_secs(obj, "duration")? {
        Some(secs) => Some(secs),
        None => opt_secs(obj, "duration_ms")?.map(|ms| ms / 1000.0),
    };
    Ok(())
}

/// Older Cowrie versions logged `message` as a list of lines.
fn message(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("message")? {
        Value::Array(parts) => {
            let lines: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            Some(lines.join("\n")).filter(|m| !m.trim().is_empty())
        }
        _ => opt_nonempty(obj, &["message"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::IpAddr;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/cowrie.json");

    fn ctx() -> ParseContext {
        crate::telemetry::parsers::test_context()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn fixture_events() -> Vec<SecurityEvent> {
        FIXTURE
            .lines()
            .enumerate()
            .map(|(i, line)| parse(line, &ctx()).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)))
            .collect()
    }

    /// The per-eventid × src_ip table of the fixture README (zeros omitted).
    const README_TABLE: &[(&str, &str, usize)] = &[
        ("cowrie.login.failed", "127.0.0.2", 40),
        ("cowrie.login.failed", "127.0.0.3", 8),
        ("cowrie.login.failed", "127.0.0.4", 1),
        ("cowrie.login.failed", "127.0.0.8", 2),
        ("cowrie.session.connect", "127.0.0.2", 15),
        ("cowrie.session.connect", "127.0.0.3", 9),
        ("cowrie.session.connect", "127.0.0.4", 1),
        ("cowrie.session.connect", "127.0.0.5", 20),
        ("cowrie.session.connect", "127.0.0.8", 1),
        ("cowrie.session.closed", "127.0.0.2", 15),
        ("cowrie.session.closed", "127.0.0.3", 9),
        ("cowrie.session.closed", "127.0.0.4", 1),
        ("cowrie.session.closed", "127.0.0.5", 20),
        ("cowrie.session.closed", "127.0.0.8", 1),
        ("cowrie.client.version", "127.0.0.2", 15),
        ("cowrie.client.version", "127.0.0.3", 9),
        ("cowrie.client.version", "127.0.0.4", 1),
        ("cowrie.client.version", "127.0.0.5", 4),
        ("cowrie.client.kex", "127.0.0.2", 15),
        ("cowrie.client.kex", "127.0.0.3", 9),
        ("cowrie.client.kex", "127.0.0.4", 1),
        ("cowrie.client.kex", "127.0.0.5", 2),
        ("cowrie.command.input", "127.0.0.3", 7),
        ("cowrie.command.input", "127.0.0.4", 3),
        ("cowrie.command.input", "127.0.0.8", 6),
        ("cowrie.command.failed", "127.0.0.3", 1),
        ("cowrie.command.failed", "127.0.0.8", 3),
        ("cowrie.login.success", "127.0.0.3", 1),
        ("cowrie.login.success", "127.0.0.4", 1),
        ("cowrie.login.success", "127.0.0.8", 1),
        ("cowrie.session.params", "127.0.0.3", 1),
        ("cowrie.session.params", "127.0.0.4", 1),
        ("cowrie.session.params", "127.0.0.8", 1),
        ("cowrie.log.closed", "127.0.0.3", 1),
        ("cowrie.log.closed", "127.0.0.4", 1),
        ("cowrie.log.closed", "127.0.0.8", 1),
        ("cowrie.telnet.option", "127.0.0.8", 3),
        ("cowrie.client.size", "127.0.0.3", 1),
        ("cowrie.client.size", "127.0.0.4", 1),
        ("cowrie.session.file_download", "127.0.0.3", 1),
    ];

    #[test]
    fn fixture_matches_readme_table() {
        let events = fixture_events();
        assert_eq!(events.len(), 234);

        let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
        for ev in &events {
            let src = ev.src_ip.map(|i| i.to_string()).unwrap_or_default();
            *got.entry((ev.event_type.clone(), src)).or_default() += 1;
        }
        let want: BTreeMap<(String, String), usize> =
            README_TABLE.iter().map(|(e, i, n)| ((e.to_string(), i.to_string()), *n)).collect();
        assert_eq!(got, want);

        let total = |id: &str| events.iter().filter(|e| e.event_type == id).count();
        assert_eq!(total("cowrie.login.failed"), 51);
        assert_eq!(total("cowrie.session.connect"), 46);
        assert!(events.iter().all(|e| KNOWN_EVENT_IDS.contains(&e.event_type.as_str())));
    }

    #[test]
    fn fixture_events_and_sessions_per_source_ip() {
        let events = fixture_events();
        let mut per_ip: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
        for ev in &events {
            let entry = per_ip.entry(ev.src_ip.map(|i| i.to_string()).unwrap_or_default()).or_default();
            entry.0 += 1;
            entry.1.insert(ev.session_id.clone().expect("every cowrie event has a session"));
        }
        let summary: Vec<(&str, usize, usize)> = per_ip.iter().map(|(ip, (n, s))| (ip.as_str(), *n, s.len())).collect();
        assert_eq!(
            summary,
            vec![
                ("127.0.0.2", 100, 15),
                ("127.0.0.3", 57, 9),
                ("127.0.0.4", 12, 1),
                ("127.0.0.5", 46, 20),
                ("127.0.0.8", 19, 1),
            ]
        );
        let sessions: BTreeSet<_> = events.iter().filter_map(|e| e.session_id.clone()).collect();
        assert_eq!(sessions.len(), 46);
    }

    #[test]
    fn fixture_fields_are_mapped() {
        let events = fixture_events();
        let first = &events[0];
        assert_eq!(first.timestamp.to_rfc3339(), "2026-11-26T21:17:25.529043+00:00");
        assert_eq!(first.dst_ip, ip("127.0.0.1"));
        assert_eq!(first.dst_port, Some(2223));
        assert_eq!(first.protocol.as_deref(), Some("telnet"));
        assert_eq!(first.hostname.as_deref(), Some("cowrie-sensor-01"));
        assert_eq!(
            events.last().map(|e| e.timestamp.to_rfc3339()),
            Some("2026-11-26T21:20:32.768177+00:00".to_owned())
        );
        // raw is the record itself, key for key.
        let raw_line: Value = serde_json::from_str(FIXTURE.lines().next().unwrap()).unwrap();
        assert_eq!(first.raw, raw_line);

        // The compromise of B: success, then the dropper commands in order.
        let success: Vec<_> = events
            .iter()
            .filter(|e| e.event_type == "cowrie.login.success")
            .map(|e| (e.src_ip, e.username.as_deref(), e.password.as_deref()))
            .collect();
        assert!(success.contains(&(ip("127.0.0.3"), Some("root"), Some("1qaz@WSX"))));
        assert!(success.contains(&(ip("127.0.0.4"), Some("deploy"), Some("Tr4in-Sched#2026"))));
        assert!(success.contains(&(ip("127.0.0.8"), Some("root"), Some("xc3511"))));
        let commands: Vec<_> = events
            .iter()
            .filter(|e| e.event_type == "cowrie.command.input")
            .filter(|e| e.session_id.as_deref() == Some("d8a6bcfca0fb"))
            .filter_map(|e| e.command.as_deref())
            .collect();
        assert_eq!(commands, ["ls", "pwd", "exit"]);

        let dl = events.iter().find(|e| e.event_type == "cowrie.session.file_download").expect("one file_download");
        assert_eq!(dl.file_hash.as_deref(), Some("04dcb40678790337b58e892ac21f274d5ec78e7bf4b7609137a8fcac1b62c633"));
        assert_eq!(dl.raw["destfile"], "/root/.ssh/authorized_keys");

        // Telnet option negotiation has a `command` field that is not a shell command.
        let opt = events.iter().find(|e| e.event_type == "cowrie.telnet.option").expect("telnet option");
        assert_eq!(opt.command, None);

        // Every session.closed in Cowrie 3.x carries duration_ms.
        assert!(events.iter().filter(|e| e.event_type == "cowrie.session.closed").all(|e| e.duration_secs.is_some()));
        // Empty messages (session.params) are absent, not "".
        assert!(events.iter().all(|e| e.message.as_deref() != Some("")));
    }

    fn closed(duration: &str) -> Result<SecurityEvent, ParseError> {
        parse(
            &format!(
                r#"{{"eventid":"cowrie.session.closed","timestamp":"2026-11-26T21:17:25.529917Z","session":"s1",{duration}}}"#
            ),
            &ctx(),
        )
    }

    #[test]
    fn session_closed_duration_shapes() {
        assert_eq!(closed(r#""duration":12.3"#).unwrap().duration_secs, Some(12.3));
        assert_eq!(closed(r#""duration":"12.3""#).unwrap().duration_secs, Some(12.3));
        assert_eq!(closed(r#""duration":7"#).unwrap().duration_secs, Some(7.0));
        assert_eq!(closed(r#""duration_ms":1500"#).unwrap().duration_secs, Some(1.5));
        assert_eq!(closed(r#""duration":null"#).unwrap().duration_secs, None);
        for bad in [r#""duration":"soon""#, r#""duration":-1"#, r#""duration":"NaN""#, r#""duration_ms":[1]"#] {
            let e = closed(bad).unwrap_err();
            assert!(e.0.contains("duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_eventid_is_accepted_verbatim() {
        for id in KNOWN_EVENT_IDS.iter().chain(&["cowrie.future.thing"]) {
            let line = format!(r#"{{"eventid":"{id}","timestamp":"2026-11-26T21:17:25Z"}}"#);
            assert_eq!(parse(&line, &ctx()).map(|e| e.event_type).as_deref(), Ok(*id));
        }
    }

    #[test]
    fn optional_fields_and_overrides() {
        let line = r#"{"eventid":"cowrie.session.file_download","timestamp":"2026-11-26T21:17:25Z",
            "src_ip":"::ffff:203.0.113.9","src_port":"4242","url":"http://198.51.100.7/bot.sh",
            "shasum":"abc","destfile":"/tmp/bot.sh","sensor":"s1","message":["a","b"]}"#;
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.src_ip, ip("203.0.113.9"));
        assert_eq!(ev.src_port, Some(4242));
        assert_eq!(ev.url.as_deref(), Some("http://198.51.100.7/bot.sh"));
        assert_eq!(ev.message.as_deref(), Some("a\nb"));
        let ev = parse(line, &ctx().with_hostname("edge-7")).unwrap();
        assert_eq!(ev.hostname.as_deref(), Some("edge-7"));

        let no_msg =
            r#"{"eventid":"cowrie.session.file_download","timestamp":"2026-11-26T21:17:25Z","destfile":"/tmp/x"}"#;
        assert_eq!(parse(no_msg, &ctx()).unwrap().message.as_deref(), Some("/tmp/x"));
        // An empty password is an observation, not an absence.
        let empty_pw =
            r#"{"eventid":"cowrie.login.failed","timestamp":"2026-11-26T21:17:25Z","username":"root","password":""}"#;
        assert_eq!(parse(empty_pw, &ctx()).unwrap().password.as_deref(), Some(""));
    }

    #[test]
    fn malformed_records_name_the_problem() {
        let ts = r#""timestamp":"2026-11-26T21:17:25Z""#;
        let cases = [
            ("", "invalid JSON"),
            ("{", "invalid JSON"),
            ("[]", "expected a JSON object"),
            ("42", "expected a JSON object"),
            ("{\"eventid\":\"cowrie.login.failed\"} trailing", "invalid JSON"),
            (&format!("{{{ts}}}") as &str, "missing field eventid"),
            (r#"{"eventid":"cowrie.login.failed"}"#, "missing field timestamp"),
            (&format!(r#"{{"eventid":7,{ts}}}"#), "field eventid must be a string"),
            (&format!(r#"{{"eventid":"",{ts}}}"#), "empty field eventid"),
            (&format!(r#"{{"eventid":"sshd.failed",{ts}}}"#), "not a Cowrie event id"),
            (r#"{"eventid":"cowrie.x","timestamp":"yesterday"}"#, "invalid timestamp"),
            (r#"{"eventid":"cowrie.x","timestamp":1764191845}"#, "invalid timestamp"),
            (&format!(r#"{{"eventid":"cowrie.x",{ts},"src_ip":"127.0.0.256"}}"#), "src_ip"),
            (&format!(r#"{{"eventid":"cowrie.x",{ts},"dst_ip":42}}"#), "dst_ip"),
            (&format!(r#"{{"eventid":"cowrie.x",{ts},"src_port":70000}}"#), "src_port"),
            (&format!(r#"{{"eventid":"cowrie.x",{ts},"dst_port":-1}}"#), "dst_port"),
        ];
        for (input, reason) in cases {
            let e = parse(input, &ctx()).unwrap_err();
            assert!(e.0.contains(reason), "{input:?}: got {e:?}, want {reason:?}");
        }
    }

    #[test]
    fn truncations_of_real_lines_never_panic() {
        for line in FIXTURE.lines().take(40) {
            for (i, _) in line.char_indices().step_by(3) {
                let _ = parse(&line[..i], &ctx());
            }
        }
    }
}
