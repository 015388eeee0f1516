//! OpenSSH `sshd` log lines as written through syslog (RFC 3164 `/var/log/auth.log`,
//! rsyslog's RFC 3339 file format, RFC 5424) or by `sshd -E` with a timestamp prefix.
//! Owns the classification of sshd messages into stable `sshd.*` event types and the
//! [`SshdPidTracker`] that attributes address-less lines to a source IP via the sshd PID.
//!
//! Lines from other programs keep their header fields as `syslog.other`; unrecognised
//! sshd messages are kept as `sshd.other` (with any `IP port N` found in them).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde_json::Value;

use super::common::{parse_ip, parse_port, strip_eol};
use super::{syslog, ParseContext};
use crate::telemetry::{ParseError, SecurityEvent, SourceType};

pub const FAILED_PASSWORD: &str = "sshd.failed_password";
pub const INVALID_USER: &str = "sshd.invalid_user";
pub const ACCEPTED: &str = "sshd.accepted";
pub const CONNECTION_CLOSED: &str = "sshd.connection_closed";
pub const DISCONNECTED: &str = "sshd.disconnected";
pub const RECEIVED_DISCONNECT: &str = "sshd.received_disconnect";
pub const BANNER_INVALID: &str = "sshd.banner_invalid";
pub const PAM_AUTH_FAILURE: &str = "sshd.pam_auth_failure";
pub const PAM_USER_UNKNOWN: &str = "sshd.pam_user_unknown";
pub const PAM_MORE_FAILURES: &str = "sshd.pam_more_failures";
pub const SERVER_LISTENING: &str = "sshd.server_listening";
pub const TERMINATING: &str = "sshd.terminating";
pub const OTHER: &str = "sshd.other";
/// A syslog line from a program other than sshd.
pub const SYSLOG_OTHER: &str = "syslog.other";

/// Parse one syslog/sshd line.
pub(crate) fn parse(record: &str, ctx: &ParseContext) -> Result<SecurityEvent, ParseError> {
    let line = strip_eol(record);
    let header = syslog::parse(line, ctx)?;
    let raw = Value::String(line.to_owned());
    let mut ev = SecurityEvent::new(header.timestamp, SourceType::Sshd, SYSLOG_OTHER, raw);

    let (is_sshd, hostname, message) = match header.app {
        Some(app) => (is_sshd_program(app), header.hostname, header.message),
        // No program tag, but an unmistakable sshd message (RFC 5424 with a nil APP-NAME,
        // or a relay that drops the tag).
        None if is_known_message(header.message) => (true, header.hostname, header.message),
        // A timestamp followed straight by an sshd message (`sshd -E` output with a
        // timestamp prefix): what the header parser took for a hostname is the message's
        // first word. Only recognised sshd messages are read that way.
        None if is_known_message(header.after_timestamp) => (true, None, header.after_timestamp),
        None => (false, header.hostname, header.message),
    };
    let message = message.trim();
    if message.is_empty() {
        return Err(ParseError::new("truncated syslog line: empty message"));
    }
    ev.hostname = ctx.hostname.clone().or_else(|| hostname.map(str::to_owned));
    ev.message = Some(message.to_owned());
    if !is_sshd {
        return Ok(ev);
    }

    ev.protocol = Some("ssh".to_owned());
    // The PID ties together the lines of one connection; see SshdPidTracker.
    ev.session_id = header.pid.map(|pid| format!("sshd-{pid}"));
    let c = classify(message)?;
    ev.event_type = c.event_type.to_owned();
    ev.src_ip = c.src_ip;
    ev.src_port = c.src_port;
    ev.dst_ip = c.dst_ip;
    ev.dst_port = c.dst_port;
    ev.username = c.username;
    Ok(ev)
}

/// OpenSSH 9.8+ logs per-connection work as `sshd-session` (and `sshd-auth`).
fn is_sshd_program(app: &str) -> bool {
    let name = app.rsplit('/').next().unwrap_or(app);
    matches!(name, "sshd" | "sshd-session" | "sshd-auth")
}

fn is_known_message(msg: &str) -> bool {
    matches!(classify(msg.trim()), Ok(c) if c.event_type != OTHER)
}

/// A source address and, when the message names one, its port.
type Source = (IpAddr, Option<u16>);

