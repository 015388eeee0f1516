//! Issue #13, upgrade path: a log whose chain was written by the append code released before
//! the fix (its JSON renderer frozen below) verifies with today's verifier, model scores and
//! all — the old rows hashed the very text they stored; only the read side was wrong.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;
use xdr_audit::verify;
use xdr_commands::store::chain::{link_hash, ChainRow, GENESIS_HASH};
use xdr_commands::testing::TestDb;

/// `chain::canonical_json` as released before issue #13, verbatim in behaviour: compact,
/// keys sorted, every scalar printed by serde_json.
fn legacy_canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), legacy_canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(legacy_canonical_json).collect::<Vec<_>>().join(",")),
        scalar => scalar.to_string(),
    }
}

/// An `IncidentOpened` as the detector wrote them: classifier probabilities of every size.
fn incident_payload(i: u32) -> Value {
    let p = |k: f64| (k * f64::from(i + 1)).exp() / 1e3;
    json!({
        "incident_id": Uuid::new_v4(),
        "src_ip": format!("127.0.0.{i}"),
        "risk_score": 0.6 + f64::from(i) / 100.0,
        "model": {
            "model": "xdr-mlp-v1",
            "predicted_class": "brute_force",
            "class_probabilities": {
                "apt": 6.005022035182606e-10 * f64::from(i + 1),
                "brute_force": 0.9999 - p(-30.0),
                "ddos": p(-41.0),
                "malware_botnet": p(-9.5),
                "normal": 3.943013383563368e-25 / f64::from(i + 1),
                "recon": p(-17.25),
                "web_attack": 1.0 / 3.0,
            },
            "baseline_score": -0.123_456_789_012_345_68,
        },
        "top_features": {"failed_logins": 35, "ratio": 0.7142857142857143},
    })
}

#[tokio::test]
async fn a_chain_written_by_the_previous_append_code_verifies() {
    let db = TestDb::new().await;
    let mut conn = db.owner_conn().await;
    let org = Uuid::new_v4();
    let recorded_at: DateTime<Utc> = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
    let mut prev = GENESIS_HASH.to_vec();
    let rows = 40;
    for seq in 1..=rows {
        let payload = legacy_canonical_json(&incident_payload(seq as u32));
        let metadata = legacy_canonical_json(&json!({"actor": "detector", "correlation_id": Uuid::new_v4()}));
        let stream_id = format!("incident-{seq}");
        let event_id = Uuid::new_v4();
        let hash = link_hash(
            &prev,
            &ChainRow {
                org_id: org,
                org_seq: seq,
                stream_id: &stream_id,
                stream_version: 1,
                event_id,
                event_type: "IncidentOpened",
                schema_version: 1,
                payload: &payload,
                metadata: &metadata,
                recorded_at,
            },
        );
        sqlx::query(
            "INSERT INTO event_log (org_id, org_seq, stream_id, stream_version, event_id, event_type, \
               schema_version, payload, metadata, recorded_at, hash) \
             VALUES ($1, $2, $3, 1, $4, 'IncidentOpened', 1, $5::jsonb, $6::jsonb, $7, $8)",
        )
        .bind(org)
        .bind(seq)
        .bind(&stream_id)
        .bind(event_id)
        .bind(&payload)
        .bind(&metadata)
        .bind(recorded_at)
        .bind(&hash[..])
        .execute(&mut conn)
        .await
        .unwrap();
        prev = hash.to_vec();
    }
    sqlx::query("INSERT INTO org_heads (org_id, last_seq, last_hash) VALUES ($1, $2, $3)")
        .bind(org)
        .bind(rows)
        .bind(&prev)
        .execute(&mut conn)
        .await
        .unwrap();
    // jsonb prints these probabilities in positional notation: the round trip the old reader lost.
    let stored: String = sqlx::query_scalar(
        "SELECT payload->'model'->'class_probabilities'->>'normal' FROM event_log WHERE org_seq = 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(stored.starts_with("0.000000000000000000000000"), "{stored}");

    let owner = sqlx::PgPool::connect_with(db.options.clone()).await.unwrap();
    assert_eq!(verify::verify_org(&owner, org).await.unwrap(), (rows as u64, None));
}
