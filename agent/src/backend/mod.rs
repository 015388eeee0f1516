//! Where an agent enforces blocks. Each backend owns one thing (an nftables table, an
//! iptables chain, or an in-memory set) and never touches anything else, so installing,
//! re-syncing and removing the agent leaves foreign firewall rules alone.

pub mod dry_run;
pub mod iptables;
pub mod nftables;

use std::net::IpAddr;
use std::time::Instant;
use xdr_domain::response::action::ActionKind;

/// One block the backend should hold: the address and, for a timed block, the seconds left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desired {
    pub ip: IpAddr,
    pub timeout_secs: Option<u64>,
}

/// What one operation did, or why it could not: becomes the result's `detail`.
pub type Outcome = Result<String, String>;

pub enum Backend {
    DryRun(dry_run::DryRun),
    Nftables(nftables::Nftables),
    Iptables(iptables::Iptables),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::DryRun(_) => "dry-run",
            Backend::Nftables(_) => "nftables",
            Backend::Iptables(_) => "iptables",
        }
    }

    /// Make the backend hold exactly `blocks` (the server's truth): add what is missing,
    /// remove what is not there. Returns a one-line summary.
    pub async fn sync(&mut self, blocks: &[Desired]) -> anyhow::Result<String> {
        match self {
            Backend::DryRun(b) => Ok(b.sync(blocks)),
            Backend::Nftables(b) => b.sync(blocks).await,
            Backend::Iptables(b) => b.sync(blocks).await,
        }
    }

    pub async fn block(&mut self, ip: IpAddr, timeout_secs: Option<u64>) -> Outcome {
        match self {
            Backend::DryRun(b) => b.block(ip, timeout_secs),
            Backend::Nftables(b) => b.block(ip, timeout_secs).await,
            Backend::Iptables(b) => b.block(ip, timeout_secs).await,
        }
    }

    pub async fn unblock(&mut self, ip: IpAddr) -> Outcome {
        match self {
            Backend::DryRun(b) => b.unblock(ip),
            Backend::Nftables(b) => b.unblock(ip).await,
            Backend::Iptables(b) => b.unblock(ip).await,
        }
    }

    /// Host isolation and notifications: only the dry-run backend "does" them (it logs); a
    /// firewall backend says so instead of pretending.
    pub fn other(&mut self, kind: ActionKind, target: &str) -> Outcome {
        match self {
            Backend::DryRun(b) => b.other(kind, target),
            _ => Err(format!("{} is unsupported on this backend ({})", kind.as_str(), self.name())),
        }
    }

    /// Lift timed blocks that are due, for backends without kernel timeouts.
    pub async fn expire(&mut self, now: Instant) {
        match self {
            Backend::DryRun(b) => b.expire(now),
            Backend::Nftables(_) => {}
            Backend::Iptables(b) => b.expire(now).await,
        }
    }

    /// Remove everything the backend owns.
    pub async fn cleanup(&mut self) -> anyhow::Result<()> {
        match self {
            Backend::DryRun(b) => {
                b.cleanup();
                Ok(())
            }
            Backend::Nftables(b) => b.cleanup().await,
            Backend::Iptables(b) => b.cleanup().await,
        }
    }
}

/// Runs the firewall tools, optionally inside a network namespace (`ip netns exec NAME`).
#[derive(Debug, Clone, Default)]
pub struct Runner {
    netns: Option<String>,
}

/// A tool ran and failed, or could not run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl Runner {
    pub fn new(netns: Option<String>) -> Runner {
        Runner { netns }
    }

    /// Run `program args…` with `stdin`, returning its stdout. Errors say which tool, and
    /// whether it is missing or lacks the privilege, rather than only echoing its stderr.
    pub async fn run(&self, program: &str, args: &[&str], stdin: Option<String>) -> Result<String, ToolError> {
        let mut argv: Vec<String> = match &self.netns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone(), program.into()],
            None => vec![program.into()],
        };
        argv.extend(args.iter().map(|a| a.to_string()));
        let program = program.to_owned();
        // The tools are quick and rare; a blocking thread keeps tokio's `process` feature out.
        tokio::task::spawn_blocking(move || run_blocking(&program, &argv, stdin))
            .await
            .map_err(|e| ToolError(format!("{e}")))?
    }
}

fn run_blocking(program: &str, argv: &[String], stdin: Option<String>) -> Result<String, ToolError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ToolError(format!("`{}` not found: install it (and {program})", argv[0])),
            _ => ToolError(format!("cannot run `{}`: {e}", argv[0])),
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(|e| ToolError(format!("cannot write to {program}: {e}")))?;
    }
    let output = child.wait_with_output().map_err(|e| ToolError(format!("{program} did not finish: {e}")))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let hint = if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
        " (not permitted: run the agent as root or with CAP_NET_ADMIN)"
    } else if stderr.contains("exec of") && stderr.contains("No such file") {
        " (not installed)"
    } else {
        ""
    };
    Err(ToolError(format!("{program} failed{hint}: {}", first_lines(&stderr, 6))))
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join(" | ")
}