/// What a message says, independent of the header.
#[derive(Debug, Default, PartialEq)]
struct Classified {
    event_type: &'static str,
    src_ip: Option<IpAddr>,
    src_port: Option<u16>,
    dst_ip: Option<IpAddr>,
    dst_port: Option<u16>,
    username: Option<String>,
}

impl Classified {
    fn new(event_type: &'static str) -> Self {
        Classified { event_type, ..Classified::default() }
    }

    fn with_user(mut self, user: &str) -> Self {
        // sshd logs an empty username as "Invalid user  from ..."; that is no username.
        self.username = Some(user.to_owned()).filter(|u| !u.is_empty());
        self
    }

    fn with_source(mut self, (ip, port): Source) -> Self {
        self.src_ip = Some(ip);
        self.src_port = port;
        self
    }
}

/// Map a message to its event type and fields. A message that has the shape of a known
/// form but an unparseable address is an error; a message of unknown shape is `sshd.other`.
fn classify(msg: &str) -> Result<Classified, ParseError> {
    if let Some(rest) = msg.strip_prefix("Failed password for ") {
        let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
        if let Some((user, src)) = user_from_addr(rest)? {
            return Ok(Classified::new(FAILED_PASSWORD).with_user(user).with_source(src));
        }
    }
    if let Some(rest) = msg.strip_prefix("Invalid user ") {
        if let Some((user, src)) = user_from_addr(rest)? {
            return Ok(Classified::new(INVALID_USER).with_user(user).with_source(src));
        }
    }
    if let Some(rest) = msg.strip_prefix("Accepted ") {
        // "Accepted <method> for <user> from <ip> port <n> ssh2[: <key>]"
        if let Some((_method, rest)) = rest.split_once(" for ") {
            if let Some((user, src)) = user_from_addr(rest)? {
                return Ok(Classified::new(ACCEPTED).with_user(user).with_source(src));
            }
        }
    }
    if let Some(rest) = msg.strip_prefix("Connection closed by ") {
        return closing(CONNECTION_CLOSED, rest);
    }
    if let Some(rest) = msg.strip_prefix("Disconnected from ") {
        return closing(DISCONNECTED, rest);
    }
    if let Some(rest) = msg.strip_prefix("Received disconnect from ") {
        return Ok(Classified::new(RECEIVED_DISCONNECT).with_source(addr_port(rest)?));
    }
    if let Some(rest) = msg.strip_prefix("banner exchange: Connection from ") {
        let kind = if msg.ends_with("invalid format") { BANNER_INVALID } else { OTHER };
        return Ok(Classified::new(kind).with_source(addr_port(rest)?));
    }
    if msg.starts_with("pam_unix(") {
        if let Some((_, rest)) = msg.split_once("): authentication failure;") {
            return Ok(pam_fields(Classified::new(PAM_AUTH_FAILURE), rest));
        }
        if msg.ends_with("): check pass; user unknown") {
            return Ok(Classified::new(PAM_USER_UNKNOWN));
        }
    }
    // "PAM 2 more authentication failures;" and the singular "PAM 1 more ... failure;".
    if let Some(rest) = msg.strip_prefix("PAM ") {
        let (count, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) {
            if let Some((_, kv)) = rest.split_once(';') {
                if rest.starts_with("more authentication failure") {
                    return Ok(pam_fields(Classified::new(PAM_MORE_FAILURES), kv));
                }
            }
        }
    }
    if let Some(rest) = msg.strip_prefix("Server listening on ") {
        // The listening address is the server's: a destination, not a source.
        let (ip, port) = addr_port(rest.trim_end_matches('.'))?;
        let mut c = Classified::new(SERVER_LISTENING);
        c.dst_ip = Some(ip);
        c.dst_port = port;
        return Ok(c);
    }
    if msg.starts_with("Received signal ") && msg.ends_with("; terminating.") {
        return Ok(Classified::new(TERMINATING));
    }
    Ok(other(msg))
}

