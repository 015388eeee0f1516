//! The mail outbox's bookkeeping: one `mail-<source event id>` stream per message that an
//! event asks for (an invitation, a reset link). The source event *is* the outbox entry; this
//! stream records what became of it: sent once ([`EmailSent`]), or failed attempts with the
//! time of the next ([`EmailFailed`]), until the retry budget is spent.
//!
//! Pure: the sender passes `now` and the outcome of its SMTP transaction in.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::Event;

/// Event: the SMTP server accepted the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailSent {
    /// The event that asked for the mail.
    pub source_event_id: Uuid,
    /// `Message-ID` header, derived from the source event: a resend after a crash carries the
    /// same one, so the receiving side can drop the duplicate.
    pub message_id: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
}

/// Event: an attempt failed. `retry_at: None` means the sender gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailFailed {
    pub source_event_id: Uuid,
    pub message_id: String,
    pub attempt: u32,
    /// What the server or the connection said (never the message body).
    pub reason: String,
    pub retry_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// Exponential backoff: attempt `n` failed → wait `base · 2^(n-1)`, at most `cap`; after
/// `max_attempts` failures, give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::seconds(2), cap: Duration::minutes(10), max_attempts: 10 }
    }
}

impl RetryPolicy {
    /// When to try again after attempt `attempt` failed at `now`; `None`: give up.
    pub fn retry_at(&self, attempt: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if attempt >= self.max_attempts {
            return None;
        }
        let factor = 1i32.checked_shl(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let wait = self.base.checked_mul(factor).unwrap_or(self.cap).min(self.cap);
        Some(now + wait)
    }
}

/// What the sender should do about one message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Sent, or given up: nothing more, ever.
    Settled,
    /// A failed attempt asked to wait until then.
    WaitUntil(DateTime<Utc>),
    /// Make attempt number `n` (1-based).
    Attempt(u32),
}

/// The outcome of one attempt, as the sender saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum MailCommand {
    RecordSent {
        source_event_id: Uuid,
        message_id: String,
        attempt: u32,
        now: DateTime<Utc>,
    },
    RecordFailed {
        source_event_id: Uuid,
        message_id: String,
        attempt: u32,
        reason: String,
        policy: RetryPolicy,
        now: DateTime<Utc>,
    },
}

/// State of one `mail-<source event id>` stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MailDelivery {
    pub sent: bool,
    pub attempts: u32,
    pub retry_at: Option<DateTime<Utc>>,
    pub gave_up: bool,
}

impl MailDelivery {
    pub fn next_step(&self, now: DateTime<Utc>) -> NextStep {
        if self.sent || self.gave_up {
            return NextStep::Settled;
        }
        match self.retry_at {
            Some(at) if at > now => NextStep::WaitUntil(at),
            _ => NextStep::Attempt(self.attempts + 1),
        }
    }
}

/// Why an outcome cannot be recorded: it is not the attempt due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("attempt {attempt} is not the one due (settled or already recorded)")]
pub struct StaleAttempt {
    pub attempt: u32,
}

impl Aggregate for MailDelivery {
    type Command = MailCommand;
    type Error = StaleAttempt;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::EmailSent(e) => {
                self.sent = true;
                self.attempts = self.attempts.max(e.attempt);
            }
            Event::EmailFailed(e) => {
                self.attempts = self.attempts.max(e.attempt);
                self.retry_at = e.retry_at;
                self.gave_up = e.retry_at.is_none();
            }
            _ => {}
        }
    }

    fn decide(&self, command: &MailCommand) -> Result<Vec<Event>, StaleAttempt> {
        let attempt = match command {
            MailCommand::RecordSent { attempt, .. } | MailCommand::RecordFailed { attempt, .. } => *attempt,
        };
        if self.sent || self.gave_up || attempt != self.attempts + 1 {
            return Err(StaleAttempt { attempt });
        }
        Ok(vec![match command {
            MailCommand::RecordSent { source_event_id, message_id, attempt, now } => Event::EmailSent(EmailSent {
                source_event_id: *source_event_id,
                message_id: message_id.clone(),
                attempt: *attempt,
                at: *now,
            }),
            MailCommand::RecordFailed { source_event_id, message_id, attempt, reason, policy, now } => {
                Event::EmailFailed(EmailFailed {
                    source_event_id: *source_event_id,
                    message_id: message_id.clone(),
                    attempt: *attempt,
                    reason: reason.clone(),
                    retry_at: policy.retry_at(*attempt, *now),
                    at: *now,
                })
            }
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(s)
    }

    fn failed(attempt: u32, now: i64) -> MailCommand {
        MailCommand::RecordFailed {
            source_event_id: Uuid::nil(),
            message_id: "<m@x>".into(),
            attempt,
            reason: "421 try later".into(),
            policy: RetryPolicy { base: Duration::seconds(2), cap: Duration::seconds(10), max_attempts: 4 },
            now: at(now),
        }
    }

    fn run(history: &[MailCommand]) -> MailDelivery {
        let mut state = MailDelivery::default();
        for c in history {
            for e in state.decide(c).unwrap() {
                state.apply(&e);
            }
        }
        state
    }

    #[test]
    fn it_should_back_off_exponentially_up_to_the_cap_and_then_give_up() {
        let state = run(&[failed(1, 0)]);
        assert_eq!(state.next_step(at(1)), NextStep::WaitUntil(at(2)));
        assert_eq!(state.next_step(at(2)), NextStep::Attempt(2));
        let state = run(&[failed(1, 0), failed(2, 2)]);
        assert_eq!(state.next_step(at(3)), NextStep::WaitUntil(at(6)));
        let state = run(&[failed(1, 0), failed(2, 2), failed(3, 6)]);
        assert_eq!(state.next_step(at(7)), NextStep::WaitUntil(at(14)));
        let state = run(&[failed(1, 0), failed(2, 2), failed(3, 6), failed(4, 14)]);
        assert_eq!((state.gave_up, state.next_step(at(1000))), (true, NextStep::Settled));
    }

    #[test]
    fn it_should_settle_once_sent_and_refuse_a_second_outcome() {
        let sent = MailCommand::RecordSent {
            source_event_id: Uuid::nil(),
            message_id: "<m@x>".into(),
            attempt: 2,
            now: at(3),
        };
        let state = run(&[failed(1, 0), sent.clone()]);
        assert_eq!(state.next_step(at(4)), NextStep::Settled);
        assert_eq!(state.decide(&sent), Err(StaleAttempt { attempt: 2 }));
        assert_eq!(MailDelivery::default().decide(&failed(2, 0)), Err(StaleAttempt { attempt: 2 }));
    }

    #[test]
    fn a_fresh_message_is_due_at_once() {
        assert_eq!(MailDelivery::default().next_step(at(0)), NextStep::Attempt(1));
    }
}
