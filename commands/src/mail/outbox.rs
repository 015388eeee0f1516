//! The mailer: tails every org's log for mail-bearing events and delivers each at least once.
//!
//! Per org it keeps `mail_checkpoints.last_seq`, the `org_seq` below which every mail-bearing
//! event is settled (sent, given up, or moot). Each pass reads the mail-bearing events after
//! it (only up to the org's committed head, so none is skipped), asks each message's
//! `mail-<event id>` stream what is due ([`MailDelivery::next_step`]), sends what is due and
//! records the outcome there. A message waiting for its retry holds the checkpoint back, so a
//! restart finds it again; the outcome is recorded with a deterministic event id per attempt,
//! so two mailers racing on one message record it once.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;
use xdr_domain::ids::OrgId;
use xdr_domain::mail::{MailCommand, MailDelivery, NextStep, RetryPolicy};
use xdr_domain::EventMetadata;

use super::compose::{compose, Composed, MailIdentity, MAIL_BEARING};
use super::transport::{MailTransport, TransportConfig, TransportConfigError};
use crate::auth::{Clock, LinkTokens};
use crate::handler::{self, CommandError};
use crate::store::{EventStore, StoreError, StoredEvent, NOTIFY_CHANNEL};

/// Mail-bearing events read per org per pass.
pub const MAIL_BATCH: i64 = 200;

/// The mailer's settings (`XDR_SMTP_URL`/`XDR_MAIL_DIR`, `XDR_MAIL_FROM`, `XDR_PUBLIC_URL`,
/// `XDR_MAIL_RETRY_BASE_MS`, `XDR_MAIL_MAX_ATTEMPTS`).
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: TransportConfig,
    pub identity: MailIdentity,
    pub retry: RetryPolicy,
    /// A pass runs at least this often even without a commit notification.
    pub poll_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mailer store error: {0}")]
    Store(#[from] StoreError),
    #[error("mailer cannot read a stored event: {0}")]
    Corrupt(String),
}

impl<E: std::fmt::Display> From<CommandError<E>> for MailError {
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Store(s) => MailError::Store(s),
            CommandError::Corrupt(c) => MailError::Corrupt(c),
            CommandError::Domain(d) => MailError::Corrupt(d.to_string()),
        }
    }
}

impl From<sqlx::Error> for MailError {
    fn from(e: sqlx::Error) -> Self {
        MailError::Store(StoreError::Database(e))
    }
}

pub struct Mailer {
    store: EventStore,
    transport: MailTransport,
    links: LinkTokens,
    identity: MailIdentity,
    retry: RetryPolicy,
    poll_interval: Duration,
    clock: Clock,
}

impl Mailer {
    pub fn new(
        store: EventStore,
        config: MailConfig,
        links: LinkTokens,
        clock: Clock,
    ) -> Result<Mailer, TransportConfigError> {
        Ok(Mailer {
            store,
            transport: MailTransport::new(&config.transport)?,
            links,
            identity: config.identity,
            retry: config.retry,
            poll_interval: config.poll_interval,
            clock,
        })
    }

    /// One pass over every org. Returns when the earliest waiting message is due, if any.
    pub async fn run_once(&self) -> Result<Option<DateTime<Utc>>, MailError> {
        let mut earliest: Option<DateTime<Utc>> = None;
        for (org, head) in self.store.org_heads().await? {
            if let Some(due) = self.pass_org(org, head).await? {
                earliest = Some(earliest.map_or(due, |e| e.min(due)));
            }
        }
        Ok(earliest)
    }

    async fn pass_org(&self, org: OrgId, head: i64) -> Result<Option<DateTime<Utc>>, MailError> {
        let cursor = checkpoint(self.store.pool(), org).await?;
        if head <= cursor {
            return Ok(None);
        }
        let events = mail_bearing_events(&self.store, org, cursor, head).await?;
        let full_batch = events.len() as i64 == MAIL_BATCH;
        let mut settled_to = if full_batch { cursor } else { head };
        let mut earliest = None;
        let mut blocked = false;
        for stored in &events {
            let waiting = match self.deliver(org, stored).await {
                Ok(waiting) => waiting,
                Err(e) => {
                    tracing::warn!(%org, org_seq = stored.org_seq, error = %e, "mail not handled; retrying next pass");
                    Some(self.clock.now() + chrono::Duration::from_std(self.poll_interval).unwrap_or_default())
                }
            };
            match waiting {
                Some(due) => {
                    earliest = Some(earliest.map_or(due, |e: DateTime<Utc>| e.min(due)));
                    if !blocked {
                        settled_to = stored.org_seq - 1;
                        blocked = true;
                    }
                }
                None if !blocked && full_batch => settled_to = stored.org_seq,
                None => {}
            }
        }
        if settled_to > cursor {
            save_checkpoint(self.store.pool(), org, settled_to).await?;
        }
        Ok(earliest)
    }

