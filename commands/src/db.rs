//! Connecting to PostgreSQL. Three kinds of connection, each from its own login:
//!
//! * the **owner** (`XDR_MIGRATE_DATABASE_URL`): migrations and the operator's tools;
//! * the **API** login, a member of `xdr_api`: sees one org per transaction (`app.org_id`) in
//!   every table it can read, the event log included;
//! * the **worker** login, a member of `xdr_worker`: the background roles, across orgs.
//!
//! A runtime pool refuses a login that could do more than its group: a superuser, a role with
//! BYPASSRLS or CREATEROLE, or one that owns (or can become the owner of) the schema or the
//! database. Then `RESET ROLE` gains nothing, and neither does any other statement a foothold
//! in the process could send (see docs/ARCHITECTURE.md, "Trust boundaries").

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgConnection, PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;
use xdr_domain::ids::OrgId;

/// The NOLOGIN group of the HTTP API's login (migration 0017).
pub const API_ROLE: &str = "xdr_api";
/// The NOLOGIN group of the background roles' login (migration 0017).
pub const WORKER_ROLE: &str = "xdr_worker";

/// Embedded migrations from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Which runtime group a pool's login must belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeRole {
    Api,
    Worker,
}

impl RuntimeRole {
    pub fn group(self) -> &'static str {
        match self {
            RuntimeRole::Api => API_ROLE,
            RuntimeRole::Worker => WORKER_ROLE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "database login {login:?} must not run as {group}: {}. Create a login that owns nothing \
         and is a member of {group} only (docs/OPERATIONS.md, \"Database logins\")",
        problems.join("; ")
    )]
    Privileged { login: String, group: &'static str, problems: Vec<String> },
}

pub fn connect_options(database_url: &str) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(database_url).map_err(DbError::BadUrl)
}

/// Apply all pending migrations as the connecting (owner) role.
pub async fn migrate(options: &PgConnectOptions) -> Result<(), DbError> {
    let pool = owner_pool(options, 1).await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// The pool of a runtime role: connects as the URL's login, which must be a least-privilege
/// member of `role`'s group ([`check_login`]); otherwise [`DbError::Privileged`].
pub async fn runtime_pool(
    options: &PgConnectOptions,
    role: RuntimeRole,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    let pool = owner_pool(options, max_connections).await?;
    let problems = check_login(&pool, role).await.map_err(DbError::Connect)?;
    if !problems.is_empty() {
        let login: String =
            sqlx::query_scalar("SELECT current_user::text").fetch_one(&pool).await.map_err(DbError::Connect)?;
        pool.close().await;
        return Err(DbError::Privileged { login, group: role.group(), problems });
    }
    Ok(pool)
}

/// What the pool's login could do beyond `role`'s group; empty when it is fit to run as it.
pub async fn check_login(pool: &PgPool, role: RuntimeRole) -> Result<Vec<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, \
                EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = $1) \
                  AND pg_has_role(current_user, $1, 'MEMBER') AS in_group, \
                pg_has_role(current_user, d.datdba, 'MEMBER') AS owns_database, \
                EXISTS (SELECT 1 FROM pg_namespace n \
                        WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
                          AND pg_has_role(current_user, n.nspowner, 'MEMBER')) AS owns_schema, \
                EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
                          AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS owns_tables \
         FROM pg_roles r, pg_database d \
         WHERE r.rolname = current_user AND d.datname = current_database()",
    )
    .bind(role.group())
    .fetch_one(pool)
    .await?;
    let mut problems = Vec::new();
    for (column, problem) in [
        ("rolsuper", "it is a superuser"),
        ("rolbypassrls", "it has BYPASSRLS"),
        ("rolcreaterole", "it has CREATEROLE (and could grant itself the owner's role)"),
        ("owns_database", "it owns (or can become the owner of) the database"),
        ("owns_schema", "it owns (or can become the owner of) a schema"),
        ("owns_tables", "it owns (or can become the owner of) tables"),
    ] {
        if row.try_get::<bool, _>(column)? {
            problems.push(problem.to_owned());
        }
    }
    if !row.try_get::<bool, _>("in_group")? {
        problems.push(format!("it is not a member of {}", role.group()));
    }
    Ok(problems)
}

/// A pool that connects as the URL's login and switches every connection to `role`'s group
/// with `SET ROLE`. **Not a security boundary** (`RESET ROLE` undoes it): for the scratch
/// databases of `bench`, and for `XDR_DEV_SINGLE_DB_LOGIN` development setups only.
pub async fn set_role_pool(
    options: &PgConnectOptions,
    role: RuntimeRole,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    let group = role.group();
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute(format!("SET ROLE {group}").as_str()).await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await
        .map_err(DbError::Connect)
}

/// A pool that keeps the connecting role: for migrations, audits and the operator's tools
/// (`rebuild` truncates read models; `verify` must work even if the runtime grants were
/// tampered with).
pub async fn owner_pool(options: &PgConnectOptions, max_connections: u32) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(DbError::Connect)
}

/// Begin a transaction scoped to one org: row-level security then shows (and lets it write)
/// only that org's rows, for the API's login in every table, for every login in read models.
pub async fn begin_org_tx(pool: &PgPool, org: OrgId) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    set_org(&mut tx, org).await?;
    Ok(tx)
}

/// Scope the current transaction of `conn` to `org` (must be inside a transaction: the
/// setting is local to it, so a pooled connection carries nothing over to the next user).
pub async fn set_org(conn: &mut PgConnection, org: OrgId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.org_id', $1, true)").bind(org.0.to_string()).execute(conn).await?;
    Ok(())
}
