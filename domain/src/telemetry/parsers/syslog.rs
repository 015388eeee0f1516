//! Syslog line headers shared by the line formats (OpenSSH via syslog, CEF over syslog):
//! RFC 3164 (`Nov 26 21:17:45 host sshd[1]: msg`, no year: the caller supplies it),
//! RFC 5424 (`<34>1 2026-11-26T21:17:45.674717+00:00 host sshd 1 - - msg`), rsyslog's
//! RFC 3339 file format (`2026-11-26T21:17:45.674717+00:00 host sshd[1]: msg`), and a
//! timestamp followed directly by a tag (`2026-… sshd[1]: msg`, no hostname).
//!
//! All delimiters are ASCII, so every slice below is taken at a char boundary.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::common::{parse_timestamp_str, snippet};
use super::ParseContext;
use crate::telemetry::ParseError;

/// A syslog line split into its header fields. `message` may be empty; callers decide
/// whether that is acceptable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyslogLine<'a> {
    pub timestamp: DateTime<Utc>,
    pub hostname: Option<&'a str>,
    /// Program name (RFC 3164 TAG / RFC 5424 APP-NAME).
    pub app: Option<&'a str>,
    /// Process id (RFC 3164 `[pid]` / RFC 5424 PROCID).
    pub pid: Option<&'a str>,
    /// Everything after the timestamp: for a timestamped line with neither hostname nor
    /// tag, the "hostname" is really the first word of the message.
    pub after_timestamp: &'a str,
    pub message: &'a str,
}

/// Split a syslog line. RFC 3164 timestamps have no year: `ctx` places them
/// ([`ParseContext::place_yearless`]).
pub(crate) fn parse<'a>(line: &'a str, ctx: &ParseContext) -> Result<SyslogLine<'a>, ParseError> {
    let s = line.trim_start_matches(['\u{feff}', ' ', '\t']);
    if s.is_empty() {
        return Err(ParseError::new("empty line"));
    }
    let (has_pri, rest) = split_pri(s)?;
    // The version digit only exists after a PRI, so a bare "1 ..." is not RFC 5424.
    if has_pri {
        if let Some(after_version) = rest.strip_prefix("1 ") {
            return parse_5424(after_version);
        }
    }
    let Some((timestamp, after)) = leading_timestamp(rest, ctx) else {
        let first = split_token(rest).0;
        return Err(if parse_tag(first).is_some() {
            ParseError::new(format!(
                "no timestamp: line starts with a program tag and has no syslog header: {}",
                snippet(rest)
            ))
        } else {
            ParseError::new(format!("no timestamp: unrecognized syslog header: {}", snippet(rest)))
        });
    };
    Ok(host_and_tag(timestamp, after))
}

/// `<PRI>` is 1-3 digits, at most 191 (facility 23, severity 7).
fn split_pri(s: &str) -> Result<(bool, &str), ParseError> {
    let Some(rest) = s.strip_prefix('<') else {
        return Ok((false, s));
    };
    let bad = || ParseError::new(format!("invalid syslog priority: {}", snippet(s)));
    let (digits, after) = rest.split_once('>').ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.parse::<u16>() {
        Ok(p) if p <= 191 => Ok((true, after)),
        _ => Err(bad()),
    }
}

/// First space-delimited token and what follows the space (not trimmed).
fn split_token(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

/// `prog[pid]:` or `prog:` → (prog, pid).
pub(crate) fn parse_tag(token: &str) -> Option<(&str, Option<&str>)> {
    let body = token.strip_suffix(':')?;
    let (name, pid) = match body.split_once('[') {
        Some((name, rest)) => {
            let pid = rest.strip_suffix(']')?;
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (name, Some(pid))
        }
        None => (body, None),
    };
    let name_ok =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    name_ok.then_some((name, pid))
}

fn month_number(m: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let m = m.to_ascii_lowercase();
    MONTHS.iter().position(|x| *x == m).and_then(|i| u32::try_from(i + 1).ok())
}

/// 1-4 ASCII digits as a number (`str::parse` alone would accept a sign).
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A timestamp at the start of `s` and the text after it: RFC 3164 `Mmm dd hh:mm:ss`
/// (also `Mmm dd yyyy hh:mm:ss`, which some appliances write), else a single RFC 3339 token.
fn leading_timestamp<'a>(s: &'a str, ctx: &ParseContext) -> Option<(DateTime<Utc>, &'a str)> {
    if let Some(found) = rfc3164_timestamp(s, ctx) {
        return Some(found);
    }
    let (token, rest) = split_token(s);
    parse_timestamp_str(token).map(|t| (t, rest))
}

