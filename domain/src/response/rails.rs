//! Safety rails: addresses a block may never touch, whoever asks.
//!
//! A containment system that can firewall the org's own gateway or DNS resolver is a
//! self-inflicted outage waiting to happen, so the check lives in the action's `decide` and
//! applies to analysts and policies alike.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Protected by default in every org: the machine's own loopback.
pub const DEFAULT_PROTECTED: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Ranges that are not routable on the internet: blocked only when the org opts in (an
/// internal attacker is real, but so is locking out half the office by mistake).
const PRIVATE_RANGES: [&str; 7] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum RailViolation {
    #[error("it is in the org's protected range {0}")]
    Protected(String),
    #[error("it is in the private range {0} and the org has not allowed blocking private addresses")]
    PrivateRange(String),
    #[error("it is the unspecified or a multicast/broadcast address")]
    Unblockable,
}

/// What one org allows a block to touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyRails {
    pub protected: Vec<IpNet>,
    pub allow_private: bool,
}

impl Default for SafetyRails {
    fn default() -> Self {
        SafetyRails { protected: parse_ranges(&DEFAULT_PROTECTED).expect("valid defaults"), allow_private: false }
    }
}

/// Parse CIDR strings (a bare address means just that address).
pub fn parse_ranges<S: AsRef<str>>(ranges: &[S]) -> Result<Vec<IpNet>, String> {
    ranges.iter().map(|r| parse_range(r.as_ref())).collect()
}

pub fn parse_range(range: &str) -> Result<IpNet, String> {
    let range = range.trim();
    range
        .parse::<IpNet>()
        .or_else(|_| range.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{range:?} is not an IP address or CIDR range"))
}

/// The IPv4 address an IPv6 address stands for, if it embeds one a packet can reach:
/// IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`, RFC 6052) and 6to4
/// (`2002:aabb:ccdd::/48`, RFC 3056). A rail on `10.0.0.0/8` must hold for all of them.
pub fn embedded_ipv4(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let from = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x2002, hi, lo, ..] => Some(from(hi, lo)),
        _ => None,
    }
}

impl SafetyRails {
    /// May `ip` be blocked? An IPv6 form of an IPv4 address is held to that address's rails
    /// as well as its own.
    pub fn check(&self, ip: IpAddr) -> Result<(), RailViolation> {
        if let Some(v4) = embedded_ipv4(ip) {
            self.check_one(IpAddr::V4(v4))?;
        }
        self.check_one(ip)
    }

    fn check_one(&self, ip: IpAddr) -> Result<(), RailViolation> {
        let unblockable = ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if unblockable {
            return Err(RailViolation::Unblockable);
        }
        if let Some(net) = self.protected.iter().find(|n| n.contains(&ip)) {
            return Err(RailViolation::Protected(net.to_string()));
        }
        if !self.allow_private {
            let private = parse_ranges(&PRIVATE_RANGES).expect("valid constants");
            if let Some(net) = private.iter().find(|n| n.contains(&ip)) {
                return Err(RailViolation::PrivateRange(net.to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_protect_loopback_and_private_ranges_but_not_the_internet() {
        let rails = SafetyRails::default();
        assert_eq!(rails.check(ip("127.0.0.53")), Err(RailViolation::Protected("127.0.0.0/8".into())));
        assert_eq!(rails.check(ip("::1")), Err(RailViolation::Protected("::1/128".into())));
        assert_eq!(rails.check(ip("192.168.1.10")), Err(RailViolation::PrivateRange("192.168.0.0/16".into())));
        assert_eq!(rails.check(ip("0.0.0.0")), Err(RailViolation::Unblockable));
        assert_eq!(rails.check(ip("255.255.255.255")), Err(RailViolation::Unblockable));
        assert_eq!(rails.check(ip("203.0.113.7")), Ok(()));
        assert_eq!(rails.check(ip("2001:db8::7")), Ok(()));
    }

    #[test]
    fn an_org_declares_its_own_ranges_and_may_opt_into_private_blocks() {
        let rails =
            SafetyRails { protected: parse_ranges(&["198.51.100.0/24", "203.0.113.1"]).unwrap(), allow_private: true };
        assert_eq!(rails.check(ip("198.51.100.200")), Err(RailViolation::Protected("198.51.100.0/24".into())));
        assert_eq!(rails.check(ip("203.0.113.1")), Err(RailViolation::Protected("203.0.113.1/32".into())));
        assert_eq!(rails.check(ip("203.0.113.2")), Ok(()));
        assert_eq!(rails.check(ip("10.0.0.5")), Ok(()));
        // The org replaced the defaults, so loopback is blockable here (a lab honeypot on 127/8).
        assert_eq!(rails.check(ip("127.0.0.9")), Ok(()));
    }

    #[test]
    fn ipv6_forms_of_a_protected_or_private_ipv4_address_are_held_to_its_rails() {
        let rails = SafetyRails::default();
        let loopback = Err(RailViolation::Protected("127.0.0.0/8".into()));
        let ten = Err(RailViolation::PrivateRange("10.0.0.0/8".into()));
        assert_eq!(rails.check(ip("::ffff:127.0.0.1")), loopback);
        assert_eq!(rails.check(ip("::ffff:10.0.0.1")), ten);
        assert_eq!(rails.check(ip("64:ff9b::10.0.0.1")), ten);
        assert_eq!(rails.check(ip("2002:0a00:0001::1")), ten);
        assert_eq!(rails.check(ip("64:ff9b::c0a8:0101")), Err(RailViolation::PrivateRange("192.168.0.0/16".into())));
        assert_eq!(rails.check(ip("::ffff:0.0.0.0")), Err(RailViolation::Unblockable));
        // An org's own IPv4 range protects the mapped form too.
        let own = SafetyRails { protected: parse_ranges(&["198.51.100.0/24"]).unwrap(), allow_private: true };
        assert_eq!(own.check(ip("::ffff:198.51.100.9")), Err(RailViolation::Protected("198.51.100.0/24".into())));
        assert_eq!(rails.check(ip("::ffff:203.0.113.7")), Ok(()));
        assert_eq!(rails.check(ip("2001:db8::10.0.0.1")), Ok(()));
    }

    #[test]
    fn ranges_parse_with_clear_errors() {
        assert_eq!(parse_range(" 10.1.2.3/8 ").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_range("10.0.0.0/33").unwrap_err().contains("not an IP address or CIDR"));
    }
}
