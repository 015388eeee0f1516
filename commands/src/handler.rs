//! The command pipeline: load a stream, fold it with `evolve`, `decide`, append with the
//! version that was loaded, and on a concurrency conflict do it all again.

use std::collections::HashMap;
use std::future::Future;
use uuid::Uuid;
use xdr_domain::aggregate::Aggregate;
use xdr_domain::ids::OrgId;
use xdr_domain::{Event, EventMetadata};

use crate::store::{Appended, EventStore, ExpectedVersion, NewEvent, StoreError};

/// How often a command is re-decided after losing an optimistic-concurrency race.
pub const MAX_ATTEMPTS: usize = 64;

/// Run `attempt` until it does not end in [`StoreError::Conflict`], at most `max_attempts`
/// times. The one place where "reload → decide → append" is retried.
pub async fn retry_on_conflict<T, E, F, Fut>(max_attempts: usize, mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: IsConflict,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(e) if e.is_conflict() && tries < max_attempts => {
                // Spread competing retries apart so they do not collide again in lockstep.
                let jitter = rand::random::<u64>() % (2 * tries as u64 + 1);
                tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
            }
            other => return other,
        }
    }
}

/// Errors that can say "you lost a race, try again".
pub trait IsConflict {
    fn is_conflict(&self) -> bool;
}

impl IsConflict for StoreError {
    fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// A command failed: the rules said no, or the store did.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    #[error(transparent)]
    Domain(E),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored event cannot be decoded: {0}")]
    Corrupt(String),
}

impl<E> IsConflict for CommandError<E> {
    fn is_conflict(&self) -> bool {
        matches!(self, CommandError::Store(e) if e.is_conflict())
    }
}

/// The result of a command: the state after it and where the log stands.
#[derive(Debug, Clone)]
pub struct Executed<A> {
    pub state: A,
    pub events: Vec<Event>,
    pub appended: Appended,
}

/// A snapshot is (re)written when loading had to fold at least this many events after the
/// last one: reads then cost one lookup plus fewer than this many events, however long the
/// stream is.
pub const SNAPSHOT_AFTER_EVENTS: usize = 64;

/// Load an aggregate's state from its stream (from its latest snapshot and the events after
/// it, for aggregates that keep snapshots).
pub async fn load<A: Aggregate>(
    store: &EventStore,
    org: OrgId,
    stream_id: &str,
) -> Result<(A, i64), CommandError<A::Error>> {
    if let Some(kind) = A::SNAPSHOT {
        return load_from_snapshot(store, org, stream_id, kind).await;
    }
    let stored = store.read_stream(org, stream_id).await?;
    let mut state = A::default();
    let mut version = 0;
    for s in &stored {
        let event = s.event().map_err(CommandError::Corrupt)?;
        state.apply(&event);
        version = s.stream_version;
    }
    Ok((state, version))
}

/// Snapshot plus tail, both read in one org-scoped transaction (the snapshot table has the read
/// models' row-level security). A snapshot that no longer decodes is ignored: the log has it all.
async fn load_from_snapshot<A: Aggregate>(
    store: &EventStore,
    org: OrgId,
    stream_id: &str,
    kind: &str,
) -> Result<(A, i64), CommandError<A::Error>> {
    let mut tx = store.pool().begin().await.map_err(StoreError::from)?;
    sqlx::query("SELECT set_config('app.org_id', $1, true)")
        .bind(org.0.to_string())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let snapshot: Option<(i64, serde_json::Value)> = sqlx::query_as(
        "SELECT version, state FROM stream_snapshots WHERE org_id = $1 AND stream_id = $2 AND kind = $3",
    )
    .bind(org.0)
    .bind(stream_id)
    .bind(kind)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    let stored_snapshot = snapshot.is_some();
    let decoded = snapshot.and_then(|(v, s)| A::from_snapshot(&s).map(|a| (a, v)));
    // A stored snapshot that did not decode is overwritten even at the same version.
    let broken = stored_snapshot && decoded.is_none();
    let (mut state, mut version) = decoded.unwrap_or_else(|| (A::default(), 0));
    let tail = EventStore::read_stream_after(&mut tx, org, stream_id, version).await?;
    tx.commit().await.map_err(StoreError::from)?;
    for s in &tail {
        let event = s.event().map_err(CommandError::Corrupt)?;
        state.apply(&event);
        version = s.stream_version;
    }
    if tail.len() >= SNAPSHOT_AFTER_EVENTS {
        if let Some(snapshot) = state.to_snapshot() {
            // A cache: failing to write it costs the next reader a longer fold, nothing more.
            if let Err(e) = save_snapshot(store, org, stream_id, kind, version, &snapshot, broken).await {
                tracing::warn!(%org, stream_id, error = %e, "could not save a stream snapshot");
            }
        }
    }
    Ok((state, version))
}

