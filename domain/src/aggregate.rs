//! The shape of every business rule: `decide(state, command) → events`, `evolve(state, event)`.

use crate::Event;

/// A consistency boundary whose state is a fold of its own stream.
pub trait Aggregate: Default {
    type Command;
    type Error;

    /// Fold one event into the state. Never fails and holds no rules: the event happened.
    fn apply(&mut self, event: &Event);

    /// Decide what happens: the events to record, or why not. Pure.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Event>, Self::Error>;

    /// The name and version of this aggregate's snapshot format, when its streams may grow
    /// long enough that folding them on every read would cost more than a lookup (a user
    /// stream under a password-guessing flood). `None`: always folded from the first event.
    /// Bump the version whenever the state's shape changes; stored snapshots of another
    /// version are ignored and rebuilt from the log.
    const SNAPSHOT: Option<&'static str> = None;

    /// The state as a snapshot, complete enough for [`from_snapshot`](Self::from_snapshot)
    /// to give back exactly this state. Only called when `SNAPSHOT` is set.
    fn to_snapshot(&self) -> Option<serde_json::Value> {
        None
    }

    /// A state from a snapshot written by `to_snapshot` under the same `SNAPSHOT` name.
    fn from_snapshot(_snapshot: &serde_json::Value) -> Option<Self> {
        None
    }

    /// Fold a whole history.
    fn from_history<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }
}
