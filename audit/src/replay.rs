//! `mini-xdr replay`: an org's events in `org_seq` order as JSON lines — the audit trail.
//! Streamed from the database, so memory stays flat however long the log is.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::PgPool;
use std::io::Write;
use xdr_commands::store::{self, LogFilter};
use xdr_commands::StoreError;
use xdr_domain::ids::OrgId;

/// A position in an org's log: a point in time or a sequence number (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Time(DateTime<Utc>),
    Seq(i64),
}

impl std::str::FromStr for Position {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(seq) = s.parse::<i64>() {
            return Ok(Position::Seq(seq));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Position::Time(t.with_timezone(&Utc)))
            .map_err(|_| format!("{s:?} is neither an org_seq number nor an RFC 3339 timestamp"))
    }
}

/// How replayed events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line, for programs.
    #[default]
    Jsonl,
    /// Aligned columns, for people.
    Table,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "table" => Ok(Format::Table),
            other => Err(format!("unknown format {other:?}: use jsonl or table")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Events after this position (exclusive for a seq, inclusive for a time).
    pub since: Option<Position>,
    /// Events up to this position (inclusive).
    pub until: Option<Position>,
    pub stream: Option<String>,
    pub event_type: Option<String>,
    /// The acting user id, or an actor label such as `operator` or `detector`.
    pub actor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the log during replay: {0}")]
    Store(#[from] StoreError),
    #[error("cannot write replay output: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Unsupported(String),
}

impl ReplayFilter {
    /// The filter as the store reads it.
    fn for_org(&self, org: OrgId) -> LogFilter {
        let (after_seq, since) = bounds(self.since);
        let (until_seq, until) = bounds(self.until);
        LogFilter {
            org,
            after_seq,
            since,
            until_seq,
            until,
            stream: self.stream.clone(),
            event_type: self.event_type.clone(),
            actor: self.actor.clone(),
        }
    }
}

fn bounds(p: Option<Position>) -> (Option<i64>, Option<DateTime<Utc>>) {
    match p {
        Some(Position::Seq(s)) => (Some(s), None),
        Some(Position::Time(t)) => (None, Some(t)),
        None => (None, None),
    }
}

/// Write matching events in `org_seq` order; returns how many were written. Streamed from the
/// database, so memory stays flat however long the log is. `progress` is told of each event.
pub async fn replay(
    pool: &PgPool,
    org: OrgId,
    filter: &ReplayFilter,
    format: Format,
    out: &mut impl Write,
    progress: &dyn Fn(u64),
) -> Result<u64, ReplayError> {
    let filter = filter.for_org(org);
    let mut rows = store::scan(pool, &filter);
    if format == Format::Table {
        writeln!(out, "{:>8}  {:<27}  {:<44}  {:<26}  ACTOR", "ORG_SEQ", "RECORDED_AT", "STREAM", "EVENT_TYPE")?;
    }
    let mut n = 0;
    // JSON lines are rendered straight from the row (no `StoredEvent`, no `Value`); every
    // line goes into one buffer that is written out in large pieces.
    let mut buf = Vec::with_capacity(2 * FLUSH_AT);
    while let Some(row) = rows.try_next().await? {
        match format {
            Format::Jsonl => row.write_jsonl(&mut buf)?,
            Format::Table => {
                let event = row.event()?;
                let meta = event.metadata();
                let actor = meta.actor_user_id.map(|u| u.to_string()).or(meta.actor).unwrap_or_else(|| "-".into());
                writeln!(
                    buf,
                    "{:>8}  {:<27}  {:<44}  {:<26}  {actor}",
                    event.org_seq,
                    event.recorded_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                    event.stream_id,
                    event.event_type
                )?;
            }
        }
        if buf.len() >= FLUSH_AT {
            out.write_all(&buf)?;
            buf.clear();
        }
        n += 1;
        progress(n);
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(n)
}

/// Output is handed to the writer in pieces of about this size.
const FLUSH_AT: usize = 256 * 1024;

/// How many events a filter matches (for a progress bar's length).
pub async fn count(pool: &PgPool, org: OrgId, filter: &ReplayFilter) -> Result<u64, ReplayError> {
    Ok(store::count(pool, &filter.for_org(org)).await?)
}

/// The state of one aggregate as it was at `until`: its events folded with the domain's
/// `apply`, plus the history that led there (who did what, when).
pub async fn state_at(
    pool: &PgPool,
    org: OrgId,
    stream_id: &str,
    until: Option<Position>,
) -> Result<serde_json::Value, ReplayError> {
    use xdr_domain::aggregate::Aggregate;
    use xdr_domain::identity::{Organization, Session, User};

    let filter = ReplayFilter { until, stream: Some(stream_id.to_owned()), ..Default::default() };
    let mut buf = Vec::new();
    replay(pool, org, &filter, Format::Jsonl, &mut buf, &|_| {}).await?;
    let stored: Vec<xdr_commands::StoredEvent> = buf
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()
        .map_err(|e| ReplayError::Unsupported(format!("cannot read back event: {e}")))?;
    let events: Vec<xdr_domain::Event> =
        stored.iter().map(|s| s.event()).collect::<Result<_, _>>().map_err(ReplayError::Unsupported)?;
    let category = stream_id.split('-').next().unwrap_or_default();
    let state = match category {
        "user" => serde_json::to_value(User::from_history(&events)),
        "session" => serde_json::to_value(Session::from_history(&events)),
        "org" => serde_json::to_value(Organization::from_history(&events)),
        "incident" => serde_json::to_value(xdr_domain::incident::Incident::from_history(&events)),
        "action" => serde_json::to_value(xdr_domain::response::action::Action::from_history(&events)),
        "containment" => serde_json::to_value(xdr_domain::response::policy::ContainmentPolicies::from_history(&events)),
        other => {
            return Err(ReplayError::Unsupported(format!(
                "no aggregate state for stream category {other:?} \
                 (supported: user, session, org, incident, action, containment)"
            )))
        }
    }
    .map_err(|e| ReplayError::Unsupported(e.to_string()))?;
    let history: Vec<serde_json::Value> = stored
        .iter()
        .map(|s| {
            let meta = s.metadata();
            serde_json::json!({
                "org_seq": s.org_seq,
                "recorded_at": s.recorded_at,
                "event_type": s.event_type,
                "actor_user_id": meta.actor_user_id,
                "actor": meta.actor,
                "request_ip": meta.request_ip,
            })
        })
        .collect();
    let as_of = match until {
        Some(Position::Time(t)) => serde_json::json!(t),
        Some(Position::Seq(s)) => serde_json::json!({ "org_seq": s }),
        None => serde_json::json!("now"),
    };
    Ok(serde_json::json!({
        "org_id": org.0,
        "stream_id": stream_id,
        "as_of": as_of,
        "events": stored.len(),
        // States are complete (the user's is its own snapshot): a person sees them with the
        // audit log's redaction, no password hash, token digest or device digest.
        "state": xdr_commands::trust::redact(&state),
        "history": history,
    }))
}
