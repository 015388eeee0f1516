//! The schema stays distributable by tenant (docs/OPERATIONS.md, "Scaling out"): sharding the
//! log and the read models by `org_id` (Citus) needs every primary key and unique constraint of
//! a per-org table to include `org_id`, and no foreign key to join rows across shards. A
//! migration that breaks this fails here, before anyone plans a scale-out around it.

use sqlx::Row;
use xdr_commands::testing::TestDb;

/// Cross-org directories: looked up by a globally unique value before the org is known
/// (sign-in by e-mail, slug, key hash). They map to `org_id`, stay small, and become Citus
/// reference tables; nothing else may join this list without a reason here.
const DIRECTORIES: &[(&str, &str)] = &[
    ("org_slugs", "a slug is unique across orgs; the register path resolves it to an org"),
    ("user_emails", "an e-mail signs in before its org is known"),
    ("ingest_key_lookup", "a producer presents only its key"),
    ("agent_key_lookup", "an agent presents only its key"),
];

/// Tables of the database, without partitions (they follow their parent) and sqlx's own.
async fn tables(db: &TestDb) -> Vec<String> {
    let mut conn = db.owner_conn().await;
    sqlx::query(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND c.relname <> '_sqlx_migrations'
          ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list tables")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Per-org tables whose keys do not include `org_id`, and tables without it.
async fn undistributable(db: &TestDb) -> Vec<String> {
    let mut conn = db.owner_conn().await;
    let tables = tables(db).await;
    assert!(tables.iter().any(|t| t == "event_log"), "migrations ran: {tables:?}");

    let mut broken = Vec::new();
    for table in &tables {
        let has_org: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                             WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'org_id')",
        )
        .bind(table)
        .fetch_one(&mut conn)
        .await
        .expect("org_id column");
        if DIRECTORIES.iter().any(|(t, _)| t == table) {
            assert!(has_org, "directory {table} maps to an org, so it has org_id");
            continue;
        }
        if !has_org {
            broken.push(format!("{table}: no org_id column"));
            continue;
        }
        // Primary keys and unique constraints (and unique indexes behind neither).
        let keys = sqlx::query(
            "SELECT i.indexrelid::regclass::text AS name,
                    bool_or(a.attname = 'org_id') AS has_org
               FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              WHERE i.indrelid = $1::regclass AND i.indisunique
              GROUP BY 1",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .expect("unique indexes");
        for key in keys {
            if !key.get::<bool, _>("has_org") {
                broken.push(format!("{table}: unique key {} lacks org_id", key.get::<String, _>("name")));
            }
        }
    }
    broken
}

#[tokio::test]
async fn every_key_of_a_per_org_table_starts_from_the_org() {
    let db = TestDb::new().await;
    let broken = undistributable(&db).await;
    assert!(broken.is_empty(), "not distributable by org:\n{}", broken.join("\n"));
}

#[tokio::test]
async fn a_table_keyed_across_orgs_is_caught() {
    let db = TestDb::new().await;
    let mut conn = db.owner_conn().await;
    sqlx::query("CREATE TABLE rm_bad (org_id uuid NOT NULL, email text NOT NULL UNIQUE)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE rm_orgless (id uuid PRIMARY KEY)").execute(&mut conn).await.unwrap();
    let broken = undistributable(&db).await;
    assert!(broken.iter().any(|b| b.starts_with("rm_bad: unique key")), "{broken:?}");
    assert!(broken.iter().any(|b| b == "rm_orgless: no org_id column"), "{broken:?}");
}

#[tokio::test]
async fn no_foreign_key_joins_rows_of_different_orgs() {
    let db = TestDb::new().await;
    let mut conn = db.owner_conn().await;
    // A foreign key is shard-local only when both sides' columns include org_id.
    let crossing: Vec<String> = sqlx::query_scalar(
        "SELECT c.conname || ' on ' || c.conrelid::regclass::text
           FROM pg_constraint c
          WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
            AND NOT (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.conrelid
                              AND a.attnum = ANY (c.conkey) AND a.attname = 'org_id')
                 AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.confrelid
                              AND a.attnum = ANY (c.confkey) AND a.attname = 'org_id'))",
    )
    .fetch_all(&mut conn)
    .await
    .expect("foreign keys");
    assert!(crossing.is_empty(), "foreign keys that cross orgs: {crossing:?}");
}
