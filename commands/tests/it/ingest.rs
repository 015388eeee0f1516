//! The ingest pipeline against real NATS JetStream and PostgreSQL: the real log files go in
//! through NATS and come out as exactly one event per record with the README's counts;
//! re-publishing, redelivery after a crash and competing replicas commit nothing twice;
//! bad records and bad keys end in the dead-letter stream.

use async_nats::HeaderMap;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use xdr_commands::ingest::nats_ingestor::Ingestor;
use xdr_commands::ingest::publisher::{file_digest, message_id_base};
use xdr_commands::ingest::{ingest_body, publish_file, IngestConfig};
use xdr_commands::ingest_keys::{revoke_ingest_key, IngestKeyResolver};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::telemetry::SourceType;
use xdr_domain::EventMetadata;

use crate::nats_support::{
    count_by, fixture, telemetry_count, tenant, totals_by_first, wait_for_events, NatsEnv, RunningIngestor,
};

/// The README's Cowrie table: (eventid, src_ip) → events.
fn cowrie_table() -> BTreeMap<(String, String), i64> {
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.8"];
    let rows: [(&str, [i64; 5]); 13] = [
        ("cowrie.login.failed", [40, 8, 1, 0, 2]),
        ("cowrie.session.connect", [15, 9, 1, 20, 1]),
        ("cowrie.session.closed", [15, 9, 1, 20, 1]),
        ("cowrie.client.version", [15, 9, 1, 4, 0]),
        ("cowrie.client.kex", [15, 9, 1, 2, 0]),
        ("cowrie.command.input", [0, 7, 3, 0, 6]),
        ("cowrie.command.failed", [0, 1, 0, 0, 3]),
        ("cowrie.login.success", [0, 1, 1, 0, 1]),
        ("cowrie.session.params", [0, 1, 1, 0, 1]),
        ("cowrie.log.closed", [0, 1, 1, 0, 1]),
        ("cowrie.telnet.option", [0, 0, 0, 0, 3]),
        ("cowrie.client.size", [0, 1, 1, 0, 0]),
        ("cowrie.session.file_download", [0, 1, 0, 0, 0]),
    ];
    let mut out = BTreeMap::new();
    for (eventid, counts) in rows {
        for (ip, n) in ips.iter().zip(counts) {
            if n > 0 {
                out.insert((eventid.to_owned(), ip.to_string()), n);
            }
        }
    }
    out
}

/// The README's sshd table after PID attribution: (event type, src_ip) → lines.
fn sshd_table() -> BTreeMap<(String, String), i64> {
    let rows: [(&str, &str, i64); 13] = [
        ("sshd.failed_password", "127.0.0.6", 15),
        ("sshd.failed_password", "127.0.0.7", 4),
        ("sshd.invalid_user", "127.0.0.6", 2),
        ("sshd.invalid_user", "127.0.0.7", 2),
        ("sshd.pam_user_unknown", "127.0.0.6", 6),
        ("sshd.pam_user_unknown", "127.0.0.7", 2),
        ("sshd.pam_auth_failure", "127.0.0.6", 5),
        ("sshd.pam_auth_failure", "127.0.0.7", 4),
        ("sshd.pam_more_failures", "127.0.0.6", 5),
        ("sshd.connection_closed", "127.0.0.6", 5),
        ("sshd.connection_closed", "127.0.0.7", 4),
        ("sshd.server_listening", "(none)", 1),
        ("sshd.terminating", "(none)", 1),
    ];
    rows.into_iter().map(|(t, ip, n)| ((t.to_owned(), ip.to_owned()), n)).collect()
}

#[tokio::test]
async fn ingest_body_stores_good_records_reports_bad_ones_and_is_idempotent() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    let t = tenant(&db).await;
    let good = r#"{"eventid":"cowrie.login.failed","timestamp":"2026-11-26T21:17:25Z","src_ip":"127.0.0.2","username":"root"}"#;
    let body = format!("{good}\n{{not json\n{good}\n{{\"eventid\":\"nope\"}}\n");
    let out =
        ingest_body(&store, chrono::Utc::now(), t.org, t.key_id, SourceType::Cowrie, Some("web-1"), &body, "msg:a")
            .await
            .unwrap();
    assert_eq!(out.stored, 2);
    assert_eq!(out.written, 2);
    assert_eq!(out.rejected.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 3]);
    assert!(out.rejected.iter().all(|r| !r.reason.is_empty()));
    assert_eq!(
        serde_json::to_value(&out).unwrap(),
        serde_json::json!({"stored": 2, "rejected": [
            {"index": 1, "reason": out.rejected[0].reason}, {"index": 3, "reason": out.rejected[1].reason}]})
    );
    let again =
        ingest_body(&store, chrono::Utc::now(), t.org, t.key_id, SourceType::Cowrie, Some("web-1"), &body, "msg:a")
            .await
            .unwrap();
    assert_eq!((again.stored, again.written), (2, 0), "same body, same base: nothing new");
    assert_eq!(telemetry_count(&db).await, 2);
    let streams: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT stream_id FROM event_log WHERE org_id = $1 AND event_type = 'SecurityEventObserved'",
    )
    .bind(t.org.0)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(streams, ["source-cowrie-web-1"]);
}