fn rfc3164_timestamp<'a>(s: &'a str, ctx: &ParseContext) -> Option<(DateTime<Utc>, &'a str)> {
    let month = month_number(s.get(..3)?)?;
    let rest = s.get(3..)?.strip_prefix(' ')?;
    // Days below 10 are space-padded: "Nov  6".
    let rest = rest.trim_start_matches(' ');
    let (day, rest) = split_token(rest);
    if day.len() > 2 {
        return None;
    }
    let day = digits(day)?;
    let (mut time, mut rest) = split_token(rest);
    let mut year = None;
    if time.len() == 4 {
        year = Some(i32::try_from(digits(time)?).ok()?);
        (time, rest) = split_token(rest);
    }
    // hh:mm:ss with an optional fraction.
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.len() != 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Right-pad to nine digits: ".5" is 500 ms.
        format!("{frac:0<9}").parse::<u32>().ok()?
    };
    let time = NaiveTime::from_hms_nano_opt(digits(h)?, digits(m)?, digits(sec)?, nanos)?;
    let at_year = |year| NaiveDate::from_ymd_opt(year, month, day).map(|date| date.and_time(time).and_utc());
    let timestamp = match year {
        Some(year) => at_year(year)?,
        None => ctx.place_yearless(at_year)?,
    };
    Some((timestamp, rest))
}

/// After the timestamp: `HOST TAG: msg`, `TAG: msg` (no host), or `HOST msg` (no tag).
fn host_and_tag(timestamp: DateTime<Utc>, after: &str) -> SyslogLine<'_> {
    let after = after.trim_start_matches(' ');
    let (first, rest) = split_token(after);
    let mut line = SyslogLine { timestamp, hostname: None, app: None, pid: None, after_timestamp: after, message: "" };
    if let Some((app, pid)) = parse_tag(first) {
        line.app = Some(app);
        line.pid = pid;
        line.message = rest;
        return line;
    }
    line.hostname = Some(first).filter(|h| !h.is_empty());
    let rest = rest.trim_start_matches(' ');
    let (second, after_tag) = split_token(rest);
    match parse_tag(second) {
        Some((app, pid)) => {
            line.app = Some(app);
            line.pid = pid;
            line.message = after_tag;
        }
        None => line.message = rest,
    }
    line
}

/// RFC 5424 after `<PRI>1 `: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG].
fn parse_5424(s: &str) -> Result<SyslogLine<'_>, ParseError> {
    let truncated = || ParseError::new(format!("truncated RFC 5424 header: {}", snippet(s)));
    let mut rest = s;
    let mut next = || -> Result<&str, ParseError> {
        let (tok, r) = rest.split_once(' ').ok_or_else(truncated)?;
        rest = r;
        if tok.is_empty() {
            return Err(truncated());
        }
        Ok(tok)
    };
    let ts = next()?;
    let host = next()?;
    let app = next()?;
    let procid = next()?;
    let _msgid = next()?;
    if ts == "-" {
        return Err(ParseError::new("no timestamp: RFC 5424 TIMESTAMP is NILVALUE"));
    }
    let timestamp = parse_timestamp_str(ts)
        .ok_or_else(|| ParseError::new(format!("invalid RFC 5424 timestamp: {}", snippet(ts))))?;
    let after_sd = skip_structured_data(rest)?;
    let message = after_sd.strip_prefix(' ').unwrap_or(after_sd).trim_start_matches('\u{feff}');
    Ok(SyslogLine {
        timestamp,
        hostname: nil(host),
        app: nil(app),
        pid: nil(procid),
        after_timestamp: message,
        message,
    })
}

/// RFC 5424's NILVALUE `-` means "not known".
fn nil(token: &str) -> Option<&str> {
    (token != "-").then_some(token)
}

