//! Which database login each subcommand uses (docs/OPERATIONS.md, "Database logins"):
//! the API its own (`XDR_API_DATABASE_URL`), the background roles theirs (`DATABASE_URL`),
//! migrations and the operator's tools the schema owner (`XDR_MIGRATE_DATABASE_URL`).

use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use xdr_commands::db::{self, DbError, RuntimeRole};

use crate::config::Settings;

/// The HTTP API's pool: a least-privilege member of `xdr_api`.
pub async fn api_pool(settings: &Settings, max_connections: u32) -> anyhow::Result<PgPool> {
    runtime_pool(settings, settings.api_database_url()?, RuntimeRole::Api, max_connections).await
}

/// The background roles' pool: a least-privilege member of `xdr_worker`.
pub async fn worker_pool(settings: &Settings, max_connections: u32) -> anyhow::Result<PgPool> {
    runtime_pool(settings, settings.database_url()?, RuntimeRole::Worker, max_connections).await
}

/// Connect options of the schema owner (migrations, `rebuild`, `verify`, the operator's tools).
pub fn owner_options(settings: &Settings) -> anyhow::Result<PgConnectOptions> {
    Ok(db::connect_options(settings.migrate_database_url()?)?)
}

/// A pool as the schema owner.
pub async fn owner_pool(settings: &Settings, max_connections: u32) -> anyhow::Result<PgPool> {
    Ok(db::owner_pool(&owner_options(settings)?, max_connections).await?)
}

/// `serve` applies migrations when it holds the owner's URL (or in single-login development);
/// otherwise the operator runs `mini-xdr migrate` with it before rolling out.
pub async fn migrate_if_owner(settings: &Settings) -> anyhow::Result<()> {
    if settings.migrate_database_url.is_some() || settings.dev_single_db_login {
        db::migrate(&owner_options(settings)?).await?;
    } else {
        tracing::info!("XDR_MIGRATE_DATABASE_URL is not set: not migrating (run `mini-xdr migrate` as the owner)");
    }
    Ok(())
}

async fn runtime_pool(
    settings: &Settings,
    url: &str,
    role: RuntimeRole,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    let options = db::DbTarget::parse(url)?;
    match db::runtime_pool(&options, role, max_connections).await {
        Ok(pool) => Ok(pool),
        Err(e @ DbError::Privileged { .. }) if settings.dev_single_db_login => {
            tracing::warn!(
                "XDR_DEV_SINGLE_DB_LOGIN is set: {e}. Dropping to {} with SET ROLE instead, which any SQL \
                 foothold undoes with RESET ROLE: development only, never in production",
                role.group()
            );
            Ok(db::set_role_pool(&options, role, max_connections).await?)
        }
        Err(e) => Err(e.into()),
    }
}
