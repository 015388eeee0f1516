//! The projection runner: turns each org's log into read-model rows, exactly once.
//!
//! A [`Projection`] is data: a name, the event types it reads, the tables it owns and how it
//! applies events (rows to a function, or one SQL statement over a range); this runner is
//! the only generic code. The runner finds orgs whose `org_heads.last_seq` is beyond some
//! projection's checkpoint and, in ONE transaction per (org, batch): sets `app.org_id`
//! (row-level security), takes the org's checkpoint rows `FOR UPDATE`, reads the head, and
//! applies every projection to the events after its own checkpoint and ≤ that head — gap-safe
//! for the reason given in `xdr_commands::subscription` — then advances the checkpoints and
//! commits. Row projections get the decoded rows of the types they read; range projections
//! (`Apply::Sql`) project the `org_seq` range in SQL. (So the runner reads with its own
//! type-filtered query rather than `read_org_with`: telemetry rows no row projection wants
//! never leave the database.) A crash anywhere before the commit rolls everything back, so
//! nothing is skipped and nothing is applied twice; a second runner on the same org waits on
//! the row locks and then continues from the committed checkpoint.
//!
//! One event never stops an org: a batch that fails on an event's data (not on the database
//! or the network, see [`ProjectionError::is_poison`]) is applied again with savepoints until
//! the events that fail alone are found; those are quarantined (`projection_quarantine`, in
//! the same transaction as the checkpoint that goes past them) and the rest is applied.

use futures::future::BoxFuture;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;
use xdr_commands::store::{self, NOTIFY_CHANNEL};
use xdr_commands::{StoreError, StoredEvent};
use xdr_domain::ids::OrgId;
use xdr_domain::EventType;

use crate::models;
use crate::tenant::{begin_org_tx, set_org};

/// Events read per (org, transaction) by the live runner.
pub const DEFAULT_BATCH: i64 = 1_000;
/// The runner re-checks for work this often even without a notification.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A read-model table: its name and the `ORDER BY` that lists its rows deterministically
/// (its primary key), used by rebuild (clear) and digest (hash in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadModelTable {
    pub name: &'static str,
    pub order_by: &'static str,
}

/// The event types a projection reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    Only(&'static [EventType]),
    /// Every type but these, including types added later (the audit view) and stored names
    /// no type of ours has.
    AllExcept(&'static [EventType]),
}

impl Reads {
    /// Whether a stored `event_type` is one of these.
    pub fn contains(&self, event_type: &str) -> bool {
        let listed = |types: &[EventType]| EventType::parse(event_type).is_some_and(|t| types.contains(&t));
        match self {
            Reads::Only(types) => listed(types),
            Reads::AllExcept(types) => !listed(types),
        }
    }
}

/// Writes the effects of some decoded rows (all of one org, ascending `org_seq`).
pub type ApplyRows =
    for<'a> fn(&'a mut PgConnection, &'a [&'a StoredEvent]) -> BoxFuture<'a, Result<(), ProjectionError>>;

/// How a projection applies its events.
#[derive(Clone, Copy)]
pub enum Apply {
    /// The runner reads the rows of the types the projection reads and hands them over.
    Rows(ApplyRows),
    /// One statement that projects the org's `event_log` range itself (`INSERT … SELECT`),
    /// so high-volume events never travel to the client and back: `$1` is the org,
    /// `($2, $3]` the `org_seq` range.
    Sql(&'static str),
}

/// One read model, as data: the runner is the only code that knows how to run one.
///
/// Inside the org's transaction (with `app.org_id` set), the runner gives each projection
/// only what it has not applied yet, in `org_seq` order: the decoded rows it reads
/// ([`Apply::Rows`]), or the range `(after, until]` ([`Apply::Sql`]). Both must be
/// idempotent per `org_seq` (a redelivered event changes nothing), although the runner never
/// redelivers: the checkpoint commits with the rows. Projections hold no business rules:
/// they copy what events say.
#[derive(Clone, Copy)]
pub struct Projection {
    /// Stable name: the checkpoint key and the `rebuild --projection` argument.
    pub name: &'static str,
    /// Tables written only by this projection.
    pub tables: &'static [ReadModelTable],
    pub reads: Reads,
    pub apply: Apply,
}

impl std::fmt::Debug for Projection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection").field("name", &self.name).field("reads", &self.reads).finish_non_exhaustive()
    }
}

