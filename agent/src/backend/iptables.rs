//! The iptables backend (for hosts without nftables): one chain, `MINI_XDR`, in the filter
//! table of iptables and ip6tables, jumped to from INPUT, with one DROP rule per blocked
//! source. iptables has no per-rule timeout, so timed blocks are lifted by the agent itself
//! (and, after a restart, by the re-sync, which only re-adds blocks still in force).
//! Cleanup removes the jump and the chain, nothing else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Desired, Outcome, Runner};

pub const CHAIN: &str = "MINI_XDR";

pub struct Iptables {
    runner: Runner,
    /// Timed blocks and when the agent lifts them.
    expiries: HashMap<IpAddr, Instant>,
}

fn tool(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "iptables"
    } else {
        "ip6tables"
    }
}

impl Iptables {
    pub fn new(runner: Runner) -> Iptables {
        Iptables { runner, expiries: HashMap::new() }
    }

    async fn ensure_jump(&self, tool: &str) -> Result<(), String> {
        let jump = ["-w", "-C", "INPUT", "-j", CHAIN];
        if self.runner.run(tool, &jump, None).await.is_err() {
            self.runner.run(tool, &["-w", "-I", "INPUT", "1", "-j", CHAIN], None).await.map_err(|e| e.0)?;
        }
        Ok(())
    }

    /// Replace the chain's rules in one `iptables-restore --noflush` per family (other chains
    /// and tables are left as they are), then make sure INPUT jumps to it.
    pub async fn sync(&mut self, blocks: &[Desired]) -> anyhow::Result<String> {
        for v4 in [true, false] {
            let mut script = format!("*filter\n:{CHAIN} - [0:0]\n-F {CHAIN}\n");
            for d in blocks.iter().filter(|d| d.ip.is_ipv4() == v4) {
                script.push_str(&format!("-A {CHAIN} -s {} -j DROP\n", d.ip));
            }
            script.push_str("COMMIT\n");
            let restore = if v4 { "iptables-restore" } else { "ip6tables-restore" };
            self.runner.run(restore, &["-w", "--noflush"], Some(script)).await.map_err(|e| anyhow::anyhow!(e.0))?;
            self.ensure_jump(if v4 { "iptables" } else { "ip6tables" }).await.map_err(anyhow::Error::msg)?;
        }
        let now = Instant::now();
        self.expiries =
            blocks.iter().filter_map(|d| Some((d.ip, now + Duration::from_secs(d.timeout_secs?)))).collect();
        Ok(format!("iptables: chain {CHAIN} re-filled with {} blocked addresses", blocks.len()))
    }

    /// Idempotent: a rule that is there already is not added twice.
    pub async fn block(&mut self, ip: IpAddr, timeout_secs: Option<u64>) -> Outcome {
        let tool = tool(ip);
        let source = ip.to_string();
        let rule = ["-s", source.as_str(), "-j", "DROP"];
        let present = self.runner.run(tool, &[&["-w", "-C", CHAIN][..], &rule].concat(), None).await.is_ok();
        if !present {
            self.runner.run(tool, &[&["-w", "-A", CHAIN][..], &rule].concat(), None).await.map_err(|e| e.0)?;
        }
        self.ensure_jump(tool).await?;
        match timeout_secs {
            Some(s) => {
                self.expiries.insert(ip, Instant::now() + Duration::from_secs(s));
            }
            None => {
                self.expiries.remove(&ip);
            }
        }
        let timing = timeout_secs.map(|s| format!(" for {s}s")).unwrap_or_default();
        Ok(format!("{tool}: {ip} dropped in {CHAIN}{timing}{}", if present { " (already present)" } else { "" }))
    }

    /// Deletes every matching rule, so a duplicate left by hand goes too.
    pub async fn unblock(&mut self, ip: IpAddr) -> Outcome {
        let tool = tool(ip);
        let source = ip.to_string();
        let rule = ["-s", source.as_str(), "-j", "DROP"];
        let mut removed = 0;
        while self.runner.run(tool, &[&["-w", "-C", CHAIN][..], &rule].concat(), None).await.is_ok() {
            self.runner.run(tool, &[&["-w", "-D", CHAIN][..], &rule].concat(), None).await.map_err(|e| e.0)?;
            removed += 1;
        }
        self.expiries.remove(&ip);
        Ok(format!("{tool}: {ip} removed from {CHAIN} ({removed} rule(s))"))
    }

    pub async fn expire(&mut self, now: Instant) {
        let due: Vec<IpAddr> = self.expiries.iter().filter(|(_, t)| **t <= now).map(|(ip, _)| *ip).collect();
        for ip in due {
            match self.unblock(ip).await {
                Ok(_) => tracing::info!(%ip, "timed block lifted"),
                Err(e) => tracing::warn!(%ip, error = %e, "could not lift a timed block; will retry"),
            }
        }
    }

    pub async fn cleanup(&mut self) -> anyhow::Result<()> {
        for tool in ["iptables", "ip6tables"] {
            while self.runner.run(tool, &["-w", "-C", "INPUT", "-j", CHAIN], None).await.is_ok() {
                self.runner
                    .run(tool, &["-w", "-D", "INPUT", "-j", CHAIN], None)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.0))?;
            }
            // Absent chain: nothing to remove.
            if self.runner.run(tool, &["-w", "-S", CHAIN], None).await.is_ok() {
                self.runner.run(tool, &["-w", "-F", CHAIN], None).await.map_err(|e| anyhow::anyhow!(e.0))?;
                self.runner.run(tool, &["-w", "-X", CHAIN], None).await.map_err(|e| anyhow::anyhow!(e.0))?;
            }
        }
        self.expiries.clear();
        Ok(())
    }
}
