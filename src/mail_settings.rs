//! The mail settings of [`crate::config::Settings`]: where mail goes and what it says.
//!
//! `XDR_SMTP_URL` set: SMTP (`smtp://host:port[?tls=required|opportunistic|none]`,
//! `smtps://host[:port]`, credentials as `user:pass@`). Unset: the development default, one
//! `.eml` file per message in `XDR_MAIL_DIR` (default `.dev-mail/`), nothing to install.

use secrecy::SecretString;
use std::path::PathBuf;

use crate::config::ConfigError;

#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `XDR_SMTP_URL` (a secret: it may hold the SMTP password).
    pub smtp_url: Option<SecretString>,
    /// `XDR_MAIL_DIR`, used when `XDR_SMTP_URL` is unset.
    pub mail_dir: PathBuf,
    /// `XDR_MAIL_FROM`, e.g. `Mini-XDR <xdr@example.com>`.
    pub from: String,
    /// `XDR_PUBLIC_URL`: the console's address in mailed links (default `http://<XDR_BIND>`).
    pub public_url: String,
    /// `XDR_MAIL_RETRY_BASE_MS`: wait after the first failed attempt, doubling each time.
    pub retry_base: std::time::Duration,
    /// `XDR_MAIL_MAX_ATTEMPTS`: attempts before the mailer gives up on a message.
    pub max_attempts: u32,
}

/// The TOML keys of the mail settings (names as the environment variables, lower case).
#[derive(Debug, Default, Clone)]
pub struct MailFileSettings {
    pub xdr_smtp_url: Option<String>,
    pub xdr_mail_dir: Option<String>,
    pub xdr_mail_from: Option<String>,
    pub xdr_public_url: Option<String>,
}

pub const DEFAULT_MAIL_DIR: &str = ".dev-mail";
pub const DEFAULT_MAIL_FROM: &str = "Mini-XDR <mini-xdr@localhost>";

impl MailSettings {
    pub fn load(
        env: &impl Fn(&str) -> Option<String>,
        file: MailFileSettings,
        bind: &str,
    ) -> Result<MailSettings, ConfigError> {
        let pick = |var: &str, file_value: Option<String>| env(var).filter(|v| !v.is_empty()).or(file_value);
        let number = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match env(var).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConfigError::Malformed { var, reason: format!("{v:?} is not a whole number above 0") }),
                },
            }
        };
        let defaults = xdr_domain::mail::RetryPolicy::default();
        let settings = MailSettings {
            smtp_url: pick("XDR_SMTP_URL", file.xdr_smtp_url).map(SecretString::from),
            mail_dir: pick("XDR_MAIL_DIR", file.xdr_mail_dir).unwrap_or_else(|| DEFAULT_MAIL_DIR.into()).into(),
            from: pick("XDR_MAIL_FROM", file.xdr_mail_from).unwrap_or_else(|| DEFAULT_MAIL_FROM.into()),
            public_url: pick("XDR_PUBLIC_URL", file.xdr_public_url)
                .unwrap_or_else(|| format!("http://{bind}"))
                .trim_end_matches('/')
                .to_owned(),
            retry_base: std::time::Duration::from_millis(number(
                "XDR_MAIL_RETRY_BASE_MS",
                defaults.base.num_milliseconds() as u64,
            )?),
            max_attempts: number("XDR_MAIL_MAX_ATTEMPTS", u64::from(defaults.max_attempts))?.min(100) as u32,
        };
        settings.mail_config()?;
        Ok(settings)
    }

    /// The mailer's configuration (checks the sender address, the URL and the SMTP URL).
    pub fn mail_config(&self) -> Result<xdr_commands::mail::MailConfig, ConfigError> {
        use xdr_commands::mail::{compose::MailIdentity, TransportConfig};
        let from =
            self.from.parse().map_err(|e| ConfigError::Malformed { var: "XDR_MAIL_FROM", reason: format!("{e}") })?;
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(ConfigError::Malformed {
                var: "XDR_PUBLIC_URL",
                reason: "expected the console's address, like https://xdr.example.com".into(),
            });
        }
        let transport = match &self.smtp_url {
            Some(url) => TransportConfig::Smtp(url.clone()),
            None => TransportConfig::Directory(self.mail_dir.clone()),
        };
        xdr_commands::mail::MailTransport::new(&transport)
            .map_err(|e| ConfigError::Malformed { var: "XDR_SMTP_URL", reason: e.to_string() })?;
        let defaults = xdr_domain::mail::RetryPolicy::default();
        Ok(xdr_commands::mail::MailConfig {
            transport,
            identity: MailIdentity { from, public_url: self.public_url.clone() },
            retry: xdr_domain::mail::RetryPolicy {
                base: chrono::Duration::from_std(self.retry_base).unwrap_or(defaults.base),
                cap: defaults.cap,
                max_attempts: self.max_attempts,
            },
            poll_interval: std::time::Duration::from_millis(500),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<MailSettings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        MailSettings::load(&|k: &str| map.get(k).cloned(), MailFileSettings::default(), "127.0.0.1:8000")
    }

    #[test]
    fn the_development_default_writes_files_and_links_to_the_bind_address() {
        let s = load(&[]).unwrap();
        assert!(s.smtp_url.is_none());
        assert_eq!(s.mail_dir, PathBuf::from(".dev-mail"));
        assert_eq!(s.public_url, "http://127.0.0.1:8000");
        assert!(matches!(s.mail_config().unwrap().transport, xdr_commands::mail::TransportConfig::Directory(_)));
    }

    #[test]
    fn smtp_sender_and_links_come_from_the_environment() {
        let s = load(&[
            ("XDR_SMTP_URL", "smtp://mail.example.com:587?tls=required"),
            ("XDR_MAIL_FROM", "XDR <xdr@example.com>"),
            ("XDR_PUBLIC_URL", "https://xdr.example.com/"),
            ("XDR_MAIL_RETRY_BASE_MS", "100"),
            ("XDR_MAIL_MAX_ATTEMPTS", "3"),
        ])
        .unwrap();
        assert_eq!(s.smtp_url.as_ref().unwrap().expose_secret(), "smtp://mail.example.com:587?tls=required");
        assert_eq!(s.public_url, "https://xdr.example.com");
        let config = s.mail_config().unwrap();
        assert_eq!(config.identity.from.email.to_string(), "xdr@example.com");
        assert_eq!((config.retry.base.num_milliseconds(), config.retry.max_attempts), (100, 3));
    }

    #[test]
    fn malformed_mail_settings_name_the_variable_but_never_the_url() {
        let err = load(&[("XDR_MAIL_FROM", "not an address")]).unwrap_err();
        assert!(err.to_string().starts_with("XDR_MAIL_FROM is malformed"), "{err}");
        let err = load(&[("XDR_SMTP_URL", "ftp://user:hunter2@h")]).unwrap_err();
        assert!(err.to_string().starts_with("XDR_SMTP_URL is malformed"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = load(&[("XDR_PUBLIC_URL", "xdr.example.com")]).unwrap_err();
        assert!(err.to_string().starts_with("XDR_PUBLIC_URL is malformed"), "{err}");
    }
}
