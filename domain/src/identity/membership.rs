//! A user's membership of their org after the invitation: role changes, deactivation and
//! reactivation, and ending all (or all other) sessions at once.
//!
//! ## Ending sessions without listing them
//!
//! Sessions are streams of their own, and no stream lists a user's sessions. Ending them one
//! by one would need such a list, read from a projection that may lag a session started a
//! moment ago. Instead the *user* stream records a cut-off: every session that started at or
//! before it is dead (except the one a "sign out my other sessions" keeps), whoever asks.
//! The handler reads the user stream on every request anyway (`authenticate`, `refresh`), so
//! the cut-off takes effect on the very next request, with nothing to miss.
//!
//! ## The last admin
//!
//! An org must keep one active admin: nobody else can invite, unlock or promote. The decider
//! is told how many active admins the org has (the handler counts them under a per-org lock,
//! so two admins demoting each other at once cannot both win) and refuses to demote or
//! deactivate the last one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{IdentityError, Role, User};
use crate::ids::{SessionId, UserId};
use crate::Event;

/// Event: an admin changed the user's role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRoleChanged {
    pub from: Role,
    pub to: Role,
    pub by_user: UserId,
    pub at: DateTime<Utc>,
}

/// Event: an admin deactivated the user: no sign-in, and every session started until `at`
/// is dead (also after a reactivation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDeactivated {
    pub by_user: UserId,
    pub at: DateTime<Utc>,
}

/// Event: an admin let a deactivated user back in (with a new sign-in; old sessions stay dead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserReactivated {
    pub by_user: UserId,
    pub at: DateTime<Utc>,
}

/// Event: every session of the user started until `at` ended, except `kept` (the caller's
/// own, for "sign out my other sessions").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSessionsRevoked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<SessionId>,
    pub by_user: UserId,
    pub at: DateTime<Utc>,
}

/// The sessions a user's stream has ended in bulk: started at or before `before`, except `kept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCutoff {
    pub before: DateTime<Utc>,
    pub kept: Option<SessionId>,
}

impl SessionCutoff {
    /// Whether a session that started at `started_at` is ended by this cut-off.
    pub fn ends(&self, session: SessionId, started_at: DateTime<Utc>) -> bool {
        started_at <= self.before && self.kept != Some(session)
    }
}

/// Membership commands (variants of `UserCommand`, decided here).
#[derive(Debug, Clone, PartialEq)]
pub enum MembershipCommand {
    /// `active_admins`: active admins of the org now, the target included if they are one.
    ChangeRole {
        role: Role,
        by_user: UserId,
        active_admins: u32,
        now: DateTime<Utc>,
    },
    Deactivate {
        by_user: UserId,
        active_admins: u32,
        now: DateTime<Utc>,
    },
    Reactivate {
        by_user: UserId,
        now: DateTime<Utc>,
    },
    /// End every session of the user started until now, except `keep`.
    RevokeSessions {
        keep: Option<SessionId>,
        by_user: UserId,
        now: DateTime<Utc>,
    },
}

impl User {
    /// Whether the session `session`, started at `started_at`, was ended in bulk (by a
    /// deactivation or a "revoke all") on this user's stream.
    pub fn ended_session(&self, session: SessionId, started_at: Option<DateTime<Utc>>) -> bool {
        match (self.session_cutoffs.as_slice(), started_at) {
            ([], _) => false,
            // A session without a start time predates the cut-offs' bookkeeping: ended.
            (_, None) => true,
            (cutoffs, Some(t)) => cutoffs.iter().any(|c| c.ends(session, t)),
        }
    }

    fn is_active_admin(&self) -> bool {
        self.is_active && self.role == Role::Admin
    }

    fn refuse_losing_the_last_admin(&self, active_admins: u32) -> Result<(), IdentityError> {
        if self.is_active_admin() && active_admins <= 1 {
            return Err(IdentityError::LastAdmin);
        }
        Ok(())
    }

