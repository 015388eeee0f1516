//! The database as an attacker with a SQL foothold in each runtime role sees it: hand-written
//! SQL over the API's and the workers' logins (issue 14, section 2). Each refused statement
//! here succeeded when the binary connected as the schema owner and only `SET ROLE xdr_app`
//! stood in the way.

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;
use xdr_commands::db::{self, DbError, RuntimeRole};
use xdr_commands::testing::{TestDb, API_LOGIN, WORKER_LOGIN};
use xdr_commands::{EventStore, ExpectedVersion, NewEvent};
use xdr_domain::ids::OrgId;

use crate::helpers::event;

/// Two orgs, each with a user whose creation event carries a password hash, an e-mail
/// reservation and an ingest-key lookup row, written as the API writes them.
struct TwoOrgs {
    db: TestDb,
    a: OrgId,
    b: OrgId,
}

async fn two_orgs() -> TwoOrgs {
    let db = TestDb::new().await;
    let (a, b) = (OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4()));
    let store = EventStore::new(db.api.clone());
    for (org, name) in [(a, "a"), (b, "b")] {
        let user = Uuid::new_v4();
        let created = NewEvent {
            event_id: Uuid::new_v4(),
            stream_id: format!("user-{user}"),
            event_type: "UserCreated".into(),
            schema_version: 1,
            payload: json!({"user_id": user, "email": format!("admin@{name}.test"), "password_hash": format!("$argon2id$secret-of-{name}")}),
            metadata: json!({"actor": "test"}),
        };
        let mut tx = db::begin_org_tx(&db.api, org).await.unwrap();
        store
            .append_in_tx(&mut tx, org, &created.stream_id.clone(), ExpectedVersion::NoStream, vec![created])
            .await
            .unwrap();
        sqlx::query("INSERT INTO user_emails (email, org_id, user_id) VALUES ($1, $2, $3)")
            .bind(format!("admin@{name}.test"))
            .bind(org.0)
            .bind(user)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO ingest_key_lookup (key_hash, org_id, key_id) VALUES ($1, $2, $3)")
            .bind(vec![name.as_bytes()[0]; 32])
            .bind(org.0)
            .bind(Uuid::new_v4())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        store.append_batch(org, (0..3).map(|i| event("telemetry-x", i)).collect()).await.unwrap();
    }
    TwoOrgs { db, a, b }
}

/// Run `sql` in a transaction scoped to `org` (as the API scopes each request), then roll back.
async fn exec_as(conn: &mut PgConnection, org: Option<OrgId>, sql: &str) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    if let Some(org) = org {
        db::set_org(&mut tx, org).await?;
    }
    let result = tx.execute(sql).await.map(|_| ());
    tx.rollback().await?;
    result
}

async fn count_as(conn: &mut PgConnection, org: Option<OrgId>, sql: &str) -> i64 {
    let mut tx = conn.begin().await.unwrap();
    if let Some(org) = org {
        db::set_org(&mut tx, org).await.unwrap();
    }
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.rollback().await.unwrap();
    n
}

/// `sql` must fail with a message containing one of `expected`.
async fn refused(conn: &mut PgConnection, org: Option<OrgId>, sql: &str, expected: &[&str]) {
    let err = exec_as(conn, org, sql).await.expect_err(sql).to_string();
    assert!(expected.iter().any(|e| err.contains(e)), "{sql}: unexpected error {err}");
}

const DENIED: &[&str] = &["permission denied", "must be owner"];