/// Store a snapshot unless a newer one is already there (two readers racing write the same
/// or adjacent versions; the newest wins), or in any case when `replace_broken`.
async fn save_snapshot(
    store: &EventStore,
    org: OrgId,
    stream_id: &str,
    kind: &str,
    version: i64,
    state: &serde_json::Value,
    replace_broken: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT set_config('app.org_id', $1, true)").bind(org.0.to_string()).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO stream_snapshots (org_id, stream_id, kind, version, state) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (org_id, stream_id, kind) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state \
         WHERE stream_snapshots.version < EXCLUDED.version OR $6",
    )
    .bind(org.0)
    .bind(stream_id)
    .bind(kind)
    .bind(version)
    .bind(state)
    .bind(replace_broken)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Execute a command against one aggregate with optimistic concurrency and retries.
///
/// `command_id`, when given, makes event ids deterministic (`v5(command_id, index)`), so a
/// redelivered command appends nothing the second time.
pub async fn execute<A: Aggregate + Clone>(
    store: &EventStore,
    org: OrgId,
    stream_id: &str,
    command: &A::Command,
    metadata: &EventMetadata,
    command_id: Option<Uuid>,
) -> Result<Executed<A>, CommandError<A::Error>> {
    retry_on_conflict(MAX_ATTEMPTS, || async {
        let (mut state, version) = load::<A>(store, org, stream_id).await?;
        let events = state.decide(command).map_err(CommandError::Domain)?;
        let new_events = events
            .iter()
            .enumerate()
            .map(|(i, e)| NewEvent::from_event(event_id(command_id, i), stream_id, e, metadata))
            .collect();
        let expected = if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
        let appended = store.append(org, stream_id, expected, new_events).await?;
        for e in &events {
            state.apply(e);
        }
        Ok(Executed { state, events, appended })
    })
    .await
}

/// One command of a batch for [`execute_all`].
#[derive(Debug, Clone, Copy)]
pub struct BatchCommand<'a, C> {
    pub stream_id: &'a str,
    pub command: &'a C,
    pub metadata: &'a EventMetadata,
    pub command_id: Option<Uuid>,
}

/// What a batch did: how many events it appended, and which commands the aggregate refused
/// (their index in the batch, and why); the other commands took effect.
#[derive(Debug)]
pub struct ExecutedBatch<E> {
    pub written: usize,
    pub refused: Vec<(usize, E)>,
}

/// Execute many commands on streams of one aggregate type of one org as one unit: each
/// stream is loaded once (one query for all), the commands are decided in order on the
/// states in memory (a later command sees what an earlier one decided), and every event is
/// appended in one transaction with a concurrency check per stream; losing a race reloads
/// and decides the whole batch again. Event ids are those [`execute`] gives the same
/// command, so the two paths are idempotent with each other. A command the aggregate
/// refuses is reported and skipped. Snapshots are not read (for aggregates without them).
pub async fn execute_all<A: Aggregate + Clone>(
    store: &EventStore,
    org: OrgId,
    commands: &[BatchCommand<'_, A::Command>],
) -> Result<ExecutedBatch<A::Error>, CommandError<A::Error>> {
    retry_on_conflict(MAX_ATTEMPTS, || async {
        let mut streams: Vec<String> = commands.iter().map(|c| c.stream_id.to_owned()).collect();
        streams.sort_unstable();
        streams.dedup();
        let mut states: HashMap<String, (A, i64)> = streams.iter().map(|s| (s.clone(), (A::default(), 0))).collect();
        for stored in store.read_streams(org, &streams).await? {
            let event = stored.event().map_err(CommandError::Corrupt)?;
            if let Some((state, version)) = states.get_mut(stored.stream_id.as_str()) {
                state.apply(&event);
                *version = stored.stream_version;
            }
        }
        let expected: Vec<(String, ExpectedVersion)> = states
            .iter()
            .map(|(s, (_, version))| {
                let expected = if *version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(*version) };
                (s.clone(), expected)
            })
            .collect();
        let mut new_events = Vec::new();
        let mut refused = Vec::new();
        for (index, c) in commands.iter().enumerate() {
            let Some((state, _)) = states.get_mut(c.stream_id) else { continue };
            match state.decide(c.command) {
                Ok(events) => {
                    for (i, e) in events.iter().enumerate() {
                        new_events.push(NewEvent::from_event(event_id(c.command_id, i), c.stream_id, e, c.metadata));
                        state.apply(e);
                    }
                }
                Err(e) => refused.push((index, e)),
            }
        }
        let appended = store.append_streams(org, &expected, new_events).await?;
        Ok(ExecutedBatch { written: appended.written, refused })
    })
    .await
}

/// Deterministic when the command has an id, random otherwise.
pub fn event_id(command_id: Option<Uuid>, index: usize) -> Uuid {
    match command_id {
        Some(id) => Uuid::new_v5(&id, index.to_string().as_bytes()),
        // Time-ordered, so appends land at the end of the event-id index.
        None => Uuid::now_v7(),
    }
}
