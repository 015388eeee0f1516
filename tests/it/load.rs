//! The load the fault suite and the scale-out tests run: brute-force sources that must each
//! open exactly one incident, and copies of the real Cowrie log under their own addresses;
//! and how their outcome is read.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

use crate::support::repo;

/// Brute-force sources generated for the load: each must open exactly one incident.
pub const BRUTE_FORCE_SOURCES: usize = 6;
/// Failed logins per brute-force source, within 40 s: above the rule's "high" bound of 12.
pub const FAILURES_PER_SOURCE: usize = 20;

pub fn brute_force_sources() -> Vec<String> {
    (1..=BRUTE_FORCE_SOURCES).map(|n| format!("203.0.113.{n}")).collect()
}

/// Cowrie failed logins, 20 per source within 40 s, a few minutes ago.
pub fn brute_force_records() -> Vec<Value> {
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut records = Vec::new();
    for (s, ip) in brute_force_sources().iter().enumerate() {
        for i in 0..FAILURES_PER_SOURCE {
            let at = start + chrono::Duration::seconds(2 * i as i64);
            records.push(json!({
                "eventid": "cowrie.login.failed", "session": format!("bf{s:02}{i:02}"), "src_ip": ip,
                "src_port": 40000 + i, "dst_ip": "192.0.2.10", "dst_port": 22, "username": "root",
                "password": format!("guess-{i}"), "sensor": "lab", "protocol": "ssh",
                "timestamp": at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "message": format!("login attempt [root/guess-{i}] failed"),
            }));
        }
    }
    records
}

/// The real Cowrie log (shared/data/real-logs, copied into the domain's fixtures), copy
/// `copy` of it: its loopback attackers `127.0.0.n` become `10.<copy>.0.n`.
pub fn real_log_copy(copy: usize) -> Vec<Value> {
    let log = std::fs::read_to_string(repo("domain/tests/fixtures/cowrie.json")).unwrap();
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            if let Some(ip) = record["src_ip"].as_str() {
                record["src_ip"] = json!(ip.replace("127.0.", &format!("10.{copy}.")));
            }
            if let Some(session) = record["session"].as_str() {
                record["session"] = json!(format!("{session}-{copy}"));
            }
            if let Some(uuid) = record["uuid"].as_str() {
                record["uuid"] = json!(format!("{uuid}-{copy}"));
            }
            record
        })
        .collect()
}

/// (host in the real log, category, severity) of each copy's incidents.
pub fn incidents_per_copy(
    incidents: &BTreeMap<String, Vec<(String, String)>>,
    copies: usize,
) -> Vec<BTreeSet<(String, String, String)>> {
    let mut per_copy = vec![BTreeSet::new(); copies];
    for (ip, list) in incidents {
        if let Some((copy, host)) = source_in_log(ip) {
            for (category, severity) in list {
                per_copy[copy].insert((host.clone(), category.clone(), severity.clone()));
            }
        }
    }
    per_copy
}

/// `10.<copy>.0.n` → `n`: the source as the real log names it.
fn source_in_log(ip: &str) -> Option<(usize, String)> {
    let rest = ip.strip_prefix("10.")?;
    let (copy, host) = rest.split_once(".0.")?;
    Some((copy.parse().ok()?, host.to_owned()))
}

/// The digest a `mini-xdr digest` run printed.
pub fn digest(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().find(|w| w.len() == 64).unwrap_or_else(|| panic!("no digest in {text}")).to_owned()
}