#[tokio::test]
async fn cowrie_file_through_nats_gives_one_event_per_record_with_the_readme_counts() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let t = tenant(&db).await;
    let bystander = tenant(&db).await;
    let ingestor = RunningIngestor::start(&env, &db, env.config.clone());

    let summary =
        publish_file(env.client.clone(), &env.config, &t.key, SourceType::Cowrie, &fixture("cowrie.json"), 50, |_| {})
            .await
            .unwrap();
    assert_eq!((summary.records, summary.messages, summary.duplicate_messages), (234, 5, 0));
    assert!(summary.will_dead_letter.is_empty());
    wait_for_events(&db, 234).await;
    env.wait_drained().await;
    let stats = ingestor.stop().await;

    assert_eq!(count_by(&db, t.org, "event_type", "src_ip").await, cowrie_table());
    assert_eq!(telemetry_count(&db).await, 234, "every event belongs to the key's org");
    assert_eq!(count_by(&db, bystander.org, "event_type", "src_ip").await.len(), 0);
    let ids: i64 = sqlx::query_scalar("SELECT count(DISTINCT payload->>'raw') FROM event_log WHERE org_id = $1 AND event_type = 'SecurityEventObserved'")
        .bind(t.org.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(ids, 234, "each record stored once, verbatim");
    let sessions = totals_by_first(&count_by(&db, t.org, "session_id", "source_type").await);
    assert_eq!(sessions.len(), 46);
    assert_eq!(stats.events_written.load(Ordering::Relaxed), 234);
    assert!(env.dead_letters().await.is_empty());
}

#[tokio::test]
async fn both_sshd_logs_through_nats_keep_every_line_and_attribute_by_pid() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let traditional = tenant(&db).await;
    let rfc3339 = tenant(&db).await;
    let ingestor = RunningIngestor::start(&env, &db, env.config.clone());
    for (t, file) in [(&traditional, "sshd-auth.log"), (&rfc3339, "sshd-auth-rfc3339.log")] {
        let s = publish_file(env.client.clone(), &env.config, &t.key, SourceType::Sshd, &fixture(file), 100, |_| {})
            .await
            .unwrap();
        assert_eq!(s.records, 56);
    }
    wait_for_events(&db, 112).await;
    env.wait_drained().await;
    ingestor.stop().await;
    for t in [&traditional, &rfc3339] {
        let counts = count_by(&db, t.org, "event_type", "src_ip").await;
        assert_eq!(counts, sshd_table());
        let per_ip = totals_by_first(&count_by(&db, t.org, "src_ip", "event_type").await);
        assert_eq!(per_ip, BTreeMap::from([("127.0.0.6".into(), 38), ("127.0.0.7".into(), 16), ("(none)".into(), 2)]));
        let hosts = count_by(&db, t.org, "hostname", "source_type").await;
        assert_eq!(hosts, BTreeMap::from([(("bastion-01".into(), "sshd".into()), 56)]));
    }
    // The two files record the same moments: same timestamps, second by second.
    let times = |org: xdr_domain::ids::OrgId| {
        let pool = db.pool.clone();
        async move {
            let v: Vec<String> = sqlx::query_scalar(
                "SELECT left(payload->>'timestamp', 19) FROM event_log \
                 WHERE org_id = $1 AND event_type = 'SecurityEventObserved' ORDER BY 1",
            )
            .bind(org.0)
            .fetch_all(&pool)
            .await
            .unwrap();
            v
        }
    };
    assert_eq!(times(traditional.org).await, times(rfc3339.org).await);
    assert!(env.dead_letters().await.is_empty());
}

