//! Row-level security, the second tenant-isolation layer: every read-model table only shows
//! the rows of the org named by the transaction-local setting `app.org_id`.
//!
//! The setting is made with `set_config(…, true)`, local to the transaction, so a pooled
//! connection carries nothing over to the next request: after commit or rollback the
//! setting reads back as '' and the policies match no row.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use xdr_domain::ids::OrgId;

/// Begin a transaction scoped to one org: every read-model query inside it sees (and may
/// write) only that org's rows. The API opens one per request, with the org taken from the
/// verified token.
pub async fn begin_org_tx(pool: &PgPool, org: OrgId) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    set_org(&mut tx, org).await?;
    Ok(tx)
}

/// Scope the current transaction of `conn` to `org` (must be inside a transaction).
pub async fn set_org(conn: &mut PgConnection, org: OrgId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.org_id', $1, true)").bind(org.0.to_string()).execute(conn).await?;
    Ok(())
}
