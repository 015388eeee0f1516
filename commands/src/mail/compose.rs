//! What to send for a mail-bearing event: recipient, subject, the text with its link, and a
//! `Message-ID` derived from the source event. The link's token is rebuilt from the event
//! (`auth::link_tokens`) and checked against the digest the event recorded; a token that
//! cannot be rebuilt (another key, or an invitation from before mail) is never sent.

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::Message;
use xdr_domain::identity::password_reset::PasswordReset;
use xdr_domain::identity::{Organization, User};
use xdr_domain::ids::{OrgId, UserId};
use xdr_domain::Event;

use crate::auth::link_tokens::token_digest;
use crate::auth::password_reset::reset_stream;
use crate::auth::LinkTokens;
use crate::handler::{self, CommandError};
use crate::store::{EventStore, StoredEvent};

/// One message, ready for a transport.
pub struct OutgoingMail {
    pub message: Message,
    pub message_id: String,
}

/// What the outbox does with a mail-bearing event.
pub enum Composed {
    Send(OutgoingMail),
    /// Nothing to send, now or ever (the link was used, superseded or expired first).
    Nothing(&'static str),
    /// Cannot be sent, ever: recorded as a final `EmailFailed`.
    Impossible(String),
}

/// Where links point and who signs the mail.
#[derive(Debug, Clone)]
pub struct MailIdentity {
    pub from: Mailbox,
    /// Base URL of the console, e.g. `https://xdr.example.com` (no trailing slash).
    pub public_url: String,
}

impl MailIdentity {
    /// `<event id>.<org id>@<sender's domain>`: the same for every attempt at one event.
    pub fn message_id(&self, org: OrgId, source_event: uuid::Uuid) -> String {
        format!("<{}.{}@{}>", source_event.simple(), org.0.simple(), self.from.email.domain())
    }
}

/// The event types that ask for a mail.
pub const MAIL_BEARING: &[&str] = &["UserInvited", "PasswordResetRequested"];

type Loaded<T> = Result<T, CommandError<xdr_domain::identity::IdentityError>>;

/// An aggregate folded from its events alone. The mailer's login may not read snapshots (the
/// user snapshots hold password hashes; docs/ARCHITECTURE.md, "Trust boundaries").
async fn fold<A: xdr_domain::aggregate::Aggregate>(store: &EventStore, org: OrgId, stream: &str) -> Loaded<(A, i64)> {
    let stored = store.read_stream(org, stream).await?;
    let events = stored.iter().map(StoredEvent::event).collect::<Result<Vec<_>, _>>().map_err(CommandError::Corrupt)?;
    Ok((A::from_history(&events), stored.last().map_or(0, |s| s.stream_version)))
}

pub async fn compose(
    store: &EventStore,
    links: &LinkTokens,
    identity: &MailIdentity,
    stored: &StoredEvent,
    now: DateTime<Utc>,
) -> Loaded<Composed> {
    let event = stored.event().map_err(CommandError::Corrupt)?;
    let org = OrgId(stored.org_id);
    let message_id = identity.message_id(org, stored.event_id);
    let (user_stream, subject, text, token_hash) = match &event {
        Event::UserInvited(invited) => {
            let Some(user_id) = stored.stream_id.strip_prefix("user-").and_then(|u| uuid::Uuid::parse_str(u).ok())
            else {
                return Ok(Composed::Impossible("invitation outside a user stream".into()));
            };
            let (user, _) = fold::<User>(store, org, &stored.stream_id).await?;
            if invited.expires_at <= now || user.invitation.as_ref().is_some_and(|i| i.accepted) {
                return Ok(Composed::Nothing("invitation accepted or expired before it was mailed"));
            }
            let (organization, _) = handler::load::<Organization>(store, org, &org.stream_id()).await?;
            let token = links.invitation(UserId(user_id), invited.expires_at);
            let text = format!(
                "You have been invited to {org} on Mini-XDR as {role}.\n\n\
                 Accept the invitation and choose your password:\n{base}/accept-invite?token={token}\n\n\
                 The link expires at {expires}.\n",
                org = organization.name,
                role = invited.role.as_str(),
                base = identity.public_url,
                expires = invited.expires_at.to_rfc3339(),
            );
            (
                stored.stream_id.clone(),
                format!("Your invitation to {} on Mini-XDR", organization.name),
                (text, token),
                invited.token_hash.clone(),
            )
        }
        Event::PasswordResetRequested(requested) => {
            let (reset, _) = handler::load::<PasswordReset>(store, org, &reset_stream(requested.user_id)).await?;
            if reset.check(requested.reset_id, &requested.token_hash, now).is_err() {
                return Ok(Composed::Nothing("reset link used, superseded or expired before it was mailed"));
            }
            let token = links.password_reset(requested.user_id, requested.reset_id);
            let text = format!(
                "Someone (hopefully you) asked to reset your Mini-XDR password.\n\n\
                 Choose a new password:\n{base}/reset-password?token={token}\n\n\
                 The link works once and expires at {expires}. Signing in with the new password \
                 ends every other session. If you did not ask, ignore this mail: your password is unchanged.\n",
                base = identity.public_url,
                expires = requested.expires_at.to_rfc3339(),
            );
            (
                requested.user_id.stream_id(),
                "Reset your Mini-XDR password".to_owned(),
                (text, token),
                requested.token_hash.clone(),
            )
        }
        _ => return Ok(Composed::Nothing("not a mail-bearing event")),
    };
    let (text, token) = text;
    if token_digest(&token) != token_hash {
        return Ok(Composed::Impossible("link cannot be rebuilt (issued under another key or before mail)".into()));
    }
    let (user, _) = fold::<User>(store, org, &user_stream).await?;
    if !user.created {
        return Ok(Composed::Impossible("recipient does not exist".into()));
    }
    let to = match user.email.as_str().parse::<lettre::Address>() {
        Ok(address) => Mailbox::new(Some(user.full_name.clone()), address),
        Err(e) => return Ok(Composed::Impossible(format!("recipient address refused: {e}"))),
    };
    let message = Message::builder()
        .from(identity.from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(message_id.clone()))
        .header(ContentType::TEXT_PLAIN)
        // 7bit keeps the link on one line of the raw message (quoted-printable would fold it);
        // a non-ASCII org name falls back to lettre's own choice.
        .body(
            Body::new_with_encoding(text.clone(), ContentTransferEncoding::SevenBit)
                .unwrap_or_else(|_| Body::new(text)),
        );
    match message {
        Ok(message) => Ok(Composed::Send(OutgoingMail { message, message_id })),
        Err(e) => Ok(Composed::Impossible(format!("message cannot be built: {e}"))),
    }
}