#[tokio::test]
async fn publishing_the_same_file_twice_adds_no_events() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let t = tenant(&db).await;
    let ingestor = RunningIngestor::start(&env, &db, env.config.clone());
    let path = fixture("cowrie.json");
    publish_file(env.client.clone(), &env.config, &t.key, SourceType::Cowrie, &path, 40, |_| {}).await.unwrap();
    wait_for_events(&db, 234).await;
    env.wait_drained().await;
    // Event ids come from the producer's Nats-Msg-Id and the record index.
    let (sha, _) = file_digest(&path).unwrap();
    let first_line = std::fs::read_to_string(&path).unwrap().lines().next().unwrap().to_owned();
    let ts = serde_json::from_str::<serde_json::Value>(&first_line).unwrap()["timestamp"].as_str().unwrap().to_owned();
    let ts = chrono::DateTime::parse_from_rfc3339(&ts).unwrap().with_timezone(&chrono::Utc);
    let key = format!("cowrie:msg:{}/0/0", message_id_base(&t.key, &sha, 40));
    let expected_id = xdr_domain::telemetry::telemetry_event_id(ts, key.as_bytes());
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log WHERE org_id = $1 AND event_id = $2")
        .bind(t.org.0)
        .bind(expected_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(found, 1, "first record's id derives from <msg id>/0");

    let second =
        publish_file(env.client.clone(), &env.config, &t.key, SourceType::Cowrie, &path, 40, |_| {}).await.unwrap();
    assert_eq!(second.duplicate_messages, second.messages, "JetStream de-duplicates by Nats-Msg-Id");
    env.wait_drained().await;
    let stats = ingestor.stop().await;

    // Past JetStream's window the message ids still decide: re-publish under the same ids
    // into a fresh stream (deleting the stream stands in for the window expiring).
    env.js.delete_stream(&env.config.stream_name).await.unwrap();
    let third =
        publish_file(env.client.clone(), &env.config, &t.key, SourceType::Cowrie, &path, 40, |_| {}).await.unwrap();
    assert_eq!(third.duplicate_messages, 0, "the fresh stream does not remember the ids");
    let ingestor = RunningIngestor::start(&env, &db, env.config.clone());
    env.wait_drained().await;
    let stats2 = ingestor.stop().await;
    assert_eq!(stats.events_written.load(Ordering::Relaxed), 234);
    assert_eq!(stats2.events_written.load(Ordering::Relaxed), 0);
    assert_eq!(stats2.events_duplicate.load(Ordering::Relaxed), 234);
    assert_eq!(telemetry_count(&db).await, 234);
}

#[tokio::test]
async fn an_ingestor_that_dies_after_commit_before_ack_causes_no_duplicates() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let store = EventStore::new(db.pool.clone());
    let t = tenant(&db).await;
    let mut config = env.config.clone();
    config.ack_wait = Duration::from_secs(2);
    publish_file(env.client.clone(), &config, &t.key, SourceType::Cowrie, &fixture("cowrie.json"), 30, |_| {})
        .await
        .unwrap();

    // Fault injection: commit a batch, then "crash" without acking.
    let resolver = Arc::new(IngestKeyResolver::new(db.pool.clone(), Duration::from_secs(1)));
    let mut doomed = Ingestor::new(env.client.clone(), config.clone(), store.clone(), resolver).await.unwrap();
    let messages = doomed.fetch().await.unwrap();
    assert_eq!(messages.len(), 8, "the whole file fits one batch");
    let round = doomed.process(messages).await.unwrap();
    assert_eq!(telemetry_count(&db).await, 234, "committed");
    drop(round);
    drop(doomed);

    // After ack_wait JetStream redelivers to the next replica, which finds them all stored.
    let replica = RunningIngestor::start(&env, &db, config.clone());
    env.wait_drained().await;
    let stats = replica.stop().await;
    assert_eq!(stats.messages.load(Ordering::Relaxed), 8, "every message was redelivered");
    assert_eq!(stats.events_written.load(Ordering::Relaxed), 0);
    assert_eq!(stats.events_duplicate.load(Ordering::Relaxed), 234);
    assert_eq!(telemetry_count(&db).await, 234);
}

async fn publish_raw(env: &NatsEnv, source: &str, key: Option<&str>, msg_id: &str, body: String) {
    let mut headers = HeaderMap::new();
    if let Some(k) = key {
        headers.insert("Xdr-Ingest-Key", k);
    }
    headers.insert("Nats-Msg-Id", msg_id);
    env.js.publish_with_headers(env.config.ingest_subject(source), headers, body.into()).await.unwrap().await.unwrap();
}

