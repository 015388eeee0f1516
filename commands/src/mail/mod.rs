//! E-mail: the outbox sender and its transports.
//!
//! The event log is the outbox. An event that asks for a mail (`UserInvited`,
//! `PasswordResetRequested`) is committed with the command that caused it; the mailer
//! ([`outbox::run_mailer`]) tails every org's log, sends, and records the outcome in the
//! message's own stream (`mail-<source event id>`: `EmailSent`, or `EmailFailed` with the
//! time of the next attempt). Delivery is at least once: a crash between the SMTP server's
//! acceptance and `EmailSent` sends the message again after the restart, with the same
//! `Message-ID` (derived from the source event), so the receiving side can drop it.

pub mod compose;
pub mod outbox;
pub mod transport;

pub use compose::OutgoingMail;
pub use outbox::{run_mailer, MailConfig, Mailer};
pub use transport::{MailTransport, SendError, TransportConfig};
