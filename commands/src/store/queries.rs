//! Named reads of the log and its heads for the other crates: the projection runner's range
//! reads, the audit tools' positions and links, the detector's stream tails and counts, and
//! the restore of a verified bundle. Each runs on the executor it is given (a pool, or a
//! caller's transaction when it must see that transaction's snapshot or org scope).

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use uuid::Uuid;
use xdr_domain::ids::OrgId;

use super::{row_to_event, StoreError, StoredEvent};

/// The org's events in `(after, until]`, of the given stored type names only (`None`: all),
/// in `org_seq` order.
pub async fn read_range_of_types(
    conn: &mut PgConnection,
    org: OrgId,
    after: i64,
    until: i64,
    types: Option<Vec<&str>>,
) -> Result<Vec<StoredEvent>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        event_columns!(),
        " FROM event_log WHERE org_id = $1 AND org_seq > $2 AND org_seq <= $3 \
         AND ($4::text[] IS NULL OR event_type = ANY($4)) ORDER BY org_seq"
    );
    let rows = sqlx::query(SQL).bind(org.0).bind(after).bind(until).bind(types).fetch_all(conn).await?;
    rows.iter().map(row_to_event).collect::<Result<_, _>>().map_err(Into::into)
}

/// `(org_seq, event_type)` of the org's events in `(after, until]`, in order: what a
/// projection that applies ranges in SQL needs to know to split a range.
pub async fn event_types_in_range(
    conn: &mut PgConnection,
    org: OrgId,
    after: i64,
    until: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT org_seq, event_type FROM event_log WHERE org_id = $1 AND org_seq > $2 AND org_seq <= $3 \
         ORDER BY org_seq",
    )
    .bind(org.0)
    .bind(after)
    .bind(until)
    .fetch_all(conn)
    .await?)
}

/// The events of one stream with `after < org_seq < before`, in version order (an index
/// range scan on `(org_id, stream_id, stream_version)`).
pub async fn read_stream_between<'e>(
    executor: impl PgExecutor<'e>,
    org: OrgId,
    stream_id: &str,
    after: i64,
    before: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        event_columns!(),
        " FROM event_log WHERE org_id = $1 AND stream_id = $2 AND org_seq > $3 AND org_seq < $4 \
         ORDER BY stream_version"
    );
    let rows = sqlx::query(SQL).bind(org.0).bind(stream_id).bind(after).bind(before).fetch_all(executor).await?;
    rows.iter().map(row_to_event).collect::<Result<_, _>>().map_err(Into::into)
}

/// Where a stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTail {
    pub org_seq: i64,
    pub stream_version: i64,
    pub recorded_at: DateTime<Utc>,
}

/// The stream's last event's position, or `None` for a stream with no events.
pub async fn stream_tail<'e>(
    executor: impl PgExecutor<'e>,
    org: OrgId,
    stream_id: &str,
) -> Result<Option<StreamTail>, StoreError> {
    let row = sqlx::query(
        "SELECT org_seq, stream_version, recorded_at FROM event_log WHERE org_id = $1 AND stream_id = $2 \
         ORDER BY stream_version DESC LIMIT 1",
    )
    .bind(org.0)
    .bind(stream_id)
    .fetch_optional(executor)
    .await?;
    row.map(|r| {
        Ok(StreamTail {
            org_seq: r.try_get("org_seq")?,
            stream_version: r.try_get("stream_version")?,
            recorded_at: r.try_get("recorded_at")?,
        })
    })
    .transpose()
}

/// Telemetry with a source address among the newest `limit` in `(after, until]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceCounts {
    pub events: u64,
    /// Distinct source addresses among them.
    pub sources: usize,
}

/// How many of the org's newest `limit` telemetry events in `(after, until]` name a source
/// address, and how many distinct sources they name.
pub async fn recent_source_counts<'e>(
    executor: impl PgExecutor<'e>,
    org: OrgId,
    after: i64,
    until: i64,
    limit: i64,
) -> Result<SourceCounts, StoreError> {
    let row = sqlx::query(
        "SELECT count(*) AS events, count(DISTINCT src) AS sources FROM ( \
           SELECT payload->>'src_ip' AS src FROM event_log \
           WHERE org_id = $1 AND org_seq > $2 AND org_seq <= $3 AND event_type = 'SecurityEventObserved' \
             AND payload->>'src_ip' IS NOT NULL \
           ORDER BY org_seq DESC LIMIT $4) recent",
    )
    .bind(org.0)
    .bind(after)
    .bind(until)
    .bind(limit)
    .fetch_one(executor)
    .await?;
    Ok(SourceCounts {
        events: row.try_get::<i64, _>("events")? as u64,
        sources: row.try_get::<i64, _>("sources")? as usize,
    })
}

