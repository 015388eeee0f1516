//! Streaming reads of an org's log for the audit tools (replay, export, verify) and
//! benchmarks: rows come off the wire one at a time, so memory stays flat however long the
//! log is. A [`LogRow`] keeps the row's bytes; callers decode it ([`LogRow::event`]) or print
//! it as a JSON line without decoding ([`LogRow::write_jsonl`]).

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::postgres::PgRow;
use sqlx::PgExecutor;
use xdr_domain::ids::OrgId;

use super::{row_to_event, StoreError, StoredEvent};

/// Which of an org's events to read. Every bound is optional and inclusive except
/// `after_seq`; `LogFilter::org(org)` reads the whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter {
    pub org: OrgId,
    /// Events with `org_seq > after_seq`.
    pub after_seq: Option<i64>,
    /// Events recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events with `org_seq <= until_seq`.
    pub until_seq: Option<i64>,
    /// Events recorded at or before this time.
    pub until: Option<DateTime<Utc>>,
    pub stream: Option<String>,
    pub event_type: Option<String>,
    /// The acting user id, or an actor label such as `operator` or `detector`.
    pub actor: Option<String>,
}

impl LogFilter {
    /// Every event of `org`.
    pub fn org(org: OrgId) -> Self {
        LogFilter {
            org,
            after_seq: None,
            since: None,
            until_seq: None,
            until: None,
            stream: None,
            event_type: None,
            actor: None,
        }
    }
}

/// The filter as SQL: `$1` the org, `$2..$8` the optional bounds in field order.
macro_rules! filtered {
    () => {
        "FROM event_log WHERE org_id = $1 \
         AND ($2::bigint IS NULL OR org_seq > $2) AND ($3::timestamptz IS NULL OR recorded_at >= $3) \
         AND ($4::bigint IS NULL OR org_seq <= $4) AND ($5::timestamptz IS NULL OR recorded_at <= $5) \
         AND ($6::text IS NULL OR stream_id = $6) AND ($7::text IS NULL OR event_type = $7) \
         AND ($8::text IS NULL OR metadata->>'actor_user_id' = $8 OR metadata->>'actor' = $8)"
    };
}

/// Bind a [`LogFilter`] to a query written with [`filtered!`].
macro_rules! bind_filter {
    ($query:expr, $filter:expr) => {
        $query
            .bind($filter.org.0)
            .bind($filter.after_seq)
            .bind($filter.since)
            .bind($filter.until_seq)
            .bind($filter.until)
            .bind($filter.stream.as_deref())
            .bind($filter.event_type.as_deref())
            .bind($filter.actor.as_deref())
    };
}

/// One row of the log as it came from the database.
pub struct LogRow(PgRow);

impl LogRow {
    /// The row decoded.
    pub fn event(&self) -> Result<StoredEvent, StoreError> {
        Ok(row_to_event(&self.0)?)
    }

    /// The row as one JSON line, byte for byte what `serde_json::to_writer(&self.event()?)`
    /// followed by `\n` writes, without building the event.
    pub fn write_jsonl(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        Ok(super::jsonl::write_row_jsonl(out, &self.0)?)
    }
}

/// The matching events in `org_seq` order, streamed. On a caller's transaction (`&mut *tx`)
/// the scan sees that transaction's snapshot.
pub fn scan<'e, E>(executor: E, filter: &'e LogFilter) -> BoxStream<'e, Result<LogRow, StoreError>>
where
    E: PgExecutor<'e> + 'e,
{
    const SQL: &str = concat!("SELECT ", event_columns!(), " ", filtered!(), " ORDER BY org_seq");
    bind_filter!(sqlx::query(SQL), filter).fetch(executor).map_ok(LogRow).map_err(StoreError::from).boxed()
}

/// How many events match.
pub async fn count<'e>(executor: impl PgExecutor<'e>, filter: &LogFilter) -> Result<u64, StoreError> {
    const SQL: &str = concat!("SELECT count(*) ", filtered!());
    let n: i64 = bind_filter!(sqlx::query_scalar(SQL), filter).fetch_one(executor).await?;
    Ok(n as u64)
}

/// How many events of each type match, by type name.
pub async fn count_by_type<'e>(
    executor: impl PgExecutor<'e>,
    filter: &LogFilter,
) -> Result<Vec<(String, u64)>, StoreError> {
    const SQL: &str = concat!("SELECT event_type, count(*) ", filtered!(), " GROUP BY event_type ORDER BY event_type");
    let rows: Vec<(String, i64)> = bind_filter!(sqlx::query_as(SQL), filter).fetch_all(executor).await?;
    Ok(rows.into_iter().map(|(t, n)| (t, n as u64)).collect())
}

/// The last matching event's `(org_seq, hash)`: where a range's chain ends.
pub async fn last_link<'e>(
    executor: impl PgExecutor<'e>,
    filter: &LogFilter,
) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    const SQL: &str = concat!("SELECT org_seq, hash ", filtered!(), " ORDER BY org_seq DESC LIMIT 1");
    Ok(bind_filter!(sqlx::query_as(SQL), filter).fetch_optional(executor).await?)
}

/// Every org's events, ordered by org and then `org_seq` (benchmarks: the cost of reading
/// the log without doing anything with it).
pub fn scan_all<'e, E>(executor: E) -> BoxStream<'e, Result<LogRow, StoreError>>
where
    E: PgExecutor<'e> + 'e,
{
    const SQL: &str = concat!("SELECT ", event_columns!(), " FROM event_log ORDER BY org_id, org_seq");
    sqlx::query(SQL).fetch(executor).map_ok(LogRow).map_err(StoreError::from).boxed()
}
