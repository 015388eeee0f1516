//! `rm_user_sessions`: one row per login session (refresh-token family): when it started,
//! how often it was refreshed, whether a spent token was replayed, and when and why it ended.

use sqlx::PgConnection;
use xdr_commands::StoredEvent;
use xdr_domain::{Event, EventType};

use super::organizations::enum_str;
use super::{apply_error, decode, stream_uuid};
use crate::runner::{Projection, ProjectionError, ReadModelTable, Reads};

const NAME: &str = "user_sessions";

const HANDLES: &[EventType] = &[
    EventType::SessionStarted,
    EventType::RefreshTokenRotated,
    EventType::RefreshTokenReuseDetected,
    EventType::SessionRevoked,
];

/// `UPDATE` of one session row unless it already reflects this `org_seq`
/// ($1 org, $2 session, $3 org_seq; the event's values from $4).
macro_rules! update {
    ($set:literal) => {
        concat!(
            "UPDATE rm_user_sessions SET ",
            $set,
            ", last_seq = $3 WHERE org_id = $1 AND session_id = $2 AND last_seq < $3"
        )
    };
}

pub const USER_SESSIONS: Projection = Projection {
    name: NAME,
    tables: &[ReadModelTable { name: "rm_user_sessions", order_by: "org_id, session_id" }],
    reads: Reads::Only(HANDLES),
    apply: one_by_one!(apply_one),
};

async fn apply_one(conn: &mut PgConnection, e: &StoredEvent) -> Result<(), ProjectionError> {
    let event = decode(NAME, e)?;
    let session = stream_uuid(NAME, e, "session")?;
    let (org, seq) = (e.org_id, e.org_seq);
    match &event {
        Event::SessionStarted(s) => sqlx::query(
            "INSERT INTO rm_user_sessions (org_id, session_id, user_id, started_at, last_seq) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, session_id) DO NOTHING",
        )
        .bind(org)
        .bind(session)
        .bind(s.user_id.0)
        .bind(s.at)
        .bind(seq),
        Event::RefreshTokenRotated(r) => sqlx::query(update!("rotations = rotations + 1, last_rotated_at = $4"))
            .bind(org)
            .bind(session)
            .bind(seq)
            .bind(r.at),
        Event::RefreshTokenReuseDetected(_) => {
            sqlx::query(update!("reuse_detected = true")).bind(org).bind(session).bind(seq)
        }
        // The first revocation is the one that ended the session.
        Event::SessionRevoked(r) => {
            sqlx::query(update!("revoked_at = COALESCE(revoked_at, $4), revoke_reason = COALESCE(revoke_reason, $5)"))
                .bind(org)
                .bind(session)
                .bind(seq)
                .bind(r.at)
                .bind(enum_str(&r.reason))
        }
        other => return Err(apply_error(NAME, e, format!("unexpected {}", other.event_type()))),
    }
    .execute(&mut *conn)
    .await?;
    Ok(())
}
