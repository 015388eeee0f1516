//! The command pipeline: load a stream, fold it with `evolve`, `decide`, append with the
//! version that was loaded, and on a concurrency conflict do it all again.

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

/// Load an aggregate's state from its stream.
pub async fn load<A: Aggregate>(
    store: &EventStore,
    org: OrgId,
    stream_id: &str,
) -> Result<(A, i64), CommandError<A::Error>> {
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

/// Deterministic when the command has an id, random otherwise.
pub fn event_id(command_id: Option<Uuid>, index: usize) -> Uuid {
    match command_id {
        Some(id) => Uuid::new_v5(&id, index.to_string().as_bytes()),
        // Time-ordered, so appends land at the end of the event-id index.
        None => Uuid::now_v7(),
    }
}
