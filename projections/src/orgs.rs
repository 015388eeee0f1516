//! Resolving the `ORG` argument of the CLI: an org id or a slug.

use sqlx::PgPool;
use uuid::Uuid;
use xdr_domain::ids::OrgId;

#[derive(Debug, thiserror::Error)]
pub enum OrgLookupError {
    #[error("no organization with slug or id {0:?}")]
    NotFound(String),
    #[error("database error while resolving organization: {0}")]
    Database(#[from] sqlx::Error),
}

/// Accept a UUID as is (an org may have events but no registration, e.g. in tests) or look a
/// slug up in the registry of organization slugs.
pub async fn resolve_org(pool: &PgPool, org: &str) -> Result<OrgId, OrgLookupError> {
    if let Ok(id) = Uuid::parse_str(org) {
        return Ok(OrgId(id));
    }
    // Through the lookup function, so this works for every login (the registry itself is
    // row-level secured).
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT xdr_find_org_slug($1)").bind(org.to_lowercase()).fetch_one(pool).await?;
    id.map(OrgId).ok_or_else(|| OrgLookupError::NotFound(org.to_owned()))
}
