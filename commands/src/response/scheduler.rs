//! The durable scheduler's sweep: every action in `action_schedule` whose time has come —
//! an approved action nobody dispatched (a crash between request and send), an order whose
//! answer is overdue (send again or give up), a timed block that expired (lift it).
//!
//! The queue is a read model, so it survives restarts; the `Action` aggregate decides, with
//! fixed command ids, so two schedulers or a restarted one never act twice. Time comes in as
//! an argument, so tests drive the sweep with an injected clock.

use chrono::{DateTime, Utc};
use sqlx::Row;
use xdr_domain::ids::{ActionId, OrgId};

use super::actions::{dispatch_action, expire_block, handle_deadline, ResponseError};
use super::dispatch::Dispatcher;
use crate::handler::load;
use crate::store::{EventStore, StoreError};
use xdr_domain::response::action::{Action, ActionStatus};

/// Due rows handled per sweep at most (the rest wait for the next one).
pub const SWEEP_LIMIT: i64 = 500;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub dispatched: usize,
    pub retried_or_failed: usize,
    pub expired: usize,
    pub errors: usize,
}

/// Handle every action due at `now`. Errors on one action are logged and counted; the others
/// still run.
pub async fn sweep(store: &EventStore, dispatcher: &Dispatcher, now: DateTime<Utc>) -> Result<Sweep, StoreError> {
    let rows = sqlx::query(
        "SELECT org_id, action_id, reason FROM action_schedule WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
    )
    .bind(now)
    .bind(SWEEP_LIMIT)
    .fetch_all(store.pool())
    .await?;
    let mut done = Sweep::default();
    for row in rows {
        let org = OrgId(row.try_get("org_id")?);
        let action = ActionId(row.try_get("action_id")?);
        let reason: String = row.try_get("reason")?;
        let outcome = match reason.as_str() {
            "dispatch" => dispatch_if_approved(store, dispatcher, org, action, now).await.map(|sent| {
                done.dispatched += usize::from(sent);
            }),
            "deadline" => {
                handle_deadline(store, dispatcher, org, action, now).await.map(|_| done.retried_or_failed += 1)
            }
            "expiry" => expire_block(store, Some(dispatcher), org, action, now).await.map(|lifted| {
                done.expired += usize::from(lifted.is_some());
            }),
            other => {
                tracing::warn!(%org, %action, reason = other, "unknown schedule reason");
                Ok(())
            }
        };
        if let Err(e) = outcome {
            done.errors += 1;
            tracing::error!(%org, %action, reason, error = %e, "scheduled action step failed");
        }
    }
    Ok(done)
}

async fn dispatch_if_approved(
    store: &EventStore,
    dispatcher: &Dispatcher,
    org: OrgId,
    action: ActionId,
    now: DateTime<Utc>,
) -> Result<bool, ResponseError> {
    let (state, _) = load::<Action>(store, org, &action.stream_id()).await.map_err(ResponseError::Action)?;
    if state.status != ActionStatus::Approved || state.attempts != 0 {
        return Ok(false);
    }
    Ok(dispatch_action(store, dispatcher, org, action, 0, now).await?.order.is_some())
}

/// The scheduler role: sweep every `interval` with the wall clock until `shutdown` resolves.
/// A failed sweep (database down) is logged and retried at the next tick; the queue is a
/// read model, so nothing is lost while the scheduler is down or restarting.
pub async fn run_scheduler(
    store: EventStore,
    dispatcher: Dispatcher,
    interval: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match sweep(&store, &dispatcher, Utc::now()).await {
            Ok(done) if done != Sweep::default() => tracing::info!(?done, "scheduler sweep"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "scheduler sweep failed; retrying at the next tick"),
        }
    }
}
