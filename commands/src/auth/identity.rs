//! Identity command handlers: register, login with lockout, tokens, invitations, admin
//! lock/unlock. Each is load → decide (pure, in `xdr_domain::identity`) → append, with the
//! actor and request IP in every event's metadata, so the audit trail is the log itself.
//!
//! Reads here come from the aggregates' own streams, not from read models: authentication
//! must see a logout or a lock the instant it is committed. The user stream is read from its
//! latest snapshot plus the events after it (`handler::load`), so a stream that a flood of
//! failed logins made long costs a request no more than a fresh one.

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;
use xdr_domain::aggregate::Aggregate;
use xdr_domain::identity::{
    check_password_policy, login_outcome, rotation_outcome, Email, IdentityError, LockoutPolicy, LoginAttempt,
    LoginOutcome, OrgName, Organization, Permission, RegisterOrganization, Role, RotationOutcome, Session,
    SessionCommand, Slug, User, UserCommand,
};
use xdr_domain::ids::{OrgId, SessionId, UserId};
use xdr_domain::{Event, EventMetadata};

use super::passwords::{PasswordError, PasswordHasher};
use super::tokens::{TokenKind, TokenPair, TokenService};
use super::Clock;
use crate::handler::{self, CommandError};
use crate::store::{EventStore, ExpectedVersion, NewEvent, StoreError};

mod membership;
mod second_factor;

pub use second_factor::{PendingSignIn, SecondFactorEnrolment};

/// What `register` answers for an address that already has an account, in any tenant. It says
/// no more than a refused login does (the address is not named as taken); the refusal itself
/// still tells a prober the address exists, which the per-client register limit bounds
/// (docs/ARCHITECTURE.md, "Abuse limits").
pub const REGISTRATION_REFUSED: &str = "Registration failed";

/// How long an invitation token is valid.
pub const INVITATION_TTL: Duration = Duration::hours(72);
/// How long an admin lock lasts when the admin does not say.
pub const DEFAULT_ADMIN_LOCK: Duration = Duration::days(365);

/// Why a request was refused. Messages are user-facing; internals stay in `Internal` and are
/// logged, never returned.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Validation(String),
    #[error("Incorrect email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("Account locked until {}", .0.to_rfc3339())]
    Locked(DateTime<Utc>),
    #[error("Insufficient permissions")]
    Forbidden,
    #[error("Not found")]
    NotFound,
    /// The password-hashing queue is full: retry in a moment (HTTP 503 with `Retry-After`).
    #[error("Too many sign-ins in progress; retry in a few seconds")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
    /// The password was right; the second factor is next (`login_second_factor`).
    #[error("Second factor required")]
    SecondFactorRequired(PendingSignIn),
    /// The org requires a second factor and the caller has none yet: enrol first.
    #[error("Second factor enrolment required")]
    SecondFactorEnrolmentRequired,
}

impl From<IdentityError> for AuthError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::NotFound => AuthError::NotFound,
            IdentityError::SessionRevoked | IdentityError::InvalidToken => {
                AuthError::Unauthenticated("Could not validate credentials")
            }
            IdentityError::SessionExpired => AuthError::Unauthenticated("Session has expired; sign in again"),
            other => AuthError::Validation(other.to_string()),
        }
    }
}

impl From<CommandError<IdentityError>> for AuthError {
    fn from(e: CommandError<IdentityError>) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            other => AuthError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Internal(e.to_string())
    }
}

impl From<PasswordError> for AuthError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => AuthError::Busy,
            other => AuthError::Internal(other.to_string()),
        }
    }
}

/// Who is calling, from the verified access token and the current state of their streams.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub role: Role,
    pub session_id: SessionId,
    /// The org requires a second factor of this user and none is enrolled: every permission
    /// is refused until enrolment (which, like `me` and logout, needs none).
    pub second_factor_pending: bool,
}

impl Principal {
    /// The one permission check every route and mutation goes through.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        if self.second_factor_pending {
            return Err(AuthError::SecondFactorEnrolmentRequired);
        }
        if self.role.can(permission) {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }
}

/// Request facts recorded in event metadata.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub ip: Option<String>,
    /// The client's `User-Agent`, recorded when a session starts (shown in the session list).
    pub user_agent: Option<String>,
    /// Break-glass work from the operator CLI: events carry actor `operator`, no user.
    pub operator: bool,
}

impl RequestContext {
    pub fn operator() -> RequestContext {
        RequestContext { ip: None, user_agent: None, operator: true }
    }
}

