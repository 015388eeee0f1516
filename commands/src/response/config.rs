//! Names and timeouts of the response pipeline. Every subject and stream takes a prefix, so
//! tests (and tenants of a shared NATS) each get their own.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseConfig {
    /// Prepended to every subject, e.g. `""` in production, `"t1234."` in a test.
    pub subject_prefix: String,
    /// JetStream stream of orders (`<prefix>xdr.actions.<org_id>`).
    pub actions_stream: String,
    /// JetStream stream of agents' results (`<prefix>xdr.actions.results.<org_id>`).
    pub results_stream: String,
    /// An order not answered within this is sent again (`XDR_ACTION_ACK_TIMEOUT_SECS`).
    pub ack_timeout: Duration,
    /// Attempts before an unanswered action is marked failed (`XDR_ACTION_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// How long orders and results are kept in their streams.
    pub retention: Duration,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            subject_prefix: String::new(),
            actions_stream: "XDR_ACTIONS".into(),
            results_stream: "XDR_ACTION_RESULTS".into(),
            ack_timeout: Duration::from_secs(30),
            max_attempts: 3,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl ResponseConfig {
    /// A config whose names are all unique to `prefix` (tests).
    pub fn with_prefix(prefix: &str) -> Self {
        let tag: String = prefix.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        ResponseConfig {
            subject_prefix: prefix.to_owned(),
            actions_stream: format!("XDR_ACTIONS_{tag}"),
            results_stream: format!("XDR_ACTION_RESULTS_{tag}"),
            ..ResponseConfig::default()
        }
    }

    /// `<prefix>xdr.dlq.results`: results that cannot be recorded (kept by the dead-letter
    /// stream, `<prefix>xdr.dlq.>`).
    pub fn results_dlq_subject(&self) -> String {
        format!("{}xdr.dlq.results", self.subject_prefix)
    }

    /// `<prefix>xdr.actions.<org_id>`: the org's orders.
    pub fn actions_subject(&self, org: uuid::Uuid) -> String {
        format!("{}xdr.actions.{org}", self.subject_prefix)
    }

    /// Every org's orders (one token after `xdr.actions.`, so results are not included).
    pub fn actions_wildcard(&self) -> String {
        format!("{}xdr.actions.*", self.subject_prefix)
    }

    /// `<prefix>xdr.actions.results.<org_id>`: the org's agents' answers.
    pub fn results_subject(&self, org: uuid::Uuid) -> String {
        format!("{}xdr.actions.results.{org}", self.subject_prefix)
    }

    pub fn results_wildcard(&self) -> String {
        format!("{}xdr.actions.results.*", self.subject_prefix)
    }

    /// The org a results subject names, if the subject is one of ours.
    pub fn org_of_results_subject(&self, subject: &str) -> Option<uuid::Uuid> {
        subject.strip_prefix(&self.subject_prefix)?.strip_prefix("xdr.actions.results.")?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_prefix_and_orders_never_overlap_results() {
        let c = ResponseConfig::with_prefix("t9.");
        let org = uuid::Uuid::from_u128(5);
        assert_eq!(c.actions_subject(org), format!("t9.xdr.actions.{org}"));
        assert_eq!(c.results_subject(org), format!("t9.xdr.actions.results.{org}"));
        assert_eq!(c.actions_stream, "XDR_ACTIONS_t9");
        assert_eq!(c.org_of_results_subject(&c.results_subject(org)), Some(org));
        assert_eq!(c.org_of_results_subject(&c.actions_subject(org)), None);
        assert_eq!(c.actions_wildcard(), "t9.xdr.actions.*");
    }
}
