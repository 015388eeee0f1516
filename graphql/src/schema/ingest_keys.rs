//! Ingest keys: created by an admin (the plaintext is shown once), listed, revoked.

use super::scope::org_tx;
use async_graphql::{Context, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sqlx::Row;
use uuid::Uuid;
use xdr_commands::auth::AuthError;
use xdr_commands::ingest_keys::{create_ingest_key, revoke_ingest_key};
use xdr_domain::identity::Permission;
use xdr_domain::ids::IngestKeyId;

use super::context::{actor_metadata, after_write, caller, db_error, state};
use super::cost;
use super::errors::gql_error;

#[derive(SimpleObject, Clone, Debug)]
pub struct IngestKey {
    pub id: ID,
    pub name: String,
    /// The first characters of the key, to recognise it; never the key.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct CreatedIngestKey {
    /// The key itself. Shown once: only its digest is stored.
    pub key: String,
    pub ingest_key: IngestKey,
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    gql_error(AuthError::Internal(e.to_string()))
}

#[derive(Default)]
pub struct IngestKeyQuery;

#[Object]
impl IngestKeyQuery {
    /// The organization's ingest keys, newest first (admin).
    #[graphql(complexity = "cost::root_list(child_complexity)")]
    async fn ingest_keys(&self, ctx: &Context<'_>) -> Result<Vec<IngestKey>> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageIngestKeys).map_err(gql_error)?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(
            "SELECT key_id, name, prefix, created_at, revoked_at FROM rm_ingest_keys \
             WHERE org_id = $1 ORDER BY created_at DESC, key_id",
        )
        .bind(p.org_id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| IngestKey {
                id: ID(r.get::<Uuid, _>("key_id").to_string()),
                name: r.get("name"),
                prefix: r.get("prefix"),
                created_at: r.get("created_at"),
                revoked_at: r.get("revoked_at"),
            })
            .collect())
    }
}

#[derive(Default)]
pub struct IngestKeyMutation;

#[Object]
impl IngestKeyMutation {
    /// Issue a key for a log producer (admin). The key decides the org of everything sent with it.
    async fn create_ingest_key(&self, ctx: &Context<'_>, name: String) -> Result<CreatedIngestKey> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageIngestKeys).map_err(gql_error)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 255 {
            return Err(super::context::bad_input("name must be 1 to 255 characters"));
        }
        let issued = create_ingest_key(state(ctx).identity.store(), p.org_id, name, &actor_metadata(ctx, &p))
            .await
            .map_err(internal)?;
        after_write(ctx, p.org_id).await?;
        Ok(CreatedIngestKey {
            key: issued.key.expose_secret().to_owned(),
            ingest_key: IngestKey {
                id: ID(issued.key_id.0.to_string()),
                name: issued.name,
                prefix: issued.prefix,
                created_at: issued.created_at,
                revoked_at: None,
            },
        })
    }

    /// Revoke a key (admin); producers using it are refused within seconds.
    async fn revoke_ingest_key(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let p = caller(ctx).await?;
        p.require(Permission::ManageIngestKeys).map_err(gql_error)?;
        let key_id = Uuid::parse_str(&id).map(IngestKeyId).map_err(|_| gql_error(AuthError::NotFound))?;
        // Only keys of the caller's org exist for the caller.
        let mut tx = org_tx(ctx, p.org_id).await?;
        let known: Option<Uuid> =
            sqlx::query_scalar("SELECT key_id FROM ingest_key_lookup WHERE key_id = $1 AND org_id = $2")
                .bind(key_id.0)
                .bind(p.org_id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        drop(tx);
        if known.is_none() {
            return Err(gql_error(AuthError::NotFound));
        }
        revoke_ingest_key(state(ctx).identity.store(), p.org_id, key_id, &actor_metadata(ctx, &p))
            .await
            .map_err(internal)?;
        after_write(ctx, p.org_id).await?;
        Ok(true)
    }
}