/// Every org with a head or any event (a log without a head is itself a finding).
pub async fn orgs_with_log(pool: &PgPool) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT org_id FROM org_heads UNION SELECT DISTINCT org_id FROM event_log ORDER BY 1")
        .fetch_all(pool)
        .await?)
}

/// The org's head `(last_seq, last_hash)` as `executor` sees it.
pub async fn head_of<'e>(executor: impl PgExecutor<'e>, org: Uuid) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    Ok(sqlx::query_as("SELECT last_seq, last_hash FROM org_heads WHERE org_id = $1")
        .bind(org)
        .fetch_optional(executor)
        .await?)
}

/// The stored hash of the org's event at `org_seq`, if there is one.
pub async fn hash_at<'e>(
    executor: impl PgExecutor<'e>,
    org: Uuid,
    org_seq: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT hash FROM event_log WHERE org_id = $1 AND org_seq = $2")
        .bind(org)
        .bind(org_seq)
        .fetch_optional(executor)
        .await?)
}

/// When the org's event at `org_seq` was recorded, if there is one.
pub async fn recorded_at<'e>(
    executor: impl PgExecutor<'e>,
    org: OrgId,
    org_seq: i64,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT recorded_at FROM event_log WHERE org_id = $1 AND org_seq = $2")
        .bind(org.0)
        .bind(org_seq)
        .fetch_optional(executor)
        .await?)
}

/// The lowest `org_seq` recorded after `t`, if any.
pub async fn first_seq_recorded_after<'e>(
    executor: impl PgExecutor<'e>,
    org: OrgId,
    t: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT min(org_seq) FROM event_log WHERE org_id = $1 AND recorded_at > $2")
        .bind(org.0)
        .bind(t)
        .fetch_one(executor)
        .await?)
}

/// Whether the org has any event in this database.
pub async fn org_has_events(conn: &mut PgConnection, org: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM event_log WHERE org_id = $1)")
        .bind(org)
        .fetch_one(conn)
        .await?)
}

/// Write already-verified rows back as they were (same seqs, times, hashes) and the head
/// they end at: the restore of an audit bundle into an empty log for that org. Runs as the
/// schema owner inside the caller's transaction; the chain is the bundle's, checked before.
pub async fn restore_rows(
    conn: &mut PgConnection,
    org: Uuid,
    events: &[StoredEvent],
    last_seq: i64,
    head_hash: &[u8],
) -> Result<(), StoreError> {
    for chunk in events.chunks(1000) {
        let mut insert = sqlx::QueryBuilder::new(concat!("INSERT INTO event_log (", event_columns!(), ") "));
        insert.push_values(chunk, |mut b, e| {
            b.push_bind(e.org_id)
                .push_bind(e.org_seq)
                .push_bind(&e.stream_id)
                .push_bind(e.stream_version)
                .push_bind(e.event_id)
                .push_bind(&e.event_type)
                .push_bind(e.schema_version)
                .push_bind(&e.payload)
                .push_bind(&e.metadata)
                .push_bind(e.recorded_at)
                .push_bind(&e.hash);
        });
        insert.build().execute(&mut *conn).await?;
    }
    sqlx::query("INSERT INTO org_heads (org_id, last_seq, last_hash) VALUES ($1, $2, $3)")
        .bind(org)
        .bind(last_seq)
        .bind(head_hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `VACUUM ANALYZE` the log (benchmarks, after seeding, so plans match a settled table).
pub async fn vacuum_analyze(owner: &PgPool) -> Result<(), StoreError> {
    sqlx::query("VACUUM ANALYZE event_log").execute(owner).await?;
    Ok(())
}

/// The org's rows as `COPY … TO STDOUT` text in `org_seq` order, handed to `chunk` piece by
/// piece (benchmarks: the floor any replay is measured against).
pub async fn copy_org_text(
    conn: &mut PgConnection,
    org: OrgId,
    mut chunk: impl FnMut(&[u8]),
) -> Result<(), StoreError> {
    // COPY takes no parameters; the id is a UUID, so splicing it is safe.
    let sql = format!(
        "COPY (SELECT {} FROM event_log WHERE org_id = '{}' ORDER BY org_seq) TO STDOUT",
        event_columns!(),
        org.0
    );
    let mut stream = conn.copy_out_raw(&sql).await?;
    while let Some(piece) = stream.try_next().await? {
        chunk(&piece);
    }
    Ok(())
}

/// Every session stream `user` ever started in the org, from the log itself (a read model could
/// lag behind a sign-in that just happened). A partial index keeps this off the telemetry
/// (migrations/0030).
pub async fn session_streams_of_user(
    conn: &mut PgConnection,
    org: OrgId,
    user: Uuid,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT stream_id FROM event_log WHERE org_id = $1 \
         AND event_type = 'SessionStarted' AND payload->>'user_id' = $2",
    )
    .bind(org.0)
    .bind(user.to_string())
    .fetch_all(conn)
    .await?)
}
