//! What one GraphQL request or one WebSocket may cost the server. Every value here is a row of
//! the "Abuse limits" table in docs/ARCHITECTURE.md and a setting in docs/OPERATIONS.md.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GraphqlLimits {
    /// Largest cost of one document (`XDR_GRAPHQL_MAX_COST`). A list field costs `first` (or an
    /// estimate for lists without `first`) times what is selected under it; see `schema::cost`.
    pub max_cost: usize,
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Most top-level fields in one operation, fragments included (`XDR_GRAPHQL_MAX_ROOT_FIELDS`):
    /// bounds the fan-out of one request (and of aliased mutations).
    pub max_root_fields: usize,
    /// Most aliased fields in one document (`XDR_GRAPHQL_MAX_ALIASES`).
    pub max_aliases: usize,
    /// Open subscriptions on one WebSocket (`XDR_SUBSCRIPTIONS_PER_CONNECTION`).
    pub subscriptions_per_connection: usize,
    /// Open subscriptions of one user across all sockets of this server process
    /// (`XDR_SUBSCRIPTIONS_PER_USER`).
    pub subscriptions_per_user: usize,
    /// How often an open subscription checks its session again (`XDR_SUBSCRIPTION_RECHECK_SECONDS`):
    /// logout, a lock, deactivation or token expiry end it within this time.
    pub subscription_recheck: Duration,
    /// How often one org's shared feed asks the read model for changes (`XDR_SUBSCRIPTION_POLL_MS`).
    pub subscription_poll: Duration,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        GraphqlLimits {
            max_cost: 10_000,
            max_depth: 12,
            max_root_fields: 10,
            max_aliases: 10,
            subscriptions_per_connection: 5,
            subscriptions_per_user: 10,
            subscription_recheck: Duration::from_secs(2),
            subscription_poll: Duration::from_millis(250),
        }
    }
}
