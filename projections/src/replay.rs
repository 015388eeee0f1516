//! `mini-xdr replay`: an org's events in `org_seq` order as JSON lines — the audit trail.
//! Streamed from the database, so memory stays flat however long the log is.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::PgPool;
use std::io::Write;
use xdr_commands::store::{row_to_event, EVENT_COLUMNS};
use xdr_domain::ids::OrgId;

/// Upper bound of a replay: a point in time or a sequence number (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Time(DateTime<Utc>),
    Seq(i64),
}

impl std::str::FromStr for Until {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(seq) = s.parse::<i64>() {
            return Ok(Until::Seq(seq));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Until::Time(t.with_timezone(&Utc)))
            .map_err(|_| format!("{s:?} is neither an org_seq number nor an RFC 3339 timestamp"))
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    pub until: Option<Until>,
    pub stream: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("database error during replay: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot write replay output: {0}")]
    Io(#[from] std::io::Error),
}

/// Write matching events as JSON lines; returns how many were written.
pub async fn replay(
    pool: &PgPool,
    org: OrgId,
    filter: &ReplayFilter,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    let (until_seq, until_time) = match filter.until {
        Some(Until::Seq(s)) => (s, None),
        Some(Until::Time(t)) => (i64::MAX, Some(t)),
        None => (i64::MAX, None),
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM event_log WHERE org_id = $1 AND org_seq <= $2 \
         AND ($3::timestamptz IS NULL OR recorded_at <= $3) AND ($4::text IS NULL OR stream_id = $4) \
         ORDER BY org_seq"
    );
    let mut rows =
        sqlx::query(&sql).bind(org.0).bind(until_seq).bind(until_time).bind(filter.stream.as_deref()).fetch(pool);
    let mut n = 0;
    while let Some(row) = rows.try_next().await? {
        let event = row_to_event(&row)?;
        serde_json::to_writer(&mut *out, &event).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}
