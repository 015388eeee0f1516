//! The GraphQL schema: camelCase fields, `ID` ids, SCREAMING_CASE enums, errors carrying a
//! machine-readable `extensions.code`. Resolvers call the same command handlers as REST.

mod containment;
mod context;
mod errors;
mod identity;
mod incidents;
mod ingest_keys;
mod quarantine;
mod read;
mod response;
#[cfg(test)]
mod sdl_test;
mod types;

use async_graphql::{MergedObject, MergedSubscription, Schema};

pub use errors::code_of;

#[derive(MergedObject, Default)]
pub struct Query(
    identity::IdentityQuery,
    read::ReadQuery,
    ingest_keys::IngestKeyQuery,
    incidents::IncidentQuery,
    response::ResponseQuery,
    containment::ContainmentQuery,
    quarantine::QuarantineQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    identity::IdentityMutation,
    ingest_keys::IngestKeyMutation,
    incidents::IncidentMutation,
    response::ResponseMutation,
    containment::ContainmentMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(incidents::IncidentSubscription);

pub type XdrSchema = Schema<Query, Mutation, Subscription>;

/// Limits that keep one request from exhausting the server.
pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 1_000;

/// The schema without request data (resolvers read `AppState` and the caller from context).
pub fn build(introspection: bool) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let builder = Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY);
    if introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// The SDL, as committed in `graphql/schema.graphql`.
pub fn sdl() -> String {
    build(true).finish().sdl()
}