impl Projection {
    /// Whether this projection reads events of this stored `event_type`.
    pub fn handles(&self, event_type: &str) -> bool {
        self.reads.contains(event_type)
    }

    fn reads_rows(&self) -> bool {
        matches!(self.apply, Apply::Rows(_))
    }

    /// Apply decoded rows ([`Apply::Rows`]).
    async fn apply_rows(&self, conn: &mut PgConnection, events: &[&StoredEvent]) -> Result<(), ProjectionError> {
        match self.apply {
            Apply::Rows(apply) => apply(conn, events).await,
            Apply::Sql(_) => {
                let (org, org_seq) = events.first().map_or((Uuid::nil(), 0), |e| (e.org_id, e.org_seq));
                let reason = "this projection reads ranges (Apply::Sql), not rows".to_owned();
                Err(ProjectionError::Apply { projection: self.name, org, org_seq, reason })
            }
        }
    }

    /// Apply the org's events with `after < org_seq <= until` that it reads ([`Apply::Sql`]).
    async fn apply_range(
        &self,
        conn: &mut PgConnection,
        org: OrgId,
        after: i64,
        until: i64,
    ) -> Result<(), ProjectionError> {
        let Apply::Sql(statement) = self.apply else {
            let reason = "this projection reads rows (Apply::Rows), not ranges".to_owned();
            return Err(ProjectionError::Apply { projection: self.name, org: org.0, org_seq: after + 1, reason });
        };
        sqlx::query(statement)
            .bind(org.0)
            .bind(after)
            .bind(until)
            .execute(conn)
            .await
            .map_err(|source| ProjectionError::Query { projection: self.name, org: org.0, after, until, source })?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read-model database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot read the event log: {0}")]
    Store(#[from] StoreError),
    /// The event cannot be applied as it is (undecodable, not what its stream allows).
    #[error("projection {projection} cannot apply org {org} org_seq {org_seq}: {reason}")]
    Apply { projection: &'static str, org: Uuid, org_seq: i64, reason: String },
    /// A range projection's statement failed on `(after, until]`.
    #[error("projection {projection} cannot apply org {org} events ({after}, {until}]: {source}")]
    Query { projection: &'static str, org: Uuid, after: i64, until: i64, source: sqlx::Error },
}

impl ProjectionError {
    /// Whether the events being applied are the cause (their data), rather than the database
    /// or the network: only then does applying them alone find one to quarantine. A lost
    /// connection, a timeout, a missing grant or a serialization failure is retried instead,
    /// never quarantined: the same event will apply once the infrastructure is back.
    pub fn is_poison(&self) -> bool {
        match self {
            ProjectionError::Apply { .. } => true,
            ProjectionError::Database(e) | ProjectionError::Query { source: e, .. } => is_data_error(e),
            ProjectionError::Store(StoreError::Database(e)) => is_data_error(e),
            ProjectionError::Store(_) => false,
        }
    }

    /// The cause without the range or org (the quarantine row names those).
    pub fn reason(&self) -> String {
        match self {
            ProjectionError::Apply { reason, .. } => reason.clone(),
            ProjectionError::Query { source, .. } => source.to_string(),
            other => other.to_string(),
        }
    }
}

/// A database error caused by the values a statement was given: SQLSTATE class 22 (data
/// exception: a timestamp, address or number PostgreSQL refuses, U+0000 in text), class 23
/// (integrity constraint), 54000 (program limit: e.g. a value too big for an index row), or a
/// value that cannot be decoded into its Rust type.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("22") || code.starts_with("23") || code == "54000")
        }
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => true,
        _ => false,
    }
}

/// Events quarantined by this process since it started (`/metrics`).
pub static EVENTS_QUARANTINED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Longest error text kept in a quarantine row (errors may quote the record).
const MAX_QUARANTINE_ERROR_CHARS: usize = 1_000;

/// What one catch-up pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Orgs that had work.
    pub orgs: usize,
    /// Events read and applied (each event counted once, whatever the number of projections).
    pub events: u64,
}

