//! Read queries over the read models. Every query runs in a transaction scoped to the caller's
//! org (`org_tx`, one per request: row-level security) *and* filters by that org in SQL: two layers.

use super::scope::org_tx;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use sqlx::Row;
use xdr_domain::identity::Permission;

use super::context::{caller, db_error, decode_cursor, decode_seq_cursor, encode_cursor, page_size};
use super::cost;
use super::errors::gql_error;
use super::types::{Organization, OrganizationStatus, Role, User};

#[derive(SimpleObject, Clone, Debug)]
pub struct SecurityEvent {
    /// The event's id in the log.
    pub id: ID,
    pub org_seq: i64,
    pub timestamp: DateTime<Utc>,
    pub source_type: String,
    pub event_type: String,
    pub src_ip: Option<String>,
    pub src_port: Option<i32>,
    pub dst_ip: Option<String>,
    pub dst_port: Option<i32>,
    pub protocol: Option<String>,
    pub username: Option<String>,
    pub command: Option<String>,
    pub url: Option<String>,
    pub file_hash: Option<String>,
    pub session_id: Option<String>,
    pub hostname: Option<String>,
    pub message: Option<String>,
    /// The producer's original record, verbatim.
    pub raw: Json<serde_json::Value>,
}

/// Columns of `rm_security_events` that make a [`SecurityEvent`].
pub const EVENT_COLUMNS: &str = "event_id, org_seq, \"timestamp\", source_type, event_type, host(src_ip) AS src_ip, \
     src_port, host(dst_ip) AS dst_ip, dst_port, protocol, username, command, url, file_hash, session_id, hostname, \
     message, raw";

pub fn event_from_row(row: &sqlx::postgres::PgRow) -> SecurityEvent {
    SecurityEvent {
        id: ID(row.get::<uuid::Uuid, _>("event_id").to_string()),
        org_seq: row.get("org_seq"),
        timestamp: row.get("timestamp"),
        source_type: row.get("source_type"),
        event_type: row.get("event_type"),
        src_ip: row.get("src_ip"),
        src_port: row.get("src_port"),
        dst_ip: row.get("dst_ip"),
        dst_port: row.get("dst_port"),
        protocol: row.get("protocol"),
        username: row.get("username"),
        command: row.get("command"),
        url: row.get("url"),
        file_hash: row.get("file_hash"),
        session_id: row.get("session_id"),
        hostname: row.get("hostname"),
        message: row.get("message"),
        raw: Json(row.get("raw")),
    }
}

#[derive(InputObject, Default)]
pub struct EventFilter {
    pub src_ip: Option<String>,
    pub event_type: Option<String>,
    pub source_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AuditEntry {
    pub org_seq: i64,
    pub recorded_at: DateTime<Utc>,
    pub stream_id: String,
    pub event_type: String,
    pub actor_user_id: Option<ID>,
    pub actor: Option<String>,
    pub request_ip: Option<String>,
    /// The event's payload with secrets (password, token, hash fields) removed.
    pub details: Json<serde_json::Value>,
}

fn role(s: &str) -> Role {
    xdr_domain::identity::Role::parse(s).map(Role::from).unwrap_or(Role::Viewer)
}

#[derive(Default)]
pub struct ReadQuery;

#[Object]
impl ReadQuery {
    /// The caller's organization.
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let row = sqlx::query("SELECT org_id, name, slug, created_at FROM rm_organizations WHERE org_id = $1")
            .bind(p.org_id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| gql_error(xdr_commands::auth::AuthError::NotFound))?;
        Ok(Organization {
            id: ID(row.get::<uuid::Uuid, _>("org_id").to_string()),
            name: row.get("name"),
            slug: row.get("slug"),
            status: OrganizationStatus::Active,
            created_at: row.get("created_at"),
        })
    }

