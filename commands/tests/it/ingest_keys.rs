//! Ingest keys against the real database: only the hash is stored, the lookup row and the
//! event commit together, revocation is seen by the resolver within its TTL.

use secrecy::ExposeSecret;
use std::time::Duration;
use uuid::Uuid;
use xdr_commands::handler::CommandError;
use xdr_commands::ingest_keys::{create_ingest_key, key_digest, revoke_ingest_key, IngestKeyResolver, KeyStatus};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::ids::{IngestKeyId, OrgId};
use xdr_domain::ingest_key::IngestKeyError;
use xdr_domain::EventMetadata;

fn operator() -> EventMetadata {
    EventMetadata::system("operator")
}

#[tokio::test]
async fn a_created_key_resolves_to_its_org_and_only_its_hash_is_stored() {
    let db = TestDb::new().await;
    // Keys are issued and revoked by the API (admin mutations), resolved by the ingestor.
    let store = EventStore::new(db.api.clone());
    let org = OrgId(Uuid::new_v4());
    let issued = create_ingest_key(&store, org, " honeypot ", &operator()).await.unwrap();
    let key = issued.key.expose_secret().to_owned();
    assert!(key.starts_with("xdr_") && key.len() == 44);
    assert_eq!(issued.prefix, &key[..8]);
    assert_eq!(issued.name, "honeypot");

    let events = store.read_stream(org, &issued.key_id.stream_id()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "IngestKeyCreated");
    assert_eq!(events[0].payload["key_hash"], hex::encode(key_digest(&key)));
    assert_eq!(events[0].metadata["actor"], "operator");
    let text: String = sqlx::query_scalar("SELECT string_agg(payload::text || metadata::text, '') FROM event_log")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!text.contains(&key), "the plaintext key must never be stored");

    let resolver = IngestKeyResolver::new(db.pool.clone(), Duration::from_millis(200));
    assert_eq!(
        resolver.resolve(&key).await.unwrap(),
        KeyStatus::Valid(xdr_commands::ingest_keys::ResolvedKey { org_id: org, key_id: issued.key_id })
    );
    assert_eq!(resolver.resolve("xdr_notakey").await.unwrap(), KeyStatus::Unknown);
    assert_eq!(resolver.resolve("").await.unwrap(), KeyStatus::Unknown);
}

#[tokio::test]
async fn a_revoked_key_stops_resolving_within_the_ttl_and_revoking_twice_is_a_no_op() {
    let db = TestDb::new().await;
    // Keys are issued and revoked by the API (admin mutations), resolved by the ingestor.
    let store = EventStore::new(db.api.clone());
    let org = OrgId(Uuid::new_v4());
    let issued = create_ingest_key(&store, org, "sensor", &operator()).await.unwrap();
    let key = issued.key.expose_secret().to_owned();
    let resolver = IngestKeyResolver::new(db.pool.clone(), Duration::from_millis(300));
    assert!(matches!(resolver.resolve(&key).await.unwrap(), KeyStatus::Valid(_)));

    assert!(revoke_ingest_key(&store, org, issued.key_id, &operator()).await.unwrap());
    assert!(!revoke_ingest_key(&store, org, issued.key_id, &operator()).await.unwrap());
    let revoked_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT revoked_at FROM ingest_key_lookup WHERE key_id = $1")
            .bind(issued.key_id.0)
            .fetch_one(&mut db.owner_conn().await)
            .await
            .unwrap();
    assert!(revoked_at.is_some());
    let types: Vec<String> =
        store.read_stream(org, &issued.key_id.stream_id()).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["IngestKeyCreated", "IngestKeyRevoked"]);

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(resolver.resolve(&key).await.unwrap(), KeyStatus::Revoked);
}

#[tokio::test]
async fn a_key_cannot_be_revoked_through_another_org() {
    let db = TestDb::new().await;
    // Keys are issued and revoked by the API (admin mutations), resolved by the ingestor.
    let store = EventStore::new(db.api.clone());
    let org = OrgId(Uuid::new_v4());
    let issued = create_ingest_key(&store, org, "sensor", &operator()).await.unwrap();
    let other = OrgId(Uuid::new_v4());
    let err = revoke_ingest_key(&store, other, issued.key_id, &operator()).await.unwrap_err();
    assert!(matches!(err, CommandError::Domain(IngestKeyError::NotFound)), "{err:?}");
    let unknown = revoke_ingest_key(&store, org, IngestKeyId(Uuid::new_v4()), &operator()).await.unwrap_err();
    assert!(matches!(unknown, CommandError::Domain(IngestKeyError::NotFound)));
    let revoked: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT revoked_at FROM ingest_key_lookup WHERE key_id = $1")
            .bind(issued.key_id.0)
            .fetch_one(&mut db.owner_conn().await)
            .await
            .unwrap();
    assert_eq!(revoked, None);
}