/// Bring every projection of every org up to the org's current head, then return.
pub async fn catch_up_once(pool: &PgPool) -> Result<CatchUp, ProjectionError> {
    catch_up_with(pool, models::ALL, DEFAULT_BATCH, |_| {}).await
}

/// Orgs caught up at the same time (one connection each).
pub const PARALLEL_ORGS: usize = 2;

/// [`catch_up_once`] with an explicit set of projections and batch size; `on_batch` is
/// called with the number of events of each committed batch (progress bars). Orgs are
/// independent, so up to [`PARALLEL_ORGS`] are caught up at once, and an org that fails
/// (its batch rolls back, its checkpoint stays) does not hold the others up; the pass then
/// returns the first error.
pub async fn catch_up_with(
    pool: &PgPool,
    projections: &[Projection],
    batch: i64,
    on_batch: impl FnMut(u64) + Send,
) -> Result<CatchUp, ProjectionError> {
    use futures::StreamExt;
    let names = names(projections);
    let orgs = orgs_behind(pool, &names).await?;
    let on_batch = std::sync::Mutex::new(on_batch);
    let report = |n: u64| {
        if let Ok(mut f) = on_batch.lock() {
            f(n)
        }
    };
    let results: Vec<Result<u64, ProjectionError>> = futures::stream::iter(orgs)
        .map(|org| {
            let mut report = report;
            async move {
                let result = catch_up_org(pool, org, projections, batch, &mut report).await;
                if let Err(e) = &result {
                    tracing::error!(org_id = %org, error = %e, "org projection stopped at its last checkpoint");
                }
                result
            }
        })
        .buffer_unordered(PARALLEL_ORGS)
        .collect()
        .await;
    let mut outcome = CatchUp::default();
    for result in results {
        outcome.events += result?;
        outcome.orgs += 1;
    }
    Ok(outcome)
}

fn names(projections: &[Projection]) -> Vec<String> {
    projections.iter().map(|p| p.name.to_owned()).collect()
}

/// Orgs whose head is beyond the checkpoint of at least one of the projections.
async fn orgs_behind(pool: &PgPool, names: &[String]) -> Result<Vec<OrgId>, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT h.org_id FROM org_heads h CROSS JOIN unnest($1::text[]) AS p(name) \
         LEFT JOIN projection_checkpoints c ON c.org_id = h.org_id AND c.projection = p.name \
         WHERE h.last_seq > COALESCE(c.last_seq, 0) GROUP BY h.org_id ORDER BY h.org_id",
    )
    .bind(names)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(OrgId).collect())
}

/// Apply one org's pending events in batches, one transaction each; returns events applied.
pub async fn catch_up_org(
    pool: &PgPool,
    org: OrgId,
    projections: &[Projection],
    batch: i64,
    on_batch: impl FnMut(u64) + Send,
) -> Result<u64, ProjectionError> {
    catch_up_org_until(pool, org, projections, batch, None, on_batch).await
}