    /// Handle one mail-bearing event; `Some(due)` while it still waits for an attempt.
    async fn deliver(&self, org: OrgId, stored: &StoredEvent) -> Result<Option<DateTime<Utc>>, MailError> {
        let stream = format!("mail-{}", stored.event_id);
        let (state, _) = handler::load::<MailDelivery>(&self.store, org, &stream).await?;
        let now = self.clock.now();
        let attempt = match state.next_step(now) {
            NextStep::Settled => return Ok(None),
            NextStep::WaitUntil(due) => return Ok(Some(due)),
            NextStep::Attempt(n) => n,
        };
        let message_id = self.identity.message_id(org, stored.event_id);
        let mail = match compose(&self.store, &self.links, &self.identity, stored, now).await? {
            Composed::Send(mail) => mail,
            Composed::Nothing(why) => {
                tracing::debug!(%org, event_id = %stored.event_id, why, "no mail to send");
                return Ok(None);
            }
            Composed::Impossible(reason) => {
                tracing::warn!(%org, event_id = %stored.event_id, %reason, "mail cannot be sent; giving up");
                let give_up = RetryPolicy { max_attempts: attempt, ..self.retry };
                return self.record_failure(org, &stream, stored.event_id, &message_id, attempt, reason, give_up).await;
            }
        };
        match self.transport.send(mail.message, &mail.message_id).await {
            Ok(()) => {
                let command = MailCommand::RecordSent {
                    source_event_id: stored.event_id,
                    message_id,
                    attempt,
                    now: self.clock.now(),
                };
                self.record(org, &stream, stored.event_id, attempt, command).await?;
                tracing::info!(%org, message_id = %mail.message_id, attempt, "mail sent");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(%org, message_id = %mail.message_id, attempt, error = %e, "mail attempt failed");
                let policy = if e.permanent { RetryPolicy { max_attempts: attempt, ..self.retry } } else { self.retry };
                self.record_failure(org, &stream, stored.event_id, &message_id, attempt, e.reason, policy).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_failure(
        &self,
        org: OrgId,
        stream: &str,
        source_event_id: Uuid,
        message_id: &str,
        attempt: u32,
        reason: String,
        policy: RetryPolicy,
    ) -> Result<Option<DateTime<Utc>>, MailError> {
        let now = self.clock.now();
        let command = MailCommand::RecordFailed {
            source_event_id,
            message_id: message_id.to_owned(),
            attempt,
            reason,
            policy,
            now,
        };
        self.record(org, stream, source_event_id, attempt, command).await?;
        Ok(policy.retry_at(attempt, now))
    }

    /// Append the outcome; a racing mailer that recorded this attempt first wins quietly.
    async fn record(
        &self,
        org: OrgId,
        stream: &str,
        source: Uuid,
        attempt: u32,
        command: MailCommand,
    ) -> Result<(), MailError> {
        let command_id = Uuid::new_v5(&source, format!("mail-attempt-{attempt}").as_bytes());
        match handler::execute::<MailDelivery>(
            &self.store,
            org,
            stream,
            &command,
            &EventMetadata::system("mailer"),
            Some(command_id),
        )
        .await
        {
            Ok(_) | Err(CommandError::Domain(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Run passes until `shutdown`: after every commit notification, at the next retry due, and at
/// least every poll interval.
pub async fn run_mailer(mailer: Mailer, shutdown: impl Future<Output = ()>) -> Result<(), MailError> {
    let mut listener = PgListener::connect_with(mailer.store.pool()).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    tracing::info!(transport = %mailer.transport.describe(), "mailer running");
    tokio::pin!(shutdown);
    loop {
        let due = match mailer.run_once().await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "mail pass failed");
                None
            }
        };
        let mut wait = mailer.poll_interval;
        if let Some(due) = due {
            let until_due = (due - mailer.clock.now()).to_std().unwrap_or_default();
            wait = wait.min(until_due);
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
            notified = listener.recv() => {
                if let Err(e) = notified {
                    tracing::warn!(error = %e, "mailer listener failed; polling");
                    tokio::time::sleep(mailer.poll_interval).await;
                }
            }
        }
    }
}

async fn mail_bearing_events(
    store: &EventStore,
    org: OrgId,
    after: i64,
    head: i64,
) -> Result<Vec<StoredEvent>, MailError> {
    let mut tx = crate::db::begin_org_tx(store.pool(), org).await?;
    let mut events = crate::store::read_range_of_types(&mut tx, org, after, head, Some(MAIL_BEARING.to_vec())).await?;
    tx.commit().await?;
    // One pass handles at most a batch; the checkpoint then stops at the batch's last event.
    events.truncate(MAIL_BATCH as usize);
    Ok(events)
}

/// The mailer's position in one org's log.
pub async fn checkpoint(pool: &sqlx::PgPool, org: OrgId) -> Result<i64, sqlx::Error> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM mail_checkpoints WHERE org_id = $1")
        .bind(org.0)
        .fetch_optional(pool)
        .await?;
    Ok(seq.unwrap_or(0))
}

async fn save_checkpoint(pool: &sqlx::PgPool, org: OrgId, seq: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mail_checkpoints (org_id, last_seq) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO UPDATE SET last_seq = GREATEST(mail_checkpoints.last_seq, EXCLUDED.last_seq)",
    )
    .bind(org.0)
    .bind(seq)
    .execute(pool)
    .await?;
    Ok(())
}