/// Skip `-` or one or more `[id k="v" ...]` elements; inside quotes `\]`, `\"` and `\\`
/// are escapes, so a `]` in a value does not end the element.
fn skip_structured_data(s: &str) -> Result<&str, ParseError> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok(rest);
    }
    if !s.starts_with('[') {
        return Err(ParseError::new(format!("invalid RFC 5424 structured data: {}", snippet(s))));
    }
    let mut rest = s;
    while rest.starts_with('[') {
        let mut in_quotes = false;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                ']' if !in_quotes => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| ParseError::new("unterminated RFC 5424 structured data"))?;
        rest = rest.get(end + 1..).unwrap_or("");
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> DateTime<Utc> {
        parse_timestamp_str(s).expect("test timestamp")
    }

    #[test]
    fn rfc3164_uses_the_default_year_and_space_padded_days() {
        let l =
            parse("Nov  6 21:17:45 bastion-01 sshd[19620]: hello world", &super::super::context_in_year(2025)).unwrap();
        assert_eq!(l.timestamp, ts("2025-11-06T21:17:45Z"));
        assert_eq!(l.hostname, Some("bastion-01"));
        assert_eq!(l.app, Some("sshd"));
        assert_eq!(l.pid, Some("19620"));
        assert_eq!(l.message, "hello world");
    }

    #[test]
    fn rfc3164_with_pri_and_explicit_year() {
        let l = parse("<134>Nov 26 2024 21:17:45 fw CEF:0|a", &super::super::context_in_year(2026)).unwrap();
        assert_eq!(l.timestamp, ts("2024-11-26T21:17:45Z"));
        assert_eq!(l.hostname, Some("fw"));
        assert_eq!(l.app, None);
        assert_eq!(l.message, "CEF:0|a");
    }

    #[test]
    fn rfc3339_file_format_and_tag_without_host() {
        let l = parse("2026-11-26T21:17:45.674717+00:00 h sshd[1]: m", &super::super::context_in_year(1999)).unwrap();
        assert_eq!(l.timestamp, ts("2026-11-26T21:17:45.674717Z"));
        assert_eq!((l.hostname, l.app, l.pid, l.message), (Some("h"), Some("sshd"), Some("1"), "m"));
        let l = parse("2026-11-26T21:17:45Z sshd[7]: m", &super::super::context_in_year(1999)).unwrap();
        assert_eq!((l.hostname, l.app, l.pid, l.message), (None, Some("sshd"), Some("7"), "m"));
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let l = parse(
            "<34>1 2026-11-26T21:17:45.674717+00:00 host sshd 19620 ID47 [ex@1 a=\"x\\]y\"][b@2 c=\"d\"] \u{feff}msg here",
            &super::super::context_in_year(2000),
        )
        .unwrap();
        assert_eq!(l.timestamp, ts("2026-11-26T21:17:45.674717Z"));
        assert_eq!((l.hostname, l.app, l.pid), (Some("host"), Some("sshd"), Some("19620")));
        assert_eq!(l.message, "msg here");
        let l = parse("<34>1 2026-11-26T21:17:45Z - - - - -", &super::super::context_in_year(2000)).unwrap();
        assert_eq!((l.hostname, l.app, l.pid, l.message), (None, None, None, ""));
    }

    #[test]
    fn header_errors() {
        for bad in [
            "",
            "   ",
            "<999>Nov 26 21:17:45 h sshd[1]: x",
            "<34 Nov 26 21:17:45 h x",
            "<34>1 - host sshd 1 - - msg",
            "<34>1 2026-11-26T21:17:45Z host sshd",
            "<34>1 2026-11-26T21:17:45Z host sshd 1 - [unterminated",
            "<34>1 2026-11-26T21:17:45Z host sshd 1 - junk",
            "Nov 26 21:17",
            "Nov 31 21:17:45 h x",
            "Nov 26 25:17:45 h x",
            "Nov 26 21:17:45.1234567890 h x",
            "Foo 26 21:17:45 h x",
            "sshd[123]: Failed password for root from 1.2.3.4 port 1 ssh2",
            "just some words",
        ] {
            assert!(parse(bad, &super::super::context_in_year(2026)).is_err(), "{bad:?} should fail");
        }
        let e = parse("sshd[123]: x", &super::super::context_in_year(2026)).unwrap_err();
        assert!(e.0.starts_with("no timestamp"), "{e}");
    }

    #[test]
    fn tags() {
        assert_eq!(parse_tag("sshd[1]:"), Some(("sshd", Some("1"))));
        assert_eq!(parse_tag("sshd-session[1]:"), Some(("sshd-session", Some("1"))));
        assert_eq!(parse_tag("kernel:"), Some(("kernel", None)));
        for t in ["sshd[1]", "sshd[]:", "sshd[x]:", "[1]:", ":", "a b:", "sshd[1:"] {
            assert_eq!(parse_tag(t), None, "{t}");
        }
    }
}