/// [`catch_up_org`], but never beyond `org_seq` `until` when given: the read models as they
/// were at that point of the log (`rebuild --until --into`).
pub async fn catch_up_org_until(
    pool: &PgPool,
    org: OrgId,
    projections: &[Projection],
    batch: i64,
    until: Option<i64>,
    mut on_batch: impl FnMut(u64) + Send,
) -> Result<u64, ProjectionError> {
    let names = names(projections);
    let mut applied = 0;
    // After a batch failed on an event's data, the same batch is applied again projection by
    // projection and, where that fails, in halves down to single events (savepoints), so the
    // poison event is found, quarantined, and the org goes on past it.
    let mut isolate = false;
    loop {
        let mut tx = pool.begin().await?;
        set_org(&mut tx, org).await?;
        // Rows and checkpoint commit together, so a commit lost in a server crash loses both
        // and the batch is simply projected again: no need to wait for the WAL flush.
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        let checkpoints = lock_checkpoints(&mut tx, org, &names).await?;
        let head: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM org_heads WHERE org_id = $1")
            .bind(org.0)
            .fetch_optional(&mut *tx)
            .await?;
        let head = head.unwrap_or(0).min(until.unwrap_or(i64::MAX));
        let from = checkpoints.values().copied().min().unwrap_or(0);
        if from >= head {
            tx.commit().await?;
            return Ok(applied);
        }
        // Gap-safe: every event ≤ head is committed and visible (see xdr_commands::subscription),
        // and the batch never reaches beyond the head read in this transaction.
        let last = head.min(from + batch);
        let quarantined = if isolate {
            apply_isolating(&mut tx, org, projections, &checkpoints, last).await?
        } else {
            match apply_batch(&mut tx, org, projections, &checkpoints, last).await {
                Ok(()) => Vec::new(),
                Err(e) if e.is_poison() => {
                    tracing::warn!(org_id = %org, error = %e, "batch failed on an event's data; isolating it");
                    tx.rollback().await?;
                    isolate = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        sqlx::query(
            "UPDATE projection_checkpoints SET last_seq = $3 \
             WHERE org_id = $1 AND projection = ANY($2) AND last_seq < $3",
        )
        .bind(org.0)
        .bind(&names)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        record_quarantine(&mut tx, org, &quarantined).await?;
        tx.commit().await?;
        for q in &quarantined {
            tracing::error!(
                org_id = %org, projection = q.projection, org_seq = q.org_seq, event_type = %q.event_type,
                error = %q.error, "event quarantined: the projection goes on past it"
            );
        }
        EVENTS_QUARANTINED.fetch_add(quarantined.len() as u64, std::sync::atomic::Ordering::Relaxed);
        isolate = false;
        applied += (last - from) as u64;
        on_batch((last - from) as u64);
    }
}

/// Apply every projection to what it has not applied yet, up to `last`, all or nothing.
async fn apply_batch(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    projections: &[Projection],
    checkpoints: &HashMap<String, i64>,
    last: i64,
) -> Result<(), ProjectionError> {
    let rows = read_rows(tx, org, projections, checkpoints, last).await?;
    for p in projections {
        let done = checkpoints[p.name];
        if done >= last {
            continue;
        }
        match p.apply {
            Apply::Sql(_) => p.apply_range(tx, org, done, last).await?,
            Apply::Rows(_) => {
                let mine: Vec<&StoredEvent> =
                    rows.iter().filter(|e| e.org_seq > done && p.handles(&e.event_type)).collect();
                if !mine.is_empty() {
                    p.apply_rows(tx, &mine).await?;
                }
            }
        }
    }
    Ok(())
}

/// An event a projection could not apply, to be recorded with the checkpoint that skips it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub projection: &'static str,
    pub org_seq: i64,
    pub event_type: String,
    pub error: String,
}

/// [`apply_batch`], but each projection inside a savepoint, and a projection whose events fail
/// on their data is applied again in halves, down to the single events that fail alone:
/// those are rolled back and returned, everything else is applied, in `org_seq` order. The
/// outcome equals applying the events one by one (a group applies iff each of its events
/// does, given the ones before), so it does not depend on batch boundaries: a rebuild
/// quarantines the same events with the same errors as live projection.
async fn apply_isolating(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    projections: &[Projection],
    checkpoints: &HashMap<String, i64>,
    last: i64,
) -> Result<Vec<Quarantined>, ProjectionError> {
    let rows = read_rows(tx, org, projections, checkpoints, last).await?;
    let from = checkpoints.values().copied().min().unwrap_or(0);
    let positions: Vec<(i64, String)> = if projections.iter().any(|p| !p.reads_rows()) {
        store::event_types_in_range(tx, org, from, last).await?
    } else {
        Vec::new()
    };
    let mut quarantined = Vec::new();
    for p in projections {
        let done = checkpoints[p.name];
        if done >= last {
            continue;
        }
        let units: Vec<Unit> = match p.apply {
            Apply::Sql(_) => positions
                .iter()
                .filter(|(seq, t)| *seq > done && p.handles(t))
                .map(|(seq, t)| Unit::Position(*seq, t))
                .collect(),
            Apply::Rows(_) => {
                rows.iter().filter(|e| e.org_seq > done && p.handles(&e.event_type)).map(Unit::Row).collect()
            }
        };
        // Halves still to try, the next one on top: pushed right half first, so the events
        // are applied in org_seq order.
        let mut pending = vec![(0, units.len())];
        while let Some((lo, hi)) = pending.pop() {
            if lo >= hi {
                continue;
            }
            sqlx::query("SAVEPOINT xdr_isolate").execute(&mut **tx).await?;
            match apply_units(p, tx, org, &units[lo..hi]).await {
                Ok(()) => {
                    sqlx::query("RELEASE SAVEPOINT xdr_isolate").execute(&mut **tx).await?;
                }
                Err(e) if e.is_poison() => {
                    sqlx::query("ROLLBACK TO SAVEPOINT xdr_isolate").execute(&mut **tx).await?;
                    sqlx::query("RELEASE SAVEPOINT xdr_isolate").execute(&mut **tx).await?;
                    if hi - lo == 1 {
                        let error: String = e.reason().chars().take(MAX_QUARANTINE_ERROR_CHARS).collect();
                        let (org_seq, event_type) = units[lo].position();
                        quarantined.push(Quarantined {
                            projection: p.name,
                            org_seq,
                            event_type: event_type.to_owned(),
                            error,
                        });
                    } else {
                        let mid = lo + (hi - lo) / 2;
                        pending.push((mid, hi));
                        pending.push((lo, mid));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(quarantined)
}

/// One event as a projection receives it.
enum Unit<'a> {
    Row(&'a StoredEvent),
    Position(i64, &'a str),
}

impl Unit<'_> {
    fn position(&self) -> (i64, &str) {
        match self {
            Unit::Row(e) => (e.org_seq, &e.event_type),
            Unit::Position(seq, event_type) => (*seq, event_type),
        }
    }
}

/// Apply a contiguous (in the projection's own events) run of units.
async fn apply_units(
    p: &Projection,
    conn: &mut PgConnection,
    org: OrgId,
    units: &[Unit<'_>],
) -> Result<(), ProjectionError> {
    let (Some(first), Some(last)) = (units.first(), units.last()) else { return Ok(()) };
    match p.apply {
        // Events in between that the projection does not handle are ignored by it.
        Apply::Sql(_) => p.apply_range(conn, org, first.position().0 - 1, last.position().0).await,
        Apply::Rows(_) => {
            let events: Vec<&StoredEvent> =
                units.iter().filter_map(|u| if let Unit::Row(e) = u { Some(*e) } else { None }).collect();
            p.apply_rows(conn, &events).await
        }
    }
}

/// Record quarantined events, and count them on their projection's checkpoint row (what
/// `/metrics` reads), in the transaction that moves the checkpoint past them.
async fn record_quarantine(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    quarantined: &[Quarantined],
) -> Result<(), sqlx::Error> {
    for q in quarantined {
        let inserted = sqlx::query(
            "INSERT INTO projection_quarantine (org_id, projection, org_seq, event_type, error) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, projection, org_seq) DO NOTHING",
        )
        .bind(org.0)
        .bind(q.projection)
        .bind(q.org_seq)
        .bind(&q.event_type)
        .bind(&q.error)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE projection_checkpoints SET quarantined = quarantined + $3 WHERE org_id = $1 AND projection = $2",
        )
        .bind(org.0)
        .bind(q.projection)
        .bind(inserted as i64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The org's checkpoint of each projection, created at 0 when missing, locked until commit.
async fn lock_checkpoints(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    names: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let select = "SELECT projection, last_seq FROM projection_checkpoints \
                  WHERE org_id = $1 AND projection = ANY($2) ORDER BY projection FOR UPDATE";
    let read = |rows: Vec<sqlx::postgres::PgRow>| -> Result<HashMap<String, i64>, sqlx::Error> {
        rows.iter().map(|r| Ok((r.try_get("projection")?, r.try_get("last_seq")?))).collect()
    };
    let found = read(sqlx::query(select).bind(org.0).bind(names).fetch_all(&mut **tx).await?)?;
    if found.len() == names.len() {
        return Ok(found);
    }
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, org_id, last_seq) \
         SELECT name, $1, 0 FROM unnest($2::text[]) AS p(name) ON CONFLICT DO NOTHING",
    )
    .bind(org.0)
    .bind(names)
    .execute(&mut **tx)
    .await?;
    read(sqlx::query(select).bind(org.0).bind(names).fetch_all(&mut **tx).await?)
}

/// The rows the row-reading projections still need in `(their checkpoint, until]`, only of
/// the types they read (telemetry stays in the database when no row projection wants it).
async fn read_rows(
    conn: &mut PgConnection,
    org: OrgId,
    projections: &[Projection],
    checkpoints: &HashMap<String, i64>,
    until: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let behind: Vec<&Projection> =
        projections.iter().filter(|p| p.reads_rows() && checkpoints[p.name] < until).collect();
    let Some(from) = behind.iter().map(|p| checkpoints[p.name]).min() else { return Ok(Vec::new()) };
    let mut types: Option<Vec<&str>> = Some(Vec::new());
    for p in &behind {
        match (p.reads, types.as_mut()) {
            (Reads::Only(only), Some(t)) => t.extend(only.iter().map(|t| t.as_str())),
            _ => types = None,
        }
    }
    store::read_range_of_types(conn, org, from, until, types).await
}

/// The projector role: catch up, then wait for a commit notification (or the poll
/// interval), forever, until `shutdown` resolves. Errors are logged and retried; dropping
/// the future mid-batch is safe (the open transaction rolls back).
pub async fn run_projector(pool: PgPool, shutdown: impl Future<Output = ()> + Send) {
    let projections = models::ALL;
    tokio::pin!(shutdown);
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN on the event log; polling only");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot open a LISTEN connection; polling only");
            None
        }
    };
    tracing::info!(projections = ?names(projections), "projector started");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            result = catch_up_with(&pool, projections, DEFAULT_BATCH, |_| {}) => match result {
                Ok(c) if c.events > 0 => tracing::debug!(orgs = c.orgs, events = c.events, "projected"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "projection pass failed; retrying"),
            },
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = wait_for_commit(listener.as_mut()) => {}
        }
    }
    tracing::info!("projector stopped");
}

/// Sleep until some org commits (a notification) or the poll interval passes.
async fn wait_for_commit(listener: Option<&mut PgListener>) {
    let Some(listener) = listener else {
        tokio::time::sleep(POLL_INTERVAL).await;
        return;
    };
    match tokio::time::timeout(POLL_INTERVAL, listener.recv()).await {
        Ok(Ok(_)) | Err(_) => {}
        // The listener reconnects on its next recv; poll meanwhile.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "event log listener failed; polling");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Read-your-writes did not happen in time.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionLag {
    #[error(
        "read models of org {org} did not reach org_seq {seq} within {waited:?} \
         (behind: {behind:?}); is the projector running?"
    )]
    TimedOut { org: OrgId, seq: i64, waited: Duration, behind: Vec<(String, i64)> },
    #[error("cannot read projection checkpoints: {0}")]
    Database(#[from] sqlx::Error),
}

/// Return once every projection's checkpoint for `org` is ≥ `seq` (the `last_seq` an
/// append returned), so the caller's next query sees its own write; give up after `timeout`.
pub async fn wait_for_projections(pool: &PgPool, org: OrgId, seq: i64, timeout: Duration) -> Result<(), ProjectionLag> {
    let names: Vec<String> = models::all().iter().map(|p| p.name.to_owned()).collect();
    wait_for(pool, org, seq, &names, timeout).await
}

/// [`wait_for_projections`] for some projections only (those a mutation affects).
pub async fn wait_for(
    pool: &PgPool,
    org: OrgId,
    seq: i64,
    names: &[String],
    timeout: Duration,
) -> Result<(), ProjectionLag> {
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        // Scoped to the org: the API (the caller) may read only its own org's checkpoints.
        let mut tx = begin_org_tx(pool, org).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT p.name, COALESCE(c.last_seq, 0) FROM unnest($2::text[]) AS p(name) \
             LEFT JOIN projection_checkpoints c ON c.org_id = $1 AND c.projection = p.name \
             WHERE COALESCE(c.last_seq, 0) < $3 ORDER BY p.name",
        )
        .bind(org.0)
        .bind(names)
        .bind(seq)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if rows.is_empty() {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(ProjectionLag::TimedOut { org, seq, waited, behind: rows });
        }
        tokio::time::sleep(pause.min(timeout - waited)).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}
