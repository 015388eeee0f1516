//! Live incident updates: one shared feed per org, capped subscriptions, sessions re-checked.
//!
//! Each org with at least one open `incidentUpdates` has one [`OrgFeed`]: a task that asks the
//! read model for changed incidents once per tick and broadcasts them to that org's
//! subscribers, so N subscribers of an org cost one query per tick, not N. The feed stops when
//! its last subscriber goes. Every subscriber re-verifies its token every
//! `subscription_recheck` and ends, with an error naming why, as soon as the session is over
//! (logout, lock, deactivation, expiry). Open subscriptions are capped per WebSocket and per
//! user; a refused one is answered with `extensions.code = TOO_MANY_SUBSCRIPTIONS`.

use actix_web::web::Data;
use async_graphql::{ErrorExtensions, Result};
use futures::Stream;
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::broadcast;
use xdr_commands::auth::identity::Principal;
use xdr_domain::identity::Permission;
use xdr_domain::ids::{OrgId, UserId};

use super::context::{authenticate, db_error};
use super::errors::code_of;
use super::incidents::{Incident, INCIDENT_COLUMNS};
use crate::metrics::Metrics;
use crate::startup::AppState;

/// Updates a subscriber may fall behind by before it is ended (it resubscribes and reloads).
const FEED_BACKLOG: usize = 256;
/// Changed incidents read per tick; more wait for the next tick.
const PER_TICK: i64 = 100;

/// Subscriptions open on one WebSocket (in the connection's data from `connection_init`).
#[derive(Default)]
pub struct ConnectionSubscriptions(AtomicUsize);

/// The server's feeds and per-user counts.
#[derive(Default)]
pub struct SubscriptionHub {
    feeds: Mutex<HashMap<OrgId, Weak<OrgFeed>>>,
    per_user: Mutex<HashMap<UserId, usize>>,
}

struct OrgFeed {
    updates: broadcast::Sender<Arc<Incident>>,
    poller: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

impl Drop for OrgFeed {
    fn drop(&mut self) {
        self.poller.abort();
        Metrics::dec(&self.metrics.subscription_feeds);
    }
}

/// A held place under both caps; dropping the subscription gives it back.
struct Slot {
    state: Data<AppState>,
    connection: Option<Arc<ConnectionSubscriptions>>,
    user: UserId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(c) = &self.connection {
            c.0.fetch_sub(1, Ordering::Relaxed);
        }
        let mut users = self.state.subscriptions.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = users.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                users.remove(&self.user);
            }
        }
        Metrics::dec(&self.state.metrics.subscriptions_open);
    }
}

fn too_many(message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "TOO_MANY_SUBSCRIPTIONS"))
}

fn take_slot(state: &Data<AppState>, connection: Option<Arc<ConnectionSubscriptions>>, user: UserId) -> Result<Slot> {
    let limits = &state.config.graphql;
    if let Some(c) = &connection {
        let max = limits.subscriptions_per_connection;
        if c.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1)).is_err() {
            Metrics::inc(&state.metrics.subscriptions_refused);
            return Err(too_many(format!("At most {max} subscriptions may be open on one connection")));
        }
    }
    let max = limits.subscriptions_per_user;
    let mut users = state.subscriptions.per_user.lock().unwrap_or_else(|e| e.into_inner());
    let n = users.entry(user).or_insert(0);
    if *n >= max {
        if *n == 0 {
            users.remove(&user);
        }
        drop(users);
        if let Some(c) = &connection {
            c.0.fetch_sub(1, Ordering::Relaxed);
        }
        Metrics::inc(&state.metrics.subscriptions_refused);
        return Err(too_many(format!("At most {max} subscriptions may be open for one user")));
    }
    *n += 1;
    drop(users);
    Metrics::inc(&state.metrics.subscriptions_open);
    Ok(Slot { state: state.clone(), connection, user })
}

async fn latest_seq(pool: &PgPool, org: OrgId) -> Result<i64, sqlx::Error> {
    let mut tx = xdr_projections::begin_org_tx(pool, org).await?;
    let seq: Option<i64> = sqlx::query_scalar("SELECT max(last_seq) FROM rm_incidents WHERE org_id = $1")
        .bind(org.0)
        .fetch_one(&mut *tx)
        .await?;
    Ok(seq.unwrap_or(0))
}

async fn changed_since(pool: &PgPool, org: OrgId, cursor: i64) -> Result<Vec<(i64, Incident)>, sqlx::Error> {
    let mut tx = xdr_projections::begin_org_tx(pool, org).await?;
    let rows = sqlx::query(&format!(
        "SELECT {INCIDENT_COLUMNS}, last_seq FROM rm_incidents WHERE org_id = $1 AND last_seq > $2 \
         ORDER BY last_seq LIMIT $3"
    ))
    .bind(org.0)
    .bind(cursor)
    .bind(PER_TICK)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.iter().map(|r| (r.get("last_seq"), Incident::from_row(r))).collect())
}