    /// Users of the caller's organization, by e-mail address.
    #[graphql(complexity = "cost::root_page(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, User>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let first = page_size(first)?;
        let after_email = decode_cursor(after.as_deref())?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(
            "SELECT user_id, org_id, email, full_name, role, is_active, created_at, last_login FROM rm_users \
             WHERE org_id = $1 AND ($2::text IS NULL OR email > $2) ORDER BY email LIMIT $3",
        )
        .bind(p.org_id.0)
        .bind(after_email.as_deref())
        .bind(first as i64 + 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut connection = Connection::new(after_email.is_some(), rows.len() > first);
        for row in rows.into_iter().take(first) {
            let email: String = row.get("email");
            connection.edges.push(Edge::new(
                encode_cursor(&email),
                User {
                    id: ID(row.get::<uuid::Uuid, _>("user_id").to_string()),
                    organization_id: ID(row.get::<uuid::Uuid, _>("org_id").to_string()),
                    email,
                    full_name: row.get("full_name"),
                    role: role(row.get("role")),
                    is_active: row.get("is_active"),
                    created_at: row.get("created_at"),
                    last_login: row.get("last_login"),
                },
            ));
        }
        Ok(connection)
    }

    /// Normalized telemetry of the caller's organization, newest first.
    #[graphql(complexity = "cost::root_page(first, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, SecurityEvent>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let first = page_size(first)?;
        let before_seq = decode_seq_cursor(after.as_deref())?;
        let f = filter.unwrap_or_default();
        let src_ip: Option<std::net::IpAddr> = match f.src_ip.as_deref() {
            Some(ip) => {
                Some(ip.parse().map_err(|_| super::context::bad_input(format!("{ip:?} is not an IP address")))?)
            }
            None => None,
        };
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM rm_security_events WHERE org_id = $1 AND ($2::bigint IS NULL OR org_seq < $2) \
             AND ($3::inet IS NULL OR src_ip = $3::inet) AND ($4::text IS NULL OR event_type = $4) \
             AND ($5::text IS NULL OR source_type = $5) AND ($6::timestamptz IS NULL OR \"timestamp\" >= $6) \
             AND ($7::timestamptz IS NULL OR \"timestamp\" <= $7) ORDER BY org_seq DESC LIMIT $8"
        ))
        .bind(p.org_id.0)
        .bind(before_seq)
        .bind(src_ip.map(|ip| ip.to_string()))
        .bind(f.event_type.as_deref())
        .bind(f.source_type.as_deref())
        .bind(f.since)
        .bind(f.until)
        .bind(first as i64 + 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut connection = Connection::new(before_seq.is_some(), rows.len() > first);
        for row in rows.iter().take(first) {
            let event = event_from_row(row);
            connection.edges.push(Edge::new(encode_cursor(&event.org_seq.to_string()), event));
        }
        Ok(connection)
    }

    /// Who did what, when, in the caller's organization, newest first (admin).
    #[graphql(complexity = "cost::root_page(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, AuditEntry>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadAuditLog).map_err(gql_error)?;
        let first = page_size(first)?;
        let before_seq = decode_seq_cursor(after.as_deref())?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(
            "SELECT org_seq, recorded_at, stream_id, event_type, actor_user_id, actor, request_ip, details \
             FROM rm_audit_log WHERE org_id = $1 AND ($2::bigint IS NULL OR org_seq < $2) \
             ORDER BY org_seq DESC LIMIT $3",
        )
        .bind(p.org_id.0)
        .bind(before_seq)
        .bind(first as i64 + 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut connection = Connection::new(before_seq.is_some(), rows.len() > first);
        for row in rows.into_iter().take(first) {
            let org_seq: i64 = row.get("org_seq");
            connection.edges.push(Edge::new(
                encode_cursor(&org_seq.to_string()),
                AuditEntry {
                    org_seq,
                    recorded_at: row.get("recorded_at"),
                    stream_id: row.get("stream_id"),
                    event_type: row.get("event_type"),
                    actor_user_id: row.get::<Option<uuid::Uuid>, _>("actor_user_id").map(|u| ID(u.to_string())),
                    actor: row.get("actor"),
                    request_ip: row.get("request_ip"),
                    details: Json(row.get("details")),
                },
            ));
        }
        Ok(connection)
    }
}