#[tokio::test]
async fn bad_records_are_dead_lettered_and_the_good_ones_of_the_same_message_committed() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let t = tenant(&db).await;
    xdr_commands::ingest::nats_ingestor::ensure_ingest_streams(&env.js, &env.config).await.unwrap();
    let good = |n: u32| {
        format!(
            r#"{{"eventid":"cowrie.command.input","timestamp":"2026-11-26T21:18:0{n}Z","src_ip":"127.0.0.3","input":"ls {n}"}}"#
        )
    };
    let body = [good(1), "{\"eventid\": ".into(), good(2), r#"{"eventid":"cowrie.x"}"#.into(), good(3)].join("\n");
    publish_raw(&env, "cowrie", Some(&t.key), "mixed-1", body).await;
    publish_raw(&env, "cowrie", None, "nokey-1", good(4)).await;
    publish_raw(&env, "cowrie", Some("xdr_forged"), "forged-1", good(5)).await;
    publish_raw(&env, "klingon", Some(&t.key), "unknown-source-1", good(6)).await;
    let mut small = env.config.clone();
    small.max_message_bytes = 4096;
    publish_raw(&env, "cowrie", Some(&t.key), "huge-1", format!("{}\n", good(7)).repeat(100)).await;

    let ingestor = RunningIngestor::start(&env, &db, small);
    env.wait_drained().await;
    let stats = ingestor.stop().await;
    assert_eq!(count_by(&db, t.org, "command", "src_ip").await.len(), 3);
    assert_eq!(telemetry_count(&db).await, 3);
    assert_eq!(stats.dead_letters.load(Ordering::Relaxed), 6);

    let mut letters = env.dead_letters().await;
    letters.sort_by(|a, b| (a.1.as_str(), a.2, a.0.as_str()).cmp(&(b.1.as_str(), b.2, b.0.as_str())));
    let cowrie = env.config.ingest_subject("cowrie");
    let summary: Vec<(&str, Option<usize>, &str)> =
        letters.iter().map(|(reason, subject, index, _)| (reason.as_str(), *index, subject.as_str())).collect();
    assert_eq!(summary.len(), 6, "{summary:#?}");
    let by_reason = |prefix: &str| letters.iter().filter(|l| l.0.starts_with(prefix)).collect::<Vec<_>>();
    let parse_errors = by_reason("parse error");
    assert_eq!(parse_errors.iter().map(|l| l.2).collect::<Vec<_>>(), [Some(1), Some(3)]);
    assert_eq!(parse_errors[0].3, "{\"eventid\": ");
    assert_eq!(parse_errors[1].3, r#"{"eventid":"cowrie.x"}"#);
    assert!(parse_errors.iter().all(|l| l.1 == cowrie));
    assert_eq!(by_reason("missing ingest key")[0].3, good(4));
    assert_eq!(by_reason("unknown ingest key")[0].3, good(5));
    assert_eq!(by_reason("unknown source type")[0].1, env.config.ingest_subject("klingon"));
    assert!(by_reason("message too large")[0].3.starts_with(&good(7)));
    assert!(letters.iter().all(|l| l.2.is_none() || l.0.starts_with("parse error")));
}

/// Times PostgreSQL cannot hold (year 0, 275759) or far in the future are dead-lettered with
/// the reason; the future is judged against the message's publish time.
#[tokio::test]
async fn records_dated_outside_the_accepted_range_are_dead_lettered_with_the_reason() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let t = tenant(&db).await;
    xdr_commands::ingest::nats_ingestor::ensure_ingest_streams(&env.js, &env.config).await.unwrap();
    let record =
        |ts: &str| format!(r#"{{"eventid":"cowrie.session.connect","timestamp":"{ts}","src_ip":"127.0.0.3"}}"#);
    let in_two_days = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let body = [
        record("0000-01-01T00:00:00Z"),
        record("2026-11-26T21:18:01Z"),
        record("+275759-01-01T00:00:00Z"),
        record(&in_two_days),
        record("1969-12-31T23:59:59Z"),
    ]
    .join("\n");
    publish_raw(&env, "cowrie", Some(&t.key), "times-1", body).await;
    let ingestor = RunningIngestor::start(&env, &db, env.config.clone());
    env.wait_drained().await;
    ingestor.stop().await;
    assert_eq!(telemetry_count(&db).await, 1);
    let mut letters = env.dead_letters().await;
    letters.sort_by_key(|l| l.2);
    assert_eq!(letters.iter().map(|l| l.2).collect::<Vec<_>>(), [Some(0), Some(2), Some(3), Some(4)]);
    for (reason, _, _, body) in &letters {
        // Year 275759 is beyond what chrono reads at all: "invalid timestamp"; the others parse
        // and are out of the accepted range.
        assert!(
            reason.starts_with("parse error: timestamp out of range: ")
                || reason.starts_with("parse error: invalid timestamp in field timestamp"),
            "{reason}"
        );
        assert!(body.starts_with(r#"{"eventid":"cowrie.session.connect""#));
    }
    assert!(letters[0].0.contains("0000-01-01T00:00:00Z is before 1970-01-01T00:00:00Z"), "{}", letters[0].0);
    assert!(letters[1].0.contains("+275759"), "{}", letters[1].0);
    assert!(letters[2].0.contains("more than a day after receipt"), "{}", letters[2].0);
    assert!(letters[3].0.contains("1969-12-31T23:59:59Z is before"), "{}", letters[3].0);
}

#[tokio::test]
async fn a_revoked_key_dead_letters_the_whole_message_and_commits_nothing() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let t = tenant(&db).await;
    revoke_ingest_key(&EventStore::new(db.api.clone()), t.org, t.key_id, &EventMetadata::system("operator"))
        .await
        .unwrap();
    let ingestor = RunningIngestor::start(&env, &db, env.config.clone());
    let s =
        publish_file(env.client.clone(), &env.config, &t.key, SourceType::Cowrie, &fixture("cowrie.json"), 100, |_| {})
            .await
            .unwrap();
    assert_eq!(s.messages, 3);
    env.wait_drained().await;
    ingestor.stop().await;
    assert_eq!(telemetry_count(&db).await, 0);
    let letters = env.dead_letters().await;
    assert_eq!(letters.len(), 3);
    assert!(letters.iter().all(|l| l.0 == "revoked ingest key" && l.2.is_none()));
    let records: usize = letters.iter().map(|l| l.3.lines().count()).sum();
    assert_eq!(records, 234, "every record is in the dead-letter stream");
}

#[tokio::test]
async fn two_ingestors_on_one_consumer_split_the_work_and_commit_each_record_once() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let a = tenant(&db).await;
    let b = tenant(&db).await;
    let mut config: IngestConfig = env.config.clone();
    config.batch_messages = 4;
    config.batch_wait = Duration::from_millis(50);
    let first = RunningIngestor::start(&env, &db, config.clone());
    let second = RunningIngestor::start(&env, &db, config.clone());
    let path = fixture("cowrie.json");
    let (ra, rb) = tokio::join!(
        publish_file(env.client.clone(), &config, &a.key, SourceType::Cowrie, &path, 2, |_| {}),
        publish_file(env.client.clone(), &config, &b.key, SourceType::Cowrie, &path, 3, |_| {}),
    );
    assert_eq!((ra.unwrap().messages, rb.unwrap().messages), (117, 78));
    wait_for_events(&db, 468).await;
    env.wait_drained().await;
    let (s1, s2) = (first.stop().await, second.stop().await);
    let m1 = s1.messages.load(Ordering::Relaxed);
    let m2 = s2.messages.load(Ordering::Relaxed);
    assert!(m1 > 0 && m2 > 0, "both replicas worked: {m1} + {m2}");
    assert_eq!(m1 + m2, 195);
    assert_eq!(s1.events_written.load(Ordering::Relaxed) + s2.events_written.load(Ordering::Relaxed), 468);
    assert_eq!(telemetry_count(&db).await, 468);
    for t in [&a, &b] {
        assert_eq!(count_by(&db, t.org, "event_type", "src_ip").await, cowrie_table());
    }
}

#[tokio::test]
async fn sshd_lines_sent_one_per_message_are_still_attributed_through_the_pid() {
    let db = TestDb::new().await;
    let env = NatsEnv::new().await;
    let t = tenant(&db).await;
    let ingestor = RunningIngestor::start(&env, &db, env.config.clone());
    let s =
        publish_file(env.client.clone(), &env.config, &t.key, SourceType::Sshd, &fixture("sshd-auth.log"), 1, |_| {})
            .await
            .unwrap();
    assert_eq!(s.messages, 56);
    wait_for_events(&db, 56).await;
    env.wait_drained().await;
    ingestor.stop().await;
    let per_ip = totals_by_first(&count_by(&db, t.org, "src_ip", "event_type").await);
    assert_eq!(per_ip, BTreeMap::from([("127.0.0.6".into(), 38), ("127.0.0.7".into(), 16), ("(none)".into(), 2)]));
}
