//! Rebuild: same log → same digest, whether rebuilt once, twice, one projection at a time,
//! or projected live; and the digest sees every change to a read model.

use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_projections::rebuild::RebuildError;
use xdr_projections::{catch_up_once, digest, rebuild};

use crate::helpers::*;

#[tokio::test]
async fn rebuilding_twice_and_after_live_projection_gives_the_same_digest() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let mut total = 0;
    for i in 0..3 {
        let org = seed_identity(&store, &format!("Rebuild {i}")).await;
        total += seed_telemetry(&store, org.id, 40 * (i + 1), &format!("r{i}")).await;
    }
    let empty = digest(&db.pool).await.unwrap();
    catch_up_once(&db.pool).await.unwrap();
    let live = digest(&db.pool).await.unwrap();
    assert_ne!(live, empty);

    let owner = owner_pool(&db).await;
    let mut progress = 0;
    let first = rebuild(&owner, None, |n| progress += n).await.unwrap();
    assert_eq!(first.events, total as u64);
    assert_eq!(progress, total as u64);
    assert_eq!(first.digest, live);
    let second = rebuild(&owner, None, |_| {}).await.unwrap();
    assert_eq!(second.digest, live);
    // The digest reads through row-level security as the app role just the same.
    assert_eq!(digest(&db.pool).await.unwrap(), digest(&owner).await.unwrap());

    let only = rebuild(&owner, Some("users"), |_| {}).await.unwrap();
    assert_eq!(only.projections, ["users"]);
    assert_eq!(only.digest, live);
}

#[tokio::test]
async fn the_digest_sees_a_changed_row_and_rebuild_repairs_it() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = seed_identity(&store, "Tampered Ltd").await;
    seed_telemetry(&store, org.id, 10, "t").await;
    catch_up_once(&db.pool).await.unwrap();
    let good = digest(&db.pool).await.unwrap();
    let mut owner_conn = db.owner_conn().await;
    sqlx::query("UPDATE rm_users SET role = 'admin' WHERE user_id = $1")
        .bind(org.analyst.0)
        .execute(&mut owner_conn)
        .await
        .unwrap();
    assert_ne!(digest(&db.pool).await.unwrap(), good);
    let repaired = rebuild(&owner_pool(&db).await, Some("users"), |_| {}).await.unwrap();
    assert_eq!(repaired.digest, good);
}

#[tokio::test]
async fn rebuild_names_an_unknown_projection_and_the_known_ones() {
    let db = TestDb::new().await;
    let err = rebuild(&owner_pool(&db).await, Some("nope"), |_| {}).await.unwrap_err();
    assert!(matches!(err, RebuildError::UnknownProjection { .. }));
    assert!(err.to_string().contains("users"), "{err}");
}
