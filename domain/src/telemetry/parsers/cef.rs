//! ArcSight Common Event Format lines:
//! `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`,
//! optionally behind a syslog header. Owns CEF's escaping rules (header: `\|`, `\\`;
//! extension values: `\=`, `\\`, `\n`, `\r`), the `key=value` extension grammar, and the
//! mapping of the standard extension keys. Event type is `cef.<signature id>`.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde_json::Value;

use super::common::{parse_ip, parse_port, parse_timestamp_str, sanitize_type, snippet, strip_eol};
use super::{syslog, ParseContext};
use crate::telemetry::{ParseError, SecurityEvent, SourceType};

/// The seven pipe-separated header fields, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CefHeader {
    pub version: String,
    pub device_vendor: String,
    pub device_product: String,
    pub device_version: String,
    pub signature_id: String,
    pub name: String,
    pub severity: String,
}

/// Parse one CEF line.
pub(crate) fn parse(record: &str, ctx: &ParseContext) -> Result<SecurityEvent, ParseError> {
    let line = strip_eol(record);
    let start = cef_start(line).ok_or_else(|| ParseError::new("not a CEF record: no \"CEF:\" marker"))?;
    let (prefix, cef) = (line.get(..start).unwrap_or(""), line.get(start + 4..).unwrap_or(""));
    let (header, extension) = split_header(cef)?;
    let ext = parse_extension(extension);
    let get = |k: &str| ext.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
    let present = |k: &str| get(k).filter(|v| !v.trim().is_empty());

    // Syslog header is optional; when present and readable it supplies time and host.
    let syslog_header = if prefix.trim().is_empty() { None } else { syslog::parse(prefix, ctx).ok() };
    let timestamp = match present("rt") {
        Some(rt) => parse_rt(rt, ctx)?,
        None => syslog_header
            .as_ref()
            .map(|h| h.timestamp)
            .ok_or_else(|| ParseError::new("no timestamp: CEF record has no rt and no syslog header timestamp"))?,
    };

    let sig = sanitize_type(&header.signature_id);
    if sig.is_empty() {
        return Err(ParseError::new("empty CEF Signature ID"));
    }
    let mut ev = SecurityEvent::new(timestamp, SourceType::Cef, format!("cef.{sig}"), Value::String(line.to_owned()));
    ev.src_ip = present("src").map(|v| parse_ip("extension src", v)).transpose()?;
    ev.dst_ip = present("dst").map(|v| parse_ip("extension dst", v)).transpose()?;
    ev.src_port = present("spt").map(|v| parse_port("extension spt", v)).transpose()?;
    ev.dst_port = present("dpt").map(|v| parse_port("extension dpt", v)).transpose()?;
    // shost/dhost are names; when a producer puts an address there and omits src/dst, the
    // address is still the best source/destination we have.
    if ev.src_ip.is_none() {
        ev.src_ip = present("shost").and_then(|h| parse_ip("shost", h).ok());
    }
    if ev.dst_ip.is_none() {
        ev.dst_ip = present("dhost").and_then(|h| parse_ip("dhost", h).ok());
    }
    ev.protocol = present("proto").map(|p| p.trim().to_ascii_lowercase());
    ev.username = present("suser").or_else(|| present("duser")).map(str::to_owned);
    ev.url = present("request").map(str::to_owned);
    ev.file_hash = present("fileHash").map(str::to_owned);
    ev.session_id = present("externalId").map(str::to_owned);
    ev.message =
        present("msg").map(str::to_owned).or_else(|| Some(header.name.clone()).filter(|n| !n.trim().is_empty()));
    // The host that produced the record: the device itself (dvchost), else the syslog
    // sender, else the host the event is about (dhost).
    ev.hostname = ctx
        .hostname
        .clone()
        .or_else(|| present("dvchost").map(str::to_owned))
        .or_else(|| syslog_header.and_then(|h| h.hostname).map(str::to_owned))
        .or_else(|| present("dhost").map(str::to_owned));
    Ok(ev)
}

/// Where `CEF:` starts: the line start or after a space (not inside a hostname).
fn cef_start(line: &str) -> Option<usize> {
    line.match_indices("CEF:")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || line.get(..i).is_some_and(|p| p.ends_with([' ', '\t'])))
}

