//! The GraphQL schema: camelCase fields, `ID` ids, SCREAMING_CASE enums, errors carrying a
//! machine-readable `extensions.code`. Resolvers call the same command handlers as REST.

mod accounts;
mod containment;
mod context;
pub(crate) mod cost;
mod errors;
mod identity;
mod incidents;
mod ingest_keys;
pub(crate) mod live;
mod quarantine;
mod read;
mod response;
pub(crate) mod scope;
#[cfg(test)]
mod sdl_test;
mod second_factor;
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
    accounts::AccountsQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    identity::IdentityMutation,
    ingest_keys::IngestKeyMutation,
    incidents::IncidentMutation,
    response::ResponseMutation,
    containment::ContainmentMutation,
    accounts::AccountsMutation,
    second_factor::SecondFactorMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(incidents::IncidentSubscription);

pub type XdrSchema = Schema<Query, Mutation, Subscription>;

/// The schema without request data (resolvers read `AppState` and the caller from context),
/// with the cost limits of `limits` checked before anything runs.
pub fn build(
    introspection: bool,
    limits: &crate::limits::GraphqlLimits,
) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let builder = Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .limit_depth(limits.max_depth)
        .extension(cost::CostLimits {
            max_cost: limits.max_cost,
            max_root_fields: limits.max_root_fields,
            max_aliases: limits.max_aliases,
        });
    if introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// The SDL, as committed in `graphql/schema.graphql`.
pub fn sdl() -> String {
    build(true, &Default::default()).finish().sdl()
}
