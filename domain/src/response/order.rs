//! The wire contract between the server and enforcement agents: an order published on
//! `xdr.actions.<org_id>` and the agent's result on `xdr.actions.results.<org_id>`.
//! JSON, versioned by field presence; agents ignore fields they do not know.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ActionId, OrgId};
use crate::response::action::ActionKind;

/// One attempt at one action, as an agent receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOrder {
    pub action_id: ActionId,
    pub org_id: OrgId,
    pub attempt: u32,
    pub kind: ActionKind,
    pub target: String,
    /// For a timed block: how long the agent's own firewall should keep it (nftables element
    /// timeout), so a block lifts even if the unblock order never arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    pub issued_at: DateTime<Utc>,
    /// After this the server has moved on (retried or failed): an agent that was offline
    /// must not act on a stale order.
    pub deadline: DateTime<Utc>,
}

/// An agent's answer to one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    pub action_id: ActionId,
    pub org_id: OrgId,
    pub attempt: u32,
    /// `agentkey:<id>`, filled in by the server from the verified key, never by the agent.
    pub agent: String,
    pub ok: bool,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// A block the server believes is in force; what an agent re-syncs its set from on start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveBlock {
    pub action_id: ActionId,
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}
