//! What every resolver needs: the application state, the request, the verified caller, and
//! page arguments.

use async_graphql::{Context, ErrorExtensions, Result, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;
use xdr_commands::auth::identity::{Principal, RequestContext};
use xdr_commands::auth::AuthError;
use xdr_domain::ids::UserId;

use super::errors::gql_error;
use crate::graphql_route::RequestAuth;
use crate::startup::AppState;

/// Largest page a list returns.
pub const MAX_PAGE: usize = 500;
pub const DEFAULT_PAGE: usize = 50;

pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<actix_web::web::Data<AppState>>()
}

pub fn request(ctx: &Context<'_>) -> RequestContext {
    ctx.data_opt::<RequestAuth>().map(|r| r.context.clone()).unwrap_or_default()
}

/// The caller from the request's bearer token; tenant scope comes only from here. Verified
/// once per request (the request's `RequestScope` keeps the answer for every other resolver).
pub async fn caller(ctx: &Context<'_>) -> Result<Principal> {
    let verify = async {
        let token = ctx
            .data_opt::<RequestAuth>()
            .and_then(|r| r.token.as_deref())
            .ok_or_else(|| gql_error(AuthError::Unauthenticated("Not authenticated")))?;
        authenticate(state(ctx), token).await.map_err(gql_error)
    };
    match ctx.data_opt::<std::sync::Arc<super::scope::RequestScope>>() {
        Some(scope) => scope.caller(verify).await,
        None => verify.await,
    }
}

/// Every token verification of the GraphQL side goes through here (and is counted).
pub async fn authenticate(state: &AppState, token: &str) -> std::result::Result<Principal, AuthError> {
    crate::metrics::Metrics::inc(&state.metrics.graphql_authentications);
    let principal = state.identity.authenticate(token).await?;
    // The request's log lines name the org from here on (`request_span`).
    tracing::Span::current().record("org_id", tracing::field::display(principal.org_id));
    Ok(principal)
}

pub fn user_id(id: &ID) -> Result<UserId> {
    Uuid::parse_str(id).map(UserId).map_err(|_| gql_error(AuthError::NotFound))
}

pub fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("code", "BAD_USER_INPUT"))
}

/// `first` checked against the page limit.
pub fn page_size(first: Option<i32>) -> Result<usize> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n < 1 => Err(bad_input("first must be at least 1")),
        Some(n) if n as usize > MAX_PAGE => Err(bad_input(format!("first must be at most {MAX_PAGE}"))),
        Some(n) => Ok(n as usize),
    }
}

/// Opaque cursors: base64 of the sort key's text.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>> {
    cursor
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| bad_input("invalid cursor"))
        })
        .transpose()
}

/// Event metadata for a mutation by the caller: who, and from which address.
pub fn actor_metadata(ctx: &Context<'_>, caller: &Principal) -> xdr_domain::EventMetadata {
    crate::extract::actor_metadata(caller, request(ctx))
}

/// A cursor over `(time, id)` (lists ordered newest first by a timestamp, the id breaking ties).
pub fn encode_time_id_cursor(at: chrono::DateTime<chrono::Utc>, id: impl std::fmt::Display) -> String {
    encode_cursor(&format!("{}|{id}", at.timestamp_micros()))
}

pub fn decode_time_id_cursor(cursor: Option<&str>) -> Result<Option<(chrono::DateTime<chrono::Utc>, Uuid)>> {
    let Some(c) = decode_cursor(cursor)? else { return Ok(None) };
    let invalid = || bad_input("invalid cursor");
    let (micros, id) = c.split_once('|').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some((chrono::DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?, id)))
}

/// One page of a newest-first list: `rows` were fetched with `LIMIT first + 1`, so one row
/// more than `first` means there is a next page.
pub fn page_of<T: async_graphql::OutputType>(
    rows: &[sqlx::postgres::PgRow],
    first: usize,
    has_previous: bool,
    from_row: impl Fn(&sqlx::postgres::PgRow) -> T,
    cursor_of: impl Fn(&T) -> String,
) -> async_graphql::connection::Connection<String, T> {
    let mut connection = async_graphql::connection::Connection::new(has_previous, rows.len() > first);
    for row in rows.iter().take(first) {
        let node = from_row(row);
        connection.edges.push(async_graphql::connection::Edge::new(cursor_of(&node), node));
    }
    connection
}

/// A cursor over `org_seq` (lists ordered newest first).
pub fn decode_seq_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    decode_cursor(cursor)?.map(|c| c.parse().map_err(|_| bad_input("invalid cursor"))).transpose()
}

pub fn db_error(e: sqlx::Error) -> async_graphql::Error {
    gql_error(AuthError::Internal(e.to_string()))
}

/// Read your writes: when the server is configured for it, a mutation returns only after the
/// projections have caught up with the org's log as it stands now (bounded wait, then a clear
/// error), so the caller's next query sees its own change.
pub async fn after_write(ctx: &Context<'_>, org: xdr_domain::ids::OrgId) -> Result<()> {
    let state = state(ctx);
    let Some(timeout) = state.config.read_your_writes else {
        return Ok(());
    };
    let head = state.identity.store().head(org).await.map_err(|e| db_error_text(e.to_string()))?;
    let seq = head.map_or(0, |(seq, _)| seq);
    xdr_projections::wait_for_projections(&state.pool, org, seq, timeout).await.map_err(|e| {
        async_graphql::Error::new(format!("Change saved, but the read models are behind: {e}"))
            .extend_with(|_, x| x.set("code", "PROJECTION_LAG"))
    })
}

fn db_error_text(cause: String) -> async_graphql::Error {
    gql_error(AuthError::Internal(cause))
}
