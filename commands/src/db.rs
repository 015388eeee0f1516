//! Connecting to PostgreSQL: the migration connection (schema owner) and the application pool
//! (every connection switched to the non-owner `xdr_app` role, which may only read and append
//! the log).

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// The role the application runs as; created by the first migration.
pub const APP_ROLE: &str = "xdr_app";

/// Embedded migrations from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub fn connect_options(database_url: &str) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(database_url).map_err(DbError::BadUrl)
}

/// Apply all pending migrations as the connecting (owner) role.
pub async fn migrate(options: &PgConnectOptions) -> Result<(), DbError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(DbError::Connect)?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// The application pool: every connection runs as [`APP_ROLE`], so append-only and
/// row-level security hold even if a query is wrong.
pub async fn app_pool(options: &PgConnectOptions, max_connections: u32) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(format!("SET ROLE {APP_ROLE}").as_str()).await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await
        .map_err(DbError::Connect)
}

/// A pool that keeps the connecting role: for migrations, audits and tooling that must read
/// tables the app role cannot (e.g. `verify` on a database where the app role lacks grants).
pub async fn owner_pool(options: &PgConnectOptions, max_connections: u32) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(DbError::Connect)
}
