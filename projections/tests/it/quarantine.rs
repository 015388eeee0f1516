//! One event never stops an org: an event a projection cannot apply is quarantined (with its
//! projection, org_seq and error) and the org's read models go on past it; rebuild gives the
//! same result, quarantine included; infrastructure errors are never quarantined; retry
//! projects quarantined events again after a fix. And the parsers' side of it: every parser,
//! fed times at and beyond the edges of chrono's and PostgreSQL's ranges, either refuses the
//! record with a reason or produces an event that the real projection accepts.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use xdr_commands::testing::TestDb;
use xdr_commands::{EventStore, NewEvent};
use xdr_domain::ids::OrgId;
use xdr_domain::telemetry::parsers::{parse_record, ParseContext};
use xdr_domain::telemetry::{telemetry_event_id, SecurityEvent, SourceType};
use xdr_domain::{Event, EventMetadata, EventType};
use xdr_projections::quarantine::{list, list_org, retry};
use xdr_projections::rebuild::clear;
use xdr_projections::runner::{catch_up_with, Apply, Projection, Reads};
use xdr_projections::{begin_org_tx, catch_up_once, digest, models, rebuild};

use crate::helpers::*;

/// A telemetry event whose stored payload says `timestamp` verbatim: what an older version
/// (whose parsers accepted any year chrono could read) wrote to the append-only log.
fn telemetry_with_raw_timestamp(timestamp: &str, salt: &str) -> NewEvent {
    let mut e = SecurityEvent::new(at(5), SourceType::Cowrie, "cowrie.session.connect", serde_json::json!({"s": salt}));
    e.src_ip = Some("203.0.113.9".parse().unwrap());
    let mut new = NewEvent::from_event(
        telemetry_event_id(at(5), salt.as_bytes()),
        "telemetry-cowrie-poison",
        &Event::SecurityEventObserved(e),
        &EventMetadata::system("ingest-key:old-version"),
    );
    new.payload["timestamp"] = serde_json::json!(timestamp);
    new
}

/// `UserCreated` whose payload no longer decodes (a field missing).
fn undecodable_user_created(org: OrgId) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        stream_id: format!("user-{}", Uuid::new_v4()),
        event_type: "UserCreated".into(),
        schema_version: 1,
        payload: serde_json::json!({"org_id": org.0, "email": "broken@example.com"}),
        metadata: serde_json::to_value(EventMetadata::system("old-version")).unwrap(),
    }
}

async fn head(db: &TestDb, org: OrgId) -> i64 {
    sqlx::query_scalar("SELECT last_seq FROM org_heads WHERE org_id = $1")
        .bind(org.0)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_poison_event_is_quarantined_and_the_org_goes_on_past_it_and_rebuild_agrees() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = seed_identity(&store, "Poisoned").await;
    let other = seed_identity(&store, "Bystander").await;
    seed_telemetry(&store, org.id, 10, "before").await;
    let poison = [
        telemetry_with_raw_timestamp("0000-01-01T00:00:00Z", "year-0"),
        telemetry_with_raw_timestamp("-0001-01-01T00:00:00Z", "year-minus-1"),
        telemetry_with_raw_timestamp("+275759-01-01T00:00:00Z", "year-275759"),
    ];
    let poison_last = store.append_batch(org.id, poison.to_vec()).await.unwrap().last_seq;
    let undecodable = store.append_batch(org.id, vec![undecodable_user_created(org.id)]).await.unwrap().last_seq;
    seed_telemetry(&store, org.id, 10, "after").await;
    seed_telemetry(&store, other.id, 5, "other").await;

    catch_up_once(&db.pool).await.expect("one bad event does not stop the org");

    assert_eq!(count(&db.pool, org.id, "rm_security_events").await, 20, "telemetry before and after the poison");
    assert_eq!(count(&db.pool, other.id, "rm_security_events").await, 5);
    let head = head(&db, org.id).await;
    assert!(checkpoints(&db.pool, org.id).await.iter().all(|(_, seq)| *seq == head), "every projection at the head");
    // The audit view records the undecodable event (it reads raw payloads); users cannot.
    let mut tx = begin_org_tx(&db.pool, org.id).await.unwrap();
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_audit_log WHERE org_seq = $1")
        .bind(undecodable)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(audited, 1);
    let page = list_org(&mut tx, org.id, None, 100).await.unwrap();
    tx.commit().await.unwrap();

    let found: Vec<(&str, i64, &str)> =
        page.iter().map(|q| (q.projection.as_str(), q.org_seq, q.event_type.as_str())).collect();
    assert_eq!(
        found,
        [
            ("users", undecodable, "UserCreated"),
            ("security_events", poison_last, "SecurityEventObserved"),
            ("security_events", poison_last - 1, "SecurityEventObserved"),
            ("security_events", poison_last - 2, "SecurityEventObserved"),
        ]
    );
    // PostgreSQL's own words: "date/time field value out of range", "invalid input syntax for
    // type timestamp with time zone", "time zone displacement out of range".
    let errors: Vec<&str> = page[1..].iter().map(|q| q.error.as_str()).collect();
    assert!(errors[0].contains("out of range") && errors[0].contains("+275759"), "{errors:?}");
    assert!(errors[1].contains("invalid input syntax") && errors[1].contains("-0001"), "{errors:?}");
    assert!(errors[2].contains("date/time field value out of range"), "{errors:?}");
    assert!(page[0].error.contains("missing field"), "{}", page[0].error);

    // Another org's transaction sees none of it (row-level security), and the cross-org
    // listing names the org.
    let mut tx = begin_org_tx(&db.pool, other.id).await.unwrap();
    let foreign: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_quarantine").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(foreign, 0);
    tx.commit().await.unwrap();
    let all = list(&db.pool, None).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|q| q.org_id == org.id.0));
    assert_eq!(
        xdr_projections::quarantine::counts(&db.pool).await.unwrap(),
        [("security_events".to_owned(), 3), ("users".to_owned(), 1)]
    );

    // Rebuild replays the poison too, quarantines the same events with the same errors and
    // gives the same digest; so does live projection in other batch sizes.
    let live = digest(&db.pool).await.unwrap();
    let owner = owner_pool(&db).await;
    let rebuilt = rebuild(&owner, None, |_| {}).await.expect("rebuild goes past the poison too");
    assert_eq!(rebuilt.digest, live);
    assert_eq!(list(&db.pool, None).await.unwrap().len(), 4);
    for batch in [1, 3, 7] {
        clear(&owner, models::ALL).await.unwrap();
        catch_up_with(&db.pool, models::ALL, batch, |_| {}).await.unwrap();
        assert_eq!(digest(&db.pool).await.unwrap(), live, "batch {batch}");
    }
    // The quarantine is part of the digest.
    let rebuilt_users = rebuild(&owner, Some("users"), |_| {}).await.unwrap();
    assert_eq!(rebuilt_users.digest, live);
}

