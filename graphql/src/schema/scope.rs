//! One request, one caller, one transaction.
//!
//! Every resolver asks for the caller and for an org-scoped transaction; before, each nested
//! resolver of `incidents { edges { node { timeline actions events } } }` verified the token
//! again (two stream reads) and began its own transaction, so one request could hold hundreds of
//! pool connections at once. The request's [`RequestScope`] verifies the token once and keeps
//! the result (success or refusal), and lends every read resolver the same transaction, one at a
//! time: a query request holds at most one connection for reads, and its resolvers queue on it.
//!
//! A request that holds a mutation does not share: its write path takes pool connections of its
//! own and waits for the projections, and it must not do so while holding a read connection.

use async_graphql::{Context, Result};
use sqlx::{PgConnection, Postgres, Transaction};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Mutex, MutexGuard, OnceCell};
use xdr_commands::auth::identity::Principal;
use xdr_domain::ids::OrgId;

use super::context::{db_error, state};
use crate::metrics::Metrics;
use crate::startup::AppState;

#[derive(Default)]
pub struct RequestScope {
    caller: OnceCell<Result<Principal>>,
    transaction: Mutex<Option<(OrgId, Transaction<'static, Postgres>)>>,
    unshared: AtomicBool,
}

impl RequestScope {
    pub fn new() -> RequestScope {
        RequestScope::default()
    }

    pub(crate) fn do_not_share_transaction(&self) {
        self.unshared.store(true, Ordering::Relaxed);
    }

    /// The caller, verified at most once per request.
    pub(crate) async fn caller(
        &self,
        verify: impl std::future::Future<Output = Result<Principal>>,
    ) -> Result<Principal> {
        self.caller.get_or_init(|| verify).await.clone()
    }

    /// Ends the shared transaction (read-only: committing just returns the connection early).
    pub async fn finish(&self) {
        if let Some((_, tx)) = self.transaction.lock().await.take() {
            if let Err(e) = tx.commit().await {
                tracing::warn!(error = %e, "ending a GraphQL request's read transaction failed");
            }
        }
    }
}

/// A transaction scoped to one org (`app.org_id`): the request's shared one, or one of its own.
pub enum OrgTx<'a> {
    Shared(MutexGuard<'a, Option<(OrgId, Transaction<'static, Postgres>)>>),
    Own(Transaction<'static, Postgres>),
}

impl std::ops::Deref for OrgTx<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            OrgTx::Shared(guard) => &guard.as_ref().expect("begun before it is lent").1,
            OrgTx::Own(tx) => tx,
        }
    }
}

impl std::ops::DerefMut for OrgTx<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            OrgTx::Shared(guard) => &mut guard.as_mut().expect("begun before it is lent").1,
            OrgTx::Own(tx) => tx,
        }
    }
}

async fn begin(state: &AppState, org: OrgId) -> Result<Transaction<'static, Postgres>> {
    let tx = xdr_projections::begin_org_tx(&state.pool, org).await.map_err(db_error)?;
    Metrics::inc(&state.metrics.graphql_transactions);
    Ok(tx)
}

/// The transaction a read resolver runs its queries on. Hold it only while querying: the
/// request's other resolvers wait for it.
pub async fn org_tx<'a>(ctx: &Context<'a>, org: OrgId) -> Result<OrgTx<'a>> {
    let state = state(ctx);
    let Some(scope) = ctx.data_opt::<std::sync::Arc<RequestScope>>() else {
        return Ok(OrgTx::Own(begin(state, org).await?));
    };
    if scope.unshared.load(Ordering::Relaxed) {
        return Ok(OrgTx::Own(begin(state, org).await?));
    }
    let mut guard = scope.transaction.lock().await;
    match guard.as_ref() {
        Some((scoped, _)) if *scoped == org => {}
        // The caller is one principal per request, so another org never shows up here; if it
        // did, it gets a transaction of its own rather than the first org's scope.
        Some(_) => return Ok(OrgTx::Own(begin(state, org).await?)),
        None => *guard = Some((org, begin(state, org).await?)),
    }
    Ok(OrgTx::Shared(guard))
}