    pub(super) fn decide_membership(&self, command: &MembershipCommand) -> Result<Vec<Event>, IdentityError> {
        match command {
            MembershipCommand::ChangeRole { role, by_user, active_admins, now } => {
                if *role == self.role {
                    return Ok(vec![]);
                }
                if *role != Role::Admin {
                    self.refuse_losing_the_last_admin(*active_admins)?;
                }
                Ok(vec![Event::UserRoleChanged(UserRoleChanged {
                    from: self.role,
                    to: *role,
                    by_user: *by_user,
                    at: *now,
                })])
            }
            MembershipCommand::Deactivate { by_user, active_admins, now } => {
                if !self.is_active {
                    return Ok(vec![]);
                }
                self.refuse_losing_the_last_admin(*active_admins)?;
                Ok(vec![Event::UserDeactivated(UserDeactivated { by_user: *by_user, at: *now })])
            }
            MembershipCommand::Reactivate { by_user, now } => {
                if self.is_active {
                    return Ok(vec![]);
                }
                Ok(vec![Event::UserReactivated(UserReactivated { by_user: *by_user, at: *now })])
            }
            MembershipCommand::RevokeSessions { keep, by_user, now } => {
                Ok(vec![Event::UserSessionsRevoked(UserSessionsRevoked { kept: *keep, by_user: *by_user, at: *now })])
            }
        }
    }

    /// Fold a membership event; `false` when `event` is not one.
    pub(super) fn apply_membership(&mut self, event: &Event) -> bool {
        match event {
            Event::UserRoleChanged(e) => self.role = e.to,
            Event::UserDeactivated(e) => {
                self.is_active = false;
                self.push_cutoff(SessionCutoff { before: e.at, kept: None });
            }
            Event::UserReactivated(_) => self.is_active = true,
            Event::UserSessionsRevoked(e) => self.push_cutoff(SessionCutoff { before: e.at, kept: e.kept }),
            _ => return false,
        }
        true
    }

    /// A cut-off without a kept session covers every earlier one: keep the state small.
    fn push_cutoff(&mut self, cutoff: SessionCutoff) {
        if cutoff.kept.is_none() {
            self.session_cutoffs.clear();
        }
        self.session_cutoffs.push(cutoff);
        // Kept sessions age out with SESSION_MAX_AGE; a handful of cut-offs is all that matters.
        if self.session_cutoffs.len() > MAX_CUTOFFS {
            self.session_cutoffs.remove(0);
        }
    }
}

