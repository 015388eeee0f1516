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

    /// Fold a whole history.
    fn from_history<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }
}