/// Split the header (after `CEF:`) at unescaped pipes. A line with only the seven header
/// fields and no trailing pipe is accepted with an empty extension, as many senders do.
pub fn split_header(s: &str) -> Result<(CefHeader, &str), ParseError> {
    let mut fields: Vec<String> = Vec::with_capacity(7);
    let mut cur = String::new();
    let mut chars = s.char_indices().peekable();
    let mut extension = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&(_, n @ ('|' | '\\'))) => {
                    cur.push(n);
                    chars.next();
                }
                _ => cur.push('\\'),
            },
            '|' => {
                fields.push(std::mem::take(&mut cur));
                if fields.len() == 7 {
                    extension = Some(s.get(i + 1..).unwrap_or(""));
                    break;
                }
            }
            _ => cur.push(c),
        }
    }
    let extension = match extension {
        Some(e) => e,
        None if fields.len() == 6 && !cur.is_empty() => {
            fields.push(cur);
            ""
        }
        None => {
            return Err(ParseError::new(format!(
                "truncated CEF header: expected 7 '|'-separated fields, found {}",
                fields.len() + usize::from(!cur.is_empty())
            )))
        }
    };
    let mut it = fields.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let header = CefHeader {
        version: next().trim().to_owned(),
        device_vendor: next(),
        device_product: next(),
        device_version: next(),
        signature_id: next(),
        name: next(),
        severity: next(),
    };
    if header.version.is_empty() || !header.version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::new(format!("invalid CEF version: {}", snippet(&header.version))));
    }
    Ok((header, extension))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']')
}