impl Principal {
    /// The operator acting inside one org with admin rights (operator CLI only).
    pub fn operator(org_id: OrgId) -> Principal {
        Principal {
            user_id: UserId(Uuid::nil()),
            org_id,
            role: Role::Admin,
            session_id: SessionId(Uuid::nil()),
            second_factor_pending: false,
        }
    }
}

/// `user` of the REST contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.user_id.0,
            organization_id: u.org_id.0,
            email: u.email.as_str().to_owned(),
            full_name: u.full_name.clone(),
            role: u.role,
            is_active: u.is_active,
            created_at: u.created_at,
            last_login: u.last_login,
        }
    }
}

/// `organization` of the REST contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrganizationView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub status: &'static str,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<&Organization> for OrganizationView {
    fn from(o: &Organization) -> Self {
        OrganizationView {
            id: o.org_id.0,
            name: o.name.clone(),
            slug: o.slug.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            status: "active",
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub tokens: TokenPair,
    pub user: UserView,
    pub organization: OrganizationView,
}

#[derive(Debug, Clone, Serialize)]
pub struct Invited {
    pub user: UserView,
    /// Shown once; only its SHA-256 is stored.
    pub invitation_token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct IdentityService {
    pub(super) store: EventStore,
    pub(super) hasher: PasswordHasher,
    pub(super) tokens: TokenService,
    pub(super) clock: Clock,
    lockout: LockoutPolicy,
    sealer: super::totp::SecretSealer,
}

/// A successful sign-in: the token pair and the known-device token the client should present
/// on its next sign-in (the one it presented, when that was recognised; a fresh one otherwise).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub tokens: TokenPair,
    pub device_token: String,
}

/// Process-wide counters of the lockout's work, rendered on `/metrics`.
#[derive(Debug, Default)]
pub struct LoginDefence {
    /// Accounts locked by bad passwords from unknown clients (each is an `AccountUnderAttack`).
    pub accounts_under_attack: AtomicU64,
    /// Sign-ins refused because the account was locked.
    pub refused_while_locked: AtomicU64,
    /// Sign-ins from a known device (let in even while the account is locked for others).
    pub known_device_sign_ins: AtomicU64,
}

pub static LOGIN_DEFENCE: LoginDefence = LoginDefence {
    accounts_under_attack: AtomicU64::new(0),
    refused_while_locked: AtomicU64::new(0),
    known_device_sign_ins: AtomicU64::new(0),
};

impl LoginDefence {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

pub(super) fn metadata(actor: Option<UserId>, ctx: &RequestContext) -> EventMetadata {
    if ctx.operator {
        return EventMetadata::system("operator");
    }
    EventMetadata {
        actor_user_id: actor.map(|u| u.0),
        actor: Some(actor.map_or_else(|| "anonymous".to_owned(), |u| format!("user:{u}"))),
        request_ip: ctx.ip.clone(),
        ..Default::default()
    }
}

pub(super) fn new_events(stream_id: &str, events: &[Event], meta: &EventMetadata) -> Vec<NewEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| NewEvent::from_event(handler::event_id(None, i), stream_id, e, meta))
        .collect()
}

/// Map a unique violation on a reservation table to the user-facing message.
fn reservation_error(e: sqlx::Error, message: &str) -> AuthError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => AuthError::Validation(message.into()),
        _ => e.into(),
    }
}

impl IdentityService {
    pub fn new(store: EventStore, hasher: PasswordHasher, tokens: TokenService, clock: Clock) -> Self {
        IdentityService { store, hasher, tokens, clock, lockout: LockoutPolicy::default(), sealer: Default::default() }
    }

    /// The deployment's lockout threshold, lock duration and known-device lifetime.
    pub fn with_lockout_policy(mut self, lockout: LockoutPolicy) -> Self {
        self.lockout = lockout;
        self
    }

    /// The keys second-factor secrets are sealed with (from `ENCRYPTION_KEY`); without them
    /// nobody can enrol a second factor.
    pub fn with_secret_sealer(mut self, sealer: super::totp::SecretSealer) -> Self {
        self.sealer = sealer;
        self
    }

