//! `rm_users`: one row per user, without any credential (no password hash, no invitation
//! token digest). Every update is guarded by `last_seq < org_seq`, so a redelivered event
//! changes nothing; the column values mirror what the events say.

use sqlx::PgConnection;
use xdr_commands::StoredEvent;
use xdr_domain::{Event, EventType};

use super::{decode, stream_uuid};
use crate::runner::{Projection, ProjectionError, ReadModelTable, Reads};

const NAME: &str = "users";

const HANDLES: &[EventType] = &[
    EventType::UserCreated,
    EventType::UserInvited,
    EventType::InvitationAccepted,
    EventType::PasswordSet,
    EventType::LoginSucceeded,
    EventType::LoginFailed,
    EventType::AccountLocked,
    EventType::AccountUnlocked,
    EventType::PasswordChanged,
    EventType::UserRoleChanged,
    EventType::UserDeactivated,
    EventType::UserReactivated,
];

/// `UPDATE` of one user row unless it already reflects this `org_seq` ($1 org, $2 user,
/// $3 org_seq; the event's values from $4).
macro_rules! update {
    ($($set:expr),+) => {
        concat!("UPDATE rm_users SET ", $($set),+, ", last_seq = $3 WHERE org_id = $1 AND user_id = $2 AND last_seq < $3")
    };
}

/// `locked_until` after an event at `$4`: a lock that has expired by then is gone (as the
/// `User` aggregate folds it).
macro_rules! clear_expired_lock {
    () => {
        "locked_until = CASE WHEN locked_until <= $4 THEN NULL ELSE locked_until END"
    };
}

pub const USERS: Projection = Projection {
    name: NAME,
    tables: &[ReadModelTable { name: "rm_users", order_by: "org_id, user_id" }],
    reads: Reads::Only(HANDLES),
    apply: one_by_one!(apply_one),
};

async fn apply_one(conn: &mut PgConnection, e: &StoredEvent) -> Result<(), ProjectionError> {
    let event = decode(NAME, e)?;
    if let Event::UserCreated(c) = &event {
        sqlx::query(
            "INSERT INTO rm_users (org_id, user_id, email, full_name, role, is_active, has_password, \
               created_at, last_seq) VALUES ($1, $2, $3, $4, $5, true, $6, $7, $8) \
             ON CONFLICT (org_id, user_id) DO NOTHING",
        )
        .bind(e.org_id)
        .bind(c.user_id.0)
        .bind(c.email.as_str())
        .bind(&c.full_name)
        .bind(c.role.as_str())
        .bind(c.password_hash.is_some())
        .bind(c.created_at)
        .bind(e.org_seq)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    let user = stream_uuid(NAME, e, "user")?;
    match &event {
        Event::UserInvited(i) => sqlx::query(update!("role = $4, invitation_pending = true"))
            .bind(e.org_id)
            .bind(user)
            .bind(e.org_seq)
            .bind(i.role.as_str()),
        Event::InvitationAccepted(_) => {
            sqlx::query(update!("invitation_pending = false")).bind(e.org_id).bind(user).bind(e.org_seq)
        }
        Event::PasswordSet(_) => sqlx::query(update!("has_password = true")).bind(e.org_id).bind(user).bind(e.org_seq),
        // A known device's sign-in and its bad passwords leave the unknown clients' failure
        // count alone (as the `User` aggregate folds them).
        Event::LoginSucceeded(s) if s.recognised => sqlx::query(update!("last_login = $4, ", clear_expired_lock!()))
            .bind(e.org_id)
            .bind(user)
            .bind(e.org_seq)
            .bind(s.at),
        Event::LoginSucceeded(s) => {
            sqlx::query(update!("last_login = $4, failed_attempts = 0, ", clear_expired_lock!()))
                .bind(e.org_id)
                .bind(user)
                .bind(e.org_seq)
                .bind(s.at)
        }
        Event::LoginFailed(f) if f.device_failures.is_some() => {
            sqlx::query(update!(clear_expired_lock!())).bind(e.org_id).bind(user).bind(e.org_seq).bind(f.at)
        }
        Event::LoginFailed(f) => sqlx::query(update!("failed_attempts = $5, ", clear_expired_lock!()))
            .bind(e.org_id)
            .bind(user)
            .bind(e.org_seq)
            .bind(f.at)
            .bind(i32::try_from(f.consecutive_failures).unwrap_or(i32::MAX)),
        Event::AccountLocked(l) => {
            sqlx::query(update!("locked_until = $4")).bind(e.org_id).bind(user).bind(e.org_seq).bind(l.until)
        }
        Event::AccountUnlocked(_) => {
            sqlx::query(update!("failed_attempts = 0, locked_until = NULL")).bind(e.org_id).bind(user).bind(e.org_seq)
        }
        Event::PasswordChanged(p) if p.clears_lock => {
            sqlx::query(update!("has_password = true, failed_attempts = 0, locked_until = NULL"))
                .bind(e.org_id)
                .bind(user)
                .bind(e.org_seq)
        }
        Event::PasswordChanged(_) => {
            sqlx::query(update!("has_password = true")).bind(e.org_id).bind(user).bind(e.org_seq)
        }
        Event::UserRoleChanged(r) => {
            sqlx::query(update!("role = $4")).bind(e.org_id).bind(user).bind(e.org_seq).bind(r.to.as_str())
        }
        Event::UserDeactivated(_) => {
            sqlx::query(update!("is_active = false")).bind(e.org_id).bind(user).bind(e.org_seq)
        }
        Event::UserReactivated(_) => sqlx::query(update!("is_active = true")).bind(e.org_id).bind(user).bind(e.org_seq),
        other => return Err(super::apply_error(NAME, e, format!("unexpected {}", other.event_type()))),
    }
    .execute(&mut *conn)
    .await?;
    Ok(())
}