/// Bulk revocations remembered per user. Dropping the oldest keeps alive at most sessions that
/// a later "sign out my other sessions" from a session that survived it would end anyway.
const MAX_CUTOFFS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use crate::identity::spec::{at, given};
    use crate::identity::{Email, UserCommand, UserCreated};
    use crate::ids::OrgId;
    use uuid::Uuid;

    fn me() -> UserId {
        UserId(Uuid::from_u128(10))
    }
    fn other_admin() -> UserId {
        UserId(Uuid::from_u128(11))
    }
    fn session(n: u128) -> SessionId {
        SessionId(Uuid::from_u128(100 + n))
    }

    fn created(role: Role) -> Vec<Event> {
        vec![Event::UserCreated(UserCreated {
            user_id: me(),
            org_id: OrgId(Uuid::from_u128(1)),
            email: Email::parse("a@example.com").unwrap(),
            full_name: "A".into(),
            role,
            password_hash: Some("$argon2id$x".into()),
            created_at: at(0),
        })]
    }

    fn cmd(c: MembershipCommand) -> UserCommand {
        UserCommand::Membership(c)
    }

    fn change_role(role: Role, by: UserId, active_admins: u32) -> UserCommand {
        cmd(MembershipCommand::ChangeRole { role, by_user: by, active_admins, now: at(5) })
    }

    fn deactivate(by: UserId, active_admins: u32) -> UserCommand {
        cmd(MembershipCommand::Deactivate { by_user: by, active_admins, now: at(5) })
    }

    fn after(history: Vec<Event>, c: UserCommand) -> Vec<Event> {
        let mut h = history.clone();
        h.extend(given::<User>(history).when(c).events());
        h
    }

    #[test]
    fn it_should_change_a_role_and_record_both_roles() {
        given::<User>(created(Role::Analyst)).when(change_role(Role::Viewer, other_admin(), 1)).then(vec![
            Event::UserRoleChanged(UserRoleChanged {
                from: Role::Analyst,
                to: Role::Viewer,
                by_user: other_admin(),
                at: at(5),
            }),
        ]);
        let user = User::from_history(&after(created(Role::Analyst), change_role(Role::Viewer, other_admin(), 1)));
        assert_eq!(user.role, Role::Viewer);
    }

    #[test]
    fn it_should_record_nothing_when_the_role_is_unchanged() {
        given::<User>(created(Role::Analyst)).when(change_role(Role::Analyst, other_admin(), 1)).then(vec![]);
    }

    #[test]
    fn it_should_not_let_the_last_active_admin_demote_or_deactivate_themselves() {
        given::<User>(created(Role::Admin))
            .when(change_role(Role::SocLead, me(), 1))
            .then_err(IdentityError::LastAdmin);
        given::<User>(created(Role::Admin)).when(deactivate(me(), 1)).then_err(IdentityError::LastAdmin);
        // With a second active admin both are fine.
        assert_eq!(given::<User>(created(Role::Admin)).when(change_role(Role::SocLead, me(), 2)).events().len(), 1);
        assert_eq!(given::<User>(created(Role::Admin)).when(deactivate(me(), 2)).events().len(), 1);
    }

    #[test]
    fn it_should_deactivate_block_login_and_end_every_session_until_then() {
        let h = after(created(Role::Analyst), deactivate(other_admin(), 1));
        assert_eq!(h.last(), Some(&Event::UserDeactivated(UserDeactivated { by_user: other_admin(), at: at(5) })));
        let user = User::from_history(&h);
        assert!(!user.can_log_in());
        assert!(user.ended_session(session(1), Some(at(5))));
        assert!(user.ended_session(session(1), None));
        // Deactivating twice records nothing more.
        given::<User>(h).when(deactivate(other_admin(), 1)).then(vec![]);
    }

    #[test]
    fn it_should_reactivate_without_reviving_old_sessions() {
        let h = after(created(Role::Analyst), deactivate(other_admin(), 1));
        let h = after(h, cmd(MembershipCommand::Reactivate { by_user: other_admin(), now: at(9) }));
        let user = User::from_history(&h);
        assert!(user.can_log_in());
        assert!(user.ended_session(session(1), Some(at(4))));
        assert!(!user.ended_session(session(2), Some(at(10))), "a sign-in after reactivation works");
    }

    #[test]
    fn it_should_revoke_all_other_sessions_but_keep_the_callers() {
        let revoke = cmd(MembershipCommand::RevokeSessions { keep: Some(session(1)), by_user: me(), now: at(5) });
        let user = User::from_history(&after(created(Role::Analyst), revoke));
        assert!(!user.ended_session(session(1), Some(at(1))));
        assert!(user.ended_session(session(2), Some(at(2))));
        assert!(!user.ended_session(session(3), Some(at(6))));
        // A later "revoke all" ends the kept one too.
        let all = cmd(MembershipCommand::RevokeSessions { keep: None, by_user: other_admin(), now: at(7) });
        let h = after(after(created(Role::Analyst), revoke_keep(1, 5)), all);
        assert!(User::from_history(&h).ended_session(session(1), Some(at(1))));
    }

    fn revoke_keep(n: u128, t: i64) -> UserCommand {
        cmd(MembershipCommand::RevokeSessions { keep: Some(session(n)), by_user: me(), now: at(t) })
    }

    #[test]
    fn it_should_survive_its_snapshot_with_the_cutoffs() {
        let user = User::from_history(&after(created(Role::Analyst), revoke_keep(1, 5)));
        assert_eq!(User::from_snapshot(&user.to_snapshot().unwrap()), Some(user));
    }
}
