//! Test support: a fresh, migrated database per test, dropped when the test ends (also when
//! it panics), so tests run in parallel against the real PostgreSQL and leave nothing behind.
//!
//! Each test database is used as production uses it: the owner migrates, the API and the
//! workers connect as login roles of their own ([`API_LOGIN`], [`WORKER_LOGIN`]) that own
//! nothing. The test cluster authenticates 127.0.0.1 by trust, so the logins need no password.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::db::{self, DbError, RuntimeRole};

/// The API's login in test clusters (a member of `xdr_api`, created on first use).
pub const API_LOGIN: &str = "xdr_test_api_login";
/// The background roles' login in test clusters (a member of `xdr_worker`).
pub const WORKER_LOGIN: &str = "xdr_test_worker_login";

/// Server URL for tests: `DATABASE_URL` (its database part is ignored) or the local default.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub struct TestDb {
    pub name: String,
    /// Connect options of the fresh database as the owner (superuser in tests).
    pub options: PgConnectOptions,
    /// The workers' pool (login [`WORKER_LOGIN`], group `xdr_worker`): every org, no secrets
    /// tables. The same pool as [`TestDb::worker`], under the name most tests use.
    pub pool: PgPool,
    /// The workers' pool (login [`WORKER_LOGIN`]).
    pub worker: PgPool,
    /// The API's pool (login [`API_LOGIN`], group `xdr_api`): one org per transaction.
    pub api: PgPool,
    admin: PgConnectOptions,
    /// The server URL the database was made on (its own URL is this one with its name).
    base: String,
}

/// Why a scratch database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestDbError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{what}: {source}")]
    Sql {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl TestDb {
    pub async fn new() -> TestDb {
        TestDb::create(&server_url()).await.expect("a fresh test database (DATABASE_URL)")
    }

    /// A fresh, migrated database on the server of `server_url` (its database part is
    /// ignored), with the runtime logins; the URL's user must be able to create databases
    /// and roles. Benchmarks use it as their scratch database.
    pub async fn create(server_url: &str) -> Result<TestDb, TestDbError> {
        let sql = |what| move |source| TestDbError::Sql { what, source };
        let admin = db::connect_options(server_url)?;
        let name = format!("xdr_test_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await.map_err(DbError::Connect)?;
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .map_err(sql("creating the scratch database (the login needs CREATEDB)"))?;
        conn.close().await.ok();
        let options = admin.clone().database(&name);
        // From here on the database exists: dropping `partial` removes it if a later step fails.
        let mut partial = Dropper { admin: admin.clone(), name: Some(name.clone()) };
        db::migrate(&options).await?;
        create_logins(&options).await.map_err(sql("creating the runtime logins (the login needs CREATEROLE)"))?;
        let api = db::runtime_pool(&options.clone().username(API_LOGIN), RuntimeRole::Api, 10).await?;
        let worker = db::runtime_pool(&options.clone().username(WORKER_LOGIN), RuntimeRole::Worker, 10).await?;
        partial.name = None;
        Ok(TestDb { name, options, pool: worker.clone(), worker, api, admin, base: server_url.to_owned() })
    }

    /// Another pool as the API's login, for callers that need more than ten connections.
    pub async fn api_pool(&self, max_connections: u32) -> Result<PgPool, DbError> {
        db::runtime_pool(&self.options.clone().username(API_LOGIN), RuntimeRole::Api, max_connections).await
    }

    /// Another pool as the workers' login.
    pub async fn worker_pool(&self, max_connections: u32) -> Result<PgPool, DbError> {
        db::runtime_pool(&self.options.clone().username(WORKER_LOGIN), RuntimeRole::Worker, max_connections).await
    }

    /// The database URL of this test database (owner role), for child processes.
    pub fn url(&self) -> String {
        let base = self.base.as_str();
        let (main, query) = base.split_once('?').map_or((base, None), |(m, q)| (m, Some(q)));
        let after_scheme = main.find("://").map_or(0, |i| i + 3);
        let server = match main[after_scheme..].find('/') {
            Some(i) => &main[..after_scheme + i],
            None => main,
        };
        match query {
            Some(q) => format!("{server}/{}?{q}", self.name),
            None => format!("{server}/{}", self.name),
        }
    }

    /// The URL of this database as the API's login.
    pub fn api_url(&self) -> String {
        with_user(&self.url(), API_LOGIN)
    }

    /// The URL of this database as the workers' login.
    pub fn worker_url(&self) -> String {
        with_user(&self.url(), WORKER_LOGIN)
    }

    /// The environment of a `mini-xdr` child process, as production sets it: the workers'
    /// login in `DATABASE_URL`, the API's in `XDR_API_DATABASE_URL`, the owner in
    /// `XDR_MIGRATE_DATABASE_URL` (migrations and the operator's tools).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.worker_url()),
            ("XDR_API_DATABASE_URL", self.api_url()),
            ("XDR_MIGRATE_DATABASE_URL", self.url()),
        ]
    }

    /// A connection as the owner (superuser in tests), for tampering and inspection.
    pub async fn owner_conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.options).await.expect("owner connection")
    }

    /// A single connection as the API's login (statements that must share a session).
    pub async fn api_conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.options.clone().username(API_LOGIN)).await.expect("API login connection")
    }

    /// A single connection as the workers' login.
    pub async fn worker_conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.options.clone().username(WORKER_LOGIN)).await.expect("worker login connection")
    }
}

/// The test logins, once per cluster: LOGIN, no attributes, members of their group only.
/// Roles are cluster-wide and tests create databases in parallel, so creation tolerates races.
async fn create_logins(owner: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect_with(owner).await?;
    for (login, group) in [(API_LOGIN, db::API_ROLE), (WORKER_LOGIN, db::WORKER_ROLE)] {
        conn.execute(
            format!(
                "DO $$ BEGIN CREATE ROLE {login} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS IN ROLE {group}; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )
            .as_str(),
        )
        .await?;
    }
    conn.close().await.ok();
    Ok(())
}

/// `url` with its user (and password) replaced by `user`.
fn with_user(url: &str, user: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{}{user}@{host}", &url[..scheme_end])
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database(self.admin.clone(), self.name.clone());
    }
}

/// Drops a database that was created but not finished (a failed migration, say).
struct Dropper {
    admin: PgConnectOptions,
    /// `None` once the database is handed over to a [`TestDb`].
    name: Option<String>,
}

impl Drop for Dropper {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            drop_database(self.admin.clone(), name);
        }
    }
}

fn drop_database(admin: PgConnectOptions, name: String) {
    // Drop runs inside the caller's runtime; do the async cleanup on a thread of its own.
    let cleanup = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                let _ = conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str()).await;
            }
        });
    });
    let _ = cleanup.join();
}

#[cfg(test)]
mod tests {
    #[test]
    fn with_user_replaces_the_user_and_password_only() {
        assert_eq!(super::with_user("postgres://postgres@h:5432/db?x=1", "u"), "postgres://u@h:5432/db?x=1");
        assert_eq!(super::with_user("postgres://a:b@h/db", "u"), "postgres://u@h/db");
        assert_eq!(super::with_user("postgres://h/db", "u"), "postgres://u@h/db");
    }
}
