//! Suricata EVE JSON (`eve.json`) records. Owns the mapping of the common EVE envelope
//! (addresses, ports, proto, flow_id, host) and of the per-type payloads that carry an
//! indicator (alert signature, HTTP URL, DNS name, TLS SNI, SSH client, file hash).
//! Every `event_type` is kept as `suricata.<event_type>`.

use serde_json::{Map, Value};

use super::common::{
    opt_ip, opt_nonempty, opt_port, parse_json_object, parse_timestamp_str, required_str, required_timestamp,
    sanitize_type,
};
use super::ParseContext;
use crate::telemetry::{ParseError, SecurityEvent, SourceType};

/// Parse one EVE JSON object.
pub(crate) fn parse(record: &str, ctx: &ParseContext) -> Result<SecurityEvent, ParseError> {
    let value = parse_json_object(record)?;
    let Some(obj) = value.as_object() else {
        return Err(ParseError::new("expected a JSON object"));
    };
    let kind = sanitize_type(required_str(obj, &["event_type"])?);
    // Suricata writes `+0000` (no colon); the shared timestamp parser accepts it.
    let timestamp = required_timestamp(obj, &["timestamp"], false)?;
    let mut ev = SecurityEvent::new(timestamp, SourceType::Suricata, format!("suricata.{kind}"), Value::Null);
    ev.src_ip = opt_ip(obj, &["src_ip"])?;
    ev.src_port = opt_port(obj, &["src_port"])?;
    ev.dst_ip = opt_ip(obj, &["dest_ip"])?;
    ev.dst_port = opt_port(obj, &["dest_port"])?;
    // Transport protocol, lowercased to match the other parsers ("tcp", not "TCP").
    ev.protocol = opt_nonempty(obj, &["proto"]).map(|p| p.to_ascii_lowercase());
    // flow_id is the one key that joins alert, flow and app-layer records of a connection.
    ev.session_id = opt_nonempty(obj, &["flow_id"]);
    ev.hostname = ctx.hostname.clone().or_else(|| opt_nonempty(obj, &["host"]));

    let sub = |key: &str| obj.get(key).and_then(Value::as_object);
    match kind.as_str() {
        "alert" => ev.message = sub("alert").and_then(|a| opt_nonempty(a, &["signature"])),
        "http" => {
            if let Some(http) = sub("http") {
                ev.url = http_url(http);
                ev.message = opt_nonempty(http, &["http_user_agent"]);
            }
        }
        "dns" => ev.message = sub("dns").and_then(dns_name),
        "tls" => ev.message = sub("tls").and_then(|t| opt_nonempty(t, &["sni"])),
        "ssh" => {
            ev.message = sub("ssh")
                .and_then(|s| s.get("client"))
                .and_then(Value::as_object)
                .and_then(|c| opt_nonempty(c, &["software_version"]));
        }
        "flow" => ev.duration_secs = sub("flow").and_then(flow_duration),
        "fileinfo" => {
            if let Some(file) = sub("fileinfo") {
                ev.file_hash = opt_nonempty(file, &["sha256", "md5"]);
                ev.message = opt_nonempty(file, &["filename"]);
            }
        }
        _ => {}
    }
    // Alerts on HTTP traffic carry the http object too; the URL is the best indicator.
    if ev.url.is_none() {
        ev.url = sub("http").and_then(http_url);
    }
    ev.raw = value;
    Ok(ev)
}

/// `http.hostname` + `http.url` (the path), without guessing a scheme.
fn http_url(http: &Map<String, Value>) -> Option<String> {
    let host = opt_nonempty(http, &["hostname"]);
    let path = opt_nonempty(http, &["url"]);
    match (host, path) {
        (Some(h), Some(p)) => Some(format!("{h}{p}")),
        (h, p) => h.or(p),
    }
}

/// EVE v1 dns records have `rrname` at the top; v2 answers nest it under `queries`.
fn dns_name(dns: &Map<String, Value>) -> Option<String> {
    opt_nonempty(dns, &["rrname"]).or_else(|| {
        dns.get("queries")?.as_array()?.iter().find_map(|q| q.as_object().and_then(|q| opt_nonempty(q, &["rrname"])))
    })
}