    pub fn lockout_policy(&self) -> LockoutPolicy {
        self.lockout
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    fn pool(&self) -> &PgPool {
        self.store.pool()
    }

    pub(super) async fn load<A: Aggregate>(&self, org: OrgId, stream: &str) -> Result<A, AuthError>
    where
        A::Error: std::fmt::Debug,
    {
        let (state, _) =
            handler::load::<A>(&self.store, org, stream).await.map_err(|e| AuthError::Internal(format!("{e:?}")))?;
        Ok(state)
    }

    /// `(org, user)` of an e-mail address. Before login the org is unknown, so this is one of
    /// the narrow cross-org lookups (a SECURITY DEFINER function returning only the match):
    /// the API's login cannot read the registry of other orgs.
    pub(super) async fn find_email(&self, email: &Email) -> Result<Option<(OrgId, UserId)>, AuthError> {
        let row: Option<(Uuid, Uuid)> = sqlx::query_as("SELECT org_id, user_id FROM xdr_find_user_email($1)")
            .bind(email.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(o, u)| (OrgId(o), UserId(u))))
    }

    /// The org a user belongs to (users are found across tenants only by the registry).
    pub(super) async fn find_user_org(&self, user: UserId) -> Result<Option<OrgId>, AuthError> {
        let org: Option<Uuid> =
            sqlx::query_scalar("SELECT xdr_find_user_org($1)").bind(user.0).fetch_one(self.pool()).await?;
        Ok(org.map(OrgId))
    }

    /// Register an organization and its first admin, and log the admin in.
    pub async fn register(
        &self,
        organization_name: &str,
        admin_email: &str,
        admin_password: SecretString,
        admin_name: &str,
        ctx: &RequestContext,
    ) -> Result<Registration, AuthError> {
        let name = OrgName::parse(organization_name)?;
        let slug = Slug::from_name(name.as_str())?;
        let email = Email::parse(admin_email)?;
        check_password_policy(admin_password.expose_secret())?;
        // Refuse a taken address before spending a hash on it: argon2 is the scarce resource a
        // flood of registrations would otherwise exhaust. The reservations below still decide
        // races between two registrations of the same address.
        if self.find_email(&email).await?.is_some() {
            return Err(AuthError::Validation(REGISTRATION_REFUSED.into()));
        }
        let password_hash = self.hasher.hash(admin_password).await?;
        let now = self.clock.now();
        let (org_id, user_id, session_id) = (OrgId(Uuid::new_v4()), UserId(Uuid::new_v4()), SessionId(Uuid::new_v4()));
        let refresh_jti = Uuid::new_v4();

        let mut org = Organization::default();
        let org_events = org.decide(&RegisterOrganization { org_id, name: name.as_str().to_owned(), now })?;
        let mut user = User::default();
        let user_events = user.decide(&UserCommand::Create {
            user_id,
            org_id,
            email: email.clone(),
            full_name: admin_name.to_owned(),
            role: Role::Admin,
            password_hash: Some(password_hash),
            invitation: None,
            now,
        })?;
        let session_events = Session::default().decide(&SessionCommand::Start {
            session_id,
            user_id,
            refresh_jti,
            user_agent: ctx.user_agent.clone(),
            now,
        })?;
        let meta = metadata(Some(user_id), ctx);

        let mut tx = crate::db::begin_org_tx(self.pool(), org_id).await?;
        sqlx::query("INSERT INTO org_slugs (slug, org_id) VALUES ($1, $2)")
            .bind(slug.as_str())
            .bind(org_id.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| reservation_error(e, "Organization slug already exists"))?;
        sqlx::query("INSERT INTO user_emails (email, org_id, user_id) VALUES ($1, $2, $3)")
            .bind(email.as_str())
            .bind(org_id.0)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| reservation_error(e, REGISTRATION_REFUSED))?;
        for (stream, events) in [
            (org_id.stream_id(), &org_events),
            (user_id.stream_id(), &user_events),
            (session_id.stream_id(), &session_events),
        ] {
            self.store
                .append_in_tx(&mut tx, org_id, &stream, ExpectedVersion::NoStream, new_events(&stream, events, &meta))
                .await?;
        }
        tx.commit().await?;