/// A range projection whose statement raises whatever `sql` raises (it takes the runner's
/// three parameters: the org, and the range).
const fn failing(name: &'static str, sql: &'static str) -> Projection {
    Projection { name, tables: &[], reads: Reads::Only(&[EventType::SecurityEventObserved]), apply: Apply::Sql(sql) }
}

#[tokio::test]
async fn infrastructure_errors_stop_the_org_at_its_checkpoint_and_are_never_quarantined() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = OrgId(Uuid::new_v4());
    seed_telemetry(&store, org, 4, "infra").await;
    for failing in [
        // The connection dies mid-batch.
        failing("connection_lost", "SELECT pg_terminate_backend(pg_backend_pid()), $1::uuid, $2::bigint, $3::bigint"),
        // A grant is missing (42501): the events are fine, the deployment is not.
        failing("permission_denied", "SELECT count(*), $1::uuid, $2::bigint, $3::bigint FROM pg_authid"),
        // The statement is wrong (42601): a bug, not bad data.
        failing("syntax_error", "SELEC $1, $2, $3"),
    ] {
        let name = failing.name;
        let projections = [failing];
        let err = catch_up_with(&db.pool, &projections, 100, |_| {}).await.expect_err(name);
        assert!(!err.is_poison(), "{name}: {err}");
        let at: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM projection_checkpoints WHERE org_id = $1 AND projection = $2")
                .bind(org.0)
                .bind(name)
                .fetch_optional(&db.pool)
                .await
                .unwrap();
        assert_eq!(at.unwrap_or(0), 0, "{name}: the checkpoint stays");
    }
    // A data error on the same events is quarantined, each event on its own.
    let projections = [failing("division", "SELECT 1 / 0, $1::uuid, $2::bigint, $3::bigint")];
    catch_up_with(&db.pool, &projections, 100, |_| {}).await.unwrap();
    let quarantined = list(&db.pool, Some(org)).await.unwrap();
    assert_eq!(quarantined.iter().map(|q| q.org_seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(quarantined.iter().all(|q| q.projection == "division" && q.error.contains("division by zero")));
}

#[tokio::test]
async fn retry_projects_quarantined_events_again_after_a_fix_like_a_rebuild() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let owner = owner_pool(&db).await;
    let org = seed_identity(&store, "Fixable").await;
    seed_telemetry(&store, org.id, 5, "a").await;
    // A read-model constraint the data does not meet (integrity, SQLSTATE 23514).
    sqlx::query("ALTER TABLE rm_security_events ADD CONSTRAINT test_no_tab CHECK (position(E'\\t' in message) = 0)")
        .execute(&owner)
        .await
        .unwrap();
    let mut clean = SecurityEvent::new(at(9), SourceType::Json, "json.x", serde_json::json!({}));
    clean.message = Some("fine".into());
    let clean_seq = store
        .append_batch(
            org.id,
            vec![NewEvent::from_event(
                telemetry_event_id(at(9), b"clean"),
                "telemetry-json",
                &Event::SecurityEventObserved(clean),
                &EventMetadata::system("test"),
            )],
        )
        .await
        .unwrap()
        .last_seq;
    catch_up_once(&db.pool).await.unwrap();
    assert_eq!(count(&db.pool, org.id, "rm_security_events").await, 1, "only the clean event");
    let before = list(&db.pool, Some(org.id)).await.unwrap();
    assert_eq!(before.len(), 5);
    assert!(before.iter().all(|q| q.error.contains("test_no_tab")), "{before:?}");
    assert!(before.iter().all(|q| q.org_seq < clean_seq));

    // Nothing fixed yet: retry quarantines the same events again.
    let again = retry(&owner, Some(org.id), None).await.unwrap();
    assert_eq!((again.before, again.after), (5, 5));
    // The fix, then retry: everything projected, nothing quarantined, as a rebuild gives.
    sqlx::query("ALTER TABLE rm_security_events DROP CONSTRAINT test_no_tab").execute(&owner).await.unwrap();
    let report = retry(&owner, Some(org.id), Some("security_events")).await.unwrap();
    assert_eq!(report.reprojected, [(org.id, "security_events")]);
    assert_eq!((report.before, report.after), (5, 0));
    assert_eq!(count(&db.pool, org.id, "rm_security_events").await, 6);
    assert!(list(&db.pool, None).await.unwrap().is_empty());
    assert!(xdr_projections::quarantine::counts(&db.pool).await.unwrap().is_empty());
    let retried = digest(&db.pool).await.unwrap();
    assert_eq!(rebuild(&owner, None, |_| {}).await.unwrap().digest, retried);
    // Nothing left to retry.
    assert_eq!(retry(&owner, None, None).await.unwrap().reprojected, []);
}

