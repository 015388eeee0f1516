//! The nftables backend. It owns exactly one table, `inet mini_xdr`: sets `blocked`
//! (IPv4) and `blocked6` (IPv6) with per-element timeouts, and chains on the input and forward
//! hooks that drop sources in them. A block is one element add; a timed block carries its
//! timeout, so the kernel lifts it even if the unblock order never arrives. Nothing outside
//! the table is ever read or written; cleanup deletes the table.
//!
//! Every change is one `nft -f -` script, which nft applies as one atomic transaction.

use std::fmt::Write;
use std::net::IpAddr;

use super::{Desired, Outcome, Runner};

pub const TABLE: &str = "mini_xdr";

pub struct Nftables {
    runner: Runner,
}

fn set_of(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "blocked"
    } else {
        "blocked6"
    }
}

fn element(ip: IpAddr, timeout_secs: Option<u64>) -> String {
    match timeout_secs {
        Some(s) => format!("{ip} timeout {}s", s.max(1)),
        None => ip.to_string(),
    }
}

/// The whole table with `blocks` in its sets. Declaring then deleting the table first makes
/// the script work whether or not the table exists, and the swap is atomic: there is no
/// moment without the blocks that stay.
pub fn table_script(blocks: &[Desired]) -> String {
    let elements = |v4: bool| {
        let list: Vec<String> =
            blocks.iter().filter(|d| d.ip.is_ipv4() == v4).map(|d| element(d.ip, d.timeout_secs)).collect();
        if list.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", list.join(", "))
        }
    };
    let mut s = String::new();
    let _ = writeln!(s, "table inet {TABLE} {{}}");
    let _ = writeln!(s, "delete table inet {TABLE}");
    let _ = writeln!(s, "table inet {TABLE} {{");
    let _ = writeln!(s, "  set blocked {{ type ipv4_addr; flags timeout;{} }}", elements(true));
    let _ = writeln!(s, "  set blocked6 {{ type ipv6_addr; flags timeout;{} }}", elements(false));
    for hook in ["input", "forward"] {
        let _ = writeln!(
            s,
            "  chain {hook} {{ type filter hook {hook} priority filter - 10; policy accept; \
             ip saddr @blocked drop; ip6 saddr @blocked6 drop; }}"
        );
    }
    let _ = writeln!(s, "}}");
    s
}

impl Nftables {
    pub fn new(runner: Runner) -> Nftables {
        Nftables { runner }
    }

    async fn apply(&self, script: String) -> Result<(), String> {
        self.runner.run("nft", &["-f", "-"], Some(script)).await.map(|_| ()).map_err(|e| e.0)
    }

    pub async fn sync(&mut self, blocks: &[Desired]) -> anyhow::Result<String> {
        self.apply(table_script(blocks)).await.map_err(anyhow::Error::msg)?;
        Ok(format!("nftables: table inet {TABLE} re-created with {} blocked addresses", blocks.len()))
    }

    /// Add-then-delete-then-add: whether or not the address is in the set already, it ends up
    /// there exactly once with the new timeout (an add alone keeps an existing timeout).
    pub async fn block(&mut self, ip: IpAddr, timeout_secs: Option<u64>) -> Outcome {
        let set = set_of(ip);
        let script = format!(
            "add element inet {TABLE} {set} {{ {ip} }}\n\
             delete element inet {TABLE} {set} {{ {ip} }}\n\
             add element inet {TABLE} {set} {{ {} }}\n",
            element(ip, timeout_secs)
        );
        self.apply(script).await?;
        Ok(match timeout_secs {
            Some(s) => format!("nftables: {ip} added to {set} with timeout {s}s"),
            None => format!("nftables: {ip} added to {set}"),
        })
    }

    /// Add-then-delete, so removing an address that is not there succeeds too.
    pub async fn unblock(&mut self, ip: IpAddr) -> Outcome {
        let set = set_of(ip);
        let script =
            format!("add element inet {TABLE} {set} {{ {ip} }}\ndelete element inet {TABLE} {set} {{ {ip} }}\n");
        self.apply(script).await?;
        Ok(format!("nftables: {ip} removed from {set}"))
    }

    pub async fn cleanup(&mut self) -> anyhow::Result<()> {
        let script = format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\n");
        self.apply(script).await.map_err(anyhow::Error::msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_script_puts_each_family_in_its_set_with_timeouts() {
        let s = table_script(&[
            Desired { ip: "203.0.113.9".parse().unwrap(), timeout_secs: Some(600) },
            Desired { ip: "2001:db8::1".parse().unwrap(), timeout_secs: None },
        ]);
        assert!(s.contains("set blocked { type ipv4_addr; flags timeout; elements = { 203.0.113.9 timeout 600s }; }"));
        assert!(s.contains("set blocked6 { type ipv6_addr; flags timeout; elements = { 2001:db8::1 }; }"));
        assert!(s.starts_with("table inet mini_xdr {}\ndelete table inet mini_xdr\n"));
        let empty = table_script(&[]);
        assert!(!empty.contains("elements"), "an empty element list is a syntax error in nft");
    }
}