/// `<user> from <ip> port <n>...`, splitting at the last ` from ` followed by an address,
/// so usernames containing " from " still parse. `None` if there is no ` from ` at all.
fn user_from_addr(s: &str) -> Result<Option<(&str, Source)>, ParseError> {
    let mut first_err = None;
    for (i, sep) in s.rmatch_indices(" from ") {
        let user = s.get(..i).unwrap_or("");
        match addr_port(s.get(i + sep.len()..).unwrap_or("")) {
            Ok(src) => return Ok(Some((user, src))),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(None), Err)
}

/// `<ip>[ port <n>][<anything>]`: the port ends at the first non-digit (`: invalid
/// format`, `:11: Bye`, ` ssh2`, `.`).
fn addr_port(s: &str) -> Result<Source, ParseError> {
    let (ip, rest) = s.split_once(' ').unwrap_or((s, ""));
    let ip = parse_ip("sshd message", ip)?;
    let port = match rest.strip_prefix("port ") {
        Some(p) => {
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            Some(parse_port("sshd message", p.get(..end).unwrap_or(""))?)
        }
        None => None,
    };
    Ok((ip, port))
}

/// `Connection closed by` / `Disconnected from`, each optionally naming the user:
/// `[authenticating user|invalid user|user] <user> <ip> port <n> [preauth]`.
fn closing(event_type: &'static str, rest: &str) -> Result<Classified, ParseError> {
    let rest = rest.trim_end();
    let rest = rest.strip_suffix("[preauth]").unwrap_or(rest).trim_end();
    let user_prefix = ["authenticating user ", "invalid user ", "user "].iter().find_map(|p| rest.strip_prefix(p));
    let Some(with_user) = user_prefix else {
        return Ok(Classified::new(event_type).with_source(addr_port(rest)?));
    };
    // The username may contain spaces; the address is the word before the last " port ".
    let (before_port, port) = match with_user.rsplit_once(" port ") {
        Some((b, p)) => (b, Some(p)),
        None => (with_user, None),
    };
    let (user, ip) = before_port.rsplit_once(' ').unwrap_or(("", before_port));
    let ip = parse_ip("sshd message", ip)?;
    let port = port.map(|p| parse_port("sshd message", p)).transpose()?;
    Ok(Classified::new(event_type).with_user(user).with_source((ip, port)))
}

/// pam_unix's `key=value` list: `logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=x`.
/// `rhost` is a hostname rather than an address when sshd runs with `UseDNS yes`; that is
/// not an error, the line just carries no address.
fn pam_fields(mut c: Classified, kv: &str) -> Classified {
    for (k, v) in kv.split_whitespace().filter_map(|t| t.split_once('=')) {
        match k {
            "rhost" => c.src_ip = parse_ip("rhost", v).ok(),
            "user" if !v.is_empty() => c.username = Some(v.to_owned()),
            _ => {}
        }
    }
    c
}

/// Unknown sshd messages still carry useful addresses (`Connection reset by IP port N`,
/// `Unable to negotiate with IP port N`, `maximum authentication attempts exceeded for
/// root from IP port N`): take the first `<ip> port <n>` pair, leniently.
fn other(msg: &str) -> Classified {
    let mut c = Classified::new(OTHER);
    for (i, _) in msg.match_indices(" port ") {
        let before = msg.get(..i).unwrap_or("");
        let word = before.rsplit(' ').next().unwrap_or(before);
        let Ok(ip) = word.parse::<IpAddr>() else {
            continue;
        };
        c.src_ip = Some(ip.to_canonical());
        c.src_port = addr_port(msg.get(i - word.len()..).unwrap_or("")).ok().and_then(|(_, p)| p);
        break;
    }
    c
}

/// Attributes sshd lines that carry no source address (pam_unix lines like `check pass;
/// user unknown`) to the source ip seen earlier on the same sshd PID in the same stream of
/// lines. Pure: the caller owns it per file/stream.
///
/// Keys are (hostname, PID) so one stream may interleave hosts. A later address on the same
/// PID replaces the earlier one (PIDs are reused). Memory is bounded: past
/// [`SshdPidTracker::MAX_TRACKED`] PIDs the oldest is forgotten.
#[derive(Debug, Clone, Default)]
pub struct SshdPidTracker {
    ips: HashMap<(Option<String>, String), IpAddr>,
    order: VecDeque<(Option<String>, String)>,
}

impl SshdPidTracker {
    /// More live connections than any single sshd handles (MaxStartups defaults to 100).
    pub const MAX_TRACKED: usize = 65_536;

    pub fn new() -> Self {
        Self::default()
    }

    /// Fill `ev.src_ip` from the PID's earlier address when absent; remember it when present.
    /// Events that are not sshd lines with a PID are left alone.
    pub fn attribute(&mut self, ev: &mut SecurityEvent) {
        if ev.source_type != SourceType::Sshd {
            return;
        }
        let Some(pid) = ev.session_id.as_ref().filter(|s| s.starts_with("sshd-")) else {
            return;
        };
        let key = (ev.hostname.clone(), pid.clone());
        match ev.src_ip {
            Some(ip) => {
                if self.ips.insert(key.clone(), ip).is_none() {
                    self.order.push_back(key);
                    if self.order.len() > Self::MAX_TRACKED {
                        if let Some(old) = self.order.pop_front() {
                            self.ips.remove(&old);
                        }
                    }
                }
            }
            None => ev.src_ip = self.ips.get(&key).copied(),
        }
    }

    /// Number of PIDs currently remembered.
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};
    use std::collections::BTreeMap;

    const TRADITIONAL: &str = include_str!("../../../tests/fixtures/sshd-auth.log");
    const RFC3339: &str = include_str!("../../../tests/fixtures/sshd-auth-rfc3339.log");

    fn ctx() -> ParseContext {
        crate::telemetry::parsers::test_context()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn parse_all(text: &str, ctx: &ParseContext) -> Vec<SecurityEvent> {
        text.lines()
            .enumerate()
            .map(|(i, l)| parse(l, ctx).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1)))
            .collect()
    }

    fn attributed(text: &str) -> Vec<SecurityEvent> {
        let mut tracker = SshdPidTracker::new();
        let mut events = parse_all(text, &ctx());
        for ev in &mut events {
            tracker.attribute(ev);
        }
        events
    }

    fn count_by_ip(events: &[SecurityEvent], event_type: Option<&str>) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for ev in events {
            if event_type.is_some_and(|t| t != ev.event_type) {
                continue;
            }
            let k = ev.src_ip.map_or_else(|| "(none)".to_owned(), |i| i.to_string());
            *out.entry(k).or_default() += 1;
        }
        out
    }

    fn map(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn every_fixture_line_parses() {
        for text in [TRADITIONAL, RFC3339] {
            let events = parse_all(text, &ctx());
            assert_eq!(events.len(), 56);
            assert!(events.iter().all(|e| e.event_type != OTHER && e.event_type != SYSLOG_OTHER));
            assert!(events.iter().all(|e| e.hostname.as_deref() == Some("bastion-01")));
            assert!(events.iter().all(|e| e.protocol.as_deref() == Some("ssh")));
        }
    }

    #[test]
    fn failed_passwords_per_ip_match_readme() {
        for text in [TRADITIONAL, RFC3339] {
            let events = parse_all(text, &ctx());
            assert_eq!(count_by_ip(&events, Some(FAILED_PASSWORD)), map(&[("127.0.0.6", 15), ("127.0.0.7", 4)]));
            // Usernames in the order the clients typed them (README credential lists).
            let users: Vec<_> = events
                .iter()
                .filter(|e| e.event_type == FAILED_PASSWORD)
                .filter_map(|e| e.username.as_deref())
                .collect();
            let mut want = Vec::new();
            for u in ["admin", "root", "oracle", "backup", "www-data"] {
                want.extend([u; 3]);
            }
            want.extend(["ubuntu", "root", "daemon", "git"]);
            assert_eq!(users, want);
        }
    }

    /// The README's line-type × IP table, after PID attribution.
    #[test]
    fn pid_attribution_matches_readme_table() {
        for text in [TRADITIONAL, RFC3339] {
            let before = parse_all(text, &ctx());
            assert_eq!(
                count_by_ip(&before, Some(PAM_USER_UNKNOWN)),
                map(&[("(none)", 8)]),
                "check pass lines carry no address themselves"
            );
            let events = attributed(text);
            assert_eq!(count_by_ip(&events, None), map(&[("127.0.0.6", 38), ("127.0.0.7", 16), ("(none)", 2)]));
            let table = [
                (INVALID_USER, &[("127.0.0.6", 2), ("127.0.0.7", 2)][..]),
                (PAM_USER_UNKNOWN, &[("127.0.0.6", 6), ("127.0.0.7", 2)]),
                (PAM_AUTH_FAILURE, &[("127.0.0.6", 5), ("127.0.0.7", 4)]),
                (PAM_MORE_FAILURES, &[("127.0.0.6", 5)]),
                (CONNECTION_CLOSED, &[("127.0.0.6", 5), ("127.0.0.7", 4)]),
                (SERVER_LISTENING, &[("(none)", 1)]),
                (TERMINATING, &[("(none)", 1)]),
            ];
            for (event_type, want) in table {
                assert_eq!(count_by_ip(&events, Some(event_type)), map(want), "{event_type}");
            }
            // failed_password_invalid_user (6 + 2) vs existing users (9 + 2).
            let invalid = events
                .iter()
                .filter(|e| e.event_type == FAILED_PASSWORD)
                .filter(|e| e.message.as_deref().is_some_and(|m| m.contains("invalid user")))
                .count();
            assert_eq!(invalid, 8);
        }
    }

    #[test]
    fn both_fixture_files_say_the_same_thing() {
        let trad = attributed(TRADITIONAL);
        let rfc = attributed(RFC3339);
        let key = |e: &SecurityEvent| (e.event_type.clone(), e.src_ip, e.username.clone(), e.session_id.clone());
        assert_eq!(trad.iter().map(key).collect::<Vec<_>>(), rfc.iter().map(key).collect::<Vec<_>>());
        for (t, r) in trad.iter().zip(&rfc) {
            // Same instant, but only the RFC 3339 file has sub-second precision.
            assert_eq!(t.timestamp.year(), 2026);
            assert_eq!(t.timestamp.nanosecond(), 0);
            assert_eq!(t.timestamp, r.timestamp.with_nanosecond(0).unwrap());
        }
        assert!(rfc.iter().all(|e| e.timestamp.nanosecond() != 0));
        assert_eq!(rfc[0].timestamp.to_rfc3339(), "2026-11-26T21:17:22.763456+00:00");
        // The year comes from the context for the traditional format only.
        let other_year = parse_all(TRADITIONAL, &crate::telemetry::parsers::context_in_year(2031));
        assert!(other_year.iter().all(|e| e.timestamp.year() == 2031));
        let rfc_other = parse_all(RFC3339, &crate::telemetry::parsers::context_in_year(2031));
        assert!(rfc_other.iter().all(|e| e.timestamp.year() == 2026));
    }

    #[test]
    fn raw_is_the_line_and_hostname_can_be_overridden() {
        let line = TRADITIONAL.lines().nth(3).unwrap();
        let ev = parse(&format!("{line}\r\n"), &ctx().with_hostname("from-producer")).unwrap();
        assert_eq!(ev.raw, Value::String(line.to_owned()));
        assert_eq!(ev.hostname.as_deref(), Some("from-producer"));
        assert_eq!(ev.session_id.as_deref(), Some("sshd-19620"));
    }

    struct Case {
        msg: &'static str,
        event_type: &'static str,
        ip: Option<&'static str>,
        port: Option<u16>,
        user: Option<&'static str>,
    }

    const fn case(
        msg: &'static str,
        event_type: &'static str,
        ip: Option<&'static str>,
        port: Option<u16>,
        user: Option<&'static str>,
    ) -> Case {
        Case { msg, event_type, ip, port, user }
    }

    /// One hand-written line for every message form, plus the variants sshd really emits.
    const MESSAGES: &[Case] = &[
        case("Failed password for root from 203.0.113.5 port 40022 ssh2", FAILED_PASSWORD, Some("203.0.113.5"), Some(40022), Some("root")),
        case("Failed password for invalid user admin from 203.0.113.5 port 40022 ssh2", FAILED_PASSWORD, Some("203.0.113.5"), Some(40022), Some("admin")),
        case("Failed password for invalid user a from b from 2001:db8::7 port 1 ssh2", FAILED_PASSWORD, Some("2001:db8::7"), Some(1), Some("a from b")),
        case("Failed password for invalid user  from 203.0.113.5 port 2 ssh2", FAILED_PASSWORD, Some("203.0.113.5"), Some(2), None),
        case("Invalid user oracle from 203.0.113.5 port 59897", INVALID_USER, Some("203.0.113.5"), Some(59897), Some("oracle")),
        case("Invalid user oracle from 203.0.113.5", INVALID_USER, Some("203.0.113.5"), None, Some("oracle")),
        case("Accepted password for deploy from 198.51.100.4 port 5050 ssh2", ACCEPTED, Some("198.51.100.4"), Some(5050), Some("deploy")),
        case("Accepted publickey for git from 198.51.100.4 port 5050 ssh2: ED25519 SHA256:abc/def+g", ACCEPTED, Some("198.51.100.4"), Some(5050), Some("git")),
        case("Accepted keyboard-interactive/pam for bob from ::1 port 7 ssh2", ACCEPTED, Some("::1"), Some(7), Some("bob")),
        case("Connection closed by authenticating user root 203.0.113.5 port 34661 [preauth]", CONNECTION_CLOSED, Some("203.0.113.5"), Some(34661), Some("root")),
        case("Connection closed by invalid user admin 203.0.113.5 port 37823 [preauth]", CONNECTION_CLOSED, Some("203.0.113.5"), Some(37823), Some("admin")),
        case("Connection closed by 203.0.113.5 port 37823 [preauth]", CONNECTION_CLOSED, Some("203.0.113.5"), Some(37823), None),
        case("Connection closed by 203.0.113.5 port 37823", CONNECTION_CLOSED, Some("203.0.113.5"), Some(37823), None),
        case("Disconnected from user deploy 198.51.100.4 port 5050", DISCONNECTED, Some("198.51.100.4"), Some(5050), Some("deploy")),
        case("Disconnected from invalid user x 198.51.100.4 port 5050 [preauth]", DISCONNECTED, Some("198.51.100.4"), Some(5050), Some("x")),
        case("Disconnected from 198.51.100.4 port 5050", DISCONNECTED, Some("198.51.100.4"), Some(5050), None),
        case("Received disconnect from 198.51.100.4 port 5050:11: disconnected by user", RECEIVED_DISCONNECT, Some("198.51.100.4"), Some(5050), None),
        case("Received disconnect from 198.51.100.4 port 5050:11: Bye Bye [preauth]", RECEIVED_DISCONNECT, Some("198.51.100.4"), Some(5050), None),
        case("banner exchange: Connection from 203.0.113.9 port 61000: invalid format", BANNER_INVALID, Some("203.0.113.9"), Some(61000), None),
        case("banner exchange: Connection from 203.0.113.9 port 61000: could not read protocol version", OTHER, Some("203.0.113.9"), Some(61000), None),
        case("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root", PAM_AUTH_FAILURE, Some("203.0.113.5"), None, Some("root")),
        case("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5 ", PAM_AUTH_FAILURE, Some("203.0.113.5"), None, None),
        case("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=scanner.example.net", PAM_AUTH_FAILURE, None, None, None),
        case("pam_unix(sshd:auth): check pass; user unknown", PAM_USER_UNKNOWN, None, None, None),
        case("PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root", PAM_MORE_FAILURES, Some("203.0.113.5"), None, Some("root")),
        case("PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5", PAM_MORE_FAILURES, Some("203.0.113.5"), None, None),
        case("Server listening on 127.0.0.1 port 2022.", SERVER_LISTENING, None, None, None),
        case("Server listening on :: port 22.", SERVER_LISTENING, None, None, None),
        case("Received signal 15; terminating.", TERMINATING, None, None, None),
        case("pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)", OTHER, None, None, None),
        case("error: maximum authentication attempts exceeded for root from 203.0.113.5 port 22 ssh2 [preauth]", OTHER, Some("203.0.113.5"), Some(22), None),
        case("Unable to negotiate with 203.0.113.5 port 4444: no matching key exchange method found.", OTHER, Some("203.0.113.5"), Some(4444), None),
        case("Failed password for root", OTHER, None, None, None),
    ];

    #[test]
    fn every_message_form() {
        for c in MESSAGES {
            let line = format!("Nov 26 21:17:45 bastion-01 sshd[4242]: {}", c.msg);
            let ev = parse(&line, &ctx()).unwrap_or_else(|e| panic!("{}: {e}", c.msg));
            assert_eq!(ev.event_type, c.event_type, "{}", c.msg);
            assert_eq!(ev.src_ip, c.ip.and_then(ip), "{}", c.msg);
            assert_eq!(ev.src_port, c.port, "{}", c.msg);
            assert_eq!(ev.username.as_deref(), c.user, "{}", c.msg);
            assert_eq!(ev.message.as_deref(), Some(c.msg.trim()), "{}", c.msg);
            assert_eq!(ev.session_id.as_deref(), Some("sshd-4242"));
        }
        let listening =
            parse("Nov 26 21:17:22 bastion-01 sshd[1]: Server listening on 127.0.0.1 port 2022.", &ctx()).unwrap();
        assert_eq!((listening.dst_ip, listening.dst_port), (ip("127.0.0.1"), Some(2022)));
    }

    #[test]
    fn header_variants() {
        let msg = "Failed password for root from 203.0.113.5 port 40022 ssh2";
        let lines = [
            format!("Nov 26 21:17:45 bastion-01 sshd[19620]: {msg}"),
            format!("<38>Nov 26 21:17:45 bastion-01 sshd[19620]: {msg}"),
            format!("2026-11-26T21:17:45.674717+00:00 bastion-01 sshd[19620]: {msg}"),
            format!("<34>1 2026-11-26T21:17:45.674717+00:00 bastion-01 sshd 19620 - - {msg}"),
            format!("<34>1 2026-11-26T21:17:45.674717Z bastion-01 sshd 19620 - [meta x=\"1\"] {msg}"),
            format!("2026-11-26T21:17:45Z bastion-01 sshd-session[19620]: {msg}"),
            format!("2026-11-26T21:17:45Z sshd[19620]: {msg}"),
        ];
        for line in &lines {
            let ev = parse(line, &ctx()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(ev.event_type, FAILED_PASSWORD, "{line}");
            assert_eq!(ev.session_id.as_deref(), Some("sshd-19620"), "{line}");
            assert_eq!(ev.timestamp.format("%F %T").to_string(), "2026-11-26 21:17:45");
            let want_host = if line.contains("bastion-01") { Some("bastion-01") } else { None };
            assert_eq!(ev.hostname.as_deref(), want_host, "{line}");
        }
        // `sshd -E` output with a timestamp prefix: no hostname, no tag, no PID.
        let ev = parse(&format!("2026-11-26T21:17:45Z {msg}"), &ctx()).unwrap();
        assert_eq!((ev.event_type.as_str(), ev.hostname, ev.session_id), (FAILED_PASSWORD, None, None));
        // Nil APP-NAME and PROCID: still sshd by its message, host kept, no PID.
        let ev = parse(&format!("<34>1 2026-11-26T21:17:45Z bastion-01 - - - - {msg}"), &ctx()).unwrap();
        assert_eq!(ev.event_type, FAILED_PASSWORD);
        assert_eq!((ev.hostname.as_deref(), ev.session_id), (Some("bastion-01"), None));
        // ... and without one there is nothing to date the event by.
        for bare in [format!("sshd[123]: {msg}"), msg.to_owned()] {
            let e = parse(&bare, &ctx()).unwrap_err();
            assert!(e.0.starts_with("no timestamp"), "{bare}: {e}");
        }
    }

    #[test]
    fn other_programs_are_syslog_other() {
        let ev = parse(
            "Nov 26 21:17:01 bastion-01 CRON[20001]: pam_unix(cron:session): session opened for user root",
            &ctx(),
        )
        .unwrap();
        assert_eq!(ev.event_type, SYSLOG_OTHER);
        assert_eq!((ev.protocol, ev.session_id, ev.src_ip), (None, None, None));
        assert_eq!(ev.hostname.as_deref(), Some("bastion-01"));
        let ev = parse("Nov 26 21:17:01 bastion-01 some untagged words", &ctx()).unwrap();
        assert_eq!(ev.event_type, SYSLOG_OTHER);
        assert_eq!(ev.message.as_deref(), Some("some untagged words"));
    }

    #[test]
    fn malformed_lines_are_errors() {
        let cases = [
            ("", "empty"),
            ("Nov 26 21:1", "no timestamp"),
            ("Nov 26 21:17:45", "truncated"),
            ("Nov 26 21:17:45 bastion-01", "truncated"),
            ("Nov 26 21:17:45 bastion-01 sshd[1]:", "truncated"),
            ("Nov 26 21:17:45 h sshd[1]: Failed password for root from 300.1.1.1 port 22 ssh2", "invalid IP"),
            ("Nov 26 21:17:45 h sshd[1]: Invalid user x from nothost port 22", "invalid IP"),
            ("Nov 26 21:17:45 h sshd[1]: Failed password for x from 1.2.3.4 port 99999 ssh2", "invalid port"),
            ("Nov 26 21:17:45 h sshd[1]: Connection closed by user x 1.2.3 port 22", "invalid IP"),
            ("Nov 26 21:17:45 h sshd[1]: Received disconnect from garbage", "invalid IP"),
            ("{\"eventid\":\"x\"}", "no timestamp"),
            ("\u{202e}💥 Nov 26", "no timestamp"),
        ];
        for (line, reason) in cases {
            let e = parse(line, &ctx()).unwrap_err();
            assert!(e.0.contains(reason), "{line:?}: got {e:?}, want {reason:?}");
        }
    }

    #[test]
    fn tracker_is_keyed_by_host_and_pid_and_follows_reuse() {
        let mut t = SshdPidTracker::new();
        let mut run = |line: &str| {
            let mut ev = parse(line, &ctx()).unwrap();
            t.attribute(&mut ev);
            ev.src_ip
        };
        let unknown = "pam_unix(sshd:auth): check pass; user unknown";
        assert_eq!(run(&format!("Nov 26 21:17:45 a sshd[7]: {unknown}")), None);
        run("Nov 26 21:17:45 a sshd[7]: Invalid user x from 192.0.2.1 port 1");
        assert_eq!(run(&format!("Nov 26 21:17:46 a sshd[7]: {unknown}")), ip("192.0.2.1"));
        // Same PID on another host is another process.
        assert_eq!(run(&format!("Nov 26 21:17:46 b sshd[7]: {unknown}")), None);
        // PID reuse: the newest address wins.
        run("Nov 26 21:20:00 a sshd[7]: Invalid user y from 192.0.2.2 port 2");
        assert_eq!(run(&format!("Nov 26 21:20:01 a sshd[7]: {unknown}")), ip("192.0.2.2"));
        // rhost= in pam lines counts as an address.
        run("Nov 26 21:20:00 a sshd[8]: pam_unix(sshd:auth): authentication failure; rhost=192.0.2.3");
        assert_eq!(run(&format!("Nov 26 21:20:01 a sshd[8]: {unknown}")), ip("192.0.2.3"));
        assert_eq!(t.len(), 2);

        // Events that are not sshd lines are untouched.
        let mut foreign = SecurityEvent::new(chrono::DateTime::UNIX_EPOCH, SourceType::Cowrie, "cowrie.x", Value::Null);
        foreign.session_id = Some("sshd-7".into());
        foreign.hostname = Some("a".into());
        t.attribute(&mut foreign);
        assert_eq!(foreign.src_ip, None);
    }

    #[test]
    fn tracker_memory_is_bounded() {
        let mut t = SshdPidTracker::new();
        let base = SecurityEvent::new(chrono::DateTime::UNIX_EPOCH, SourceType::Sshd, OTHER, Value::Null);
        for pid in 0..(SshdPidTracker::MAX_TRACKED + 10) {
            let mut ev = base.clone();
            ev.session_id = Some(format!("sshd-{pid}"));
            ev.src_ip = ip("192.0.2.1");
            t.attribute(&mut ev);
        }
        assert_eq!(t.len(), SshdPidTracker::MAX_TRACKED);
        let mut oldest = base.clone();
        oldest.session_id = Some("sshd-0".into());
        t.attribute(&mut oldest);
        assert_eq!(oldest.src_ip, None);
    }

    #[test]
    fn truncations_of_real_lines_never_panic() {
        for text in [TRADITIONAL, RFC3339] {
            for line in text.lines() {
                for (i, _) in line.char_indices() {
                    let _ = parse(&line[..i], &ctx());
                }
            }
        }
    }
}
