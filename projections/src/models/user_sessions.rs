//! `rm_user_sessions`: one row per login session (refresh-token family): when it started,
//! how often it was refreshed, whether a spent token was replayed, and when and why it ended;
//! the client's address and `User-Agent` at sign-in, for the session list.

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
    EventType::UserSessionsRevoked,
    EventType::UserDeactivated,
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
    let (org, seq) = (e.org_id, e.org_seq);
    // Bulk ends live on the user stream (`xdr_domain::identity::membership`).
    let bulk = match &event {
        Event::UserSessionsRevoked(r) => Some((r.at, r.kept.map(|k| k.0))),
        Event::UserDeactivated(d) => Some((d.at, None)),
        _ => None,
    };
    if let Some((at, kept)) = bulk {
        let user = stream_uuid(NAME, e, "user")?;
        sqlx::query(
            "UPDATE rm_user_sessions SET revoked_at = $4, revoke_reason = 'revoked', last_seq = $3 \
             WHERE org_id = $1 AND user_id = $2 AND last_seq < $3 AND revoked_at IS NULL \
               AND started_at <= $4 AND ($5::uuid IS NULL OR session_id <> $5)",
        )
        .bind(org)
        .bind(user)
        .bind(seq)
        .bind(at)
        .bind(kept)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    let session = stream_uuid(NAME, e, "session")?;
    match &event {
        Event::SessionStarted(s) => sqlx::query(
            "INSERT INTO rm_user_sessions (org_id, session_id, user_id, started_at, ip, user_agent, last_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, session_id) DO NOTHING",
        )
        .bind(org)
        .bind(session)
        .bind(s.user_id.0)
        .bind(s.at)
        .bind(e.metadata().request_ip)
        .bind(s.user_agent.as_deref())
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
