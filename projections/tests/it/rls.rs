//! Row-level security: as either runtime login, a read-model query sees nothing without
//! `app.org_id` (also on a pooled connection after an org-scoped transaction ended) and
//! only the named org's rows with it; writing another org's row is refused.

use sqlx::PgPool;
use xdr_commands::db::{self, RuntimeRole};
use xdr_commands::testing::{TestDb, API_LOGIN, WORKER_LOGIN};
use xdr_commands::EventStore;
use xdr_projections::{begin_org_tx, catch_up_once};

use crate::helpers::*;

async fn two_orgs() -> (TestDb, Org, Org) {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let a = seed_identity(&store, "Alpha Org").await;
    let b = seed_identity(&store, "Beta Org").await;
    seed_telemetry(&store, a.id, 30, "a").await;
    seed_telemetry(&store, b.id, 40, "b").await;
    catch_up_once(&db.pool).await.unwrap();
    (db, a, b)
}

/// One connection as a runtime login, so every statement runs on the same pooled connection.
async fn single_connection(db: &TestDb, login: &str, role: RuntimeRole) -> PgPool {
    db::runtime_pool(&db.options.clone().username(login), role, 1).await.unwrap()
}

async fn raw_count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn without_app_org_id_neither_runtime_login_sees_a_row_of_any_read_model() {
    let (db, a, _b) = two_orgs().await;
    for (login, role) in [(API_LOGIN, RuntimeRole::Api), (WORKER_LOGIN, RuntimeRole::Worker)] {
        let pool = single_connection(&db, login, role).await;
        let me: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&pool).await.unwrap();
        assert_eq!(me, login);
        no_rows_without_an_org(&pool, a).await;
    }
}

async fn no_rows_without_an_org(pool: &PgPool, a: Org) {
    for table in TABLES {
        assert_eq!(raw_count(pool, table).await, 0, "{table} without app.org_id");
    }
    // The same pooled connection after an org-scoped transaction: the setting was local.
    let mut tx = begin_org_tx(pool, a.id).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_users").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(n, 2);
    tx.commit().await.unwrap();
    for table in TABLES {
        assert_eq!(raw_count(pool, table).await, 0, "{table} after a committed org transaction");
    }
    let mut tx = begin_org_tx(pool, a.id).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    for table in TABLES {
        assert_eq!(raw_count(pool, table).await, 0, "{table} after a rolled back org transaction");
    }
}

#[tokio::test]
async fn with_org_a_set_only_org_a_rows_are_visible_in_every_read_model() {
    let (db, a, b) = two_orgs().await;
    let expected =
        [("rm_organizations", 1), ("rm_users", 2), ("rm_user_sessions", 1), ("rm_audit_log", IDENTITY_EVENTS)];
    for (org, telemetry) in [(a, 30), (b, 40)] {
        let mut tx = begin_org_tx(&db.pool, org.id).await.unwrap();
        for (table, n) in expected.iter().copied().chain([("rm_security_events", telemetry)]) {
            let (total, own): (i64, i64) =
                sqlx::query_as(&format!("SELECT count(*), count(*) FILTER (WHERE org_id = $1) FROM {table}"))
                    .bind(org.id.0)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
            assert_eq!((total, own), (n, n), "{table} for org {}", org.id);
        }
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn an_org_scoped_transaction_cannot_write_or_change_another_orgs_rows() {
    let (db, a, b) = two_orgs().await;
    let mut tx = begin_org_tx(&db.pool, a.id).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO rm_organizations (org_id, name, slug, status, created_at, last_seq) VALUES ($1, 'x', 'x', 'active', now(), 1)",
    )
    .bind(b.id.0)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    let mut tx = begin_org_tx(&db.pool, a.id).await.unwrap();
    let changed = sqlx::query("UPDATE rm_users SET full_name = 'pwned' WHERE org_id = $1")
        .bind(b.id.0)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 0);
    tx.commit().await.unwrap();
}