/// Records of `source` that say `time` in every way the format can: `text` is an RFC 3339
/// (or ISO 8601) string, `epoch` seconds for formats that take numbers.
fn records(source: SourceType, text: &str, epoch: Option<&str>) -> Vec<String> {
    let json_str = serde_json::to_string(text).unwrap();
    match source {
        SourceType::Cowrie => vec![format!(
            r#"{{"eventid":"cowrie.login.failed","timestamp":{json_str},"src_ip":"203.0.113.7","username":"root","password":"x"}}"#
        )],
        SourceType::Suricata => vec![format!(
            r#"{{"timestamp":{json_str},"event_type":"alert","src_ip":"203.0.113.7","src_port":4000,"dest_ip":"10.0.0.5","dest_port":22,"proto":"TCP","alert":{{"signature":"x","severity":2}}}}"#
        )],
        SourceType::Json => {
            let mut out = vec![format!(r#"{{"eventid":"edge.test","timestamp":{json_str},"src_ip":"203.0.113.7"}}"#)];
            if let Some(n) = epoch {
                out.push(format!(r#"{{"eventid":"edge.test","timestamp":{n},"src_ip":"203.0.113.7"}}"#));
            }
            out
        }
        SourceType::Sshd => {
            vec![format!("{text} bastion sshd[42]: Failed password for root from 203.0.113.7 port 40022 ssh2")]
        }
        SourceType::Cef => {
            let mut out = vec![format!("CEF:0|Acme|Guard|1|100|edge|5|rt={text} src=203.0.113.7 suser=root")];
            if let Some(n) = epoch.and_then(|n| n.parse::<f64>().ok()) {
                // CEF's rt takes epoch milliseconds (digits only).
                if n >= 0.0 && n.fract() == 0.0 && n < 9e15 {
                    out.push(format!("CEF:0|Acme|Guard|1|100|edge|5|rt={} src=203.0.113.7", n as i64 * 1000));
                }
            }
            out
        }
    }
}

#[tokio::test]
async fn every_parser_at_the_edges_of_time_rejects_with_a_reason_or_yields_an_event_that_projects() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let org = OrgId(Uuid::new_v4());
    let now = Utc::now();
    let received = ParseContext::received_at(now);
    let shown = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let secs = |t: DateTime<Utc>| t.timestamp().to_string();
    // (text, epoch seconds): chrono's range ends at ±262143 years, PostgreSQL's timestamptz
    // at 4713 BC and 294276 AD, our accepted range at 1970 and a day after receipt.
    let times: Vec<(String, Option<String>)> = vec![
        ("0000-01-01T00:00:00Z".into(), Some("-62167219200".into())),
        ("-0001-01-01T00:00:00Z".into(), Some("-62198755200".into())),
        ("-4713-11-24T00:00:00Z".into(), Some("-210866803200".into())),
        ("-262143-01-01T00:00:00Z".into(), Some("-8334632851200".into())),
        ("0001-01-01T00:00:00Z".into(), Some("-62135596800".into())),
        ("1969-12-31T23:59:59.999999Z".into(), Some("-1".into())),
        ("1969-12-31T23:59:59.9999999Z".into(), Some("-0.0000001".into())),
        ("1970-01-01T00:00:00Z".into(), Some("0".into())),
        ("1970-01-01T00:00:00.000000001Z".into(), Some("0.000000001".into())),
        ("2026-06-30T23:59:60Z".into(), None),
        ("2026-11-26T21:17:25.999999999Z".into(), Some("1795727845.999999999".into())),
        ("2026-11-26T21:17:25.9999995Z".into(), None),
        ("2026-11-26T21:17:25.123456789+14:00".into(), None),
        ("2026-11-26T21:17:25-12:00".into(), None),
        ("2026-11-26 21:17:25".into(), None),
        (shown(now), Some(secs(now))),
        (shown(now + Duration::hours(23)), Some(secs(now + Duration::hours(23)))),
        (shown(now + Duration::days(2)), Some(secs(now + Duration::days(2)))),
        ("9999-12-31T23:59:59.999999999Z".into(), Some("253402300799.999999".into())),
        ("+10000-01-01T00:00:00Z".into(), Some("253402300800".into())),
        ("10000-01-01T00:00:00Z".into(), None),
        ("275759-12-31T23:59:59Z".into(), Some("8639977881599".into())),
        ("+275760-09-13T00:00:00Z".into(), Some("8640000000000".into())),
        ("294276-12-31T23:59:59.999999Z".into(), Some("9224318015999.999999".into())),
        ("+294277-01-01T00:00:00Z".into(), Some("9224318016000".into())),
        ("+262143-12-31T23:59:59Z".into(), Some("8210266876799".into())),
        ("1e300".into(), Some("1e300".into())),
        ("-1e300".into(), Some("-1e300".into())),
        ("NaN".into(), Some("1.7976931348623157e308".into())),
    ];
    let mut accepted = Vec::new();
    let mut refused = 0;
    for source in SourceType::ALL {
        for (text, epoch) in &times {
            for record in records(source, text, epoch.as_deref()) {
                match parse_record(source, &record, &received) {
                    Ok(ev) => {
                        assert!(
                            ev.timestamp >= DateTime::UNIX_EPOCH && ev.timestamp <= now + Duration::days(1),
                            "{source} accepted {} from {record}",
                            ev.timestamp
                        );
                        accepted.push((source, record, ev));
                    }
                    Err(e) => {
                        assert!(!e.0.trim().is_empty(), "{source}: empty reason for {record}");
                        refused += 1;
                    }
                }
            }
        }
    }
    assert!(refused > 0 && !accepted.is_empty(), "{refused} refused, {} accepted", accepted.len());
    for source in SourceType::ALL {
        assert!(accepted.iter().any(|(s, ..)| *s == source), "{source} accepted nothing");
    }
    let events: Vec<NewEvent> = accepted
        .iter()
        .enumerate()
        .map(|(i, (source, _, ev))| {
            NewEvent::from_event(
                telemetry_event_id(ev.timestamp, format!("edge/{i}").as_bytes()),
                format!("telemetry-{source}"),
                &Event::SecurityEventObserved(ev.clone()),
                &EventMetadata::system("test"),
            )
        })
        .collect();
    let n = events.len() as i64;
    store.append_batch(org, events).await.unwrap();
    catch_up_once(&db.pool).await.unwrap();
    let quarantined = list(&db.pool, Some(org)).await.unwrap();
    assert!(quarantined.is_empty(), "accepted records that do not project: {quarantined:?}");
    assert_eq!(count(&db.pool, org, "rm_security_events").await, n);
    // What PostgreSQL stored is the parsed time (to the microsecond).
    let mut tx = begin_org_tx(&db.pool, org).await.unwrap();
    let stored: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT \"timestamp\" FROM rm_security_events ORDER BY org_seq")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    for ((source, record, ev), at) in accepted.iter().zip(&stored) {
        if chrono::Timelike::nanosecond(&ev.timestamp) >= 1_000_000_000 {
            continue; // a leap second: PostgreSQL has none and stores the next second
        }
        let diff = (*at - ev.timestamp).num_microseconds().unwrap_or(i64::MAX).abs();
        assert!(diff <= 1, "{source}: {record} stored as {at}, parsed as {}", ev.timestamp);
    }
}