        org_events.iter().for_each(|e| org.apply(e));
        user_events.iter().for_each(|e| user.apply(e));
        let tokens = self.tokens.issue_pair(user_id, org_id, Role::Admin, session_id, refresh_jti, now);
        Ok(Registration { tokens, user: (&user).into(), organization: (&org).into() })
    }

    /// Password login with lockout. Every attempt is an event; every refusal looks the same.
    ///
    /// `device_token` is the known-device token the client got from an earlier successful
    /// sign-in, if it kept one: a recognised device is not held back by a lock that someone
    /// else's bad passwords caused (see `xdr_domain::identity::user`).
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        device_token: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<SignedIn, AuthError> {
        let found = match Email::parse(email) {
            Ok(email) => self.find_email(&email).await?,
            Err(_) => None,
        };
        let Some((org_id, user_id)) = found else {
            // Same argon2 work as a wrong password: no user enumeration by timing.
            self.hasher.verify(password, None).await?;
            return Err(AuthError::InvalidCredentials);
        };
        let stream = user_id.stream_id();
        let user: User = self.load(org_id, &stream).await?;
        let password_ok = self.hasher.verify(password, user.password_hash.clone()).await?;
        let now = self.clock.now();
        let presented = device_token.filter(|t| !t.is_empty());
        let fresh_device = random_secret();
        let attempt = LoginAttempt {
            password_ok,
            presented_device: presented.map(sha256_hex),
            new_device: sha256_hex(&fresh_device),
            policy: self.lockout,
            now,
        };
        // Until the password checks out, the caller is anonymous: a failed attempt against a user
        // is not an action *of* that user.
        let actor = password_ok.then_some(user_id);
        let executed = handler::execute::<User>(
            &self.store,
            org_id,
            &stream,
            &UserCommand::RecordLogin(attempt.clone()),
            &metadata(actor, ctx),
            None,
        )
        .await?;
        if executed.events.iter().any(|e| matches!(e, Event::AccountUnderAttack(_))) {
            LoginDefence::count(&LOGIN_DEFENCE.accounts_under_attack);
            tracing::warn!(%org_id, %user_id, request_ip = ctx.ip.as_deref().unwrap_or("-"),
                "account locked by repeated bad passwords from unknown clients: under attack");
        }
        match login_outcome(&executed.events) {
            LoginOutcome::Succeeded { device_hash } => {
                let recognised = device_hash.is_some() && device_hash == attempt.presented_device;
                if recognised {
                    LoginDefence::count(&LOGIN_DEFENCE.known_device_sign_ins);
                }
                let device_token = match presented {
                    Some(token) if recognised => token.to_owned(),
                    _ => fresh_device,
                };
                if executed.state.second_factor.is_enrolled() {
                    return Err(self.challenge_second_factor(org_id, user_id, device_token, ctx).await?);
                }
                let tokens = self.start_session(org_id, user_id, executed.state.role, now, ctx).await?;
                Ok(SignedIn { tokens, device_token })
            }
            LoginOutcome::Locked { .. } => {
                LoginDefence::count(&LOGIN_DEFENCE.refused_while_locked);
                Err(AuthError::InvalidCredentials)
            }
            LoginOutcome::Failed => Err(AuthError::InvalidCredentials),
        }
    }

    async fn start_session(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: Role,
        now: DateTime<Utc>,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AuthError> {
        let session_id = SessionId(Uuid::new_v4());
        let refresh_jti = Uuid::new_v4();
        let stream = session_id.stream_id();
        let user_agent = ctx.user_agent.clone();
        let events =
            Session::default().decide(&SessionCommand::Start { session_id, user_id, refresh_jti, user_agent, now })?;
        let meta = metadata(Some(user_id), ctx);
        self.store.append(org_id, &stream, ExpectedVersion::NoStream, new_events(&stream, &events, &meta)).await?;
        Ok(self.tokens.issue_pair(user_id, org_id, role, session_id, refresh_jti, now))
    }

    /// Verify an access token and the live state behind it: the session is not revoked, the
    /// user exists and no admin has locked them. Returns the caller with their *current* role.
    ///
    /// An automatic lock (bad passwords) does not end sessions: it guards the password path,
    /// and a session is proof of an earlier correct sign-in, so an attacker who locks the
    /// account cannot sign its owner out.
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        let now = self.clock.now();
        let claims = self
            .tokens
            .verify(access_token, TokenKind::Access, now)
            .map_err(|_| AuthError::Unauthenticated("Could not validate credentials"))?;
        let session: Session = self.load(claims.org, &claims.sid.stream_id()).await?;
        if !session.is_active() || session.user_id != claims.sub {
            return Err(AuthError::Unauthenticated("Could not validate credentials"));
        }
        let user: User = self.load(claims.org, &claims.sub.stream_id()).await?;
        // Deactivation and "revoke all" end sessions by a cut-off on the user stream.
        if !user.created
            || user.org_id != claims.org
            || !user.is_active
            || user.ended_session(claims.sid, session.started_at)
        {
            return Err(AuthError::Unauthenticated("Could not validate credentials"));
        }
        if let Some(until) = user.admin_lock_at(now) {
            return Err(AuthError::Locked(until));
        }
        let second_factor_pending =
            !user.second_factor.is_enrolled() && self.second_factor_required(claims.org, user.role).await?;
        Ok(Principal {
            user_id: claims.sub,
            org_id: claims.org,
            role: user.role,
            session_id: claims.sid,
            second_factor_pending,
        })
    }

    /// `{user, organization}` of the caller.
    pub async fn me(&self, principal: &Principal) -> Result<(UserView, OrganizationView), AuthError> {
        let user: User = self.load(principal.org_id, &principal.user_id.stream_id()).await?;
        let org: Organization = self.load(principal.org_id, &principal.org_id.stream_id()).await?;
        Ok(((&user).into(), (&org).into()))
    }

    /// Exchange a refresh token for a new pair. A spent token revokes its whole family.
    pub async fn refresh(&self, refresh_token: &str, ctx: &RequestContext) -> Result<TokenPair, AuthError> {
        let now = self.clock.now();
        let claims = self
            .tokens
            .verify(refresh_token, TokenKind::Refresh, now)
            .map_err(|_| AuthError::Unauthenticated("Could not validate credentials"))?;
        // The account first: an admin-locked or deactivated user's refresh token rotates
        // nothing (an automatic lock guards only the password path, as in `authenticate`).
        let user: User = self.load(claims.org, &claims.sub.stream_id()).await?;
        if let Some(until) = user.admin_lock_at(now) {
            return Err(AuthError::Locked(until));
        }
        if !user.is_active {
            return Err(AuthError::Unauthenticated("Could not validate credentials"));
        }
        if !user.session_cutoffs.is_empty() {
            let session: Session = self.load(claims.org, &claims.sid.stream_id()).await?;
            if user.ended_session(claims.sid, session.started_at) {
                return Err(AuthError::Unauthenticated("Could not validate credentials"));
            }
        }
        let new_jti = Uuid::new_v4();
        let executed = handler::execute::<Session>(
            &self.store,
            claims.org,
            &claims.sid.stream_id(),
            &SessionCommand::Rotate { presented_jti: claims.jti, new_jti, now },
            &metadata(Some(claims.sub), ctx),
            None,
        )
        .await?;
        match rotation_outcome(&executed.events) {
            RotationOutcome::Revoked => {
                tracing::warn!(org_id = %claims.org, user_id = %claims.sub, "refresh token reuse: session revoked");
                Err(AuthError::Unauthenticated("Refresh token reuse detected; session revoked"))
            }
            RotationOutcome::Rotated { new_jti } => {
                Ok(self.tokens.issue_pair(claims.sub, claims.org, user.role, claims.sid, new_jti, now))
            }
        }
    }

    /// Revoke the caller's session: its access tokens and refresh family stop working now.
    pub async fn logout(&self, principal: &Principal, ctx: &RequestContext) -> Result<(), AuthError> {
        handler::execute::<Session>(
            &self.store,
            principal.org_id,
            &principal.session_id.stream_id(),
            &SessionCommand::Logout { by_user: principal.user_id, now: self.clock.now() },
            &metadata(Some(principal.user_id), ctx),
            None,
        )
        .await?;
        Ok(())
    }

    /// Invite a user into the caller's org (admin). Returns the one-time invitation token.
    pub async fn invite(
        &self,
        principal: &Principal,
        email: &str,
        full_name: &str,
        role: &str,
        ctx: &RequestContext,
    ) -> Result<Invited, AuthError> {
        principal.require(Permission::InviteUser)?;
        let email = Email::parse(email)?;
        let role = Role::parse(role)?;
        let now = self.clock.now();
        let user_id = UserId(Uuid::new_v4());
        // The user id in the token finds the stream; only the digest of the whole is stored.
        // The token is derived (not random) so the mailer can rebuild the link from the event.
        let expires_at = now + INVITATION_TTL;
        let token = self.tokens.links().invitation(user_id, expires_at);
        let mut user = User::default();
        let events = user.decide(&UserCommand::Create {
            user_id,
            org_id: principal.org_id,
            email: email.clone(),
            full_name: full_name.to_owned(),
            role,
            password_hash: None,
            invitation: Some((sha256_hex(&token), expires_at)),
            now,
        })?;
        let stream = user_id.stream_id();
        let mut tx = crate::db::begin_org_tx(self.pool(), principal.org_id).await?;
        sqlx::query("INSERT INTO user_emails (email, org_id, user_id) VALUES ($1, $2, $3)")
            .bind(email.as_str())
            .bind(principal.org_id.0)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| reservation_error(e, "Email already registered"))?;
        self.store
            .append_in_tx(
                &mut tx,
                principal.org_id,
                &stream,
                ExpectedVersion::NoStream,
                new_events(&stream, &events, &metadata(Some(principal.user_id), ctx)),
            )
            .await?;
        tx.commit().await?;
        events.iter().for_each(|e| user.apply(e));
        Ok(Invited { user: (&user).into(), invitation_token: token, expires_at })
    }

    /// Accept an invitation with a policy-compliant password.
    pub async fn accept_invite(
        &self,
        token: &str,
        password: SecretString,
        ctx: &RequestContext,
    ) -> Result<UserView, AuthError> {
        let invalid = || AuthError::Validation(IdentityError::InvalidInvitation.to_string());
        let user_id =
            token.split_once('.').and_then(|(id, _)| Uuid::parse_str(id).ok()).map(UserId).ok_or_else(invalid)?;
        let org_id = self.find_user_org(user_id).await?.ok_or_else(invalid)?;
        check_password_policy(password.expose_secret())?;
        let token_hash = sha256_hex(token);
        let now = self.clock.now();
        // Refuse a bad token before paying for argon2.
        let current: User = self.load(org_id, &user_id.stream_id()).await?;
        current.decide(&UserCommand::AcceptInvitation {
            token_hash: token_hash.clone(),
            password_hash: String::new(),
            now,
        })?;
        let password_hash = self.hasher.hash(password).await?;
        let executed = handler::execute::<User>(
            &self.store,
            org_id,
            &user_id.stream_id(),
            &UserCommand::AcceptInvitation { token_hash, password_hash, now },
            &metadata(Some(user_id), ctx),
            None,
        )
        .await?;
        Ok((&executed.state).into())
    }

    /// Look a user of `org` up by e-mail address (operator CLI).
    pub async fn user_by_email(&self, org: OrgId, email: &str) -> Result<UserId, AuthError> {
        let email = Email::parse(email)?;
        match self.find_email(&email).await? {
            Some((o, user)) if o == org => Ok(user),
            _ => Err(AuthError::NotFound),
        }
    }

    /// A user of the caller's org; users of other orgs do not exist for the caller.
    pub async fn get_user(&self, principal: &Principal, user_id: UserId) -> Result<UserView, AuthError> {
        principal.require(Permission::ReadOrgData)?;
        self.user_in_org(principal.org_id, user_id).await.map(|u| (&u).into())
    }

    async fn user_in_org(&self, org: OrgId, user_id: UserId) -> Result<User, AuthError> {
        if self.find_user_org(user_id).await? != Some(org) {
            return Err(AuthError::NotFound);
        }
        let user: User = self.load(org, &user_id.stream_id()).await?;
        if !user.created {
            return Err(AuthError::NotFound);
        }
        Ok(user)
    }

    /// Admin lock (`until` defaults to a year from now).
    pub async fn lock_user(
        &self,
        principal: &Principal,
        user_id: UserId,
        until: Option<DateTime<Utc>>,
        ctx: &RequestContext,
    ) -> Result<UserView, AuthError> {
        principal.require(Permission::LockUser)?;
        self.user_in_org(principal.org_id, user_id).await?;
        let now = self.clock.now();
        let command =
            UserCommand::Lock { until: until.unwrap_or(now + DEFAULT_ADMIN_LOCK), by_user: principal.user_id, now };
        self.execute_user(principal, user_id, command, ctx).await
    }

    pub async fn unlock_user(
        &self,
        principal: &Principal,
        user_id: UserId,
        ctx: &RequestContext,
    ) -> Result<UserView, AuthError> {
        principal.require(Permission::UnlockUser)?;
        self.user_in_org(principal.org_id, user_id).await?;
        let command = UserCommand::Unlock { by_user: principal.user_id, now: self.clock.now() };
        self.execute_user(principal, user_id, command, ctx).await
    }

    async fn execute_user(
        &self,
        principal: &Principal,
        user_id: UserId,
        command: UserCommand,
        ctx: &RequestContext,
    ) -> Result<UserView, AuthError> {
        let executed = handler::execute::<User>(
            &self.store,
            principal.org_id,
            &user_id.stream_id(),
            &command,
            &metadata(Some(principal.user_id), ctx),
            None,
        )
        .await?;
        Ok((&executed.state).into())
    }
}