/// `key=value` pairs. A key is a run of key characters at the start or after a space,
/// followed by an unescaped `=`; a value runs until the space before the next key, so
/// values may contain spaces (and unescaped `=` not preceded by a key-like word).
pub fn parse_extension(ext: &str) -> Vec<(&str, String)> {
    let bytes = ext.as_bytes();
    // (key start, position of its '=')
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || bytes.get(i - 1) == Some(&b' ');
        if at_word_start && bytes.get(i).copied().is_some_and(is_key_byte) {
            let mut j = i;
            while bytes.get(j).copied().is_some_and(is_key_byte) {
                j += 1;
            }
            if bytes.get(j) == Some(&b'=') {
                keys.push((i, j));
                i = j + 1;
                continue;
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    let mut out = Vec::with_capacity(keys.len());
    for (n, &(start, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(ext.len(), |&(next, _)| next);
        // All positions are at ASCII bytes, hence char boundaries.
        let key = ext.get(start..eq).unwrap_or("");
        let value = ext.get(eq + 1..end).unwrap_or("").trim_end_matches(' ');
        out.push((key, unescape_value(value)));
    }
    out
}

fn unescape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let replacement = match chars.peek() {
            Some('=') => '=',
            Some('\\') => '\\',
            Some('|') => '|',
            Some('n') => '\n',
            Some('r') => '\r',
            // Not a CEF escape: keep the backslash literally.
            _ => {
                out.push('\\');
                continue;
            }
        };
        out.push(replacement);
        chars.next();
    }
    out
}

/// `rt`: epoch milliseconds, or `MMM dd yyyy HH:mm:ss[.SSS][ zone]` (also without the
/// year, then placed by [`ParseContext::place_yearless`]), or RFC 3339. Named zones other than UTC/GMT cannot be
/// resolved without a tz database and are rejected rather than guessed.
fn parse_rt(rt: &str, ctx: &ParseContext) -> Result<DateTime<Utc>, ParseError> {
    let bad = || ParseError::new(format!("invalid timestamp in extension rt: {}", snippet(rt)));
    let rt = rt.trim();
    if rt.bytes().all(|b| b.is_ascii_digit()) {
        let ms = rt.parse::<i64>().map_err(|_| bad())?;
        return DateTime::from_timestamp_millis(ms).ok_or_else(bad);
    }
    if let Some(t) = parse_timestamp_str(rt) {
        return Ok(t);
    }
    let (text, offset) = match rt.rsplit_once(' ') {
        Some((rest, zone)) if zone.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            if matches!(zone, "UTC" | "GMT" | "Z") {
                (rest, 0)
            } else {
                return Err(ParseError::new(format!("unsupported time zone in extension rt: {}", snippet(zone))));
            }
        }
        Some((rest, zone)) if zone.starts_with(['+', '-']) => {
            let off = DateTime::parse_from_str(&format!("2000-01-01 00:00 {zone}"), "%Y-%m-%d %H:%M %z")
                .map_err(|_| bad())?;
            (rest, off.offset().local_minus_utc())
        }
        _ => (rt, 0),
    };
    let offset = FixedOffset::east_opt(offset).ok_or_else(bad)?;
    let to_utc = |naive: NaiveDateTime| naive.and_local_timezone(offset).single().map(|t| t.with_timezone(&Utc));
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%b %d %Y %H:%M:%S%.f") {
        return to_utc(naive).ok_or_else(bad);
    }
    ctx.place_yearless(|year| {
        NaiveDateTime::parse_from_str(&format!("{year} {text}"), "%Y %b %d %H:%M:%S%.f").ok().and_then(to_utc)
    })
    .ok_or_else(bad)
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

    const SSH_BRUTE: &str = "CEF:0|Acme|SSH Guard|2.1|SSH-BRUTE|SSH brute force|8|rt=1795727865000 src=203.0.113.5 spt=40022 dst=10.0.0.5 dpt=22 proto=TCP suser=root msg=5 failed logins in 60s dvchost=guard-01";

    #[test]
    fn standard_extension_keys() {
        let ev = parse(SSH_BRUTE, &ctx()).unwrap();
        assert_eq!(ev.event_type, "cef.ssh-brute");
        assert_eq!(ev.timestamp.timestamp_millis(), 1_795_727_865_000);
        assert_eq!((ev.src_ip, ev.src_port), (ip("203.0.113.5"), Some(40022)));
        assert_eq!((ev.dst_ip, ev.dst_port), (ip("10.0.0.5"), Some(22)));
        assert_eq!(ev.protocol.as_deref(), Some("tcp"));
        assert_eq!(ev.username.as_deref(), Some("root"));
        assert_eq!(ev.message.as_deref(), Some("5 failed logins in 60s"));
        assert_eq!(ev.hostname.as_deref(), Some("guard-01"));
        assert_eq!(ev.raw, Value::String(SSH_BRUTE.to_owned()));
    }

    #[test]
    fn header_escapes() {
        let line = r"CEF:0|Ven\|dor|Prod\\uct|1.0|Sig\|ID|Name with \| pipe|5|rt=0";
        let (h, ext) = split_header(line.strip_prefix("CEF:").unwrap()).unwrap();
        assert_eq!(h.device_vendor, "Ven|dor");
        assert_eq!(h.device_product, r"Prod\uct");
        assert_eq!(h.signature_id, "Sig|ID");
        assert_eq!(h.name, "Name with | pipe");
        assert_eq!(h.severity, "5");
        assert_eq!(ext, "rt=0");
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.event_type, "cef.sig_id");
        assert_eq!(ev.message.as_deref(), Some("Name with | pipe"));
    }

    #[test]
    fn extension_escapes_and_values_with_spaces() {
        let ext = r"msg=a\=b c\\d \n e\r cs1Label=x y request=http://h/p?q=1&r=2 fname=C:\\dir\\f.txt end=1";
        let got = parse_extension(ext);
        let want: Vec<(&str, String)> = vec![
            ("msg", "a=b c\\d \n e\r".into()),
            ("cs1Label", "x y".into()),
            ("request", "http://h/p?q=1&r=2".into()),
            ("fname", r"C:\dir\f.txt".into()),
            ("end", "1".into()),
        ];
        assert_eq!(got, want);
        // Unknown escapes are kept; a trailing lone backslash does not panic.
        assert_eq!(parse_extension(r"a=\x\"), vec![("a", r"\x\".to_owned())]);
        assert_eq!(parse_extension("a= b=  c=é"), vec![("a", String::new()), ("b", String::new()), ("c", "é".into())]);
        assert!(parse_extension("no keys here =x").iter().all(|(k, _)| !k.is_empty()));
    }

    #[test]
    fn syslog_header_supplies_time_and_host() {
        let line =
            "<134>Nov 26 21:17:45 fw-01 CEF:0|Acme|FW|1|100|Port scan|5|src=203.0.113.5 request=/admin fileHash=abc";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_rfc3339(), "2026-11-26T21:17:45+00:00");
        assert_eq!(ev.hostname.as_deref(), Some("fw-01"));
        assert_eq!(ev.url.as_deref(), Some("/admin"));
        assert_eq!(ev.file_hash.as_deref(), Some("abc"));
        assert_eq!(ev.event_type, "cef.100");
        // rt wins over the syslog header.
        let line = "Nov 26 21:17:45 fw-01 app[3]: CEF:1|A|B|1|x|y|1|rt=Nov 26 2026 21:00:00 duser=alice";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_rfc3339(), "2026-11-26T21:00:00+00:00");
        assert_eq!(ev.username.as_deref(), Some("alice"));
        let line = "2026-11-26T21:17:45Z fw CEF:0|A|B|1|x|y|1|dhost=victim";
        assert_eq!(parse(line, &ctx()).unwrap().hostname.as_deref(), Some("fw"));
        let line = "<34>1 2026-11-26T21:17:45Z fw app - - - CEF:0|A|B|1|x|y|1|";
        assert_eq!(parse(line, &ctx()).unwrap().timestamp.to_rfc3339(), "2026-11-26T21:17:45+00:00");
    }

    #[test]
    fn rt_formats() {
        let cases = [
            ("1795727865000", "2026-11-26T21:17:45+00:00"),
            ("Nov 26 2026 21:17:45", "2026-11-26T21:17:45+00:00"),
            ("Nov 26 2026 21:17:45.250", "2026-11-26T21:17:45.250+00:00"),
            ("Nov 26 2026 21:17:45 UTC", "2026-11-26T21:17:45+00:00"),
            ("Nov 26 2026 22:17:45 +0100", "2026-11-26T21:17:45+00:00"),
            ("Nov 26 21:17:45", "2026-11-26T21:17:45+00:00"),
            ("2026-11-26T21:17:45Z", "2026-11-26T21:17:45+00:00"),
        ];
        for (rt, want) in cases {
            let t = parse_rt(rt, &ctx()).unwrap_or_else(|e| panic!("{rt}: {e}"));
            assert_eq!(t.to_rfc3339(), want, "{rt}");
        }
        for bad in [
            "",
            "soon",
            "99999999999999999999999",
            "Nov 26 2026 21:17:45 PST",
            "Nov 31 2026 21:17:45",
            "Nov 26 2026 21:17:45 +99",
        ] {
            assert!(parse_rt(bad, &ctx()).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_lines() {
        let cases = [
            ("", "no \"CEF:\" marker"),
            ("hello world", "no \"CEF:\" marker"),
            ("CEF:0|A|B|1|x|y", "truncated CEF header"),
            ("CEF:0|A|B|1|x|y|1|src=1.2.3.4", "no timestamp"),
            ("junk before CEF:0|A|B|1|x|y|1|src=1.2.3.4", "no timestamp"),
            ("CEF:zero|A|B|1|x|y|1|rt=0", "invalid CEF version"),
            ("CEF:0|A|B|1||y|1|rt=0", "empty CEF Signature ID"),
            ("CEF:0|A|B|1|x|y|1|rt=0 src=1.2.3.999", "extension src"),
            ("CEF:0|A|B|1|x|y|1|rt=0 dst=::g", "extension dst"),
            ("CEF:0|A|B|1|x|y|1|rt=0 spt=http", "extension spt"),
            ("CEF:0|A|B|1|x|y|1|rt=yesterday", "extension rt"),
            ("hostCEF:0|A|B|1|x|y|1|rt=0", "no \"CEF:\" marker"),
        ];
        for (line, reason) in cases {
            let e = parse(line, &ctx()).unwrap_err();
            assert!(e.0.contains(reason), "{line:?}: got {e:?}, want {reason:?}");
        }
    }

    #[test]
    fn seven_fields_without_trailing_pipe() {
        let ev = parse("CEF:0|A|B|1|x|y|1", &ctx().with_hostname("h")).unwrap_err();
        assert!(ev.0.contains("no timestamp"));
        let (h, ext) = split_header("0|A|B|1|x|y|10").unwrap();
        assert_eq!((h.severity.as_str(), ext), ("10", ""));
    }
}
