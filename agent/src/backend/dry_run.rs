//! The dry-run backend: logs what it would do and keeps the set in memory, so an operator can
//! watch an agent's decisions (and tests can observe them) without touching a firewall.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use xdr_domain::response::action::ActionKind;

use super::{Desired, Outcome};

/// Addresses named one by one in a re-sync's log line; beyond this only counts.
const NAMED_IN_SUMMARY: usize = 20;

#[derive(Debug, Default)]
pub struct DryRun {
    /// Address → when its timed block lifts (`None`: until unblocked).
    blocked: HashMap<IpAddr, Option<Instant>>,
}

fn describe(timeout_secs: Option<u64>) -> String {
    match timeout_secs {
        Some(s) => format!("for {s}s"),
        None => "until unblocked".into(),
    }
}

impl DryRun {
    pub fn sync(&mut self, blocks: &[Desired]) -> String {
        let now = Instant::now();
        let wanted: HashMap<IpAddr, Option<Instant>> =
            blocks.iter().map(|d| (d.ip, d.timeout_secs.map(|s| now + Duration::from_secs(s)))).collect();
        let mut removed: Vec<IpAddr> = self.blocked.keys().filter(|ip| !wanted.contains_key(ip)).copied().collect();
        let mut added: Vec<IpAddr> = wanted.keys().filter(|ip| !self.blocked.contains_key(ip)).copied().collect();
        removed.sort();
        added.sort();
        for d in blocks {
            tracing::debug!("dry-run: would block {} {}", d.ip, describe(d.timeout_secs));
        }
        self.blocked = wanted;
        let list = |ips: &[IpAddr]| {
            let mut s = ips.iter().take(NAMED_IN_SUMMARY).map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ");
            if ips.len() > NAMED_IN_SUMMARY {
                s.push_str(&format!(", … {} more", ips.len() - NAMED_IN_SUMMARY));
            }
            s
        };
        format!(
            "dry-run: re-sync would add {} [{}] and remove {} [{}]; {} blocked",
            added.len(),
            list(&added),
            removed.len(),
            list(&removed),
            self.blocked.len()
        )
    }

    pub fn block(&mut self, ip: IpAddr, timeout_secs: Option<u64>) -> Outcome {
        self.blocked.insert(ip, timeout_secs.map(|s| Instant::now() + Duration::from_secs(s)));
        let detail = format!("dry-run: would block {ip} {}", describe(timeout_secs));
        tracing::info!("{detail}");
        Ok(detail)
    }

    pub fn unblock(&mut self, ip: IpAddr) -> Outcome {
        let was = self.blocked.remove(&ip).is_some();
        let detail = format!("dry-run: would unblock {ip}{}", if was { "" } else { " (was not blocked)" });
        tracing::info!("{detail}");
        Ok(detail)
    }

    pub fn other(&mut self, kind: ActionKind, target: &str) -> Outcome {
        let detail = format!("dry-run: would {} {target}", kind.as_str());
        tracing::info!("{detail}");
        Ok(detail)
    }

    pub fn expire(&mut self, now: Instant) {
        self.blocked.retain(|ip, until| match until {
            Some(t) if *t <= now => {
                tracing::info!("dry-run: block on {ip} timed out");
                false
            }
            _ => true,
        });
    }

    pub fn cleanup(&mut self) {
        tracing::info!("dry-run: would remove {} blocks", self.blocked.len());
        self.blocked.clear();
    }

    #[cfg(test)]
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocked.contains_key(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_resync_adds_what_the_server_has_and_removes_what_it_does_not() {
        let mut b = DryRun::default();
        b.block(ip("203.0.113.1"), None).unwrap();
        b.block(ip("203.0.113.2"), Some(60)).unwrap();
        let summary = b.sync(&[
            Desired { ip: ip("203.0.113.2"), timeout_secs: Some(30) },
            Desired { ip: ip("2001:db8::7"), timeout_secs: None },
        ]);
        assert!(summary.contains("add 1 [2001:db8::7]") && summary.contains("remove 1 [203.0.113.1]"), "{summary}");
        assert!(!b.is_blocked(ip("203.0.113.1")) && b.is_blocked(ip("2001:db8::7")));
        b.unblock(ip("203.0.113.2")).unwrap();
        b.expire(Instant::now() + Duration::from_secs(3600));
        assert!(b.is_blocked(ip("2001:db8::7")), "a block without a duration never times out");
    }
}