/// One org's poll loop: one query per tick, whatever the number of subscribers.
async fn poll(
    pool: PgPool,
    org: OrgId,
    mut cursor: i64,
    updates: broadcast::Sender<Arc<Incident>>,
    every: std::time::Duration,
    metrics: Arc<Metrics>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        Metrics::inc(&metrics.subscription_polls);
        match changed_since(&pool, org, cursor).await {
            Ok(changed) => {
                for (seq, incident) in changed {
                    cursor = cursor.max(seq);
                    // No receiver left is fine: the feed is about to be dropped.
                    let _ = updates.send(Arc::new(incident));
                }
            }
            Err(e) => tracing::warn!(error = %e, org = %org.0, "incident feed poll failed; retrying next tick"),
        }
    }
}

/// The org's feed, started if none is running.
async fn feed_of(state: &Data<AppState>, org: OrgId) -> Result<Arc<OrgFeed>> {
    let running = |state: &Data<AppState>| {
        state.subscriptions.feeds.lock().unwrap_or_else(|e| e.into_inner()).get(&org).and_then(Weak::upgrade)
    };
    if let Some(feed) = running(state) {
        return Ok(feed);
    }
    // Read the starting point before taking the lock again: only changes after this
    // subscription began are pushed.
    let start = latest_seq(&state.pool, org).await.map_err(db_error)?;
    let mut feeds = state.subscriptions.feeds.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(feed) = feeds.get(&org).and_then(Weak::upgrade) {
        return Ok(feed);
    }
    feeds.retain(|_, f| f.strong_count() > 0);
    let (updates, _) = broadcast::channel(FEED_BACKLOG);
    let poller = tokio::spawn(poll(
        state.pool.clone(),
        org,
        start,
        updates.clone(),
        state.config.graphql.subscription_poll,
        state.metrics.clone(),
    ));
    Metrics::inc(&state.metrics.subscription_feeds);
    let feed = Arc::new(OrgFeed { updates, poller, metrics: state.metrics.clone() });
    feeds.insert(org, Arc::downgrade(&feed));
    Ok(feed)
}

/// Why a re-check ends the subscription, or `None` while the session still holds.
async fn session_ended(state: &AppState, token: &str, subscribed: &Principal) -> Option<async_graphql::Error> {
    let why = match authenticate(state, token).await {
        Ok(p) if p.session_id == subscribed.session_id && p.org_id == subscribed.org_id => {
            match p.require(Permission::ReadOrgData) {
                Ok(()) => return None,
                Err(e) => e,
            }
        }
        Ok(_) => xdr_commands::auth::AuthError::Unauthenticated("Could not validate credentials"),
        Err(e) => e,
    };
    let code = code_of(&why);
    let message = match &why {
        xdr_commands::auth::AuthError::Internal(cause) => {
            tracing::error!(error.cause_chain = %cause, "re-checking a subscription's session failed");
            "Subscription ended: the session could not be checked; subscribe again".to_owned()
        }
        other => format!("Subscription ended: {other}"),
    };
    Some(async_graphql::Error::new(message).extend_with(|_, e| {
        e.set("code", code);
        e.set("reason", "SESSION_ENDED");
    }))
}

/// `incidentUpdates` for a verified caller holding `token` on `connection`.
pub async fn incident_updates(
    state: Data<AppState>,
    connection: Option<Arc<ConnectionSubscriptions>>,
    principal: Principal,
    token: String,
) -> Result<impl Stream<Item = Result<Incident>>> {
    let slot = take_slot(&state, connection, principal.user_id)?;
    let feed = feed_of(&state, principal.org_id).await?;
    let updates = feed.updates.subscribe();
    let every = state.config.graphql.subscription_recheck;
    let recheck = tokio::time::interval_at(tokio::time::Instant::now() + every, every);

    struct Live {
        state: Data<AppState>,
        principal: Principal,
        token: String,
        updates: broadcast::Receiver<Arc<Incident>>,
        recheck: tokio::time::Interval,
        ended: bool,
        // Held for as long as the subscription is open.
        _feed: Arc<OrgFeed>,
        _slot: Slot,
    }
    let live = Live { state, principal, token, updates, recheck, ended: false, _feed: feed, _slot: slot };
    Ok(futures::stream::unfold(live, |mut live| async move {
        if live.ended {
            return None;
        }
        loop {
            tokio::select! {
                update = live.updates.recv() => match update {
                    Ok(incident) => return Some((Ok((*incident).clone()), live)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        live.ended = true;
                        let error = async_graphql::Error::new(format!(
                            "Subscription ended: this client fell {missed} updates behind; subscribe again"
                        ))
                        .extend_with(|_, e| e.set("code", "SUBSCRIPTION_LAGGED"));
                        return Some((Err(error), live));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = live.recheck.tick() => {
                    if let Some(error) = session_ended(&live.state, &live.token, &live.principal).await {
                        Metrics::inc(&live.state.metrics.subscriptions_ended_by_session);
                        live.ended = true;
                        return Some((Err(error), live));
                    }
                }
            }
        }
    }))
}
