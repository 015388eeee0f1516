//! The HTTP face of Mini-XDR: REST compatibility routes (`/api/auth/*`), health and metrics,
//! and (as it lands) GraphQL, on actix-web. Handlers parse input, call a command handler, and
//! map its error; tenant scope comes only from the verified token.
#![forbid(unsafe_code)]

mod error;
mod extract;
mod graphql_route;
mod limits;
mod metrics;
mod middleware;
mod rate_limit;
mod request_span;
mod response;
mod routes;
pub mod schema;
pub mod startup;

/// The agent gateway's wire types (what `mini-xdr agent` sends and receives).
pub mod agent_api {
    pub use crate::routes::agent::{active_blocks, AgentResultItem, PulledOrder, ResultOutcome, MAX_PULL, MAX_WAIT_MS};
}
pub use extract::ForwardedFor;
pub use limits::GraphqlLimits;
pub use middleware::BodyLimits;
pub use rate_limit::DEFAULT_MAX_CLIENTS;
pub use startup::{health_server, Application, ServerConfig};
