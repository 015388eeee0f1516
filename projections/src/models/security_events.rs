//! `rm_security_events`: normalized telemetry (`SecurityEventObserved`), one row per event
//! with the original record in `raw`. Written as one multi-row insert per batch (arrays
//! through `UNNEST`); `ON CONFLICT (org_id, org_seq) DO NOTHING` makes redelivery harmless.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;
use xdr_commands::StoredEvent;

use super::apply_error;
use crate::runner::{Projection, ProjectionError, ReadModelTable};

pub struct SecurityEvents;

const NAME: &str = "security_events";

/// The stored payload of `SecurityEventObserved` (`xdr_domain::telemetry::SecurityEvent`),
/// read borrowing from the JSON instead of copying every record into owned strings.
#[derive(Deserialize)]
struct Telemetry<'a> {
    timestamp: DateTime<Utc>,
    #[serde(borrow)]
    source_type: &'a str,
    #[serde(borrow)]
    event_type: &'a str,
    #[serde(borrow, default)]
    src_ip: Option<&'a str>,
    #[serde(default)]
    src_port: Option<u16>,
    #[serde(borrow, default)]
    dst_ip: Option<&'a str>,
    #[serde(default)]
    dst_port: Option<u16>,
    #[serde(borrow, default)]
    protocol: Option<&'a str>,
    #[serde(borrow, default)]
    username: Option<&'a str>,
    #[serde(borrow, default)]
    command: Option<&'a str>,
    #[serde(borrow, default)]
    url: Option<&'a str>,
    #[serde(borrow, default)]
    file_hash: Option<&'a str>,
    #[serde(borrow, default)]
    session_id: Option<&'a str>,
    #[serde(borrow, default)]
    hostname: Option<&'a str>,
    #[serde(borrow, default)]
    message: Option<&'a str>,
}

#[derive(Default)]
struct Columns<'a> {
    org_seq: Vec<i64>,
    event_id: Vec<Uuid>,
    timestamp: Vec<DateTime<Utc>>,
    recorded_at: Vec<DateTime<Utc>>,
    source_type: Vec<&'a str>,
    event_type: Vec<&'a str>,
    src_ip: Vec<Option<&'a str>>,
    src_port: Vec<Option<i32>>,
    dst_ip: Vec<Option<&'a str>>,
    dst_port: Vec<Option<i32>>,
    protocol: Vec<Option<&'a str>>,
    username: Vec<Option<&'a str>>,
    command: Vec<Option<&'a str>>,
    url: Vec<Option<&'a str>>,
    file_hash: Vec<Option<&'a str>>,
    session_id: Vec<Option<&'a str>>,
    hostname: Vec<Option<&'a str>>,
    message: Vec<Option<&'a str>>,
    raw: Vec<&'a serde_json::Value>,
}

impl Projection for SecurityEvents {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [ReadModelTable] {
        &[ReadModelTable { name: "rm_security_events", order_by: "org_id, org_seq" }]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == "SecurityEventObserved"
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [&'a StoredEvent],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let Some(first) = events.first() else { return Ok(()) };
            let mut c = Columns::default();
            for e in events {
                let t = Telemetry::deserialize(&e.payload).map_err(|err| apply_error(NAME, e, err.to_string()))?;
                c.org_seq.push(e.org_seq);
                c.event_id.push(e.event_id);
                c.timestamp.push(t.timestamp);
                c.recorded_at.push(e.recorded_at);
                c.source_type.push(t.source_type);
                c.event_type.push(t.event_type);
                c.src_ip.push(t.src_ip);
                c.src_port.push(t.src_port.map(i32::from));
                c.dst_ip.push(t.dst_ip);
                c.dst_port.push(t.dst_port.map(i32::from));
                c.protocol.push(t.protocol);
                c.username.push(t.username);
                c.command.push(t.command);
                c.url.push(t.url);
                c.file_hash.push(t.file_hash);
                c.session_id.push(t.session_id);
                c.hostname.push(t.hostname);
                c.message.push(t.message);
                c.raw.push(e.payload.get("raw").unwrap_or(&serde_json::Value::Null));
            }
            sqlx::query(
                "INSERT INTO rm_security_events (org_id, org_seq, event_id, \"timestamp\", recorded_at, \
                   source_type, event_type, src_ip, src_port, dst_ip, dst_port, protocol, username, command, \
                   url, file_hash, session_id, hostname, message, raw) \
                 SELECT $1, u.org_seq, u.event_id, u.ts, u.recorded_at, u.source_type, u.event_type, \
                   u.src_ip::inet, u.src_port, u.dst_ip::inet, u.dst_port, u.protocol, u.username, u.command, \
                   u.url, u.file_hash, u.session_id, u.hostname, u.message, u.raw \
                 FROM UNNEST($2::bigint[], $3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::text[], \
                   $7::text[], $8::text[], $9::int4[], $10::text[], $11::int4[], $12::text[], $13::text[], \
                   $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::jsonb[]) \
                   AS u(org_seq, event_id, ts, recorded_at, source_type, event_type, src_ip, src_port, dst_ip, \
                   dst_port, protocol, username, command, url, file_hash, session_id, hostname, message, raw) \
                 ON CONFLICT (org_id, org_seq) DO NOTHING",
            )
            .bind(first.org_id)
            .bind(&c.org_seq)
            .bind(&c.event_id)
            .bind(&c.timestamp)
            .bind(&c.recorded_at)
            .bind(&c.source_type)
            .bind(&c.event_type)
            .bind(&c.src_ip)
            .bind(&c.src_port)
            .bind(&c.dst_ip)
            .bind(&c.dst_port)
            .bind(&c.protocol)
            .bind(&c.username)
            .bind(&c.command)
            .bind(&c.url)
            .bind(&c.file_hash)
            .bind(&c.session_id)
            .bind(&c.hostname)
            .bind(&c.message)
            .bind(&c.raw)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }
}
