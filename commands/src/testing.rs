//! Test support: a fresh, migrated database per test, dropped when the test ends (also when
//! it panics), so tests run in parallel against the real PostgreSQL and leave nothing behind.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::db;

/// Server URL for tests: `DATABASE_URL` (its database part is ignored) or the local default.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub struct TestDb {
    pub name: String,
    /// Connect options of the fresh database as the owner (superuser in tests).
    pub options: PgConnectOptions,
    /// Application pool (role `xdr_app`).
    pub pool: PgPool,
    admin: PgConnectOptions,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin = db::connect_options(&server_url()).expect("DATABASE_URL");
        let name = format!("xdr_test_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await.expect("connect to PostgreSQL for tests");
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.expect("create test database");
        conn.close().await.ok();
        let options = admin.clone().database(&name);
        db::migrate(&options).await.expect("migrate test database");
        let pool = db::app_pool(&options, 10).await.expect("app pool");
        TestDb { name, options, pool, admin }
    }

    /// The database URL of this test database (owner role), for child processes.
    pub fn url(&self) -> String {
        let base = server_url();
        match base.rfind('/') {
            Some(i) if base[..i].contains('@') || base[..i].contains("//") => format!("{}/{}", &base[..i], self.name),
            _ => format!("{base}/{}", self.name),
        }
    }

    /// A connection as the owner (superuser in tests), for tampering and inspection.
    pub async fn owner_conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.options).await.expect("owner connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
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
}