#[tokio::test]
async fn the_api_login_reads_only_the_org_of_its_transaction_in_every_table() {
    let t = two_orgs().await;
    let mut api = t.db.api_conn().await;
    let (a, b) = (Some(t.a), t.b.0);
    assert_eq!(count_as(&mut api, a, "SELECT count(*) FROM event_log").await, 4);
    assert_eq!(count_as(&mut api, a, &format!("SELECT count(*) FROM event_log WHERE org_id = '{b}'")).await, 0);
    // Other orgs' password hashes are out of reach, however the query is written.
    assert_eq!(
        count_as(&mut api, a, "SELECT count(*) FROM event_log WHERE payload::text LIKE '%secret-of-b%'").await,
        0
    );
    assert_eq!(
        count_as(&mut api, a, "SELECT count(*) FROM event_log WHERE payload::text LIKE '%secret-of-a%'").await,
        1
    );
    for table in ["org_heads", "user_emails", "ingest_key_lookup", "projection_checkpoints"] {
        assert_eq!(
            count_as(&mut api, a, &format!("SELECT count(*) FROM {table} WHERE org_id = '{b}'")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(count_as(&mut api, a, "SELECT count(*) FROM user_emails").await, 1);
    // Without an org (a query outside a scoped transaction) nothing is visible.
    assert_eq!(count_as(&mut api, None, "SELECT count(*) FROM event_log").await, 0);
    assert_eq!(count_as(&mut api, None, "SELECT count(*) FROM org_heads").await, 0);
    // A partition is not a way around the parent's policy: no grant on it at all.
    refused(&mut api, a, "SELECT count(*) FROM event_log_p0", DENIED).await;
    // The workers' system tables are not the API's.
    refused(&mut api, a, "SELECT count(*) FROM relay_checkpoints", DENIED).await;
    refused(&mut api, a, "SELECT count(*) FROM action_schedule", DENIED).await;
}

#[tokio::test]
async fn every_table_the_api_login_can_read_has_row_level_security() {
    let t = two_orgs().await;
    let mut owner = t.db.owner_conn().await;
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') \
           AND has_table_privilege('xdr_api', c.oid, 'SELECT') AND NOT c.relrowsecurity ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(open, Vec::<String>::new(), "tables the API reads without row-level security");
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c WHERE pg_has_role('xdr_api', c.relowner, 'MEMBER') \
            OR pg_has_role('xdr_worker', c.relowner, 'MEMBER')",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(owned, 0, "the runtime groups own nothing");
}

#[tokio::test]
async fn the_api_login_cannot_write_another_orgs_rows() {
    let t = two_orgs().await;
    let mut api = t.db.api_conn().await;
    let (a, b) = (Some(t.a), t.b.0);
    let rls = &["row-level security"];
    refused(
        &mut api,
        a,
        &format!(
            "INSERT INTO event_log (org_id, org_seq, stream_id, stream_version, event_id, event_type, schema_version, \
             payload, metadata, recorded_at, hash) VALUES ('{b}', 99, 'x-1', 1, gen_random_uuid(), 'IncidentOpened', 1, \
             '{{}}', '{{}}', now(), '\\x{}')",
            "00".repeat(32)
        ),
        rls,
    )
    .await;
    refused(
        &mut api,
        a,
        &format!("INSERT INTO user_emails (email, org_id, user_id) VALUES ('evil@b.test', '{b}', gen_random_uuid())"),
        rls,
    )
    .await;
    refused(&mut api, a, &format!("INSERT INTO org_slugs (slug, org_id) VALUES ('taken-by-a', '{b}')"), rls).await;
    // An UPDATE of another org's head finds no row (invisible), so nothing changes.
    let mut tx = api.begin().await.unwrap();
    db::set_org(&mut tx, t.a).await.unwrap();
    let touched = tx.execute(format!("UPDATE org_heads SET last_seq = 0 WHERE org_id = '{b}'").as_str()).await.unwrap();
    assert_eq!(touched.rows_affected(), 0);
    tx.rollback().await.unwrap();
    assert_eq!(EventStore::new(t.db.worker.clone()).head(t.b).await.unwrap().unwrap().0, 4);
}

#[tokio::test]
async fn no_runtime_login_can_change_truncate_or_unguard_the_log_even_on_a_partition() {
    let t = two_orgs().await;
    // Every partition, not just the parent: a statement trigger on the parent does not fire
    // for a partition's TRUNCATE, and the partitions are where the rows are.
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'event_log'::regclass ORDER BY 1",
    )
    .fetch_all(&mut t.db.owner_conn().await)
    .await
    .unwrap();
    assert_eq!(partitions.len(), 8);
    for (mut conn, org) in [(t.db.api_conn().await, Some(t.a)), (t.db.worker_conn().await, None)] {
        for sql in [
            "UPDATE event_log SET payload = '{}'::jsonb",
            "DELETE FROM event_log",
            "TRUNCATE event_log",
            "ALTER TABLE event_log DISABLE TRIGGER ALL",
            "ALTER TABLE event_log DISABLE TRIGGER event_log_append_only",
            "DROP TRIGGER event_log_append_only ON event_log",
            "ALTER TABLE event_log DISABLE ROW LEVEL SECURITY",
            "DROP POLICY api_one_org ON event_log",
            "DELETE FROM org_heads",
            "TRUNCATE org_heads",
            "ALTER TABLE org_heads DISABLE TRIGGER org_heads_follow_log",
            "CREATE TABLE public.mine (x int)",
        ] {
            refused(&mut conn, org, sql, DENIED).await;
        }
        for p in &partitions {
            for sql in [
                format!("TRUNCATE {p}"),
                format!("ALTER TABLE {p} DISABLE TRIGGER ALL"),
                format!("ALTER TABLE {p} DISABLE TRIGGER event_log_no_truncate"),
                format!("UPDATE {p} SET payload = '{{}}'::jsonb"),
                format!("DELETE FROM {p}"),
                format!("ALTER TABLE {p} DETACH PARTITION {p}"),
                format!("ALTER TABLE event_log DETACH PARTITION {p}"),
            ] {
                refused(&mut conn, org, &sql, DENIED).await;
            }
        }
    }
    let worker = EventStore::new(t.db.worker.clone());
    assert_eq!(worker.read_org(t.a, 0, 100).await.unwrap().len(), 4);
    assert_eq!(worker.read_org(t.b, 0, 100).await.unwrap().len(), 4);
}

#[tokio::test]
async fn even_the_owner_cannot_truncate_a_partition_without_disabling_its_trigger_first() {
    let t = two_orgs().await;
    let mut owner = t.db.owner_conn().await;
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'event_log'::regclass ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    for p in partitions {
        refused(&mut owner, None, &format!("TRUNCATE {p}"), &["append-only"]).await;
    }
    refused(&mut owner, None, "TRUNCATE org_heads", &["append-only"]).await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log").fetch_one(&mut owner).await.unwrap();
    assert_eq!(events, 8);
}

#[tokio::test]
async fn reset_role_returns_a_runtime_login_to_itself_not_to_power() {
    let t = two_orgs().await;
    let owner: String = sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'event_log'")
        .fetch_one(&mut t.db.owner_conn().await)
        .await
        .unwrap();
    for (mut conn, login) in [(t.db.api_conn().await, API_LOGIN), (t.db.worker_conn().await, WORKER_LOGIN)] {
        conn.execute("RESET ROLE").await.unwrap();
        conn.execute("SET SESSION AUTHORIZATION DEFAULT").await.ok();
        let me: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut conn).await.unwrap();
        assert_eq!(me, login);
        for sql in
            [format!("SET ROLE {owner}"), "SET ROLE postgres".into(), "SET SESSION AUTHORIZATION postgres".into()]
        {
            let err = conn.execute(sql.as_str()).await.expect_err(&sql).to_string();
            assert!(err.contains("permission denied") || err.contains("does not exist"), "{sql}: {err}");
        }
        refused(&mut conn, Some(t.a), "TRUNCATE event_log_p0", DENIED).await;
        refused(&mut conn, Some(t.a), "ALTER TABLE event_log_p0 DISABLE TRIGGER ALL", DENIED).await;
        refused(
            &mut conn,
            Some(t.a),
            &format!("GRANT {owner} TO {login}"),
            &["permission denied", "must have admin", "must be superuser"],
        )
        .await;
    }
}

#[tokio::test]
async fn org_heads_cannot_be_rewound_or_pointed_at_a_hash_of_the_callers_choosing() {
    let t = two_orgs().await;
    let zero = format!("'\\x{}'::bytea", "00".repeat(32));
    for (mut conn, org) in [(t.db.api_conn().await, t.a), (t.db.worker_conn().await, t.b)] {
        let scoped = Some(org);
        let this = format!("org_id = '{}'", org.0);
        for sql in [
            // Back to an earlier event: the next append would collide with stored seqs.
            format!("UPDATE org_heads SET last_seq = 1, last_hash = (SELECT hash FROM event_log WHERE {this} AND org_seq = 1) WHERE {this}"),
            format!("UPDATE org_heads SET last_seq = 0, last_hash = {zero} WHERE {this}"),
            // The right seq with a hash of the attacker's choosing re-links the chain.
            format!("UPDATE org_heads SET last_hash = {zero} WHERE {this}"),
            // Ahead of the log.
            format!("UPDATE org_heads SET last_seq = last_seq + 1 WHERE {this}"),
            format!("UPDATE org_heads SET org_id = gen_random_uuid() WHERE {this}"),
        ] {
            refused(&mut conn, scoped, &sql, &["org_heads"]).await;
        }
        // A head for an org without events starts at genesis, nowhere else.
        let fresh = Uuid::new_v4();
        let mut tx = conn.begin().await.unwrap();
        db::set_org(&mut tx, OrgId(fresh)).await.unwrap();
        let err = tx
            .execute(format!("INSERT INTO org_heads VALUES ('{fresh}', 5, '\\x{}')", "11".repeat(32)).as_str())
            .await
            .expect_err("head ahead of an empty log")
            .to_string();
        assert!(err.contains("genesis"), "{err}");
        tx.rollback().await.unwrap();
    }
    // The log still appends where it stood.
    let store = EventStore::new(t.db.api.clone());
    let r = store.append(t.a, "user-z", ExpectedVersion::NoStream, vec![event("user-z", 1)]).await.unwrap();
    assert_eq!(r.last_seq, 5);
}

#[tokio::test]
async fn the_worker_login_never_sees_the_identity_registry_or_key_lookups() {
    let t = two_orgs().await;
    let mut worker = t.db.worker_conn().await;
    for table in ["user_emails", "org_slugs", "ingest_key_lookup", "agent_key_lookup"] {
        refused(&mut worker, None, &format!("SELECT count(*) FROM {table}"), DENIED).await;
        refused(&mut worker, Some(t.a), &format!("SELECT count(*) FROM {table}"), DENIED).await;
    }
    refused(&mut worker, None, "SELECT * FROM xdr_find_user_email('admin@a.test')", DENIED).await;
    // What it needs: every org's log and heads, and the ingest key resolver.
    assert_eq!(count_as(&mut worker, None, "SELECT count(*) FROM event_log").await, 8);
    assert_eq!(count_as(&mut worker, None, "SELECT count(*) FROM org_heads").await, 2);
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM xdr_find_ingest_key($1)")
        .bind(vec![b'a'; 32])
        .fetch_one(&mut worker)
        .await
        .unwrap();
    assert_eq!(found, 1);
    // Read models stay behind their org policy for the worker too.
    assert_eq!(count_as(&mut worker, None, "SELECT count(*) FROM rm_users").await, 0);
}

#[tokio::test]
async fn the_api_finds_a_user_across_orgs_only_by_the_exact_address() {
    let t = two_orgs().await;
    let mut api = t.db.api_conn().await;
    let hit: (Uuid,) =
        sqlx::query_as("SELECT org_id FROM xdr_find_user_email('admin@b.test')").fetch_one(&mut api).await.unwrap();
    assert_eq!(hit.0, t.b.0);
    let misses: i64 =
        sqlx::query_scalar("SELECT count(*) FROM xdr_find_user_email('%')").fetch_one(&mut api).await.unwrap();
    assert_eq!(misses, 0, "no pattern matching, no listing");
    // The definer functions cannot be redirected to a table of the caller's (a temporary
    // table would shadow an unqualified name).
    api.execute("CREATE TEMP TABLE user_emails (email text, org_id uuid, user_id uuid)").await.unwrap();
    api.execute("INSERT INTO user_emails VALUES ('planted@x.test', gen_random_uuid(), gen_random_uuid())")
        .await
        .unwrap();
    let planted: i64 = sqlx::query_scalar("SELECT count(*) FROM xdr_find_user_email('planted@x.test')")
        .fetch_one(&mut api)
        .await
        .unwrap();
    assert_eq!(planted, 0);
}

#[tokio::test]
async fn a_runtime_pool_refuses_a_login_that_could_do_more_than_its_group() {
    let t = two_orgs().await;
    // The owner (a superuser here), as the binary used to connect.
    let err = db::runtime_pool(&t.db.options, RuntimeRole::Api, 1).await.expect_err("owner as the API");
    let DbError::Privileged { problems, .. } = &err else { panic!("{err}") };
    assert!(problems.iter().any(|p| p.contains("superuser")), "{problems:?}");
    // The worker's login is not the API's, and the other way round.
    let worker_as_api = t.db.options.clone().username(WORKER_LOGIN);
    let err = db::runtime_pool(&worker_as_api, RuntimeRole::Api, 1).await.expect_err("worker as the API");
    assert!(err.to_string().contains("not a member of xdr_api"), "{err}");
    // A login that may skip row-level security is refused even inside the right group.
    let mut owner = t.db.owner_conn().await;
    owner
        .execute(
            "DO $$ BEGIN CREATE ROLE xdr_test_bypassrls_login LOGIN BYPASSRLS IN ROLE xdr_api; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .await
        .unwrap();
    let bypass = t.db.options.clone().username("xdr_test_bypassrls_login");
    let err = db::runtime_pool(&bypass, RuntimeRole::Api, 1).await.expect_err("BYPASSRLS login");
    assert!(err.to_string().contains("BYPASSRLS"), "{err}");
    // The test logins themselves pass.
    db::runtime_pool(&t.db.options.clone().username(API_LOGIN), RuntimeRole::Api, 1).await.unwrap();
}