fn flow_duration(flow: &Map<String, Value>) -> Option<f64> {
    let at = |k: &str| flow.get(k)?.as_str().and_then(parse_timestamp_str);
    let secs = (at("end")? - at("start")?).num_microseconds()? as f64 / 1e6;
    (secs >= 0.0).then_some(secs)
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

    const ALERT: &str = r#"{"timestamp":"2026-11-26T21:17:25.529043+0000","flow_id":1617346563553497,"in_iface":"eth0","event_type":"alert","src_ip":"203.0.113.5","src_port":40022,"dest_ip":"10.0.0.5","dest_port":22,"proto":"TCP","pkt_src":"wire/pcap","community_id":"1:abc=","alert":{"action":"allowed","gid":1,"signature_id":2001219,"rev":20,"signature":"ET SCAN Potential SSH Scan","category":"Attempted Information Leak","severity":2},"app_proto":"ssh","direction":"to_server","flow":{"pkts_toserver":3,"pkts_toclient":1,"bytes_toserver":200,"bytes_toclient":74,"start":"2026-11-26T21:17:25.500000+0000","src_ip":"203.0.113.5","dest_ip":"10.0.0.5","src_port":40022,"dest_port":22},"host":"ids-01"}"#;
    const FLOW: &str = r#"{"timestamp":"2026-11-26T21:18:00.000100+0000","flow_id":1617346563553497,"event_type":"flow","src_ip":"203.0.113.5","src_port":40022,"dest_ip":"10.0.0.5","dest_port":22,"proto":"TCP","app_proto":"ssh","flow":{"pkts_toserver":20,"pkts_toclient":18,"bytes_toserver":3000,"bytes_toclient":4100,"start":"2026-11-26T21:17:25.500000+0000","end":"2026-11-26T21:17:37.750000+0000","age":12,"state":"closed","reason":"timeout","alerted":true},"tcp":{"tcp_flags":"1b","syn":true,"fin":true,"psh":true,"ack":true,"state":"closed"}}"#;
    const HTTP: &str = r#"{"timestamp":"2026-11-26T21:19:30.100000+0000","flow_id":99,"event_type":"http","src_ip":"10.0.0.5","src_port":51000,"dest_ip":"198.51.100.7","dest_port":80,"proto":"TCP","tx_id":0,"http":{"hostname":"198.51.100.7","url":"/bot.sh","http_user_agent":"Wget/1.21.3","http_content_type":"text/plain","http_method":"GET","protocol":"HTTP/1.1","status":200,"length":512}}"#;
    const DNS_V2: &str = r#"{"timestamp":"2026-11-26T21:19:29.000000+0000","flow_id":100,"event_type":"dns","src_ip":"10.0.0.5","src_port":53000,"dest_ip":"10.0.0.2","dest_port":53,"proto":"UDP","dns":{"version":3,"type":"request","tx_id":0,"id":4242,"rd":true,"opcode":0,"queries":[{"rrname":"evil.example.com","rrtype":"A"}]}}"#;
    const DNS_V1: &str = r#"{"timestamp":"2026-11-26T21:19:29.000000+0000","event_type":"dns","src_ip":"10.0.0.5","dest_ip":"10.0.0.2","proto":"UDP","dns":{"type":"query","id":4242,"rrname":"evil.example.com","rrtype":"A","tx_id":0}}"#;
    const TLS: &str = r#"{"timestamp":"2026-11-26T21:19:31.000000+0000","flow_id":101,"event_type":"tls","src_ip":"10.0.0.5","src_port":51001,"dest_ip":"2001:db8::443","dest_port":443,"proto":"TCP","tls":{"subject":"CN=c2.example.net","issuerdn":"CN=R3","serial":"04:AB","fingerprint":"aa:bb","sni":"c2.example.net","version":"TLS 1.3","notbefore":"2026-10-01T00:00:00","notafter":"2026-12-30T00:00:00","ja3":{"hash":"e7d705a3286e19ea42f587b344ee6865"}}}"#;
    const SSH: &str = r#"{"timestamp":"2026-11-26T21:17:26.000000+0000","flow_id":102,"event_type":"ssh","src_ip":"203.0.113.5","src_port":40022,"dest_ip":"10.0.0.5","dest_port":22,"proto":"TCP","ssh":{"client":{"proto_version":"2.0","software_version":"paramiko_5.1.0"},"server":{"proto_version":"2.0","software_version":"OpenSSH_9.2p1"}}}"#;

    #[test]
    fn alert() {
        let ev = parse(ALERT, &ctx()).unwrap();
        assert_eq!(ev.event_type, "suricata.alert");
        assert_eq!(ev.timestamp.to_rfc3339(), "2026-11-26T21:17:25.529043+00:00");
        assert_eq!((ev.src_ip, ev.src_port), (ip("203.0.113.5"), Some(40022)));
        assert_eq!((ev.dst_ip, ev.dst_port), (ip("10.0.0.5"), Some(22)));
        assert_eq!(ev.protocol.as_deref(), Some("tcp"));
        assert_eq!(ev.message.as_deref(), Some("ET SCAN Potential SSH Scan"));
        assert_eq!(ev.session_id.as_deref(), Some("1617346563553497"));
        assert_eq!(ev.hostname.as_deref(), Some("ids-01"));
        assert_eq!(ev.raw["alert"]["signature_id"], 2001219);
        let ev = parse(ALERT, &ctx().with_hostname("override")).unwrap();
        assert_eq!(ev.hostname.as_deref(), Some("override"));
    }

    #[test]
    fn flow_has_a_duration_and_joins_the_alert() {
        let ev = parse(FLOW, &ctx()).unwrap();
        assert_eq!(ev.event_type, "suricata.flow");
        assert_eq!(ev.duration_secs, Some(12.25));
        assert_eq!(ev.session_id, parse(ALERT, &ctx()).unwrap().session_id);
    }

    #[test]
    fn http_url_is_host_plus_path() {
        let ev = parse(HTTP, &ctx()).unwrap();
        assert_eq!(ev.event_type, "suricata.http");
        assert_eq!(ev.url.as_deref(), Some("198.51.100.7/bot.sh"));
        assert_eq!(ev.message.as_deref(), Some("Wget/1.21.3"));
    }

    #[test]
    fn dns_tls_ssh() {
        for dns in [DNS_V1, DNS_V2] {
            let ev = parse(dns, &ctx()).unwrap();
            assert_eq!(ev.event_type, "suricata.dns");
            assert_eq!(ev.message.as_deref(), Some("evil.example.com"));
            assert_eq!(ev.protocol.as_deref(), Some("udp"));
        }
        let ev = parse(TLS, &ctx()).unwrap();
        assert_eq!(ev.event_type, "suricata.tls");
        assert_eq!(ev.dst_ip, ip("2001:db8::443"));
        assert_eq!(ev.message.as_deref(), Some("c2.example.net"));
        let ev = parse(SSH, &ctx()).unwrap();
        assert_eq!(ev.event_type, "suricata.ssh");
        assert_eq!(ev.message.as_deref(), Some("paramiko_5.1.0"));
    }

    #[test]
    fn other_event_types_are_kept() {
        let line = r#"{"timestamp":"2026-11-26T21:17:25.529043+0000","event_type":"stats","stats":{"uptime":5}}"#;
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.event_type, "suricata.stats");
        assert_eq!(ev.src_ip, None);
        let line = r#"{"timestamp":"2026-11-26T21:17:25Z","event_type":"fileinfo","fileinfo":{"filename":"/bot.sh","sha256":"ab12"}}"#;
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!((ev.file_hash.as_deref(), ev.message.as_deref()), (Some("ab12"), Some("/bot.sh")));
    }

    #[test]
    fn malformed_records() {
        let cases = [
            ("{", "invalid JSON"),
            ("[]", "expected a JSON object"),
            (r#"{"timestamp":"2026-11-26T21:17:25.529043+0000"}"#, "missing field event_type"),
            (r#"{"event_type":"alert"}"#, "missing field timestamp"),
            (r#"{"event_type":"alert","timestamp":"2026-11-26 +0000"}"#, "invalid timestamp"),
            (r#"{"event_type":"alert","timestamp":"2026-11-26T21:17:25Z","src_ip":"10.0.0"}"#, "src_ip"),
            (r#"{"event_type":"alert","timestamp":"2026-11-26T21:17:25Z","dest_ip":"x"}"#, "dest_ip"),
            (r#"{"event_type":"alert","timestamp":"2026-11-26T21:17:25Z","dest_port":"http"}"#, "dest_port"),
        ];
        for (input, reason) in cases {
            let e = parse(input, &ctx()).unwrap_err();
            assert!(e.0.contains(reason), "{input}: got {e:?}, want {reason:?}");
        }
    }
}
