//! Where mail goes: an SMTP server (lettre, rustls) or, for development, a directory with one
//! `.eml` file per message (nothing to install; the file is named after the `Message-ID`, so
//! a resend overwrites instead of duplicating).

use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::time::Duration;

/// How the deployment sends mail (`XDR_SMTP_URL`, else `XDR_MAIL_DIR`).
#[derive(Debug, Clone)]
pub enum TransportConfig {
    /// `smtp://[user:pass@]host[:port][?tls=required|opportunistic|none]` or `smtps://…`
    /// (implicit TLS). A secret: it may hold the SMTP password.
    Smtp(SecretString),
    /// Development default: write each message to `<dir>/<message id>.eml`.
    Directory(PathBuf),
}

#[derive(Clone)]
pub enum MailTransport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Directory(PathBuf),
}

/// Why a message did not go out. `permanent` failures (a 5xx reply) are not retried.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct SendError {
    pub reason: String,
    pub permanent: bool,
}

/// A bad `XDR_SMTP_URL` (the URL itself is never repeated: it may carry a password).
#[derive(Debug, thiserror::Error)]
#[error("XDR_SMTP_URL is malformed: {0}")]
pub struct TransportConfigError(String);

/// How long one SMTP conversation may take before it counts as a failed attempt.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

impl MailTransport {
    pub fn new(config: &TransportConfig) -> Result<MailTransport, TransportConfigError> {
        match config {
            TransportConfig::Directory(dir) => Ok(MailTransport::Directory(dir.clone())),
            TransportConfig::Smtp(url) => {
                let url = without_tls_none(url.expose_secret());
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                    .map_err(|e| TransportConfigError(e.to_string()))?;
                Ok(MailTransport::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build()))
            }
        }
    }

    /// Hand one message over; `Ok` once the server (or the file system) has accepted it.
    pub async fn send(&self, message: Message, message_id: &str) -> Result<(), SendError> {
        match self {
            MailTransport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(drop)
                .map_err(|e| SendError { permanent: e.is_permanent(), reason: format!("SMTP: {e}") }),
            MailTransport::Directory(dir) => write_eml(dir, &message.formatted(), message_id)
                .await
                .map_err(|e| SendError { reason: format!("mail directory {}: {e}", dir.display()), permanent: false }),
        }
    }

    /// What a log line may say about the transport.
    pub fn describe(&self) -> String {
        match self {
            MailTransport::Smtp(_) => "SMTP".into(),
            MailTransport::Directory(dir) => format!("directory {}", dir.display()),
        }
    }
}

/// lettre reads no TLS parameter as "none"; `tls=none` spells that out.
fn without_tls_none(url: &str) -> String {
    url.replace("?tls=none&", "?").replace("?tls=none", "").replace("&tls=none", "")
}

async fn write_eml(dir: &std::path::Path, bytes: &[u8], message_id: &str) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let name: String =
        message_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, bytes).await?;
    // Rename is atomic: a reader never sees half a message.
    tokio::fs::rename(&tmp, dir.join(format!("{name}.eml"))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_none_is_the_plain_url() {
        assert_eq!(without_tls_none("smtp://h:25?tls=none"), "smtp://h:25");
        assert_eq!(without_tls_none("smtp://h:25?tls=none&x=1"), "smtp://h:25?x=1");
        assert_eq!(without_tls_none("smtp://h:25?tls=required"), "smtp://h:25?tls=required");
    }

    #[test]
    fn every_url_form_builds_and_nonsense_is_refused() {
        for url in
            ["smtp://127.0.0.1:2525", "smtp://h:587?tls=required", "smtp://u:p@h:587?tls=opportunistic", "smtps://h"]
        {
            assert!(MailTransport::new(&TransportConfig::Smtp(url.into())).is_ok(), "{url}");
        }
        assert!(MailTransport::new(&TransportConfig::Smtp("http://h".into())).is_err());
    }

    #[tokio::test]
    async fn the_directory_transport_writes_one_eml_per_message_id_and_a_resend_overwrites_it() {
        let dir = std::env::temp_dir().join(format!("xdr-mail-{}", uuid::Uuid::new_v4().simple()));
        let transport = MailTransport::new(&TransportConfig::Directory(dir.clone())).unwrap();
        let message = || {
            Message::builder()
                .from("XDR <xdr@mail.test>".parse().unwrap())
                .to("bob@mail.test".parse().unwrap())
                .subject("Reset")
                .message_id(Some("<m1.o1@mail.test>".into()))
                .body(String::from("https://xdr.test/reset-password?token=abc\n"))
                .unwrap()
        };
        transport.send(message(), "<m1.o1@mail.test>").await.unwrap();
        transport.send(message(), "<m1.o1@mail.test>").await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].to_string_lossy().ends_with(".eml"));
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("Message-ID: <m1.o1@mail.test>") && text.contains("token=abc"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
