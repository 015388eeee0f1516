//! The durable scheduler's sweep: every action whose time has come — an approved action
//! nobody dispatched (a crash between request and send), an order whose answer is overdue
//! (send again or give up), a timed block that expired (lift it).
//!
//! The times are decided in the domain and travel in the action events; the queue of due
//! actions is a read model the projections crate owns and answers through [`DueActions`], so
//! it survives restarts and the write side reads no read-model table. The `Action` aggregate
//! decides, with fixed command ids, so two schedulers or a restarted one never act twice.
//! Time comes in as an argument, so tests drive the sweep with an injected clock.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use xdr_domain::ids::{ActionId, OrgId};

use super::actions::{dispatch_action, expire_block, handle_deadline, ResponseError};
use super::dispatch::Dispatcher;
use crate::handler::load;
use crate::store::{EventStore, StoreError};
use xdr_domain::response::action::{Action, ActionStatus};

/// Due rows handled per sweep at most (the rest wait for the next one).
pub const SWEEP_LIMIT: i64 = 500;

/// Why an action is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueReason {
    /// Approved (or needing no approval) and not dispatched after its grace period.
    Dispatch,
    /// Dispatched and not answered by its deadline.
    Deadline,
    /// A timed block whose time is up.
    Expiry,
}

impl DueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DueReason::Dispatch => "dispatch",
            DueReason::Deadline => "deadline",
            DueReason::Expiry => "expiry",
        }
    }

    pub fn parse(s: &str) -> Option<DueReason> {
        [DueReason::Dispatch, DueReason::Deadline, DueReason::Expiry].into_iter().find(|r| r.as_str() == s)
    }
}

/// An action whose time has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueAction {
    pub org: OrgId,
    pub action: ActionId,
    pub reason: DueReason,
}

/// The queue of due actions, as the read side keeps it (`xdr_projections::action_queue`).
pub trait DueActions: Send + Sync {
    /// Up to `limit` actions due at `now`, the longest overdue first.
    fn due(&self, now: DateTime<Utc>, limit: i64) -> BoxFuture<'_, Result<Vec<DueAction>, StoreError>>;
}

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
pub async fn sweep(
    store: &EventStore,
    dispatcher: &Dispatcher,
    queue: &dyn DueActions,
    now: DateTime<Utc>,
) -> Result<Sweep, StoreError> {
    let mut done = Sweep::default();
    for DueAction { org, action, reason } in queue.due(now, SWEEP_LIMIT).await? {
        let outcome = match reason {
            DueReason::Dispatch => dispatch_if_approved(store, dispatcher, org, action, now).await.map(|sent| {
                done.dispatched += usize::from(sent);
            }),
            DueReason::Deadline => {
                handle_deadline(store, dispatcher, org, action, now).await.map(|_| done.retried_or_failed += 1)
            }
            DueReason::Expiry => expire_block(store, Some(dispatcher), org, action, now).await.map(|lifted| {
                done.expired += usize::from(lifted.is_some());
            }),
        };
        if let Err(e) = outcome {
            done.errors += 1;
            tracing::error!(%org, %action, reason = reason.as_str(), error = %e, "scheduled action step failed");
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
    queue: impl DueActions,
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
        match sweep(&store, &dispatcher, &queue, Utc::now()).await {
            Ok(done) if done != Sweep::default() => tracing::info!(?done, "scheduler sweep"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "scheduler sweep failed; retrying at the next tick"),
        }
    }
}
